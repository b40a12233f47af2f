// Trace context in and out of HTTP headers: W3C traceparent/tracestate and B3 (single `b3`
// header and the x-b3-* headers) are all accepted. Emitted: W3C, plus B3 in the encoding(s)
// the caller used; or exactly the formats OTEL_PROPAGATORS lists, when it is set.
// Parsing untrusted input is left to the OpenTelemetry propagators; writing is done here, on
// every request, from ids that are already known to be valid (cheaper than the propagators'
// inject, which re-validates and goes through the context API per format).
import type { IncomingHttpHeaders } from 'node:http';
import { Context, ROOT_CONTEXT, SpanContext, TextMapGetter, trace, TraceFlags } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator } from '@opentelemetry/propagator-b3';
import type { Logger } from '../runtime/logger';

export type EmitFormat = 'tracecontext' | 'b3' | 'b3multi';

const SAMPLED = TraceFlags.SAMPLED; // the API exports it through a getter: read once

/**
 * Removes every header that carries a trace position, whatever its format: all are replaced
 * together. Spelled out rather than looped over a list of names: a lookup by a varying key is
 * a megamorphic one in V8, several times dearer than these, on every request.
 */
function removeTraceHeaders(h: IncomingHttpHeaders): void {
  if (h.traceparent !== undefined) delete h.traceparent;
  if (h.tracestate !== undefined) delete h.tracestate;
  if (h.b3 !== undefined) delete h.b3;
  if (h['x-b3-traceid'] !== undefined) delete h['x-b3-traceid'];
  if (h['x-b3-spanid'] !== undefined) delete h['x-b3-spanid'];
  if (h['x-b3-parentspanid'] !== undefined) delete h['x-b3-parentspanid'];
  if (h['x-b3-sampled'] !== undefined) delete h['x-b3-sampled'];
  if (h['x-b3-flags'] !== undefined) delete h['x-b3-flags'];
}

const getter: TextMapGetter<IncomingHttpHeaders> = {
  keys: (carrier) => Object.keys(carrier),
  get: (carrier, key) => carrier[key],
};

export interface Extracted {
  /** The caller's trace position, or ROOT_CONTEXT when the request carries none (or a malformed one). */
  readonly context: Context;
  /** B3 debug ("d" / x-b3-flags: 1): passed on as it came. */
  readonly debug: boolean;
  /** Which B3 encodings the caller sent: the next hop gets the same (besides W3C). */
  readonly b3Single: boolean;
  readonly b3Multi: boolean;
}

const NONE: Extracted = { context: ROOT_CONTEXT, debug: false, b3Single: false, b3Multi: false };

export interface HeaderPropagation {
  /**
   * True when the request carries no trace in any format and a new root goes out as the W3C
   * header alone: the stages may then write it with injectRoot, without extract and inject.
   */
  fresh(headers: IncomingHttpHeaders): boolean;
  /** A new root's traceparent as the one trace header (see fresh). */
  injectRoot(traceparent: string, headers: IncomingHttpHeaders): void;
  extract(headers: IncomingHttpHeaders): Extracted;
  /**
   * Replace every trace header with `sc`'s position, so that the next hop never sees a stale
   * parent from another format (say, the caller's x-b3-spanid beside our traceparent).
   */
  inject(sc: SpanContext, from: Extracted, headers: IncomingHttpHeaders): void;
}

/**
 * `formats` undefined: W3C always, B3 only towards callers that speak it. Writing every format
 * on every request measurably costs CPU (four more headers per hop) for apps that mostly
 * speak W3C; OTEL_PROPAGATORS=tracecontext,b3,b3multi asks for all of them always.
 */
export function createHeaderPropagation(formats: readonly EmitFormat[] | undefined): HeaderPropagation {
  const w3c = new W3CTraceContextPropagator();
  // Extracts both B3 encodings (the single header first).
  const b3 = new B3Propagator();
  const auto = formats === undefined;
  const emitW3c = auto || formats.includes('tracecontext');
  const emitB3 = !auto && formats.includes('b3');
  const emitB3Multi = !auto && formats.includes('b3multi');
  const emitNone = !auto && formats.length === 0;
  // What a caller without a trace is sent: W3C alone, unless B3 is asked for always (or nothing is).
  const rootIsW3cOnly = emitW3c && !emitB3 && !emitB3Multi;
  return {
    fresh(headers) {
      return rootIsW3cOnly && headers.traceparent === undefined && headers.b3 === undefined && headers['x-b3-traceid'] === undefined;
    },
    injectRoot(traceparent, headers) {
      // Stray parts of a trace (a tracestate without its traceparent) do not go on beside ours.
      removeTraceHeaders(headers);
      headers.traceparent = traceparent;
    },
    extract(headers) {
      const single = headers.b3;
      const b3Single = single !== undefined;
      const b3Multi = headers['x-b3-traceid'] !== undefined;
      // W3C wins when both are present: it is the format that also carries tracestate.
      if (headers.traceparent !== undefined) {
        const context = w3c.extract(ROOT_CONTEXT, headers, getter);
        if (trace.getSpanContext(context)) return { context, debug: false, b3Single, b3Multi };
      }
      if (b3Single || b3Multi) {
        const context = b3.extract(ROOT_CONTEXT, headers, getter);
        const debug = typeof single === 'string' ? single.split('-')[2] === 'd' : headers['x-b3-flags'] === '1';
        return trace.getSpanContext(context) ? { context, debug, b3Single, b3Multi } : NONE;
      }
      return NONE;
    },
    inject(sc, from, headers) {
      // OTEL_PROPAGATORS=none: the proxy leaves whatever the app sent alone.
      if (emitNone) return;
      removeTraceHeaders(headers);
      const sampled = (sc.traceFlags & SAMPLED) === SAMPLED;
      if (emitW3c) {
        headers.traceparent = `00-${sc.traceId}-${sc.spanId}-${sampled ? '01' : '00'}`;
        const state = sc.traceState?.serialize();
        if (state) headers.tracestate = state;
      }
      const debug = from.debug;
      if (emitB3 || (auto && from.b3Single)) headers.b3 = `${sc.traceId}-${sc.spanId}-${debug ? 'd' : sampled ? '1' : '0'}`;
      if (emitB3Multi || (auto && from.b3Multi)) {
        headers['x-b3-traceid'] = sc.traceId;
        headers['x-b3-spanid'] = sc.spanId;
        // B3: debug implies sampled, and the two are not sent together.
        if (debug) headers['x-b3-flags'] = '1';
        else headers['x-b3-sampled'] = sampled ? '1' : '0';
      }
    },
  };
}

/** OTEL_PROPAGATORS, restricted to the formats a proxy can translate; unset: undefined (see above). */
export function decodePropagators(raw: string | undefined, logger: Logger): EmitFormat[] | undefined {
  const all: EmitFormat[] = ['tracecontext', 'b3', 'b3multi'];
  if (raw === undefined || raw.trim() === '') return undefined;
  const out: EmitFormat[] = [];
  for (const name of raw.split(',').map((s) => s.trim().toLowerCase()).filter(Boolean)) {
    if ((all as string[]).includes(name)) out.push(name as EmitFormat);
    else if (name === 'none') return [];
    // baggage is not ours to rewrite: the proxy forwards that header untouched.
    else if (name !== 'baggage') logger.warn('tracing: ignoring unsupported propagator', { variable: 'OTEL_PROPAGATORS', value: name });
  }
  return out;
}
