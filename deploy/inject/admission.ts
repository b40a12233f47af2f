// AdmissionReview v1 in, AdmissionReview v1 (or a 400 for what is not one) out: a pure
// function of the request body, so every case is testable without TLS.
import { diffJsonPatch } from './json-patch';
import { InjectError } from './errors';
import type { InjectOptions } from './options';
import { injectPodTemplate } from './pod';
import { isRecord, PodTemplate } from './types';

export interface AdmissionOutcome {
  readonly statusCode: number;
  readonly body: unknown;
  /** One line for the operator's log: what was decided and why. */
  readonly summary: string;
}

const API_VERSION = 'admission.k8s.io/v1';

function badRequest(error: string): AdmissionOutcome {
  return { statusCode: 400, body: { error }, summary: `rejected request: ${error}` };
}

function review(uid: string, response: Record<string, unknown>, summary: string): AdmissionOutcome {
  return { statusCode: 200, body: { apiVersion: API_VERSION, kind: 'AdmissionReview', response: { uid, ...response } }, summary };
}

export function reviewAdmission(raw: string, opts: InjectOptions): AdmissionOutcome {
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch (err) {
    return badRequest(`the body is not JSON (${(err as Error).message})`);
  }
  // Without a request uid no answer can be matched by the API server: such a body did not come
  // from it, so it gets a plain 400 rather than an AdmissionReview.
  if (!isRecord(parsed) || parsed.kind !== 'AdmissionReview' || parsed.apiVersion !== API_VERSION) {
    return badRequest(`expected an ${API_VERSION} AdmissionReview`);
  }
  const request = parsed.request;
  if (!isRecord(request) || typeof request.uid !== 'string' || request.uid === '') {
    return badRequest('the AdmissionReview has no request.uid');
  }
  const uid = request.uid;
  const target = `${typeof request.namespace === 'string' ? request.namespace : ''}/${podName(request.object) ?? '(unnamed)'}`;
  const allow = (why: string, warning?: string) =>
    review(uid, warning ? { allowed: true, warnings: [warning] } : { allowed: true }, `allowed ${target} unchanged: ${why}`);

  const kind = isRecord(request.kind) ? request.kind : {};
  if (kind.kind !== 'Pod' || (kind.group ?? '') !== '' || request.subResource) return allow('not a pod');
  if (request.operation !== 'CREATE') return allow(`operation ${String(request.operation)}`);
  const pod = request.object;
  if (!isRecord(pod) || !isRecord(pod.spec)) {
    // Never block a pod because of our own confusion: the API server validates pods anyway.
    return allow('no pod in the request', 'pillion: the request carried no pod object; no sidecar injected');
  }
  try {
    const decision = injectPodTemplate(
      { metadata: pod.metadata as PodTemplate['metadata'], spec: pod.spec as unknown as PodTemplate['spec'] },
      opts,
      podName(pod),
    );
    if (!decision.injected) return allow(decision.reason);
    const injected = { ...pod, metadata: decision.template.metadata, spec: decision.template.spec };
    const patch = diffJsonPatch(pod, injected);
    return review(
      uid,
      {
        allowed: true,
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(patch)).toString('base64'),
        ...(decision.warnings.length ? { warnings: decision.warnings.map((w) => `pillion: ${w}`) } : {}),
      },
      `injected ${target} (service ${decision.service}, ${decision.mode} sidecar)`,
    );
  } catch (err) {
    if (err instanceof InjectError) {
      // The pod asked for something impossible (a bad pillion.dev/* annotation): say so at
      // `kubectl apply` time rather than run it without the sidecar it asked for.
      const message = `pillion sidecar injection: ${err.message}`;
      return review(uid, { allowed: false, status: { code: 400, reason: 'BadRequest', message } }, `denied ${target}: ${err.message}`);
    }
    return allow(`internal error: ${(err as Error)?.message}`, 'pillion: injection failed internally; no sidecar injected');
  }
}

function podName(pod: unknown): string | undefined {
  const meta = isRecord(pod) ? pod.metadata : undefined;
  if (!isRecord(meta)) return undefined;
  if (typeof meta.name === 'string' && meta.name) return meta.name;
  if (typeof meta.generateName === 'string' && meta.generateName) return meta.generateName.replace(/-+$/, '') || undefined;
  return undefined;
}
