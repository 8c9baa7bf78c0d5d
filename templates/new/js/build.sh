#!/usr/bin/env bash
# Builds the plugin into dist/__NAME__.wasm, with its manifest dist/__NAME__.toml.
#
#   ./build.sh          build (installs the pinned toolchain from npm when needed)
#   ./build.sh setup    only install the toolchain (npm, into node_modules/)
#   ./build.sh test     run the unit tests in Node (npm test)
#
# The toolchain is package.json's devDependencies, pinned; npm's cache
# (npm_config_cache) is honoured. Files in dist/ are replaced by a rename, so
# a Switchboard serving dist/ never loads half a file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
name=__NAME__
componentize=node_modules/.bin/componentize-js

# An installed toolchain is one that runs, installed from this package.json.
setup() {
    if [[ -f node_modules/.installed && ! package.json -nt node_modules/.installed ]] &&
        "$componentize" --version >/dev/null 2>&1; then
        return
    fi
    command -v npm >/dev/null || {
        echo "error: npm is missing; install Node.js 18 or newer (Debian: apt-get install nodejs npm)" >&2
        exit 1
    }
    echo "== installing the toolchain from npm (package.json)"
    local started=$SECONDS
    if [[ -f package-lock.json ]]; then
        npm ci --no-audit --no-fund --loglevel=error
    else
        npm install --no-audit --no-fund --loglevel=error
    fi
    "$componentize" --version >/dev/null
    touch node_modules/.installed
    echo "toolchain ready in $((SECONDS - started)) s"
}

publish() {
    mkdir -p dist
    cp "$1" "dist/.$2.tmp"
    mv -f "dist/.$2.tmp" "dist/$2"
}

build() {
    setup
    local started=$SECONDS
    mkdir -p dist
    "$componentize" index.js --wit wit --world-name tool-plugin -o "dist/.$name.build.wasm"
    # The manifest first: a watching Switchboard reloads when the .wasm changes.
    publish "$name.toml" "$name.toml"
    mv -f "dist/.$name.build.wasm" "dist/$name.wasm"
    echo "built dist/$name.wasm ($(wc -c <"dist/$name.wasm") bytes) in $((SECONDS - started)) s"
}

case "${1:-build}" in
    build) build ;;
    setup) setup ;;
    test)
        setup
        npm test
        ;;
    *)
        echo "usage: ./build.sh [build|setup|test]" >&2
        exit 2
        ;;
esac
