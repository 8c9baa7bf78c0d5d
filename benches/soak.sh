#!/usr/bin/env bash
# The soak run: one Switchboard sharing duplicates through a real Redis, held
# at half of its maximum throughput for a long time, its plugin replaced every
# second and Redis restarted every 5 minutes; every answer checked, resident
# memory sampled. Judged by: no failed or wrong answer, and memory growing by
# less than 10 % after the first sixth of the run.
#
#   benches/soak.sh [--minutes M] [--redis-every SECS] [--reload-every-ms MS] [--debug]
#
#   --minutes M          how long to hold the load (default 30)
#   --redis-every SECS   how often Redis is killed and restarted (default 300)
#   --reload-every-ms MS how often the plugin is replaced (default 1000)
#   --debug              use debug builds (no release compile: the short run CI
#                        makes after the tests, which built them)
#
# Needs redis-server (apt-get install redis-server). Prints the figures and
# writes them to target/bench-work-soak/SOAK.md (raw: soak.json beside it).
set -euo pipefail

minutes=30
redis_every=300
reload_every_ms=1000
profile=release
while [[ $# -gt 0 ]]; do
    case "$1" in
        --minutes)
            minutes=${2:?--minutes needs a number}
            shift
            ;;
        --redis-every)
            redis_every=${2:?--redis-every needs seconds}
            shift
            ;;
        --reload-every-ms)
            reload_every_ms=${2:?--reload-every-ms needs milliseconds}
            shift
            ;;
        --debug) profile=dev ;;
        -h | --help)
            sed -n '2,17p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown option: $1 (see benches/soak.sh --help)" >&2
            exit 2
            ;;
    esac
    shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
source benches/common.sh
command -v redis-server >/dev/null || {
    echo "error: redis-server is needed (apt-get install redis-server)" >&2
    exit 1
}
target_dir=$(cargo_target_dir)
work="$target_dir/bench-work-soak"
mkdir -p "$work"

echo "==> building the reload probe plugins, switchboard and the load generator ($profile)" >&2
rustup target add wasm32-wasip1 >/dev/null
cargo build --quiet --release --target wasm32-wasip1 \
    --manifest-path benches/plugins/reload_probe/Cargo.toml --target-dir "$target_dir/bench-plugins" >&2
probe_dir="$target_dir/bench-plugins/wasm32-wasip1/release"
cargo build --profile "$profile" --bin switchboard --bench suite \
    --message-format=json-render-diagnostics >"$work/build.json"
switchboard=$(executable_of "$work/build.json" switchboard)
suite=$(executable_of "$work/build.json" suite)

unset RUST_BACKTRACE RUST_LIB_BACKTRACE RUST_LOG
"$suite" --root "$root" --switchboard "$switchboard" --native unused \
    --node-modules unused --venv unused --misbehave unused \
    --probe-a "$probe_dir/reload_probe_a.wasm" --probe-b "$probe_dir/reload_probe_b.wasm" \
    --work "$work" --out "$work/SOAK.md" --redis-server "$(command -v redis-server)" \
    --soak-minutes "$minutes" --soak-redis-every-secs "$redis_every" --soak-reload-every-ms "$reload_every_ms"
