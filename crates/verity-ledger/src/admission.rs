//! Whether a transaction can be included at all: the checks that need no execution.
//!
//! The state transition runs them first (a transaction failing one changes nothing and makes
//! its block invalid); the mempool runs the same function at admission, so a submitter hears
//! at once, and a proposer never picks what validators would refuse.

use verity_types::{ProgramSource, SignedTx, TxBody};

use crate::apply::Signatures;
use crate::error::TxError;
use crate::state::State;
use crate::trust::{MAX_AUDIT_ENTRIES, MAX_CANARIES_PER_EPOCH, MAX_ENDPOINT_BYTES};

/// Largest sealed private input: the largest private input (`verity_vm::MAX_PRIVATE_WORDS`
/// words of field elements, 8 bytes each) plus the sealing's overhead.
pub const MAX_SEALED_INPUTS_BYTES: usize = verity_vm::MAX_PRIVATE_WORDS as usize * 32 + 1024;

/// What including a transaction will cost its signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admissible {
    pub fee: u64,
    /// Encoded size in bytes.
    pub size: usize,
    /// What assembling it costs every validator, in operations ([`assembly_ops`]).
    pub assembly_ops: u64,
}

/// Assembly cost counted for any `SubmitJob`, however small its program: parsing, linking and
/// hashing cost something even for a one-line program.
pub const ASSEMBLY_BASE_OPS: u64 = 1024;

/// What assembling a transaction's program costs, in operations: the program's size once its
/// `repeat`s are unrolled (see `verity_vm::inspect`) plus [`ASSEMBLY_BASE_OPS`], twice that
/// size for a publication (assembled as written and behind the loader); 0 for any other
/// transaction, and for a job naming a published program (assembled when it was published).
/// A program that does not parse costs the base (it is refused before assembly).
pub fn assembly_ops(body: &TxBody) -> u64 {
    let unrolled =
        |source: &str| verity_vm::inspect(source, "job.masm").map_or(0, |s| s.expanded_ops);
    match body {
        TxBody::SubmitJob(req) => match &req.program {
            ProgramSource::Inline(source) => unrolled(source).saturating_add(ASSEMBLY_BASE_OPS),
            ProgramSource::Published(_) | ProgramSource::Stored(_) => 0,
        },
        TxBody::PublishProgram { source } => unrolled(source)
            .saturating_mul(2)
            .saturating_add(ASSEMBLY_BASE_OPS),
        _ => 0,
    }
}

/// The fee of a transaction: [`crate::Params::fee`] for its size and proofs, plus
/// `fee_per_kib` per 1,024 operations of assembly, so a program that unrolls is paid for like
/// the bytes it would take written out.
pub fn fee_of(state: &State, stx: &SignedTx) -> u64 {
    fee_with(state, stx, assembly_ops(&stx.tx.body))
}

fn fee_with(state: &State, stx: &SignedTx, assembly_ops: u64) -> u64 {
    let p = &state.params;
    p.fee(&stx.tx.body, stx.encoded_len())
        .saturating_add(p.fee_per_kib.saturating_mul(assembly_ops.div_ceil(1024)))
}

/// Checks chain, size limits, signature, nonce (`expected_nonce`: the ledger's, or the
/// mempool's counting pending transactions) and that the signer can pay the fee from its
/// balance in `state`.
pub fn precheck(state: &State, stx: &SignedTx, expected_nonce: u64) -> Result<Admissible, TxError> {
    precheck_with(
        state,
        stx,
        expected_nonce,
        Signatures::CheckEach,
        assembly_ops,
    )
}

/// [`precheck`], with the transaction's [`assembly_ops`] from `ops` (the state transition has
/// already measured every program of the block for its assembly budget; parsing is done
/// only after the cheap checks pass either way).
pub(crate) fn precheck_with(
    state: &State,
    stx: &SignedTx,
    expected_nonce: u64,
    signatures: Signatures,
    ops: impl FnOnce(&TxBody) -> u64,
) -> Result<Admissible, TxError> {
    let tx = &stx.tx;
    if tx.chain_id != state.chain_id {
        return Err(TxError::WrongChain {
            expected: state.chain_id.clone(),
            got: tx.chain_id.clone(),
        });
    }
    // Cheap checks first: an unsigned or stale transaction costs no parsing.
    if signatures == Signatures::CheckEach && !stx.signature_is_valid() {
        return Err(TxError::BadSignature);
    }
    if tx.nonce != expected_nonce {
        return Err(TxError::BadNonce {
            expected: expected_nonce,
            got: tx.nonce,
        });
    }
    let assembly_ops = check_limits(state, &tx.body, ops)?;
    // A transaction no block can hold would wait at the head of every mempool forever.
    oversized(
        "program (operations to assemble)",
        usize::try_from(assembly_ops).unwrap_or(usize::MAX),
        usize::try_from(state.params.max_block_assembly_ops).unwrap_or(usize::MAX),
    )?;
    let size = stx.encoded_len();
    let fee = fee_with(state, stx, assembly_ops);
    let available = state.accounts.get(&tx.signer).map_or(0, |a| a.balance);
    if available < fee {
        return Err(TxError::CannotPayFee { fee, available });
    }
    Ok(Admissible {
        fee,
        size,
        assembly_ops,
    })
}

fn oversized(what: &'static str, size: usize, limit: usize) -> Result<(), TxError> {
    if size > limit {
        return Err(TxError::Oversized { what, size, limit });
    }
    Ok(())
}

/// Size limits a transaction's body must respect whatever the state; returns its assembly
/// cost ([`assembly_ops`]).
fn check_limits(
    state: &State,
    body: &TxBody,
    ops: impl FnOnce(&TxBody) -> u64,
) -> Result<u64, TxError> {
    let p = &state.params;
    match body {
        TxBody::SubmitJob(req) => {
            let inline = match &req.program {
                ProgramSource::Inline(source) => {
                    oversized("program", source.len(), p.max_program_bytes as usize)?;
                    true
                }
                ProgramSource::Published(_) => false,
                // The ledger's own representation of a job's inline source: a transaction
                // names a program inline or published.
                ProgramSource::Stored(_) => {
                    return Err(TxError::BadProgram(
                        "a job's program is inline or published; `stored` is how the ledger \
                         holds inline sources"
                            .into(),
                    ));
                }
            };
            let reserved = if req.private_inputs.is_some() {
                verity_vm::PRIVATE_INPUT_SLOTS
            } else {
                0
            };
            oversized("stack inputs", req.stack_inputs.len(), 16 - reserved)?;
            if !inline {
                return Ok(0);
            }
            // What assembling would cost every validator, bounded before anyone assembles it.
            // (A program that does not parse is the transaction's own failure, charged later.)
            let ops = ops(body);
            oversized(
                "program (operations once unrolled)",
                usize::try_from(ops.saturating_sub(ASSEMBLY_BASE_OPS)).unwrap_or(usize::MAX),
                p.max_program_nodes as usize,
            )?;
            Ok(ops)
        }
        TxBody::PublishProgram { source } => {
            oversized(
                "published program",
                source.len(),
                p.max_published_program_bytes as usize,
            )?;
            let ops = ops(body);
            // `ops` counts the program twice (see `assembly_ops`); the limit is on its size.
            oversized(
                "published program (operations once unrolled)",
                usize::try_from(ops.saturating_sub(ASSEMBLY_BASE_OPS) / 2).unwrap_or(usize::MAX),
                p.max_published_program_nodes as usize,
            )?;
            Ok(ops)
        }
        TxBody::Fulfil {
            proof: Some(proof), ..
        }
        | TxBody::Challenge { proof, .. } => {
            oversized("proof", proof.len(), p.max_proof_bytes as usize).map(|()| 0)
        }
        TxBody::ProvideInputs { sealed, .. } => {
            oversized("sealed inputs", sealed.len(), MAX_SEALED_INPUTS_BYTES).map(|()| 0)
        }
        TxBody::Announce { endpoint } => {
            oversized("endpoint", endpoint.len(), MAX_ENDPOINT_BYTES).map(|()| 0)
        }
        TxBody::Audit(report) => {
            oversized("audit", report.liveness.len(), MAX_AUDIT_ENTRIES).map(|()| 0)
        }
        TxBody::CanaryReveal(reveal) => oversized(
            "canary reveal",
            reveal.canaries.len(),
            MAX_CANARIES_PER_EPOCH as usize,
        )
        .map(|()| 0),
        _ => Ok(0),
    }
}
