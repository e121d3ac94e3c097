//! A device pays the hub and then closes the channel on the ledger without any proof of the
//! hub's (so its own payments would go unrecorded): the real hub process contests inside the
//! settlement window with the device's latest proof, settles after it, and the token
//! balances on the ledger are exactly the off-chain balances.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::primitives::U256;
use channel_core::SignedBalanceProof;
use futures::StreamExt;
use integration_tests::device::{device_key, device_nonce};
use integration_tests::{within, HubOptions, HubProcess, PayAck, TestDevice};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

const WINDOW_SECS: u64 = 2;
/// Window + a second of ledger-time granularity + the watcher's tick, with slack.
const SETTLE_WITHIN: Duration = Duration::from_secs(WINDOW_SECS + 8);

async fn token_balance(device: &TestDevice, who: channel_core::primitives::Address) -> U256 {
    let b = device
        .ledger()
        .get_token_balance(v1::GetTokenBalanceRequest {
            address: address_bytes(&who),
        })
        .await
        .unwrap()
        .into_inner();
    U256::from_be_slice(&b.balance)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_closes_without_proof_then_hub_contests_and_settles_exactly() {
    within(
        Duration::from_secs(30),
        "device_closes_without_proof_then_hub_contests_and_settles_exactly",
        run(),
    )
    .await
    .unwrap();
}

async fn run() {
    let hub = HubProcess::start(HubOptions {
        settlement_window_secs: WINDOW_SECS,
        ..HubOptions::default()
    })
    .await
    .unwrap();
    let mut device = TestDevice::login(hub.connect().await.unwrap(), device_key(12, 0).unwrap())
        .await
        .unwrap();
    let deposit = U256::from(100u64);
    let id = device.open_channel(deposit).await.unwrap();
    let hub_addr = device.hub_address();
    let me = device.address();

    // Ten payments of 3: the hub is owed 30.
    let three = U256::from(3u64);
    let mut session = device.pay_session(16).await.unwrap();
    for _ in 0..10 {
        session
            .send(device.next_payment(three).unwrap())
            .await
            .unwrap();
    }
    session.finish();
    for _ in 0..10 {
        let ack = session.next_ack().await.unwrap().unwrap();
        assert!(matches!(ack, PayAck::Accepted { .. }), "{ack:?}");
    }
    let off_chain = device.hub_view().await.unwrap();
    assert_eq!(device_nonce(&off_chain), 10);
    let device_owed = U256::from_be_slice(&off_chain.device_balance);
    let hub_owed = U256::from_be_slice(&off_chain.hub_balance);
    assert_eq!(
        (device_owed, hub_owed),
        (U256::from(70u64), U256::from(30u64))
    );
    let device_before = token_balance(&device, me).await;
    let hub_before = token_balance(&device, hub_addr).await;

    // Watch the ledger from the next event on.
    let mut ledger = device.ledger();
    let next = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner()
        .last_event_seq
        + 1;
    let mut events = ledger
        .subscribe(v1::SubscribeRequest {
            from_seq: next,
            participant: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();

    // Close as the device with "no proof" of the hub, counter-signed.
    let none = SignedBalanceProof::none(*device.channel().unwrap().domain(), id);
    let closing_signature = none.counter_sign_close(device.key()).unwrap();
    ledger
        .close_channel(v1::CloseChannelRequest {
            channel_id: u256_bytes(&id),
            partner_proof: Some((&none).into()),
            closing_signature: closing_signature.as_bytes().to_vec(),
        })
        .await
        .unwrap();

    // Expect, in order: our close, the hub's update with nonce 10, the hub's settle.
    let mut seen = Vec::new();
    let settled = tokio::time::timeout(SETTLE_WITHIN, async {
        while let Some(event) = events.next().await {
            let event = event.unwrap();
            match event.kind.clone() {
                Some(v1::ledger_event::Kind::ChannelSettled(s)) => {
                    seen.push("settled");
                    return s;
                }
                Some(v1::ledger_event::Kind::ChannelClosed(c)) => {
                    assert_eq!(c.closing_participant, address_bytes(&me));
                    assert_eq!(c.nonce, 0);
                    seen.push("closed");
                }
                Some(v1::ledger_event::Kind::NonClosingBalanceProofUpdated(u)) => {
                    assert_eq!(u.closing_participant, address_bytes(&me));
                    assert_eq!(u.nonce, 10, "the hub submits the device's latest proof");
                    seen.push("updated");
                }
                _ => {}
            }
        }
        panic!("ledger event stream ended; saw {seen:?}");
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "no settlement within {SETTLE_WITHIN:?}; hub log:\n{}",
            hub.log_tail()
        )
    });
    assert_eq!(seen, ["closed", "updated", "settled"]);

    // Settlement pays exactly the off-chain balances.
    let amount_of = |addr: &[u8]| {
        if settled.participant1 == addr {
            U256::from_be_slice(&settled.participant1_amount)
        } else {
            assert_eq!(settled.participant2, addr);
            U256::from_be_slice(&settled.participant2_amount)
        }
    };
    assert_eq!(amount_of(&address_bytes(&me)), device_owed);
    assert_eq!(amount_of(&address_bytes(&hub_addr)), hub_owed);
    assert_eq!(
        token_balance(&device, me).await,
        device_before + device_owed
    );
    assert_eq!(
        token_balance(&device, hub_addr).await,
        hub_before + hub_owed
    );

    // The ledger keeps the settled channel with the device's proof as the hub submitted it.
    let on_ledger = device.ledger_view().await.unwrap();
    assert_eq!(on_ledger.phase, v1::ChannelPhase::Settled as i32);
    let mine = on_ledger
        .participants
        .iter()
        .find(|p| p.address == address_bytes(&me))
        .unwrap();
    assert_eq!(mine.balance.as_ref().unwrap().nonce, 10);
}
