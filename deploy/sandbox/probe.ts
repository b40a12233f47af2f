// Waiting for things inside a pod: a tiny node script run with `ip netns exec`, since the
// pods' loopback and addresses are not reachable from where the CLI runs.
import { tryRun } from './commands';

const HTTP_STATUS = `
const http = require('http');
const req = http.get(process.argv[1], { timeout: 1000 }, (res) => { console.log(res.statusCode); res.resume(); });
req.on('timeout', () => req.destroy());
req.on('error', () => console.log(0));
`;

/** The HTTP status of GET url from inside netns, 0 when nothing answers. */
export function httpStatusIn(netns: string, url: string): number {
  const r = tryRun('ip', ['netns', 'exec', netns, process.execPath, '-e', HTTP_STATUS, url], { timeoutMs: 5000 });
  return Number(r.stdout.trim()) || 0;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls until GET url answers `want` (any status when undefined); false on timeout. */
export async function waitForHttp(netns: string, url: string, timeoutMs: number, want?: number, alive: () => boolean = () => true): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const status = httpStatusIn(netns, url);
    if (status !== 0 && (want === undefined || status === want)) return true;
    // A process that died will not answer later: fail now rather than at the deadline.
    if (Date.now() > deadline || !alive()) return false;
    await sleep(150);
  }
}
