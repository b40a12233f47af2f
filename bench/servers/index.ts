// The bench's own servers: the upstream, the Node proxies Pillion is compared with, and an OTLP sink.
export { startOtlpSink, OtlpSink } from './otlp-sink';
