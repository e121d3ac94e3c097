//! Sessions survive restarts: the car's, the charger's (each from its own sled store), and
//! the hub's `kill -9`. After each, the session goes on and ends with every metered Wh paid
//! exactly once and one receipt both sides signed.

use std::path::Path;
use std::time::{Duration, Instant};

use voltlane_client::session::{PayeeHandle, PayerHandle};
use voltlane_client::{Client, DeviceStore};

use crate::world::*;

/// Opens a sled store, waiting for the previous process's handles to let go of it.
async fn reopen_store(path: &Path) -> DeviceStore {
    let start = Instant::now();
    loop {
        match DeviceStore::open(path) {
            Ok(s) => return s,
            Err(e) => {
                assert!(start.elapsed() < WAIT, "store never reopened: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Both sides finish; the receipt is the same on both, for `units` at `price`.
async fn finish(payee: &PayeeHandle, payer: &PayerHandle, units: u64, price: u64) {
    let (a, b) = tokio::join!(payee.finish(WAIT), payer.finish(WAIT));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert_eq!(a, b);
    assert_eq!(a.receipt.total_units, units);
    assert_eq!(a.receipt.total_paid, u(units * price));
    a.verify().unwrap();
}

#[tokio::test]
async fn the_car_restarts_mid_session_and_pays_what_was_metered_meanwhile() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let car_path = dir.path().join("car");
    let car = device(&hub, 41, 1_000_000, reopen_store(&car_path).await).await;
    let charger = device(&hub, 42, 10_000, DeviceStore::in_memory()).await;
    let (payee, payer) = start(
        &charger,
        &car,
        charging(2, 1_000),
        budget(1_000_000),
        key(43),
    )
    .await;
    let id = payee.id();
    payee.record(52_100).await.unwrap();
    paid(&payee, 100).await;

    // The car goes away; the charger keeps metering within its credit window.
    drop(payer);
    drop(car);
    tokio::time::sleep(Duration::from_millis(300)).await;
    payee.record(52_400).await.unwrap();
    assert_eq!(payee.status().await.paid_units, 100);

    let car = Client::connect_with_stored_key(&hub.url(), reopen_store(&car_path).await)
        .await
        .unwrap();
    assert_eq!(car.session_ids().unwrap().1, vec![id]);
    let payer = car.resume_payer_session(id).await.unwrap();
    paid(&payee, 400).await;
    payee.record(52_450).await.unwrap();
    paid(&payee, 450).await;
    finish(&payee, &payer, 450, 2).await;
    eventually("the car's locks released", || async {
        car.balances().unwrap().our_locked.is_zero()
    })
    .await;
    assert_eq!(car.balances().unwrap().ours, u(1_000_000 - 900));
}

#[tokio::test]
async fn the_charger_restarts_mid_session_and_bills_on_from_its_store() {
    let hub = hub().await;
    let dir = tempfile::tempdir().unwrap();
    let charger_path = dir.path().join("charger");
    let car = device(&hub, 51, 1_000_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 52, 10_000, reopen_store(&charger_path).await).await;
    let meter = key(53);
    let (payee, payer) = start(
        &charger,
        &car,
        charging(3, 1_000),
        budget(1_000_000),
        meter.clone(),
    )
    .await;
    let id = payee.id();
    payee.record(52_200).await.unwrap();
    paid(&payee, 200).await;

    drop(payee);
    drop(charger);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let charger = Client::connect_with_stored_key(&hub.url(), reopen_store(&charger_path).await)
        .await
        .unwrap();
    assert_eq!(charger.session_ids().unwrap().0, vec![id]);
    let payee = charger.resume_payee_session(id, meter, 600).await.unwrap();
    let s = payee.status().await;
    assert_eq!(
        (s.delivered_units, s.paid_units),
        (200, 200),
        "the store kept the session"
    );
    payee.record(52_350).await.unwrap();
    paid(&payee, 350).await;
    finish(&payee, &payer, 350, 3).await;
    eventually("the charger's incoming locks unlocked", || async {
        charger.balances().unwrap().hub_locked.is_zero()
    })
    .await;
    assert_eq!(charger.balances().unwrap().ours, u(10_000 + 1_050));
}

#[tokio::test]
async fn a_session_survives_the_hub_being_killed() {
    let mut hub = hub().await;
    let car = device(&hub, 61, 1_000_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 62, 10_000, DeviceStore::in_memory()).await;
    let (payee, payer) = start(
        &charger,
        &car,
        charging(1, 1_000),
        budget(1_000_000),
        key(63),
    )
    .await;
    payee.record(52_300).await.unwrap();
    paid(&payee, 300).await;

    hub.kill9().unwrap();
    hub.restart().await.unwrap();
    // Once both devices are back the charger meters on; the relay learns the session again
    // from the charger (reopen, republish) and the car (re-accept).
    let start = Instant::now();
    loop {
        match payee.record(52_500).await {
            Ok(_) => break,
            Err(e) => {
                assert!(start.elapsed() < WAIT, "the charger never got back: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    paid(&payee, 500).await;
    finish(&payee, &payer, 500, 1).await;
    eventually("locks released", || async {
        car.balances().unwrap().our_locked.is_zero()
            && charger.balances().unwrap().hub_locked.is_zero()
    })
    .await;
    assert_eq!(car.balances().unwrap().ours, u(1_000_000 - 500));
    assert_eq!(charger.balances().unwrap().ours, u(10_000 + 500));
}
