// Local pods without Kubernetes (`pillion sandbox up|down`): network namespaces on a bridge,
// each with its app, the iptables step and a UID-1337 sidecar, plus a control server.
export { sandboxUp, podNetns, NET_NS, BRIDGE, PROXY_UID, CONTROL_PORT, ConfigSource, UpOptions } from './up';
export { sandboxDown, teardown } from './down';
export { loadTopology, decodeTopology, DEMO_TOPOLOGY_TEXT, Topology, PodSpec, TopologyError } from './topology';
export { DEFAULT_STATE_DIR, readState, SandboxState } from './state';
export { SandboxError } from './commands';
export { sandboxBench, parseWrk, BenchRow } from './bench';
