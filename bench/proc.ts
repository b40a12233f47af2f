// A process's own accounting from /proc: CPU ticks (utime+stime), resident memory, and the
// processes under it (nginx's worker is a child of its master).
import { readFileSync, readdirSync } from 'node:fs';
import { execFileSync } from 'node:child_process';

let clockTicks: number | undefined;

/** Kernel clock ticks per second (USER_HZ), the unit of utime/stime in /proc/<pid>/stat. */
export function ticksPerSecond(): number {
  if (clockTicks === undefined) {
    try {
      clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      clockTicks = 100;
    }
  }
  return clockTicks;
}

export interface StatFields {
  readonly ppid: number;
  /** utime + stime, in clock ticks. */
  readonly cpuTicks: number;
}

/** Parses /proc/<pid>/stat text; the command name may hold spaces and parentheses. */
export function parseStat(text: string): StatFields {
  const close = text.lastIndexOf(')');
  if (close < 0) throw new Error('malformed /proc stat line');
  // After ") " the fields start at field 3 (state); utime is field 14, stime 15.
  const rest = text.slice(close + 2).trim().split(/\s+/);
  const field = (n: number) => Number(rest[n - 3]);
  return { ppid: field(4), cpuTicks: field(14) + field(15) };
}

/** VmRSS in bytes from /proc/<pid>/status text. */
export function parseRssBytes(statusText: string): number {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(statusText);
  return m ? Number(m[1]) * 1024 : 0;
}

function readStat(pid: number): StatFields | undefined {
  try {
    return parseStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return undefined;
  }
}

/** `pid` and every live descendant of it. */
export function processTree(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const st = readStat(Number(name));
    if (!st) continue;
    const list = children.get(st.ppid) ?? [];
    list.push(Number(name));
    children.set(st.ppid, list);
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    const p = queue.shift()!;
    out.push(p);
    queue.push(...(children.get(p) ?? []));
  }
  return out;
}

export interface Usage {
  /** CPU seconds (user + system) used so far by the processes. */
  readonly cpuSeconds: number;
  /** Resident memory, summed over the processes. */
  readonly rssBytes: number;
  readonly pids: readonly number[];
}

/** Snapshot of the given processes (and their descendants). */
export function usageOf(rootPids: readonly number[]): Usage {
  const pids = [...new Set(rootPids.flatMap((p) => processTree(p)))];
  let ticks = 0;
  let rss = 0;
  for (const pid of pids) {
    ticks += readStat(pid)?.cpuTicks ?? 0;
    try {
      rss += parseRssBytes(readFileSync(`/proc/${pid}/status`, 'utf8'));
    } catch {
      // the process went away between the listing and the read
    }
  }
  return { cpuSeconds: ticks / ticksPerSecond(), rssBytes: rss, pids };
}
