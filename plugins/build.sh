#!/usr/bin/env bash
# Builds the example plugins and copies them to plugins/NAME.wasm.
#
#   plugins/build.sh [rust|all]     (default: all)
#
# Works from any directory. The .wasm files it writes are gitignored.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
out="$root/plugins"

# Rust example plugins (crate names; each builds NAME.wasm):
# components for wasm32-wasip2, and WASI commands for wasm32-wasip1.
rust_components=(echo lookup_contact business_hours)
rust_commands=(echo_command)

size_of() {
    local bytes
    bytes=$(wc -c <"$1")
    echo "$bytes bytes ($(((bytes + 1023) / 1024)) KiB)"
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

# build_rust_for TARGET CRATE...: builds the crates and copies NAME.wasm here.
build_rust_for() {
    local target=$1 profile=plugin
    shift
    ensure_target "$target"
    local packages=()
    for name in "$@"; do
        packages+=(-p "$name")
    done
    echo "Building Rust plugins ($*) for $target, profile $profile..."
    cargo build --quiet --profile "$profile" --target "$target" "${packages[@]}"

    # Where cargo put it (honours CARGO_TARGET_DIR and .cargo/config.toml).
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    target_dir=${target_dir:-$root/target}
    for name in "$@"; do
        local built="$target_dir/$target/$profile/$name.wasm"
        if [[ ! -f $built ]]; then
            echo "error: $built was not produced" >&2
            exit 1
        fi
        # Copy then rename, so a running Switchboard never sees half a file.
        cp "$built" "$out/.$name.wasm.tmp"
        mv "$out/.$name.wasm.tmp" "$out/$name.wasm"
        echo "  built plugins/$name.wasm: $(size_of "$out/$name.wasm")"
    done
}

build_rust() {
    build_rust_for wasm32-wasip2 "${rust_components[@]}"
    build_rust_for wasm32-wasip1 "${rust_commands[@]}"
}

what=${1:-all}
case "$what" in
    rust)
        build_rust
        ;;
    all)
        # Other languages get their own build_LANG function and a line here.
        build_rust
        ;;
    -h | --help)
        sed -n '2,6p' "$0"
        ;;
    *)
        echo "usage: plugins/build.sh [rust|all]" >&2
        exit 2
        ;;
esac
