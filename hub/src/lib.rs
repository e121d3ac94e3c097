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
//! - [`mediation`]: payments between devices through the hub (hash-time-locked transfers).
//! - [`sessions`]: the relay of metered sessions between devices.
//! - [`server`]: services, interceptor, limits, health and reflection, TLS.
//! - [`metrics`]: the Prometheus registry and the `/metrics` endpoint.
//! - [`dashboard`]: the live web page beside `/metrics` and the JSON it polls.
//!
//! What this crate does not do: protocol rules (they live in `channel-core`), or talk to a
//! real chain.

pub mod auth;
pub mod channels;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod failpoint;
pub mod info;
pub mod keys;
pub mod ledger;
pub mod mediation;
pub mod metrics;
pub mod server;
pub mod sessions;
pub mod shutdown;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use channel_core::crypto::Signer;
use tokio::net::TcpListener;

pub use config::{HubConfig, LogFormat};
pub use error::HubError;

use auth::Authenticator;
use channels::ChannelEngine;
use info::InfoService;
use ledger::chain::ChainLedger;
use ledger::{HubLedger, LedgerHandle, LedgerKind, LedgerService};
use metrics::Metrics;
use store::{KvStore, SledOptions, SledStore};

/// The sockets the hub serves on.
#[derive(Debug)]
pub struct Listeners {
    /// The gRPC API.
    pub grpc: TcpListener,
    /// The Prometheus endpoint, if any.
    pub metrics: Option<TcpListener>,
}

/// Runs the hub on `listener` until `shutdown` resolves, with the metrics endpoint bound to
/// `--metrics-listen` if configured. See [`run_with`].
pub async fn run(
    config: HubConfig,
    listener: TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    let metrics =
        match config.ops.metrics_listen {
            Some(addr) => Some(TcpListener::bind(addr).await.map_err(|e| {
                HubError::Config(format!("--metrics-listen {addr}: cannot bind: {e}"))
            })?),
            None => None,
        };
    let listeners = Listeners {
        grpc: listener,
        metrics,
    };
    run_with(config, listeners, shutdown).await
}

/// Runs the hub on `listeners` until `shutdown` resolves: opens (or creates) the data
/// directory, the operator key and the sled database, loads the ledger, serves (with TLS if
/// configured), then stops accepting, ends open streams, drains connections and flushes the
/// store.
pub async fn run_with(
    config: HubConfig,
    listeners: Listeners,
    shutdown: impl Future<Output = ()>,
) -> Result<(), HubError> {
    // Refuse bad settings before touching the data directory. On a chain the settlement
    // window (which bounds the reveal timeout) is the contract's: checked again once known.
    if config.ledger.kind == LedgerKind::Embedded {
        config.validate()?;
    }
    let tls = config.ops.tls_pem()?;
    std::fs::create_dir_all(&config.data_dir)?;
    let operator = Arc::new(keys::load(&config)?);
    let hub_address = operator.address();
    let metrics = Metrics::new();
    let sled = Arc::new(SledStore::open_with(
        &config.db_path(),
        SledOptions {
            cache_bytes: config.limits.store_cache_mb.saturating_mul(1 << 20),
            group_commit_interval: Duration::from_micros(config.limits.group_commit_interval_us),
            observer: Some(Arc::new(metrics.clone())),
        },
    )?);
    let store: Arc<dyn KvStore> = sled.clone();
    let (trigger, stop) = shutdown::channel();
    let mut config = config;
    let (ledger, follower) = open_ledger(&mut config, store.clone(), &operator, &stop).await?;
    config.validate()?;
    let domain = config.ledger_config().domain;

    let channels = ChannelEngine::new(
        store.clone(),
        ledger.clone(),
        operator.clone(),
        domain,
        stop.clone(),
    )?;
    let mediation_config = config.mediation_config();
    if !mediation_config.can_forward() {
        tracing::warn!(
            settlement_window_secs = mediation_config.settlement_window,
            reveal_timeout_secs = mediation_config.reveal_timeout,
            "no mediated payment can be forwarded: a payer's lock must expire more than two \
             reveal timeouts ahead and within the settlement window"
        );
    }
    let services = server::Services {
        auth: Arc::new(Authenticator::new(hub_address, &config.limits)),
        info: InfoService::new(hub_address, ledger.clone(), config.dev_faucet)
            .with_mediation(&config),
        ledger: ledger
            .embedded()
            .map(|handle| LedgerService::new(handle.clone(), config.dev_faucet, stop.clone())),
        mediation: mediation::MediationEngine::new(channels.clone(), mediation_config)?,
        sessions: sessions::SessionRelay::new(domain, ledger.clone(), config.limits.max_sessions)
            .with_limits(sessions::relay::RelayLimits {
                max_sessions: config.limits.max_sessions,
                max_sessions_per_key: config.limits.max_sessions_per_key,
                idle_timeout: config.limits.session_idle_timeout(),
            })
            .with_channels(channels.clone()),
        shutdown: stop.clone(),
        channels,
    };
    let mut mediator_stop = stop.clone();
    let mediator = tokio::spawn(metrics::scope(
        metrics.clone(),
        mediation::driver::run(services.mediation.clone(), async move {
            mediator_stop.wait().await
        }),
    ));
    let mut watcher_stop = stop.clone();
    let watcher = tokio::spawn(metrics::scope(
        metrics.clone(),
        services.channels.watcher(
            config.reveal_timeout(),
            async move { watcher_stop.wait().await },
        ),
    ));
    let exporter = listeners.metrics.map(|listener| {
        let source = metrics::StateSource {
            ledger: ledger.clone(),
            book: services.channels.book.clone(),
            mediated: Some(services.mediation.records().clone()),
            sessions: Some(services.sessions.clone()),
        };
        let mut exporter_stop = stop.clone();
        tokio::spawn(metrics::serve(
            listener,
            metrics.clone(),
            source,
            async move { exporter_stop.wait().await },
        ))
    });
    let mut policy_stop = stop.clone();
    let auto_deposit = tokio::spawn(channels::liquidity::run(
        ledger.clone(),
        hub_address,
        config.mediation.auto_deposit,
        async move { policy_stop.wait().await },
    ));
    tracing::info!(
        hub = %hub_address,
        ledger = ?ledger.kind(),
        chain_id = config.chain_id,
        token_network = %config.token_network_address,
        settlement_window_secs = config.settlement_window_secs,
        dev_faucet = config.dev_faucet && ledger.embedded().is_some(),
        data_dir = %config.data_dir.display(),
        "voltlane hub starting"
    );
    let signal = async move {
        shutdown.await;
        tracing::info!("shutdown requested: closing streams and draining connections");
        trigger.trigger();
    };
    let options = server::ServeOptions {
        tls,
        metrics: metrics.clone(),
    };
    let served =
        server::serve_with(listeners.grpc, services, &config.limits, options, signal).await;
    if let Err(e) = watcher.await {
        tracing::error!(error = %e, "ledger watcher ended abnormally");
    }
    if let Err(e) = mediator.await {
        tracing::error!(error = %e, "mediation driver ended abnormally");
    }
    if let Err(e) = auto_deposit.await {
        tracing::error!(error = %e, "auto-deposit task ended abnormally");
    }
    if let Some(follower) = follower {
        if let Err(e) = follower.await {
            tracing::error!(error = %e, "chain follower ended abnormally");
        }
    }
    if let Some(exporter) = exporter {
        match exporter.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "metrics endpoint failed"),
            Err(e) => tracing::error!(error = %e, "metrics endpoint ended abnormally"),
        }
    }
    drop(ledger);
    drop(store);
    let closed = sled.close().await;
    tracing::info!("voltlane hub stopped");
    served?;
    closed?;
    Ok(())
}

/// Opens the ledger `config` names: the embedded one from `store`, or the chain (connected as
/// the operator, its follower state loaded from `store`, its follower spawned until `stop`).
/// On a chain, the chain id and the settlement window in `config` are replaced by the
/// contract's, so that everything derived from them (the domain proofs are bound to, the
/// reveal timeout) is the chain's.
async fn open_ledger(
    config: &mut HubConfig,
    store: Arc<dyn KvStore>,
    operator: &channel_core::LocalSigner,
    stop: &shutdown::Shutdown,
) -> Result<(HubLedger, Option<tokio::task::JoinHandle<()>>), HubError> {
    refuse_other_ledger(store.as_ref(), config.ledger.kind)?;
    match config.ledger.kind {
        LedgerKind::Embedded => {
            let handle = LedgerHandle::load(store, config.ledger_config(), clock::unix_now)?;
            Ok((HubLedger::Embedded(Arc::new(handle)), None))
        }
        LedgerKind::Ethereum => {
            let chain_config = config.chain_ledger_config()?;
            let chain = Arc::new(ChainLedger::connect(&chain_config, operator, store).await?);
            let domain = chain.domain();
            config.chain_id = u64::try_from(domain.chain_id).map_err(|_| {
                HubError::Config(format!("chain id {} does not fit 64 bits", domain.chain_id))
            })?;
            config.settlement_window_secs = chain.settle_timeout();
            // Read what is already confirmed before serving, so the book starts from the
            // chain's present rather than from the cursor's past.
            chain.follow_once().await?;
            let follower = {
                let chain = chain.clone();
                let stop = stop.clone();
                let interval = config.ledger.poll_interval();
                tokio::spawn(async move { chain.follow(stop, interval).await })
            };
            Ok((HubLedger::Chain(chain), Some(follower)))
        }
    }
}

/// A data directory belongs to the ledger it was created with: the channel book counts the
/// ledger's events by seq, and the two ledgers number different events. Starting it on the
/// other one is refused, naming both.
fn refuse_other_ledger(store: &dyn KvStore, kind: LedgerKind) -> Result<(), HubError> {
    let embedded = store
        .read(ledger::records::NS_LEDGER_META, ledger::records::KEY_META)?
        .is_some()
        || store
            .read(ledger::records::NS_LEDGER, ledger::records::KEY_STATE)?
            .is_some();
    let chain = store
        .read(
            ledger::chain::state::NS_CHAIN_LEDGER,
            ledger::chain::state::KEY_CURSOR,
        )?
        .is_some();
    let holds = match (embedded, chain) {
        (true, _) if kind == LedgerKind::Ethereum => "the embedded ledger",
        (_, true) if kind == LedgerKind::Embedded => "a chain ledger (--ledger ethereum)",
        _ => return Ok(()),
    };
    Err(HubError::Config(format!(
        "the data directory holds {holds}, but the hub is configured with --ledger {}; use \
         another --data-dir or the ledger it was created with",
        match kind {
            LedgerKind::Embedded => "embedded",
            LedgerKind::Ethereum => "ethereum",
        }
    )))
}
