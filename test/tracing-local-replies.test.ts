// Spans for what the policies do: every retry its own CLIENT span with its attempt number,
// and local replies (rate-limited, circuit-open, unreachable, timeout) as error spans with the reason.
import t from 'tap';
import { startProxy, RunningProxy } from '../proxy';
import { decodePolicyText } from '../proxy/config';
import { silentLogger } from '../proxy/runtime/logger';
import { policy, refusedPort, request, startUpstream, sleep } from './helpers/proxy';
import { startOtlpReceiver, OtlpReceiver, ReceivedSpan } from './helpers/otlp-receiver';

const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 };
const ERROR = 2;

async function sidecar(t: Tap.Test, receiver: OtlpReceiver, service: string, yaml: string, app?: number): Promise<RunningProxy> {
  const p = await startProxy({
    service, app: app ? { host: '127.0.0.1', port: app } : undefined,
    inboundPort: 0, outboundPort: 0, adminPort: 0, inboundHost: '127.0.0.1', accessLog: null, logger: silentLogger,
    initialSnapshot: { version: 1, source: 'file', policies: yaml ? decodePolicyText(yaml) : [] },
    tracingEnv: { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50' },
  });
  t.teardown(() => p.close());
  return p;
}

/** The spans of the trace a request started (found by its request id on the top span). */
async function traceOf(receiver: OtlpReceiver, requestId: string, count: number): Promise<ReceivedSpan[]> {
  let traceId = '';
  await receiver.waitFor((spans) => {
    traceId ||= spans.find((s) => s.attributes['pillion.request_id'] === requestId)?.traceId ?? '';
    return traceId !== '' && spans.filter((s) => s.traceId === traceId).length >= count;
  });
  await sleep(100); // nothing more should arrive for it
  return receiver.spans.filter((s) => s.traceId === traceId);
}

t.test('retries: one CLIENT span per attempt under the call span', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  let n = 0;
  const parents: string[] = [];
  const up = await startUpstream((req, res) => {
    parents.push(String(req.headers.traceparent));
    res.statusCode = ++n === 1 ? 503 : 200;
    res.end('x');
  });
  t.teardown(() => up.close());
  const p = await sidecar(t, receiver, 'web', policy('ratings', `service: ratings\nendpoints: [127.0.0.1:${up.port}]\nretries: { attempts: 2, on: ["503"] }`));

  const r = await request({ port: p.ports.outbound, path: '/r', headers: { host: 'ratings', 'x-request-id': 'retry-1' } });
  t.equal(r.status, 200);
  const spans = await traceOf(receiver, 'retry-1', 3);
  t.equal(spans.length, 3);
  const call = spans.find((s) => s.kind === KIND.INTERNAL)!;
  const attempts = spans.filter((s) => s.kind === KIND.CLIENT).sort((a, b) => Number(a.attributes['pillion.attempt']) - Number(b.attributes['pillion.attempt']));
  t.equal(call.parentSpanId, '', 'no caller context: the call span is the root');
  t.equal(attempts.length, 2);
  for (const a of attempts) t.equal(a.parentSpanId, call.spanId, 'both attempts in one trace, under the call');
  t.match(attempts[0]!.attributes, { 'pillion.attempt': 1, 'http.response.status_code': 503, 'error.type': '503' });
  t.equal(attempts[0]!.status.code, ERROR, 'a 503 attempt is an error');
  t.notOk('http.request.resend_count' in attempts[0]!.attributes);
  t.match(attempts[1]!.attributes, { 'pillion.attempt': 2, 'http.request.resend_count': 1, 'http.response.status_code': 200 });
  t.equal(attempts[1]!.status.code, 0);
  t.match(call.attributes, { 'pillion.attempt_count': 2, 'http.response.status_code': 200 });
  t.ok(attempts[0]!.endNs <= attempts[1]!.startNs, 'the first attempt ended before the retry started');
  t.same(parents, attempts.map((a) => `00-${call.traceId}-${a.spanId}-01`), 'each attempt went out with its own span as parent');
});

t.test('upstream unreachable, retries exhausted: error attempts and an error call span with the reason', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const port = await refusedPort();
  const p = await sidecar(t, receiver, 'web', policy('gone', `service: gone\nendpoints: [127.0.0.1:${port}]\nretries: { attempts: 1, on: [connect-failure] }`));
  const r = await request({ port: p.ports.outbound, path: '/', headers: { host: 'gone', 'x-request-id': 'gone-1' } });
  t.equal(r.status, 503);
  t.equal(r.headers['x-pillion-reason'], 'upstream-unreachable');
  const spans = await traceOf(receiver, 'gone-1', 3);
  const call = spans.find((s) => s.kind === KIND.INTERNAL)!;
  t.match(call.attributes, { 'pillion.reason': 'upstream-unreachable', 'error.type': 'upstream-unreachable', 'http.response.status_code': 503 });
  t.equal(call.status.code, ERROR);
  t.match(call.status.message, /unreachable/);
  const attempts = spans.filter((s) => s.kind === KIND.CLIENT);
  t.equal(attempts.length, 2, 'the try and the retry');
  for (const a of attempts) {
    t.equal(a.status.code, ERROR);
    t.equal(a.attributes['error.type'], 'upstream-unreachable');
  }
});

t.test('overall timeout: the aborted attempt and the call end as upstream-timeout', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const timers: NodeJS.Timeout[] = [];
  const up = await startUpstream((_req, res) => { timers.push(setTimeout(() => res.end('late'), 3000)); });
  t.teardown(() => { timers.forEach(clearTimeout); return up.close(); });
  const p = await sidecar(t, receiver, 'web', policy('slow', `service: slow\nendpoints: [127.0.0.1:${up.port}]\ntimeout: 200ms`));
  const r = await request({ port: p.ports.outbound, path: '/', headers: { host: 'slow', 'x-request-id': 'slow-1' } });
  t.equal(r.status, 504);
  const spans = await traceOf(receiver, 'slow-1', 2);
  const attempt = spans.find((s) => s.kind === KIND.CLIENT)!;
  const call = spans.find((s) => s.kind === KIND.INTERNAL)!;
  for (const s of [attempt, call]) {
    t.equal(s.status.code, ERROR);
    t.match(s.attributes, { 'pillion.reason': 'upstream-timeout', 'http.response.status_code': 504 });
  }
  t.ok(attempt.endNs - attempt.startNs < 2_000_000_000n, 'the attempt span ends at the deadline, not when the upstream answers');
});

t.test('circuit open: no attempt, and the call span carries circuit-open', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const up = await startUpstream((_req, res) => { res.statusCode = 500; res.end(); });
  t.teardown(() => up.close());
  const p = await sidecar(t, receiver, 'web', policy('flaky', `service: flaky\nendpoints: [127.0.0.1:${up.port}]\ncircuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 2, resetTimeout: 60s }`));
  let last = 0;
  for (let i = 0; i < 10 && last !== 503; i++) {
    const r = await request({ port: p.ports.outbound, path: '/', headers: { host: 'flaky', 'x-request-id': `flaky-${i}` } });
    last = r.status;
    if (r.headers['x-pillion-reason'] === 'circuit-open') {
      const spans = await traceOf(receiver, `flaky-${i}`, 1);
      t.equal(spans.length, 1, 'only the call span: the upstream was not contacted');
      t.equal(spans[0]!.kind, KIND.INTERNAL);
      t.equal(spans[0]!.status.code, ERROR);
      t.match(spans[0]!.attributes, { 'pillion.reason': 'circuit-open', 'http.response.status_code': 503, 'pillion.attempt_count': 0 });
      return;
    }
  }
  t.fail('the breaker never opened');
});

t.test('inbound rate limit: the 429 is a SERVER span with error status and the reason', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const app = await startUpstream((_req, res) => res.end('ok'));
  t.teardown(() => app.close());
  const p = await sidecar(t, receiver, 'ratings', policy('ratings', 'service: ratings\nrateLimit: { requestsPerSecond: 1, burst: 1 }'), app.port);
  const ok = await request({ port: p.ports.inbound, path: '/a', headers: { 'x-request-id': 'rl-1' } });
  const limited = await request({ port: p.ports.inbound, path: '/b', headers: { 'x-request-id': 'rl-2' } });
  t.equal(ok.status, 200);
  t.equal(limited.status, 429);
  const [okSpan] = await traceOf(receiver, 'rl-1', 1);
  const [limitedSpan] = await traceOf(receiver, 'rl-2', 1);
  t.equal(okSpan!.kind, KIND.SERVER);
  t.equal(okSpan!.status.code, 0);
  t.equal(limitedSpan!.kind, KIND.SERVER);
  t.equal(limitedSpan!.status.code, ERROR);
  t.match(limitedSpan!.attributes, { 'pillion.reason': 'rate-limited', 'error.type': 'rate-limited', 'http.response.status_code': 429, 'url.path': '/b' });
  t.equal(app.hits, 1, 'the limited request never reached the app');
});
