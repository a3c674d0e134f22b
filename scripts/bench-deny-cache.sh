#!/usr/bin/env bash
# Measures the deny cache under a flood (docs/benchmarks.md, "Deny cache
# under a flood"): one client over its limit on one hot key, through
# ratelimitd with one Redis backend, the cache on and then off:
#  1. CheckLimit throughput and latency through `ratelimitd bench --keys 1`;
#  2. Redis script calls (INFO commandstats) per 1,000 denied requests;
#  3. the service's deny cache, backend call and decision metrics.
# Usage: scripts/bench-deny-cache.sh [duration, default 10s]
redis_port=16382
grpc_port=18284
http_port=18294
source "$(dirname "$0")/bench-common.sh"
start_redis

for cache in true false; do
  redis-cli -p $redis_port flushall >/dev/null
  cat >"$work/policy.yaml" <<YAML
backends:
  - name: redis
    type: redis
    url: "redis://127.0.0.1:$redis_port"
    pool_size: 4
    command_timeout: 1s
    deny_cache: {enabled: $cache}
rules:
  - name: tenant
    domain: partners
    match: {descriptors: [{key: tenant}]}
    limits: [{name: per-tenant, rate: 100/h}]
YAML
  serve "$work/policy.yaml"
  echo "== deny cache enabled: $cache"
  bench_counted --warmup 1s --keys 1
  redis-cli -p $redis_port info commandstats | grep '^cmdstat_evalsha' || echo "cmdstat_evalsha: none"
  curl -s "http://127.0.0.1:$http_port/metrics" \
    | grep -E '^ratelimitd_(deny_cache|backend_calls_total|decisions_total)' || true
  kill $served && wait $served 2>/dev/null || true
done
