//! The store's own thread: a commonware runtime holding the QMDB database, serving requests
//! one at a time (so the database, which mutations consume and return, has one owner).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::Sender;

use commonware_cryptography::Sha256;
use commonware_parallel::Sequential;
use commonware_runtime::buffer::paged::{CacheRef, page_size};
use commonware_runtime::{BLOB_PAGE_SIZE, Runner as _, Supervisor as _, tokio as runtime};
use commonware_storage::journal::contiguous::variable::Config as JournalConfig;
use commonware_storage::merkle::Location;
use commonware_storage::merkle::full::Config as MerkleConfig;
use commonware_storage::mmr;
use commonware_storage::qmdb::any::unordered::variable::Update;
use commonware_storage::qmdb::current::VariableConfig;
use commonware_storage::qmdb::current::batch::MerkleizedBatch;
use commonware_storage::qmdb::current::unordered::variable::Db as Qmdb;
use commonware_storage::qmdb::floor::Proportional;
use commonware_storage::qmdb::sync::engine::Config as SyncConfig;
use commonware_storage::qmdb::sync::{Request as SourceRequest, Source, Target};
use commonware_storage::translator::EightCap;
use commonware_utils::bitmap::Readable as _;
use commonware_utils::range::NonEmptyRange;
use commonware_utils::{NZU64, NZUsize};
use std::num::NonZeroU64;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};

use commonware_codec::{Decode as _, Encode as _};

use crate::{
    CHUNK, Committed, Fetch, MAX_SYNC_ANSWER_BYTES, MAX_SYNC_OPS, MAX_VALUE_BYTES, Parent, Proved,
    Staged, StagedId, StoreError, SyncPoint, SyncRequest, SyncTarget, to_digest,
};

pub(crate) type Key = commonware_cryptography::sha256::Digest;
type Db = Qmdb<mmr::Family, runtime::Context, Key, Vec<u8>, Sha256, EightCap, CHUNK, Sequential>;
type Batch = Arc<MerkleizedBatch<mmr::Family, Key, Update<Key, Vec<u8>>, CHUNK, Sequential>>;
pub(crate) type Proof =
    commonware_storage::qmdb::current::unordered::proof::constant::KeyValueProof<
        mmr::Family,
        Key,
        CHUNK,
    >;

/// An operation of the store's log, as state sync carries it.
pub(crate) type Op =
    commonware_storage::qmdb::any::unordered::variable::Operation<mmr::Family, Key, Vec<u8>>;
type SyncResponse = commonware_storage::qmdb::sync::Response<mmr::Family, Op, Key>;
pub(crate) type Witness =
    commonware_storage::qmdb::current::proof::OpsRootWitness<mmr::Family, Key>;

type Reply<T> = Sender<Result<T, StoreError>>;

pub(crate) enum Request {
    Committed(Reply<Committed>),
    Stage {
        parent: Parent,
        height: u64,
        writes: Vec<(Key, Option<Vec<u8>>)>,
        reply: Reply<Staged>,
    },
    Commit {
        id: StagedId,
        reply: Reply<Committed>,
    },
    Discard {
        id: StagedId,
        reply: Reply<()>,
    },
    Get {
        key: Key,
        reply: Reply<Option<Vec<u8>>>,
    },
    Prove {
        key: Key,
        reply: Reply<Option<Proved>>,
    },
    Prune {
        reply: Reply<()>,
    },
    SyncPoint(Reply<SyncPoint>),
    ServeSync {
        request: SyncRequest,
        reply: Reply<Vec<u8>>,
    },
    HoldsExactly {
        entries: Vec<(Key, Vec<u8>)>,
        reply: Reply<()>,
    },
    ActiveKeys(Reply<u64>),
    Flush {
        reply: Reply<()>,
    },
    Close {
        reply: Sender<()>,
    },
}

/// The database's partitions and buffers. Page size, section and blob sizes are fixed for the
/// life of a store (the runtime refuses or misreads a store opened with others).
/// How a log operation's key (a digest: nothing to bound) and value (a byte vector of at most
/// [`MAX_VALUE_BYTES`]) are decoded.
type OperationCodec = ((), (commonware_codec::RangeCfg<usize>, ()));

fn operation_codec() -> OperationCodec {
    ((), ((0..=MAX_VALUE_BYTES).into(), ()))
}

fn config() -> VariableConfig<EightCap, OperationCodec, Sequential> {
    let page_cache = CacheRef::new(page_size(BLOB_PAGE_SIZE), NZUsize!(16_384));
    VariableConfig {
        merkle_config: MerkleConfig {
            journal_partition: "state-mmr-journal".into(),
            metadata_partition: "state-mmr-metadata".into(),
            items_per_blob: NZU64!(65_536),
            write_buffer: NZUsize!(1 << 20),
            replay_buffer: NZUsize!(1 << 20),
            strategy: Sequential,
            page_cache: page_cache.clone(),
        },
        journal_config: JournalConfig {
            partition: "state-log".into(),
            items_per_section: NZU64!(4_096),
            compression: None,
            codec_config: operation_codec(),
            page_cache,
            write_buffer: NZUsize!(1 << 20),
            replay_buffer: NZUsize!(1 << 20),
        },
        grafted_metadata_partition: "state-grafted".into(),
        translator: EightCap,
        init_cache: Some(NZUsize!(1 << 16)),
        init_buffer: NZUsize!(1 << 20),
        init_concurrency: (),
    }
}

fn db_error(e: impl std::fmt::Display) -> StoreError {
    StoreError::Database(e.to_string())
}

/// How the store's thread gets its database.
pub(crate) enum Opening {
    /// The one in the directory (created if none), rolled back to its last commit of at most
    /// this many operations if given.
    Open(Option<u64>),
    /// Built by QMDB's state sync from `fetch` (whoever answers the requests: untrusted,
    /// every batch is checked against `target.ops_root`).
    Sync {
        target: SyncTarget,
        fetch: UnboundedSender<Fetch>,
    },
}

/// Gets the database in `dir` as `opening` says and serves `inbox` until the store is
/// dropped; `opened` hears whether it got one.
pub(crate) fn run(
    dir: PathBuf,
    opening: Opening,
    inbox: UnboundedReceiver<Request>,
    opened: Sender<Result<(), StoreError>>,
) {
    let config = runtime::Config::new()
        .with_worker_threads(1)
        .with_storage_directory(dir);
    runtime::Runner::new(config).start(|context| async move {
        let db = match opening {
            Opening::Open(size) => Db::init(
                context.child("state"),
                self::config(),
                size.map(Location::new),
            )
            .await
            .map_err(db_error),
            Opening::Sync { target, fetch } => sync_db(context, target, fetch).await,
        };
        match db {
            Ok(db) => {
                let _ = opened.send(Ok(()));
                serve(db, inbox).await;
            }
            Err(e) => {
                let _ = opened.send(Err(e));
            }
        }
    });
}

async fn sync_db(
    context: runtime::Context,
    target: SyncTarget,
    fetch: UnboundedSender<Fetch>,
) -> Result<Db, StoreError> {
    let (lower, size) = (Location::new(target.lower), Location::new(target.size));
    if !lower.is_valid() || !size.is_valid() {
        return Err(StoreError::Sync(format!(
            "the target's range {}..{} is not a log range",
            target.lower, target.size
        )));
    }
    let range = NonEmptyRange::new(lower..size).map_err(|_| {
        StoreError::Sync(format!(
            "the target's range {}..{} is empty",
            target.lower, target.size
        ))
    })?;
    let config = SyncConfig::<Db, Remote> {
        context: context.child("state"),
        source: Remote { fetch },
        target: Target::new(
            commonware_cryptography::sha256::Digest(target.ops_root.0),
            range,
        ),
        // What a node serves a syncing node at once (`verity_node::SYNC_SLOTS`).
        max_outstanding_requests: NZUsize!(2),
        fetch_batch_size: NZU64!(MAX_SYNC_OPS),
        apply_batch_size: NZU64!(1024),
        db_config: self::config(),
        update_rx: None,
        finish_rx: None,
        reached_target_tx: None,
    };
    commonware_storage::qmdb::sync::sync(config)
        .await
        .map_err(|e| StoreError::Sync(e.to_string()))
}

/// The far end of a state sync: hands each request to whoever holds the `Fetch` receiver
/// and decodes the bytes it answers with (bounded by the request; the engine then checks
/// them against the target root).
struct Remote {
    fetch: UnboundedSender<Fetch>,
}

impl Source for Remote {
    type Family = mmr::Family;
    type Digest = Key;
    type Op = Op;
    type Error = StoreError;

    async fn serve(
        &self,
        request: SourceRequest<mmr::Family>,
    ) -> commonware_storage::qmdb::sync::source::Result<Self> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let wanted = SyncRequest::from(request);
        self.fetch
            .send(Fetch {
                request: wanted,
                reply,
            })
            .map_err(|_| StoreError::Sync("nobody fetches for the sync".into()))?;
        let bytes = answer
            .await
            .map_err(|_| StoreError::Sync("the fetcher hung up".into()))?
            .map_err(StoreError::Sync)?;
        let max_ops = usize::try_from(request.max_ops().get()).unwrap_or(usize::MAX);
        let response = SyncResponse::decode_cfg(bytes, &(max_ops, operation_codec()))
            .map_err(|e| StoreError::Sync(format!("undecodable answer to {wanted:?}: {e}")))?;
        Ok((response, None))
    }
}

impl From<SourceRequest<mmr::Family>> for SyncRequest {
    fn from(r: SourceRequest<mmr::Family>) -> SyncRequest {
        match r {
            SourceRequest::Operations {
                size,
                start,
                max_ops,
            } => SyncRequest::Operations {
                size: *size,
                start: *start,
                max_ops: max_ops.get(),
            },
            SourceRequest::Boundary { size, start } => SyncRequest::Boundary {
                size: *size,
                start: *start,
            },
        }
    }
}

/// Answers a state-sync request from this store's log: at most [`MAX_SYNC_OPS`] operations,
/// and fewer while the answer would be over [`MAX_SYNC_ANSWER_BYTES`] (entries can be large:
/// a published program is up to 512 KiB), down to one. The engine takes a short batch and
/// asks for the rest.
async fn serve_sync(db: &Db, request: SyncRequest) -> Result<Vec<u8>, StoreError> {
    let mut request = request;
    loop {
        let answer = serve_sync_once(db, request).await?;
        match &mut request {
            SyncRequest::Operations { max_ops, .. }
                if answer.len() > MAX_SYNC_ANSWER_BYTES && *max_ops > 1 =>
            {
                *max_ops = (*max_ops).min(MAX_SYNC_OPS) / 2;
            }
            _ => return Ok(answer),
        }
    }
}

async fn serve_sync_once(db: &Db, request: SyncRequest) -> Result<Vec<u8>, StoreError> {
    let request = match request {
        SyncRequest::Operations {
            size,
            start,
            max_ops,
        } => SourceRequest::Operations {
            size: Location::new(size),
            start: Location::new(start),
            max_ops: NonZeroU64::new(max_ops.min(MAX_SYNC_OPS))
                .ok_or_else(|| StoreError::Unavailable("asked for no operations".into()))?,
        },
        SyncRequest::Boundary { size, start } => SourceRequest::Boundary {
            size: Location::new(size),
            start: Location::new(start),
        },
    };
    let (size, start) = (request.size(), request.start());
    if !size.is_valid() || start >= size || size > db.bounds().end || start < db.bounds().start {
        return Err(StoreError::Unavailable(format!(
            "operations {}..{} are not in this store's log ({}..{})",
            *start,
            *size,
            *db.bounds().start,
            *db.bounds().end
        )));
    }
    // The range was checked above: a failure here is the store's own, not the request's.
    let (response, _) = Source::serve(db, request)
        .await
        .map_err(|e| StoreError::Sync(format!("cannot serve {request:?}: {e}")))?;
    Ok(response.encode().to_vec())
}

/// Keys the database holds now: the activity bitmap has one bit per active key, plus one for
/// the last commit.
fn active_keys(db: &Db) -> u64 {
    let bitmap = db.bitmap();
    (bitmap.ones_iter_from(bitmap.pruned_bits()).count() as u64).saturating_sub(1)
}

/// Whether the database's current state is exactly `entries`: each holds its value, and
/// nothing else is active.
async fn holds_exactly(db: &Db, entries: Vec<(Key, Vec<u8>)>) -> Result<(), StoreError> {
    let active = active_keys(db);
    if active != entries.len() as u64 {
        return Err(StoreError::Mismatch(format!(
            "the store holds {active} entries, not {}",
            entries.len()
        )));
    }
    for chunk in entries.chunks(1024) {
        let keys: Vec<&Key> = chunk.iter().map(|(k, _)| k).collect();
        let values = db.get_many(&keys).await.map_err(db_error)?;
        for ((key, want), got) in chunk.iter().zip(values) {
            if got.as_ref() != Some(want) {
                return Err(StoreError::Mismatch(format!(
                    "the entry under {key} is not the store's"
                )));
            }
        }
    }
    Ok(())
}

async fn sync_point(db: &Db) -> Result<SyncPoint, StoreError> {
    let committed = committed(db).await?;
    let witness = db.ops_root_witness().await.map_err(db_error)?;
    Ok(SyncPoint {
        committed,
        target: SyncTarget {
            ops_root: to_digest(&db.ops_root()),
            lower: *db.sync_boundary(),
            size: committed.size,
        },
        witness: witness.encode().to_vec(),
    })
}

async fn committed(db: &Db) -> Result<Committed, StoreError> {
    let height = db.get_metadata().await.map_err(db_error)?;
    Ok(Committed {
        root: to_digest(&db.root()),
        height: height
            .and_then(|h| <[u8; 8]>::try_from(h.as_slice()).ok())
            .map(u64::from_le_bytes),
        size: *db.bounds().end,
    })
}

/// Staged batches, by id; each one's parent stays here until it is committed or dropped.
struct Staging {
    batches: BTreeMap<StagedId, Batch>,
    next: u64,
}

impl Staging {
    async fn stage(
        &mut self,
        db: &Db,
        parent: Parent,
        height: u64,
        writes: Vec<(Key, Option<Vec<u8>>)>,
    ) -> Result<Staged, StoreError> {
        let staged = parent.staged.and_then(|id| self.batches.get(&id));
        let mut batch = match staged {
            Some(batch) => batch.new_batch::<Sha256>(),
            // The committed state; or a parent committed, or dropped because an identical
            // batch was committed instead (a block staged twice): either way the database
            // must now hold exactly the parent.
            None => {
                let actual = to_digest(&db.root());
                if actual != parent.root {
                    return Err(match parent.staged {
                        Some(id) => StoreError::NoSuchBatch(id.0),
                        None => StoreError::BaseMoved {
                            expected: parent.root,
                            actual,
                        },
                    });
                }
                db.new_batch()
            }
        };
        for (key, value) in writes {
            batch = batch.write(key, value);
        }
        // The block's height is the commit's metadata: part of the root, and what a restart
        // reads back to know which block the store holds.
        let merkleized = batch
            .merkleize(db, Some(height.to_le_bytes().to_vec()), &mut Proportional)
            .await
            .map_err(db_error)?;
        self.next += 1;
        let id = StagedId(self.next);
        let root = to_digest(&merkleized.root());
        self.batches.insert(id, merkleized);
        Ok(Staged { id, root })
    }
}

async fn serve(mut db: Db, mut inbox: UnboundedReceiver<Request>) {
    // Where the last prune found the floor: the next one prunes up to there.
    let mut prunable = Location::new(0);
    let mut staging = Staging {
        batches: BTreeMap::new(),
        next: 0,
    };
    while let Some(request) = inbox.recv().await {
        match request {
            Request::Committed(reply) => {
                let _ = reply.send(committed(&db).await);
            }
            Request::Stage {
                parent,
                height,
                writes,
                reply,
            } => {
                let _ = reply.send(staging.stage(&db, parent, height, writes).await);
            }
            Request::Commit { id, reply } => {
                let Some(batch) = staging.batches.remove(&id) else {
                    let _ = reply.send(Err(StoreError::NoSuchBatch(id.0)));
                    continue;
                };
                // Checked first: a failed apply would consume the database.
                if let Err(e) = db.validate_batch(&batch) {
                    let _ = reply.send(Err(db_error(e)));
                    continue;
                }
                db = match apply(db, batch).await {
                    Ok(db) => db,
                    Err(e) => {
                        let _ = reply.send(Err(e));
                        return;
                    }
                };
                staging.batches.retain(|_, b| db.validate_batch(b).is_ok());
                let _ = reply.send(committed(&db).await);
            }
            Request::Discard { id, reply } => {
                let found = staging.batches.remove(&id).is_some();
                let _ = reply.send(found.then_some(()).ok_or(StoreError::NoSuchBatch(id.0)));
            }
            Request::Get { key, reply } => {
                let _ = reply.send(db.get(&key).await.map_err(db_error));
            }
            Request::Prove { key, reply } => {
                let _ = reply.send(prove(&db, key).await);
            }
            Request::Prune { reply } => {
                let floor = std::mem::replace(&mut prunable, db.sync_boundary());
                db = match db.prune(floor).await {
                    Ok(db) => db,
                    Err(e) => {
                        let _ = reply.send(Err(db_error(e)));
                        return;
                    }
                };
                let _ = reply.send(Ok(()));
            }
            Request::SyncPoint(reply) => {
                let _ = reply.send(sync_point(&db).await);
            }
            Request::Flush { reply } => {
                db = match db.sync().await {
                    Ok(db) => db,
                    Err(e) => {
                        let _ = reply.send(Err(db_error(e)));
                        return;
                    }
                };
                let _ = reply.send(Ok(()));
            }
            Request::ServeSync { request, reply } => {
                let _ = reply.send(serve_sync(&db, request).await);
            }
            Request::HoldsExactly { entries, reply } => {
                let _ = reply.send(holds_exactly(&db, entries).await);
            }
            Request::ActiveKeys(reply) => {
                let _ = reply.send(Ok(active_keys(&db)));
            }
            Request::Close { reply } => {
                // Everything committed is durable already; a sync spares the next open its
                // recovery.
                let _ = db.sync().await;
                let _ = reply.send(());
                return;
            }
        }
    }
}

async fn apply(db: Db, batch: Batch) -> Result<Db, StoreError> {
    let db = db.apply_batch(batch).await.map_err(db_error)?;
    db.commit().await.map_err(db_error)
}

async fn prove(db: &Db, key: Key) -> Result<Option<Proved>, StoreError> {
    let Some(value) = db.get(&key).await.map_err(db_error)? else {
        return Ok(None);
    };
    let proof = db.key_value_proof(key).await.map_err(db_error)?;
    Ok(Some(Proved {
        value,
        proof: proof.encode().to_vec(),
        at: committed(db).await?,
    }))
}
