//! Test harness: `voltlane_hub::run` on 127.0.0.1:0 with a oneshot shutdown, plus an
//! authenticated tonic client.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::Path;

use channel_core::crypto::{LocalSigner, Signer};
use channel_core::primitives::Address;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};
use voltlane_hub::{HubConfig, HubError};
use voltlane_proto::auth::auth_digest;
use voltlane_proto::v1;

pub struct TestHub {
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<Result<(), HubError>>>,
}

impl TestHub {
    pub async fn start(data_dir: &Path) -> Self {
        Self::start_with(HubConfig::new(data_dir)).await
    }

    pub async fn start_with(config: HubConfig) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(voltlane_hub::run(config, listener, async {
            let _ = stopped.await;
        }));
        Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Starts a hub with its Prometheus endpoint on another free loopback port; returns the
    /// hub and the endpoint's address.
    pub async fn start_with_metrics(config: HubConfig) -> (Self, SocketAddr) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics_addr = metrics.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let listeners = voltlane_hub::Listeners {
            grpc: listener,
            metrics: Some(metrics),
        };
        let task = tokio::spawn(voltlane_hub::run_with(config, listeners, async {
            let _ = stopped.await;
        }));
        let hub = Self {
            addr,
            stop: Some(stop),
            task: Some(task),
        };
        (hub, metrics_addr)
    }

    pub async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://{}", self.addr))
            .unwrap()
            .connect()
            .await
            .unwrap()
    }

    /// Signals shutdown and waits until `run` returned.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }
}

pub fn key(n: u8) -> LocalSigner {
    channel_core::testing::test_signer(n)
}

#[derive(Clone)]
pub struct Bearer(pub String);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let value = MetadataValue::try_from(format!("Bearer {}", self.0))
            .map_err(|_| Status::internal("token"))?;
        req.metadata_mut().insert("authorization", value);
        Ok(req)
    }
}

pub type AuthedLedger = v1::ledger_client::LedgerClient<InterceptedService<Channel, Bearer>>;

pub async fn hub_address(channel: Channel) -> Address {
    let info = v1::hub_client::HubClient::new(channel)
        .get_info(v1::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    Address::from_slice(&info.hub_address).unwrap()
}

/// Challenge/response login; returns the session token.
pub async fn login(channel: Channel, who: &LocalSigner) -> String {
    let hub = hub_address(channel.clone()).await;
    let mut auth = v1::auth_client::AuthClient::new(channel);
    let challenge = auth
        .get_challenge(v1::ChallengeRequest {
            address: who.address().0.to_vec(),
        })
        .await
        .unwrap()
        .into_inner();
    let c: [u8; 32] = challenge.challenge.as_slice().try_into().unwrap();
    let sig = who.sign_hash(&auth_digest(&hub, &c)).unwrap();
    auth.authenticate(v1::AuthenticateRequest {
        address: who.address().0.to_vec(),
        challenge: c.to_vec(),
        signature: sig.as_bytes().to_vec(),
    })
    .await
    .unwrap()
    .into_inner()
    .token
}

pub async fn ledger_as(channel: Channel, who: &LocalSigner) -> AuthedLedger {
    let token = login(channel.clone(), who).await;
    v1::ledger_client::LedgerClient::with_interceptor(channel, Bearer(token))
}

/// As `dev` on the ledger: mints `mint` tokens to itself, opens a channel with `hub` and
/// deposits `deposit`. Returns the channel id as sent on the wire.
pub async fn open_funded_channel(
    ledger: &mut AuthedLedger,
    dev: Address,
    hub: Address,
    mint: u64,
    deposit: u64,
) -> Vec<u8> {
    use voltlane_proto::convert::{address_bytes, u256_bytes};
    ledger
        .mint(v1::MintRequest {
            to: address_bytes(&dev),
            amount: u256_bytes(&channel_core::U256::from(mint)),
        })
        .await
        .unwrap();
    let opened = ledger
        .open_channel(v1::OpenChannelRequest {
            partner: address_bytes(&hub),
            total_deposit: Vec::new(),
        })
        .await
        .unwrap()
        .into_inner();
    ledger
        .set_total_deposit(v1::SetTotalDepositRequest {
            channel_id: opened.channel_id.clone(),
            participant: address_bytes(&dev),
            total_deposit: u256_bytes(&channel_core::U256::from(deposit)),
        })
        .await
        .unwrap();
    opened.channel_id
}

/// `who`'s token balance on the ledger.
pub async fn token_balance(ledger: &mut AuthedLedger, who: Address) -> channel_core::U256 {
    let balance = ledger
        .get_token_balance(v1::GetTokenBalanceRequest {
            address: voltlane_proto::convert::address_bytes(&who),
        })
        .await
        .unwrap()
        .into_inner();
    channel_core::U256::from_be_slice(&balance.balance)
}
