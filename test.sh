#!/usr/bin/env bash
# Runs every test of the workspace, after installing what the tests need on a
# fresh machine: the wasm targets the test plugins build for, redis-server
# (the Redis dedup tests start their own on a free loopback port), and the
# JavaScript and Python plugin toolchains (the example plugins in those
# languages are built from source here).
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
rustup target add wasm32-wasip2 wasm32-wasip1 >/dev/null

# The JavaScript and Python example plugins, built from source on every run
# with their own toolchains (npm and PyPI, installed into target/toolchains/);
# tests/it/languages.rs runs them through the server.
echo "== example plugins in JavaScript and Python"
plugins/toolchains.sh js python
plugins/build.sh js python

cargo test --workspace "$@"
