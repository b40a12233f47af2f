// Starting spans: the sampling decision is made first, so that the requests that are not
// sampled (99% of them at a 1% ratio) cost an id and a header, nothing more. Sampled requests
// get a RecordedSpan.
import { randomFillSync } from 'node:crypto';
import { Context, ROOT_CONTEXT, Span, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import { RecordedSpan, SpanRecord } from './recorded-span';
import type { SamplingPolicy } from './sampling';

const POOL_BYTES = 4096;

/**
 * Random ids cut from a pool refilled by the CSPRNG a few KiB at a time (one syscall per ~170
 * requests) and hex-encoded once per refill: an id is then a slice of that string, where a
 * Buffer.toString('hex') per id was a call into C++ each time.
 *
 * Validity (not all zeros) and the ratio samplers' hash are read from the bytes, not the hex:
 * character by character, a sliced string costs V8 about 10 ns a character (measured: the
 * SDK's hash of a trace id, 0.33 us, was most of what an unsampled request cost tracing).
 */
export class PooledIdGenerator {
  /** Of the last id generateTraceId made: its four 32-bit words XORed (sampling.ts, traceIdHash). */
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

// The API package exports these through getters: read once here, not on every request.
const traceApi = trace;
const ROOT = ROOT_CONTEXT;
const NOT_SAMPLED = TraceFlags.NONE;
const SAMPLED = TraceFlags.SAMPLED;

export class SpanStarter {
  /** The last new root's trace id (drawRoot): what unsampledRoot answered for, or the sampled one start() is to make. */
  rootTraceId = '';
  private drawnSampled = false;

  constructor(
    private readonly policy: SamplingPolicy, private readonly ids: PooledIdGenerator,
    /** Where recorded spans go when they end (the batch queue). */
    private readonly sink: (record: SpanRecord) => void,
  ) {}

  start(name: string, kind: SpanKind, parent: Context): Span {
    // Most requests arrive without a trace (ROOT_CONTEXT is what extraction returns then).
    const parentSc = parent === ROOT ? undefined : traceApi.getSpanContext(parent);
    if (parentSc && traceApi.isSpanContextValid(parentSc)) {
      const traceId = parentSc.traceId;
      const sampled = this.policy.child((parentSc.traceFlags & SAMPLED) === SAMPLED, traceId);
      const sc = { traceId, spanId: this.ids.generateSpanId(), traceFlags: sampled ? SAMPLED : NOT_SAMPLED, traceState: parentSc.traceState };
      return sampled ? new RecordedSpan(sc, parentSc, name, kind, this.sink) : traceApi.wrapSpanContext(sc);
    }
    // A root unsampledRoot already drew (and said yes to), else a new one.
    const sampled = this.drawnSampled || this.drawRoot();
    this.drawnSampled = false;
    // A new root carries no trace state.
    const sc = { traceId: this.rootTraceId, spanId: this.ids.generateSpanId(), traceFlags: sampled ? SAMPLED : NOT_SAMPLED, traceState: undefined };
    return sampled ? new RecordedSpan(sc, undefined, name, kind, this.sink) : traceApi.wrapSpanContext(sc);
  }

  /**
   * A new root for a request that carries no trace: when it is not sampled, the traceparent
   * to send on (flag 00), and nothing else is made, no span object, no context. At a low ratio
   * nearly every request takes only this, and on a loaded proxy every object and call it
   * spares shows (measured side by side: tracing's cost at 1% is mostly this path). When it is
   * sampled: undefined, and the next start() without a parent makes that root's span.
   */
  unsampledRoot(): string | undefined {
    if (this.drawRoot()) {
      this.drawnSampled = true;
      return undefined;
    }
    return `00-${this.rootTraceId}-${this.ids.generateSpanId()}-00`;
  }

  /** A new root's trace id into rootTraceId; true when the sampling policy records it. */
  private drawRoot(): boolean {
    this.rootTraceId = this.ids.generateTraceId();
    return this.ids.lastTraceHash < this.policy.rootBound;
  }
}
