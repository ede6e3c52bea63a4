//! A key space of the state (accounts, stakes, jobs, ...) that remembers what a block changed.
//!
//! The entries are a persistent ordered map (`imbl::OrdMap`, a B+ tree whose nodes are shared
//! between copies): copying the state to execute a block on it costs nothing up front, and a
//! block pays only for the nodes it changes. Reads go through `Deref` to that map, which reads
//! like a `BTreeMap`. Every way to change an entry goes through a method here, which keeps
//! the entry's value from before the first change. [`Table::drain_changes`] then yields only the
//! entries whose value really differs, so a store writes what a block changed and nothing else
//! (a handler that looked at an entry mutably and left it alone writes nothing).

use std::collections::BTreeMap;
use std::ops::Deref;

use imbl::OrdMap;
use imbl::ordmap::Entry;

use borsh::{BorshDeserialize, BorshSerialize};
use verity_types::{Address, DecodeError, Digest, JobId, ProgramHash};

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
#[derive(Debug, Clone)]
pub struct Table<const TAG: u8, K: Ord + Clone, V: Clone> {
    map: OrdMap<K, V>,
    /// Each entry changed since the last drain, with its value before the first change.
    before: BTreeMap<K, Option<V>>,
}

impl<const TAG: u8, K: Ord + Clone, V: Clone> Table<TAG, K, V> {
    pub const TAG: u8 = TAG;

    pub fn new() -> Self {
        Table {
            map: OrdMap::new(),
            before: BTreeMap::new(),
        }
    }

    fn touch(&mut self, key: &K) {
        if !self.before.contains_key(key) {
            self.before.insert(key.clone(), self.map.get(key).cloned());
        }
    }

    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        if self.map.contains_key(key) {
            self.touch(key);
        }
        self.map.get_mut(key)
    }

    pub fn insert(&mut self, key: K, value: V) -> Option<V> {
        self.touch(&key);
        self.map.insert(key, value)
    }

    pub fn remove(&mut self, key: &K) -> Option<V> {
        if self.map.contains_key(key) {
            self.touch(key);
        }
        self.map.remove(key)
    }

    pub fn entry(&mut self, key: K) -> Entry<'_, K, V, imbl::shared_ptr::DefaultSharedPtr> {
        self.touch(&key);
        self.map.entry(key)
    }

    /// Whether an entry was changed since the last drain (its value may be the same again).
    pub fn is_touched(&self, key: &K) -> bool {
        self.before.contains_key(key)
    }
}

impl<const TAG: u8, K: Ord + Clone + KeyBytes, V: Clone + PartialEq + BorshSerialize>
    Table<TAG, K, V>
{
    /// Every entry as `(store key, encoded value)`, in key order.
    pub fn entries(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        self.map
            .iter()
            .map(|(k, v)| (store_key(TAG, k), super::entries::enc(v)))
    }

    /// The entries whose value differs from the last drain: `(store key, new encoding, or None
    /// if the entry is gone)`. Forgets the changes.
    pub fn drain_changes(&mut self, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        for (key, before) in std::mem::take(&mut self.before) {
            let now = self.map.get(&key);
            if now != before.as_ref() {
                out.insert(store_key(TAG, &key), now.map(super::entries::enc));
            }
        }
    }
}

impl<const TAG: u8, K: Ord + Clone + KeyBytes, V: Clone + BorshDeserialize> Table<TAG, K, V> {
    /// Puts a stored entry back (`key` without its tag), as it was: not a change.
    pub(super) fn load(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        let key = K::read_key(key)
            .ok_or_else(|| DecodeError::new("state key", format!("table {TAG}: bad key")))?;
        let value = borsh::from_slice(value).map_err(|e| DecodeError::new("state entry", e))?;
        self.map.insert(key, value);
        Ok(())
    }
}

/// What the state does with each of its tables alike, whatever their key and value types.
pub(super) trait StoredTable {
    fn tag(&self) -> u8;
    /// Appends every entry, in key order.
    fn append_entries(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>);
    fn drain_into(&mut self, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>);
    fn load_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError>;
}

impl<const TAG: u8, K, V> StoredTable for Table<TAG, K, V>
where
    K: Ord + Clone + KeyBytes + BorshDeserialize,
    V: Clone + PartialEq + BorshSerialize + BorshDeserialize,
{
    fn tag(&self) -> u8 {
        TAG
    }

    fn append_entries(&self, out: &mut Vec<(Vec<u8>, Vec<u8>)>) {
        out.extend(self.entries());
    }

    fn drain_into(&mut self, out: &mut BTreeMap<Vec<u8>, Option<Vec<u8>>>) {
        self.drain_changes(out);
    }

    fn load_entry(&mut self, key: &[u8], value: &[u8]) -> Result<(), DecodeError> {
        self.load(key, value)
    }
}

impl<const TAG: u8, K: Ord + Clone, V: Clone> Default for Table<TAG, K, V> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const TAG: u8, K: Ord + Clone, V: Clone> Deref for Table<TAG, K, V> {
    type Target = OrdMap<K, V>;

    fn deref(&self) -> &OrdMap<K, V> {
        &self.map
    }
}

impl<'a, const TAG: u8, K: Ord + Clone, V: Clone> IntoIterator for &'a Table<TAG, K, V> {
    type Item = (&'a K, &'a V);
    type IntoIter = imbl::ordmap::Iter<'a, K, V, imbl::shared_ptr::DefaultSharedPtr>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

/// Equality is of contents: what is pending for the store is not part of the state.
impl<const TAG: u8, K: Ord + Clone, V: Clone + PartialEq> PartialEq for Table<TAG, K, V> {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl<const TAG: u8, K: Ord + Clone, V: Clone + Eq> Eq for Table<TAG, K, V> {}

/// Encoded as a `BTreeMap` is in borsh: the count, then the entries in key order.
impl<const TAG: u8, K: Ord + Clone + BorshSerialize, V: Clone + BorshSerialize> BorshSerialize
    for Table<TAG, K, V>
{
    fn serialize<W: std::io::Write>(&self, writer: &mut W) -> std::io::Result<()> {
        let len = u32::try_from(self.map.len())
            .map_err(|_| std::io::Error::other("a table of more than 2^32 entries"))?;
        len.serialize(writer)?;
        for (key, value) in self.map.iter() {
            key.serialize(writer)?;
            value.serialize(writer)?;
        }
        Ok(())
    }
}

/// Refuses keys out of order or repeated, so one table has one encoding.
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
            map.insert(key, value);
        }
        Ok(Table {
            map,
            before: BTreeMap::new(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
