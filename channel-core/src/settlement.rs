//! The settlement arithmetic of TokenNetwork v0.50: how a closed channel's total deposit is
//! split between the participants from the balance proofs on the ledger.
//!
//! Additions saturate at 2^256 - 1 and subtractions stop at zero, exactly as the contract does,
//! so the outcome is defined for any input, including hostile ones, and never pays out more
//! than the channel holds.

use crate::primitives::U256;
use crate::proofs::BalanceData;

/// One participant's side of a closed channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SettlementInput {
    pub deposit: U256,
    pub withdrawn: U256,
    /// transferred and locked amounts from the balance proof this participant signed.
    pub transferred: U256,
    pub locked: U256,
}

impl SettlementInput {
    pub fn new(deposit: U256, withdrawn: U256, balance: &BalanceData) -> Self {
        Self {
            deposit,
            withdrawn,
            transferred: balance.transferred_amount,
            locked: balance.locked_amount,
        }
    }
}

/// What settle pays and keeps back, per participant, in the caller's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct SettlementOutcome {
    pub p1_amount: U256,
    pub p2_amount: U256,
    /// The part of p1's own locked amount kept in the ledger for `unlock`.
    pub p1_locked_kept: U256,
    /// The part of p2's own locked amount kept in the ledger for `unlock`.
    pub p2_locked_kept: U256,
}

impl SettlementOutcome {
    /// Everything the outcome accounts for; always equals the total available deposit.
    pub fn total(&self) -> U256 {
        self.p1_amount
            .saturating_add(self.p2_amount)
            .saturating_add(self.p1_locked_kept)
            .saturating_add(self.p2_locked_kept)
    }
}

/// Splits the channel as the contract's `settleChannel` does.
pub fn settle_amounts(p1: &SettlementInput, p2: &SettlementInput) -> SettlementOutcome {
    let key = |p: &SettlementInput| p.transferred.saturating_add(p.locked);
    if key(p1) <= key(p2) {
        settle_ordered(p1, p2)
    } else {
        let o = settle_ordered(p2, p1);
        SettlementOutcome {
            p1_amount: o.p2_amount,
            p2_amount: o.p1_amount,
            p1_locked_kept: o.p2_locked_kept,
            p2_locked_kept: o.p1_locked_kept,
        }
    }
}

/// Requires `T1 + L1 <= T2 + L2`.
fn settle_ordered(p1: &SettlementInput, p2: &SettlementInput) -> SettlementOutcome {
    let tad = p1
        .deposit
        .saturating_add(p2.deposit)
        .saturating_sub(p1.withdrawn)
        .saturating_sub(p2.withdrawn);
    let received_net = p2
        .transferred
        .saturating_add(p2.locked)
        .saturating_sub(p1.transferred.saturating_add(p1.locked));
    // Left to right, as the contract evaluates it: (received net + D1) - W1.
    let rmax1 = tad.min(
        received_net
            .saturating_add(p1.deposit)
            .saturating_sub(p1.withdrawn),
    );
    let rmax2 = tad.saturating_sub(rmax1);
    let sl2 = rmax1.min(p2.locked);
    let s1 = rmax1.saturating_sub(sl2);
    let sl1 = rmax2.min(p1.locked);
    let s2 = rmax2.saturating_sub(sl1);
    SettlementOutcome {
        p1_amount: s1,
        p2_amount: s2,
        p1_locked_kept: sl1,
        p2_locked_kept: sl2,
    }
}
