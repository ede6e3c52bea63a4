//! Committing finalized blocks to the [`Chain`] in height order.

use super::*;

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    /// Commits finalized blocks up to the newest finalization, fetching any we lack.
    pub(super) async fn commit_finalized(&self) {
        let Some((_, target)) = self.lock().finalized else {
            return;
        };
        let tip = self.chain.tip();
        if target == tip.id {
            return;
        }
        let mut path = Vec::new();
        {
            let mut cur = target;
            while cur != tip.id {
                let block = self.lock().blocks.get(&cur).cloned();
                match block {
                    Some(b) if b.header.height <= tip.height => return,
                    Some(b) => {
                        cur = b.parent_id;
                        path.push(b);
                    }
                    None => {
                        self.request(cur);
                        return;
                    }
                }
            }
        }
        for block in path.into_iter().rev() {
            let chain = self.chain.clone();
            let b = block.clone();
            let executed = self.executed(&block.id());
            let result = self
                .context
                .child("commit")
                .shared(true)
                .spawn(move |_| async move { chain.commit(&b, executed) })
                .await;
            match result {
                Ok(Ok(())) => {
                    let height = block.header.height;
                    info!(height, block = %block.id().short(), txs = block.txs.len(), "finalized");
                    let at = now_ms(self.context.as_ref());
                    self.status.update(|s| {
                        s.finalized_height = height;
                        s.last_finalized_ms = at;
                        s.last_block_time_ms = block.header.timestamp_ms;
                    });
                }
                Ok(Err(e)) => {
                    // A third or more of the validators finalized an invalid block, or this
                    // node's storage failed: stop here rather than diverge (the committer
                    // retries; a node whose store stopped for good exits).
                    tracing::error!(
                        height = block.header.height,
                        "cannot commit finalized block: {e}"
                    );
                    return;
                }
                Err(_) => return,
            }
        }
        let tip = self.chain.tip();
        let mut inner = self.lock();
        inner.blocks.retain(|_, b| b.header.height > tip.height);
        let live: BTreeSet<BlockId> = inner.blocks.keys().copied().collect();
        inner.states.retain(|id, _| live.contains(id));
        inner.outcomes.retain(|id, _| live.contains(id));
        inner.invalid.retain(|id| live.contains(id));
        if inner.requested.len() > MAX_PENDING_BLOCKS {
            inner.requested.clear();
        }
    }

    /// Block `id` as this validator executed it exactly as committed (its state, outcome and
    /// staged changes), if it did.
    fn executed(&self, id: &BlockId) -> Option<crate::chain::Executed> {
        let inner = self.lock();
        let known = inner.states.get(id)?;
        Some(crate::chain::Executed {
            state: known.state.clone(),
            outcome: inner.outcomes.get(id)?.clone(),
            staged: verity_store::Staged {
                id: known.staged?,
                root: known.root,
            },
        })
    }

    /// Runs forever: commits finalized blocks as they (and their ancestors) become known.
    pub(super) async fn run_committer(self) {
        loop {
            self.commit_finalized().await;
            self.context.sleep(POLL).await;
        }
    }
}
