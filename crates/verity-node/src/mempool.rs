//! The mempool: admission checks up front, so a submitter hears at once what is wrong, and a
//! bounded queue in arrival order (which is nonce order per account: only the next nonce is
//! admitted).

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use verity_ledger::State;
use verity_types::{Address, Digest, SignedTx, TxBody};

/// Why the mempool refused a transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdmitError {
    #[error("transaction is {size} bytes; the limit is {limit}")]
    TooLarge { size: usize, limit: usize },
    #[error("transaction is for chain `{got}`, this node runs `{expected}`")]
    WrongChain { expected: String, got: String },
    #[error("signature does not match the signer")]
    BadSignature,
    #[error("nonce {got} is wrong: the next nonce for this account is {expected}")]
    BadNonce { expected: u64, got: u64 },
    #[error("insufficient funds: {needed} needed, {available} available")]
    InsufficientFunds { needed: u64, available: u64 },
    #[error("transaction {0} is already pending")]
    Duplicate(Digest),
    #[error("the mempool is full ({0} transactions); try again shortly")]
    Full(usize),
}

pub struct Mempool {
    queue: VecDeque<(Digest, SignedTx)>,
    pending_per_signer: BTreeMap<Address, u64>,
    limit: usize,
    max_tx_bytes: usize,
}

impl Mempool {
    pub fn new(limit: usize, max_tx_bytes: usize) -> Mempool {
        Mempool {
            queue: VecDeque::new(),
            pending_per_signer: BTreeMap::new(),
            limit,
            max_tx_bytes,
        }
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    pub fn contains(&self, id: &Digest) -> bool {
        self.queue.iter().any(|(i, _)| i == id)
    }

    /// The nonce the account's next transaction should carry.
    pub fn next_nonce(&self, state: &State, who: &Address) -> u64 {
        state.accounts.get(who).map_or(0, |a| a.nonce)
            + self.pending_per_signer.get(who).copied().unwrap_or(0)
    }

    pub fn admit(&mut self, tx: SignedTx, state: &State) -> Result<Digest, AdmitError> {
        let size = tx.to_bytes().len();
        if size > self.max_tx_bytes {
            return Err(AdmitError::TooLarge {
                size,
                limit: self.max_tx_bytes,
            });
        }
        if tx.tx.chain_id != state.chain_id {
            return Err(AdmitError::WrongChain {
                expected: state.chain_id.clone(),
                got: tx.tx.chain_id.clone(),
            });
        }
        if !tx.signature_is_valid() {
            return Err(AdmitError::BadSignature);
        }
        let id = tx.id();
        if self.contains(&id) {
            return Err(AdmitError::Duplicate(id));
        }
        let expected = self.next_nonce(state, &tx.tx.signer);
        if tx.tx.nonce != expected {
            return Err(AdmitError::BadNonce {
                expected,
                got: tx.tx.nonce,
            });
        }
        let needed = match &tx.tx.body {
            TxBody::Transfer { amount, .. } | TxBody::Stake { amount, .. } => *amount,
            TxBody::SubmitJob(req) => req.offer.max_price,
            _ => 0,
        };
        let available = state.accounts.get(&tx.tx.signer).map_or(0, |a| a.balance);
        if needed > available {
            return Err(AdmitError::InsufficientFunds { needed, available });
        }
        if self.queue.len() >= self.limit {
            return Err(AdmitError::Full(self.limit));
        }
        *self.pending_per_signer.entry(tx.tx.signer).or_default() += 1;
        self.queue.push_back((id, tx));
        Ok(id)
    }

    /// Up to `max` transactions, oldest first, left in the pool (under consensus a proposal
    /// may not be finalized, so nothing leaves until a block including it is committed).
    pub fn peek(&self, max: usize) -> Vec<SignedTx> {
        self.queue
            .iter()
            .take(max)
            .map(|(_, tx)| tx.clone())
            .collect()
    }

    /// After a block (or after a proposer dropped a transaction): removes `gone`, anything the
    /// state's nonces have moved past, and any transaction left behind a gap in its account's
    /// nonces (it could never be included). Returns the ones removed for a gap.
    pub fn prune(&mut self, state: &State, gone: &BTreeSet<Digest>) -> Vec<SignedTx> {
        let mut next: BTreeMap<Address, u64> = BTreeMap::new();
        let mut orphaned = Vec::new();
        // The queue holds each account's transactions in nonce order (admission takes only
        // the next nonce), so one pass finds the gaps.
        self.queue.retain(|(id, tx)| {
            let account_nonce = state.accounts.get(&tx.tx.signer).map_or(0, |a| a.nonce);
            if gone.contains(id) || tx.tx.nonce < account_nonce {
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
        for (_, tx) in &self.queue {
            *self.pending_per_signer.entry(tx.tx.signer).or_default() += 1;
        }
        orphaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::devnet;
    use verity_types::Tx;

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
        assert_eq!(pool.peek(10), vec![txs[0].clone()]);
        // The account can carry on from the nonce after the one still pending.
        assert_eq!(pool.next_nonce(&state, &txs[0].tx.signer), 1);
        pool.admit(transfer(1), &state).unwrap();
        assert_eq!(pool.len(), 2);
    }
}
