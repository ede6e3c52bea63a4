"""Proves ONNX models with EZKL and reports the costs (driver for scripts/ezkl_compare.sh).

    python ezkl_compare.py [--x X.json] [--calibration CAL.json] [--json-out F] MODEL.onnx...

For each model: gen_settings, calibrate_settings, compile_circuit, a local test SRS, setup,
gen_witness, prove, verify, each timed. Prints one line per model and a final `JSON {...}` line.

EZKL's SRS is made here with `ezkl.gen_srs`, which knows its own toxic waste: it is insecure and
only good for timing. Its cost is reported apart, since a real deployment downloads a ceremony SRS.
"""
import argparse
import asyncio
import inspect
import json
import os
import shutil
import sys
import tempfile
import time

import ezkl
import onnx
from onnx import TensorProto, helper

VERSION = getattr(ezkl, "__version__", "?")
DIGITS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "examples", "models", "digits")


def call(fn, *args, **kwargs):
    """Calls an EZKL function; returns (result, seconds).

    Some EZKL functions return awaitables (get_srs in 23.x; calibrate_settings and gen_witness in
    older releases), and their futures need a running event loop when created, so every call is
    made inside one.
    """

    async def inner():
        started = time.perf_counter()
        r = fn(*args, **kwargs)
        if inspect.isawaitable(r):
            r = await r
        return r, time.perf_counter() - started

    return asyncio.run(inner())


def size(n):
    """Human-readable byte count, as in the summary line."""
    if n >= 1 << 20:
        return f"{n / (1 << 20):.0f} MB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.0f} KB"
    return f"{n} B"


def seconds(s):
    return f"{s * 1e3:.0f} ms" if s < 1 else f"{s:.1f} s"


def flatten(v, leaf=float):
    if isinstance(v, list):
        return [y for x in v for y in flatten(x, leaf)]
    return [leaf(v)]


# --- model surgery (only when EZKL rejects the file as exported) ----------------------------


def logits_tensor(model):
    """The output of the last MatMul/Gemm, or of the Add of a bias right after it.

    skl2onnx puts Softmax, ArgMax, ZipMap and label lookups after it; Verity proves exactly
    the logits (and their argmax), so cutting here compares like with like.
    """
    nodes = list(model.graph.node)  # ONNX requires topological order
    last = max((i for i, n in enumerate(nodes) if n.op_type in ("MatMul", "Gemm")), default=None)
    if last is None:
        return None
    out = nodes[last].output[0]
    inits = {t.name for t in model.graph.initializer}
    for n in nodes[last + 1:]:
        if n.op_type == "Add" and out in n.input and any(i in inits for i in n.input if i != out):
            return n.output[0]
    return out


def has_head(model):
    """True when the graph goes on past the logits: ai.onnx.ml ops or non-float outputs."""
    if any(n.domain not in ("", "ai.onnx") for n in model.graph.node):
        return True
    return any(
        not o.type.HasField("tensor_type") or o.type.tensor_type.elem_type != TensorProto.FLOAT
        for o in model.graph.output
    )


def fix_batch(model):
    """Fixes an unnamed/symbolic leading dimension of every input to 1."""
    changed = False
    for i in model.graph.input:
        dims = i.type.tensor_type.shape.dim
        if dims and not dims[0].HasField("dim_value"):
            dims[0].Clear()
            dims[0].dim_value = 1
            changed = True
    return changed


def explicit_defaults(model):
    """Writes out the default strides/dilations of Conv and pooling nodes.

    EZKL's ONNX front end (tract) fails with "a node is missing required params: stride" when
    a Conv leaves them implicit, as the ONNX spec allows. Same computation, more verbose file.
    """
    changed = False
    for n in model.graph.node:
        if n.op_type not in ("Conv", "MaxPool", "AveragePool", "ConvTranspose"):
            continue
        attrs = {a.name: a for a in n.attribute}
        rank = len(helper.get_attribute_value(attrs["kernel_shape"])) if "kernel_shape" in attrs else 2
        for name in ("strides", "dilations"):
            if name == "dilations" and n.op_type == "AveragePool":
                continue
            if name not in attrs:
                n.attribute.append(helper.make_attribute(name, [1] * rank))
                changed = True
    return changed


def repair(src, dst):
    """Writes an EZKL-friendly variant of `src` to `dst`; returns what was done (a list)."""
    model = onnx.load(src)
    done = []
    if has_head(model):
        logits = logits_tensor(model)
        if logits is None:
            raise RuntimeError("no MatMul/Gemm to truncate at")
        inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in model.graph.initializer}]
        fix_batch(model)  # before shape inference, so the shapes it infers are concrete
        # Extractor takes the cut tensor's type from value_info; onnx >= 1.16 no longer infers it.
        model = onnx.shape_inference.infer_shapes(model)
        model = onnx.utils.Extractor(model).extract_model(inputs, [logits])
        # The kept part uses only the default domain; drop the ai.onnx.ml import with the head.
        used = {n.domain for n in model.graph.node}
        keep = [o for o in model.opset_import if o.domain in used or o.domain in ("", "ai.onnx")]
        del model.opset_import[:]
        model.opset_import.extend(keep)
        done.append(f"truncated at logits '{logits}', as Verity proves it")
    elif fix_batch(model):
        done.append("batch dimension fixed to 1")
    if explicit_defaults(model):
        done.append("Conv/pool default strides and dilations written out")
    model = onnx.shape_inference.infer_shapes(model)
    onnx.checker.check_model(model)
    onnx.save(model, dst)
    return done


# --- the EZKL pipeline ------------------------------------------------------------------------


def prove_model(path, x, calibration, input_visibility, work, log):
    name = os.path.basename(path)
    stem = os.path.splitext(name)[0]
    p = {k: os.path.join(work, f"{stem}.{k}") for k in
         ("settings.json", "compiled", "srs", "vk", "pk", "witness.json", "proof.json", "fixed.onnx")}
    r = {"model": name, "ezkl": VERSION, "input": input_visibility, "surgery": []}

    data = os.path.join(work, "input.json")
    with open(data, "w") as f:
        json.dump({"input_data": [x]}, f)
    cal = os.path.join(work, "calibration.json")
    with open(cal, "w") as f:
        # EZKL splits one long flat array into batch-sized samples.
        json.dump({"input_data": [[v for s in calibration for v in s]]}, f)

    run_args = ezkl.PyRunArgs()
    run_args.input_visibility = input_visibility
    onnx_path = path
    try:
        call(ezkl.gen_settings, onnx_path, p["settings.json"], py_run_args=run_args)
    except Exception as e:  # EZKL raises RuntimeError with tract's message
        log(f"  ezkl rejects {name} as exported: {e}")
        try:
            r["surgery"] = repair(path, p["fixed.onnx"])
        except Exception as why:
            raise RuntimeError(f"{e} (and no EZKL-friendly variant: {type(why).__name__}: {why})")
        onnx_path = p["fixed.onnx"]
        log(f"  proving {name} ({'; '.join(r['surgery'])})")
        call(ezkl.gen_settings, onnx_path, p["settings.json"], py_run_args=run_args)

    # "resources" picks the smallest circuit that keeps the outputs accurate enough.
    _, r["calibrate_s"] = call(ezkl.calibrate_settings, cal, onnx_path, p["settings.json"], "resources")
    _, r["compile_s"] = call(ezkl.compile_circuit, onnx_path, p["compiled"], p["settings.json"])
    with open(p["settings.json"]) as f:
        settings = json.load(f)
    r["logrows"] = settings["run_args"]["logrows"]
    r["scales"] = [settings["run_args"]["input_scale"], settings["run_args"]["param_scale"]]
    r["visibility"] = {k: settings["run_args"][f"{k}_visibility"] for k in ("input", "output", "param")}

    _, r["test_srs_s"] = call(ezkl.gen_srs, p["srs"], r["logrows"])
    ok, r["setup_s"] = call(ezkl.setup, p["compiled"], p["vk"], p["pk"], srs_path=p["srs"])
    assert ok, "setup failed"
    witness, r["witness_s"] = call(ezkl.gen_witness, data, p["compiled"], p["witness.json"],
                                   vk_path=p["vk"], srs_path=p["srs"])
    _, r["prove_s"] = call(ezkl.prove, p["witness.json"], p["compiled"], p["pk"], p["proof.json"],
                           srs_path=p["srs"])
    ok, r["verify_s"] = call(ezkl.verify, p["proof.json"], p["settings.json"], p["vk"], srs_path=p["srs"])
    assert ok, "verify failed"

    r["proof_file_bytes"] = os.path.getsize(p["proof.json"])
    with open(p["proof.json"]) as f:
        proof = json.load(f).get("proof")
    # The proof file is JSON with hex and the public instances; the raw proof is what a verifier
    # receives, and what Verity's "proof N KB" counts.
    if isinstance(proof, str):
        r["proof_bytes"] = len(bytes.fromhex(proof.removeprefix("0x")))
    elif isinstance(proof, list):
        r["proof_bytes"] = len(proof)
    r["pk_bytes"] = os.path.getsize(p["pk"])
    r["vk_bytes"] = os.path.getsize(p["vk"])

    # Sanity check: EZKL's quantized logits and their argmax.
    try:
        scale = settings["model_output_scales"][0]
        logits = [ezkl.felt_to_float(v, scale) for v in flatten(witness["outputs"], str)]
        r["class"] = max(range(len(logits)), key=logits.__getitem__)
    except (KeyError, IndexError, TypeError, ValueError):
        pass  # only a sanity figure; its layout varies between releases
    return r


def line(r):
    proved = r["model"] + (" (" + "; ".join(r["surgery"]) + ")" if r["surgery"] else "")
    proof = size(r.get("proof_bytes", r["proof_file_bytes"]))
    cls = f", class {r['class']}" if "class" in r else ""
    return (f"ezkl {r['ezkl']} {proved}: input {r['input']}, logrows {r['logrows']}, setup {seconds(r['setup_s'])} "
            f"(test SRS {seconds(r['test_srs_s'])}, not part of setup), "
            f"prove {seconds(r['witness_s'] + r['prove_s'])} (witness {seconds(r['witness_s'])}), "
            f"verify {seconds(r['verify_s'])}, proof {proof} (file {size(r['proof_file_bytes'])}), "
            f"proving key {size(r['pk_bytes'])}{cls}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--x", default=os.path.join(DIGITS, "x.json"))
    ap.add_argument("--calibration", default=os.path.join(DIGITS, "calibration.json"))
    ap.add_argument("--calibration-samples", type=int, default=50,
                    help="how many calibration samples EZKL sees (calibration time grows with it)")
    # "public" is EZKL's default and its cheapest; "hashed" matches Verity's statement (a private
    # input bound by a public hash) at the cost of a Poseidon hash in the circuit.
    ap.add_argument("--input-visibility", default="public", choices=["public", "private", "hashed"])
    ap.add_argument("--json-out", help="also write the JSON summary here")
    ap.add_argument("--keep", help="keep EZKL's files in this directory")
    args = ap.parse_args()

    with open(args.x) as f:
        x = flatten(json.load(f))
    with open(args.calibration) as f:
        cal = json.load(f)
    cal = cal["inputs"] if isinstance(cal, dict) else cal
    cal = [flatten(s) for s in cal[: args.calibration_samples]]

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    results = []
    for m in args.models:
        work = args.keep or tempfile.mkdtemp(prefix="ezkl-")
        os.makedirs(work, exist_ok=True)
        log(f"== ezkl {VERSION}: {m} (work dir {work})")
        try:
            r = prove_model(m, x, cal, args.input_visibility, work, log)
            print(line(r), flush=True)
        except Exception as e:
            r = {"model": os.path.basename(m), "ezkl": VERSION, "error": f"{type(e).__name__}: {e}"}
            print(f"ezkl {VERSION} {r['model']}: FAILED: {r['error']}", flush=True)
        finally:
            if not args.keep:
                shutil.rmtree(work)  # proving keys are hundreds of MB
        results.append(r)

    summary = json.dumps({"ezkl": VERSION, "results": results})
    print("JSON " + summary)
    if args.json_out:
        with open(args.json_out, "w") as f:
            f.write(summary + "\n")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main())
