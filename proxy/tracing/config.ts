// The tracing settings, decoded once from the standard OTEL_* variables.
// Invalid values are warned about and replaced by the default, as the OpenTelemetry SDKs do:
// a typo in an observability variable must not keep the proxy from carrying traffic.
import type { Logger } from '../runtime/logger';

export type ExportProtocol = 'http/protobuf' | 'http/json';

export type SamplerName =
  | 'always_on' | 'always_off' | 'traceidratio'
  | 'parentbased_always_on' | 'parentbased_always_off' | 'parentbased_traceidratio';

export interface TracingConfig {
  /** Full URL spans are POSTed to (…/v1/traces); undefined: no exporter, propagation only. */
  readonly endpoint: string | undefined;
  readonly protocol: ExportProtocol;
  readonly sampler: SamplerName;
  /** The ratio for the *traceidratio samplers, 0..1. */
  readonly samplerRatio: number;
  readonly serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES, service.name excluded (serviceName decides it). */
  readonly resourceAttributes: Readonly<Record<string, string>>;
  readonly headers: Readonly<Record<string, string>>;
  readonly exportTimeoutMs: number;
  /** Bounded queue of finished spans waiting for export; beyond it, spans are dropped and counted. */
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly scheduledDelayMs: number;
  /** OTEL_SDK_DISABLED=true: no spans and no header rewriting at all. */
  readonly disabled: boolean;
}

const SAMPLERS: readonly SamplerName[] = [
  'always_on', 'always_off', 'traceidratio', 'parentbased_always_on', 'parentbased_always_off', 'parentbased_traceidratio',
];

export function decodeTracingConfig(env: NodeJS.ProcessEnv, defaultServiceName: string, logger: Logger): TracingConfig {
  const str = (name: string): string | undefined => {
    const v = env[name]?.trim();
    return v ? v : undefined;
  };
  const positiveInt = (name: string, fallback: number): number => {
    const raw = str(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (Number.isInteger(n) && n > 0) return n;
    logger.warn('tracing: ignoring invalid variable', { variable: name, value: raw, using: fallback });
    return fallback;
  };

  let protocol: ExportProtocol = 'http/protobuf';
  const rawProtocol = str('OTEL_EXPORTER_OTLP_TRACES_PROTOCOL') ?? str('OTEL_EXPORTER_OTLP_PROTOCOL');
  if (rawProtocol === 'http/json' || rawProtocol === 'http/protobuf') protocol = rawProtocol;
  else if (rawProtocol !== undefined) {
    logger.warn('tracing: only OTLP over HTTP is supported; using http/protobuf', { variable: 'OTEL_EXPORTER_OTLP_TRACES_PROTOCOL', value: rawProtocol });
  }

  // The signal-specific URL is used as given; the generic one gets /v1/traces appended (OTLP spec).
  let endpoint: string | undefined;
  const specific = str('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT');
  const generic = str('OTEL_EXPORTER_OTLP_ENDPOINT');
  if (specific !== undefined) endpoint = validUrl('OTEL_EXPORTER_OTLP_TRACES_ENDPOINT', specific, logger);
  else if (generic !== undefined) endpoint = validUrl('OTEL_EXPORTER_OTLP_ENDPOINT', `${generic.replace(/\/+$/, '')}/v1/traces`, logger);
  if (str('OTEL_TRACES_EXPORTER') === 'none') endpoint = undefined;

  let sampler: SamplerName = 'parentbased_always_on';
  const rawSampler = str('OTEL_TRACES_SAMPLER');
  if (rawSampler !== undefined) {
    if ((SAMPLERS as readonly string[]).includes(rawSampler)) sampler = rawSampler as SamplerName;
    else logger.warn('tracing: unsupported sampler; using parentbased_always_on', { variable: 'OTEL_TRACES_SAMPLER', value: rawSampler });
  }
  let samplerRatio = 1;
  const rawRatio = str('OTEL_TRACES_SAMPLER_ARG');
  if (rawRatio !== undefined && sampler.endsWith('traceidratio')) {
    const r = Number(rawRatio);
    if (Number.isFinite(r) && r >= 0 && r <= 1) samplerRatio = r;
    else logger.warn('tracing: OTEL_TRACES_SAMPLER_ARG must be a number from 0 to 1; using 1', { value: rawRatio });
  }

  const headers = {
    ...keyPairs(str('OTEL_EXPORTER_OTLP_HEADERS')),
    ...keyPairs(str('OTEL_EXPORTER_OTLP_TRACES_HEADERS')),
  };
  const exportTimeoutMs = positiveInt('OTEL_EXPORTER_OTLP_TRACES_TIMEOUT', positiveInt('OTEL_EXPORTER_OTLP_TIMEOUT', 10_000));
  const maxQueueSize = positiveInt('OTEL_BSP_MAX_QUEUE_SIZE', 2048);
  const maxExportBatchSize = Math.min(positiveInt('OTEL_BSP_MAX_EXPORT_BATCH_SIZE', 512), maxQueueSize);

  const { 'service.name': resourceServiceName, ...resourceAttributes } = keyPairs(str('OTEL_RESOURCE_ATTRIBUTES'));

  return {
    endpoint,
    protocol,
    sampler,
    samplerRatio,
    serviceName: str('OTEL_SERVICE_NAME') ?? resourceServiceName ?? defaultServiceName,
    resourceAttributes,
    headers,
    exportTimeoutMs,
    maxQueueSize,
    maxExportBatchSize,
    scheduledDelayMs: positiveInt('OTEL_BSP_SCHEDULE_DELAY', 5000),
    disabled: str('OTEL_SDK_DISABLED')?.toLowerCase() === 'true',
  };
}

function validUrl(variable: string, value: string, logger: Logger): string | undefined {
  try {
    const u = new URL(value);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u.toString();
  } catch { /* reported below */ }
  logger.warn('tracing: ignoring endpoint that is not an http(s) URL; spans will not be exported', { variable, value });
  return undefined;
}

/**
 * `k1=v1,k2=v2` as the SDK reads it. @opentelemetry/core is required only when a variable is
 * set: with tracing off, loading it cost a sidecar about 1.7 MB of heap for nothing.
 */
function keyPairs(value: string | undefined): Record<string, string> {
  if (!value) return {};
  const { parseKeyPairsIntoRecord } = require('@opentelemetry/core') as typeof import('@opentelemetry/core');
  return parseKeyPairsIntoRecord(value);
}
