// The control server: durable versioned TrafficPolicy store, push to proxies with acks, admin API.
export { startControlServer, readTlsFiles } from './server';
export type { ControlServer, ControlServerOptions } from './server';
export { VersionStore } from './store';
export type { PolicyDocument, StoredVersion, VersionSummary, ApplyResult } from './store';
export type { ProxyStatus, SyncState, Convergence } from './push-hub';
export { ControlError } from './errors';
