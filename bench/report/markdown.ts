// The results as a Markdown page: what was run, on what, the two tables and the bars.
import type { BenchResults, ScenarioResult } from '../results';

const n0 = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? Math.round(v).toLocaleString('en-US') : '–');
const n2 = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v.toFixed(2) : '–');
const n3 = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? v.toFixed(3) : '–');
const x2 = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? `${v.toFixed(2)}x` : '–');
const signed = (v: number | undefined) => (v !== undefined && Number.isFinite(v) ? `${v >= 0 ? '+' : ''}${v.toFixed(2)}` : '–');

function throughputRow(r: ScenarioResult): string {
  const s = r.summary!;
  const range = s.rounds > 1 ? ` (${n0(s.rpsMin)}–${n0(s.rpsMax)})` : '';
  return `| ${r.name} | ${r.hops} | ${n0(s.rps)}${range} | ${x2(s.vsDirect)} | ${x2(s.vsHttpProxy)} | ${x2(s.vsNginx)} | ${n2(s.p50Ms)} | ${n2(s.p99Ms)} | ${n3(s.cpuPer1k.throughput)} | ${n0(s.rssMb)} |`;
}

function fixedRow(r: ScenarioResult): string {
  const f = r.summary!.fixed;
  return `| ${r.name} | ${n2(f.p50Ms)} | ${n2(f.p90Ms)} | ${n2(f.p99Ms)} | ${signed(f.addedP50Ms)} | ${signed(f.addedP90Ms)} | ${signed(f.addedP99Ms)} | ${n3(r.summary!.cpuPer1k.fixedRate)} | ${n0(r.summary!.rssMb)} |`;
}

export function renderMarkdown(res: BenchResults, chartFile: string | undefined): string {
  const ok = res.scenarios.filter((r) => r.status === 'ok' && r.summary);
  const st = res.settings;
  const m = res.machine;
  const out: string[] = [];
  out.push(`# Pillion bench results${res.quick ? ' (quick smoke run)' : ''}`, '');
  out.push(`Run ${res.startedAt} with \`${res.command}\`${res.gitCommit ? ` at commit ${res.gitCommit.slice(0, 10)}` : ''}.`, '');
  out.push(`Machine: ${m.cpuModel}, ${m.cores} cores, ${m.memoryGiB} GiB, ${m.os}, kernel ${m.kernel}, Node ${m.node}`
    + `${Object.keys(m.tools).length ? `; ${Object.entries(m.tools).map(([k, v]) => `${k}: ${v}`).join(', ')}` : ''}.`
    + ' Load generator, proxy and upstream share these cores on loopback.'
    + (Number.isFinite(res.load?.median) ? ` The 1-minute load average during the run was ${res.load.median.toFixed(1)} (${res.load.min.toFixed(1)}–${res.load.max.toFixed(1)});`
      + ` above ${m.cores} the machine was shared with other work, so compare ratios from this run rather than absolute figures.` : ''), '');
  out.push(`Method: ${st.rounds} round(s); in each, every scenario in turn (order rotated per round) is started fresh, warmed`
    + ` for ${st.warmupSeconds}s, then measured. Figures are medians over rounds; ratios are medians of same-round ratios.`
    + ` CPU is the proxy processes' own utime+stime from /proc; memory is their RSS after the run.`, '');
  if (chartFile) out.push(`![req/s and latency per scenario](${chartFile})`, '');

  out.push(`## Maximum throughput: \`wrk -t${st.throughput.threads} -c${st.throughput.connections} -d${st.throughput.seconds}s\`, ${st.throughput.responseBytes}-byte responses`, '');
  out.push('| scenario | hops | req/s (range over rounds) | × direct | × http-proxy | × nginx | p50 ms | p99 ms | CPU s / 1k req | RSS MB |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of ok) out.push(throughputRow(r));
  out.push('');

  out.push(`## Fixed rate: ${st.fixedRate.rate.toLocaleString('en-US')} req/s over ${st.fixedRate.connections} connections for ${st.fixedRate.seconds}s, ${st.fixedRate.responseBytes}-byte responses`, '');
  const gen = Math.max(...ok.map((r) => r.summary!.fixed.generatorCpuShare).filter(Number.isFinite));
  out.push('Latency in ms; "added" is over direct in the same round. At 1,000 req/s, CPU seconds per 1,000 requests equals the vCPU the proxy uses.'
    + `${Number.isFinite(gen) ? ` The generator itself used at most ${(gen * 100).toFixed(0)}% of one core.` : ''}`, '');
  out.push('| scenario | p50 | p90 | p99 | added p50 | added p90 | added p99 | vCPU at 1k req/s | RSS MB |');
  out.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const r of ok) out.push(fixedRow(r));
  out.push('');
  out.push('Published anchors: Istio 1.24 reports about 0.20 vCPU and 60 MB per sidecar at 1,000 req/s; Istio 1.20 reports'
    + ' 0.23 ms p90 / 0.30 ms p99 added by a client and server sidecar pair at 1,000 req/s (compare with the pillion-pair rows;'
    + ' their CPU and memory are for both sidecars together).', '');

  const sbs = (res.sideBySide ?? []).filter((r) => r.status === 'ok');
  if (sbs.length) {
    const pinned = sbs.every((r) => r.pinned);
    out.push(`## Side by side: \`wrk -t${st.throughput.threads} -c${st.throughput.connections} -d${st.throughput.seconds}s\` on both at once`, '');
    out.push('Each comparison the bars make, run once more with both scenarios loaded at the same moment, each by its own'
      + ' wrk. Every round starts both afresh (which one first alternates) and warms them: two identical proxies can stay'
      + ' several percent apart for their whole life, so the median is taken over fresh pairs.'
      + (pinned
        ? ' The proxies of both share CPU core 0 (`taskset`), the load generators, the upstream and the bench the other'
          + ' core(s): each proxy gets half of one core, so the ratio of requests completed is the ratio of what a'
          + ' request costs each, and a drift of the machine\'s speed (visible above as the req/s range over rounds)'
          + ' falls on both alike.'
        : ' They could not be pinned to one shared core here (one core, or no `taskset`), so the heavier one may have'
          + ' taken more CPU than the other: read the CPU per request ratio.'), '');
    out.push('| candidate | baseline | rounds | requests ratio (median) | range over rounds | CPU per request ratio |');
    out.push('|---|---|---:|---:|---:|---:|');
    for (const r of sbs) out.push(`| ${r.candidate} | ${r.baseline} | ${r.rounds.length} | ${x2(r.ratio)} | ${x2(r.ratioMin)}–${x2(r.ratioMax)} | ${x2(r.cpuRatio)} |`);
    out.push('');
  }
  for (const r of (res.sideBySide ?? []).filter((x) => x.status !== 'ok')) out.push(`Side by side ${r.candidate} vs ${r.baseline} failed: ${r.reason ?? ''}`, '');

  out.push('## Performance bars from the issues', '');
  out.push('Each comparison is shown both ways: one after the other (medians of same-round req/s ratios, with the'
    + ' ratio of CPU per request in parentheses) and side by side (above). "Met" is judged side by side when the run'
    + ' has that reading, since one after the other the machine\'s drift is larger than the bars; else on req/s one'
    + ' after the other.', '');
  out.push('| issue | what | goal | measured | met |');
  out.push('|---:|---|---|---|:---:|');
  for (const b of res.bars) out.push(`| ${b.issue} | ${b.what} | ${b.goal} | ${b.display || '–'} | ${b.pass === undefined ? '' : b.pass ? 'yes' : 'no'} |`);
  out.push('');

  const c = res.convergence;
  out.push('## Control-plane convergence', '');
  if (c.status === 'ok' && c.points.length) {
    out.push('Time from an `apply` being stored to every connected proxy having acknowledged it.', '');
    out.push('| proxies | applies | median ms | worst ms | control server RSS MB |', '|---:|---:|---:|---:|---:|');
    for (const p of c.points) out.push(`| ${n0(p.proxies)} | ${p.applies} | ${n2(p.medianMs)} | ${n2(p.worstMs)} | ${n0(p.rssMb)} |`);
  } else {
    out.push(`${c.status}: ${c.reason ?? 'no result'}`);
  }
  out.push('');

  const notOk = res.scenarios.filter((r) => r.status !== 'ok');
  const partial = res.scenarios.filter((r) => r.status === 'ok' && r.samples.some((s) => s.error));
  if (notOk.length || partial.length || res.setup.note) {
    out.push('## Skipped or failed', '');
    if (res.setup.note) out.push(`- setup: ${res.setup.note}`);
    for (const r of notOk) out.push(`- ${r.name}: ${r.status}: ${r.reason ?? ''}`);
    for (const r of partial) for (const s of r.samples.filter((x) => x.error)) out.push(`- ${r.name}, round ${s.round + 1}: ${s.error}`);
    out.push('');
  }

  out.push('## Scenarios', '');
  for (const r of res.scenarios) out.push(`- **${r.name}**: ${r.label}`);
  out.push('');
  out.push(`Tracing scenarios exported to a local OTLP sink: ${res.otlpSink.exportRequests} export requests, ${n0(res.otlpSink.bytes)} bytes.`, '');
  return out.join('\n');
}
