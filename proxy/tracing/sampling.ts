// Which spans are recorded: the samplers OTEL_TRACES_SAMPLER names, decided here from the trace
// id's hash and the parent's sampled flag. These are the rules of the SDK's samplers
// (TraceIdRatioBased hashes the id's four 32-bit words XORed and compares with
// floor(ratio * 0xffffffff); ParentBased follows a parent's flag and asks its root sampler
// only for new roots); test/tracing-sampling.test.ts holds the two to agreement on every id.
// Decided here so that the proxy's main thread needs none of the SDK's objects (exporting.ts).
import type { SamplerName } from './config';

export interface SamplingPolicy {
  /** New roots are recorded when their trace id's hash is below this (see traceIdHash). */
  readonly rootBound: number;
  /** A span under a valid parent: recorded? */
  child(parentSampled: boolean, traceId: string): boolean;
}

export function samplingPolicy(name: SamplerName, ratio: number): SamplingPolicy {
  const rootBound = rootSamplingBound(name, ratio);
  switch (name) {
    case 'always_on':
    case 'always_off':
    case 'traceidratio':
      // Not parent-based: the parent's flag does not count, the id decides as for a root.
      return { rootBound, child: (_sampled, traceId) => traceIdHash(traceId) < rootBound };
    case 'parentbased_always_on':
    case 'parentbased_always_off':
    case 'parentbased_traceidratio':
      return { rootBound, child: (sampled) => sampled };
  }
}

/** The bound for a new root: 2^32 records every id, 0 none. */
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

/** A 32-hex-digit trace id's four 32-bit words, XORed (what PooledIdGenerator computes from the bytes). */
export function traceIdHash(traceId: string): number {
  let h = 0;
  for (let i = 0; i < 32; i += 8) h = (h ^ parseInt(traceId.slice(i, i + 8), 16)) >>> 0;
  return h;
}
