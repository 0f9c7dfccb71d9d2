#!/usr/bin/env bash
# The side-by-side fanout benchmark in one command (see bench/README.md):
#   bash bench/run.sh [--scenarios LIST] [--clients LIST] [--repeats N] [--duration S]
#                     [--servers LIST] [--quick] [-- more sio-bench run options]
# Builds sio-edge, sio-bench and the peers, runs every scenario for every server (server on
# core 0, load generator on core 1), and writes bench/results/<date>.{md,svg,jsonl}.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

scenarios=all
clients=1000,10000
repeats=3
duration=4
servers=sio-edge,socketioxide,node
extra=()
while [ $# -gt 0 ]; do
  case "$1" in
    --scenarios) scenarios=$2; shift 2 ;;
    --clients) clients=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --servers) servers=$2; shift 2 ;;
    --quick) clients=1000; repeats=1; duration=2; shift ;;
    --) shift; extra=("$@"); break ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
  esac
done

need() { command -v "$1" >/dev/null 2>&1 || { echo "bench/run.sh: '$1' is missing. $2" >&2; exit 1; }; }
need cargo "Install Rust with rustup."
need taskset "Install util-linux."
case ",$servers," in *,node,*|,all,) need node "Install Node.js 20+ (apt-get install nodejs npm)."; need npm "Install npm." ;; esac

echo "== building sio-edge and sio-bench (release)"
cargo build --release --quiet --bin sio-edge --bin sio-bench
case ",$servers," in *,socketioxide,*|,all,)
  echo "== building the socketioxide peer (release)"
  (cd bench/peers/socketioxide && cargo build --release --quiet --locked) ;;
esac
case ",$servers," in *,node,*|,all,)
  if [ ! -d bench/peers/node/node_modules ] || ! (cd bench/peers/node && npm ls --silent >/dev/null 2>&1); then
    echo "== installing the Node peer (npm ci)"
    (cd bench/peers/node && npm ci --no-audit --no-fund --loglevel=error)
  fi ;;
esac

# Each process holds one descriptor per connection: take the hard limit.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
largest=$(tr ',' '\n' <<<"$clients" | sort -n | tail -1)
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt $((largest + 200)) ]; then
  echo "bench/run.sh: open-file limit $(ulimit -n) is too low for N=$largest; raise the hard limit (e.g. as root: ulimit -Hn $((largest * 2 + 1000)))" >&2
  exit 1
fi

mkdir -p bench/results
stamp=$(date -u +%Y-%m-%d)
[ -e "bench/results/$stamp.md" ] && stamp=$(date -u +%Y-%m-%d-%H%M)
rev=${SIO_EDGE_REV:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}
[ -n "${SIO_EDGE_REV:-}" ] || git diff --quiet HEAD -- src Cargo.toml 2>/dev/null || rev="$rev+uncommitted"
cpu=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
title="# sio-edge fanout benchmark, $stamp

sio-edge $rev; $(nproc) cores ($cpu), $(($(grep MemTotal /proc/meminfo | awk '{print $2}') / 1048576)) GiB, Linux $(uname -r);
$(rustc --version); Node $(node --version 2>/dev/null || echo -). Server pinned to core 0, load generator to core 1;
medians of $repeats run(s) each. Command: \`bash bench/run.sh --scenarios $scenarios --clients $clients --repeats $repeats --duration $duration --servers $servers${extra[*]:+ -- ${extra[*]}}\`.
Latency = receive time minus the publish time in the payload (one process clock); fanout = the
last client's receive time minus the publish time. Lost/dup/ooo are totals over all clients."

echo "== running: scenarios=$scenarios clients=$clients servers=$servers repeats=$repeats duration=${duration}s"
set +e
taskset -c 1 target/release/sio-bench run \
  --scenarios "$scenarios" --clients "$clients" --servers "$servers" \
  --repeats "$repeats" --duration "$duration" --server-cpu 0 \
  --out "bench/results/$stamp.jsonl" --md "bench/results/$stamp.md" --svg "bench/results/$stamp.svg" \
  --title "$title" "${extra[@]}" >/dev/null
status=$?
set -e
echo "== results: bench/results/$stamp.md, bench/results/$stamp.svg (raw: bench/results/$stamp.jsonl, server logs: bench/results/$stamp.servers.log)"
exit $status
