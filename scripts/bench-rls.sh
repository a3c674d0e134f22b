#!/usr/bin/env bash
# Measures Envoy's ShouldRateLimit (docs/benchmarks.md, "Envoy RLS"):
# `ratelimitd bench --api should-rate-limit` against envoyproxy/ratelimit
# files, first on the embedded engine, then on one Redis. No warm-up, so
# Redis's command counts cover exactly the requests the reports count.
# Usage: scripts/bench-rls.sh [duration, default 10s]
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
redis_port=16381
grpc_port=18283
http_port=18293
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cargo build --release -q -p ratelimitd-server
bin=target/release/ratelimitd
mkdir "$work/envoy"
cat >"$work/envoy/partners.yaml" <<YAML
domain: partners
descriptors:
  - key: tenant
    rate_limit: {unit: minute, requests_per_unit: 600}
YAML

run() { # label, policy file
  $bin serve --config "$2" --envoy-config-dir "$work/envoy" \
    --grpc-addr 127.0.0.1:$grpc_port --http-addr 127.0.0.1:$http_port --log warn &
  local pid=$!
  until $bin health --addr 127.0.0.1:$grpc_port >/dev/null 2>&1; do sleep 0.2; done
  echo "== $1: ShouldRateLimit, 64 callers, 4 connections, 10,000 keys"
  $bin bench --api should-rate-limit --addr 127.0.0.1:$grpc_port --duration "$duration" \
    --warmup 0s --concurrency 64 --connections 4 --keys 10000 --domain partners --descriptor tenant
  echo "== $1: one caller"
  $bin bench --api should-rate-limit --addr 127.0.0.1:$grpc_port --duration "$duration" \
    --warmup 0s --concurrency 1 --connections 1 --keys 10000 --domain partners --descriptor tenant
  echo "== $1: the service's script reloads (NOSCRIPT)"
  curl -s "http://127.0.0.1:$http_port/metrics" | grep '^ratelimitd_redis_noscript_reloads_total' || echo none
  kill $pid && wait $pid 2>/dev/null || true
}

echo "rules: []" >"$work/memory.yaml"
run embedded "$work/memory.yaml"

redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize yes --dir "$work" --logfile "$work/redis.log"
until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.1; done
cat >"$work/redis.yaml" <<YAML
backends:
  - {name: redis, type: redis, url: "redis://127.0.0.1:$redis_port", pool_size: 4, command_timeout: 1s}
rules: []
YAML
redis-cli -p $redis_port config resetstat >/dev/null
run redis "$work/redis.yaml"
echo "== redis: commands during those runs"
redis-cli -p $redis_port info commandstats | grep '^cmdstat_'
