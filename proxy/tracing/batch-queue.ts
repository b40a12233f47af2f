// Finished spans wait here for export: a bounded queue, sent in batches by the export worker.
// The OTEL_BSP_* rules of the SDK's BatchSpanProcessor: a batch goes when
// OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans are queued or OTEL_BSP_SCHEDULE_DELAY after the first
// one; one export at a time; a span that finds OTEL_BSP_MAX_QUEUE_SIZE waiting is dropped. So a
// slow or absent collector never holds up a request, and memory stays bounded.
import type { SpanRecord } from './recorded-span';

export interface BatchQueueOptions {
  readonly maxQueueSize: number;
  readonly maxExportBatchSize: number;
  readonly scheduledDelayMs: number;
}

/** Where a batch goes; resolves with undefined once the collector took it, else why not. */
export type SendBatch = (spans: SpanRecord[]) => Promise<string | undefined>;

/** What became of the spans (the Prometheus counters and the log, export.ts). */
export interface ExportOutcome {
  exported(count: number): void;
  queueFull(count: number): void;
  failed(count: number, reason: string): void;
}

export class BatchQueue {
  private queue: SpanRecord[] = [];
  private timer: NodeJS.Timeout | undefined;
  private sending: Promise<void> | undefined;
  private closed = false;

  constructor(private readonly opts: BatchQueueOptions, private readonly send: SendBatch, private readonly outcome: ExportOutcome) {}

  /** RecordedSpan's sink. */
  readonly add = (span: SpanRecord): void => {
    if (this.closed) return;
    if (this.queue.length >= this.opts.maxQueueSize) {
      this.outcome.queueFull(1);
      return;
    }
    this.queue.push(span);
    this.schedule();
  };

  /** Sends everything still queued, one batch after another; takes no more spans. */
  async close(): Promise<void> {
    this.closed = true;
    this.clearTimer();
    for (;;) {
      if (this.sending) await this.sending;
      else if (this.queue.length > 0) this.sendOne();
      else return;
    }
  }

  private schedule(): void {
    // The running export reschedules when it ends.
    if (this.sending) return;
    if (this.queue.length >= this.opts.maxExportBatchSize) {
      this.sendOne();
      return;
    }
    if (this.timer !== undefined) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.sendOne();
    }, this.opts.scheduledDelayMs);
    // Never what keeps the proxy alive.
    this.timer.unref();
  }

  private sendOne(): void {
    this.clearTimer();
    if (this.sending || this.queue.length === 0) return;
    const batch = this.queue.length <= this.opts.maxExportBatchSize ? this.queue : this.queue.slice(0, this.opts.maxExportBatchSize);
    this.queue = batch === this.queue ? [] : this.queue.slice(batch.length);
    this.sending = this.send(batch).then(
      (error) => (error === undefined ? this.outcome.exported(batch.length) : this.outcome.failed(batch.length, error)),
      (err: unknown) => this.outcome.failed(batch.length, err instanceof Error ? err.message : String(err)),
    ).finally(() => {
      this.sending = undefined;
      if (!this.closed && this.queue.length > 0) this.schedule();
    });
  }

  private clearTimer(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }
}
