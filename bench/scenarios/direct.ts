// No proxy: the load generator talks to the upstream itself. Every ratio is taken against this.
import type { Scenario } from './types';

export const direct: Scenario = {
  name: 'direct',
  label: 'direct to upstream (no proxy)',
  hops: 0,
  unavailable: () => undefined,
  async start(ctx) {
    return { port: ctx.upstreamPort, hostHeader: 'upstream', pids: [], stop: async () => {} };
  },
};
