#!/usr/bin/env bash
# Proves the same ONNX files with EZKL and with Verity, and prints the costs side by side.
#
#   ./scripts/ezkl_compare.sh [MODEL.onnx ...]   (default: the digits MLP and CNN)
#
# EZKL (PyPI `ezkl`, pinned to the version this was written against; EZKL_VERSION=any for the
# newest) runs from a venv at ${EZKL_VENV:-~/.cache/verity/ezkl-venv}, made on first run: that
# run needs network access to PyPI. scripts/ezkl_compare.py drives it: settings, calibration,
# setup, witness, prove, verify, each timed. Files EZKL cannot read are cut down first (the
# scikit-learn head of mlp.onnx is dropped at the logits, which is exactly what Verity proves).
#
# EZKL's SRS is a local TEST SRS from `ezkl.gen_srs`: insecure (its toxic waste is known), good
# for timing only. Its generation is timed and printed apart, not counted as setup.
# EZKL_INPUT_VISIBILITY=hashed makes EZKL prove Verity's statement (private input, public hash);
# the default, public, is EZKL's default and its cheapest.
#
# Takes about 2 minutes for the two digits models on a 2-core machine (most of it EZKL's
# calibration, test SRS and setup), and up to ~0.4 GB of temp disk for an EZKL proving key.
# The Verity binary is built (as scripts/devnet.sh does) only if missing; VERITY_BIN overrides.
set -euo pipefail
models=()
for model in "$@"; do models+=("$(realpath "$model")"); done  # before the cd below
[[ -z ${EZKL_X:-} ]] || EZKL_X=$(realpath "$EZKL_X")
[[ -z ${EZKL_CALIBRATION:-} ]] || EZKL_CALIBRATION=$(realpath "$EZKL_CALIBRATION")
cd "$(dirname "$0")/.."
[[ ${#models[@]} -gt 0 ]] || models=(examples/models/digits/mlp.onnx examples/models/digits/cnn.onnx)
# Other inputs for other models (the MNIST-size MLP: scripts/mnist_size_model.py DIR, then
# EZKL_X=DIR/x.json EZKL_CALIBRATION=DIR/calibration.json ./scripts/ezkl_compare.sh DIR/mnist.onnx).
x=${EZKL_X:-examples/models/digits/x.json}
calibration=${EZKL_CALIBRATION:-examples/models/digits/calibration.json}

# --- EZKL --------------------------------------------------------------------------------------
venv=${EZKL_VENV:-$HOME/.cache/verity/ezkl-venv}
if [[ ! -x $venv/bin/pip ]]; then  # a venv made without ensurepip has no pip
  if ! python3 -m venv "$venv" 2>/dev/null; then
    rm -rf "$venv"
    # Debian/Ubuntu ship venv separately.
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
      apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
      python3 -m venv "$venv"
    else
      echo "error: 'python3 -m venv' failed; install python3-venv (e.g. sudo apt-get install python3-venv)" >&2
      exit 1
    fi
  fi
fi
ezkl_spec="ezkl==${EZKL_VERSION:-23.0.5}"  # the Python API changes between releases
[[ ${EZKL_VERSION:-} != any ]] || ezkl_spec=ezkl
"$venv/bin/pip" install --quiet --disable-pip-version-check "$ezkl_spec" onnx numpy

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "== EZKL"
status=0
"$venv/bin/python" scripts/ezkl_compare.py "${models[@]}" --x "$x" --calibration "$calibration" \
  --input-visibility "${EZKL_INPUT_VISIBILITY:-public}" --json-out "$out/ezkl.json" || status=$?

# --- Verity ------------------------------------------------------------------------------------
verity=${VERITY_BIN:-}
if [[ -z $verity ]]; then
  for candidate in "${CARGO_TARGET_DIR:-target}/debug/verity" "$HOME/.cache/verity/target/debug/verity"; do
    if [[ -x $candidate ]]; then verity=$candidate; break; fi
  done
fi
if [[ -z $verity ]]; then
  # Build exactly what the tests build (see scripts/devnet.sh for why).
  cargo build --workspace --all-targets --quiet
  verity="${CARGO_TARGET_DIR:-target}/debug/verity"
fi

# ratio NAME SECONDS: compares Verity's prove time with EZKL's (witness + prove, from the input
# like `verity infer --prove`), read from the driver's JSON summary.
ratio() {
  "$venv/bin/python" - "$out/ezkl.json" "$1" "$2" <<'EOF'
import json, sys
summary, name, verity = json.load(open(sys.argv[1])), sys.argv[2], float(sys.argv[3])
r = next((r for r in summary["results"] if r["model"] == name), None)
if r is None or "error" in r:
    print(f"prove: no EZKL figure for {name}")
else:
    ezkl = r["witness_s"] + r["prove_s"]
    if verity <= ezkl:
        print(f"prove: Verity is {ezkl / verity:.1f}x faster than EZKL ({verity:.2f} s vs {ezkl:.2f} s)")
    else:
        print(f"prove: EZKL is {verity / ezkl:.1f}x faster than Verity ({ezkl:.2f} s vs {verity:.2f} s)")
EOF
}

echo
echo "== Verity ($verity)"
for model in "${models[@]}"; do
  name=$(basename "$model")
  stem=${name%.onnx}
  if ! "$verity" model import "$model" --calibrate "$calibration" -o "$out/$stem.vmodel" >"$out/$stem.import" 2>&1; then
    echo "verity $name: import FAILED:"; cat "$out/$stem.import"; status=1; continue
  fi
  proved=$("$verity" infer "$out/$stem.vmodel" --input "$x" --prove -o "$out/$stem.receipt" --quiet)
  # "proved in 3.68 s: proof 83 KB; receipt ..."
  prove_s=$(sed -n 's/^proved in \([0-9.]*\) s.*/\1/p' <<<"$proved")
  proof_kb=$(sed -n 's/^proved in .*: proof \([0-9]*\) KB.*/\1/p' <<<"$proved")
  class=$(sed -n 's/^class: *\([0-9]*\).*/\1/p' <<<"$proved")
  started=$(date +%s.%N)
  verified=$("$verity" verify "$out/$stem.receipt" --model "$out/$stem.vmodel")
  wall_ms=$(awk -v a="$started" -v b="$(date +%s.%N)" 'BEGIN { printf "%.0f", (b - a) * 1000 }')
  # "... (8681 cycles, blake3-256, 96-bit) verified in 3.4 ms"
  verify_in=$(sed -n 's/.* verified in \(.*\)$/\1/p' <<<"$verified")
  bits=$(sed -n 's/.*, \([0-9]*\)-bit) verified in.*/\1/p' <<<"$verified")
  echo "verity $name: prove $prove_s s, verify $verify_in (command $wall_ms ms), proof $proof_kb KB, $bits-bit, class $class"
  echo "  $(ratio "$name" "$prove_s")"
done
exit "$status"
