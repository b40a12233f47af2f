// The single decoder of TrafficPolicy documents, used by the proxy (files, control pushes)
// and by the control server (before it stores anything): one set of rules and messages.
import { parseAllDocuments } from 'yaml';
import { parseDurationMs } from './duration';
import {
  CircuitBreakerConfig, DEFAULT_RETRY, DEFAULT_TIMEOUT_MS, Endpoint, RateLimitConfig, RateLimitKey,
  RetryCondition, RetryConfig, RouteConfig, TrafficPolicy,
} from './types';

export const API_VERSION = 'pillion.dev/v1alpha1';
export const KIND = 'TrafficPolicy';

/** Thrown when any document is invalid; `issues` holds one line per problem. */
export class ConfigError extends Error {
  readonly code = 'PILLION_INVALID_CONFIG';
  constructor(readonly issues: readonly string[]) {
    super(issues.join('\n'));
    this.name = 'ConfigError';
  }
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const HOST_PORT = /^(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):(\d{1,5})$/;

/** A service or resource name: an RFC 1123 DNS label, as Kubernetes names are. */
export function isDnsLabel(name: string): boolean {
  return DNS_LABEL.test(name);
}

/** `host:port`, with `[v6]:port` for IPv6 literals; undefined when malformed or the port is out of range. */
export function parseHostPort(text: string): Endpoint | undefined {
  const m = HOST_PORT.exec(text);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port < 1 || port > 65535) return undefined;
  return { host: m[1]!.replace(/^\[|\]$/g, ''), port };
}
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'CONNECT', 'TRACE']);

type Obj = Record<string, unknown>;

/** Collects issues for one document so every problem is reported, not only the first. */
class DocReader {
  readonly issues: string[] = [];
  constructor(public label: string) {}

  fail(path: string, reason: string): undefined {
    this.issues.push(`${this.label}: ${path}: ${reason}`);
    return undefined;
  }

  object(value: unknown, path: string, allowed: readonly string[]): Obj | undefined {
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      return this.fail(path, `must be an object (got ${describe(value)})`);
    }
    for (const key of Object.keys(value)) {
      if (!allowed.includes(key)) this.fail(`${path}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
    return value as Obj;
  }

  int(value: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number | undefined {
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `between ${min} and ${max}`;
      return this.fail(path, `must be an integer ${range} (got ${describe(value)})`);
    }
    return value;
  }

  positiveNumber(value: unknown, path: string): number | undefined {
    if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
      return this.fail(path, `must be a number > 0 (got ${describe(value)})`);
    }
    return value;
  }

  string(value: unknown, path: string): string | undefined {
    if (typeof value !== 'string' || value.length === 0) {
      return this.fail(path, `must be a non-empty string (got ${describe(value)})`);
    }
    return value;
  }

  duration(value: unknown, path: string, minMs = 1): number | undefined {
    const ms = typeof value === 'string' ? parseDurationMs(value) : undefined;
    if (ms === undefined) return this.fail(path, `must be a duration such as 500ms, 3s or 1m (got ${describe(value)})`);
    if (ms < minMs) return this.fail(path, `must be at least ${minMs}ms (got ${describe(value)})`);
    return ms;
  }

  array(value: unknown, path: string): unknown[] | undefined {
    if (!Array.isArray(value)) return this.fail(path, `must be a list (got ${describe(value)})`);
    return value;
  }
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'object') return 'an object';
  const text = JSON.stringify(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/**
 * Decode the text of a policy file: YAML (one or more documents separated by `---`) or
 * JSON (an object or a list of objects). Throws ConfigError naming every problem.
 */
export function decodePolicyText(text: string): TrafficPolicy[] {
  const objects: { value: unknown; label: string }[] = [];
  const issues: string[] = [];
  const docs = parseAllDocuments(text, { uniqueKeys: true, prettyErrors: false });
  const list = Array.isArray(docs) ? docs : [docs];
  list.forEach((doc, i) => {
    const label = `document ${i + 1}`;
    if (doc.errors.length > 0) {
      const err = doc.errors[0]!;
      const line = err.linePos?.[0]?.line;
      issues.push(`${label}: ${line ? `line ${line}: ` : ''}invalid YAML: ${err.message.split('\n')[0]}`);
      return;
    }
    const value: unknown = doc.toJS({ maxAliasCount: 100 });
    if (value === null || value === undefined) return; // empty document, e.g. a trailing ---
    if (Array.isArray(value)) value.forEach((v, j) => objects.push({ value: v, label: `${label}[${j}]` }));
    else objects.push({ value, label });
  });
  if (issues.length > 0) throw new ConfigError(issues);
  return decodePolicyObjects(objects.map((o) => o.value), objects.map((o) => o.label));
}

/**
 * Decode already-parsed documents (what the control server receives as JSON).
 * `labels` names each document until its metadata.name is known.
 */
export function decodePolicyObjects(values: readonly unknown[], labels?: readonly string[]): TrafficPolicy[] {
  const issues: string[] = [];
  const policies: TrafficPolicy[] = [];
  values.forEach((value, i) => {
    const r = new DocReader(labels?.[i] ?? `document ${i + 1}`);
    const policy = decodeOne(r, value);
    issues.push(...r.issues);
    if (policy && r.issues.length === 0) policies.push(policy);
  });
  const names = new Map<string, number>();
  const services = new Map<string, string>();
  for (const p of policies) {
    names.set(p.name, (names.get(p.name) ?? 0) + 1);
    const other = services.get(p.service);
    if (other !== undefined && other !== p.name) {
      issues.push(`${p.name}: spec.service: service "${p.service}" is already governed by policy "${other}"`);
    }
    services.set(p.service, p.name);
  }
  for (const [name, count] of names) {
    if (count > 1) issues.push(`${name}: metadata.name: defined ${count} times`);
  }
  if (issues.length > 0) throw new ConfigError(issues);
  return policies;
}

function decodeOne(r: DocReader, value: unknown): TrafficPolicy | undefined {
  const doc = r.object(value, '(document)', ['apiVersion', 'kind', 'metadata', 'spec']);
  if (!doc) return undefined;
  const meta = r.object(doc.metadata, 'metadata', ['name', 'namespace', 'labels', 'annotations']);
  const name = meta ? r.string(meta.name, 'metadata.name') : undefined;
  if (name !== undefined) {
    if (DNS_LABEL.test(name)) r.label = name;
    else r.fail('metadata.name', `must be a DNS label: lower-case letters, digits and '-', at most 63 (got ${describe(name)})`);
  }
  if (doc.apiVersion !== API_VERSION) r.fail('apiVersion', `must be "${API_VERSION}" (got ${describe(doc.apiVersion)})`);
  if (doc.kind !== KIND) r.fail('kind', `must be "${KIND}" (got ${describe(doc.kind)})`);

  const spec = r.object(doc.spec, 'spec', ['service', 'endpoints', 'timeout', 'retries', 'circuitBreaker', 'rateLimit', 'routes']);
  if (!spec) return undefined;
  const service = r.string(spec.service, 'spec.service');
  if (service !== undefined && !DNS_LABEL.test(service)) {
    r.fail('spec.service', `must be a DNS label: lower-case letters, digits and '-' (got ${describe(service)})`);
  }
  const endpoints = spec.endpoints === undefined ? [] : decodeEndpoints(r, spec.endpoints, 'spec.endpoints');
  const timeoutMs = spec.timeout === undefined ? DEFAULT_TIMEOUT_MS : r.duration(spec.timeout, 'spec.timeout');
  const retries = spec.retries === undefined ? DEFAULT_RETRY : decodeRetries(r, spec.retries, 'spec.retries');
  const circuitBreaker = spec.circuitBreaker === undefined ? undefined : decodeBreaker(r, spec.circuitBreaker, 'spec.circuitBreaker');
  const rateLimit = spec.rateLimit === undefined ? undefined : decodeRateLimit(r, spec.rateLimit, 'spec.rateLimit', undefined);
  const routes = spec.routes === undefined ? [] : decodeRoutes(r, spec.routes, 'spec.routes', rateLimit);

  if (r.issues.length > 0 || !name || !service || timeoutMs === undefined || !retries || !endpoints || !routes) return undefined;
  return deepFreeze({ name, service, endpoints, timeoutMs, retries, circuitBreaker, rateLimit, routes });
}

function decodeEndpoints(r: DocReader, value: unknown, path: string): Endpoint[] | undefined {
  const list = r.array(value, path);
  if (!list) return undefined;
  const out: Endpoint[] = [];
  list.forEach((item, i) => {
    const p = `${path}[${i}]`;
    const text = r.string(item, p);
    if (text === undefined) return;
    const endpoint = parseHostPort(text);
    if (!endpoint) {
      r.fail(p, `must be HOST:PORT with a port between 1 and 65535 (got ${describe(text)})`);
      return;
    }
    out.push(endpoint);
  });
  return out;
}

function decodeRetries(r: DocReader, value: unknown, path: string): RetryConfig | undefined {
  const o = r.object(value, path, ['attempts', 'perTryTimeout', 'on']);
  if (!o) return undefined;
  const attempts = o.attempts === undefined ? 0 : r.int(o.attempts, `${path}.attempts`, 0, 10);
  const perTryTimeoutMs = o.perTryTimeout === undefined ? undefined : r.duration(o.perTryTimeout, `${path}.perTryTimeout`);
  let on: RetryCondition[] = [...DEFAULT_RETRY.on];
  if (o.on !== undefined) {
    const list = r.array(o.on, `${path}.on`);
    on = [];
    list?.forEach((item, i) => {
      const text = typeof item === 'number' ? String(item) : item;
      if (text === 'connect-failure' || text === 'reset' || text === 'gateway-error' || text === '5xx') on.push(text);
      else if (typeof text === 'string' && /^[1-5]\d\d$/.test(text)) on.push(Number(text));
      else r.fail(`${path}.on[${i}]`, `must be connect-failure, reset, gateway-error, 5xx or a status code (got ${describe(item)})`);
    });
  }
  if (attempts === undefined) return undefined;
  return { attempts, perTryTimeoutMs, on };
}

const BREAKER_DEFAULTS: CircuitBreakerConfig = {
  errorThresholdPercentage: 50, volumeThreshold: 20, windowSeconds: 10, resetTimeoutMs: 10_000, maxConcurrent: 1024,
};

function decodeBreaker(r: DocReader, value: unknown, path: string): CircuitBreakerConfig | undefined {
  const o = r.object(value, path, ['errorThresholdPercentage', 'volumeThreshold', 'windowSeconds', 'resetTimeout', 'maxConcurrent']);
  if (!o) return undefined;
  const d = BREAKER_DEFAULTS;
  const out = {
    errorThresholdPercentage: o.errorThresholdPercentage === undefined ? d.errorThresholdPercentage : r.int(o.errorThresholdPercentage, `${path}.errorThresholdPercentage`, 1, 100),
    volumeThreshold: o.volumeThreshold === undefined ? d.volumeThreshold : r.int(o.volumeThreshold, `${path}.volumeThreshold`, 1),
    windowSeconds: o.windowSeconds === undefined ? d.windowSeconds : r.int(o.windowSeconds, `${path}.windowSeconds`, 1, 3600),
    resetTimeoutMs: o.resetTimeout === undefined ? d.resetTimeoutMs : r.duration(o.resetTimeout, `${path}.resetTimeout`),
    maxConcurrent: o.maxConcurrent === undefined ? d.maxConcurrent : r.int(o.maxConcurrent, `${path}.maxConcurrent`, 1),
  };
  return Object.values(out).some((v) => v === undefined) ? undefined : (out as CircuitBreakerConfig);
}

function decodeRateLimit(r: DocReader, value: unknown, path: string, inherit: RateLimitConfig | undefined): RateLimitConfig | undefined {
  const o = r.object(value, path, ['requestsPerSecond', 'burst', 'key', 'scope']);
  if (!o) return undefined;
  let rps: number | undefined;
  if (o.requestsPerSecond !== undefined) rps = r.positiveNumber(o.requestsPerSecond, `${path}.requestsPerSecond`);
  else if (inherit) rps = inherit.requestsPerSecond;
  else return r.fail(`${path}.requestsPerSecond`, 'is required');
  // A route that changes the rate gets a burst of its own rate unless it says otherwise.
  const defaultBurst = o.requestsPerSecond === undefined && inherit ? inherit.burst : Math.max(1, Math.ceil(rps ?? 1));
  const burst = o.burst === undefined ? defaultBurst : r.int(o.burst, `${path}.burst`, 1);
  let key: RateLimitKey | undefined = inherit?.key ?? { kind: 'none' };
  if (o.key !== undefined) {
    if (o.key === 'none') key = { kind: 'none' };
    else if (o.key === 'client-ip') key = { kind: 'client-ip' };
    else if (typeof o.key === 'string' && o.key.startsWith('header:') && HEADER_NAME.test(o.key.slice(7))) {
      key = { kind: 'header', name: o.key.slice(7).toLowerCase() };
    } else key = r.fail(`${path}.key`, `must be none, client-ip or header:NAME (got ${describe(o.key)})`);
  }
  let scope: 'local' | 'global' | undefined = inherit?.scope ?? 'local';
  if (o.scope !== undefined) {
    if (o.scope === 'local' || o.scope === 'global') scope = o.scope;
    else scope = r.fail(`${path}.scope`, `must be local or global (got ${describe(o.scope)})`);
  }
  if (rps === undefined || burst === undefined || !key || !scope) return undefined;
  return { requestsPerSecond: rps, burst, key, scope };
}

function decodeRoutes(r: DocReader, value: unknown, path: string, rateLimit: RateLimitConfig | undefined): RouteConfig[] | undefined {
  const list = r.array(value, path);
  if (!list) return undefined;
  const out: RouteConfig[] = [];
  list.forEach((item, i) => {
    const p = `${path}[${i}]`;
    const o = r.object(item, p, ['match', 'rateLimit', 'timeout', 'retries']);
    if (!o) return;
    const m = r.object(o.match ?? {}, `${p}.match`, ['pathPrefix', 'methods']);
    let pathPrefix: string | undefined;
    if (m?.pathPrefix !== undefined) {
      pathPrefix = r.string(m.pathPrefix, `${p}.match.pathPrefix`);
      if (pathPrefix !== undefined && !pathPrefix.startsWith('/')) r.fail(`${p}.match.pathPrefix`, `must start with / (got ${describe(pathPrefix)})`);
    }
    let methods: string[] | undefined;
    if (m?.methods !== undefined) {
      methods = [];
      r.array(m.methods, `${p}.match.methods`)?.forEach((method, j) => {
        const up = typeof method === 'string' ? method.toUpperCase() : '';
        if (METHODS.has(up)) methods!.push(up);
        else r.fail(`${p}.match.methods[${j}]`, `must be an HTTP method (got ${describe(method)})`);
      });
    }
    out.push({
      match: { pathPrefix, methods },
      rateLimit: o.rateLimit === undefined ? undefined : decodeRateLimit(r, o.rateLimit, `${p}.rateLimit`, rateLimit),
      timeoutMs: o.timeout === undefined ? undefined : r.duration(o.timeout, `${p}.timeout`),
      retries: o.retries === undefined ? undefined : decodeRetries(r, o.retries, `${p}.retries`),
    });
  });
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}
