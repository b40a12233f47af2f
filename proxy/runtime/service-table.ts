// The policies in force, built into per-service stacks when a version is applied and
// swapped in whole, so a request sees one version from start to end.
import type http from 'node:http';
import type httpProxy from 'http-proxy';
import type { PolicySnapshot, TrafficPolicy } from '../config';
import { createAgent, createForwarder } from '../forward/forwarder';
import { buildInboundStack, buildOutboundStack, BuiltStack } from '../listeners/stacks';
import type { PolicyDeps } from '../listeners/policy-runtime';

export interface ServiceRuntime {
  readonly service: string;
  readonly policy: TrafficPolicy | undefined;
  /** Identity of the policy it was built from: an unchanged policy keeps its runtime (and breaker state). */
  readonly key: string;
  readonly stack: BuiltStack;
  /** Its forwarder sends to the policy's endpoints, so a request's fallback target is never used. */
  readonly usesEndpoints: boolean;
  inFlight: number;
}

export interface ServiceTableVersion {
  readonly snapshot: PolicySnapshot;
  readonly outbound: ReadonlyMap<string, ServiceRuntime>;
  /** Destinations with no policy: default timeout, no other policy. */
  readonly outboundDefault: ServiceRuntime;
  /** Calls into this proxy's app, with the app's own policy. */
  readonly inbound: ServiceRuntime;
}

export class ServiceTable {
  private readonly agents = new Map<string, http.Agent>();
  private readonly defaultAgent = createAgent();
  private readonly appAgent = createAgent();
  current: ServiceTableVersion;

  constructor(private readonly deps: PolicyDeps, private readonly proxy: httpProxy) {
    this.current = this.build({ version: 0, source: 'none', policies: [] }, undefined);
  }

  /** Swap in a decoded snapshot; runtimes whose policy is unchanged are kept. */
  async apply(snapshot: PolicySnapshot): Promise<void> {
    const old = this.current;
    const next = this.build(snapshot, old);
    this.current = next;
    const kept = new Set<ServiceRuntime>([...next.outbound.values(), next.outboundDefault, next.inbound]);
    const dropped = [...old.outbound.values(), old.outboundDefault, old.inbound].filter((r) => !kept.has(r));
    await Promise.all(dropped.map((r) => r.stack.close()));
  }

  outboundFor(service: string): ServiceRuntime {
    return this.current.outbound.get(service) ?? this.current.outboundDefault;
  }

  describeClusters(): Record<string, unknown>[] {
    const { outbound, outboundDefault, inbound } = this.current;
    const row = (direction: string, r: ServiceRuntime) => ({
      service: r.service, direction, policy: r.policy?.name ?? null,
      endpoints: r.policy?.endpoints.map((e) => `${e.host}:${e.port}`) ?? [],
      in_flight: r.inFlight,
      ...r.stack.describe(),
    });
    return [...[...outbound.values()].map((r) => row('outbound', r)), row('outbound', outboundDefault), row('inbound', inbound)];
  }

  async close(): Promise<void> {
    const { outbound, outboundDefault, inbound } = this.current;
    await Promise.all([...outbound.values(), outboundDefault, inbound].map((r) => r.stack.close()));
    for (const a of [...this.agents.values(), this.defaultAgent, this.appAgent]) a.destroy();
  }

  private agentFor(service: string): http.Agent {
    let agent = this.agents.get(service);
    if (!agent) {
      agent = createAgent();
      this.agents.set(service, agent);
    }
    return agent;
  }

  private build(snapshot: PolicySnapshot, old: ServiceTableVersion | undefined): ServiceTableVersion {
    const outbound = new Map<string, ServiceRuntime>();
    for (const policy of snapshot.policies) {
      const key = JSON.stringify(policy);
      const prev = old?.outbound.get(policy.service);
      if (prev && prev.key === key) {
        outbound.set(policy.service, prev);
        continue;
      }
      const forward = createForwarder(this.proxy, this.agentFor(policy.service), { endpoints: policy.endpoints });
      outbound.set(policy.service, {
        service: policy.service, policy, key, stack: buildOutboundStack(policy, this.deps, forward),
        usesEndpoints: policy.endpoints.length > 0, inFlight: 0,
      });
    }
    const outboundDefault = old?.outboundDefault ?? {
      service: '*', policy: undefined, key: '', usesEndpoints: false, inFlight: 0,
      stack: buildOutboundStack(undefined, this.deps, createForwarder(this.proxy, this.defaultAgent, { endpoints: [] })),
    };
    const selfPolicy = snapshot.policies.find((p) => p.service === this.deps.selfService);
    const inboundKey = selfPolicy ? JSON.stringify(selfPolicy) : '';
    const inbound = old && old.inbound.key === inboundKey ? old.inbound : {
      service: this.deps.selfService, policy: selfPolicy, key: inboundKey, usesEndpoints: false, inFlight: 0,
      // Inbound always goes to the local app, never to the policy's endpoints (other pods).
      stack: buildInboundStack(selfPolicy, this.deps, createForwarder(this.proxy, this.appAgent, { endpoints: [] })),
    };
    return { snapshot, outbound, outboundDefault, inbound };
  }
}
