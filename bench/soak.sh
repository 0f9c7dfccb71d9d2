#!/usr/bin/env bash
# The soak run of docs/RELIABILITY.md: sio-bench's `soak` scenario against `sio-edge --bench`
# (room broadcasts to `bench` plus chat rooms of 10, 1 % of the clients replaced by new
# sessions each second, 5 % on long-polling), one report row per minute (server RSS, latency
# p50/p99/max, deliveries, losses, duplicates, reordering). With --redis it starts its own
# redis-server on a loopback port, gives sio-edge REDIS_URL, and restarts Redis halfway.
#
#   bash bench/soak.sh                 # 10,000 clients, 30 minutes (release build)
#   bash bench/soak.sh --redis         # the same with Redis, restarted at 15 minutes
#   bash bench/soak.sh --ci            # 500 clients, 60 s, rows of 10 s, with Redis when
#                                      # redis-server is installed; completeness only
#   bash bench/soak.sh --clients 2000 --duration 600 --keep DIR -- --pad 200
#
# The restart keeps Redis down for $SOAK_REDIS_DOWN seconds (default 5) before starting it
# again, so the rows around it show delivery going on while sio-edge has no Redis.
# Exits non-zero unless every expected message arrived exactly once and in order and no
# client was disconnected by the server; timing is reported, never asserted. Everything
# listens on 127.0.0.1, on ephemeral ports (Redis on a free port below the ephemeral range).
# SIO_EDGE_BIN / SIO_BENCH_BIN name the binaries (default: target/release, or target/debug
# with --ci; built when missing).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"

# Redis helpers. `--restart-redis DIR` is the at-half hook: stop the redis-server whose pid
# is in DIR/redis.pid and start a new one on the same port (bounded: ~25 s at most).
redis_ping() { # port -> 0 when Redis answers PONG within 1 s
  (
    exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    printf 'PING\r\n' >&3
    IFS= read -r -t 1 reply <&3 || exit 1
    [[ $reply == +PONG* ]]
  ) 2>/dev/null
}
redis_start() { # dir port -> 0 when a redis-server answers on that port (pid in dir/redis.pid)
  local dir=$1 port=$2
  setsid redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no \
    --dir "$dir" >>"$dir/redis.log" 2>&1 </dev/null &
  echo $! >"$dir/redis.pid"
  for _ in $(seq 100); do
    # Alive first: a PONG from someone else's server on that port must not count.
    kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null || return 1
    redis_ping "$port" && kill -0 "$(cat "$dir/redis.pid")" 2>/dev/null && return 0
    sleep 0.1
  done
  return 1
}
redis_stop() { # dir -> waits up to 10 s for the process to exit
  local pid
  pid=$(cat "$1/redis.pid" 2>/dev/null) || return 0
  kill "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 "$pid" 2>/dev/null || true
}
if [ "${1:-}" = "--restart-redis" ]; then
  dir=$2
  port=$(cat "$dir/redis.port")
  t0=$(date +%s%N)
  redis_stop "$dir"
  down=${SOAK_REDIS_DOWN:-5}
  echo "soak: redis-server on port $port stopped; starting it again in $down s"
  sleep "$down"
  # The old listening socket may linger a moment: retry the start for up to ~10 s.
  for _ in $(seq 10); do
    if redis_start "$dir" "$port"; then
      echo "soak: redis-server restarted on port $port, $((($(date +%s%N) - t0) / 1000000)) ms after the stop began"
      exit 0
    fi
    sleep 1
  done
  echo "soak: redis-server would not restart on port $port" >&2
  exit 1
fi

ci=0 redis=0 clients=10000 duration=1800 row=60 warmup=5 keep="" extra=()
while [ $# -gt 0 ]; do
  case $1 in
    --ci) ci=1 clients=500 duration=60 row=10 warmup=2
          command -v redis-server >/dev/null && redis=1 ;;
    --redis) redis=1 ;;
    --no-redis) redis=0 ;;
    --clients) clients=$2; shift ;;
    --duration) duration=$2; shift ;;
    --row) row=$2; shift ;;
    --warmup-rows) warmup=$2; shift ;;
    --keep) keep=$2; shift ;;
    --) shift; extra=("$@"); break ;;
    *) echo "bench/soak.sh: unknown option $1 (see the top of the file)" >&2; exit 2 ;;
  esac
  shift
done

profile=release
[ $ci = 1 ] && profile=debug
edge=${SIO_EDGE_BIN:-target/$profile/sio-edge}
bench=${SIO_BENCH_BIN:-target/$profile/sio-bench}
if [ ! -x "$edge" ] || [ ! -x "$bench" ]; then
  flags=()
  [ $profile = release ] && flags=(--release)
  cargo build --quiet "${flags[@]}" --bin sio-edge --bin sio-bench
fi

if [ -n "$keep" ]; then
  out=$keep
  mkdir -p "$out"
else
  out=$(mktemp -d)
fi
edge_pid=""
cleanup() {
  [ -n "$edge_pid" ] && kill "$edge_pid" 2>/dev/null && wait "$edge_pid" 2>/dev/null
  [ $redis = 1 ] && redis_stop "$out"
  [ -z "$keep" ] && rm -rf "$out"
  return 0
}
trap cleanup EXIT

# Each client is a descriptor here and in the server (polling clients two).
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true

env_redis=()
if [ $redis = 1 ]; then
  started=0
  for _ in $(seq 10); do
    # Below the ephemeral range (32768-60999), so no client connect takes it meanwhile.
    port=$((20000 + RANDOM % 12000))
    echo "$port" >"$out/redis.port"
    if redis_start "$out" "$port"; then started=1; break; fi
    redis_stop "$out"
  done
  [ $started = 1 ] || { echo "bench/soak.sh: redis-server would not start" >&2; exit 1; }
  env_redis=(REDIS_URL="redis://127.0.0.1:$port")
  echo "soak: redis-server on 127.0.0.1:$port"
fi

: >"$out/edge.out"
env "${env_redis[@]}" "$edge" --bench --host 127.0.0.1 --port 0 --internal-api-key soak \
  >"$out/edge.out" 2>"$out/edge.log" &
edge_pid=$!
addr=""
for _ in $(seq 300); do
  addr=$(sed -n 's/.*listening on \([0-9.:]*\).*/\1/p' "$out/edge.out" | head -1)
  [ -n "$addr" ] && break
  kill -0 "$edge_pid" 2>/dev/null || break
  sleep 0.1
done
[ -n "$addr" ] || { echo "bench/soak.sh: sio-edge did not start: $(tail -5 "$out/edge.log")" >&2; exit 1; }
echo "soak: sio-edge (pid $edge_pid) on $addr; $clients clients for $duration s, rows of $row s"

hook=()
if [ $redis = 1 ]; then
  hook=(--at-half "bash bench/soak.sh --restart-redis $out")
fi
status=0
# Bounded: connects take under a minute per 10,000 clients, the drain at most 60 s.
timeout $((duration + 600)) "$bench" run --addr "$addr" --server-pid "$edge_pid" \
  --server-name sio-edge --scenarios soak --clients "$clients" --duration "$duration" \
  --rate 2 --room-size 10 --room-rate 0.2 --churn-pct 1 --poll-pct 5 \
  --soak-row "$row" --soak-warmup-rows "$warmup" --drain 60 "${hook[@]}" --check \
  "${extra[@]}" >"$out/soak.jsonl" || status=$?
if ! kill -0 "$edge_pid" 2>/dev/null; then
  echo "bench/soak.sh: sio-edge exited during the run: $(tail -5 "$out/edge.log")" >&2
  status=1
fi
if [ $status != 0 ]; then
  echo "bench/soak.sh: FAILED (status $status; server log: $(tail -3 "$out/edge.log"))" >&2
  exit 1
fi
echo "bench/soak.sh: $clients clients for $duration s: nothing lost, duplicated or reordered"
