//! Building a block when this validator leads a view.

use super::*;

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    /// Builds a block on the parent `ctx` names, once the chain's pace allows, and keeps it
    /// (with the state after it) for the relay and the vote.
    pub(super) async fn propose_block(
        &self,
        ctx: Context<Sha256Digest, PublicKey>,
        cancelled: impl Fn() -> bool,
    ) -> Option<BlockId> {
        let parent_id = from_consensus(&ctx.parent.1);
        let parent = self.state_after(parent_id, cancelled).await?;
        let parent_state = parent.state.clone();
        self.pace(&parent_state).await;
        #[allow(unused_mut)]
        let mut timestamp_ms = now_ms(self.context.as_ref()).max(parent_state.timestamp_ms);
        #[cfg(feature = "mocks")]
        if self.config.faulty(Fault::FutureTimestamps) {
            timestamp_ms += 10 * 365 * 24 * 3600 * 1000;
        }
        let header = BlockHeader {
            chain_id: parent_state.chain_id.clone(),
            height: parent_state.height + 1,
            timestamp_ms,
            parent: parent.root,
            proposer: self.config.key.address(),
        };
        let txs = self.pick_transactions(parent_id, &parent_state);
        #[allow(unused_mut)]
        let (next, mut kept) = self.dry_run(parent_id, &parent, &header, txs).await?;
        #[cfg(feature = "mocks")]
        if self.config.faulty(Fault::ForgedTransactions) {
            kept.push(forged_transaction(&header, &self.config.key));
        }
        let block = Block {
            parent_id,
            header,
            txs: kept,
        }
        .seal();
        let id = block.id();
        {
            let mut inner = self.lock();
            inner.blocks.insert(id, Arc::new(block));
            inner.states.insert(id, next);
        }
        self.status.update(|s| s.blocks_proposed += 1);
        Some(id)
    }

    /// Paces the chain: no child sooner than `block_interval` after its parent.
    async fn pace(&self, parent_state: &State) {
        let earliest = parent_state.timestamp_ms + self.config.block_interval.as_millis() as u64;
        let now = now_ms(self.context.as_ref());
        if now < earliest {
            // Never wait more than the interval plus the drift validators accept: a parent
            // further ahead than that (finalized by a faulty majority, or a clock jump here)
            // must not stall this leader.
            let wait = Duration::from_millis(earliest - now)
                .min(self.config.block_interval + MAX_FUTURE_DRIFT);
            self.context.sleep(wait).await;
        }
    }

    /// Mempool transactions for a child of `parent_id`: not already in an unfinalized block
    /// between the tip and the parent, in nonce order per signer, within the block limits.
    fn pick_transactions(&self, parent_id: BlockId, parent_state: &State) -> Vec<SignedTx> {
        // Transactions already in the unfinalized blocks between the tip and the parent.
        let tip = self.chain.tip();
        let mut included = BTreeSet::new();
        {
            let inner = self.lock();
            let mut cur = parent_id;
            while cur != tip.id {
                let Some(b) = inner.blocks.get(&cur) else {
                    break;
                };
                included.extend(b.txs.iter().map(SignedTx::id));
                cur = b.parent_id;
            }
        }
        let max_txs = parent_state.params.max_block_txs as usize;
        let mut size = 0usize;
        let mut txs: Vec<SignedTx> = Vec::new();
        let mut candidates = self.chain.candidates(max_txs.saturating_mul(2));
        // Gossip can deliver one account's transactions out of order: nonce order per signer,
        // arrival order across signers.
        let mut first_seen: BTreeMap<Address, usize> = BTreeMap::new();
        for (i, tx) in candidates.iter().enumerate() {
            first_seen.entry(tx.tx.signer).or_insert(i);
        }
        candidates.sort_by_key(|tx| (first_seen[&tx.tx.signer], tx.tx.nonce));
        for tx in candidates {
            if txs.len() >= max_txs || included.contains(&tx.id()) {
                continue;
            }
            let n = tx.to_bytes().len();
            if size + n > MAX_BLOCK_BYTES - 64 * 1024 {
                break;
            }
            size += n;
            txs.push(tx);
        }
        txs
    }

    /// Runs `txs` on the parent's state (off the async threads) and keeps those that can be
    /// included; returns the state after the kept ones, its changes staged on the parent's.
    async fn dry_run(
        &self,
        parent_id: BlockId,
        parent: &Known,
        header: &BlockHeader,
        txs: Vec<SignedTx>,
    ) -> Option<(Known, Vec<SignedTx>)> {
        // Dry run: keep every transaction that can be included, accepted or rejected (a
        // rejected one pays its fee and spends its nonce, so it can never execute later), and
        // drop those that cannot (they changed nothing, so the state after the kept ones is
        // the same state).
        let threads = self.config.verify_threads;
        let (parent_for_run, header_for_run, txs_for_run, chain) = (
            parent.clone(),
            header.clone(),
            txs.clone(),
            self.chain.clone(),
        );
        let run = self
            .context
            .child("dry_run")
            .shared(true)
            .spawn(move |_| async move {
                let mut next = (*parent_for_run.state).clone();
                let outcome =
                    apply_block_parallel(&mut next, &header_for_run, &txs_for_run, threads)
                        .map_err(|e| e.to_string())?;
                // The transactions left out changed nothing, so these are the kept ones'.
                let staged = chain
                    .stage(
                        parent_for_run.parent(),
                        header_for_run.height,
                        &outcome.changes,
                    )
                    .map_err(|e| format!("cannot stage its changes: {e}"))?;
                let next = Known {
                    state: Arc::new(next),
                    root: staged.root,
                    staged: Some(staged.id),
                };
                Ok::<_, String>((next, outcome))
            })
            .await
            .ok()?;
        let (next, outcome) = match run {
            Ok(r) => r,
            Err(e) => {
                warn!("cannot build on {}: {e}", parent_id.short());
                return None;
            }
        };
        let mut kept = Vec::with_capacity(txs.len());
        for (tx, result) in txs.into_iter().zip(outcome.tx_results) {
            match result {
                Ok(()) => kept.push(tx),
                // Its predecessor has not reached us yet: keep it for a later block.
                Err(TxError::BadNonce { expected, got }) if got > expected => {}
                Err(e) if e.invalidates_block() => {
                    debug!(tx = %tx.id().short(), "dropping transaction: {e}");
                    self.chain.discard(&tx, &e.to_string());
                }
                Err(_) => kept.push(tx),
            }
        }
        Some((next, kept))
    }

    /// Builds a block as the leader would, returning it with its parent's state (for the
    /// byzantine test validator, which signs it itself).
    #[cfg(feature = "mocks")]
    pub(crate) async fn propose_for_test(
        &self,
        ctx: Context<Sha256Digest, PublicKey>,
    ) -> Option<(Block, Known)> {
        let parent = from_consensus(&ctx.parent.1);
        let id = self.propose_block(ctx, || false).await?;
        let tip = self.chain.tip();
        let parent_state = self.state_of(&tip, &parent)?;
        let block = self.lock().blocks.get(&id)?.block().clone();
        Some((block, parent_state))
    }

    /// Executes a block built here on `parent` and records it with the state after it; `false`
    /// if it does not execute.
    #[cfg(feature = "mocks")]
    pub(crate) fn remember(&self, block: Block, parent: &Known) -> bool {
        let Ok((after, _)) = execute_and_stage(&*self.chain, parent, &block, 1) else {
            return false;
        };
        let block = block.seal();
        let id = block.id();
        let mut inner = self.lock();
        inner.blocks.insert(id, Arc::new(block));
        inner.states.insert(id, after);
        true
    }
}

/// A transfer with a signature that does not verify (for [`Fault::ForgedTransactions`]).
#[cfg(feature = "mocks")]
fn forged_transaction(header: &BlockHeader, key: &Keypair) -> SignedTx {
    let mut tx = verity_types::Tx {
        chain_id: header.chain_id.clone(),
        signer: key.address(),
        nonce: u64::MAX,
        body: verity_types::TxBody::Transfer {
            to: key.address(),
            amount: 1,
        },
    }
    .sign(key);
    tx.signature.0[0] ^= 1;
    tx
}
