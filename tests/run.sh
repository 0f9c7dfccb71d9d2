#!/usr/bin/env bash
# The whole test suite, as README.md gives it: formatting and lints, Rust unit and black-box
# tests, then the JavaScript black-box tests (official socket.io-client) and the ports of the
# official protocol conformance suites, both against the real binary.
set -euo pipefail
cd "$(dirname "$0")/.."

need() {
  command -v "$1" >/dev/null 2>&1 || {
    echo "tests/run.sh: '$1' is missing. $2" >&2
    exit 1
  }
}
need cargo "Install Rust with rustup (https://rustup.rs)."
need node "Install Node.js 20 or newer (apt-get install nodejs npm)."
need npm "Install npm (apt-get install npm)."

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
need redis-server "Install it (apt-get install redis-server); the Redis tests start their own on a loopback port."
command -v tansu >/dev/null 2>&1 || [ -x "$HOME/.cargo/bin/tansu" ] || {
  echo "tests/run.sh: 'tansu' is missing. Install it: cargo install tansu --version 0.6.0 --features dynostore --locked" >&2
  exit 1
}
export PATH="$PATH:$HOME/.cargo/bin"

echo "== cargo build"
cargo build --quiet --bins
echo "== cargo test"
cargo test --quiet --all-targets
echo "== bench smoke (load generator against sio-edge --bench)"
SIO_EDGE_BIN="$PWD/target/debug/sio-edge" SIO_BENCH_BIN="$PWD/target/debug/sio-bench" bash bench/smoke.sh

export SIO_EDGE_BIN="$PWD/target/debug/sio-edge"
for pkg in tests/js tests/conformance tests/cluster; do
  echo "== node tests in $pkg"
  if [ ! -d "$pkg/node_modules" ] || ! (cd "$pkg" && npm ls --silent >/dev/null 2>&1); then
    (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd "$pkg" && npm test --silent)
done
echo "all suites passed"
