//! Prove → verify round trips for the bundled examples, checked against host-side
//! computations, plus tampering and malformed-input cases.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use verity_types::{Digest, HashFunction, MODULUS, Receipt};
use verity_vm::{Inputs, Program, ProveOptions, VerifyError, VmError};

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples")
}

fn example(name: &str) -> Program {
    Program::from_file(&examples_dir().join(name)).expect("example assembles")
}

fn inputs_file(name: &str) -> Inputs {
    Inputs::from_inputs_file(&examples_dir().join(name)).expect("example inputs parse")
}

/// An example with committed private inputs, prepared as a network job would be proven.
fn private_example(program: &str, inputs: &str) -> (Program, Inputs, Inputs) {
    let source = std::fs::read_to_string(examples_dir().join(program)).unwrap();
    let file = inputs_file(inputs);
    let (program, prepared) = verity_vm::prepare(&source, program, &file).unwrap();
    (program, file, prepared)
}

/// fib(n) in Miden's field, computed independently on the host.
fn fib_mod_p(n: u64) -> u64 {
    let (mut a, mut b) = (0u128, 1u128);
    for _ in 0..n {
        (a, b) = (b, (a + b) % MODULUS as u128);
    }
    a as u64
}

fn u32_words_le(bytes: &[u8]) -> Vec<u64> {
    bytes
        .chunks(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()) as u64)
        .collect()
}

fn words_to_bytes_le(words: &[u64]) -> Vec<u8> {
    words
        .iter()
        .flat_map(|w| (*w as u32).to_le_bytes())
        .collect()
}

/// One fib proof shared by the tampering tests (proving is the slow part).
fn fib_receipt() -> &'static Receipt {
    static RECEIPT: OnceLock<Receipt> = OnceLock::new();
    RECEIPT.get_or_init(|| {
        verity_vm::prove(
            &example("fib.masm"),
            &Inputs::from_stack_list("20").unwrap(),
            ProveOptions::default(),
        )
        .expect("fib proves")
    })
}

#[test]
fn fib_outputs_match_the_host_including_field_wraparound() {
    let program = example("fib.masm");
    // fib(100) exceeds 2^64, so this also checks arithmetic modulo p.
    for n in [0u64, 1, 2, 10, 93, 100] {
        let inputs = Inputs::from_stack_list(&n.to_string()).unwrap();
        let run = verity_vm::execute(&program, &inputs, 1 << 16).unwrap();
        assert_eq!(run.outputs[0], fib_mod_p(n), "fib({n})");
        assert_eq!(run.outputs.len(), 16);
        assert!(run.cycles > 0 && run.trace_len >= run.cycles && run.trace_len.is_power_of_two());
        let fast = verity_vm::execute_outputs(&program, &inputs, 1 << 16).unwrap();
        assert_eq!(
            fast, run.outputs,
            "fast execution agrees with trace execution"
        );
    }
}

#[test]
fn fib_prove_verify_round_trip() {
    let receipt = fib_receipt();
    assert_eq!(receipt.stack_outputs[0], fib_mod_p(20));
    assert_eq!(receipt.stack_inputs, vec![20]);
    assert_eq!(receipt.program_hash, example("fib.masm").hash());
    assert_eq!(receipt.hash_fn, HashFunction::Blake3_256);
    let verified = verity_vm::verify_receipt(receipt).expect("fresh receipt verifies");
    assert!(verified.security_bits >= 96);
    // The file format round-trips and still verifies.
    let reread = Receipt::from_json(receipt.to_json().as_bytes()).unwrap();
    assert_eq!(&reread, receipt);
    verity_vm::verify_receipt(&reread).unwrap();
}

#[test]
fn hash_chain_matches_the_blake3_crate() {
    let (program, file, inputs) = private_example("hash_chain.masm", "hash_chain.inputs");
    let rounds = file.stack[0];
    let mut digest = words_to_bytes_le(&file.private);
    for _ in 0..rounds {
        digest = blake3::hash(&digest).as_bytes().to_vec();
    }
    let receipt = verity_vm::prove(&program, &inputs, ProveOptions::default()).unwrap();
    assert_eq!(&receipt.stack_outputs[..8], &u32_words_le(&digest)[..]);
    assert!(receipt.stack_outputs[8..].iter().all(|v| *v == 0));
    verity_vm::verify_receipt(&receipt).unwrap();
    // The receipt's public inputs are the seed's commitment and n, not the seed.
    let commitment = verity_vm::commit_private(&file.private).unwrap();
    assert_eq!(
        receipt.stack_inputs,
        verity_vm::job_stack_inputs(&file.stack, Some(&commitment))
    );
    let json = receipt.to_json();
    for word in &file.private {
        assert!(
            !json.contains(&format!("\"{word}\"")),
            "private word {word} leaked"
        );
    }
}

#[test]
fn preimage_proves_knowledge_without_revealing_it() {
    use sha2::{Digest as _, Sha256};
    let (program, file, inputs) = private_example("preimage.masm", "preimage.inputs");
    let preimage: Vec<u8> = file
        .private
        .iter()
        .flat_map(|w| (*w as u32).to_be_bytes())
        .collect();
    let expected: Vec<u64> = Sha256::digest(&preimage)
        .chunks(4)
        .map(|c| u32::from_be_bytes(c.try_into().unwrap()) as u64)
        .collect();
    assert_eq!(
        file.stack, expected,
        "the public input is sha256 of the secret"
    );

    let receipt = verity_vm::prove(&program, &inputs, ProveOptions::default()).unwrap();
    assert_eq!(receipt.stack_outputs[0], 1);
    verity_vm::verify_receipt(&receipt).unwrap();

    // A wrong preimage cannot be proved: execution fails on the assertion.
    let mut wrong = file.clone();
    wrong.private[0] ^= 1;
    let (wrong_program, wrong_inputs) = verity_vm::prepare(
        &std::fs::read_to_string(examples_dir().join("preimage.masm")).unwrap(),
        "preimage.masm",
        &wrong,
    )
    .unwrap();
    let err = verity_vm::prove(&wrong_program, &wrong_inputs, ProveOptions::default()).unwrap_err();
    assert!(matches!(err, VmError::Execution(_)), "{err}");

    // Nor can the right commitment be proven with other data in the advice map: the loader
    // checks the data against the commitment on the public stack.
    let mut swapped = inputs.clone();
    let key = *swapped.advice.map.keys().next().unwrap();
    swapped.advice.map.insert(key, wrong.private.clone());
    let err = verity_vm::prove(&program, &swapped, ProveOptions::default()).unwrap_err();
    assert!(matches!(err, VmError::Execution(_)), "{err}");
}

#[test]
fn tampered_receipts_are_rejected_naming_what_failed() {
    let good = fib_receipt();

    let mut r = good.clone();
    let mut outputs = r.stack_outputs.to_vec();
    outputs[0] += 1;
    r.stack_outputs = verity_types::StackOutputs::new(&outputs).unwrap();
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::ProofRejected { .. })
    ));

    let mut r = good.clone();
    r.stack_inputs[0] = 21;
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::ProofRejected { .. })
    ));

    let mut r = good.clone();
    r.program_hash = example("hash_chain.masm").hash();
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::ProofRejected { .. })
    ));

    let mut r = good.clone();
    r.vm = "miden-vm 0.22.0".into();
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::VmVersion { .. })
    ));

    let mut r = good.clone();
    r.hash_fn = HashFunction::Poseidon2;
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::HashFunctionMismatch { .. })
    ));

    let mut r = good.clone();
    r.security_bits = 128;
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::SecurityMismatch { .. })
    ));

    // The trace length is read from the proof, so a receipt cannot inflate it.
    let mut r = good.clone();
    r.trace_len *= 2;
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::TraceMismatch { .. })
    ));
    let mut r = good.clone();
    r.cycles = r.trace_len + 1;
    assert!(matches!(
        verity_vm::verify_receipt(&r),
        Err(VerifyError::CyclesExceedTrace { .. })
    ));

    // One flipped bit anywhere in the proof: at the start (header), middle and end.
    let len = good.proof.len();
    for pos in [0, 1, len / 3, len / 2, len - 1] {
        let mut r = good.clone();
        r.proof[pos] ^= 0x01;
        let err = verity_vm::verify_receipt(&r).expect_err("flipped proof byte must fail");
        assert!(
            matches!(
                err,
                VerifyError::ProofRejected { .. }
                    | VerifyError::MalformedProof(_)
                    | VerifyError::HashFunctionMismatch { .. }
            ),
            "byte {pos}: {err}"
        );
    }

    // Truncated proof.
    let mut r = good.clone();
    r.proof.truncate(len / 2);
    assert!(verity_vm::verify_receipt(&r).is_err());
}

#[test]
fn out_of_field_public_values_are_reported_not_panicked() {
    let good = fib_receipt();
    // Out-of-field outputs cannot even be represented.
    let mut outputs = good.stack_outputs.to_vec();
    outputs[3] = MODULUS;
    assert!(verity_types::StackOutputs::new(&outputs).is_err());
    let err = verity_vm::verify_proof(
        &good.program_hash,
        &[MODULUS],
        &good.stack_outputs,
        &good.proof,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::PublicValues {
                what: "stack inputs",
                ..
            }
        ),
        "{err}"
    );
    let bad_hash = verity_types::ProgramHash(Digest([0xff; 32]));
    let err = verity_vm::verify_proof(
        &bad_hash,
        &good.stack_inputs,
        &good.stack_outputs,
        &good.proof,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            VerifyError::PublicValues {
                what: "program hash",
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn cycle_limit_stops_runaway_programs() {
    let program = example("fib.masm");
    let inputs = Inputs::from_stack_list("100000").unwrap();
    let err = verity_vm::execute(&program, &inputs, 1024).unwrap_err();
    assert!(matches!(err, VmError::CycleLimit { limit: 1024 }), "{err}");
    let err = verity_vm::prove(
        &program,
        &inputs,
        ProveOptions {
            max_cycles: 1024,
            ..Default::default()
        },
    )
    .unwrap_err();
    assert!(matches!(err, VmError::CycleLimit { .. }), "{err}");
    let err = verity_vm::execute(&program, &inputs, 10).unwrap_err();
    assert!(
        matches!(err, VmError::BadCycleLimit { got: 10, .. }),
        "{err}"
    );
}

#[test]
fn missing_advice_is_an_execution_error() {
    let reads_advice = Program::assemble("begin adv_push add end", "hint.masm").unwrap();
    let err = verity_vm::execute(
        &reads_advice,
        &Inputs::from_stack_list("1").unwrap(),
        1 << 16,
    )
    .unwrap_err();
    assert!(matches!(err, VmError::Execution(_)), "{err}");
    // A job's private inputs missing from the advice map: the loader fails, no output.
    let source = std::fs::read_to_string(examples_dir().join("hash_chain.masm")).unwrap();
    let given = inputs_file("hash_chain.inputs");
    let (program, mut prepared) = verity_vm::prepare(&source, "hash_chain.masm", &given).unwrap();
    prepared.advice.map.clear();
    let err = verity_vm::execute(&program, &prepared, 1 << 16).unwrap_err();
    assert!(matches!(err, VmError::Execution(_)), "{err}");
}

mod random_bytes {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Arbitrary bytes as a proof never panic the verifier; they are rejected.
        #[test]
        fn garbage_proofs_are_rejected(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let good = fib_receipt();
            let result = verity_vm::verify_proof(&good.program_hash, &good.stack_inputs, &good.stack_outputs, &bytes);
            prop_assert!(result.is_err());
        }
    }
}

/// Miden 0.23 proofs are not zero-knowledge, and Verity does not claim they are: the prover
/// commits to the trace with the non-hiding LMCS and does not randomize it, so the trace
/// commitment at the head of a proof is a deterministic function of the witness: two
/// witnesses of one statement give two different commitments, and whoever holds a candidate
/// witness confirms it by proving again. Only the first commitment is compared: once, under
/// the whole test suite, two proofs of one witness had different lengths (cause not
/// identified), which does not change what the commitment reveals. If this test
/// starts failing, Miden has added hiding: update docs/SECURITY.md and the README.
#[test]
fn proofs_are_deterministic_in_the_witness_so_they_do_not_hide_it() {
    // The advice value is dropped: the statement (program, inputs, outputs) is the same for
    // every value.
    let program =
        Program::assemble("begin\n    adv_push drop add.1\nend\n", "hint.masm").expect("assembles");
    let with_hint = |v: u64| {
        let mut inputs = Inputs::default();
        inputs.advice.stack = vec![v];
        verity_vm::prove(&program, &inputs, ProveOptions::default()).expect("proves")
    };
    let (a, again, b) = (with_hint(5), with_hint(5), with_hint(6));
    assert_eq!(a.stack_outputs, b.stack_outputs, "one statement");
    // The first commitment, after the proof's length prefix (3 bytes here; the length itself
    // was what differed in the one run where two proofs of one witness did).
    let head = |p: &[u8]| p[3..64].to_vec();
    assert_eq!(
        head(&a.proof),
        head(&again.proof),
        "the same witness gives the same commitment"
    );
    assert_ne!(
        head(&a.proof),
        head(&b.proof),
        "another witness gives another commitment"
    );
}

#[test]
fn a_receipt_rebuilt_from_ledger_values_is_the_provers_receipt() {
    let good = fib_receipt();
    let rebuilt = verity_vm::receipt_from_proof(
        good.program_hash,
        good.stack_inputs.clone(),
        good.stack_outputs,
        good.proof.clone(),
        good.cycles,
    )
    .unwrap();
    // Hash function, security and trace length all come from the proof itself.
    assert_eq!(&rebuilt, good);
    let verified = verity_vm::verify_receipt(&rebuilt).unwrap();
    assert_eq!(verified.trace_len, good.trace_len);
}

/// The loader leaves the commitment it checked at `PRIVATE_COMMITMENT_ADDR`, first element
/// first: a program reading that word gets exactly the job's commitment (what checked
/// convolutions take their challenge from).
#[test]
fn the_loader_leaves_the_commitment_where_programs_read_it() {
    let at = verity_vm::PRIVATE_COMMITMENT_ADDR;
    // Each load replaces one of the stack's bottom elements (it ends 16 deep).
    let loads: String = (0..4)
        .rev()
        .map(|i| format!(" mem_load.{} movup.15 drop", at + i))
        .collect();
    let source = format!("begin\n   {loads}\nend\n");
    let given = Inputs {
        private: vec![5, 6, 7, 8, 9],
        ..Default::default()
    };
    let (program, inputs) = verity_vm::prepare(&source, "commitment.masm", &given).unwrap();
    let run = verity_vm::execute(&program, &inputs, 1 << 16).unwrap();
    let commitment = verity_vm::commit_private(&given.private).unwrap();
    assert_eq!(&run.outputs.as_slice()[..4], &commitment.commitment[..]);
}
