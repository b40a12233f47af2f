#!/bin/bash
# Two Pillion sidecars that differ in environment, Node flags or build, side by side the way
# `pillion bench` compares its pairs: every round starts both afresh, pins them (every thread,
# the OTLP export worker included) to one shared core, warms them and loads both at once, each
# with its own `wrk -t1 -c32`. Prints each round's ratio of requests completed (A over B),
# both sidecars' resident memory and CPU per request (main thread, and the others: V8's
# helpers, the export worker), then the median. The two share the core about evenly, so the
# main threads' CPU per request is a second reading of the same ratio, from the other side.
# Use it for what the bench has no scenario for: a Node flag, an OTEL_* setting, or a patched
# copy of the build (A_ROOT).
#
# A tracing sidecar exports to a tiny OTLP receiver on 127.0.0.1:18090 that this script runs.
# Needs: npm run build, wrk, taskset, python3, curl. Uses loopback ports 18080-18094.
#
# Usage (1% sampling against tracing off, 30 s warm-up, 5 rounds):
#   T="OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:18090 OTEL_TRACES_SAMPLER=traceidratio OTEL_TRACES_SAMPLER_ARG=0.01"
#   A_ENV="$T" B_ENV="OTEL_SDK_DISABLED=true" ROUNDS=5 WARMUP=30 bash bench/pair-ab.sh
# Also: A_FLAGS / B_FLAGS (Node flags, after the sidecar's own), A_ROOT / B_ROOT (another
# checkout or copy with dist/ built), DUR (seconds measured, default 6).
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
A_ROOT=${A_ROOT:-$ROOT}; B_ROOT=${B_ROOT:-$ROOT}
A_ENV=${A_ENV:-}; B_ENV=${B_ENV:-}; A_FLAGS=${A_FLAGS:-}; B_FLAGS=${B_FLAGS:-}
ROUNDS=${ROUNDS:-5}; WARMUP=${WARMUP:-30}; DUR=${DUR:-6}
# The sidecars' own core and the rest (load generators, upstream, receiver).
CORE=0; OTHERS=1
if [ "$(nproc)" -gt 2 ]; then OTHERS="1-$(( $(nproc) - 1 ))"; fi
cd "$(mktemp -d)"
# Flags every sidecar gets (proxy/runtime/node-flags.ts), as the bench and the injector pass them.
SIDECAR_FLAGS=$(node -p "require('$ROOT/dist/proxy/runtime/node-flags').SIDECAR_NODE_FLAGS.join(' ')")
# The bench's own policy for the one-sidecar scenarios (bench/scenarios/pillion.ts), and its
# OTLP receiver (bench/servers/otlp-sink.ts) on a port the caller's OTEL_* settings can name.
node -e "process.stdout.write(require('$ROOT/dist/bench/scenarios/pillion').policyYaml(18080, 'none'))" > p.yaml
taskset -c $OTHERS node "$ROOT/dist/bench/servers/upstream.js" --port 18080 >/dev/null & UP=$!
taskset -c $OTHERS node -e "require('$ROOT/dist/bench/servers/otlp-sink').startOtlpSink(18090)" & SINK=$!
trap 'kill $UP $SINK 2>/dev/null' EXIT
sleep 0.5

# Pinned at launch: every thread the sidecar starts later (V8's helpers, the export worker)
# inherits the one core.
start() { # $1 name, $2 root, $3 env, $4 flags, $5 outbound port, $6 admin port, $7 inbound port
  env $3 taskset -c $CORE node $SIDECAR_FLAGS $4 "$2/bin/pillion.js" proxy --service bench --config p.yaml \
    --app 127.0.0.1:18080 --outbound-port $5 --admin-port $6 --inbound-port $7 >/dev/null 2>$1.log &
  echo $!
}
ready() { for _ in $(seq 100); do curl -sf -o /dev/null "http://127.0.0.1:$1/ready" && return 0; sleep 0.1; done; echo "sidecar on admin port $1 did not become ready" >&2; return 1; }
load() { # $1 seconds; both at once; prints "requests_a requests_b"
  taskset -c $OTHERS wrk -t1 -c32 -d${1}s -H 'Host: upstream' http://127.0.0.1:18081/ > a.out & local w=$!
  taskset -c $OTHERS wrk -t1 -c32 -d${1}s -H 'Host: upstream' http://127.0.0.1:18091/ > b.out
  wait $w
  echo "$(awk '/requests in/ {print $1}' a.out) $(awk '/requests in/ {print $1}' b.out)"
}
rss() { awk '/VmRSS/ {print int($2 / 1024)}' /proc/$1/status; }
# CPU ticks (utime + stime) of a process's main thread (its tid is its pid) and of all its threads.
ticks() { echo "$(awk '{print $14 + $15}' /proc/$1/task/$1/stat) $(cat /proc/$1/task/*/stat 2>/dev/null | awk '{s += $14 + $15} END {print s}')"; }
# Microseconds of CPU per request between two ticks() readings: "main other".
per_req() { # $1 before, $2 after, $3 requests
  python3 -c "import os; t = os.sysconf('SC_CLK_TCK'); a = '$1'.split(); b = '$2'.split(); m = (float(b[0]) - float(a[0])) / t; o = (float(b[1]) - float(a[1])) / t - m; print(f'{m * 1e6 / $3:.1f} {o * 1e6 / $3:.1f}')"
}

ratios=""
for round in $(seq $ROUNDS); do
  A=$(start a "$A_ROOT" "$A_ENV" "$A_FLAGS" 18081 18084 18083)
  B=$(start b "$B_ROOT" "$B_ENV" "$B_FLAGS" 18091 18094 18093)
  ready 18084 && ready 18094 || { kill $A $B; exit 1; }
  load $WARMUP >/dev/null
  ta=$(ticks $A); tb=$(ticks $B)
  read -r na nb < <(load $DUR)
  ta2=$(ticks $A); tb2=$(ticks $B)
  if [ -z "$na" ] || [ -z "$nb" ]; then
    echo "round $round: wrk reported no requests (a.log, b.log in $PWD)" >&2; kill $A $B; exit 1
  fi
  r=$(python3 -c "print(f'{$na / $nb:.3f}')")
  ratios="$ratios $r"
  read -r ma oa < <(per_req "$ta" "$ta2" $na); read -r mb ob < <(per_req "$tb" "$tb2" $nb)
  echo "round $round: A $na, B $nb requests in ${DUR}s, A/B ${r}x; RSS A $(rss $A) MB, B $(rss $B) MB;" \
    "CPU per request, main thread (other threads): A $ma ($oa) us, B $mb ($ob) us"
  kill $A $B
  # Started from a subshell, so not this shell's children to wait for: poll until gone.
  for _ in $(seq 100); do kill -0 $A 2>/dev/null || kill -0 $B 2>/dev/null || break; sleep 0.1; done
done
python3 -c "import statistics as s; r=[float(x) for x in '$ratios'.split()]; print(f'median A/B {s.median(r):.3f}x (rounds {min(r):.3f}x-{max(r):.3f}x)')"
