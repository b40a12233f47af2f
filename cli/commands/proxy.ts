// `pillion proxy`: flags -> ProxyOptions, config source (file with SIGHUP reload, or the
// control server with an on-disk cache), and signal handling for a graceful drain.
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { randomBytes } from 'node:crypto';
import { CliError } from '../errors';
import { durationFlag, hostPortFlag, parseFlags, portFlag } from '../args';
import { ConfigError, decodePolicyObjects, decodePolicyText, isDnsLabel, PolicySnapshot } from '../../proxy/config';
import { startProxy, RunningProxy } from '../../proxy';
import { createProxyMetrics } from '../../proxy/observability/metrics';
import { createStderrLogger } from '../../proxy/runtime/logger';

function oneLine(err: unknown): string {
  if (err instanceof ConfigError) return err.issues.length === 1 ? err.issues[0]! : `${err.issues[0]} (and ${err.issues.length - 1} more: ${err.issues.slice(1).join('; ')})`;
  return (err as Error)?.message ?? String(err);
}

function loadFile(path: string): PolicySnapshot['policies'] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`pillion proxy: cannot read config ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return decodePolicyText(text);
}

export async function run(argv: string[]): Promise<number | void> {
  const { values: f } = parseFlags('proxy', argv, {
    service: { type: 'string' },
    config: { type: 'string' },
    control: { type: 'string' },
    'token-file': { type: 'string' },
    'ca-file': { type: 'string' },
    'proxy-id': { type: 'string' },
    app: { type: 'string' },
    'inbound-port': { type: 'string' },
    'outbound-port': { type: 'string' },
    'admin-port': { type: 'string' },
    'inbound-address': { type: 'string' },
    'outbound-address': { type: 'string' },
    'drain-timeout': { type: 'string' },
    'header-timeout': { type: 'string' },
    'cache-dir': { type: 'string' },
    egress: { type: 'string' },
    redis: { type: 'string' },
  });
  const service = f.service;
  if (!service) throw new CliError('pillion proxy: --service NAME is required', 2);
  if (!isDnsLabel(service)) throw new CliError(`pillion proxy: --service must be a DNS label (got ${JSON.stringify(service)})`, 2);
  if (f.config && f.control) throw new CliError('pillion proxy: use either --config FILE or --control URL, not both', 2);
  const app = f.app ? hostPortFlag('proxy', 'app', f.app) : undefined;
  const egress = f.egress ? f.egress.split(',').map((s) => s.trim()).filter(Boolean) : undefined;
  const drainTimeoutMs = durationFlag('proxy', 'drain-timeout', f['drain-timeout'], 5000);
  const headerTimeoutMs = durationFlag('proxy', 'header-timeout', f['header-timeout'], 10_000);
  const logger = createStderrLogger('proxy');
  const metrics = createProxyMetrics();

  let initialSnapshot: PolicySnapshot | undefined;
  let fileVersion = 0;
  if (f.config) {
    try {
      initialSnapshot = { version: ++fileVersion, source: 'file', policies: loadFile(f.config) };
    } catch (err) {
      if (err instanceof CliError) throw err;
      throw new CliError(`pillion proxy: invalid config ${f.config}: ${oneLine(err)}`);
    }
  } else if (!f.control) {
    initialSnapshot = { version: 0, source: 'none', policies: [] };
  }

  let token = '';
  const cacheDir = f['cache-dir'] ?? './.pillion-proxy';
  const controlClientModule = f.control ? await import('../../proxy/control-client') : undefined;
  if (f.control) {
    if (!/^https?:\/\//.test(f.control)) throw new CliError(`pillion proxy: --control must be an http:// or https:// URL (got ${JSON.stringify(f.control)})`, 2);
    const tokenFile = f['token-file'];
    if (tokenFile) {
      try {
        token = readFileSync(tokenFile, 'utf8').trim();
      } catch (err) {
        throw new CliError(`pillion proxy: cannot read --token-file ${tokenFile}: ${(err as NodeJS.ErrnoException).code}`);
      }
    } else token = process.env.PILLION_PROXY_TOKEN ?? '';
    if (!token) throw new CliError('pillion proxy: --control needs the proxy token (--token-file F or PILLION_PROXY_TOKEN)', 2);
    const cached = controlClientModule!.readCachedConfig(cacheDir);
    if (cached) {
      try {
        initialSnapshot = { version: cached.version, source: 'control', policies: decodePolicyObjects(cached.documents) };
        logger.info('starting with cached config', { version: cached.version, cache_dir: cacheDir });
      } catch (err) {
        logger.warn('ignoring invalid cached config', { error: oneLine(err) });
      }
    }
  }

  let running: RunningProxy;
  try {
    running = await startProxy({
      service, app, metrics, logger, initialSnapshot, drainTimeoutMs, headerTimeoutMs,
      inboundPort: portFlag('proxy', 'inbound-port', f['inbound-port'], 15006),
      outboundPort: portFlag('proxy', 'outbound-port', f['outbound-port'], 15001),
      adminPort: portFlag('proxy', 'admin-port', f['admin-port'], 15000),
      inboundHost: f['inbound-address'],
      outboundHost: f['outbound-address'],
      redisUrl: f.redis ?? process.env.PILLION_REDIS_URL,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE' || e.code === 'EACCES') throw new CliError(`pillion proxy: cannot listen: ${e.message}`);
    throw err;
  }
  logger.info('listening', { service, ...running.ports, config: f.config ?? f.control ?? 'none' });

  let control: { stop(): Promise<void> } | undefined;
  if (f.control && controlClientModule) {
    control = controlClientModule.startControlClient({
      url: f.control, token, caFile: f['ca-file'], service,
      proxyId: f['proxy-id'] ?? `${service}-${hostname()}-${randomBytes(3).toString('hex')}`,
      egress, cacheDir, metrics, logger,
      apply: async (version, documents) => {
        const policies = decodePolicyObjects(documents);
        await running.applySnapshot({ version, source: 'control', policies });
        logger.info('applied config', { version, policies: policies.length });
      },
    });
  }

  if (f.config) {
    const path = f.config;
    process.on('SIGHUP', () => {
      try {
        const policies = loadFile(path);
        void running.applySnapshot({ version: ++fileVersion, source: 'file', policies }).then(
          () => logger.info('reloaded config', { file: path, version: fileVersion, policies: policies.length }),
        );
      } catch (err) {
        metrics.configErrors.inc({ source: 'file' });
        logger.error('config reload refused; keeping the previous version', { file: path, error: oneLine(err) });
      }
    });
  }

  let stopping = false;
  const shutdown = async () => {
    if (stopping) return;
    stopping = true;
    await running.drain();
    await control?.stop();
    await running.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown());
  process.once('SIGINT', () => void shutdown());
  // POST /drain drains too; the process then exits as on SIGTERM.
  void running.drained.then(() => shutdown());
}
