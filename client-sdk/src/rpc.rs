//! The gRPC side: one lazily reconnecting tonic channel to the hub, typed clients of every
//! service with the session token attached by an interceptor, challenge/response
//! authentication, and [`Rpc::call`], which re-authenticates once when the hub answers
//! UNAUTHENTICATED (it lost its sessions in a restart) and retries.
//!
//! Transport security: `http://` endpoints are plain text; `https://` endpoints use TLS
//! (rustls) and need the CA certificate that signed the hub's certificate
//! ([`ConnectOptions::ca_certificate`]); there are no built-in trust roots.

use std::future::Future;
use std::sync::{Arc, RwLock};

use channel_core::crypto::Signer;
use channel_core::primitives::Address;
use channel_core::LocalSigner;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, Channel as Transport, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Response, Status};
use voltlane_proto::auth::{auth_digest, AUTHORIZATION_HEADER, BEARER_PREFIX};
use voltlane_proto::convert::{address_bytes, h256};
use voltlane_proto::v1;

use crate::error::ClientError;
use crate::ledger::ChainAccess;

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

type Svc = InterceptedService<Transport, TokenInterceptor>;

/// How to reach the hub: for `https://` endpoints, the CA certificate to trust and, if the
/// hub's certificate names another host than the endpoint's, that name; for a hub that
/// settles on Ethereum, how the device reaches that chain itself ([`ChainAccess`]).
#[derive(Clone, Debug, Default)]
pub struct ConnectOptions {
    ca_certificate_pem: Option<Vec<u8>>,
    tls_domain_name: Option<String>,
    chain_access: Option<ChainAccess>,
}

impl ConnectOptions {
    pub fn new() -> Self {
        Self::default()
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

/// The connection to one hub plus the device identity used to authenticate to it.
#[derive(Clone, Debug)]
pub struct Rpc {
    clients: Clients,
    interceptor: TokenInterceptor,
    signer: LocalSigner,
    hub_address: Arc<RwLock<Option<Address>>>,
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
            .connect_timeout(std::time::Duration::from_secs(5))
            .tcp_nodelay(true);
        if let Some(tls) = options.tls_for(endpoint).map_err(connect_err)? {
            ep = ep.tls_config(tls).map_err(|e| connect_err(e.to_string()))?;
        }
        let transport = ep
            .connect()
            .await
            .map_err(|e| connect_err(error_chain(&e)))?;
        let interceptor = TokenInterceptor::default();
        let svc = || InterceptedService::new(transport.clone(), interceptor.clone());
        Ok(Self {
            clients: Clients {
                auth: v1::auth_client::AuthClient::new(svc()),
                hub: v1::hub_client::HubClient::new(svc()),
                ledger: v1::ledger_client::LedgerClient::new(svc()),
                channels: v1::channels_client::ChannelsClient::new(svc()),
                payments: v1::payments_client::PaymentsClient::new(svc()),
                mediation: v1::mediation_client::MediationClient::new(svc()),
                sessions: v1::sessions_client::SessionsClient::new(svc()),
            },
            interceptor,
            signer,
            hub_address: Arc::new(RwLock::new(None)),
        })
    }

    /// A connection that is never made unless a call is tried (then it fails: nothing
    /// listens on the discard port), for tests of the driver logic without a hub.
    #[cfg(test)]
    pub fn unconnected(signer: LocalSigner) -> Self {
        let transport = Endpoint::from_static("http://127.0.0.1:9").connect_lazy();
        let interceptor = TokenInterceptor::default();
        let svc = || InterceptedService::new(transport.clone(), interceptor.clone());
        Self {
            clients: Clients {
                auth: v1::auth_client::AuthClient::new(svc()),
                hub: v1::hub_client::HubClient::new(svc()),
                ledger: v1::ledger_client::LedgerClient::new(svc()),
                channels: v1::channels_client::ChannelsClient::new(svc()),
                payments: v1::payments_client::PaymentsClient::new(svc()),
                mediation: v1::mediation_client::MediationClient::new(svc()),
                sessions: v1::sessions_client::SessionsClient::new(svc()),
            },
            interceptor,
            signer,
            hub_address: Arc::new(RwLock::new(None)),
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
            .map_err(|s| ClientError::rpc("Auth.GetChallenge", s))?
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
            .map_err(|s| ClientError::rpc("Auth.Authenticate", s))?
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
                    .map_err(|s| ClientError::rpc(op, s))
            }
            Err(s) => Err(ClientError::rpc(op, s)),
        }
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
