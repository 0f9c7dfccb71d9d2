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
echo "== cargo build"
cargo build --quiet --bins
echo "== cargo test"
cargo test --quiet --all-targets

export SIO_EDGE_BIN="$PWD/target/debug/sio-edge"
for pkg in tests/js tests/conformance; do
  echo "== node tests in $pkg"
  if [ ! -d "$pkg/node_modules" ] || ! (cd "$pkg" && npm ls --silent >/dev/null 2>&1); then
    (cd "$pkg" && npm ci --no-audit --no-fund --loglevel=error)
  fi
  (cd "$pkg" && npm test --silent)
done
echo "all suites passed"
