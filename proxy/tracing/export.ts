// Finished spans to an OTLP/HTTP collector: a bounded batch queue, and a count of every span
// that was dropped (queue full, or the collector refused, failed or timed out).
import { ATTR_SERVICE_NAME } from '@opentelemetry/semantic-conventions';
import { Counter, Registry } from 'prom-client';
import { BatchQueue, ExportOutcome } from './batch-queue';
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
export function createSpanExporter(config: TracingConfig & { endpoint: string }): WorkerSpanExporter {
  return new WorkerSpanExporter({
    url: config.endpoint, protocol: config.protocol, headers: config.headers, timeoutMs: config.exportTimeoutMs,
    resource: { ...config.resourceAttributes, [ATTR_SERVICE_NAME]: config.serviceName },
  });
}

/** The queue finished spans wait in, sending through `exporter`. */
export function createBatchQueue(exporter: WorkerSpanExporter, config: TracingConfig, counters: ExportCounters, logger: Logger): BatchQueue {
  return new BatchQueue(
    { maxQueueSize: config.maxQueueSize, maxExportBatchSize: config.maxExportBatchSize, scheduledDelayMs: config.scheduledDelayMs },
    (spans) => exporter.send(spans),
    exportOutcome(counters, logger, config.endpoint ?? ''),
  );
}

function exportOutcome(counters: ExportCounters, logger: Logger, endpoint: string): ExportOutcome {
  const queueFull = counters.dropped.labels('queue-full');
  const exportFailed = counters.dropped.labels('export-failed');
  // Log the start and end of an outage once each, not once per batch.
  let failing = false;
  let queueFullReported = false;
  return {
    exported(count) {
      counters.exported.inc(count);
      if (failing) logger.info('tracing: span export recovered', { endpoint });
      failing = false;
      queueFullReported = false;
    },
    queueFull(count) {
      queueFull.inc(count);
      if (!queueFullReported) logger.warn('tracing: export queue full, dropping spans', { endpoint });
      queueFullReported = true;
    },
    failed(count, reason) {
      exportFailed.inc(count);
      if (!failing) logger.warn('tracing: span export failed, dropping spans', { endpoint, error: reason });
      failing = true;
    },
  };
}
