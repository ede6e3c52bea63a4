//! Verify proofs and receipts: the part of the VM glue every node, client and SDK needs. It
//! calls Miden's verifier only, so it builds without the prover (the `prover` feature).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, LazyLock};

use miden_core::Felt;
use miden_core::Word;
use miden_core::field::QuotientMap;
use miden_core::precompile::PrecompileVerifierRegistry;
use miden_core::program::{Kernel, ProgramInfo, StackInputs, StackOutputs};
use miden_core::proof::ExecutionProof;
use miden_lifted_stark::InstanceShapes;
use verity_types::StackOutputs as Outputs;
use verity_types::{HashFunction, ProgramHash, RECEIPT_VERSION, Receipt};

use crate::error::VerifyError;

/// What a successful verification established.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub security_bits: u32,
    /// The length of the trace the proof is over (a power of two), read from the proof: the
    /// verifier checked the proof at this length, so unlike a prover's cycle count it is
    /// attested.
    pub trace_len: u64,
}

pub(crate) fn miden_hash_fn(h: HashFunction) -> miden_core::proof::HashFunction {
    use miden_core::proof::HashFunction as Miden;
    match h {
        HashFunction::Blake3_256 => Miden::Blake3_256,
        HashFunction::Rpo256 => Miden::Rpo256,
        HashFunction::Rpx256 => Miden::Rpx256,
        HashFunction::Poseidon2 => Miden::Poseidon2,
        HashFunction::Keccak => Miden::Keccak,
    }
}

fn verity_hash_fn(h: miden_core::proof::HashFunction) -> HashFunction {
    use miden_core::proof::HashFunction as Miden;
    match h {
        Miden::Blake3_256 => HashFunction::Blake3_256,
        Miden::Rpo256 => HashFunction::Rpo256,
        Miden::Rpx256 => HashFunction::Rpx256,
        Miden::Poseidon2 => HashFunction::Poseidon2,
        Miden::Keccak => HashFunction::Keccak,
    }
}

/// The trace length a proof is over. Miden 0.23 proves one AIR instance; its proof starts with
/// the instances' log2 heights (bincode, as `miden_verifier` decodes the rest).
fn proof_trace_len(proof: &ExecutionProof) -> Result<u64, VerifyError> {
    let shapes: InstanceShapes = bincode::deserialize(proof.stark_proof())
        .map_err(|e| VerifyError::MalformedProof(format!("trace shape: {e}")))?;
    match shapes.log_trace_heights() {
        [log] if *log < 64 => Ok(1u64 << log),
        other => Err(VerifyError::MalformedProof(format!(
            "expected one trace of at most 2^63 rows, found log heights {other:?}"
        ))),
    }
}

fn public_felts(what: &'static str, values: &[u64]) -> Result<Vec<Felt>, VerifyError> {
    values
        .iter()
        .map(|v| {
            Felt::from_canonical_checked(*v).ok_or_else(|| VerifyError::PublicValues {
                what,
                why: format!("{v} is not a field element"),
            })
        })
        .collect()
}

/// The core library's precompile verifiers: what `miden_vm::verify` (0.23.5) uses, built
/// without `CoreLibrary::default()`, which deserializes and validates the whole core library
/// (~30 ms, three quarters of a cold `verity verify`) only to build this list.
static PRECOMPILES: LazyLock<PrecompileVerifierRegistry> = LazyLock::new(|| {
    use miden_core_lib::handlers::{ecdsa, eddsa_ed25519, keccak256, sha512};
    PrecompileVerifierRegistry::new()
        .with_verifier(
            &keccak256::KECCAK_HASH_BYTES_EVENT_NAME,
            Arc::new(keccak256::KeccakPrecompile),
        )
        .with_verifier(
            &sha512::SHA512_HASH_BYTES_EVENT_NAME,
            Arc::new(sha512::Sha512Precompile),
        )
        .with_verifier(
            &ecdsa::ECDSA_VERIFY_EVENT_NAME,
            Arc::new(ecdsa::EcdsaPrecompile),
        )
        .with_verifier(
            &eddsa_ed25519::EDDSA25519_VERIFY_EVENT_NAME,
            Arc::new(eddsa_ed25519::EddsaPrecompile),
        )
});

/// Called after every proof verification in this process with how long it took and whether
/// the proof verified: for a node's metrics. It cannot change a result.
type VerifyObserver = Box<dyn Fn(std::time::Duration, bool) + Send + Sync>;
static VERIFY_OBSERVER: std::sync::OnceLock<VerifyObserver> = std::sync::OnceLock::new();

/// Registers the process's verification observer; `false` if one already is (a process runs
/// one node; in-process test networks share the first node's).
pub fn observe_verifications(
    observer: impl Fn(std::time::Duration, bool) + Send + Sync + 'static,
) -> bool {
    VERIFY_OBSERVER.set(Box::new(observer)).is_ok()
}

/// Verifies a serialized Miden proof against a program hash and public stack values. This is
/// the check the ledger runs inside its state transition: it never panics, whatever the bytes.
pub fn verify_proof(
    program_hash: &ProgramHash,
    stack_inputs: &[u64],
    stack_outputs: &Outputs,
    proof: &[u8],
) -> Result<Verified, VerifyError> {
    let started = std::time::Instant::now();
    let result = parse_proof(proof)
        .and_then(|proof| verify_parsed(program_hash, stack_inputs, stack_outputs, proof));
    if let Some(observe) = VERIFY_OBSERVER.get() {
        observe(started.elapsed(), result.is_ok());
    }
    result
}

/// Decodes proof bytes from anyone: a panic in Miden's deserializer is contained and reported
/// as a malformed proof.
fn parse_proof(bytes: &[u8]) -> Result<ExecutionProof, VerifyError> {
    catch_unwind(AssertUnwindSafe(|| ExecutionProof::from_bytes(bytes)))
        .map_err(|_| VerifyError::MalformedProof("the proof could not be decoded".into()))?
        .map_err(|e| VerifyError::MalformedProof(e.to_string()))
}

fn verify_parsed(
    program_hash: &ProgramHash,
    stack_inputs: &[u64],
    stack_outputs: &Outputs,
    proof: ExecutionProof,
) -> Result<Verified, VerifyError> {
    let hash = Word::try_from(program_hash.0.0).map_err(|e| VerifyError::PublicValues {
        what: "program hash",
        why: e.to_string(),
    })?;
    let inputs = StackInputs::new(&public_felts("stack inputs", stack_inputs)?).map_err(|e| {
        VerifyError::PublicValues {
            what: "stack inputs",
            why: e.to_string(),
        }
    })?;
    let outputs =
        StackOutputs::new(&public_felts("stack outputs", stack_outputs)?).map_err(|e| {
            VerifyError::PublicValues {
                what: "stack outputs",
                why: e.to_string(),
            }
        })?;
    let info = ProgramInfo::new(hash, Kernel::default());
    let trace_len = proof_trace_len(&proof)?;
    // The verifier deserializes attacker-controlled bytes; a panic in it must not take down a
    // node, so it is contained and reported as a malformed proof.
    let result = catch_unwind(AssertUnwindSafe(|| {
        miden_verifier::verify_with_precompiles(info, inputs, outputs, proof, &PRECOMPILES)
            .map(|(security_bits, _)| security_bits)
    }))
    .map_err(|_| VerifyError::MalformedProof("the verifier could not parse the proof".into()))?;
    let security_bits = result.map_err(|e| VerifyError::ProofRejected {
        program_hash: *program_hash,
        detail: verity_types::error_chain(&e),
    })?;
    Ok(Verified {
        security_bits,
        trace_len,
    })
}

/// Verifies a receipt: its VM version, hash function, claimed security and trace length, its
/// proof against exactly its program hash, stack inputs and stack outputs, and that its cycle
/// count (the prover's word) fits the proven trace.
pub fn verify_receipt(receipt: &Receipt) -> Result<Verified, VerifyError> {
    if receipt.vm != crate::VM_VERSION {
        return Err(VerifyError::VmVersion {
            found: receipt.vm.clone(),
            expected: crate::VM_VERSION.to_string(),
        });
    }
    // Decoded once: a cold verification pays for one decoding of a ~100-200 KB proof.
    let proof = parse_proof(&receipt.proof)?;
    let actual = proof.hash_fn();
    if actual != miden_hash_fn(receipt.hash_fn) {
        return Err(VerifyError::HashFunctionMismatch {
            claimed: receipt.hash_fn,
            actual: format!("{actual:?}"),
        });
    }
    let verified = verify_parsed(
        &receipt.program_hash,
        &receipt.stack_inputs,
        &receipt.stack_outputs,
        proof,
    )?;
    if verified.security_bits < receipt.security_bits {
        return Err(VerifyError::SecurityMismatch {
            claimed: receipt.security_bits,
            actual: verified.security_bits,
        });
    }
    if verified.trace_len != receipt.trace_len {
        return Err(VerifyError::TraceMismatch {
            claimed: receipt.trace_len,
            actual: verified.trace_len,
        });
    }
    // The cycle count is the prover's word; the proven trace bounds it.
    if receipt.cycles > verified.trace_len {
        return Err(VerifyError::CyclesExceedTrace {
            cycles: receipt.cycles,
            trace_len: verified.trace_len,
        });
    }
    Ok(verified)
}

/// Rebuilds a receipt from values a ledger stores (program hash, public inputs, outputs, the
/// prover's cycle count and the proof bytes), reading the hash function, security level and
/// trace length from the proof itself: every node that holds the same ledger serves the same
/// receipt.
pub fn receipt_from_proof(
    program_hash: ProgramHash,
    stack_inputs: Vec<u64>,
    stack_outputs: Outputs,
    proof: Vec<u8>,
    cycles: u64,
) -> Result<Receipt, VerifyError> {
    let parsed = parse_proof(&proof)?;
    Ok(Receipt {
        version: RECEIPT_VERSION,
        vm: crate::VM_VERSION.to_string(),
        hash_fn: verity_hash_fn(parsed.hash_fn()),
        security_bits: parsed.security_level(),
        program_hash,
        stack_inputs,
        stack_outputs,
        cycles,
        trace_len: proof_trace_len(&parsed)?,
        proof,
    })
}
