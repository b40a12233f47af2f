// Distributed tracing: OpenTelemetry spans for inbound and outbound requests, trace-header propagation and OTLP/HTTP export.
//
// One tracer provider per proxy, never registered as the global one and without an async
// context manager: the stages hand the parent context along explicitly, which costs nothing
// per request and lets several proxies live in one process (tests). For the same reason no
// auto-instrumentation is loaded: it would trace the proxy's own sockets a second time.
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, ParentBasedSampler, Sampler, TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { PolicyRuntime } from '../listeners/policy-runtime';
import type { ProxyMetrics } from '../observability/metrics';
import type { RequestContext } from '../pipeline';
import type { Logger } from '../runtime/logger';
import { decodeTracingConfig, SamplerName, TracingConfig } from './config';
import { createBatchProcessor, createExportCounters, createSpanExporter } from './export';
import { createHeaderPropagation, decodePropagators } from './propagation';
import {
  createAttemptSpanStage, createInboundSpanStage, createOutboundSpanStage, createPropagationStage, TRACE_ID_SLOT,
} from './stages';
import { PooledIdGenerator, SpanStarter } from './span-start';

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

/** The trace id of a request (for the access log), once the first tracing stage has run. */
export function traceIdOf(ctx: RequestContext): string | undefined {
  return ctx.slots.get(TRACE_ID_SLOT) as string | undefined;
}

export function startTracing(opts: TracingOptions): TracingRuntime {
  const env = opts.env ?? process.env;
  const config = decodeTracingConfig(env, opts.serviceName, opts.logger);
  const none = (): undefined => undefined;
  if (config.disabled) {
    return { mode: 'off', config, inbound: none, outbound: none, attempt: none, shutdown: async () => {} };
  }
  const propagation = createHeaderPropagation(decodePropagators(env.OTEL_PROPAGATORS, opts.logger));

  if (config.endpoint === undefined) {
    // No collector: making spans nobody receives would only cost CPU. Carry the caller's trace
    // over (and translate B3 <-> W3C) so that the apps' own spans still join up.
    const runtime: PolicyRuntime = { stage: createPropagationStage(propagation) };
    return { mode: 'propagate', config, inbound: () => runtime, outbound: () => runtime, attempt: none, shutdown: async () => {} };
  }

  const counters = createExportCounters(opts.metrics.registry);
  const exporter = createSpanExporter({ ...config, endpoint: config.endpoint });
  const sampler = createSampler(config.sampler, config.samplerRatio);
  const ids = new PooledIdGenerator();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ ...config.resourceAttributes, [ATTR_SERVICE_NAME]: config.serviceName }),
    sampler,
    idGenerator: ids,
    spanProcessors: [createBatchProcessor(exporter, config, counters, opts.logger)],
  });
  const starter = new SpanStarter(provider.getTracer('pillion'), sampler, ids);
  const inbound: PolicyRuntime = { stage: createInboundSpanStage(starter, propagation) };
  const outbound: PolicyRuntime = { stage: createOutboundSpanStage(starter, propagation) };
  const attempt: PolicyRuntime = { stage: createAttemptSpanStage(starter, propagation) };
  opts.logger.info('tracing: exporting spans', {
    endpoint: config.endpoint, protocol: config.protocol, sampler: config.sampler, ratio: config.samplerRatio, service: config.serviceName,
  });

  let stopped: Promise<void> | undefined;
  return {
    mode: 'export',
    config,
    inbound: () => inbound,
    outbound: () => outbound,
    attempt: () => attempt,
    shutdown(timeoutMs = 2000) {
      stopped ??= (async () => {
        // A collector that is down must not hold the proxy's exit past its drain timeout.
        let timer: NodeJS.Timeout | undefined;
        const late = new Promise<void>((resolve) => { timer = setTimeout(resolve, timeoutMs); });
        await Promise.race([provider.shutdown().catch(() => undefined), late]);
        clearTimeout(timer);
        // Stops the sender thread even when the last flush is still waiting for the collector.
        await exporter.shutdown();
      })();
      return stopped;
    },
  };
}

function createSampler(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}
