#!/usr/bin/env bash
# Builds Verity and runs `verity devnet` with the given flags (README: `./scripts/devnet.sh --demo`).
#
# It builds every workspace target, exactly as `cargo test --workspace` does, so that the two
# README commands share one build: cargo resolves dependency features per command, and a build
# of the `verity` package alone would compile the Miden prover a second time.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --workspace --all-targets --quiet
exec "${CARGO_TARGET_DIR:-target}/debug/verity" devnet "$@"
