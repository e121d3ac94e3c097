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
//! Request framing: [`FramingLayer`] (outside all of the above) checks the gRPC message
//! framing of every request body as it streams through. tonic's own decoder answers a body
//! that ends inside a message, or a message header whose compression flag is neither 0 nor 1,
//! with INTERNAL (hard-coded in `tonic::codec::decode::StreamingInner`, before any `Codec`
//! sees the bytes); the layer turns the body into an error first, so the caller gets
//! INVALID_ARGUMENT naming the problem. A set flag (1) without `grpc-encoding` stays
//! tonic's INTERNAL, as the gRPC compression spec requires.
//!
//! Liveness: HTTP/2 keepalive pings every `--http2-keepalive-interval-secs` and closes a
//! connection whose peer does not answer within `--http2-keepalive-timeout-secs`; accepted
//! sockets also get TCP keepalive (`--tcp-keepalive-secs`). A device that vanished (power
//! loss, a dropped NAT mapping) thus frees its connection and its streams' resources.
//!
//! TLS: with `--tls-cert`/`--tls-key` the listener speaks TLS only (rustls, through tonic's
//! server builder); without them it speaks plain HTTP/2 and warns if it is not bound to a
//! loopback address.
//!
//! Health (`grpc.health.v1`): every service starts SERVING. Once the ledger store fails (the
//! ledger then refuses every operation until a restart), [`watch_ledger_failure`] turns the
//! overall status `""` and the services that need the ledger to NOT_SERVING.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::{http, Bytes};
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
        .http2_keepalive_interval(limits.http2_keepalive_interval())
        .http2_keepalive_timeout(Some(limits.http2_keepalive_timeout()))
        .layer(FramingLayer)
        .add_service(health)
        .add_service(reflection)
        .add_service(auth)
        .add_service(info)
        .add_optional_service(ledger)
        .add_service(channels)
        .add_service(payments)
        .add_service(mediation)
        .add_service(sessions)
        .serve_with_incoming_shutdown(accepted(listener, limits), signal)
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

/// The connections `listener` accepts, each with `TCP_NODELAY` set and TCP keepalive as
/// `limits` say. The builder's `tcp_nodelay` and `tcp_keepalive` apply only to listeners tonic
/// binds itself; on ours Nagle's algorithm stayed on, so a small write (an ack) made while an
/// earlier segment of its connection was still unacknowledged could wait for the device's
/// delayed ACK.
fn accepted(listener: TcpListener, limits: &Limits) -> TcpIncoming {
    TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .with_keepalive(limits.tcp_keepalive())
}

/// Wraps every gRPC request body in a [`FramedBody`] (see the module doc).
#[derive(Clone, Copy, Debug, Default)]
pub struct FramingLayer;

impl<S> tower::Layer<S> for FramingLayer {
    type Service = Framing<S>;

    fn layer(&self, inner: S) -> Framing<S> {
        Framing { inner }
    }
}

/// The service of [`FramingLayer`].
#[derive(Clone, Debug)]
pub struct Framing<S> {
    inner: S,
}

impl<S> tower::Service<http::Request<Body>> for Framing<S>
where
    S: tower::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> S::Future {
        let grpc = request
            .headers()
            .get(http::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/grpc"));
        if grpc {
            self.inner
                .call(request.map(|body| Body::new(FramedBody::new(body))))
        } else {
            self.inner.call(request)
        }
    }
}

/// Bytes of a gRPC message header: the compression flag and the big-endian length.
const FRAME_HEADER: usize = 5;

/// A request body passed through unchanged while its gRPC framing is followed: a compression
/// flag above 1, or the end of the body (or its trailers) inside a message, ends it with an
/// INVALID_ARGUMENT error instead.
#[derive(Debug)]
pub struct FramedBody {
    inner: Body,
    /// Bytes of the current message header seen so far (0 at a message boundary).
    header_seen: usize,
    /// The length field being read from the header.
    declared: u32,
    /// The length the last complete header declared.
    last_declared: u32,
    /// Bytes of the current message body still to come.
    body_left: u64,
    failed: bool,
}

impl FramedBody {
    fn new(inner: Body) -> Self {
        Self {
            inner,
            header_seen: 0,
            declared: 0,
            last_declared: 0,
            body_left: 0,
            failed: false,
        }
    }

    fn at_boundary(&self) -> bool {
        self.header_seen == 0 && self.body_left == 0
    }

    /// Follows the framing through `data`.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), tonic::Status> {
        while !data.is_empty() {
            if self.body_left > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.body_left).unwrap_or(usize::MAX));
                self.body_left -= n as u64;
                data = &data[n..];
                continue;
            }
            let Some((&byte, rest)) = data.split_first() else {
                break;
            };
            data = rest;
            if self.header_seen == 0 {
                if byte > 1 {
                    return Err(malformed_frame(format!(
                        "invalid gRPC message frame: compression flag {byte} (only 0 and 1 \
                         exist)"
                    )));
                }
            } else {
                self.declared = (self.declared << 8) | u32::from(byte);
            }
            self.header_seen += 1;
            if self.header_seen == FRAME_HEADER {
                self.body_left = u64::from(self.declared);
                self.last_declared = self.declared;
                self.header_seen = 0;
                self.declared = 0;
            }
        }
        Ok(())
    }

    /// The error for a body (or its data) that ends here, inside a message.
    fn truncated(&self) -> tonic::Status {
        let what = if self.header_seen > 0 {
            format!(
                "{} of the {FRAME_HEADER} bytes of a message header",
                self.header_seen
            )
        } else {
            format!(
                "{} of the {} bytes its header declares",
                u64::from(self.last_declared) - self.body_left,
                self.last_declared
            )
        };
        malformed_frame(format!(
            "truncated gRPC message frame: the request ended after {what}"
        ))
    }

    fn fail(
        &mut self,
        status: tonic::Status,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        self.failed = true;
        Poll::Ready(Some(Err(status)))
    }
}

impl http_body::Body for FramedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
        let this = &mut *self;
        if this.failed {
            return Poll::Ready(None);
        }
        match std::task::ready!(Pin::new(&mut this.inner).poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Err(status) = this.scan(data) {
                        return this.fail(status);
                    }
                } else if frame.is_trailers() && !this.at_boundary() {
                    let status = this.truncated();
                    return this.fail(status);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(status)) => Poll::Ready(Some(Err(status))),
            None if this.at_boundary() => Poll::Ready(None),
            None => {
                let status = this.truncated();
                this.fail(status)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.failed || (self.inner.is_end_stream() && self.at_boundary())
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// INVALID_ARGUMENT with reason MALFORMED_MESSAGE, for a request body that is no sequence of
/// gRPC frames.
fn malformed_frame(message: String) -> tonic::Status {
    voltlane_proto::errors::status(
        tonic::Code::InvalidArgument,
        voltlane_proto::v1::ErrorReason::MalformedMessage,
        message,
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use tokio_stream::StreamExt;

    use super::*;

    /// Every frame of `chunks` sent through a [`FramedBody`], then the end: data passed
    /// through and the error it ended with, if any.
    async fn framed(chunks: &[&[u8]]) -> (Vec<u8>, Option<tonic::Status>) {
        use http_body::Body as _;
        let (tx, rx) =
            tokio::sync::mpsc::channel::<Result<http_body::Frame<Bytes>, tonic::Status>>(8);
        for c in chunks {
            tx.send(Ok(http_body::Frame::data(Bytes::copy_from_slice(c))))
                .await
                .unwrap();
        }
        drop(tx);
        struct Chunks(tokio::sync::mpsc::Receiver<Result<http_body::Frame<Bytes>, tonic::Status>>);
        impl http_body::Body for Chunks {
            type Data = Bytes;
            type Error = tonic::Status;
            fn poll_frame(
                mut self: Pin<&mut Self>,
                cx: &mut Context<'_>,
            ) -> Poll<Option<Result<http_body::Frame<Bytes>, tonic::Status>>> {
                self.0.poll_recv(cx)
            }
        }
        let mut body = FramedBody::new(Body::new(Chunks(rx)));
        let mut data = Vec::new();
        loop {
            match futures::future::poll_fn(|cx| Pin::new(&mut body).poll_frame(cx)).await {
                Some(Ok(frame)) => data.extend_from_slice(frame.data_ref().unwrap()),
                Some(Err(status)) => {
                    assert!(body.is_end_stream());
                    return (data, Some(status));
                }
                None => return (data, None),
            }
        }
    }

    #[tokio::test]
    async fn whole_frames_pass_through_unchanged_in_any_split() {
        let two = [0u8, 0, 0, 0, 3, 7, 8, 9, 0, 0, 0, 0, 0];
        for split in 0..two.len() {
            let (a, b) = two.split_at(split);
            let (data, err) = framed(&[a, b]).await;
            assert_eq!(data, two, "split at {split}");
            assert!(err.is_none(), "split at {split}: {err:?}");
        }
    }

    #[tokio::test]
    async fn truncated_frames_and_bad_flags_are_invalid_argument() {
        let (_, err) = framed(&[&[0, 0, 0, 0, 10, 1, 2, 3]]).await;
        let err = err.unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert_eq!(
            err.message(),
            "truncated gRPC message frame: the request ended after 3 of the 10 bytes its \
             header declares"
        );
        let (_, err) = framed(&[&[0, 0, 0, 0, 1, 5], &[0, 0]]).await;
        assert!(err
            .unwrap()
            .message()
            .ends_with("after 2 of the 5 bytes of a message header"));
        let (data, err) = framed(&[&[0, 0, 0, 0, 0], &[2, 0, 0, 0, 0]]).await;
        assert_eq!(data, [0, 0, 0, 0, 0], "the good frame went through first");
        let err = err.unwrap();
        assert_eq!(err.code(), tonic::Code::InvalidArgument);
        assert!(err.message().contains("compression flag 2"), "{err:?}");
        // Flag 1 is tonic's to judge (with or without grpc-encoding).
        assert!(framed(&[&[1, 0, 0, 0, 0]]).await.1.is_none());
    }

    #[tokio::test]
    async fn accepted_connections_have_nagle_off() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let mut incoming = accepted(listener, &Limits::default());
        let _client = tokio::net::TcpStream::connect(addr).await.unwrap();
        let accepted = incoming.next().await.unwrap().unwrap();
        assert!(accepted.nodelay().unwrap());
    }
}
