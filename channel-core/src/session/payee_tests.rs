//! The payee's rules: the credit window, the offer's cap, payments that must add up, the
//! readings it numbers, and the receipt it checks before signing.

use super::fixtures::*;
use super::*;
use crate::crypto::keccak256;
use crate::primitives::U256;

fn payee() -> PayeeSession {
    PayeeSession::start(offer(), keccak256(b"tx-1"), 1_000, 1_000)
}

#[test]
fn delivers_within_the_window_pauses_at_it_and_stops_beyond_it() {
    let mut p = payee();
    assert_eq!(p.headroom(), 500);
    assert_eq!(
        p.record_delivery(1_300, 1_100),
        Ok(Delivery::Continue {
            headroom_units: 200
        })
    );
    assert_eq!(
        p.record_delivery(1_500, 1_200),
        Ok(Delivery::Continue { headroom_units: 0 })
    );
    // Paid for 300: headroom comes back.
    p.handle_payment(300, U256::from(900u32)).unwrap();
    assert_eq!(p.headroom(), 300);
    assert_eq!(p.unpaid_units(), 200);
    // Delivered beyond the window (501 unpaid): stop, out of credit.
    assert_eq!(
        p.record_delivery(1_801, 1_300),
        Ok(Delivery::Stop(StopReason::LocalOutOfCredit))
    );
    assert_eq!(p.ended(), Some(StopReason::LocalOutOfCredit));
    assert_eq!(p.headroom(), 0);
    let before = p.clone();
    assert_eq!(
        p.record_delivery(1_802, 1_301),
        Err(SessionError::Ended(StopReason::LocalOutOfCredit))
    );
    assert_eq!(p, before);
    // Late payments for delivered units are still taken.
    p.handle_payment(501, U256::from(1_503u32)).unwrap();
    assert_eq!(p.unpaid_units(), 0);
}

#[test]
fn stops_at_the_offer_cap() {
    let mut o = offer();
    o.max_units = Some(400);
    let mut p = PayeeSession::start(o, keccak256(b"tx-1"), 0, 1_000);
    assert_eq!(p.headroom(), 400);
    assert_eq!(
        p.record_delivery(350, 1_100),
        Ok(Delivery::Continue { headroom_units: 50 })
    );
    assert_eq!(
        p.record_delivery(400, 1_200),
        Ok(Delivery::Stop(StopReason::EnergyLimitReached))
    );
}

#[test]
fn refuses_backwards_register_or_time_without_change() {
    let mut p = payee();
    p.record_delivery(1_100, 1_100).unwrap();
    let before = p.clone();
    assert_eq!(
        p.record_delivery(1_099, 1_200),
        Err(SessionError::RegisterBackwards {
            last: 1_100,
            got: 1_099
        })
    );
    assert_eq!(
        p.record_delivery(1_200, 1_099),
        Err(SessionError::TimestampBackwards {
            last: 1_100,
            got: 1_099
        })
    );
    assert_eq!(p, before);
}

#[test]
fn payments_must_match_the_price_and_the_delivery() {
    let mut p = payee();
    p.record_delivery(1_100, 1_100).unwrap();
    let before = p.clone();
    assert_eq!(
        p.handle_payment(10, U256::from(29u8)),
        Err(SessionError::WrongAmount {
            units: 10,
            amount: U256::from(29u8),
            expected: U256::from(30u8)
        })
    );
    assert_eq!(
        p.handle_payment(101, U256::from(303u32)),
        Err(SessionError::PaidBeyondDelivery {
            units: 101,
            total: 101,
            delivered: 100
        })
    );
    assert_eq!(p, before);
    p.handle_payment(100, U256::from(300u32)).unwrap();
    assert_eq!((p.paid_units(), p.paid_amount()), (100, U256::from(300u32)));
}

#[test]
fn numbers_its_readings_and_marks_the_last() {
    let mut p = payee();
    let start = p.next_reading();
    assert_eq!(
        (start.seq, start.register, start.timestamp),
        (0, 1_000, 1_000)
    );
    p.record_delivery(1_040, 1_050).unwrap();
    p.stop(StopReason::EVDisconnected);
    let last = p.next_reading();
    assert_eq!((last.seq, last.register, last.timestamp), (1, 1_040, 1_050));
    assert_eq!(last.stopped_reason, Some(StopReason::EVDisconnected));
    assert_eq!(last.transaction_id, keccak256(b"tx-1"));
    // The payer takes the payee's readings as they are.
    let mut payer = payer(1_000_000);
    payer
        .handle_reading(&start.sign(&meter_key()).unwrap(), 1_050)
        .unwrap();
    let due = payer
        .handle_reading(&last.sign(&meter_key()).unwrap(), 1_050)
        .unwrap();
    assert_eq!(due.units, 40);
    p.handle_payment(due.units, due.amount).unwrap();
    payer.record_paid(due.units, due.additional_hash).unwrap();
    let receipt = payer.receipt().unwrap();
    assert_eq!(p.check_receipt(&receipt), Ok(()));
    let mut short = receipt;
    short.total_units = 39;
    short.total_paid = U256::from(117u8);
    assert_eq!(
        p.check_receipt(&short),
        Err(SessionError::ReceiptMismatch {
            field: "total_units",
            expected: "40".into(),
            got: "39".into()
        })
    );
    let json = serde_json::to_string(&p).unwrap();
    assert_eq!(serde_json::from_str::<PayeeSession>(&json).unwrap(), p);
}

#[test]
fn refuses_payments_whose_price_overflows() {
    let mut o = offer();
    o.price_per_unit = U256::MAX;
    let mut p = PayeeSession::start(o, keccak256(b"tx-1"), 0, 1_000);
    p.record_delivery(2, 1_010).unwrap();
    let before = p.clone();
    assert_eq!(
        p.handle_payment(2, U256::MAX),
        Err(SessionError::AmountOverflow {
            units: 2,
            price: U256::MAX
        })
    );
    assert_eq!(p, before);
    p.handle_payment(1, U256::MAX).unwrap();
}
