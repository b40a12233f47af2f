// The two per-request metrics (pillion_requests_total, pillion_request_duration_seconds),
// counted in plain numbers and handed to prom-client only when /stats/prometheus is
// scraped. prom-client's own Counter and Histogram rebuild and hash a label object on every
// inc/observe, even through a cached labels() child: measured with callgrind, about 10,000
// instructions per request, for two numbers.
import type { Registry } from 'prom-client';

type Labels = Record<string, string>;

interface ExportedValue {
  labels: Labels;
  value: number;
  metricName?: string;
}

/**
 * Registers a metric whose values are produced at scrape time: the shape prom-client's
 * registry reads from any registered metric (its get()), shared by both kinds below.
 */
function registerCollected(
  registry: Registry, name: string, help: string, type: 'counter' | 'histogram',
  values: () => ExportedValue[], reset: () => void,
): void {
  const metric = {
    name, help, type, aggregator: 'sum' as const,
    get: async () => ({ name, help, type, aggregator: 'sum' as const, values: values() }),
    reset,
  };
  registry.registerMetric(metric as unknown as Parameters<Registry['registerMetric']>[0]);
}

/**
 * A counter whose series the caller keeps (and finds however is cheapest for it): `add`
 * once per label set, then `series.value++` per event. No label object per event.
 */
export class SeriesCounter {
  private readonly series: Array<{ readonly labels: Labels; value: number }> = [];

  constructor(readonly name: string, readonly help: string) {}

  add(labels: Labels): { value: number } {
    const s = { labels, value: 0 };
    this.series.push(s);
    return s;
  }

  register(registry: Registry): void {
    registerCollected(registry, this.name, this.help, 'counter',
      () => this.series.map((s) => ({ labels: s.labels, value: s.value })),
      () => { this.series.length = 0; });
  }
}

export interface HistogramSeries {
  readonly labels: Labels;
  /** Per bucket, not cumulative; the last slot is +Inf. */
  readonly counts: number[];
  sum: number;
  count: number;
}

/** A histogram kept the same way; exported cumulative, as Prometheus wants. */
export class SeriesHistogram {
  private readonly series: HistogramSeries[] = [];

  constructor(readonly name: string, readonly help: string, readonly buckets: readonly number[]) {}

  add(labels: Labels): HistogramSeries {
    const s = { labels, counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
    this.series.push(s);
    return s;
  }

  observe(s: HistogramSeries, value: number): void {
    const b = this.buckets;
    let i = 0;
    while (i < b.length && value > b[i]!) i++;
    s.counts[i]!++;
    s.sum += value;
    s.count++;
  }

  register(registry: Registry): void {
    registerCollected(registry, this.name, this.help, 'histogram',
      () => this.series.flatMap((s) => this.export(s)),
      () => { this.series.length = 0; });
  }

  private export(s: HistogramSeries): ExportedValue[] {
    const out: ExportedValue[] = [];
    let acc = 0;
    for (let i = 0; i <= this.buckets.length; i++) {
      acc += s.counts[i]!;
      const le = i < this.buckets.length ? String(this.buckets[i]) : '+Inf';
      out.push({ labels: { ...s.labels, le }, value: acc, metricName: `${this.name}_bucket` });
    }
    out.push({ labels: s.labels, value: s.sum, metricName: `${this.name}_sum` });
    out.push({ labels: s.labels, value: s.count, metricName: `${this.name}_count` });
    return out;
  }
}
