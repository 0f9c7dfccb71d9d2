#!/usr/bin/env bash
# Runs every cargo-fuzz target for SECONDS each (default 5), one at a time with one job, and
# fails on the first crash, timeout or out-of-memory. The committed seed corpus in
# fuzz/corpus/<target>/ is read only; what a run discovers goes to fuzz/corpus-grown/<target>/
# (git-ignored). Crash inputs land in fuzz/artifacts/<target>/.
#   bash fuzz/run.sh            # the CI smoke: keeps every target compiling and running
#   bash fuzz/run.sh 600        # a long run per target (docs/RELIABILITY.md, "Fuzzing")
#   bash fuzz/run.sh 60 ws_frame http_request    # only the named targets
# Extra libFuzzer flags can be given in FUZZ_FLAGS, e.g. FUZZ_FLAGS=-runs=10000000.
# FUZZ_SANITIZER picks cargo fuzz's sanitizer (default address; `none` runs the slow targets
# several times faster, which the long runs use: the crate has no unsafe code to check).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$HOME/.cargo/bin:$PATH"
seconds="${1:-5}"

fail() { echo "fuzz/run.sh: $*" >&2; exit 1; }
case "$seconds" in '' | *[!0-9]*) fail "SECONDS must be a whole number, got '$seconds'" ;; esac
command -v rustup >/dev/null || fail "rustup is missing; install Rust with rustup (https://rustup.rs)"
rustup run nightly rustc --version >/dev/null 2>&1 ||
  fail "the nightly toolchain is missing (cargo fuzz needs it); install it: rustup toolchain install nightly"
cargo fuzz --version >/dev/null 2>&1 ||
  fail "cargo-fuzz is missing; install it: cargo install cargo-fuzz --locked"

# Builds go to a cache outside the checkout when FUZZ_TARGET_DIR says so (tests/run.sh does,
# so CI on a fresh clone does not rebuild the sanitized crate graph every time).
target_dir=(--target-dir "${FUZZ_TARGET_DIR:-fuzz/target}")
sanitizer=(--sanitizer "${FUZZ_SANITIZER:-address}")

shift $(($# > 0 ? 1 : 0))
targets="${*:-$(cargo +nightly fuzz list --fuzz-dir fuzz)}"
[ -n "$targets" ] || fail "no fuzz targets found in fuzz/fuzz_targets"
cargo +nightly fuzz build --fuzz-dir fuzz "${target_dir[@]}" "${sanitizer[@]}"
for t in $targets; do
  mkdir -p "fuzz/corpus-grown/$t"
  echo "-- fuzz $t for ${seconds}s"
  # The grown corpus comes first so libFuzzer writes new inputs there, not into the seeds.
  # shellcheck disable=SC2086
  cargo +nightly fuzz run --fuzz-dir fuzz "${target_dir[@]}" "${sanitizer[@]}" "$t" "fuzz/corpus-grown/$t" "fuzz/corpus/$t" -- \
    -max_total_time="$seconds" -print_final_stats=1 ${FUZZ_FLAGS:-} ||
    fail "target $t failed (crash input in fuzz/artifacts/$t/; reproduce: cargo +nightly fuzz run $t <file>)"
done
echo "fuzz/run.sh: all targets ran ${seconds}s without a crash"
