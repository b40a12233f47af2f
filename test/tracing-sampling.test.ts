// New roots are sampled by Pillion's own check of the trace id's hash (span-start.ts), not by a
// call into the SDK's sampler on every request. The SDK is asked again when a sampled span is
// made, so the two must agree on every id: this holds them to it for each standard sampler.
import t from 'tap';
import { ROOT_CONTEXT, SpanKind, TraceFlags } from '@opentelemetry/api';
import {
  BasicTracerProvider, InMemorySpanExporter, SamplingDecision, SimpleSpanProcessor, TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { PooledIdGenerator, rootSamplingBound, SpanStarter } from '../proxy/tracing/span-start';
import type { SamplerName } from '../proxy/tracing/config';
import { createSampler } from '../proxy/tracing/exporting';

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

t.test('the starter: unsampled roots are not recorded, sampled ones are the SDK span on the same trace id', async (t) => {
  const ids = new PooledIdGenerator();
  const sampler = new TraceIdRatioBasedSampler(0.5);
  const exporter = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ sampler, idGenerator: ids, spanProcessors: [new SimpleSpanProcessor(exporter)] });
  const starter = new SpanStarter(provider.getTracer('test'), sampler, ids, rootSamplingBound('traceidratio', 0.5));
  let recorded = 0;
  let wrong = 0;
  for (let i = 0; i < 400; i++) {
    const span = starter.start('GET', SpanKind.SERVER, ROOT_CONTEXT);
    const sc = span.spanContext();
    // Whatever the decision, it must be the one the SDK makes for this trace id.
    const sdk = sampler.shouldSample(ROOT_CONTEXT, sc.traceId, 'GET', SpanKind.SERVER, {}, []).decision;
    if (span.isRecording() !== (sdk === SamplingDecision.RECORD_AND_SAMPLED)) wrong++;
    if (((sc.traceFlags & TraceFlags.SAMPLED) === TraceFlags.SAMPLED) !== span.isRecording()) wrong++;
    if (span.isRecording()) recorded++;
    span.end();
  }
  t.equal(wrong, 0, 'every decision and sampled flag as the SDK would have it');
  t.ok(recorded > 120 && recorded < 280, `about half recorded (${recorded} of 400)`);
  t.equal(exporter.getFinishedSpans().length, recorded, 'only recorded spans reach the exporter');
  await provider.shutdown();
});
