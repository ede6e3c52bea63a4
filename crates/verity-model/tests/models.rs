//! The example models end to end: ONNX import, quantization, compilation, and the Miden
//! program held to the integer reference bit for bit; plus the import errors a user sees.

use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;
use verity_model::{ModelError, QuantModel, argmax, compile, from_felt, read_samples, to_felt};

fn example(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/models/digits")
        .join(name)
}

fn calibration() -> Vec<Vec<f32>> {
    read_samples(&example("calibration.json")).unwrap()
}

fn test_set() -> Vec<Vec<f32>> {
    read_samples(&example("test.json")).unwrap()
}

fn import(name: &str) -> QuantModel {
    verity_model::import(&example(name), &calibration()).unwrap()
}

/// Executes the compiled program on every sample (assembled once) and compares each output
/// stack with the integer reference.
fn assert_program_matches_reference(model: &QuantModel, samples: &[Vec<f32>]) {
    let compiled = compile(model).unwrap();
    let words = compiled.private_len.div_ceil(4) as u32;
    let shape = verity_types::PrivateCommitment {
        commitment: [0; 4],
        words,
    };
    let job = verity_vm::assemble_job(&compiled.source, Some(&shape), u64::MAX).unwrap();
    for (k, x) in samples.iter().enumerate() {
        let q = model.quantize_input(x).unwrap();
        let private = compiled.private_data(model, &q).unwrap();
        assert_eq!(
            private.len(),
            compiled.private_len,
            "sample {k}: private data"
        );
        let commitment = verity_vm::commit_private(&private).unwrap();
        let inputs = verity_vm::job_inputs(&[], Some((&commitment, &private))).unwrap();
        let run = verity_vm::execute(&job.program, &inputs, 1 << 20).unwrap();
        let want = model.infer(&q).unwrap();
        let (class, logits) = model.decode_outputs(&run.outputs).unwrap();
        assert_eq!(logits, want, "sample {k}: program and reference disagree");
        assert_eq!(class, argmax(&want), "sample {k}: class");
        if k == 0 {
            assert!(
                run.cycles <= compiled.estimated_cycles,
                "estimate {} vs {}",
                compiled.estimated_cycles,
                run.cycles
            );
            println!(
                "{}: {} MACs, {} cycles ({:.2} cycles/MAC)",
                model.name,
                compiled.macs,
                run.cycles,
                run.cycles as f64 / compiled.macs as f64
            );
        }
    }
}

/// Runs `source` as a job whose private data is `private` (committed and loaded as a network
/// job's are), with a cap of 2^20 cycles.
fn run_private(source: &str, private: &[u64]) -> Result<verity_vm::Execution, verity_vm::VmError> {
    let commitment = verity_vm::commit_private(private).unwrap();
    let job = verity_vm::assemble_job(source, Some(&commitment), u64::MAX).unwrap();
    let inputs = verity_vm::job_inputs(&[], Some((&commitment, private))).unwrap();
    verity_vm::execute(&job.program, &inputs, 1 << 20)
}

#[test]
fn loader_address_matches_the_vm() {
    assert_eq!(
        verity_model::masm::INPUT_ADDR,
        u64::from(verity_vm::PRIVATE_INPUTS_ADDR)
    );
    assert_eq!(
        verity_model::masm::COMMITMENT_ADDR,
        u64::from(verity_vm::PRIVATE_COMMITMENT_ADDR)
    );
    assert_eq!(
        verity_model::masm::MAX_PRIVATE_ELEMENTS,
        u64::from(verity_vm::MAX_PRIVATE_WORDS) * 4
    );
    for v in [0i64, 1, -1, 127, -127, 32767, -32768, i64::from(i32::MIN)] {
        assert_eq!(from_felt(to_felt(v)), v);
    }
}

#[test]
fn mlp_program_matches_the_quantized_reference_on_every_test_sample() {
    let model = import("mlp.onnx");
    assert_program_matches_reference(&model, &test_set());
}

#[test]
fn cnn_program_matches_the_quantized_reference_on_every_test_sample() {
    let model = import("cnn.onnx");
    assert!(
        model
            .layers
            .iter()
            .any(|l| matches!(l, verity_model::QLayer::Conv { .. }))
    );
    assert!(
        model
            .layers
            .iter()
            .any(|l| matches!(l, verity_model::QLayer::MaxPool { .. }))
    );
    assert_program_matches_reference(&model, &test_set());
}

/// Top-1 agreement with the float model run by tract on the held-out set.
fn held_out_agreement(name: &str) -> f64 {
    let model = import(name);
    let float = verity_model::read_onnx(&std::fs::read(example(name)).unwrap(), name).unwrap();
    let a = verity_model::agreement(&model, &float, &test_set()).unwrap();
    println!(
        "{name}: top-1 agreement with the float model {:.2}% ({} of {}), max logit error {:.4} of logits up to {:.2}",
        a.top1() * 100.0,
        a.top1_agreements,
        a.samples,
        a.max_logit_error,
        a.max_logit
    );
    a.top1()
}

#[test]
fn quantized_models_agree_with_the_float_models_on_the_held_out_set() {
    assert!(held_out_agreement("mlp.onnx") >= 0.98);
    assert!(held_out_agreement("cnn.onnx") >= 0.98);
}

#[test]
fn verity_reads_the_models_as_tract_runs_them() {
    // Verity's own float interpretation of the layers (used to choose scales) must be the
    // model tract runs; a misread transpose or padding would show here.
    for name in ["mlp.onnx", "cnn.onnx"] {
        let float = verity_model::read_onnx(&std::fs::read(example(name)).unwrap(), name).unwrap();
        let samples: Vec<Vec<f32>> = test_set().into_iter().take(20).collect();
        let tract = verity_model::reference::float_logits(&float, &samples).unwrap();
        for (x, t) in samples.iter().zip(&tract) {
            let ours = float.forward(x).pop().unwrap();
            assert_eq!(ours.len(), t.len());
            for (a, b) in ours.iter().zip(t) {
                assert!((a - f64::from(*b)).abs() < 1e-3, "{name}: {a} vs {b}");
            }
        }
    }
}

#[test]
fn sklearn_head_is_recognised_and_labels_kept() {
    let model = import("mlp.onnx");
    assert_eq!(model.classes(), 10);
    assert_eq!(model.labels.as_deref().unwrap()[7], "7");
    assert!(matches!(
        model.layers[0],
        verity_model::QLayer::Dense {
            n_in: 64,
            n_out: 32,
            lo: 0,
            ..
        }
    ));
}

// --- errors ------------------------------------------------------------------------------

fn mlp_proto() -> pb::ModelProto {
    pb::ModelProto::decode(&std::fs::read(example("mlp.onnx")).unwrap()[..]).unwrap()
}

fn read(proto: &pb::ModelProto) -> Result<verity_model::FloatModel, ModelError> {
    verity_model::read_onnx(&proto.encode_to_vec(), "test")
}

#[test]
fn unsupported_ops_are_listed_with_their_nodes() {
    let mut proto = mlp_proto();
    let graph = proto.graph.as_mut().unwrap();
    let relu = graph.node.iter_mut().find(|n| n.op_type == "Relu").unwrap();
    relu.op_type = "Sigmoid".into();
    relu.name = "hidden_act".into();
    graph.node.push(pb::NodeProto {
        op_type: "LSTM".into(),
        name: "memory".into(),
        ..Default::default()
    });
    let err = read(&proto).unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, ModelError::Unsupported(ref ops) if ops.len() == 2),
        "{text}"
    );
    assert!(
        text.contains("Sigmoid (node 'hidden_act')") && text.contains("LSTM (node 'memory')"),
        "{text}"
    );
}

#[test]
fn malformed_files_are_refused_without_panicking() {
    let bytes = std::fs::read(example("mlp.onnx")).unwrap();
    for bad in [
        &bytes[..bytes.len() / 2],
        &b"not an onnx file at all"[..],
        &[0xff; 64][..],
        &[][..],
    ] {
        assert!(verity_model::read_onnx(bad, "bad").is_err());
    }
    // Weights whose byte length does not match their shape.
    let mut proto = mlp_proto();
    let init = proto
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "coefficient")
        .unwrap();
    init.raw_data.truncate(8);
    init.float_data.truncate(2);
    assert!(matches!(read(&proto), Err(ModelError::Malformed(_))));
    // A weight tensor claiming a huge shape.
    let mut proto = mlp_proto();
    let init = proto
        .graph
        .as_mut()
        .unwrap()
        .initializer
        .iter_mut()
        .find(|t| t.name == "coefficient")
        .unwrap();
    init.dims = vec![1 << 40, 1 << 40];
    assert!(read(&proto).is_err());
}

#[test]
fn calibration_of_the_wrong_shape_is_refused() {
    let float = read(&mlp_proto()).unwrap();
    let err = verity_model::quantize(&float, &[vec![0.5; 63]]).unwrap_err();
    assert!(
        err.to_string().contains("63 values; the model takes 64"),
        "{err}"
    );
    assert!(verity_model::quantize(&float, &[]).is_err());
    assert!(verity_model::quantize(&float, &[vec![f32::NAN; 64]]).is_err());
    assert!(verity_model::parse_samples("{\"inputs\": [[1, \"x\"]]}").is_err());
}

/// A one-layer Gemm model `n_in -> n_out` with deterministic pseudo-random weights.
fn gemm_model(n_in: usize, n_out: usize) -> Vec<u8> {
    let f = |i: usize| ((i * 7919 % 255) as f32 - 127.0) / 64.0;
    let tensor = |name: &str, dims: Vec<i64>, data: Vec<f32>| pb::TensorProto {
        name: name.into(),
        dims,
        data_type: 1,
        float_data: data,
        ..Default::default()
    };
    let io = |name: &str, dims: &[i64]| pb::ValueInfoProto {
        name: name.into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let graph = pb::GraphProto {
        node: vec![pb::NodeProto {
            op_type: "Gemm".into(),
            name: "fc".into(),
            input: vec!["x".into(), "w".into(), "b".into()],
            output: vec!["y".into()],
            attribute: vec![pb::AttributeProto {
                name: "transB".into(),
                i: 1,
                r#type: 2,
                ..Default::default()
            }],
            ..Default::default()
        }],
        initializer: vec![
            tensor(
                "w",
                vec![n_out as i64, n_in as i64],
                (0..n_in * n_out).map(f).collect(),
            ),
            tensor(
                "b",
                vec![n_out as i64],
                (0..n_out).map(|j| f(j + 3)).collect(),
            ),
        ],
        input: vec![io("x", &[1, n_in as i64])],
        output: vec![io("y", &[1, n_out as i64])],
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(graph),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn a_model_too_large_for_one_proof_is_refused_saying_by_how_much() {
    // 32768 x 14 multiply-accumulates: about 1.2 million cycles, even packed.
    let float = verity_model::read_onnx(&gemm_model(32768, 14), "big").unwrap();
    let model = verity_model::quantize(&float, &[vec![1.0; 32768], vec![-0.5; 32768]]).unwrap();
    let err = compile(&model).unwrap().check_fits(1 << 20).unwrap_err();
    assert!(matches!(err, ModelError::TooLarge { .. }), "{err}");
    assert!(err.to_string().contains("x over"), "{err}");
}

#[test]
fn a_synthetic_gemm_model_matches_tract_and_its_reference() {
    let bytes = gemm_model(48, 12);
    let float = verity_model::read_onnx(&bytes, "gemm").unwrap();
    let samples: Vec<Vec<f32>> = (0..16)
        .map(|s| {
            (0..48)
                .map(|i| ((i * 31 + s * 17) % 97) as f32 / 10.0 - 4.0)
                .collect()
        })
        .collect();
    let model = verity_model::quantize(&float, &samples).unwrap();
    let a = verity_model::agreement(&model, &float, &samples).unwrap();
    assert_eq!(a.samples, 16);
    assert!(a.top1() >= 0.9, "{a:?}");
    assert_program_matches_reference(&model, &samples);
}

#[test]
fn tampered_model_files_are_refused() {
    let model = import("mlp.onnx");
    // A multiplier that lets accumulators leave the requantization window.
    let mut bad = model.clone();
    if let verity_model::QLayer::Dense { requant, .. } = &mut bad.layers[0] {
        requant[0].m = 1 << 60;
    }
    assert!(matches!(bad.validate(), Err(ModelError::Invalid(_))));
    // Weights of the wrong length, or a layer that does not fit the previous one.
    let mut bad = model.clone();
    if let verity_model::QLayer::Dense { weights, .. } = &mut bad.layers[1] {
        weights.pop();
    }
    assert!(bad.validate().is_err());
    let mut bad = model.clone();
    bad.layers.swap(0, 1);
    assert!(bad.validate().is_err());
    // Out-of-range inputs are refused by the reference and by the program.
    assert!(model.infer(&[128; 64]).is_err());
    let compiled = compile(&model).unwrap();
    let shape = verity_types::PrivateCommitment {
        commitment: [0; 4],
        words: 16,
    };
    let job = verity_vm::assemble_job(&compiled.source, Some(&shape), u64::MAX).unwrap();
    let mut private = vec![0u64; 64];
    private[5] = 128;
    let commitment = verity_vm::commit_private(&private).unwrap();
    let inputs = verity_vm::job_inputs(&[], Some((&commitment, &private))).unwrap();
    assert!(verity_vm::execute(&job.program, &inputs, 1 << 20).is_err());
}

/// A hand-built dense model `n_in -> n_out` with every weight `w` (int16 allowed).
fn constant_dense(n_in: usize, n_out: usize, w: i64) -> QuantModel {
    let model = QuantModel {
        format: verity_model::quant::FORMAT.into(),
        name: "constant".into(),
        source_hash: "test".into(),
        input: verity_model::Shape::flat(n_in),
        input_dims: vec![1, n_in],
        input_scale: 1.0,
        layers: vec![verity_model::QLayer::Dense {
            n_in,
            n_out,
            weights: (0..n_in * n_out)
                .map(|k| if k % 3 == 0 { -w } else { w })
                .collect(),
            bias: (0..n_out as i64).map(|j| j * 1000 - 3000).collect(),
            // 2^-16 of the accumulator: a lane that overflowed (2^32) would show in the logits.
            requant: vec![
                verity_model::quant::Requant {
                    m: 1 << 24,
                    shift: 40
                };
                n_out
            ],
            lo: -32767,
            hi: 32767,
        }],
        logit_scale: 1.0,
        labels: None,
        calibration: None,
        public_input: false,
        private_weights: false,
        weights_commitment: None,
        written_with: None,
    };
    model.validate().unwrap();
    model
}

#[test]
fn outputs_are_packed_two_per_element_only_when_the_lanes_cannot_overflow() {
    let inputs: Vec<Vec<f32>> = vec![
        vec![127.0; 1024],
        vec![-127.0; 1024],
        (0..1024).map(|i| (i % 255) as f32 - 127.0).collect(),
        // The first output's worst case: every input has its weight's sign.
        (0..1024)
            .map(|i| if i % 3 == 0 { -127.0 } else { 127.0 })
            .collect(),
    ];
    // Small weights: every accumulator provably fits a 32-bit lane, so outputs are packed.
    let small = constant_dense(1024, 6, 100);
    assert_eq!(compile(&small).unwrap().packed_outputs, 6);
    assert_program_matches_reference(&small, &inputs);
    // int16 weights: 1024 x 32767 x 127 exceeds 2^31, so packing could overflow; the compiler
    // falls back to one output per element and still matches the reference.
    let large = constant_dense(1024, 6, 32767);
    assert_eq!(compile(&large).unwrap().packed_outputs, 0);
    assert_program_matches_reference(&large, &inputs);
}

/// A hand-built model of `layers`, logits in int16, for exercising the compiler's code paths
/// on shapes no example has.
fn hand_built(
    input: verity_model::Shape,
    input_dims: Vec<usize>,
    layers: Vec<verity_model::QLayer>,
) -> QuantModel {
    let model = QuantModel {
        format: verity_model::quant::FORMAT.into(),
        name: "hand-built".into(),
        source_hash: "test".into(),
        input,
        input_dims,
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
    model.validate().unwrap();
    model
}

/// `n` weights in [-100, 100] from a fixed pattern.
fn pattern(n: usize, salt: usize) -> Vec<i64> {
    (0..n)
        .map(|k| ((k * 37 + salt * 11) % 201) as i64 - 100)
        .collect()
}

/// Four inputs of `n` values spread over the int8 range.
fn samples(n: usize) -> Vec<Vec<f32>> {
    (0..4)
        .map(|s| {
            (0..n)
                .map(|i| ((i * 53 + s * 29) % 255) as f32 - 127.0)
                .collect()
        })
        .collect()
}

/// Convolutions whose taps are one contiguous run of input addresses, as a dense layer's
/// are: a kernel as wide as the input. A run of 16 (two whole groups of eight) streams; a
/// run of 12 must not, since a partial group would add the inputs after the run with weight
/// 1 (found by review: the program then disagreed with the reference).
#[test]
fn convolutions_with_contiguous_taps_match_the_reference() {
    for (h, w, kh) in [(4, 4, 3), (3, 8, 2), (2, 8, 1)] {
        let input = verity_model::Shape { c: 1, h, w };
        let window = verity_model::onnx::Window {
            input,
            kh,
            kw: w,
            stride_h: 1,
            stride_w: 1,
            pads: [0; 4],
        };
        let c_out = 2;
        let model = hand_built(
            input,
            vec![1, 1, h, w],
            vec![verity_model::QLayer::Conv {
                window,
                c_out,
                weights: pattern(c_out * kh * w, h),
                bias: vec![500, -700],
                // Half the accumulator: every tap shows in the logits.
                requant: vec![
                    verity_model::quant::Requant {
                        m: 1 << 39,
                        shift: 40
                    };
                    c_out
                ],
                lo: -32767,
                hi: 32767,
            }],
        );
        assert_program_matches_reference(&model, &samples(h * w));
    }
}

/// Checked convolutions of other shapes than the digits CNN's, each followed by a max pooling
/// and a dense layer: two input channels, rows not a multiple of 8 wide (gathered, not
/// streamed), a 5x5 kernel, a 2x2 kernel with padding on one side only, and a requantization
/// multiplier large enough that the lane offset it folds in exceeds the field. Each is
/// checked (not computed) and matches the reference bit for bit.
#[test]
fn checked_convolutions_of_other_shapes_match_the_reference() {
    struct Case {
        c_in: usize,
        h: usize,
        w: usize,
        kernel: (usize, usize),
        pads: [usize; 4],
        requant: verity_model::quant::Requant,
        hi: i64,
    }
    let requant = |m: u64, shift: u32| verity_model::quant::Requant { m, shift };
    let cases = [
        // Small weights, nothing clamped, and the pooled outputs are the logits: they are
        // about half the accumulators, where a wrongly reduced offset (2^31 m is past p)
        // shows.
        Case {
            c_in: 2,
            h: 4,
            w: 4,
            kernel: (3, 3),
            pads: [1; 4],
            requant: requant((1 << 39) + (1 << 36) + 12_345, 40),
            hi: 32767,
        },
        Case {
            c_in: 2,
            h: 6,
            w: 4,
            kernel: (3, 3),
            pads: [1; 4],
            requant: requant(1 << 22, 32),
            hi: 127,
        },
        Case {
            c_in: 1,
            h: 4,
            w: 10,
            kernel: (3, 3),
            pads: [1; 4],
            requant: requant(1 << 22, 32),
            hi: 127,
        },
        Case {
            c_in: 1,
            h: 8,
            w: 8,
            kernel: (5, 5),
            pads: [2; 4],
            requant: requant(1 << 21, 32),
            hi: 127,
        },
        Case {
            c_in: 1,
            h: 4,
            w: 8,
            kernel: (2, 2),
            pads: [0, 0, 1, 1],
            requant: requant(1 << 33, 40),
            hi: 127,
        },
    ];
    let c_out = 3;
    for case in cases {
        let Case { c_in, h, w, .. } = case;
        let (kh, kw) = case.kernel;
        let mut weights = pattern(c_out * c_in * kh * kw, h + w);
        if case.hi > 127 {
            weights.iter_mut().for_each(|v| *v %= 3);
        }
        let input = verity_model::Shape { c: c_in, h, w };
        let window = verity_model::onnx::Window {
            input,
            kh,
            kw,
            stride_h: 1,
            stride_w: 1,
            pads: case.pads,
        };
        let pool = verity_model::onnx::Window {
            input: verity_model::Shape { c: c_out, h, w },
            kh: 2,
            kw: 2,
            stride_h: 2,
            stride_w: 2,
            pads: [0; 4],
        };
        let pooled = c_out * (h / 2) * (w / 2);
        let mut layers = vec![
            verity_model::QLayer::Conv {
                window,
                c_out,
                weights,
                bias: vec![50, -70, 9],
                requant: vec![case.requant; c_out],
                lo: 0,
                hi: case.hi,
            },
            verity_model::QLayer::MaxPool { window: pool },
        ];
        if pooled > 12 {
            layers.push(patterned_dense(pooled, 5, 3, 32767));
        }
        let model = hand_built(input, vec![1, c_in, h, w], layers);
        let compiled = compile(&model).unwrap();
        assert_eq!(
            compiled.checked_layers,
            vec![0],
            "{c_in}x{h}x{w}, kernel {kh}x{kw}: checked"
        );
        assert_program_matches_reference(&model, &samples(c_in * h * w));
    }
}

/// Small dense layers, each output streamed in one group of eight: the fixed cost of a
/// streamed output dominates, so an undercounted setup shows in the cycle estimate, which
/// must stay an upper bound (a card job's cycle cap is taken from it).
#[test]
fn small_streamed_layers_stay_within_their_cycle_estimate() {
    let dense = patterned_dense;
    let model = hand_built(
        verity_model::Shape::flat(8),
        vec![1, 8],
        vec![
            dense(8, 8, 1, 127),
            dense(8, 8, 2, 127),
            dense(8, 8, 3, 127),
            dense(8, 3, 4, 32767),
        ],
    );
    assert_program_matches_reference(&model, &samples(8));
}

fn iris(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/models/iris")
        .join(name)
}

/// Streamed layers read the input region up to a multiple of 8 and take what lies past the
/// input for zeros: a private input committed with anything else there (a client's own
/// padding, or a longer input) has no execution.
#[test]
fn a_private_input_padded_with_anything_but_zeros_is_refused() {
    let calibration = read_samples(&iris("calibration.json")).unwrap();
    let model = verity_model::import(&iris("mlp.onnx"), &calibration).unwrap();
    let compiled = compile(&model).unwrap();
    let q: Vec<u64> = model
        .quantize_input(&read_samples(&iris("x.json")).unwrap()[0])
        .unwrap()
        .iter()
        .map(|v| to_felt(*v))
        .collect();
    assert_eq!(q.len(), 4);
    // No layer is checked: the private data is the input alone, all its commitment covers.
    assert_eq!(
        compiled
            .private_data(
                &model,
                &model
                    .quantize_input(&read_samples(&iris("x.json")).unwrap()[0])
                    .unwrap()
            )
            .unwrap(),
        q
    );
    assert_eq!(compiled.private_len, 4);
    let run = |private: &[u64]| run_private(&compiled.source, private);
    // Zeros after the input (as the commitment pads it, or given explicitly) are fine.
    let honest = run(&q).unwrap();
    let mut zeros = q.clone();
    zeros.resize(8, 0);
    assert_eq!(run(&zeros).unwrap().outputs, honest.outputs);
    // A value in the padding, or in a second word, is refused.
    for at in [4, 7] {
        let mut padded = zeros.clone();
        padded[at] = 1;
        assert!(run(&padded).is_err(), "a non-zero element at {at}");
    }
}

/// The CNN's convolution is checked, not computed: its accumulators come with the input
/// (the private data), and the program holds them to a random linear combination whose
/// challenge is the data's commitment. Any false accumulator is refused, including changes
/// that a plain sum or a fixed combination would not see, and so are values that are right
/// but in the wrong place; the honest data runs, and the model has no execution without the
/// accumulators.
#[test]
fn a_convolution_checked_from_supplied_accumulators_refuses_any_false_one() {
    let model = import("cnn.onnx");
    let compiled = compile(&model).unwrap();
    assert_eq!(
        compiled.checked_layers,
        vec![0],
        "the convolution is checked"
    );
    let q = model.quantize_input(&test_set()[0]).unwrap();
    let honest = compiled.private_data(&model, &q).unwrap();
    // The input (64, a multiple of 8), then 8 channels of 8x8 accumulators.
    assert_eq!(honest.len(), 64 + 8 * 64);
    assert_eq!(honest.len(), compiled.private_len);
    let run = |private: &[u64]| run_private(&compiled.source, private);
    let run_honest = run(&honest).unwrap();
    let (_, logits) = model.decode_outputs(&run_honest.outputs).unwrap();
    assert_eq!(logits, model.infer(&q).unwrap());

    let hint = |k: usize| 64 + k;
    let mut lies: Vec<(&str, Vec<u64>)> = Vec::new();
    let mut one = honest.clone();
    one[hint(17)] += 1;
    lies.push(("one accumulator one more", one));
    // Pooling keeps only the largest of four: lowering one that is not the largest would
    // change no output, and is refused all the same.
    let window = [hint(0), hint(1), hint(8), hint(9)];
    let smallest = *window.iter().min_by_key(|&&i| honest[i]).unwrap();
    let mut hidden = honest.clone();
    hidden[smallest] -= 1;
    lies.push(("a pooled-away accumulator one less", hidden));
    let mut sum_kept = honest.clone();
    sum_kept[hint(3)] += 5;
    sum_kept[hint(200)] -= 5;
    lies.push(("two changes that keep the sum", sum_kept));
    let mut swapped = honest.clone();
    swapped.swap(hint(5), hint(69));
    assert_ne!(honest[hint(5)], honest[hint(69)]);
    lies.push(("two accumulators swapped", swapped));
    let mut raised = honest.clone();
    for v in &mut raised[hint(0)..] {
        *v += 1;
    }
    lies.push(("every accumulator one more", raised));
    // The check's one assertion, taken out, lets every lie through: they are refused by it,
    // not by anything else (the input's range check, the loader's hash).
    let assertion = " movup.2 assert_eq assert_eq";
    assert_eq!(compiled.source.matches(assertion).count(), 1);
    let unchecked = compiled.source.replace(assertion, " dropw");
    for (what, data) in &lies {
        assert!(run(data).is_err(), "{what}: accepted");
        assert!(
            run_private(&unchecked, data).is_ok(),
            "{what}: refused without the check"
        );
    }
    // Without the accumulators there is nothing to check against.
    assert!(run(&honest[..64]).is_err());
}

/// A public input is the program's stack: the iris model (4 features) matches the reference
/// on every held-out flower with its input on the stack, agrees with the float model, and is
/// a different program (model id) from the same model with a private input.
#[test]
fn public_input_models_read_the_stack_and_match_the_reference() {
    let calibration = read_samples(&iris("calibration.json")).unwrap();
    let mut model = verity_model::import(&iris("mlp.onnx"), &calibration).unwrap();
    assert_eq!(
        model.labels.as_deref().unwrap(),
        ["setosa", "versicolor", "virginica"]
    );
    let private = compile(&model).unwrap();
    model.public_input = true;
    let public = compile(&model).unwrap();
    assert_ne!(private.source, public.source);
    let program = verity_vm::Program::assemble(&public.source, "iris.masm").unwrap();
    let test = read_samples(&iris("test.json")).unwrap();
    for (k, x) in test.iter().enumerate() {
        let q = model.quantize_input(x).unwrap();
        let stack: Vec<u64> = q.iter().map(|v| to_felt(*v)).collect();
        let inputs = verity_vm::Inputs {
            stack,
            ..Default::default()
        };
        let run = verity_vm::execute(&program, &inputs, 1 << 20).unwrap();
        let (class, logits) = model.decode_outputs(&run.outputs).unwrap();
        let want = model.infer(&q).unwrap();
        assert_eq!(logits, want, "flower {k}");
        assert_eq!(class, argmax(&want));
    }
    let float = verity_model::read_onnx(&std::fs::read(iris("mlp.onnx")).unwrap(), "iris").unwrap();
    let a = verity_model::agreement(&model, &float, &test).unwrap();
    println!(
        "iris: top-1 agreement {:.2}% on {} flowers",
        a.top1() * 100.0,
        a.samples
    );
    assert!(a.top1() >= 0.95);

    // An out-of-range public value is refused by the program, as a private one is.
    let mut bad = vec![to_felt(200)];
    bad.extend([0u64; 3]);
    let inputs = verity_vm::Inputs {
        stack: bad,
        ..Default::default()
    };
    assert!(verity_vm::execute(&program, &inputs, 1 << 20).is_err());
}

#[test]
fn a_public_input_holds_at_most_sixteen_values() {
    let mut model = import("mlp.onnx");
    model.public_input = true;
    match compile(&model) {
        Err(ModelError::Input(msg)) => assert!(msg.contains("at most 16"), "{msg}"),
        other => panic!("expected an input error, got {other:?}"),
    }
}

/// The inputs of a committed-weights prediction: the model commitment
/// `M = hash(W, D)` first on the public stack (W the weights' commitment, D the
/// interpretation digest), `[W, D]` under M and the weights under W in the advice map, the
/// input private (or public after the commitment).
fn committed_weights_inputs(model: &QuantModel, weights: &[u64], x: &[f32]) -> verity_vm::Inputs {
    let w = verity_vm::commit_private(weights).unwrap();
    let d = model.interpretation_digest();
    let m = verity_vm::merge_words(w.commitment, d).unwrap();
    let halves = verity_types::PrivateCommitment {
        commitment: m,
        words: 2,
    };
    let q: Vec<u64> = model
        .quantize_input(x)
        .unwrap()
        .iter()
        .map(|v| to_felt(*v))
        .collect();
    let mut inputs = verity_vm::Inputs {
        stack: m.to_vec(),
        ..Default::default()
    };
    if model.public_input {
        inputs.stack.extend(q);
    } else {
        inputs.private = q;
    }
    let both: Vec<u64> = w.commitment.iter().chain(&d).copied().collect();
    inputs.advice.map.extend([
        verity_vm::committed_entry(&halves, &both),
        verity_vm::committed_entry(&w, weights),
    ]);
    // The accumulators of the layers the program checks, which its prover supplies.
    let compiled = compile(model).unwrap();
    let q = model.quantize_input(x).unwrap();
    if let Some(hints) = compiled.prover_hints(model, &q).unwrap() {
        let key = verity_types::PrivateCommitment {
            commitment: verity_vm::merge_words(
                verity_vm::commit_private(&inputs.private)
                    .unwrap()
                    .commitment,
                m,
            )
            .unwrap(),
            words: hints.len().div_ceil(4) as u32,
        };
        inputs
            .advice
            .map
            .extend([verity_vm::committed_entry(&key, &hints)]);
    }
    inputs
}

/// An architecture's program packs two outputs per field element by bounds that hold for any
/// committed model (int8 weights, biases below half a lane), so a committed model outside
/// them is refused, whatever its weights would have needed. (Immediates pack by the actual
/// weights, so the same models compile without committed weights.)
#[test]
fn committed_models_hold_what_their_architecture_program_assumes() {
    let mut model = import("mlp.onnx");
    model.private_weights = true;
    let compiled = compile(&model).unwrap();
    // Every output of both dense layers (32 + 10) is packed, as with immediates.
    assert_eq!(compiled.packed_outputs, 42);
    // A weight beyond int8 (weight 5), a bias of half a lane (bias 3).
    for (what, weight, bias) in [("int8", 128, 0), ("biases", 0, 1 << 30)] {
        let mut bad = model.clone();
        if let verity_model::QLayer::Dense {
            weights: w,
            bias: b,
            ..
        } = &mut bad.layers[0]
        {
            if weight != 0 {
                w[5] = weight;
            }
            if bias != 0 {
                b[3] = bias;
            }
        }
        match compile(&bad) {
            Err(ModelError::Invalid(msg)) => {
                assert!(msg.contains(what) && msg.contains("layer 0"), "{msg}")
            }
            other => panic!(
                "{what}: expected the model refused, got {:?}",
                other.map(|c| c.macs)
            ),
        }
        // The same model with its weights as immediates is fine (it packs by the weights).
        bad.private_weights = false;
        assert!(compile(&bad).is_ok(), "{what}");
    }
}

/// Executes a committed-weights prediction of `source` on `inputs`.
fn run_committed(
    source: &str,
    inputs: verity_vm::Inputs,
) -> Result<verity_vm::Execution, verity_vm::VmError> {
    let (program, prepared) = verity_vm::prepare(source, "arch.masm", &inputs)?;
    verity_vm::execute(&program, &prepared, 1 << 20)
}

/// With committed weights the client cannot supply the convolution's accumulators (it does not
/// know the weights): the prover does, in the advice map under hash(input commitment, model
/// commitment), and the program takes the check's challenge from their hash and that key. The
/// private data is the input alone; false accumulators under the right key are refused (by the
/// check: without its assertion they run), and so are accumulators made for another input
/// (under another key: not found) or none.
#[test]
fn a_committed_convolution_checked_from_the_provers_accumulators_refuses_any_false_one() {
    let mut model = import("cnn.onnx");
    model.private_weights = true;
    let compiled = compile(&model).unwrap();
    assert_eq!(compiled.checked_layers, vec![0]);
    assert!(compiled.hints_from_prover);
    let weights = compiled.weights.clone().unwrap();
    let x = &test_set()[3];
    let q = model.quantize_input(x).unwrap();
    assert_eq!(compiled.private_data(&model, &q).unwrap().len(), 64);
    assert_eq!(compiled.private_len, 64);
    let hints = compiled.prover_hints(&model, &q).unwrap().unwrap();
    assert_eq!(hints.len(), 8 * 64);
    let honest = committed_weights_inputs(&model, &weights, x);
    let (key, _) = honest
        .advice
        .map
        .iter()
        .find(|(_, v)| **v == hints)
        .expect("the prover's entry");
    let key = *key;
    let run = run_committed(&compiled.source, honest.clone()).unwrap();
    let (_, logits) = model.decode_outputs(&run.outputs).unwrap();
    assert_eq!(logits, model.infer(&q).unwrap());
    // The challenge is hash(hash(accumulators), key): fixed after them, the input and M.
    assert_eq!(
        last_challenge(&compiled.source, honest.clone()),
        verity_vm::merge_words(
            verity_vm::commit_private(&hints).unwrap().commitment,
            prover_key(&honest)
        )
        .unwrap()
    );

    let with = |hints: Vec<u64>| {
        let mut inputs = honest.clone();
        inputs.advice.map.insert(key, hints);
        inputs
    };
    let mut lies: Vec<(&str, verity_vm::Inputs)> = Vec::new();
    let mut one = hints.clone();
    one[17] += 1;
    lies.push(("one accumulator one more", with(one)));
    let mut sum_kept = hints.clone();
    sum_kept[3] += 5;
    sum_kept[200] -= 5;
    lies.push(("two changes that keep the sum", with(sum_kept)));
    let mut swapped = hints.clone();
    swapped.swap(5, 69);
    assert_ne!(hints[5], hints[69]);
    lies.push(("two accumulators swapped", with(swapped)));
    let raised: Vec<u64> = hints.iter().map(|v| v + 1).collect();
    lies.push(("every accumulator one more", with(raised)));
    let assertion = " movup.2 assert_eq assert_eq";
    assert_eq!(compiled.source.matches(assertion).count(), 1);
    let unchecked = compiled.source.replace(assertion, " dropw");
    for (what, inputs) in &lies {
        assert!(
            run_committed(&compiled.source, inputs.clone()).is_err(),
            "{what}: accepted"
        );
        assert!(
            run_committed(&unchecked, inputs.clone()).is_ok(),
            "{what}: refused without the check"
        );
    }
    // Accumulators made for another input are under that input's key; none at all.
    let other = committed_weights_inputs(&model, &weights, &test_set()[4]);
    let mut foreign = honest.clone();
    foreign.advice.map.remove(&key);
    for (k, v) in &other.advice.map {
        foreign.advice.map.entry(*k).or_insert_with(|| v.clone());
    }
    assert!(run_committed(&compiled.source, foreign).is_err());
    let mut none = honest.clone();
    none.advice.map.remove(&key);
    assert!(run_committed(&compiled.source, none).is_err());
}

/// The key of a committed-weights prediction's prover entry: hash(input commitment, M).
fn prover_key(inputs: &verity_vm::Inputs) -> [u64; 4] {
    verity_vm::merge_words(
        verity_vm::commit_private(&inputs.private)
            .unwrap()
            .commitment,
        inputs.stack[..4].try_into().unwrap(),
    )
    .unwrap()
}

/// The challenge a committed-weights program checked its last layer with (the word at
/// `RHO_ADDR`), read by running it with the word pushed and moved down to outputs 8 to 11.
fn last_challenge(source: &str, inputs: verity_vm::Inputs) -> [u64; 4] {
    let end = source.trim_end().rfind("end").unwrap();
    let probe = format!(
        "{}    padw mem_loadw_le.{} swapw.3 dropw\n{}",
        &source[..end],
        verity_model::masm::RHO_ADDR,
        &source[end..]
    );
    let run = run_committed(&probe, inputs).unwrap();
    // [R, w0, w1, w2, w3] -> swapw.3 -> [w2, w0, w1, R, w3] -> dropw -> [w0, w1, R, w3]
    run.outputs[8..12].try_into().unwrap()
}

/// Two checked convolutions with committed weights: the prover's one entry holds both
/// layers' accumulators, the second's after the first's; the program asks for it once,
/// copies each layer's part under a challenge of its own (the second's from the second part),
/// and matches the reference. A lie in the second part alone is refused, by the second
/// check (without its assertion it runs).
#[test]
fn two_committed_convolutions_are_each_checked_from_their_part_of_the_provers_entry() {
    use verity_model::{QLayer, Shape, onnx::Window, quant::Requant};
    let window = |c, h, w, k, stride| Window {
        input: Shape { c, h, w },
        kh: k,
        kw: k,
        stride_h: stride,
        stride_w: stride,
        pads: if k == 3 { [1; 4] } else { [0; 4] },
    };
    let conv = |c_in, h, w, salt| QLayer::Conv {
        window: window(c_in, h, w, 3, 1),
        c_out: 2,
        weights: pattern(2 * c_in * 9, salt),
        bias: vec![50, -70],
        requant: vec![
            Requant {
                m: 1 << 22,
                shift: 32
            };
            2
        ],
        lo: 0,
        hi: 127,
    };
    let pool = |h, w| QLayer::MaxPool {
        window: window(2, h, w, 2, 2),
    };
    let mut model = hand_built(
        Shape { c: 1, h: 8, w: 8 },
        vec![1, 1, 8, 8],
        vec![
            conv(1, 8, 8, 1),
            pool(8, 8),
            conv(2, 4, 4, 2),
            pool(4, 4),
            patterned_dense(8, 5, 3, 32767),
        ],
    );
    model.private_weights = true;
    let compiled = compile(&model).unwrap();
    assert_eq!(compiled.checked_layers, vec![0, 2]);
    assert!(compiled.hints_from_prover);
    for (k, x) in samples(64).iter().enumerate() {
        run_committed_as_reference(&model, &compiled, x, &format!("sample {k}"));
    }

    let x = &samples(64)[2];
    let weights = compiled.weights.clone().unwrap();
    let honest = committed_weights_inputs(&model, &weights, x);
    let q = model.quantize_input(x).unwrap();
    let hints = compiled.prover_hints(&model, &q).unwrap().unwrap();
    // The first layer's 2 x 64 accumulators, then the second's 2 x 16.
    assert_eq!(hints.len(), 128 + 32);
    assert_eq!(
        last_challenge(&compiled.source, honest.clone()),
        verity_vm::merge_words(
            verity_vm::commit_private(&hints[128..]).unwrap().commitment,
            prover_key(&honest)
        )
        .unwrap()
    );
    let key = *honest
        .advice
        .map
        .iter()
        .find(|(_, v)| **v == hints)
        .expect("the prover's entry")
        .0;
    let mut lie = honest.clone();
    let mut false_hints = hints.clone();
    false_hints[128 + 5] += 1;
    lie.advice.map.insert(key, false_hints);
    assert!(run_committed(&compiled.source, lie.clone()).is_err());
    let assertion = " movup.2 assert_eq assert_eq";
    let checks: Vec<usize> = compiled
        .source
        .match_indices(assertion)
        .map(|(at, _)| at)
        .collect();
    assert_eq!(checks.len(), 2);
    let mut second_unchecked = compiled.source.clone();
    second_unchecked.replace_range(checks[1]..checks[1] + assertion.len(), " dropw");
    assert!(run_committed(&second_unchecked, lie).is_ok());
}

/// `--private-weights`: one program per architecture (two different weight sets compile to the
/// same program), the weights a committed input that the program checks, and the result still
/// the quantized reference, bit for bit.
#[test]
fn committed_weights_programs_depend_only_on_the_architecture() {
    for name in ["mlp.onnx", "cnn.onnx"] {
        let mut model = import(name);
        model.private_weights = true;
        let compiled = compile(&model).unwrap();
        let weights = compiled.weights.clone().unwrap();
        // Another model of the same architecture: other weights, biases and scales.
        let mut other = model.clone();
        for layer in &mut other.layers {
            if let verity_model::QLayer::Dense { weights, bias, .. }
            | verity_model::QLayer::Conv { weights, bias, .. } = layer
            {
                weights.iter_mut().for_each(|w| *w = -*w / 2);
                bias.iter_mut().for_each(|b| *b /= 3);
            }
        }
        let other_compiled = compile(&other).unwrap();
        assert_eq!(
            compiled.source, other_compiled.source,
            "{name}: one program per architecture"
        );
        let other_weights = other_compiled.weights.unwrap();
        assert_ne!(weights, other_weights);

        for (k, x) in test_set().iter().take(12).enumerate() {
            for (m, w) in [(&model, &weights), (&other, &other_weights)] {
                let inputs = committed_weights_inputs(m, w, x);
                let (program, prepared) =
                    verity_vm::prepare(&compiled.source, "arch.masm", &inputs).unwrap();
                let run = verity_vm::execute(&program, &prepared, 1 << 20).unwrap();
                let q = m.quantize_input(x).unwrap();
                let (class, logits) = m.decode_outputs(&run.outputs).unwrap();
                assert_eq!(logits, m.infer(&q).unwrap(), "{name} sample {k}");
                assert_eq!(class, argmax(&logits));
                if k == 0 && std::ptr::eq(m, &model) {
                    assert!(run.cycles <= compiled.estimated_cycles);
                    println!(
                        "{name}, committed weights: {} parameters, {} cycles (immediates: {})",
                        weights.len(),
                        run.cycles,
                        compile(&import(name)).unwrap().estimated_cycles
                    );
                }
            }
        }

        // Weights that are not the committed ones: the program fails, so there is no proof.
        let x = &test_set()[0];
        let honest = committed_weights_inputs(&model, &weights, x);
        assert!(run_committed(&compiled.source, honest.clone()).is_ok());
        let w = verity_vm::commit_private(&weights).unwrap();
        let weights_key = verity_vm::committed_entry(&w, &weights).0;
        let mut inputs = honest.clone();
        let entry = inputs.advice.map.get_mut(&weights_key).unwrap();
        entry[7] = to_felt(from_felt(entry[7]) + 1);
        assert!(
            run_committed(&compiled.source, inputs).is_err(),
            "{name}: tampered weights"
        );
        // The right weights read as another model (permuted labels) under this model's
        // commitment: the program refuses the halves, so a receipt names the labels and
        // scales it was proven with.
        let mut relabelled = model.clone();
        relabelled.labels = Some((0..model.classes()).rev().map(|c| c.to_string()).collect());
        let forged = committed_weights_inputs(&relabelled, &weights, x);
        let mut inputs = honest;
        inputs.advice.map = forged.advice.map.clone();
        assert!(
            run_committed(&compiled.source, inputs).is_err(),
            "{name}: another interpretation under this commitment"
        );
        // Under its own commitment it runs, and that commitment is another one.
        assert!(run_committed(&compiled.source, forged.clone()).is_ok());
        assert_ne!(
            forged.stack[..4],
            committed_weights_inputs(&model, &weights, x).stack[..4]
        );
    }
}

/// A dense layer of `n_in` inputs, `n_out` outputs: int8 weights from a pattern, a 256th of
/// the accumulator kept (activations stay mostly within the clamp `hi`).
fn patterned_dense(n_in: usize, n_out: usize, salt: usize, hi: i64) -> verity_model::QLayer {
    verity_model::QLayer::Dense {
        n_in,
        n_out,
        weights: pattern(n_in * n_out, salt),
        bias: (0..n_out as i64).map(|j| j * 300 - 1000).collect(),
        requant: vec![
            verity_model::quant::Requant {
                m: 1 << 32,
                shift: 40
            };
            n_out
        ],
        lo: -hi,
        hi,
    }
}

/// A committed-weights MLP `n_in -> hidden -> 10` of patterned weights (`salt`, `salt + 1`).
fn committed_mlp(n_in: usize, hidden: usize, salt: usize) -> QuantModel {
    let mut model = hand_built(
        verity_model::Shape::flat(n_in),
        vec![1, n_in],
        vec![
            patterned_dense(n_in, hidden, salt, 127),
            patterned_dense(hidden, 10, salt + 1, 32767),
        ],
    );
    model.private_weights = true;
    model
}

/// Runs `compiled` (`model`'s architecture program) on `x` with `model`'s own weights, and
/// checks the logits are the quantized reference's (`what` names the case).
fn run_committed_as_reference(
    model: &QuantModel,
    compiled: &verity_model::Compiled,
    x: &[f32],
    what: &str,
) -> verity_vm::Execution {
    let weights = compiled.weights.as_ref().unwrap();
    let run = run_committed(
        &compiled.source,
        committed_weights_inputs(model, weights, x),
    )
    .unwrap();
    let (_, logits) = model.decode_outputs(&run.outputs).unwrap();
    let q = model.quantize_input(x).unwrap();
    assert_eq!(logits, model.infer(&q).unwrap(), "{what}");
    run
}

/// Large committed layers are loops over their weights, so an architecture's program does not
/// grow with its layers (an MNIST-size one fits the ledger's publication limit of 130,048
/// operations); the loop still computes the reference bit for bit, for packed pairs and for
/// a lone output (61 outputs), and its inputs (136, not a whole number of turns) end in a
/// partial turn.
#[test]
fn large_committed_layers_loop_and_match_the_reference() {
    let model = committed_mlp(136, 61, 1);
    let compiled = compile(&model).unwrap();
    assert!(compiled.source.contains("while.true"));
    for (k, x) in samples(136).iter().enumerate() {
        let run = run_committed_as_reference(&model, &compiled, x, &format!("sample {k}"));
        assert!(run.cycles <= compiled.estimated_cycles);
        if k == 0 {
            println!(
                "136 -> 61 -> 10, committed weights: {} cycles (estimated {})",
                run.cycles, compiled.estimated_cycles
            );
        }
    }

    // MNIST size: 784 -> 128 -> 10. Straight-line code takes at least four operations per
    // multiply-accumulate of a pair (50,176 of them in the first layer).
    let mnist = committed_mlp(784, 128, 3);
    let compiled = compile(&mnist).unwrap();
    let ops = verity_vm::inspect(&compiled.source, "arch.masm")
        .unwrap()
        .expanded_ops;
    assert!(ops < 130_048, "{ops} operations");
    assert!(compiled.source.len() < 512 * 1024);
    let run = run_committed_as_reference(&mnist, &compiled, &samples(784)[0], "MNIST size");
    println!(
        "784 -> 128 -> 10, committed weights: {ops} operations, {} KiB of source, {} cycles (trace 2^{}, chiplets {} rows)",
        compiled.source.len() / 1024,
        run.cycles,
        run.trace_len.trailing_zeros(),
        run.rows.chiplets
    );
}
