//! Mediated payments end to end with the device SDK: several `voltlane_client::Client`s (cars
//! paying, chargers being paid) through one real hub process. Balances exact on all four
//! sides of every pair of channels, fees exact, every receipt a proof of payment; a payee
//! offline and back; a payer that restarts in the middle of a payment; and a hub that keeps
//! the payee's secret without paying it, where the payee's SDK claims its money on the
//! ledger by itself.

use std::path::Path;
use std::time::Duration;

use channel_core::LocalSigner;
use futures::StreamExt;
use integration_tests::mediation::MediationSetup;
use integration_tests::HubProcess;
use voltlane_client::{Client, ClientError, DeviceStore, U256};
use voltlane_proto::convert::{signature_bytes, u256_bytes};
use voltlane_proto::v1;

const WAIT: Duration = Duration::from_secs(60);
const FEE_FLAT: u64 = 1;
const FEE_PPM: u64 = 10_000;
const REVEAL_TIMEOUT: u64 = 3;

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn fee(amount: u64) -> u64 {
    FEE_FLAT + (amount * FEE_PPM).div_ceil(1_000_000)
}

fn key(n: u8) -> LocalSigner {
    let mut b = [0x5du8; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).unwrap()
}

/// [`integration_tests::eventually`] with this file's [`WAIT`].
async fn eventually<F, Fut>(what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    integration_tests::eventually(WAIT, what, check).await
}

async fn hub(env: Vec<(String, String)>) -> HubProcess {
    MediationSetup {
        fee_flat: FEE_FLAT,
        fee_ppm: FEE_PPM,
        reveal_timeout: REVEAL_TIMEOUT,
        settlement_window: 3 * REVEAL_TIMEOUT,
        auto_deposit: 100_000_000,
        env,
    }
    .start()
    .await
    .unwrap()
}

/// A device with a channel of `deposit` that the hub matched with as much.
async fn device(hub: &HubProcess, n: u8, deposit: u64, store: DeviceStore) -> Client {
    let client = Client::connect(&hub.url(), key(n), store).await.unwrap();
    client.mint(u(deposit)).await.unwrap();
    client.open_channel(u(deposit)).await.unwrap();
    eventually("the hub's matching deposit", || async {
        client.balances().unwrap().hub_deposit == u(deposit)
    })
    .await;
    client
}

/// Pays `request`; the payee was seen online before.
async fn pay(
    car: &Client,
    request: &channel_core::mediation::SignedPaymentRequest,
) -> voltlane_client::MediatedReceipt {
    match tokio::time::timeout(WAIT, car.pay_request(request)).await {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => panic!("payment failed: {e}"),
        Err(_) => panic!("payment did not finish in {WAIT:?}"),
    }
}

#[tokio::test]
async fn two_cars_pay_two_chargers_a_thousand_times_with_exact_balances_and_fees() {
    let hub = hub(Vec::new()).await;
    let cars = [
        device(&hub, 1, 1_000_000, DeviceStore::in_memory()).await,
        device(&hub, 2, 1_000_000, DeviceStore::in_memory()).await,
    ];
    let chargers = [
        device(&hub, 3, 500_000, DeviceStore::in_memory()).await,
        device(&hub, 4, 500_000, DeviceStore::in_memory()).await,
    ];
    let mut incoming: Vec<_> = chargers.iter().map(|c| c.mediated_payments()).collect();
    // Locks that outlive a loaded debug build's queues (the default is 3 × reveal timeout).
    for car in &cars {
        car.set_mediation_options(voltlane_client::MediationOptions::new().lock_lifetime(120));
    }
    // The first payment waits until both payees are online.
    eventually("both chargers online", || async {
        let mut ok = true;
        for c in &chargers {
            let req = c.create_payment_request(u(1), u64::MAX, 600).await.unwrap();
            ok &= cars[0].quote(&req).await.is_ok();
        }
        ok
    })
    .await;

    const PER_CAR: u64 = 500;
    let amount_of = |i: u64| 100 + (i * 37) % 250;
    let mut paid = [0u64; 2]; // per car: amount + fee
    let mut received = [0u64; 2]; // per charger
    let mut fees = 0u64;
    for (c, car) in cars.iter().enumerate() {
        let mut requests = Vec::new();
        for i in 0..PER_CAR {
            let to = (i as usize + c) % 2;
            let a = amount_of(i);
            let req = chargers[to]
                .create_payment_request(u(a), i, 600)
                .await
                .unwrap();
            requests.push((to, a, req));
        }
        let receipts: Vec<_> = futures::stream::iter(requests.iter())
            .map(|(to, a, req)| async move { (*to, *a, pay(car, req).await) })
            .buffer_unordered(16)
            .collect()
            .await;
        for (to, a, receipt) in receipts {
            assert_eq!(receipt.fee, u(fee(a)), "fee of {a}");
            assert_eq!(receipt.lock_amount, u(a + fee(a)));
            receipt.verify(&car.domain()).unwrap();
            paid[c] += a + fee(a);
            received[to] += a;
            fees += fee(a);
        }
    }
    assert_eq!(paid[0] + paid[1], received[0] + received[1] + fees);

    // Each charger heard of every payment it got, with the right amounts.
    for (i, rx) in incoming.iter_mut().enumerate() {
        let mut sum = 0u64;
        let mut n = 0;
        while sum < received[i] {
            let p = tokio::time::timeout(WAIT, rx.recv())
                .await
                .unwrap()
                .unwrap();
            sum += u64::try_from(p.amount).unwrap();
            n += 1;
        }
        assert_eq!(sum, received[i]);
        assert_eq!(n, PER_CAR, "charger {i} payments");
    }

    // Four sides: each device's own view and the hub's view agree and are exact.
    for (c, car) in cars.iter().enumerate() {
        eventually("the car's locks all released", || async {
            car.balances().unwrap().our_locked.is_zero()
        })
        .await;
        let b = car.balances().unwrap();
        assert_eq!(b.ours, u(1_000_000 - paid[c]), "car {c}");
        assert_eq!(b.hubs, u(1_000_000 + paid[c]), "car {c}: the hub's side");
    }
    for (i, charger) in chargers.iter().enumerate() {
        eventually("the charger's incoming locks all unlocked", || async {
            charger.balances().unwrap().hub_locked.is_zero()
        })
        .await;
        let b = charger.balances().unwrap();
        assert_eq!(b.ours, u(500_000 + received[i]), "charger {i}");
        assert_eq!(
            b.hubs,
            u(500_000 - received[i]),
            "charger {i}: the hub's side"
        );
    }
}

#[tokio::test]
async fn a_payee_offline_is_refused_before_anything_is_locked_and_is_paid_after_its_restart() {
    let hub = hub(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let car = device(&hub, 11, 10_000, DeviceStore::in_memory()).await;
    let charger = device(
        &hub,
        12,
        10_000,
        DeviceStore::open(dir.path().join("charger")).unwrap(),
    )
    .await;
    let request = charger
        .create_payment_request(u(500), 1, 600)
        .await
        .unwrap();
    // Wait until the charger is online, then take it offline.
    eventually("the charger online", || async {
        car.quote(&request).await.is_ok()
    })
    .await;
    drop(charger);
    eventually("the charger offline", || async {
        matches!(
            car.quote(&request).await,
            Err(ClientError::PayeeOffline { .. })
        )
    })
    .await;
    let before = car.balances().unwrap();
    let err = car.pay_request(&request).await.unwrap_err();
    assert!(matches!(err, ClientError::PayeeOffline { .. }), "{err}");
    // The quote refused it before anything was signed: nothing locked, nothing sent.
    let after = car.balances().unwrap();
    assert_eq!(after.our_nonce, before.our_nonce);
    assert!(after.our_locked.is_zero());
    assert_eq!(after.ours, u(10_000));

    // The charger restarts from its store; a new request is paid.
    let charger =
        Client::connect_with_stored_key(&hub.url(), open_store(&dir.path().join("charger")))
            .await
            .unwrap();
    let request = online_request(&charger, &car, 700, 2, "the charger online again").await;
    let receipt = car.pay_request(&request).await.unwrap();
    receipt.verify(&car.domain()).unwrap();
    eventually("the charger paid", || async {
        charger.balances().unwrap().ours == u(10_000 + 700)
    })
    .await;
    assert_eq!(car.balances().unwrap().ours, u(10_000 - 700 - fee(700)));
}

/// A request of `amount` (invoice `n`) by `charger`, once `car` can get a quote for it (the
/// charger is online at the hub).
async fn online_request(
    charger: &Client,
    car: &Client,
    amount: u64,
    n: u64,
    what: &str,
) -> channel_core::mediation::SignedPaymentRequest {
    let request = charger
        .create_payment_request(u(amount), n, 600)
        .await
        .unwrap();
    eventually(what, || async { car.quote(&request).await.is_ok() }).await;
    request
}

fn open_store(path: &Path) -> DeviceStore {
    DeviceStore::open(path).unwrap()
}

#[tokio::test]
async fn a_payer_that_restarts_mid_payment_ends_completed_or_expired_never_between() {
    let hub = hub(Vec::new()).await;
    let dir = tempfile::tempdir().unwrap();
    let charger = device(&hub, 21, 10_000, DeviceStore::in_memory()).await;
    let car_path = dir.path().join("car");
    let car = std::sync::Arc::new(device(&hub, 22, 10_000, open_store(&car_path)).await);
    let request = online_request(&charger, &car, 900, 7, "the charger online").await;
    // Start paying and drop the car's client while the payment is under way.
    let paying = {
        let car = car.clone();
        tokio::spawn(async move { car.pay_request(&request).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    paying.abort();
    let _ = paying.await;
    drop(std::sync::Arc::try_unwrap(car).expect("the only handle"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let car = Client::connect_with_stored_key(&hub.url(), open_store(&car_path))
        .await
        .unwrap();
    eventually("the car's lock unlocked or taken back", || async {
        car.balances().unwrap().our_locked.is_zero() && car.balances().unwrap().unacked == 0
    })
    .await;
    let ours = car.balances().unwrap().ours;
    if ours == u(10_000) {
        // Expired: the charger was not paid either.
        assert_eq!(charger.balances().unwrap().ours, u(10_000));
    } else {
        assert_eq!(ours, u(10_000 - 900 - fee(900)));
        eventually("the charger paid", || async {
            charger.balances().unwrap().ours == u(10_000 + 900)
        })
        .await;
        let receipt = car.mediated_receipt(&request).unwrap().expect("a receipt");
        receipt.verify(&car.domain()).unwrap();
    }
}

#[tokio::test]
async fn a_hub_that_keeps_the_secret_without_paying_loses_to_the_payees_sdk_on_the_ledger() {
    let hub = hub(vec![(
        "VOLTLANE_FAILPOINTS".into(),
        "hub_withholds_unlock".into(),
    )])
    .await;
    let car = std::sync::Arc::new(device(&hub, 31, 10_000, DeviceStore::in_memory()).await);
    let charger = device(&hub, 32, 5_000, DeviceStore::in_memory()).await;
    let request = online_request(&charger, &car, 1_000, 1, "the charger online").await;
    let minted = charger.token_balance(charger.address()).await.unwrap();
    // The car's payment never completes off-chain: the hub takes the secret and stops.
    let paying = {
        let car = car.clone();
        tokio::spawn(async move { car.pay_request(&request).await })
    };
    // The charger's SDK registers its secret before the lock expires, closes, settles after
    // the window and unlocks: the ledger pays it its deposit plus the amount.
    eventually(
        "the charger's channel settled with the lock claimed",
        || async {
            charger.token_balance(charger.address()).await.unwrap() == minted + u(5_000 + 1_000)
        },
    )
    .await;
    // The secret is public on the ledger now: the car's SDK unlocks with it (or the hub
    // claims the car's lock on the ledger); either way the car paid amount + fee and holds
    // the proof of payment.
    if let Ok(Ok(Ok(receipt))) = tokio::time::timeout(Duration::from_secs(10), paying).await {
        receipt.verify(&car.domain()).unwrap();
        assert_eq!(receipt.lock_amount, u(1_000 + fee(1_000)));
    }
}

/// A hub that closes the payer's channel with the payer's proof that still carried the lock
/// of a mediated payment (completed and unlocked off-chain since) cannot keep the locked
/// amount: the ledger keeps it back at settlement under that proof's locksroot, and the
/// payer's SDK, which archived the locks behind every proof it signed, settles and unlocks
/// them. The secret never reached the ledger, so the amount comes back to the payer.
#[tokio::test]
async fn a_hub_closing_with_the_payers_old_locked_proof_cannot_keep_the_locked_tokens() {
    let hub = hub(Vec::new()).await;
    let car_store = DeviceStore::in_memory();
    let car = device(&hub, 41, 10_000, car_store.clone()).await;
    let charger = device(&hub, 42, 10_000, DeviceStore::in_memory()).await;
    let request = online_request(&charger, &car, 500, 1, "the charger online").await;
    let receipt = pay(&car, &request).await;
    assert_eq!(car.balances().unwrap().ours, u(10_000 - 500 - fee(500)));

    // The proof that carried the lock, as the car signed it (rebuilt from the car's archive
    // and signed with its key; the hub holds the car's own signature over the same balance).
    let transfer = car_store
        .outgoing(&request.request.secrethash)
        .unwrap()
        .unwrap();
    let balance = car_store
        .signed_balance(transfer.lock_nonce)
        .unwrap()
        .unwrap();
    assert_eq!(balance.locked_amount, receipt.lock_amount);
    let id = car.channel().unwrap().unwrap().id();
    let locked = channel_core::BalanceProof {
        domain: car.domain(),
        channel_identifier: id,
        nonce: transfer.lock_nonce,
        balance,
        additional_hash: channel_core::H256::ZERO,
    }
    .sign(&key(41))
    .unwrap();

    // The hub closes with it.
    let op_key = hub.operator_key().unwrap();
    let op = integration_tests::TestDevice::login(hub.connect().await.unwrap(), op_key.clone())
        .await
        .unwrap();
    op.ledger()
        .close_channel(v1::CloseChannelRequest {
            channel_id: u256_bytes(&id),
            partner_proof: Some((&locked).into()),
            closing_signature: signature_bytes(&locked.counter_sign_close(&op_key).unwrap()),
        })
        .await
        .unwrap();

    // The car's SDK settles after the window (the hub cannot: it lacks the car's balance data
    // for that proof) and unlocks the kept-back lock: its whole deposit is back.
    eventually("the car's deposit back in full", || async {
        car.token_balance(car.address()).await.unwrap() == u(10_000)
    })
    .await;
    eventually("nothing kept back", || async {
        let pending = op
            .ledger()
            .get_pending_unlocks(v1::GetPendingUnlocksRequest {
                channel_id: u256_bytes(&id),
            })
            .await
            .unwrap()
            .into_inner();
        pending.unlocks.is_empty()
    })
    .await;
}

/// A lock the hub refuses after a good quote (here: a second payer paying a request whose
/// secrethash was already mediated, which no quote can see) is taken back by the payer's SDK:
/// `pay_request` fails with the hub's refusal, nothing stays locked, and the device's next
/// payments take the nonce the refused lock had and are acknowledged as usual.
#[tokio::test]
async fn a_lock_the_hub_refuses_is_taken_back_and_the_channel_goes_on() {
    let hub = hub(Vec::new()).await;
    let car_a = device(&hub, 41, 100_000, DeviceStore::in_memory()).await;
    let car_b = device(&hub, 42, 100_000, DeviceStore::in_memory()).await;
    let charger = device(&hub, 43, 50_000, DeviceStore::in_memory()).await;
    let mut incoming = charger.mediated_payments();
    let request = charger
        .create_payment_request(u(250), 1, 600)
        .await
        .unwrap();
    eventually("the charger online", || async {
        car_a.quote(&request).await.is_ok()
    })
    .await;
    pay(&car_a, &request).await;
    tokio::time::timeout(WAIT, incoming.recv())
        .await
        .unwrap()
        .unwrap();

    // Car B pays the very same request: the quote is fine, the lock is refused.
    assert!(car_b.quote(&request).await.is_ok());
    let before = car_b.balances().unwrap();
    let refused = tokio::time::timeout(WAIT, car_b.pay_request(&request))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        matches!(
            &refused,
            ClientError::MediationRefused { code: tonic::Code::AlreadyExists, hub_reason, reason }
                if reason.contains("already used")
                    && hub_reason.as_ref().is_some_and(|r| r.is(v1::ErrorReason::SecrethashUsed))
        ),
        "{refused:?}"
    );
    let after = car_b.balances().unwrap();
    assert_eq!(after.our_locked, U256::ZERO, "nothing stays locked");
    assert_eq!(after.ours, before.ours);
    assert_eq!(after.our_spendable, before.our_spendable);

    // The channel goes on: a direct payment and a mediated one, both acknowledged.
    car_b.pay(u(7)).await.unwrap();
    let fresh = charger
        .create_payment_request(u(100), 2, 600)
        .await
        .unwrap();
    let receipt = pay(&car_b, &fresh).await;
    receipt.verify(&car_b.domain()).unwrap();
    let end = car_b.balances().unwrap();
    assert_eq!(end.ours, before.ours - u(7) - u(100 + fee(100)));
    assert_eq!(end.our_locked, U256::ZERO);
}
