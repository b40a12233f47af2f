// A request through two sidecars (the caller's outbound, the callee's inbound) into an app that
// forwards the trace headers on its own next call: the exported spans form one trace with the
// right parent-child chain, checked at an OTLP/HTTP receiver in both protobuf and JSON.
import t from 'tap';
import { IncomingHttpHeaders } from 'node:http';
import { policy, policyFile, request, spawnProxy, startUpstream, ProxyProcess } from './helpers/proxy';
import { startOtlpReceiver, ReceivedSpan } from './helpers/otlp-receiver';

const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-sampled', 'x-b3-flags'];
const KIND = { INTERNAL: 1, SERVER: 2, CLIENT: 3 };

for (const protocol of ['http/protobuf', 'http/json'] as const) {
  t.test(`two sidecars, one trace (${protocol})`, async (t) => {
    const receiver = await startOtlpReceiver();
    // ratings: the last hop, a plain server that records what it was sent.
    let ratingsHeaders: IncomingHttpHeaders = {};
    const ratings = await startUpstream((req, res) => { ratingsHeaders = req.headers; res.end('5 stars'); });
    const procs: ProxyProcess[] = [];
    t.teardown(async () => {
      for (const p of procs) await p.stop();
      await ratings.close();
      await receiver.close();
    });
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url,
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: protocol,
      OTEL_BSP_SCHEDULE_DELAY: '50',
    };

    // reviews: the callee app. It forwards the trace headers it received on its call to ratings,
    // through its own sidecar's outbound listener, as an instrumented-but-spanless app would.
    let reviewsOutbound = 0;
    let reviewsHeaders: IncomingHttpHeaders = {};
    const reviewsApp = await startUpstream((req, res) => {
      reviewsHeaders = { ...req.headers };
      const fwd: Record<string, string> = { host: 'ratings' };
      for (const h of TRACE_HEADERS) if (typeof req.headers[h] === 'string') fwd[h] = req.headers[h] as string;
      request({ port: reviewsOutbound, path: '/ratings/7', headers: fwd }).then(
        (r) => res.end(`reviews with ${r.body}`),
        () => { res.statusCode = 502; res.end(); },
      );
    });
    t.teardown(() => reviewsApp.close());

    const reviewsSidecar = await spawnProxy(['--service', 'reviews', '--app', `127.0.0.1:${reviewsApp.port}`,
      '--config', policyFile(policy('ratings', `service: ratings\nendpoints: [127.0.0.1:${ratings.port}]`))], env);
    procs.push(reviewsSidecar);
    reviewsOutbound = reviewsSidecar.ports.outbound;
    const frontendSidecar = await spawnProxy(['--service', 'frontend',
      '--config', policyFile(policy('reviews', `service: reviews\nendpoints: [127.0.0.1:${reviewsSidecar.ports.inbound}]`))], env);
    procs.push(frontendSidecar);

    // The frontend app's own span: the root of the trace, sampled.
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const rootSpan = '00f067aa0ba902b7';
    const reply = await request({
      port: frontendSidecar.ports.outbound, path: '/reviews/7?lang=en',
      headers: { host: 'reviews', traceparent: `00-${traceId}-${rootSpan}-01`, tracestate: 'vendor=x', 'user-agent': 'tap-test' },
    });
    t.equal(reply.status, 200);
    t.equal(reply.body, 'reviews with 5 stars');

    const spans = (await receiver.waitFor((s) => s.filter((x) => x.traceId === traceId).length >= 5))
      .filter((s) => s.traceId === traceId);
    t.ok(receiver.contentTypes.every((c) => c.startsWith(protocol === 'http/json' ? 'application/json' : 'application/x-protobuf')), 'encoding as configured');
    t.ok(spans.every((s) => s.encoding === (protocol === 'http/json' ? 'json' : 'protobuf')));
    t.equal(spans.length, 5, 'frontend: call + attempt; reviews: server, call + attempt');

    const one = (service: string, kind: number): ReceivedSpan => {
      const found = spans.filter((s) => s.service === service && s.kind === kind);
      t.equal(found.length, 1, `one ${service} span of kind ${kind}`);
      return found[0]!;
    };
    const feCall = one('frontend', KIND.INTERNAL);
    const feAttempt = one('frontend', KIND.CLIENT);
    const rvServer = one('reviews', KIND.SERVER);
    const rvCall = one('reviews', KIND.INTERNAL);
    const rvAttempt = one('reviews', KIND.CLIENT);

    t.equal(feCall.parentSpanId, rootSpan, 'the caller app span is the parent of the outbound call');
    t.equal(feAttempt.parentSpanId, feCall.spanId, 'attempt under the call');
    t.equal(rvServer.parentSpanId, feAttempt.spanId, 'callee SERVER span under the caller CLIENT span');
    t.equal(rvCall.parentSpanId, rvServer.spanId, 'the app forwarded the headers: its call is under the SERVER span');
    t.equal(rvAttempt.parentSpanId, rvCall.spanId);
    t.match(ratingsHeaders.traceparent, new RegExp(`^00-${traceId}-${rvAttempt.spanId}-01$`), 'the last hop sees the last attempt as parent');
    t.match(reviewsHeaders.traceparent, new RegExp(`^00-${traceId}-${rvServer.spanId}-01$`), 'the callee app sees its SERVER span as parent');
    t.equal(reviewsHeaders.tracestate, 'vendor=x', 'tracestate carried along');
    t.equal(rvServer.traceState, 'vendor=x');
    t.equal(reviewsHeaders.b3, undefined, 'a W3C caller gets W3C only');
    t.equal(reviewsHeaders['x-b3-traceid'], undefined);

    t.equal(feAttempt.name, 'GET');
    t.match(feAttempt.attributes, {
      'http.request.method': 'GET', 'server.address': 'reviews', 'server.port': 80, 'url.full': 'http://reviews/reviews/7?lang=en',
      'http.response.status_code': 200, 'network.peer.address': '127.0.0.1', 'network.peer.port': reviewsSidecar.ports.inbound,
      'pillion.attempt': 1, 'user_agent.original': 'tap-test',
    });
    t.notOk('http.request.resend_count' in feAttempt.attributes, 'no resend count on a first try');
    t.notOk('error.type' in feAttempt.attributes);
    t.match(rvServer.attributes, {
      'http.request.method': 'GET', 'url.path': '/reviews/7', 'url.query': 'lang=en', 'url.scheme': 'http',
      'http.response.status_code': 200, 'user_agent.original': 'tap-test', 'network.peer.address': '127.0.0.1',
    });
    t.match(feCall.attributes, { 'pillion.attempt_count': 1, 'http.response.status_code': 200, 'peer.service': 'reviews' });
    for (const s of spans) {
      t.equal(s.status.code, 0, `${s.service} ${s.name}: status unset`);
      t.ok(s.endNs >= s.startNs, 'ends after it starts');
    }
    t.ok(rvServer.startNs >= feAttempt.startNs && rvServer.endNs <= feAttempt.endNs + 5_000_000n, 'server inside client (loopback clocks)');

    // The access log names the same trace.
    const line = frontendSidecar.accessLog().find((l) => l.path === '/reviews/7');
    t.equal(line?.trace_id, traceId);
  });
}
