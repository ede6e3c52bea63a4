#!/usr/bin/env bash
# The main job until the devnet exists: prove every bundled example and verify its receipt.
set -euo pipefail
cd "$(dirname "$0")/.."

# Build exactly what the tests build (see scripts/devnet.sh for why).
cargo build --workspace --all-targets --quiet
verity() { "${CARGO_TARGET_DIR:-target}/debug/verity" "$@"; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== fib(50)"
verity run examples/fib.masm --input 50
verity prove examples/fib.masm --input 50 -o "$out/fib.receipt"
verity verify "$out/fib.receipt" --program examples/fib.masm --expect-output 12586269025

echo
echo "== blake3 hash chain over a private seed"
verity prove examples/hash_chain.masm --inputs-file examples/hash_chain.inputs -o "$out/chain.receipt"
verity verify "$out/chain.receipt" --program examples/hash_chain.masm

echo
echo "== knowledge of a SHA-256 preimage"
verity prove examples/preimage.masm --inputs-file examples/preimage.inputs -o "$out/pre.receipt"
verity verify "$out/pre.receipt" --program examples/preimage.masm --expect-output 1

echo
echo "== a tampered receipt is rejected"
sed 's/"12586269025"/"12586269026"/' "$out/fib.receipt" > "$out/forged.receipt"
if verity verify "$out/forged.receipt"; then
  echo "BUG: a forged receipt verified" >&2
  exit 1
fi
echo "(rejected, as it must be)"
