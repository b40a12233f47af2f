// How a sidecar's Node is started. Every launcher of `pillion proxy` here passes these flags
// (the injector as NODE_OPTIONS on the proxy container, the sandbox, the demo and the bench on
// the command line), so that what the bench measures is what runs in a pod.
//
// --max-semi-space-size=4: a loaded proxy allocates ~30 KB per request, almost all of it dead
// by the next scavenge, and Node's default lets V8 grow each of the young generation's two
// semi-spaces to 16 MB for that: most of what a loaded sidecar adds to its idle memory.
// Capped at 4 MB, scavenges come four times as often but each has as little to copy, and the
// young generation stays in the CPU's caches. Measured (README, Benchmarks): resident memory
// after full load 90 -> 68 MB; side by side against Node's default, 1.02x the requests (7
// rounds, 0.92x-1.06x), i.e. no cost the bench can see.

/** Node options for `pillion proxy`, before the script: `node ...SIDECAR_NODE_FLAGS bin/pillion.js proxy`. */
export const SIDECAR_NODE_FLAGS: readonly string[] = ['--max-semi-space-size=4'];

/** The same as a NODE_OPTIONS value (Node accepts this flag there), for a container that runs the `pillion` binary. */
export const SIDECAR_NODE_OPTIONS = SIDECAR_NODE_FLAGS.join(' ');
