// Distributed tracing: OpenTelemetry spans for inbound and outbound requests, trace-header propagation and OTLP/HTTP export.
//
// Nothing is registered globally and there is no async context manager: the stages hand the
// parent context along explicitly, which costs nothing per request and lets several proxies
// live in one process (tests). No auto-instrumentation is loaded: it would trace the proxy's
// own sockets a second time. How spans are made and sent: ./exporting.
//
// The OpenTelemetry packages are loaded only in the modes that need them (./propagation,
// ./exporting): with tracing off, they would cost a proxy memory for nothing.
import type { PolicyRuntime } from '../listeners/policy-runtime';
import type { ProxyMetrics } from '../observability/metrics';
import type { Logger } from '../runtime/logger';
import { decodeTracingConfig, TracingConfig } from './config';

export type { TracingConfig } from './config';

export interface TracingOptions {
  /** `--service`: the default for OTEL_SERVICE_NAME. */
  readonly serviceName: string;
  readonly metrics: ProxyMetrics;
  readonly logger: Logger;
  /** Where the OTEL_* variables are read; default process.env. */
  readonly env?: NodeJS.ProcessEnv;
}

export interface TracingRuntime {
  /** export: spans are made and sent; propagate: no endpoint, trace headers are only carried over; off: OTEL_SDK_DISABLED. */
  readonly mode: 'export' | 'propagate' | 'off';
  readonly config: TracingConfig;
  /** First stage of the inbound stack: the SERVER span. */
  inbound(): PolicyRuntime | undefined;
  /** First stage of the outbound stack: the span over the whole call, parent of the attempts. */
  outbound(): PolicyRuntime | undefined;
  /** Last stage of the outbound stack, just above the forwarder: a CLIENT span per attempt. */
  attempt(): PolicyRuntime | undefined;
  /** Sends the spans still queued (bounded by `timeoutMs`) and stops the exporter. */
  shutdown(timeoutMs?: number): Promise<void>;
}

export function startTracing(opts: TracingOptions): TracingRuntime {
  const env = opts.env ?? process.env;
  const config = decodeTracingConfig(env, opts.serviceName, opts.logger);
  const none = (): undefined => undefined;
  if (config.disabled) {
    return { mode: 'off', config, inbound: none, outbound: none, attempt: none, shutdown: async () => {} };
  }
  const { createHeaderPropagation, decodePropagators } = require('./propagation') as typeof import('./propagation');
  const propagation = createHeaderPropagation(decodePropagators(env.OTEL_PROPAGATORS, opts.logger));

  if (config.endpoint === undefined) {
    // No collector: making spans nobody receives would only cost CPU. Carry the caller's trace
    // over (and translate B3 <-> W3C) so that the apps' own spans still join up.
    const { createPropagationStage } = require('./stages') as typeof import('./stages');
    const runtime: PolicyRuntime = { stage: createPropagationStage(propagation) };
    return { mode: 'propagate', config, inbound: () => runtime, outbound: () => runtime, attempt: none, shutdown: async () => {} };
  }

  // Loaded here, not at the top: see the note above.
  const { startExporting } = require('./exporting') as typeof import('./exporting');
  return startExporting({ ...config, endpoint: config.endpoint }, propagation, opts);
}
