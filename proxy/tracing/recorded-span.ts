// A recorded span: the API's Span, kept as the plain record the export worker encodes.
//
// Not the SDK's span class (see exporting.ts for what that measured): the proxy sets a fixed
// set of attributes of known types, so this keeps what those need of the SDK's span: its
// status rules, its default attribute count limit, its timestamps.
import { Attributes, AttributeValue, Exception, HrTime, Link, Span, SpanContext, SpanKind, SpanStatus, SpanStatusCode, TimeInput } from '@opentelemetry/api';
import { hrTime, hrTimeDuration } from '@opentelemetry/core';

/** The SDK's default attribute count limit (it reads no environment variable for it since 2.0). */
const ATTRIBUTE_COUNT_LIMIT = 128;
// The API exports its enums through getters: read once here, not per span.
const { UNSET, OK, ERROR } = SpanStatusCode;

/** What postMessage copies to the export worker for each finished span: the fields the OTLP serializers read. */
export interface SpanRecord {
  name: string;
  readonly kind: SpanKind;
  readonly traceId: string;
  readonly spanId: string;
  readonly traceFlags: number;
  readonly traceState: string | undefined;
  readonly parent: { traceId: string; spanId: string; traceFlags: number; isRemote: boolean | undefined } | undefined;
  readonly startTime: HrTime;
  endTime: HrTime;
  duration: HrTime;
  readonly attributes: Attributes;
  status: { code: number; message?: string };
  readonly events: never[];
  readonly links: never[];
  droppedAttributesCount: number;
  readonly droppedEventsCount: number;
  readonly droppedLinksCount: number;
}

export class RecordedSpan implements Span {
  private readonly record: SpanRecord;
  private attributeCount = 0;
  private ended = false;

  constructor(
    private readonly sc: SpanContext, parent: SpanContext | undefined, name: string, kind: SpanKind,
    /** Takes the record when the span ends (the batch queue). */
    private readonly sink: (record: SpanRecord) => void,
  ) {
    const start = hrTime();
    this.record = {
      name, kind, traceId: sc.traceId, spanId: sc.spanId, traceFlags: sc.traceFlags, traceState: sc.traceState?.serialize() || undefined,
      parent: parent ? { traceId: parent.traceId, spanId: parent.spanId, traceFlags: parent.traceFlags, isRemote: parent.isRemote } : undefined,
      startTime: start, endTime: start, duration: [0, 0],
      attributes: {}, status: { code: UNSET },
      events: [], links: [], droppedAttributesCount: 0, droppedEventsCount: 0, droppedLinksCount: 0,
    };
  }

  spanContext(): SpanContext {
    return this.sc;
  }

  setAttribute(key: string, value: AttributeValue | undefined): this {
    // As the SDK: nothing after the end, and no empty value.
    if (this.ended || value === undefined || value === null) return this;
    const attributes = this.record.attributes;
    if (attributes[key] === undefined) {
      if (this.attributeCount >= ATTRIBUTE_COUNT_LIMIT) {
        this.record.droppedAttributesCount++;
        return this;
      }
      this.attributeCount++;
    }
    attributes[key] = value;
    return this;
  }

  setAttributes(attributes: Attributes): this {
    for (const key in attributes) this.setAttribute(key, attributes[key]);
    return this;
  }

  /** The SDK's rules: UNSET changes nothing, OK is final, only ERROR carries a message. */
  setStatus(status: SpanStatus): this {
    if (this.ended || status.code === UNSET || this.record.status.code === OK) return this;
    this.record.status = status.code === ERROR && typeof status.message === 'string'
      ? { code: status.code, message: status.message }
      : { code: status.code };
    return this;
  }

  updateName(name: string): this {
    if (!this.ended) this.record.name = name;
    return this;
  }

  end(_endTime?: TimeInput): void {
    if (this.ended) return;
    this.ended = true;
    const record = this.record;
    record.endTime = hrTime();
    record.duration = hrTimeDuration(record.startTime, record.endTime);
    this.sink(record);
  }

  isRecording(): boolean {
    return !this.ended;
  }

  // The proxy records no events, links or exceptions; the API asks for these all the same.
  addEvent(): this { return this; }
  addLink(_link: Link): this { return this; }
  addLinks(_links: Link[]): this { return this; }
  recordException(_exception: Exception): void {}
}
