// A minimal OTLP/HTTP trace receiver for tests: accepts POST /v1/traces in protobuf or JSON,
// decodes the spans itself (its own wire decoder, independent of the exporter's encoder), and
// can play a collector that is down, failing or slow.
import http from 'node:http';
import type { AddressInfo } from 'node:net';

export type AttrValue = string | number | boolean;

export interface ReceivedSpan {
  readonly encoding: 'protobuf' | 'json';
  readonly service: string;
  readonly traceId: string;
  readonly spanId: string;
  /** '' for a root span. */
  readonly parentSpanId: string;
  readonly traceState: string;
  readonly name: string;
  /** OTLP enum: 1 internal, 2 server, 3 client. */
  readonly kind: number;
  readonly startNs: bigint;
  readonly endNs: bigint;
  readonly attributes: Readonly<Record<string, AttrValue>>;
  /** OTLP enum: 0 unset, 1 ok, 2 error. */
  readonly status: { readonly code: number; readonly message: string };
}

export interface OtlpReceiver {
  readonly url: string;
  readonly spans: ReceivedSpan[];
  /** Content types of the export requests received, in order. */
  readonly contentTypes: string[];
  /** ok: 200; fail: 500 to every export; hang: never answer. */
  mode: 'ok' | 'fail' | 'hang';
  /** Resolves once `predicate` holds over the spans received, or rejects after `timeoutMs`. */
  waitFor(predicate: (spans: readonly ReceivedSpan[]) => boolean, timeoutMs?: number): Promise<ReceivedSpan[]>;
  close(): Promise<void>;
}

export async function startOtlpReceiver(): Promise<OtlpReceiver> {
  const spans: ReceivedSpan[] = [];
  const contentTypes: string[] = [];
  const waiters = new Set<() => void>();
  const hanging = new Set<http.ServerResponse>();
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (receiver.mode === 'hang') { hanging.add(res); return; }
      if (receiver.mode === 'fail') { res.writeHead(500).end(); return; }
      if (req.method !== 'POST' || req.url !== '/v1/traces') { res.writeHead(404).end(); return; }
      const type = String(req.headers['content-type'] ?? '');
      contentTypes.push(type);
      const body = Buffer.concat(chunks);
      try {
        if (type.startsWith('application/json')) {
          spans.push(...decodeJson(JSON.parse(body.toString('utf8'))));
          res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
        } else if (type.startsWith('application/x-protobuf')) {
          spans.push(...decodeProtobuf(body));
          res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
        } else {
          res.writeHead(415).end();
          return;
        }
      } catch (err) {
        res.writeHead(400).end(String(err));
        return;
      }
      for (const w of [...waiters]) w();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;

  const receiver: OtlpReceiver = {
    url: `http://127.0.0.1:${port}`,
    spans,
    contentTypes,
    mode: 'ok',
    waitFor(predicate, timeoutMs = 5000) {
      return new Promise((resolve, reject) => {
        if (predicate(spans)) { resolve(spans); return; }
        const check = () => {
          if (!predicate(spans)) return;
          clearTimeout(timer);
          waiters.delete(check);
          resolve(spans);
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`spans not received in ${timeoutMs} ms; have: ${JSON.stringify(spans.map((s) => `${s.service}/${s.name}/${s.kind}`))}`));
        }, timeoutMs);
        waiters.add(check);
      });
    },
    close() {
      for (const res of hanging) res.destroy();
      server.closeAllConnections();
      return new Promise((r) => server.close(() => r()));
    },
  };
  return receiver;
}

// ---- OTLP/JSON (ids as hex strings, enums as integers, int64 as strings) ----

interface JsonKeyValue { key: string; value: Record<string, unknown> }

function jsonAttrs(list: JsonKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of list ?? []) {
    const v = kv.value;
    if ('stringValue' in v) out[kv.key] = String(v.stringValue);
    else if ('intValue' in v) out[kv.key] = Number(v.intValue);
    else if ('doubleValue' in v) out[kv.key] = Number(v.doubleValue);
    else if ('boolValue' in v) out[kv.key] = Boolean(v.boolValue);
  }
  return out;
}

/* eslint-disable @typescript-eslint/no-explicit-any */
function decodeJson(body: any): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of body.resourceSpans ?? []) {
    const service = String(jsonAttrs(rs.resource?.attributes)['service.name'] ?? '');
    for (const ss of rs.scopeSpans ?? []) {
      for (const s of ss.spans ?? []) {
        out.push({
          encoding: 'json', service,
          traceId: s.traceId, spanId: s.spanId, parentSpanId: s.parentSpanId ?? '', traceState: s.traceState ?? '',
          name: s.name, kind: Number(s.kind),
          startNs: BigInt(s.startTimeUnixNano), endNs: BigInt(s.endTimeUnixNano),
          attributes: jsonAttrs(s.attributes),
          status: { code: Number(s.status?.code ?? 0), message: s.status?.message ?? '' },
        });
      }
    }
  }
  return out;
}

// ---- OTLP/protobuf: just the fields of ExportTraceServiceRequest the tests read ----

type Field = { no: number; wire: number; varint?: bigint; bytes?: Buffer };

function* fields(buf: Buffer): Generator<Field> {
  let pos = 0;
  const varint = (): bigint => {
    let result = 0n, shift = 0n;
    for (;;) {
      if (pos >= buf.length) throw new Error('truncated varint');
      const b = buf[pos++]!;
      result |= BigInt(b & 0x7f) << shift;
      if ((b & 0x80) === 0) return result;
      shift += 7n;
    }
  };
  while (pos < buf.length) {
    const key = Number(varint());
    const no = key >>> 3, wire = key & 7;
    if (wire === 0) yield { no, wire, varint: varint() };
    else if (wire === 1) { yield { no, wire, bytes: buf.subarray(pos, pos + 8) }; pos += 8; }
    else if (wire === 5) { yield { no, wire, bytes: buf.subarray(pos, pos + 4) }; pos += 4; }
    else if (wire === 2) {
      const len = Number(varint());
      if (pos + len > buf.length) throw new Error('truncated field');
      yield { no, wire, bytes: buf.subarray(pos, pos + len) };
      pos += len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

function pbAnyValue(buf: Buffer): AttrValue | undefined {
  for (const f of fields(buf)) {
    if (f.no === 1) return f.bytes!.toString('utf8');
    if (f.no === 2) return f.varint !== 0n;
    if (f.no === 3) return Number(BigInt.asIntN(64, f.varint!));
    if (f.no === 4) return f.bytes!.readDoubleLE(0);
  }
  return undefined;
}

function pbKeyValue(buf: Buffer, into: Record<string, AttrValue>): void {
  let key = '';
  let value: AttrValue | undefined;
  for (const f of fields(buf)) {
    if (f.no === 1) key = f.bytes!.toString('utf8');
    else if (f.no === 2) value = pbAnyValue(f.bytes!);
  }
  if (value !== undefined) into[key] = value;
}

function decodeProtobuf(body: Buffer): ReceivedSpan[] {
  const out: ReceivedSpan[] = [];
  for (const rs of fields(body)) {
    if (rs.no !== 1) continue;
    const resourceAttrs: Record<string, AttrValue> = {};
    const scopeSpans: Buffer[] = [];
    for (const f of fields(rs.bytes!)) {
      if (f.no === 1) for (const a of fields(f.bytes!)) { if (a.no === 1) pbKeyValue(a.bytes!, resourceAttrs); }
      else if (f.no === 2) scopeSpans.push(f.bytes!);
    }
    const service = String(resourceAttrs['service.name'] ?? '');
    for (const ss of scopeSpans) {
      for (const sf of fields(ss)) {
        if (sf.no !== 2) continue;
        const span = {
          encoding: 'protobuf' as const, service, traceId: '', spanId: '', parentSpanId: '', traceState: '', name: '', kind: 0,
          startNs: 0n, endNs: 0n, attributes: {} as Record<string, AttrValue>, status: { code: 0, message: '' },
        };
        for (const f of fields(sf.bytes!)) {
          switch (f.no) {
            case 1: span.traceId = f.bytes!.toString('hex'); break;
            case 2: span.spanId = f.bytes!.toString('hex'); break;
            case 3: span.traceState = f.bytes!.toString('utf8'); break;
            case 4: span.parentSpanId = f.bytes!.toString('hex'); break;
            case 5: span.name = f.bytes!.toString('utf8'); break;
            case 6: span.kind = Number(f.varint); break;
            case 7: span.startNs = f.bytes!.readBigUInt64LE(0); break;
            case 8: span.endNs = f.bytes!.readBigUInt64LE(0); break;
            case 9: pbKeyValue(f.bytes!, span.attributes); break;
            case 15:
              for (const st of fields(f.bytes!)) {
                if (st.no === 2) span.status.message = st.bytes!.toString('utf8');
                else if (st.no === 3) span.status.code = Number(st.varint);
              }
              break;
          }
        }
        out.push(span);
      }
    }
  }
  return out;
}
