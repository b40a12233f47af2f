// Sidecar injection: the pure rule (pod.ts), the workload walk for `pillion inject`, and the AdmissionReview webhook.
export { injectPodTemplate, InjectDecision } from './pod';
export { injectWorkload, injectManifestText, INJECTABLE_KINDS, WorkloadResult, ManifestResult } from './workloads';
export { reviewAdmission, AdmissionOutcome } from './admission';
export { diffJsonPatch, JsonPatchOp } from './json-patch';
export { InjectError, InjectErrorCode } from './errors';
export * from './options';
export type { PodTemplate, PodSpec, Container, ObjectMeta, KubeObject } from './types';
