//! Payments end to end over gRPC against an in-process hub: streamed device payments acked
//! only when durable, every kind of bad proof refused with a precise status and no change of
//! state, hub payments pushed to the device, and state kept across a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage};
use channel_core::crypto::{LocalSigner, Signer};
use channel_core::primitives::U256;
use channel_core::{BalanceProof, Domain, SignedBalanceProof, H256};
use common::*;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

type Payments = v1::payments_client::PaymentsClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
>;

fn u(n: u64) -> U256 {
    U256::from(n)
}

struct Device {
    key: LocalSigner,
    channel: Channel,
    payments: Payments,
    token: String,
}

/// Mints, opens a channel with the hub and deposits, as the device itself does on the ledger.
async fn device_with_channel(hub: &TestHub, seed: u8, deposit: u64) -> Device {
    let conn = hub.channel().await;
    let key = key(seed);
    let hub_addr = hub_address(conn.clone()).await;
    let token = login(conn.clone(), &key).await;
    let mut ledger =
        v1::ledger_client::LedgerClient::with_interceptor(conn.clone(), Bearer(token.clone()));
    let channel_id =
        open_funded_channel(&mut ledger, key.address(), hub_addr, deposit, deposit).await;
    let id = U256::from_be_slice(&channel_id);
    let time = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    let domain = Domain::try_from(time.domain.unwrap()).unwrap();
    let mut channel = Channel::new(domain, id, key.address(), hub_addr);
    channel
        .handle_ledger_deposit(key.address(), u(deposit))
        .unwrap();
    let payments =
        v1::payments_client::PaymentsClient::with_interceptor(conn, Bearer(token.clone()));
    Device {
        key,
        channel,
        payments,
        token,
    }
}

fn sign_payment(device: &mut Device, amount: u64) -> SignedBalanceProof {
    let events = device
        .channel
        .send_payment(u(amount), H256::ZERO, &device.key)
        .unwrap();
    events
        .into_iter()
        .find_map(|e| match e {
            ChannelEvent::Send(ChannelMessage::Payment { proof, .. }) => Some(proof),
            _ => None,
        })
        .unwrap()
}

fn message(id: u64, proof: &SignedBalanceProof, amount: u64) -> v1::PaymentMessage {
    v1::PaymentMessage {
        request_id: id,
        balance_proof: Some(proof.into()),
        amount: u256_bytes(&u(amount)),
        kind: None,
    }
}

/// Sends `msgs` on one stream and collects one ack each.
async fn stream(payments: &mut Payments, msgs: Vec<v1::PaymentMessage>) -> Vec<v1::PaymentAck> {
    let n = msgs.len();
    let (tx, rx) = mpsc::channel(n.max(1));
    for m in msgs {
        tx.send(m).await.unwrap();
    }
    let mut acks = payments
        .pay(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let mut out = Vec::new();
    while out.len() < n {
        out.push(acks.next().await.unwrap().unwrap());
    }
    drop(tx);
    out
}

fn accepted(ack: &v1::PaymentAck) -> Option<&v1::PaymentAccepted> {
    match &ack.outcome {
        Some(v1::payment_ack::Outcome::Accepted(a)) => Some(a),
        _ => None,
    }
}

fn rejected(ack: &v1::PaymentAck) -> (Code, String) {
    match &ack.outcome {
        Some(v1::payment_ack::Outcome::Rejected(r)) => (Code::from_i32(r.code), r.reason.clone()),
        other => panic!("expected a rejection, got {other:?}"),
    }
}

async fn hub_view(hub: &TestHub, device: &Device, id: U256) -> v1::ChannelState {
    let mut channels = v1::channels_client::ChannelsClient::with_interceptor(
        hub.channel().await,
        Bearer(device.token.clone()),
    );
    channels
        .get_channel(v1::GetChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .unwrap()
        .into_inner()
}

fn nonce_of(state: &v1::ChannelState) -> u64 {
    state
        .device_proof
        .as_ref()
        .and_then(|p| p.proof.as_ref())
        .map_or(0, |p| p.nonce)
}

#[tokio::test]
async fn streamed_payments_are_acked_in_order_and_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let mut device = device_with_channel(&hub, 5, 500).await;
    let id = device.channel.id();
    let msgs: Vec<_> = (1..=20)
        .map(|i| {
            let p = sign_payment(&mut device, 3);
            message(i, &p, 3)
        })
        .collect();
    let acks = stream(&mut device.payments, msgs).await;
    for (i, ack) in acks.iter().enumerate() {
        assert_eq!(ack.request_id, i as u64 + 1);
        let a = accepted(ack).unwrap_or_else(|| panic!("payment {i} refused: {ack:?}"));
        assert_eq!(a.nonce, i as u64 + 1);
        assert_eq!(
            U256::from_be_slice(&a.transferred_amount),
            u(3 * (i as u64 + 1))
        );
    }
    let state = hub_view(&hub, &device, id).await;
    assert_eq!(nonce_of(&state), 20);
    assert_eq!(U256::from_be_slice(&state.hub_balance), u(60));

    hub.stop().await;
    let hub = TestHub::start(dir.path()).await;
    // Sessions do not survive a restart; the device logs in again.
    device.token = login(hub.channel().await, &device.key).await;
    let state = hub_view(&hub, &device, id).await;
    assert_eq!(
        nonce_of(&state),
        20,
        "acknowledged payments survive a restart"
    );
    // The device goes on where it left off.
    let p = sign_payment(&mut device, 1);
    device.payments = v1::payments_client::PaymentsClient::with_interceptor(
        hub.channel().await,
        Bearer(device.token.clone()),
    );
    let acks = stream(&mut device.payments, vec![message(21, &p, 1)]).await;
    assert_eq!(accepted(&acks[0]).unwrap().nonce, 21);
    hub.stop().await;
}

#[tokio::test]
async fn bad_payments_are_refused_precisely_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let mut device = device_with_channel(&hub, 6, 100).await;
    let id = device.channel.id();
    let first = sign_payment(&mut device, 10);
    let second = sign_payment(&mut device, 10);
    let acks = stream(
        &mut device.payments,
        vec![message(1, &first, 10), message(2, &second, 10)],
    )
    .await;
    assert!(acks.iter().all(|a| accepted(a).is_some()));
    let before = hub_view(&hub, &device, id).await;

    let stranger = key(99);
    let mut forged = sign_payment(&mut device.clone_for_test(), 1);
    forged.signature = forged.proof.sign(&stranger).unwrap().signature;

    let mut other_chain = device.channel.clone();
    let mut wrong_chain = sign_payment_on(&mut other_chain, &device.key, 1);
    wrong_chain.proof.domain.chain_id = u(1);
    let wrong_chain = wrong_chain.proof.sign(&device.key).unwrap();

    let mut wrong_network = sign_payment_on(&mut device.channel.clone(), &device.key, 1).proof;
    wrong_network.domain.token_network_address = channel_core::Address([0xee; 20]);
    let wrong_network = wrong_network.sign(&device.key).unwrap();

    let mut wrong_channel = sign_payment_on(&mut device.channel.clone(), &device.key, 1).proof;
    wrong_channel.channel_identifier = id + u(1000);
    let wrong_channel = wrong_channel.sign(&device.key).unwrap();

    let too_much = sign_payment_on(&mut device.channel.clone(), &device.key, 81);
    let mismatched = sign_payment_on(&mut device.channel.clone(), &device.key, 2);
    let mut malformed = message(8, &first, 1);
    malformed.balance_proof.as_mut().unwrap().signature = vec![1, 2, 3];
    let mut missing = message(9, &first, 1);
    missing.balance_proof = None;

    let acks = stream(
        &mut device.payments,
        vec![
            message(1, &first, 10),
            message(2, &forged, 1),
            message(3, &wrong_chain, 1),
            message(4, &wrong_channel, 1),
            message(5, &too_much, 81),
            message(6, &mismatched, 3),
            message(7, &second, 10),
            malformed,
            missing,
            message(10, &wrong_network, 1),
        ],
    )
    .await;
    let expect = [
        (Code::AlreadyExists, "stale or replayed"),
        (Code::InvalidArgument, "signature"),
        (Code::InvalidArgument, "wrong chain"),
        (Code::NotFound, "unknown channel"),
        (Code::FailedPrecondition, "insufficient balance"),
        (Code::InvalidArgument, "transferred_amount"),
    ];
    for (ack, (code, text)) in acks.iter().zip(expect) {
        let (got, reason) = rejected(ack);
        assert_eq!(got, code, "{reason}");
        assert!(reason.contains(text), "{reason:?} should mention {text:?}");
    }
    assert!(
        accepted(&acks[6]).is_some(),
        "re-sending the latest proof is idempotent"
    );
    let (code, reason) = rejected(&acks[7]);
    assert_eq!(code, Code::InvalidArgument);
    assert!(reason.contains("signature"), "{reason}");
    let (code, reason) = rejected(&acks[8]);
    assert_eq!(code, Code::InvalidArgument);
    assert!(reason.contains("balance_proof"), "{reason}");
    let (code, reason) = rejected(&acks[9]);
    assert_eq!(code, Code::InvalidArgument, "{reason}");
    assert!(reason.contains("wrong token network"), "{reason}");
    assert!(
        reason.contains(&channel_core::Address([0xee; 20]).to_string()),
        "the reason names the network the proof is for: {reason}"
    );
    assert_eq!(acks.len(), 10, "one ack per message");
    assert_eq!(
        hub_view(&hub, &device, id).await,
        before,
        "no state changed"
    );

    // Another device may not pay into (or read) this channel.
    let mut intruder = device_with_channel(&hub, 7, 10).await;
    let mut theirs = sign_payment_on(&mut device.channel.clone(), &intruder.key, 1).proof;
    theirs.channel_identifier = id;
    let theirs = theirs.sign(&intruder.key).unwrap();
    let acks = stream(&mut intruder.payments, vec![message(1, &theirs, 1)]).await;
    assert_eq!(rejected(&acks[0]).0, Code::PermissionDenied);
    hub.stop().await;
}

fn sign_payment_on(channel: &mut Channel, key: &LocalSigner, amount: u64) -> SignedBalanceProof {
    let proof = BalanceProof {
        domain: *channel.domain(),
        channel_identifier: channel.id(),
        nonce: channel.our().nonce() + 1,
        balance: channel_core::BalanceData {
            transferred_amount: channel.our().transferred() + u(amount),
            ..channel.our().balance_data()
        },
        additional_hash: H256::ZERO,
    };
    proof.sign(key).unwrap()
}

impl Device {
    fn clone_for_test(&self) -> Device {
        Device {
            key: self.key.clone(),
            channel: self.channel.clone(),
            payments: self.payments.clone(),
            token: self.token.clone(),
        }
    }
}

#[tokio::test]
async fn operator_payments_reach_the_device() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let mut device = device_with_channel(&hub, 8, 50).await;
    let id = device.channel.id();
    let p = sign_payment(&mut device, 20);
    stream(&mut device.payments, vec![message(1, &p, 20)]).await;

    let operator = voltlane_hub::keys::load_or_create(&dir.path().join("operator.key")).unwrap();
    let token = login(hub.channel().await, &operator).await;
    let mut as_operator =
        v1::payments_client::PaymentsClient::with_interceptor(hub.channel().await, Bearer(token));
    let mut incoming = device
        .payments
        .receive_payments(v1::ReceivePaymentsRequest {
            channel_id: u256_bytes(&id),
            after_nonce: 0,
        })
        .await
        .unwrap()
        .into_inner();
    for amount in [5u64, 7] {
        as_operator
            .operator_pay(v1::OperatorPayRequest {
                channel_id: u256_bytes(&id),
                amount: u256_bytes(&u(amount)),
            })
            .await
            .unwrap();
    }
    let err = as_operator
        .operator_pay(v1::OperatorPayRequest {
            channel_id: u256_bytes(&id),
            amount: u256_bytes(&u(21)),
        })
        .await
        .unwrap_err();
    assert_eq!(
        err.code(),
        Code::FailedPrecondition,
        "the hub holds only 20: {err:?}"
    );
    for amount in [5u64, 7] {
        let hp = incoming.next().await.unwrap().unwrap();
        let proof = SignedBalanceProof::try_from(hp.balance_proof.unwrap()).unwrap();
        device.channel.handle_payment(&proof, u(amount)).unwrap();
    }
    assert_eq!(device.channel.our_balance().unwrap(), u(42));
    hub.stop().await;
}

/// `signature` with its v byte switched between 27 and 28: the same (r, s), which a plain
/// ECDSA check against the device's key accepts, but which the ledger's ecrecover attributes
/// to another address.
fn flip_v(signature: &channel_core::Signature) -> Vec<u8> {
    let mut bytes = signature.as_bytes().to_vec();
    bytes[64] = if bytes[64] == 27 { 28 } else { 27 };
    bytes
}

fn channels_client(
    hub_conn: tonic::transport::Channel,
    device: &Device,
) -> v1::channels_client::ChannelsClient<
    tonic::service::interceptor::InterceptedService<tonic::transport::Channel, Bearer>,
> {
    v1::channels_client::ChannelsClient::with_interceptor(hub_conn, Bearer(device.token.clone()))
}

#[tokio::test]
async fn a_signature_with_a_flipped_v_is_refused_on_pay_and_on_withdraw() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let mut device = device_with_channel(&hub, 21, 10_000).await;
    let id = device.channel.id();
    let first = sign_payment(&mut device, 10);
    let acks = stream(&mut device.payments, vec![message(1, &first, 10)]).await;
    assert!(accepted(&acks[0]).is_some(), "{:?}", acks[0]);
    let before = hub_view(&hub, &device, id).await;

    // Nonce 2 for a large amount, v flipped: the attack that let a device settle with its
    // whole deposit.
    let big = sign_payment(&mut device, 9_000);
    let mut flipped = message(2, &big, 9_000);
    if let Some(bp) = flipped.balance_proof.as_mut() {
        bp.signature = flip_v(&big.signature);
    }
    let acks = stream(&mut device.payments, vec![flipped]).await;
    let (code, reason) = rejected(&acks[0]);
    assert_eq!(code, Code::InvalidArgument, "{reason}");
    assert!(reason.contains("does not recover to"), "{reason}");
    assert_eq!(hub_view(&hub, &device, id).await, before, "nothing changed");
    // The honest nonce 2 still goes through.
    let acks = stream(&mut device.payments, vec![message(3, &big, 9_000)]).await;
    assert_eq!(accepted(&acks[0]).map(|a| a.nonce), Some(2));

    // A withdraw request whose signature has its v flipped.
    let now = {
        let mut ledger = v1::ledger_client::LedgerClient::with_interceptor(
            hub.channel().await,
            Bearer(device.token.clone()),
        );
        ledger
            .get_time(v1::GetTimeRequest {})
            .await
            .unwrap()
            .into_inner()
            .now
    };
    let withdraw = channel_core::WithdrawProof {
        domain: *device.channel.domain(),
        channel_identifier: id,
        participant: device.key.address(),
        total_withdraw: u(100),
        withdrawable_until: now + 100,
    };
    let signature = withdraw.sign(&device.key).unwrap();
    let mut channels = channels_client(hub.channel().await, &device);
    let before = hub_view(&hub, &device, id).await;
    let status = channels
        .request_withdraw(v1::RequestWithdrawRequest {
            withdraw: Some((&withdraw).into()),
            participant_signature: flip_v(&signature),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains("does not recover to"),
        "{status:?}"
    );
    assert_eq!(
        hub_view(&hub, &device, id).await,
        before,
        "nothing reserved"
    );
    channels
        .request_withdraw(v1::RequestWithdrawRequest {
            withdraw: Some((&withdraw).into()),
            participant_signature: signature.as_bytes().to_vec(),
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn a_refused_cooperative_close_leaves_the_channel_open_for_payments() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let mut device = device_with_channel(&hub, 22, 1_000).await;
    let id = device.channel.id();
    let first = sign_payment(&mut device, 100);
    let acks = stream(&mut device.payments, vec![message(1, &first, 100)]).await;
    assert!(accepted(&acks[0]).is_some());
    let before = hub_view(&hub, &device, id).await;

    // Whole-balance withdraws that expired long ago, with submit = true.
    let device_withdraw = channel_core::WithdrawProof {
        domain: *device.channel.domain(),
        channel_identifier: id,
        participant: device.key.address(),
        total_withdraw: u(900),
        withdrawable_until: 1,
    };
    let hub_withdraw = channel_core::WithdrawProof {
        participant: device.channel.partner_address(),
        total_withdraw: u(100),
        ..device_withdraw
    };
    let mut channels = channels_client(hub.channel().await, &device);
    let status = channels
        .cooperative_close(v1::CooperativeCloseRequest {
            channel_id: u256_bytes(&id),
            device_withdraw: Some((&device_withdraw).into()),
            device_withdraw_signature: device_withdraw
                .sign(&device.key)
                .unwrap()
                .as_bytes()
                .to_vec(),
            hub_withdraw: Some((&hub_withdraw).into()),
            hub_withdraw_partner_signature: hub_withdraw
                .sign(&device.key)
                .unwrap()
                .as_bytes()
                .to_vec(),
            submit: true,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(status.message().contains("expired"), "{status:?}");
    assert_eq!(hub_view(&hub, &device, id).await, before, "nothing changed");

    let second = sign_payment(&mut device, 50);
    let acks = stream(&mut device.payments, vec![message(2, &second, 50)]).await;
    assert_eq!(
        accepted(&acks[0]).map(|a| a.nonce),
        Some(2),
        "payments go on: {:?}",
        acks[0]
    );
}

/// The operator reads every channel's off-chain state through `Channels`, page by page; a
/// device still reads only its own, and a bad page request is refused by field.
#[tokio::test]
async fn the_operator_lists_every_channel_page_by_page_and_a_device_only_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let mut devices = Vec::new();
    for (seed, paid) in [(21u8, 4u64), (22, 9), (23, 0)] {
        let mut device = device_with_channel(&hub, seed, 50).await;
        if paid > 0 {
            let p = sign_payment(&mut device, paid);
            stream(&mut device.payments, vec![message(1, &p, paid)]).await;
        }
        devices.push((device, paid));
    }
    let mut ids: Vec<U256> = devices.iter().map(|(d, _)| d.channel.id()).collect();
    ids.sort();

    let operator = voltlane_hub::keys::load_or_create(&dir.path().join("operator.key")).unwrap();
    let token = login(hub.channel().await, &operator).await;
    let mut as_operator =
        v1::channels_client::ChannelsClient::with_interceptor(hub.channel().await, Bearer(token));
    let mut seen = Vec::new();
    let mut after = Vec::new();
    let mut pages = 0;
    loop {
        let page = as_operator
            .list_channels(v1::ListChannelsRequest {
                after_channel_id: after.clone(),
                limit: 2,
            })
            .await
            .unwrap()
            .into_inner();
        pages += 1;
        assert!(page.channels.len() <= 2);
        seen.extend(page.channels);
        if page.next_after_channel_id.is_empty() {
            break;
        }
        after = page.next_after_channel_id;
    }
    assert_eq!(pages, 2);
    let seen_ids: Vec<U256> = seen
        .iter()
        .map(|c| U256::from_be_slice(&c.channel_id))
        .collect();
    assert_eq!(seen_ids, ids, "every channel once, in id order");
    for (device, paid) in &devices {
        let state = seen
            .iter()
            .find(|c| U256::from_be_slice(&c.channel_id) == device.channel.id())
            .unwrap();
        assert_eq!(nonce_of(state), u64::from(*paid > 0));
        let one = as_operator
            .get_channel(v1::GetChannelRequest {
                channel_id: u256_bytes(&device.channel.id()),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(&one, state);
    }

    // A device lists only its own channel, however it pages, and cannot read another's.
    let (first, _) = &devices[0];
    let mut as_device = channels_client(hub.channel().await, first);
    let own = as_device
        .list_channels(v1::ListChannelsRequest {
            after_channel_id: Vec::new(),
            limit: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.channels.len(), 1);
    assert!(own.next_after_channel_id.is_empty());
    let err = as_device
        .get_channel(v1::GetChannelRequest {
            channel_id: u256_bytes(&devices[1].0.channel.id()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    for (request, field) in [
        (
            v1::ListChannelsRequest {
                after_channel_id: vec![1; 33],
                limit: 0,
            },
            "after_channel_id",
        ),
        (
            v1::ListChannelsRequest {
                after_channel_id: Vec::new(),
                limit: 10_001,
            },
            "limit",
        ),
    ] {
        let err = as_operator.list_channels(request).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
        assert!(err.message().contains(field), "{err:?}");
    }
    hub.stop().await;
}
