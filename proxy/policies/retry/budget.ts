// The retry budget: retries may add at most 20% to the requests of the last second, with a
// floor of 10 retries per second, so that retries cannot multiply an outage.
import type { Clock } from '../../runtime/clock';

const BUCKETS = 10;

export interface RetryBudgetOptions {
  readonly ratio?: number;
  readonly minPerSecond?: number;
  readonly windowMs?: number;
}

export class RetryBudget {
  private readonly requests = new Array<number>(BUCKETS).fill(0);
  private readonly retries = new Array<number>(BUCKETS).fill(0);
  private readonly ratio: number;
  private readonly floor: number;
  private readonly bucketMs: number;
  private current: number;

  constructor(private readonly clock: Clock, options: RetryBudgetOptions = {}) {
    const windowMs = options.windowMs ?? 1000;
    this.ratio = options.ratio ?? 0.2;
    this.floor = (options.minPerSecond ?? 10) * (windowMs / 1000);
    this.bucketMs = windowMs / BUCKETS;
    this.current = Math.floor(clock.now() / this.bucketMs);
  }

  /** Zero the buckets that slid out of the window since the last call. */
  private slot(): number {
    const now = Math.floor(this.clock.now() / this.bucketMs);
    if (now !== this.current) {
      const steps = Math.min(BUCKETS, now - this.current);
      for (let i = 1; i <= steps; i++) {
        const s = (this.current + i) % BUCKETS;
        this.requests[s] = 0;
        this.retries[s] = 0;
      }
      this.current = now;
    }
    return now % BUCKETS;
  }

  /** A first attempt: adds to what retries may spend. */
  recordRequest(): void {
    this.requests[this.slot()]!++;
  }

  /** Spends one retry if the budget allows it. */
  tryRetry(): boolean {
    const s = this.slot();
    let requests = 0, retries = 0;
    for (let i = 0; i < BUCKETS; i++) {
      requests += this.requests[i]!;
      retries += this.retries[i]!;
    }
    if (retries >= Math.max(this.floor, this.ratio * requests)) return false;
    this.retries[s]!++;
    return true;
  }
}
