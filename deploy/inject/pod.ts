// The injection rule for one pod (or pod template), as a pure function: the webhook and
// `pillion inject` both call it, so what the cluster does and what the CLI prints cannot differ.
import { isDnsLabel } from '../../proxy/config';
import { InjectError } from './errors';
import { parsePortList } from '../iptables/rules';
import {
  ANNOTATION_INJECT, ANNOTATION_NATIVE_SIDECAR, ANNOTATION_SERVICE, ANNOTATION_SKIP_INBOUND,
  ANNOTATION_SKIP_OUTBOUND, ANNOTATION_STATUS, CACHE_VOLUME, DEFAULT_CONTAINER_ANNOTATION,
  INIT_CONTAINER, InjectOptions, PROXY_CONTAINER, PROXY_UID, TOKEN_VOLUME,
} from './options';
import { initContainer, proxyContainer, sidecarVolumes, SidecarParams } from './sidecar';
import { Container, isRecord, PodSpec, PodTemplate } from './types';

export type InjectDecision =
  | {
    readonly injected: true;
    readonly mode: 'native' | 'classic';
    readonly service: string;
    readonly template: PodTemplate;
    /** Things that will not work as the user probably expects, shown by kubectl and `pillion inject`. */
    readonly warnings: readonly string[];
  }
  | { readonly injected: false; readonly reason: string; readonly template: PodTemplate };

/**
 * Returns the template with the sidecar added, or the same template and why it was left alone.
 * `fallbackName` names the service when the pod has neither label (the workload's name).
 * Throws InjectError when the pod asks for something that cannot be done (a bad annotation).
 */
export function injectPodTemplate(template: PodTemplate, opts: InjectOptions, fallbackName?: string): InjectDecision {
  const annotations = stringMap(template.metadata?.annotations);
  const labels = stringMap(template.metadata?.labels);
  const spec = template.spec;
  if (!isRecord(spec) || !Array.isArray(spec.containers) || spec.containers.length === 0) {
    throw new InjectError('INJECT_BAD_OBJECT', 'the pod spec has no containers');
  }
  for (const field of ['initContainers', 'volumes'] as const) {
    if (spec[field] !== undefined && spec[field] !== null && !Array.isArray(spec[field])) {
      throw new InjectError('INJECT_BAD_OBJECT', `spec.${field} is not a list`);
    }
  }

  const optOut = annotations[ANNOTATION_INJECT] ?? labels[ANNOTATION_INJECT];
  if (optOut !== undefined && optOut.trim().toLowerCase() === 'false') {
    return { injected: false, reason: `${ANNOTATION_INJECT} is "false"`, template };
  }
  // The proxy would share the node's network namespace and its iptables rules would hijack
  // the node's traffic.
  if (spec.hostNetwork === true) return { injected: false, reason: 'the pod uses the host network', template };
  if (alreadyInjected(spec, annotations)) return { injected: false, reason: 'the pod already has the Pillion sidecar', template };

  const native = nativeSidecar(annotations[ANNOTATION_NATIVE_SIDECAR]);
  const params: SidecarParams = {
    service: serviceName(annotations, labels, fallbackName),
    native,
    skipInboundPorts: portList(ANNOTATION_SKIP_INBOUND, annotations[ANNOTATION_SKIP_INBOUND]),
    skipOutboundPorts: portList(ANNOTATION_SKIP_OUTBOUND, annotations[ANNOTATION_SKIP_OUTBOUND]),
  };
  for (const volume of spec.volumes ?? []) {
    if (volume?.name === TOKEN_VOLUME || volume?.name === CACHE_VOLUME) {
      throw new InjectError('INJECT_BAD_OBJECT', `the pod already has a volume named ${JSON.stringify(volume.name)}, which the sidecar needs`);
    }
  }

  const init = initContainer(opts, params);
  const proxy = proxyContainer(opts, params);
  const appInit = spec.initContainers ?? [];
  const newSpec: PodSpec = { ...spec, volumes: [...(spec.volumes ?? []), ...sidecarVolumes(opts)] };
  if (native) {
    // iptables first, then the proxy, then the app's own init containers: once the rules are in,
    // every later container's traffic goes through the proxy, so it has to be up already.
    newSpec.initContainers = [init, proxy, ...appInit];
  } else {
    // Without native sidecars the proxy only starts with the app containers, so the rules go in
    // last: the app's init containers keep a direct network, as they would without the mesh.
    newSpec.initContainers = [...appInit, init];
    // First, so that its postStart hook holds the app containers until the proxy is ready.
    newSpec.containers = [proxy, ...spec.containers];
  }

  const newAnnotations: Record<string, string> = { ...(template.metadata?.annotations ?? {}), [ANNOTATION_STATUS]: 'injected' };
  // `kubectl logs` / `exec` without -c should keep reaching the app, not the proxy.
  if (newAnnotations[DEFAULT_CONTAINER_ANNOTATION] === undefined) {
    newAnnotations[DEFAULT_CONTAINER_ANNOTATION] = spec.containers[0]!.name;
  }
  return {
    injected: true,
    mode: native ? 'native' : 'classic',
    warnings: proxyUidWarnings(spec),
    service: params.service,
    template: { ...template, metadata: { ...(template.metadata ?? {}), annotations: newAnnotations }, spec: newSpec },
  };
}

function stringMap(value: unknown): Record<string, string> {
  if (!isRecord(value)) return {};
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value)) if (typeof v === 'string') out[k] = v;
  return out;
}

function alreadyInjected(spec: PodSpec, annotations: Record<string, string>): boolean {
  if (annotations[ANNOTATION_STATUS] !== undefined) return true;
  const names = (list: Container[] | undefined) => (Array.isArray(list) ? list : []).map((c) => c?.name);
  return [...names(spec.containers), ...names(spec.initContainers)].some((n) => n === PROXY_CONTAINER || n === INIT_CONTAINER);
}

// Traffic of the proxy's UID is exempt from redirection (that is what prevents loops), so an app
// running as that UID silently bypasses its sidecar.
function proxyUidWarnings(spec: PodSpec): string[] {
  const podUid = isRecord(spec.securityContext) ? spec.securityContext.runAsUser : undefined;
  const out: string[] = [];
  for (const c of [...(spec.initContainers ?? []), ...spec.containers]) {
    const uid = isRecord(c?.securityContext) && c.securityContext.runAsUser !== undefined ? c.securityContext.runAsUser : podUid;
    if (uid === PROXY_UID) out.push(`container ${JSON.stringify(c.name)} runs as UID ${PROXY_UID}, the proxy's: its traffic bypasses the sidecar`);
  }
  return out;
}

function nativeSidecar(value: string | undefined): boolean {
  if (value === undefined) return true;
  const v = value.trim().toLowerCase();
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw new InjectError('INJECT_BAD_ANNOTATION', `${ANNOTATION_NATIVE_SIDECAR} must be "true" or "false" (got ${JSON.stringify(value)})`);
}


function serviceName(annotations: Record<string, string>, labels: Record<string, string>, fallback: string | undefined): string {
  const explicit = annotations[ANNOTATION_SERVICE];
  if (explicit !== undefined) {
    if (!isDnsLabel(explicit)) {
      throw new InjectError('INJECT_BAD_ANNOTATION', `${ANNOTATION_SERVICE} must be a DNS label (got ${JSON.stringify(explicit)})`);
    }
    return explicit;
  }
  // The proxy takes only a DNS label as --service (as TrafficPolicy names services), so a label
  // value such as "My_App" is passed over for the next candidate rather than crash-looping the proxy.
  const candidates = [labels['app.kubernetes.io/name'], labels['app'], fallback].filter((c): c is string => Boolean(c));
  const name = candidates.find((c) => isDnsLabel(c));
  if (!name) {
    const seen = candidates.length ? ` (${candidates.map((c) => JSON.stringify(c)).join(', ')} ${candidates.length > 1 ? 'are' : 'is'} not a DNS label)` : '';
    throw new InjectError('INJECT_BAD_OBJECT', `cannot tell the service name${seen}: set the app.kubernetes.io/name or app label (or the ${ANNOTATION_SERVICE} annotation)`);
  }
  return name;
}

// The same syntax `pillion init-iptables` accepts (ports and ranges), checked here so that a
// typo is reported when the pod is created, not as a crash-looping init container.
function portList(annotation: string, value: string | undefined): string | undefined {
  if (value === undefined || value.trim() === '') return undefined;
  const ports = parsePortList(value);
  if (!ports) throw new InjectError('INJECT_BAD_ANNOTATION', `${annotation} must be a comma-separated list of ports or ranges such as 5432,8000:8100 (got ${JSON.stringify(value)})`);
  return ports.length ? ports.join(',') : undefined;
}
