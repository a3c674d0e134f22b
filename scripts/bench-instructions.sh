#!/usr/bin/env bash
# Instructions per RLS request, ratelimitd against the floor of the stack
# (docs/benchmarks.md, "Instructions per request").
#
#   scripts/bench-instructions.sh [DURATION_S=20]
#
# Runs each server under valgrind's callgrind with instrumentation off,
# warms it with the RLS load of bench-cpu.sh (../shared/tools/rlsload on one
# client thread, 64 in flight, 2 connections) for DURATION_S seconds, then
# counts the instructions the whole process executes during a second run of
# DURATION_S and divides by the requests answered in it. Unlike CPU time,
# the count does not depend on what else the machine is doing, so two
# builds can be compared on a busy shared VM. Servers: nullrls (a
# do-nothing tonic RLS server, current-thread runtime), ratelimitd on one
# serving thread with the in-process store, and ratelimitd-redis, the same
# on a Redis of its own (its pipelined lane; Redis's instructions are not
# counted); 1 and 100,000 keys.
#
# Environment: TOOLS (default ../shared/tools), RLSLOAD and NULLRLS (built
# from TOOLS/rlsload into /tmp/rlsload-target when unset), RATELIMITD (a
# ratelimitd binary to measure instead of building this tree's), SYSTEMS
# (default "nullrls ratelimitd ratelimitd-redis"), KEYS (default "1 100000").
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-20}
tools=${TOOLS:-../shared/tools}
grpc_port=18581
http_port=18591
redis_port=16581
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

command -v callgrind_control >/dev/null || { echo "needs valgrind (callgrind)" >&2; exit 2; }
source scripts/rls-bench-setup.sh

load() { # keys: one run of the load, its JSON line
  "$RLSLOAD" --addr http://127.0.0.1:$grpc_port --duration "$duration" --concurrency 64 \
    --connections 2 --threads 1 --domain bench --entries user=u --keys "$1"
}

cat >"$work/redis.yaml" <<YAML
backends:
  - {name: redis, type: redis, url: "redis://127.0.0.1:$redis_port", pool_size: 4, command_timeout: 1s}
rules: []
YAML
redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no \
  --daemonize yes --dir "$work" --logfile "$work/redis.log"
until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.1; done

echo "system keys requests instructions per_request"
for keys in ${KEYS:-1 100000}; do
  for system in ${SYSTEMS:-nullrls ratelimitd ratelimitd-redis}; do
    case $system in
      nullrls) server=("$NULLRLS" 127.0.0.1:$grpc_port --current-thread) ;;
      ratelimitd | ratelimitd-redis)
        config=$work/memory.yaml
        [ "$system" = ratelimitd-redis ] && config=$work/redis.yaml
        redis-cli -p $redis_port flushall >/dev/null
        server=("$bin" serve --config "$config" --envoy-config-dir "$work/envoy"
          --no-watch --threads 1 --grpc-addr 127.0.0.1:$grpc_port --http-addr 127.0.0.1:$http_port --log warn) ;;
      *) echo "unknown system $system" >&2 && exit 2 ;;
    esac
    out=$work/$system-$keys.callgrind
    valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out" "${server[@]}" \
      >"$work/valgrind.log" 2>&1 &
    pid=$!
    until "$RLSLOAD" --probe --addr http://127.0.0.1:$grpc_port --domain bench >/dev/null 2>&1; do sleep 0.5; done
    load "$keys" >/dev/null
    callgrind_control --instr=on "$pid" >/dev/null 2>&1
    measured=$(load "$keys")
    callgrind_control --instr=off "$pid" >/dev/null 2>&1
    callgrind_control --dump "$pid" >/dev/null 2>&1
    kill "$pid" && wait "$pid" 2>/dev/null || true
    python3 - "$system" "$keys" "$measured" "$out.1" <<'PY'
import json, re, subprocess, sys
system, keys, measured, dump = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), sys.argv[4]
summary = subprocess.run(["callgrind_annotate", dump], capture_output=True, text=True).stdout
instructions = int(re.search(r"([\d,]+) \(100.0%\)\s+PROGRAM TOTALS", summary)[1].replace(",", ""))
requests = measured["requests"]
print(system, keys, requests, instructions, round(instructions / max(requests, 1)))
PY
  done
done
