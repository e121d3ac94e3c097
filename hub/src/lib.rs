//! # voltlane-hub
//!
//! The Voltlane hub daemon as a library: [`run`] serves the `voltlane.v1` gRPC API on a bound
//! listener until a shutdown future resolves. `main` calls it with SIGINT/SIGTERM, tests with a
//! oneshot.
//!
//! - [`config`]: flags and `VOLTLANE_*` env vars ([`HubConfig`]).
//! - [`auth`]: challenge/response login, session tokens, the one auth interceptor.
//! - [`store`]: the [`store::KvStore`] trait, sled with group commit, in-memory double.
//! - [`ledger`]: the embedded `channel_core::ledger::Ledger`, persisted before every answer.
//! - [`channels`]: device channels, payments, and the ledger watcher.
//! - [`server`]: services, interceptor, limits, health and reflection.
//!
//! What this crate does not do: protocol rules (they live in `channel-core`), TLS (put the hub
//! behind a TLS-terminating proxy or add it to the builder), or talk to a real chain.

pub mod auth;
pub mod channels;
pub mod clock;
pub mod config;
pub mod error;
pub mod failpoint;
pub mod info;
pub mod keys;
pub mod ledger;
pub mod server;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::sync::Arc;

use channel_core::crypto::Signer;
use tokio::net::TcpListener;

pub use config::{HubConfig, LogFormat};
pub use error::HubError;

use auth::Authenticator;
use channels::ChannelEngine;
use info::InfoService;
use ledger::{LedgerHandle, LedgerService};
use store::{KvStore, SledStore};

/// Runs the hub on `listener` until `shutdown` resolves: opens (or creates) the data directory,
/// the operator key and the sled database, loads the ledger, serves, then stops accepting,
/// ends open streams, drains connections and flushes the store.
pub async fn run(
    config: HubConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)?;
    let operator = Arc::new(keys::load_or_create(&config.operator_key_path())?);
    let hub_address = operator.address();
    let sled = Arc::new(SledStore::open(&config.db_path())?);
    let store: Arc<dyn KvStore> = sled.clone();
    let ledger = Arc::new(LedgerHandle::load(
        store.clone(),
        config.ledger_config(),
        clock::unix_now,
    )?);
    let (trigger, stop) = shutdown::channel();

    let services = server::Services {
        auth: Arc::new(Authenticator::new(hub_address, &config.limits)),
        info: InfoService::new(hub_address, ledger.clone(), config.dev_faucet)
            .with_mediation(&config),
        ledger: LedgerService::new(ledger.clone(), config.dev_faucet, stop.clone()),
        channels: ChannelEngine::new(
            store.clone(),
            ledger.clone(),
            operator.clone(),
            config.ledger_config().domain,
            stop.clone(),
        )?,
    };
    let mut watcher_stop = stop.clone();
    let watcher = tokio::spawn(
        services.channels.watcher(
            config.reveal_timeout(),
            async move { watcher_stop.wait().await },
        ),
    );
    let mut policy_stop = stop.clone();
    let auto_deposit = tokio::spawn(channels::liquidity::run(
        ledger.clone(),
        hub_address,
        config.mediation.auto_deposit,
        async move { policy_stop.wait().await },
    ));
    tracing::info!(
        hub = %hub_address,
        chain_id = config.chain_id,
        token_network = %config.token_network_address,
        settlement_window_secs = config.settlement_window_secs,
        dev_faucet = config.dev_faucet,
        data_dir = %config.data_dir.display(),
        "voltlane hub starting"
    );
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested: closing streams and draining connections");
        trigger.trigger();
    };
    let served = server::serve(listener, services, &config.limits, signal).await;
    if let Err(e) = watcher.await {
        tracing::error!(error = %e, "ledger watcher ended abnormally");
    }
    if let Err(e) = auto_deposit.await {
        tracing::error!(error = %e, "auto-deposit task ended abnormally");
    }
    drop(ledger);
    drop(store);
    let closed = sled.close().await;
    tracing::info!("voltlane hub stopped");
    served?;
    closed?;
    Ok(())
}
