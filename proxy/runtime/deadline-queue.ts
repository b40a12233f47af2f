// Many timeouts of one length on a single timer. Every request through a timeout stage needs a
// deadline, and nearly all are cancelled a millisecond later when the upstream answers; a
// Node timer per request (setTimeout + clearTimeout) cost more than the rest of the stage.
// Deadlines of one length expire in the order they were set, so a FIFO list is enough: add
// at the tail, unlink on cancel, and keep one timer for the head.
import type { Clock } from './clock';

export interface Deadline {
  readonly at: number;
  onExpire: (() => void) | undefined;
  prev: Deadline | undefined;
  next: Deadline | undefined;
}

export class DeadlineQueue {
  private head: Deadline | undefined;
  private tail: Deadline | undefined;
  private timer: unknown;

  constructor(private readonly clock: Clock, readonly ms: number) {}

  /** Call `onExpire` in `ms` milliseconds unless cancelled first. */
  add(onExpire: () => void): Deadline {
    const d: Deadline = { at: this.clock.now() + this.ms, onExpire, prev: this.tail, next: undefined };
    if (this.tail) this.tail.next = d;
    else this.head = d;
    this.tail = d;
    if (this.timer === undefined) this.arm();
    return d;
  }

  cancel(d: Deadline): void {
    if (d.onExpire === undefined) return; // expired or cancelled already
    d.onExpire = undefined;
    this.unlink(d);
    // An empty queue leaves no timer behind; otherwise the armed one stays (it re-arms for
    // the new head when it fires), so a cancel costs no timer work.
    if (!this.head && this.timer !== undefined) {
      this.clock.clearTimeout(this.timer);
      this.timer = undefined;
    }
  }

  get size(): number {
    let n = 0;
    for (let d = this.head; d; d = d.next) n++;
    return n;
  }

  private unlink(d: Deadline): void {
    if (d.prev) d.prev.next = d.next;
    else this.head = d.next;
    if (d.next) d.next.prev = d.prev;
    else this.tail = d.prev;
    d.prev = d.next = undefined;
  }

  private arm(): void {
    const head = this.head;
    if (!head) return;
    const wait = Math.max(1, Math.ceil(head.at - this.clock.now()));
    this.timer = this.clock.setTimeout(this.fire, wait);
  }

  private readonly fire = (): void => {
    this.timer = undefined;
    const now = this.clock.now();
    while (this.head && this.head.at <= now) {
      const d = this.head;
      const fn = d.onExpire;
      d.onExpire = undefined;
      this.unlink(d);
      fn?.();
    }
    if (this.timer === undefined) this.arm();
  };
}

/** One queue per timeout length, made on first use (a stack has one or a few lengths). */
export class DeadlineQueues {
  private readonly queues = new Map<number, DeadlineQueue>();

  constructor(private readonly clock: Clock) {}

  get(ms: number): DeadlineQueue {
    let q = this.queues.get(ms);
    if (!q) {
      q = new DeadlineQueue(this.clock, ms);
      this.queues.set(ms, q);
    }
    return q;
  }
}
