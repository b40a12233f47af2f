// How the CLI prints policies: a summary table from the decoded model, or the documents as
// YAML/JSON exactly as stored.
import { stringify } from 'yaml';
import { decodePolicyObjects, formatDurationMs, TrafficPolicy } from '../../proxy/config';
import { formatTable } from './table';

export type OutputFormat = 'table' | 'yaml' | 'json';

export function outputFormat(o: string | undefined, json: boolean | undefined): OutputFormat | undefined {
  if (json) return 'json';
  if (o === undefined) return 'table';
  return o === 'yaml' || o === 'json' ? o : undefined;
}

export function policyTable(documents: readonly unknown[]): string {
  const rows = documents.map((doc) => {
    let p: TrafficPolicy | undefined;
    try {
      [p] = decodePolicyObjects([doc]);
    } catch {
      p = undefined; // stored documents were valid when stored; a newer decoder may disagree
    }
    const name = String((doc as { metadata?: { name?: unknown } }).metadata?.name ?? '?');
    if (!p) return [name, '?', '-', '-', '-', '-', 'not valid for this pillion version'];
    return [
      p.name,
      p.service,
      p.endpoints.length ? p.endpoints.map((e) => `${e.host.includes(':') ? `[${e.host}]` : e.host}:${e.port}`).join(',') : '-',
      formatDurationMs(p.timeoutMs),
      p.retries.attempts ? String(p.retries.attempts) : '-',
      p.circuitBreaker ? `${p.circuitBreaker.errorThresholdPercentage}% of ${p.circuitBreaker.volumeThreshold}` : '-',
      p.rateLimit ? `${p.rateLimit.requestsPerSecond}/s burst ${p.rateLimit.burst}${p.rateLimit.scope === 'global' ? ' global' : ''}` : '-',
    ];
  });
  return formatTable(['NAME', 'SERVICE', 'ENDPOINTS', 'TIMEOUT', 'RETRIES', 'BREAKER', 'RATE LIMIT'], rows);
}

export function documentsYaml(documents: readonly unknown[]): string {
  return documents.map((d) => stringify(d)).join('---\n');
}
