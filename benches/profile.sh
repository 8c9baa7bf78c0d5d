#!/usr/bin/env bash
# Profiles one server of the benchmark suite under load, to see where its CPU goes.
#
#   benches/profile.sh [SERVER] [SECONDS]
#
#   SERVER    switchboard-echo (default), switchboard-echo-reuse, switchboard-edge,
#             switchboard-echo_command, native,
#             switchboard-echo-log-on, switchboard-echo-log-off (the call log section's pair),
#             switchboard-echo-webhook-door, switchboard-echo-mcp-door (the MCP section's pair)
#   SECONDS   how long to record (default 4), inside a 10 s measured window
#
# Runs the suite's load generator at 16 connections against SERVER and, in the
# middle of the measured window, records it with `perf record` (DWARF call
# graphs) and counts its context switches and system calls with `perf stat`
# (software events: they work in VMs without hardware counters). Prints:
#   - CPU per request, split into user and kernel time;
#   - context switches and system calls per request;
#   - the flat profile (where the samples are), grouped by crate.
# The recording stays in target/bench-work-profile/perf.data for `perf report`.
# Run benches/run.sh --quick once first: it installs and builds what this uses.
# Needs perf (apt-get install linux-perf) and permission to trace the server
# (root, or kernel.perf_event_paranoid <= 1).
set -euo pipefail

server=${1:-switchboard-echo}
seconds=${2:-4}
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source benches/common.sh
command -v perf >/dev/null || {
    echo "error: perf is needed (apt-get install linux-perf)" >&2
    exit 1
}
target_dir=$(cargo_target_dir)
work="$target_dir/bench-work-profile"
deps="$target_dir/bench-deps"
mkdir -p "$work"

build_bench_executables "$work"

unset RUST_BACKTRACE RUST_LIB_BACKTRACE RUST_LOG
"$suite" --root . --switchboard "$switchboard" --switchboard-edge "$switchboard_edge" --native "$native" \
    --node-modules "$deps/node/node_modules" --venv "$deps/venv" \
    --misbehave unused --probe-a unused --probe-b unused \
    --work "$work" --out "$work/BENCHMARKS.md" --quick --only http --servers "$server" \
    --concurrency 16 --warmup-secs 2 --measure-secs 10 >"$work/suite.log" 2>&1 &
suite_pid=$!
sleep 3
# The server is the suite's child process.
pid=$(pgrep -n -P "$suite_pid")
# CPU split first, without perf attached; then the recording.
read -r utime0 stime0 < <(awk '{print $14, $15}' "/proc/$pid/stat")
sleep 2
read -r utime1 stime1 < <(awk '{print $14, $15}' "/proc/$pid/stat")
perf stat -x, -o "$work/stat.txt" -p "$pid" \
    -e task-clock,context-switches,page-faults,raw_syscalls:sys_enter,syscalls:sys_enter_ioctl,syscalls:sys_enter_futex \
    -- perf record -q -F 1999 -g --call-graph dwarf,16384 -p "$pid" -o "$work/perf.data" -- sleep "$seconds" 2>/dev/null
wait "$suite_pid"
line=$(grep "c=16" "$work/suite.log" || true)
[[ -n $line ]] || {
    cat "$work/suite.log" >&2
    exit 1
}
echo "$line"
rps=$(awk '{print $3}' <<<"$line")

python3 - "$rps" "$seconds" "$utime0" "$stime0" "$utime1" "$stime1" "$(getconf CLK_TCK)" "$work/stat.txt" <<'EOF'
import sys
rps, secs, u0, s0, u1, s1, tck = (float(x) for x in sys.argv[1:8])
# Both windows sit inside the measured window, so the rate applies to them.
print("\nper request:")
print(f"  CPU (2 s, no perf attached): user {(u1 - u0) / tck / (rps * 2) * 1e6:.1f} us, "
      f"kernel {(s1 - s0) / tck / (rps * 2) * 1e6:.1f} us")
requests = rps * secs
for line in open(sys.argv[8]):
    parts = line.strip().split(",")
    if len(parts) > 3 and parts[0].replace(".", "").isdigit() and parts[2] != "task-clock":
        print(f"  {parts[2]}: {float(parts[0]) / requests:.3f}")
EOF

echo
echo "flat profile by crate (self time; [JIT] is the plugin's own WebAssembly code):"
perf report -i "$work/perf.data" --no-children --sort dso,symbol --stdio -g none 2>/dev/null |
    python3 -c '
import re, sys, collections
groups = collections.Counter()
for line in sys.stdin:
    m = re.match(r"\s*([\d.]+)%\s+(.+?)\s+\[[.k]\]\s+(.*)", line)
    if not m:
        continue
    pct, dso, sym = float(m.group(1)), m.group(2), m.group(3).strip()
    if dso.startswith("[kernel"):
        key = "kernel"
    elif dso.startswith("[JIT"):
        key = "[JIT] plugin code"
    elif sym.startswith(("mi_", "_mi_")):
        key = "mimalloc"
    elif "libc" in dso:
        key = "libc (" + ("memcpy/memset" if "mem" in sym else "other") + ")"
    else:
        key = re.split(r"::|<| ", re.sub(r"^(<|&|\*|mut |dyn )+", "", sym), maxsplit=1)[0] or sym
        key = {"core": "core/alloc", "alloc": "core/alloc"}.get(key, key)
    groups[key] += pct
for key, pct in groups.most_common(25):
    print(f"  {pct:6.2f}%  {key}")
'
echo
echo "recording: $work/perf.data (perf report -i $work/perf.data)"
