// Starting spans: the sampling decision is made here first, so that the requests that are not
// sampled (99% of them at a 1% ratio) cost an id and a header, not a trip through the SDK's
// span machinery. Sampled requests get their span from the SDK as usual.
import { randomFillSync } from 'node:crypto';
import { Context, ROOT_CONTEXT, Span, SpanContext, SpanKind, trace, TraceFlags, Tracer } from '@opentelemetry/api';
import { IdGenerator, Sampler, SamplingDecision } from '@opentelemetry/sdk-trace-base';
import type { SamplerName } from './config';

const POOL_BYTES = 4096;

/**
 * Random ids cut from a pool refilled by the CSPRNG a few KiB at a time (one syscall per ~170
 * requests) and hex-encoded once per refill: an id is then a slice of that string, where a
 * Buffer.toString('hex') per id was a call into C++ each time. `pendingTraceId` lets the
 * SDK adopt a trace id already sampled on, see below.
 *
 * Validity (not all zeros) and the ratio samplers' hash are read from the bytes, not the hex:
 * character by character, a sliced string costs V8 about 10 ns a character (measured: the
 * SDK's hash of a trace id, 0.33 us, was most of what an unsampled request cost tracing).
 */
export class PooledIdGenerator implements IdGenerator {
  pendingTraceId: string | undefined;
  /** Of the last id generateTraceId made: its four 32-bit words XORed, as the SDK's ratio sampler hashes it. */
  lastTraceHash = 0;
  private readonly pool = Buffer.allocUnsafe(POOL_BYTES);
  private hex = '';
  /** Next unused byte of `pool`. */
  private offset = POOL_BYTES;

  private next(bytes: number): number {
    if (this.offset + bytes > POOL_BYTES) {
      randomFillSync(this.pool);
      this.hex = this.pool.toString('hex');
      this.offset = 0;
    }
    const at = this.offset;
    this.offset += bytes;
    return at;
  }

  generateTraceId = (): string => {
    if (this.pendingTraceId !== undefined) return this.pendingTraceId;
    const p = this.pool;
    for (;;) {
      const at = this.next(16);
      const a = word(p, at), b = word(p, at + 4), c = word(p, at + 8), d = word(p, at + 12);
      if ((a | b | c | d) === 0) continue; // the all-zero id is invalid
      this.lastTraceHash = (a ^ b ^ c ^ d) >>> 0;
      return this.hex.slice(at * 2, at * 2 + 32);
    }
  };

  generateSpanId = (): string => {
    const p = this.pool;
    for (;;) {
      const at = this.next(8);
      if ((word(p, at) | word(p, at + 4)) === 0) continue;
      return this.hex.slice(at * 2, at * 2 + 16);
    }
  };
}

/** The big-endian 32-bit word at `at`: indexed, where readUInt32BE validates its argument on every call. */
function word(p: Buffer, at: number): number {
  return ((p[at]! << 24) | (p[at + 1]! << 16) | (p[at + 2]! << 8) | p[at + 3]!) >>> 0;
}

/**
 * What the configured sampler decides for a new root (no parent), as a bound on the trace id's
 * hash: sampled when the hash is below it. The same rule and the same hash as the SDK's samplers
 * (TraceIdRatioBased's `_upperBound`; test/tracing-sampling.test.ts holds the two to agreement),
 * so the SDK, asked again when the span is made, always agrees.
 */
export function rootSamplingBound(name: SamplerName, ratio: number): number {
  switch (name) {
    case 'always_on':
    case 'parentbased_always_on':
      return 0x100000000;
    case 'always_off':
    case 'parentbased_always_off':
      return 0;
    case 'traceidratio':
    case 'parentbased_traceidratio': {
      const r = Number.isNaN(ratio) ? 0 : Math.min(1, Math.max(0, ratio));
      return r === 1 ? 0x100000000 : Math.floor(r * 0xffffffff);
    }
  }
}

const NO_ATTRIBUTES = {};
const NO_LINKS: never[] = [];
// The API package exports these through getters: read once here, not on every request.
const traceApi = trace;
const ROOT = ROOT_CONTEXT;
const NOT_SAMPLED = TraceFlags.NONE;

export class SpanStarter {
  /** The last new root's trace id (drawRoot): what unsampledRoot answered for, or the sampled one start() is to make. */
  rootTraceId = '';
  private drawnSampled = false;

  constructor(
    private readonly tracer: Tracer, private readonly sampler: Sampler, private readonly ids: PooledIdGenerator,
    /** rootSamplingBound of `sampler`. */
    private readonly rootBound: number,
  ) {}

  start(name: string, kind: SpanKind, parent: Context): Span {
    // Most requests arrive without a trace (ROOT_CONTEXT is what extraction returns then).
    const parentSc = parent === ROOT ? undefined : traceApi.getSpanContext(parent);
    let traceId: string;
    if (parentSc) {
      traceId = parentSc.traceId;
      const result = this.sampler.shouldSample(parent, traceId, name, kind, NO_ATTRIBUTES, NO_LINKS);
      if (result.decision === SamplingDecision.NOT_RECORD) {
        return this.unsampled(traceId, result.traceState ?? parentSc.traceState);
      }
    } else {
      // A root unsampledRoot already drew (and its sampler said yes to), else a new one.
      const sampled = this.drawnSampled || this.drawRoot();
      this.drawnSampled = false;
      traceId = this.rootTraceId;
      // Root samplers return no trace state.
      if (!sampled) return this.unsampled(traceId, undefined);
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

  /**
   * A new root for a request that carries no trace: when its sampler says no, the traceparent
   * to send on (flag 00), and nothing else is made, no span object, no context. At a low ratio
   * nearly every request takes only this, and on a loaded proxy every object and call it
   * spares shows (measured side by side: tracing's cost at 1% is mostly this path). When the
   * sampler says yes: undefined, and the next start() without a parent makes that root's span.
   */
  unsampledRoot(): string | undefined {
    if (this.drawRoot()) {
      this.drawnSampled = true;
      return undefined;
    }
    return `00-${this.rootTraceId}-${this.ids.generateSpanId()}-00`;
  }

  /** A new root's trace id into rootTraceId; true when the sampler says yes to it. */
  private drawRoot(): boolean {
    this.rootTraceId = this.ids.generateTraceId();
    return this.ids.lastTraceHash < this.rootBound;
  }

  /** Not recorded: a context to pass on (flag 00, so the next hops do not sample either). */
  private unsampled(traceId: string, traceState: SpanContext['traceState']): Span {
    return traceApi.wrapSpanContext({ traceId, spanId: this.ids.generateSpanId(), traceFlags: NOT_SAMPLED, traceState });
  }
}
