//! [`HubProcess`]: the real hub binary as a child process (`voltlane-hub-failpoints`, the
//! production hub with the test-only fail points compiled in; see [`crate::binary`]).
//!
//! Call order: [`HubProcess::start`] (spawn + [`HubProcess::wait_ready`]), use
//! [`HubProcess::url`] / [`HubProcess::connect`], optionally [`HubProcess::kill9`] and
//! [`HubProcess::restart`] (same data directory and port), and let `Drop` kill the child.
//! A hub started with a fail point in [`HubOptions::env`] dies by itself:
//! [`HubProcess::wait_exit`] reaps it, [`HubProcess::options_mut`] drops the fail point
//! before the restart. [`HubProcess::operator_key`] reads the key the hub created, so a test
//! can act as the operator.
//! Every start appends the hub's stdout and stderr to `<data dir>/hub.log`; when a test
//! panics while a hub is alive, `Drop` prints the tail of that log. For debugging a run:
//! `VOLTLANE_TEST_HUB_LOG` sets the hubs' default `RUST_LOG` (e.g.
//! `info,voltlane_hub=debug`), and `VOLTLANE_TEST_KEEP_LOG=<dir>` copies each hub's whole log
//! to `<dir>/hub-<port>.log` when it is dropped.

use std::fs::OpenOptions;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use channel_core::crypto::LocalSigner;
use channel_core::primitives::decode_hex;
use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use crate::binary::hub_binary;
use crate::error::HarnessError;

/// The health-checked service that means "the hub serves payments".
const READY_SERVICE: &str = "voltlane.v1.Payments";
/// Pause between health polls.
const POLL: Duration = Duration::from_millis(25);
/// The hub's operator key file inside its data directory.
const OPERATOR_KEY_FILE: &str = "operator.key";
/// Bytes of log shown on failure.
const LOG_TAIL: usize = 4000;

/// How to start a hub.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// `--settlement-window-secs`.
    pub settlement_window_secs: u64,
    /// `--max-message-bytes`, when not the hub's default.
    pub max_message_bytes: Option<usize>,
    /// Any further flags, passed verbatim.
    pub extra_args: Vec<String>,
    /// Bound of [`HubProcess::wait_ready`].
    pub ready_timeout: Duration,
    /// `RUST_LOG` of the child (the hub logs at `info` by default).
    pub rust_log: String,
    /// Further environment variables of the child, e.g. `VOLTLANE_FAILPOINTS`.
    pub env: Vec<(String, String)>,
}

impl Default for HubOptions {
    fn default() -> Self {
        Self {
            settlement_window_secs: 3,
            max_message_bytes: None,
            extra_args: Vec::new(),
            ready_timeout: Duration::from_secs(20),
            rust_log: std::env::var("VOLTLANE_TEST_HUB_LOG").unwrap_or_else(|_| "info".into()),
            env: Vec::new(),
        }
    }
}

/// One hub process with its own temporary data directory and loopback port.
#[derive(Debug)]
pub struct HubProcess {
    bin: PathBuf,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    options: HubOptions,
    child: Option<Child>,
}

impl HubProcess {
    /// Spawns a hub on a free loopback port and waits until it reports healthy.
    pub async fn start(options: HubOptions) -> Result<Self, HarnessError> {
        let mut hub = Self::spawn(options)?;
        hub.wait_ready().await?;
        Ok(hub)
    }

    /// Spawns a hub without waiting for it.
    pub fn spawn(options: HubOptions) -> Result<Self, HarnessError> {
        let bin = hub_binary()?;
        let dir = tempfile::Builder::new().prefix("voltlane-hub-").tempdir()?;
        let addr = free_port()?;
        let mut hub = Self {
            bin,
            dir,
            addr,
            options,
            child: None,
        };
        hub.launch()?;
        Ok(hub)
    }

    // ----- getters -----

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The hub's `--data-dir` (also holds `hub.log`).
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("hub.log")
    }

    /// The last few KiB of the hub's log.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let start = text.len().saturating_sub(LOG_TAIL);
        let start = (start..text.len())
            .find(|i| text.is_char_boundary(*i))
            .unwrap_or(text.len());
        text[start..].to_string()
    }

    /// The options the next (re)start uses.
    pub fn options_mut(&mut self) -> &mut HubOptions {
        &mut self.options
    }

    /// The operator key the hub created in its data directory (`operator.key`, hex).
    pub fn operator_key(&self) -> Result<LocalSigner, HarnessError> {
        let path = self.dir.path().join(OPERATOR_KEY_FILE);
        let text = std::fs::read_to_string(&path)?;
        let bytes = decode_hex(text.trim())
            .map_err(|e| HarnessError::protocol(format!("{}: {e}", path.display())))?;
        LocalSigner::from_bytes(&bytes).map_err(|e| HarnessError::Channel(e.to_string()))
    }

    /// Process id of the running child, if any.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    // ----- commands -----

    /// A new connection to the hub.
    pub async fn connect(&self) -> Result<Channel, HarnessError> {
        connect(&self.url()).await
    }

    /// Polls `grpc.health.v1.Health/Check` until the hub serves payments, the child exits,
    /// or [`HubOptions::ready_timeout`] passes.
    pub async fn wait_ready(&mut self) -> Result<(), HarnessError> {
        let started = Instant::now();
        let deadline = started + self.options.ready_timeout;
        loop {
            self.check_alive()?;
            if self.is_serving().await {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(HarnessError::Timeout {
                    what: format!(
                        "hub at {} to report {READY_SERVICE} SERVING; log tail:\n{}",
                        self.addr,
                        self.log_tail()
                    ),
                    after: started.elapsed(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// `kill -9` the hub (`Child::kill` sends SIGKILL on Unix) and reap it.
    pub fn kill9(&mut self) -> Result<ExitStatus, HarnessError> {
        match self.child.take() {
            Some(mut child) => {
                child.kill()?;
                Ok(child.wait()?)
            }
            None => Err(HarnessError::protocol("kill9: the hub is not running")),
        }
    }

    /// Waits (polling) for the child to exit by itself and reaps it; a timeout leaves it
    /// running.
    pub async fn wait_exit(&mut self, limit: Duration) -> Result<ExitStatus, HarnessError> {
        let started = Instant::now();
        loop {
            let Some(child) = self.child.as_mut() else {
                return Err(HarnessError::protocol("wait_exit: the hub is not running"));
            };
            if let Some(status) = child.try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if started.elapsed() >= limit {
                return Err(HarnessError::Timeout {
                    what: format!(
                        "hub at {} to exit; log tail:\n{}",
                        self.addr,
                        self.log_tail()
                    ),
                    after: started.elapsed(),
                });
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Starts the hub again on the same data directory and port (killing a running one
    /// first) and waits until it is ready.
    pub async fn restart(&mut self) -> Result<(), HarnessError> {
        if self.child.is_some() {
            self.kill9()?;
        }
        self.launch()?;
        self.wait_ready().await
    }

    fn launch(&mut self) -> Result<(), HarnessError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--listen")
            .arg(self.addr.to_string())
            .arg("--data-dir")
            .arg(self.dir.path())
            .arg("--settlement-window-secs")
            .arg(self.options.settlement_window_secs.to_string());
        if let Some(max) = self.options.max_message_bytes {
            cmd.arg("--max-message-bytes").arg(max.to_string());
        }
        cmd.args(&self.options.extra_args)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", &self.options.rust_log)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        self.child = Some(cmd.spawn()?);
        Ok(())
    }

    fn check_alive(&mut self) -> Result<(), HarnessError> {
        let Some(child) = self.child.as_mut() else {
            return Err(HarnessError::protocol("the hub is not running"));
        };
        match child.try_wait()? {
            None => Ok(()),
            Some(status) => {
                self.child = None;
                Err(HarnessError::HubExited {
                    status: status.to_string(),
                    log_tail: self.log_tail(),
                })
            }
        }
    }

    async fn is_serving(&self) -> bool {
        let Ok(channel) = connect(&self.url()).await else {
            return false;
        };
        let answer = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: READY_SERVICE.into(),
            })
            .await;
        matches!(answer, Ok(r) if r.get_ref().status == ServingStatus::Serving as i32)
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            if let Some(dir) = std::env::var_os("VOLTLANE_TEST_KEEP_LOG") {
                let _ = std::fs::copy(
                    self.log_path(),
                    Path::new(&dir).join(format!("hub-{}.log", self.addr.port())),
                );
            }
            if std::thread::panicking() {
                eprintln!(
                    "--- hub log ({}), tail ---\n{}",
                    self.log_path().display(),
                    self.log_tail()
                );
            }
        }
    }
}

/// Connects to `url` (bounded connect timeout, TCP_NODELAY).
pub async fn connect(url: &str) -> Result<Channel, HarnessError> {
    Ok(Endpoint::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .tcp_nodelay(true)
        .connect()
        .await?)
}

/// A loopback port that was free a moment ago (bind port 0, read it, close).
fn free_port() -> Result<SocketAddr, HarnessError> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}
