//! The ledger's authenticated state: every state entry in commonware's QMDB
//! (`qmdb::current`), written block by block.
//!
//! Why QMDB: a block costs what it changes (an append to an operation log and a Merkle update
//! of that append), never a pass over the whole state; its root proves a key's *current*
//! value; batches can be staged on top of unapplied batches, as consensus executes a block on
//! an unfinalized parent; commits are durable and a restart reopens the log.
//!
//! QMDB is async and runs in a commonware runtime. The ledger is synchronous, so
//! [`StateStore`] runs the database on a thread of its own and answers blocking calls; call it
//! from a blocking thread, never from an async executor's.
//!
//! Keys are SHA-256 of the ledger's store keys (uniform, so QMDB's in-memory index of 8-byte
//! key prefixes almost never collides); values are the entries' encodings. The root, the
//! chunk size and the floor policy are part of what every node must agree on: changing any of
//! them changes every root.

mod error;
mod worker;

use std::path::Path;
use std::sync::mpsc as reply;

use commonware_codec::Decode as _;
use commonware_cryptography::{Hasher as _, Sha256};
use commonware_storage::qmdb::any::unordered::variable::{Operation, Update};
use tokio::sync::mpsc;
use verity_types::Digest;

pub use error::StoreError;
use worker::{Opening, Proof, Request};

/// Bitmap chunk size (bytes) of the `current` database: part of the root, fixed forever.
const CHUNK: usize = 32;

/// The largest entry the store takes. A ledger entry holds at most what a block carried (a
/// block is at most 4 MiB on the wire, `verity_consensus::MAX_BLOCK_BYTES`) plus its own
/// bookkeeping, so this is far above any entry the ledger can write: a block whose changes
/// were refused here would stop every validator alike. It bounds reading the store's own log.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// The digests a proof may carry, as commonware bounds them for one element.
const MAX_PROOF_DIGESTS: usize = commonware_storage::merkle::MAX_PROOF_DIGESTS_PER_ELEMENT;

/// A block's writes staged on a parent (the last commit, or another staged batch), with the
/// root the store would have once it is committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staged {
    pub id: StagedId,
    pub root: Digest,
}

/// What a batch is staged on: the committed state whose root is `root`, or a staged batch
/// (whose root is `root`). The store refuses to stage on a state whose root is not `root`,
/// so a caller whose idea of the base is stale (the store moved under it) gets an error, never
/// a root computed on the wrong base.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub root: Digest,
    pub staged: Option<StagedId>,
}

impl Parent {
    /// The committed state, which the caller believes has `root`.
    pub fn committed(root: Digest) -> Parent {
        Parent { root, staged: None }
    }
}

impl From<Staged> for Parent {
    fn from(s: Staged) -> Parent {
        Parent {
            root: s.root,
            staged: Some(s.id),
        }
    }
}

/// A staged batch, by the order it was staged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StagedId(u64);

/// What the store holds after its last commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    pub root: Digest,
    /// The height the committer named ([`StateStore::stage`]); `None` for an empty store.
    pub height: Option<u64>,
    /// Operations in the log (a position a restart can roll back to).
    pub size: u64,
}

/// A committed value with its proof, and the commit the proof is against (read together:
/// the store cannot move between them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proved {
    pub value: Vec<u8>,
    /// Encoded; check it with [`verify`].
    pub proof: Vec<u8>,
    pub at: Committed,
}

/// The most operations one state-sync answer carries (a server clamps requests to it).
pub const MAX_SYNC_OPS: u64 = 1024;
/// The size a state-sync answer is kept under by carrying fewer operations (one operation,
/// with its proof, may exceed it: an entry is at most [`MAX_VALUE_BYTES`]).
pub const MAX_SYNC_ANSWER_BYTES: usize = 16 << 20;

/// Where a state sync aims: the root of the store's operation log (QMDB's sync checks every
/// batch it fetches against it; the state root combines it with the activity bitmap) and the
/// range of the log to fetch. Untrusted on its own: after the sync, the store's state root
/// must be one the caller trusts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncTarget {
    pub ops_root: Digest,
    /// The first operation a synced store needs (QMDB's sync boundary).
    pub lower: u64,
    /// Operations in the log at the commit to sync to.
    pub size: u64,
}

/// The last commit and what a sync to it would fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncPoint {
    pub committed: Committed,
    pub target: SyncTarget,
    /// What ties the target's log root to the commit's state root (QMDB's `OpsRootWitness`,
    /// encoded): check it with [`verify_ops_root`] before fetching anything.
    pub witness: Vec<u8>,
}

/// One request of a state sync, as it travels between nodes: operations `start..` (at most
/// `max_ops`) of the log as it was at `size` operations, with a proof against that log's
/// root; or the one operation at `start` with the Merkle nodes pinned there (where the
/// synced log begins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncRequest {
    Operations { size: u64, start: u64, max_ops: u64 },
    Boundary { size: u64, start: u64 },
}

/// A request of a running sync ([`StateStore::sync`]) for the caller to fetch: answer
/// `reply` with the bytes another store's [`StateStore::serve_sync`] gave, or why not.
#[derive(Debug)]
pub struct Fetch {
    pub request: SyncRequest,
    pub reply: tokio::sync::oneshot::Sender<Result<Vec<u8>, String>>,
}

/// The state store: one QMDB database in one directory, served on its own thread.
pub struct StateStore {
    requests: mpsc::UnboundedSender<Request>,
    worker: Option<std::thread::JoinHandle<()>>,
}

impl StateStore {
    /// Opens (or creates) the store in `dir` at its last commit. Only one store may hold a
    /// directory at a time: a second open waits for the first to close.
    pub fn open(dir: &Path) -> Result<StateStore, StoreError> {
        Self::open_at(dir, None)
    }

    /// Opens the store in `dir` rolled back to its last commit of at most `size` operations
    /// (what [`Committed::size`] said then): later commits are removed for good. A node whose
    /// block database is behind the store after a crash reopens it this way.
    pub fn open_at(dir: &Path, size: Option<u64>) -> Result<StateStore, StoreError> {
        Self::start(dir, Opening::Open(size))
    }

    /// Builds the store in `dir` (which must hold none) by QMDB's state sync to `target`,
    /// fetching through `fetch` (see [`Fetch`]), and opens it. Blocks until the log is
    /// complete. Every batch is checked against `target.ops_root`, so a lying peer can only
    /// make the sync fail; whether the target itself is the right one is the caller's to
    /// check, on [`StateStore::committed`]'s root afterwards.
    pub fn sync(
        dir: &Path,
        target: SyncTarget,
        fetch: mpsc::UnboundedSender<Fetch>,
    ) -> Result<StateStore, StoreError> {
        Self::start(dir, Opening::Sync { target, fetch })
    }

    /// Starts the store's thread on `dir`, which gets its database as `opening` says, and
    /// waits until it has one.
    fn start(dir: &Path, opening: Opening) -> Result<StateStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| StoreError::Io(format!("cannot create {}: {e}", dir.display())))?;
        let (requests, inbox) = mpsc::unbounded_channel();
        let (opened, ready) = reply::channel();
        let dir = dir.to_path_buf();
        let worker = std::thread::Builder::new()
            .name("state-store".into())
            .stack_size(16 << 20)
            .spawn(move || worker::run(dir, opening, inbox, opened))
            .map_err(|e| StoreError::Io(format!("cannot start the store's thread: {e}")))?;
        ready.recv().map_err(|_| StoreError::Closed)??;
        Ok(StateStore {
            requests,
            worker: Some(worker),
        })
    }

    /// The last commit, with the target a state sync to it would use.
    pub fn sync_point(&self) -> Result<SyncPoint, StoreError> {
        self.call(Request::SyncPoint)
    }

    /// Answers a state-sync request of another store (encoded, with its proof), from this
    /// store's log: [`StoreError::Unavailable`] if the log no longer (or does not yet) hold
    /// what it asks for.
    pub fn serve_sync(&self, request: SyncRequest) -> Result<Vec<u8>, StoreError> {
        self.call(|reply| Request::ServeSync { request, reply })
    }

    /// Checks that the store's committed state is exactly `entries` (store key, value): each
    /// holds its value and the store holds no other key. What a node that synced the store
    /// checks the plain entries it was sent against.
    pub fn holds_exactly<'a>(
        &self,
        entries: impl IntoIterator<Item = (&'a Vec<u8>, &'a Vec<u8>)>,
    ) -> Result<(), StoreError> {
        let entries = entries
            .into_iter()
            .map(|(k, v)| (hash_key(k), v.clone()))
            .collect();
        self.call(|reply| Request::HoldsExactly { entries, reply })
    }

    /// Makes everything committed durable now, metadata included (commits are durable as they
    /// are made; a synced store is written by QMDB's sync, which this completes).
    pub fn flush(&self) -> Result<(), StoreError> {
        self.call(|reply| Request::Flush { reply })
    }

    /// How many keys the committed state holds.
    pub fn active_keys(&self) -> Result<u64, StoreError> {
        self.call(Request::ActiveKeys)
    }

    fn call<T>(
        &self,
        request: impl FnOnce(reply::Sender<Result<T, StoreError>>) -> Request,
    ) -> Result<T, StoreError> {
        let (tx, rx) = reply::channel();
        self.requests
            .send(request(tx))
            .map_err(|_| StoreError::Closed)?;
        rx.recv().map_err(|_| StoreError::Closed)?
    }

    /// The last commit: root, height, size.
    pub fn committed(&self) -> Result<Committed, StoreError> {
        self.call(Request::Committed)
    }

    /// Stages `changes` (store key, new value or `None` to delete) as the block at `height`,
    /// on `parent`: a staged batch, or the last commit. A parent no longer staged is still fine
    /// if the last commit's root is its root (it was committed, or a batch with the same writes
    /// was); otherwise the parent's root must be the last commit's ([`StoreError::BaseMoved`]).
    /// Nothing is written until [`StateStore::commit`]; the returned root is the root the store
    /// will have then.
    pub fn stage<'a>(
        &self,
        parent: Parent,
        height: u64,
        changes: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    ) -> Result<Staged, StoreError> {
        let mut writes = Vec::new();
        for (key, value) in changes {
            if let Some(v) = value
                && v.len() > MAX_VALUE_BYTES
            {
                return Err(StoreError::TooLarge(v.len()));
            }
            writes.push((hash_key(key), value.clone()));
        }
        self.call(|reply| Request::Stage {
            parent,
            height,
            writes,
            reply,
        })
    }

    /// Applies a staged batch (and its staged ancestors not yet applied) and makes it durable.
    /// Staged batches that do not descend from it can no longer be committed, and are dropped.
    pub fn commit(&self, id: StagedId) -> Result<Committed, StoreError> {
        self.call(|reply| Request::Commit { id, reply })
    }

    /// Stages and commits in one call: the block at `height` on the last commit.
    pub fn write<'a>(
        &self,
        height: u64,
        changes: impl IntoIterator<Item = (&'a Vec<u8>, &'a Option<Vec<u8>>)>,
    ) -> Result<Committed, StoreError> {
        let root = self.committed()?.root;
        let staged = self.stage(Parent::committed(root), height, changes)?;
        self.commit(staged.id)
    }

    /// Drops a staged batch (a block consensus did not finalize).
    pub fn discard(&self, id: StagedId) -> Result<(), StoreError> {
        self.call(|reply| Request::Discard { id, reply })
    }

    /// The committed value under a store key.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        let key = hash_key(key);
        self.call(|reply| Request::Get { key, reply })
    }

    /// The committed value under a store key with its proof against the committed root, or
    /// `None` if the key holds nothing.
    pub fn prove(&self, key: &[u8]) -> Result<Option<Proved>, StoreError> {
        let key = hash_key(key);
        self.call(|reply| Request::Prove { key, reply })
    }

    /// Drops operations the store no longer needs to prove current values, bounding the log
    /// to a few times the live state: those below QMDB's inactivity floor as the *previous*
    /// call found it, so every commit since then can still be reopened ([`StateStore::open_at`]
    /// needs the commit's floor). Call it every so many blocks.
    pub fn prune(&self) -> Result<(), StoreError> {
        self.call(|reply| Request::Prune { reply })
    }
}

impl StateStore {
    /// Resolves once the store's thread has stopped: after a failed write (which consumes
    /// the database), a panic, or [`StateStore::close`]. Every call fails with
    /// [`StoreError::Closed`] from then on, so a node that sees this can only stop.
    pub async fn stopped(&self) {
        self.requests.closed().await
    }

    /// Closes the store (everything committed is durable already); later calls fail with
    /// [`StoreError::Closed`]. Dropping the store closes it too.
    pub fn close(&self) {
        let (tx, rx) = reply::channel();
        if self.requests.send(Request::Close { reply: tx }).is_ok() {
            let _ = rx.recv();
        }
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        self.close();
        if let Some(worker) = self.worker.take() {
            let _ = worker.join();
        }
    }
}

/// The QMDB key of a store key.
fn hash_key(key: &[u8]) -> worker::Key {
    Sha256::hash(&[key])
}

/// Checks that `value` is the current value under store key `key` in the state whose root is
/// `root`, by `proof` as [`StateStore::prove`] encoded it. Needs no database: what a light
/// client holding a certified root does.
pub fn verify(key: &[u8], value: &[u8], proof: &[u8], root: &Digest) -> bool {
    let Ok(proof) = Proof::decode_cfg(proof.to_vec(), &MAX_PROOF_DIGESTS) else {
        return false;
    };
    let root = commonware_cryptography::sha256::Digest(root.0);
    let update: Update<worker::Key, Vec<u8>> = Update {
        0: hash_key(key),
        1: value.to_vec(),
    };
    let operation: Operation<commonware_storage::mmr::Family, worker::Key, Vec<u8>> =
        Operation::Update(update);
    proof.verify::<Sha256, _>(operation, &root)
}

/// Checks that `state_root` commits to the operation log whose root is `ops_root`, by
/// `witness` as [`StateStore::sync_point`] encoded it. With a trusted state root, this makes
/// the log root, and the log's size (which the log root commits to), trusted too, so a sync
/// fetches nothing of a log the state root does not name. Needs no database.
pub fn verify_ops_root(ops_root: &Digest, witness: &[u8], state_root: &Digest) -> bool {
    let Ok(witness) = worker::Witness::decode_cfg(witness.to_vec(), &()) else {
        return false;
    };
    witness.verify::<Sha256>(
        &commonware_cryptography::sha256::Digest(ops_root.0),
        &commonware_cryptography::sha256::Digest(state_root.0),
    )
}

fn to_digest(d: &commonware_cryptography::sha256::Digest) -> Digest {
    Digest(d.0)
}
