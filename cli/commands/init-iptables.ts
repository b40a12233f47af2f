// `pillion init-iptables`: install (or --cleanup) the pod's nat rules that send inbound TCP
// to the proxy's inbound listener and outbound TCP to its outbound listener.
import { CliError } from '../errors';
import { parseFlags, portFlag } from '../args';
import {
  cleanupRules, DEFAULT_INTERCEPT, hasIp6tables, installRules, installRuleset, InterceptOptions, IptablesError, parsePortList,
} from '../../deploy/iptables';

const NAME = 'init-iptables';

function portListFlag(flag: string, value: string | undefined): string[] {
  if (value === undefined) return [];
  const list = parsePortList(value);
  if (!list) throw new CliError(`pillion ${NAME}: --${flag} must be a comma-separated list of ports or ranges such as 22,8000:8100 (got ${JSON.stringify(value)})`, 2);
  return list;
}

export function interceptOptions(values: Record<string, string | boolean | undefined>): InterceptOptions {
  const uidText = values['proxy-uid'] as string | undefined;
  if (uidText !== undefined && !/^\d{1,10}$/.test(uidText)) {
    throw new CliError(`pillion ${NAME}: --proxy-uid must be a numeric UID (got ${JSON.stringify(uidText)})`, 2);
  }
  const port = (flag: string, fallback: number) => {
    const p = portFlag(NAME, flag, values[flag] as string | undefined, fallback);
    if (p === 0) throw new CliError(`pillion ${NAME}: --${flag} must be 1-65535`, 2);
    return p;
  };
  return {
    proxyUid: uidText === undefined ? DEFAULT_INTERCEPT.proxyUid : Number(uidText),
    inboundPort: port('inbound-port', DEFAULT_INTERCEPT.inboundPort),
    outboundPort: port('outbound-port', DEFAULT_INTERCEPT.outboundPort),
    adminPort: port('admin-port', DEFAULT_INTERCEPT.adminPort),
    skipInboundPorts: portListFlag('skip-inbound-ports', values['skip-inbound-ports'] as string | undefined),
    skipOutboundPorts: portListFlag('skip-outbound-ports', values['skip-outbound-ports'] as string | undefined),
  };
}

export async function run(argv: string[]): Promise<number> {
  const { values } = parseFlags(NAME, argv, {
    'proxy-uid': { type: 'string' },
    'inbound-port': { type: 'string' },
    'outbound-port': { type: 'string' },
    'admin-port': { type: 'string' },
    'skip-inbound-ports': { type: 'string' },
    'skip-outbound-ports': { type: 'string' },
    'dry-run': { type: 'boolean' },
    cleanup: { type: 'boolean' },
    ipv6: { type: 'boolean' },
  });
  const opts = interceptOptions(values);
  const dryRun = values['dry-run'] === true;
  try {
    if (values.cleanup) {
      // IPv6 rules are removed too wherever ip6tables works, whether or not --ipv6 is given.
      const v4 = cleanupRules(undefined, dryRun, 4);
      const v6 = values.ipv6 || hasIp6tables() ? cleanupRules(undefined, dryRun, 6) : undefined;
      if (dryRun) {
        process.stdout.write(v4 ? `# iptables-restore --noflush\n${v4}` : '# nothing of pillion\'s to remove (IPv4)\n');
        if (v6) process.stdout.write(`# ip6tables-restore --noflush\n${v6}`);
      } else {
        process.stdout.write(v4 || v6 ? 'pillion init-iptables: removed pillion\'s nat chains and jumps\n' : 'pillion init-iptables: no pillion rules were installed\n');
      }
      return 0;
    }
    if (dryRun) {
      // What a first install would run; a rerun also deletes and re-adds the two jumps.
      process.stdout.write(`# pillion init-iptables: input for iptables-restore --noflush\n${installRuleset(opts)}`);
      if (values.ipv6) process.stdout.write(`# pillion init-iptables: input for ip6tables-restore --noflush\n${installRuleset(opts, [], 6)}`);
      return 0;
    }
    installRules(opts, undefined, 4);
    if (values.ipv6) installRules(opts, undefined, 6);
    process.stdout.write(
      `pillion init-iptables: inbound TCP -> :${opts.inboundPort}, outbound TCP -> :${opts.outboundPort}, ` +
      `uid ${opts.proxyUid} and loopback not redirected${values.ipv6 ? ' (IPv4 and IPv6)' : ''}\n`,
    );
    return 0;
  } catch (err) {
    if (err instanceof IptablesError) throw new CliError(`pillion ${NAME}: ${err.message}`, 1);
    throw err;
  }
}
