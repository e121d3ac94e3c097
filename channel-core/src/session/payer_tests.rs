//! The payer's rules: what is due per reading, every refusal class (with no state change),
//! payments in flight, acknowledgements and failures.

use super::fixtures::*;
use super::*;
use crate::crypto::{keccak256, Signer as _};
use crate::locks::Secret;
use crate::mediation::{PaymentRequest, SignedPaymentRequest};
use crate::primitives::H256;
use crate::primitives::U256;
use crate::testing::test_domain;

/// Refusal helper: the reading is refused with `want` and the session is unchanged.
fn refused(session: &mut PayerSession, r: &SignedMeterReading, now: u64, want: SessionError) {
    let before = session.clone();
    assert_eq!(session.handle_reading(r, now), Err(want));
    assert_eq!(*session, before);
}

fn started(budget: u64) -> PayerSession {
    let mut s = payer(budget);
    let due = s.handle_reading(&reading(0, 1_000, 1_000), 1_000).unwrap();
    assert_eq!(
        (due.units, due.amount, due.metered_units),
        (0, U256::ZERO, 0)
    );
    s
}

#[test]
fn meter_start_is_free_and_later_readings_are_due_exactly() {
    let mut s = started(1_000_000);
    let r = reading(1, 1_030, 1_010);
    let due = s.handle_reading(&r, 1_010).unwrap();
    assert_eq!(due.units, 30);
    assert_eq!(due.amount, U256::from(90u8));
    assert_eq!(due.additional_hash, r.reading.hash());
    assert_eq!(due.metered_units, 30);
    assert_eq!(s.in_flight_units(), 0);
    assert_eq!(s.uncovered_units(), 30);
    let key = H256([1; 32]);
    assert_eq!(s.begin_payment(key, 30).unwrap(), due);
    assert_eq!((s.in_flight_units(), s.uncovered_units()), (30, 0));
    s.record_paid(key).unwrap();
    assert_eq!((s.paid_units(), s.paid_amount()), (30, U256::from(90u8)));
    // The same register again, later: nothing new is due.
    let due = s.handle_reading(&reading(2, 1_030, 1_020), 1_020).unwrap();
    assert_eq!(due.units, 0);
    assert_eq!(s.in_flight_units(), 0);
}

#[test]
fn refuses_readings_signed_by_another_key_or_tampered() {
    let mut s = started(1_000_000);
    let by_payee = raw(1, 1_010, 1_010).sign(&payee_key()).unwrap();
    assert!(matches!(
        s.clone().handle_reading(&by_payee, 1_010),
        Err(SessionError::BadReadingSignature(_))
    ));
    let mut tampered = reading(1, 1_010, 1_010);
    tampered.reading.register = 1_020;
    let before = s.clone();
    assert!(matches!(
        s.handle_reading(&tampered, 1_010),
        Err(SessionError::BadReadingSignature(_))
    ));
    assert_eq!(s, before);
}

#[test]
fn refuses_other_sessions_units_and_transactions() {
    let mut s = started(1_000_000);
    let mut other = raw(1, 1_010, 1_010);
    other.session_id = crate::primitives::H256([8; 32]);
    refused(
        &mut s,
        &other.sign(&meter_key()).unwrap(),
        1_010,
        SessionError::WrongSession {
            expected: offer().session_id,
            got: other.session_id,
        },
    );
    let mut seconds = raw(1, 1_010, 1_010);
    seconds.measurand = MeterUnit::SecondOfAccess;
    refused(
        &mut s,
        &seconds.sign(&meter_key()).unwrap(),
        1_010,
        SessionError::WrongUnit {
            expected: MeterUnit::WattHour,
            got: MeterUnit::SecondOfAccess,
        },
    );
    let mut tx = raw(1, 1_010, 1_010);
    tx.transaction_id = keccak256(b"tx-2");
    refused(
        &mut s,
        &tx.sign(&meter_key()).unwrap(),
        1_010,
        SessionError::WrongTransaction {
            expected: keccak256(b"tx-1"),
            got: keccak256(b"tx-2"),
        },
    );
}

#[test]
fn refuses_repeated_seq_and_backwards_register_or_time() {
    let mut s = started(1_000_000);
    s.handle_reading(&reading(3, 1_010, 1_010), 1_010).unwrap();
    refused(
        &mut s,
        &reading(3, 1_011, 1_011),
        1_011,
        SessionError::SeqNotIncreasing { last: 3, got: 3 },
    );
    refused(
        &mut s,
        &reading(2, 1_011, 1_011),
        1_011,
        SessionError::SeqNotIncreasing { last: 3, got: 2 },
    );
    refused(
        &mut s,
        &reading(4, 1_009, 1_011),
        1_011,
        SessionError::RegisterBackwards {
            last: 1_010,
            got: 1_009,
        },
    );
    refused(
        &mut s,
        &reading(4, 1_010, 1_009),
        1_011,
        SessionError::TimestampBackwards {
            last: 1_010,
            got: 1_009,
        },
    );
    // Gaps in seq are fine (a lost reading).
    s.handle_reading(&reading(9, 1_012, 1_012), 1_012).unwrap();
}

#[test]
fn refuses_jumps_faster_than_the_maximum_rate() {
    let mut s = started(1_000_000);
    // 11 kW for 10 s (plus the rounding second) is 33.6 Wh.
    refused(
        &mut s,
        &reading(1, 1_034, 1_010),
        1_010,
        SessionError::TooFast {
            units: 34,
            elapsed_secs: 10,
            max_units_per_hour: 11_000,
        },
    );
    s.handle_reading(&reading(1, 1_033, 1_010), 1_010).unwrap();
    // Same second: at most 11000/3600 ≈ 3 Wh.
    refused(
        &mut s,
        &reading(2, 1_037, 1_010),
        1_010,
        SessionError::TooFast {
            units: 4,
            elapsed_secs: 0,
            max_units_per_hour: 11_000,
        },
    );
}

#[test]
fn coarse_readings_at_full_power_are_accepted() {
    // A charger that reports once per kWh at exactly 11 kW: a kWh every 327.27 s, stamped
    // in whole seconds.
    let mut s = started(1_000_000);
    let mut paid = 0;
    for k in 1..=10u64 {
        let ts = 1_000 + k * 3_600 / 11;
        let r = reading(k, 1_000 + k * 1_000, ts);
        let due = s.handle_reading(&r, ts).unwrap();
        assert_eq!(due.units, 1_000);
        s.begin_payment(due.additional_hash, due.units).unwrap();
        s.record_paid(due.additional_hash).unwrap();
        paid += due.units;
    }
    assert_eq!(paid, 10_000);
    assert_eq!(s.paid_amount(), U256::from(30_000u32));
}

#[test]
fn refuses_readings_beyond_the_budget_or_the_offer_cap() {
    // 300 tokens at 3 per Wh: 100 Wh.
    let mut s = started(300);
    assert_eq!(s.budget_units(), 100);
    refused(
        &mut s,
        &reading(1, 1_101, 1_100),
        1_100,
        SessionError::BudgetExceeded {
            metered: 101,
            budget_units: 100,
        },
    );
    let due = s.handle_reading(&reading(1, 1_100, 1_100), 1_100).unwrap();
    assert_eq!(due.amount, U256::from(300u32));
    // A rich payer is still held to the offer's 20 kWh.
    assert_eq!(payer(u64::MAX).budget_units(), 20_000);
}

#[test]
fn refuses_timestamps_in_the_future_beyond_tolerance() {
    let mut s = started(1_000_000);
    refused(
        &mut s,
        &reading(1, 1_001, 1_016),
        1_010,
        SessionError::FromTheFuture {
            timestamp: 1_016,
            now: 1_010,
            tolerance_secs: 5,
        },
    );
    s.handle_reading(&reading(1, 1_001, 1_015), 1_010).unwrap();
}

#[test]
fn the_budget_keeps_amounts_within_uint256() {
    let mut o = offer();
    o.price_per_unit = U256::MAX;
    o.max_units = None;
    let signed = o.sign(&payee_key()).unwrap();
    let mut limits = limits(0);
    limits.budget = U256::MAX;
    let mut s = PayerSession::accept(
        &signed,
        &test_domain(),
        payer_key().address(),
        limits,
        1_000,
    )
    .unwrap();
    assert_eq!(s.budget_units(), 1);
    s.handle_reading(&reading(0, 0, 1_000), 1_000).unwrap();
    let due = s.handle_reading(&reading(1, 1, 1_010), 1_010).unwrap();
    assert_eq!(due.amount, U256::MAX);
    // Over budget before it could overflow: the budget check guards the arithmetic.
    refused(
        &mut s,
        &reading(2, 2, 1_020),
        1_020,
        SessionError::BudgetExceeded {
            metered: 2,
            budget_units: 1,
        },
    );
}

#[test]
fn a_stopped_reading_ends_the_session() {
    let mut s = started(1_000_000);
    let mut last = raw(1, 1_020, 1_010);
    last.stopped_reason = Some(StopReason::EVDisconnected);
    let due = s
        .handle_reading(&last.sign(&meter_key()).unwrap(), 1_010)
        .unwrap();
    assert_eq!(due.units, 20);
    assert_eq!(s.ended(), Some(StopReason::EVDisconnected));
    refused(
        &mut s,
        &reading(2, 1_021, 1_011),
        1_011,
        SessionError::Ended(StopReason::EVDisconnected),
    );
    // The due for the final reading can still be paid.
    s.begin_payment(last.hash(), 20).unwrap();
    s.record_paid(last.hash()).unwrap();
    assert_eq!(s.paid_units(), 20);
}

/// The payee's bill for `units` of the latest reading `r`.
fn bill(r: &SignedMeterReading, amount: u64, secret: u8) -> SignedPaymentRequest {
    PaymentRequest {
        domain: test_domain(),
        payee: payee_key().address(),
        amount: U256::from(amount),
        secrethash: Secret(H256([secret; 32])).hash(),
        payment_id: r.reading.seq,
        expires_at: 2_000,
        memo_hash: r.reading.hash(),
    }
    .sign(&payee_key())
    .unwrap()
}

#[test]
fn payments_in_flight_never_cover_a_unit_twice() {
    let mut s = started(1_000_000);
    let r1 = reading(1, 1_010, 1_010);
    let r2 = reading(2, 1_025, 1_020);
    let r3 = reading(3, 1_030, 1_030);
    let (k1, k2, k3) = (H256([1; 32]), H256([2; 32]), H256([3; 32]));
    assert_eq!(s.handle_reading(&r1, 1_010).unwrap().units, 10);
    s.begin_payment(k1, 10).unwrap();
    assert_eq!(s.handle_reading(&r2, 1_020).unwrap().units, 15);
    let before = s.clone();
    assert_eq!(
        s.begin_payment(k2, 16),
        Err(SessionError::NothingDue {
            units: 16,
            uncovered: 15
        })
    );
    assert_eq!(
        s.begin_payment(k1, 5),
        Err(SessionError::PaymentExists { key: k1 })
    );
    assert_eq!(s, before);
    s.begin_payment(k2, 15).unwrap();
    assert_eq!(s.in_flight_units(), 25);
    assert_eq!(
        s.record_paid(k3),
        Err(SessionError::UnknownPayment { key: k3 })
    );
    // Payments complete in any order.
    s.record_paid(k2).unwrap();
    // The first payment failed: its units are due again with the next reading.
    assert_eq!(s.handle_payment_failed(k1).unwrap().units, 10);
    assert_eq!(s.in_flight_units(), 0);
    let due = s.handle_reading(&r3, 1_030).unwrap();
    assert_eq!(due.units, 15);
    s.begin_payment(k3, 15).unwrap();
    s.record_paid(k3).unwrap();
    assert_eq!(s.paid_units(), 30);
    assert_eq!(s.paid_units(), s.metered_units());
    // The receipt names the latest reading a payment committed to.
    assert_eq!(s.receipt().unwrap().last_reading_hash, r3.reading.hash());
}

#[test]
fn bills_pay_whole_due_units_of_the_latest_reading_only() {
    let mut s = started(1_000_000);
    let r1 = reading(1, 1_010, 1_010);
    s.handle_reading(&r1, 1_010).unwrap();
    // 10 Wh at 3 per Wh: 30 tokens, or any whole number of units below it.
    assert_eq!(s.check_bill(&bill(&r1, 30, 1), 1_010), Ok(10));
    assert_eq!(s.check_bill(&bill(&r1, 9, 1), 1_010), Ok(3));
    assert_eq!(
        s.check_bill(&bill(&r1, 33, 1), 1_010),
        Err(SessionError::BillBeyondMetered {
            amount: U256::from(33u8),
            uncovered: 10
        })
    );
    assert_eq!(
        s.check_bill(&bill(&r1, 31, 1), 1_010),
        Err(SessionError::BillNotWholeUnits {
            amount: U256::from(31u8),
            price: U256::from(3u8)
        })
    );
    // A bill naming another reading, or none.
    let r0 = reading(0, 1_000, 1_000);
    assert_eq!(
        s.check_bill(&bill(&r0, 30, 1), 1_010),
        Err(SessionError::BillForUnknownReading {
            memo_hash: r0.reading.hash()
        })
    );
    // Signed by someone else than the session's payee, or tampered, or expired.
    let mut other = bill(&r1, 30, 1).request;
    other.payee = meter_key().address();
    let other = other.sign(&meter_key()).unwrap();
    assert_eq!(
        s.check_bill(&other, 1_010),
        Err(SessionError::NotSigner {
            expected: payee_key().address(),
            signer: meter_key().address()
        })
    );
    let mut tampered = bill(&r1, 3, 1);
    tampered.request.amount = U256::from(30u8);
    assert!(matches!(
        s.check_bill(&tampered, 1_010),
        Err(SessionError::BadBill(_))
    ));
    assert!(matches!(
        s.check_bill(&bill(&r1, 30, 1), 2_000),
        Err(SessionError::BadBill(_))
    ));
    // What is in flight is not billed twice.
    s.begin_payment(H256([9; 32]), 10).unwrap();
    assert_eq!(
        s.check_bill(&bill(&r1, 3, 2), 1_010),
        Err(SessionError::BillBeyondMetered {
            amount: U256::from(3u8),
            uncovered: 0
        })
    );
}

#[test]
fn replays_of_the_first_and_latest_reading_are_recognised() {
    let mut s = started(1_000_000);
    let r1 = reading(1, 1_010, 1_010);
    s.handle_reading(&r1, 1_010).unwrap();
    assert!(s.is_replay(&reading(0, 1_000, 1_000)));
    assert!(s.is_replay(&r1));
    assert!(!s.is_replay(&reading(1, 1_011, 1_010)));
}

#[test]
fn accept_refuses_bad_offers() {
    let signed = offer().sign(&payee_key()).unwrap();
    let mut forged = signed;
    forged.offer.credit_window_units = 1_000_000;
    assert!(matches!(
        PayerSession::accept(
            &forged,
            &test_domain(),
            payer_key().address(),
            limits(1),
            1_000
        ),
        Err(SessionError::BadOfferSignature(_))
    ));
    assert!(matches!(
        PayerSession::accept(
            &signed,
            &test_domain(),
            payer_key().address(),
            limits(1),
            5_000
        ),
        Err(SessionError::OfferExpired { .. })
    ));
}

#[test]
fn session_state_survives_serde() {
    let mut s = started(1_000_000);
    s.handle_reading(&reading(1, 1_010, 1_010), 1_010).unwrap();
    let json = serde_json::to_string(&s).unwrap();
    let mut back: PayerSession = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    refused(
        &mut back,
        &reading(1, 1_011, 1_011),
        1_011,
        SessionError::SeqNotIncreasing { last: 1, got: 1 },
    );
}
