// Where each workload kind keeps its pod template, and the walk over a multi-document manifest
// that `pillion inject -f FILE` performs. Kinds without pods pass through untouched.
import { Document, isMap, isScalar, isSeq, parseAllDocuments } from 'yaml';
import { InjectError } from './errors';
import { diffJsonPatch, JsonPatchOp } from './json-patch';
import type { InjectOptions } from './options';
import { InjectDecision, injectPodTemplate } from './pod';
import { isRecord, KubeObject, PodTemplate } from './types';

/** Path from the object's root to its pod template (`[]` means the object is a Pod). */
const TEMPLATE_PATHS: Record<string, readonly string[]> = {
  Pod: [],
  Deployment: ['spec', 'template'],
  StatefulSet: ['spec', 'template'],
  DaemonSet: ['spec', 'template'],
  ReplicaSet: ['spec', 'template'],
  Job: ['spec', 'template'],
  CronJob: ['spec', 'jobTemplate', 'spec', 'template'],
};

export const INJECTABLE_KINDS = Object.freeze(Object.keys(TEMPLATE_PATHS));

export interface WorkloadResult {
  readonly kind: string;
  readonly name: string;
  readonly decision: InjectDecision;
}

function getPath(obj: unknown, path: readonly string[]): unknown {
  let cur = obj;
  for (const key of path) cur = isRecord(cur) ? cur[key] : undefined;
  return cur;
}

function podFallbackName(meta: unknown): string | undefined {
  if (!isRecord(meta)) return undefined;
  if (typeof meta.name === 'string' && meta.name) return meta.name;
  // Pods made by a controller only have generateName ("web-7d4b9c-"): use it without the dash.
  if (typeof meta.generateName === 'string' && meta.generateName) return meta.generateName.replace(/-+$/, '') || undefined;
  return undefined;
}

/** Injects into one parsed object; undefined when its kind holds no pod template. */
export function injectWorkload(obj: KubeObject, opts: InjectOptions): WorkloadResult | undefined {
  const kind = typeof obj.kind === 'string' ? obj.kind : '';
  const path = TEMPLATE_PATHS[kind];
  if (!path) return undefined;
  const name = podFallbackName(obj.metadata) ?? '';
  const where = `${kind}/${name || '(unnamed)'}`;
  const template = path.length === 0 ? obj : getPath(obj, path);
  if (!isRecord(template) || !isRecord(template.spec)) {
    throw new InjectError('INJECT_BAD_OBJECT', `${where}: no pod template at ${path.length ? path.join('.') : 'the root'}`);
  }
  try {
    const decision = injectPodTemplate({ metadata: template.metadata as PodTemplate['metadata'], spec: template.spec as unknown as PodTemplate['spec'] }, opts, name || undefined);
    return { kind, name, decision };
  } catch (err) {
    if (err instanceof InjectError) throw new InjectError(err.code, `${where}: ${err.message}`);
    throw err;
  }
}

export interface ManifestResult {
  readonly text: string;
  readonly workloads: readonly WorkloadResult[];
}

/**
 * Injects into every workload of a multi-document YAML text. Only what injection adds is
 * written into the YAML tree, so comments and formatting elsewhere survive.
 */
export function injectManifestText(text: string, opts: InjectOptions, source = 'input'): ManifestResult {
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) throw new InjectError('INJECT_BAD_YAML', `${source}: not a YAML stream`);
  const out: string[] = [];
  const workloads: WorkloadResult[] = [];
  for (const doc of docs) {
    const first = doc.errors[0];
    if (first) {
      // The message ends with "at line N, column M:" and a drawing of the spot: keep one line.
      throw new InjectError('INJECT_BAD_YAML', `${source}: ${first.message.split('\n')[0]!.replace(/:$/, '')}`);
    }
    // An empty document, e.g. after a trailing `---`, has no contents or a null scalar.
    if (doc.contents === null || (isScalar(doc.contents) && doc.contents.value === null)) continue;
    workloads.push(...injectDocument(doc, opts));
    out.push(doc.toString({ lineWidth: 0 }));
  }
  return { text: out.map((d) => (d.startsWith('---') ? d : `---\n${d}`)).join(''), workloads };
}

function injectDocument(doc: Document, opts: InjectOptions): WorkloadResult[] {
  if (!isMap(doc.contents)) return [];
  const obj = doc.toJS() as unknown;
  if (!isRecord(obj)) return [];
  if (obj.kind === 'List' && Array.isArray(obj.items)) {
    // `kubectl get -o yaml` output: inject into each item in place.
    const results: WorkloadResult[] = [];
    obj.items.forEach((item, i) => {
      if (isRecord(item)) results.push(...applyToDoc(doc, ['items', i], item, opts));
    });
    return results;
  }
  return applyToDoc(doc, [], obj, opts);
}

function applyToDoc(doc: Document, base: (string | number)[], obj: KubeObject, opts: InjectOptions): WorkloadResult[] {
  const result = injectWorkload(obj, opts);
  if (!result) return [];
  if (result.decision.injected) {
    const templatePath = TEMPLATE_PATHS[result.kind]!;
    const before = (templatePath.length === 0 ? obj : getPath(obj, templatePath)) as KubeObject;
    const after = { ...before, metadata: result.decision.template.metadata, spec: result.decision.template.spec };
    // The same JSON Patch the webhook would send, applied to the YAML tree: inserted containers
    // go into the existing sequences, so the app's own entries keep their formatting.
    applyPatchToDocument(doc, [...base, ...templatePath], diffJsonPatch(before, after));
  }
  return [result];
}

function applyPatchToDocument(doc: Document, base: (string | number)[], ops: readonly JsonPatchOp[]): void {
  for (const op of ops) {
    const segments = op.path.split('/').slice(1).map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
    const key = segments.pop()!;
    // Walk node by node so that a segment is an index exactly where the node is a sequence.
    const parentPath: (string | number)[] = [...base];
    let node: unknown = doc.getIn(parentPath, true);
    for (const seg of segments) {
      const step = isSeq(node) ? Number(seg) : seg;
      parentPath.push(step);
      node = doc.getIn(parentPath, true);
    }
    if (isSeq(node)) {
      const i = Number(key);
      if (op.op === 'add') node.items.splice(i, 0, doc.createNode(op.value));
      else if (op.op === 'replace') node.items[i] = doc.createNode(op.value);
      else node.items.splice(i, 1);
    } else if (op.op === 'remove') {
      doc.deleteIn([...parentPath, key]);
    } else {
      doc.setIn([...parentPath, key], doc.createNode(op.value));
    }
  }
}
