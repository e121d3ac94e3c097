//! gRPC health follows the ledger store: once a ledger write fails, the ledger refuses further
//! operations and health reports NOT_SERVING for the services that depend on it.

// Helpers outside `#[test]` functions are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::ledger::LedgerConfig;
use channel_core::primitives::{Address, U256};
use channel_core::Domain;
use common::*;
use tokio::sync::oneshot;
use tonic::Code;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;
use voltlane_hub::auth::Authenticator;
use voltlane_hub::channels::ChannelEngine;
use voltlane_hub::config::Limits;
use voltlane_hub::info::InfoService;
use voltlane_hub::ledger::{LedgerHandle, LedgerService};
use voltlane_hub::server::{serve, Services};
use voltlane_hub::store::{KvStore, MemoryStore, Persist, StoreError, WriteBatch};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

/// Bound on waiting for a health update, so a missing one fails instead of hanging.
const HEALTH_WAIT: Duration = Duration::from_secs(10);

/// A memory store whose writes fail once `fail` is set.
#[derive(Debug, Default)]
struct FailingStore {
    inner: MemoryStore,
    fail: AtomicBool,
}

impl KvStore for FailingStore {
    fn read(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.read(namespace, key)
    }

    fn list(&self, namespace: &str) -> Result<Vec<String>, StoreError> {
        self.inner.list(namespace)
    }

    fn write(&self, batch: WriteBatch) -> Result<Persist, StoreError> {
        if self.fail.load(Ordering::SeqCst) {
            return Err(StoreError::Backend("injected write failure".into()));
        }
        self.inner.write(batch)
    }

    fn sync(&self) -> Result<Persist, StoreError> {
        self.inner.sync()
    }
}

fn status_of(name: &str) -> HealthCheckRequest {
    HealthCheckRequest {
        service: name.to_string(),
    }
}

async fn check(health: &mut HealthClient<tonic::transport::Channel>, name: &str) -> i32 {
    health
        .check(status_of(name))
        .await
        .unwrap()
        .into_inner()
        .status
}

#[tokio::test]
async fn a_failed_ledger_store_turns_health_to_not_serving() {
    let store = Arc::new(FailingStore::default());
    let domain = Domain {
        chain_id: U256::from(337u64),
        token_network_address: Address([0x77; 20]),
    };
    let ledger = Arc::new(
        LedgerHandle::load(
            store.clone(),
            LedgerConfig {
                domain,
                settlement_timeout: 30,
            },
            voltlane_hub::clock::unix_now,
        )
        .unwrap(),
    );
    let operator = Arc::new(key(90));
    let hub_address = operator.address();
    let (trigger, stop) = voltlane_hub::shutdown::channel();
    let limits = Limits::default();
    let hub_ledger = voltlane_hub::ledger::HubLedger::Embedded(ledger.clone());
    let channels = ChannelEngine::new(
        store.clone(),
        hub_ledger.clone(),
        operator,
        domain,
        stop.clone(),
    )
    .unwrap();
    let services = Services {
        auth: Arc::new(Authenticator::new(hub_address, &limits)),
        info: InfoService::new(hub_address, hub_ledger.clone(), true),
        ledger: Some(LedgerService::new(ledger.clone(), true, stop.clone())),
        sessions: voltlane_hub::sessions::SessionRelay::new(domain, hub_ledger, 16),
        shutdown: stop,
        mediation: voltlane_hub::mediation::MediationEngine::new(
            channels.clone(),
            Default::default(),
        )
        .unwrap(),
        channels,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop_server, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        serve(listener, services, &limits, async move {
            let _ = stopped.await;
            trigger.trigger();
        })
        .await
    });

    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel.clone());
    let serving = ServingStatus::Serving as i32;
    let not_serving = ServingStatus::NotServing as i32;
    for name in [
        "",
        "voltlane.v1.Ledger",
        "voltlane.v1.Payments",
        "voltlane.v1.Mediation",
    ] {
        assert_eq!(check(&mut health, name).await, serving, "{name:?}");
    }
    let mut watch_ledger = health
        .watch(status_of("voltlane.v1.Ledger"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch_ledger.message().await.unwrap().unwrap().status,
        serving
    );

    let dev = key(1);
    let mut ledger = ledger_as(channel.clone(), &dev).await;
    let mint = v1::MintRequest {
        to: address_bytes(&dev.address()),
        amount: u256_bytes(&U256::from(10u8)),
    };
    ledger.mint(mint.clone()).await.unwrap();
    assert_eq!(check(&mut health, "").await, serving, "a good write");

    store.fail.store(true, Ordering::SeqCst);
    let err = ledger.mint(mint.clone()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    let update = tokio::time::timeout(HEALTH_WAIT, watch_ledger.message())
        .await
        .expect("health reported the failure")
        .unwrap()
        .unwrap();
    assert_eq!(update.status, not_serving);
    for name in [
        "",
        "voltlane.v1.Ledger",
        "voltlane.v1.Payments",
        "voltlane.v1.Mediation",
    ] {
        assert_eq!(check(&mut health, name).await, not_serving, "{name:?}");
    }
    assert_eq!(check(&mut health, "voltlane.v1.Auth").await, serving);

    // The ledger stays refused even once the store works again: its state may be ahead of disk.
    store.fail.store(false, Ordering::SeqCst);
    let err = ledger.mint(mint).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("restart the hub"), "{err:?}");

    let _ = stop_server.send(());
    drop(health);
    drop(ledger);
    drop(watch_ledger);
    drop(channel);
    server.await.unwrap().unwrap();
}
