import t from 'tap';
import { decodePolicyText, ConfigError } from '../proxy/config';

const valid = `
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: ratings }
spec:
  service: ratings
  endpoints: [127.0.0.1:9080]
  timeout: 3s
  retries: { attempts: 2, perTryTimeout: 1s, on: [connect-failure, reset, gateway-error, "503"] }
  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, windowSeconds: 10, resetTimeout: 10s, maxConcurrent: 1024 }
  rateLimit: { requestsPerSecond: 100, burst: 100, key: none, scope: local }
  routes:
    - match: { pathPrefix: /admin, methods: [POST, PUT] }
      rateLimit: { requestsPerSecond: 5 }
      timeout: 1s
---
apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: reviews }
spec: { service: reviews }
`;

function issuesOf(text: string): readonly string[] {
  try {
    decodePolicyText(text);
  } catch (err) {
    if (err instanceof ConfigError) return err.issues;
    throw err;
  }
  return [];
}

t.test('decodes the SPEC example into unit-named values with defaults', async (t) => {
  const [ratings, reviews] = decodePolicyText(valid);
  t.equal(ratings!.timeoutMs, 3000);
  t.same(ratings!.endpoints, [{ host: '127.0.0.1', port: 9080 }]);
  t.same(ratings!.retries, { attempts: 2, perTryTimeoutMs: 1000, on: ['connect-failure', 'reset', 'gateway-error', 503] });
  t.equal(ratings!.circuitBreaker!.resetTimeoutMs, 10_000);
  t.same(ratings!.routes[0]!.rateLimit, { requestsPerSecond: 5, burst: 5, key: { kind: 'none' }, scope: 'local' });
  t.equal(ratings!.routes[0]!.timeoutMs, 1000);
  t.equal(reviews!.timeoutMs, 15_000);
  t.equal(reviews!.retries.attempts, 0);
  t.equal(reviews!.rateLimit, undefined);
  t.ok(Object.isFrozen(ratings) && Object.isFrozen(ratings!.routes[0]!.match), 'decoded values are frozen');
});

t.test('accepts JSON', async (t) => {
  const [p] = decodePolicyText(JSON.stringify({ apiVersion: 'pillion.dev/v1alpha1', kind: 'TrafficPolicy', metadata: { name: 'a' }, spec: { service: 'a', timeout: '250ms' } }));
  t.equal(p!.timeoutMs, 250);
});

t.test('names the document, the field path and the reason', async (t) => {
  const bad = valid.replace('attempts: 2', 'attempts: -1');
  t.same(issuesOf(bad), ['ratings: spec.retries.attempts: must be an integer between 0 and 10 (got -1)']);
  t.match(issuesOf(valid.replace('timeout: 3s', 'timeout: 3')), [/^ratings: spec\.timeout: must be a duration/]);
  t.match(issuesOf(valid.replace('burst: 100', 'burst: 100, color: red')), [/^ratings: spec\.rateLimit\.color: unknown field/]);
  t.match(issuesOf(valid.replace('key: none', 'key: cookie')), [/^ratings: spec\.rateLimit\.key: must be none, client-ip or header:NAME/]);
  t.match(issuesOf(valid.replace('127.0.0.1:9080', '127.0.0.1:99999')), [/spec\.endpoints\[0\]: must be HOST:PORT/]);
  t.match(issuesOf(valid.replace('name: reviews', 'name: Reviews!')), [/^document 2: metadata\.name: must be a DNS label/]);
  t.match(issuesOf(valid.replace('"503"', '"700"')), [/spec\.retries\.on\[3\]/]);
  t.match(issuesOf(valid.replace('methods: [POST, PUT]', 'methods: [YEET]')), [/spec\.routes\[0\]\.match\.methods\[0\]/]);
});

t.test('reports every problem of every document, and applies nothing', async (t) => {
  const issues = issuesOf(valid.replace('attempts: 2', 'attempts: x').replace('service: reviews', 'service: 7'));
  t.equal(issues.length, 2);
  t.match(issues[1], /^reviews: spec\.service/);
});

t.test('rejects duplicates, wrong kinds and broken YAML', async (t) => {
  t.match(issuesOf(valid.replace('name: reviews', 'name: ratings').replace('service: reviews', 'service: other')), [/ratings: metadata\.name: defined 2 times/]);
  t.match(issuesOf(valid.replace('service: reviews', 'service: ratings')), [/already governed by policy "ratings"/]);
  t.match(issuesOf(valid.replace('kind: TrafficPolicy', 'kind: Deployment')), [/ratings: kind: must be "TrafficPolicy"/]);
  t.match(issuesOf('a: [1,\n'), [/^document 1: .*invalid YAML/]);
  t.match(issuesOf('- 1\n- 2\n'), [/must be an object/, /must be an object/]);
});
