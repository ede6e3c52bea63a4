//! Whether a transaction can be included at all: the checks that need no execution.
//!
//! The state transition runs them first (a transaction failing one changes nothing and makes
//! its block invalid); the mempool runs the same function at admission, so a submitter hears
//! at once, and a proposer never picks what validators would refuse.

use verity_types::{SignedTx, TxBody};

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
}

/// Checks chain, size limits, signature, nonce (`expected_nonce`: the ledger's, or the
/// mempool's counting pending transactions) and that the signer can pay the fee from its
/// balance in `state`.
pub fn precheck(state: &State, stx: &SignedTx, expected_nonce: u64) -> Result<Admissible, TxError> {
    let tx = &stx.tx;
    if tx.chain_id != state.chain_id {
        return Err(TxError::WrongChain {
            expected: state.chain_id.clone(),
            got: tx.chain_id.clone(),
        });
    }
    check_limits(state, &tx.body)?;
    if !stx.signature_is_valid() {
        return Err(TxError::BadSignature);
    }
    if tx.nonce != expected_nonce {
        return Err(TxError::BadNonce {
            expected: expected_nonce,
            got: tx.nonce,
        });
    }
    let size = stx.encoded_len();
    let fee = state.params.fee(&tx.body, size);
    let available = state.accounts.get(&tx.signer).map_or(0, |a| a.balance);
    if available < fee {
        return Err(TxError::CannotPayFee { fee, available });
    }
    Ok(Admissible { fee, size })
}

fn oversized(what: &'static str, size: usize, limit: usize) -> Result<(), TxError> {
    if size > limit {
        return Err(TxError::Oversized { what, size, limit });
    }
    Ok(())
}

/// Size limits a transaction's body must respect whatever the state.
fn check_limits(state: &State, body: &TxBody) -> Result<(), TxError> {
    let p = &state.params;
    match body {
        TxBody::SubmitJob(req) => {
            oversized("program", req.program.len(), p.max_program_bytes as usize)?;
            let reserved = if req.private_inputs.is_some() {
                verity_vm::PRIVATE_INPUT_SLOTS
            } else {
                0
            };
            oversized("stack inputs", req.stack_inputs.len(), 16 - reserved)?;
            // What assembling would cost every validator, bounded before anyone assembles it.
            // (A program that does not parse is the transaction's own failure, charged later.)
            if let Ok(shape) = verity_vm::inspect(&req.program, "job.masm") {
                oversized(
                    "program (operations once unrolled)",
                    usize::try_from(shape.expanded_ops).unwrap_or(usize::MAX),
                    p.max_program_nodes as usize,
                )?;
            }
            Ok(())
        }
        TxBody::Fulfil {
            proof: Some(proof), ..
        }
        | TxBody::Challenge { proof, .. } => {
            oversized("proof", proof.len(), p.max_proof_bytes as usize)
        }
        TxBody::ProvideInputs { sealed, .. } => {
            oversized("sealed inputs", sealed.len(), MAX_SEALED_INPUTS_BYTES)
        }
        TxBody::Announce { endpoint } => oversized("endpoint", endpoint.len(), MAX_ENDPOINT_BYTES),
        TxBody::Audit(report) => oversized("audit", report.liveness.len(), MAX_AUDIT_ENTRIES),
        TxBody::CanaryReveal(reveal) => oversized(
            "canary reveal",
            reveal.canaries.len(),
            MAX_CANARIES_PER_EPOCH as usize,
        ),
        _ => Ok(()),
    }
}
