// Starting spans: the sampling decision is made here first, so that the requests that are not
// sampled (99% of them at a 1% ratio) cost an id and a header, not a trip through the SDK's
// span machinery. Sampled requests get their span from the SDK as usual.
import { randomFillSync } from 'node:crypto';
import { Context, Span, SpanKind, trace, TraceFlags, Tracer } from '@opentelemetry/api';
import { IdGenerator, Sampler, SamplingDecision } from '@opentelemetry/sdk-trace-base';

const ZERO_TRACE_ID = '0'.repeat(32);
const ZERO_SPAN_ID = '0'.repeat(16);

/**
 * Random ids cut from a pool refilled by the CSPRNG a few KiB at a time (one syscall per ~170
 * requests) and hex-encoded once per refill: an id is then a slice of that string, where a
 * Buffer.toString('hex') per id was a call into C++ each time. `pendingTraceId` lets the
 * SDK adopt a trace id already sampled on, see below.
 */
export class PooledIdGenerator implements IdGenerator {
  pendingTraceId: string | undefined;
  private readonly pool = Buffer.allocUnsafe(4096);
  private hex = '';
  /** Next unused hex digit in `hex`. */
  private pos = 0;

  private take(bytes: number): string {
    const digits = bytes * 2;
    if (this.pos + digits > this.hex.length) {
      randomFillSync(this.pool);
      this.hex = this.pool.toString('hex');
      this.pos = 0;
    }
    const id = this.hex.slice(this.pos, this.pos + digits);
    this.pos += digits;
    return id;
  }

  generateTraceId = (): string => {
    if (this.pendingTraceId !== undefined) return this.pendingTraceId;
    let id: string;
    do id = this.take(16); while (id === ZERO_TRACE_ID);
    return id;
  };

  generateSpanId = (): string => {
    let id: string;
    do id = this.take(8); while (id === ZERO_SPAN_ID);
    return id;
  };
}

const NO_ATTRIBUTES = {};
const NO_LINKS: never[] = [];

export class SpanStarter {
  constructor(private readonly tracer: Tracer, private readonly sampler: Sampler, private readonly ids: PooledIdGenerator) {}

  start(name: string, kind: SpanKind, parent: Context): Span {
    const parentSc = trace.getSpanContext(parent);
    const traceId = parentSc ? parentSc.traceId : this.ids.generateTraceId();
    const result = this.sampler.shouldSample(parent, traceId, name, kind, NO_ATTRIBUTES, NO_LINKS);
    if (result.decision === SamplingDecision.NOT_RECORD) {
      // Not recorded: a context to pass on (flag 00, so the next hops do not sample either).
      return trace.wrapSpanContext({
        traceId, spanId: this.ids.generateSpanId(), traceFlags: TraceFlags.NONE, traceState: result.traceState ?? parentSc?.traceState,
      });
    }
    // Recorded: the SDK makes the span. It asks the (deterministic) sampler again; for a new
    // root it must see the trace id we sampled on, hence the pending id.
    if (!parentSc) this.ids.pendingTraceId = traceId;
    try {
      return this.tracer.startSpan(name, { kind }, parent);
    } finally {
      this.ids.pendingTraceId = undefined;
    }
  }
}
