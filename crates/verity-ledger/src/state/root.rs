//! The state root: every state entry as a tagged key and its encoding, a leaf of one Merkle
//! tree; and inclusion proofs against it.

use borsh::BorshSerialize;
use verity_types::merkle::{InclusionProof, leaf_hash, root};
use verity_types::{DecodeError, Digest, JobId};

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

fn key(tag: u8, id: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(tag);
    k.extend_from_slice(id);
    k
}

pub(super) fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("encoding to a Vec cannot fail")
}

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
        out.extend(self.accounts.entries());
        out.extend(self.stakes.entries());
        out.extend(self.jobs.entries());
        out.extend(self.providers.entries());
        out.extend(self.provenance.entries());
        out.extend(self.schedule.entries());
        out.extend(self.endpoints.entries());
        out.extend(self.liveness.entries());
        out.extend(self.audits.entries());
        out.extend(self.canary_commits.entries());
        out.extend(self.canaries.entries());
        out.extend(self.auditors.entries());
        out.extend(self.programs.entries());
        out.extend(self.releases.entries());
        out
    }

    /// What changed since the last call (since genesis, the first time): the meta entry and
    /// every entry whose value differs. Applying it to the entries before gives the entries
    /// after; its size is that of the change, not of the state.
    pub fn drain_changes(&mut self) -> ChangeSet {
        let mut out = ChangeSet::new();
        out.insert(vec![TAG_META], Some(self.meta_value()));
        self.accounts.drain_changes(&mut out);
        self.stakes.drain_changes(&mut out);
        self.jobs.drain_changes(&mut out);
        self.providers.drain_changes(&mut out);
        self.provenance.drain_changes(&mut out);
        self.schedule.drain_changes(&mut out);
        self.endpoints.drain_changes(&mut out);
        self.liveness.drain_changes(&mut out);
        self.audits.drain_changes(&mut out);
        self.canary_commits.drain_changes(&mut out);
        self.canaries.drain_changes(&mut out);
        self.auditors.drain_changes(&mut out);
        self.programs.drain_changes(&mut out);
        self.releases.drain_changes(&mut out);
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
                TAG_ACCOUNT => s.accounts.load(id, &value)?,
                TAG_STAKE => s.stakes.load(id, &value)?,
                TAG_JOB => s.jobs.load(id, &value)?,
                TAG_PROVIDER => s.providers.load(id, &value)?,
                TAG_PROVENANCE => s.provenance.load(id, &value)?,
                TAG_SCHEDULE => s.schedule.load(id, &value)?,
                TAG_ENDPOINT => s.endpoints.load(id, &value)?,
                TAG_LIVENESS => s.liveness.load(id, &value)?,
                TAG_AUDIT => s.audits.load(id, &value)?,
                TAG_CANARY_COMMIT => s.canary_commits.load(id, &value)?,
                TAG_CANARY => s.canaries.load(id, &value)?,
                TAG_AUDITOR => s.auditors.load(id, &value)?,
                TAG_PROGRAM => s.programs.load(id, &value)?,
                TAG_RELEASE => s.releases.load(id, &value)?,
                _ => return Err(DecodeError::new("state key", format!("no table {tag}"))),
            }
        }
        let meta = meta.ok_or_else(|| DecodeError::new("state", "no meta entry"))?;
        (
            s.chain_id,
            s.params,
            s.height,
            s.timestamp_ms,
            s.genesis_supply,
            s.burned,
            s.fees_burned,
            s.validators,
        ) = meta;
        Ok(s)
    }

    fn leaves(&self) -> Vec<[u8; 32]> {
        self.entries()
            .iter()
            .map(|(k, v)| leaf_hash(k, v))
            .collect()
    }

    /// The Merkle root over every state entry.
    pub fn state_root(&self) -> Digest {
        root(&self.leaves())
    }

    /// A provenance record with its inclusion proof against [`State::state_root`].
    pub fn provenance_proof(&self, job_id: &JobId) -> Option<(Provenance, InclusionProof)> {
        let (_, proof) = self.entry_proof(EntryKind::Provenance, &job_id.0.0)?;
        Some((self.provenance.get(job_id)?.clone(), proof))
    }
}

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

impl State {
    /// The entry of `kind` under `id` (its borsh encoding, what the state root commits to)
    /// with its inclusion proof against [`State::state_root`]; `None` if there is none (this
    /// tree proves presence only).
    pub fn entry_proof(&self, kind: EntryKind, id: &[u8; 32]) -> Option<(Vec<u8>, InclusionProof)> {
        let (value, index) = self.entry_at(kind, id)?;
        Some((value, InclusionProof::build(&self.leaves(), index)))
    }

    /// The entry's encoding and its place among the leaves, in the order of `entries`.
    fn entry_at(&self, kind: EntryKind, id: &[u8; 32]) -> Option<(Vec<u8>, usize)> {
        let accounts = 1; // after the meta entry
        let stakes = accounts + self.accounts.len();
        let jobs = stakes + self.stakes.len();
        let provenance = jobs + self.jobs.len() + self.providers.len();
        let (address, job) = (verity_types::Address(*id), JobId(Digest(*id)));
        match kind {
            EntryKind::Account => Some((
                enc(self.accounts.get(&address)?),
                accounts + self.accounts.range(..address).count(),
            )),
            EntryKind::Stake => Some((
                enc(self.stakes.get(&address)?),
                stakes + self.stakes.range(..address).count(),
            )),
            EntryKind::Job => Some((
                enc(self.jobs.get(&job)?),
                jobs + self.jobs.range(..job).count(),
            )),
            EntryKind::Provenance => Some((
                enc(self.provenance.get(&job)?),
                provenance + self.provenance.range(..job).count(),
            )),
        }
    }
}

/// Checks that `encoded` is the entry of `kind` under `id` in the state whose root is
/// `state_root`: what a client holding only a root (from a certified block) needs.
pub fn verify_entry(
    kind: EntryKind,
    id: &[u8; 32],
    encoded: &[u8],
    state_root: &Digest,
    proof: &InclusionProof,
) -> bool {
    proof.verify(state_root, &key(kind.tag(), id), encoded)
}

impl Provenance {
    /// Checks this record against a state root (a light client's whole job).
    pub fn verify_inclusion(&self, state_root: &Digest, proof: &InclusionProof) -> bool {
        proof.verify(
            state_root,
            &key(TAG_PROVENANCE, &self.job_id.0.0),
            &enc(self),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::{Genesis, GenesisAccount, GenesisStake, Params};
    use verity_types::{Address, Role};

    #[test]
    fn every_entry_kind_proves_against_the_root_and_nothing_else_does() {
        let who = |i: u8| Address([i * 7; 32]);
        let state = State::from_genesis(&Genesis {
            chain_id: "proofs".into(),
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
        let root = state.state_root();
        for kind in [EntryKind::Account, EntryKind::Stake] {
            for i in 0..5u8 {
                let id = [i * 7; 32];
                let (encoded, proof) = state.entry_proof(kind, &id).unwrap();
                assert!(
                    verify_entry(kind, &id, &encoded, &root, &proof),
                    "{kind:?} {i}"
                );
                // Another kind, another key, another value, another root: refused.
                let other = if kind == EntryKind::Account {
                    EntryKind::Stake
                } else {
                    EntryKind::Account
                };
                assert!(!verify_entry(other, &id, &encoded, &root, &proof));
                assert!(!verify_entry(
                    kind,
                    &[i * 7 + 1; 32],
                    &encoded,
                    &root,
                    &proof
                ));
                let mut changed = encoded.clone();
                changed[0] ^= 1;
                assert!(!verify_entry(kind, &id, &changed, &root, &proof));
                assert!(!verify_entry(kind, &id, &encoded, &Digest([9; 32]), &proof));
            }
        }
        assert!(state.entry_proof(EntryKind::Account, &[1; 32]).is_none());
        assert!(state.entry_proof(EntryKind::Job, &[0; 32]).is_none());
    }
}
