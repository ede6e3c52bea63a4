//! Providers' heartbeats. A staked provider announces itself to the node it talks to; the node
//! checks it and shares it with the other validators, which check it the same way, so every
//! node of the network says the same providers are online (the provider reaches one node).

use verity_api::{Heartbeat, heartbeat_message};

use crate::api::views::online_window;
use crate::node::Node;

/// Why a heartbeat is not taken.
#[derive(Debug, thiserror::Error)]
pub enum HeartbeatRefused {
    #[error("heartbeat signature does not match the provider")]
    BadSignature,
    #[error("only a staked provider sends heartbeats")]
    NotStaked,
    #[error("heartbeat height {height} is not current (head is {head})")]
    NotCurrent { height: u64, head: u64 },
}

impl Node {
    /// Checks a heartbeat and records it; `true` if it is newer than this node's record of the
    /// provider (worth sharing).
    pub fn accept_heartbeat(&self, hb: &Heartbeat) -> Result<bool, HeartbeatRefused> {
        if !hb
            .provider
            .verify(&heartbeat_message(&hb.provider, hb.height), &hb.signature)
        {
            return Err(HeartbeatRefused::BadSignature);
        }
        let state = self.state();
        // Only staked providers are tracked, so fresh keys cannot grow the heartbeat table.
        if state
            .stakes
            .get(&hb.provider)
            .is_none_or(|s| s.provider == 0)
        {
            return Err(HeartbeatRefused::NotStaked);
        }
        let head = state.height;
        if hb.height + online_window(self) < head || hb.height > head + 1 {
            return Err(HeartbeatRefused::NotCurrent {
                height: hb.height,
                head,
            });
        }
        Ok(self.record_heartbeat(hb.provider, hb.height))
    }

    /// A heartbeat sent to this node's API: accepted, then shared with the other validators.
    pub fn heartbeat(&self, hb: &Heartbeat) -> Result<(), HeartbeatRefused> {
        if self.accept_heartbeat(hb)?
            && let Some(share) = self.share.get()
            && let Ok(note) = serde_json::to_vec(hb)
        {
            share(note);
        }
        Ok(())
    }

    /// A heartbeat another validator shared: taken if it checks out, never shared on (every
    /// validator hears the sharer directly).
    pub(crate) fn heartbeat_shared(&self, note: &[u8]) {
        match serde_json::from_slice::<Heartbeat>(note) {
            Ok(hb) => {
                if let Err(e) = self.accept_heartbeat(&hb) {
                    tracing::debug!("a shared heartbeat was not taken: {e}");
                }
            }
            Err(e) => tracing::debug!("a shared note is not a heartbeat: {e}"),
        }
    }
}
