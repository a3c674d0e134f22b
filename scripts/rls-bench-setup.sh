# What the RLS load scripts (bench-cpu.sh, bench-instructions.sh) share,
# sourced after they set $tools and $work: the load tool and the do-nothing
# server ($RLSLOAD, $NULLRLS: built from $tools/rlsload into
# /tmp/rlsload-target unless given), the ratelimitd binary ($bin: this
# tree's release build unless RATELIMITD names another), and one limit that
# admits everything, as an envoyproxy/ratelimit file in $work/envoy served
# with the in-process store's policy $work/memory.yaml.
if [ -z "${RLSLOAD:-}" ] || [ -z "${NULLRLS:-}" ]; then
  cargo build -q --release --manifest-path "$tools/rlsload/Cargo.toml" --target-dir /tmp/rlsload-target
  RLSLOAD=${RLSLOAD:-/tmp/rlsload-target/release/rlsload}
  NULLRLS=${NULLRLS:-/tmp/rlsload-target/release/nullrls}
fi
export RLSLOAD
bin=${RATELIMITD:-target/release/ratelimitd}
[ -n "${RATELIMITD:-}" ] || cargo build -q --release -p ratelimitd-server

mkdir "$work/envoy"
cat >"$work/envoy/bench.yaml" <<YAML
domain: bench
descriptors:
  - key: user
    rate_limit: {unit: minute, requests_per_unit: 1000000000}
YAML
echo "rules: []" >"$work/memory.yaml"
