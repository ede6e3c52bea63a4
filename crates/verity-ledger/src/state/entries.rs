//! The state as entries: every record under a store key (a table tag, then the record's key)
//! with its canonical encoding. This is what a state store holds and authenticates: the
//! ledger hands it each block's change set, and a store's root is the state root.

use borsh::BorshSerialize;
use verity_types::DecodeError;

use super::table::{SharedSource, StoredTable};
use super::{ChangeSet, Provenance, State};

// Table tags in state keys: a proof for one table cannot stand for another.
pub(crate) const TAG_META: u8 = 0;
pub(crate) const TAG_ACCOUNT: u8 = 1;
pub(crate) const TAG_STAKE: u8 = 2;
pub(crate) const TAG_JOB: u8 = 3;
pub(crate) const TAG_PROVIDER: u8 = 4;
pub(crate) const TAG_PROVENANCE: u8 = 5;
pub(crate) const TAG_SCHEDULE: u8 = 6;
pub(crate) const TAG_ENDPOINT: u8 = 7;
pub(crate) const TAG_LIVENESS: u8 = 8;
pub(crate) const TAG_AUDIT: u8 = 9;
pub(crate) const TAG_CANARY_COMMIT: u8 = 10;
pub(crate) const TAG_CANARY: u8 = 11;
pub(crate) const TAG_AUDITOR: u8 = 12;
pub(crate) const TAG_PROGRAM: u8 = 13;
pub(crate) const TAG_RELEASE: u8 = 14;
pub(crate) const TAG_SOURCE: u8 = 15;
pub(crate) const TAG_SOURCE_JOBS: u8 = 16;

fn key(tag: u8, id: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(tag);
    k.extend_from_slice(id);
    k
}

pub(super) fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("encoding to a Vec cannot fail")
}

/// The state's tables, listed once: the order is that of [`State::entries`].
macro_rules! state_tables {
    ($($field:ident),* $(,)?) => {
        impl State {
            fn tables(&self) -> Vec<&dyn StoredTable> {
                vec![$(&self.$field),*]
            }

            fn tables_mut(&mut self) -> Vec<&mut dyn StoredTable> {
                vec![$(&mut self.$field),*]
            }
        }
    };
}

state_tables!(
    accounts,
    stakes,
    jobs,
    providers,
    provenance,
    schedule,
    endpoints,
    liveness,
    audits,
    canary_commits,
    canaries,
    auditors,
    programs,
    releases,
    sources,
    source_jobs,
);

/// The meta entry: the state's scalars, in this order.
type Meta = (
    String,
    super::Params,
    u64,
    u64,
    u64,
    u64,
    u64,
    std::collections::BTreeSet<verity_types::Address>,
);

impl State {
    fn meta_value(&self) -> Vec<u8> {
        enc(&(
            &self.chain_id,
            &self.params,
            self.height,
            self.timestamp_ms,
            self.genesis_supply,
            self.burned,
            self.fees_burned,
            &self.validators,
        ))
    }

    /// All state entries as `(key, value)` in canonical order.
    pub fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = vec![(vec![TAG_META], self.meta_value())];
        for table in self.tables() {
            table.visit_entries(&mut |key, value| out.push((key, value)));
        }
        out
    }

    /// [`State::entries`] as borsh encodes that list (a count, then each key and value with
    /// its length), written as the entries are read: one copy of the state's bytes, not the
    /// list and then its encoding. What a node serves to one that syncs from it.
    pub fn encode_entries(&self) -> Result<Vec<u8>, DecodeError> {
        fn put(out: &mut Vec<u8>, bytes: &[u8]) -> bool {
            let Ok(len) = u32::try_from(bytes.len()) else {
                return false;
            };
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(bytes);
            true
        }
        let mut out = vec![0u8; 4];
        let (mut count, mut fits) = (0u64, true);
        let mut entry = |key: Vec<u8>, value: Vec<u8>| {
            fits &= put(&mut out, &key) && put(&mut out, &value);
            count += 1;
        };
        entry(vec![TAG_META], self.meta_value());
        for table in self.tables() {
            table.visit_entries(&mut entry);
        }
        let count = u32::try_from(count)
            .ok()
            .filter(|_| fits)
            .ok_or_else(|| DecodeError::new("state", "too large to encode"))?;
        out[..4].copy_from_slice(&count.to_le_bytes());
        Ok(out)
    }

    /// What changed since the last call (since genesis, the first time): the meta entry and
    /// every entry whose value differs. Applying it to the entries before gives the entries
    /// after; its size is that of the change, not of the state.
    pub fn drain_changes(&mut self) -> ChangeSet {
        let mut out = ChangeSet::new();
        out.insert(vec![TAG_META], Some(self.meta_value()));
        for table in self.tables_mut() {
            table.drain_into(&mut out);
        }
        out
    }

    /// The state whose entries are `entries` (a store's contents, as [`State::entries`] lists
    /// them and change sets write them), with nothing pending. Refuses a missing meta entry, an
    /// unknown table, or a key or value that does not decode.
    pub fn from_entries(
        entries: impl IntoIterator<Item = (Vec<u8>, Vec<u8>)>,
    ) -> Result<State, DecodeError> {
        let mut meta = None;
        let mut s = State::empty();
        for (key, value) in entries {
            let Some((&tag, id)) = key.split_first() else {
                return Err(DecodeError::new("state key", "empty"));
            };
            match tag {
                TAG_META if id.is_empty() => {
                    meta = Some(
                        borsh::from_slice::<Meta>(&value)
                            .map_err(|e| DecodeError::new("state meta", e))?,
                    )
                }
                _ => match s.tables_mut().into_iter().find(|t| t.tag() == tag) {
                    Some(table) => table.load_entry(id, &value)?,
                    None => return Err(DecodeError::new("state key", format!("no table {tag}"))),
                },
            }
        }
        let meta = meta.ok_or_else(|| DecodeError::new("state", "no meta entry"))?;
        s.set_meta(meta);
        Ok(s)
    }

    fn set_meta(&mut self, meta: Meta) {
        (
            self.chain_id,
            self.params,
            self.height,
            self.timestamp_ms,
            self.genesis_supply,
            self.burned,
            self.fees_burned,
            self.validators,
        ) = meta;
    }
}

impl State {
    /// The state a store holds (its entries as [`State::entries`] lists them), read from it as
    /// needed rather than loaded: only the meta entry is read now. Refuses a source without
    /// one.
    pub fn over(source: SharedSource) -> Result<State, DecodeError> {
        let meta = source
            .get(&[TAG_META])
            .ok_or_else(|| DecodeError::new("state", "no meta entry"))?;
        let meta: Meta = borsh::from_slice(&meta).map_err(|e| DecodeError::new("state meta", e))?;
        let mut s = State::empty();
        s.set_meta(meta);
        for table in s.tables_mut() {
            table.open_over_source(source.clone());
        }
        Ok(s)
    }

    /// Puts the state over `source`, which must hold exactly its entries: the store its last
    /// change set was written to. What each table holds in memory stays as a cache of recent
    /// entries, unless it is more than `keep` entries. Refuses a state with changes not yet
    /// drained, which the source cannot hold.
    pub fn rebase(&mut self, source: SharedSource, keep: usize) -> Result<(), RebaseError> {
        if self.tables().iter().any(|t| t.has_pending()) {
            return Err(RebaseError);
        }
        for table in self.tables_mut() {
            table.rebase_onto(source.clone(), keep);
        }
        Ok(())
    }

    /// The last read the source this state reads from failed, if any.
    pub fn source_fault(&self) -> Option<String> {
        self.tables()
            .iter()
            .find_map(|t| t.source())
            .and_then(|source| source.fault())
    }

    /// How many reads the source this state reads from failed so far (0 without a source).
    fn source_faults(&self) -> u64 {
        self.tables()
            .iter()
            .find_map(|t| t.source())
            .map_or(0, |source| source.faults())
    }

    /// Starts watching this state's reads: whatever is computed from the state until
    /// [`ReadWatch::check`] is to be trusted only if no read of its source failed meanwhile.
    pub fn watch_reads(&self) -> ReadWatch {
        ReadWatch(self.source_faults())
    }

    /// Whether the state reads from a source (rather than holding every entry in memory).
    pub fn is_over_source(&self) -> bool {
        self.tables().iter().any(|t| t.source().is_some())
    }

    /// How many entries the state has, over all tables (the meta entry not counted).
    pub fn entry_count(&self) -> u64 {
        self.tables().iter().map(|t| t.count()).sum()
    }

    /// How many entries this copy holds in memory, over all tables.
    pub fn held_in_memory(&self) -> usize {
        self.tables().iter().map(|t| t.held_in_memory()).sum()
    }
}

/// The failed reads of a state's source when watching began ([`State::watch_reads`]).
#[derive(Debug, Clone, Copy)]
#[must_use = "a watch says nothing until checked"]
pub struct ReadWatch(u64);

impl ReadWatch {
    /// `Err` with the last failure if a read of `state`'s source failed since the watch
    /// began (a failure elsewhere on the same source meanwhile counts too: the caller then
    /// retries what it computed).
    pub fn check(self, state: &State) -> Result<(), String> {
        if state.source_faults() == self.0 {
            Ok(())
        } else {
            Err(state.source_fault().unwrap_or_default())
        }
    }
}

/// A state with changes not yet drained cannot be put over a store (see [`State::rebase`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the state has changes its store does not hold yet")]
pub struct RebaseError;

/// What a state proof can be about: the entries a client asks the ledger for by key.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    /// An account's balance and nonce, by address.
    Account,
    /// An address's stakes, by address.
    Stake,
    /// A job's whole record, by job id.
    Job,
    /// A finished job's provenance record, by job id.
    Provenance,
}

impl EntryKind {
    fn tag(self) -> u8 {
        match self {
            EntryKind::Account => TAG_ACCOUNT,
            EntryKind::Stake => TAG_STAKE,
            EntryKind::Job => TAG_JOB,
            EntryKind::Provenance => TAG_PROVENANCE,
        }
    }
}

impl EntryKind {
    pub const ALL: [EntryKind; 4] = [
        EntryKind::Account,
        EntryKind::Stake,
        EntryKind::Job,
        EntryKind::Provenance,
    ];

    /// The name in paths and JSON.
    pub fn name(self) -> &'static str {
        match self {
            EntryKind::Account => "account",
            EntryKind::Stake => "stake",
            EntryKind::Job => "job",
            EntryKind::Provenance => "provenance",
        }
    }
}

impl std::str::FromStr for EntryKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.name() == s)
            .ok_or_else(|| format!("no state entry kind `{s}` (account, stake, job, provenance)"))
    }
}

impl EntryKind {
    /// The store key of the entry of this kind under `id` (an address or a job id): what a
    /// state proof is about.
    pub fn store_key(self, id: &[u8; 32]) -> Vec<u8> {
        key(self.tag(), id)
    }
}

impl Provenance {
    /// This record's store key.
    pub fn store_key(&self) -> Vec<u8> {
        key(TAG_PROVENANCE, &self.job_id.0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Genesis, GenesisAccount, GenesisStake, Params};
    use verity_types::{Address, Role};

    #[test]
    fn an_entry_kind_names_the_key_its_entry_is_stored_under() {
        let who = |i: u8| Address([i * 7 + 1; 32]);
        let mut state = State::from_genesis(&Genesis {
            chain_id: "keys".into(),
            genesis_time_ms: 0,
            params: Params::default(),
            accounts: (0..5)
                .map(|i| GenesisAccount {
                    address: who(i),
                    balance: 100 + u64::from(i),
                })
                .collect(),
            stakes: (0..5)
                .map(|i| GenesisStake {
                    address: who(i),
                    role: Role::Provider,
                    amount: 10,
                })
                .collect(),
        })
        .unwrap();
        let entries: std::collections::BTreeMap<_, _> = state.entries().into_iter().collect();
        for i in 0..5u8 {
            let id = who(i);
            let account = &entries[&EntryKind::Account.store_key(&id.0)];
            assert_eq!(account, &enc(&state.accounts[&id]));
            let stake = &entries[&EntryKind::Stake.store_key(&id.0)];
            assert_eq!(stake, &enc(&state.stakes[&id]));
            assert_ne!(account, stake);
        }
        assert!(!entries.contains_key(&EntryKind::Account.store_key(&[0; 32])));
        // Genesis is the first change set: every entry, and the meta entry.
        let changes = state.drain_changes();
        assert_eq!(changes.len(), entries.len());
        assert!(changes.iter().all(|(k, v)| entries.get(k) == v.as_ref()));
        assert_eq!(state.drain_changes().len(), 1, "then only the meta entry");
    }

    #[test]
    fn the_entries_encode_as_their_list_does_in_memory_and_over_a_store() {
        let who = |i: u8| Address([i * 3 + 1; 32]);
        let state = State::from_genesis(&Genesis {
            chain_id: "encode".into(),
            genesis_time_ms: 0,
            params: Params::default(),
            accounts: (0..40)
                .map(|i| GenesisAccount {
                    address: who(i),
                    balance: 7 + u64::from(i),
                })
                .collect(),
            stakes: vec![GenesisStake {
                address: who(1),
                role: Role::Provider,
                amount: 10,
            }],
        })
        .unwrap();
        let list = state.entries();
        let expected = borsh::to_vec(&list).unwrap();
        assert_eq!(state.encode_entries().unwrap(), expected);
        let source =
            std::sync::Arc::new(crate::state::MemorySource::new(list.into_iter().collect()));
        let over = State::over(source).unwrap();
        assert_eq!(over.encode_entries().unwrap(), expected);
    }
}
