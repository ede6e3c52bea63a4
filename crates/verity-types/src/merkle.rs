//! Merkle commitments over the ledger state, and inclusion proofs a light client can check
//! with this crate alone (no VM, no database).
//!
//! The tree is `rs_merkle`'s binary Merkle tree with Blake3 as its hash. Each leaf is
//! `blake3(key || value)` over the canonical (borsh) encodings, with a one-byte table tag in
//! the key, so a proof for one table can never be passed off as a proof for another.

use borsh::{BorshDeserialize, BorshSerialize};
use rs_merkle::{Hasher, MerkleProof, MerkleTree};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// rs_merkle's hasher interface, backed by Blake3.
#[derive(Clone)]
pub struct Blake3Hasher;

impl Hasher for Blake3Hasher {
    type Hash = [u8; 32];
    fn hash(data: &[u8]) -> [u8; 32] {
        *blake3::hash(data).as_bytes()
    }
}

/// The leaf hash of one state entry.
pub fn leaf_hash(key: &[u8], value: &[u8]) -> [u8; 32] {
    let mut h = blake3::Hasher::new();
    h.update(b"verity/leaf/v1");
    h.update(&(key.len() as u64).to_le_bytes());
    h.update(key);
    h.update(value);
    *h.finalize().as_bytes()
}

/// Builds the root over leaf hashes (in their canonical order).
pub fn root(leaves: &[[u8; 32]]) -> Digest {
    let tree = MerkleTree::<Blake3Hasher>::from_leaves(leaves);
    Digest(tree.root().unwrap_or([0u8; 32]))
}

/// Proof that one leaf is in a tree with a given root.
#[derive(
    utoipa::ToSchema,
    Debug,
    Clone,
    PartialEq,
    Eq,
    BorshSerialize,
    BorshDeserialize,
    Serialize,
    Deserialize,
)]
pub struct InclusionProof {
    pub leaf_index: u64,
    pub total_leaves: u64,
    /// rs_merkle's compact proof encoding.
    #[serde(with = "hex_bytes")]
    #[schema(value_type = String, pattern = "^0x([0-9a-f]{2})*$")]
    pub proof: Vec<u8>,
}

impl InclusionProof {
    /// Makes a proof for `leaves[index]`.
    pub fn build(leaves: &[[u8; 32]], index: usize) -> InclusionProof {
        let tree = MerkleTree::<Blake3Hasher>::from_leaves(leaves);
        InclusionProof {
            leaf_index: index as u64,
            total_leaves: leaves.len() as u64,
            proof: tree.proof(&[index]).to_bytes(),
        }
    }

    /// Checks that the entry (`key`, `value`) is in the state committed to by `root`.
    pub fn verify(&self, root: &Digest, key: &[u8], value: &[u8]) -> bool {
        let Ok(proof) = MerkleProof::<Blake3Hasher>::from_bytes(&self.proof) else {
            return false;
        };
        if self.leaf_index >= self.total_leaves {
            return false;
        }
        proof.verify(
            root.0,
            &[self.leaf_index as usize],
            &[leaf_hash(key, value)],
            self.total_leaves as usize,
        )
    }
}

mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serializer};
    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&format_args!("0x{}", hex::encode(bytes)))
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <String as Deserialize>::deserialize(d)?;
        hex::decode(s.strip_prefix("0x").unwrap_or(&s)).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proofs_verify_only_for_their_entry() {
        let entries: Vec<(Vec<u8>, Vec<u8>)> = (0..7u8).map(|i| (vec![1, i], vec![i; 3])).collect();
        let leaves: Vec<_> = entries.iter().map(|(k, v)| leaf_hash(k, v)).collect();
        let r = root(&leaves);
        for (i, (k, v)) in entries.iter().enumerate() {
            let p = InclusionProof::build(&leaves, i);
            assert!(p.verify(&r, k, v), "entry {i}");
            assert!(!p.verify(&r, k, &[9, 9, 9]), "wrong value for entry {i}");
        }
        let p = InclusionProof::build(&leaves, 2);
        assert!(
            !p.verify(&Digest([7; 32]), &entries[2].0, &entries[2].1),
            "wrong root"
        );
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<InclusionProof>(&json).unwrap(), p);
    }
}
