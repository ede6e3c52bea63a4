//! Chain parameters and the genesis config.

use borsh::{BorshDeserialize, BorshSerialize};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

use verity_types::{Address, Role};

/// Chain parameters, fixed at genesis. A genesis file may name only some; the rest default.
#[derive(Debug, Clone, PartialEq, Eq, BorshSerialize, BorshDeserialize, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Params {
    /// Blocks an optimistic fulfilment waits for a challenge before it finalizes.
    pub challenge_window: u64,
    /// Blocks unstaked funds wait before they return to the balance.
    pub unbonding_period: u64,
    /// Largest program source a job may carry inline, in bytes.
    pub max_program_bytes: u32,
    /// Largest program source that may be published (`PublishProgram`), in bytes.
    pub max_published_program_bytes: u32,
    /// Largest program that may be published, in MAST nodes once unrolled (see
    /// `max_program_nodes`). Publishing assembles it twice (as written and behind the
    /// private-input loader), so twice this must fit `max_block_assembly_ops`.
    pub max_published_program_nodes: u32,
    /// Largest proof accepted, in bytes.
    pub max_proof_bytes: u32,
    /// Highest cycle cap a job may ask for.
    pub max_job_cycles: u32,
    /// Longest a job may run (`offer.timeout`), in blocks.
    pub max_job_timeout: u64,
    /// Most transactions per block.
    pub max_block_txs: u32,
    /// Most bytes of encoded transactions per block.
    pub max_block_bytes: u32,
    /// Fee every included transaction pays, accepted or rejected (burned).
    pub fee_base: u64,
    /// Fee per started KiB of the encoded transaction (pays for gossip, storage, assembly).
    pub fee_per_kib: u64,
    /// Fee for a transaction that makes every validator verify a STARK proof.
    pub fee_per_proof: u64,
    /// Largest program a job may expand to after assembly, in MAST nodes (`repeat.N` copies
    /// its body N times): bounds what one `SubmitJob` costs every validator to assemble.
    pub max_program_nodes: u32,
    /// Blocks a locker waits for a job's private inputs; then the lock is released and the
    /// client pays the locker the offer's `min_price` for the wasted lock.
    pub private_inputs_timeout: u64,
    /// Most assembly work per block, in operations (`admission::assembly_ops` summed over its
    /// `SubmitJob`s): bounds the time every validator spends assembling one block's programs.
    pub max_block_assembly_ops: u64,
    /// Blocks an ended job stays in the state after it ended (at least
    /// [`crate::state::MIN_JOB_RETENTION`]). Then it leaves (its receipt and program source
    /// with it), so the state holds recent jobs, not all history; its provenance record
    /// stays, provable against every later root, and nodes keep the full record in their
    /// archive.
    pub job_retention: u64,
}

impl Params {
    /// The fee of a transaction of `size` encoded bytes doing `body`. Integer arithmetic;
    /// saturates rather than wraps (a fee above every balance simply cannot be paid).
    pub fn fee(&self, body: &verity_types::TxBody, size: usize) -> u64 {
        use verity_types::TxBody;
        let kib = (size as u64).div_ceil(1024);
        let proofs = match body {
            TxBody::Fulfil { proof: Some(_), .. } | TxBody::Challenge { .. } => 1,
            _ => 0,
        };
        self.fee_base
            .saturating_add(self.fee_per_kib.saturating_mul(kib))
            .saturating_add(self.fee_per_proof.saturating_mul(proofs))
    }
}

impl Default for Params {
    fn default() -> Self {
        Params {
            challenge_window: 20,
            unbonding_period: 100,
            max_program_bytes: 64 * 1024,
            // A compiled CNN is ~210 KiB, ~360 KiB with committed weights; base64 in an API
            // request adds a third, under the API's 2 MiB body limit.
            max_published_program_bytes: 512 * 1024,
            // Twice this plus the base cost fits `max_block_assembly_ops`: a publication that
            // could never fit a block would block the mempool's queue behind it.
            max_published_program_nodes: (1 << 17) - 1024,
            max_proof_bytes: 512 * 1024,
            max_job_cycles: 1 << 22,
            max_job_timeout: 100_000,
            max_block_txs: 10_000,
            max_block_bytes: 4 * 1024 * 1024,
            // A transfer costs 2, a fulfilment with a ~100 KiB proof ~111: small next to job
            // prices, large next to the free spam they replace.
            fee_base: 1,
            fee_per_kib: 1,
            fee_per_proof: 10,
            max_program_nodes: 1 << 16,
            private_inputs_timeout: 40,
            max_block_assembly_ops: 1 << 18,
            // About 40 minutes of 250 ms blocks: longer than any audit or dispute looks back.
            job_retention: 10_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisAccount {
    pub address: Address,
    pub balance: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisStake {
    pub address: Address,
    pub role: Role,
    pub amount: u64,
}

/// The initial state, as a config file. Unknown fields are errors: a misspelt key must not
/// silently fall back to a default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    pub chain_id: String,
    #[serde(default)]
    pub genesis_time_ms: u64,
    #[serde(default)]
    pub params: Params,
    pub accounts: Vec<GenesisAccount>,
    #[serde(default)]
    pub stakes: Vec<GenesisStake>,
}

impl Genesis {
    /// The consensus validator set: every address staked as a validator at genesis.
    pub fn validators(&self) -> BTreeSet<Address> {
        self.stakes
            .iter()
            .filter(|s| s.role == Role::Validator && s.amount > 0)
            .map(|s| s.address)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_misspelt_genesis_key_is_an_error_naming_it() {
        let good = r#"{"chain_id": "c", "accounts": [], "params": {"challenge_window": 7}}"#;
        let g: Genesis = serde_json::from_str(good).unwrap();
        assert_eq!(g.params.challenge_window, 7);
        for (bad, named) in [
            (r#"{"chain_id": "c", "acounts": []}"#.to_string(), "acounts"),
            (
                r#"{"chain_id": "c", "accounts": [], "params": {"challenge_windw": 7}}"#
                    .to_string(),
                "challenge_windw",
            ),
            (
                format!(
                    r#"{{"chain_id": "c", "accounts": [{{"address": "0x{}", "balance": 1, "extra": 1}}]}}"#,
                    "00".repeat(32)
                ),
                "extra",
            ),
        ] {
            let e = serde_json::from_str::<Genesis>(&bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains(named), "{e}");
        }
    }
}
