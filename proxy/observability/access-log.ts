// One JSON line per request on stdout (SPEC.md: Access log). Lines are batched per event
// loop turn: one write per turn instead of one per request keeps the hot path cheap.
import type { Writable } from 'node:stream';

export interface AccessLogEntry {
  time: string;
  direction: string;
  service: string;
  method: string;
  path: string;
  status: number;
  reason: string;
  duration_ms: number;
  bytes_sent: number;
  upstream: string;
  attempt_count: number;
  trace_id: string;
  request_id: string;
}

export interface AccessLog {
  write(entry: AccessLogEntry): void;
  flush(): void;
}

export function createAccessLog(out: Writable | undefined): AccessLog {
  if (!out) return { write() {}, flush() {} };
  let pending: string[] = [];
  let scheduled = false;
  const flush = () => {
    scheduled = false;
    if (pending.length === 0) return;
    const text = pending.join('');
    pending = [];
    out.write(text);
  };
  return {
    write(entry) {
      pending.push(`${JSON.stringify(entry)}\n`);
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    },
    flush,
  };
}
