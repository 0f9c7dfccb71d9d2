#!/usr/bin/env bash
# The whole test suite, as README.md gives it: formatting and lints; Rust unit tests, raw-client
# black-box tests and the Redis/Kafka tests (real redis-server and Tansu on loopback ports);
# the load generator's smoke run; then, against the real binary, the socket.io-client black-box
# tests, the ports of the official protocol conformance suites, and the multi-node suite.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs Node.js/npm, redis-server and tansu when missing (no-op when present).
bash tests/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"

echo "== cargo fmt --check"
cargo fmt --all -- --check
echo "== cargo clippy"
cargo clippy --all-targets --quiet -- -D warnings
echo "== cargo build"
cargo build --quiet --bins
echo "== cargo test"
cargo test --quiet --all-targets
echo "== bench smoke (load generator against sio-edge --bench)"
SIO_EDGE_BIN="$PWD/target/debug/sio-edge" SIO_BENCH_BIN="$PWD/target/debug/sio-bench" bash bench/smoke.sh
echo "== soak (60 s, completeness only)"
SIO_EDGE_BIN="$PWD/target/debug/sio-edge" SIO_BENCH_BIN="$PWD/target/debug/sio-bench" bash bench/soak.sh --ci
echo "== fuzz smoke"
FUZZ_TARGET_DIR="$HOME/.cache/sio-edge/fuzz-target" bash fuzz/run.sh 5

export SIO_EDGE_BIN="$PWD/target/debug/sio-edge"
# tests/js imports the token minter (tests/auth_tokens/mint.mjs), which needs its own packages.
if [ ! -d tests/auth_tokens/node_modules ] || ! (cd tests/auth_tokens && npm ls --silent >/dev/null 2>&1); then
  (cd tests/auth_tokens && npm ci --no-audit --no-fund --loglevel=error)
fi
for pkg in tests/js tests/conformance tests/cluster; do
  echo "== node tests in $pkg"
  if [ ! -d "$pkg/node_modules" ] || ! (cd "$pkg" && npm ls --silent >/dev/null 2>&1); then
    (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd "$pkg" && npm test --silent)
done
echo "all suites passed"
