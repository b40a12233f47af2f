// RFC 6902 JSON Patch from a before/after pair, as an AdmissionReview response carries it.
// Arrays that only gained elements get one `add` per new element, so the patch says exactly
// what was inserted and leaves the app's own containers alone.
import { isDeepStrictEqual } from 'node:util';
import { isRecord } from './types';

export type JsonPatchOp =
  | { op: 'add' | 'replace'; path: string; value: unknown }
  | { op: 'remove'; path: string };

export function pointerEscape(key: string | number): string {
  return String(key).replace(/~/g, '~0').replace(/\//g, '~1');
}

export function diffJsonPatch(before: unknown, after: unknown, path = ''): JsonPatchOp[] {
  if (isDeepStrictEqual(before, after)) return [];
  if (isRecord(before) && isRecord(after)) {
    const ops: JsonPatchOp[] = [];
    // As in JSON, a key whose value is undefined does not exist.
    for (const key of Object.keys(before)) {
      if (before[key] !== undefined && after[key] === undefined) ops.push({ op: 'remove', path: `${path}/${pointerEscape(key)}` });
    }
    for (const [key, value] of Object.entries(after)) {
      if (value === undefined) continue;
      const child = `${path}/${pointerEscape(key)}`;
      if (before[key] === undefined) ops.push({ op: 'add', path: child, value });
      else ops.push(...diffJsonPatch(before[key], value, child));
    }
    return ops;
  }
  if (Array.isArray(before) && Array.isArray(after)) {
    const inserted = insertionIndexes(before, after);
    if (inserted) return inserted.map((i) => ({ op: 'add', path: `${path}/${i}`, value: after[i] }));
  }
  return [{ op: 'replace', path, value: after }];
}

/** Indexes (ascending, in `after`) of the elements added when `before` is a subsequence of `after`. */
function insertionIndexes(before: unknown[], after: unknown[]): number[] | undefined {
  const added: number[] = [];
  let j = 0;
  for (let i = 0; i < after.length; i++) {
    if (j < before.length && isDeepStrictEqual(before[j], after[i])) j++;
    else added.push(i);
  }
  return j === before.length ? added : undefined;
}
