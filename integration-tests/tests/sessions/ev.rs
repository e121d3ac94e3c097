//! A whole EV charging session with exact units and money, a car that stops paying at its
//! budget, and the receipt.

use std::time::Duration;

use channel_core::session::{Delivery, StopReason};
use voltlane_client::session::{receipt_json, verify_receipt_json, PayerUpdate};
use voltlane_client::DeviceStore;

use crate::world::*;

#[tokio::test]
async fn a_charging_session_pays_exactly_every_metered_wh_on_both_sides() {
    let hub = hub().await;
    let car = device(&hub, 1, 1_000_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 2, 10_000, DeviceStore::in_memory()).await;
    let meter = key(3);
    let (payee, payer) = start(&charger, &car, charging(2, 600), budget(1_000_000), meter).await;
    let mut updates = payer.updates();

    // Coarse, irregular readings: the register moves 0..400 Wh a time.
    let steps = [120u64, 0, 400, 35, 250, 1, 300, 199];
    let mut register = 52_000;
    for step in steps {
        tokio::time::sleep(Duration::from_millis(300)).await;
        register += step.min(payee.status().await.headroom_units);
        match payee.record(register).await.unwrap() {
            Delivery::Continue { .. } => {}
            Delivery::Stop(r) => panic!("stopped early: {r:?}"),
        }
        paid(&payee, register - 52_000).await;
    }
    let delivered = register - 52_000;
    let (receipt, payer_receipt) = tokio::join!(payee.finish(WAIT), payer.finish(WAIT));
    let (receipt, payer_receipt) = (receipt.unwrap(), payer_receipt.unwrap());
    assert_eq!(receipt, payer_receipt);
    assert_eq!(receipt.receipt.total_units, delivered);
    assert_eq!(receipt.receipt.total_paid, u(2 * delivered));
    receipt.verify().unwrap();

    // Money on every side: the charger got exactly 2 tokens per Wh, the car paid exactly it.
    eventually("locks released", || async {
        car.balances().unwrap().our_locked.is_zero()
            && charger.balances().unwrap().hub_locked.is_zero()
    })
    .await;
    assert_eq!(charger.balances().unwrap().ours, u(10_000 + 2 * delivered));
    assert_eq!(car.balances().unwrap().ours, u(1_000_000 - 2 * delivered));

    // The car saw every reading and every payment.
    let mut paid_units = 0;
    while let Ok(u) = updates.try_recv() {
        if let PayerUpdate::Paid { units, .. } = u {
            paid_units += units;
        }
    }
    assert_eq!(paid_units, delivered);

    // The receipt travels as JSON and verifies offline; any tampering is refused.
    let json = receipt_json(&receipt).unwrap();
    assert_eq!(verify_receipt_json(&json).unwrap(), receipt);
    let tampered = json.replace(
        &format!("\"{}\"", 2 * delivered),
        &format!("\"{}\"", 2 * delivered + 2),
    );
    assert_ne!(tampered, json);
    assert!(verify_receipt_json(&tampered).is_err());
}

#[tokio::test]
async fn a_car_that_stops_paying_at_its_budget_is_cut_off_within_the_credit_window() {
    let hub = hub().await;
    let car = device(&hub, 11, 1_000_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 12, 10_000, DeviceStore::in_memory()).await;
    const WINDOW: u64 = 300;
    // 3 tokens per Wh, a budget of 1,500 tokens: 500 Wh.
    let (payee, payer) = start(&charger, &car, charging(3, WINDOW), budget(1_500), key(13)).await;
    let mut updates = payer.updates();
    let mut register = 52_000;
    let stopped = loop {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let headroom = payee.wait_headroom(Duration::from_secs(5)).await;
        let step = match headroom {
            Ok(h) => h.min(200),
            // No payment made room: the charger stops delivering.
            Err(_) => break payee.stop(StopReason::LocalOutOfCredit).await.map(|_| ()),
        };
        register += step;
        let status = payee.status().await;
        assert!(
            status.delivered_units - status.paid_units <= WINDOW + 200,
            "never owed more than the window plus one step"
        );
        if let Delivery::Stop(reason) = payee.record(register).await.unwrap() {
            assert_eq!(reason, StopReason::LocalOutOfCredit);
            break Ok(());
        }
        let s = payee.status().await;
        assert!(
            s.unpaid_units <= WINDOW,
            "unpaid {} > window",
            s.unpaid_units
        );
    };
    stopped.unwrap();
    let s = payee.status().await;
    // The car pays every reading within its budget (no reading is paid in part), so it paid
    // for at most 500 Wh and for more than 500 Wh minus one step of 200.
    assert!(
        (300..=500).contains(&s.paid_units),
        "paid {} Wh",
        s.paid_units
    );
    assert!(s.delivered_units - s.paid_units <= WINDOW);
    let p = payer.status().await;
    assert_eq!(p.paid_units, s.paid_units);
    assert_eq!(p.paid_amount, u(3 * s.paid_units));
    let mut refused = false;
    while let Ok(update) = updates.try_recv() {
        if let PayerUpdate::Refused(e) = update {
            assert!(
                matches!(
                    e,
                    channel_core::session::SessionError::BudgetExceeded {
                        budget_units: 500,
                        ..
                    }
                ),
                "{e}"
            );
            refused = true;
        }
    }
    assert!(refused, "the reading beyond the budget was refused");
    // Both sign what was paid: the unpaid units are the payee's loss, bounded by the window.
    let (a, b) = tokio::join!(payer.finish(WAIT), payee.finish(WAIT));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(a.receipt.total_paid, u(3 * s.paid_units));
}
