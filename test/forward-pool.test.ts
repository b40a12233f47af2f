// The upstream keep-alive pool: sockets are reused while fresh and closed once idle for the
// idle period (4 s in the proxy), before an upstream with Node's 5 s keep-alive closes them
// under a request (nodejs/node#47130).
import t from 'tap';
import http from 'node:http';
import type { Socket } from 'node:net';
import { createAgent, UPSTREAM_IDLE_MS, upstreamAgentOptions } from '../proxy/forward/forwarder';
import { policy, policyFile, request, sleep, spawnProxy, startUpstream } from './helpers/proxy';

/** An upstream that records when each connection opened and closed. */
async function trackedUpstream(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void = (_q, s) => s.end('ok')) {
  const up = await startUpstream(handler);
  const conns: { socket: Socket; closed: boolean }[] = [];
  up.server.keepAliveTimeout = 60_000;
  up.server.on('connection', (socket: Socket) => {
    const c = { socket, closed: false };
    conns.push(c);
    socket.on('close', () => { c.closed = true; });
  });
  return { up, conns };
}

t.test('a pooled socket is reused while fresh and closed once idle', async (t) => {
  const { up, conns } = await trackedUpstream();
  t.teardown(() => up.close());
  const agent = createAgent(300);
  t.teardown(() => agent.destroy());

  await request({ port: up.port, agent });
  await sleep(100);
  await request({ port: up.port, agent });
  t.equal(conns.length, 1, 'the second request reused the pooled socket');
  t.equal(conns[0]!.closed, false);

  await sleep(700);
  t.equal(conns[0]!.closed, true, 'closed after sitting idle for longer than the idle period');
  t.same(Object.keys(agent.freeSockets), [], 'and gone from the pool');
  await request({ port: up.port, agent });
  t.equal(conns.length, 2, 'the next request opens a new connection');
});

t.test('a socket busy with a slow response is not an idle one', async (t) => {
  const { up, conns } = await trackedUpstream((_req, res) => void setTimeout(() => res.end('late'), 600));
  t.teardown(() => up.close());
  const agent = createAgent(200);
  t.teardown(() => agent.destroy());
  t.equal((await request({ port: up.port, agent })).status, 200, 'a response slower than the idle period arrives');
  t.equal(conns[0]!.closed, false, 'and its socket went back to the pool');
});

/** The options a request's new connection is opened with, as the agent's pool passes them on. */
async function connectionOptions(agent: http.Agent, port: number, host?: string): Promise<Record<string, unknown>> {
  let seen: Record<string, unknown> | undefined;
  const create = agent.createConnection.bind(agent);
  agent.createConnection = (options, cb) => {
    // Which agent it is differs by design; everything else is compared.
    seen = { ...(options as Record<string, unknown>), agent: 'the agent' };
    return create(options, cb);
  };
  // What http-proxy passes for a plain-HTTP target: TLS keys present, undefined.
  const headers = host === undefined ? undefined : { host };
  await request({ port, agent, headers, pfx: undefined, key: undefined, ca: undefined, ciphers: undefined, localAddress: undefined });
  return seen!;
}

/** An upstream, our pool and Node's own agent with the same options, all closed after the test. */
async function agentsSideBySide(t: Tap.Test) {
  const { up } = await trackedUpstream();
  t.teardown(() => up.close());
  const ours = createAgent(300);
  const nodes = new http.Agent(upstreamAgentOptions(300));
  t.teardown(() => { ours.destroy(); nodes.destroy(); });
  return { up, ours, nodes };
}

t.test('the pool passes on only the options that are set, and otherwise what Node would', async (t) => {
  const { up, ours, nodes } = await agentsSideBySide(t);

  const agentOptions = (a: http.Agent) => (a as unknown as { options: object }).options;
  t.same({ ...agentOptions(ours) }, { ...agentOptions(nodes) }, "the agent's own options are Node's");
  t.equal(Object.getPrototypeOf(agentOptions(ours)), null, 'and still have no prototype to inherit an option from');

  const withUndefined = await connectionOptions(nodes, up.port);
  const set = await connectionOptions(ours, up.port);
  t.ok(Object.values(withUndefined).includes(undefined), "Node's own agent carries the undefined keys along");
  t.same(Object.entries(set).filter(([, v]) => v === undefined), [], 'ours carries none');
  const defined = Object.fromEntries(Object.entries(withUndefined).filter(([, v]) => v !== undefined));
  t.same(set, defined, 'and every option that is set arrives as it would through Node\'s agent');
});

t.test('the pool works out no TLS server name from a service name in the Host header', async (t) => {
  const { up, ours, nodes } = await agentsSideBySide(t);
  // Node derives it from the Host header (a regex-heavy step per request), for plain TCP too.
  t.equal((await connectionOptions(nodes, up.port, 'ratings.default.svc:9080')).servername, 'ratings.default.svc', "Node's agent computes one");
  t.equal((await connectionOptions(ours, up.port, 'ratings.default.svc:9080')).servername, '', "ours says 'none' up front, so Node skips that step");
  const reply = await request({ port: up.port, agent: ours, headers: { host: 'ratings' } });
  t.equal(reply.status, 200, 'and the request goes through as before');
});

t.test('the proxy closes its idle upstream connections after the idle period', async (t) => {
  const { up, conns } = await trackedUpstream();
  t.teardown(() => up.close());
  const proxy = await spawnProxy(['--service', 'web', '--config', policyFile(policy('ratings', `service: ratings\nendpoints: [127.0.0.1:${up.port}]`))]);
  t.teardown(() => proxy.stop());
  t.equal((await request({ port: proxy.ports.outbound, path: '/', headers: { host: 'ratings' } })).status, 200);
  t.equal(conns.length, 1);
  await sleep(UPSTREAM_IDLE_MS - 1500);
  t.equal(conns[0]!.closed, false, 'kept while fresh');
  await sleep(2500);
  t.equal(conns[0]!.closed, true, `closed by the proxy once idle for ${UPSTREAM_IDLE_MS} ms`);
});
