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
use commonware_storage::translator::EightCap;
use commonware_utils::{NZU64, NZUsize};
use tokio::sync::mpsc::UnboundedReceiver;

use commonware_codec::Encode as _;

use crate::{
    CHUNK, Committed, MAX_VALUE_BYTES, Parent, Proved, Staged, StagedId, StoreError, to_digest,
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
    Close {
        reply: Sender<()>,
    },
}

/// The database's partitions and buffers. Page size, section and blob sizes are fixed for the
/// life of a store (the runtime refuses or misreads a store opened with others).
/// How a log operation's key (a digest: nothing to bound) and value (a byte vector of at most
/// [`MAX_VALUE_BYTES`]) are decoded.
type OperationCodec = ((), (commonware_codec::RangeCfg<usize>, ()));

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
            codec_config: ((), ((0..=MAX_VALUE_BYTES).into(), ())),
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

/// Opens the database in `dir` and serves `inbox` until the store is dropped.
pub(crate) fn run(
    dir: PathBuf,
    size: Option<u64>,
    inbox: UnboundedReceiver<Request>,
    opened: Sender<Result<(), StoreError>>,
) {
    let config = runtime::Config::new()
        .with_worker_threads(1)
        .with_storage_directory(dir);
    runtime::Runner::new(config).start(|context| async move {
        match Db::init(
            context.child("state"),
            self::config(),
            size.map(Location::new),
        )
        .await
        {
            Ok(db) => {
                let _ = opened.send(Ok(()));
                serve(db, inbox).await;
            }
            Err(e) => {
                let _ = opened.send(Err(db_error(e)));
            }
        }
    });
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
