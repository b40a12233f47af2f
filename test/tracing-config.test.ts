// The OTEL_* variables as the proxy reads them: standard names and defaults, bad values warned
// about and replaced by the default (a typo in tracing settings must not stop the sidecar).
import t from 'tap';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { decodeTracingConfig } from '../proxy/tracing/config';
import { startTracing } from '../proxy/tracing';
import { createProxyMetrics } from '../proxy/observability/metrics';
import type { Logger } from '../proxy/runtime/logger';

function capture(): Logger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, info() {}, error() {}, warn: (m, f) => { warnings.push(`${m} ${JSON.stringify(f)}`); } };
}

t.test('defaults: no endpoint, protobuf, parent-based always-on, service name from --service', async (t) => {
  const log = capture();
  const c = decodeTracingConfig({}, 'reviews', log);
  t.match(c, { endpoint: undefined, protocol: 'http/protobuf', sampler: 'parentbased_always_on', samplerRatio: 1, serviceName: 'reviews', disabled: false, maxQueueSize: 2048 });
  t.same(log.warnings, []);
});

t.test('endpoints: the generic one gets /v1/traces, the traces one is used as given and wins', async (t) => {
  const log = capture();
  t.equal(decodeTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318' }, 's', log).endpoint, 'http://otel:4318/v1/traces');
  t.equal(decodeTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318/' }, 's', log).endpoint, 'http://otel:4318/v1/traces');
  t.equal(decodeTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318', OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'https://jaeger:4318/custom' }, 's', log).endpoint, 'https://jaeger:4318/custom');
  t.equal(decodeTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'http://otel:4318', OTEL_TRACES_EXPORTER: 'none' }, 's', log).endpoint, undefined, 'OTEL_TRACES_EXPORTER=none');
  t.same(log.warnings, []);
  t.equal(decodeTracingConfig({ OTEL_EXPORTER_OTLP_ENDPOINT: 'otel:4318' }, 's', log).endpoint, undefined, 'not a URL');
  t.match(log.warnings[0], /not an http\(s\) URL.*OTEL_EXPORTER_OTLP_ENDPOINT/);
});

t.test('protocol, sampler, service name, headers, queue', async (t) => {
  const log = capture();
  const c = decodeTracingConfig({
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json', OTEL_TRACES_SAMPLER: 'parentbased_traceidratio', OTEL_TRACES_SAMPLER_ARG: '0.01',
    OTEL_SERVICE_NAME: 'reviews-v2', OTEL_EXPORTER_OTLP_HEADERS: 'a=1,b=2', OTEL_EXPORTER_OTLP_TRACES_HEADERS: 'b=3',
    OTEL_BSP_MAX_QUEUE_SIZE: '100', OTEL_BSP_MAX_EXPORT_BATCH_SIZE: '500', OTEL_EXPORTER_OTLP_TIMEOUT: '2500',
  }, 'reviews', log);
  t.match(c, { protocol: 'http/json', sampler: 'parentbased_traceidratio', samplerRatio: 0.01, serviceName: 'reviews-v2', maxQueueSize: 100, maxExportBatchSize: 100, exportTimeoutMs: 2500 });
  t.same(c.headers, { a: '1', b: '3' }, 'the traces-specific header wins');
  const r = decodeTracingConfig({ OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs,deployment.environment.name=prod' }, 'reviews', log);
  t.equal(r.serviceName, 'from-attrs', 'OTEL_RESOURCE_ATTRIBUTES service.name beats --service');
  t.same(r.resourceAttributes, { 'deployment.environment.name': 'prod' });
  t.same(log.warnings, []);
});

t.test('bad values: warned about, defaults used', async (t) => {
  const log = capture();
  const c = decodeTracingConfig({
    OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc', OTEL_TRACES_SAMPLER: 'jaeger_remote',
    OTEL_BSP_MAX_QUEUE_SIZE: '-5',
  }, 's', log);
  t.match(c, { protocol: 'http/protobuf', sampler: 'parentbased_always_on', maxQueueSize: 2048 });
  t.equal(log.warnings.length, 3);
  t.match(log.warnings.join('\n'), /only OTLP over HTTP/);
  const r = decodeTracingConfig({ OTEL_TRACES_SAMPLER: 'traceidratio', OTEL_TRACES_SAMPLER_ARG: '5' }, 's', log);
  t.equal(r.samplerRatio, 1);
  t.match(log.warnings.at(-1), /OTEL_TRACES_SAMPLER_ARG/);
});

t.test('modes: export with an endpoint, propagate without, off when disabled', async (t) => {
  const metrics = createProxyMetrics();
  const exp = startTracing({ serviceName: 's', metrics, logger: capture(), env: { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://127.0.0.1:9' } });
  t.equal(exp.mode, 'export');
  t.ok(exp.inbound() && exp.outbound() && exp.attempt());
  t.match(await metrics.registry.metrics(), /pillion_tracing_spans_dropped_total\{reason="queue-full"\} 0/);
  await exp.shutdown();
  const prop = startTracing({ serviceName: 's', metrics, logger: capture(), env: {} });
  t.equal(prop.mode, 'propagate');
  t.ok(prop.inbound() && prop.outbound());
  t.equal(prop.attempt(), undefined, 'no per-attempt work without spans');
  const off = startTracing({ serviceName: 's', metrics, logger: capture(), env: { OTEL_SDK_DISABLED: 'true' } });
  t.equal(off.mode, 'off');
  t.equal(off.inbound(), undefined);
});

t.test('tracing off: the sidecar loads no OpenTelemetry SDK package (memory), even to read the OTEL_* variables', async (t) => {
  // A fresh process, so that what the other tests loaded does not count. Plain Node on the
  // compiled output (npm test builds it first).
  const dist = path.join(__dirname, '..', 'dist', 'proxy', 'tracing', 'index.js');
  if (!existsSync(dist)) return t.skip('dist/ is not built (npm test builds it first)');
  const script = `
    const { startTracing } = require(${JSON.stringify(dist)});
    const { createProxyMetrics } = require(${JSON.stringify(path.join(__dirname, '..', 'dist', 'proxy', 'observability', 'metrics.js'))});
    const logger = { info() {}, warn() {}, error() {} };
    const off = startTracing({ serviceName: 's', metrics: createProxyMetrics(), logger, env: { OTEL_SDK_DISABLED: 'true', OTEL_RESOURCE_ATTRIBUTES: '' } });
    const loaded = Object.keys(require.cache).filter((f) => /@opentelemetry[\\/\\\\](core|sdk-trace-base|resources|propagator-b3)[\\/\\\\]/.test(f));
    process.stdout.write(JSON.stringify({ mode: off.mode, loaded: loaded.length }));
  `;
  const out = JSON.parse(execFileSync(process.execPath, ['-e', script], { encoding: 'utf8' })) as { mode: string; loaded: number };
  t.same(out, { mode: 'off', loaded: 0 });
  // And when a variable is set, it is still read the SDK's way.
  t.same(decodeTracingConfig({ OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=prod,service.name=from-attrs' }, 's', capture()).resourceAttributes,
    { 'deployment.environment': 'prod' });
});
