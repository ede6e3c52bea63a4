//! Following the chain: the state after a block, executing it and any unexecuted ancestors
//! (off the async threads) and fetching the blocks this validator lacks.

use super::*;

enum Path {
    /// Blocks to execute, oldest first, on top of a known state.
    Ready(Known, Vec<Arc<SealedBlock>>),
    Missing(BlockId),
    Invalid,
    /// The chain from this block does not reach the tip (it is at or below it).
    Stale,
}

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    fn path_to(&self, tip: &Tip, id: BlockId) -> Path {
        let inner = self.lock();
        let mut path = Vec::new();
        let mut cur = id;
        loop {
            if cur == tip.id {
                path.reverse();
                return Path::Ready(Known::tip(tip), path);
            }
            if let Some(known) = inner.states.get(&cur) {
                path.reverse();
                return Path::Ready(known.clone(), path);
            }
            if inner.invalid.contains(&cur) {
                return Path::Invalid;
            }
            match inner.blocks.get(&cur) {
                Some(b) if b.header.height <= tip.height => return Path::Stale,
                Some(b) => {
                    path.push(b.clone());
                    cur = b.parent_id;
                }
                None => return Path::Missing(cur),
            }
        }
    }

    /// The state after block `id`, executing it (and any unexecuted ancestors) if needed and
    /// fetching blocks we lack. `None` if the block is invalid, does not extend our chain, or
    /// `cancelled` says nobody is waiting any more.
    pub(super) async fn state_after(
        &self,
        id: BlockId,
        cancelled: impl Fn() -> bool,
    ) -> Option<Known> {
        loop {
            if cancelled() {
                return None;
            }
            let tip = self.chain.tip();
            if let Some(s) = self.state_of(&tip, &id) {
                return Some(s);
            }
            match self.path_to(&tip, id) {
                Path::Ready(mut known, path) => {
                    for block in path {
                        let bid = block.id();
                        let threads = self.config.verify_threads;
                        let (parent, chain) = (known.clone(), self.chain.clone());
                        // Verifying proofs is CPU-heavy: keep it off the async executor.
                        let result = self
                            .context
                            .child("execute")
                            .shared(true)
                            .spawn(move |_| async move {
                                execute_and_stage(&*chain, &parent, &block, threads)
                            })
                            .await;
                        match result {
                            Ok(Ok((next, outcome))) => {
                                let mut inner = self.lock();
                                inner.states.insert(bid, next.clone());
                                inner.outcomes.insert(bid, Arc::new(outcome));
                                drop(inner);
                                self.status.update(|s| s.blocks_verified += 1);
                                known = next;
                            }
                            Ok(Err(NotExecuted::Invalid(reason))) => {
                                warn!(block = %bid.short(), "rejecting block: {reason}");
                                self.lock().invalid.insert(bid);
                                self.status.update(|s| s.blocks_rejected += 1);
                                return None;
                            }
                            // Not the block's fault: abstain now, and execute it again when
                            // asked (if the store is dead for good, the node stops).
                            Ok(Err(NotExecuted::Store(e))) => {
                                warn!(block = %bid.short(), "cannot stage block, not voting on it: {e}");
                                self.status.update(|s| s.store_failures += 1);
                                return None;
                            }
                            Err(_) => return None,
                        }
                    }
                }
                Path::Missing(missing) => {
                    self.request(missing);
                    self.context.sleep(POLL).await;
                }
                Path::Invalid | Path::Stale => return None,
            }
        }
    }
}
