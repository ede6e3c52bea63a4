//! The state root: every state entry as a tagged key and its encoding, a leaf of one Merkle
//! tree; and inclusion proofs against it.

use borsh::BorshSerialize;
use verity_types::merkle::{InclusionProof, leaf_hash, root};
use verity_types::{Digest, JobId};

use super::{Provenance, State};

// Table tags in state keys: a proof for one table cannot stand for another.
const TAG_META: u8 = 0;
const TAG_ACCOUNT: u8 = 1;
const TAG_STAKE: u8 = 2;
const TAG_JOB: u8 = 3;
const TAG_PROVIDER: u8 = 4;
const TAG_PROVENANCE: u8 = 5;
const TAG_SCHEDULE: u8 = 6;
const TAG_ENDPOINT: u8 = 7;
const TAG_LIVENESS: u8 = 8;
const TAG_AUDIT: u8 = 9;
const TAG_CANARY_COMMIT: u8 = 10;
const TAG_CANARY: u8 = 11;
const TAG_AUDITOR: u8 = 12;
const TAG_PROGRAM: u8 = 13;

fn key(tag: u8, id: &[u8; 32]) -> Vec<u8> {
    let mut k = Vec::with_capacity(33);
    k.push(tag);
    k.extend_from_slice(id);
    k
}

pub(super) fn enc<T: BorshSerialize>(v: &T) -> Vec<u8> {
    borsh::to_vec(v).expect("encoding to a Vec cannot fail")
}

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
    fn entries(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        let mut out = Vec::with_capacity(
            1 + self.accounts.len()
                + self.stakes.len()
                + self.jobs.len()
                + self.providers.len()
                + self.provenance.len()
                + 1,
        );
        out.push((vec![TAG_META], self.meta_value()));
        out.extend(
            self.accounts
                .iter()
                .map(|(a, v)| (key(TAG_ACCOUNT, &a.0), enc(v))),
        );
        out.extend(
            self.stakes
                .iter()
                .map(|(a, v)| (key(TAG_STAKE, &a.0), enc(v))),
        );
        out.extend(
            self.jobs
                .iter()
                .map(|(id, v)| (key(TAG_JOB, &id.0.0), enc(v))),
        );
        out.extend(
            self.providers
                .iter()
                .map(|(a, v)| (key(TAG_PROVIDER, &a.0), enc(v))),
        );
        out.extend(
            self.provenance
                .iter()
                .map(|(id, v)| (key(TAG_PROVENANCE, &id.0.0), enc(v))),
        );
        out.push((vec![TAG_SCHEDULE], enc(&self.schedule)));
        out.extend(
            self.endpoints
                .iter()
                .map(|(a, v)| (key(TAG_ENDPOINT, &a.0), enc(v))),
        );
        out.extend(
            self.liveness
                .iter()
                .map(|(a, v)| (key(TAG_LIVENESS, &a.0), enc(v))),
        );
        out.extend(self.audits.iter().map(|((epoch, auditor), v)| {
            let mut k = vec![TAG_AUDIT];
            k.extend_from_slice(&epoch.to_be_bytes());
            k.extend_from_slice(&auditor.0);
            (k, enc(v))
        }));
        out.extend(self.canary_commits.iter().map(|((epoch, auditor), v)| {
            let mut k = vec![TAG_CANARY_COMMIT];
            k.extend_from_slice(&epoch.to_be_bytes());
            k.extend_from_slice(&auditor.0);
            (k, enc(v))
        }));
        out.extend(
            self.canaries
                .iter()
                .map(|(a, v)| (key(TAG_CANARY, &a.0), enc(v))),
        );
        out.extend(
            self.auditors
                .iter()
                .map(|(a, v)| (key(TAG_AUDITOR, &a.0), enc(v))),
        );
        out.extend(
            self.programs
                .iter()
                .map(|(h, v)| (key(TAG_PROGRAM, &h.0.0), enc(v))),
        );
        out
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
        let record = self.provenance.get(job_id)?.clone();
        let index = 1
            + self.accounts.len()
            + self.stakes.len()
            + self.jobs.len()
            + self.providers.len()
            + self.provenance.range(..*job_id).count();
        Some((record, InclusionProof::build(&self.leaves(), index)))
    }
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
