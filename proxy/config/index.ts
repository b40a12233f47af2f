// TrafficPolicy: the schema the proxy accepts, its decoder and its typed model.
export * from './types';
export { decodePolicyText, decodePolicyObjects, ConfigError, API_VERSION, KIND, isDnsLabel, parseHostPort } from './decode';
export { parseDurationMs, formatDurationMs } from './duration';
