// Runs the fixed-rate generator in its own process, so its CPU is its own and the harness's
// bookkeeping never delays a send.
import { execFile } from 'node:child_process';
import path from 'node:path';
import type { FixedRateWorkerResult } from './fixed-rate-worker';

export type FixedRateResult = FixedRateWorkerResult;

export interface FixedRateOptions {
  readonly port: number;
  readonly host?: string;
  readonly hostHeader: string;
  readonly path: string;
  readonly rate: number;
  readonly connections: number;
  readonly durationSeconds: number;
}

export function runFixedRate(opts: FixedRateOptions): Promise<FixedRateResult> {
  const worker = path.join(__dirname, 'fixed-rate-worker.js');
  const args = [worker, '--host', opts.host ?? '127.0.0.1', '--port', String(opts.port), '--host-header', opts.hostHeader,
    '--path', opts.path, '--rate', String(opts.rate), '--connections', String(opts.connections),
    '--duration-ms', String(Math.round(opts.durationSeconds * 1000))];
  return new Promise((resolve, reject) => {
    execFile(process.execPath, args, { timeout: (opts.durationSeconds + 30) * 1000 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`fixed-rate generator failed: ${err.message} ${stderr}`.trim()));
      try {
        resolve(JSON.parse(stdout.trim().split('\n').pop()!) as FixedRateResult);
      } catch (e) {
        reject(new Error(`fixed-rate generator printed no result: ${stdout.slice(0, 200)}`));
      }
    });
  });
}
