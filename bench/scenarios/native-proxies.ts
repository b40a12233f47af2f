// nginx and HAProxy as the native yardsticks: one worker / one thread, pooled upstream
// connections, so each uses at most one core as a Node process does.
import path from 'node:path';
import { mkdirSync, writeFileSync } from 'node:fs';
import { startAnswering, freePort } from '../child';
import { programPath } from '../setup';
import type { Scenario } from './types';

export function nginxConfig(dir: string, port: number, upstreamPort: number): string {
  return `worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  upstream app {
    server 127.0.0.1:${upstreamPort};
    keepalive 64;
  }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
    }
  }
}
`;
}

export function haproxyConfig(port: number, upstreamPort: number): string {
  return `global
  nbthread 1
  maxconn 4096
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  http-reuse always
frontend bench
  bind 127.0.0.1:${port}
  default_backend app
backend app
  server app 127.0.0.1:${upstreamPort}
`;
}

export const nginx: Scenario = {
  name: 'nginx',
  label: 'nginx, 1 worker, upstream keepalive',
  hops: 1,
  unavailable: () => (programPath('nginx') ? undefined : 'nginx is not installed and could not be installed (needs root and apt-get)'),
  async start(ctx) {
    const dir = path.join(ctx.rawDir, 'nginx');
    mkdirSync(dir, { recursive: true });
    const port = await freePort();
    writeFileSync(path.join(dir, 'nginx.conf'), nginxConfig(dir, port, ctx.upstreamPort));
    const child = await startAnswering({
      name: 'nginx', command: programPath('nginx')!, args: ['-p', dir, '-c', path.join(dir, 'nginx.conf')],
      logFile: path.join(ctx.rawDir, 'nginx.stderr.log'),
    }, `http://127.0.0.1:${port}/`);
    // The master's workers are found under its pid when usage is read.
    return { port, hostHeader: 'upstream', pids: [child.pid], stop: () => child.stop() };
  },
};

export const haproxy: Scenario = {
  name: 'haproxy',
  label: 'HAProxy, 1 thread, http-reuse always',
  hops: 1,
  unavailable: () => (programPath('haproxy') ? undefined : 'haproxy is not installed and could not be installed (needs root and apt-get)'),
  async start(ctx) {
    const port = await freePort();
    const cfg = path.join(ctx.rawDir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConfig(port, ctx.upstreamPort));
    const child = await startAnswering({
      name: 'haproxy', command: programPath('haproxy')!, args: ['-f', cfg, '-db'],
      logFile: path.join(ctx.rawDir, 'haproxy.stderr.log'),
    }, `http://127.0.0.1:${port}/`);
    return { port, hostHeader: 'upstream', pids: [child.pid], stop: () => child.stop() };
  },
};
