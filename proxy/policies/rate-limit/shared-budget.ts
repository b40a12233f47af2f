// `scope: global`: one token bucket shared by every sidecar of a service, kept in Redis by
// Bottleneck (its reservoir, refilled by reservoirIncrease*). Requests never wait on Redis:
// each proxy takes tokens from the shared reservoir in batches, in the background, and spends
// them locally and synchronously.
//
// Worst case, per key, over any window of W seconds, N proxies together admit at most
//   burst + requestsPerSecond * W + increaseAmount + N * (batch + 1)
// because tokens leave Redis only once (atomically, in Bottleneck's Lua scripts), a proxy
// never holds more than `batch` of them, and each new key may admit one request on credit
// before its first batch arrives (the credit is repaid from that batch). Not covered: while
// Redis is unreachable every proxy fails open, also after it comes back until the first batch
// from it has landed, and a Redis restart without persistence refills the reservoir.
import type Bottleneck from 'bottleneck';
import type { RateLimitConfig } from '../../config';
import type { Clock } from '../../runtime/clock';
import { KeyedStore } from './keyed-store';
import { DEFAULT_MAX_KEYS, Limiter, rateLimitHeaders } from './limiter';
import type { RedisLink } from './redis-link';

/** How the shared reservoir is refilled and how much a proxy takes at a time. */
export interface SharedPlan {
  readonly burst: number;
  /** Tokens added to the reservoir every `increaseIntervalMs` (an integer, as Bottleneck needs). */
  readonly increaseAmount: number;
  readonly increaseIntervalMs: number;
  /** Tokens a proxy takes per Redis round trip; it asks again at half of it. */
  readonly batch: number;
}

export function planShared(config: RateLimitConfig): SharedPlan {
  const { requestsPerSecond: rps, burst } = config;
  // About ten refills a second with a whole number of tokens each, so the reservoir behaves
  // like a token bucket rather than a fixed one-second window.
  const increaseAmount = Math.max(1, Math.round(rps / 10));
  const increaseIntervalMs = Math.max(1, Math.round((1000 * increaseAmount) / rps));
  // Small enough to keep the over-admission bound at a tenth of the burst per proxy, large
  // enough to keep a proxy under ~20 Redis round trips a second at the full rate.
  const batch = Math.min(burst, Math.max(1, Math.ceil(burst / 10), Math.ceil(rps / 20)));
  return { burst, increaseAmount, increaseIntervalMs, batch };
}

/** A fetch that has not answered in this long is given up (Redis went away mid-flight). */
const FETCH_TIMEOUT_MS = 2000;
/** Redis keys of an idle shared bucket expire after this long. */
const REDIS_KEY_TTL_MS = 10 * 60_000;

/** Makes the Bottleneck limiter of one shared budget (tests give a fake). */
export type SharedLimiterFactory = (id: string, plan: SharedPlan, link: RedisLink) => Bottleneck;

/** The real one: Bottleneck's reservoir in Redis, on the link's connection. */
const bottleneckLimiter: SharedLimiterFactory = (id, plan, link) => {
  const { burst, increaseAmount, increaseIntervalMs } = plan;
  const BottleneckLib: typeof Bottleneck = require('bottleneck'); // lazily, as in redis-link.ts
  return new BottleneckLib({
    id,
    datastore: 'ioredis',
    connection: link.connection,
    clearDatastore: false,
    reservoir: burst,
    reservoirIncreaseAmount: increaseAmount,
    reservoirIncreaseInterval: increaseIntervalMs,
    reservoirIncreaseMaximum: burst,
    timeout: REDIS_KEY_TTL_MS,
    heartbeatInterval: 1000,
  });
};

class SharedBudget {
  /** Tokens taken from Redis and not yet spent. */
  private tokens = 1;
  /** The credit given to a new key, repaid from its first batch. */
  private owed = 1;
  private fetching = false;
  private demand = false;
  /**
   * Redis came back (or lost our keys) and no batch has landed since: the tokens held are
   * from before, so running out of them proves nothing. Fail open until Redis has answered,
   * as while it was down, rather than refuse everything for that moment.
   */
  private recovering = false;
  private pollTimer: unknown;
  private limiter: Bottleneck | undefined;
  private closed = false;
  private readonly offUp: () => void;
  lastUsed: number;

  constructor(
    private readonly id: string, private readonly plan: SharedPlan, private readonly link: RedisLink, private readonly clock: Clock,
    private readonly makeLimiter: SharedLimiterFactory,
  ) {
    this.lastUsed = clock.now();
    this.offUp = link.onUp(() => {
      this.recovering = true;
      this.refill();
    });
    this.refill();
  }

  admit(): boolean {
    this.lastUsed = this.clock.now();
    if (!this.link.up) {
      this.link.countFailOpen();
      return true;
    }
    this.demand = true;
    if (this.tokens >= 1) {
      this.tokens--;
      if (this.tokens <= this.plan.batch >> 1) this.refill();
      return true;
    }
    this.refill();
    if (this.recovering) {
      this.link.countFailOpen();
      return true;
    }
    return false;
  }

  private refill(): void {
    // A pending poll means the reservoir was empty (or Redis failed) moments ago: refused
    // requests must not turn into a Redis call each.
    if (this.fetching || this.closed || !this.link.up || this.pollTimer !== undefined) return;
    this.fetching = true;
    this.demand = false;
    this.fetch().then(() => {
      this.fetching = false;
      // Redis answered (a batch, or an empty reservoir): its budget is in force again.
      this.recovering = false;
      // Requests came while we were fetching and the batch is already half spent: go again.
      if (this.demand && this.tokens <= this.plan.batch >> 1) this.refill();
    }, (err: unknown) => {
      this.fetching = false;
      this.link.noteError();
      if (this.closed) return;
      // Redis lost our keys (it restarted without persistence). Bottleneck means to re-create
      // them itself, but it compares the error text exactly and Redis 7 prefixes "ERR ", so its
      // recovery never runs: do what it would do.
      const message = String((err as Error)?.message ?? '');
      const lost = /SETTINGS_KEY_NOT_FOUND|UNKNOWN_CLIENT/.test(message);
      if (lost) this.recovering = true;
      const retry = () => {
        this.pollTimer = undefined;
        if (this.demand) this.refill();
      };
      const reinit = lost && this.limiter ? reinitialise(this.limiter) : Promise.resolve();
      reinit.catch(() => this.link.noteError()).finally(() => {
        if (this.closed || this.pollTimer !== undefined) return;
        // Not a tight loop on a persistent error: wait about one refill interval.
        this.pollTimer = this.clock.setTimeout(retry, lost ? 0 : Math.max(50, this.plan.increaseIntervalMs));
      });
    });
  }

  private async fetch(): Promise<void> {
    const limiter = this.currentLimiter();
    const available = await this.bounded(limiter.currentReservoir());
    const want = this.plan.batch - Math.max(0, this.tokens) + this.owed;
    const take = Math.min(want, Math.floor(available ?? 0));
    if (take < 1) {
      // The shared reservoir is empty: look again after its next refill, if anyone still asks.
      this.pollTimer = this.clock.setTimeout(() => {
        this.pollTimer = undefined;
        if (this.demand) this.refill();
      }, this.plan.increaseIntervalMs);
      return;
    }
    // Another proxy may take the same tokens between the two calls; then Bottleneck queues
    // this job until the reservoir refills, which the timeout bounds.
    await this.bounded(limiter.schedule({ weight: take }, () => Promise.resolve()));
    if (this.closed) return;
    const repaid = Math.min(take, this.owed);
    this.owed -= repaid;
    this.tokens += take - repaid;
  }

  /**
   * One Bottleneck limiter for the budget's lifetime. After a Redis restart its keys are
   * re-created in place (reinitialise, above), and a job whose registration failed during the
   * outage stays first in its queue and is retried; a new limiter with the same id would race
   * the old one's unsubscription instead.
   */
  private currentLimiter(): Bottleneck {
    if (this.limiter) return this.limiter;
    this.limiter = this.makeLimiter(this.id, this.plan, this.link);
    this.limiter.on('error', () => this.link.noteError());
    return this.limiter;
  }

  private bounded<T>(p: Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => reject(new Error('redis fetch timed out')), FETCH_TIMEOUT_MS);
      p.then(
        (v) => { this.clock.clearTimeout(timer); resolve(v); },
        (e) => { this.clock.clearTimeout(timer); reject(e); },
      );
    });
  }

  /** Whole tokens held locally (for headers and tests). */
  get held(): number {
    return Math.max(0, Math.floor(this.tokens));
  }

  close(): void {
    this.closed = true;
    this.offUp();
    if (this.pollTimer !== undefined) this.clock.clearTimeout(this.pollTimer);
    this.pollTimer = undefined;
    // With a shared connection Bottleneck's disconnect returns nothing, or a promise.
    // Unsubscribing needs Redis; while it is down the limiter is left to the link's close,
    // which stops every limiter's heartbeat.
    if (this.limiter && this.link.up) Promise.resolve(this.limiter.disconnect(false)).catch(() => {});
    this.limiter = undefined;
  }
}

/** The part of Bottleneck's Redis datastore its own recovery uses (lib/RedisDatastore.js runScript). */
interface RedisStoreInternals {
  runScript(name: string, args: unknown[]): Promise<unknown>;
  prepareInitSettings(clear: boolean): unknown[];
}

async function reinitialise(limiter: Bottleneck): Promise<void> {
  const store = (limiter as unknown as { _store: RedisStoreInternals })._store;
  await store.runScript('init', store.prepareInitSettings(false));
  await store.runScript('register_client', [limiter.queued()]);
}

/** `scope: global`: one shared budget per key. */
export class GlobalLimiter implements Limiter {
  private readonly plan: SharedPlan;
  private readonly single: SharedBudget | undefined;
  private readonly keyed: KeyedStore<SharedBudget> | undefined;

  constructor(
    private readonly config: RateLimitConfig, idPrefix: string, link: RedisLink, private readonly clock: Clock,
    maxKeys = DEFAULT_MAX_KEYS, makeLimiter: SharedLimiterFactory = bottleneckLimiter,
  ) {
    const plan = this.plan = planShared(config);
    // The settings are part of the id: proxies on different config versions never share a
    // reservoir whose refill they disagree about.
    const base = `pillion:rl:${idPrefix}:${config.requestsPerSecond}:${config.burst}`;
    if (config.key.kind === 'none') this.single = new SharedBudget(base, plan, link, clock, makeLimiter);
    else {
      this.keyed = new KeyedStore<SharedBudget>({
        maxKeys,
        create: (key) => new SharedBudget(`${base}:${key}`, plan, link, clock, makeLimiter),
        // Idle for the time the bucket needs to refill completely: nothing worth keeping.
        isIdle: (b, now) => now - b.lastUsed > Math.max(1000, (1000 * config.burst) / config.requestsPerSecond),
        dispose: (b) => b.close(),
      });
    }
  }

  get batch(): number {
    return this.plan.batch;
  }

  admit(key: string): boolean {
    return (this.single ?? this.keyed!.get(key, this.keyedNow())).admit();
  }

  private keyedNow(): number {
    return this.clock.now();
  }

  refusalHeaders(key: string): Record<string, string> {
    const budget = this.single ?? this.keyed!.get(key, this.keyedNow());
    const { burst, increaseIntervalMs } = this.plan;
    return rateLimitHeaders(burst, budget.held, increaseIntervalMs, (1000 * burst) / this.config.requestsPerSecond);
  }

  async close(): Promise<void> {
    this.single?.close();
    this.keyed?.clear();
  }
}
