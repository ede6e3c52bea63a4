//! Balances, stakes and a provider's announced endpoint.

use verity_types::{Address, Role};

use super::Ctx;
use crate::error::TxError;
use crate::state::{MAX_PENDING_UNBONDINGS, Unbonding};

impl Ctx<'_> {
    pub(super) fn balance(&self, who: &Address) -> u64 {
        self.state.accounts.get(who).map_or(0, |a| a.balance)
    }

    pub(super) fn debit_check(&self, who: &Address, amount: u64) -> Result<(), TxError> {
        let available = self.balance(who);
        if available < amount {
            return Err(TxError::InsufficientFunds {
                needed: amount,
                available,
            });
        }
        Ok(())
    }

    pub(super) fn transfer(
        &mut self,
        from: Address,
        to: Address,
        amount: u64,
    ) -> Result<(), TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        self.debit_check(&from, amount)?;
        self.state.accounts.entry(from).or_default().balance -= amount;
        self.credit(to, amount);
        Ok(())
    }

    pub(super) fn stake(&mut self, who: Address, role: Role, amount: u64) -> Result<(), TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        // Validator stake weighs audits; outside the consensus set it would buy audit weight
        // without running consensus.
        if role == Role::Validator {
            self.require_validator(&who, "hold validator stake")?;
        }
        self.debit_check(&who, amount)?;
        self.state.accounts.entry(who).or_default().balance -= amount;
        let stake = self.state.stakes.entry(who).or_default();
        match role {
            Role::Provider => stake.provider += amount,
            Role::Validator => stake.validator += amount,
        }
        Ok(())
    }

    pub(super) fn unstake(&mut self, who: Address, role: Role, amount: u64) -> Result<(), TxError> {
        if amount == 0 {
            return Err(TxError::ZeroAmount);
        }
        let stake = self.state.stakes.get(&who).cloned().unwrap_or_default();
        let (free, name) = match role {
            Role::Provider => (stake.provider_free(), "provider"),
            Role::Validator => (stake.validator, "validator"),
        };
        if free < amount {
            return Err(TxError::InsufficientStake {
                role: name,
                needed: amount,
                available: free,
            });
        }
        let release_height = self.h() + self.state.params.unbonding_period;
        // Unstakes released at the same height merge; distinct pending releases are capped, so
        // a stake entry (rewritten whole whenever it changes) stays small.
        let same = stake
            .unbonding
            .iter()
            .position(|u| u.role == role && u.release_height == release_height);
        if same.is_none() && stake.unbonding.len() >= MAX_PENDING_UNBONDINGS {
            return Err(TxError::TooManyUnbondings {
                limit: MAX_PENDING_UNBONDINGS,
            });
        }
        let stake = self.state.stakes.entry(who).or_default();
        match role {
            Role::Provider => stake.provider -= amount,
            Role::Validator => stake.validator -= amount,
        }
        match same {
            // Cannot overflow: the sum is at most what was staked.
            Some(i) => stake.unbonding[i].amount += amount,
            None => stake.unbonding.push(Unbonding {
                role,
                amount,
                release_height,
            }),
        }
        self.state.releases.insert((release_height, who), ());
        Ok(())
    }

    pub(super) fn announce(&mut self, provider: Address, endpoint: &str) -> Result<(), TxError> {
        if self
            .state
            .stakes
            .get(&provider)
            .is_none_or(|s| s.provider == 0)
        {
            return Err(TxError::BadEndpoint(
                "only a staked provider announces an endpoint".into(),
            ));
        }
        let scheme_ok = endpoint.starts_with("http://") || endpoint.starts_with("https://");
        if !scheme_ok
            || endpoint
                .chars()
                .any(|c| c.is_whitespace() || c.is_control())
        {
            return Err(TxError::BadEndpoint(format!(
                "`{endpoint}` is not an http(s) URL"
            )));
        }
        self.state.endpoints.insert(provider, endpoint.to_string());
        Ok(())
    }
}
