// Tracing's export mode: the sampling policy, the id pool, the batch queue and the span stages.
// Loaded by ./index only when an OTLP endpoint is configured.
//
// The main thread uses none of the OpenTelemetry SDK's objects (tracer provider, samplers,
// spans, batch processor): the stages make RecordedSpans under the standard samplers' rules,
// this queue batches them, and the SDK's OTLP serializers encode them on the export worker.
// Measured side by side against the same proxy built on the SDK's BasicTracerProvider and
// BatchSpanProcessor: 1.092x the throughput at 100% sampling, the same (1.002x) at 1%.
import type { PolicyRuntime } from '../listeners/policy-runtime';
import type { TracingConfig } from './config';
import { createBatchQueue, createExportCounters, createSpanExporter } from './export';
import type { HeaderPropagation } from './propagation';
import { samplingPolicy } from './sampling';
import { createAttemptSpanStage, createInboundSpanStage, createOutboundSpanStage } from './stages';
import { PooledIdGenerator, SpanStarter } from './span-start';
import type { TracingOptions, TracingRuntime } from './index';

export function startExporting(config: TracingConfig & { endpoint: string }, propagation: HeaderPropagation, opts: TracingOptions): TracingRuntime {
  const counters = createExportCounters(opts.metrics.registry);
  const exporter = createSpanExporter(config);
  const queue = createBatchQueue(exporter, config, counters, opts.logger);
  const starter = new SpanStarter(samplingPolicy(config.sampler, config.samplerRatio), new PooledIdGenerator(), queue.add);
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
        await Promise.race([queue.close().catch(() => undefined), late]);
        clearTimeout(timer);
        // Stops the sender thread even when the last flush is still waiting for the collector.
        await exporter.shutdown();
      })();
      return stopped;
    },
  };
}

