#!/usr/bin/env bash
# Measures ratelimitd on one Redis (docs/benchmarks.md, "Redis"):
#  1. CheckLimit throughput and latency through `ratelimitd bench`;
#  2. Redis commands per CheckLimit (INFO commandstats);
#  3. the ceiling: redis-benchmark running the same script on the same Redis;
#  4. Redis memory per key for each algorithm (MEMORY USAGE).
# Usage: scripts/bench-redis.sh [duration, default 10s]
redis_port=16380
grpc_port=18282
http_port=18292
source "$(dirname "$0")/bench-common.sh"
start_redis

cat >"$work/policy.yaml" <<YAML
backends:
  - {name: redis, type: redis, url: "redis://127.0.0.1:$redis_port", pool_size: 4, command_timeout: 1s}
rules:
  - name: tenant
    domain: partners
    match: {descriptors: [{key: tenant}]}
    limits: [{name: per-tenant, rate: 600/m, algorithm: gcra, burst: 50}]
YAML
serve "$work/policy.yaml"

echo "== 1. ratelimitd bench through Redis (64 callers, 4 connections, 10,000 keys)"
bench_counted --warmup 0s --keys 10000

echo "== 2. Redis commands during that run, and the service's script reloads"
redis-cli -p $redis_port info commandstats | grep '^cmdstat_'
curl -s "http://127.0.0.1:$http_port/metrics" | grep '^ratelimitd_redis_noscript_reloads_total'

echo "== 3. redis-benchmark: the same script, same Redis (50 clients, random keys of 10,000)"
sha=$(redis-cli -p $redis_port script load "$(cat crates/engine/src/store/redis/lua/{prelude,fixed_window,sliding_window,sliding_log,token_bucket,gcra,decide}.lua)")
now=$(( $(date +%s) * 1000000 ))
# "redis": each call reads Redis's clock, so hits spread over time as in the
# ratelimitd run (a fixed time would pile them into one instant and deny).
redis-benchmark -p $redis_port -c 50 -n 1000000 -r 10000 -q \
  EVALSHA "$sha" 1 "rl:{partners|key:__rand_int__}per-tenant" redis 5 50 60000000 1 1 1 100000 \
  | tr '\r' '\n' | tail -n 1

echo "== 4. Redis memory per key (MEMORY USAGE after one hit)"
decide() { # name, algorithm, capacity, period, the algorithm's own parameters...
  # cost 1, needed 1, flags 1 (enforced): the argument layout of lua/prelude.lua
  redis-cli -p $redis_port evalsha "$sha" 1 "mem:{rule|client-1}$1" "$now" "${@:2:3}" 1 1 1 "${@:5}" >/dev/null
  printf '%-15s %s bytes\n' "$1" "$(redis-cli -p $redis_port memory usage "mem:{rule|client-1}$1")"
}
decide fixed_window 1 100 60000000
decide sliding_window 2 100 60000000 4294967295
decide sliding_log 3 100 60000000
decide token_bucket 4 100 60000000 100 600000 1
decide gcra 5 100 60000000 600000
