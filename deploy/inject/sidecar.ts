// The containers and volumes that injection adds: the iptables init step and the proxy, the
// latter either as a native sidecar (an init container with restartPolicy Always, k8s >= 1.29)
// or as a classic container for older clusters.
import { SIDECAR_NODE_OPTIONS } from '../../proxy/runtime/node-flags';
import type { Container, Volume } from './types';
import {
  CACHE_MOUNT_PATH, CACHE_VOLUME, INIT_CONTAINER, InjectOptions, PROXY_CONTAINER, PROXY_UID,
  TOKEN_MOUNT_PATH, TOKEN_VOLUME,
} from './options';

export interface SidecarParams {
  readonly service: string;
  readonly native: boolean;
  readonly skipInboundPorts?: string;
  readonly skipOutboundPorts?: string;
}

// The admin API (and so /ready) listens on 127.0.0.1 only, which the kubelet's httpGet probes
// cannot reach: they connect to the pod IP. An exec probe runs inside the container's network
// namespace, so it can. The image has node, and no curl, so the probe is a one-line node script.
function readyOnceScript(adminPort: number): string {
  return `require('http').get({host:'127.0.0.1',port:${adminPort},path:'/ready',timeout:1500},` +
    `r=>process.exit(r.statusCode===200?0:1)).on('error',()=>process.exit(1)).on('timeout',function(){this.destroy()})`;
}

// Classic-container mode has no startup ordering, so, as Istio's holdApplicationUntilProxyStarts
// does, the proxy is the first container and its postStart hook blocks until /ready answers 200:
// the kubelet starts the next container only after that hook returns. Bounded: 120 tries * 0.5 s.
function waitReadyScript(adminPort: number): string {
  return `const h=require('http');let n=0;` +
    `function again(){if(++n>=120)process.exit(1);setTimeout(p,500)}` +
    `function p(){h.get({host:'127.0.0.1',port:${adminPort},path:'/ready',timeout:1000},` +
    `r=>{r.resume();if(r.statusCode===200)process.exit(0);again()}).on('error',again).on('timeout',function(){this.destroy()})}p()`;
}

export function initContainer(opts: InjectOptions, params: SidecarParams): Container {
  const args = [
    'init-iptables',
    '--proxy-uid', String(PROXY_UID),
    '--inbound-port', String(opts.inboundPort),
    '--outbound-port', String(opts.outboundPort),
    '--admin-port', String(opts.adminPort),
  ];
  if (params.skipInboundPorts) args.push('--skip-inbound-ports', params.skipInboundPorts);
  if (params.skipOutboundPorts) args.push('--skip-outbound-ports', params.skipOutboundPorts);
  return {
    name: INIT_CONTAINER,
    image: opts.image,
    imagePullPolicy: opts.imagePullPolicy,
    command: ['pillion'],
    args,
    resources: {
      requests: { cpu: '10m', memory: '32Mi' },
      limits: { cpu: '500m', memory: '128Mi' },
    },
    // Root is needed to edit the pod's netfilter tables, and nothing more: no privileged mode,
    // only the two capabilities iptables uses. The root filesystem stays writable because
    // iptables takes its lock under /run.
    securityContext: {
      runAsUser: 0,
      runAsGroup: 0,
      runAsNonRoot: false,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: false,
      capabilities: { add: ['NET_ADMIN', 'NET_RAW'], drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
  };
}

function usesTls(opts: InjectOptions): boolean {
  return opts.controlUrl.startsWith('https:');
}

export function proxyContainer(opts: InjectOptions, params: SidecarParams): Container {
  const args = [
    'proxy',
    '--service', params.service,
    '--control', opts.controlUrl,
    '--token-file', `${TOKEN_MOUNT_PATH}/token`,
    ...(usesTls(opts) ? ['--ca-file', `${TOKEN_MOUNT_PATH}/ca.crt`] : []),
    // `pillion status` rows read "pod.namespace"; the kubelet expands $(VAR) from env below.
    '--proxy-id', '$(PILLION_POD_NAME).$(PILLION_POD_NAMESPACE)',
    '--cache-dir', CACHE_MOUNT_PATH,
    '--inbound-port', String(opts.inboundPort),
    '--outbound-port', String(opts.outboundPort),
    '--admin-port', String(opts.adminPort),
  ];
  const container: Container = {
    name: PROXY_CONTAINER,
    image: opts.image,
    imagePullPolicy: opts.imagePullPolicy,
    // restartPolicy Always on an init container makes it a native sidecar: it keeps running,
    // the app containers start only once its startup probe passes, and it does not keep a
    // Job's pod from completing.
    ...(params.native ? { restartPolicy: 'Always' } : {}),
    command: ['pillion'],
    args,
    env: [
      { name: 'PILLION_POD_NAME', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
      { name: 'PILLION_POD_NAMESPACE', valueFrom: { fieldRef: { fieldPath: 'metadata.namespace' } } },
      // V8's young generation capped for a sidecar (proxy/runtime/node-flags.ts): ~68 MB under load, not ~90.
      { name: 'NODE_OPTIONS', value: SIDECAR_NODE_OPTIONS },
    ],
    resources: {
      requests: { cpu: '50m', memory: '64Mi' },
      limits: { cpu: '1', memory: '256Mi' },
    },
    securityContext: {
      runAsUser: PROXY_UID,
      runAsGroup: PROXY_UID,
      runAsNonRoot: true,
      privileged: false,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    },
    readinessProbe: {
      exec: { command: ['node', '-e', readyOnceScript(opts.adminPort)] },
      periodSeconds: 10,
      timeoutSeconds: 3,
      failureThreshold: 3,
    },
    volumeMounts: [
      { name: TOKEN_VOLUME, mountPath: TOKEN_MOUNT_PATH, readOnly: true },
      { name: CACHE_VOLUME, mountPath: CACHE_MOUNT_PATH },
    ],
  };
  if (params.native) {
    container.startupProbe = {
      exec: { command: ['node', '-e', readyOnceScript(opts.adminPort)] },
      periodSeconds: 1,
      timeoutSeconds: 3,
      failureThreshold: 120,
    };
  } else {
    container.lifecycle = { postStart: { exec: { command: ['node', '-e', waitReadyScript(opts.adminPort)] } } };
  }
  return container;
}

export function sidecarVolumes(opts: InjectOptions): Volume[] {
  return [
    // Not optional: a namespace without the token Secret gets a pod event naming it, rather
    // than a proxy that cannot authenticate.
    {
      name: TOKEN_VOLUME,
      secret: {
        secretName: opts.tokenSecret,
        items: [{ key: 'token', path: 'token' }, ...(usesTls(opts) ? [{ key: 'ca.crt', path: 'ca.crt' }] : [])],
      },
    },
    // The last good config, so a restarted proxy works while the control server is away; an
    // emptyDir survives container restarts (not pod restarts) and the root filesystem is read-only.
    { name: CACHE_VOLUME, emptyDir: { sizeLimit: '16Mi' } },
  ];
}
