//! Liquidity: how much a participant puts into a channel, and the hub's settings for moving
//! money through it.
//!
//! - [`deposit_target`]: the new cumulative deposit a deposit request asks for (a total or an
//!   increase), checked against the ledger's record of the channel and the payer's tokens
//!   before anything is submitted, with the ledger's own error for each rule.
//! - [`auto_deposit`]: the hub's matching policy, level-triggered: given the ledger's current
//!   record of one of its channels and its tokens, whether to top its deposit up to the
//!   policy amount, and by how much.
//! - [`check_fee_policy`] and [`check_reveal_timeout`]: the operator's fee and reveal-timeout
//!   settings and the rules they must satisfy at start-up.
//!
//! Everything here is a pure function of its arguments: no clock, no I/O.

use crate::ledger::{ChannelPhase, ChannelRecord, LedgerError};
use crate::mediation::FeePolicy;
use crate::primitives::{Address, U256};

/// What a deposit request names: the new cumulative deposit, or how much to add to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DepositAmount {
    /// The participant's new total deposit (must exceed the current one).
    Total(U256),
    /// How much to add to the participant's total deposit (must be at least 1).
    Additional(U256),
}

/// A deposit that may go ahead: the new cumulative deposit and the tokens it takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlannedDeposit {
    pub total_deposit: U256,
    pub added: U256,
}

/// The deposit `participant` would make in `record` for `amount`, paid from `available`
/// tokens. Refuses, with the error the ledger itself would give, a channel that is not open,
/// a non-participant, a total that does not grow, an increase that overflows, and a payer
/// without enough tokens.
pub fn deposit_target(
    record: &ChannelRecord,
    participant: Address,
    amount: DepositAmount,
    available: U256,
) -> Result<PlannedDeposit, LedgerError> {
    if record.phase != ChannelPhase::Opened {
        return Err(LedgerError::WrongPhase {
            channel_id: record.id,
            expected: ChannelPhase::Opened,
            actual: record.phase,
        });
    }
    let current = record
        .participant(participant)
        .ok_or(LedgerError::NotParticipant {
            channel_id: record.id,
            address: participant,
        })?
        .total_deposit;
    let total_deposit = match amount {
        DepositAmount::Total(total) => total,
        DepositAmount::Additional(added) => current
            .checked_add(added)
            .ok_or(LedgerError::Overflow("total deposit"))?,
    };
    let added = crate::ledger::deposit_increase(current, total_deposit)?;
    // The channel's sum of deposits must stay representable (the ledger checks it too).
    record
        .total_deposit()
        .and_then(|t| t.checked_add(added))
        .ok_or(LedgerError::Overflow("channel total deposit"))?;
    if available < added {
        return Err(LedgerError::InsufficientTokens {
            who: participant,
            needed: added,
            available,
        });
    }
    Ok(PlannedDeposit {
        total_deposit,
        added,
    })
}

/// What the hub's auto-deposit policy says about one channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AutoDeposit {
    /// Nothing to do: not an open channel of the hub, or its deposit already meets the policy.
    Nothing,
    /// Raise the hub's deposit to `total_deposit` (adding `added`).
    TopUp(PlannedDeposit),
    /// The deposit is below the policy but the hub holds too few tokens to top it up.
    Unaffordable { needed: U256, available: U256 },
}

/// The auto-deposit decision for the hub `hub` with policy `policy` (the most it deposits in
/// one open device channel) over the ledger's current `record` of a channel, given the hub's
/// `available` tokens. The hub matches the device's own deposit up to the policy: a channel
/// opened with nothing in it gets nothing, so opening channels from fresh addresses cannot tie
/// up the operator's tokens for free. Level-triggered: it looks only at the current state, so
/// running it again after the top-up (or after a crash) decides [`AutoDeposit::Nothing`].
pub fn auto_deposit(
    policy: U256,
    record: &ChannelRecord,
    hub: Address,
    available: U256,
) -> AutoDeposit {
    if record.phase != ChannelPhase::Opened {
        return AutoDeposit::Nothing;
    }
    let Some(ours) = record.participant(hub) else {
        return AutoDeposit::Nothing;
    };
    let Some(device) = record.partner_of(hub).and_then(|d| record.participant(d)) else {
        return AutoDeposit::Nothing;
    };
    let target = policy.min(device.total_deposit);
    if ours.total_deposit >= target {
        return AutoDeposit::Nothing;
    }
    match deposit_target(record, hub, DepositAmount::Total(target), available) {
        Ok(planned) => AutoDeposit::TopUp(planned),
        Err(LedgerError::InsufficientTokens {
            needed, available, ..
        }) => AutoDeposit::Unaffordable { needed, available },
        // Only an overflow of the channel's sum of deposits remains: nothing sane to do.
        Err(_) => AutoDeposit::Nothing,
    }
}

/// Parts per million: the unit of the proportional mediation fee.
pub use crate::mediation::PPM;

/// Why a mediation setting is refused at start-up.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SettingsError {
    #[error("the proportional mediation fee is at most {PPM} ppm (100 %), got {0}")]
    FeePpmTooLarge(u32),
    #[error("the reveal timeout must be at least 1 second")]
    ZeroRevealTimeout,
    #[error(
        "the reveal timeout ({reveal_timeout} s) must be at most half the settlement window \
         ({settlement_window} s), so a secret can still be registered after a late reveal"
    )]
    RevealTimeoutTooLong {
        reveal_timeout: u64,
        settlement_window: u64,
    },
}

/// Refuses a proportional mediation fee above 100 % (a hub setting, checked at start-up; the
/// fee arithmetic itself is [`FeePolicy::fee_for`]).
pub fn check_fee_policy(fees: &FeePolicy) -> Result<(), SettingsError> {
    if fees.proportional_ppm > PPM {
        return Err(SettingsError::FeePpmTooLarge(fees.proportional_ppm));
    }
    Ok(())
}

/// The default reveal timeout for a settlement window: a fifth of it, at least 1 second.
pub fn default_reveal_timeout(settlement_window: u64) -> u64 {
    (settlement_window / 5).max(1)
}

/// A reveal timeout is at least 1 s and at most half the settlement window (the rule Raiden
/// applies between its reveal and settle timeouts), so a hub that learns a secret just before
/// its incoming lock expires still has time to register it on the ledger.
pub fn check_reveal_timeout(
    reveal_timeout: u64,
    settlement_window: u64,
) -> Result<(), SettingsError> {
    if reveal_timeout == 0 {
        return Err(SettingsError::ZeroRevealTimeout);
    }
    if reveal_timeout > settlement_window / 2 {
        return Err(SettingsError::RevealTimeoutTooLong {
            reveal_timeout,
            settlement_window,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::ledger::{Ledger, LedgerConfig};
    use crate::testing::test_domain;

    const HUB: Address = Address([0x4b; 20]);
    const DEVICE: Address = Address([0xde; 20]);

    fn u(v: u64) -> U256 {
        U256::from(v)
    }

    /// A ledger with a device channel where the device deposited `device` and the hub
    /// `hub_deposit`, and the hub holds exactly `hub_tokens` more tokens.
    fn ledger_with(device: u64, hub_deposit: u64, hub_tokens: u64) -> (Ledger, U256) {
        let mut l = Ledger::new(LedgerConfig {
            domain: test_domain(),
            settlement_timeout: 10,
        });
        let id = l.open_channel(DEVICE, HUB, 1).unwrap();
        for (who, deposit, spare) in [(DEVICE, device, 0), (HUB, hub_deposit, hub_tokens)] {
            if deposit + spare > 0 {
                l.mint(who, u(deposit + spare), 1).unwrap();
            }
            if deposit > 0 {
                l.set_total_deposit(who, id, who, u(deposit), 2).unwrap();
            }
        }
        assert_eq!(l.token_balance(HUB), u(hub_tokens));
        (l, id)
    }

    fn open_record(device: u64, hub: u64) -> ChannelRecord {
        let mut r = ChannelRecord::new(u(7), DEVICE, HUB, 1);
        r.participants[0].total_deposit = u(device);
        r.participants[1].total_deposit = u(hub);
        r
    }

    #[test]
    fn a_total_or_an_increase_becomes_the_new_cumulative_deposit() {
        let r = open_record(10, 30);
        let total = deposit_target(&r, HUB, DepositAmount::Total(u(50)), u(20)).unwrap();
        assert_eq!(
            total,
            PlannedDeposit {
                total_deposit: u(50),
                added: u(20)
            }
        );
        let more = deposit_target(&r, DEVICE, DepositAmount::Additional(u(5)), u(5)).unwrap();
        assert_eq!(
            more,
            PlannedDeposit {
                total_deposit: u(15),
                added: u(5)
            }
        );
    }

    #[test]
    fn refusals_name_the_rule_the_ledger_would_break() {
        let r = open_record(10, 30);
        assert_eq!(
            deposit_target(&r, HUB, DepositAmount::Total(u(30)), u(100)),
            Err(LedgerError::DepositNotIncreasing {
                current: u(30),
                requested: u(30)
            })
        );
        assert_eq!(
            deposit_target(&r, HUB, DepositAmount::Additional(U256::ZERO), u(100)),
            Err(LedgerError::DepositNotIncreasing {
                current: u(30),
                requested: u(30)
            })
        );
        assert_eq!(
            deposit_target(&r, HUB, DepositAmount::Additional(u(21)), u(20)),
            Err(LedgerError::InsufficientTokens {
                who: HUB,
                needed: u(21),
                available: u(20)
            })
        );
        assert_eq!(
            deposit_target(&r, HUB, DepositAmount::Additional(U256::MAX), U256::MAX),
            Err(LedgerError::Overflow("total deposit"))
        );
        assert_eq!(
            deposit_target(&r, HUB, DepositAmount::Total(U256::MAX - u(5)), U256::MAX),
            Err(LedgerError::Overflow("channel total deposit"))
        );
        let stranger = Address([1; 20]);
        assert_eq!(
            deposit_target(&r, stranger, DepositAmount::Total(u(1)), u(1)),
            Err(LedgerError::NotParticipant {
                channel_id: u(7),
                address: stranger
            })
        );
        let mut closed = r.clone();
        closed.phase = ChannelPhase::Closed;
        assert_eq!(
            deposit_target(&closed, HUB, DepositAmount::Total(u(40)), u(100)),
            Err(LedgerError::WrongPhase {
                channel_id: u(7),
                expected: ChannelPhase::Opened,
                actual: ChannelPhase::Closed
            })
        );
    }

    #[test]
    fn the_policy_matches_the_device_deposit_up_to_its_amount() {
        let policy = u(100);
        assert_eq!(
            auto_deposit(policy, &open_record(500, 40), HUB, u(1000)),
            AutoDeposit::TopUp(PlannedDeposit {
                total_deposit: u(100),
                added: u(60)
            }),
            "a large device deposit is matched up to the policy"
        );
        assert_eq!(
            auto_deposit(policy, &open_record(70, 40), HUB, u(1000)),
            AutoDeposit::TopUp(PlannedDeposit {
                total_deposit: u(70),
                added: u(30)
            }),
            "a smaller device deposit is matched exactly"
        );
        assert_eq!(
            auto_deposit(policy, &open_record(0, 0), HUB, u(1000)),
            AutoDeposit::Nothing,
            "an empty channel gets nothing: fresh addresses cannot tie up the hub's tokens"
        );
        assert_eq!(
            auto_deposit(policy, &open_record(500, 100), HUB, u(1000)),
            AutoDeposit::Nothing
        );
        assert_eq!(
            auto_deposit(policy, &open_record(500, 150), HUB, u(1000)),
            AutoDeposit::Nothing
        );
        assert_eq!(
            auto_deposit(policy, &open_record(500, 40), HUB, u(59)),
            AutoDeposit::Unaffordable {
                needed: u(60),
                available: u(59)
            }
        );
        assert_eq!(
            auto_deposit(policy, &open_record(5, 0), Address([1; 20]), u(1000)),
            AutoDeposit::Nothing,
            "not the hub's channel"
        );
        for phase in [ChannelPhase::Closed, ChannelPhase::Settled] {
            let mut r = open_record(500, 0);
            r.phase = phase;
            assert_eq!(auto_deposit(policy, &r, HUB, u(1000)), AutoDeposit::Nothing);
        }
    }

    proptest! {
        /// What the policy decides is what the ledger then does: a top-up is accepted and
        /// leaves the hub's deposit exactly at min(policy, device deposit) (after which the
        /// policy is satisfied); an unaffordable one is refused by the ledger for lack of
        /// tokens.
        #[test]
        fn the_policy_agrees_with_the_ledger(
            policy in 1u64..1_000,
            device in 0u64..1_000,
            hub_deposit in 0u64..1_000,
            hub_tokens in 0u64..1_000,
        ) {
            let (mut l, id) = ledger_with(device, hub_deposit, hub_tokens);
            let before = l.channel(id).unwrap().clone();
            let tokens = l.token_balance(HUB);
            let target = policy.min(device);
            match auto_deposit(u(policy), &before, HUB, tokens) {
                AutoDeposit::Nothing => prop_assert!(u(hub_deposit) >= u(target)),
                AutoDeposit::TopUp(p) => {
                    prop_assert_eq!(p.total_deposit, u(target));
                    l.set_total_deposit(HUB, id, HUB, p.total_deposit, 3).unwrap();
                    let after = l.channel(id).unwrap().clone();
                    prop_assert_eq!(after.participant(HUB).unwrap().total_deposit, u(target));
                    prop_assert_eq!(l.token_balance(HUB), tokens - p.added);
                    prop_assert_eq!(
                        auto_deposit(u(policy), &after, HUB, l.token_balance(HUB)),
                        AutoDeposit::Nothing
                    );
                }
                AutoDeposit::Unaffordable { needed, available } => {
                    prop_assert_eq!(available, tokens);
                    prop_assert_eq!(needed, u(target) - u(hub_deposit));
                    let refused = l.set_total_deposit(HUB, id, HUB, u(target), 3);
                    let is_insufficient =
                        matches!(refused, Err(LedgerError::InsufficientTokens { .. }));
                    prop_assert!(is_insufficient);
                    prop_assert_eq!(l.channel(id).unwrap(), &before);
                }
            }
        }
    }

    #[test]
    fn a_proportional_fee_above_everything_is_refused() {
        let fees = |ppm| FeePolicy {
            flat: u(1),
            proportional_ppm: ppm,
        };
        assert_eq!(check_fee_policy(&fees(PPM)), Ok(()));
        assert_eq!(
            check_fee_policy(&fees(PPM + 1)),
            Err(SettingsError::FeePpmTooLarge(PPM + 1))
        );
    }

    #[test]
    fn the_reveal_timeout_is_at_most_half_the_settlement_window() {
        assert_eq!(check_reveal_timeout(60, 120), Ok(()));
        assert_eq!(check_reveal_timeout(1, 2), Ok(()));
        assert_eq!(
            check_reveal_timeout(61, 120),
            Err(SettingsError::RevealTimeoutTooLong {
                reveal_timeout: 61,
                settlement_window: 120
            })
        );
        assert_eq!(
            check_reveal_timeout(u64::MAX, u64::MAX),
            Err(SettingsError::RevealTimeoutTooLong {
                reveal_timeout: u64::MAX,
                settlement_window: u64::MAX
            })
        );
        assert_eq!(
            check_reveal_timeout(0, 120),
            Err(SettingsError::ZeroRevealTimeout)
        );
        for window in [2, 3, 5, 120, 3600] {
            let d = default_reveal_timeout(window);
            assert_eq!(check_reveal_timeout(d, window), Ok(()), "window {window}");
        }
        assert_eq!(default_reveal_timeout(120), 24);
    }
}
