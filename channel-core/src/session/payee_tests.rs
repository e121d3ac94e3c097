//! The payee's rules: the credit window, the offer's cap, bills that must add up, the
//! readings it numbers, and the receipt it computes.

use super::fixtures::*;
use super::*;
use crate::crypto::{keccak256, Signer as _};
use crate::primitives::{H256, U256};

fn payee() -> PayeeSession {
    PayeeSession::start(offer(), keccak256(b"tx-1"), 1_000, 1_000)
}

/// Publishes a reading and bills everything unbilled under `key`; returns the units billed.
fn bill_all(p: &mut PayeeSession, key: u8) -> u64 {
    p.publish_reading();
    let units = p.unbilled_units();
    p.record_bill(H256([key; 32]), units, 2_000).unwrap();
    units
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
    assert_eq!(bill_all(&mut p, 1), 300);
    assert_eq!(
        p.record_delivery(1_500, 1_200),
        Ok(Delivery::Continue { headroom_units: 0 })
    );
    // Billed is not paid: no headroom until the bill is paid.
    assert_eq!(p.headroom(), 0);
    p.handle_bill_paid(H256([1; 32])).unwrap();
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
    assert_eq!(bill_all(&mut p, 2), 501);
    p.handle_bill_paid(H256([2; 32])).unwrap();
    assert_eq!(p.unpaid_units(), 0);
    assert!(p.settled());
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
fn bills_cover_published_units_once() {
    let mut p = payee();
    p.record_delivery(1_100, 1_100).unwrap();
    // Nothing published yet: nothing to bill.
    assert_eq!(
        p.record_bill(H256([1; 32]), 1, 2_000),
        Err(SessionError::NothingToBill {
            units: 1,
            unbilled: 0
        })
    );
    p.publish_reading();
    p.record_delivery(1_150, 1_110).unwrap();
    // Delivered 150, published 100.
    assert_eq!(p.unbilled_units(), 100);
    let before = p.clone();
    assert_eq!(
        p.record_bill(H256([1; 32]), 101, 2_000),
        Err(SessionError::NothingToBill {
            units: 101,
            unbilled: 100
        })
    );
    assert_eq!(p, before);
    assert_eq!(
        p.record_bill(H256([1; 32]), 60, 2_000),
        Ok(U256::from(180u8))
    );
    assert_eq!(
        p.record_bill(H256([1; 32]), 10, 2_000),
        Err(SessionError::BillExists {
            secrethash: H256([1; 32])
        })
    );
    p.record_bill(H256([2; 32]), 40, 1_500).unwrap();
    assert_eq!(p.unbilled_units(), 0);
    // The second bill expires and fails: its units are billed again.
    assert_eq!(p.expired_bills(1_500), vec![H256([2; 32])]);
    assert_eq!(p.handle_bill_failed(H256([2; 32])).unwrap().units, 40);
    assert_eq!(p.unbilled_units(), 40);
    assert_eq!(
        p.handle_bill_paid(H256([2; 32])),
        Err(SessionError::UnknownBill {
            secrethash: H256([2; 32])
        })
    );
    p.handle_bill_paid(H256([1; 32])).unwrap();
    assert_eq!((p.paid_units(), p.paid_amount()), (60, U256::from(180u8)));
    assert!(!p.settled());
}

#[test]
fn numbers_its_readings_and_agrees_with_the_payer_on_the_receipt() {
    let mut p = payee();
    let start = p.publish_reading();
    assert_eq!(
        (start.seq, start.register, start.timestamp),
        (0, 1_000, 1_000)
    );
    p.record_delivery(1_040, 1_050).unwrap();
    p.stop(StopReason::EVDisconnected);
    let last = p.publish_reading();
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
    let key = H256([1; 32]);
    p.record_bill(key, 40, 2_000).unwrap();
    payer.begin_payment(key, 40).unwrap();
    p.handle_bill_paid(key).unwrap();
    payer.record_paid(key).unwrap();
    let receipt = payer.receipt().unwrap();
    let ours = p.receipt(payer_key().address()).unwrap();
    assert_eq!(receipt.check_matches(&ours), Ok(()));
    assert_eq!(receipt, ours);
    let mut short = receipt;
    short.total_units = 39;
    short.total_paid = U256::from(117u8);
    assert_eq!(
        short.check_matches(&ours),
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
fn refuses_bills_whose_price_overflows() {
    let mut o = offer();
    o.price_per_unit = U256::MAX;
    let mut p = PayeeSession::start(o, keccak256(b"tx-1"), 0, 1_000);
    p.record_delivery(2, 1_010).unwrap();
    p.publish_reading();
    let before = p.clone();
    assert_eq!(
        p.record_bill(H256([1; 32]), 2, 2_000),
        Err(SessionError::AmountOverflow {
            units: 2,
            price: U256::MAX
        })
    );
    assert_eq!(p, before);
    p.record_bill(H256([1; 32]), 1, 2_000).unwrap();
}

#[test]
fn the_final_reading_is_published_once_and_then_repeated() {
    let mut p = payee();
    p.publish_reading();
    p.record_delivery(1_010, 1_010).unwrap();
    p.stop(StopReason::Remote);
    let last = p.publish_reading();
    assert_eq!(last.stopped_reason, Some(StopReason::Remote));
    assert_eq!(p.publish_reading(), last);
    assert_eq!(p.final_reading(), Some(&last));
}
