// The proxy's own span record and batch queue, which stand in for the SDK's span and
// BatchSpanProcessor on the main thread: the SDK's rules for status, attributes and ending,
// and the OTEL_BSP_* rules for batching, bounding and draining.
import t from 'tap';
import { SpanKind, SpanStatusCode, TraceFlags } from '@opentelemetry/api';
import { BatchQueue, ExportOutcome } from '../proxy/tracing/batch-queue';
import { RecordedSpan, SpanRecord } from '../proxy/tracing/recorded-span';

const SC = { traceId: '0af7651916cd43dd8448eb211c80319c', spanId: 'b7ad6b7169203331', traceFlags: TraceFlags.SAMPLED };

function span(sink: (r: SpanRecord) => void = () => {}): RecordedSpan {
  return new RecordedSpan(SC, { ...SC, spanId: '00f067aa0ba902b7', isRemote: true }, 'GET', SpanKind.CLIENT, sink);
}

t.test('a recorded span: attributes, status and end as the SDK has them', async (t) => {
  const records: SpanRecord[] = [];
  const s = span((r) => records.push(r));
  t.ok(s.isRecording());
  s.setAttributes({ 'http.request.method': 'GET', 'server.port': 80, skipped: undefined });
  s.setStatus({ code: SpanStatusCode.UNSET });
  s.setStatus({ code: SpanStatusCode.ERROR, message: 'upstream-timeout' });
  s.end();
  s.end();
  s.setAttribute('late', 1);
  s.setStatus({ code: SpanStatusCode.OK });
  t.notOk(s.isRecording(), 'not recording once ended');
  t.equal(records.length, 1, 'handed over once');
  const r = records[0]!;
  t.same(r.attributes, { 'http.request.method': 'GET', 'server.port': 80 }, 'no empty value, nothing after the end');
  t.same(r.status, { code: SpanStatusCode.ERROR, message: 'upstream-timeout' });
  t.same(r.parent, { traceId: SC.traceId, spanId: '00f067aa0ba902b7', traceFlags: TraceFlags.SAMPLED, isRemote: true });
  t.equal(r.traceState, undefined);
  const elapsed = (r.endTime[0] - r.startTime[0]) * 1e9 + (r.endTime[1] - r.startTime[1]);
  t.ok(elapsed >= 0 && r.duration[0] * 1e9 + r.duration[1] === elapsed, 'duration is end minus start');
});

t.test('OK is final, and an error message is kept only for ERROR', async (t) => {
  const records: SpanRecord[] = [];
  const a = span((r) => records.push(r));
  a.setStatus({ code: SpanStatusCode.OK, message: 'ignored' });
  a.setStatus({ code: SpanStatusCode.ERROR, message: 'too late' });
  a.end();
  t.same(records[0]!.status, { code: SpanStatusCode.OK });
});

t.test('beyond 128 attributes, new keys are dropped and counted; existing ones still update', async (t) => {
  const records: SpanRecord[] = [];
  const s = span((r) => records.push(r));
  for (let i = 0; i < 130; i++) s.setAttribute(`k${i}`, i);
  s.setAttribute('k0', 'updated');
  s.end();
  const r = records[0]!;
  t.equal(Object.keys(r.attributes).length, 128);
  t.equal(r.droppedAttributesCount, 2);
  t.equal(r.attributes.k0, 'updated');
});

function recorder(): ExportOutcome & { exported_: number; full: number; failures: string[] } {
  return {
    exported_: 0, full: 0, failures: [],
    exported(n) { this.exported_ += n; },
    queueFull(n) { this.full += n; },
    failed(n, why) { for (let i = 0; i < n; i++) this.failures.push(why); },
  };
}

function records(n: number): SpanRecord[] {
  const out: SpanRecord[] = [];
  for (let i = 0; i < n; i++) span((r) => out.push(r)).end();
  return out;
}

t.test('the batch queue: full batches go at once, the rest after the delay, one export at a time', async (t) => {
  const sent: number[] = [];
  let inFlight = 0;
  let maxInFlight = 0;
  const outcome = recorder();
  const q = new BatchQueue({ maxQueueSize: 100, maxExportBatchSize: 4, scheduledDelayMs: 50 }, async (batch) => {
    inFlight++;
    maxInFlight = Math.max(maxInFlight, inFlight);
    sent.push(batch.length);
    await new Promise((r) => setTimeout(r, 10));
    inFlight--;
    return undefined;
  }, outcome);
  for (const r of records(10)) q.add(r);
  await new Promise((r) => setTimeout(r, 5));
  t.same(sent, [4], 'the first full batch went at once');
  await new Promise((r) => setTimeout(r, 150));
  t.same(sent, [4, 4, 2], 'the next full batch after it, the remainder after the delay');
  t.equal(maxInFlight, 1, 'never two exports at once');
  t.equal(outcome.exported_, 10);
});

t.test('the batch queue is bounded: overflow counted; failures counted with the reason; close drains', async (t) => {
  const outcome = recorder();
  let release: (() => void) | undefined;
  const sent: number[] = [];
  const q = new BatchQueue({ maxQueueSize: 5, maxExportBatchSize: 2, scheduledDelayMs: 1000 }, (batch) => {
    sent.push(batch.length);
    // The first export hangs until released; the rest fail.
    if (sent.length === 1) return new Promise((r) => { release = () => r(undefined); });
    return Promise.resolve('HTTP 503');
  }, outcome);
  for (const r of records(9)) q.add(r);
  t.same(sent, [2], 'one batch in flight');
  t.equal(outcome.full, 2, '2 in flight and 5 queued: the last 2 were dropped');
  const closing = q.close();
  release!();
  await closing;
  t.same(sent, [2, 2, 2, 1], 'close sends everything still queued');
  t.equal(outcome.exported_, 2);
  t.same(outcome.failures, ['HTTP 503', 'HTTP 503', 'HTTP 503', 'HTTP 503', 'HTTP 503']);
  q.add(records(1)[0]!);
  t.same(sent, [2, 2, 2, 1], 'nothing is taken after close');
});
