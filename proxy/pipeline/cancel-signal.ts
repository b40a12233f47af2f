// Cancellation for a request or one attempt. It has the shape of the AbortSignal subset the
// stages use, but not its cost: in Node 20, adding and removing a listener on an AbortSignal
// takes about 8 us (EventTarget plus weak references for the GC), more than forwarding a
// request does; measured in bench/, this alone halved throughput.

export interface AbortEventLike {
  readonly type: 'abort';
  readonly target: CancelSignal;
}

type Listener = (ev: AbortEventLike) => void;

/** An object told about the abort without a closure being made for it (the forwarder's attempt). */
export interface AbortTarget {
  abort(reason: unknown): void;
}

export class CancelSignal {
  aborted = false;
  reason: unknown = undefined;
  private listeners: Listener[] | undefined;
  private targets: AbortTarget[] | undefined;

  attach(target: AbortTarget): void {
    if (!this.aborted) (this.targets ??= []).push(target);
  }

  detach(target: AbortTarget): void {
    const t = this.targets;
    if (!t) return;
    const i = t.indexOf(target);
    if (i >= 0) t.splice(i, 1);
  }

  /** Like AbortSignal: a listener added after the abort is not called; each runs once. */
  addEventListener(_type: 'abort', fn: Listener, _options?: { once?: boolean }): void {
    if (this.aborted) return;
    (this.listeners ??= []).push(fn);
  }

  removeEventListener(_type: 'abort', fn: Listener): void {
    const l = this.listeners;
    if (!l) return;
    const i = l.indexOf(fn);
    if (i >= 0) l.splice(i, 1);
  }

  abort(reason?: unknown): void {
    if (this.aborted) return;
    this.aborted = true;
    this.reason = reason ?? new Error('aborted');
    const l = this.listeners;
    const t = this.targets;
    this.listeners = undefined;
    this.targets = undefined;
    if (t) for (const target of t) target.abort(this.reason);
    if (l) for (const fn of l) fn({ type: 'abort', target: this });
  }
}
