//! A block as consensus orders it: the header the proposer chose, its transactions, and the id
//! of the block it builds on.
//!
//! The ledger executes `header` + `txs`; `parent_id` chains blocks together so that a
//! finalization of one block id commits to its whole history. Ids are SHA-256 over the
//! canonical borsh encoding (borsh has exactly one encoding per value), which is also the
//! digest the consensus engine votes on.

use borsh::{BorshDeserialize, BorshSerialize};
use sha2::{Digest as _, Sha256};
use verity_types::{BlockId, Digest, SignedTx};

use crate::apply::BlockHeader;
use crate::state::State;

#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize)]
pub struct Block {
    /// Id of the block this one extends ([`genesis_block_id`] for the first block).
    pub parent_id: BlockId,
    pub header: BlockHeader,
    pub txs: Vec<SignedTx>,
}

impl Block {
    /// SHA-256 of the encoded block: hashes the whole block (up to 4 MB) on every call; a
    /// [`SealedBlock`] computes it once.
    pub fn id(&self) -> BlockId {
        BlockId(sha256(&self.to_bytes()))
    }

    /// The block with its id, computed now and never again.
    pub fn seal(self) -> SealedBlock {
        SealedBlock {
            id: self.id(),
            block: self,
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding to a Vec cannot fail")
    }

    /// Decodes a block, rejecting trailing bytes (so one block has one encoding).
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, verity_types::DecodeError> {
        borsh::from_slice(bytes).map_err(|e| verity_types::DecodeError::new("block", e))
    }
}

/// A block and its id. Consensus passes blocks around (relay, verify, commit, serve to peers)
/// as sealed blocks, so the id of a block is computed once, when it is built or decoded. The
/// fields are private: a sealed block cannot be changed under its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedBlock {
    block: Block,
    id: BlockId,
}

impl SealedBlock {
    pub fn id(&self) -> BlockId {
        self.id
    }

    pub fn block(&self) -> &Block {
        &self.block
    }

    pub fn into_block(self) -> Block {
        self.block
    }
}

impl std::ops::Deref for SealedBlock {
    type Target = Block;

    fn deref(&self) -> &Block {
        &self.block
    }
}

/// The id that block 1 names as its parent: a commitment to the chain id and the whole genesis
/// state (its canonical encoding, hashed once), so anyone holding the genesis file computes it
/// without a state store.
pub fn genesis_block_id(genesis_state: &State) -> BlockId {
    let mut bytes = b"verity-genesis-block/v2:".to_vec();
    bytes.extend_from_slice(genesis_state.chain_id.as_bytes());
    bytes.extend_from_slice(&sha256(&genesis_state.to_bytes()).0);
    BlockId(sha256(&bytes))
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_block_carries_the_id_of_its_block() {
        let block = Block {
            parent_id: BlockId(Digest::blake3(b"parent")),
            header: BlockHeader {
                chain_id: "test".into(),
                height: 7,
                timestamp_ms: 1,
                parent: Digest::blake3(b"root"),
                proposer: verity_types::Keypair::dev("p").address(),
            },
            txs: Vec::new(),
        };
        let id = block.id();
        let sealed = block.clone().seal();
        assert_eq!(sealed.id(), id);
        assert_eq!(sealed.header.height, 7);
        assert_eq!(sealed.into_block(), block);
    }
}
