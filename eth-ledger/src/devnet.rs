//! [`Devnet`]: a throwaway dev chain for tests and demos: an `anvil` process on a free
//! loopback port with Raiden's contracts deployed on it ([`crate::deploy`]), killed when the
//! value is dropped. Every crate's chain tests start theirs through here.
//!
//! anvil and `contracts.json` come from `.devchain/` ([`ensure_installed`] runs
//! `scripts/devchain.sh install` when either is missing: anvil from npm, the contracts from
//! PyPI; nothing is committed).

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use channel_core::{Domain, LocalSigner, U256};
use tokio::process::{Child, Command};

use crate::artifacts::{default_devchain_dir, Artifacts};
use crate::deploy::{deploy, DeployParams, Deployment};
use crate::error::EthError;
use crate::ledger::EthConfig;
use crate::node::Node;
use crate::rpc::RetryPolicy;

/// Longest wait for `scripts/devchain.sh install` (downloads from npm and PyPI).
pub const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// The files a dev chain needs under `.devchain/`.
const NEEDED: [&str; 2] = ["bin/anvil", "contracts.json"];

/// One install at a time in this process (tests start dev chains in parallel).
static INSTALLING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `.devchain/` with anvil and `contracts.json`, installing them first when missing (bounded
/// by [`INSTALL_LIMIT`]). Concurrent callers, in this process or others, wait for one
/// install (a lock file in `.devchain/`). The error says what to run by hand.
pub async fn ensure_installed() -> Result<PathBuf, EthError> {
    let dir = default_devchain_dir();
    if missing(&dir).is_empty() {
        return Ok(dir);
    }
    let _one_here = INSTALLING.lock().await;
    std::fs::create_dir_all(&dir).map_err(|e| io_error(&dir, e))?;
    let lock_path = dir.join(".install.lock");
    let lock_file = std::fs::File::create(&lock_path).map_err(|e| io_error(&lock_path, e))?;
    let _one_anywhere = tokio::task::spawn_blocking(move || lock_file.lock().map(|()| lock_file))
        .await
        .map_err(|e| EthError::Config(format!("waiting for the install lock: {e}")))?
        .map_err(|e| io_error(&lock_path, e))?;
    if missing(&dir).is_empty() {
        return Ok(dir);
    }
    let root = dir
        .parent()
        .ok_or_else(|| EthError::Config(format!("{} has no parent", dir.display())))?
        .to_path_buf();
    let script = root.join("scripts/devchain.sh");
    let mut child = Command::new("bash")
        .arg(&script)
        .arg("install")
        .current_dir(&root)
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| io_error(&script, e))?;
    let status = tokio::time::timeout(INSTALL_LIMIT, child.wait())
        .await
        .map_err(|_| {
            EthError::Config(format!(
                "{} install did not finish within {INSTALL_LIMIT:?}",
                script.display()
            ))
        })?
        .map_err(|e| io_error(&script, e))?;
    let still = missing(&dir);
    if !status.success() || !still.is_empty() {
        return Err(EthError::Config(format!(
            "{still:?} missing after `scripts/devchain.sh install` ({status}): run it at the \
             repository root (it fetches anvil and the Raiden 0.50 contracts into .devchain/)"
        )));
    }
    Ok(dir)
}

fn missing(dir: &Path) -> Vec<PathBuf> {
    NEEDED
        .into_iter()
        .map(|n| dir.join(n))
        .filter(|p| !p.exists())
        .collect()
}

fn io_error(path: &Path, e: std::io::Error) -> EthError {
    EthError::Config(format!("{}: {e}", path.display()))
}

/// Retries briefly, so that a test against a broken dev chain fails fast.
pub fn quick_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 10,
        request_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    }
}

/// A running anvil with the contracts deployed (see the module docs).
#[derive(Debug)]
pub struct Devnet {
    anvil: Child,
    pub url: String,
    pub port: u16,
    pub deployment: Deployment,
    pub node: Node,
    pub dir: PathBuf,
}

impl Devnet {
    /// Installs what is missing, starts anvil on a free loopback port and deploys with
    /// `params`.
    pub async fn start(params: &DeployParams) -> Result<Self, EthError> {
        let dir = ensure_installed().await?;
        let artifacts = Artifacts::load(&dir.join("contracts.json"))?;
        let (anvil, port, node) = spawn_anvil(&dir.join("bin/anvil"), None).await?;
        let url = format!("http://127.0.0.1:{port}");
        let deployment = deploy(&url, &artifacts, params).await?;
        Ok(Self {
            anvil,
            url,
            port,
            deployment,
            node,
            dir,
        })
    }

    /// The ledger configuration for this chain, with quick retries.
    pub fn config(&self) -> EthConfig {
        let mut c = EthConfig::new(self.url.clone(), self.deployment.token_network);
        c.retry = quick_retry();
        c.receipt_timeout = Duration::from_secs(20);
        c
    }

    /// The domain every proof on this chain is bound to.
    pub fn domain(&self) -> Domain {
        Domain {
            chain_id: U256::from(self.deployment.chain_id),
            token_network_address: self.deployment.token_network,
        }
    }

    /// Funded dev key `i` (0 deployed the contracts).
    pub fn key(&self, i: usize) -> Result<LocalSigner, EthError> {
        self.deployment
            .dev_keys
            .get(i)
            .ok_or_else(|| EthError::Config(format!("no dev key {i}")))?
            .signer()
    }

    /// Moves the chain's clock `seconds` forward and mines a block at the new time.
    pub async fn advance(&self, seconds: u64) -> Result<(), EthError> {
        self.node.increase_time(seconds).await?;
        self.node.mine(1).await
    }

    /// Kills anvil (its state is lost: anvil keeps it in memory).
    pub async fn stop(&mut self) -> Result<(), EthError> {
        self.anvil
            .kill()
            .await
            .map_err(|e| EthError::Config(format!("killing anvil: {e}")))
    }
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> Result<u16, EthError> {
    let l = TcpListener::bind("127.0.0.1:0")
        .map_err(|e| EthError::Config(format!("bind loopback: {e}")))?;
    Ok(l.local_addr()
        .map_err(|e| EthError::Config(format!("local address: {e}")))?
        .port())
}

/// Starts `anvil` on `port` (a free one when `None`) and waits until it answers. A free port
/// is chosen before anvil binds it, so another process can take it in between: then our anvil
/// exits, and a start counts only while our process still runs once the port answers;
/// otherwise it is retried on a new port (a given port is tried once).
pub async fn spawn_anvil(anvil: &Path, port: Option<u16>) -> Result<(Child, u16, Node), EthError> {
    let attempts = if port.is_some() { 1 } else { 5 };
    for _ in 0..attempts {
        let port = match port {
            Some(p) => p,
            None => free_port()?,
        };
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(anvil)
            .args([
                "--host",
                "127.0.0.1",
                "--port",
                &port.to_string(),
                "--silent",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| io_error(anvil, e))?;
        let node = Node::connect(&url, quick_retry())?;
        for _ in 0..100 {
            if child.try_wait().map_err(|e| io_error(anvil, e))?.is_some() {
                break;
            }
            if node.chain_id().await.is_ok() {
                if child.try_wait().map_err(|e| io_error(anvil, e))?.is_none() {
                    return Ok((child, port, node));
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Err(EthError::Config(format!(
        "anvil did not start on a loopback port in {attempts} attempt(s)"
    )))
}
