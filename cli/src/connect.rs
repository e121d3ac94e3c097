//! Reaching the hub: the endpoint and its TLS settings from the global flags, key files, and
//! [`HubConnection`], a raw `voltlane.v1` connection that reads the hub's info and, for the
//! calls that need a session, authenticates with a key (challenge signed over
//! `voltlane_proto::auth::auth_digest`, as the SDK does). Device commands go through the SDK
//! instead ([`crate::device`]); both share [`connect_options`].

use std::path::Path;
use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::primitives::{decode_hex, Address};
use channel_core::LocalSigner;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::service::Interceptor;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint};
use voltlane_client::{ConnectOptions, Wire};
use voltlane_proto::auth::{auth_digest, AUTHORIZATION_HEADER, BEARER_PREFIX};
use voltlane_proto::convert::{address, address_bytes, h256};
use voltlane_proto::v1;

use crate::args::Global;
use crate::error::CliError;

/// How long connecting to the hub may take (at most `--timeout-secs`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads a key file: a hex secp256k1 secret (optionally `0x`-prefixed), as the hub writes
/// its `operator.key`.
pub fn read_key_file(path: &Path) -> Result<LocalSigner, CliError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::Local(format!("key file {}: {e}", path.display())))?;
    let bytes = decode_hex(text.trim()).map_err(|e| {
        CliError::Local(format!(
            "key file {}: not a hex secret: {e}",
            path.display()
        ))
    })?;
    LocalSigner::from_bytes(&bytes)
        .map_err(|e| CliError::Local(format!("key file {}: {e}", path.display())))
}

/// A throwaway key, for read-only calls that need some session but no particular identity.
pub fn ephemeral_key() -> Result<LocalSigner, CliError> {
    for _ in 0..8 {
        if let Ok(s) = LocalSigner::from_bytes(&rand::random::<[u8; 32]>()) {
            return Ok(s);
        }
    }
    Err(CliError::Local("could not draw a valid key".into()))
}

/// The endpoint checked for form; a malformed URL is a usage error.
fn endpoint(global: &Global) -> Result<Endpoint, CliError> {
    let ep = Endpoint::from_shared(global.hub.clone())
        .map_err(|e| CliError::Usage(format!("--hub {:?}: {e}", global.hub)))?;
    Ok(ep.connect_timeout(connect_timeout(global)))
}

/// The connect bound: [`CONNECT_TIMEOUT`], or `--timeout-secs` if that is shorter.
fn connect_timeout(global: &Global) -> Duration {
    CONNECT_TIMEOUT.min(global.timeout())
}

fn is_https(url: &str) -> bool {
    url.get(..8)
        .is_some_and(|s| s.eq_ignore_ascii_case("https://"))
}

/// The CA certificate of `--ca-cert`, checked against the scheme of `--hub`.
fn ca_pem(global: &Global) -> Result<Option<Vec<u8>>, CliError> {
    match (&global.ca_cert, is_https(&global.hub)) {
        (None, false) => Ok(None),
        (None, true) => Err(CliError::Usage(format!(
            "--hub {} is https: give the hub's CA certificate with --ca-cert",
            global.hub
        ))),
        (Some(_), false) => Err(CliError::Usage(
            "--ca-cert is for https:// endpoints; --hub is plain text".into(),
        )),
        (Some(path), true) => std::fs::read(path)
            .map(Some)
            .map_err(|e| CliError::Local(format!("--ca-cert {}: {e}", path.display()))),
    }
}

/// The SDK's connection options for the global flags (after the same checks): every unary
/// call of the SDK has the deadline `--timeout-secs`.
pub fn connect_options(global: &Global) -> Result<ConnectOptions, CliError> {
    endpoint(global)?;
    let options = ConnectOptions::new()
        .connect_timeout(connect_timeout(global))
        .call_timeout(global.timeout());
    Ok(match ca_pem(global)? {
        Some(pem) => options.ca_certificate(pem),
        None => options,
    })
}

/// Puts `authorization: Bearer <token>` on every request once logged in.
#[derive(Clone, Debug, Default)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(&mut self, mut req: tonic::Request<()>) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(token) = &self.0 {
            req.metadata_mut()
                .insert(AUTHORIZATION_HEADER, token.clone());
        }
        Ok(req)
    }
}

type Svc = InterceptedService<Wire, Bearer>;

/// A session the hub granted.
#[derive(Debug, Clone)]
pub struct Login {
    pub address: Address,
    pub expires_at_unix: u64,
}

/// One connection to the hub, with its info and (after [`HubConnection::login`]) a session.
/// Every call on it has the deadline `--timeout-secs` (the SDK's [`Wire`]: DEADLINE_EXCEEDED,
/// exit 4, past it).
#[derive(Debug)]
pub struct HubConnection {
    transport: Wire,
    bearer: Bearer,
    info: v1::HubInfo,
    hub_address: Address,
}

impl HubConnection {
    /// Connects to `--hub` and reads `Hub.GetInfo`.
    pub async fn connect(global: &Global) -> Result<Self, CliError> {
        let mut ep = endpoint(global)?;
        if let Some(pem) = ca_pem(global)? {
            ep = ep
                .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(pem)))
                .map_err(|e| CliError::Usage(format!("TLS settings: {e}")))?;
        }
        let transport = ep
            .connect()
            .await
            .map_err(|e| CliError::unreachable(&global.hub, error_chain(&e)))?;
        let transport = Wire::with_deadline(transport, global.timeout());
        let mut hub = v1::hub_client::HubClient::new(transport.clone());
        let info = hub
            .get_info(v1::GetInfoRequest {})
            .await
            .map_err(|s| CliError::status(&s))?
            .into_inner();
        let hub_address = address("hub_address", &info.hub_address)?;
        Ok(Self {
            transport,
            bearer: Bearer::default(),
            info,
            hub_address,
        })
    }

    pub fn info(&self) -> &v1::HubInfo {
        &self.info
    }

    pub fn hub_address(&self) -> Address {
        self.hub_address
    }

    /// The plain transport (for the health service).
    pub fn transport(&self) -> Wire {
        self.transport.clone()
    }

    /// `Auth.GetChallenge` → sign → `Auth.Authenticate`; later calls carry the token.
    pub async fn login(&mut self, signer: &LocalSigner) -> Result<Login, CliError> {
        let me = signer.address();
        let mut auth = v1::auth_client::AuthClient::new(self.transport.clone());
        let challenge = auth
            .get_challenge(v1::ChallengeRequest {
                address: address_bytes(&me),
            })
            .await
            .map_err(|s| CliError::status(&s))?
            .into_inner();
        let c = h256("challenge", &challenge.challenge)?;
        let signature = signer
            .sign_hash(&auth_digest(&self.hub_address, &c.0))
            .map_err(|e| CliError::Local(format!("signing the challenge: {e}")))?;
        let session = auth
            .authenticate(v1::AuthenticateRequest {
                address: address_bytes(&me),
                challenge: challenge.challenge,
                signature: signature.as_bytes().to_vec(),
            })
            .await
            .map_err(|s| CliError::status(&s))?
            .into_inner();
        let token: MetadataValue<Ascii> = format!("{BEARER_PREFIX}{}", session.token)
            .parse()
            .map_err(|_| CliError::malformed("the session token is not ASCII"))?;
        self.bearer = Bearer(Some(token));
        Ok(Login {
            address: me,
            expires_at_unix: session.expires_at_unix,
        })
    }

    /// Logs in with `--key`, or with a throwaway key when none is given (read-only calls).
    pub async fn login_any(&mut self, global: &Global) -> Result<Login, CliError> {
        let signer = match &global.key {
            Some(path) => read_key_file(path)?,
            None => ephemeral_key()?,
        };
        self.login(&signer).await
    }

    fn svc(&self) -> Svc {
        InterceptedService::new(self.transport.clone(), self.bearer.clone())
    }

    pub fn ledger(&self) -> v1::ledger_client::LedgerClient<Svc> {
        v1::ledger_client::LedgerClient::new(self.svc())
    }

    pub fn channels(&self) -> v1::channels_client::ChannelsClient<Svc> {
        v1::channels_client::ChannelsClient::new(self.svc())
    }
}

/// `e` and its sources, so a refused connection or a TLS failure shows its cause.
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
    use super::*;

    fn global(hub: &str, ca: Option<&str>) -> Global {
        Global {
            hub: hub.into(),
            ca_cert: ca.map(Into::into),
            key: None,
            store: None,
            json: false,
            timeout_secs: 30,
        }
    }

    #[test]
    fn tls_flags_must_match_the_scheme() {
        assert!(connect_options(&global("http://127.0.0.1:1", None)).is_ok());
        let e = connect_options(&global("https://127.0.0.1:1", None)).unwrap_err();
        assert!(e.to_string().contains("--ca-cert"), "{e}");
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        let e = connect_options(&global("http://127.0.0.1:1", Some("ca.pem"))).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
        let e = connect_options(&global("not a url", None)).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_USAGE);
    }

    #[test]
    fn every_call_gets_the_timeout_flag_as_its_deadline() {
        let mut g = global("http://127.0.0.1:1", None);
        g.timeout_secs = 7;
        assert_eq!(
            connect_options(&g).unwrap().call_deadline(),
            Duration::from_secs(7)
        );
        assert_eq!(connect_timeout(&g), Duration::from_secs(5));
        g.timeout_secs = 2;
        assert_eq!(connect_timeout(&g), Duration::from_secs(2));
    }

    /// A hub that accepts the connection and never answers (a stopped process): the raw
    /// connection's first call fails with DEADLINE_EXCEEDED (exit 4) at the flag's deadline.
    #[tokio::test]
    async fn a_silent_hub_fails_the_call_at_its_deadline() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut g = global(&format!("http://{}", listener.local_addr().unwrap()), None);
        g.timeout_secs = 1;
        let _held = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let e = tokio::time::timeout(Duration::from_secs(20), HubConnection::connect(&g))
            .await
            .expect("the call deadline ends it")
            .unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_CONNECTION, "{e}");
        assert!(e.to_string().starts_with("DEADLINE_EXCEEDED: "), "{e}");
    }

    #[test]
    fn key_files_are_hex_secrets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let signer = ephemeral_key().unwrap();
        std::fs::write(&path, format!("{}\n", hex::encode(signer.to_bytes()))).unwrap();
        assert_eq!(read_key_file(&path).unwrap().address(), signer.address());
        std::fs::write(&path, "zz").unwrap();
        let e = read_key_file(&path).unwrap_err();
        assert!(e.to_string().contains("not a hex secret"), "{e}");
        let e = read_key_file(&dir.path().join("missing")).unwrap_err();
        assert_eq!(e.exit_code(), crate::error::EXIT_LOCAL);
    }
}
