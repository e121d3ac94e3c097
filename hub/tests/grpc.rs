//! End-to-end over gRPC: auth, ledger operations, validation errors, restart durability,
//! health and reflection.

mod common;

use channel_core::crypto::Signer;
use channel_core::primitives::{Address, U256};
use channel_core::{Domain, SignedBalanceProof};
use common::*;
use futures::StreamExt;
use tonic::Code;
use voltlane_hub::HubConfig;
use voltlane_proto::auth::auth_digest;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

fn u256(b: &[u8]) -> U256 {
    U256::from_be_slice(b)
}

#[tokio::test]
async fn ledger_calls_need_a_valid_session() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let channel = hub.channel().await;

    let err = v1::ledger_client::LedgerClient::new(channel.clone())
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated, "{err:?}");

    let mut bogus =
        v1::ledger_client::LedgerClient::with_interceptor(channel.clone(), Bearer("00".repeat(32)));
    let err = bogus.get_time(v1::GetTimeRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("unknown or expired session"),
        "{}",
        err.message()
    );

    let err = v1::payments_client::PaymentsClient::new(channel.clone())
        .operator_pay(v1::OperatorPayRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);

    let mut ledger = ledger_as(channel, &key(1)).await;
    let time = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(time.now > 1_600_000_000);
    hub.stop().await;
}

/// A login for `claimed`'s address with `signer`'s signature over challenge `ch`.
#[allow(clippy::unwrap_used)]
fn auth_request(
    claimed: &channel_core::LocalSigner,
    signer: &channel_core::LocalSigner,
    hub_addr: Address,
    ch: &[u8; 32],
) -> v1::AuthenticateRequest {
    v1::AuthenticateRequest {
        address: address_bytes(&claimed.address()),
        challenge: ch.to_vec(),
        signature: signer
            .sign_hash(&auth_digest(&hub_addr, ch))
            .unwrap()
            .as_bytes()
            .to_vec(),
    }
}

#[tokio::test]
async fn challenges_are_single_use_and_bound_to_the_signer() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let channel = hub.channel().await;
    let hub_addr = hub_address(channel.clone()).await;
    let mut auth = v1::auth_client::AuthClient::new(channel);
    let dev = key(1);

    let c = auth
        .get_challenge(v1::ChallengeRequest {
            address: address_bytes(&dev.address()),
        })
        .await
        .unwrap()
        .into_inner();
    let ch: [u8; 32] = c.challenge.as_slice().try_into().unwrap();
    let request = auth_request(&dev, &dev, hub_addr, &ch);
    auth.authenticate(request.clone()).await.unwrap();
    let replay = auth.authenticate(request).await.unwrap_err();
    assert_eq!(replay.code(), Code::Unauthenticated);
    assert!(
        replay.message().contains("already used"),
        "{}",
        replay.message()
    );

    // A signature by someone else is refused and does not use the challenge up.
    let c = auth
        .get_challenge(v1::ChallengeRequest {
            address: address_bytes(&dev.address()),
        })
        .await
        .unwrap()
        .into_inner();
    let ch: [u8; 32] = c.challenge.as_slice().try_into().unwrap();
    let err = auth
        .authenticate(auth_request(&dev, &key(2), hub_addr, &ch))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("signature is not by"),
        "{}",
        err.message()
    );
    let own = auth_request(&dev, &dev, hub_addr, &ch);
    // Another device cannot redeem it, even signing it correctly with its own key.
    let err = auth
        .authenticate(auth_request(&key(2), &key(2), hub_addr, &ch))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(
        err.message().contains("not issued by this hub to"),
        "{}",
        err.message()
    );
    auth.authenticate(own).await.unwrap();

    let err = auth
        .get_challenge(v1::ChallengeRequest {
            address: vec![1; 19],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "address: must be 20 bytes (address), got 19");
    hub.stop().await;
}

#[tokio::test]
async fn open_deposit_close_and_subscribe() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig::new(dir.path());
    config.settlement_window_secs = 3;
    let hub = TestHub::start_with(config).await;
    let channel = hub.channel().await;
    let hub_addr = hub_address(channel.clone()).await;
    let dev = key(1);
    let mut ledger = ledger_as(channel, &dev).await;

    let minted = ledger
        .mint(v1::MintRequest {
            to: address_bytes(&dev.address()),
            amount: u256_bytes(&U256::from(1_000u32)),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(minted.events.len(), 1);

    let opened = ledger
        .open_channel(v1::OpenChannelRequest {
            partner: address_bytes(&hub_addr),
            total_deposit: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let id = u256(&opened.channel_id);

    ledger
        .set_total_deposit(v1::SetTotalDepositRequest {
            channel_id: opened.channel_id.clone(),
            participant: address_bytes(&dev.address()),
            total_deposit: u256_bytes(&U256::from(400u32)),
        })
        .await
        .unwrap();
    assert_eq!(
        token_balance(&mut ledger, dev.address()).await,
        U256::from(600u32)
    );

    // Depositing less than before breaks a ledger rule: FAILED_PRECONDITION, no change.
    let err = ledger
        .set_total_deposit(v1::SetTotalDepositRequest {
            channel_id: opened.channel_id.clone(),
            participant: address_bytes(&dev.address()),
            total_deposit: u256_bytes(&U256::from(300u32)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");

    // Close without a proof from the hub: sign the closing hash of the "none" proof.
    let time = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    let domain: Domain = time.domain.unwrap().try_into().unwrap();
    let none = SignedBalanceProof::none(domain, id);
    let closing = none.counter_sign_close(&dev).unwrap();
    let closed = ledger
        .close_channel(v1::CloseChannelRequest {
            channel_id: opened.channel_id.clone(),
            partner_proof: None,
            closing_signature: closing.as_bytes().to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.events.len(), 1);

    let record = ledger
        .get_channel(v1::GetLedgerChannelRequest {
            channel_id: opened.channel_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(record.phase, v1::ChannelPhase::Closed as i32);
    assert_eq!(record.closer, address_bytes(&dev.address()));

    let mut events = ledger
        .subscribe(v1::SubscribeRequest {
            from_seq: 2,
            participant: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(events.next().await.unwrap().unwrap().seq);
    }
    assert_eq!(seqs, vec![2, 3, 4], "open, deposit, close");

    // A live event arrives on the open subscription.
    ledger
        .mint(v1::MintRequest {
            to: address_bytes(&Address([7; 20])),
            amount: u256_bytes(&U256::from(1u8)),
        })
        .await
        .unwrap();
    assert_eq!(events.next().await.unwrap().unwrap().seq, 5);

    // A device's own subscription: its channel's events, not the mint to someone else.
    let mut mine = ledger
        .subscribe(v1::SubscribeRequest {
            from_seq: 2,
            participant: address_bytes(&dev.address()),
        })
        .await
        .unwrap()
        .into_inner();
    let mut seqs = Vec::new();
    for _ in 0..3 {
        seqs.push(mine.next().await.unwrap().unwrap().seq);
    }
    assert_eq!(
        seqs,
        vec![2, 3, 4],
        "open, deposit, close; not the mint of seq 5"
    );
    ledger
        .mint(v1::MintRequest {
            to: address_bytes(&Address([7; 20])),
            amount: u256_bytes(&U256::from(1u8)),
        })
        .await
        .unwrap();
    ledger
        .mint(v1::MintRequest {
            to: address_bytes(&dev.address()),
            amount: u256_bytes(&U256::from(1u8)),
        })
        .await
        .unwrap();
    assert_eq!(
        mine.next().await.unwrap().unwrap().seq,
        7,
        "the live mint to someone else (6) is skipped"
    );
    let err = ledger
        .subscribe(v1::SubscribeRequest {
            from_seq: 1,
            participant: vec![1; 19],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("participant"), "{err:?}");

    // Shutdown ends the subscription instead of hanging the drain.
    hub.stop().await;
}

#[tokio::test]
async fn malformed_fields_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let channel = hub.channel().await;
    let mut ledger = ledger_as(channel, &key(1)).await;

    let err = ledger
        .open_channel(v1::OpenChannelRequest {
            partner: vec![1; 19],
            total_deposit: Vec::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "partner: must be 20 bytes (address), got 19");

    let err = ledger
        .close_channel(v1::CloseChannelRequest {
            channel_id: vec![0; 32],
            partner_proof: Some(v1::SignedBalanceProof {
                proof: Some(v1::BalanceProof {
                    domain: Some(v1::Domain {
                        chain_id: vec![0; 31],
                        token_network_address: vec![0; 20],
                    }),
                    ..Default::default()
                }),
                signature: vec![],
            }),
            closing_signature: vec![0; 65],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        err.message(),
        "partner_proof.proof.domain.chain_id: must be 32 bytes (big-endian uint256), got 31"
    );

    let err = ledger
        .set_total_withdraw(v1::SetTotalWithdrawRequest { withdraw: None })
        .await
        .unwrap_err();
    assert_eq!(err.message(), "withdraw: is required");

    // Settle carries both participants' stored balance data, as the contract's does.
    let err = ledger
        .settle_channel(v1::SettleChannelRequest {
            channel_id: u256_bytes(&U256::from(1u8)),
            participant1: vec![1; 20],
            participant1_balance: None,
            participant2: vec![2; 20],
            participant2_balance: Some(v1::BalanceData::default()),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.message(), "participant1_balance: is required");

    let err = ledger
        .get_channel(v1::GetLedgerChannelRequest {
            channel_id: u256_bytes(&U256::from(99u8)),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // Oversized request: refused before any handler runs.
    let err = ledger
        .unlock(v1::UnlockRequest {
            channel_id: vec![0; 32],
            receiver: vec![0; 20],
            sender: vec![0; 20],
            packed_locks: vec![0; 128 * 1024],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::OutOfRange, "{err:?}");
    hub.stop().await;
}

#[tokio::test]
async fn faucet_can_be_disabled() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig::new(dir.path());
    config.dev_faucet = false;
    let hub = TestHub::start_with(config).await;
    let mut ledger = ledger_as(hub.channel().await, &key(1)).await;
    let err = ledger
        .mint(v1::MintRequest {
            to: vec![1; 20],
            amount: vec![0; 32],
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    hub.stop().await;
}

#[tokio::test]
async fn state_and_operator_key_survive_restart() {
    let dir = tempfile::tempdir().unwrap();
    let dev = key(1);
    let (hub_addr, channel_id) = {
        let hub = TestHub::start(dir.path()).await;
        let channel = hub.channel().await;
        let hub_addr = hub_address(channel.clone()).await;
        let mut ledger = ledger_as(channel, &dev).await;
        let channel_id = open_funded_channel(&mut ledger, dev.address(), hub_addr, 500, 200).await;
        hub.stop().await;
        (hub_addr, channel_id)
    };

    let hub = TestHub::start(dir.path()).await;
    let channel = hub.channel().await;
    assert_eq!(
        hub_address(channel.clone()).await,
        hub_addr,
        "same operator key"
    );
    let mut ledger = ledger_as(channel, &dev).await;
    let record = ledger
        .get_channel(v1::GetLedgerChannelRequest {
            channel_id: channel_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        u256(&record.participants[0].total_deposit),
        U256::from(200u32)
    );
    assert_eq!(
        token_balance(&mut ledger, dev.address()).await,
        U256::from(300u32)
    );
    let time = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(time.last_event_seq, 3);
    hub.stop().await;
}

#[tokio::test]
async fn health_and_reflection_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let channel = hub.channel().await;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel.clone());
    let resp = health
        .check(tonic_health::pb::HealthCheckRequest {
            service: "voltlane.v1.Ledger".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        resp.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut responses = reflection
        .server_reflection_info(futures::stream::iter(vec![request]))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "voltlane.v1.Auth",
        "voltlane.v1.Hub",
        "voltlane.v1.Ledger",
        "voltlane.v1.Channels",
        "voltlane.v1.Payments",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} in {names:?}"
        );
    }
    drop(responses);
    hub.stop().await;
}
