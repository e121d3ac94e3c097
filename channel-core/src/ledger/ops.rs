//! [`LedgerOp`]: every transaction a channel participant sends to the ledger, as a value.
//!
//! The channel monitor's actions, the hub's liquidity deposits and a device's own calls all
//! come down to these. A ledger backend executes them: the embedded ledger at once through
//! [`Ledger::execute`], a chain backend as transactions whose effects arrive later as events
//! (fed to a [`super::LedgerMirror`]). The dev faucet's mint is not one of them: it exists
//! only on the embedded ledger.

use crate::channel::{CloseTransaction, UpdateTransaction};
use crate::crypto::Signature;
use crate::locks::Secret;
use crate::primitives::{Address, U256};
use crate::proofs::WithdrawProof;

use super::Ledger;
use super::{LedgerError, LedgerEvent, LedgerEventKind, SettleTransaction};

/// A withdraw proof with the withdrawing participant's and the partner's signatures (what
/// `set_total_withdraw` and `cooperative_settle` take).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CoSignedWithdraw {
    pub proof: WithdrawProof,
    pub participant_signature: Signature,
    pub partner_signature: Signature,
}

/// One ledger transaction (see the module docs). The sender is the backend's own account.
// Built once per transaction and consumed at once: boxing the proof-carrying variants would
// only add an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LedgerOp {
    /// Opens a channel with `partner`, depositing `total_deposit` in the same transaction if
    /// it is not zero.
    OpenChannel {
        partner: Address,
        total_deposit: U256,
    },
    /// Raises `participant`'s cumulative deposit in `channel_id` to `total_deposit`.
    SetTotalDeposit {
        channel_id: U256,
        participant: Address,
        total_deposit: U256,
    },
    SetTotalWithdraw(CoSignedWithdraw),
    Close(CloseTransaction),
    Update(UpdateTransaction),
    Settle(SettleTransaction),
    RegisterSecret(Secret),
    /// Pays out the locks kept back at settlement for `sender → receiver`.
    Unlock {
        channel_id: U256,
        receiver: Address,
        sender: Address,
        packed_locks: Vec<u8>,
    },
    CooperativeSettle {
        channel_id: U256,
        withdraws: [CoSignedWithdraw; 2],
    },
}

impl LedgerOp {
    /// The operation's name, as the contract function it calls.
    pub fn name(&self) -> &'static str {
        match self {
            LedgerOp::OpenChannel { .. } => "openChannel",
            LedgerOp::SetTotalDeposit { .. } => "setTotalDeposit",
            LedgerOp::SetTotalWithdraw(_) => "setTotalWithdraw",
            LedgerOp::Close(_) => "closeChannel",
            LedgerOp::Update(_) => "updateNonClosingBalanceProof",
            LedgerOp::Settle(_) => "settleChannel",
            LedgerOp::RegisterSecret(_) => "registerSecret",
            LedgerOp::Unlock { .. } => "unlock",
            LedgerOp::CooperativeSettle { .. } => "cooperativeSettle",
        }
    }

    /// The channel the operation is about (none for an open, whose id the ledger assigns,
    /// and for a secret registration).
    pub fn channel_id(&self) -> Option<U256> {
        match self {
            LedgerOp::OpenChannel { .. } | LedgerOp::RegisterSecret(_) => None,
            LedgerOp::SetTotalDeposit { channel_id, .. }
            | LedgerOp::Unlock { channel_id, .. }
            | LedgerOp::CooperativeSettle { channel_id, .. } => Some(*channel_id),
            LedgerOp::SetTotalWithdraw(w) => Some(w.proof.channel_identifier),
            LedgerOp::Close(tx) => Some(tx.channel_id),
            LedgerOp::Update(tx) => Some(tx.channel_id),
            LedgerOp::Settle(tx) => Some(tx.channel_id),
        }
    }

    /// Of `events` (read from a ledger after this operation took effect, in order), the ones
    /// that may be its effect: the events of its channel, the registration of its secret, or,
    /// for an open, the events of the newest channel opened with its partner. A backend whose
    /// effects arrive as events (a chain) uses it to pick an operation's events out of those
    /// read with it.
    pub fn own_events(&self, events: Vec<LedgerEvent>) -> Vec<LedgerEvent> {
        let channel = match self {
            LedgerOp::OpenChannel { partner, .. } => {
                events.iter().rev().find_map(|e| match e.kind {
                    LedgerEventKind::ChannelOpened {
                        channel_id,
                        participant1,
                        participant2,
                        ..
                    } if participant1 == *partner || participant2 == *partner => Some(channel_id),
                    _ => None,
                })
            }
            _ => self.channel_id(),
        };
        events
            .into_iter()
            .filter(|e| match (self, &e.kind) {
                (
                    LedgerOp::RegisterSecret(secret),
                    LedgerEventKind::SecretRegistered { secrethash, .. },
                ) => secret.hash() == *secrethash,
                (_, kind) => channel.is_some() && kind.channel_id() == channel,
            })
            .collect()
    }
}

impl Ledger {
    /// Executes `op` sent by `caller` at ledger time `now`: the events it emitted, or why it
    /// was refused (and then nothing changed).
    pub fn execute(
        &mut self,
        caller: Address,
        op: &LedgerOp,
        now: u64,
    ) -> Result<Vec<LedgerEvent>, LedgerError> {
        match op {
            LedgerOp::OpenChannel {
                partner,
                total_deposit,
            } => {
                let before = self.last_event_seq();
                if total_deposit.is_zero() {
                    self.open_channel(caller, *partner, now)?;
                } else {
                    self.open_channel_with_deposit(caller, *partner, *total_deposit, now)?;
                }
                Ok(self.events_since(before).to_vec())
            }
            LedgerOp::SetTotalDeposit {
                channel_id,
                participant,
                total_deposit,
            } => self.set_total_deposit(caller, *channel_id, *participant, *total_deposit, now),
            LedgerOp::SetTotalWithdraw(w) => self.set_total_withdraw(
                caller,
                &w.proof,
                &w.participant_signature,
                &w.partner_signature,
                now,
            ),
            LedgerOp::Close(tx) => self.close_channel(
                caller,
                tx.channel_id,
                &tx.partner_proof,
                &tx.closing_signature,
                now,
            ),
            LedgerOp::Update(tx) => self.update_non_closing_balance_proof(
                caller,
                tx.channel_id,
                &tx.closer_proof,
                &tx.non_closing_signature,
                now,
            ),
            LedgerOp::Settle(settle) => self.settle_channel(caller, settle, now),
            LedgerOp::RegisterSecret(secret) => self.register_secret(caller, *secret, now),
            LedgerOp::Unlock {
                channel_id,
                receiver,
                sender,
                packed_locks,
            } => self.unlock(caller, *channel_id, *receiver, *sender, packed_locks, now),
            LedgerOp::CooperativeSettle {
                channel_id,
                withdraws: [w1, w2],
            } => self.cooperative_settle(
                caller,
                *channel_id,
                &w1.proof,
                (&w1.participant_signature, &w1.partner_signature),
                &w2.proof,
                (&w2.participant_signature, &w2.partner_signature),
                now,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::{ChannelPhase, LedgerConfig};
    use crate::testing::{test_domain, Pair, Side};
    use crate::Signer;

    fn u(n: u64) -> U256 {
        U256::from(n)
    }

    /// A whole dispute as operations: open with a deposit, deposit, pay both ways off-chain,
    /// a close with an old proof, the update, the settle: payouts as the proofs say.
    #[test]
    fn a_dispute_runs_as_ledger_ops() {
        let mut pair = Pair::new(u(300), u(200));
        let (a, b) = (pair.key_a.address(), pair.key_b.address());
        let mut ledger = Ledger::new(LedgerConfig {
            domain: test_domain(),
            settlement_timeout: 10,
        });
        for who in [a, b] {
            ledger.mint(who, u(1_000), 1).unwrap();
        }
        let open = LedgerOp::OpenChannel {
            partner: b,
            total_deposit: u(300),
        };
        let events = ledger.execute(a, &open, 2).unwrap();
        assert_eq!(events.len(), 2, "opened and deposited");
        let deposit = LedgerOp::SetTotalDeposit {
            channel_id: u(1),
            participant: b,
            total_deposit: u(200),
        };
        ledger.execute(b, &deposit, 3).unwrap();
        pair.pay(Side::A, u(50)).unwrap();
        let stale = *pair.b.partner_latest_proof().unwrap();
        pair.pay(Side::A, u(30)).unwrap();
        pair.pay(Side::B, u(20)).unwrap();
        // B closes with A's first proof (50, not 80); A updates with B's (20 to A).
        let (b_ch, key_b) = pair.parts(Side::B);
        let mut close = b_ch.close(key_b).unwrap();
        close.partner_proof = stale;
        close.closing_signature = stale.counter_sign_close(key_b).unwrap();
        assert_eq!(
            ledger.execute(b, &LedgerOp::Close(close), 4).unwrap().len(),
            1
        );
        pair.a.handle_ledger_closed(b, 4).unwrap();
        let update = pair.a.update_transaction(&pair.key_a).unwrap().unwrap();
        ledger.execute(a, &LedgerOp::Update(update), 5).unwrap();
        // A settles: its own stored proof is the stale one (nonce 1), from its archive.
        let record = ledger.channel(u(1)).unwrap().clone();
        let settle = pair
            .a
            .settle_transaction(&record, |nonce| {
                (nonce == stale.proof.nonce).then_some(stale.proof.balance)
            })
            .unwrap();
        let op = LedgerOp::Settle(settle);
        assert_eq!(op.name(), "settleChannel");
        let early = ledger.execute(a, &op, 14);
        assert!(matches!(
            early,
            Err(LedgerError::SettlementWindowOpen { .. })
        ));
        ledger.execute(a, &op, 15).unwrap();
        assert_eq!(ledger.channel(u(1)).unwrap().phase, ChannelPhase::Settled);
        assert_eq!(ledger.token_balance(a), u(1_000 - 50 + 20));
        assert_eq!(ledger.token_balance(b), u(1_000 + 50 - 20));
    }

    /// `own_events` picks an operation's own events: those of its channel, its secret, or
    /// (for an open) the new channel with its partner, and no other channel's.
    #[test]
    fn an_operation_picks_its_own_events_only() {
        let pair = Pair::new(u(300), u(200));
        let (a, b) = (pair.key_a.address(), pair.key_b.address());
        let c = Address([0xcc; 20]);
        let mut ledger = Ledger::new(LedgerConfig {
            domain: test_domain(),
            settlement_timeout: 10,
        });
        for who in [a, b, c] {
            ledger.mint(who, u(1_000), 1).unwrap();
        }
        let open_ab = LedgerOp::OpenChannel {
            partner: b,
            total_deposit: u(10),
        };
        let mut all = ledger.execute(a, &open_ab, 2).unwrap();
        let ab = all.clone();
        let open_ac = LedgerOp::OpenChannel {
            partner: c,
            total_deposit: u(10),
        };
        let ac = ledger.execute(a, &open_ac, 2).unwrap();
        all.extend(ac.clone());
        let deposit = LedgerOp::SetTotalDeposit {
            channel_id: u(2),
            participant: c,
            total_deposit: u(5),
        };
        let deposited = ledger.execute(c, &deposit, 3).unwrap();
        all.extend(deposited.clone());
        let secret = Secret(crate::primitives::H256([7; 32]));
        let register = LedgerOp::RegisterSecret(secret);
        let registered = ledger.execute(a, &register, 4).unwrap();
        all.extend(registered.clone());
        assert_eq!(ab.len(), 2, "opened and deposited");
        assert_eq!(open_ab.own_events(all.clone()), ab);
        let mut ac_all = ac;
        ac_all.extend(deposited.clone());
        assert_eq!(open_ac.own_events(all.clone()), ac_all);
        assert_eq!(deposit.channel_id(), Some(u(2)));
        assert_eq!(deposit.own_events(ab.clone()), vec![]);
        assert_eq!(register.own_events(all.clone()), registered);
        let other = LedgerOp::RegisterSecret(Secret(crate::primitives::H256([8; 32])));
        assert_eq!(other.own_events(all), vec![]);
    }
}
