#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need on a
# fresh machine: the wasm targets the test plugins build for, redis-server
# (the Redis dedup tests start their own on a free loopback port), haproxy
# (tests/it/replicas.rs puts one in front of three replicas), postgresql
# (tests/it/call_log.rs starts its own cluster for the shared call log),
# chromium (tests/it/dashboard.rs drives the dashboard in it, headless), and the
# plugin toolchains of every example language, and the MCP Python SDK (the
# official MCP client of tests/it/mcp.rs); then builds the plugins the
# tests load (the example plugins in every language, into plugins/, and the
# Rust test and example plugins, into target/test-plugins/all/: the tests
# only read files, they build nothing). tests/it/scaffold.rs is the exception:
# it runs `switchboard new` for each language and builds each project with
# the toolchain the project installs itself (npm, PyPI, rustup), its
# downloads cached in target/scaffold-cache/.
#
#   ./test.sh [extra cargo test arguments]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

# Debian packages the tests start real servers from: install PACKAGE unless
# PROGRAM is found (on PATH, or at the absolute path given).
need_package() {
    local package=$1 program=$2 why=$3
    if command -v "$program" >/dev/null 2>&1 || [ -x "$program" ]; then
        return
    fi
    echo "== installing $package (Debian package)"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    else
        echo "error: $why need $package; install it (apt-get install $package)" >&2
        exit 1
    fi
}
need_package redis-server redis-server "the Redis tests"
need_package haproxy /usr/sbin/haproxy "the replica tests"
# tests/it/call_log.rs starts its own cluster (initdb, postgres) as the
# `postgres` user the package creates.
need_package postgresql "$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | head -n 1 || true)" \
    "the PostgreSQL call log tests"
need_package chromium chromium "the dashboard tests (headless Chromium)"
rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null

# The example plugins in every language, built from source on every run with
# their own toolchains (from npm, PyPI and crates.io, installed once into
# target/toolchains/: about 3 minutes on a fresh machine, most of it compiling
# wit-bindgen for C); tests/it/languages.rs runs them through the server.
echo "== example plugins in Rust, JavaScript, Python, Go, C and Zig, and the test plugins"
plugins/toolchains.sh all
# `tests`: the Rust test and example plugins that tests/it/common loads from
# target/test-plugins/all/ (the Rust examples of `all` share their build).
plugins/build.sh all tests

# An official MCP client for tests/it/mcp.rs: the MCP Python SDK, pinned in
# tests/mcp/requirements.txt, in a venv of its own (installed once).
mcp_venv=target/mcp-venv
if ! cmp -s tests/mcp/requirements.txt "$mcp_venv/.installed" 2>/dev/null; then
    echo "== installing the MCP Python SDK ($(cat tests/mcp/requirements.txt)) into $mcp_venv"
    rm -rf "$mcp_venv"
    python3 -m venv "$mcp_venv"
    "$mcp_venv/bin/pip" install --quiet --disable-pip-version-check -r tests/mcp/requirements.txt
    cp tests/mcp/requirements.txt "$mcp_venv/.installed"
fi

cargo test --workspace "$@"
