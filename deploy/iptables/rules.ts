// The pod's nat rules as an iptables-restore ruleset: pure functions, so dry runs, tests and
// the real install all see the same text.

/** Our chains, and only these, are created, flushed and deleted (cleanup never guesses). */
export const CHAINS = {
  /** PREROUTING jumps here: inbound TCP to the pod, minus skipped ports. */
  inbound: 'PILLION_INBOUND',
  /** The one REDIRECT to the inbound listener. */
  inRedirect: 'PILLION_IN_REDIRECT',
  /** OUTPUT jumps here: what the pod sends, minus the proxy's own traffic and loopback. */
  output: 'PILLION_OUTPUT',
  /** The one REDIRECT to the outbound listener. */
  redirect: 'PILLION_REDIRECT',
} as const;

export const OWN_CHAINS: readonly string[] = Object.values(CHAINS);

export interface InterceptOptions {
  /** The proxy's UID: its traffic is never redirected outbound (that is what prevents loops). */
  readonly proxyUid: number;
  readonly inboundPort: number;
  readonly outboundPort: number;
  /** Admin port: a proxy port too, so never redirected either way. */
  readonly adminPort: number;
  /** Destination ports (N or N:M) of inbound traffic that goes straight to the app. */
  readonly skipInboundPorts: readonly string[];
  /** Destination ports (N or N:M) of outbound traffic that bypasses the proxy. */
  readonly skipOutboundPorts: readonly string[];
}

export const DEFAULT_INTERCEPT: InterceptOptions = Object.freeze({
  proxyUid: 1337,
  inboundPort: 15006,
  outboundPort: 15001,
  adminPort: 15000,
  skipInboundPorts: Object.freeze([]) as readonly string[],
  skipOutboundPorts: Object.freeze([]) as readonly string[],
});

/** A jump from a built-in chain into ours, as `iptables -S` prints it. */
export interface Jump {
  readonly chain: 'PREROUTING' | 'OUTPUT';
  readonly spec: string;
}

export const JUMPS: readonly Jump[] = [
  { chain: 'PREROUTING', spec: `-p tcp -j ${CHAINS.inbound}` },
  { chain: 'OUTPUT', spec: `-p tcp -j ${CHAINS.output}` },
];

/** `22`, `8000:8100` or `8000-8100` (the last normalised to iptables' colon form). */
export function parsePortList(value: string): string[] | undefined {
  if (value.trim() === '') return [];
  const out: string[] = [];
  for (const raw of value.split(',')) {
    const m = /^\s*(\d{1,5})(?:\s*[:-]\s*(\d{1,5}))?\s*$/.exec(raw);
    if (!m) return undefined;
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || hi < lo) return undefined;
    out.push(lo === hi ? String(lo) : `${lo}:${hi}`);
  }
  return out;
}

function proxyPorts(o: InterceptOptions): string[] {
  return [...new Set([o.adminPort, o.outboundPort, o.inboundPort])].map(String);
}

/**
 * The rules in our own chains, in order. The shape follows Istio's istio-iptables, whose
 * corner cases are the hard-won part:
 * - the proxy (UID) calling its own pod's IP leaves through `lo`: that is inbound traffic
 *   for the pod's app, so it takes the inbound path (policies of the local service apply);
 * - the app calling its own pod IP or loopback goes straight there;
 * - everything else the proxy UID sends is its own upstream traffic: never redirected.
 */
export type Family = 4 | 6;

function loopbackNet(family: Family): string {
  return family === 4 ? '127.0.0.0/8' : '::1/128';
}

export function chainRules(o: InterceptOptions, family: Family = 4): string[] {
  const { inbound, inRedirect, output, redirect } = CHAINS;
  const loopback = loopbackNet(family);
  const uid = String(o.proxyUid);
  const rules: string[] = [
    `-A ${inRedirect} -p tcp -j REDIRECT --to-ports ${o.inboundPort}`,
    `-A ${redirect} -p tcp -j REDIRECT --to-ports ${o.outboundPort}`,
  ];
  for (const port of [...proxyPorts(o), ...o.skipInboundPorts]) {
    rules.push(`-A ${inbound} -p tcp -m tcp --dport ${port} -j RETURN`);
  }
  rules.push(`-A ${inbound} -p tcp -j ${inRedirect}`);
  rules.push(
    `-A ${output} ! -d ${loopback} -o lo -p tcp -m owner --uid-owner ${uid} -j ${inbound}`,
    `-A ${output} -o lo -m owner ! --uid-owner ${uid} -j RETURN`,
    `-A ${output} -m owner --uid-owner ${uid} -j RETURN`,
    `-A ${output} -d ${loopback} -j RETURN`,
  );
  for (const port of [...proxyPorts(o), ...o.skipOutboundPorts]) {
    rules.push(`-A ${output} -p tcp -m tcp --dport ${port} -j RETURN`);
  }
  rules.push(`-A ${output} -p tcp -j ${redirect}`);
  return rules;
}

/**
 * The whole install as one `iptables-restore --noflush` transaction: declaring a chain
 * creates it or flushes it, and jumps already present (listed in `existing`) are deleted
 * before they are added again, so running it twice leaves exactly one set of rules.
 */
export function installRuleset(o: InterceptOptions, existing: readonly string[] = [], family: Family = 4): string {
  return [
    '*nat',
    ...OWN_CHAINS.map((c) => `:${c} - [0:0]`),
    ...existing.map((rule) => rule.replace(/^-A /, '-D ')),
    ...chainRules(o, family),
    ...JUMPS.map((j) => `-A ${j.chain} ${j.spec}`),
    'COMMIT',
    '',
  ].join('\n');
}

/** What `iptables -t nat -S` says of us: jumps into our chains from any other chain, and our chains. */
export function ownState(listing: string): { jumps: string[]; chains: string[] } {
  const own = new Set(OWN_CHAINS);
  const jumps: string[] = [];
  const chains: string[] = [];
  for (const line of listing.split('\n').map((l) => l.trim())) {
    const words = line.split(/\s+/);
    if (words[0] === '-N' && own.has(words[1]!)) chains.push(words[1]!);
    if (words[0] === '-A' && !own.has(words[1]!)) {
      const target = words[words.indexOf('-j') + 1];
      if (words.includes('-j') && target !== undefined && own.has(target)) jumps.push(line);
    }
  }
  return { jumps, chains };
}

/** Cleanup as one transaction: our jumps, then our rules, then our chains; nothing else. */
export function cleanupRuleset(listing: string): string | undefined {
  const { jumps, chains } = ownState(listing);
  if (jumps.length === 0 && chains.length === 0) return undefined;
  return [
    '*nat',
    ...jumps.map((rule) => rule.replace(/^-A /, '-D ')),
    ...chains.map((c) => `-F ${c}`),
    ...chains.map((c) => `-X ${c}`),
    'COMMIT',
    '',
  ].join('\n');
}
