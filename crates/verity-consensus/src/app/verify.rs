//! Voting: a proposed block is executed on its parent's state before this validator votes.

use super::*;

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    pub(super) async fn verify_block(
        &self,
        ctx: Context<Sha256Digest, PublicKey>,
        payload: Sha256Digest,
        response: &oneshot::Sender<bool>,
    ) -> Option<bool> {
        let id = from_consensus(&payload);
        let waiting_since = self.context.current();
        let block = loop {
            if response.is_closed() {
                return None;
            }
            if let Some(b) = self.lock().blocks.get(&id).cloned() {
                break b;
            }
            if self.lock().invalid.contains(&id) {
                return Some(false);
            }
            // The proposer sends its block to everyone; fetch it if it does not arrive soon.
            if self
                .context
                .current()
                .duration_since(waiting_since)
                .unwrap_or_default()
                > REFETCH_AFTER
            {
                self.request(id);
            }
            self.context.sleep(POLL).await;
        };
        let reject = |why: &str| {
            warn!(block = %id.short(), "rejecting block: {why}");
            self.lock().invalid.insert(id);
            self.status.update(|s| s.blocks_rejected += 1);
            Some(false)
        };
        if block.parent_id != from_consensus(&ctx.parent.1) {
            return reject("it does not extend the parent consensus named");
        }
        if block.header.proposer != address_of(&ctx.leader) {
            return reject("its proposer is not this view's leader");
        }
        let now = now_ms(self.context.as_ref());
        if block.header.timestamp_ms > now.saturating_add(MAX_FUTURE_DRIFT.as_millis() as u64) {
            return reject(&format!(
                "its timestamp {} is more than {MAX_FUTURE_DRIFT:?} ahead of this validator's clock ({now})",
                block.header.timestamp_ms
            ));
        }
        let accepted = self
            .state_after(id, || response.is_closed())
            .await
            .is_some();
        if response.is_closed() {
            return None;
        }
        Some(accepted)
    }
}
