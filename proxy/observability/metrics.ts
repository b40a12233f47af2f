// The proxy's Prometheus metrics. One registry per proxy (injected into policies), so that
// several proxies in one test process do not share counters.
import { Counter, Gauge, Registry } from 'prom-client';
import { HistogramSeries, SeriesCounter, SeriesHistogram } from './request-series';
import type { Direction } from '../pipeline';

export interface ProxyMetrics {
  readonly registry: Registry;
  readonly requests: SeriesCounter;
  readonly duration: SeriesHistogram;
  readonly circuitState: Gauge<'service'>;
  readonly retries: Counter<'service'>;
  readonly configVersion: Gauge;
  readonly controlConnected: Gauge;
  readonly configErrors: Counter<'source'>;
  readonly clientErrors: Counter<'direction' | 'reason'>;
  readonly inFlight: Gauge<'direction'>;
  /** Where pillion_requests_in_flight is read at scrape time (not counted per request: a labelled gauge hashes its labels on every inc and dec). */
  setInFlightSource(read: () => Record<string, number>): void;
  /** One finished request: pillion_requests_total and pillion_request_duration_seconds. */
  recordRequest(direction: Direction, service: string, code: number, reason: string, seconds: number): void;
}

export function createProxyMetrics(registry = new Registry()): ProxyMetrics {
  const requests = new SeriesCounter(
    'pillion_requests_total', 'Requests handled, by direction, service, status code and local-reply reason ("" when the upstream answered).');
  requests.register(registry);
  const duration = new SeriesHistogram(
    'pillion_request_duration_seconds', 'Time from request arrival to the end of the response.',
    [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30]);
  duration.register(registry);
  const circuitState = new Gauge({
    name: 'pillion_circuit_state', help: 'Circuit breaker state per destination: 0 closed, 1 open, 2 half-open.',
    labelNames: ['service'] as const, registers: [registry],
  });
  const retries = new Counter({
    name: 'pillion_retries_total', help: 'Retry attempts made (not counting first tries).',
    labelNames: ['service'] as const, registers: [registry],
  });
  const configVersion = new Gauge({ name: 'pillion_config_version', help: 'Version of the configuration in force (file versions count reloads).', registers: [registry] });
  const controlConnected = new Gauge({ name: 'pillion_control_connected', help: '1 while connected to the control server, else 0.', registers: [registry] });
  const configErrors = new Counter({
    name: 'pillion_config_errors_total', help: 'Configurations refused (invalid file on SIGHUP, rejected push).',
    labelNames: ['source'] as const, registers: [registry],
  });
  const clientErrors = new Counter({
    name: 'pillion_client_errors_total', help: 'Requests refused before they could be parsed (bad-request, header-too-large, request-timeout).',
    labelNames: ['direction', 'reason'] as const, registers: [registry],
  });
  let inFlightSource: (() => Record<string, number>) | undefined;
  const inFlight = new Gauge({
    name: 'pillion_requests_in_flight', help: 'Requests being handled.', labelNames: ['direction'] as const, registers: [registry],
    collect() {
      if (!inFlightSource) return;
      for (const [direction, n] of Object.entries(inFlightSource())) this.set({ direction }, n);
    },
  });
  configVersion.set(0);
  controlConnected.set(0);

  // Series per direction and service, found without building a key string per request.
  interface ServiceSeries { readonly duration: HistogramSeries; readonly byCode: Map<number | string, { value: number }> }
  const inboundSeries = new Map<string, ServiceSeries>();
  const outboundSeries = new Map<string, ServiceSeries>();
  return {
    registry, requests, duration, circuitState, retries, configVersion, controlConnected, configErrors, clientErrors, inFlight,
    setInFlightSource(read) { inFlightSource = read; },
    recordRequest(direction, service, code, reason, seconds) {
      const map = direction === 'inbound' ? inboundSeries : outboundSeries;
      let s = map.get(service);
      if (!s) {
        s = { duration: duration.add({ direction, service }), byCode: new Map() };
        map.set(service, s);
      }
      duration.observe(s.duration, seconds);
      // Upstream answers (reason "") are keyed by the status number alone: no string is built.
      const key = reason === '' ? code : `${code}\0${reason}`;
      let c = s.byCode.get(key);
      if (!c) {
        c = requests.add({ direction, service, code: String(code), reason });
        s.byCode.set(key, c);
      }
      c.value++;
    },
  };
}
