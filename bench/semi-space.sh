#!/bin/bash
# Memory against GC work for V8's young generation size (--max-semi-space-size, in MB): one
# sidecar per setting, each warmed up and then loaded for the same time, reporting resident
# memory after the load and the time spent in scavenges per 1,000 requests (from
# --trace-gc). Node's default lets the young generation grow to 3 x 16 MB under a proxy's
# allocation rate, which is most of what a loaded sidecar adds to its idle memory.
# Needs: npm run build, wrk. Uses loopback ports 18580-18599.
# Usage: DUR=10 bench/semi-space.sh [default 8 4 2]
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$(mktemp -d)"
DUR=${DUR:-10}
SIZES=${*:-default 8 4 2}
U=18580
node -e "require('http').createServer((q, s) => s.end('hello world\\n')).listen($U, '127.0.0.1')" & UP=$!
trap 'kill $UP 2>/dev/null' EXIT
printf 'apiVersion: pillion.dev/v1alpha1\nkind: TrafficPolicy\nmetadata: { name: upstream }\nspec:\n  service: upstream\n  endpoints: [127.0.0.1:%s]\n' $U > policy.yaml
export OTEL_SDK_DISABLED=true OTEL_TRACES_SAMPLER=always_off
printf '%-9s %10s %12s %18s %10s\n' semi-MB requests scavenges 'scavenge ms/1k req' 'RSS MB'
for size in $SIZES; do
  flag=""; [ "$size" != default ] && flag="--max-semi-space-size=$size"
  node $flag --trace-gc "$ROOT/bin/pillion.js" proxy --service bench --config policy.yaml \
    --inbound-port 18586 --outbound-port 18581 --admin-port 18590 > gc-$size.log 2>/dev/null & P=$!
  for _ in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:18590/ready && break; sleep 0.1; done
  wrk -t1 -c32 -d8s -H 'Host: upstream' http://127.0.0.1:18581/ > /dev/null   # warm-up
  before=$(wc -l < gc-$size.log)
  n=$(wrk -t1 -c32 -d${DUR}s -H 'Host: upstream' http://127.0.0.1:18581/ | awk '/requests in/{print $1}')
  rss=$(awk '/VmRSS/{printf "%.0f", $2/1024}' /proc/$P/status)
  tail -n +$((before + 1)) gc-$size.log | grep Scavenge > window.log
  count=$(wc -l < window.log)
  ms=$(grep -o '[0-9.]* / [0-9.]* ms' window.log | awk '{s += $1} END {printf "%.1f", s}')
  printf '%-9s %10s %12s %18s %10s\n' "$size" "$n" "$count" "$(echo "$ms $n" | awk '{printf "%.2f", $1 * 1000 / $2}')" "$rss"
  kill $P; wait $P 2>/dev/null
done
