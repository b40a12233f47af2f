// Routing, header rules, local replies for no-route/bad-request, access log and admin API.
import t from 'tap';
import net from 'node:net';
import { admin, policy, policyFile, request, sleep, spawnProxy, startUpstream } from './helpers/proxy';

t.test('routing by host and absolute-form, inbound to the app, header rules', async (t) => {
  const up = await startUpstream((req, res) => {
    res.setHeader('connection', 'keep-alive, x-secret-hop');
    res.setHeader('x-secret-hop', 'must not reach the client');
    res.setHeader('keep-alive', 'timeout=5');
    res.end(JSON.stringify({ url: req.url, headers: req.headers }));
  });
  const file = policyFile(policy('ratings', `service: ratings\nendpoints: [127.0.0.1:${up.port}]`));
  const p = await spawnProxy(['--service', 'web', '--config', file, '--app', `127.0.0.1:${up.port}`]);
  t.teardown(async () => { await p.stop(); await up.close(); });
  const seen = (r: { body: string }) => JSON.parse(r.body) as { url: string; headers: Record<string, string> };

  for (const host of ['ratings', `ratings:9080`, 'ratings.default.svc.cluster.local']) {
    const r = await request({ port: p.ports.outbound, path: '/a?b=1', headers: { host } });
    t.equal(r.status, 200, `Host: ${host} routes to the ratings endpoints`);
    t.equal(seen(r).url, '/a?b=1');
    t.equal(seen(r).headers.host, host, 'Host is preserved');
  }

  const abs = await request({ port: p.ports.outbound, path: 'http://ratings/abs?x=1', headers: { host: 'ignored-by-rfc' } });
  t.equal(abs.status, 200, 'absolute-form (HTTP_PROXY clients) routes by the URI');
  t.equal(seen(abs).url, '/abs?x=1', 'absolute-form becomes origin-form upstream');
  t.equal(seen(abs).headers.host, 'ratings', 'Host agrees with the URI');

  const hop = await request({
    port: p.ports.outbound, path: '/h',
    headers: { host: 'ratings', connection: 'keep-alive, x-drop-me', 'x-drop-me': '1', 'keep-alive': '300', 'proxy-authorization': 'Basic c2VjcmV0', te: 'trailers', 'x-forwarded-for': '10.9.9.9', 'x-request-id': 'req-123' },
  });
  const h = seen(hop).headers;
  t.notOk('x-drop-me' in h, 'headers named in Connection are removed');
  t.notOk('keep-alive' in h && h['keep-alive'] === '300', 'keep-alive is removed');
  t.notOk('proxy-authorization' in h, 'proxy-authorization is removed');
  t.equal(h.te, 'trailers', 'te: trailers survives');
  t.equal(h['x-forwarded-for'], '10.9.9.9, 127.0.0.1', 'x-forwarded-for is appended');
  t.equal(h['x-forwarded-proto'], 'http');
  t.equal(h['x-request-id'], 'req-123', 'an incoming request id is kept');
  t.notOk('x-secret-hop' in hop.headers, 'response headers named in Connection are removed');

  const gen = await request({ port: p.ports.outbound, path: '/', headers: { host: 'ratings' } });
  t.match(seen(gen).headers['x-request-id'], /^[0-9a-f-]{36}$/, 'a request id is generated when absent');

  const inbound = await request({ port: p.ports.inbound, path: '/in', headers: { host: 'web' } });
  t.equal(inbound.status, 200, 'inbound goes to --app');
  t.equal(seen(inbound).url, '/in');

  await sleep(200); // access-log lines are flushed once per event-loop turn
  const log = p.accessLog();
  const fields = ['time', 'direction', 'service', 'method', 'path', 'status', 'reason', 'duration_ms', 'bytes_sent', 'upstream', 'attempt_count', 'trace_id', 'request_id'];
  t.ok(log.length >= 7, 'one access-log line per request');
  for (const line of log) t.same(Object.keys(line).sort(), [...fields].sort());
  const inLine = log.find((l) => l.direction === 'inbound')!;
  t.match(inLine, { service: 'web', method: 'GET', path: '/in', status: 200, upstream: `127.0.0.1:${up.port}`, attempt_count: 1 });
  t.ok(log.every((l) => !String(l.path).includes('?')), 'query strings (which may hold secrets) are not logged');
});

t.test('no-route, bad-request and the admin API', async (t) => {
  const up = await startUpstream((_req, res) => res.end('ok'));
  const file = policyFile(policy('ratings', `service: ratings\nendpoints: [127.0.0.1:${up.port}]`));
  const p = await spawnProxy(['--service', 'web', '--config', file]);
  t.teardown(async () => { await p.stop(); await up.close(); });

  const nr = await request({ port: p.ports.outbound, path: '/', headers: { host: 'no-such-service.invalid' } });
  t.equal(nr.status, 404);
  t.equal(nr.headers['x-pillion-reason'], 'no-route');
  t.match(JSON.parse(nr.body), { error: String, reason: 'no-route' });

  // Answered before any tracing stage ran: the log takes the trace id from the raw header, and
  // only when it is one (the line must stay JSON whatever a client sends).
  const valid = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  await request({ port: p.ports.outbound, path: '/', headers: { host: 'no-such-service.invalid', traceparent: valid, 'x-request-id': 'tp-valid' } });
  await request({ port: p.ports.outbound, path: '/', headers: { host: 'no-such-service.invalid', traceparent: '00-4bf92f3577b34da6a3ce929d0e0e47"}-00f067aa0ba902b7-01', 'x-request-id': 'tp-junk' } });

  const https = await request({ port: p.ports.outbound, path: 'https://ratings/x' });
  t.equal(https.status, 400);
  t.equal(https.headers['x-pillion-reason'], 'bad-request');

  const raw = (text: string) => new Promise<string>((resolve) => {
    const s = net.connect(p.ports.outbound, '127.0.0.1', () => s.write(text));
    let out = '';
    s.on('data', (c) => { out += c; });
    s.on('close', () => resolve(out));
    s.on('error', () => resolve(out));
    setTimeout(() => s.destroy(), 3000);
  });
  const noHost = await raw('GET / HTTP/1.1\r\n\r\n');
  t.match(noHost, /^HTTP\/1.1 400 .*x-pillion-reason: bad-request/s, 'missing Host: 400 bad-request');
  const twoHosts = await raw('GET / HTTP/1.1\r\nHost: ratings\r\nHost: evil\r\n\r\n');
  t.match(twoHosts, /^HTTP\/1.1 400 .*x-pillion-reason: bad-request/s, 'two Host headers: 400 bad-request');
  t.equal(up.hits, 0, 'nothing ambiguous was forwarded');

  t.equal((await admin(p.ports.admin, '/ready')).status, 200);
  const dump = JSON.parse((await admin(p.ports.admin, '/config_dump')).body);
  t.match(dump, { version: 1, source: 'file', policies: [{ name: 'ratings', service: 'ratings', timeoutMs: 15000 }] });
  const clusters = JSON.parse((await admin(p.ports.admin, '/clusters')).body);
  t.match(clusters, [{ service: 'ratings', endpoints: [`127.0.0.1:${up.port}`], in_flight: 0 }]);
  const prom = (await admin(p.ports.admin, '/stats/prometheus')).body;
  for (const name of ['pillion_requests_total', 'pillion_request_duration_seconds', 'pillion_circuit_state', 'pillion_retries_total', 'pillion_config_version', 'pillion_control_connected']) {
    t.match(prom, new RegExp(`# TYPE ${name} `), `${name} exists`);
  }
  t.match(prom, /pillion_requests_total\{direction="outbound",service="no-such-service",code="404",reason="no-route"\} 3/);
  await sleep(200); // access-log lines are flushed once per event-loop turn
  const log = p.accessLog();
  t.equal(log.find((l) => l.request_id === 'tp-valid')?.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736', 'a W3C trace id is logged');
  t.equal(log.find((l) => l.request_id === 'tp-junk')?.trace_id, '', 'anything else is left out');
  t.match(prom, /pillion_config_version 1/);
  t.equal((await admin(p.ports.admin, '/nope')).status, 404);
  t.equal((await admin(p.ports.admin, '/drain')).status, 405, 'GET /drain is refused: drain needs POST');
});
