# Shared by benches/run.sh and benches/profile.sh (sourced, not run; they
# set -euo pipefail, so a failed build stops them).

# Where cargo puts things (honours CARGO_TARGET_DIR and .cargo/config.toml).
cargo_target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# Builds switchboard, the load generator (bench `suite`) and the native
# baseline in release mode, logging cargo's messages to WORK/build.json, and
# sets $switchboard, $suite and $native to their executables; and a second
# switchboard with the bench-no-plugin-call feature (the edge alone), copied
# to $switchboard_edge (built first, so the plain one is the one cargo keeps).
build_bench_executables() {
    local work=$1
    cargo build --release --bin switchboard --features bench-no-plugin-call \
        --message-format=json-render-diagnostics >"$work/build-edge.json"
    switchboard_edge="$work/switchboard-edge"
    cp "$(python3 -c '
import json, sys
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        print(msg["executable"])
' "$work/build-edge.json")" "$switchboard_edge"
    cargo build --release --bin switchboard --bench suite --bench native_baseline \
        --message-format=json-render-diagnostics >"$work/build.json"
    local found
    found=$(python3 - "$work/build.json" <<'PY'
import json, sys
found = {}
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable"):
        found[msg["target"]["name"]] = msg["executable"]
print(found["switchboard"], found["suite"], found["native_baseline"])
PY
    )
    read -r switchboard suite native <<<"$found"
}
