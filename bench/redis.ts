// A throwaway redis-server on a free loopback port, for the global rate-limit scenario.
import path from 'node:path';
import net from 'node:net';
import { startChild, freePort, Child } from './child';
import { programPath } from './setup';

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

export async function startRedis(rawDir: string): Promise<{ url: string; child: Child } | undefined> {
  const bin = programPath('redis-server');
  if (!bin) return undefined;
  const port = await freePort();
  const child = startChild({
    name: 'redis-server', command: bin,
    args: ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', rawDir],
    logFile: path.join(rawDir, 'redis.stderr.log'),
  });
  for (let i = 0; i < 50; i++) {
    if (await canConnect(port)) return { url: `redis://127.0.0.1:${port}`, child };
    if (child.proc.exitCode !== null) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  await child.stop();
  return undefined;
}
