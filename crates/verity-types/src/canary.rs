//! Canary derivation: how a validator's secret seed becomes the commitment it posts before an
//! audit epoch and the client keys its canary jobs come from.
//!
//! Everything is bound to the auditor and the epoch, so one validator cannot reuse (or copy)
//! another's commitment to claim its canaries, and a seed opens exactly one commitment.
//! Until the seed is revealed, a canary's client address is an ordinary-looking fresh key.

use crate::crypto::{Address, Keypair};
use crate::digest::Digest;

const COMMIT_DOMAIN: &[u8] = b"verity/canary/commit/v1";
const KEY_DOMAIN: &[u8] = b"verity/canary/key/v1";

fn hash(domain: &[u8], auditor: &Address, epoch: u64, seed: &Digest, index: Option<u32>) -> Digest {
    let mut bytes = domain.to_vec();
    bytes.extend_from_slice(&auditor.0);
    bytes.extend_from_slice(&epoch.to_le_bytes());
    bytes.extend_from_slice(&seed.0);
    if let Some(i) = index {
        bytes.extend_from_slice(&i.to_le_bytes());
    }
    Digest::blake3(&bytes)
}

/// What the auditor posts before the epoch: a hiding, binding commitment to `seed`.
pub fn commitment(auditor: &Address, epoch: u64, seed: &Digest) -> Digest {
    hash(COMMIT_DOMAIN, auditor, epoch, seed, None)
}

/// The client key of canary `index`: it funds, signs and owns that canary job.
pub fn client_key(auditor: &Address, epoch: u64, seed: &Digest, index: u32) -> Keypair {
    Keypair::from_seed(hash(KEY_DOMAIN, auditor, epoch, seed, Some(index)).0)
}

/// The client address of canary `index` (what the ledger checks a reveal against).
pub fn client_address(auditor: &Address, epoch: u64, seed: &Digest, index: u32) -> Address {
    client_key(auditor, epoch, seed, index).address()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derivations_are_bound_to_auditor_epoch_seed_and_index() {
        let (a, b) = (Keypair::dev("a").address(), Keypair::dev("b").address());
        let seed = Digest::blake3(b"seed");
        let other = Digest::blake3(b"other");
        assert_eq!(commitment(&a, 3, &seed), commitment(&a, 3, &seed));
        assert_ne!(commitment(&a, 3, &seed), commitment(&b, 3, &seed));
        assert_ne!(commitment(&a, 3, &seed), commitment(&a, 4, &seed));
        assert_ne!(commitment(&a, 3, &seed), commitment(&a, 3, &other));
        let k = client_address(&a, 3, &seed, 0);
        assert_eq!(k, client_address(&a, 3, &seed, 0));
        assert_ne!(k, client_address(&a, 3, &seed, 1));
        assert_ne!(k, client_address(&b, 3, &seed, 0));
        assert_ne!(k, a);
    }
}
