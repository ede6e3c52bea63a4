//! Crash-safe storage in redb: blocks, the state after each block, transaction outcomes and
//! blobs (proofs, advice, receipts) addressed by hash.
//!
//! A block, the state it produced and everything derived from it are written in one redb
//! transaction, so after a crash the database holds either all of a block or none of it.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::path::Path;
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tracing::warn;
use verity_ledger::{Block, BlockHeader, ChangeSet, EntrySource, Faults, Job, SharedSource, State};
use verity_store::StateStore;
use verity_types::{BlockId, Digest, JobId, SignedTx, TxId};

use crate::error::{NodeError, StorageError};

const BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("blocks");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const TXS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("tx_outcomes");
const BLOBS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("blobs");
const BLOCK_IDS: TableDefinition<&[u8; 32], u64> = TableDefinition::new("block_ids");
/// Jobs that retired from the state (`Params::job_retention`), whole, by id: what the node
/// still serves of them (record, receipt, listings, prefixes).
const ARCHIVE: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("archived_jobs");
/// An archived job's row for listings (a summary and what listings filter on), by id: a
/// listing reads these, not whole jobs with their sources.
const ARCHIVE_ROWS: TableDefinition<&[u8; 32], &[u8]> = TableDefinition::new("archived_rows");
/// How many archived jobs ended in each state (by the state's name), for counts by state.
const ARCHIVE_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("archived_counts");
/// This node's own secrets (canary seeds): never served by the API, unlike blobs.
const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");

/// The ledger's state entries, by store key ([`verity_ledger::State::entries`]): each block
/// writes the entries it changed.
const STATE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state");
/// How many entries each table of the state holds (by table tag), kept with `STATE`: what a
/// state read from the database counts without scanning it.
const STATE_COUNTS: TableDefinition<u8, u64> = TableDefinition::new("state_counts");
/// The state store's size (operations in its log) after each block, so a store that got a
/// block ahead of this database in a crash can be rolled back to it.
const STATE_SIZES: TableDefinition<u64, u64> = TableDefinition::new("state_sizes");
/// Where formats 1 to 3 kept the whole state, rewritten every block.
const LEGACY_STATE_KEY: &str = "state";
const FORMAT_KEY: &str = "format";
/// The genesis file's digest and the genesis id computed from it.
const GENESIS_ID_KEY: &str = "genesis_id";
/// The height a node that started by state sync started at.
const SYNCED_FROM_KEY: &str = "synced_from";

/// The encoding of what this build stores (blocks, state, outcomes). Bump it with any change
/// to a stored type's borsh encoding (2: jobs store their phase, `JobPhase`;
/// 3: deliveries and corrections store `cycles` and `trace_len`; 4: the state is stored entry
/// by entry, each block writing what it changed; 5: jobs name their inline source, which the
/// state holds once per source; 6: the state keeps each table's entry count; 7: the
/// private-input loader leaves its commitment in memory, which changes the hash of every
/// wrapped program, and published programs store theirs); a database of
/// another format is refused at open with a clear error instead of failing to decode later.
pub const STORAGE_FORMAT: u32 = 7;

/// An archived job as listings see it: its summary, and the one thing they filter on that the
/// summary lacks.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ArchiveRow {
    pub summary: verity_api::JobSummary,
    pub fulfiller: Option<verity_types::Address>,
}

/// A committed block as stored.
#[derive(Debug, Clone, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct StoredBlock {
    /// The id of the block this one extends (see [`verity_ledger::Block`]).
    pub parent_id: BlockId,
    pub header: BlockHeader,
    pub txs: Vec<SignedTx>,
    pub state_root: Digest,
}

impl StoredBlock {
    pub fn to_block(&self) -> Block {
        Block {
            parent_id: self.parent_id,
            header: self.header.clone(),
            txs: self.txs.clone(),
        }
    }
}

/// A transaction's fate: the block it was in, and the ledger's reason if it was rejected.
#[derive(Debug, Clone, borsh::BorshSerialize, borsh::BorshDeserialize)]
pub struct TxOutcome {
    pub height: u64,
    pub error: Option<String>,
}

pub struct Storage {
    db: Database,
}

fn err(e: impl std::fmt::Display) -> StorageError {
    StorageError::of(e)
}

/// Stamps a new database with [`STORAGE_FORMAT`]; refuses one written in another format (a
/// database holding a state but no stamp predates the stamp: format 1).
fn check_format(meta: &mut redb::Table<&str, &[u8]>, dir: &Path) -> Result<(), StorageError> {
    let found = match meta.get(FORMAT_KEY).map_err(err)? {
        Some(v) => Some(u32::from_le_bytes(
            v.value()
                .try_into()
                .map_err(|_| err("the storage format stamp is corrupt"))?,
        )),
        None if meta.get(LEGACY_STATE_KEY).map_err(err)?.is_some() => Some(1),
        None => None,
    };
    match found {
        None => {
            let stamp = STORAGE_FORMAT.to_le_bytes();
            meta.insert(FORMAT_KEY, stamp.as_slice()).map_err(err)?;
            Ok(())
        }
        Some(f) if f == STORAGE_FORMAT => Ok(()),
        Some(f) => Err(err(format!(
            "{} was written by another version of Verity (storage format {f}; this build reads {STORAGE_FORMAT}): start from a fresh data directory",
            dir.display()
        ))),
    }
}

/// Writes state entries (`None`: removed) and keeps each table's count with them.
fn write_state<'a>(
    tx: &redb::WriteTransaction,
    entries: impl Iterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Result<(), StorageError> {
    let mut state = tx.open_table(STATE).map_err(err)?;
    let mut delta: BTreeMap<u8, i64> = BTreeMap::new();
    for (key, value) in entries {
        let Some(&tag) = key.first() else {
            return Err(err("an empty state key"));
        };
        let (was, is) = match value {
            Some(value) => (state.insert(key, value).map_err(err)?.is_some(), true),
            None => (state.remove(key).map_err(err)?.is_some(), false),
        };
        *delta.entry(tag).or_default() += i64::from(is) - i64::from(was);
    }
    let mut counts = tx.open_table(STATE_COUNTS).map_err(err)?;
    for (tag, delta) in delta.into_iter().filter(|(_, d)| *d != 0) {
        let now = counts.get(tag).map_err(err)?.map_or(0, |v| v.value());
        let next = now
            .checked_add_signed(delta)
            .ok_or_else(|| err(format!("state table {tag}'s count went below zero")))?;
        counts.insert(tag, next).map_err(err)?;
    }
    Ok(())
}

/// The database's state entries as one commit left them (a redb read transaction's view,
/// unchanged by later commits): what a node's state reads what it does not hold from.
struct StateSnapshot {
    table: redb::ReadOnlyTable<&'static [u8], &'static [u8]>,
    counts: BTreeMap<u8, u64>,
    faults: Faults,
}

impl std::fmt::Debug for StateSnapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateSnapshot")
            .field("counts", &self.counts)
            .finish()
    }
}

impl EntrySource for StateSnapshot {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.table.get(key) {
            Ok(value) => value.map(|v| v.value().to_vec()),
            Err(e) => {
                self.fail(format!("reading a state entry: {e}"));
                None
            }
        }
    }

    fn scan<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a> {
        match self.table.range::<&[u8]>((from, to)) {
            Ok(range) => Box::new(range.map_while(move |entry| match entry {
                Ok((k, v)) => Some((k.value().to_vec(), v.value().to_vec())),
                Err(e) => {
                    self.fail(format!("scanning state entries: {e}"));
                    None
                }
            })),
            Err(e) => {
                self.fail(format!("scanning state entries: {e}"));
                Box::new(std::iter::empty())
            }
        }
    }

    fn count(&self, tag: u8) -> u64 {
        self.counts.get(&tag).copied().unwrap_or(0)
    }

    fn fail(&self, why: String) {
        warn!("the state's database failed a read: {why}");
        self.faults.record(why);
    }

    fn faults(&self) -> u64 {
        self.faults.count()
    }

    fn fault(&self) -> Option<String> {
        self.faults.last()
    }
}

impl Storage {
    pub fn open(dir: &Path) -> Result<Storage, StorageError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| err(format!("cannot create {}: {e}", dir.display())))?;
        let db = Database::create(dir.join("verity.redb")).map_err(err)?;
        let tx = db.begin_write().map_err(err)?;
        {
            tx.open_table(BLOCKS).map_err(err)?;
            tx.open_table(META).map_err(err)?;
            tx.open_table(STATE).map_err(err)?;
            tx.open_table(STATE_COUNTS).map_err(err)?;
            tx.open_table(STATE_SIZES).map_err(err)?;
            tx.open_table(TXS).map_err(err)?;
            tx.open_table(BLOBS).map_err(err)?;
            tx.open_table(BLOCK_IDS).map_err(err)?;
            tx.open_table(SECRETS).map_err(err)?;
            tx.open_table(ARCHIVE).map_err(err)?;
            tx.open_table(ARCHIVE_ROWS).map_err(err)?;
            tx.open_table(ARCHIVE_COUNTS).map_err(err)?;
            check_format(&mut tx.open_table(META).map_err(err)?, dir)?;
        }
        tx.commit().map_err(err)?;
        Ok(Storage { db })
    }

    /// The state after the last committed block, if any block was ever committed: read from
    /// the database as needed ([`State::over`] a snapshot of it), not loaded.
    pub fn load_state(&self) -> Result<Option<State>, StorageError> {
        match self.state_source()? {
            Some(source) => Ok(Some(State::over(source).map_err(err)?)),
            None => Ok(None),
        }
    }

    /// A snapshot of the state entries as the last commit left them, for a state to read
    /// from; `None` before any state was written.
    pub fn state_source(&self) -> Result<Option<SharedSource>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(STATE).map_err(err)?;
        if table.is_empty().map_err(err)? {
            return Ok(None);
        }
        let counts = tx
            .open_table(STATE_COUNTS)
            .map_err(err)?
            .iter()
            .map_err(err)?
            .map(|entry| {
                let (tag, count) = entry.map_err(err)?;
                Ok((tag.value(), count.value()))
            })
            .collect::<Result<_, StorageError>>()?;
        Ok(Some(Arc::new(StateSnapshot {
            table,
            counts,
            faults: Faults::default(),
        })))
    }

    /// Whether any state was ever written (genesis at least).
    pub fn has_state(&self) -> Result<bool, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(STATE).map_err(err)?;
        Ok(!table.is_empty().map_err(err)?)
    }

    /// Writes a state a node synced instead of replaying the blocks before it (a database
    /// that holds no state yet), in one transaction: its entries, block `height` (the tip
    /// the next block extends), the state store's size, and the height it started from.
    pub fn put_synced(
        &self,
        id: &BlockId,
        block: &StoredBlock,
        entries: &[(Vec<u8>, Vec<u8>)],
        state_size: u64,
    ) -> Result<(), StorageError> {
        let height = block.header.height;
        let tx = self.db.begin_write().map_err(err)?;
        {
            write_state(
                &tx,
                entries
                    .iter()
                    .map(|(k, v)| (k.as_slice(), Some(v.as_slice()))),
            )?;
            tx.open_table(STATE_SIZES)
                .map_err(err)?
                .insert(height, state_size)
                .map_err(err)?;
            tx.open_table(BLOCKS)
                .map_err(err)?
                .insert(height, borsh::to_vec(block).map_err(err)?.as_slice())
                .map_err(err)?;
            tx.open_table(BLOCK_IDS)
                .map_err(err)?
                .insert(&id.0.0, height)
                .map_err(err)?;
            tx.open_table(META)
                .map_err(err)?
                .insert(SYNCED_FROM_KEY, height.to_le_bytes().as_slice())
                .map_err(err)?;
        }
        tx.commit().map_err(err)
    }

    /// The genesis id this directory computed for the genesis file with `digest`, if that is
    /// the one it last started with.
    pub fn genesis_id(&self, digest: &Digest) -> Result<Option<BlockId>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let meta = tx.open_table(META).map_err(err)?;
        let Some(v) = meta.get(GENESIS_ID_KEY).map_err(err)? else {
            return Ok(None);
        };
        let bytes = v.value();
        if bytes.len() != 64 || bytes[..32] != digest.0 {
            return Ok(None);
        }
        let id: [u8; 32] = bytes[32..].try_into().map_err(err)?;
        Ok(Some(BlockId(Digest(id))))
    }

    /// Remembers the genesis id of the genesis file with `digest`.
    pub fn put_genesis_id(&self, digest: &Digest, id: &BlockId) -> Result<(), StorageError> {
        let mut bytes = digest.0.to_vec();
        bytes.extend_from_slice(&id.0.0);
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(META)
            .map_err(err)?
            .insert(GENESIS_ID_KEY, bytes.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The height this node's state was synced at, if it started by state sync: it holds no
    /// block below it.
    pub fn synced_from(&self) -> Result<Option<u64>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let meta = tx.open_table(META).map_err(err)?;
        let Some(v) = meta.get(SYNCED_FROM_KEY).map_err(err)? else {
            return Ok(None);
        };
        let bytes: [u8; 8] = v
            .value()
            .try_into()
            .map_err(|_| err("the synced-from height is corrupt"))?;
        Ok(Some(u64::from_le_bytes(bytes)))
    }

    /// Writes the genesis state's entries (a database that holds no state yet).
    pub fn put_genesis_state(&self, entries: &ChangeSet) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(err)?;
        write_state(
            &tx,
            entries
                .iter()
                .filter_map(|(k, v)| Some((k.as_slice(), Some(v.as_deref()?)))),
        )?;
        tx.commit().map_err(err)
    }

    /// The state store's size after block `height` (0: genesis), as recorded.
    pub fn state_size(&self, height: u64) -> Result<Option<u64>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(STATE_SIZES).map_err(err)?;
        Ok(table.get(height).map_err(err)?.map(|v| v.value()))
    }

    /// Records the state store's size after block `height` (genesis; blocks record theirs
    /// in [`Storage::commit_block`]).
    pub fn put_state_size(&self, height: u64, size: u64) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(STATE_SIZES)
            .map_err(err)?
            .insert(height, size)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Commits a block atomically: the block (under its id as sealed, not recomputed), the
    /// state entries it changed and the state store's size after it, each transaction's
    /// outcome, the blobs it introduced, and the jobs that retired at it (archived).
    #[allow(clippy::too_many_arguments)]
    pub fn commit_block(
        &self,
        id: &BlockId,
        block: &StoredBlock,
        changes: &ChangeSet,
        state_size: u64,
        outcomes: &[(TxId, TxOutcome)],
        blobs: &[(Digest, Vec<u8>)],
        retired: &[(Job, ArchiveRow)],
    ) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(err)?;
        {
            let mut archive = tx.open_table(ARCHIVE).map_err(err)?;
            let mut rows = tx.open_table(ARCHIVE_ROWS).map_err(err)?;
            let mut counts = tx.open_table(ARCHIVE_COUNTS).map_err(err)?;
            for (job, row) in retired {
                let encoded_row = serde_json::to_vec(row).map_err(err)?;
                rows.insert(&job.id.0.0, encoded_row.as_slice())
                    .map_err(err)?;
                let bytes = borsh::to_vec(job).map_err(err)?;
                let before = archive
                    .insert(&job.id.0.0, bytes.as_slice())
                    .map_err(err)?
                    .is_some();
                // A job is archived once; counted once.
                if !before {
                    let name = job.state().name();
                    let n = counts.get(name).map_err(err)?.map_or(0, |v| v.value());
                    counts.insert(name, n + 1).map_err(err)?;
                }
            }
        }
        {
            tx.open_table(STATE_SIZES)
                .map_err(err)?
                .insert(block.header.height, state_size)
                .map_err(err)?;
            let mut blocks = tx.open_table(BLOCKS).map_err(err)?;
            blocks
                .insert(
                    block.header.height,
                    borsh::to_vec(block).map_err(err)?.as_slice(),
                )
                .map_err(err)?;
            tx.open_table(BLOCK_IDS)
                .map_err(err)?
                .insert(&id.0.0, block.header.height)
                .map_err(err)?;
            write_state(
                &tx,
                changes.iter().map(|(k, v)| (k.as_slice(), v.as_deref())),
            )?;
            let mut txs = tx.open_table(TXS).map_err(err)?;
            for (id, outcome) in outcomes {
                txs.insert(&id.0.0, borsh::to_vec(outcome).map_err(err)?.as_slice())
                    .map_err(err)?;
            }
            let mut table = tx.open_table(BLOBS).map_err(err)?;
            for (id, bytes) in blobs {
                table.insert(&id.0, bytes.as_slice()).map_err(err)?;
            }
        }
        tx.commit().map_err(err)
    }

    /// A job that retired from the state, from the archive.
    pub fn archived_job(&self, id: &JobId) -> Result<Option<Job>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ARCHIVE).map_err(err)?;
        match table.get(&id.0.0).map_err(err)? {
            Some(v) => Ok(Some(borsh::from_slice(v.value()).map_err(err)?)),
            None => Ok(None),
        }
    }

    /// Archived jobs' rows in id order after `after` (from the first without), at most `max`.
    pub fn archived_rows(
        &self,
        after: Option<&JobId>,
        max: usize,
    ) -> Result<Vec<ArchiveRow>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ARCHIVE_ROWS).map_err(err)?;
        let range = match after {
            Some(a) => table.range::<&[u8; 32]>((
                std::ops::Bound::Excluded(&a.0.0),
                std::ops::Bound::Unbounded,
            )),
            None => table.range::<&[u8; 32]>(..),
        }
        .map_err(err)?;
        range
            .take(max)
            .map(|entry| {
                let (_, v) = entry.map_err(err)?;
                serde_json::from_slice(v.value()).map_err(err)
            })
            .collect()
    }

    /// The ids of archived jobs in `lo..=hi`, in order, at most `max`.
    pub fn archived_ids(
        &self,
        lo: &JobId,
        hi: &JobId,
        max: usize,
    ) -> Result<Vec<JobId>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ARCHIVE).map_err(err)?;
        table
            .range::<&[u8; 32]>(&lo.0.0..=&hi.0.0)
            .map_err(err)?
            .take(max)
            .map(|entry| {
                let (k, _) = entry.map_err(err)?;
                Ok(JobId(Digest(*k.value())))
            })
            .collect()
    }

    /// How many archived jobs ended in each state.
    pub fn archived_counts(&self) -> Result<Vec<(String, u64)>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(ARCHIVE_COUNTS).map_err(err)?;
        table
            .iter()
            .map_err(err)?
            .map(|entry| {
                let (k, v) = entry.map_err(err)?;
                Ok((k.value().to_string(), v.value()))
            })
            .collect()
    }

    pub fn put_blob(&self, id: &Digest, bytes: &[u8]) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(BLOBS)
            .map_err(err)?
            .insert(&id.0, bytes)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// Stores a secret durably (the write is committed before this returns).
    pub fn put_secret(&self, name: &str, bytes: &[u8]) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(SECRETS)
            .map_err(err)?
            .insert(name, bytes)
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    pub fn secret(&self, name: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(SECRETS).map_err(err)?;
        Ok(table.get(name).map_err(err)?.map(|v| v.value().to_vec()))
    }

    pub fn blob(&self, id: &Digest) -> Result<Option<Vec<u8>>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(BLOBS).map_err(err)?;
        Ok(table.get(&id.0).map_err(err)?.map(|v| v.value().to_vec()))
    }

    pub fn tx_outcome(&self, id: &TxId) -> Result<Option<TxOutcome>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(TXS).map_err(err)?;
        match table.get(&id.0.0).map_err(err)? {
            Some(v) => Ok(Some(borsh::from_slice(v.value()).map_err(err)?)),
            None => Ok(None),
        }
    }

    /// Records why a transaction left the pool without being included.
    pub fn put_tx_outcome(&self, id: &TxId, outcome: &TxOutcome) -> Result<(), StorageError> {
        let tx = self.db.begin_write().map_err(err)?;
        tx.open_table(TXS)
            .map_err(err)?
            .insert(&id.0.0, borsh::to_vec(outcome).map_err(err)?.as_slice())
            .map_err(err)?;
        tx.commit().map_err(err)
    }

    /// The height of a committed block, by id.
    pub fn height_of(&self, id: &BlockId) -> Result<Option<u64>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(BLOCK_IDS).map_err(err)?;
        Ok(table.get(&id.0.0).map_err(err)?.map(|v| v.value()))
    }

    pub fn block(&self, height: u64) -> Result<Option<StoredBlock>, StorageError> {
        let tx = self.db.begin_read().map_err(err)?;
        let table = tx.open_table(BLOCKS).map_err(err)?;
        match table.get(height).map_err(err)? {
            Some(v) => Ok(Some(borsh::from_slice(v.value()).map_err(err)?)),
            None => Ok(None),
        }
    }
}

/// Opens the state store in `dir` at the database's `height`: writes genesis into a new one;
/// rolls back one a block ahead (a crash between the store's commit and the database's).
pub(crate) fn open_state_store(
    storage: &Storage,
    dir: &std::path::Path,
    height: u64,
    genesis: &ChangeSet,
) -> Result<StateStore, NodeError> {
    let store = StateStore::open(dir)?;
    let committed = store.committed()?;
    let mismatch = || NodeError::StoreMismatch {
        dir: dir.to_path_buf(),
        store: committed
            .height
            .map_or_else(|| "none (empty)".into(), |h| h.to_string()),
        blocks: height,
    };
    let store = match committed.height {
        None if height == 0 => {
            let written = store.write(0, genesis)?;
            storage.put_state_size(0, written.size)?;
            store
        }
        Some(0) if height == 0 && committed.root != genesis_root(dir, genesis)? => {
            return Err(mismatch());
        }
        Some(h) if h == height => {
            if storage.state_size(h)?.is_none() {
                storage.put_state_size(h, committed.size)?;
            }
            store
        }
        Some(h) if h == height + 1 => {
            let size = storage.state_size(height)?.ok_or_else(mismatch)?;
            drop(store);
            warn!(
                height,
                "the state store was a block ahead of the database: rolling it back"
            );
            let store = StateStore::open_at(dir, Some(size))?;
            if store.committed()?.height != Some(height) {
                return Err(mismatch());
            }
            store
        }
        _ => return Err(mismatch()),
    };
    // At the same height is not enough: the store must hold the state the tip block was
    // committed with.
    if let Some(tip) = storage.block(height)?
        && tip.state_root != store.committed()?.root
    {
        return Err(mismatch());
    }
    Ok(store)
}

/// The root of a store holding only `genesis`, computed in a scratch store beside `dir`. No
/// block names the genesis state's root, so a store found at height 0 is checked against it:
/// one written from another genesis (a start interrupted before the database was stamped with
/// its own) must be refused, not taken. Costs a genesis write, only while no block exists.
fn genesis_root(dir: &std::path::Path, genesis: &ChangeSet) -> Result<Digest, NodeError> {
    let scratch = dir.with_extension("genesis-check");
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)?;
    }
    let root = StateStore::open(&scratch)?.write(0, genesis)?.root;
    std::fs::remove_dir_all(&scratch)?;
    Ok(root)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_of_another_format_is_refused_with_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        // A new database is stamped, and opens again.
        drop(Storage::open(dir.path()).unwrap());
        assert!(Storage::open(dir.path()).is_ok());

        // One from before the stamp (a state, no format): format 1.
        let old = tempfile::tempdir().unwrap();
        {
            let db = Database::create(old.path().join("verity.redb")).unwrap();
            let tx = db.begin_write().unwrap();
            tx.open_table(META)
                .unwrap()
                .insert(LEGACY_STATE_KEY, b"old state".as_slice())
                .unwrap();
            tx.commit().unwrap();
        }
        let e = Storage::open(old.path()).err().unwrap().to_string();
        assert!(
            e.contains("storage format 1") && e.contains("fresh data directory"),
            "{e}"
        );
    }

    /// No block names the genesis root, so a state store found at height 0 is compared with
    /// the genesis the node starts from: one left by a start from another genesis is refused.
    #[test]
    fn a_state_store_of_another_genesis_is_refused_before_the_first_block() {
        let dir = tempfile::tempdir().unwrap();
        let storage = Storage::open(dir.path()).unwrap();
        let store_dir = dir.path().join("state");
        let genesis = |v: u8| ChangeSet::from([(vec![1, 2, 3], Some(vec![v; 8]))]);
        // First start: genesis written at height 0; a restart with it opens.
        drop(open_state_store(&storage, &store_dir, 0, &genesis(1)).unwrap());
        drop(open_state_store(&storage, &store_dir, 0, &genesis(1)).unwrap());
        // Another genesis at height 0: refused, naming both heights; nothing left behind.
        match open_state_store(&storage, &store_dir, 0, &genesis(2)) {
            Err(NodeError::StoreMismatch { store, blocks, .. }) => {
                assert_eq!((store.as_str(), blocks), ("0", 0))
            }
            other => panic!("expected a mismatch, got {:?}", other.err()),
        }
        assert!(!store_dir.with_extension("genesis-check").exists());
        assert!(open_state_store(&storage, &store_dir, 0, &genesis(1)).is_ok());
    }
}
