// The machine the numbers were measured on, written beside them.
import os from 'node:os';
import { spawnSync } from 'node:child_process';
import { programPath } from './setup';

export interface MachineDescription {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryGiB: number;
  readonly node: string;
  readonly kernel: string;
  readonly os: string;
  readonly tools: Record<string, string>;
}

function firstLine(cmd: string, args: string[]): string {
  // nginx -v prints to stderr; wrk -v exits 1: take whichever stream has text.
  const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000 });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim().split('\n')[0]!.trim();
}

export function describeMachine(): MachineDescription {
  const tools: Record<string, string> = {};
  const wrk = programPath('wrk');
  if (wrk) tools.wrk = firstLine(wrk, ['-v']).replace(/\s*\[.*$/, '');
  const nginx = programPath('nginx');
  if (nginx) tools.nginx = firstLine(nginx, ['-v']).replace(/^nginx version:\s*/, '');
  const haproxy = programPath('haproxy');
  if (haproxy) tools.haproxy = firstLine(haproxy, ['-v']).replace(/\s*-\s*https.*$/, '');
  let osName = `${os.type()} ${os.arch()}`;
  try {
    const rel = require('node:fs').readFileSync('/etc/os-release', 'utf8') as string;
    const m = /^PRETTY_NAME="?([^"\n]+)"?/m.exec(rel);
    if (m) osName = m[1]!;
  } catch {
    // not Linux or no os-release
  }
  return {
    cpuModel: os.cpus()[0]?.model.trim() ?? 'unknown',
    cores: os.cpus().length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    kernel: os.release(),
    os: osName,
    tools,
  };
}
