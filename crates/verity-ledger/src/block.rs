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
    /// SHA-256 of the encoded block.
    pub fn id(&self) -> BlockId {
        BlockId(sha256(&self.to_bytes()))
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        borsh::to_vec(self).expect("encoding to a Vec cannot fail")
    }

    /// Decodes a block, rejecting trailing bytes (so one block has one encoding).
    pub fn from_bytes(bytes: &[u8]) -> Result<Block, verity_types::DecodeError> {
        borsh::from_slice(bytes).map_err(|e| verity_types::DecodeError::new("block", e))
    }
}

/// The id that block 1 names as its parent: a commitment to the chain id and the genesis state.
pub fn genesis_block_id(genesis_state: &State) -> BlockId {
    let mut bytes = b"verity-genesis-block:".to_vec();
    bytes.extend_from_slice(genesis_state.chain_id.as_bytes());
    bytes.extend_from_slice(&genesis_state.state_root().0);
    BlockId(sha256(&bytes))
}

fn sha256(bytes: &[u8]) -> Digest {
    Digest(Sha256::digest(bytes).into())
}
