//! Block relay and backfill: blocks proposers send, and blocks fetched by id from peers (with
//! some ancestors). Both are self-authenticating: an id is the hash of its block.

use super::*;

/// Messages on the sync channel.
#[derive(BorshSerialize, BorshDeserialize)]
enum SyncMessage {
    /// "Send me block `id` (and some of its ancestors)."
    Request(BlockId),
    /// Encoded blocks, child first.
    Response(Vec<Vec<u8>>),
}

impl<E, C, S> App<E, C, S>
where
    E: Clock + Spawner + Send + Sync + 'static,
    C: Chain,
    S: Sender<PublicKey = PublicKey>,
{
    /// Asks every peer for a block, at most once per [`REFETCH_AFTER`].
    pub(super) fn request(&self, id: BlockId) {
        let now = self.context.current();
        {
            let mut inner = self.lock();
            if let Some(at) = inner.requested.get(&id)
                && now.duration_since(*at).unwrap_or_default() < REFETCH_AFTER
            {
                return;
            }
            inner.requested.insert(id, now);
        }
        debug!(block = %id.short(), "fetching block from peers");
        let msg = borsh::to_vec(&SyncMessage::Request(id)).expect("encoding cannot fail");
        let _ = self.sync_out.clone().send(Recipients::All, msg, false);
    }

    /// Remembers a block we were sent, if it could still matter. Solicited blocks (`sender`
    /// is `None`) answer a request (or are the parent of one): they are taken only if we
    /// asked, however far behind we are (catching up after a long outage walks back from a
    /// finalized block). Unsolicited ones are proposals from `sender`: taken only from their
    /// proposer, near the tip, and only so many per proposer.
    pub(super) fn insert_block(&self, block: SealedBlock, sender: Option<Address>) -> bool {
        let solicited = sender.is_none();
        let tip_height = self.chain.tip().height;
        let h = block.header.height;
        if h <= tip_height || (!solicited && h > tip_height + MAX_PROPOSAL_LEAD) {
            return false;
        }
        let id = block.id();
        let mut inner = self.lock();
        if inner.blocks.contains_key(&id) {
            return false;
        }
        if solicited {
            let wanted = inner.requested.remove(&id).is_some()
                || inner.blocks.values().any(|b| b.parent_id == id);
            if !wanted {
                return false;
            }
        } else {
            // A proposal comes from its proposer, and each proposer gets a small share.
            let proposer = block.header.proposer;
            if sender != Some(proposer) || inner.blocks.len() >= MAX_PENDING_BLOCKS {
                return false;
            }
            let held = inner
                .blocks
                .values()
                .filter(|b| b.header.proposer == proposer)
                .count();
            if held >= MAX_PENDING_PER_PROPOSER {
                debug!(proposer = %proposer.short(), "dropping a proposal: too many pending from this proposer");
                return false;
            }
        }
        inner.blocks.insert(id, Arc::new(block));
        true
    }

    /// Runs forever: takes blocks proposers send.
    pub(super) async fn run_block_receiver(
        self,
        mut rx: impl commonware_p2p::Receiver<PublicKey = PublicKey>,
    ) {
        while let Ok((peer, msg)) = rx.recv().await {
            match Block::from_bytes(msg.as_ref()) {
                Ok(block) => {
                    self.insert_block(block.seal(), Some(address_of(&peer)));
                }
                Err(e) => debug!(?peer, "ignoring block: {e}"),
            }
        }
    }

    /// Runs forever: answers block requests and takes responses.
    pub(super) async fn run_sync(
        self,
        mut rx: impl commonware_p2p::Receiver<PublicKey = PublicKey>,
    ) {
        while let Ok((peer, msg)) = rx.recv().await {
            let Ok(message) = borsh::from_slice::<SyncMessage>(msg.as_ref()) else {
                debug!(?peer, "ignoring malformed sync message");
                continue;
            };
            match message {
                SyncMessage::Request(id) => {
                    let blocks = self.ancestry(id);
                    if blocks.is_empty() {
                        continue;
                    }
                    let msg = borsh::to_vec(&SyncMessage::Response(blocks)).expect("encoding");
                    let _ = self
                        .sync_out
                        .clone()
                        .send(Recipients::One(peer), msg, false);
                }
                SyncMessage::Response(blocks) => {
                    for bytes in blocks.into_iter().take(SYNC_BATCH) {
                        if let Ok(block) = Block::from_bytes(&bytes) {
                            self.insert_block(block.seal(), None);
                        }
                    }
                }
            }
        }
    }

    /// Block `id` and up to [`SYNC_BATCH`] - 1 of its ancestors, encoded, child first.
    pub(super) fn ancestry(&self, id: BlockId) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        let mut size = 0;
        let mut next = Some(id);
        while let Some(cur) = next {
            if out.len() >= SYNC_BATCH {
                break;
            }
            let block = self
                .lock()
                .blocks
                .get(&cur)
                .map(|b| b.block().clone())
                .or_else(|| self.chain.block_by_id(&cur));
            let Some(block) = block else { break };
            let bytes = block.to_bytes();
            size += bytes.len();
            if size > MAX_BLOCK_BYTES && !out.is_empty() {
                break;
            }
            out.push(bytes);
            next = (block.header.height > 1).then_some(block.parent_id);
        }
        out
    }
}
