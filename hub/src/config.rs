//! Hub configuration: command-line flags, each also settable by a `VOLTLANE_*` environment
//! variable. Tests build a [`HubConfig`] directly with [`HubConfig::new`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use channel_core::ledger::{Ledger, LedgerConfig};
use channel_core::liquidity;
use channel_core::mediation::FeePolicy;
use channel_core::primitives::{u256_from_dec, Address, U256};
use channel_core::Domain;
use clap::{ArgAction, Parser, ValueEnum};
use voltlane_eth::EthConfig;

use crate::store::DEFAULT_GROUP_COMMIT_INTERVAL_US;

pub use crate::ledger::LedgerKind;

/// Token network address of the embedded ledger unless configured: ASCII "voltlane-token-netwk".
pub const DEFAULT_TOKEN_NETWORK: &str = "0x766f6c746c616e652d746f6b656e2d6e6574776b";

/// Log output format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Server limits (message size, concurrency, timeouts, stream count, auth lifetimes, the
/// largest dev-faucet mint).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct Limits {
    /// Largest accepted request message, bytes.
    #[arg(long, env = "VOLTLANE_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// In-flight requests per connection (unary calls and stream handlers starting).
    #[arg(
        long,
        env = "VOLTLANE_CONCURRENCY_PER_CONNECTION",
        default_value_t = 256
    )]
    pub concurrency_per_connection: usize,
    /// Deadline of a unary call, seconds (streams are not cut by it).
    #[arg(long, env = "VOLTLANE_REQUEST_TIMEOUT_SECS", default_value_t = 10)]
    pub request_timeout_secs: u64,
    /// HTTP/2 streams a client may have open on one connection.
    #[arg(long, env = "VOLTLANE_MAX_CONCURRENT_STREAMS", default_value_t = 1024)]
    pub max_concurrent_streams: u32,
    /// How long an auth challenge stays valid, seconds.
    #[arg(long, env = "VOLTLANE_CHALLENGE_TTL_SECS", default_value_t = 60)]
    pub challenge_ttl_secs: u64,
    /// How long a session token stays valid, seconds.
    #[arg(long, env = "VOLTLANE_SESSION_TTL_SECS", default_value_t = 24 * 3600)]
    pub session_ttl_secs: u64,
    /// Largest amount one `Ledger.Mint` call may create, in token units (a decimal integer,
    /// at least 1).
    #[arg(
        long,
        env = "VOLTLANE_FAUCET_MAX_MINT",
        default_value_t = Ledger::DEFAULT_FAUCET_MAX_MINT,
        value_parser = parse_token_amount
    )]
    pub faucet_max_mint: U256,
    /// Metered sessions the hub relays at once (expired idle sessions make room).
    #[arg(long, env = "VOLTLANE_MAX_SESSIONS", default_value_t = 100_000)]
    pub max_sessions: usize,
    /// Metered sessions one payee key may have relayed at once (and only with an open
    /// channel holding a deposit of its own).
    #[arg(long, env = "VOLTLANE_MAX_SESSIONS_PER_KEY", default_value_t = 16)]
    pub max_sessions_per_key: usize,
    /// A relayed session expires after this many seconds without use: its opening, its
    /// payer's acceptance, a new reading or bill, a new receipt signature. Reopening,
    /// re-accepting and watching it do not count. At least 1.
    #[arg(
        long,
        env = "VOLTLANE_SESSION_IDLE_TIMEOUT_SECS",
        default_value_t = 600,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub session_idle_timeout_secs: u64,
    /// Memory the store may use to cache database pages, MiB (the operating system's page
    /// cache still holds what the disk has). 8 to 65536.
    #[arg(
        long,
        env = "VOLTLANE_STORE_CACHE_MB",
        default_value_t = 128,
        value_parser = clap::value_parser!(u64).range(8..=65536)
    )]
    pub store_cache_mb: u64,
    /// Shortest time between two group commits of the store (one fsync each) while writes
    /// come concurrently, microseconds. A write waits at most this long for the next one;
    /// under a load of small writes arriving one by one, a longer interval means fewer,
    /// larger flushes. A lone writer is never held back. 0 to 100000.
    #[arg(
        long,
        env = "VOLTLANE_GROUP_COMMIT_INTERVAL_US",
        default_value_t = DEFAULT_GROUP_COMMIT_INTERVAL_US,
        value_parser = clap::value_parser!(u64).range(0..=100_000)
    )]
    pub group_commit_interval_us: u64,
    /// HTTP/2 keepalive: the hub pings every connection this often, seconds, and closes one
    /// whose peer does not answer within `--http2-keepalive-timeout-secs` (a device that
    /// vanished without closing its connection); 0 turns the pings off.
    #[arg(
        long,
        env = "VOLTLANE_HTTP2_KEEPALIVE_INTERVAL_SECS",
        default_value_t = 20
    )]
    pub http2_keepalive_interval_secs: u64,
    /// How long the hub waits for the answer to a keepalive ping, seconds (at least 1).
    #[arg(
        long,
        env = "VOLTLANE_HTTP2_KEEPALIVE_TIMEOUT_SECS",
        default_value_t = 10,
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub http2_keepalive_timeout_secs: u64,
    /// TCP keepalive on accepted connections: idle seconds before the kernel starts probing
    /// the peer (a safety net below HTTP/2 keepalive); 0 turns it off.
    #[arg(long, env = "VOLTLANE_TCP_KEEPALIVE_SECS", default_value_t = 60)]
    pub tcp_keepalive_secs: u64,
}

/// A positive token amount written as decimal digits only (no sign, exponent, fraction,
/// separators or hex), at most 2^256 - 1.
fn parse_token_amount(s: &str) -> Result<U256, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a whole number of token units (decimal digits only)"
        ));
    }
    let amount = u256_from_dec(s).map_err(|_| format!("{s} does not fit in 256 bits"))?;
    if amount.is_zero() {
        return Err("must be at least 1 (turn the faucet off with --dev-faucet false)".into());
    }
    Ok(amount)
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 64 * 1024,
            concurrency_per_connection: 256,
            request_timeout_secs: 10,
            max_concurrent_streams: 1024,
            challenge_ttl_secs: 60,
            session_ttl_secs: 24 * 3600,
            faucet_max_mint: Ledger::DEFAULT_FAUCET_MAX_MINT,
            max_sessions: 100_000,
            max_sessions_per_key: 16,
            session_idle_timeout_secs: 600,
            store_cache_mb: 128,
            group_commit_interval_us: DEFAULT_GROUP_COMMIT_INTERVAL_US,
            http2_keepalive_interval_secs: 20,
            http2_keepalive_timeout_secs: 10,
            tcp_keepalive_secs: 60,
        }
    }
}

impl Limits {
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    pub fn session_idle_timeout(&self) -> Duration {
        Duration::from_secs(self.session_idle_timeout_secs)
    }

    /// Interval of the hub's HTTP/2 keepalive pings; `None` when they are off.
    pub fn http2_keepalive_interval(&self) -> Option<Duration> {
        nonzero_secs(self.http2_keepalive_interval_secs)
    }

    /// How long a keepalive ping may go unanswered before the connection is closed.
    pub fn http2_keepalive_timeout(&self) -> Duration {
        Duration::from_secs(self.http2_keepalive_timeout_secs.max(1))
    }

    /// Idle time before TCP keepalive probes; `None` when TCP keepalive is off.
    pub fn tcp_keepalive(&self) -> Option<Duration> {
        nonzero_secs(self.tcp_keepalive_secs)
    }
}

/// `secs` seconds, or `None` for 0 (the setting is off).
fn nonzero_secs(secs: u64) -> Option<Duration> {
    (secs > 0).then(|| Duration::from_secs(secs))
}

/// The hub's liquidity and mediation settings: its deposit policy, the fee it charges for
/// mediating a payment, and its reveal timeout. Checked by [`HubConfig::validate`].
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct MediationSettings {
    /// Most the hub deposits into one open device channel, matching the device's own deposit
    /// up to this amount, in token units (a decimal integer, at least 1); off unless set.
    #[arg(long, env = "VOLTLANE_AUTO_DEPOSIT", value_parser = parse_auto_deposit)]
    pub auto_deposit: Option<U256>,
    /// Flat part of the mediation fee, token units (a decimal integer).
    #[arg(
        long,
        env = "VOLTLANE_MEDIATION_FEE_FLAT",
        default_value = "0",
        value_parser = parse_token_units
    )]
    pub mediation_fee_flat: U256,
    /// Proportional part of the mediation fee, parts per million of the amount (at most
    /// 1000000).
    #[arg(long, env = "VOLTLANE_MEDIATION_FEE_PPM", default_value_t = 0)]
    pub mediation_fee_ppm: u32,
    /// How much earlier (seconds) the hub's outgoing lock expires than the incoming one; at
    /// most half the settlement window. Default: a fifth of the settlement window, at least 1.
    #[arg(long, env = "VOLTLANE_REVEAL_TIMEOUT_SECS")]
    pub reveal_timeout_secs: Option<u64>,
}

/// A token amount written as decimal digits only, zero allowed.
fn parse_token_units(s: &str) -> Result<U256, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a whole number of token units (decimal digits only)"
        ));
    }
    u256_from_dec(s).map_err(|_| format!("{s} does not fit in 256 bits"))
}

/// The auto-deposit amount: token units, at least 1.
fn parse_auto_deposit(s: &str) -> Result<U256, String> {
    let amount = parse_token_units(s)?;
    if amount.is_zero() {
        return Err("must be at least 1 (leave it unset to turn the policy off)".into());
    }
    Ok(amount)
}

/// Which ledger the hub settles on and, for Ethereum, how it reaches the chain. On
/// `ethereum`, `--token-network` is the TokenNetwork contract's address and the chain id and
/// settlement window are read from the node and the contract (`--chain-id` and
/// `--settlement-window-secs` apply to the embedded ledger only).
#[derive(Clone, Debug, PartialEq, Eq, clap::Args)]
pub struct LedgerSettings {
    /// `embedded` (the hub's own ledger in its data directory) or `ethereum` (Raiden's
    /// TokenNetwork 0.50 on an EVM chain; needs `--eth-rpc-url` and `--token-network`).
    #[arg(long = "ledger", env = "VOLTLANE_LEDGER", value_enum, default_value_t = LedgerKind::Embedded)]
    pub kind: LedgerKind,
    /// JSON-RPC URL of the chain's node, e.g. `http://127.0.0.1:8545`.
    #[arg(long, env = "VOLTLANE_ETH_RPC_URL")]
    pub eth_rpc_url: Option<String>,
    /// First block a new data directory reads events from: the TokenNetwork's deployment
    /// block (no event is older; a later block would miss channels opened before it).
    #[arg(long, env = "VOLTLANE_ETH_START_BLOCK", default_value_t = 0)]
    pub eth_start_block: u64,
    /// Confirmations before an event counts (1 = the head block counts).
    #[arg(long, env = "VOLTLANE_ETH_CONFIRMATIONS", default_value_t = 1)]
    pub eth_confirmations: u64,
    /// Refuse any transaction whose gas estimate is above this.
    #[arg(long, env = "VOLTLANE_ETH_GAS_CAP", default_value_t = 3_000_000)]
    pub eth_gas_cap: u64,
    /// Most wei per gas a transaction may pay (decimal); default: the client's cap.
    #[arg(long, env = "VOLTLANE_ETH_MAX_FEE_PER_GAS_WEI", value_parser = parse_token_units)]
    pub eth_max_fee_per_gas_wei: Option<U256>,
    /// How often the follower polls the node for new confirmed events, milliseconds.
    #[arg(long, env = "VOLTLANE_ETH_POLL_INTERVAL_MS", default_value_t = 1_000)]
    pub eth_poll_interval_ms: u64,
    /// At most this many blocks per `eth_getLogs` request.
    #[arg(long, env = "VOLTLANE_ETH_MAX_LOG_RANGE", default_value_t = 2_000)]
    pub eth_max_log_range: u64,
}

impl Default for LedgerSettings {
    fn default() -> Self {
        Self {
            kind: LedgerKind::Embedded,
            eth_rpc_url: None,
            eth_start_block: 0,
            eth_confirmations: 1,
            eth_gas_cap: 3_000_000,
            eth_max_fee_per_gas_wei: None,
            eth_poll_interval_ms: 1_000,
            eth_max_log_range: 2_000,
        }
    }
}

impl LedgerSettings {
    pub fn poll_interval(&self) -> Duration {
        Duration::from_millis(self.eth_poll_interval_ms)
    }
}

/// Operations: the Prometheus endpoint and TLS on the gRPC listener (both off by default).
#[derive(Clone, Debug, Default, PartialEq, Eq, clap::Args)]
pub struct OpsSettings {
    /// Address of the Prometheus endpoint (`GET /metrics`), e.g. `127.0.0.1:9464`; off unless
    /// set.
    #[arg(long, env = "VOLTLANE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
    /// TLS certificate chain of the gRPC listener (PEM); needs `--tls-key`.
    #[arg(long, env = "VOLTLANE_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// TLS private key of the gRPC listener (PEM); needs `--tls-cert`.
    #[arg(long, env = "VOLTLANE_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// A PEM certificate chain and its private key, as read from the files.
#[derive(Clone, PartialEq, Eq)]
pub struct TlsPem {
    pub cert: Vec<u8>,
    pub key: Vec<u8>,
}

impl std::fmt::Debug for TlsPem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsPem")
            .field("cert_bytes", &self.cert.len())
            .finish_non_exhaustive()
    }
}

impl OpsSettings {
    /// Reads `--tls-cert` and `--tls-key` if TLS is configured; an error names the file.
    pub fn tls_pem(&self) -> Result<Option<TlsPem>, crate::HubError> {
        let (cert, key) = match (&self.tls_cert, &self.tls_key) {
            (None, None) => return Ok(None),
            (Some(cert), Some(key)) => (cert, key),
            _ => {
                return Err(crate::HubError::Config(
                    "--tls-cert and --tls-key go together".into(),
                ))
            }
        };
        let read = |flag: &str, path: &PathBuf| {
            std::fs::read(path).map_err(|e| {
                crate::HubError::Config(format!("{flag} {}: cannot read: {e}", path.display()))
            })
        };
        Ok(Some(TlsPem {
            cert: read("--tls-cert", cert)?,
            key: read("--tls-key", key)?,
        }))
    }
}

/// Everything `voltlane-hub` needs to start.
#[derive(Clone, Debug, PartialEq, Eq, Parser)]
#[command(name = "voltlane-hub", version, about = "Voltlane payment-channel hub")]
pub struct HubConfig {
    /// Address to listen on (main binary only; `run` takes a bound listener).
    #[arg(long, env = "VOLTLANE_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,
    /// Directory of the sled database and (by default) the operator key.
    #[arg(long, env = "VOLTLANE_DATA_DIR", default_value = "./hub-data")]
    pub data_dir: PathBuf,
    /// Operator key file (hex secret); default `<data-dir>/operator.key`, created if absent.
    #[arg(long, env = "VOLTLANE_OPERATOR_KEY_FILE")]
    pub operator_key_file: Option<PathBuf>,
    /// Operator key in an encrypted keystore v3 file (Web3 Secret Storage, as geth writes;
    /// `voltlane key encrypt` makes one) instead of the plain key file. Its passphrase comes
    /// from `--operator-keystore-passphrase-file`, else from the environment variable
    /// `VOLTLANE_OPERATOR_KEY_PASSPHRASE`. The file must exist and be private (mode 0600).
    #[arg(
        long,
        env = "VOLTLANE_OPERATOR_KEYSTORE",
        conflicts_with = "operator_key_file"
    )]
    pub operator_keystore: Option<PathBuf>,
    /// File holding the passphrase of `--operator-keystore` (mode 0600; one trailing newline
    /// is not part of the passphrase).
    #[arg(
        long,
        env = "VOLTLANE_OPERATOR_KEYSTORE_PASSPHRASE_FILE",
        requires = "operator_keystore"
    )]
    pub operator_keystore_passphrase_file: Option<PathBuf>,
    /// Chain id bound into every signed message.
    #[arg(long, env = "VOLTLANE_CHAIN_ID", default_value_t = 337)]
    pub chain_id: u64,
    /// Token network contract address bound into every signed message.
    #[arg(long, visible_alias = "token-network", env = "VOLTLANE_TOKEN_NETWORK", default_value = DEFAULT_TOKEN_NETWORK)]
    pub token_network_address: Address,
    /// Settlement window of the embedded ledger, seconds.
    #[arg(long, env = "VOLTLANE_SETTLEMENT_WINDOW_SECS", default_value_t = 120)]
    pub settlement_window_secs: u64,
    /// Log format.
    #[arg(long, env = "VOLTLANE_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Enable `Ledger.Mint` (test tokens for anyone).
    #[arg(long, env = "VOLTLANE_DEV_FAUCET", default_value_t = true, action = ArgAction::Set)]
    pub dev_faucet: bool,
    #[command(flatten)]
    pub limits: Limits,
    #[command(flatten)]
    pub ledger: LedgerSettings,
    #[command(flatten)]
    pub ops: OpsSettings,
    #[command(flatten)]
    pub mediation: MediationSettings,
}

impl HubConfig {
    /// Defaults (as the binary without flags) with another data directory.
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: data_dir.into(),
            operator_key_file: None,
            operator_keystore: None,
            operator_keystore_passphrase_file: None,
            chain_id: 337,
            token_network_address: DEFAULT_TOKEN_NETWORK.parse().unwrap_or(Address::ZERO),
            settlement_window_secs: 120,
            log_format: LogFormat::Text,
            dev_faucet: true,
            limits: Limits::default(),
            ledger: LedgerSettings::default(),
            ops: OpsSettings::default(),
            mediation: MediationSettings::default(),
        }
    }

    /// The plain operator key file (used unless `--operator-keystore` is set).
    pub fn operator_key_path(&self) -> PathBuf {
        self.operator_key_file
            .clone()
            .unwrap_or_else(|| self.data_dir.join("operator.key"))
    }

    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("db")
    }

    pub fn domain(&self) -> Domain {
        Domain {
            chain_id: U256::from(self.chain_id),
            token_network_address: self.token_network_address,
        }
    }

    /// The mediation fee the hub charges.
    pub fn mediation_fee(&self) -> FeePolicy {
        FeePolicy {
            flat: self.mediation.mediation_fee_flat,
            proportional_ppm: self.mediation.mediation_fee_ppm,
        }
    }

    /// The mediator's rules: the fee, the reveal timeout, the shortest life an outgoing lock
    /// may have (one reveal timeout: the payee gets at least that long to reveal), and the
    /// longest a lock may live (the settlement window).
    pub fn mediation_config(&self) -> channel_core::mediation::MediationConfig {
        let reveal_timeout = self.reveal_timeout();
        channel_core::mediation::MediationConfig {
            fees: self.mediation_fee(),
            reveal_timeout,
            min_outgoing_lifetime: reveal_timeout,
            settlement_window: self.settlement_window_secs,
        }
    }

    /// The reveal timeout in seconds: as configured, or derived from the settlement window.
    pub fn reveal_timeout(&self) -> u64 {
        self.mediation
            .reveal_timeout_secs
            .unwrap_or_else(|| liquidity::default_reveal_timeout(self.settlement_window_secs))
    }

    /// Start-up checks of settings that depend on each other (run refuses to start
    /// otherwise): the fee is at most 100 % and the reveal timeout fits the settlement window.
    pub fn validate(&self) -> Result<(), crate::HubError> {
        let invalid = |e: liquidity::SettingsError| crate::HubError::Config(e.to_string());
        liquidity::check_fee_policy(&self.mediation_fee()).map_err(invalid)?;
        liquidity::check_reveal_timeout(self.reveal_timeout(), self.settlement_window_secs)
            .map_err(invalid)
    }

    /// The chain ledger's settings (`--ledger ethereum`), or why they are incomplete.
    pub fn chain_ledger_config(
        &self,
    ) -> Result<crate::ledger::chain::ChainLedgerConfig, crate::HubError> {
        let l = &self.ledger;
        let rpc_url = l.eth_rpc_url.clone().ok_or_else(|| {
            crate::HubError::Config(
                "--ledger ethereum needs --eth-rpc-url (VOLTLANE_ETH_RPC_URL)".into(),
            )
        })?;
        if self.token_network_address == DEFAULT_TOKEN_NETWORK.parse().unwrap_or(Address::ZERO) {
            return Err(crate::HubError::Config(
                "--ledger ethereum needs --token-network (VOLTLANE_TOKEN_NETWORK): the \
                 TokenNetwork contract's address"
                    .into(),
            ));
        }
        if l.eth_confirmations == 0 {
            return Err(crate::HubError::Config(
                "--eth-confirmations must be at least 1 (1 = the head block counts)".into(),
            ));
        }
        if l.eth_poll_interval_ms == 0 || l.eth_max_log_range == 0 {
            return Err(crate::HubError::Config(
                "--eth-poll-interval-ms and --eth-max-log-range must be at least 1".into(),
            ));
        }
        let mut eth = EthConfig::new(rpc_url, self.token_network_address);
        eth.confirmations = l.eth_confirmations;
        eth.gas_cap = l.eth_gas_cap;
        eth.max_log_range = l.eth_max_log_range;
        eth.first_block = l.eth_start_block;
        if let Some(fee) = l.eth_max_fee_per_gas_wei {
            eth.max_fee_per_gas = fee;
        }
        Ok(crate::ledger::chain::ChainLedgerConfig {
            eth,
            start_block: l.eth_start_block,
        })
    }

    pub fn ledger_config(&self) -> LedgerConfig {
        LedgerConfig {
            domain: self.domain(),
            settlement_timeout: self.settlement_window_secs,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_cache_is_bounded() {
        let parsed =
            HubConfig::try_parse_from(["voltlane-hub", "--store-cache-mb", "256"]).unwrap();
        assert_eq!(parsed.limits.store_cache_mb, 256);
        let err = HubConfig::try_parse_from(["voltlane-hub", "--store-cache-mb", "4"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--store-cache-mb"), "{err}");
    }

    #[test]
    fn session_limits_default_and_parse() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(parsed.limits.max_sessions, 100_000);
        assert_eq!(parsed.limits.max_sessions_per_key, 16);
        assert_eq!(
            parsed.limits.session_idle_timeout(),
            Duration::from_secs(600)
        );
        let parsed = HubConfig::try_parse_from([
            "voltlane-hub",
            "--max-sessions",
            "50",
            "--max-sessions-per-key",
            "3",
            "--session-idle-timeout-secs",
            "2",
        ])
        .unwrap();
        assert_eq!(parsed.limits.max_sessions, 50);
        assert_eq!(parsed.limits.max_sessions_per_key, 3);
        assert_eq!(parsed.limits.session_idle_timeout(), Duration::from_secs(2));
        for (flag, bad) in [
            ("--max-sessions-per-key", "-1"),
            ("--max-sessions-per-key", "x"),
            ("--session-idle-timeout-secs", "0"),
        ] {
            let arg = format!("{flag}={bad}");
            let err = HubConfig::try_parse_from(["voltlane-hub", arg.as_str()])
                .unwrap_err()
                .to_string();
            assert!(err.contains(flag), "{arg}: {err}");
        }
    }

    #[test]
    fn keepalive_defaults_parse_and_zero_turns_off() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(
            parsed.limits.http2_keepalive_interval(),
            Some(Duration::from_secs(20))
        );
        assert_eq!(
            parsed.limits.http2_keepalive_timeout(),
            Duration::from_secs(10)
        );
        assert_eq!(parsed.limits.tcp_keepalive(), Some(Duration::from_secs(60)));
        let parsed = HubConfig::try_parse_from([
            "voltlane-hub",
            "--http2-keepalive-interval-secs",
            "0",
            "--http2-keepalive-timeout-secs",
            "3",
            "--tcp-keepalive-secs",
            "0",
        ])
        .unwrap();
        assert_eq!(parsed.limits.http2_keepalive_interval(), None);
        assert_eq!(
            parsed.limits.http2_keepalive_timeout(),
            Duration::from_secs(3)
        );
        assert_eq!(parsed.limits.tcp_keepalive(), None);
        let err = HubConfig::try_parse_from(["voltlane-hub", "--http2-keepalive-timeout-secs=0"])
            .unwrap_err()
            .to_string();
        assert!(err.contains("--http2-keepalive-timeout-secs"), "{err}");
    }

    #[test]
    fn group_commit_interval_defaults_to_two_ms_and_is_bounded() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(parsed.limits.group_commit_interval_us, 2000);
        assert_eq!(
            parsed.limits.group_commit_interval_us,
            Limits::default().group_commit_interval_us
        );
        let parsed =
            HubConfig::try_parse_from(["voltlane-hub", "--group-commit-interval-us", "0"]).unwrap();
        assert_eq!(parsed.limits.group_commit_interval_us, 0);
        let err =
            HubConfig::try_parse_from(["voltlane-hub", "--group-commit-interval-us", "100001"])
                .unwrap_err()
                .to_string();
        assert!(err.contains("--group-commit-interval-us"), "{err}");
    }

    #[test]
    fn defaults_match_new_and_flags_parse() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(parsed, HubConfig::new("./hub-data"));
        assert_eq!(
            parsed.operator_key_path(),
            PathBuf::from("./hub-data/operator.key")
        );
        let parsed = HubConfig::try_parse_from([
            "voltlane-hub",
            "--data-dir",
            "/tmp/x",
            "--dev-faucet",
            "false",
            "--log-format",
            "json",
            "--settlement-window-secs",
            "3",
        ])
        .unwrap();
        assert!(!parsed.dev_faucet);
        assert_eq!(parsed.log_format, LogFormat::Json);
        assert_eq!(parsed.ledger_config().settlement_timeout, 3);
        assert!(
            HubConfig::try_parse_from(["voltlane-hub", "--token-network-address", "0x12"]).is_err()
        );
    }

    #[test]
    fn mediation_settings_parse_default_and_validate() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(parsed.mediation, MediationSettings::default());
        assert_eq!(parsed.mediation_fee(), FeePolicy::default());
        assert_eq!(parsed.reveal_timeout(), 24, "a fifth of the 120 s window");
        parsed.validate().unwrap();

        let parsed = HubConfig::try_parse_from([
            "voltlane-hub",
            "--auto-deposit",
            "5000",
            "--mediation-fee-flat",
            "2",
            "--mediation-fee-ppm",
            "1500",
            "--reveal-timeout-secs",
            "60",
        ])
        .unwrap();
        assert_eq!(parsed.mediation.auto_deposit, Some(U256::from(5000u32)));
        assert_eq!(
            parsed.mediation_fee(),
            FeePolicy {
                flat: U256::from(2u8),
                proportional_ppm: 1500
            }
        );
        assert_eq!(parsed.reveal_timeout(), 60);
        parsed.validate().unwrap();

        for bad in [
            &["--auto-deposit", "0"][..],
            &["--auto-deposit", "1e3"],
            &["--mediation-fee-flat", "-1"],
            &["--mediation-fee-flat", "0x10"],
            &["--mediation-fee-ppm", "-1"],
            &["--reveal-timeout-secs", "-3"],
        ] {
            let args = std::iter::once("voltlane-hub").chain(bad.iter().copied());
            assert!(HubConfig::try_parse_from(args).is_err(), "{bad:?}");
        }

        let mut config = HubConfig::new("./x");
        config.mediation.mediation_fee_ppm = 1_000_001;
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("at most 1000000 ppm"), "{err}");
        let mut config = HubConfig::new("./x");
        config.mediation.reveal_timeout_secs = Some(61);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("reveal timeout (61 s)"), "{err}");
        config.mediation.reveal_timeout_secs = Some(0);
        let err = config.validate().unwrap_err().to_string();
        assert!(err.contains("at least 1 second"), "{err}");
        config.mediation.reveal_timeout_secs = None;
        config.settlement_window_secs = 2;
        assert_eq!(config.reveal_timeout(), 1);
        config.validate().unwrap();
        // ... but no lock fits: it must outlive two reveal timeouts and expire within the
        // window (the hub starts, and warns that it cannot mediate).
        assert!(!config.mediation_config().can_forward());
        config.settlement_window_secs = 3;
        assert!(config.mediation_config().can_forward());
    }

    #[test]
    fn metrics_and_tls_are_off_by_default_and_tls_needs_both_files() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(parsed.ops, OpsSettings::default());
        assert_eq!(parsed.ops.tls_pem().unwrap(), None);
        let parsed = HubConfig::try_parse_from([
            "voltlane-hub",
            "--metrics-listen",
            "127.0.0.1:9464",
            "--tls-cert",
            "/nonexistent/cert.pem",
            "--tls-key",
            "/nonexistent/key.pem",
        ])
        .unwrap();
        assert_eq!(
            parsed.ops.metrics_listen,
            Some(SocketAddr::from(([127, 0, 0, 1], 9464)))
        );
        let err = parsed.ops.tls_pem().unwrap_err().to_string();
        assert!(err.contains("--tls-cert /nonexistent/cert.pem"), "{err}");
        for bad in [
            &["--tls-cert", "c.pem"][..],
            &["--tls-key", "k.pem"],
            &["--metrics-listen", "localhost"],
        ] {
            let args = std::iter::once("voltlane-hub").chain(bad.iter().copied());
            assert!(HubConfig::try_parse_from(args).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_faucet_cap_is_a_positive_decimal_integer() {
        let parsed = HubConfig::try_parse_from(["voltlane-hub"]).unwrap();
        assert_eq!(
            parsed.limits.faucet_max_mint,
            U256::from(10u8).pow(U256::from(24u8))
        );
        let parsed =
            HubConfig::try_parse_from(["voltlane-hub", "--faucet-max-mint", "5000"]).unwrap();
        assert_eq!(parsed.limits.faucet_max_mint, U256::from(5000u32));
        let max = U256::MAX.to_string();
        let parsed =
            HubConfig::try_parse_from(["voltlane-hub", "--faucet-max-mint", max.as_str()]).unwrap();
        assert_eq!(parsed.limits.faucet_max_mint, U256::MAX);
        for bad in [
            "0",
            "",
            "-5",
            "+5",
            "1e24",
            "1.5",
            "0x10",
            "1_000",
            " 7",
            &format!("{max}0"),
        ] {
            assert!(
                HubConfig::try_parse_from(["voltlane-hub", "--faucet-max-mint", bad]).is_err(),
                "{bad:?}"
            );
        }
    }
}
