// Tracing's export mode: a tracer provider with our sampler, id pool and batching exporter,
// and the span stages. Loaded by ./index only when an OTLP endpoint is configured.
import { resourceFromAttributes } from '@opentelemetry/resources';
import {
  AlwaysOffSampler, AlwaysOnSampler, BasicTracerProvider, ParentBasedSampler, Sampler, TraceIdRatioBasedSampler,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import type { PolicyRuntime } from '../listeners/policy-runtime';
import type { SamplerName, TracingConfig } from './config';
import { createBatchProcessor, createExportCounters, createSpanExporter } from './export';
import type { HeaderPropagation } from './propagation';
import { createAttemptSpanStage, createInboundSpanStage, createOutboundSpanStage } from './stages';
import { PooledIdGenerator, rootSamplingBound, SpanStarter } from './span-start';
import type { TracingOptions, TracingRuntime } from './index';

export function startExporting(config: TracingConfig & { endpoint: string }, propagation: HeaderPropagation, opts: TracingOptions): TracingRuntime {
  const counters = createExportCounters(opts.metrics.registry);
  const exporter = createSpanExporter(config);
  const sampler = createSampler(config.sampler, config.samplerRatio);
  const ids = new PooledIdGenerator();
  const provider = new BasicTracerProvider({
    resource: resourceFromAttributes({ ...config.resourceAttributes, [ATTR_SERVICE_NAME]: config.serviceName }),
    sampler,
    idGenerator: ids,
    spanProcessors: [createBatchProcessor(exporter, config, counters, opts.logger)],
  });
  const starter = new SpanStarter(provider.getTracer('pillion'), sampler, ids, rootSamplingBound(config.sampler, config.samplerRatio));
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


/** The SDK sampler OTEL_TRACES_SAMPLER names (exported for test/tracing-sampling.test.ts). */
export function createSampler(name: SamplerName, ratio: number): Sampler {
  switch (name) {
    case 'always_on': return new AlwaysOnSampler();
    case 'always_off': return new AlwaysOffSampler();
    case 'traceidratio': return new TraceIdRatioBasedSampler(ratio);
    case 'parentbased_always_off': return new ParentBasedSampler({ root: new AlwaysOffSampler() });
    case 'parentbased_traceidratio': return new ParentBasedSampler({ root: new TraceIdRatioBasedSampler(ratio) });
    case 'parentbased_always_on': return new ParentBasedSampler({ root: new AlwaysOnSampler() });
  }
}
