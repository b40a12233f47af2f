// A clock the test drives: timers fire in deadline order as `advance` passes them, including
// timers set by timers that fired within the same advance.
import type { Clock } from '../../proxy/runtime/clock';

export class FakeClock implements Clock {
  t = 0;
  /** Every delay asked for, in order. */
  readonly requested: number[] = [];
  private timers = new Map<number, { at: number; fn: () => void }>();
  private seq = 0;
  now() { return this.t; }
  setTimeout(fn: () => void, ms: number) { const id = ++this.seq; this.requested.push(ms); this.timers.set(id, { at: this.t + ms, fn }); return id; }
  clearTimeout(h: unknown) { this.timers.delete(h as number); }
  get pending() { return this.timers.size; }
  advance(ms: number) {
    const end = this.t + ms;
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= end).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.t = Math.max(this.t, due[1].at);
      due[1].fn();
    }
    this.t = end;
  }
}
