//! Fixtures shared by the tests and benchmarks of every crate (a dev-dependency only): the
//! example programs; job requests with a plain offer that a test changes by struct update,
//! e.g. `JobRequest { mode: Mode::Optimistic, ..fib_job(10) }`; genesis and transaction
//! builders ([`genesis`], [`signed`]); and child processes that die with the test
//! ([`process`]).

pub mod process;

use verity_ledger::{Genesis, GenesisAccount, GenesisStake, Params};
use verity_types::{
    Address, JobRequest, Keypair, Mode, Offer, ProgramSource, Role, SignedTx, Tx, TxBody,
};

pub use verity_vm::examples::FIB;

/// `examples/private_sum.masm`: sums private inputs committed on the job.
pub const PRIVATE_SUM: &str = include_str!("../../../examples/private_sum.masm");

/// A fixed-price offer (no auction ramp): `price` to whoever locks within `lock_timeout`
/// blocks, delivery within `timeout`, `collateral` at stake.
pub fn offer(price: u64, lock_timeout: u64, timeout: u64, collateral: u64) -> Offer {
    Offer {
        min_price: price,
        max_price: price,
        ramp_start: 0,
        ramp_period: 0,
        lock_timeout,
        timeout,
        collateral,
    }
}

/// An auction from `min_price` up to `max_price` over `ramp_period` blocks.
pub fn auction(min_price: u64, max_price: u64, ramp_period: u64, base: Offer) -> Offer {
    Offer {
        min_price,
        max_price,
        ramp_period,
        ..base
    }
}

/// A proof-mode job running `program` on `stack_inputs`, with a fixed-price offer of 100
/// (lock within 50 blocks, deliver within 100, collateral 50) and a cap of 2^16 cycles.
pub fn job(program: impl Into<ProgramSource>, stack_inputs: Vec<u64>) -> JobRequest {
    JobRequest {
        program: program.into(),
        stack_inputs,
        private_inputs: None,
        mode: Mode::Proof,
        offer: offer(100, 50, 100, 50),
        max_cycles: 1 << 16,
        min_trust: None,
    }
}

/// [`job`] computing the `n`-th Fibonacci number with [`FIB`].
pub fn fib_job(n: u64) -> JobRequest {
    job(FIB, vec![n])
}

/// [`job`] running [`PRIVATE_SUM`] on 10 and the private inputs `data` (committed on the
/// job), so it outputs `data[0] + data[1] + 10`.
pub fn private_sum_job(data: &[u64]) -> JobRequest {
    JobRequest {
        private_inputs: Some(verity_vm::commit_private(data).expect("a test's data commits")),
        ..job(PRIVATE_SUM, vec![10])
    }
}

/// A genesis under construction: `genesis("chain").account(a, 1_000).stake(a, Role::Provider,
/// 500).build()`. Time 0 and default parameters unless set.
#[derive(Debug, Clone)]
pub struct GenesisBuilder(Genesis);

/// Starts a genesis for chain `chain_id`, with no accounts yet.
pub fn genesis(chain_id: &str) -> GenesisBuilder {
    GenesisBuilder(Genesis {
        chain_id: chain_id.into(),
        genesis_time_ms: 0,
        params: Params::default(),
        accounts: Vec::new(),
        stakes: Vec::new(),
    })
}

impl GenesisBuilder {
    pub fn time_ms(mut self, ms: u64) -> Self {
        self.0.genesis_time_ms = ms;
        self
    }

    pub fn params(mut self, params: Params) -> Self {
        self.0.params = params;
        self
    }

    /// An account holding `balance`.
    pub fn account(mut self, address: Address, balance: u64) -> Self {
        self.0.accounts.push(GenesisAccount { address, balance });
        self
    }

    /// `amount` staked by `address` as `role` (on top of any balance it has).
    pub fn stake(mut self, address: Address, role: Role, amount: u64) -> Self {
        self.0.stakes.push(GenesisStake {
            address,
            role,
            amount,
        });
        self
    }

    pub fn build(self) -> Genesis {
        self.0
    }
}

/// `body` signed by `key` at `nonce`, for chain `chain_id`.
pub fn signed(chain_id: &str, key: &Keypair, nonce: u64, body: TxBody) -> SignedTx {
    Tx {
        chain_id: chain_id.into(),
        signer: key.address(),
        nonce,
        body,
    }
    .sign(key)
}
