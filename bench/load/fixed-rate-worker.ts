// A fixed-rate HTTP/1.1 load generator (wrk cannot hold a rate): each of C keep-alive
// connections sends on its own evenly spaced schedule (R/C per second, phases staggered),
// like fortio's `-qps 1000 -c 16` that Istio publishes with. Raw sockets and a minimal
// response parser keep its own CPU small next to what it measures; it reports that CPU too.
//
// Latency is measured from the send, except when the connection was still busy at the
// scheduled time: then from the scheduled time, so a stall is not hidden by the schedule
// waiting for it (coordinated omission).
import net from 'node:net';
import { parseArgs } from 'node:util';
import { percentileSorted } from '../stats';

export interface FixedRateWorkerResult {
  readonly scheduled: number;
  readonly completed: number;
  readonly errors: number;
  readonly achievedRate: number;
  readonly p50Ms: number;
  readonly p90Ms: number;
  readonly p99Ms: number;
  readonly maxMs: number;
  /** The generator's own CPU seconds (user + system) over the run. */
  readonly generatorCpuSeconds: number;
  /** The same as a share of one core over the run's duration. */
  readonly generatorCpuShare: number;
}

interface Options {
  host: string;
  port: number;
  hostHeader: string;
  path: string;
  rate: number;
  connections: number;
  durationMs: number;
}

/** Where a complete response ends in `buf`, or -1 if more bytes are needed. Also its status. */
export function responseEnd(buf: Buffer): { end: number; status: number; close: boolean } | undefined {
  const headEnd = buf.indexOf('\r\n\r\n');
  if (headEnd < 0) return undefined;
  const head = buf.toString('latin1', 0, headEnd);
  const status = Number(head.slice(9, 12));
  const close = /\r\nconnection:\s*close/i.test(head);
  const bodyStart = headEnd + 4;
  const cl = /\r\ncontent-length:\s*(\d+)/i.exec(head);
  if (cl) {
    const end = bodyStart + Number(cl[1]);
    return end <= buf.length ? { end, status, close } : undefined;
  }
  if (/\r\ntransfer-encoding:[^\r]*chunked/i.test(head)) {
    let pos = bodyStart;
    for (;;) {
      const lineEnd = buf.indexOf('\r\n', pos);
      if (lineEnd < 0) return undefined;
      const size = parseInt(buf.toString('latin1', pos, lineEnd), 16);
      if (!Number.isFinite(size)) throw new Error('bad chunk size');
      if (size === 0) {
        const end = buf.indexOf('\r\n', lineEnd + 2);
        return end < 0 ? undefined : { end: end + 2, status, close };
      }
      pos = lineEnd + 2 + size + 2;
      if (pos > buf.length) return undefined;
    }
  }
  // No length and not chunked: a body-less status (204/304) ends at the head.
  return { end: bodyStart, status, close };
}

function run(opts: Options): Promise<FixedRateWorkerResult> {
  const request = Buffer.from(`GET ${opts.path} HTTP/1.1\r\nHost: ${opts.hostHeader}\r\nUser-Agent: pillion-bench\r\n\r\n`, 'latin1');
  const intervalMs = (1000 * opts.connections) / opts.rate;
  const latencies = new Float64Array(Math.ceil((opts.durationMs / 1000) * opts.rate) + opts.connections * 2);
  let count = 0;
  let scheduled = 0;
  let errors = 0;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now() + 50;
  const endAt = t0 + opts.durationMs;

  return new Promise((resolve) => {
    let live = opts.connections;
    const finishOne = () => {
      if (--live > 0) return;
      const sorted = latencies.subarray(0, count).sort();
      const cpu = process.cpuUsage(cpu0);
      resolve({
        scheduled, completed: count, errors,
        achievedRate: count / (opts.durationMs / 1000),
        p50Ms: percentileSorted(sorted, 50), p90Ms: percentileSorted(sorted, 90), p99Ms: percentileSorted(sorted, 99),
        maxMs: count ? sorted[count - 1]! : NaN,
        generatorCpuSeconds: (cpu.user + cpu.system) / 1e6,
        generatorCpuShare: (cpu.user + cpu.system) / 1e3 / opts.durationMs,
      });
    };

    for (let k = 0; k < opts.connections; k++) {
      let socket: net.Socket | undefined;
      let buf: Buffer = Buffer.alloc(0);
      let next = t0 + (k / opts.connections) * intervalMs;
      let sentAt = 0;
      let inFlight = false;
      let timer: NodeJS.Timeout | undefined;
      let done = false;

      const connect = () => {
        buf = Buffer.alloc(0);
        const s = net.connect(opts.port, opts.host);
        s.setNoDelay(true);
        s.on('data', (chunk: Buffer) => {
          buf = buf.length ? Buffer.concat([buf, chunk]) : chunk;
          let parsed;
          try {
            parsed = responseEnd(buf);
          } catch {
            errors++;
            s.destroy();
            return;
          }
          if (!parsed || !inFlight) return;
          const now = performance.now();
          inFlight = false;
          if (parsed.status >= 200 && parsed.status < 400) latencies[count++] = now - sentAt;
          else errors++;
          buf = buf.subarray(parsed.end);
          if (parsed.close) { s.destroy(); socket = undefined; }
          schedule();
        });
        s.on('error', () => { /* counted on close */ });
        s.on('close', () => {
          if (socket !== s) return;
          socket = undefined;
          if (inFlight) { inFlight = false; errors++; schedule(); }
        });
        socket = s;
      };

      const send = () => {
        timer = undefined;
        const now = performance.now();
        if (!socket) connect();
        // Busy past the scheduled time means the wait is part of the latency.
        sentAt = now - next > 1 ? next : now;
        next += intervalMs;
        scheduled++;
        inFlight = true;
        socket!.write(request);
      };

      const schedule = () => {
        if (done) return;
        if (next >= endAt) {
          done = true;
          socket?.destroy();
          finishOne();
          return;
        }
        const delay = next - performance.now();
        if (delay <= 0) send();
        else timer = setTimeout(send, delay);
      };

      connect();
      schedule();
      // A hung connection must not hang the run: give up on it after the end plus 5 s.
      setTimeout(() => {
        if (done) return;
        if (inFlight) errors++;
        done = true;
        if (timer) clearTimeout(timer);
        socket?.destroy();
        finishOne();
      }, opts.durationMs + 5050).unref();
    }
  });
}

if (require.main === module) {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' }, port: { type: 'string' },
      'host-header': { type: 'string', default: 'localhost' }, path: { type: 'string', default: '/' },
      rate: { type: 'string', default: '1000' }, connections: { type: 'string', default: '16' },
      'duration-ms': { type: 'string', default: '10000' },
    },
  });
  void run({
    host: values.host!, port: Number(values.port), hostHeader: values['host-header']!, path: values.path!,
    rate: Number(values.rate), connections: Number(values.connections), durationMs: Number(values['duration-ms']),
  }).then((result) => {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    process.exit(0);
  });
}
