#!/usr/bin/env bash
# The server's cost per write syscall under a room-broadcast load (docs/PERFORMANCE.md):
#   bash bench/write-cost.sh [N] [MSG_PER_S] [SECONDS]      (defaults 10000 50 2)
# Starts `sio-edge --bench` on core 0, drives it from core 1 with sio-bench, and counts the
# server's write syscalls (send, sendmsg, write, writev) and its CPU time with `perf stat`
# over SECONDS in the middle of the load. Prints writes/s, frames per write and CPU us per
# write. Needs perf with syscall tracepoints (root, or kernel.perf_event_paranoid <= -1),
# taskset and ss. SIO_EDGE_BIN=path measures another sio-edge build (default target/release).
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
rate=${2:-50}
window=${3:-2}
command -v perf >/dev/null || { echo "bench/write-cost.sh: perf is missing (apt-get install linux-perf)" >&2; exit 1; }
command -v taskset >/dev/null || { echo "bench/write-cost.sh: taskset is missing (util-linux)" >&2; exit 1; }
command -v ss >/dev/null || { echo "bench/write-cost.sh: ss is missing (iproute2)" >&2; exit 1; }
cargo build --release --quiet --bin sio-edge --bin sio-bench
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

tmp=$(mktemp -d)
trap 'kill "$server" 2>/dev/null || true; rm -rf "$tmp"' EXIT
taskset -c 0 ${SIO_EDGE_BIN:-target/release/sio-edge} --bench --host 127.0.0.1 --port 0 >"$tmp/banner" 2>"$tmp/log" &
server=$!
until grep -q listening "$tmp/banner"; do
  kill -0 "$server" 2>/dev/null || { echo "sio-edge did not start:" >&2; cat "$tmp/log" >&2; exit 1; }
  sleep 0.05
done
port=$(sed -n 's/.*:\([0-9]*\)$/\1/p' "$tmp/banner")

# Load for the window plus time to connect N clients and to settle on either side.
load=$(awk -v w="$window" 'BEGIN { print w + 2 }')
taskset -c 1 target/release/sio-bench run --addr "127.0.0.1:$port" --server-pid "$server" \
  --scenarios room-broadcast --clients "$n" --rate "$rate" --duration "$load" --quiet \
  >"$tmp/result.json" 2>"$tmp/bench.log" &
bench=$!
# Wait until all N clients are connected (the load starts 0.5 s later), then count.
until [ "$(ss -Htn state established "( sport = :$port )" | wc -l)" -ge "$n" ]; do
  kill -0 "$bench" 2>/dev/null || { echo "sio-bench stopped early:" >&2; cat "$tmp/bench.log" >&2; exit 1; }
  sleep 0.1
done
sleep 1
events=syscalls:sys_enter_sendto,syscalls:sys_enter_sendmsg,syscalls:sys_enter_write,syscalls:sys_enter_writev,task-clock
perf stat -x, -e "$events" -p "$server" -- sleep "$window" 2>"$tmp/stat" || {
  echo "bench/write-cost.sh: perf stat failed:" >&2; cat "$tmp/stat" >&2; exit 1; }
wait "$bench" || true
python3 - "$tmp/stat" "$tmp/result.json" "$window" <<'PY'
import json, sys
stat, result, window = sys.argv[1], sys.argv[2], float(sys.argv[3])
counts = {}
for line in open(stat):
    f = line.strip().split(",")
    if len(f) > 2 and f[0] not in ("", "<not counted>", "<not supported>"):
        counts[f[2].split(":")[-1]] = float(f[0])
writes = sum(v for k, v in counts.items() if k.startswith("sys_enter_"))
cpu_ms = counts.get("task-clock", 0.0)
r = json.loads(open(result).read().strip().splitlines()[-1])
if not writes:
    sys.exit("no write syscalls counted: is the syscall tracepoint available to perf?")
dps = r.get("deliveries_per_s", 0)
print(f"N={r['clients']} rate={r['rate']} msg/s: {writes / window:,.0f} writes/s, "
      f"server CPU {cpu_ms / window / 10:.1f}% of a core, {cpu_ms * 1000 / writes:.2f} us per write, "
      f"{dps / (writes / window):.2f} frames per write; "
      f"fanout p50/p99 {r['fanout_ms']['p50']}/{r['fanout_ms']['p99']} ms")
PY
