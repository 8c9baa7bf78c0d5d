# Shared by benches/run.sh, benches/profile.sh and benches/soak.sh (sourced, not run; they
# set -euo pipefail, so a failed build stops them).

# Where cargo puts things (honours CARGO_TARGET_DIR and .cargo/config.toml).
cargo_target_dir() {
    cargo metadata --format-version 1 --no-deps |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])'
}

# executable_of BUILD_JSON TARGET: the executable cargo built for TARGET,
# read from the JSON messages of a `cargo build --message-format=json...`.
executable_of() {
    python3 - "$1" "$2" <<'PY'
import json, sys
path = ""
for line in open(sys.argv[1]):
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["target"]["name"] == sys.argv[2]:
        path = msg["executable"]
if not path:
    sys.exit(f"cargo built no executable {sys.argv[2]} (see {sys.argv[1]})")
print(path)
PY
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
    cp "$(executable_of "$work/build-edge.json" switchboard)" "$switchboard_edge"
    cargo build --release --bin switchboard --bench suite --bench native_baseline \
        --message-format=json-render-diagnostics >"$work/build.json"
    switchboard=$(executable_of "$work/build.json" switchboard)
    suite=$(executable_of "$work/build.json" suite)
    native=$(executable_of "$work/build.json" native_baseline)
}
