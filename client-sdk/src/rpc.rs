//! The gRPC side: one lazily reconnecting tonic channel to the hub, typed clients of every
//! service with the session token attached by an interceptor, challenge/response
//! authentication, and [`Rpc::call`], which re-authenticates once when the hub answers
//! UNAUTHENTICATED (it lost its sessions in a restart) and retries.
//!
//! Transport security: `http://` endpoints are plain text; `https://` endpoints use TLS
//! (rustls) and need the CA certificate that signed the hub's certificate
//! ([`ConnectOptions::ca_certificate`]); there are no built-in trust roots.
//!
//! Liveness and deadlines ([`Wire`], under every client):
//! - HTTP/2 keepalive pings (also while no call is open) and TCP keepalive notice a hub that
//!   stopped answering without closing the connection (frozen, unplugged, a NAT mapping
//!   dropped): the connection is closed, its calls and streams fail, and the next call
//!   connects again. Defaults: a ping every 20 s, 10 s to answer it.
//! - Every unary call has a deadline ([`ConnectOptions::call_timeout`], 10 s by default),
//!   sent to the hub as `grpc-timeout` and enforced here over the whole call (until its
//!   last byte). A call past it fails with [`ClientError::DeadlineExceeded`] and the SDK
//!   applies nothing of it (the hub may or may not have acted on it; every SDK operation
//!   reads the hub's state again before it acts, so repeating one is safe). Streaming calls
//!   (`Payments.Pay` and the subscriptions, [`STREAMING_METHODS`]) get no deadline: they live
//!   as long as the client, and keepalive is what ends them when the hub is gone. (tonic's
//!   `Endpoint::timeout` is not used: it would also bound the time to a stream's response
//!   headers, and it answers CANCELLED, not DEADLINE_EXCEEDED.)
//! - [`LinkState`] counts the failures below gRPC (connection refused or reset, a keepalive
//!   ping unanswered) and says whether the hub answered since the last one.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::task::{Context, Poll};
use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::primitives::Address;
use channel_core::LocalSigner;
use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::{http, BoxFuture, Bytes, Service, StdError};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel as Transport, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};
use voltlane_proto::auth::{auth_digest, AUTHORIZATION_HEADER, BEARER_PREFIX};
use voltlane_proto::convert::{address_bytes, h256};
use voltlane_proto::v1;
use voltlane_store::keyfile::{KeySource, Passphrase};

use crate::error::ClientError;
use crate::ledger::ChainAccess;
use crate::types::LinkState;

/// The `voltlane.v1` methods whose response is a stream: their calls get no deadline. Every
/// other call is unary and gets [`ConnectOptions::call_timeout`] (a unit test keeps this list
/// in step with the `.proto` files).
pub const STREAMING_METHODS: [&str; 5] = [
    "/voltlane.v1.Payments/Pay",
    "/voltlane.v1.Payments/ReceivePayments",
    "/voltlane.v1.Ledger/Subscribe",
    "/voltlane.v1.Mediation/PayerEvents",
    "/voltlane.v1.Sessions/WatchSession",
];

/// Default interval of the HTTP/2 keepalive pings.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(20);
/// Default time a keepalive ping may go unanswered.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(10);
/// Default idle time before TCP keepalive probes.
pub const DEFAULT_TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// Default bound of establishing a connection (TCP and TLS).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default deadline of a unary call.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// Puts `authorization: Bearer <token>` on every request once a session exists.
#[derive(Clone, Debug, Default)]
pub struct TokenInterceptor {
    token: Arc<RwLock<Option<MetadataValue<Ascii>>>>,
}

impl TokenInterceptor {
    fn set(&self, token: MetadataValue<Ascii>) {
        if let Ok(mut slot) = self.token.write() {
            *slot = Some(token);
        }
    }
}

impl Interceptor for TokenInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Ok(slot) = self.token.read() {
            if let Some(token) = slot.as_ref() {
                req.metadata_mut()
                    .insert(AUTHORIZATION_HEADER, token.clone());
            }
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Wire, TokenInterceptor>;

/// How to reach the hub: for `https://` endpoints, the CA certificate to trust and, if the
/// hub's certificate names another host than the endpoint's, that name; for a hub that
/// settles on Ethereum, how the device reaches that chain itself ([`ChainAccess`]); how
/// soon a dead connection is noticed and how long a unary call may take (see the module
/// doc; the defaults are the `DEFAULT_*` constants).
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    ca_certificate_pem: Option<Vec<u8>>,
    tls_domain_name: Option<String>,
    chain_access: Option<ChainAccess>,
    keepalive_interval: Option<Duration>,
    keepalive_timeout: Duration,
    tcp_keepalive: Option<Duration>,
    connect_timeout: Duration,
    call_timeout: Duration,
    key_source: Option<KeySource>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        Self {
            ca_certificate_pem: None,
            tls_domain_name: None,
            chain_access: None,
            keepalive_interval: Some(DEFAULT_KEEPALIVE_INTERVAL),
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            tcp_keepalive: Some(DEFAULT_TCP_KEEPALIVE),
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            call_timeout: DEFAULT_CALL_TIMEOUT,
            key_source: None,
        }
    }
}

impl ConnectOptions {
    pub fn new() -> Self {
        Self::default()
    }

    /// HTTP/2 keepalive: a ping every `interval` (`None`: no pings), sent also while no call
    /// is open; a ping unanswered for `timeout` closes the connection.
    pub fn keepalive(mut self, interval: Option<Duration>, timeout: Duration) -> Self {
        self.keepalive_interval = interval;
        self.keepalive_timeout = timeout;
        self
    }

    /// Idle time before the kernel's TCP keepalive probes start (`None`: off).
    pub fn tcp_keepalive(mut self, idle: Option<Duration>) -> Self {
        self.tcp_keepalive = idle;
        self
    }

    /// Bound of establishing a connection to the hub.
    pub fn connect_timeout(mut self, limit: Duration) -> Self {
        self.connect_timeout = limit;
        self
    }

    /// Deadline of every unary call ([`ClientError::DeadlineExceeded`] past it).
    pub fn call_timeout(mut self, limit: Duration) -> Self {
        self.call_timeout = limit;
        self
    }

    /// The deadline of every unary call.
    pub fn call_deadline(&self) -> Duration {
        self.call_timeout
    }

    /// Trusts the CA certificate `pem` (PEM) for the hub's TLS certificate.
    pub fn ca_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.ca_certificate_pem = Some(pem.into());
        self
    }

    /// Checks the hub's certificate against `name` instead of the endpoint's host.
    pub fn tls_domain_name(mut self, name: impl Into<String>) -> Self {
        self.tls_domain_name = Some(name.into());
        self
    }

    /// The device's own access to the chain an Ethereum hub settles on (required for such a
    /// hub, refused for a hub with an embedded ledger).
    pub fn chain_access(mut self, access: ChainAccess) -> Self {
        self.chain_access = Some(access);
        self
    }

    /// The configured chain access, if any.
    pub fn chain(&self) -> Option<&ChainAccess> {
        self.chain_access.as_ref()
    }

    /// The device key comes from the encrypted keystore v3 file at `path` (mode 0600; e.g.
    /// made with `voltlane key encrypt`), opened with `passphrase` (an environment variable,
    /// a passphrase file, or a value), instead of from the store: with a key file set, the
    /// store's key record is neither the source of the key nor written
    /// ([`Client::connect_with_options`](crate::Client::connect_with_options)). A store that
    /// already records another key is refused.
    pub fn key_file(self, path: impl Into<PathBuf>, passphrase: Passphrase) -> Self {
        self.key_source(KeySource::keystore(path, passphrase))
    }

    /// As [`ConnectOptions::key_file`], for any key file (`KeySource::Plain` for a plain
    /// 0600 hex key file).
    pub fn key_source(mut self, source: KeySource) -> Self {
        self.key_source = Some(source);
        self
    }

    /// The configured device key file, if any.
    pub fn key(&self) -> Option<&KeySource> {
        self.key_source.as_ref()
    }

    /// The TLS settings for `endpoint`, or why they do not fit it.
    fn tls_for(&self, endpoint: &str) -> Result<Option<ClientTlsConfig>, String> {
        let https = endpoint
            .get(..8)
            .is_some_and(|s| s.eq_ignore_ascii_case("https://"));
        match (https, &self.ca_certificate_pem) {
            (false, None) => Ok(None),
            (false, Some(_)) => {
                Err("a CA certificate was given for a plain-text endpoint: use https://".into())
            }
            (true, None) => Err(
                "an https:// endpoint needs the CA certificate of the hub (ConnectOptions::ca_certificate)"
                    .into(),
            ),
            (true, Some(pem)) => {
                let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem));
                if let Some(name) = &self.tls_domain_name {
                    tls = tls.domain_name(name.clone());
                }
                Ok(Some(tls))
            }
        }
    }
}

/// One client per service, all over the same HTTP/2 connection. Cheap to clone.
#[derive(Clone, Debug)]
pub struct Clients {
    pub auth: v1::auth_client::AuthClient<Svc>,
    pub hub: v1::hub_client::HubClient<Svc>,
    pub ledger: v1::ledger_client::LedgerClient<Svc>,
    pub channels: v1::channels_client::ChannelsClient<Svc>,
    pub payments: v1::payments_client::PaymentsClient<Svc>,
    pub mediation: v1::mediation_client::MediationClient<Svc>,
    pub sessions: v1::sessions_client::SessionsClient<Svc>,
}

impl Clients {
    fn over(wire: &Wire, interceptor: &TokenInterceptor) -> Self {
        let svc = || InterceptedService::new(wire.clone(), interceptor.clone());
        Self {
            auth: v1::auth_client::AuthClient::new(svc()),
            hub: v1::hub_client::HubClient::new(svc()),
            ledger: v1::ledger_client::LedgerClient::new(svc()),
            channels: v1::channels_client::ChannelsClient::new(svc()),
            payments: v1::payments_client::PaymentsClient::new(svc()),
            mediation: v1::mediation_client::MediationClient::new(svc()),
            sessions: v1::sessions_client::SessionsClient::new(svc()),
        }
    }
}

/// The connection to one hub plus the device identity used to authenticate to it.
#[derive(Clone, Debug)]
pub struct Rpc {
    clients: Clients,
    interceptor: TokenInterceptor,
    signer: LocalSigner,
    hub_address: Arc<RwLock<Option<Address>>>,
    call_timeout: Duration,
    link: watch::Receiver<LinkState>,
}

impl Rpc {
    /// Prepares a connection to `endpoint` (e.g. `http://127.0.0.1:50051`, or `https://` with
    /// the TLS settings in `options`) and checks that the hub answers. The transport reconnects
    /// by itself when the hub comes back.
    pub async fn connect(
        endpoint: &str,
        signer: LocalSigner,
        options: &ConnectOptions,
    ) -> Result<Self, ClientError> {
        let connect_err = |message: String| ClientError::Connect {
            endpoint: endpoint.to_string(),
            message,
        };
        let mut ep = Endpoint::from_shared(endpoint.to_string())
            .map_err(|e| connect_err(e.to_string()))?
            .connect_timeout(options.connect_timeout)
            .tcp_nodelay(true)
            .tcp_keepalive(options.tcp_keepalive)
            .keep_alive_timeout(options.keepalive_timeout)
            .keep_alive_while_idle(true);
        if let Some(interval) = options.keepalive_interval {
            ep = ep.http2_keep_alive_interval(interval);
        }
        if let Some(tls) = options.tls_for(endpoint).map_err(connect_err)? {
            ep = ep.tls_config(tls).map_err(|e| connect_err(e.to_string()))?;
        }
        let transport = ep
            .connect()
            .await
            .map_err(|e| connect_err(error_chain(&e)))?;
        Ok(Self::over(transport, options.call_timeout, signer))
    }

    fn over(transport: Transport, call_timeout: Duration, signer: LocalSigner) -> Self {
        let (wire, link) = Wire::new(transport, call_timeout);
        let interceptor = TokenInterceptor::default();
        Self {
            clients: Clients::over(&wire, &interceptor),
            interceptor,
            signer,
            hub_address: Arc::new(RwLock::new(None)),
            call_timeout,
            link,
        }
    }

    /// A connection that is never made unless a call is tried (then it fails: nothing
    /// listens on the discard port), for tests of the driver logic without a hub.
    #[cfg(test)]
    pub fn unconnected(signer: LocalSigner) -> Self {
        let transport = Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        Self::over(transport, DEFAULT_CALL_TIMEOUT, signer)
    }

    /// What the SDK saw of the connection so far.
    pub fn link(&self) -> watch::Receiver<LinkState> {
        self.link.clone()
    }

    /// The SDK error for `status`, the answer to `op`: a missed deadline is
    /// [`ClientError::DeadlineExceeded`] (the hub itself never answers DEADLINE_EXCEEDED),
    /// anything else [`ClientError::rpc`].
    pub fn status_error(&self, op: &'static str, status: Status) -> ClientError {
        if status.code() == Code::DeadlineExceeded {
            ClientError::DeadlineExceeded {
                op,
                after: self.call_timeout,
            }
        } else {
            ClientError::rpc(op, status)
        }
    }

    pub fn clients(&self) -> Clients {
        self.clients.clone()
    }

    pub fn signer(&self) -> &LocalSigner {
        &self.signer
    }

    /// The hub's address learned from `Hub.GetInfo` (what auth challenges are bound to).
    pub fn set_hub_address(&self, hub: Address) {
        if let Ok(mut slot) = self.hub_address.write() {
            *slot = Some(hub);
        }
    }

    fn hub_address(&self) -> Result<Address, ClientError> {
        self.hub_address
            .read()
            .ok()
            .and_then(|a| *a)
            .ok_or_else(|| ClientError::InvalidState("hub address unknown: GetInfo first".into()))
    }

    /// `Auth.GetChallenge` → sign `auth_digest(hub, challenge)` → `Auth.Authenticate`; the
    /// token goes on every later call.
    pub async fn authenticate(&self) -> Result<(), ClientError> {
        let hub = self.hub_address()?;
        let me = self.signer.address();
        let mut auth = self.clients.auth.clone();
        let challenge = auth
            .get_challenge(v1::ChallengeRequest {
                address: address_bytes(&me),
            })
            .await
            .map_err(|s| self.status_error("Auth.GetChallenge", s))?
            .into_inner();
        let c = h256("challenge", &challenge.challenge)?;
        let signature = self.signer.sign_hash(&auth_digest(&hub, &c.0))?;
        let session = auth
            .authenticate(v1::AuthenticateRequest {
                address: address_bytes(&me),
                challenge: challenge.challenge,
                signature: signature.as_bytes().to_vec(),
            })
            .await
            .map_err(|s| self.status_error("Auth.Authenticate", s))?
            .into_inner();
        let value: MetadataValue<Ascii> = format!("{BEARER_PREFIX}{}", session.token)
            .parse()
            .map_err(|_| ClientError::HubMisbehaved("session token is not ASCII".into()))?;
        self.interceptor.set(value);
        Ok(())
    }

    /// Runs `f` with fresh clients; on UNAUTHENTICATED re-authenticates once and runs it again.
    /// `op` names the call in errors (e.g. `"Ledger.OpenChannel"`).
    pub async fn call<T, F, Fut>(&self, op: &'static str, mut f: F) -> Result<T, ClientError>
    where
        F: FnMut(Clients) -> Fut,
        Fut: Future<Output = Result<Response<T>, Status>>,
    {
        match f(self.clients()).await {
            Ok(r) => Ok(r.into_inner()),
            Err(s) if s.code() == Code::Unauthenticated => {
                self.authenticate().await?;
                f(self.clients())
                    .await
                    .map(Response::into_inner)
                    .map_err(|s| self.status_error(op, s))
            }
            Err(s) => Err(self.status_error(op, s)),
        }
    }
}

/// The tonic channel under every client: deadlines on unary calls and the [`LinkState`]
/// (see the module doc).
#[derive(Clone, Debug)]
pub struct Wire {
    inner: Transport,
    call_timeout: Duration,
    link: Arc<watch::Sender<LinkState>>,
}

impl Wire {
    /// `transport` with the deadline `call_timeout` on every unary call (DEADLINE_EXCEEDED
    /// past it), for callers that build their own tonic clients (the CLI).
    pub fn with_deadline(transport: Transport, call_timeout: Duration) -> Self {
        Self::new(transport, call_timeout).0
    }

    fn new(inner: Transport, call_timeout: Duration) -> (Self, watch::Receiver<LinkState>) {
        let (link, rx) = watch::channel(LinkState {
            up: true,
            failures: 0,
        });
        let wire = Self {
            inner,
            call_timeout,
            link: Arc::new(link),
        };
        (wire, rx)
    }
}

/// The status of a unary call past its deadline.
fn deadline_exceeded(limit: Duration) -> Status {
    Status::deadline_exceeded(format!(
        "no complete answer from the hub within the call deadline of {limit:?}"
    ))
}

/// `limit` as a `grpc-timeout` header value (at most 8 digits and a unit).
fn grpc_timeout_value(limit: Duration) -> http::HeaderValue {
    let millis = limit.as_millis();
    let text = if millis <= 99_999_999 {
        format!("{millis}m")
    } else {
        format!("{}S", limit.as_secs().min(99_999_999))
    };
    http::HeaderValue::from_str(&text).unwrap_or(http::HeaderValue::from_static("99999999S"))
}

/// Whether `e` or one of its sources is tonic's own `grpc-timeout` expiry.
fn is_timeout_expired(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut next = Some(e);
    while let Some(e) = next {
        if e.is::<tonic::TimeoutExpired>() {
            return true;
        }
        next = e.source();
    }
    false
}

fn link_up(link: &watch::Sender<LinkState>) {
    link.send_if_modified(|s| !std::mem::replace(&mut s.up, true));
}

fn link_failed(link: &watch::Sender<LinkState>) {
    link.send_modify(|s| {
        s.up = false;
        s.failures += 1;
    });
}

impl Service<http::Request<Body>> for Wire {
    type Response = http::Response<Body>;
    type Error = StdError;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let unary = !STREAMING_METHODS.contains(&request.uri().path());
        let deadline = unary.then(|| {
            request.headers_mut().insert(
                http::HeaderName::from_static("grpc-timeout"),
                grpc_timeout_value(self.call_timeout),
            );
            (
                tokio::time::Instant::now() + self.call_timeout,
                self.call_timeout,
            )
        });
        let answer = self.inner.call(request);
        let link = self.link.clone();
        Box::pin(async move {
            let answer = match deadline {
                Some((at, limit)) => match tokio::time::timeout_at(at, answer).await {
                    Ok(answer) => answer,
                    Err(_) => return Err(deadline_exceeded(limit).into()),
                },
                None => answer.await,
            };
            match answer {
                Ok(response) => {
                    link_up(&link);
                    Ok(response.map(|body| {
                        Body::new(WatchedBody {
                            inner: body,
                            deadline: deadline
                                .map(|(at, limit)| (Box::pin(tokio::time::sleep_until(at)), limit)),
                            link,
                        })
                    }))
                }
                // tonic's own timer on the `grpc-timeout` we set (it starts a moment after
                // ours and may fire in the same tick).
                Err(e) if is_timeout_expired(&e) => match deadline {
                    Some((_, limit)) => Err(deadline_exceeded(limit).into()),
                    None => Err(e.into()),
                },
                Err(e) => {
                    link_failed(&link);
                    Err(e.into())
                }
            }
        })
    }
}

/// A response body that reports its transport failures to the [`LinkState`] and, for a unary
/// call, ends with DEADLINE_EXCEEDED when its deadline passes before its end.
struct WatchedBody {
    inner: Body,
    deadline: Option<(Pin<Box<tokio::time::Sleep>>, Duration)>,
    link: Arc<watch::Sender<LinkState>>,
}

impl http_body::Body for WatchedBody {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Err(status))) => {
                link_failed(&this.link);
                Poll::Ready(Some(Err(status)))
            }
            Poll::Ready(other) => Poll::Ready(other),
            Poll::Pending => {
                let expired = match &mut this.deadline {
                    Some((sleep, limit)) => sleep.as_mut().poll(cx).is_ready().then_some(*limit),
                    None => None,
                };
                match expired {
                    Some(limit) => {
                        this.deadline = None;
                        this.inner = Body::empty();
                        Poll::Ready(Some(Err(deadline_exceeded(limit))))
                    }
                    None => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// `e` and its sources, so a TLS refusal shows its reason (e.g. an unknown issuer).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::collections::BTreeSet;

    use super::*;

    /// `/package.Service/Method` of every method of the `.proto` files whose response streams.
    fn streaming_methods_in_protos() -> BTreeSet<String> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/voltlane/v1");
        let mut found = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let mut service = String::new();
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.trim_end_matches('{').trim().to_string();
                }
                if let Some(rest) = line.strip_prefix("rpc ") {
                    let method = rest.split('(').next().unwrap().trim();
                    let returns = rest.split("returns").nth(1).unwrap();
                    if returns
                        .trim_start()
                        .trim_start_matches('(')
                        .starts_with("stream ")
                    {
                        found.insert(format!("/voltlane.v1.{service}/{method}"));
                    }
                }
            }
        }
        found
    }

    #[test]
    fn the_streaming_list_matches_the_protos() {
        let listed: BTreeSet<String> = STREAMING_METHODS.iter().map(|m| m.to_string()).collect();
        assert_eq!(listed, streaming_methods_in_protos());
    }

    #[test]
    fn grpc_timeout_values_fit_the_spec() {
        assert_eq!(grpc_timeout_value(Duration::from_secs(10)), "10000m");
        assert_eq!(grpc_timeout_value(Duration::from_millis(1)), "1m");
        assert_eq!(
            grpc_timeout_value(Duration::from_secs(200_000)),
            "200000S",
            "more than 8 digits of milliseconds"
        );
    }

    #[test]
    fn defaults_are_the_documented_ones() {
        let o = ConnectOptions::new();
        assert_eq!(o.keepalive_interval, Some(Duration::from_secs(20)));
        assert_eq!(o.keepalive_timeout, Duration::from_secs(10));
        assert_eq!(o.tcp_keepalive, Some(Duration::from_secs(60)));
        assert_eq!(o.connect_timeout, Duration::from_secs(5));
        assert_eq!(o.call_deadline(), Duration::from_secs(10));
    }

    /// A "hub" that accepts TCP connections and then never sends a byte (a stopped process
    /// looks like this: the kernel completes the handshake, nobody answers).
    async fn silent_hub() -> (String, tokio::task::JoinHandle<()>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                held.push(socket);
            }
        });
        (url, task)
    }

    fn key() -> LocalSigner {
        LocalSigner::from_bytes(&[7u8; 32]).unwrap()
    }

    #[tokio::test]
    async fn a_unary_call_past_its_deadline_is_deadline_exceeded_and_streams_are_not_cut() {
        let (url, _hub) = silent_hub().await;
        let options = ConnectOptions::new()
            .keepalive(None, Duration::from_secs(10))
            .call_timeout(Duration::from_millis(300));
        let rpc = Rpc::connect(&url, key(), &options).await.unwrap();
        let err = rpc
            .call("Hub.GetInfo", |mut c| async move {
                c.hub.get_info(v1::GetInfoRequest {}).await
            })
            .await
            .unwrap_err();
        match &err {
            ClientError::DeadlineExceeded { op, after } => {
                assert_eq!(*op, "Hub.GetInfo");
                assert_eq!(*after, Duration::from_millis(300));
            }
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert_eq!(err.code(), Some(Code::DeadlineExceeded));
        // A missed deadline is not a transport failure.
        assert_eq!(
            *rpc.link().borrow(),
            LinkState {
                up: true,
                failures: 0
            }
        );

        // A streaming call waits for as long as the hub takes: still pending after more
        // than three deadlines.
        let mut ledger = rpc.clients().ledger;
        let stream = tokio::time::timeout(
            Duration::from_secs(1),
            ledger.subscribe(v1::SubscribeRequest::default()),
        )
        .await;
        assert!(stream.is_err(), "the stream call ended: {stream:?}");
    }

    #[tokio::test]
    async fn keepalive_notices_a_silent_hub_and_fails_its_calls() {
        let (url, _hub) = silent_hub().await;
        let options = ConnectOptions::new()
            .keepalive(Some(Duration::from_millis(200)), Duration::from_millis(200))
            .call_timeout(Duration::from_secs(60));
        let rpc = Rpc::connect(&url, key(), &options).await.unwrap();
        let mut link = rpc.link();
        let mut ledger = rpc.clients().ledger;
        // Bounded only so that a regression fails instead of hanging.
        let status = tokio::time::timeout(
            Duration::from_secs(20),
            ledger.subscribe(v1::SubscribeRequest::default()),
        )
        .await
        .expect("keepalive ends the call")
        .unwrap_err();
        assert_ne!(status.code(), Code::DeadlineExceeded, "{status:?}");
        tokio::time::timeout(Duration::from_secs(5), link.wait_for(|l| l.failures >= 1))
            .await
            .unwrap()
            .unwrap();
        assert!(!link.borrow().up);
    }
}
