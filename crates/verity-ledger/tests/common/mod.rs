//! Shared test harness: a small chain with funded accounts and a block builder.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::Arc;

use verity_ledger::{BlockHeader, BlockOutcome, Genesis, MemorySource, Params, State, TxError};
use verity_types::{
    Address, Digest, JobRequest, Keypair, Mode, Offer, Receipt, Role, SignedTx, StackOutputs,
    TxBody,
};

pub const CHAIN: &str = "verity-test";
pub use verity_testkit::FIB;

pub struct Chain {
    pub state: State,
    pub blocks: Vec<(BlockHeader, Vec<SignedTx>)>,
    pub genesis: Genesis,
    /// Jobs past their retention, as a node archives them: with the state's, every job.
    pub archive: std::collections::BTreeMap<verity_types::JobId, verity_ledger::Job>,
    /// The same chain as a node holds it: a state read from a store (see
    /// [`Chain::check_over_source`]), with the store.
    pub mirror: Option<(Arc<MemorySource>, State)>,
}

pub fn key(name: &str) -> Keypair {
    Keypair::dev(name)
}

pub fn addr(name: &str) -> Address {
    key(name).address()
}

impl Chain {
    /// A chain without transaction fees, so settlement tests can assert exact payouts; fees
    /// have their own tests and the property tests run with them ([`Chain::with_fees`]).
    pub fn new() -> Chain {
        Chain::with_retention(Params::default().job_retention)
    }

    /// [`Chain::new`] whose ended jobs leave the state `job_retention` blocks after they end.
    pub fn with_retention(job_retention: u64) -> Chain {
        Chain::with_params(Params {
            challenge_window: 5,
            unbonding_period: 10,
            fee_base: 0,
            fee_per_kib: 0,
            fee_per_proof: 0,
            job_retention,
            ..Params::default()
        })
    }

    /// A chain with the default fees.
    pub fn with_fees() -> Chain {
        Chain::with_params(Params {
            challenge_window: 5,
            unbonding_period: 10,
            ..Params::default()
        })
    }

    pub fn with_params(params: Params) -> Chain {
        let mut genesis = verity_testkit::genesis(CHAIN).time_ms(1_000).params(params);
        for name in ["client", "p1", "p2", "watcher"] {
            genesis = genesis.account(addr(name), 1_000_000);
        }
        // `p1` and `p2` are providers; `watcher` is the one consensus validator (audits and
        // canaries are for the validator set only).
        let genesis = genesis
            .stake(addr("p1"), Role::Provider, 10_000)
            .stake(addr("p2"), Role::Provider, 10_000)
            .stake(addr("watcher"), Role::Validator, 1_000)
            .build();
        Chain::from_genesis(genesis)
    }

    pub fn from_genesis(genesis: Genesis) -> Chain {
        Chain {
            state: State::from_genesis(&genesis).unwrap(),
            blocks: Vec::new(),
            genesis,
            archive: Default::default(),
            mirror: None,
        }
    }

    pub fn height(&self) -> u64 {
        self.state.height
    }

    pub fn tx(&self, who: &str, body: TxBody) -> SignedTx {
        self.tx_by(&key(who), body)
    }

    /// A transaction signed by any key (not only the named dev accounts).
    pub fn tx_by(&self, k: &Keypair, body: TxBody) -> SignedTx {
        let nonce = self.state.accounts.get(&k.address()).map_or(0, |a| a.nonce);
        verity_testkit::signed(CHAIN, k, nonce, body)
    }

    pub fn block(&mut self, txs: Vec<SignedTx>) -> BlockOutcome {
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height: self.state.height + 1,
            timestamp_ms: 1_000 + (self.state.height + 1) * 250,
            parent: Digest::blake3(&self.state.height.to_le_bytes()),
            proposer: addr("validator"),
        };
        let before = self.state.clone();
        let out = verity_ledger::apply_block(&mut self.state, &header, &txs).expect("valid block");
        for id in &out.retired {
            self.archive
                .insert(*id, before.as_submitted(&before.jobs[id]));
        }
        self.check_over_source(&before, &header, &txs, &out);
        self.blocks.push((header, txs));
        out
    }

    /// Runs the block again on a state read from a store holding `before`'s entries (a
    /// `MemorySource`), as a node's state is, and checks that it decides the same: the same
    /// outcome, and a change set that takes the store to exactly the in-memory state's entries
    /// after the block. So every ledger test runs against both ways a state holds its entries.
    ///
    /// Between blocks the state over the store is kept, put over the new store (as a node
    /// does), unless the test changed the in-memory state directly: on odd heights it keeps
    /// what it holds in memory as a cache, on even heights it drops it and reads everything
    /// from the store.
    fn check_over_source(
        &mut self,
        before: &State,
        header: &BlockHeader,
        txs: &[SignedTx],
        out: &BlockOutcome,
    ) {
        let entries: BTreeMap<Vec<u8>, Vec<u8>> = before.entries().into_iter().collect();
        let mut backed = match self.mirror.take() {
            Some((store, state)) if *store.entries() == entries => state,
            _ => State::over(Arc::new(MemorySource::new(entries.clone()))).unwrap(),
        };
        let again = verity_ledger::apply_block(&mut backed, header, txs).expect("valid block");
        assert_eq!(again.tx_results, out.tx_results, "block {}", header.height);
        assert_eq!(again.events, out.events, "block {}", header.height);
        assert_eq!(again.retired, out.retired, "block {}", header.height);
        assert_eq!(backed.source_fault(), None);
        let mut store = MemorySource::new(entries);
        store.apply(&again.changes);
        let after: BTreeMap<Vec<u8>, Vec<u8>> = self.state.entries().into_iter().collect();
        assert!(
            *store.entries() == after,
            "block {}: over a store, the block changed the state otherwise",
            header.height
        );
        let store = Arc::new(store);
        let keep = if header.height % 2 == 1 {
            usize::MAX
        } else {
            0
        };
        backed.rebase(store.clone(), keep).unwrap();
        self.mirror = Some((store, backed));
    }

    /// Applies one transaction in its own block and returns its result.
    pub fn send(&mut self, who: &str, body: TxBody) -> Result<(), TxError> {
        let tx = self.tx(who, body);
        self.block(vec![tx]).tx_results.remove(0)
    }

    pub fn advance_to(&mut self, height: u64) {
        while self.state.height < height {
            self.block(vec![]);
        }
    }

    pub fn balance(&self, name: &str) -> u64 {
        self.state
            .accounts
            .get(&addr(name))
            .map_or(0, |a| a.balance)
    }

    pub fn check_supply(&self) {
        assert_eq!(
            self.state.total_held() + u128::from(self.state.burned),
            u128::from(self.state.genesis_supply),
            "supply is conserved"
        );
    }
}

/// A real proof of fib(n), made once per `n` per test binary.
pub fn fib_receipt(n: u64) -> Receipt {
    use std::sync::{Mutex, OnceLock};
    static CACHE: OnceLock<Mutex<std::collections::BTreeMap<u64, Receipt>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    if let Some(r) = cache.lock().unwrap().get(&n) {
        return r.clone();
    }
    let program = verity_vm::Program::assemble(FIB, "fib.masm").unwrap();
    let inputs = verity_vm::Inputs::from_stack_list(&n.to_string()).unwrap();
    let r = verity_vm::prove(&program, &inputs, verity_vm::ProveOptions::default()).unwrap();
    cache.lock().unwrap().insert(n, r.clone());
    r
}

/// `outputs` with the top of the stack replaced by `top` (a different, valid result).
pub fn with_top(outputs: &StackOutputs, top: u64) -> StackOutputs {
    let mut v = outputs.to_vec();
    v[0] = top;
    StackOutputs::new(&v).unwrap()
}

pub fn offer() -> Offer {
    Offer {
        min_price: 100,
        max_price: 1_000,
        ramp_start: 0,
        ramp_period: 9,
        lock_timeout: 10,
        timeout: 20,
        collateral: 500,
    }
}

pub fn fib_job(n: u64, mode: Mode) -> JobRequest {
    JobRequest {
        mode,
        offer: offer(),
        ..verity_testkit::fib_job(n)
    }
}

impl Chain {
    /// The state this chain would have after one more empty block (to compare a block whose
    /// transactions were all rejected against).
    pub fn clone_state_after_empty_block(&self) -> State {
        let mut s = self.state.clone();
        let header = BlockHeader {
            chain_id: CHAIN.into(),
            height: s.height + 1,
            timestamp_ms: 1_000 + (s.height + 1) * 250,
            parent: Digest::default(),
            proposer: addr("validator"),
        };
        verity_ledger::apply_block(&mut s, &header, &[]).unwrap();
        s
    }

    /// What the state must be after a block holding only `tx` that the ledger rejected with
    /// `error`: as after an empty block if the transaction could not be included at all;
    /// otherwise that, plus its fee paid (burned) and its nonce consumed, and nothing else.
    pub fn expected_after_rejection(&self, empty: &State, tx: &SignedTx, error: &TxError) -> State {
        let mut s = empty.clone();
        if error.invalidates_block() {
            return s;
        }
        let fee = verity_ledger::fee_of(&s, tx);
        let account = s.accounts.entry(tx.tx.signer).or_default();
        account.balance -= fee;
        account.nonce += 1;
        s.burned += fee;
        s.fees_burned += fee;
        s
    }
}

impl Default for Chain {
    fn default() -> Self {
        Chain::new()
    }
}
