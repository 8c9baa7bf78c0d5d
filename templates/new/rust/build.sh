#!/usr/bin/env bash
# Builds the plugin into dist/__NAME__.wasm, with its manifest dist/__NAME__.toml.
#
#   ./build.sh          build (installs the wasm32-wasip2 target with rustup when missing)
#   ./build.sh setup    only install the target
#   ./build.sh test     run the unit tests (cargo test, natively)
#
# Files in dist/ are replaced by a rename, so a Switchboard serving dist/
# never loads half a file. CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
name=__NAME__
target=wasm32-wasip2

setup() {
    if [[ ! -d "$(rustc --print sysroot)/lib/rustlib/$target" ]]; then
        echo "== installing the Rust target $target (rustup)"
        rustup target add "$target"
    fi
}

# publish FILE DEST: copies FILE to DEST through a temporary name and a rename.
publish() {
    mkdir -p dist
    cp "$1" "dist/.$2.tmp"
    mv -f "dist/.$2.tmp" "dist/$2"
}

build() {
    setup
    local started=$SECONDS
    cargo build --release --target "$target"
    local target_dir
    target_dir=$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')
    # The manifest first: a watching Switchboard reloads when the .wasm changes.
    publish "$name.toml" "$name.toml"
    publish "${target_dir:-target}/$target/release/$name.wasm" "$name.wasm"
    echo "built dist/$name.wasm ($(wc -c <"dist/$name.wasm") bytes) in $((SECONDS - started)) s"
}

case "${1:-build}" in
    build) build ;;
    setup) setup ;;
    test) cargo test ;;
    *)
        echo "usage: ./build.sh [build|setup|test]" >&2
        exit 2
        ;;
esac
