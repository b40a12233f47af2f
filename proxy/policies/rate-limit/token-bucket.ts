// A token bucket as plain arithmetic over a caller-supplied time, so it costs a few
// additions per request and tests can drive it with any clock.

export class TokenBucket {
  private tokens: number;
  private last: number;
  /** Tokens per millisecond. */
  private readonly perMs: number;

  constructor(readonly ratePerSecond: number, readonly burst: number, now: number) {
    this.tokens = burst;
    this.last = now;
    this.perMs = ratePerSecond / 1000;
  }

  private refill(now: number): void {
    if (now > this.last) {
      const t = this.tokens + (now - this.last) * this.perMs;
      this.tokens = t > this.burst ? this.burst : t;
      this.last = now;
    }
  }

  /** Takes one token if there is one. */
  take(now: number): boolean {
    this.refill(now);
    if (this.tokens >= 1) {
      this.tokens -= 1;
      return true;
    }
    return false;
  }

  /** Whole tokens left at `now`. */
  remaining(now: number): number {
    this.refill(now);
    return Math.floor(this.tokens);
  }

  /** Milliseconds until one whole token is available (0 if one is). */
  msUntilToken(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : (1 - this.tokens) / this.perMs;
  }

  /** Milliseconds until the bucket is full again. */
  msUntilFull(now: number): number {
    this.refill(now);
    return (this.burst - this.tokens) / this.perMs;
  }

  /**
   * A bucket that has refilled completely behaves exactly like a new one, so dropping it
   * loses nothing: this is what makes idle-key expiry safe.
   */
  isFull(now: number): boolean {
    return this.tokens + (now - this.last) * this.perMs >= this.burst;
  }
}
