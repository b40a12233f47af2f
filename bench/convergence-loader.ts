// Runs the control-plane convergence scenario when bench/convergence.ts exists (the control
// server's side writes it); looked up at run time so the bench builds without it.
import path from 'node:path';
import { existsSync } from 'node:fs';
import type { ConvergencePoint, ConvergenceResult } from './results';

interface ConvergenceModule {
  runConvergenceBench(opts: { proxies: number; applies: number; log?: (line: string) => void }): Promise<{ median_ms: number; worst_ms: number; rss_mb: number } & Record<string, unknown>>;
}

export async function runConvergence(plan: readonly { proxies: number; applies: number }[], log: (line: string) => void,
  dir = __dirname): Promise<ConvergenceResult> {
  const file = path.join(dir, 'convergence.js');
  if (!existsSync(file)) return { status: 'skipped', reason: 'bench/convergence.ts (control server side) is not there yet', points: [] };
  let mod: Partial<ConvergenceModule>;
  try {
    mod = require(file) as Partial<ConvergenceModule>;
  } catch (err) {
    return { status: 'failed', reason: `loading bench/convergence: ${(err as Error).message}`, points: [] };
  }
  if (typeof mod.runConvergenceBench !== 'function') {
    return { status: 'skipped', reason: 'bench/convergence does not export runConvergenceBench({proxies, applies})', points: [] };
  }
  const points: ConvergencePoint[] = [];
  for (const step of plan) {
    log(`convergence: ${step.proxies} proxies, ${step.applies} applies`);
    let timer: NodeJS.Timeout | undefined;
    try {
      const r = await Promise.race([
        mod.runConvergenceBench({ ...step, log: (line: string) => log(`convergence: ${line}`) }),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('gave up after 300 s')), 300_000); }),
      ]);
      points.push({ proxies: step.proxies, applies: step.applies, medianMs: r.median_ms, worstMs: r.worst_ms, rssMb: r.rss_mb, detail: r });
      log(`convergence: ${step.proxies} proxies: median ${r.median_ms.toFixed(1)} ms, worst ${r.worst_ms.toFixed(1)} ms, control RSS ${r.rss_mb.toFixed(0)} MB`);
    } catch (err) {
      return { status: 'failed', reason: `${step.proxies} proxies: ${(err as Error).message}`, points };
    } finally {
      if (timer) clearTimeout(timer);
    }
  }
  return { status: 'ok', points };
}
