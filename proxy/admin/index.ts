// The admin API (127.0.0.1:15000): readiness, config dump, metrics, clusters, drain.
import http from 'node:http';
import type { PolicySnapshot } from '../config';
import type { ProxyMetrics } from '../observability/metrics';

export interface AdminSources {
  ready(): boolean;
  snapshot(): PolicySnapshot;
  /** Extra facts for /config_dump (transparent mode support, ...). */
  extraDump(): Record<string, unknown>;
  clusters(): Record<string, unknown>[];
  metrics: ProxyMetrics;
  drain(): void;
}

export function createAdminServer(src: AdminSources): http.Server {
  return http.createServer({ maxHeaderSize: 16 * 1024 }, (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      const text = JSON.stringify(body, null, 2);
      res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    req.resume();
    const route = `${req.method} ${path}`;
    switch (route) {
      case 'GET /ready':
      case 'HEAD /ready': {
        const ok = src.ready();
        res.writeHead(ok ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(ok ? 'ready\n' : 'not ready\n');
        return;
      }
      case 'GET /config_dump': {
        const s = src.snapshot();
        json(200, { version: s.version, source: s.source, policies: s.policies, ...src.extraDump() });
        return;
      }
      case 'GET /stats/prometheus':
        src.metrics.registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': src.metrics.registry.contentType });
          res.end(text);
        }, () => json(500, { error: 'metrics unavailable' }));
        return;
      case 'GET /clusters':
        json(200, src.clusters());
        return;
      case 'POST /drain':
        json(202, { draining: true });
        src.drain();
        return;
      default:
        if (['/ready', '/config_dump', '/stats/prometheus', '/clusters', '/drain'].includes(path!)) {
          json(405, { error: 'method not allowed' });
        } else {
          json(404, { error: 'not found', paths: ['/ready', '/config_dump', '/stats/prometheus', '/clusters', 'POST /drain'] });
        }
    }
  });
}
