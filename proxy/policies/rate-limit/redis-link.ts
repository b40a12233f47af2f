// The Redis connection behind `scope: global`: one ioredis client wrapped in Bottleneck's
// IORedisConnection, plus the up/down state the limiters read to fail open.
import type Bottleneck from 'bottleneck';
import type Redis from 'ioredis';
import type { Logger } from '../../runtime/logger';
import type { RateLimitMetrics } from './metrics';

export class RedisLink {
  readonly connection: Bottleneck.IORedisConnection;
  private readonly client: Redis;
  private readonly failOpen: { inc(): void };
  private readonly errors: { inc(): void };
  private readonly upGauge: { set(v: number): void };
  private isUp = false;
  private downLogged = false;
  private closed = false;
  private readonly upListeners = new Set<() => void>();

  constructor(url: string, private readonly logger: Logger, metrics: RateLimitMetrics, service: string) {
    this.failOpen = metrics.failOpen.labels(service);
    this.errors = metrics.redisErrors.labels(service);
    this.upGauge = metrics.redisUp.labels(service);
    this.upGauge.set(0);
    // Loaded here, not at the top: only `scope: global` needs them, and every sidecar would
    // otherwise pay their start-up time and memory.
    const RedisClient: typeof Redis = require('ioredis');
    const BottleneckLib: typeof Bottleneck = require('bottleneck');
    this.client = new RedisClient(url, {
      // Fail fast while disconnected: a command must not wait in a queue behind an outage,
      // the request path is already failing open.
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      connectTimeout: 1000,
      // Keep reconnecting for ever, at most once a second, to resume sharing when Redis returns.
      retryStrategy: (times) => Math.min(100 * times, 1000),
    });
    this.client.on('ready', () => this.markUp());
    this.client.on('error', (err: Error) => { this.errors.inc(); this.markDown(err); });
    this.client.on('close', () => this.markDown(undefined));
    this.connection = new BottleneckLib.IORedisConnection({ client: this.client });
    // Errors reach us through the client's own listener; this one only stops Bottleneck from
    // treating them as unhandled.
    this.connection.on('error', () => {});
  }

  get up(): boolean {
    return this.isUp;
  }

  /** Called on every (re)connection: budgets take their first batch before traffic needs it. */
  onUp(fn: () => void): () => void {
    this.upListeners.add(fn);
    return () => { this.upListeners.delete(fn); };
  }

  countFailOpen(): void {
    this.failOpen.inc();
  }

  noteError(): void {
    this.errors.inc();
  }

  private markUp(): void {
    if (this.isUp || this.closed) return;
    this.isUp = true;
    this.upGauge.set(1);
    if (this.downLogged) this.logger.info('redis reachable again: rate limits with scope global are shared again');
    this.downLogged = false;
    for (const fn of this.upListeners) fn();
  }

  private markDown(err: Error | undefined): void {
    if (this.closed) return;
    this.isUp = false;
    this.upGauge.set(0);
    // Once per outage, not once per reconnection attempt.
    if (!this.downLogged) {
      this.downLogged = true;
      this.logger.warn('redis unreachable: rate limits with scope global fail open until it returns', { error: err?.message });
    }
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // QUIT after the limiters' pending UNSUBSCRIBEs, so none of them is left to reject; when
    // Redis is down (or slow), just drop the sockets.
    const quit = this.isUp ? Promise.resolve(this.connection.disconnect(true)).then(() => true, () => false) : Promise.resolve(false);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<boolean>((r) => { timer = setTimeout(() => r(false), 1000); });
    const clean = await Promise.race([quit, timeout]);
    clearTimeout(timer);
    if (!clean) await Promise.resolve(this.connection.disconnect(false)).catch(() => {});
  }
}
