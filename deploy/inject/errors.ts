// Typed injection failures: each carries a stable code so the CLI and the webhook report
// them the same way (one line for `pillion inject`, an AdmissionReview status for the webhook).

export type InjectErrorCode =
  | 'INJECT_BAD_YAML'        // a document is not valid YAML
  | 'INJECT_BAD_OBJECT'      // a workload document lacks what every Kubernetes object of its kind has
  | 'INJECT_BAD_ANNOTATION'; // a pillion.dev/* annotation has a value we cannot honour

export class InjectError extends Error {
  constructor(readonly code: InjectErrorCode, message: string) {
    super(message);
    this.name = 'InjectError';
  }
}
