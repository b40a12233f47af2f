// The tracing stages: a SERVER span per inbound request, and per outbound request one span for
// the whole call with a CLIENT span per attempt beneath it. Each records how its part ended:
// the status the upstream gave, or the local reply (error status, error.type and pillion.reason).
import type { IncomingMessage } from 'node:http';
import { Context, Span, SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { ATTR_ERROR_TYPE, ATTR_HTTP_RESPONSE_STATUS_CODE, ATTR_NETWORK_PEER_ADDRESS, ATTR_NETWORK_PEER_PORT } from '@opentelemetry/semantic-conventions';
import { ProxyError, toProxyError } from '../errors';
import { Handler, onResponseClose, RequestContext, Stage } from '../pipeline';
import {
  ATTR_PILLION_ATTEMPT_COUNT, ATTR_PILLION_REASON, clientAttributes, outboundAttributes, serverAttributes, spanName, splitHostPort,
} from './attributes';
import type { Extracted, HeaderPropagation } from './propagation';
import type { SpanStarter } from './span-start';

// The API exports these through getters: read once here, not on every request.
const SERVER = SpanKind.SERVER;
const CLIENT = SpanKind.CLIENT;
const INTERNAL = SpanKind.INTERNAL;
const traceApi = trace;

/** What the outbound stage leaves for the attempt stage further in. */
const OUTBOUND_SLOT = Symbol('pillion.tracing.outbound');

interface OutboundState {
  /** The context of the whole-call span: every attempt's parent. */
  readonly context: Context;
  /** What the app sent (B3 encodings, debug), so every attempt speaks the same way. */
  readonly from: Extracted;
  attempts: number;
  /** Attempt spans still waiting for their response body; ended with the client's response at the latest. */
  readonly open: Set<SpanEnd>;
}

/** Ends a span once: on the first of response end, client gone, or error. */
class SpanEnd {
  private done = false;
  constructor(readonly span: Span) {}
  end = (): void => {
    if (this.done) return;
    this.done = true;
    this.span.end();
  };
  get ended(): boolean { return this.done; }
}

/** `serverSide`: SERVER spans only count 5xx as errors; client-side spans count 4xx too (conventions). */
function recordResponse(span: Span, status: number | undefined, serverSide: boolean): void {
  if (status === undefined) return;
  span.setAttribute(ATTR_HTTP_RESPONSE_STATUS_CODE, status);
  if (status >= (serverSide ? 500 : 400)) {
    span.setAttribute(ATTR_ERROR_TYPE, String(status));
    span.setStatus({ code: SpanStatusCode.ERROR });
  }
}

/** A local reply (or a failed attempt) is always an error, whatever its status code. */
function recordLocalReply(span: Span, err: ProxyError): void {
  span.setAttributes({
    [ATTR_HTTP_RESPONSE_STATUS_CODE]: err.status,
    [ATTR_ERROR_TYPE]: err.reason,
    [ATTR_PILLION_REASON]: err.reason,
  });
  span.setStatus({ code: SpanStatusCode.ERROR, message: err.message });
}

function recordPeer(span: Span, ctx: RequestContext): void {
  const peer = splitHostPort(ctx.upstream);
  if (!peer) return;
  span.setAttribute(ATTR_NETWORK_PEER_ADDRESS, peer.host);
  if (peer.port !== undefined) span.setAttribute(ATTR_NETWORK_PEER_PORT, peer.port);
}

/**
 * The common case, first: a request without a trace whose new root is not sampled only gets
 * its traceparent (the next hops see flag 00 and do not sample either). False: go the full way.
 */
function unsampledRoot(starter: SpanStarter, propagation: HeaderPropagation, req: IncomingMessage, ctx: RequestContext): boolean {
  if (!propagation.fresh(req.headers)) return false;
  const traceparent = starter.unsampledRoot();
  if (traceparent === undefined) return false;
  ctx.traceId = starter.rootTraceId;
  propagation.injectRoot(traceparent, req.headers);
  return true;
}

/** Top of the inbound stack: so that replies made by the inbound policies (429) are traced too. */
export function createInboundSpanStage(starter: SpanStarter, propagation: HeaderPropagation): Stage {
  return (next: Handler): Handler => (req, ctx, attempt) => {
    if (unsampledRoot(starter, propagation, req, ctx)) return next(req, ctx, attempt);
    const parent = propagation.extract(req.headers);
    const span = starter.start(spanName(ctx.method), SERVER, parent.context);
    const sc = span.spanContext();
    ctx.traceId = sc.traceId;
    // The app sees our span as its parent (and the sampling decision made here).
    propagation.inject(sc, parent, req.headers);
    if (!span.isRecording()) return next(req, ctx, attempt);

    span.setAttributes(serverAttributes(req, ctx));
    const ender = new SpanEnd(span);
    // The span lasts until the response to the client is complete (body included) or aborted.
    onResponseClose(ctx, ender.end);
    return next(req, ctx, attempt).then(
      (upstream) => {
        if (!ender.ended) recordResponse(span, upstream.statusCode, true);
        return upstream;
      },
      (err: unknown) => {
        if (!ender.ended) recordLocalReply(span, toProxyError(err));
        throw err;
      },
    );
  };
}

/**
 * Top of the outbound stack: one span over the whole call (retries and backoffs included), parent
 * of the attempt spans. It is what carries a local reply that no attempt ever saw (circuit-open,
 * overflow, an overall timeout before the first try), and it keeps every attempt of a request in
 * one trace even when the app sent no trace context (each attempt would otherwise be a new root).
 */
export function createOutboundSpanStage(starter: SpanStarter, propagation: HeaderPropagation): Stage {
  return (next: Handler): Handler => (req, ctx, attempt) => {
    // Not sampled: no attempt spans either (their parent decides).
    if (unsampledRoot(starter, propagation, req, ctx)) return next(req, ctx, attempt);
    const parent = propagation.extract(req.headers);
    const span = starter.start(`outbound ${ctx.service}`, INTERNAL, parent.context);
    const sc = span.spanContext();
    ctx.traceId = sc.traceId;
    if (!span.isRecording()) {
      // Not sampled: no attempt spans either (their parent decides), so inject once here.
      propagation.inject(sc, parent, req.headers);
      return next(req, ctx, attempt);
    }

    span.setAttributes(outboundAttributes(req, ctx));
    const state: OutboundState = { context: traceApi.setSpan(parent.context, span), from: parent, attempts: 0, open: new Set() };
    ctx.slots.set(OUTBOUND_SLOT, state);
    const ender = new SpanEnd(span);
    onResponseClose(ctx, () => {
      for (const a of state.open) a.end();
      ender.end();
    });
    const finish = () => { if (!ender.ended) span.setAttribute(ATTR_PILLION_ATTEMPT_COUNT, state.attempts); };
    return next(req, ctx, attempt).then(
      (upstream) => {
        finish();
        if (!ender.ended) recordResponse(span, upstream.statusCode, false);
        return upstream;
      },
      (err: unknown) => {
        finish();
        if (!ender.ended) recordLocalReply(span, toProxyError(err));
        throw err;
      },
    );
  };
}

/**
 * Innermost in the outbound stack, right above the forwarder: one CLIENT span per attempt, inside
 * retries and per-try timeouts, whose context goes out in this attempt's headers.
 */
export function createAttemptSpanStage(starter: SpanStarter, propagation: HeaderPropagation): Stage {
  return (next: Handler): Handler => (req, ctx, attempt) => {
    const state = ctx.peekSlot(OUTBOUND_SLOT) as OutboundState | undefined;
    if (!state) return next(req, ctx, attempt);
    const n = ++state.attempts;
    const span = starter.start(spanName(ctx.method), CLIENT, state.context);
    // The forwarder copies req.headers into each attempt's request, so this attempt's span goes out.
    propagation.inject(span.spanContext(), state.from, req.headers);
    if (!span.isRecording()) return next(req, ctx, attempt);

    span.setAttributes(clientAttributes(req, ctx, n));
    const ender = new SpanEnd(span);
    state.open.add(ender);
    const close = () => { state.open.delete(ender); ender.end(); };
    // A per-try or overall deadline aborts this attempt: say so at once, the stage above
    // may already have answered.
    const signal = attempt.signal;
    const onAbort = () => {
      if (ender.ended) return;
      const reason: unknown = signal?.reason;
      if (reason instanceof ProxyError) recordLocalReply(span, reason);
      else span.setStatus({ code: SpanStatusCode.ERROR, message: 'attempt aborted' });
      close();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    return next(req, ctx, attempt).then(
      (upstream: IncomingMessage) => {
        signal?.removeEventListener('abort', onAbort);
        if (!ender.ended) {
          recordPeer(span, ctx);
          recordResponse(span, upstream.statusCode, false);
          // The attempt ends with its response body (read by the client, or discarded by a retry).
          if (upstream.closed) close();
          else upstream.once('close', close);
        }
        return upstream;
      },
      (err: unknown) => {
        signal?.removeEventListener('abort', onAbort);
        if (!ender.ended) {
          recordPeer(span, ctx);
          recordLocalReply(span, toProxyError(err));
          close();
        }
        throw err;
      },
    );
  };
}

/** Propagation only (no exporter): re-emit the caller's trace position in every format, same ids. */
export function createPropagationStage(propagation: HeaderPropagation): Stage {
  return (next: Handler): Handler => (req, ctx, attempt) => {
    const parent = propagation.extract(req.headers);
    const sc = traceApi.getSpanContext(parent.context);
    if (sc) {
      ctx.traceId = sc.traceId;
      propagation.inject(sc, parent, req.headers);
    }
    return next(req, ctx, attempt);
  };
}
