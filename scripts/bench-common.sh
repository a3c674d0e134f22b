# What the bench scripts share, sourced after they set redis_port,
# grpc_port and http_port: run from the repository, the duration argument
# ($1, default 10s), a scratch directory ($work), the release binary ($bin),
# a throwaway redis-server and a service, all cleaned up on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${1:-10s}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; redis-cli -p $redis_port shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

cargo build --release -q -p ratelimitd-server
bin=target/release/ratelimitd

# Starts redis-server on $redis_port, keeping nothing on disk, and waits
# until it answers.
start_redis() {
  redis-server --port $redis_port --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --dir "$work" --logfile "$work/redis.log"
  until redis-cli -p $redis_port ping >/dev/null 2>&1; do sleep 0.1; done
}

# Serves the policy file $1 (further `serve` arguments may follow) in the
# background, its pid in $served, and waits until it is healthy.
serve() {
  $bin serve --config "$1" "${@:2}" --grpc-addr 127.0.0.1:$grpc_port \
    --http-addr 127.0.0.1:$http_port --log warn &
  served=$!
  until $bin health --addr 127.0.0.1:$grpc_port >/dev/null 2>&1; do sleep 0.2; done
}

# Resets Redis's command counts, then runs `ratelimitd bench` against the
# service (64 callers, 4 connections, domain partners, descriptor tenant)
# with the further `bench` arguments given.
bench_counted() {
  redis-cli -p $redis_port config resetstat >/dev/null
  $bin bench --addr 127.0.0.1:$grpc_port --duration "$duration" \
    --concurrency 64 --connections 4 --domain partners --descriptor tenant "$@"
}
