//! What a validator can tell about consensus, for `verity status` and the API.

use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use verity_types::Address;

/// Views back from the newest one within which a validator counts as voting.
pub const RECENT_VIEWS: u64 = 20;
/// No finalization for this long is a stall worth a warning in the log.
pub const STALL_AFTER_MS: u64 = 10_000;

/// One validator as this node's consensus saw it vote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Voter {
    pub validator: Address,
    /// The newest view this node saw it vote in (notarize, nullify or finalize).
    pub last_view: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsensusStatus {
    /// Validators in the set.
    pub validators: usize,
    /// Every validator, with the newest view it was seen voting in (which of them vote now is
    /// derived from it and `current_view`: [`ConsensusStatus::voting`]).
    pub voters: Vec<Voter>,
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
    /// Blocks this node could not stage in its state store (no verdict on them).
    #[serde(default)]
    pub store_failures: u64,
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

impl ConsensusStatus {
    /// Validators that voted within [`RECENT_VIEWS`] of the current view, and those that did
    /// not (never seen, or silent since).
    pub fn voting(&self) -> (Vec<&Voter>, Vec<&Voter>) {
        self.voters.iter().partition(|v| self.is_voting(v))
    }

    /// Whether `voter` voted within [`RECENT_VIEWS`] of the current view.
    pub fn is_voting(&self, voter: &Voter) -> bool {
        voter
            .last_view
            .is_some_and(|seen| self.current_view.saturating_sub(seen) <= RECENT_VIEWS)
    }

    /// Validators whose votes we saw in the last [`RECENT_VIEWS`] views (ourselves included).
    pub fn validators_seen(&self) -> usize {
        self.voters.iter().filter(|v| self.is_voting(v)).count()
    }

    /// Records a vote by validator number `signer` in `view`.
    pub(crate) fn saw_vote(&mut self, signer: u32, view: u64) {
        if let Some(v) = self.voters.get_mut(signer as usize) {
            v.last_view = Some(v.last_view.map_or(view, |seen| seen.max(view)));
        }
        self.current_view = self.current_view.max(view);
    }

    /// What to log if no block has been finalized for [`STALL_AFTER_MS`] by `now_ms`
    /// (`since_ms`: when this node started, for a chain that has not finalized here yet).
    pub fn stall(&self, now_ms: u64, since_ms: u64) -> Option<String> {
        let last = self.last_finalized_ms.max(since_ms);
        let stalled = now_ms.saturating_sub(last);
        if stalled < STALL_AFTER_MS {
            return None;
        }
        let (voting, silent) = self.voting();
        let quorum = self.validators - (self.validators.saturating_sub(1)) / 3;
        let silent: Vec<String> = silent
            .iter()
            .map(|v| match v.last_view {
                Some(view) => format!("{} (last vote in view {view})", v.validator.short()),
                None => format!("{} (never seen)", v.validator.short()),
            })
            .collect();
        Some(format!(
            "no block finalized for {} s (height {}, view {}): {} of {} validators voted in the last {RECENT_VIEWS} views, {quorum} needed; silent: {}",
            stalled / 1000,
            self.finalized_height,
            self.current_view,
            voting.len(),
            self.validators,
            if silent.is_empty() {
                "none".to_string()
            } else {
                silent.join(", ")
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use verity_types::Keypair;

    use super::*;

    fn four() -> ConsensusStatus {
        ConsensusStatus {
            validators: 4,
            voters: (0..4u8)
                .map(|i| Voter {
                    validator: Keypair::from_seed([i; 32]).address(),
                    last_view: None,
                })
                .collect(),
            ..ConsensusStatus::default()
        }
    }

    #[test]
    fn validators_that_stop_voting_stop_counting_as_seen() {
        let mut s = four();
        for signer in 0..4 {
            s.saw_vote(signer, 5);
        }
        assert_eq!(s.validators_seen(), 4);
        // Two die; the other two keep voting (nullify) as views time out.
        for view in 6..=30 {
            s.saw_vote(0, view);
            s.saw_vote(1, view);
        }
        assert_eq!(s.validators_seen(), 2);
        let (voting, silent) = s.voting();
        assert_eq!((voting.len(), silent.len()), (2, 2));
        assert_eq!(silent[0].last_view, Some(5));
        // A signer number outside the set marks nobody as voting (the view still moves).
        s.saw_vote(9, 40);
        assert_eq!(s.current_view, 40);
    }

    #[test]
    fn a_stall_is_reported_with_who_is_silent() {
        let mut s = four();
        s.last_finalized_ms = 1_000;
        s.finalized_height = 12;
        s.saw_vote(0, 40);
        s.saw_vote(1, 40);
        s.saw_vote(2, 3);
        assert_eq!(s.stall(1_000 + STALL_AFTER_MS - 1, 0), None);
        let report = s.stall(31_000, 0).unwrap();
        assert!(
            report.starts_with("no block finalized for 30 s (height 12, view 40)"),
            "{report}"
        );
        assert!(
            report.contains("2 of 4 validators voted") && report.contains("3 needed"),
            "{report}"
        );
        assert!(
            report.contains("(last vote in view 3)") && report.contains("(never seen)"),
            "{report}"
        );
        // A node that has just started is not stalled yet.
        assert_eq!(s.stall(31_000, 30_000), None);
    }
}
