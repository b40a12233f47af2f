// Keeps one of process.nextTick's queue entries alive for the life of the process, so that V8
// never turns nextTick's object literal megamorphic.
//
// nextTick builds each entry as `{ [async_id_symbol]: id, [trigger_async_id_symbol]: trigger,
// callback, args }`. For each of those definitions V8 (11.3, in Node 20) records the hidden
// class it saw, weakly. GC tasks run between callbacks, when the queue is usually empty, so
// after a couple of major GCs nothing may hold those hidden classes and they are collected. The
// next definition finds its record cleared and V8 marks the site megamorphic, for good: from
// then on every nextTick, several per proxied request, builds its entry through the runtime.
// Measured in the sidecar: about 5 us of CPU more per request, 12-14% of its throughput, for the
// whole life of the processes that fell into it (more of them with the tracing SDK loaded; they
// were the bench's outlier rounds). One entry kept alive keeps the hidden classes, and so the
// records, alive. test/next-tick-shape.test.ts shows the degradation and the fix in child
// processes.
import { executionAsyncResource } from 'node:async_hooks';

let kept: object | undefined;

/** Idempotent; call before the process takes load. */
export function keepNextTickShape(): void {
  if (kept !== undefined) return;
  kept = {};
  // While a tick's callback runs, the current async resource is that tick's queue entry. Taken
  // this way rather than by an async_hooks init hook: enabling a hook, even for one call, leaves
  // V8's PromiseHook protector invalid for the life of the process (--trace-protector-invalidation
  // shows it). Side by side the difference did not show in throughput; this leaves nothing behind.
  process.nextTick(() => { kept = executionAsyncResource(); });
}
