//! What a validator can tell about consensus, for `verity status` and the API.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// Validators in the set.
    pub validators: usize,
    /// Validators whose votes we saw in the last 20 views (including ourselves).
    pub validators_seen: usize,
    /// Height of the newest block this node has finalized and applied.
    pub finalized_height: u64,
    /// View of the newest finalization consensus reported.
    pub finalized_view: u64,
    /// Newest view we saw votes for.
    pub current_view: u64,
    /// Header time of the newest applied block, and when (local clock) we applied it.
    pub last_block_time_ms: u64,
    pub last_finalized_ms: u64,
    pub blocks_proposed: u64,
    pub blocks_verified: u64,
    pub blocks_rejected: u64,
    pub nullified_views: u64,
    /// Equivocation evidence consensus reported.
    pub faults_seen: u64,
}

/// Shared, cheaply cloned view of a validator's [`ConsensusStatus`].
#[derive(Clone, Default)]
pub struct StatusHandle(Arc<Mutex<ConsensusStatus>>);

impl StatusHandle {
    pub fn get(&self) -> ConsensusStatus {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    pub(crate) fn update(&self, f: impl FnOnce(&mut ConsensusStatus)) {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
