#!/usr/bin/env bash
# Measures Envoy's ShouldRateLimit (docs/benchmarks.md, "Envoy RLS"):
# `ratelimitd bench --api should-rate-limit` against envoyproxy/ratelimit
# files, first on the embedded engine, then on one Redis. No warm-up, so
# Redis's command counts cover exactly the requests the reports count.
# Usage: scripts/bench-rls.sh [duration, default 10s]
redis_port=16381
grpc_port=18283
http_port=18293
source "$(dirname "$0")/bench-common.sh"
mkdir "$work/envoy"
cat >"$work/envoy/partners.yaml" <<YAML
domain: partners
descriptors:
  - key: tenant
    rate_limit: {unit: minute, requests_per_unit: 600}
YAML

run() { # label, policy file
  serve "$2" --envoy-config-dir "$work/envoy"
  echo "== $1: ShouldRateLimit, 64 callers, 4 connections, 10,000 keys"
  $bin bench --api should-rate-limit --addr 127.0.0.1:$grpc_port --duration "$duration" \
    --warmup 0s --concurrency 64 --connections 4 --keys 10000 --domain partners --descriptor tenant
  echo "== $1: one caller"
  $bin bench --api should-rate-limit --addr 127.0.0.1:$grpc_port --duration "$duration" \
    --warmup 0s --concurrency 1 --connections 1 --keys 10000 --domain partners --descriptor tenant
  echo "== $1: the service's script reloads (NOSCRIPT)"
  curl -s "http://127.0.0.1:$http_port/metrics" | grep '^ratelimitd_redis_noscript_reloads_total' || echo none
  kill $served && wait $served 2>/dev/null || true
}

echo "rules: []" >"$work/memory.yaml"
run embedded "$work/memory.yaml"

start_redis
cat >"$work/redis.yaml" <<YAML
backends:
  - {name: redis, type: redis, url: "redis://127.0.0.1:$redis_port", pool_size: 4, command_timeout: 1s}
rules: []
YAML
redis-cli -p $redis_port config resetstat >/dev/null
run redis "$work/redis.yaml"
echo "== redis: commands during those runs"
redis-cli -p $redis_port info commandstats | grep '^cmdstat_'
