//! Verifiable-inference benchmark: for the digits MLP, the digits CNN and a synthetic
//! MNIST-size MLP (784 -> 128 -> 10, random int8 weights), prints MACs, cycles, cycles per
//! MAC, trace length, proving time, proof size and verification time (first verification in
//! the process, then the median of 10).
//!
//! Run: `cargo bench --workspace --bench inference` (add `-- --skip-mnist` for a quick run).

use std::path::Path;
use std::time::{Duration, Instant};

use verity_model::{QLayer, QuantModel, compile, read_samples};
use verity_vm::ProveOptions;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// 784 -> 128 (relu) -> 10 with pseudo-random int8 weights, for timing only.
fn synthetic_mnist() -> QuantModel {
    let mut seed = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        (seed % 255) as i64 - 127
    };
    let requant = verity_model::quant::Requant { m: 1, shift: 40 };
    let dense = |n_in: usize, n_out: usize, lo: i64, hi: i64, next: &mut dyn FnMut() -> i64| {
        QLayer::Dense {
            n_in,
            n_out,
            weights: (0..n_in * n_out).map(|_| next()).collect(),
            bias: vec![0; n_out],
            requant: vec![requant; n_out],
            lo,
            hi,
        }
    };
    let layers = vec![
        dense(784, 128, 0, 127, &mut next),
        dense(128, 10, -32767, 32767, &mut next),
    ];
    let model = QuantModel {
        format: verity_model::quant::FORMAT.into(),
        name: "mnist-784-128-10".into(),
        source_hash: "synthetic".into(),
        input: verity_model::Shape::flat(784),
        input_dims: vec![1, 784],
        input_scale: 1.0,
        layers,
        logit_scale: 1.0,
        labels: None,
        calibration: None,
        public_input: false,
        private_weights: false,
        weights_commitment: None,
        written_with: None,
    };
    model.validate().expect("synthetic model is valid");
    model
}

fn main() {
    let skip_mnist = std::env::args().any(|a| a == "--skip-mnist");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/models/digits");
    let calibration = read_samples(&dir.join("calibration.json")).unwrap();
    let x = read_samples(&dir.join("x.json")).unwrap().remove(0);
    let mut models = vec![
        (
            verity_model::import(&dir.join("mlp.onnx"), &calibration).unwrap(),
            x.clone(),
        ),
        (
            verity_model::import(&dir.join("cnn.onnx"), &calibration).unwrap(),
            x,
        ),
    ];
    if !skip_mnist {
        models.push((
            synthetic_mnist(),
            (0..784).map(|i| ((i * 37) % 200) as f32 - 100.0).collect(),
        ));
    }
    println!(
        "{:<18} {:>8} {:>8} {:>10} {:>6} {:>9} {:>9} {:>11} {:>10}",
        "model",
        "MACs",
        "cycles",
        "cyc/MAC",
        "trace",
        "prove s",
        "proof KB",
        "verify1 ms",
        "verify ms"
    );
    for (model, x) in models {
        let compiled = compile(&model).unwrap();
        let q = model.quantize_input(&x).unwrap();
        let private = compiled.private_data(&model, &q).unwrap();
        let given = verity_vm::Inputs {
            private,
            ..Default::default()
        };
        let (program, inputs) = verity_vm::prepare(&compiled.source, "model.masm", &given).unwrap();
        let started = Instant::now();
        let receipt = verity_vm::prove(
            &program,
            &inputs,
            ProveOptions {
                max_cycles: 1 << 20,
                ..Default::default()
            },
        )
        .unwrap();
        let prove = started.elapsed();
        let t = Instant::now();
        verity_vm::verify_receipt(&receipt).unwrap();
        let first = t.elapsed();
        let mut times: Vec<Duration> = (0..10)
            .map(|_| {
                let t = Instant::now();
                verity_vm::verify_receipt(&receipt).unwrap();
                t.elapsed()
            })
            .collect();
        times.sort();
        println!(
            "{:<18} {:>8} {:>8} {:>10.2} {:>6} {:>9.2} {:>9} {:>11.1} {:>10.2}",
            model.name,
            compiled.macs,
            receipt.cycles,
            receipt.cycles as f64 / compiled.macs as f64,
            format!("2^{}", receipt.trace_len.trailing_zeros()),
            prove.as_secs_f64(),
            receipt.proof.len() / 1024,
            ms(first),
            ms(times[5])
        );
    }
}
