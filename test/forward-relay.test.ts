// The response body relay (proxy/forward/relay.ts): every byte arrives, a slow client pauses
// the upstream instead of the proxy buffering, trailers go out, and it costs two listeners.
import t from 'tap';
import http from 'node:http';
import { ResponseRelay } from '../proxy/forward/relay';
import { request, startUpstream } from './helpers/proxy';

interface Hop { port: number; relays: ResponseRelay[]; upstreams: http.IncomingMessage[]; close(): Promise<void> }

/** An upstream and, in front of it, a minimal proxy that relays each response with ResponseRelay. */
async function relayHop(upstreamHandler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<Hop> {
  const upstream = await startUpstream(upstreamHandler);
  const upPort = upstream.port;
  const relays: ResponseRelay[] = [];
  const upstreams: http.IncomingMessage[] = [];
  const front = await startUpstream((req, res) => {
    http.get({ port: upPort, path: req.url, agent: false }, (up) => {
      upstreams.push(up);
      res.writeHead(up.statusCode ?? 502, up.headers);
      relays.push(new ResponseRelay(up, res));
    });
  });
  return {
    port: front.port, relays, upstreams,
    close: async () => {
      await front.close();
      await upstream.close();
    },
  };
}

const CHUNK = Buffer.alloc(64 * 1024, 'x');
const CHUNKS = 128; // 8 MiB: far more than the sockets' buffers hold

t.test('a slow client pauses the upstream, and gets every byte', async (t) => {
  const hop = await relayHop((_req, res) => {
    res.writeHead(200, { 'content-length': CHUNK.length * CHUNKS });
    let sent = 0;
    const more = () => {
      while (sent < CHUNKS) {
        sent++;
        if (!res.write(CHUNK)) return void res.once('drain', more);
      }
      res.end();
    };
    more();
  });
  t.teardown(() => hop.close());

  let pausedSeen = false;
  const received = await new Promise<number>((resolve, reject) => {
    http.get({ port: hop.port, path: '/', agent: false }, (res) => {
      let n = 0;
      res.pause();
      // Read nothing for a while: the relay must stop reading the upstream meanwhile.
      setTimeout(() => {
        pausedSeen = hop.upstreams[0]!.isPaused();
        res.on('data', (c: Buffer) => { n += c.length; });
        res.on('end', () => resolve(n));
        res.resume();
      }, 300);
    }).on('error', reject);
  });
  t.ok(pausedSeen, 'the upstream was paused while the client did not read');
  t.equal(received, CHUNK.length * CHUNKS, 'the client got the whole body');
  t.equal(hop.relays[0]!.bytes, CHUNK.length * CHUNKS, 'and the relay counted it');
});

t.test('trailers of a chunked body go out with it', async (t) => {
  const hop = await relayHop((_req, res) => {
    res.writeHead(200, { trailer: 'x-checksum' });
    res.write('abc');
    res.addTrailers({ 'x-checksum': '42' });
    res.end('def');
  });
  t.teardown(() => hop.close());
  const got = await request({ port: hop.port, path: '/' });
  t.equal(got.body, 'abcdef');
  t.same(got.trailers, { 'x-checksum': '42' });
  t.equal(hop.relays[0]!.bytes, 6);
});

t.test('a relay costs the upstream two listeners and the client response none', async (t) => {
  const upstream = await startUpstream((_req, res) => res.end('ok'));
  t.teardown(() => upstream.close());
  const port = upstream.port;
  const up = await new Promise<http.IncomingMessage>((resolve) => http.get({ port, agent: false }, resolve));
  // A response that is never sent: what matters is what the relay attaches.
  const res = new http.ServerResponse(new http.IncomingMessage(null as never));
  const count = (e: NodeJS.EventEmitter) => e.eventNames().reduce((n, name) => n + e.listenerCount(name), 0);
  const [upBefore, resBefore] = [count(up), count(res)];
  new ResponseRelay(up, res);
  t.equal(count(up) - upBefore, 2, 'data and end on the upstream');
  t.equal(count(res) - resBefore, 0, 'nothing on the client response until it pushes back');
  up.destroy();
});
