#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::primitives::{Address, U256};
use channel_core::{Domain, LocalSigner, Signer, H256};

use super::*;
use crate::store::{QueuedKind, UnackedPayment};

fn dev() -> LocalSigner {
    LocalSigner::from_bytes(&[1; 32]).unwrap()
}

fn hub() -> LocalSigner {
    LocalSigner::from_bytes(&[2; 32]).unwrap()
}

fn channel() -> Channel {
    let domain = Domain {
        chain_id: U256::from(5u64),
        token_network_address: Address([9; 20]),
    };
    let mut ch = Channel::new(domain, U256::from(1u64), dev().address(), hub().address());
    ch.handle_ledger_deposit(dev().address(), U256::from(1000u64))
        .unwrap();
    ch
}

fn paid(n: u64) -> (Channel, Vec<UnackedPayment>) {
    let mut ch = channel();
    let mut log = Vec::new();
    for i in 0..n {
        let amount = U256::from(i + 1);
        ch.send_payment(amount, H256::ZERO, &dev()).unwrap();
        log.push(UnackedPayment {
            proof: *ch.our_latest_proof().unwrap(),
            amount,
            kind: QueuedKind::Direct,
        });
    }
    (ch, log)
}

fn event(seq: u64, kind: LedgerEventKind) -> LedgerEvent {
    LedgerEvent {
        seq,
        time: 100 + seq,
        kind,
    }
}

#[test]
fn resync_resends_exactly_what_the_hub_lacks_in_order() {
    let (_, log) = paid(5);
    let plan = plan_resync(log.clone(), 2, 5).unwrap();
    assert_eq!(plan.acked, log[..2]);
    assert_eq!(plan.resend, log[2..]);
    assert_eq!(
        plan.resend.iter().map(|p| p.nonce()).collect::<Vec<_>>(),
        [3, 4, 5]
    );

    // Hub has everything: nothing to re-send.
    let plan = plan_resync(log.clone(), 5, 5).unwrap();
    assert_eq!(plan.acked.len(), 5);
    assert!(plan.resend.is_empty());

    // Log already pruned up to 3 by acks; hub holds 4.
    let plan = plan_resync(log[3..].to_vec(), 4, 5).unwrap();
    assert_eq!(plan.resend, log[4..]);
}

#[test]
fn resync_refuses_a_hub_ahead_of_us_or_a_gap() {
    let (_, log) = paid(3);
    assert!(matches!(
        plan_resync(log.clone(), 4, 3),
        Err(ClientError::HubMisbehaved(_))
    ));
    // Proof 2 missing from the log while the hub holds only 1.
    let gappy = vec![log[0], log[2]];
    assert!(matches!(
        plan_resync(gappy, 0, 3),
        Err(ClientError::InvalidState(_))
    ));
    // The hub lost acknowledged payments (holds 1, our log pruned through 3).
    assert!(matches!(
        plan_resync(Vec::new(), 1, 3),
        Err(ClientError::InvalidState(_))
    ));
}

#[test]
fn ack_must_match_the_sent_proof() {
    let (_, log) = paid(2);
    let sent = log[1];
    let t = sent.proof.proof.balance.transferred_amount;
    assert!(check_accepted(&sent, 2, t).is_ok());
    assert!(check_accepted(&sent, 2, t + U256::from(1u64)).is_err());
    assert!(check_accepted(&sent, 1, t).is_err());
    let r = receipt(&sent);
    assert_eq!(
        (r.nonce, r.amount, r.transferred_amount),
        (2, U256::from(2u64), t)
    );
}

#[test]
fn transient_rejections_are_retried_final_ones_are_not() {
    assert!(rejection_is_transient(tonic::Code::Unavailable));
    assert!(rejection_is_transient(tonic::Code::AlreadyExists));
    assert!(!rejection_is_transient(tonic::Code::InvalidArgument));
    assert!(!rejection_is_transient(tonic::Code::FailedPrecondition));
}

#[test]
fn ledger_events_apply_once_and_only_to_our_channel() {
    let mut ch = channel();
    let hub_deposit = |seq, total: u64| {
        event(
            seq,
            LedgerEventKind::Deposit {
                channel_id: U256::from(1u64),
                participant: hub().address(),
                total_deposit: U256::from(total),
            },
        )
    };
    let e = apply_event(&mut ch, &hub_deposit(1, 50)).unwrap();
    assert!(e.changed);
    assert_eq!(ch.partner().total_deposit, U256::from(50u64));
    // A replay, or an older total, changes nothing and is not an error.
    assert!(!apply_event(&mut ch, &hub_deposit(1, 50)).unwrap().changed);
    assert!(!apply_event(&mut ch, &hub_deposit(1, 20)).unwrap().changed);

    let other = event(
        3,
        LedgerEventKind::Deposit {
            channel_id: U256::from(2u64),
            participant: hub().address(),
            total_deposit: U256::from(999u64),
        },
    );
    assert!(!apply_event(&mut ch, &other).unwrap().changed);
    assert_eq!(ch.partner().total_deposit, U256::from(50u64));

    let w = event(
        4,
        LedgerEventKind::Withdraw {
            channel_id: U256::from(1u64),
            participant: dev().address(),
            total_withdraw: U256::from(100u64),
        },
    );
    assert!(apply_event(&mut ch, &w).unwrap().changed);
    assert_eq!(ch.our().total_withdraw, U256::from(100u64));
}

#[test]
fn hub_close_asks_for_a_contest_and_settlement_reports_our_share() {
    let mut ch = channel();
    let closed = event(
        7,
        LedgerEventKind::ChannelClosed {
            channel_id: U256::from(1u64),
            closing_participant: hub().address(),
            nonce: 0,
            balance_hash: H256::ZERO,
        },
    );
    let e = apply_event(&mut ch, &closed).unwrap();
    assert!(e.changed && e.hub_closed);
    assert_eq!(
        ch.phase(),
        ChannelPhase::Closed {
            closer: hub().address(),
            at: 107
        }
    );
    // Replayed close: no second contest.
    assert!(!apply_event(&mut ch, &closed).unwrap().hub_closed);

    let settled = event(
        8,
        LedgerEventKind::ChannelSettled {
            channel_id: U256::from(1u64),
            participant1: hub().address(),
            participant1_amount: U256::from(30u64),
            participant1_locksroot: H256::ZERO,
            participant2: dev().address(),
            participant2_amount: U256::from(970u64),
            participant2_locksroot: H256::ZERO,
        },
    );
    let e = apply_event(&mut ch, &settled).unwrap();
    assert_eq!(ch.phase(), ChannelPhase::Settled);
    let s = e.settled.unwrap();
    assert_eq!(s.device_amount, U256::from(970u64));
    assert_eq!(s.hub_amount, U256::from(30u64));
    // A close replayed after settlement does not reopen the dispute.
    assert!(!apply_event(&mut ch, &closed).unwrap().changed);
    assert_eq!(ch.phase(), ChannelPhase::Settled);
}

#[test]
fn our_own_close_does_not_trigger_a_contest() {
    let mut ch = channel();
    let closed = event(
        2,
        LedgerEventKind::ChannelClosed {
            channel_id: U256::from(1u64),
            closing_participant: dev().address(),
            nonce: 0,
            balance_hash: H256::ZERO,
        },
    );
    let e = apply_event(&mut ch, &closed).unwrap();
    assert!(e.changed && !e.hub_closed);
}
