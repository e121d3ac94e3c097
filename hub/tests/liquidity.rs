//! Hub liquidity over gRPC against an in-process hub: `Channels.OperatorDeposit` and each of
//! its refusals (nothing changes after one), the auto-deposit policy (on new channels, after
//! the operator gets tokens, at start-up), the capacities in the channel view, and the
//! mediation settings in `Hub.GetInfo` and their start-up checks.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage};
use channel_core::crypto::{LocalSigner, Signer};
use channel_core::primitives::{Address, U256};
use channel_core::{Domain, SignedBalanceProof, H256};
use common::*;
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::interceptor::InterceptedService;
use tonic::Code;
use voltlane_hub::{HubConfig, HubError};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;
use voltlane_proto::v1::operator_deposit_request::Amount;

type Authed = InterceptedService<tonic::transport::Channel, Bearer>;
type Channels = v1::channels_client::ChannelsClient<Authed>;

/// Bound of every wait for the auto-deposit task.
const WAIT: Duration = Duration::from_secs(10);

fn u(n: u64) -> U256 {
    U256::from(n)
}

struct Party {
    key: LocalSigner,
    ledger: AuthedLedger,
    channels: Channels,
    payments: v1::payments_client::PaymentsClient<Authed>,
}

async fn party(hub: &TestHub, key: LocalSigner) -> Party {
    let conn = hub.channel().await;
    let token = login(conn.clone(), &key).await;
    Party {
        key,
        ledger: v1::ledger_client::LedgerClient::with_interceptor(
            conn.clone(),
            Bearer(token.clone()),
        ),
        channels: v1::channels_client::ChannelsClient::with_interceptor(
            conn.clone(),
            Bearer(token.clone()),
        ),
        payments: v1::payments_client::PaymentsClient::with_interceptor(conn, Bearer(token)),
    }
}

async fn operator(hub: &TestHub, dir: &Path) -> Party {
    let key = voltlane_hub::keys::load_or_create(&dir.join("operator.key")).unwrap();
    party(hub, key).await
}

async fn mint(p: &mut Party, to: Address, amount: u64) {
    p.ledger
        .mint(v1::MintRequest {
            to: address_bytes(&to),
            amount: u256_bytes(&u(amount)),
        })
        .await
        .unwrap();
}

fn deposit_request(id: U256, amount: Option<Amount>) -> v1::OperatorDepositRequest {
    v1::OperatorDepositRequest {
        channel_id: u256_bytes(&id),
        amount,
    }
}

fn additional(n: u64) -> Option<Amount> {
    Some(Amount::Additional(u256_bytes(&u(n))))
}

fn total(n: u64) -> Option<Amount> {
    Some(Amount::TotalDeposit(u256_bytes(&u(n))))
}

/// The ledger's deposits of `id`: (device, hub).
async fn ledger_deposits(p: &mut Party, id: U256, hub: Address) -> (U256, U256) {
    let rec = p
        .ledger
        .get_channel(v1::GetLedgerChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .unwrap()
        .into_inner();
    let rec = channel_core::ledger::ChannelRecord::try_from(rec).unwrap();
    let device = rec.partner_of(hub).unwrap();
    (
        rec.participant(device).unwrap().total_deposit,
        rec.participant(hub).unwrap().total_deposit,
    )
}

async fn view(p: &mut Party, id: U256) -> v1::ChannelState {
    p.channels
        .get_channel(v1::GetChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .unwrap()
        .into_inner()
}

fn amount(bytes: &[u8]) -> U256 {
    U256::from_be_slice(bytes)
}

/// Polls the hub's deposit of `id` on the ledger until it is `want` (bounded by [`WAIT`]).
async fn wait_hub_deposit(p: &mut Party, id: U256, hub: Address, want: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, hub_deposit) = ledger_deposits(p, id, hub).await;
        if hub_deposit == u(want) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hub deposit of channel {id} is {hub_deposit}, expected {want}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_operator_deposits_into_a_device_channel_and_others_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let hub_addr = hub_address(hub.channel().await).await;
    let mut dev = party(&hub, key(1)).await;
    let id = open_funded_channel(&mut dev.ledger, dev.key.address(), hub_addr, 100, 100).await;
    let id = U256::from_be_slice(&id);
    let mut op = operator(&hub, dir.path()).await;
    mint(&mut op, hub_addr, 80).await;

    // Everyone but the operator is refused, before anything else is looked at.
    let err = dev
        .channels
        .operator_deposit(deposit_request(id, additional(10)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    assert!(err
        .message()
        .contains("OperatorDeposit is for the hub operator"));
    let err = dev
        .channels
        .operator_deposit(deposit_request(u(999), additional(10)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    // The operator's refusals name the problem.
    let refusals = [
        (
            deposit_request(u(999), additional(10)),
            Code::NotFound,
            "unknown channel 999",
        ),
        (
            deposit_request(id, additional(81)),
            Code::FailedPrecondition,
            "holds 80 tokens but 81 are needed",
        ),
        (
            deposit_request(id, total(0)),
            Code::FailedPrecondition,
            "total deposit must grow: current 0, requested 0",
        ),
        (
            deposit_request(id, additional(0)),
            Code::FailedPrecondition,
            "total deposit must grow",
        ),
        (
            deposit_request(id, None),
            Code::InvalidArgument,
            "amount: is required: set total_deposit or additional",
        ),
        (
            v1::OperatorDepositRequest {
                channel_id: vec![1; 31],
                amount: additional(1),
            },
            Code::InvalidArgument,
            "channel_id: must be 32 bytes",
        ),
    ];
    for (req, code, reason) in refusals {
        let err = op.channels.operator_deposit(req).await.unwrap_err();
        assert_eq!(err.code(), code, "{err:?}");
        assert!(err.message().contains(reason), "{reason}: {err:?}");
    }
    // Nothing changed: no deposit on the ledger, the operator keeps its tokens.
    assert_eq!(ledger_deposits(&mut op, id, hub_addr).await, (u(100), u(0)));
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(80));
    assert_eq!(amount(&view(&mut dev, id).await.hub_deposit), u(0));

    // A total, then an increase: the answer is the channel with the deposit applied.
    let resp = op
        .channels
        .operator_deposit(deposit_request(id, total(30)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(resp.events.len(), 1);
    let state = resp.channel.unwrap();
    assert_eq!(amount(&state.hub_deposit), u(30));
    assert_eq!(amount(&state.hub_capacity), u(30));
    assert_eq!(amount(&state.device_capacity), u(100));
    let resp = op
        .channels
        .operator_deposit(deposit_request(id, additional(45)))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amount(&resp.channel.unwrap().hub_deposit), u(75));
    assert_eq!(
        ledger_deposits(&mut op, id, hub_addr).await,
        (u(100), u(75))
    );
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(5));
    let seen = view(&mut dev, id).await;
    assert_eq!(amount(&seen.hub_deposit), u(75));
    assert_eq!(amount(&seen.hub_capacity), u(75));

    // Not open any more: refused, nothing taken.
    let time = dev
        .ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    let domain = Domain::try_from(time.domain.unwrap()).unwrap();
    let closing = SignedBalanceProof::none(domain, id)
        .counter_sign_close(&dev.key)
        .unwrap();
    dev.ledger
        .close_channel(v1::CloseChannelRequest {
            channel_id: u256_bytes(&id),
            partner_proof: None,
            closing_signature: closing.as_bytes().to_vec(),
        })
        .await
        .unwrap();
    let err = op
        .channels
        .operator_deposit(deposit_request(id, additional(1)))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(
        err.message()
            .contains("is Closed but this operation needs it Opened"),
        "{err:?}"
    );
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(5));
    hub.stop().await;
}

/// Signs the device's next payment of `amount` in its own copy of the channel.
fn sign_payment(ch: &mut Channel, key: &LocalSigner, amount: u64) -> SignedBalanceProof {
    ch.send_payment(u(amount), H256::ZERO, key)
        .unwrap()
        .into_iter()
        .find_map(|e| match e {
            ChannelEvent::Send(ChannelMessage::Payment { proof, .. }) => Some(proof),
            _ => None,
        })
        .unwrap()
}

/// One payment on its own `Pay` stream; the ack.
async fn pay(p: &mut Party, proof: &SignedBalanceProof, amount: u64) -> v1::PaymentAck {
    let (tx, rx) = mpsc::channel(1);
    tx.send(v1::PaymentMessage {
        request_id: 1,
        balance_proof: Some(proof.into()),
        amount: u256_bytes(&u(amount)),
        kind: None,
    })
    .await
    .unwrap();
    let mut acks = p
        .payments
        .pay(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    acks.next().await.unwrap().unwrap()
}

fn is_accepted(ack: &v1::PaymentAck) -> bool {
    matches!(ack.outcome, Some(v1::payment_ack::Outcome::Accepted(_)))
}

#[tokio::test]
async fn the_view_shows_both_capacities_and_a_device_top_up_counts_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let hub_addr = hub_address(hub.channel().await).await;
    let mut dev = party(&hub, key(2)).await;
    let raw_id = open_funded_channel(&mut dev.ledger, dev.key.address(), hub_addr, 150, 100).await;
    let id = U256::from_be_slice(&raw_id);
    let mut op = operator(&hub, dir.path()).await;
    mint(&mut op, hub_addr, 50).await;
    op.channels
        .operator_deposit(deposit_request(id, total(50)))
        .await
        .unwrap();

    let domain = Domain::try_from(
        dev.ledger
            .get_time(v1::GetTimeRequest {})
            .await
            .unwrap()
            .into_inner()
            .domain
            .unwrap(),
    )
    .unwrap();
    let mut ch = Channel::new(domain, id, dev.key.address(), hub_addr);
    ch.handle_ledger_deposit(dev.key.address(), u(100)).unwrap();
    ch.handle_ledger_deposit(hub_addr, u(50)).unwrap();

    // The device pays 30, the hub pays 10 back.
    let p = sign_payment(&mut ch, &dev.key, 30);
    assert!(is_accepted(&pay(&mut dev, &p, 30).await));
    op.payments
        .operator_pay(v1::OperatorPayRequest {
            channel_id: u256_bytes(&id),
            amount: u256_bytes(&u(10)),
        })
        .await
        .unwrap();
    let state = view(&mut dev, id).await;
    assert_eq!(amount(&state.hub_capacity), u(50 - 10 + 30));
    assert_eq!(amount(&state.device_capacity), u(100 - 30 + 10));
    let listed = dev
        .channels
        .list_channels(v1::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.channels, vec![state]);

    // Beyond its capacity the device is refused; after a top-up on the ledger the same
    // payment is accepted at once (no wait for the watcher).
    let mut over = ch.clone();
    over.handle_ledger_deposit(dev.key.address(), u(150))
        .unwrap();
    let big = sign_payment(&mut over, &dev.key, 100);
    let ack = pay(&mut dev, &big, 100).await;
    assert!(!is_accepted(&ack), "{ack:?}");
    dev.ledger
        .set_total_deposit(v1::SetTotalDepositRequest {
            channel_id: raw_id.clone(),
            participant: address_bytes(&dev.key.address()),
            total_deposit: u256_bytes(&u(150)),
        })
        .await
        .unwrap();
    let ack = pay(&mut dev, &big, 100).await;
    assert!(is_accepted(&ack), "{ack:?}");
    let state = view(&mut dev, id).await;
    assert_eq!(amount(&state.device_deposit), u(150));
    assert_eq!(amount(&state.device_capacity), u(150 - 130 + 10));
    assert_eq!(amount(&state.hub_capacity), u(50 - 10 + 130));
    hub.stop().await;
}

async fn start_with_policy(dir: &Path, policy: Option<u64>) -> TestHub {
    let mut config = HubConfig::new(dir);
    config.mediation.auto_deposit = policy.map(u);
    TestHub::start_with(config).await
}

#[tokio::test]
async fn the_auto_deposit_policy_matches_device_channels_while_the_operator_has_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_with_policy(dir.path(), Some(40)).await;
    let hub_addr = hub_address(hub.channel().await).await;
    let mut op = operator(&hub, dir.path()).await;
    mint(&mut op, hub_addr, 100).await;

    let mut a = party(&hub, key(3)).await;
    let id_a = open_funded_channel(&mut a.ledger, a.key.address(), hub_addr, 100, 100).await;
    let id_a = U256::from_be_slice(&id_a);
    wait_hub_deposit(&mut op, id_a, hub_addr, 40).await;
    let mut b = party(&hub, key(4)).await;
    let id_b = open_funded_channel(&mut b.ledger, b.key.address(), hub_addr, 100, 100).await;
    let id_b = U256::from_be_slice(&id_b);
    wait_hub_deposit(&mut op, id_b, hub_addr, 40).await;
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(20));

    // The third channel cannot be matched with 20 tokens left: skipped, nothing taken ...
    let mut c = party(&hub, key(5)).await;
    let id_c = open_funded_channel(&mut c.ledger, c.key.address(), hub_addr, 100, 100).await;
    let id_c = U256::from_be_slice(&id_c);
    // ... until the operator gets tokens (a ledger change, so the policy looks again).
    mint(&mut op, Address([0x77; 20]), 1).await;
    assert_eq!(ledger_deposits(&mut op, id_c, hub_addr).await.1, u(0));
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(20));
    mint(&mut op, hub_addr, 25).await;
    wait_hub_deposit(&mut op, id_c, hub_addr, 40).await;
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(5));
    // The earlier channels were not touched again, and the hub's view shows the capacity.
    assert_eq!(
        ledger_deposits(&mut op, id_a, hub_addr).await,
        (u(100), u(40))
    );
    let state = view(&mut c, id_c).await;
    assert_eq!(amount(&state.hub_deposit), u(40));
    assert_eq!(amount(&state.hub_capacity), u(40));
    hub.stop().await;
}

#[tokio::test]
async fn the_auto_deposit_policy_tops_up_channels_it_finds_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start_with_policy(dir.path(), None).await;
    let hub_addr = hub_address(hub.channel().await).await;
    let mut dev = party(&hub, key(6)).await;
    let id = open_funded_channel(&mut dev.ledger, dev.key.address(), hub_addr, 100, 100).await;
    let id = U256::from_be_slice(&id);
    let mut op = operator(&hub, dir.path()).await;
    mint(&mut op, hub_addr, 100).await;
    op.channels
        .operator_deposit(deposit_request(id, total(15)))
        .await
        .unwrap();
    // Without the policy nothing more is deposited.
    assert_eq!(ledger_deposits(&mut op, id, hub_addr).await.1, u(15));
    hub.stop().await;

    let hub = start_with_policy(dir.path(), Some(60)).await;
    let mut op = operator(&hub, dir.path()).await;
    wait_hub_deposit(&mut op, id, hub_addr, 60).await;
    assert_eq!(token_balance(&mut op.ledger, hub_addr).await, u(100 - 60));
    hub.stop().await;
}

#[tokio::test]
async fn get_info_shows_the_mediation_settings_and_bad_ones_stop_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = HubConfig::new(dir.path());
    config.mediation.mediation_fee_flat = u(3);
    config.mediation.mediation_fee_ppm = 2_500;
    config.mediation.reveal_timeout_secs = Some(30);
    config.mediation.auto_deposit = Some(u(500));
    let hub = TestHub::start_with(config).await;
    let info = v1::hub_client::HubClient::new(hub.channel().await)
        .get_info(v1::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amount(&info.mediation_fee_flat), u(3));
    assert_eq!(info.mediation_fee_ppm, 2_500);
    assert_eq!(info.reveal_timeout, 30);
    assert_eq!(amount(&info.auto_deposit), u(500));
    hub.stop().await;

    // Defaults: no fee, no policy, a fifth of the settlement window.
    let hub = TestHub::start(dir.path()).await;
    let info = v1::hub_client::HubClient::new(hub.channel().await)
        .get_info(v1::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(amount(&info.mediation_fee_flat), u(0));
    assert_eq!(info.mediation_fee_ppm, 0);
    assert_eq!(info.reveal_timeout, 24);
    assert!(info.auto_deposit.is_empty());
    hub.stop().await;

    for (set, reason) in [
        (
            Box::new(|c: &mut HubConfig| c.mediation.reveal_timeout_secs = Some(61))
                as Box<dyn Fn(&mut HubConfig)>,
            "reveal timeout (61 s) must be at most half the settlement window (120 s)",
        ),
        (
            Box::new(|c: &mut HubConfig| c.mediation.mediation_fee_ppm = 1_000_001),
            "at most 1000000 ppm",
        ),
    ] {
        let bad_dir = tempfile::tempdir().unwrap();
        let mut config = HubConfig::new(bad_dir.path());
        set(&mut config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let err = voltlane_hub::run(config, listener, async {})
            .await
            .unwrap_err();
        assert!(matches!(err, HubError::Config(_)), "{err}");
        assert!(err.to_string().contains(reason), "{err}");
        assert!(
            !bad_dir.path().join("db").exists(),
            "refused before the data directory is touched"
        );
    }
}
