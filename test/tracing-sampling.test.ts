// Spans are sampled by Pillion's own rules (sampling.ts), not by the SDK's sampler objects,
// which the proxy's main thread does not load. A user who names a standard sampler expects the
// SDK's decisions: this holds the two to agreement on every id, for roots and for children.
import t from 'tap';
import { ROOT_CONTEXT, SpanKind, trace, TraceFlags } from '@opentelemetry/api';
import {
  AlwaysOffSampler, AlwaysOnSampler, ParentBasedSampler, Sampler, SamplingDecision, TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { PooledIdGenerator, SpanStarter } from '../proxy/tracing/span-start';
import type { SamplerName } from '../proxy/tracing/config';
import type { SpanRecord } from '../proxy/tracing/recorded-span';
import { rootSamplingBound, samplingPolicy, traceIdHash } from '../proxy/tracing/sampling';

/** The SDK sampler OTEL_TRACES_SAMPLER names, as the SDK's own environment setup makes it. */
function createSampler(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}

const cases: Array<[SamplerName, number]> = [
  ['traceidratio', 0.01], ['traceidratio', 0.5], ['traceidratio', 0], ['traceidratio', 1], ['traceidratio', 0.999999],
  ['parentbased_traceidratio', 0.25], ['always_on', 1], ['always_off', 1], ['parentbased_always_on', 1], ['parentbased_always_off', 1],
];

t.test('the hash of each generated trace id decides as the SDK sampler does', async (t) => {
  for (const [name, ratio] of cases) {
    const ids = new PooledIdGenerator();
    const sampler = createSampler(name, ratio);
    const bound = rootSamplingBound(name, ratio);
    let disagree = 0;
    let sampled = 0;
    for (let i = 0; i < 20_000; i++) {
      const id = ids.generateTraceId();
      const ours = ids.lastTraceHash < bound;
      const sdk = sampler.shouldSample(ROOT_CONTEXT, id, 'GET', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED;
      if (ours !== sdk) disagree++;
      if (ours) sampled++;
    }
    t.equal(disagree, 0, `${name} ${ratio}: no id decided differently`);
    if (name.endsWith('traceidratio') && ratio > 0 && ratio < 1) {
      t.ok(Math.abs(sampled / 20_000 - ratio) < 0.02, `${name} ${ratio}: sampled ${sampled} of 20000`);
    }
  }
});

t.test('ids are valid hex of the right length and never all zeros, across pool refills', async (t) => {
  const ids = new PooledIdGenerator();
  let bad = 0;
  for (let i = 0; i < 2_000; i++) {
    if (!/^[0-9a-f]{32}$/.test(ids.generateTraceId()) || /^0+$/.test(ids.generateTraceId())) bad++;
    if (!/^[0-9a-f]{16}$/.test(ids.generateSpanId())) bad++;
  }
  t.equal(bad, 0);
});

t.test('under a parent, each sampler decides as the SDK sampler does (flag and trace id)', async (t) => {
  for (const [name, ratio] of cases) {
    const ids = new PooledIdGenerator();
    const sdk = createSampler(name, ratio);
    const ours = samplingPolicy(name, ratio);
    let disagree = 0;
    for (let i = 0; i < 4_000; i++) {
      const traceId = ids.generateTraceId();
      const parentSampled = i % 2 === 0;
      const parent = trace.setSpanContext(ROOT_CONTEXT, {
        traceId, spanId: ids.generateSpanId(), traceFlags: parentSampled ? TraceFlags.SAMPLED : TraceFlags.NONE, isRemote: true,
      });
      const expected = sdk.shouldSample(parent, traceId, 'GET', SpanKind.SERVER, {}, []).decision === SamplingDecision.RECORD_AND_SAMPLED;
      if (ours.child(parentSampled, traceId) !== expected) disagree++;
      if (traceIdHash(traceId) !== ids.lastTraceHash) disagree++;
    }
    t.equal(disagree, 0, `${name} ${ratio}: no child decided differently`);
  }
});

t.test('the starter: unsampled roots are not recorded, sampled ones are recorded on the same trace id', async (t) => {
  const ids = new PooledIdGenerator();
  const sampler = new TraceIdRatioBasedSampler(0.5);
  const records: SpanRecord[] = [];
  const starter = new SpanStarter(samplingPolicy('traceidratio', 0.5), ids, (r) => records.push(r));
  let recorded = 0;
  let wrong = 0;
  for (let i = 0; i < 400; i++) {
    const span = starter.start('GET', SpanKind.SERVER, ROOT_CONTEXT);
    const sc = span.spanContext();
    // Whatever the decision, it must be the one the SDK makes for this trace id.
    const sdk = sampler.shouldSample(ROOT_CONTEXT, sc.traceId).decision;
    if (span.isRecording() !== (sdk === SamplingDecision.RECORD_AND_SAMPLED)) wrong++;
    if (((sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED) !== span.isRecording()) wrong++;
    if (span.isRecording()) recorded++;
    span.end();
  }
  t.equal(wrong, 0, 'every decision and sampled flag as the SDK would have it');
  t.ok(recorded > 120 && recorded < 280, `about half recorded (${recorded} of 400)`);
  t.equal(records.length, recorded, 'only recorded spans reach the queue');
  t.ok(records.every((r) => r.parent === undefined && r.kind === SpanKind.SERVER && r.name === 'GET'), 'roots, as started');
});
