// Finished spans to an OTLP/HTTP collector: a bounded batch queue, and a count of every span
// that was dropped (queue full, or the collector refused, failed or timed out).
import { createNoopMeter, Counter as OtelCounter, Meter, MeterProvider } from '@opentelemetry/api';
import { BatchSpanProcessor, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { Counter, Registry } from 'prom-client';
import type { Logger } from '../runtime/logger';
import type { TracingConfig } from './config';
import { WorkerSpanExporter } from './export-worker';

export interface ExportCounters {
  readonly dropped: Counter<'reason'>;
  readonly exported: Counter;
}

export function createExportCounters(registry: Registry): ExportCounters {
  // Re-use when a registry already has them (several runtimes on one registry in tests).
  const dropped = (registry.getSingleMetric('pillion_tracing_spans_dropped_total') as Counter<'reason'> | undefined) ?? new Counter({
    name: 'pillion_tracing_spans_dropped_total',
    help: 'Sampled spans that never reached the collector: reason="queue-full" (export queue at OTEL_BSP_MAX_QUEUE_SIZE) or "export-failed" (collector down, slow or refusing).',
    labelNames: ['reason'] as const, registers: [registry],
  });
  const exported = (registry.getSingleMetric('pillion_tracing_spans_exported_total') as Counter | undefined) ?? new Counter({
    name: 'pillion_tracing_spans_exported_total', help: 'Spans the collector accepted.', registers: [registry],
  });
  // Present from the start, so that a dashboard sees 0 rather than no series.
  dropped.labels('queue-full').inc(0);
  dropped.labels('export-failed').inc(0);
  return { dropped, exported };
}

/** OTLP/HTTP, encoded by the SDK's serializers, sent from a worker thread (see export-worker.ts). */
export function createSpanExporter(config: TracingConfig & { endpoint: string }): SpanExporter {
  return new WorkerSpanExporter({ url: config.endpoint, protocol: config.protocol, headers: config.headers, timeoutMs: config.exportTimeoutMs });
}

/**
 * The SDK's BatchSpanProcessor: spans are queued when they end and exported in the background,
 * so a slow or absent collector never holds up a request; the queue is bounded by maxQueueSize.
 */
export function createBatchProcessor(exporter: SpanExporter, config: TracingConfig, counters: ExportCounters, logger: Logger): SpanProcessor {
  return new BatchSpanProcessor(exporter, {
    maxQueueSize: config.maxQueueSize,
    maxExportBatchSize: config.maxExportBatchSize,
    scheduledDelayMillis: config.scheduledDelayMs,
    exportTimeoutMillis: config.exportTimeoutMs + 1000,
    // The SDK reports its span outcomes (otel.sdk.processor.span.processed, with error.type
    // "queue_full" for drops at the queue and the export error's name for failed exports) to a
    // self-observability meter. We hand it a meter that feeds our Prometheus counters, which is
    // the one place that sees queue drops as they happen. (sdk-trace-base 2.x option, pinned.)
    selfObsMeterProvider: processedSpansMeterProvider(counters, logger, config.endpoint ?? ''),
  } as ConstructorParameters<typeof BatchSpanProcessor>[1]);
}

function processedSpansMeterProvider(counters: ExportCounters, logger: Logger, endpoint: string): MeterProvider {
  const queueFull = counters.dropped.labels('queue-full');
  const exportFailed = counters.dropped.labels('export-failed');
  // Log the start and end of an outage once each, not once per batch.
  let failing = false;
  let queueFullReported = false;
  const processed: Pick<OtelCounter, 'add'> = {
    add(count, attributes) {
      const errorType = attributes?.['error.type'];
      if (errorType === undefined) {
        counters.exported.inc(count);
        if (failing) logger.info('tracing: span export recovered', { endpoint });
        failing = false;
        queueFullReported = false;
      } else if (errorType === 'queue_full') {
        queueFull.inc(count);
        if (!queueFullReported) logger.warn('tracing: export queue full, dropping spans', { endpoint });
        queueFullReported = true;
      } else {
        exportFailed.inc(count);
        if (!failing) logger.warn('tracing: span export failed, dropping spans', { endpoint, error: String(errorType) });
        failing = true;
      }
    },
  };
  const noop = createNoopMeter();
  const meter: Meter = Object.assign(Object.create(noop) as Meter, {
    createCounter: (name: string, options?: Parameters<Meter['createCounter']>[1]) =>
      name === 'otel.sdk.processor.span.processed' ? processed as OtelCounter : noop.createCounter(name, options),
  });
  return { getMeter: () => meter };
}
