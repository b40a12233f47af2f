// The keep-alive pool for upstream connections: Node's http.Agent, minus the per-request merge
// of options that was the largest single cost of a forwarded request.
//
// For every request, Node's ClientRequest hands the agent a null-prototype copy of the request's
// options, and Agent#addRequest merges that copy and the agent's own options (also without a
// prototype) into a third such object. V8 stores objects made that way as hash tables, so the
// merge takes V8's generic slow path key by key. http-proxy builds a request's options with a
// dozen keys that a plain-HTTP upstream leaves undefined (pfx, key, cert, ca, ciphers, ...), and
// every one of them went through that path. Measured with callgrind on a loaded sidecar (which
// counts instructions, so the noisy machine does not matter): the merge was about 57,000 of the
// 394,000 instructions a forwarded request cost the main thread. See the README's Benchmarks.
//
// addRequest is the agent contract ClientRequest calls (it checks that an agent has one); the
// pool logic stays Node's.
import http from 'node:http';

type Options = Record<string, unknown>;

/** Node's Agent internals this class relies on (not in @types/node). */
interface AgentInternals {
  options: Options;
  addRequest(req: http.ClientRequest, options: Options | string, port?: unknown, localAddress?: unknown): void;
}

const nodeAddRequest = (http.Agent.prototype as unknown as AgentInternals).addRequest;

export class UpstreamAgent extends http.Agent {
  constructor(options: http.AgentOptions) {
    super(options);
    const self = this as unknown as AgentInternals;
    // The same keys and values, still without a prototype (so nothing inherited can ever be read
    // as an option), but built as an ordinary object first: V8 keeps that one in fast mode, and
    // the per-request merge can copy it without the slow path.
    self.options = Object.setPrototypeOf({ ...self.options }, null) as Options;
  }

  /**
   * Node's addRequest, given only the options that are set. An undefined option and a missing
   * one read the same everywhere in Node's pool and in net.connect, so nothing else changes.
   */
  addRequest(req: http.ClientRequest, options: Options | string, port?: unknown, localAddress?: unknown): void {
    // Node still accepts addRequest(req, host, port, localAddress); ClientRequest never calls it so.
    if (typeof options !== 'object' || options === null) return nodeAddRequest.call(this, req, options, port, localAddress);
    const defined = definedOnly(options);
    // The TLS server name is meaningless to a plain-TCP pool, but unless one is given, Node works
    // it out from the Host header for every request, and a service name (not an IP) runs it
    // through both of net.isIP's regexes: about 1% of a forwarded request's CPU (perf, side by
    // side). '' is Node's own "no server name" (it never computes one then), and http.Agent
    // reads it nowhere else: not in the pool key, not in net.connect.
    if (defined.servername === undefined) defined.servername = '';
    nodeAddRequest.call(this, req, defined);
  }
}

/** A plain object with the keys of `options` whose values are not undefined. */
function definedOnly(options: Options): Options {
  const out: Options = {};
  const keys = Object.keys(options);
  for (let i = 0; i < keys.length; i++) {
    const k = keys[i]!;
    const v = options[k];
    if (v !== undefined) out[k] = v;
  }
  return out;
}
