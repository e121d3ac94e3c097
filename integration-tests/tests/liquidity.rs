//! Hub liquidity end to end, with the real hub binary and the device SDK: the hub's
//! auto-deposit policy matches a new device channel, the operator deposits more with
//! `Channels.OperatorDeposit`, the device tops up with `Client::deposit` and pays at once
//! with the new capacity, the channel view's capacities are exact at every step, and the
//! cooperative close pays out exactly what they say. Also: the mediation settings given by
//! flag and by environment variable come back in `Hub.GetInfo`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::LocalSigner;
use integration_tests::device::{hub_info, login, Authed, Bearer};
use integration_tests::{HubOptions, HubProcess, Operator};
use voltlane_client::{Client, ClientError, DeviceStore, U256};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;
use voltlane_proto::v1::operator_deposit_request::Amount;

/// Bound of every wait for something the hub or the SDK does in the background.
const WAIT: Duration = Duration::from_secs(15);

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn amount(bytes: &[u8]) -> U256 {
    U256::from_be_slice(bytes)
}

fn device_key(n: u8) -> LocalSigner {
    let mut b = [0x2au8; 32];
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

/// A `Channels` client logged in as `key`.
async fn channels_as(
    hub: &HubProcess,
    key: &LocalSigner,
) -> v1::channels_client::ChannelsClient<Authed> {
    let conn = hub.connect().await.unwrap();
    let hub_address = hub.operator_key().unwrap().address();
    let token = login(conn.clone(), key, &hub_address).await.unwrap();
    v1::channels_client::ChannelsClient::with_interceptor(conn, Bearer::new(&token).unwrap())
}

async fn view(
    channels: &mut v1::channels_client::ChannelsClient<Authed>,
    id: U256,
) -> v1::ChannelState {
    channels
        .get_channel(v1::GetChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .unwrap()
        .into_inner()
}

/// (hub capacity, device capacity) in the hub's view.
fn capacities(state: &v1::ChannelState) -> (U256, U256) {
    (amount(&state.hub_capacity), amount(&state.device_capacity))
}

#[tokio::test]
async fn auto_deposit_operator_deposit_and_device_top_up_give_exact_capacities() {
    let hub = HubProcess::start(HubOptions {
        extra_args: vec![
            "--auto-deposit".into(),
            "300".into(),
            "--mediation-fee-flat".into(),
            "2".into(),
            "--reveal-timeout-secs".into(),
            "1".into(),
        ],
        env: vec![("VOLTLANE_MEDIATION_FEE_PPM".into(), "1500".into())],
        ..HubOptions::default()
    })
    .await
    .unwrap();
    let info = hub_info(hub.connect().await.unwrap()).await.unwrap();
    assert_eq!(amount(&info.auto_deposit), u(300));
    assert_eq!(amount(&info.mediation_fee_flat), u(2));
    assert_eq!(info.mediation_fee_ppm, 1500);
    assert_eq!(info.reveal_timeout, 1);

    let operator_key = hub.operator_key().unwrap();
    let hub_address = operator_key.address();
    let operator = Operator::login(hub.connect().await.unwrap(), operator_key.clone())
        .await
        .unwrap();
    operator
        .ledger()
        .mint(v1::MintRequest {
            to: address_bytes(&hub_address),
            amount: u256_bytes(&u(1_000)),
        })
        .await
        .unwrap();

    // 1. A new device channel: the policy (up to 300) matches the device's 100.
    let key = device_key(1);
    let client = Client::connect(&hub.url(), key.clone(), DeviceStore::in_memory())
        .await
        .unwrap();
    client.mint(u(400)).await.unwrap();
    let id = client.open_channel(u(100)).await.unwrap();
    let mut as_device = channels_as(&hub, &key).await;
    eventually("the hub's auto-deposit in the hub's view", || {
        let mut c = as_device.clone();
        async move { amount(&view(&mut c, id).await.hub_deposit) == u(100) }
    })
    .await;
    eventually("the SDK to see the hub's deposit", || async {
        client.balances().unwrap().hub_deposit == u(100)
    })
    .await;
    assert_eq!(
        capacities(&view(&mut as_device, id).await),
        (u(100), u(100))
    );
    assert_eq!(client.token_balance(hub_address).await.unwrap(), u(900));

    // 2. The operator deposits 200 more; a device may not.
    let mut as_operator = channels_as(&hub, &operator_key).await;
    let deposit = |n: u64| v1::OperatorDepositRequest {
        channel_id: u256_bytes(&id),
        amount: Some(Amount::Additional(u256_bytes(&u(n)))),
    };
    let err = as_device.operator_deposit(deposit(200)).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    let resp = as_operator
        .operator_deposit(deposit(200))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capacities(&resp.channel.unwrap()), (u(300), u(100)));
    assert_eq!(client.token_balance(hub_address).await.unwrap(), u(700));

    // 3. Payments both ways within the capacities.
    client.pay(u(60)).await.unwrap();
    operator.pay(id, u(25)).await.unwrap();
    eventually("the SDK to receive the hub's payment", || async {
        client.balances().unwrap().hub_transferred == u(25)
    })
    .await;
    assert_eq!(
        capacities(&view(&mut as_device, id).await),
        (u(300 - 25 + 60), u(100 - 60 + 25))
    );

    // 4. The device tops up; refusals change nothing; then it pays at once with the new
    //    capacity (65 were left, 150 is paid).
    let err = client.deposit(U256::ZERO).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::InvalidState(m) if m.contains("total deposit must grow")),
        "{err}"
    );
    let err = client.deposit(u(301)).await.unwrap_err();
    assert!(
        matches!(&err, ClientError::InvalidState(m) if m.contains("holds 300 tokens but 301 are needed")),
        "{err}"
    );
    assert_eq!(client.balances().unwrap().our_deposit, u(100));
    assert_eq!(client.deposit(u(150)).await.unwrap(), u(250));
    assert_eq!(client.balances().unwrap().our_deposit, u(250));
    assert_eq!(client.token_balance(key.address()).await.unwrap(), u(150));
    client.pay(u(150)).await.unwrap();

    // 5. Exact capacities: the device deposited 250, sent 210, received 25; the hub
    //    deposited 300, sent 25, received 210.
    let state = view(&mut as_device, id).await;
    assert_eq!(amount(&state.device_deposit), u(250));
    assert_eq!(amount(&state.hub_deposit), u(300));
    assert_eq!(capacities(&state), (u(300 - 25 + 210), u(250 - 210 + 25)));
    let balances = client.balances().unwrap();
    assert_eq!((balances.hubs, balances.ours), (u(485), u(65)));

    // The policy does not touch the channel again: the hub deposit meets it.
    assert_eq!(client.token_balance(hub_address).await.unwrap(), u(700));

    // 6. The cooperative close pays out exactly those balances.
    let settlement = client.cooperative_close().await.unwrap();
    assert_eq!(settlement.device_amount, u(65));
    assert_eq!(settlement.hub_amount, u(485));
    assert_eq!(
        client.token_balance(key.address()).await.unwrap(),
        u(150 + 65)
    );
    assert_eq!(
        client.token_balance(hub_address).await.unwrap(),
        u(700 + 485)
    );
}
