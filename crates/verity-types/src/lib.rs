//! Verity's wire types: the values every other crate passes around.
//!
//! This crate knows nothing of Miden, networks or storage. It defines how values look on the
//! wire and on disk (digests, field elements, receipts) and how untrusted text becomes them,
//! with errors that say what was wrong.

pub mod canary;
pub mod crypto;
pub mod digest;
pub mod field;
pub mod ids;
pub mod merkle;
pub mod outputs;
pub mod prefix;
pub mod receipt;
mod schema;
pub mod tx;

pub use crypto::{Address, Keypair, Signature, verify_batch};
pub use digest::{Digest, DigestError};
pub use field::{FieldError, MODULUS, format_felts, parse_felt, parse_felt_list};
pub use ids::{BlockId, JobId, ProgramHash, TxId};
pub use outputs::{OutputsError, STACK_OUTPUTS, StackOutputs};
pub use prefix::{IdPrefix, PrefixError};
pub use receipt::{HashFunction, RECEIPT_FORMAT, RECEIPT_VERSION, Receipt, ReceiptError};
pub use tx::{
    AuditReport, CanaryClaim, CanaryReveal, DecodeError, InvalidOffer, JobRequest, Liveness, Mode,
    Offer, PrivateCommitment, ProgramSource, Role, SignedTx, Tx, TxBody,
};

/// An error with its causes, `outer: cause: root cause`: a library's own message often leaves
/// the reason to its sources (reqwest's "error sending request", Miden's verifier errors).
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
