//! Finalization certificates: a quorum of the validators' simplex signatures over a block id.
//! Nodes keep the one consensus reports for each finalized block and serve it, so anyone who
//! knows the validator set (fixed at genesis) can check that a block is final, and with it the
//! state root its header commits to, without trusting the node that served either.
//!
//! A single-validator devnet runs no simplex engine; its producer signs each block it commits
//! with [`certify_alone`], which makes the same certificate (a quorum of one), so the same
//! [`verify`] accepts it.

use commonware_codec::{Decode, Encode};
use commonware_consensus::Viewable;
use commonware_consensus::simplex::scheme::ed25519::Scheme;
use commonware_consensus::simplex::types::{Finalization, Finalize, Proposal};
use commonware_consensus::types::{Epoch, Round, View};
use commonware_cryptography::sha256::Digest as Sha256Digest;
use commonware_parallel::Sequential;
use commonware_utils::iter::NonEmpty;
use commonware_utils::ordered::Set;
use verity_types::{Address, BlockId, Keypair};

use crate::error::ConsensusError;
use crate::validator::{participant_set, private_key};

/// A simplex finalization over a Verity block id.
pub(crate) type Finalized = Finalization<Scheme, Sha256Digest>;

/// Why a certificate does not show a block final.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("validator key {0} is not an ed25519 public key")]
    BadKey(Address),
    #[error("the validator set is empty")]
    NoValidators,
    #[error("certificate is malformed: {0}")]
    Malformed(String),
    #[error("certificate is for block {certified}, not {expected}")]
    WrongBlock {
        certified: BlockId,
        expected: BlockId,
    },
    #[error(
        "certificate does not verify: its signatures are not a quorum of the validator set's, \
         or are not over this block on this chain"
    )]
    Invalid,
    #[error("cannot sign: {0}")]
    Signing(String),
}

/// What a verified certificate establishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Certified {
    pub block: BlockId,
    /// The consensus view that finalized it (not a height; equal to it on a devnet).
    pub view: u64,
    /// How many validators signed (at least a quorum).
    pub signers: usize,
}

/// The encoding nodes store and serve.
pub(crate) fn encode(finalization: &Finalized) -> Vec<u8> {
    finalization.encode().to_vec()
}

pub(crate) fn block_of(finalization: &Finalized) -> BlockId {
    BlockId(verity_types::Digest(finalization.proposal.payload.0))
}

fn participants(
    validators: &[Address],
) -> Result<Set<commonware_cryptography::ed25519::PublicKey>, CertificateError> {
    if validators.is_empty() {
        return Err(CertificateError::NoValidators);
    }
    participant_set(validators).map_err(|e| match e {
        ConsensusError::BadKey { address, .. } => CertificateError::BadKey(address),
        other => CertificateError::Signing(other.to_string()),
    })
}

/// Checks that `bytes` is a finalization of `block` signed by a quorum of `validators` for
/// chain `chain_id` (the consensus namespace, so a certificate from another chain with the
/// same validators does not pass). Never panics, whatever the bytes.
pub fn verify(
    chain_id: &str,
    validators: &[Address],
    bytes: &[u8],
    block: BlockId,
) -> Result<Certified, CertificateError> {
    let participants = participants(validators)?;
    let max = participants.len();
    let scheme = Scheme::verifier(chain_id.as_bytes(), participants);
    let finalization = Finalized::decode_cfg(bytes.to_vec(), &max)
        .map_err(|e| CertificateError::Malformed(e.to_string()))?;
    let certified = block_of(&finalization);
    if certified != block {
        return Err(CertificateError::WrongBlock {
            certified,
            expected: block,
        });
    }
    if finalization.proposal.round.epoch() != Epoch::zero() {
        return Err(CertificateError::Invalid);
    }
    // Batch verification is sound only with unpredictable randomness: the system's.
    if !finalization.verify(&mut commonware_utils::sys_rng(), &scheme, &Sequential) {
        return Err(CertificateError::Invalid);
    }
    Ok(Certified {
        block,
        view: finalization.view().get(),
        signers: finalization.certificate.signatures.len(),
    })
}

/// The certificate a validator set of one (a devnet's producer) makes for the block it
/// committed at `height`: a finalization in view `height` signed by `key` alone.
pub fn certify_alone(
    chain_id: &str,
    validators: &[Address],
    key: &Keypair,
    height: u64,
    block: BlockId,
) -> Result<Vec<u8>, CertificateError> {
    let private = private_key(key).map_err(|e| CertificateError::Signing(e.to_string()))?;
    let scheme = Scheme::signer(chain_id.as_bytes(), participants(validators)?, private)
        .ok_or_else(|| CertificateError::Signing("the key is not in the validator set".into()))?;
    let proposal = Proposal::new(
        Round::new(Epoch::zero(), View::new(height)),
        View::new(height.saturating_sub(1)),
        Sha256Digest(block.0.0),
    );
    let vote = Finalize::sign(&scheme, proposal)
        .ok_or_else(|| CertificateError::Signing("the scheme cannot sign".into()))?;
    let finalization = Finalized::from_owned_finalizes(
        &scheme,
        NonEmpty::new(vote, std::iter::empty()),
        &Sequential,
    )
    .map_err(|e| CertificateError::Signing(e.to_string()))?;
    Ok(encode(&finalization))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(n: u8) -> BlockId {
        BlockId(verity_types::Digest([n; 32]))
    }

    #[test]
    fn a_lone_validators_certificate_verifies_and_nothing_else_does() {
        let key = Keypair::from_seed([7; 32]);
        let me = [key.address()];
        let cert = certify_alone("verity-test", &me, &key, 5, block(1)).unwrap();
        let ok = verify("verity-test", &me, &cert, block(1)).unwrap();
        assert_eq!((ok.view, ok.signers), (5, 1));

        // Another block, another chain, another validator set: each refused.
        assert!(matches!(
            verify("verity-test", &me, &cert, block(2)),
            Err(CertificateError::WrongBlock { .. })
        ));
        assert_eq!(
            verify("other-chain", &me, &cert, block(1)),
            Err(CertificateError::Invalid)
        );
        let stranger = Keypair::from_seed([8; 32]);
        assert_eq!(
            verify("verity-test", &[stranger.address()], &cert, block(1)),
            Err(CertificateError::Invalid)
        );
        // A forger outside the set cannot sign; one signature is not a quorum of four.
        assert!(certify_alone("verity-test", &me, &stranger, 5, block(1)).is_err());
        let four: Vec<Address> = (20..23u8)
            .map(|i| Keypair::from_seed([i; 32]).address())
            .chain([key.address()])
            .collect();
        assert!(certify_alone("verity-test", &four, &key, 5, block(1)).is_err());
        assert!(matches!(
            verify("verity-test", &four, &cert, block(1)),
            Err(CertificateError::Invalid | CertificateError::Malformed(_))
        ));
    }

    #[test]
    fn garbage_is_reported_not_panicked() {
        let key = Keypair::from_seed([7; 32]);
        let me = [key.address()];
        let cert = certify_alone("verity-test", &me, &key, 5, block(1)).unwrap();
        for len in 0..cert.len() {
            assert!(verify("verity-test", &me, &cert[..len], block(1)).is_err());
        }
        for i in 0..cert.len() {
            let mut bad = cert.clone();
            bad[i] ^= 0x40;
            assert!(
                verify("verity-test", &me, &bad, block(1)).is_err(),
                "byte {i}"
            );
        }
        assert!(matches!(
            verify("verity-test", &[], &cert, block(1)),
            Err(CertificateError::NoValidators)
        ));
    }
}
