//! Certified provenance: a job's provenance record checked against the ledger while trusting
//! no node. The record must be in a state root (its proof); that root must be named by the
//! next block's header; and that block, or one built on it (linked by parent ids), must carry
//! a finalization certificate signed by a quorum of a validator set the caller trusts (the
//! genesis file's). The node only relays data; every link is checked here.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use verity_consensus::certificate::{self, Certified};
use verity_ledger::{Block, Provenance};
use verity_types::{Address, BlockId, Digest, JobId};

use crate::{CertifiedBlock, Client, ClientError, verify_provenance};

/// Blocks past the one naming the root to look through for a certificate: a BFT node keeps
/// one per finalized view, and may have finalized some blocks only as ancestors of another.
pub const SEARCH_BLOCKS: u64 = 32;
/// How long the whole check may wait for blocks to be made (the one naming the root is
/// usually the next): a slow or lying node cannot hold the caller longer.
const BLOCKS_WAIT: Duration = Duration::from_secs(30);

/// Who the check trusts: a chain id and its validator set (a genesis file's).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedValidators {
    pub chain_id: String,
    pub validators: Vec<Address>,
}

/// A provenance record with everything that ties it to a block the validators finalized.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CertifiedProvenance {
    pub chain_id: String,
    pub record: Provenance,
    pub state_root: Digest,
    /// The block whose header names the state root.
    pub block: BlockId,
    pub block_height: u64,
    /// The certified block (this block or a descendant) and who certified it.
    pub certified_height: u64,
    pub certified_view: u64,
    pub signers: usize,
    pub validators: usize,
}

/// A state root tied to a block the validators finalized ([`Client::certified_root`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertifiedRoot {
    pub state_root: Digest,
    /// The block whose header names the root (the one after the state's).
    pub block: BlockId,
    pub block_height: u64,
    /// That block's parent: the block whose state the root is.
    pub parent_id: BlockId,
    /// The certified block (this block or a descendant) and who certified it.
    pub certified_height: u64,
    pub certified_view: u64,
    pub signers: usize,
}

/// Why a record could not be certified. Every variant but `Node` means the node served
/// something that does not check out (or did not keep a certificate): ask another node.
#[derive(Debug, thiserror::Error)]
pub enum ProvenanceError {
    #[error(transparent)]
    Node(#[from] ClientError),
    #[error("the node answered with the record of job {got}, not {want}")]
    OtherJob { want: JobId, got: JobId },
    #[error("the record is not in the state root the node gave: its proof fails")]
    ProofFails,
    #[error("block {height} is for chain `{got}`, not `{want}`")]
    OtherChain {
        height: u64,
        got: String,
        want: String,
    },
    #[error("block {height} does not name the state root {root}")]
    RootNotNamed { height: u64, root: Digest },
    #[error("block {height}: {reason}")]
    BadBlock { height: u64, reason: String },
    #[error("block {height} does not extend block {parent}")]
    NotLinked { height: u64, parent: u64 },
    #[error("block {height}'s certificate: {reason}")]
    BadCertificate { height: u64, reason: String },
    #[error(
        "no finalization certificate on blocks {first}..{last}: this node did not keep one; ask another node"
    )]
    NoCertificate { first: u64, last: u64 },
}

impl Client {
    /// Job `id`'s provenance record, certified by a quorum of `trusted`: see the module docs.
    /// Waits for blocks to be made (the one after the record's state, usually) for at most
    /// 30 s in all.
    pub async fn certified_provenance(
        &self,
        id: &JobId,
        trusted: &TrustedValidators,
    ) -> Result<CertifiedProvenance, ProvenanceError> {
        let view = self.provenance(id).await?;
        if view.record.job_id != *id {
            return Err(ProvenanceError::OtherJob {
                want: *id,
                got: view.record.job_id,
            });
        }
        if !verify_provenance(&view) {
            return Err(ProvenanceError::ProofFails);
        }
        let root = self
            .certified_root(view.height, view.state_root, trusted)
            .await?;
        Ok(CertifiedProvenance {
            chain_id: trusted.chain_id.clone(),
            record: view.record,
            state_root: view.state_root,
            block: root.block,
            block_height: root.block_height,
            certified_height: root.certified_height,
            certified_view: root.certified_view,
            signers: root.signers,
            validators: trusted.validators.len(),
        })
    }

    /// Checks that `root` is the state root after block `height` of `trusted`'s chain: block
    /// `height + 1`, hashed here, names it, and it or a block built on it carries a
    /// finalization certificate of a quorum of `trusted`. Waits for blocks to be made for
    /// at most 30 s in all.
    pub async fn certified_root(
        &self,
        height: u64,
        root: Digest,
        trusted: &TrustedValidators,
    ) -> Result<CertifiedRoot, ProvenanceError> {
        let deadline = Instant::now() + BLOCKS_WAIT;
        let (block, block_id, decoded) = self.block_after(height, deadline).await?;
        let named_by = block.height;
        if decoded.header.chain_id != trusted.chain_id {
            return Err(ProvenanceError::OtherChain {
                height: named_by,
                got: decoded.header.chain_id,
                want: trusted.chain_id.clone(),
            });
        }
        if decoded.header.height != named_by || decoded.header.parent != root {
            return Err(ProvenanceError::RootNotNamed {
                height: named_by,
                root,
            });
        }
        let (certified_height, certified) =
            self.finality(trusted, block, block_id, deadline).await?;
        Ok(CertifiedRoot {
            state_root: root,
            block: block_id,
            block_height: named_by,
            parent_id: decoded.parent_id,
            certified_height,
            certified_view: certified.view,
            signers: certified.signers,
        })
    }

    /// The first certificate on `block` or the blocks built on it, each linked to the one
    /// before by its parent id; returns its height and what it establishes.
    async fn finality(
        &self,
        trusted: &TrustedValidators,
        mut block: CertifiedBlock,
        mut id: BlockId,
        deadline: Instant,
    ) -> Result<(u64, Certified), ProvenanceError> {
        let first = block.height;
        // Counted here, not read from the node's heights: a node serving an endless chain of
        // uncertified blocks cannot keep the check going.
        for _ in 0..SEARCH_BLOCKS {
            if let Some(encoded) = &block.certificate {
                let bad = |reason: String| ProvenanceError::BadCertificate {
                    height: block.height,
                    reason,
                };
                let bytes = BASE64
                    .decode(encoded)
                    .map_err(|_| bad("not base64".into()))?;
                let certified =
                    certificate::verify(&trusted.chain_id, &trusted.validators, &bytes, id)
                        .map_err(|e| bad(e.to_string()))?;
                return Ok((block.height, certified));
            }
            let (next, next_id, decoded) = self.block_after(block.height, deadline).await?;
            if decoded.parent_id != id {
                return Err(ProvenanceError::NotLinked {
                    height: next.height,
                    parent: block.height,
                });
            }
            (block, id) = (next, next_id);
        }
        Err(ProvenanceError::NoCertificate {
            first,
            last: first.saturating_add(SEARCH_BLOCKS),
        })
    }

    /// The block after `height` from the node (waiting for it to be made), decoded, with its
    /// id computed here (the node's `id` and `height` are not trusted).
    async fn block_after(
        &self,
        height: u64,
        deadline: Instant,
    ) -> Result<(CertifiedBlock, BlockId, Block), ProvenanceError> {
        let height = height.checked_add(1).ok_or(ProvenanceError::BadBlock {
            height,
            reason: "no block follows it".into(),
        })?;
        let block = self.wait_block(height, deadline).await?;
        let bad = |reason: String| ProvenanceError::BadBlock { height, reason };
        let bytes = BASE64
            .decode(&block.block)
            .map_err(|_| bad("not base64".into()))?;
        let decoded = Block::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        if decoded.header.height != height || block.height != height {
            return Err(bad(format!(
                "the node sent block {} for it",
                decoded.header.height
            )));
        }
        Ok((block, decoded.id(), decoded))
    }

    /// Block `height` from the node, waiting for it to be made until `deadline`.
    async fn wait_block(
        &self,
        height: u64,
        deadline: Instant,
    ) -> Result<CertifiedBlock, ClientError> {
        loop {
            match self.certified_block(height).await {
                Ok(block) => return Ok(block),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}
