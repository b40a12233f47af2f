// `pillion control`: run the control server (admin API + proxy push on one port) until
// SIGINT/SIGTERM; with TLS, also the sidecar-injection webhook.
import * as path from 'node:path';
import { startControlServer, readTlsFiles } from '../../control';
import { createStderrLogger, Logger } from '../../proxy/runtime/logger';
import { parseFlags, portFlag } from '../args';
import { CliError } from '../errors';

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags('control', argv, {
    port: { type: 'string' },
    host: { type: 'string' },
    data: { type: 'string' },
    'admin-token-file': { type: 'string' },
    'proxy-token-file': { type: 'string' },
    'tls-cert': { type: 'string' },
    'tls-key': { type: 'string' },
    'webhook-port': { type: 'string' },
  });
  const port = portFlag('control', 'port', values.port, 15010);
  const webhookPort = portFlag('control', 'webhook-port', values['webhook-port'], 15017);
  if (Boolean(values['tls-cert']) !== Boolean(values['tls-key'])) throw new CliError('pillion control: --tls-cert and --tls-key go together', 2);
  let tls: { cert: Buffer; key: Buffer } | undefined;
  if (values['tls-cert'] && values['tls-key']) {
    try {
      tls = readTlsFiles(values['tls-cert'], values['tls-key']);
    } catch (err) {
      throw new CliError(`pillion control: cannot read TLS files: ${(err as Error).message}`);
    }
  }
  const logger = createStderrLogger('control');
  const dataDir = path.resolve(values.data ?? '.pillion');
  let server;
  try {
    server = await startControlServer({
      port, host: values.host, dataDir, logger,
      adminTokenFile: values['admin-token-file'], proxyTokenFile: values['proxy-token-file'],
      tlsCert: tls?.cert, tlsKey: tls?.key,
    });
  } catch (err) {
    throw new CliError(`pillion control: ${(err as Error).message}`);
  }
  let webhook: Webhook | undefined;
  try {
    webhook = tls ? await startWebhook(logger, webhookPort, values.host, tls, server.url) : undefined;
  } catch (err) {
    await server.close();
    throw err;
  }

  await new Promise<void>((resolve) => {
    const stop = (signal: string) => {
      logger.info('stopping', { signal });
      resolve();
    };
    process.once('SIGINT', () => stop('SIGINT'));
    process.once('SIGTERM', () => stop('SIGTERM'));
  });
  await Promise.all([server.close(), webhook?.close()]);
  return 0;
}

interface Webhook { port: number; close(): Promise<void> }

/** The injection webhook is its own module (deploy/inject); the control server runs it when it has TLS. */
async function startWebhook(logger: Logger, port: number, host: string | undefined, tls: { cert: Buffer; key: Buffer }, controlUrl: string): Promise<Webhook | undefined> {
  // A non-literal specifier keeps this file compiling whether or not that module is present.
  const specifier = '../../deploy/inject/webhook';
  let mod: { startInjectionWebhook?: (o: { port: number; host?: string; cert: Buffer; key: Buffer; controlUrl?: string; logger?: Logger }) => Promise<Webhook> };
  try {
    mod = await import(specifier);
  } catch (err) {
    logger.warn('injection webhook not available; continuing without it', { error: (err as Error).message.split('\n')[0] });
    return undefined;
  }
  if (typeof mod.startInjectionWebhook !== 'function') {
    logger.warn('injection webhook module has no startInjectionWebhook; continuing without it');
    return undefined;
  }
  try {
    // It logs its own "listening" line through the logger it is given.
    return await mod.startInjectionWebhook({ port, host, cert: tls.cert, key: tls.key, controlUrl, logger });
  } catch (err) {
    throw new CliError(`pillion control: cannot start the injection webhook on port ${port}: ${(err as Error).message}`);
  }
}
