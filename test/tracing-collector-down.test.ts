// A collector that is down, failing or hanging: requests still succeed, the export queue stays
// bounded, and every span that never made it is counted in pillion_tracing_spans_dropped_total.
import t from 'tap';
import { startProxy, RunningProxy } from '../proxy';
import type { Logger } from '../proxy/runtime/logger';
import { admin, refusedPort, request, sleep, startUpstream } from './helpers/proxy';
import { startOtlpReceiver } from './helpers/otlp-receiver';

async function sidecar(t: Tap.Test, env: NodeJS.ProcessEnv, logger: Logger): Promise<RunningProxy> {
  const app = await startUpstream((_req, res) => res.end('ok'));
  const p = await startProxy({
    service: 'ratings', app: { host: '127.0.0.1', port: app.port },
    inboundPort: 0, outboundPort: 0, adminPort: 0, inboundHost: '127.0.0.1', accessLog: null, logger,
    initialSnapshot: { version: 1, source: 'file', policies: [] },
    tracingEnv: { OTEL_BSP_SCHEDULE_DELAY: '20', ...env },
  });
  t.teardown(async () => { await p.close(); await app.close(); });
  return p;
}

function capture(): Logger & { lines: string[] } {
  const lines: string[] = [];
  const log = (m: string, f?: Record<string, unknown>) => { lines.push(`${m} ${JSON.stringify(f ?? {})}`); };
  return { lines, info: log, warn: log, error: log };
}

async function metric(p: RunningProxy, series: string): Promise<number> {
  const text = (await admin(p.ports.admin, '/stats/prometheus')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line ? Number(line.split(' ')[1]) : NaN;
}

async function until(fn: () => Promise<boolean>, ms = 5000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(50)) if (await fn()) return true;
  return false;
}

t.test('collector down: traffic unaffected, failed exports counted and logged once', async (t) => {
  const port = await refusedPort();
  const logger = capture();
  const p = await sidecar(t, { OTEL_EXPORTER_OTLP_ENDPOINT: `http://127.0.0.1:${port}`, OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '300' }, logger);
  t.equal(await metric(p, 'pillion_tracing_spans_dropped_total{reason="export-failed"}'), 0, 'the series exists from the start');
  const statuses: number[] = [];
  for (let i = 0; i < 20; i++) statuses.push((await request({ port: p.ports.inbound, path: `/${i}` })).status);
  t.same(new Set(statuses), new Set([200]), 'every request answered by the app');
  t.ok(await until(async () => (await metric(p, 'pillion_tracing_spans_dropped_total{reason="export-failed"}')) >= 20), 'all 20 spans counted as dropped');
  t.equal(logger.lines.filter((l) => l.startsWith('tracing: span export failed')).length, 1, 'one warning for the outage, not one per batch');
});

t.test('collector refusing, then back: drops counted, then exports resume', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  receiver.mode = 'fail';
  const logger = capture();
  const p = await sidecar(t, { OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }, logger);
  for (let i = 0; i < 5; i++) t.equal((await request({ port: p.ports.inbound, path: '/' })).status, 200);
  t.ok(await until(async () => (await metric(p, 'pillion_tracing_spans_dropped_total{reason="export-failed"}')) >= 5), 'refused spans counted');
  receiver.mode = 'ok';
  await request({ port: p.ports.inbound, path: '/after' });
  await receiver.waitFor((s) => s.some((x) => x.attributes['url.path'] === '/after'));
  t.ok(await until(async () => (await metric(p, 'pillion_tracing_spans_exported_total')) >= 1), 'exported counter moves again');
  t.ok(logger.lines.some((l) => l.startsWith('tracing: span export recovered')));
});

t.test('collector hanging: the queue is bounded, overflow counted as queue-full, close() does not hang', async (t) => {
  const receiver = await startOtlpReceiver();
  t.teardown(() => receiver.close());
  receiver.mode = 'hang';
  const p = await sidecar(t, {
    OTEL_EXPORTER_OTLP_ENDPOINT: receiver.url, OTEL_BSP_MAX_QUEUE_SIZE: '8', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '4',
    OTEL_EXPORTER_OTLP_TRACES_TIMEOUT: '1500',
  }, capture());
  const replies = await Promise.all(Array.from({ length: 40 }, (_, i) => request({ port: p.ports.inbound, path: `/${i}` })));
  t.same(new Set(replies.map((r) => r.status)), new Set([200]), 'every request answered');
  // At most one batch (4) is stuck in the export and 8 wait in the queue: the rest were dropped.
  t.ok(await until(async () => (await metric(p, 'pillion_tracing_spans_dropped_total{reason="queue-full"}')) >= 40 - 4 - 8), 'overflow counted');
  let timer: NodeJS.Timeout | undefined;
  const stuck = new Promise<string>((r) => { timer = setTimeout(() => r('stuck'), 4000); });
  const closed = await Promise.race([p.close().then(() => 'closed'), stuck]);
  clearTimeout(timer);
  t.equal(closed, 'closed', 'close() gives up on the hanging collector');
});
