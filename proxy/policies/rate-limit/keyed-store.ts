// One limiter state per key (client IP, header value) with bounded memory: entries are kept in
// least-recently-used order, idle ones are swept a few at a time as new keys arrive, and past
// `maxKeys` the least recently used entry is dropped.

export interface KeyedStoreOptions<T> {
  readonly maxKeys: number;
  create(key: string, now: number): T;
  /** True when dropping the entry changes nothing a client could notice (a full bucket). */
  isIdle(entry: T, now: number): boolean;
  /** Release what the entry holds (timers, Redis subscriptions). */
  dispose?(entry: T): void;
}

/** Bounds the work a single new key can cause, so a request never pays for a big sweep. */
const SWEEP_PER_INSERT = 4;

export class KeyedStore<T> {
  private readonly entries = new Map<string, T>();

  constructor(private readonly options: KeyedStoreOptions<T>) {}

  get size(): number {
    return this.entries.size;
  }

  get(key: string, now: number): T {
    const entries = this.entries;
    let entry = entries.get(key);
    if (entry !== undefined) {
      // Move to the young end; Map keeps insertion order, so the oldest key is always first.
      entries.delete(key);
      entries.set(key, entry);
      return entry;
    }
    this.sweep(now);
    entry = this.options.create(key, now);
    entries.set(key, entry);
    return entry;
  }

  private sweep(now: number): void {
    const { isIdle, dispose, maxKeys } = this.options;
    let swept = 0;
    for (const [key, entry] of this.entries) {
      const overCap = this.entries.size >= maxKeys;
      if (!overCap && (swept >= SWEEP_PER_INSERT || !isIdle(entry, now))) break;
      // Over the cap the least recently used key goes even if it is not idle: it starts
      // again with a full bucket, the price of bounded memory (documented).
      this.entries.delete(key);
      dispose?.(entry);
      swept++;
    }
  }

  forEach(fn: (entry: T) => void): void {
    this.entries.forEach((entry) => fn(entry));
  }

  clear(): void {
    const { dispose } = this.options;
    if (dispose) this.entries.forEach((entry) => dispose(entry));
    this.entries.clear();
  }
}
