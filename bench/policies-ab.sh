#!/bin/bash
# Policies on vs off, through a client and a server sidecar (rate limit on the server's
# inbound, timeout/retries/breaker on the client's outbound), none of them tripping.
# Three pairs side by side (no policies | all policies, rate limit local | all policies, rate
# limit global), measured in short interleaved wrk slices so that other load on the machine
# hits all three alike. Prints req/s and the CPU both sidecars spent per request (µs).
# Needs: npm run build, wrk, redis-server, curl. Uses fixed loopback ports 18080, 18379, 19100-19356.
# Usage: ROUNDS=20 DUR=2 bench/policies-ab.sh     (files go to a temp directory)
set -u
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$(mktemp -d)"
U=18080; REDIS=18379
node -e "require('http').createServer((q, s) => s.end('hello world\\n')).listen($U, '127.0.0.1')" & UP=$!
redis-server --port $REDIS --bind 127.0.0.1 --save '' --appendonly no >/dev/null & RP=$!
sleep 0.5
export OTEL_SDK_DISABLED=true OTEL_TRACES_SAMPLER=always_off
policy() { # $1 endpoint port, $2 none|local|global
  echo "apiVersion: pillion.dev/v1alpha1
kind: TrafficPolicy
metadata: { name: upstream }
spec:
  service: upstream
  endpoints: [127.0.0.1:$1]"
  if [ "$2" != none ]; then echo "  timeout: 5s
  retries: { attempts: 2, perTryTimeout: 2s, on: [connect-failure, reset, gateway-error, \"503\"] }
  circuitBreaker: { errorThresholdPercentage: 50, volumeThreshold: 20, windowSeconds: 10, resetTimeout: 10s, maxConcurrent: 4096 }
  rateLimit: { requestsPerSecond: 1000000, burst: 1000000, key: none, scope: $2 }"; fi
}
PIDS=""
declare -A OUT
declare -A PAIR
base=19000
for v in none local global; do
  base=$((base+100))
  policy $U $v > server-$v.yaml
  node $ROOT/bin/pillion.js proxy --service upstream --config server-$v.yaml --app 127.0.0.1:$U --inbound-port $((base+6)) --outbound-port $((base+1)) --admin-port $((base)) --redis redis://127.0.0.1:$REDIS >/dev/null 2>server-$v.log & PIDS="$PIDS $!"
  policy $((base+6)) $v > client-$v.yaml
  node $ROOT/bin/pillion.js proxy --service bench --config client-$v.yaml --inbound-port $((base+56)) --outbound-port $((base+51)) --admin-port $((base+50)) >/dev/null 2>client-$v.log & PIDS="$PIDS $!"
  OUT[$v]=$((base+51))
  PAIR[$v]="$(echo $PIDS | awk '{print $(NF-1), $NF}')"
  for i in $(seq 50); do curl -sf -o /dev/null http://127.0.0.1:$base/ready && curl -sf -o /dev/null http://127.0.0.1:$((base+50))/ready && break; sleep 0.1; done
  wrk -t1 -c32 -d2s -H 'Host: upstream' http://127.0.0.1:${OUT[$v]}/ >/dev/null
done
order=(none local global)
for round in $(seq ${ROUNDS:-10}); do
  line="round $round"
  for k in 0 1 2; do
    v=${order[$(( (k + round) % 3 ))]}
    c0=0; for p in ${PAIR[$v]}; do c0=$((c0 + $(awk '{print $14+$15}' /proc/$p/stat))); done
    out=$(wrk -t1 -c32 -d${DUR:-2}s -H 'Host: upstream' http://127.0.0.1:${OUT[$v]}/)
    c1=0; for p in ${PAIR[$v]}; do c1=$((c1 + $(awk '{print $14+$15}' /proc/$p/stat))); done
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    n=$(echo "$out" | awk '/requests in/ {print $1}')
    non=$(echo "$out" | awk '/Non-2xx/ {print $NF}')
    line="$line $v=$rps cpu_$v=$(( (c1 - c0) * 10000 / n ))${non:+(non2xx=$non)}"
  done
  echo "$line"
done
kill $PIDS $UP $RP; wait 2>/dev/null
