// Maximum throughput at fixed concurrency: `wrk -t1 -c32 --latency`, parsed from its text report.
import { execFile } from 'node:child_process';

export interface WrkResult {
  readonly requestsPerSecond: number;
  readonly requests: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  /** Non-2xx/3xx responses plus socket errors: a proxy that fails fast must not look fast. */
  readonly errors: number;
}

function toMs(value: string, unit: string): number {
  const v = Number(value);
  switch (unit) {
    case 'us': return v / 1000;
    case 'ms': return v;
    case 's': return v * 1000;
    case 'm': return v * 60_000;
    default: return NaN;
  }
}

/** Parses wrk 4's report (with --latency). Throws when the report has no Requests/sec line. */
export function parseWrkOutput(text: string): WrkResult {
  const rps = /Requests\/sec:\s+([\d.]+)/.exec(text);
  if (!rps) throw new Error(`wrk report without Requests/sec: ${text.trim().split('\n').slice(-3).join(' | ')}`);
  const total = /(\d+) requests in/.exec(text);
  const pct = (p: number) => {
    const m = new RegExp(`^\\s*${p}(?:\\.0+)?%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm').exec(text);
    return m ? toMs(m[1]!, m[2]!) : NaN;
  };
  let errors = 0;
  const non2xx = /Non-2xx or 3xx responses:\s+(\d+)/.exec(text);
  if (non2xx) errors += Number(non2xx[1]);
  const sock = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(text);
  if (sock) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
  return {
    requestsPerSecond: Number(rps[1]),
    requests: total ? Number(total[1]) : NaN,
    p50Ms: pct(50), p90Ms: pct(90), p99Ms: pct(99),
    errors,
  };
}

export interface WrkOptions {
  readonly url: string;
  readonly host?: string;
  readonly connections: number;
  readonly durationSeconds: number;
  readonly threads?: number;
  /** Run wrk on these CPUs only (`taskset -c`), e.g. "1" or "1-3". */
  readonly cpus?: string;
}

export function runWrk(opts: WrkOptions): Promise<WrkResult> {
  const args = [`-t${opts.threads ?? 1}`, `-c${opts.connections}`, `-d${opts.durationSeconds}s`, '--latency', '--timeout', '5s'];
  if (opts.host) args.push('-H', `Host: ${opts.host}`);
  args.push(opts.url);
  return new Promise((resolve, reject) => {
    const [cmd, argv] = opts.cpus ? ['taskset', ['-c', opts.cpus, 'wrk', ...args]] : ['wrk', args];
    execFile(cmd, argv, { timeout: (opts.durationSeconds + 30) * 1000, maxBuffer: 1 << 20 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`wrk failed: ${err.message} ${stderr}`.trim()));
      try {
        resolve(parseWrkOutput(stdout));
      } catch (e) {
        reject(e);
      }
    });
  });
}
