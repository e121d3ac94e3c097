//! The tonic server: which services, behind which interceptor, with which limits.
//!
//! Limits, outermost first (tonic applies its builder settings in this order around every
//! service):
//! 1. HTTP/2 `max_concurrent_streams`: open streams (calls) per connection.
//! 2. `concurrency_limit_per_connection` + `load_shed`: requests whose handler is still
//!    running; over the limit a call is refused with RESOURCE_EXHAUSTED instead of queueing.
//! 3. `timeout`: applies to the handler future only, i.e. until the response headers. A
//!    streaming handler returns as soon as its stream is set up, so long-lived streams
//!    (`Pay`, `Subscribe`) are not cut by it while unary calls are. A client `grpc-timeout`
//!    shorter than ours wins.
//! 4. Per service: `max_decoding_message_size` (oversized requests get OUT_OF_RANGE before
//!    any handler runs), then the [`AuthInterceptor`] for authenticated services. A request
//!    body that does not decode gets INVALID_ARGUMENT from the generated code's codec
//!    (`voltlane_proto::codec`).
//! 5. In the ledger service: `Ledger.Mint` creates at most `Limits::faucet_max_mint` tokens.
//!
//! TLS: with `--tls-cert`/`--tls-key` the listener speaks TLS only (rustls, through tonic's
//! server builder); without them it speaks plain HTTP/2 and warns if it is not bound to a
//! loopback address.
//!
//! Health (`grpc.health.v1`): every service starts SERVING. Once the ledger store fails (the
//! ledger then refuses every operation until a restart), [`watch_ledger_failure`] turns the
//! overall status `""` and the services that need the ledger to NOT_SERVING.

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::server::NamedService;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::server::HealthReporter;
use tonic_health::ServingStatus;
use voltlane_proto::v1::auth_server::AuthServer;
use voltlane_proto::v1::channels_server::ChannelsServer;
use voltlane_proto::v1::hub_server::HubServer;
use voltlane_proto::v1::ledger_server::LedgerServer;
use voltlane_proto::v1::mediation_server::MediationServer;
use voltlane_proto::v1::payments_server::PaymentsServer;
use voltlane_proto::v1::sessions_server::SessionsServer;

use crate::auth::service::AuthService;
use crate::auth::{AuthInterceptor, Authenticator};
use crate::channels::service::{ChannelsService, PaymentsService};
use crate::channels::ChannelEngine;
use crate::config::{Limits, TlsPem};
use crate::error::HubError;
use crate::info::InfoService;
use crate::ledger::LedgerService;
use crate::mediation::service::MediationService;
use crate::mediation::MediationEngine;
use crate::metrics::Metrics;
use crate::sessions::service::SessionsService;
use crate::sessions::SessionRelay;
use crate::shutdown::Shutdown;

/// Everything the router serves.
#[derive(Debug)]
pub struct Services {
    pub auth: Arc<Authenticator>,
    pub info: InfoService,
    /// The `voltlane.v1.Ledger` service: served on the embedded ledger only (on a chain,
    /// devices talk to the chain).
    pub ledger: Option<LedgerService>,
    pub channels: ChannelEngine,
    pub mediation: MediationEngine,
    pub sessions: SessionRelay,
    /// Ends long-lived streams that do not watch the channel engine's own shutdown.
    pub shutdown: Shutdown,
}

/// How [`serve_with`] serves: TLS or plain text, and where Pay streams record their metrics.
#[derive(Debug, Default)]
pub struct ServeOptions {
    /// Certificate chain and key; plain text if `None`.
    pub tls: Option<TlsPem>,
    pub metrics: Metrics,
}

/// Serves `services` on `listener` in plain text until `signal` resolves, then drains
/// connections.
pub async fn serve(
    listener: TcpListener,
    services: Services,
    limits: &Limits,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), HubError> {
    serve_with(listener, services, limits, ServeOptions::default(), signal).await
}

/// As [`serve`], over TLS if `options.tls` is given, recording Pay streams in
/// `options.metrics`.
pub async fn serve_with(
    listener: TcpListener,
    services: Services,
    limits: &Limits,
    options: ServeOptions,
    signal: impl std::future::Future<Output = ()>,
) -> Result<(), HubError> {
    let max = limits.max_message_bytes;
    let interceptor = AuthInterceptor::new(services.auth.clone());

    let (health_reporter, health) = tonic_health::server::health_reporter();
    health_reporter
        .set_serving::<AuthServer<AuthService>>()
        .await;
    health_reporter
        .set_serving::<HubServer<InfoService>>()
        .await;
    if services.ledger.is_some() {
        health_reporter
            .set_serving::<LedgerServer<LedgerService>>()
            .await;
    }
    health_reporter
        .set_serving::<ChannelsServer<ChannelsService>>()
        .await;
    health_reporter
        .set_serving::<PaymentsServer<PaymentsService>>()
        .await;
    health_reporter
        .set_serving::<MediationServer<MediationService>>()
        .await;
    health_reporter
        .set_serving::<SessionsServer<SessionsService>>()
        .await;
    let ledger_failed = services.channels.ledger.failed();

    let reflection = tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(voltlane_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| HubError::Internal(format!("reflection: {e}")))?;

    let auth =
        AuthServer::new(AuthService::new(services.auth.clone())).max_decoding_message_size(max);
    let info = HubServer::new(services.info).max_decoding_message_size(max);
    let ledger = services.ledger.map(|ledger| {
        InterceptedService::new(
            LedgerServer::new(ledger.with_faucet_max_mint(limits.faucet_max_mint))
                .max_decoding_message_size(max),
            interceptor.clone(),
        )
    });
    let channels = InterceptedService::new(
        ChannelsServer::new(ChannelsService::new(services.channels.clone()))
            .max_decoding_message_size(max),
        interceptor.clone(),
    );
    let payments = InterceptedService::new(
        PaymentsServer::new(
            PaymentsService::new(services.mediation.clone()).with_metrics(options.metrics),
        )
        .max_decoding_message_size(max),
        interceptor.clone(),
    );
    let mediation = InterceptedService::new(
        MediationServer::new(MediationService::new(services.mediation))
            .max_decoding_message_size(max),
        interceptor.clone(),
    );
    let sessions = InterceptedService::new(
        SessionsServer::new(SessionsService::new(services.sessions, services.shutdown))
            .max_decoding_message_size(max),
        interceptor,
    );

    let local = listener.local_addr()?;
    let mut builder = Server::builder();
    match options.tls {
        Some(pem) => {
            let config = ServerTlsConfig::new().identity(Identity::from_pem(pem.cert, pem.key));
            builder = builder
                .tls_config(config)
                .map_err(|e| HubError::Config(format!("--tls-cert/--tls-key: {e}")))?;
            tracing::info!(address = %local, "serving voltlane.v1 over TLS");
        }
        None if local.ip().is_loopback() => {
            tracing::info!(address = %local, "serving voltlane.v1 (plain text)");
        }
        None => tracing::warn!(
            address = %local,
            "serving voltlane.v1 in plain text on a non-loopback address: session tokens and \
             payments are readable on the network; set --tls-cert and --tls-key"
        ),
    }
    let health_task = tokio::spawn(watch_ledger_failure(ledger_failed, health_reporter));
    let served = builder
        .max_concurrent_streams(limits.max_concurrent_streams)
        .concurrency_limit_per_connection(limits.concurrency_per_connection)
        .load_shed(true)
        .timeout(limits.request_timeout())
        .add_service(health)
        .add_service(reflection)
        .add_service(auth)
        .add_service(info)
        .add_optional_service(ledger)
        .add_service(channels)
        .add_service(payments)
        .add_service(mediation)
        .add_service(sessions)
        .serve_with_incoming_shutdown(accepted_without_delay(listener), signal)
        .await;
    health_task.abort();
    served?;
    Ok(())
}

/// Services that cannot work without the ledger (overall health included).
const LEDGER_DEPENDENTS: [&str; 5] = [
    "",
    <LedgerServer<LedgerService> as NamedService>::NAME,
    <PaymentsServer<PaymentsService> as NamedService>::NAME,
    <ChannelsServer<ChannelsService> as NamedService>::NAME,
    <MediationServer<MediationService> as NamedService>::NAME,
];

/// Waits until `failed` turns `true`, then reports every ledger dependent NOT_SERVING. Ends
/// without a change if the ledger goes away without failing.
pub async fn watch_ledger_failure(mut failed: watch::Receiver<bool>, health: HealthReporter) {
    if failed.wait_for(|failed| *failed).await.is_err() {
        return;
    }
    tracing::error!("ledger store failed: reporting the ledger services NOT_SERVING");
    for name in LEDGER_DEPENDENTS {
        health
            .set_service_status(name, ServingStatus::NotServing)
            .await;
    }
}

/// The connections `listener` accepts, each with `TCP_NODELAY` set. The builder's
/// `tcp_nodelay` applies only to listeners tonic binds itself; on ours Nagle's algorithm stayed
/// on, so a small write (an ack) made while an earlier segment of its connection was still
/// unacknowledged could wait for the device's delayed ACK.
fn accepted_without_delay(listener: TcpListener) -> TcpIncoming {
    TcpIncoming::from(listener).with_nodelay(Some(true))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio_stream::StreamExt;

    use super::*;

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = accepted_without_delay(listener);
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
