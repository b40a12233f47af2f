// What the injector needs to know about the cluster: the image, where the control server is,
// the Secret holding the proxy token, the ports. Defaults match deploy/kubernetes/.

export const ANNOTATION_INJECT = 'pillion.dev/inject';
export const ANNOTATION_NATIVE_SIDECAR = 'pillion.dev/native-sidecar';
export const ANNOTATION_SERVICE = 'pillion.dev/service';
export const ANNOTATION_SKIP_INBOUND = 'pillion.dev/skip-inbound-ports';
export const ANNOTATION_SKIP_OUTBOUND = 'pillion.dev/skip-outbound-ports';
/** Set on every pod we inject; its presence is how a second pass knows to leave the pod alone. */
export const ANNOTATION_STATUS = 'pillion.dev/status';
export const DEFAULT_CONTAINER_ANNOTATION = 'kubectl.kubernetes.io/default-container';

export const PROXY_CONTAINER = 'pillion-proxy';
export const INIT_CONTAINER = 'pillion-init';
export const TOKEN_VOLUME = 'pillion-token';
export const CACHE_VOLUME = 'pillion-cache';
export const TOKEN_MOUNT_PATH = '/var/run/secrets/pillion';
export const CACHE_MOUNT_PATH = '/var/lib/pillion-proxy';

export const PROXY_UID = 1337;

export interface InjectOptions {
  /** The Pillion image: it holds the proxy and the init-iptables step. */
  readonly image: string;
  readonly imagePullPolicy: 'Always' | 'IfNotPresent' | 'Never';
  /** The control server's URL as seen from an application pod. */
  readonly controlUrl: string;
  /**
   * Secret in the pod's own namespace (pods cannot mount Secrets of other namespaces) with key
   * `token`, and `ca.crt` (the CA of the control server's certificate) when controlUrl is https.
   */
  readonly tokenSecret: string;
  readonly inboundPort: number;
  readonly outboundPort: number;
  readonly adminPort: number;
}

export const DEFAULT_IMAGE = 'pillion:0.1.0';
// HTTPS: the control server in deploy/kubernetes/ runs with --tls-cert/--tls-key (the webhook
// needs them) and then serves its control API over TLS too, with the same certificate.
export const DEFAULT_CONTROL_URL = 'https://pillion-control.pillion-system.svc:15010';

export const DEFAULT_INJECT_OPTIONS: InjectOptions = Object.freeze({
  image: DEFAULT_IMAGE,
  imagePullPolicy: 'IfNotPresent',
  controlUrl: DEFAULT_CONTROL_URL,
  tokenSecret: 'pillion-proxy-token',
  inboundPort: 15006,
  outboundPort: 15001,
  adminPort: 15000,
});

export function injectOptions(overrides: Partial<InjectOptions> = {}): InjectOptions {
  const defined = Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== undefined));
  return Object.freeze({ ...DEFAULT_INJECT_OPTIONS, ...defined });
}
