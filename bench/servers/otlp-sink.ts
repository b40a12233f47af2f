// A tiny OTLP/HTTP receiver: accepts trace exports and counts them, so that the tracing
// scenarios export to something real on loopback without a collector.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export interface OtlpSink {
  readonly url: string;
  /** Export requests and body bytes received so far. */
  stats(): { requests: number; bytes: number };
  close(): Promise<void>;
}

/** `port` 0: any free port (the bench); bench/pair-ab.sh asks for a fixed one its users can name. */
export function startOtlpSink(port = 0): Promise<OtlpSink> {
  let requests = 0;
  let bytes = 0;
  const server = http.createServer((req, res) => {
    req.on('data', (chunk: Buffer) => { bytes += chunk.length; });
    req.on('end', () => {
      requests++;
      // An empty ExportTraceServiceResponse: `{}` in JSON, zero bytes in protobuf.
      const json = String(req.headers['content-type'] ?? '').includes('json');
      res.writeHead(200, { 'content-type': json ? 'application/json' : 'application/x-protobuf' });
      res.end(json ? '{}' : undefined);
    });
  });
  return new Promise((resolve) => {
    server.listen(port, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      resolve({
        url: `http://127.0.0.1:${port}`,
        stats: () => ({ requests, bytes }),
        close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }),
      });
    });
  });
}
