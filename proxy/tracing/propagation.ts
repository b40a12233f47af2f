// Trace context in and out of HTTP headers: W3C traceparent/tracestate and B3 (single `b3`
// header and the x-b3-* headers) are all accepted; the formats in OTEL_PROPAGATORS are emitted.
import type { IncomingHttpHeaders } from 'node:http';
import { Context, ROOT_CONTEXT, TextMapGetter, TextMapPropagator, TextMapSetter, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3InjectEncoding, B3Propagator } from '@opentelemetry/propagator-b3';
import type { Logger } from '../runtime/logger';

export type EmitFormat = 'tracecontext' | 'b3' | 'b3multi';

/** Every header that carries a trace position, whatever its format: all are replaced together. */
const TRACE_HEADERS = ['traceparent', 'tracestate', 'b3', 'x-b3-traceid', 'x-b3-spanid', 'x-b3-parentspanid', 'x-b3-sampled', 'x-b3-flags'];

const getter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};
const setter: TextMapSetter<IncomingHttpHeaders> = {
  set: (carrier, key, value) => { carrier[key] = value; },
};

export interface HeaderPropagation {
  /** The caller's trace position, or ROOT_CONTEXT when the request carries none (or a malformed one). */
  extract(headers: IncomingHttpHeaders): Context;
  /**
   * Replace every trace header with `context`'s position, so that the next hop never sees a
   * stale parent from another format (say, the caller's x-b3-spanid beside our traceparent).
   */
  inject(context: Context, headers: IncomingHttpHeaders): void;
}

export function createHeaderPropagation(formats: readonly EmitFormat[]): HeaderPropagation {
  const w3c = new W3CTraceContextPropagator();
  // B3Propagator extracts both encodings (single header first); the encoding only chooses what it injects.
  const b3Single = new B3Propagator({ injectEncoding: B3InjectEncoding.SINGLE_HEADER });
  const injectors: TextMapPropagator[] = [];
  if (formats.includes('tracecontext')) injectors.push(w3c);
  if (formats.includes('b3')) injectors.push(b3Single);
  if (formats.includes('b3multi')) injectors.push(new B3Propagator({ injectEncoding: B3InjectEncoding.MULTI_HEADER }));
  return {
    extract(headers) {
      // W3C wins when both are present: it is the format that also carries tracestate.
      if (headers.traceparent !== undefined) {
        const ctx = w3c.extract(ROOT_CONTEXT, headers, getter);
        if (trace.getSpanContext(ctx)) return ctx;
      }
      if (headers.b3 !== undefined || headers['x-b3-traceid'] !== undefined) return b3Single.extract(ROOT_CONTEXT, headers, getter);
      return ROOT_CONTEXT;
    },
    inject(context, headers) {
      // OTEL_PROPAGATORS=none: the proxy leaves whatever the app sent alone.
      if (injectors.length === 0) return;
      for (const name of TRACE_HEADERS) if (headers[name] !== undefined) delete headers[name];
      for (const p of injectors) p.inject(context, headers, setter);
    },
  };
}

/** OTEL_PROPAGATORS, restricted to the formats a proxy can translate; default: all three. */
export function decodePropagators(raw: string | undefined, logger: Logger): EmitFormat[] {
  const all: EmitFormat[] = ['tracecontext', 'b3', 'b3multi'];
  if (raw === undefined || raw.trim() === '') return all;
  const out: EmitFormat[] = [];
  for (const name of raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    if ((all as string[]).includes(name)) out.push(name as EmitFormat);
    else if (name === 'none') return [];
    // baggage is not ours to rewrite: the proxy forwards that header untouched.
    else if (name !== 'baggage') logger.warn('tracing: ignoring unsupported propagator', { variable: 'OTEL_PROPAGATORS', value: name });
  }
  return out;
}
