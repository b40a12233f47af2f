// Trace headers in and out: W3C and B3 (single and multi) accepted; W3C emitted, and B3 in the
// encoding the caller used (or what OTEL_PROPAGATORS says); the caller's sampling decision
// respected; without a collector, headers are carried over (and translated) without new spans.
import t from 'tap';
import { IncomingHttpHeaders } from 'node:http';
import { Writable } from 'node:stream';
import { startProxy } from '../proxy';
import { silentLogger } from '../proxy/runtime/logger';
import { request, sleep, startUpstream, Upstream } from './helpers/proxy';
import { startOtlpReceiver, OtlpReceiver } from './helpers/otlp-receiver';

const TRACE = '463ac35c9f6413ad48485a3953bb6124';
const PARENT = 'a2fb4a1d1a96d312';

interface Harness { app: Upstream; seen: IncomingHttpHeaders[]; inbound: number; }

/** One sidecar's inbound listener in front of an app that records the headers it gets. */
async function harness(t: Tap.Test, env: NodeJS.ProcessEnv, accessLog: Writable | null = null): Promise<Harness> {
  const seen: IncomingHttpHeaders[] = [];
  const app = await startUpstream((req, res) => { seen.push(req.headers); res.end('ok'); });
  const p = await startProxy({
    service: 'ratings', app: { host: '127.0.0.1', port: app.port },
    inboundPort: 0, outboundPort: 0, adminPort: 0, inboundHost: '127.0.0.1', accessLog, logger: silentLogger,
    initialSnapshot: { version: 1, source: 'file', policies: [] }, tracingEnv: env,
  });
  t.teardown(async () => { await p.close(); await app.close(); });
  return { app, seen, inbound: p.ports.inbound };
}

async function exporting(t: Tap.Test, extra: NodeJS.ProcessEnv = {}): Promise<Harness & { receiver: OtlpReceiver }> {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const h = await harness(t, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_SCHEDULE_DELAY: '50', ...extra });
  return { ...h, receiver };
}

function send(port: number, headers: Record<string, string>, id: string) {
  return request({ port, path: '/p', headers: { 'x-request-id': id, ...headers } });
}

t.test('B3 multi-header in: the SERVER span continues it; W3C and B3 multi go out', async (t) => {
  const h = await exporting(t);
  const r = await send(h.inbound, { 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-parentspanid': '0000000000000001', 'x-b3-sampled': '1' }, 'b3m');
  t.equal(r.status, 200);
  const [span] = (await h.receiver.waitFor((s) => s.length >= 1)).filter((s) => s.traceId === TRACE);
  t.ok(span, 'exported in the caller\'s trace');
  t.equal(span!.parentSpanId, PARENT);
  const got = h.seen[0]!;
  t.equal(got.traceparent, `00-${TRACE}-${span!.spanId}-01`);
  t.equal(got.b3, undefined, 'the single-header form only to callers that used it');
  t.equal(got['x-b3-traceid'], TRACE);
  t.equal(got['x-b3-spanid'], span!.spanId);
  t.equal(got['x-b3-sampled'], '1');
  t.equal(got['x-b3-parentspanid'], undefined, 'the caller\'s stale parent id is not passed on');
});

t.test('B3 single header in, including a 64-bit trace id', async (t) => {
  const h = await exporting(t);
  await send(h.inbound, { b3: `${TRACE}-${PARENT}-1` }, 'b3s');
  await send(h.inbound, { b3: `48485a3953bb6124-${PARENT}-1` }, 'b3s64');
  const spans = await h.receiver.waitFor((s) => s.length >= 2);
  const full = spans.find((s) => s.attributes['pillion.request_id'] === 'b3s')!;
  const short = spans.find((s) => s.attributes['pillion.request_id'] === 'b3s64')!;
  t.equal(full.traceId, TRACE);
  t.equal(full.parentSpanId, PARENT);
  t.equal(short.traceId, '000000000000000048485a3953bb6124', '64-bit ids are left-padded');
  t.equal(h.seen[0]!.traceparent, `00-${TRACE}-${full.spanId}-01`);
  t.equal(h.seen[0]!.b3, `${TRACE}-${full.spanId}-1`, 'B3 single out');
  t.equal(h.seen[0]!['x-b3-traceid'], undefined);
});

t.test('B3 debug is passed on as debug', async (t) => {
  const h = await exporting(t);
  await send(h.inbound, { b3: `${TRACE}-${PARENT}-d` }, 'dbg-single');
  await send(h.inbound, { 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-flags': '1' }, 'dbg-multi');
  await h.receiver.waitFor((s) => s.length >= 2);
  t.match(h.seen[0]!.b3, new RegExp(`^${TRACE}-[0-9a-f]{16}-d$`));
  t.equal(h.seen[1]!['x-b3-flags'], '1');
  t.equal(h.seen[1]!['x-b3-sampled'], undefined, 'debug implies sampled; B3 sends one or the other');
});

t.test('W3C wins over B3 when both are present', async (t) => {
  const h = await exporting(t);
  await send(h.inbound, { traceparent: `00-${TRACE}-${PARENT}-01`, b3: `0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-1` }, 'both');
  const [span] = await h.receiver.waitFor((s) => s.length >= 1);
  t.equal(span!.traceId, TRACE);
  t.equal(h.seen[0]!.b3, `${TRACE}-${span!.spanId}-1`, 'the B3 header going out is rewritten to match');
});

t.test('sampled=0 from the caller: no span exported, the decision is passed on', async (t) => {
  const h = await exporting(t);
  await send(h.inbound, { traceparent: `00-${TRACE}-${PARENT}-00` }, 'unsampled-w3c');
  await send(h.inbound, { 'x-b3-traceid': '0af7651916cd43dd8448eb211c80319c', 'x-b3-spanid': PARENT, 'x-b3-sampled': '0' }, 'unsampled-b3');
  // A sampled request after them: once its span is in, theirs would have been too.
  await send(h.inbound, { traceparent: `00-11111111111111111111111111111111-${PARENT}-01` }, 'sampled');
  await h.receiver.waitFor((s) => s.some((x) => x.attributes['pillion.request_id'] === 'sampled'));
  await sleep(150);
  t.same(h.receiver.spans.map((s) => s.attributes['pillion.request_id']), ['sampled'], 'only the sampled request was exported');
  t.match(h.seen[0]!.traceparent, new RegExp(`^00-${TRACE}-[0-9a-f]{16}-00$`), 'not-sampled flag passed on in W3C');
  t.match(h.seen[1]!.traceparent, /^00-0af7651916cd43dd8448eb211c80319c-[0-9a-f]{16}-00$/);
  t.equal(h.seen[1]!['x-b3-sampled'], '0', 'and in B3');
});

t.test('no caller context: a new root trace, sampled by OTEL_TRACES_SAMPLER', async (t) => {
  const on = await exporting(t);
  await send(on.inbound, {}, 'root');
  const [span] = await on.receiver.waitFor((s) => s.length >= 1);
  t.equal(span!.parentSpanId, '', 'root span');
  t.equal(on.seen[0]!.traceparent, `00-${span!.traceId}-${span!.spanId}-01`);

  const off = await exporting(t, { OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' });
  await send(off.inbound, {}, 'root-unsampled');
  await send(off.inbound, { traceparent: `00-${TRACE}-${PARENT}-01` }, 'child-of-sampled');
  await off.receiver.waitFor((s) => s.length >= 1);
  await sleep(150);
  t.same(off.receiver.spans.map((s) => s.attributes['pillion.request_id']), ['child-of-sampled'], 'ratio 0 drops new roots, parent-based keeps sampled children');
  t.match(off.seen[0]!.traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/, 'the not-sampled decision still goes to the app');
});

t.test('an unsampled new root: its traceparent alone goes out, and the access log has its trace id', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  const lines: Record<string, unknown>[] = [];
  const log = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n')) if (l) lines.push(JSON.parse(l));
      done();
    },
  });
  const env = { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '0' };
  const h = await harness(t, env, log);
  // Parts of a trace without its traceparent are not a trace: they do not go on beside ours.
  await send(h.inbound, { tracestate: 'stray=1', 'x-b3-spanid': PARENT, 'x-b3-sampled': '1' }, 'fresh');
  const m = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(String(h.seen[0]!.traceparent));
  t.ok(m, `a new, not-sampled traceparent (${h.seen[0]!.traceparent})`);
  t.equal(h.seen[0]!.tracestate, undefined);
  t.equal(h.seen[0]!['x-b3-spanid'], undefined);
  t.equal(h.seen[0]!['x-b3-sampled'], undefined);
  await sleep(50);
  t.equal(lines.find((l) => l.request_id === 'fresh')?.trace_id, m?.[1], 'the log line names that trace');

  // With B3 asked for always, the root goes out in both formats, same ids.
  const both = await harness(t, { ...env, OTEL_PROPAGATORS: 'tracecontext,b3' });
  await send(both.inbound, {}, 'fresh-b3');
  const w = /^00-([0-9a-f]{32})-([0-9a-f]{16})-00$/.exec(String(both.seen[0]!.traceparent));
  t.ok(w);
  t.equal(both.seen[0]!.b3, `${w?.[1]}-${w?.[2]}-0`);
  await sleep(100);
  t.equal(receiver.spans.length, 0, 'and no span is made');
});

t.test('no endpoint: headers carried over and translated, same ids, no spans', async (t) => {
  const h = await harness(t, {});
  await send(h.inbound, { 'x-b3-traceid': TRACE, 'x-b3-spanid': PARENT, 'x-b3-sampled': '1' }, 'p1');
  await send(h.inbound, { traceparent: `00-${TRACE}-${PARENT}-01`, tracestate: 'a=1' }, 'p2');
  await send(h.inbound, {}, 'p3');
  t.equal(h.seen[0]!.traceparent, `00-${TRACE}-${PARENT}-01`, 'B3 translated to W3C with the caller\'s own span id');
  t.equal(h.seen[1]!.traceparent, `00-${TRACE}-${PARENT}-01`);
  t.equal(h.seen[1]!.tracestate, 'a=1');
  t.equal(h.seen[0]!['x-b3-spanid'], PARENT, 'B3 passed on as it came');
  t.equal(h.seen[2]!.traceparent, undefined, 'no trace is started without a collector');
});

t.test('OTEL_PROPAGATORS sets what is emitted; OTEL_SDK_DISABLED leaves headers alone', async (t) => {
  const all = await exporting(t, { OTEL_PROPAGATORS: 'tracecontext,b3,b3multi' });
  await send(all.inbound, {}, 'all');
  const [span] = await all.receiver.waitFor((s) => s.length >= 1);
  t.equal(all.seen[0]!.traceparent, `00-${span!.traceId}-${span!.spanId}-01`);
  t.equal(all.seen[0]!.b3, `${span!.traceId}-${span!.spanId}-1`, 'every format, even to a caller that sent none');
  t.equal(all.seen[0]!['x-b3-spanid'], span!.spanId);

  const w3cOnly = await exporting(t, { OTEL_PROPAGATORS: 'tracecontext' });
  await send(w3cOnly.inbound, { b3: `${TRACE}-${PARENT}-1` }, 'narrow');
  t.match(w3cOnly.seen[0]!.traceparent, new RegExp(`^00-${TRACE}-`));
  t.equal(w3cOnly.seen[0]!.b3, undefined, 'the B3 header is replaced, not left stale');

  const disabled = await harness(t, { OTEL_SDK_DISABLED: 'true', OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' });
  await send(disabled.inbound, { b3: `${TRACE}-${PARENT}-1` }, 'off');
  t.equal(disabled.seen[0]!.b3, `${TRACE}-${PARENT}-1`);
  t.equal(disabled.seen[0]!.traceparent, undefined);
});
