// A small read-only dashboard at GET / on the control port: proxies and their sync state,
// versions, policies. The page holds no data; it asks for the admin token and reads the
// admin API with it, so it needs no authentication of its own.
import type { IncomingMessage, ServerResponse } from 'node:http';

const HTML = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Pillion control</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 1.6em; }
table { border-collapse: collapse; } td, th { text-align: left; padding: 3px 12px 3px 0; border-bottom: 1px solid #eee; vertical-align: top; }
.SYNCED { color: #1a7f37; } .STALE { color: #9a6700; } .NACKED { color: #cf222e; font-weight: bold; }
#error { color: #cf222e; } code, pre { font-size: 12px; } pre { background: #f6f8fa; padding: 8px; max-width: 60em; overflow: auto; }
</style></head>
<body>
<h1>Pillion control server</h1>
<form id="login"><label>Admin token <input id="token" type="password" size="48" autocomplete="off"></label>
<button>Show</button> <span class="hint">(from &lt;data&gt;/admin.token; kept in this tab only)</span></form>
<p id="error"></p>
<div id="content" hidden>
<p id="summary"></p>
<h2>Proxies</h2><table id="proxies"></table>
<h2>Versions</h2><table id="versions"></table>
<h2>Policies</h2><pre id="policies"></pre>
</div>
<script src="/dashboard.js"></script>
</body></html>
`;

const JS = `'use strict';
const $ = (id) => document.getElementById(id);
let token = sessionStorage.getItem('pillion-token') || '';
function cell(row, text, cls) { const td = row.insertCell(); td.textContent = text; if (cls) td.className = cls; }
function table(el, headers, rows) {
  el.textContent = '';
  const h = el.insertRow(); headers.forEach((x) => { const th = document.createElement('th'); th.textContent = x; h.appendChild(th); });
  rows.forEach((r) => { const row = el.insertRow(); r.forEach(([text, cls]) => cell(row, text, cls)); });
}
async function api(path) {
  const res = await fetch(path, { headers: { authorization: 'Bearer ' + token } });
  if (res.status === 401) throw new Error('the admin token was refused');
  if (!res.ok) throw new Error(path + ': HTTP ' + res.status);
  return res.json();
}
async function refresh() {
  if (!token) return;
  try {
    const [status, history, policies] = await Promise.all([api('/v1/status'), api('/v1/history?limit=20'), api('/v1/policies')]);
    $('error').textContent = '';
    $('content').hidden = false;
    const conv = status.convergence ? ', last push acknowledged by ' + status.convergence.proxies + ' proxies in ' + status.convergence.storedToAckedMs + ' ms' : '';
    $('summary').textContent = 'Version ' + status.version + ', ' + status.proxies.length + ' proxies connected' + conv + '.';
    table($('proxies'), ['proxy', 'service', 'version', 'state', 'last seen', 'reason'], status.proxies.map((p) => [
      [p.proxyId], [p.service], [p.ackedVersion == null ? '-' : String(p.ackedVersion)], [p.state, p.state],
      [new Date(p.lastSeen).toLocaleTimeString()], [p.reason || ''],
    ]));
    table($('versions'), ['version', 'created', 'policies', 'change'], history.versions.map((v) => [
      [String(v.version) + (v.version === history.version ? ' (current)' : '')], [new Date(v.createdAt).toLocaleString()], [String(v.policies)], [v.detail],
    ]));
    $('policies').textContent = JSON.stringify(policies.items, null, 2);
  } catch (err) {
    $('error').textContent = err.message;
  }
}
$('login').addEventListener('submit', (e) => {
  e.preventDefault();
  token = $('token').value.trim();
  sessionStorage.setItem('pillion-token', token);
  $('token').value = '';
  refresh();
});
refresh();
setInterval(refresh, 2000);
`;

const SECURITY = {
  'content-security-policy': "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; connect-src 'self'; form-action 'none'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

/** Serves the page and its script; returns false for any other request. */
export function handleDashboard(req: IncomingMessage, res: ServerResponse): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const path = (req.url ?? '/').split('?')[0];
  const body = path === '/' ? HTML : path === '/dashboard.js' ? JS : undefined;
  if (body === undefined) return false;
  res.writeHead(200, { ...SECURITY, 'content-type': path === '/' ? 'text/html; charset=utf-8' : 'text/javascript; charset=utf-8', 'content-length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}
