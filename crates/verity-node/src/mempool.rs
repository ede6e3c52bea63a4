//! The mempool: admission checks up front, so a submitter hears at once what is wrong, and a
//! bounded queue in arrival order (which is nonce order per account: only the next nonce is
//! admitted).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use verity_ledger::{State, TxError, precheck};
use verity_types::{Address, SignedTx, TxBody, TxId};

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    /// The ledger's own inclusion checks (chain, limits, signature, nonce, fee).
    #[error("{0}")]
    Invalid(TxError),
    #[error("insufficient funds: {needed} needed (fee included), {available} available")]
    InsufficientFunds { needed: u64, available: u64 },
    #[error("account {0} already has {1} transactions pending; wait for some to be included")]
    TooManyPending(String, u64),
    #[error("transaction {0} is already pending")]
    Duplicate(TxId),
    #[error("the mempool is full ({0} transactions); try again shortly")]
    Full(usize),
}

impl AdmitError {
    /// A short, fixed name for the refusal (a metrics label).
    pub fn reason(&self) -> &'static str {
        match self {
            AdmitError::TooLarge { .. } => "too_large",
            AdmitError::Invalid(e) => e.reason(),
            AdmitError::InsufficientFunds { .. } => "insufficient_funds",
            AdmitError::TooManyPending(..) => "too_many_pending",
            AdmitError::Duplicate(_) => "duplicate",
            AdmitError::Full(_) => "mempool_full",
        }
    }
}

/// Most transactions one account may have waiting: one key cannot fill the pool.
pub const MAX_PENDING_PER_SIGNER: u64 = 64;
/// Most bytes the pool holds in all.
pub const MAX_POOL_BYTES: usize = 64 * 1024 * 1024;

struct Pending {
    id: TxId,
    tx: SignedTx,
    /// Fee plus what the transaction moves out of the balance.
    cost: u64,
    size: usize,
    /// What assembling its program costs (`verity_ledger::assembly_ops`).
    assembly_ops: u64,
}

pub struct Mempool {
    queue: VecDeque<Pending>,
    pending_per_signer: BTreeMap<Address, u64>,
    pending_cost: BTreeMap<Address, u64>,
    bytes: usize,
    limit: usize,
    max_tx_bytes: usize,
    max_bytes: usize,
}

impl Mempool {
    pub fn new(limit: usize, max_tx_bytes: usize) -> Mempool {
        Mempool {
            queue: VecDeque::new(),
            pending_per_signer: BTreeMap::new(),
            pending_cost: BTreeMap::new(),
            bytes: 0,
            limit,
            max_tx_bytes,
            max_bytes: MAX_POOL_BYTES,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn contains(&self, id: &TxId) -> bool {
        self.queue.iter().any(|p| p.id == *id)
    }

    /// The nonce the account's next transaction should carry.
    pub fn next_nonce(&self, state: &State, who: &Address) -> u64 {
        state.accounts.get(who).map_or(0, |a| a.nonce)
            + self.pending_per_signer.get(who).copied().unwrap_or(0)
    }

    pub fn admit(&mut self, tx: SignedTx, state: &State) -> Result<TxId, AdmitError> {
        let size = tx.encoded_len();
        if size > self.max_tx_bytes {
            return Err(AdmitError::TooLarge {
                size,
                limit: self.max_tx_bytes,
            });
        }
        let id = tx.id();
        if self.contains(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        let signer = tx.tx.signer;
        let pending = self.pending_per_signer.get(&signer).copied().unwrap_or(0);
        if pending >= MAX_PENDING_PER_SIGNER {
            return Err(AdmitError::TooManyPending(signer.short(), pending));
        }
        let expected = self.next_nonce(state, &signer);
        // The same checks the ledger makes before executing: what passes here is includable.
        let admissible = precheck(state, &tx, expected).map_err(AdmitError::Invalid)?;
        let fee = admissible.fee;
        let moved = match &tx.tx.body {
            TxBody::Transfer { amount, .. } | TxBody::Stake { amount, .. } => *amount,
            TxBody::SubmitJob(req) => req.offer.max_price,
            _ => 0,
        };
        // What this account's pending transactions will already have spent comes first.
        let committed = self.pending_cost.get(&signer).copied().unwrap_or(0);
        let needed = moved.saturating_add(fee).saturating_add(committed);
        let available = state.accounts.get(&signer).map_or(0, |a| a.balance);
        if needed > available {
            return Err(AdmitError::InsufficientFunds { needed, available });
        }
        if self.queue.len() >= self.limit || self.bytes + size > self.max_bytes {
            return Err(AdmitError::Full(self.queue.len()));
        }
        *self.pending_cost.entry(signer).or_default() += moved.saturating_add(fee);
        self.bytes += size;
        *self.pending_per_signer.entry(signer).or_default() += 1;
        self.queue.push_back(Pending {
            id,
            tx,
            cost: moved.saturating_add(fee),
            size,
            assembly_ops: admissible.assembly_ops,
        });
        Ok(id)
    }

    /// Transactions oldest first, left in the pool (under consensus a proposal may not be
    /// finalized, so nothing leaves until a block including it is committed): at most `max`
    /// of them, `max_bytes` of encoded transactions and `max_assembly_ops` of program
    /// assembly, the ledger's block limits.
    pub fn peek(&self, max: usize, max_bytes: usize, max_assembly_ops: u64) -> Vec<SignedTx> {
        let (mut bytes, mut ops) = (0usize, 0u64);
        self.queue
            .iter()
            .take(max)
            .take_while(|p| {
                bytes += p.size;
                ops = ops.saturating_add(p.assembly_ops);
                bytes <= max_bytes && ops <= max_assembly_ops
            })
            .map(|p| p.tx.clone())
            .collect()
    }

    /// After a block (or after a proposer dropped a transaction): removes `gone`, anything the
    /// state's nonces have moved past, and any transaction left behind a gap in its account's
    /// nonces (it could never be included). Returns the ones removed for a gap.
    pub fn prune(&mut self, state: &State, gone: &BTreeSet<TxId>) -> Vec<SignedTx> {
        let mut next: BTreeMap<Address, u64> = BTreeMap::new();
        let mut orphaned = Vec::new();
        // The queue holds each account's transactions in nonce order (admission takes only
        // the next nonce), so one pass finds the gaps.
        self.queue.retain(|p| {
            let tx = &p.tx;
            let account_nonce = state.accounts.get(&tx.tx.signer).map_or(0, |a| a.nonce);
            if gone.contains(&p.id) || tx.tx.nonce < account_nonce {
                return false;
            }
            let expected = next.entry(tx.tx.signer).or_insert(account_nonce);
            if tx.tx.nonce == *expected {
                *expected += 1;
                true
            } else {
                orphaned.push(tx.clone());
                false
            }
        });
        self.pending_per_signer.clear();
        self.pending_cost.clear();
        self.bytes = 0;
        for p in &self.queue {
            *self.pending_per_signer.entry(p.tx.tx.signer).or_default() += 1;
            *self.pending_cost.entry(p.tx.tx.signer).or_default() += p.cost;
            self.bytes += p.size;
        }
        orphaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet;
    use verity_types::{Keypair, Tx};

    fn transfer(nonce: u64) -> SignedTx {
        let key = devnet::dev_key("client");
        Tx {
            chain_id: devnet::DEVNET_CHAIN_ID.into(),
            signer: key.address(),
            nonce,
            body: TxBody::Transfer {
                to: devnet::dev_key("provider").address(),
                amount: 1,
            },
        }
        .sign(&key)
    }

    #[test]
    fn a_key_without_funds_or_over_its_share_cannot_fill_the_pool() {
        let state = State::from_genesis(&devnet::genesis()).unwrap();
        let mut pool = Mempool::new(10_000, 1 << 20);
        // A fresh key cannot pay the fee: nothing is admitted.
        let fresh = Keypair::dev("fresh");
        let spam = Tx {
            chain_id: devnet::DEVNET_CHAIN_ID.into(),
            signer: fresh.address(),
            nonce: 0,
            body: TxBody::Announce {
                endpoint: "http://x".into(),
            },
        }
        .sign(&fresh);
        assert!(matches!(
            pool.admit(spam, &state),
            Err(AdmitError::Invalid(TxError::CannotPayFee { .. }))
        ));
        // A funded key gets MAX_PENDING_PER_SIGNER slots, not the pool.
        for nonce in 0..MAX_PENDING_PER_SIGNER {
            pool.admit(transfer(nonce), &state).unwrap();
        }
        assert!(matches!(
            pool.admit(transfer(MAX_PENDING_PER_SIGNER), &state),
            Err(AdmitError::TooManyPending(..))
        ));
        // Pending spending counts: a balance is not spent twice across pending transactions.
        let client = devnet::dev_key("client");
        let balance = state.accounts[&client.address()].balance;
        let mut other = Mempool::new(100, 1 << 20);
        let all = |nonce| {
            Tx {
                chain_id: devnet::DEVNET_CHAIN_ID.into(),
                signer: client.address(),
                nonce,
                body: TxBody::Transfer {
                    to: fresh.address(),
                    amount: balance / 2 + 1,
                },
            }
            .sign(&client)
        };
        other.admit(all(0), &state).unwrap();
        assert!(matches!(
            other.admit(all(1), &state),
            Err(AdmitError::InsufficientFunds { .. })
        ));
    }

    #[test]
    fn a_dropped_transaction_takes_its_successors_with_it() {
        let state = State::from_genesis(&devnet::genesis()).unwrap();
        let mut pool = Mempool::new(100, 1 << 20);
        let txs: Vec<SignedTx> = (0..4).map(transfer).collect();
        for tx in &txs {
            pool.admit(tx.clone(), &state).unwrap();
        }
        // A proposer dropped nonce 1: 2 and 3 can never be included now.
        let orphaned = pool.prune(&state, &BTreeSet::from([txs[1].id()]));
        assert_eq!(
            orphaned.iter().map(|t| t.tx.nonce).collect::<Vec<_>>(),
            vec![2, 3]
        );
        assert_eq!(pool.peek(10, usize::MAX, u64::MAX), vec![txs[0].clone()]);
        // The account can carry on from the nonce after the one still pending.
        assert_eq!(pool.next_nonce(&state, &txs[0].tx.signer), 1);
        pool.admit(transfer(1), &state).unwrap();
        assert_eq!(pool.len(), 2);
    }
}
