#!/usr/bin/env bash
# Runs Switchboard's benchmark suite and writes BENCHMARKS.md.
#
#   benches/run.sh [--quick] [--out FILE] [--only SECTIONS] [--servers KEYS]
#
#   --quick          short runs and few samples: a smoke test of a few minutes;
#                    writes target/bench-work-quick/BENCHMARKS.md unless --out is given.
#   --out FILE       where to write the report (default: BENCHMARKS.md at the
#                    repository root for a full run).
#   --only LIST      comma-separated sections: http, instantiation (the in-process
#                    figures), reload, memory, startup, tiers, call-log, mcp (default:
#                    all); the others keep the figures of the last run in the same
#                    work folder.
#   --servers LIST   comma-separated servers for the http section:
#                    switchboard-echo, switchboard-echo-reuse, switchboard-edge,
#                    switchboard-echo_command, native, express, express-cluster,
#                    fastapi, flask (default: all).
#   --render-only    measure nothing: rewrite the report from the last run's
#                    results.json (after editing its wording).
#
# It installs express (npm) and a Python venv (fastapi, uvicorn[standard], flask,
# gunicorn) under target/bench-deps/, builds Switchboard, the native baseline,
# the load generator and the plugins in release mode, then runs benches/suite.
# A full run measures for about 9 minutes after the builds, and waits up to 5
# more for a quiet machine. Needs cargo, node, npm and python3 (with venv).
# Everything it starts listens on 127.0.0.1 only and stops when it ends.
set -euo pipefail

quick=0
render_only=0
out=""
only=""
servers=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) quick=1 ;;
        --render-only) render_only=1 ;;
        --out)
            out=${2:?--out needs a file}
            shift
            ;;
        --only)
            only=${2:?--only needs a list}
            shift
            ;;
        --servers)
            servers=${2:?--servers needs a list}
            shift
            ;;
        -h | --help)
            sed -n '2,26p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        *)
            echo "unknown option: $1 (see benches/run.sh --help)" >&2
            exit 2
            ;;
    esac
    shift
done

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
source benches/common.sh
if [[ -n $out && $out != /* ]]; then
    out="$OLDPWD/$out"
fi

need() {
    command -v "$1" >/dev/null 2>&1 || {
        echo "error: $1 is needed: $2" >&2
        exit 1
    }
}
need cargo "install Rust with rustup"
need node "apt-get install nodejs npm"
need npm "apt-get install npm"
need python3 "apt-get install python3 python3-venv"

target_dir=$(cargo_target_dir)
deps="$target_dir/bench-deps"
work="$target_dir/bench-work"
[[ $quick == 1 ]] && work+="-quick"
mkdir -p "$deps" "$work"
if [[ -z $out ]]; then
    if [[ $quick == 1 ]]; then out="$work/BENCHMARKS.md"; else out="$root/BENCHMARKS.md"; fi
fi

step() { echo "==> $*" >&2; }

venv="$deps/venv"
misbehave="$target_dir/wasm32-wasip2/plugin/misbehave.wasm"
probe_dir="$target_dir/bench-plugins/wasm32-wasip1/release"

if [[ $render_only == 0 ]]; then
    # --- Baselines' dependencies -------------------------------------------------
    express_version=$(sed -n 's/^express@//p' benches/baselines/npm-packages.txt)
    if [[ ! -f $deps/node/node_modules/express/package.json ]] ||
        ! grep -q "\"version\": \"$express_version\"" "$deps/node/node_modules/express/package.json"; then
        step "installing express@$express_version (npm) into $deps/node"
        mkdir -p "$deps/node"
        npm install --prefix "$deps/node" --no-audit --no-fund --loglevel=error "express@$express_version" >&2
    fi

    requirements=benches/baselines/requirements.txt
    if [[ ! -x $venv/bin/gunicorn || ! -f $venv/.installed ]] || ! cmp -s "$requirements" "$venv/.installed"; then
        step "creating a Python venv with $(tr '\n' ' ' <"$requirements")in $venv"
        rm -rf "$venv"
        python3 -m venv "$venv" || {
            echo "error: python3 -m venv failed (on Debian: apt-get install python3-venv)" >&2
            exit 1
        }
        "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$requirements" >&2
        cp "$requirements" "$venv/.installed"
    fi

    # --- Builds --------------------------------------------------------------------
    step "building the plugins"
    plugins/build.sh >&2
    cargo build --quiet --profile plugin --target wasm32-wasip2 -p misbehave >&2
    cargo build --quiet --release --target wasm32-wasip1 \
        --manifest-path benches/plugins/reload_probe/Cargo.toml --target-dir "$target_dir/bench-plugins" >&2
fi

step "building switchboard, the native baseline and the load generator (release)"
build_bench_executables "$work"

# --- Run -----------------------------------------------------------------------
command_line="benches/run.sh"
[[ $quick == 1 ]] && command_line+=" --quick"
[[ -n $only ]] && command_line+=" --only $only"
[[ -n $servers ]] && command_line+=" --servers $servers"
args=(
    --root "$root"
    --switchboard "$switchboard"
    --switchboard-edge "$switchboard_edge"
    --native "$native"
    --node "$(command -v node)"
    --node-modules "$deps/node/node_modules"
    --venv "$venv"
    --misbehave "$misbehave"
    --probe-a "$probe_dir/reload_probe_a.wasm"
    --probe-b "$probe_dir/reload_probe_b.wasm"
    --work "$work"
    --out "$out"
    --command-line "$command_line"
)
[[ $quick == 1 ]] && args+=(--quick)
[[ $render_only == 1 ]] && args+=(--render-only)
[[ -n $only ]] && args+=(--only "$only")
[[ -n $servers ]] && args+=(--servers "$servers")
# The in-process figures run in the suite itself: no backtrace capture there
# either (see benches/suite/servers.rs).
unset RUST_BACKTRACE RUST_LIB_BACKTRACE RUST_LOG
step "$([[ $render_only == 1 ]] && echo "rewriting the report" || echo "running the suite ($([[ $quick == 1 ]] && echo quick || echo full))")"
# Sections measured by their own commands (connections, replicas, fuzzing)
# follow a marker line at the end of the report; keep them across the rewrite.
marker='<!-- Sections below were measured by their own commands'
kept=""
if [[ -f $out ]] && grep -q "^$marker" "$out"; then
    kept=$(sed -n "/^$marker/,\$p" "$out")
fi
"$suite" "${args[@]}"
if [[ -n $kept ]]; then
    printf '\n%s\n' "$kept" >>"$out"
fi
