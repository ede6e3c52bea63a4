//! The `verity` binary end to end: run, prove, verify, and the errors a user sees.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `verity ARGS`, its home (keys, remembered models) in a directory of this test run, never
/// the user's.
fn verity(args: &[&str]) -> Output {
    let home = std::env::temp_dir().join(format!("verity-cli-test-{}", std::process::id()));
    Command::new(env!("CARGO_BIN_EXE_verity"))
        .args(args)
        .env("VERITY_HOME", home)
        .output()
        .expect("verity runs")
}

fn example(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(name)
        .display()
        .to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn prove_fib(dir: &Path, n: &str) -> PathBuf {
    let receipt = dir.join("fib.receipt");
    let out = verity(&[
        "prove",
        &example("fib.masm"),
        "--input",
        n,
        "-o",
        receipt.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "prove failed: {}", stderr(&out));
    receipt
}

#[test]
fn run_prints_outputs_and_cycles() {
    let out = verity(&["run", &example("fib.masm"), "--input", "10"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("outputs: 55,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0"),
        "{text}"
    );
    assert!(text.contains("cycles:"), "{text}");
}

#[test]
fn printing_into_a_closed_pipe_ends_quietly() {
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(env!("CARGO_BIN_EXE_verity"))
        .args(["run", &example("fib.masm"), "--input", "10"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("verity runs");
    // Close the reading end before the program has assembled and printed (`| head -0`).
    drop(child.stdout.take());
    let out = child.wait_with_output().expect("verity ends");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?}: {}",
        out.status,
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn prove_then_verify_with_program_and_expected_output() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = prove_fib(dir.path(), "10");
    let r = receipt.to_str().unwrap();

    let out = verity(&["verify", r]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("OK: program 0x"),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("outputs 55,0,"), "{}", stdout(&out));

    let out = verity(&[
        "verify",
        r,
        "--program",
        &example("fib.masm"),
        "--expect-output",
        "55,0",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));

    let out = verity(&["verify", r, "--expect-output", "56"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("does not start with the expected 56"),
        "{}",
        stderr(&out)
    );

    let out = verity(&["verify", r, "--program", &example("hash_chain.masm")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("but the given program assembles to"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn tampered_receipt_files_fail_with_exit_1_and_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = prove_fib(dir.path(), "10");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();

    let tamper = |name: &str, edit: &dyn Fn(&mut serde_json::Value), needle: &str| {
        let mut v = json.clone();
        edit(&mut v);
        let path = dir.path().join(format!("{name}.receipt"));
        std::fs::write(&path, serde_json::to_vec_pretty(&v).unwrap()).unwrap();
        let out = verity(&["verify", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        assert!(
            stderr(&out).contains(needle),
            "{name}: expected `{needle}` in: {}",
            stderr(&out)
        );
    };
    tamper(
        "output",
        &|v| v["stack_outputs"][0] = "56".into(),
        "proof does not verify",
    );
    tamper(
        "input",
        &|v| v["stack_inputs"][0] = "11".into(),
        "proof does not verify",
    );
    tamper(
        "program",
        &|v| {
            let h = v["program_hash"].as_str().unwrap().to_string();
            let flipped = if h.ends_with('0') { "1" } else { "0" };
            v["program_hash"] = format!("{}{flipped}", &h[..h.len() - 1]).into();
        },
        "",
    );
    tamper(
        "version",
        &|v| v["version"] = 2.into(),
        "unsupported receipt version 2",
    );
    tamper(
        "vm",
        &|v| v["vm"] = "miden-vm 9.9.9".into(),
        "this verifier is `miden-vm 0.23.5`",
    );
    tamper(
        "proof",
        &|v| {
            use base64::Engine;
            let engine = base64::engine::general_purpose::STANDARD;
            let mut bytes = engine.decode(v["proof"].as_str().unwrap()).unwrap();
            let mid = bytes.len() / 2;
            bytes[mid] ^= 0x40;
            v["proof"] = engine.encode(bytes).into();
        },
        "verification failed",
    );

    // Truncated and random files: a clear error, never a panic.
    let text = std::fs::read(&receipt).unwrap();
    let truncated = dir.path().join("truncated.receipt");
    std::fs::write(&truncated, &text[..text.len() / 3]).unwrap();
    let out = verity(&["verify", truncated.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("is it truncated?"),
        "{}",
        stderr(&out)
    );
    let random = dir.path().join("random.receipt");
    std::fs::write(
        &random,
        (0..4096u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
            .collect::<Vec<_>>(),
    )
    .unwrap();
    let out = verity(&["verify", random.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("not a Verity receipt"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains("panicked"), "{}", stderr(&out));
}

#[test]
fn malformed_inputs_give_clear_errors() {
    let fib = example("fib.masm");
    let cases: &[(&[&str], &str)] = &[
        (&["run", &fib, "--input", "ten"], "`ten` is not a number"),
        (
            &["run", &fib, "--input", "18446744069414584321"],
            "is not a field element",
        ),
        (
            &["run", &fib, "--input", "1,,2"],
            "empty value at position 1",
        ),
        (
            &["run", &fib, "--inputs-file", "/nonexistent/x.inputs"],
            "cannot read inputs file /nonexistent/x.inputs",
        ),
        (
            &["run", "/nonexistent/prog.masm"],
            "cannot read program file /nonexistent/prog.masm",
        ),
        (
            &["run", &fib, "--input", "100000", "--max-cycles", "1000"],
            "exceeded the cycle limit of 1000",
        ),
        (
            &["verify", "/nonexistent/r.receipt"],
            "cannot read receipt /nonexistent/r.receipt",
        ),
        (
            &[
                "devnet",
                "--listen",
                "127.0.0.1:0",
                "--canary-funder",
                "/nonexistent/funder.key",
            ],
            "--canary-funder: no key `/nonexistent/funder.key`",
        ),
    ];
    for (args, needle) in cases {
        let out = verity(args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(needle),
            "{args:?}: expected `{needle}` in: {}",
            stderr(&out)
        );
    }

    let dir = tempfile::tempdir().unwrap();
    let bad_json = dir.path().join("bad.inputs");
    std::fs::write(&bad_json, "{\"operand_stack\": [\"1\"").unwrap();
    let out = verity(&["run", &fib, "--inputs-file", bad_json.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("bad.inputs: inputs file is not valid"),
        "{}",
        stderr(&out)
    );

    let bad_asm = dir.path().join("bad.masm");
    std::fs::write(&bad_asm, "begin\n    push.1\n    not_an_instruction\nend\n").unwrap();
    let out = verity(&["run", bad_asm.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("bad.masm") && err.contains(":3:"),
        "file and line named: {err}"
    );
}

#[test]
fn inputs_file_runs_miden_programs_unchanged() {
    let out = verity(&[
        "run",
        &example("preimage.masm"),
        "--inputs-file",
        &example("preimage.inputs"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("outputs: 1,0,"), "{}", stdout(&out));
}

#[test]
fn private_inputs_are_bound_to_the_receipt_and_never_in_it() {
    let dir = tempfile::tempdir().unwrap();
    let receipt = dir.path().join("pre.receipt");
    let out = verity(&[
        "prove",
        &example("preimage.masm"),
        "--inputs-file",
        &example("preimage.inputs"),
        "-o",
        receipt.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    // `--program` accepts the source: the receipt is for it, wrapped with the loader for the
    // commitment on its public stack.
    let out = verity(&[
        "verify",
        receipt.to_str().unwrap(),
        "--program",
        &example("preimage.masm"),
        "--expect-output",
        "1",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = std::fs::read_to_string(&receipt).unwrap();
    let secret: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(example("preimage.inputs")).unwrap())
            .unwrap();
    for word in secret["private_inputs"].as_array().unwrap() {
        assert!(
            !text.contains(&format!("\"{}\"", word.as_str().unwrap())),
            "private word {word} is in the receipt"
        );
    }
    // Another preimage fails inside the program: no receipt.
    let out = verity(&[
        "run",
        &example("preimage.masm"),
        "--inputs-file",
        &example("preimage.inputs"),
        "--private",
        "1,2,3,4,5,6,7,8",
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("sha256(preimage) does not match"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn key_files_are_private_from_the_start_and_a_custom_network_needs_its_own_key() {
    let dir = tempfile::tempdir().unwrap();
    let node_dir = dir.path().join("v1");
    let out = verity(&[
        "node",
        "init",
        "--dir",
        node_dir.to_str().unwrap(),
        "--p2p",
        "127.0.0.1:9000",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(node_dir.join("validator.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "validator.key mode {mode:o}");
    }
    // A node on a custom genesis without a key refuses to sign with the public dev key.
    let genesis = dir.path().join("genesis.json");
    std::fs::write(
        &genesis,
        r#"{"chain_id":"custom","accounts":[],"stakes":[]}"#,
    )
    .unwrap();
    let empty = dir.path().join("empty");
    let out = verity(&[
        "node",
        "run",
        "--dir",
        empty.to_str().unwrap(),
        "--genesis",
        genesis.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no validator key"),
        "{}",
        stderr(&out)
    );
}

// --- verifiable inference -------------------------------------------------------------------

fn digits(name: &str) -> String {
    example(&format!("models/digits/{name}"))
}

fn import_model(dir: &Path, onnx: &str) -> String {
    let out_path = dir.join(onnx.replace(".onnx", ".vmodel"));
    let out = import_example("digits", onnx, &out_path, &[]);
    assert!(out.status.success(), "import failed: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("model id:") && text.contains("agreement:"),
        "{text}"
    );
    out_path.display().to_string()
}

#[test]
fn model_import_infer_prove_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let mlp = import_model(dir.path(), "mlp.onnx");
    let cnn = import_model(dir.path(), "cnn.onnx");

    let out = verity(&["model", "inspect", &mlp]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("dense 64 -> 32 + relu"),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("checked"), "{}", stdout(&out));
    // The CNN's convolution is checked: inspect says so, and the private data holds the input
    // (16 words) and its 512 accumulators (128 words).
    let out = verity(&["model", "inspect", &cnn]);
    assert!(out.status.success(), "{}", stderr(&out));
    for want in [
        "checked, not computed: its 512 accumulators",
        "with the accumulators of the checked layers: 144 words",
        "(trace 2^14)",
    ] {
        assert!(stdout(&out).contains(want), "{want}: {}", stdout(&out));
    }

    // Local prediction, as JSON.
    let out = verity(&["infer", &mlp, "--input", &digits("x.json"), "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let prediction: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    let class = prediction["class"].as_u64().unwrap();
    assert_eq!(prediction["logits"].as_array().unwrap().len(), 10);
    assert!(prediction["cycles"].as_u64().unwrap() > 0);

    // Proven prediction; verify with the model, the class and the input.
    let receipt = dir.path().join("pred.receipt");
    let r = receipt.to_str().unwrap();
    let out = verity(&[
        "infer",
        &mlp,
        "--input",
        &digits("x.json"),
        "--prove",
        "-o",
        r,
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let class = class.to_string();
    let out = verity(&[
        "verify",
        r,
        "--model",
        &mlp,
        "--expect-class",
        &class,
        "--input",
        &digits("x.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("predicts class {class}")),
        "{}",
        stdout(&out)
    );

    // The wrong class, the wrong model, or another input: each refused.
    let other = if class == "3" { "4" } else { "3" };
    let out = verity(&["verify", r, "--model", &mlp, "--expect-class", other]);
    assert!(!out.status.success());
    let out = verity(&["verify", r, "--model", &cnn]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("not model"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("written by"), "{}", stderr(&out));
    // A file written when the compiler generated another program for the model (its stamp
    // differs from this version's program): the refusal says why and what to do.
    let mut stale: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cnn).unwrap()).unwrap();
    assert!(stale["written_with"].is_string(), "import stamps the file");
    stale["written_with"] = serde_json::json!("0".repeat(64));
    let stale_path = dir.path().join("stale.vmodel");
    std::fs::write(&stale_path, stale.to_string()).unwrap();
    let out = verity(&["verify", r, "--model", stale_path.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not model") && stderr(&out).contains("re-import the ONNX file"),
        "{}",
        stderr(&out)
    );
    // Labels and scales are part of the model id: a `.vmodel` that would read the same
    // receipt differently (labels permuted, another input scale) is another model.
    for tamper in ["labels", "input_scale"] {
        let mut json: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&mlp).unwrap()).unwrap();
        if tamper == "labels" {
            let mut labels: Vec<String> = match json["labels"].as_array() {
                Some(l) => l.iter().map(|v| v.as_str().unwrap().to_string()).collect(),
                None => (0..10).map(|i| i.to_string()).collect(),
            };
            labels.reverse();
            json["labels"] = serde_json::json!(labels);
        } else {
            json["input_scale"] = serde_json::json!(json["input_scale"].as_f64().unwrap() * 2.0);
        }
        let tampered = dir.path().join(format!("tampered-{tamper}.vmodel"));
        std::fs::write(&tampered, serde_json::to_vec(&json).unwrap()).unwrap();
        let out = verity(&["verify", r, "--model", tampered.to_str().unwrap()]);
        assert!(!out.status.success(), "{tamper}: {}", stdout(&out));
        assert!(stderr(&out).contains("not model"), "{}", stderr(&out));
    }
    let other_input = dir.path().join("other.json");
    std::fs::write(
        &other_input,
        serde_json::to_string(&vec![3.0f32; 64]).unwrap(),
    )
    .unwrap();
    let out = verity(&[
        "verify",
        r,
        "--model",
        &mlp,
        "--input",
        other_input.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("different input"), "{}", stderr(&out));

    // A receipt whose input commitment is swapped for another's does not verify.
    let mut json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&receipt).unwrap()).unwrap();
    json["stack_inputs"][0] = serde_json::json!(12345);
    let forged = dir.path().join("forged.receipt");
    std::fs::write(&forged, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = verity(&["verify", forged.to_str().unwrap(), "--model", &mlp]);
    assert!(!out.status.success(), "{}", stdout(&out));

    // The CNN proves too.
    let receipt = dir.path().join("cnn.receipt");
    let out = verity(&[
        "infer",
        &cnn,
        "--input",
        &digits("x.json"),
        "--prove",
        "-o",
        receipt.to_str().unwrap(),
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verity(&["verify", receipt.to_str().unwrap(), "--model", &cnn]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Its convolution is checked from accumulators that came with the input: the commitment
    // covers both, and `--input` recomputes it from the input alone.
    let out = verity(&[
        "verify",
        receipt.to_str().unwrap(),
        "--model",
        &cnn,
        "--input",
        &digits("x.json"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verity(&[
        "verify",
        receipt.to_str().unwrap(),
        "--model",
        &cnn,
        "--input",
        other_input.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("different input"), "{}", stderr(&out));
}

fn iris(name: &str) -> String {
    example(&format!("models/iris/{name}"))
}

/// `verity model import` of `examples/models/DIR/ONNX` with its calibration set and `flags`,
/// into `out`.
fn import_example(dir: &str, onnx: &str, out: &Path, flags: &[&str]) -> Output {
    let onnx = example(&format!("models/{dir}/{onnx}"));
    let calibration = example(&format!("models/{dir}/calibration.json"));
    let mut args = vec!["model", "import", &onnx, "--calibrate", &calibration];
    args.extend_from_slice(flags);
    args.extend(["-o", out.to_str().unwrap()]);
    verity(&args)
}

/// `--public-input`: the input goes on the stack, so the receipt shows it and binds it; a
/// model whose input does not fit the stack is refused with the reason.
#[test]
fn public_input_models_show_and_bind_their_input() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("iris.vmodel");
    let m = model.to_str().unwrap();
    let out = import_example("iris", "mlp.onnx", &model, &["--public-input"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verity(&["model", "inspect", m]);
    assert!(
        stdout(&out).contains("(public, on the stack)"),
        "{}",
        stdout(&out)
    );

    let receipt = dir.path().join("iris.receipt");
    let r = receipt.to_str().unwrap();
    let out = verity(&[
        "infer",
        m,
        "--input",
        &iris("x.json"),
        "--prove",
        "-o",
        r,
        "--json",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let prediction: serde_json::Value = serde_json::from_str(stdout(&out).trim()).unwrap();
    assert_eq!(prediction["label"], "virginica");
    let public: Vec<u64> = prediction["public_input"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap() as u64)
        .collect();
    assert_eq!(public.len(), 4);
    assert!(prediction.get("input_commitment").is_none());
    // The receipt's public inputs are the quantized measurements themselves.
    let text = std::fs::read_to_string(&receipt).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let stack: Vec<u64> = json["stack_inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v.as_str()
                .map(|s| s.parse().unwrap())
                .or(v.as_u64())
                .unwrap()
        })
        .collect();
    assert_eq!(stack, public);

    let out = verity(&[
        "verify",
        r,
        "--model",
        m,
        "--input",
        &iris("x.json"),
        "--expect-class",
        "virginica",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("for public input ["),
        "{}",
        stdout(&out)
    );
    // Another flower's measurements: not what this receipt proves.
    let other = dir.path().join("other.json");
    std::fs::write(&other, "[5.1, 3.5, 1.4, 0.2]").unwrap();
    let out = verity(&[
        "verify",
        r,
        "--model",
        m,
        "--input",
        other.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("different input"), "{}", stderr(&out));

    // The same ONNX file with a private input is another model: its receipts do not mix.
    let private = dir.path().join("iris-private.vmodel");
    let out = import_example("iris", "mlp.onnx", &private, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verity(&["verify", r, "--model", private.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not model"), "{}", stderr(&out));

    // 64 pixels do not fit the 16-value public stack.
    let out = import_example(
        "digits",
        "mlp.onnx",
        &dir.path().join("x.vmodel"),
        &["--public-input"],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("at most 16 values"),
        "{}",
        stderr(&out)
    );
}

/// `--private-weights`: the owner keeps the `.vmodel`, proves with it, and publishes the
/// card; a verifier checks receipts against the card, which holds no weights, and a receipt
/// for other weights (a swapped commitment) is refused.
#[test]
fn committed_weights_models_verify_against_their_card() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("owner.vmodel");
    let s = secret.to_str().unwrap();
    let out = import_example("digits", "mlp.onnx", &secret, &["--private-weights"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("the architecture's program"),
        "{}",
        stdout(&out)
    );
    let card = dir.path().join("owner.card.vmodel");
    let c = card.to_str().unwrap();
    // The card holds no weights: every weight in it is zero.
    let card_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&card).unwrap()).unwrap();
    let weights = card_json["layers"][0]["weights"].as_array().unwrap();
    assert!(!weights.is_empty() && weights.iter().all(|w| w.as_i64() == Some(0)));
    let secret_json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&secret).unwrap()).unwrap();
    assert!(
        secret_json["layers"][0]["weights"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w.as_i64() != Some(0))
    );

    let receipt = dir.path().join("pred.receipt");
    let r = receipt.to_str().unwrap();
    let out = verity(&[
        "infer",
        s,
        "--input",
        &digits("x.json"),
        "--prove",
        "-o",
        r,
        "--quiet",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = verity(&[
        "verify",
        r,
        "--model",
        c,
        "--input",
        &digits("x.json"),
        "--expect-class",
        "2",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("model commitment"),
        "{}",
        stdout(&out)
    );

    // A card claiming other weights (same architecture), or the same weights read another
    // way (labels permuted, another input scale: the program never computes with them, so
    // only the commitment binds them): the receipt is not for it.
    let mut other_weights = card_json.clone();
    other_weights["weights_commitment"][0] = serde_json::json!(12345);
    let mut relabelled = card_json.clone();
    relabelled["labels"] =
        serde_json::json!((0..10).rev().map(|c| c.to_string()).collect::<Vec<_>>());
    let mut rescaled = card_json.clone();
    rescaled["input_scale"] = serde_json::json!(card_json["input_scale"].as_f64().unwrap() * 2.0);
    for (name, forged) in [
        ("weights", other_weights),
        ("labels", relabelled),
        ("scale", rescaled),
    ] {
        assert_ne!(forged, card_json, "{name}");
        let forged_path = dir.path().join(format!("forged-{name}.card.vmodel"));
        std::fs::write(&forged_path, forged.to_string()).unwrap();
        let out = verity(&["verify", r, "--model", forged_path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(1), "{name}: {}", stdout(&out));
        assert!(
            stderr(&out).contains("with other weights, labels or scales"),
            "{name}: {}",
            stderr(&out)
        );
        assert!(
            !stderr(&out).contains("written by"),
            "{name}: {}",
            stderr(&out)
        );
    }
    // A card from a version whose compiler laid the committed parameters out otherwise (so
    // its weights commitment is of another layout): refused, saying to ask for a new card.
    let mut stale = card_json.clone();
    stale["weights_commitment"][0] = serde_json::json!(12345);
    stale["written_with"] = serde_json::json!("0".repeat(64));
    let stale_path = dir.path().join("stale.card.vmodel");
    std::fs::write(&stale_path, stale.to_string()).unwrap();
    let out = verity(&["verify", r, "--model", stale_path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("ask the model's owner for a card from this version"),
        "{}",
        stderr(&out)
    );

    // A card cannot predict.
    let out = verity(&["infer", c, "--input", &digits("x.json")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("is a card"), "{}", stderr(&out));
}

#[test]
fn model_import_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.onnx");
    std::fs::write(&junk, b"this is not a model").unwrap();
    let out = verity(&[
        "model",
        "import",
        junk.to_str().unwrap(),
        "--calibrate",
        &digits("calibration.json"),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("not a valid ONNX model"),
        "{}",
        stderr(&out)
    );

    let wrong = dir.path().join("wrong.json");
    std::fs::write(&wrong, "[[1, 2, 3]]").unwrap();
    let out = verity(&[
        "model",
        "import",
        &digits("mlp.onnx"),
        "--calibrate",
        wrong.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("3 values; the model takes 64"),
        "{}",
        stderr(&out)
    );

    let out = verity(&[
        "model",
        "import",
        &digits("mlp.onnx"),
        "--calibrate",
        &digits("calibration.json"),
        "--max-cycles",
        "5000",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("x over"), "{}", stderr(&out));

    let out = verity(&["model", "inspect", junk.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("invalid model file"),
        "{}",
        stderr(&out)
    );
}

/// `genesis new` writes a file a node accepts, with what the flags said; a wrong flag is
/// refused naming what is wrong, and nothing is written over an existing file.
#[test]
fn genesis_new_writes_a_checked_genesis_and_refuses_mistakes() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("genesis.json");
    let path = file.to_str().unwrap();
    let v2 = verity_node::devnet::dev_key("validator2")
        .address()
        .to_string();
    let out = verity(&[
        "genesis",
        "new",
        "--chain-id",
        "testnet",
        "--validator",
        "validator",
        "--validator",
        &v2,
        "--account",
        "client=5000",
        "--provider",
        "provider=700",
        "--param",
        "challenge_window=30",
        "--dev-keys",
        "-o",
        path,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 validators"), "{}", stdout(&out));
    let genesis: verity_ledger::Genesis =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(genesis.chain_id, "testnet");
    assert_eq!(genesis.validators().len(), 2);
    assert_eq!(genesis.params.challenge_window, 30);
    let client = verity_node::devnet::dev_key("client").address();
    assert!(
        genesis
            .accounts
            .iter()
            .any(|a| a.address == client && a.balance == 5000)
    );
    verity_ledger::State::from_genesis(&genesis).expect("a node accepts it");

    let refused = |args: &[&str], says: &str| {
        let mut all = vec!["genesis", "new", "--chain-id", "testnet", "--dev-keys"];
        all.extend_from_slice(args);
        let out = verity(&all);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
    };
    let other = dir.path().join("other.json");
    let other = other.to_str().unwrap();
    refused(
        &["-o", path, "--validator", "validator"],
        "exists (pass --force",
    );
    refused(&["-o", other], "needs a validator");
    refused(
        &[
            "-o",
            other,
            "--validator",
            "validator",
            "--validator",
            "validator",
        ],
        "listed twice",
    );
    refused(
        &[
            "-o",
            other,
            "--validator",
            "validator",
            "--param",
            "challenge_windo=3",
        ],
        "no parameter `challenge_windo`",
    );
    refused(
        &[
            "-o",
            other,
            "--validator",
            "validator",
            "--account",
            "client:5",
        ],
        "expected ADDRESS=AMOUNT",
    );
    refused(
        &[
            "-o",
            other,
            "--validator",
            "validator",
            "--validator-stake",
            "0",
        ],
        "must be above 0",
    );
    refused(
        &[
            "-o",
            other,
            "--validator",
            "validator",
            "--account",
            "client=1",
            "--account",
            "client=2",
        ],
        "funded twice",
    );
    // The public devnet keys only when asked for: anyone can sign for them.
    let out = verity(&[
        "genesis",
        "new",
        "--chain-id",
        "t",
        "--validator",
        "validator",
        "-o",
        other,
    ]);
    assert!(
        !out.status.success() && stderr(&out).contains("public devnet key `validator`"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(other).exists());

    // The devnet writes the genesis it runs on.
    let devnet = dir.path().join("devnet.json");
    let out = verity(&[
        "devnet",
        "--validators",
        "4",
        "--write-genesis",
        devnet.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let written: verity_ledger::Genesis =
        serde_json::from_str(&std::fs::read_to_string(&devnet).unwrap()).unwrap();
    assert_eq!(written, verity_node::devnet::genesis_with_validators(4));
}

/// `--sync-from` is for a validator of a BFT network: a one-validator node that took another
/// chain's state would go on producing blocks of its own on it. Refused before anything runs.
#[test]
fn sync_from_without_peers_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let out = verity(&[
        "node",
        "run",
        "--dir",
        dir.path().to_str().unwrap(),
        "--sync-from",
        "http://127.0.0.1:1",
    ]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--peers"), "{}", stderr(&out));
    assert!(
        std::fs::read_dir(dir.path()).unwrap().next().is_none(),
        "nothing was written"
    );
}
