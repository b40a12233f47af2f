// The OTLP/HTTP sender on a worker thread. Measured on the proxy (paired runs, fresh processes):
// sending export requests with Node's http client on the main thread made every proxied request
// dearer (+14 us of CPU each at 1% sampling, ~15% of a request), apparently because the
// exporter's traffic goes through the same http/stream functions as the proxy's and spoils the
// JIT's type feedback there. On its own thread (its own V8 isolate) it costs the proxy nothing.
// Encoding happens there too (the SDK's OTLP serializers, protobuf or JSON): the protobuf
// encoder runs in bursts, cold, and cost the main thread another ~5 us per proxied request at 1%.
// The main thread posts its span records (recorded-span.ts) as they are.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Attributes } from '@opentelemetry/api';
import type { SpanRecord } from './recorded-span';

export interface WorkerExporterOptions {
  readonly url: string;
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
  /** The resource's attributes (service.name, OTEL_RESOURCE_ATTRIBUTES). */
  readonly resource: Attributes;
}

/** The instrumentation scope every span is reported under. */
const SCOPE = { name: 'pillion' };

/**
 * Plain JavaScript, run with `eval: true`: the worker needs no file of its own, so it works the
 * same from dist/ and from the TypeScript sources the tests load.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const http = require('node:http');
const https = require('node:https');
const { url, headers, timeoutMs, contentType, transformerPath, perBatchClasses } = workerData;
const { JsonTraceSerializer, ProtobufTraceSerializer } = require(transformerPath);
const serializer = contentType === 'application/json' ? JsonTraceSerializer : ProtobufTraceSerializer;
const target = new URL(url);
const state = (s) => (s ? { serialize: () => s } : undefined);
// Back to the shape the serializers read (ReadableSpan); one resource and scope object per
// batch, since the serializer groups spans by their identity.
function revive(batch) {
  const resource = { attributes: batch.resource, droppedAttributesCount: 0 };
  const scope = batch.scope;
  return batch.spans.map((d) => ({
    name: d.name, kind: d.kind, startTime: d.startTime, endTime: d.endTime, duration: d.duration, ended: true,
    spanContext: () => ({ traceId: d.traceId, spanId: d.spanId, traceFlags: d.traceFlags, traceState: state(d.traceState) }),
    parentSpanContext: d.parent, attributes: d.attributes, status: d.status, events: d.events,
    // The proxy's span records carry no links (recorded-span.ts): their empty list goes as it is.
    links: d.links,
    resource, instrumentationScope: scope,
    droppedAttributesCount: d.droppedAttributesCount, droppedEventsCount: d.droppedEventsCount, droppedLinksCount: d.droppedLinksCount,
  }));
}
const client = target.protocol === 'https:' ? https : http;
const agent = new client.Agent({ keepAlive: true, maxSockets: 4 });
// One instance of each class the protobuf serializer makes afresh for every batch, kept for
// the worker's life. Between batches (seconds apart) no instance would be alive, so a major GC
// could collect the classes' hidden classes, and with them the serializer's optimized code,
// which V8 then compiles again for the next batch ("deoptimization, reason: weak objects").
// Measured at 1% sampling: without these, the worker recompiled its writer every few seconds,
// on the core the proxy shares. Best effort: a later transformer that moves them only costs that.
const keepAlive = [];
for (const { path, name } of perBatchClasses) {
  try { keepAlive.push(new (require(path)[name])(16)); } catch {}
}
// The same for the objects postMessage delivers (span, status, attributes): the last batch (at
// most OTEL_BSP_MAX_EXPORT_BATCH_SIZE spans) is kept until the next one arrives.
let lastBatch;
parentPort.on('message', ({ id, batch }) => {
  let settled = false;
  let timer;
  const done = (error) => {
    if (settled) return;
    settled = true;
    clearTimeout(timer);
    parentPort.postMessage({ id, error });
  };
  let body;
  try {
    lastBatch = revive(batch);
    body = serializer.serializeRequest(lastBatch);
  } catch (e) {
    body = undefined;
  }
  if (!body) return done('spans could not be encoded');
  const req = client.request(target, {
    method: 'POST', agent,
    headers: { ...headers, 'content-type': contentType, 'content-length': body.byteLength, 'user-agent': 'pillion' },
  }, (res) => {
    res.resume();
    res.on('end', () => done(res.statusCode >= 200 && res.statusCode < 300 ? undefined : 'HTTP ' + res.statusCode));
    res.on('error', (e) => done(e.code || e.message));
  });
  timer = setTimeout(() => { done('timeout after ' + timeoutMs + ' ms'); req.destroy(); }, timeoutMs);
  req.on('error', (e) => done(e.code || e.message));
  req.end(Buffer.from(body.buffer, body.byteOffset, body.byteLength));
});
`;

/**
 * Where the protobuf serializer's per-batch classes live inside the pinned otlp-transformer:
 * internal files, so test/tracing-export-worker.test.ts fails when an upgrade moves them.
 */
export function serializerPerBatchClasses(transformerPath = require.resolve('@opentelemetry/otlp-transformer')): { path: string; name: string }[] {
  const dir = path.join(path.dirname(transformerPath), 'common', 'protobuf');
  return [
    { path: path.join(dir, 'protobuf-writer.js'), name: 'ProtobufWriter' },
    { path: path.join(dir, 'protobuf-size-estimator.js'), name: 'ProtobufSizeEstimator' },
  ];
}

export class WorkerSpanExporter {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, (error: string | undefined) => void>();
  private seq = 0;
  private stopped = false;

  constructor(private readonly options: WorkerExporterOptions) {}

  /** One batch to the collector: undefined once it took it, else why it did not. */
  send(spans: SpanRecord[]): Promise<string | undefined> {
    if (this.stopped) return Promise.resolve('exporter is shut down');
    if (spans.length === 0) return Promise.resolve(undefined);
    const id = ++this.seq;
    return new Promise((resolve) => {
      // The worker bounds each request by timeoutMs; this bounds a worker that never answers.
      const timer = setTimeout(() => this.settle(id, 'export worker did not answer'), this.options.timeoutMs + 1000);
      timer.unref();
      this.pending.set(id, (error) => {
        clearTimeout(timer);
        resolve(error);
      });
      this.ensureWorker().postMessage({ id, batch: { resource: this.options.resource, scope: SCOPE, spans } });
    });
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    // The batch queue has already sent (and waited for) the last batches.
    const worker = this.worker;
    this.worker = undefined;
    this.failAll('exporter is shut down');
    await worker?.terminate();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    // Resolved here: an eval'd worker would resolve modules from the current directory.
    const transformerPath = require.resolve('@opentelemetry/otlp-transformer');
    const worker = new Worker(WORKER_SOURCE, {
      eval: true,
      workerData: {
        url: this.options.url, headers: this.options.headers, timeoutMs: this.options.timeoutMs,
        contentType: this.options.protocol === 'http/json' ? 'application/json' : 'application/x-protobuf',
        transformerPath,
        perBatchClasses: serializerPerBatchClasses(transformerPath),
      },
      // The proxy's flags (--cpu-prof, loaders) are not for the sender.
      execArgv: [],
      resourceLimits: { maxOldGenerationSizeMb: 64 },
    });
    // Never what keeps the proxy alive.
    worker.unref();
    worker.on('message', (msg: { id: number; error?: string }) => this.settle(msg.id, msg.error));
    // A dead sender fails what it held; the next export starts a new one.
    const lost = (why: string) => {
      if (this.worker === worker) this.worker = undefined;
      this.failAll(why);
    };
    worker.on('error', (err) => lost(`export worker failed: ${err.message}`));
    worker.on('exit', () => lost('export worker exited'));
    this.worker = worker;
    return worker;
  }

  private settle(id: number, error: string | undefined): void {
    const cb = this.pending.get(id);
    if (!cb) return;
    this.pending.delete(id);
    cb(error);
  }

  private failAll(why: string): void {
    const all = [...this.pending.values()];
    this.pending.clear();
    for (const cb of all) cb(why);
  }
}
