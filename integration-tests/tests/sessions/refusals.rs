//! Every class of bad reading, published by a charger that cheats: the hub refuses what it
//! can check (signatures, session, seq, a bill for another reading) with a status naming
//! the problem; the car's SDK refuses the rest (backwards, too fast, from the future, over
//! budget, a bill beyond the reading) with its precise error. Nothing is paid for any of
//! them. (A reading beyond the budget has its own test: it needs plausible timestamps.)

use std::time::Duration;

use channel_core::crypto::{keccak256, Signer};
use channel_core::locks::Secret;
use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
use channel_core::session::{
    MeterReading, MeterUnit, Publication, SessionError, SignedMeterReading,
};
use channel_core::{LocalSigner, H256};
use integration_tests::TestDevice;
use tonic::Code;
use voltlane_client::session::{PayerHandle, PayerStatus, PayerUpdate};
use voltlane_client::DeviceStore;
use voltlane_proto::v1;

use crate::world::*;

struct Cheat {
    raw: TestDevice,
    payee: LocalSigner,
    meter: LocalSigner,
    session_id: H256,
    domain: channel_core::Domain,
    seq: u64,
    timestamp: u64,
}

impl Cheat {
    fn reading(&mut self, register: u64) -> MeterReading {
        self.seq += 1;
        MeterReading {
            session_id: self.session_id,
            transaction_id: keccak256(b"ocpp-tx-1"),
            seq: self.seq,
            register,
            timestamp: self.timestamp,
            measurand: MeterUnit::WattHour,
            stopped_reason: None,
        }
    }

    fn bill(&self, reading: &MeterReading, amount: u64, n: u8) -> SignedPaymentRequest {
        PaymentRequest {
            domain: self.domain,
            payee: self.payee.address(),
            amount: u(amount),
            secrethash: Secret(H256([n; 32])).hash(),
            payment_id: reading.seq,
            expires_at: self.timestamp + 3_600,
            memo_hash: reading.hash(),
        }
        .sign(&self.payee)
        .unwrap()
    }

    async fn publish(&self, p: v1::SessionPublication) -> Result<(), tonic::Status> {
        self.raw.sessions().publish(p).await.map(drop)
    }

    async fn publish_signed(
        &self,
        reading: SignedMeterReading,
        bill: Option<SignedPaymentRequest>,
    ) -> Result<(), tonic::Status> {
        self.publish(v1::SessionPublication::from(&Publication { reading, bill }))
            .await
    }
}

fn refused_by_hub(result: Result<(), tonic::Status>, code: Code, says: &str) {
    let status = result.expect_err("the hub should refuse it");
    assert_eq!(status.code(), code, "{status:?}");
    assert!(
        status.message().contains(says),
        "{:?} should say {says:?}",
        status.message()
    );
}

/// Waits for the car's refusal and checks that nothing was paid or begun for it.
async fn refused_by_car(
    payer: &PayerHandle,
    updates: &mut tokio::sync::broadcast::Receiver<PayerUpdate>,
    before: PayerStatus,
    want: impl Fn(&SessionError) -> bool,
) {
    let update = tokio::time::timeout(WAIT, async {
        loop {
            match updates.recv().await.unwrap() {
                PayerUpdate::Refused(e) => return e,
                PayerUpdate::PayeePresence(_) => continue,
                other => panic!("expected a refusal, got {other:?}"),
            }
        }
    })
    .await
    .unwrap();
    assert!(want(&update), "unexpected refusal: {update}");
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        payer.status().await,
        before,
        "a refused reading changes nothing"
    );
}

#[tokio::test]
async fn every_bad_reading_is_refused_with_its_reason_and_never_paid() {
    let hub = hub().await;
    let car = device(&hub, 21, 1_000_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 22, 10_000, DeviceStore::in_memory()).await;
    let meter = key(23);
    let mut terms = charging(1, 10_000);
    terms.max_units_per_hour = 36_000; // 10 Wh per second
                                       // Budget: 5,000 tokens = 5,000 Wh.
    let (payee, payer) = start(&charger, &car, terms, budget(5_000), meter.clone()).await;
    eventually("the meter start reached the car", || async {
        payer.status().await.metered_units == 0
            && payer.offer().await.offer.session_id == payee.id()
    })
    .await;
    let mut updates = payer.updates();
    let conn = hub.connect().await.unwrap();
    let start_ts = voltlane_now();
    let mut cheat = Cheat {
        raw: TestDevice::login(conn, key(22)).await.unwrap(),
        payee: key(22),
        meter: meter.clone(),
        session_id: payee.id(),
        domain: car.domain(),
        seq: 100,
        timestamp: start_ts + 2,
    };
    let base = 52_000;

    // An honest reading first: 10 Wh in the 2 s since the start.
    let r = cheat.reading(base + 10);
    let bill = cheat.bill(&r, 10, 1);
    cheat
        .publish_signed(r.sign(&cheat.meter).unwrap(), Some(bill))
        .await
        .unwrap();
    eventually("the honest reading accepted", || async {
        payer.status().await.metered_units == 10
    })
    .await;
    // Its bill is the cheat's, whose secret the charger's SDK does not hold: the payment is
    // attempted and never completes; what matters below is that nothing else is begun.
    eventually("the honest bill begun", || async {
        payer.status().await.in_flight_units == 10
    })
    .await;
    let before = payer.status().await;
    while updates.try_recv().is_ok() {}

    // --- refused by the hub ---
    // Signed by another key than the offer's meter key.
    let r = cheat.reading(base + 11);
    refused_by_hub(
        cheat.publish_signed(r.sign(&key(99)).unwrap(), None).await,
        Code::InvalidArgument,
        "meter reading signature rejected",
    );
    // Unsigned.
    let r = cheat.reading(base + 11);
    let mut unsigned = v1::SessionPublication::from(&Publication {
        reading: r.sign(&cheat.meter).unwrap(),
        bill: None,
    });
    if let Some(reading) = unsigned.reading.as_mut() {
        reading.signature.clear();
    }
    refused_by_hub(
        cheat.publish(unsigned).await,
        Code::InvalidArgument,
        "reading.signature",
    );
    // The same seq again with other contents.
    let mut again = cheat.reading(base + 12);
    again.seq = 101;
    refused_by_hub(
        cheat
            .publish_signed(again.sign(&cheat.meter).unwrap(), None)
            .await,
        Code::FailedPrecondition,
        "seq",
    );
    // A bill that names another reading.
    let r = cheat.reading(base + 12);
    let other = cheat.reading(base + 13);
    let bill = cheat.bill(&other, 2, 2);
    refused_by_hub(
        cheat
            .publish_signed(r.sign(&cheat.meter).unwrap(), Some(bill))
            .await,
        Code::InvalidArgument,
        "not the latest accepted reading",
    );
    // Another session's reading.
    let mut foreign = cheat.reading(base + 12);
    foreign.session_id = H256([0xaa; 32]);
    refused_by_hub(
        cheat
            .publish_signed(foreign.sign(&cheat.meter).unwrap(), None)
            .await,
        Code::NotFound,
        "unknown session",
    );
    assert_eq!(payer.status().await, before);

    // --- refused by the car ---
    // The register goes backwards.
    let r = cheat.reading(base + 5);
    cheat
        .publish_signed(r.sign(&cheat.meter).unwrap(), None)
        .await
        .unwrap();
    refused_by_car(&payer, &mut updates, before, |e| {
        matches!(e, SessionError::RegisterBackwards { last, got } if *last == base + 10 && *got == base + 5)
    })
    .await;
    // Faster than 10 Wh/s allows: 500 Wh in the same second.
    let r = cheat.reading(base + 510);
    let bill = cheat.bill(&r, 500, 3);
    cheat
        .publish_signed(r.sign(&cheat.meter).unwrap(), Some(bill))
        .await
        .unwrap();
    refused_by_car(&payer, &mut updates, before, |e| {
        matches!(
            e,
            SessionError::TooFast {
                units: 500,
                max_units_per_hour: 36_000,
                ..
            }
        )
    })
    .await;
    // From the future (beyond the 5 s tolerance).
    cheat.timestamp = voltlane_now() + 120;
    let r = cheat.reading(base + 11);
    cheat
        .publish_signed(r.sign(&cheat.meter).unwrap(), None)
        .await
        .unwrap();
    refused_by_car(&payer, &mut updates, before, |e| {
        matches!(
            e,
            SessionError::FromTheFuture {
                tolerance_secs: 5,
                ..
            }
        )
    })
    .await;
    // A bill for more than the reading shows (11 Wh metered, 10 covered: a bill for 5).
    cheat.timestamp = voltlane_now().max(start_ts + 3);
    let r = cheat.reading(base + 11);
    let bill = cheat.bill(&r, 5, 4);
    cheat
        .publish_signed(r.sign(&cheat.meter).unwrap(), Some(bill))
        .await
        .unwrap();
    let update = tokio::time::timeout(WAIT, async {
        loop {
            match updates.recv().await.unwrap() {
                PayerUpdate::Refused(e) => return e,
                _ => continue,
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        update,
        SessionError::BillBeyondMetered {
            amount: u(5),
            uncovered: 1
        }
    );
    let after = payer.status().await;
    assert_eq!(
        after.in_flight_units, before.in_flight_units,
        "the bill was not begun"
    );
    assert_eq!(after.paid_units, before.paid_units);
}

#[tokio::test]
async fn a_reading_beyond_the_budget_is_refused_and_not_paid() {
    let hub = hub().await;
    let car = device(&hub, 31, 1_000_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 32, 10_000, DeviceStore::in_memory()).await;
    // 2 tokens per Wh, budget 1,000 tokens: 500 Wh.
    let (payee, payer) = start(&charger, &car, charging(2, 10_000), budget(1_000), key(33)).await;
    let mut updates = payer.updates();
    payee.record(52_400).await.unwrap();
    paid(&payee, 400).await;
    payee.record(52_501).await.unwrap();
    let refusal = tokio::time::timeout(WAIT, async {
        loop {
            if let PayerUpdate::Refused(e) = updates.recv().await.unwrap() {
                return e;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(
        refusal,
        SessionError::BudgetExceeded {
            metered: 501,
            budget_units: 500
        }
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let s = payer.status().await;
    assert_eq!((s.paid_units, s.in_flight_units), (400, 0));
    assert_eq!(payee.status().await.paid_units, 400);
}

fn voltlane_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
