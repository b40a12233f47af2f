// Request bodies through the forwarder (proxy/forward/forwarder.ts): a request without a body
// is not piped at all (the upstream request is just ended), one with a body is streamed whole.
import t from 'tap';
import http from 'node:http';
import { createAgent, createForwarder, createProxyServer } from '../proxy/forward/forwarder';
import { CancelSignal, RequestContext } from '../proxy/pipeline';
import { startUpstream } from './helpers/proxy';

interface Seen { method: string; body: string; headers: http.IncomingHttpHeaders }

/** An upstream that echoes what it got, and a front server that forwards through createForwarder. */
async function forwardingPair(t: Tap.Test) {
  const seen: Seen[] = [];
  const upstream = await startUpstream((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => { body += c; });
    req.on('end', () => { seen.push({ method: req.method!, body, headers: req.headers }); res.end('ok'); });
  });
  const agent = createAgent();
  const forward = createForwarder(createProxyServer(), agent, { endpoints: [{ host: '127.0.0.1', port: upstream.port }] });
  /** How many `data` listeners the client's request had once the attempt was under way. */
  const dataListeners: number[] = [];
  const front = await startUpstream((req, res) => {
    const ctx = { service: 'up', res, replayBody: undefined, attemptCount: 0, clientGone: new CancelSignal() } as unknown as RequestContext;
    const pending = forward(req, ctx, {});
    dataListeners.push(req.listenerCount('data'));
    pending.then((up) => { res.writeHead(up.statusCode!); up.pipe(res); }, () => res.destroy());
  });
  t.teardown(async () => {
    agent.destroy();
    await front.close();
    await upstream.close();
  });
  const send = (method: string, headers: http.OutgoingHttpHeaders, chunks: string[]) => new Promise<number>((resolve, reject) => {
    const req = http.request({ port: front.port, method, headers, agent: false }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode!));
    });
    req.on('error', reject);
    for (const c of chunks) req.write(c);
    req.end();
  });
  return { seen, dataListeners, send };
}

t.test('a request without a body is not piped: the upstream request is just ended', async (t) => {
  const { seen, dataListeners, send } = await forwardingPair(t);
  t.equal(await send('GET', {}, []), 200);
  t.equal(await send('POST', { 'content-length': '0' }, []), 200, 'content-length: 0 is no body either');
  t.same(dataListeners, [0, 0], "nothing listens to the client's request");
  t.same(seen.map((s) => [s.method, s.body]), [['GET', ''], ['POST', '']]);
});

t.test('a request with a body is streamed upstream whole', async (t) => {
  const { seen, dataListeners, send } = await forwardingPair(t);
  t.equal(await send('POST', { 'content-length': '11' }, ['hello', ' world']), 200);
  t.equal(await send('DELETE', { 'transfer-encoding': 'chunked' }, ['a', 'b', 'c']), 200);
  t.same(dataListeners, [1, 1], 'piped from the client request');
  t.same(seen.map((s) => [s.method, s.body]), [['POST', 'hello world'], ['DELETE', 'abc']]);
  t.equal(seen[1]!.headers['transfer-encoding'], 'chunked');
});
