//! The token side of the ledger: account balances, the dev faucet (`mint`, `faucet_mint`),
//! the tokens the token-network contract holds, and planned token movements.
//!
//! Conservation: the sum of all account balances plus the contract's balance equals the total
//! minted, always. Operations move tokens only through a [`Transfers`] plan that is computed
//! (and checked) before any state changes and then applied infallibly.
//!
//! Minting rules: never to the zero address, never zero tokens, and supply and balance
//! arithmetic is checked (an overflow is refused, never wrapped). The dev faucet additionally
//! caps one mint ([`Ledger::check_faucet_mint`]), so no single caller can push the supply near 2^256
//! and break later mints.

use std::collections::BTreeMap;

use crate::primitives::{Address, U256};

use super::error::LedgerError;
use super::events::{LedgerEvent, LedgerEventKind};
use super::Ledger;

fn check_mint(to: Address, amount: U256) -> Result<(), LedgerError> {
    if to == Address::ZERO {
        return Err(LedgerError::MintToZeroAddress);
    }
    if amount.is_zero() {
        return Err(LedgerError::ZeroMint);
    }
    Ok(())
}

impl Ledger {
    /// Largest single dev-faucet mint unless the operator configures another: 10^24 token
    /// units (a million tokens of 18 decimals).
    pub const DEFAULT_FAUCET_MAX_MINT: U256 =
        U256::from_limbs([0x1bce_cced_a100_0000, 0xd3c2, 0, 0]);

    /// Checks one dev-faucet mint of `amount` to `to` against the minting rules and the
    /// faucet's per-call cap `max_mint`, without touching any state.
    pub fn check_faucet_mint(to: Address, amount: U256, max_mint: U256) -> Result<(), LedgerError> {
        check_mint(to, amount)?;
        if amount > max_mint {
            return Err(LedgerError::FaucetCapExceeded {
                requested: amount,
                max: max_mint,
            });
        }
        Ok(())
    }

    /// Creates `amount` new tokens for `to` (a real chain has an ERC-20 here). Refuses the
    /// zero address, a zero amount and any overflow of the supply or the balance.
    pub fn mint(&mut self, to: Address, amount: U256, now: u64) -> Result<(), LedgerError> {
        check_mint(to, amount)?;
        let supply = self
            .total_supply
            .checked_add(amount)
            .ok_or(LedgerError::Overflow("total token supply"))?;
        let balance = self
            .token_balance(to)
            .checked_add(amount)
            .ok_or(LedgerError::Overflow("token balance"))?;
        self.total_supply = supply;
        self.set_balance(to, balance);
        self.emit(now, vec![LedgerEventKind::Minted { to, amount }]);
        Ok(())
    }

    /// Like [`Self::mint`], returning the emitted event.
    pub fn mint_with_events(
        &mut self,
        to: Address,
        amount: U256,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        let before = self.last_event_seq();
        self.mint(to, amount, now)?;
        Ok(self.events_since(before).to_vec())
    }

    /// The dev faucet: [`Self::mint_with_events`] of at most `max_mint` tokens
    /// ([`Self::check_faucet_mint`]).
    pub fn faucet_mint(
        &mut self,
        to: Address,
        amount: U256,
        max_mint: U256,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        Self::check_faucet_mint(to, amount, max_mint)?;
        self.mint_with_events(to, amount, now)
    }

    pub fn token_balance(&self, who: Address) -> U256 {
        self.balances.get(&who).copied().unwrap_or(U256::ZERO)
    }

    /// Tokens held by the token network contract (what channels and kept locks still hold).
    pub fn contract_balance(&self) -> U256 {
        self.contract_balance
    }

    /// Everything ever minted.
    pub fn total_supply(&self) -> U256 {
        self.total_supply
    }

    /// Every account with a non-zero balance, in address order.
    pub fn accounts(&self) -> impl Iterator<Item = (Address, U256)> + '_ {
        self.balances.iter().map(|(a, b)| (*a, *b))
    }

    /// Checks token conservation: accounts + contract == total minted, and the contract holds
    /// exactly what the unsettled channels and the kept locks account for.
    pub fn conservation_holds(&self) -> bool {
        let accounts = self
            .balances
            .values()
            .try_fold(U256::ZERO, |acc, b| acc.checked_add(*b));
        let held = self
            .channels
            .values()
            .try_fold(U256::ZERO, |acc, ch| acc.checked_add(ch.held()?));
        let kept = self
            .unlocks
            .values()
            .try_fold(U256::ZERO, |acc, u| acc.checked_add(u.locked_amount));
        let in_contract = held.zip(kept).and_then(|(h, k)| h.checked_add(k));
        accounts.and_then(|a| a.checked_add(self.contract_balance)) == Some(self.total_supply)
            && in_contract == Some(self.contract_balance)
    }

    /// Starts a plan of token movements against the current balances.
    pub(super) fn transfers(&self) -> Transfers {
        Transfers {
            balances: BTreeMap::new(),
            contract: self.contract_balance,
        }
    }

    /// Applies a checked plan. Cannot fail.
    pub(super) fn apply(&mut self, plan: Transfers) {
        for (who, balance) in plan.balances {
            self.set_balance(who, balance);
        }
        self.contract_balance = plan.contract;
    }

    fn set_balance(&mut self, who: Address, balance: U256) {
        self.touched.account(who);
        if balance.is_zero() {
            self.balances.remove(&who);
        } else {
            self.balances.insert(who, balance);
        }
    }
}

/// Token movements between accounts and the contract, checked as they are planned. Holds the
/// resulting balances; nothing changes until [`Ledger::apply`].
#[derive(Debug)]
pub(super) struct Transfers {
    balances: BTreeMap<Address, U256>,
    contract: U256,
}

impl Transfers {
    fn balance(&self, ledger: &Ledger, who: Address) -> U256 {
        self.balances
            .get(&who)
            .copied()
            .unwrap_or_else(|| ledger.token_balance(who))
    }

    /// `from` pays `amount` into the contract.
    pub(super) fn pay_in(
        &mut self,
        ledger: &Ledger,
        from: Address,
        amount: U256,
    ) -> Result<(), LedgerError> {
        let available = self.balance(ledger, from);
        let left = available
            .checked_sub(amount)
            .ok_or(LedgerError::InsufficientTokens {
                who: from,
                needed: amount,
                available,
            })?;
        let contract = self
            .contract
            .checked_add(amount)
            .ok_or(LedgerError::Overflow("contract balance"))?;
        self.balances.insert(from, left);
        self.contract = contract;
        Ok(())
    }

    /// The contract pays `amount` to `to`.
    pub(super) fn pay_out(
        &mut self,
        ledger: &Ledger,
        to: Address,
        amount: U256,
    ) -> Result<(), LedgerError> {
        let contract = self
            .contract
            .checked_sub(amount)
            .ok_or(LedgerError::Underflow("contract balance"))?;
        let balance = self
            .balance(ledger, to)
            .checked_add(amount)
            .ok_or(LedgerError::Overflow("token balance"))?;
        self.balances.insert(to, balance);
        self.contract = contract;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::LedgerConfig;
    use crate::proofs::Domain;

    fn ledger() -> Ledger {
        Ledger::new(LedgerConfig {
            domain: Domain {
                chain_id: U256::from(1u8),
                token_network_address: Address([9; 20]),
            },
            settlement_timeout: 10,
        })
    }

    #[test]
    fn mint_adds_supply_and_refuses_overflow() {
        let mut l = ledger();
        let a = Address([1; 20]);
        l.mint(a, U256::from(5u8), 1).unwrap();
        assert_eq!(l.token_balance(a), U256::from(5u8));
        assert_eq!(l.total_supply(), U256::from(5u8));
        assert_eq!(l.last_event_seq(), 1);
        let before = l.clone();
        assert_eq!(
            l.mint(a, U256::MAX, 2),
            Err(LedgerError::Overflow("total token supply"))
        );
        assert_eq!(l, before);
        assert!(l.conservation_holds());
    }

    #[test]
    fn the_default_faucet_cap_is_ten_to_the_24() {
        assert_eq!(
            Ledger::DEFAULT_FAUCET_MAX_MINT,
            U256::from(10u8).pow(U256::from(24u8))
        );
    }

    #[test]
    fn a_plan_changes_nothing_until_applied() {
        let mut l = ledger();
        let a = Address([1; 20]);
        l.mint(a, U256::from(5u8), 1).unwrap();
        let mut plan = l.transfers();
        plan.pay_in(&l, a, U256::from(3u8)).unwrap();
        assert_eq!(
            plan.pay_in(&l, a, U256::from(3u8)),
            Err(LedgerError::InsufficientTokens {
                who: a,
                needed: U256::from(3u8),
                available: U256::from(2u8),
            })
        );
        assert_eq!(l.token_balance(a), U256::from(5u8));
        plan.pay_out(&l, a, U256::from(1u8)).unwrap();
        assert_eq!(
            plan.pay_out(&l, a, U256::from(3u8)),
            Err(LedgerError::Underflow("contract balance"))
        );
        l.apply(plan);
        assert_eq!(l.token_balance(a), U256::from(3u8));
        assert_eq!(l.contract_balance(), U256::from(2u8));
    }
}
