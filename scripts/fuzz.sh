#!/usr/bin/env bash
# Runs every `cargo fuzz` target for a while (default 60 s each): `./scripts/fuzz.sh [SECONDS]`.
# Needs the nightly toolchain (installed on these machines); installs cargo-fuzz if missing.
# The README's test command runs the same decoders on stable through proptest
# (crates/verity-ledger/tests/decoders.rs); this goes deeper, coverage-guided.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
secs="${1:-60}"
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked
for target in $(cargo +nightly fuzz list); do
  echo "== $target (${secs}s)"
  cargo +nightly fuzz run "$target" -- -max_total_time="$secs" -rss_limit_mb=4096
done
