// The OTLP/HTTP sender on a worker thread. Measured on the proxy (paired runs, fresh processes):
// sending export requests with Node's http client on the main thread made every proxied request
// dearer (+14 us of CPU each at 1% sampling, ~15% of a request), apparently because the
// exporter's traffic goes through the same http/stream functions as the proxy's and spoils the
// JIT's type feedback there. On its own thread (its own V8 isolate) it costs the proxy nothing.
// Encoding happens there too (the SDK's OTLP serializers, protobuf or JSON): the protobuf
// encoder runs in bursts, cold, and cost the main thread another ~5 us per proxied request at 1%.
// The main thread only copies each finished span into a plain object for postMessage.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';

export interface WorkerExporterOptions {
  readonly url: string;
  readonly protocol: 'http/protobuf' | 'http/json';
  readonly headers: Readonly<Record<string, string>>;
  readonly timeoutMs: number;
}

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
    links: d.links.map((l) => ({ context: { ...l.context, traceState: state(l.traceState) }, attributes: l.attributes, droppedAttributesCount: l.droppedAttributesCount })),
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

/** What the serializers read of a span, as plain data that postMessage can copy. */
function plainSpan(span: ReadableSpan) {
  const sc = span.spanContext();
  const parent = span.parentSpanContext;
  return {
    name: span.name, kind: span.kind, startTime: span.startTime, endTime: span.endTime, duration: span.duration,
    traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags, traceState: sc.traceState?.serialize(),
    parent: parent ? { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.traceFlags, isRemote: parent.isRemote } : undefined,
    attributes: span.attributes, status: span.status, events: span.events,
    links: span.links.map((l) => ({
      context: { traceId: l.context.traceId, spanId: l.context.spanId, traceFlags: l.context.traceFlags, isRemote: l.context.isRemote },
      traceState: l.context.traceState?.serialize(), attributes: l.attributes, droppedAttributesCount: l.droppedAttributesCount,
    })),
    droppedAttributesCount: span.droppedAttributesCount, droppedEventsCount: span.droppedEventsCount, droppedLinksCount: span.droppedLinksCount,
  };
}

class ExportError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ExportError';
  }
}

export class WorkerSpanExporter implements SpanExporter {
  private worker: Worker | undefined;
  private readonly pending = new Map<number, (result: ExportResult) => void>();
  private seq = 0;
  private stopped = false;

  constructor(private readonly options: WorkerExporterOptions) {}

  export(spans: ReadableSpan[], resultCallback: (result: ExportResult) => void): void {
    if (this.stopped) {
      resultCallback({ code: ExportResultCode.FAILED, error: new ExportError('exporter is shut down') });
      return;
    }
    if (spans.length === 0) {
      resultCallback({ code: ExportResultCode.SUCCESS });
      return;
    }
    const id = ++this.seq;
    this.pending.set(id, resultCallback);
    const first = spans[0]!;
    const batch = {
      resource: first.resource.attributes,
      scope: { name: first.instrumentationScope.name, version: first.instrumentationScope.version },
      spans: spans.map(plainSpan),
    };
    this.ensureWorker().postMessage({ id, batch });
  }

  async shutdown(): Promise<void> {
    this.stopped = true;
    // The batch processor has already flushed (and waited for) the last batches.
    const worker = this.worker;
    this.worker = undefined;
    this.failAll('exporter is shut down');
    await worker?.terminate();
  }

  async forceFlush(): Promise<void> {}

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
    worker.on('message', (msg: { id: number; error?: string }) => {
      const cb = this.pending.get(msg.id);
      if (!cb) return;
      this.pending.delete(msg.id);
      cb(msg.error === undefined ? { code: ExportResultCode.SUCCESS } : { code: ExportResultCode.FAILED, error: new ExportError(msg.error) });
    });
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

  private failAll(why: string): void {
    for (const cb of this.pending.values()) cb({ code: ExportResultCode.FAILED, error: new ExportError(why) });
    this.pending.clear();
  }
}
