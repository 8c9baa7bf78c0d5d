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

# Rust example plugins (crate names; each builds NAME.wasm).
rust_plugins=(echo lookup_contact business_hours)

size_of() {
    local bytes
    bytes=$(wc -c <"$1")
    echo "$bytes bytes ($(((bytes + 1023) / 1024)) KiB)"
}

build_rust() {
    local target=wasm32-wasip2 profile=plugin
    if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
        echo "error: the Rust target $target is not installed." >&2
        echo "Install it with:  rustup target add $target" >&2
        exit 1
    fi
    local packages=()
    for name in "${rust_plugins[@]}"; do
        packages+=(-p "$name")
    done
    echo "Building Rust plugins (${rust_plugins[*]}) for $target, profile $profile..."
    cargo build --profile "$profile" --target "$target" "${packages[@]}"

    # Where cargo put it (honours CARGO_TARGET_DIR and .cargo/config.toml).
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps |
        sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    target_dir=${target_dir:-$root/target}
    for name in "${rust_plugins[@]}"; do
        local built="$target_dir/$target/$profile/$name.wasm"
        if [[ ! -f $built ]]; then
            echo "error: $built was not produced" >&2
            exit 1
        fi
        cp "$built" "$out/$name.wasm"
        echo "  built plugins/$name.wasm: $(size_of "$out/$name.wasm")"
    done
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
