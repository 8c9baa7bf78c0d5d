#!/usr/bin/env bash
# Builds the fuzz targets (cargo-fuzz, nightly) and runs each for SECONDS
# (default 30); fails when one finds a crash, a hang or a slow input.
#
#   fuzz/run.sh [SECONDS] [TARGET...]      e.g. fuzz/run.sh 3600 decode
#   fuzz/run.sh --cpu SECONDS [TARGET...]  e.g. fuzz/run.sh --cpu 3600 signature
#   fuzz/run.sh --within TOTAL [TARGET...]
#
# --cpu SECONDS (long runs on a shared machine): each target runs until it
# has had SECONDS of CPU time, however long that takes on the clock, so an
# hour is an hour of fuzzing beside a build or another fuzzer; the hang
# bound is then 10 s of wall time rather than 1.
#
# --within TOTAL (CI): the build and every run together take about TOTAL
# seconds: the time the build leaves is shared out, and each target gets 10 s
# at least.
#
# Targets: signature, decode, manifest, config, allowed_host (all by default).
# Needs `cargo +nightly` and cargo-fuzz (`cargo install --locked cargo-fuzz`).
#
# Each run starts from the seeds (fuzz/corpus/TARGET, committed, and those
# fuzz/seeds.py makes from the spec's fixtures, the example plugins' manifests
# and the docs) and from what earlier runs here found (fuzz/work/corpus/TARGET,
# which it grows). Bounds: inputs up to MAX_LEN bytes (below), libFuzzer's
# -timeout=1 (s) for hangs, and the targets' own check (fuzz_targets/timed.rs)
# of 1 ms per KiB of input, 10 ms at least. A failing input is saved in
# fuzz/artifacts/TARGET/; replay one with
#   fuzz/target/x86_64-unknown-linux-gnu/debug/TARGET fuzz/artifacts/TARGET/FILE
#
# Environment: FUZZ_SANITIZER=address to build with AddressSanitizer (slower;
# default none: the code is safe Rust), FUZZ_ARGS for more libFuzzer flags
# (e.g. FUZZ_ARGS=-fork=4 on a larger machine), SWITCHBOARD_FUZZ_TIME_CHECK=0
# to turn the time check off.
set -euo pipefail
cd "$(dirname "$0")/.."

within=
cpu=
if [ "${1:-}" = --within ]; then
    within=${2:?--within needs a number of seconds}
    shift 2
elif [ "${1:-}" = --cpu ]; then
    cpu=${2:?--cpu needs a number of seconds}
    seconds=$cpu
    shift 2
else
    seconds=${1:-30}
    shift || true
fi
all=(signature decode manifest config allowed_host)
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=("${all[@]}")

max_len() {
    case $1 in
        allowed_host) echo 1024 ;;
        *) echo 16384 ;;
    esac
}

# The same dependency versions as the server (the fuzz crate has a workspace,
# and so a lock file, of its own).
cp Cargo.lock fuzz/Cargo.lock
python3 fuzz/seeds.py

echo "== building the fuzz targets (nightly; fuzz/Cargo.toml's dev profile: optimised where it runs, with debug assertions)"
started=$(date +%s)
mkdir -p fuzz/work/logs
build() {
    cargo +nightly fuzz build --fuzz-dir fuzz --dev --sanitizer "${FUZZ_SANITIZER:-none}" "$@" \
        >fuzz/work/logs/build.log 2>&1 || { cat fuzz/work/logs/build.log; echo "the build failed"; exit 1; }
}
if [ $# -eq 0 ]; then
    build
else
    for target in "${targets[@]}"; do build "$target"; done
fi
built=$(($(date +%s) - started))
echo "built in $built s"
if [ -n "$within" ]; then
    seconds=$(((within - built) / ${#targets[@]}))
    [ "$seconds" -ge 10 ] || seconds=10
fi

failed=()
summary=()
for target in "${targets[@]}"; do
    echo "== fuzzing $target for $seconds s${cpu:+ of CPU time}"
    mkdir -p "fuzz/work/corpus/$target" "fuzz/artifacts/$target"
    log="fuzz/work/logs/$target.log"
    status=0
    limit=(-max_total_time="$seconds" -timeout=1)
    [ -z "$cpu" ] || limit=(-timeout=10)
    read -ra extra <<<"${FUZZ_ARGS:-}"
    command=("fuzz/target/x86_64-unknown-linux-gnu/debug/$target"
        "${limit[@]}" -max_len="$(max_len "$target")" -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="fuzz/artifacts/$target/" "${extra[@]}"
        "fuzz/work/corpus/$target" "fuzz/corpus/$target" "fuzz/work/seeds/$target")
    if [ -z "$cpu" ]; then
        "${command[@]}" >"$log" 2>&1 || status=$?
    else
        "${command[@]}" >"$log" 2>&1 &
        pid=$!
        # Ctrl-C stops the fuzzer as it would in the foreground.
        trap 'kill -INT "$pid" 2>/dev/null' INT TERM
        # Its CPU time (user + system: fields 14 and 15 of /proc/PID/stat,
        # in clock ticks); at the budget, SIGINT: libFuzzer prints its figures.
        ticks=$(getconf CLK_TCK)
        while kill -0 "$pid" 2>/dev/null; do
            used=$(awk '{ print int(($14 + $15) / '"$ticks"') }' "/proc/$pid/stat" 2>/dev/null || echo 0)
            if [ "$used" -ge "$cpu" ]; then
                kill -INT "$pid"
                break
            fi
            sleep 5
        done
        wait "$pid" || status=$?
        trap - INT TERM
    fi
    # Stopped at its CPU budget: libFuzzer exits 72 ("run interrupted") by design.
    if [ -n "$cpu" ] && [ "$status" -eq 72 ] && grep -q 'libFuzzer: run interrupted' "$log"; then
        status=0
    fi
    runs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*$' || true)
    corpus=$(ls "fuzz/work/corpus/$target" | wc -l)
    if [ "$status" -ne 0 ]; then
        failed+=("$target")
        echo "FAILED: $target (exit $status); the end of $log:"
        tail -40 "$log"
        summary+=("$(printf '%-13s %8s s %12s runs   FAILED, see %s and fuzz/artifacts/%s/' "$target" "$seconds" "${runs:-?}" "$log" "$target")")
    else
        summary+=("$(printf '%-13s %8s s%s %12s runs   corpus %s inputs' "$target" "$seconds" "${cpu:+ CPU}" "${runs:-?}" "$corpus")")
    fi
done

echo "== fuzzing summary"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
    echo "failed: ${failed[*]}"
    exit 1
fi
