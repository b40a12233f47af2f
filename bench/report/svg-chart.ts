// A dependency-free SVG chart of a run: req/s per scenario, and p50/p99 at the fixed rate.
import type { BenchResults } from '../results';

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

function niceMax(v: number): number {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 2.5, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

export function renderSvg(res: BenchResults): string {
  const rows = res.scenarios.filter((r) => r.status === 'ok' && r.summary);
  const width = 960;
  const labelW = 190;
  const plotW = width - labelW - 90;
  const rowH = 22;
  const top1 = 50;
  const h1 = rows.length * rowH;
  const top2 = top1 + h1 + 70;
  const h2 = rows.length * rowH;
  const height = top2 + h2 + 60;
  const maxRps = niceMax(Math.max(...rows.map((r) => r.summary!.rps)));
  const maxLat = niceMax(Math.max(...rows.map((r) => r.summary!.fixed.p99Ms).filter(Number.isFinite)));
  const colour = (name: string) => (name.startsWith('pillion') ? '#d9480f' : name === 'direct' ? '#868e96' : '#1c7ed6');
  const s: string[] = [];
  s.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`);
  s.push(`<rect width="${width}" height="${height}" fill="#fff"/>`);
  const st = res.settings;
  s.push(`<text x="10" y="22" font-size="15" font-weight="bold">Max throughput, req/s (wrk -t${st.throughput.threads} -c${st.throughput.connections}, ${st.throughput.responseBytes} B, median of ${st.rounds})</text>`);
  rows.forEach((r, i) => {
    const y = top1 + i * rowH;
    const w = (r.summary!.rps / maxRps) * plotW;
    s.push(`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${esc(r.name)}</text>`);
    s.push(`<rect x="${labelW}" y="${y + 3}" width="${w.toFixed(1)}" height="${rowH - 6}" fill="${colour(r.name)}"/>`);
    s.push(`<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 14}">${Math.round(r.summary!.rps).toLocaleString('en-US')}</text>`);
  });
  // Latency spans three decades (p50 near 0.1 ms, p99 up to 100s of ms on a busy machine):
  // a log axis keeps p50 visible.
  const lo = 0.05;
  const hi = 10 ** Math.ceil(Math.log10(Math.max(maxLat, 1)));
  const xOf = (ms: number) => (Number.isFinite(ms) && ms > lo ? (Math.log10(ms / lo) / Math.log10(hi / lo)) * plotW : 0);
  s.push(`<text x="10" y="${top2 - 22}" font-size="15" font-weight="bold">Latency at ${st.fixedRate.rate} req/s over ${st.fixedRate.connections} connections, ${st.fixedRate.responseBytes} B (ms, log scale): p50 dark, p99 light</text>`);
  for (let tick = 0.1; tick <= hi; tick *= 10) {
    const x = (labelW + xOf(tick)).toFixed(1);
    s.push(`<line x1="${x}" y1="${top2 - 4}" x2="${x}" y2="${top2 + h2}" stroke="#ddd"/>`);
    s.push(`<text x="${x}" y="${top2 + h2 + 14}" text-anchor="middle" fill="#555">${tick >= 1 ? tick.toFixed(0) : tick.toFixed(1)}</text>`);
  }
  rows.forEach((r, i) => {
    const y = top2 + i * rowH;
    const f = r.summary!.fixed;
    const w99 = xOf(f.p99Ms);
    const w50 = xOf(f.p50Ms);
    s.push(`<text x="${labelW - 6}" y="${y + 14}" text-anchor="end">${esc(r.name)}</text>`);
    s.push(`<rect x="${labelW}" y="${y + 3}" width="${w99.toFixed(1)}" height="${rowH - 6}" fill="${colour(r.name)}" fill-opacity="0.35"/>`);
    s.push(`<rect x="${labelW}" y="${y + 3}" width="${w50.toFixed(1)}" height="${rowH - 6}" fill="${colour(r.name)}"/>`);
    s.push(`<text x="${(labelW + Math.max(w99, w50) + 4).toFixed(1)}" y="${y + 14}">${f.p50Ms.toFixed(2)} / ${f.p99Ms.toFixed(2)}</text>`);
  });
  const m = res.machine;
  s.push(`<text x="10" y="${height - 16}" fill="#555">${esc(`${m.cpuModel}, ${m.cores} cores, Node ${m.node}, kernel ${m.kernel}; ${res.startedAt}`)}</text>`);
  s.push('</svg>');
  return `${s.join('\n')}\n`;
}
