#!/usr/bin/env bash
# Server CPU per decision, side by side (docs/benchmarks.md, "CPU per decision").
#
#   scripts/bench-cpu.sh [ROUNDS=3] [DURATION_S=8]
#
# Interleaves, round after round, the same RLS load (`../shared/tools/rlsload`
# on one client thread, 64 in flight, 2 connections, 1 and 100,000 keys)
# against:
#   null-ct, null-mt   nullrls (a do-nothing tonic RLS server: the floor of the
#                      stack) on a current-thread and a multi-threaded runtime
#   rld-mem            ratelimitd, in-process store (default: one serving
#                      thread per CPU); rld-mem-t1 the same with --threads 1
#   rld-check          ratelimitd, CheckLimit instead of ShouldRateLimit (load:
#                      `ratelimitd bench` on one client thread), same limit
#   rld-redis          ratelimitd on one Redis (Redis's CPU reported too)
#   lim-mem, lim-redis Limitador, when LIMITADOR names its binary (built by hand
#                      from its public source; this repository never builds it)
# Each line: system, keys, requests/s, p99 µs, server µs per request, Redis µs
# per request, the server's peak resident memory (VmHWM) and Redis's
# used_memory after the run in MB, and the CPU steal of the run in % (runs
# with steal > 1 % are disturbed by the shared VM: discard them).
#
# Environment: TOOLS (default ../shared/tools), RLSLOAD and NULLRLS (built from
# TOOLS/rlsload into /tmp/rlsload-target when unset), LIMITADOR, SYSTEMS (a
# space-separated subset of the names above), KEYS (default "1 100000"),
# RATELIMITD (a ratelimitd binary to measure instead of building this tree's:
# to compare two builds, run the script once per build, alternating).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
duration=${2:-8}
tools=${TOOLS:-../shared/tools}
systems=${SYSTEMS:-null-ct null-mt rld-mem rld-mem-t1 rld-check rld-redis${LIMITADOR:+ lim-mem lim-redis}}
grpc_port=18481
http_port=18491
redis_port=16481
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

source scripts/rls-bench-setup.sh
# The same limit for the Redis backend, CheckLimit and Limitador.
cat >"$work/redis.yaml" <<YAML
backends:
  - {name: redis, type: redis, url: "redis://127.0.0.1:$redis_port", pool_size: 4, command_timeout: 1s}
rules: []
YAML
cat >"$work/check.yaml" <<YAML
rules:
  - name: bench
    domain: bench
    match: {descriptors: [{key: user}]}
    rate: 1000000000/m
    algorithm: fixed_window
YAML
cat >"$work/limitador.yaml" <<YAML
- namespace: bench
  max_value: 1000000000
  seconds: 60
  conditions: []
  variables: ["descriptors[0].user"]
YAML

redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize yes --dir "$work" --logfile "$work/redis.log"
until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.1; done
redis_pid=$(redis-cli -p $redis_port info server | awk -F: '/^process_id/{print $2}' | tr -d '\r')

ticks() { awk '/^cpu /{t=0; for (i=2; i<=NF; i++) t+=$i; print t, $9}' /proc/stat; }
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }

start() { # system: starts it, sets $pid and $uses_redis
  uses_redis=0
  case $1 in
    null-ct) "$NULLRLS" 127.0.0.1:$grpc_port --current-thread >/dev/null 2>&1 & ;;
    null-mt) "$NULLRLS" 127.0.0.1:$grpc_port >/dev/null 2>&1 & ;;
    rld-mem | rld-mem-t1 | rld-check | rld-redis)
      local config=$work/memory.yaml extra=()
      [ "$1" = rld-mem-t1 ] && extra=(--threads 1)
      [ "$1" = rld-check ] && config=$work/check.yaml
      [ "$1" = rld-redis ] && config=$work/redis.yaml && uses_redis=1
      $bin serve --config "$config" --envoy-config-dir "$work/envoy" --no-watch "${extra[@]}" \
        --grpc-addr 127.0.0.1:$grpc_port --http-addr 127.0.0.1:$http_port --log warn >/dev/null 2>&1 &
      ;;
    lim-mem) "$LIMITADOR" --rls-ip 127.0.0.1 --rls-port $grpc_port --http-port $http_port \
      "$work/limitador.yaml" memory >/dev/null 2>&1 & ;;
    lim-redis)
      uses_redis=1
      "$LIMITADOR" --rls-ip 127.0.0.1 --rls-port $grpc_port --http-port $http_port \
        "$work/limitador.yaml" redis "redis://127.0.0.1:$redis_port" >/dev/null 2>&1 &
      ;;
    *) echo "unknown system $1" >&2 && exit 2 ;;
  esac
  pid=$!
  until "$RLSLOAD" --probe --addr http://127.0.0.1:$grpc_port --domain bench >/dev/null 2>&1; do sleep 0.1; done
}

# CheckLimit CPU per request, measured as rls-cpu.sh measures RLS.
check_limit_cpu() { # keys
  TOKIO_WORKER_THREADS=1 $bin bench --addr 127.0.0.1:$grpc_port --duration 2s --warmup 0s \
    --concurrency 16 --connections 2 --keys 1000 --domain bench --descriptor user >/dev/null
  local s0 s1
  s0=$(cpu "$pid")
  local out
  out=$(TOKIO_WORKER_THREADS=1 $bin bench --addr 127.0.0.1:$grpc_port --duration "${duration}s" \
    --warmup 0s --concurrency 64 --connections 2 --keys "$1" --domain bench --descriptor user --json)
  s1=$(cpu "$pid")
  python3 - "$out" "$s0" "$s1" "$(getconf CLK_TCK)" <<'PY'
import json, sys
d = json.loads(sys.argv[1])
s0, s1, tck = map(float, sys.argv[2:])
print(json.dumps({"rps": d["requests_per_second"], "latency_us": d["latency_us"],
                  "server_us_per_req": round((s1 - s0) / tck * 1e6 / max(d["requests"], 1), 2),
                  "redis_us_per_req": 0}))
PY
}

echo "system keys rps p99_us server_us redis_us server_mb redis_mb steal_pct"
for round in $(seq "$rounds"); do
  for keys in ${KEYS:-1 100000}; do
    for system in $systems; do
      start "$system"
      redis-cli -p $redis_port flushall >/dev/null
      before=$(ticks)
      if [ "$system" = rld-check ]; then
        out=$(check_limit_cpu "$keys")
      else
        redis_env=()
        [ $uses_redis = 1 ] && redis_env=(REDIS_PID="$redis_pid")
        out=$(env "${redis_env[@]}" bash "$tools/rls-cpu.sh" "$pid" http://127.0.0.1:$grpc_port "$duration" 64 "$keys")
      fi
      after=$(ticks)
      server_kb=$(awk '/^VmHWM/{print $2}' "/proc/$pid/status")
      redis_bytes=0
      [ $uses_redis = 1 ] && redis_bytes=$(redis-cli -p $redis_port info memory | awk -F: '/^used_memory:/{print $2}' | tr -d '\r')
      kill "$pid" && wait "$pid" 2>/dev/null || true
      python3 - "$system" "$keys" "$out" "$before" "$after" "$server_kb" "$redis_bytes" <<'PY'
import json, sys
system, keys, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
(t0, s0), (t1, s1) = (map(int, sys.argv[i].split()) for i in (4, 5))
server_mb, redis_mb = int(sys.argv[6]) / 1024, int(sys.argv[7]) / 2**20
steal = 100 * (s1 - s0) / max(t1 - t0, 1)
print(system, keys, round(out["rps"]), out["latency_us"]["p99"], out["server_us_per_req"],
      out["redis_us_per_req"], f"{server_mb:.1f}", f"{redis_mb:.1f}", f"{steal:.1f}")
PY
    done
  done
done
