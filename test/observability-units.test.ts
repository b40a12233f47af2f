// The access-log line and the per-request metric series, unit level: both are built by hand
// for speed, so they are checked against what JSON.stringify and prom-client would produce.
import t from 'tap';
import { Writable } from 'node:stream';
import { createAccessLog, formatLine, millis, traceIdForLog, AccessLogEntry } from '../proxy/observability/access-log';
import { createProxyMetrics } from '../proxy/observability/metrics';

const entry = (over: Partial<AccessLogEntry> = {}): AccessLogEntry => ({
  direction: 'outbound', service: 'ratings', method: 'GET', path: '/r/1', status: 200, reason: '',
  duration_ms: 1.25, bytes_sent: 12, upstream: '10.0.0.7:9080', attempt_count: 1, trace_id: '', request_id: 'abc', ...over,
});

t.test('the line parses to exactly the entry plus its time', async (t) => {
  const time = '2026-11-26T03:00:00.000Z';
  for (const e of [
    entry(),
    entry({ path: '/a"b\\c', request_id: 'id with "quotes"', trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' }),
    entry({ path: '/\ud800lone-surrogate/é/日本', status: 503, reason: 'upstream-unreachable', attempt_count: 3 }),
    entry({ duration_ms: 0.0004, bytes_sent: 0 }),
  ]) {
    const line = formatLine(time, e);
    t.ok(line.endsWith('}\n'), 'one line, newline-terminated');
    t.equal(line.indexOf('\n'), line.length - 1, 'no raw newline inside');
    const parsed = JSON.parse(line);
    t.same(parsed, { time, ...e, duration_ms: Number(millis(e.duration_ms)) });
    t.same(Object.keys(parsed), Object.keys({ time, ...e }), 'fields in the documented order');
  }
});

t.test('a raw traceparent gives the log its trace id only when that part is hex', async (t) => {
  t.equal(traceIdForLog('00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'), '4bf92f3577b34da6a3ce929d0e0e4736');
  t.equal(traceIdForLog('00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01'), '4BF92F3577B34DA6A3CE929D0E0E4736', 'any case, as the API accepts');
  for (const bad of ['00-4bf92f3577b34da6a3ce929d0e0e47"\n-00f067aa0ba902b7-01', '00-\u0001bf92f3577b34da6a3ce929d0e0e4736-x', 'short', '', undefined, ['a', 'b']]) {
    t.equal(traceIdForLog(bad as string), '', `nothing from ${JSON.stringify(bad)}`);
  }
});

t.test('durations print as milliseconds with microsecond precision', async (t) => {
  t.equal(millis(0), '0.000');
  t.equal(millis(0.05), '0.050');
  t.equal(millis(1.2345), '1.235');
  t.equal(millis(12.0004), '12.000');
  t.equal(millis(1500), '1500.000');
  t.equal(millis(Number.NaN), '0');
  t.equal(millis(-1), '0');
});

t.test('lines are batched into one write per event-loop turn', async (t) => {
  const writes: string[] = [];
  const out = new Writable({ write(chunk, _enc, cb) { writes.push(String(chunk)); cb(); } });
  const log = createAccessLog(out, () => Date.UTC(2026, 10, 26));
  log.write(entry({ path: '/1' }));
  log.write(entry({ path: '/2' }));
  t.equal(writes.length, 0, 'nothing written synchronously');
  await new Promise((r) => setImmediate(r));
  t.equal(writes.length, 1, 'one write for both lines');
  const lines = writes[0]!.trim().split('\n').map((l) => JSON.parse(l));
  t.same(lines.map((l) => l.path), ['/1', '/2']);
  t.equal(lines[0].time, '2026-11-26T00:00:00.000Z');
});

t.test('request metrics come out as a Prometheus counter and histogram', async (t) => {
  const m = createProxyMetrics();
  m.recordRequest('outbound', 'ratings', 200, '', 0.003);
  m.recordRequest('outbound', 'ratings', 200, '', 0.02);
  m.recordRequest('outbound', 'ratings', 503, 'circuit-open', 0.0001);
  m.recordRequest('inbound', 'web', 200, '', 0.5);
  const text = await m.registry.metrics();
  t.match(text, /# TYPE pillion_requests_total counter/);
  t.match(text, /pillion_requests_total\{direction="outbound",service="ratings",code="200",reason=""\} 2\n/);
  t.match(text, /pillion_requests_total\{direction="outbound",service="ratings",code="503",reason="circuit-open"\} 1\n/);
  t.match(text, /pillion_requests_total\{direction="inbound",service="web",code="200",reason=""\} 1\n/);
  t.match(text, /# TYPE pillion_request_duration_seconds histogram/);
  t.match(text, /pillion_request_duration_seconds_bucket\{direction="outbound",service="ratings",le="0.001"\} 1\n/);
  t.match(text, /pillion_request_duration_seconds_bucket\{direction="outbound",service="ratings",le="0.005"\} 2\n/);
  t.match(text, /pillion_request_duration_seconds_bucket\{direction="outbound",service="ratings",le="\+Inf"\} 3\n/);
  t.match(text, /pillion_request_duration_seconds_count\{direction="outbound",service="ratings"\} 3\n/);
  t.match(text, /pillion_request_duration_seconds_sum\{direction="outbound",service="ratings"\} 0.0231\n/);
  t.match(text, /pillion_request_duration_seconds_bucket\{direction="inbound",service="web",le="0.25"\} 0\n/);
  t.match(text, /pillion_request_duration_seconds_bucket\{direction="inbound",service="web",le="0.5"\} 1\n/);
  const json = await m.registry.getMetricsAsJSON();
  t.ok(json.some((x) => x.name === 'pillion_requests_total'), 'JSON export works too');
});
