//! A key space of the state (accounts, stakes, jobs, ...) that remembers what a block changed.
//!
//! A table holds its entries in one of two ways, behind the same methods:
//! - **In memory**: every entry in a persistent ordered map (`imbl::OrdMap`, a B+ tree whose
//!   nodes are shared between copies). Genesis, a decoded state and the ledger's tests build
//!   these.
//! - **Over a source** ([`EntrySource`]): a read-only snapshot of a store that holds the
//!   table's entries as of some block (a node's database), with the entries changed since in
//!   the same ordered map on top (the overlay, where `None` marks an entry removed since). A
//!   read the overlay cannot answer goes to the source once per copy of the state, and is
//!   kept, so it can be handed out as a reference like any other. A node's state is this: it
//!   holds in memory what blocks touched lately, not the whole state.
//!
//! Copying the state to execute a block on it costs nothing up front either way, and a block
//! pays only for the entries it reads and the nodes it changes. Every way to change an entry
//! goes through a method here, which keeps the entry's value from before the first change.
//! [`Table::drain_changes`] then yields only the entries whose value really differs, so a store
//! writes what a block changed and nothing else (a handler that looked at an entry mutably and
//! left it alone writes nothing).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ops::{Bound, Index, RangeBounds};
use std::sync::Arc;

use elsa::sync::FrozenBTreeMap;
use imbl::OrdMap;

use borsh::{BorshDeserialize, BorshSerialize};
use verity_types::{Address, DecodeError, Digest, JobId, ProgramHash};

/// A read-only snapshot of a store of state entries (store keys as [`store_key`] writes them,
/// values in their canonical encoding): what a state reads the entries it does not hold from.
///
/// Reads are infallible so that the state transition stays a plain function; a source that
/// cannot read an entry (or finds one that does not decode) records it with [`fail`] and
/// answers as if absent, and whoever executed a block on it must check that [`faults`] did
/// not grow meanwhile before trusting the result (`apply_block` does: the block is then
/// `StateUnreadable`, this node's failure and no verdict on the block). Counting, rather than
/// a flag, lets a later execution on the same snapshot succeed once reads do.
///
/// [`fail`]: EntrySource::fail
/// [`faults`]: EntrySource::faults
pub trait EntrySource: Send + Sync + std::fmt::Debug {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// The entries whose keys lie between the bounds, in key order.
    fn scan<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a>;
    /// How many entries the table tagged `tag` holds.
    fn count(&self, tag: u8) -> u64;
    /// Records that an entry could not be read or decoded.
    fn fail(&self, why: String);
    /// How many reads failed so far.
    fn faults(&self) -> u64;
    /// The last failure recorded, if any.
    fn fault(&self) -> Option<String>;
}

/// The failures a source recorded: how many, and the last.
#[derive(Debug, Default)]
pub struct Faults(std::sync::Mutex<(u64, Option<String>)>);

impl Faults {
    pub fn record(&self, why: String) {
        let mut f = self.0.lock().unwrap_or_else(|e| e.into_inner());
        f.0 += 1;
        f.1 = Some(why);
    }

    pub fn count(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub fn last(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).1.clone()
    }
}

/// A source shared by every table of a state, and by its copies.
pub type SharedSource = Arc<dyn EntrySource>;

/// Entries held in memory, as a store would hold them: the in-memory [`EntrySource`], for tests
/// and tools that want a state over a source without a database.
#[derive(Debug, Default)]
pub struct MemorySource {
    entries: BTreeMap<Vec<u8>, Vec<u8>>,
    faults: Faults,
}

impl MemorySource {
    pub fn new(entries: BTreeMap<Vec<u8>, Vec<u8>>) -> Self {
        MemorySource {
            entries,
            faults: Faults::default(),
        }
    }

    /// The entries after `changes` (a block's change set) are written.
    pub fn apply(&mut self, changes: &super::ChangeSet) {
        for (key, value) in changes {
            match value {
                Some(value) => self.entries.insert(key.clone(), value.clone()),
                None => self.entries.remove(key),
            };
        }
    }

    pub fn entries(&self) -> &BTreeMap<Vec<u8>, Vec<u8>> {
        &self.entries
    }
}

impl EntrySource for MemorySource {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.entries.get(key).cloned()
    }

    fn scan<'a>(
        &'a self,
        from: Bound<&[u8]>,
        to: Bound<&[u8]>,
    ) -> Box<dyn Iterator<Item = (Vec<u8>, Vec<u8>)> + 'a> {
        Box::new(
            self.entries
                .range::<[u8], _>((from, to))
                .map(|(k, v)| (k.clone(), v.clone())),
        )
    }

    fn count(&self, tag: u8) -> u64 {
        self.entries
            .range::<[u8], _>((Bound::Included(&[tag][..]), Bound::Excluded(&[tag + 1][..])))
            .count() as u64
    }

    fn fail(&self, why: String) {
        self.faults.record(why);
    }

    fn faults(&self) -> u64 {
        self.faults.count()
    }

    fn fault(&self) -> Option<String> {
        self.faults.last()
    }
}

/// How a table's key is written in the store's key: fixed width, so keys of one table never
/// collide and sort as the table does.
pub trait KeyBytes: Sized {
    fn write_key(&self, out: &mut Vec<u8>);
    /// The key written as `bytes` (all of them), if they are one.
    fn read_key(bytes: &[u8]) -> Option<Self>;
}

fn id32(bytes: &[u8]) -> Option<[u8; 32]> {
    bytes.try_into().ok()
}

impl KeyBytes for Address {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn read_key(bytes: &[u8]) -> Option<Self> {
        id32(bytes).map(Address)
    }
}

impl KeyBytes for JobId {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.0);
    }
    fn read_key(bytes: &[u8]) -> Option<Self> {
        id32(bytes).map(|b| JobId(Digest(b)))
    }
}

impl KeyBytes for ProgramHash {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.0);
    }
    fn read_key(bytes: &[u8]) -> Option<Self> {
        id32(bytes).map(|b| ProgramHash(Digest(b)))
    }
}

impl KeyBytes for Digest {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0);
    }
    fn read_key(bytes: &[u8]) -> Option<Self> {
        id32(bytes).map(Digest)
    }
}

/// `(height or epoch, id)`: big-endian, so byte order is the table's order.
impl<T: KeyBytes> KeyBytes for (u64, T) {
    fn write_key(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.0.to_be_bytes());
        self.1.write_key(out);
    }
    fn read_key(bytes: &[u8]) -> Option<Self> {
        let (first, rest) = bytes.split_at_checked(8)?;
        Some((
            u64::from_be_bytes(first.try_into().ok()?),
            T::read_key(rest)?,
        ))
    }
}

/// The store key of `key` in the table tagged `tag`.
pub fn store_key<K: KeyBytes>(tag: u8, key: &K) -> Vec<u8> {
    let mut out = Vec::with_capacity(41);
    out.push(tag);
    key.write_key(&mut out);
    out
}

/// One table of the state. `TAG` is its first key byte in the store (and in proofs), so an
/// entry of one table can never pass for an entry of another.
pub struct Table<const TAG: u8, K: Ord + Clone, V: Clone> {
    /// The entries this state holds in memory: all of them without a source; over one, those
    /// changed or kept since it was taken, `None` for one removed since.
    map: OrdMap<K, Option<V>>,
    source: Option<SharedSource>,
    /// Entries this copy read from the source (`None`: not there), kept so that a read can
    /// return a reference. A copy starts without them: reads are cheap to repeat, and a copy's
    /// reads must not grow its original.
    read: FrozenBTreeMap<K, Box<Option<V>>>,
    /// Each entry changed since the last drain, with its value before the first change.
    before: BTreeMap<K, Option<V>>,
    /// How many entries the table holds.
    len: u64,
}

impl<const TAG: u8, K: Ord + Clone, V: Clone> Clone for Table<TAG, K, V> {
    fn clone(&self) -> Self {
        Table {
            map: self.map.clone(),
            source: self.source.clone(),
            read: FrozenBTreeMap::new(),
            before: self.before.clone(),
            len: self.len,
        }
    }
}

impl<const TAG: u8, K: Ord + Clone + std::fmt::Debug, V: Clone + std::fmt::Debug> std::fmt::Debug
    for Table<TAG, K, V>
{
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table")
            .field("tag", &TAG)
            .field("len", &self.len)
            .field("in_memory", &self.map.len())
            .field("over_source", &self.source.is_some())
            .finish()
    }
}

impl<const TAG: u8, K: Ord + Clone, V: Clone> Table<TAG, K, V> {
    pub const TAG: u8 = TAG;

    pub fn new() -> Self {
        Table {
            map: OrdMap::new(),
            source: None,
            read: FrozenBTreeMap::new(),
            before: BTreeMap::new(),
            len: 0,
        }
    }

    /// How many entries the table holds.
    pub fn len(&self) -> usize {
        usize::try_from(self.len).unwrap_or(usize::MAX)
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether an entry was changed since the last drain (its value may be the same again).
    pub fn is_touched(&self, key: &K) -> bool {
        self.before.contains_key(key)
    }

    /// How many entries this copy holds in memory (all of them, without a source).
    pub fn in_memory(&self) -> usize {
        self.map.len()
    }
}

impl<const TAG: u8, K, V> Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes,
    V: Clone + BorshDeserialize,
{
    /// The entry under `key`, if any.
    pub fn get(&self, key: &K) -> Option<&V> {
        match self.map.get(key) {
            Some(slot) => slot.as_ref(),
            None => self.read_source(key),
        }
    }

    pub fn contains_key(&self, key: &K) -> bool {
        self.get(key).is_some()
    }

    /// The source's entry under `key` (none without a source), read once per copy.
    fn read_source(&self, key: &K) -> Option<&V> {
        let source = self.source.as_ref()?;
        if let Some(read) = self.read.get(key) {
            return read.as_ref();
        }
        let value = source
            .get(&store_key(TAG, key))
            .and_then(|bytes| decode_entry::<TAG, V>(source.as_ref(), &bytes));
        self.read.insert(key.clone(), Box::new(value)).as_ref()
    }

    fn touch(&mut self, key: &K) {
        if !self.before.contains_key(key) {
            let now = self.get(key).cloned();
            self.before.insert(key.clone(), now);
        }
    }

    /// Puts the source's value of `key` in memory, where it can change.
    fn pull(&mut self, key: &K) {
        if self.source.is_some() && !self.map.contains_key(key) {
            let value = self.read_source(key).cloned();
            self.map.insert(key.clone(), value);
        }
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if !self.contains_key(key) {
            return None;
        }
        self.touch(key);
        self.pull(key);
        self.map.get_mut(key).and_then(Option::as_mut)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touch(&key);
        self.pull(&key);
        let old = self.map.insert(key, Some(value)).flatten();
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        if !self.contains_key(key) {
            return None;
        }
        self.touch(key);
        self.pull(key);
        let old = if self.source.is_some() {
            // Over a source, a removal must hide the source's entry.
            self.map.insert(key.clone(), None)
        } else {
            self.map.remove(key)
        };
        let old = old.flatten();
        if old.is_some() {
            self.len = self.len.saturating_sub(1);
        }
        old
    }

    /// The entry under `key`, to fill if it is absent.
    pub fn entry(&mut self, key: K) -> TableEntry<'_, TAG, K, V> {
        TableEntry { table: self, key }
    }

    /// Every entry, in key order.
    pub fn iter(&self) -> impl Iterator<Item = (K, Cow<'_, V>)> + '_ {
        self.range(..)
    }

    pub fn keys(&self) -> impl Iterator<Item = K> + '_ {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = Cow<'_, V>> + '_ {
        self.iter().map(|(_, v)| v)
    }

    /// The entries whose keys lie in `range`, in key order: those in memory over the source's.
    pub fn range<R: RangeBounds<K>>(&self, range: R) -> impl Iterator<Item = (K, Cow<'_, V>)> + '_ {
        const { assert!(TAG < u8::MAX, "a table's keys end before the next tag") };
        let bound = |b: Bound<&K>, unbounded: Bound<Vec<u8>>| match b {
            Bound::Included(k) => Bound::Included(store_key(TAG, k)),
            Bound::Excluded(k) => Bound::Excluded(store_key(TAG, k)),
            Bound::Unbounded => unbounded,
        };
        let from = bound(range.start_bound(), Bound::Included(vec![TAG]));
        let to = bound(range.end_bound(), Bound::Excluded(vec![TAG + 1]));
        // Ordered maps panic on a range that ends before it starts; it holds nothing.
        let empty = match (&from, &to) {
            (Bound::Included(a), Bound::Included(b)) => a > b,
            (Bound::Included(a) | Bound::Excluded(a), Bound::Included(b) | Bound::Excluded(b)) => {
                a >= b
            }
            _ => false,
        };
        let mut source = match &self.source {
            Some(_) if empty => Box::new(std::iter::empty()),
            Some(source) => {
                let scan = source.scan(as_slice(&from), as_slice(&to));
                let source = source.as_ref();
                Box::new(scan.filter_map(move |(key, value)| {
                    let Some(k) = key.get(1..).and_then(K::read_key) else {
                        source.fail(format!("table {TAG}: a key does not decode"));
                        return None;
                    };
                    Some((k, decode_entry::<TAG, V>(source, &value)?))
                })) as Box<dyn Iterator<Item = (K, V)> + '_>
            }
            None => Box::new(std::iter::empty()),
        }
        .peekable();
        let mut memory = (!empty)
            .then(|| self.map.range(range))
            .into_iter()
            .flatten()
            .peekable();
        std::iter::from_fn(move || {
            loop {
                let order = match (memory.peek(), source.peek()) {
                    (None, None) => return None,
                    (Some(_), None) => std::cmp::Ordering::Less,
                    (None, Some(_)) => std::cmp::Ordering::Greater,
                    (Some((m, _)), Some((s, _))) => (*m).cmp(s),
                };
                match order {
                    std::cmp::Ordering::Greater => {
                        return source.next().map(|(k, v)| (k, Cow::Owned(v)));
                    }
                    // What memory holds is newer than the source's.
                    std::cmp::Ordering::Equal => drop(source.next()),
                    std::cmp::Ordering::Less => {}
                }
                if let Some((k, Some(v))) = memory.next() {
                    return Some((k.clone(), Cow::Borrowed(v)));
                }
            }
        })
    }

    /// Puts the table over `source`, which must hold exactly its entries (the store its
    /// changes were all written to). Keeps what it holds in memory as a cache of recent
    /// entries, unless that is more than `keep`.
    fn rebase(&mut self, source: SharedSource, keep: usize) {
        if self.map.len() > keep {
            self.map = OrdMap::new();
        }
        self.read = FrozenBTreeMap::new();
        self.source = Some(source);
    }

    /// Puts the table over `source` alone, holding nothing in memory.
    fn open_over(&mut self, source: SharedSource) {
        *self = Table::new();
        self.len = source.count(TAG);
        self.source = Some(source);
    }
}

fn as_slice(b: &Bound<Vec<u8>>) -> Bound<&[u8]> {
    match b {
        Bound::Included(v) => Bound::Included(v.as_slice()),
        Bound::Excluded(v) => Bound::Excluded(v.as_slice()),
        Bound::Unbounded => Bound::Unbounded,
    }
}

/// A source's value, decoded; one that does not decode is the source's fault.
fn decode_entry<const TAG: u8, V: BorshDeserialize>(
    source: &dyn EntrySource,
    bytes: &[u8],
) -> Option<V> {
    match borsh::from_slice(bytes) {
        Ok(v) => Some(v),
        Err(e) => {
            source.fail(format!("table {TAG}: an entry does not decode: {e}"));
            None
        }
    }
}

/// An entry of a table that may be absent (see [`Table::entry`]).
pub struct TableEntry<'a, const TAG: u8, K: Ord + Clone, V: Clone> {
    table: &'a mut Table<TAG, K, V>,
    key: K,
}

impl<'a, const TAG: u8, K, V> TableEntry<'a, TAG, K, V>
where
    K: Ord + Clone + KeyBytes,
    V: Clone + BorshDeserialize,
{
    pub fn or_insert_with(self, make: impl FnOnce() -> V) -> &'a mut V {
        let table = self.table;
        table.touch(&self.key);
        table.pull(&self.key);
        let slot = table.map.entry(self.key).or_insert(None);
        if slot.is_none() {
            table.len += 1;
        }
        slot.get_or_insert_with(make)
    }

    pub fn or_insert(self, value: V) -> &'a mut V {
        self.or_insert_with(|| value)
    }

    pub fn or_default(self) -> &'a mut V
    where
        V: Default,
    {
        self.or_insert_with(V::default)
    }
}

impl<const TAG: u8, K, V> Index<&K> for Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes,
    V: Clone + BorshDeserialize,
{
    type Output = V;

    /// The entry under `key`; panics if there is none (as a `BTreeMap` does).
    fn index(&self, key: &K) -> &V {
        self.get(key).expect("no entry under this key")
    }
}

impl<const TAG: u8, K, V> Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes,
    V: Clone + PartialEq + BorshSerialize + BorshDeserialize,
{
    /// Every entry as `(store key, encoded value)`, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        self.iter()
            .map(|(k, v)| (store_key(TAG, &k), super::entries::enc(v.as_ref())))
    }

    /// The entries whose value differs from the last drain: `(store key, new encoding, or None
    /// if the entry is gone)`. Forgets the changes.
    pub fn drain_changes(&mut self, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (key, before) in std::mem::take(&mut self.before) {
            let now = self.get(&key);
            if now != before.as_ref() {
                out.insert(store_key(TAG, &key), now.map(super::entries::enc));
            }
        }
    }

    /// Puts a stored entry back (`key` without its tag), as it was: not a change.
    pub(super) fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        let key = K::read_key(key)
            .ok_or_else(|| DecodeError::new("state key", format!("table {TAG}: bad key")))?;
        let value = borsh::from_slice(value).map_err(|e| DecodeError::new("state entry", e))?;
        if self.map.insert(key, Some(value)).flatten().is_none() {
            self.len += 1;
        }
        Ok(())
    }
}

/// What the state does with each of its tables alike, whatever their key and value types.
pub(super) trait StoredTable {
    fn tag(&self) -> u8;
    /// Hands every entry to `f` as `(store key, encoded value)`, in key order, without
    /// collecting them.
    fn visit_entries(&self, f: &mut dyn FnMut(Vec<u8>, Vec<u8>));
    fn drain_into(&mut self, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>);
    fn load_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError>;
    fn rebase_onto(&mut self, source: SharedSource, keep: usize);
    fn open_over_source(&mut self, source: SharedSource);
    fn source(&self) -> Option<&SharedSource>;
    fn held_in_memory(&self) -> usize;
    fn has_pending(&self) -> bool;
    fn count(&self) -> u64;
}

impl<const TAG: u8, K, V> StoredTable for Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes + BorshDeserialize,
    V: Clone + PartialEq + BorshSerialize + BorshDeserialize,
{
    fn tag(&self) -> u8 {
        TAG
    }

    fn visit_entries(&self, f: &mut dyn FnMut(Vec<u8>, Vec<u8>)) {
        for (key, value) in self.entries() {
            f(key, value);
        }
    }

    fn drain_into(&mut self, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        self.drain_changes(out);
    }

    fn load_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        self.load(key, value)
    }

    fn rebase_onto(&mut self, source: SharedSource, keep: usize) {
        self.rebase(source, keep);
    }

    fn open_over_source(&mut self, source: SharedSource) {
        self.open_over(source);
    }

    fn source(&self) -> Option<&SharedSource> {
        self.source.as_ref()
    }

    fn held_in_memory(&self) -> usize {
        self.map.len()
    }

    fn has_pending(&self) -> bool {
        !self.before.is_empty()
    }

    fn count(&self) -> u64 {
        self.len
    }
}

impl<const TAG: u8, K: Ord + Clone, V: Clone> Default for Table<TAG, K, V> {
    fn default() -> Self {
        Self::new()
    }
}

/// Equality is of contents: what is pending for the store, or held in memory rather than read
/// from a source, is not part of the state.
impl<const TAG: u8, K, V> PartialEq for Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes,
    V: Clone + PartialEq + BorshDeserialize,
{
    fn eq(&self, other: &Self) -> bool {
        self.len == other.len && self.iter().eq(other.iter())
    }
}

impl<const TAG: u8, K, V> Eq for Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes,
    V: Clone + Eq + BorshDeserialize,
{
}

/// Encoded as a `BTreeMap` is in borsh: the count, then the entries in key order.
impl<const TAG: u8, K, V> BorshSerialize for Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes + BorshSerialize,
    V: Clone + BorshSerialize + BorshDeserialize,
{
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        let len = u32::try_from(self.len)
            .map_err(|_| std::io::Error::other("a table of more than 2^32 entries"))?;
        len.serialize(writer)?;
        for (key, value) in self.iter() {
            key.serialize(writer)?;
            (*value).serialize(writer)?;
        }
        Ok(())
    }
}

/// Refuses keys out of order or repeated, so one table has one encoding. A decoded table is
/// held in memory.
impl<const TAG: u8, K: BorshDeserialize + Ord + Clone, V: BorshDeserialize + Clone> BorshDeserialize
    for Table<TAG, K, V>
{
    fn deserialize_reader<R: std::io::Read>(reader: &mut R) -> std::io::Result<Self> {
        let len = u32::deserialize_reader(reader)?;
        let mut map = OrdMap::new();
        let mut last: Option<K> = None;
        for _ in 0..len {
            let key = K::deserialize_reader(reader)?;
            let value = V::deserialize_reader(reader)?;
            if last.as_ref().is_some_and(|last| *last >= key) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    "table keys out of order",
                ));
            }
            last = Some(key.clone());
            map.insert(key, Some(value));
        }
        Ok(Table {
            map,
            source: None,
            read: FrozenBTreeMap::new(),
            before: BTreeMap::new(),
            len: u64::from(len),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type T = Table<7, Address, u64>;

    fn drain(t: &mut T) -> BTreeMap<Vec<u8>, Option<Vec<u8>>> {
        let mut out = BTreeMap::new();
        t.drain_changes(&mut out);
        out
    }

    #[test]
    fn only_entries_whose_value_changed_are_drained() {
        let (a, b, c) = (Address([1; 32]), Address([2; 32]), Address([3; 32]));
        let mut t = T::new();
        t.insert(a, 1);
        t.insert(b, 2);
        assert_eq!(drain(&mut t).len(), 2);
        // Looked at mutably, written back the same, or changed and changed back: nothing.
        let _ = t.get_mut(&a);
        *t.get_mut(&b).unwrap() += 1;
        *t.get_mut(&b).unwrap() -= 1;
        // Absent and still absent: nothing.
        t.remove(&c);
        let _ = t.get_mut(&c);
        assert!(drain(&mut t).is_empty());
        // A change, a removal and an insertion, once each, with the new encodings.
        *t.entry(a).or_default() += 5;
        t.remove(&b);
        t.insert(c, 9);
        let changes = drain(&mut t);
        assert_eq!(
            changes,
            BTreeMap::from([
                (store_key(7, &a), Some(borsh::to_vec(&6u64).unwrap())),
                (store_key(7, &b), None),
                (store_key(7, &c), Some(borsh::to_vec(&9u64).unwrap())),
            ])
        );
        assert!(changes.keys().all(|k| k[0] == 7 && k.len() == 33));
    }

    #[test]
    fn pending_changes_are_not_part_of_equality_or_encoding() {
        let mut t = T::new();
        t.insert(Address([1; 32]), 1);
        let decoded: T = borsh::from_slice(&borsh::to_vec(&t).unwrap()).unwrap();
        assert_eq!(decoded, t);
        assert!(!decoded.is_touched(&Address([1; 32])));
        assert!(t.is_touched(&Address([1; 32])));
    }

    #[test]
    fn a_decoded_table_has_one_encoding_and_refuses_keys_out_of_order() {
        let (a, b) = (Address([1; 32]), Address([2; 32]));
        let mut t = T::new();
        t.insert(b, 2);
        t.insert(a, 1);
        let bytes = borsh::to_vec(&t).unwrap();
        // As a BTreeMap encodes: count, then entries in key order.
        let as_btree = borsh::to_vec(&BTreeMap::from([(a, 1u64), (b, 2u64)])).unwrap();
        assert_eq!(bytes, as_btree);
        let out_of_order = borsh::to_vec(&(2u32, (b, 2u64), (a, 1u64))).unwrap();
        let repeated = borsh::to_vec(&(2u32, (a, 1u64), (a, 1u64))).unwrap();
        assert!(borsh::from_slice::<T>(&out_of_order).is_err());
        assert!(borsh::from_slice::<T>(&repeated).is_err());
        assert!(borsh::from_slice::<T>(&bytes[..bytes.len() - 1]).is_err());
    }

    #[test]
    fn a_copy_changes_apart_from_its_original() {
        let mut original = T::new();
        for i in 0..1000u32 {
            let mut id = [0u8; 32];
            id[..4].copy_from_slice(&i.to_be_bytes());
            original.insert(Address(id), u64::from(i));
        }
        drop(drain(&mut original));
        let mut copy = original.clone();
        *copy.get_mut(&Address([0; 32])).unwrap() += 7;
        copy.remove(&Address([0xff; 32]));
        assert_eq!(original[&Address([0; 32])], 0);
        assert_eq!(copy[&Address([0; 32])], 7);
        assert_eq!(drain(&mut copy).len(), 1, "what the copy changed");
        assert!(
            drain(&mut original).is_empty(),
            "the original changed nothing"
        );
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u8, u64),
        Remove(u8),
        Bump(u8),
        OrInsert(u8, u64),
        /// Drain the changes into the store and put the table over it, keeping what it holds
        /// in memory when the flag says so.
        Commit(bool),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0..24u8, any::<u64>()).prop_map(|(k, v)| Op::Insert(k, v)),
            (0..24u8).prop_map(Op::Remove),
            (0..24u8).prop_map(Op::Bump),
            (0..24u8, any::<u64>()).prop_map(|(k, v)| Op::OrInsert(k, v)),
            any::<bool>().prop_map(Op::Commit),
        ]
    }

    fn who(k: u8) -> Address {
        Address([k; 32])
    }

    proptest! {
        /// A table over a store answers every read exactly as one holding everything in memory,
        /// whatever was changed, removed, committed, kept or dropped on the way: each entry,
        /// the count, every range, the change set.
        #[test]
        fn a_table_over_a_store_reads_as_one_in_memory(
            initial in proptest::collection::btree_map(0..24u8, any::<u64>(), 0..16),
            ops in proptest::collection::vec(op(), 1..60),
            ranges in proptest::collection::vec((0..26u8, 0..26u8), 4),
        ) {
            let mut memory = T::new();
            for (k, v) in &initial {
                memory.insert(who(*k), *v);
            }
            let mut store = MemorySource::new(memory.entries().collect());
            drop(drain(&mut memory));
            let mut over = T::new();
            over.open_over(Arc::new(MemorySource::new(store.entries().clone())));
            for op in ops {
                for t in [&mut memory, &mut over] {
                    match op {
                        Op::Insert(k, v) => drop(t.insert(who(k), v)),
                        Op::Remove(k) => drop(t.remove(&who(k))),
                        Op::Bump(k) => if let Some(v) = t.get_mut(&who(k)) { *v = v.wrapping_add(1) },
                        Op::OrInsert(k, v) => drop(t.entry(who(k)).or_insert(v)),
                        Op::Commit(_) => {}
                    }
                }
                if let Op::Commit(keep) = op {
                    let (a, b) = (drain(&mut memory), drain(&mut over));
                    prop_assert_eq!(&a, &b, "the same change set");
                    store.apply(&a);
                    over.rebase(
                        Arc::new(MemorySource::new(store.entries().clone())),
                        if keep { usize::MAX } else { 0 },
                    );
                }
                prop_assert_eq!(memory.len(), over.len());
                for k in 0..26 {
                    prop_assert_eq!(memory.get(&who(k)), over.get(&who(k)));
                }
                let all = |t: &T| t.iter().map(|(k, v)| (k, *v)).collect::<Vec<_>>();
                prop_assert_eq!(all(&memory), all(&over));
                for (from, to) in &ranges {
                    let range = |t: &T| {
                        t.range(who(*from)..=who(*to)).map(|(k, v)| (k, *v)).collect::<Vec<_>>()
                    };
                    prop_assert_eq!(range(&memory), range(&over));
                }
            }
            prop_assert!(memory == over);
            prop_assert_eq!(borsh::to_vec(&memory).unwrap(), borsh::to_vec(&over).unwrap());
        }
    }

    #[test]
    fn an_entry_that_does_not_decode_is_the_sources_fault_not_a_value() {
        let mut entries = BTreeMap::new();
        entries.insert(store_key(7, &who(1)), vec![1, 2, 3]);
        entries.insert(store_key(7, &who(2)), borsh::to_vec(&5u64).unwrap());
        let source = Arc::new(MemorySource::new(entries));
        let mut t = T::new();
        t.open_over(source.clone());
        assert_eq!(t.len(), 2);
        assert_eq!(t.get(&who(2)), Some(&5));
        assert_eq!(source.fault(), None);
        assert_eq!(t.get(&who(1)), None);
        assert!(source.fault().unwrap().contains("does not decode"));
    }
}
