// The versioned store: every apply, delete or rollback writes a new integer version holding
// the whole set of TrafficPolicy documents, in SQLite (WAL), so rollback is a copy.
import Database from 'better-sqlite3';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodePolicyObjects } from '../proxy/config';
import { canonicalJson } from './canonical-json';
import { BadRequestError, NotFoundError, StoreCorruptError, StoreLockedError } from './errors';

/** A TrafficPolicy document as the user wrote it (validated), JSON-shaped. */
export type PolicyDocument = Readonly<Record<string, unknown>>;

export type VersionAction = 'apply' | 'delete' | 'rollback';

export interface VersionSummary {
  readonly version: number;
  readonly createdAt: string;
  readonly action: VersionAction;
  readonly detail: string;
  readonly policies: number;
}

export interface StoredVersion extends VersionSummary {
  readonly documents: readonly PolicyDocument[];
}

export interface ApplyResult {
  /** The new version, or the current one when nothing changed. */
  readonly version: number;
  readonly changed: boolean;
  readonly created: readonly string[];
  readonly configured: readonly string[];
  readonly unchanged: readonly string[];
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS versions (
  version    INTEGER PRIMARY KEY AUTOINCREMENT,
  created_at TEXT NOT NULL,
  action     TEXT NOT NULL,
  detail     TEXT NOT NULL,
  policies   INTEGER NOT NULL,
  documents  TEXT NOT NULL,
  sha256     TEXT NOT NULL
)`;

interface Row {
  version: number; created_at: string; action: string; detail: string; policies: number; documents: string; sha256: string;
}

export function policyName(doc: unknown): string {
  const meta = (doc as { metadata?: { name?: unknown } } | null)?.metadata;
  return typeof meta?.name === 'string' ? meta.name : '';
}

export function policyService(doc: unknown): string {
  const spec = (doc as { spec?: { service?: unknown } } | null)?.spec;
  return typeof spec?.service === 'string' ? spec.service : '';
}

export class VersionStore {
  private currentVersion = 0;
  private currentDocs: readonly PolicyDocument[] = [];
  private readonly insert: Database.Statement;
  private readonly byVersion: Database.Statement;

  private constructor(private readonly db: Database.Database, readonly file: string) {
    this.insert = db.prepare('INSERT INTO versions (created_at, action, detail, policies, documents, sha256) VALUES (?, ?, ?, ?, ?, ?)');
    this.byVersion = db.prepare('SELECT * FROM versions WHERE version = ?');
    const last = db.prepare('SELECT * FROM versions ORDER BY version DESC LIMIT 1').get() as Row | undefined;
    if (last) {
      const v = toStored(last);
      this.currentVersion = v.version;
      this.currentDocs = v.documents;
    }
  }

  /**
   * Durability: WAL with synchronous=FULL fsyncs the log on every commit, so an apply the
   * client saw acknowledged survives a process kill and a power loss. NORMAL would survive a
   * process kill too but may lose the last commits on power loss; one fsync per admin write
   * is cheap. EXCLUSIVE locking keeps a second control server off the same data directory.
   */
  static open(dataDir: string): VersionStore {
    fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(dataDir, 'pillion.db');
    const db = new Database(file, { timeout: 200 });
    try {
      db.pragma('locking_mode = EXCLUSIVE');
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
    } catch (err) {
      db.close();
      if ((err as { code?: string }).code === 'SQLITE_BUSY') throw new StoreLockedError(file);
      throw err;
    }
    return new VersionStore(db, file);
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  current(): { version: number; documents: readonly PolicyDocument[] } {
    return { version: this.currentVersion, documents: this.currentDocs };
  }

  get(version: number): StoredVersion {
    const row = this.byVersion.get(version) as Row | undefined;
    if (!row) throw new NotFoundError(`version ${version} does not exist`);
    return toStored(row);
  }

  history(limit = 1000): VersionSummary[] {
    const rows = this.db.prepare('SELECT version, created_at, action, detail, policies FROM versions ORDER BY version DESC LIMIT ?').all(limit) as Row[];
    return rows.map((r) => ({ version: r.version, createdAt: r.created_at, action: r.action as VersionAction, detail: r.detail, policies: r.policies }));
  }

  /**
   * Create or update the given documents (matched by metadata.name). Validation is the
   * proxy's decoder, twice: the documents as given (so errors read as they would in the
   * proxy) and the resulting whole set (a service governed by two policies).
   */
  apply(documents: readonly unknown[], labels?: readonly string[]): ApplyResult {
    if (documents.length === 0) throw new BadRequestError('no documents to apply');
    decodePolicyObjects(documents, labels);
    const next = new Map(this.currentDocs.map((d) => [policyName(d), d]));
    const created: string[] = [], configured: string[] = [], unchanged: string[] = [];
    for (const doc of documents as PolicyDocument[]) {
      const name = policyName(doc);
      const old = next.get(name);
      if (!old) created.push(name);
      else if (canonicalJson(old) === canonicalJson(doc)) unchanged.push(name);
      else configured.push(name);
      next.set(name, doc);
    }
    if (created.length === 0 && configured.length === 0) {
      return { version: this.currentVersion, changed: false, created, configured, unchanged };
    }
    const docs = sortByName([...next.values()]);
    decodePolicyObjects(docs);
    const parts = [created.length ? `created ${created.join(', ')}` : '', configured.length ? `configured ${configured.join(', ')}` : ''];
    const version = this.write('apply', parts.filter(Boolean).join('; '), docs);
    return { version, changed: true, created, configured, unchanged };
  }

  delete(name: string): number {
    if (!this.currentDocs.some((d) => policyName(d) === name)) throw new NotFoundError(`trafficpolicy "${name}" not found`);
    return this.write('delete', `deleted ${name}`, this.currentDocs.filter((d) => policyName(d) !== name));
  }

  /** A new version equal to `to`; by default the one before the current version. */
  rollback(to?: number): { version: number; to: number } {
    const target = to ?? this.currentVersion - 1;
    if (target < 1) throw new BadRequestError(this.currentVersion === 0 ? 'there is no version yet' : 'there is no version before the current one');
    if (target > this.currentVersion) throw new NotFoundError(`version ${target} does not exist (current is ${this.currentVersion})`);
    const stored = this.get(target);
    return { version: this.write('rollback', `rolled back to ${target}`, stored.documents), to: target };
  }

  private write(action: VersionAction, detail: string, docs: readonly PolicyDocument[]): number {
    const text = canonicalJson(docs);
    const sha = createHash('sha256').update(text).digest('hex');
    const info = this.insert.run(new Date().toISOString(), action, detail, docs.length, text, sha);
    // Only after the commit returned (fsynced) does the in-memory current move.
    this.currentVersion = Number(info.lastInsertRowid);
    this.currentDocs = JSON.parse(text) as PolicyDocument[];
    return this.currentVersion;
  }
}

function sortByName(docs: PolicyDocument[]): PolicyDocument[] {
  return docs.sort((a, b) => (policyName(a) < policyName(b) ? -1 : policyName(a) > policyName(b) ? 1 : 0));
}

function toStored(row: Row): StoredVersion {
  const sha = createHash('sha256').update(row.documents).digest('hex');
  if (sha !== row.sha256) throw new StoreCorruptError(`version ${row.version} does not match its checksum`);
  return {
    version: row.version, createdAt: row.created_at, action: row.action as VersionAction, detail: row.detail,
    policies: row.policies, documents: JSON.parse(row.documents) as PolicyDocument[],
  };
}
