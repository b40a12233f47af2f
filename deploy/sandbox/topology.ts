// The sandbox topology: which pods to build, the app each runs, and the policies to apply.
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { decodePolicyObjects, isDnsLabel, TrafficPolicy } from '../../proxy/config';

export interface PodSpec {
  /** Service name: the pod is the network namespace `pillion-<name>`. */
  readonly name: string;
  /** The app's port inside the pod. */
  readonly port: number;
  /** Services the demo app calls on `GET /` (http://NAME:PORT/). */
  readonly calls: readonly string[];
  /** Run this instead of the demo app (PORT and SERVICE are set in its environment). */
  readonly command: readonly string[] | undefined;
}

export interface Topology {
  /** The pods' /24: .1 is the bridge (and the control server), pods count up from .11. */
  readonly subnet: string;
  readonly pods: readonly PodSpec[];
  /** TrafficPolicy documents as objects (what `pillion apply` takes). */
  readonly policies: readonly unknown[];
  /** The same, decoded: checked before anything is built. */
  readonly decoded: readonly TrafficPolicy[];
}

export class TopologyError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TopologyError';
  }
}

// Namespace names are pillion-<name>; veth peers are named by index, so only this length matters.
const MAX_NAME = 40;

/** The demo: frontend calls backend on 8080; the backend is rate limited on /limited and
 * the frontend's breaker for backend opens after a burst of failures. */
export const DEMO_TOPOLOGY_TEXT = `
subnet: 10.251.0.0/24
pods:
  - name: frontend
    port: 8080
    calls: [backend]
  - name: backend
    port: 8080
policies:
  - apiVersion: pillion.dev/v1alpha1
    kind: TrafficPolicy
    metadata: { name: backend }
    spec:
      service: backend
      timeout: 3s
      circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 5, windowSeconds: 10, resetTimeout: 5s }
      routes:
        - match: { pathPrefix: /limited }
          rateLimit: { requestsPerSecond: 2, burst: 3 }
  - apiVersion: pillion.dev/v1alpha1
    kind: TrafficPolicy
    metadata: { name: frontend }
    spec: { service: frontend, timeout: 5s }
`;

export function loadTopology(file: string | undefined): Topology {
  if (file === undefined) return decodeTopology(DEMO_TOPOLOGY_TEXT, 'demo topology');
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new TopologyError(`cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  return decodeTopology(text, file);
}

export function decodeTopology(text: string, where: string): Topology {
  let doc: unknown;
  try {
    doc = parse(text);
  } catch (err) {
    throw new TopologyError(`${where}: not YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const fail = (msg: string): never => { throw new TopologyError(`${where}: ${msg}`); };
  if (!isObject(doc)) return fail('must be a mapping with pods (and optionally subnet, policies)');
  for (const key of Object.keys(doc)) if (!['subnet', 'pods', 'policies'].includes(key)) fail(`unknown field ${key}`);
  const subnet = doc.subnet ?? '10.251.0.0/24';
  if (typeof subnet !== 'string' || !/^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.0\/24$/.test(subnet) || subnet.split(/[./]/).slice(0, 3).some((n) => Number(n) > 255)) {
    fail('subnet must be an IPv4 /24 such as 10.251.0.0/24');
  }
  if (!Array.isArray(doc.pods) || doc.pods.length === 0) fail('pods must be a non-empty list');
  const pods: PodSpec[] = (doc.pods as unknown[]).map((p, i) => {
    const at = `pods[${i}]`;
    if (!isObject(p)) return fail(`${at} must be a mapping`);
    for (const key of Object.keys(p)) if (!['name', 'port', 'calls', 'command'].includes(key)) fail(`${at}: unknown field ${key}`);
    const name = p.name;
    if (typeof name !== 'string' || !isDnsLabel(name) || name.length > MAX_NAME || name === 'net') {
      fail(`${at}.name must be a DNS label of at most ${MAX_NAME} characters, not "net"`);
    }
    const port = p.port ?? 8080;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535 || (port >= 15000 && port <= 15010)) {
      fail(`${at}.port must be 1-65535 and not a proxy port (15000-15010)`);
    }
    const calls = p.calls ?? [];
    if (!Array.isArray(calls) || calls.some((c) => typeof c !== 'string')) fail(`${at}.calls must be a list of service names`);
    const command = p.command;
    if (command !== undefined && (!Array.isArray(command) || command.length === 0 || command.some((c) => typeof c !== 'string'))) {
      fail(`${at}.command must be a non-empty list of strings`);
    }
    return { name: name as string, port: port as number, calls: calls as string[], command: command as string[] | undefined };
  });
  const names = new Set<string>();
  for (const pod of pods) {
    if (names.has(pod.name)) fail(`pod ${pod.name} is listed twice`);
    names.add(pod.name);
  }
  if (pods.length > 200) fail('at most 200 pods fit the /24');
  for (const pod of pods) for (const c of pod.calls) if (!names.has(c)) fail(`pod ${pod.name} calls ${c}, which is not a pod`);
  const policies = doc.policies ?? [];
  if (!Array.isArray(policies)) return fail('policies must be a list of TrafficPolicy documents');
  let decoded: readonly TrafficPolicy[];
  try {
    decoded = decodePolicyObjects(policies);
  } catch (err) {
    const issues = (err as { issues?: readonly string[] }).issues;
    return fail(`invalid policies: ${issues ? issues.join('; ') : (err as Error).message}`);
  }
  return { subnet: subnet as string, pods, policies, decoded };
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** `10.251.0.0/24` -> `10.251.0.` */
export function subnetPrefix(subnet: string): string {
  return subnet.replace(/0\/24$/, '');
}
