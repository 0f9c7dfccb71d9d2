#!/usr/bin/env bash
# Installs what the test suite needs when it is missing (a fresh machine): Node.js and npm,
# redis-server and chromium (apt-get), and the Tansu Kafka-compatible broker (cargo install, cached in
# ~/.cargo/bin afterwards; the build takes several minutes). Idempotent: does nothing when
# everything is there. Used by tests/run.sh and .ci/run.
set -euo pipefail
export PATH="$HOME/.cargo/bin:$PATH"

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
apt_updated=0
apt_install() {
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}
fail() { echo "tests/install-deps.sh: $*" >&2; exit 1; }

command -v cargo >/dev/null || fail "cargo is missing; install Rust with rustup (https://rustup.rs)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "tests/install-deps.sh: installing nodejs and npm"
  apt_install nodejs npm || fail "could not install Node.js 20+ and npm (apt-get install nodejs npm)"
fi
if ! command -v redis-server >/dev/null; then
  echo "tests/install-deps.sh: installing redis-server (the Redis tests start their own on a loopback port)"
  apt_install redis-server || fail "could not install redis-server (apt-get install redis-server)"
fi
if [ ! -x /usr/bin/chromium ]; then
  echo "tests/install-deps.sh: installing chromium (the Admin UI browser test drives it headless)"
  apt_install chromium || fail "could not install chromium (apt-get install chromium)"
fi
if ! command -v tansu >/dev/null; then
  echo "tests/install-deps.sh: installing tansu 0.6.0 (several minutes, once)"
  cargo install tansu --version 0.6.0 --features dynostore --locked --quiet ||
    fail "could not install tansu: cargo install tansu --version 0.6.0 --features dynostore --locked"
fi
if ! rustup run nightly rustc --version >/dev/null 2>&1; then
  echo "tests/install-deps.sh: installing the nightly toolchain (cargo fuzz needs it)"
  rustup toolchain install nightly --profile minimal ||
    fail "could not install nightly: rustup toolchain install nightly --profile minimal"
fi
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "tests/install-deps.sh: installing cargo-fuzz (about a minute, once)"
  cargo install cargo-fuzz --locked --quiet || fail "could not install cargo-fuzz: cargo install cargo-fuzz --locked"
fi
