#!/usr/bin/env bash
# CI smoke for the load generator: room-broadcast with N=200 for 3 s against `sio-edge --bench`
# (binary from $SIO_EDGE_BIN, default target/debug/sio-edge), then the heartbeat scenario with
# N=2,000 clients of the production profile (each its own HS256 token and user room), bound to
# two loopback source addresses, pinged every 500 ms for 2 s. Fails unless messages were
# delivered and none was lost, duplicated or out of order, and unless every client stayed
# connected and (nearly) every ping was answered. No timing assertion.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

edge=${SIO_EDGE_BIN:-target/debug/sio-edge}
bench=${SIO_BENCH_BIN:-}
if [ -z "$bench" ]; then
  # Reuse a binary at least as new as the sources; otherwise build the debug one.
  cargo build --quiet --bin sio-bench --bin sio-edge
  bench=target/debug/sio-bench
fi
[ -x "$edge" ] || { echo "bench/smoke.sh: no sio-edge binary at $edge (set SIO_EDGE_BIN)" >&2; exit 1; }
[ -x "$bench" ] || { echo "bench/smoke.sh: no sio-bench binary at $bench (set SIO_BENCH_BIN)" >&2; exit 1; }

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
if ! timeout 60 "$bench" run --servers sio-edge --sio-edge-bin "$edge" --server-cpu "" \
  --scenarios room-broadcast --clients 200 --duration 3 --rate 50 --drain 10 \
  --out "$out/smoke.jsonl" --check --quiet >/dev/null; then
  echo "bench/smoke.sh: FAILED (server log: $(cat "$out"/smoke.servers.log 2>/dev/null | tail -5))" >&2
  exit 1
fi
echo "bench/smoke.sh: room-broadcast N=200 against $edge: delivered, nothing lost, duplicated or reordered"
if ! timeout 90 "$bench" run --servers sio-edge-prod --sio-edge-bin "$edge" --server-cpu "" \
  --scenarios heartbeat --clients 2000 --duration 2 --ping-interval 500 --source-addrs 2 \
  --out "$out/heartbeat.jsonl" --check --quiet >/dev/null; then
  echo "bench/smoke.sh: heartbeat FAILED (server log: $(cat "$out"/heartbeat.servers.log 2>/dev/null | tail -5))" >&2
  exit 1
fi
echo "bench/smoke.sh: heartbeat N=2000 (production profile) against $edge: every client kept, pings answered"
