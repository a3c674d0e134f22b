#!/usr/bin/env bash
# Resilience figures (docs/benchmarks.md, "Resilience"): ratelimitd under
# `ratelimitd bench` load with a failover chain [primary Redis, secondary
# Redis] and failure policy `local`; the primary is SIGKILLed 3 s in and
# restarted (empty) 4 s later. Prints the time from death to breaker open,
# from return to breaker closed (traffic back on the primary), and what the
# callers saw: errors, denials and latency.
set -euo pipefail
cd "$(dirname "$0")/.."
primary=16391 secondary=16392 grpc=18383
work=$(mktemp -d)
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  for port in $primary $secondary; do redis-cli -p $port shutdown nosave >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
start_redis() { redis-server --port "$1" --bind 127.0.0.1 --save "" --appendonly no --daemonize yes \
  --dir "$work" --logfile "$work/redis-$1.log"; until redis-cli -p "$1" ping >/dev/null 2>&1; do sleep 0.05; done; }
epoch() { date -d "$1" +%s.%N; }

cargo build --release -q -p ratelimitd-server
bin=target/release/ratelimitd
start_redis $primary
start_redis $secondary
cat >"$work/policy.yaml" <<YAML
backends:
  - {name: primary, type: redis, url: "redis://127.0.0.1:$primary"}
  - {name: secondary, type: redis, url: "redis://127.0.0.1:$secondary"}
  - {name: chain, type: failover, members: [primary, secondary]}
rules:
  - name: tenant
    domain: partners
    match: {descriptors: [{key: tenant}]}
    limits: [{rate: 1000000/m, algorithm: gcra}]
    backend: chain
    failure_policy: local
YAML
$bin serve --config "$work/policy.yaml" --grpc-addr 127.0.0.1:$grpc --http-addr 127.0.0.1:0 2>"$work/serve.log" &
until $bin health --addr 127.0.0.1:$grpc >/dev/null 2>&1; do sleep 0.1; done

$bin bench --addr 127.0.0.1:$grpc --duration 12s --warmup 0s --concurrency 32 --connections 4 \
  --keys 10000 --domain partners --descriptor tenant --json >"$work/bench.json" &
bench=$!
sleep 3
killed=$(date +%s.%N)
kill -9 "$(redis-cli -p $primary info server | tr -d '\r' | sed -n 's/^process_id://p')"
sleep 4
returned=$(date +%s.%N)
start_redis $primary
wait $bench

opened=$(grep -m1 'circuit breaker OPEN' "$work/serve.log" | awk '{print $1}')
closed=$(grep 'circuit breaker CLOSED' "$work/serve.log" | tail -n 1 | awk '{print $1}')
echo "== breaker transitions"
grep 'circuit breaker' "$work/serve.log" | sed 's/^/  /'
echo "== figures"
awk -v k="$killed" -v o="$(epoch "$opened")" 'BEGIN {printf "Redis death to breaker OPEN: %.0f ms\n", (o - k) * 1000}'
awk -v r="$returned" -v c="$(epoch "$closed")" 'BEGIN {printf "Redis return to breaker CLOSED (traffic back on the primary): %.0f ms\n", (c - r) * 1000}'
echo "callers (whole 12 s run): $(cat "$work/bench.json")"
