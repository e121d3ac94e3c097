//! A dev chain per test: anvil on a free loopback port with Raiden's TokenNetwork 0.50
//! deployed. anvil and the contracts come from the repository's `.devchain/`; when either is
//! missing they are installed first with `scripts/devchain.sh install` (as the eth-ledger
//! tests do), and if that fails the test fails saying what to run: it never skips.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::process::{Child, Command};
use voltlane_client::ledger::{ChainAccess, ChainDeployment, DeployedContracts, RetryPolicy};
use voltlane_client::{LocalSigner, U256};
use voltlane_eth::artifacts::{default_devchain_dir, Artifacts};
use voltlane_eth::{deploy, DeployParams, Deployment, Node};

/// Settlement window of the test deployment (chain seconds, skipped with evm_increaseTime).
pub const SETTLE_TIMEOUT: u64 = 100;
/// Tokens each dev key holds after deployment.
pub const TOKENS_PER_KEY: u64 = 1_000_000;
/// Longest wait for `scripts/devchain.sh install`.
const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// `.devchain/` with anvil and contracts.json, installed on first use when missing.
fn devchain_dir() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = default_devchain_dir();
        let missing = |dir: &Path| {
            ["bin/anvil", "contracts.json"]
                .into_iter()
                .map(|n| dir.join(n))
                .filter(|p| !p.exists())
                .collect::<Vec<_>>()
        };
        if !missing(&dir).is_empty() {
            install(&dir);
        }
        let still = missing(&dir);
        assert!(
            still.is_empty(),
            "{still:?} missing after installing: run `scripts/devchain.sh install` at the \
             repository root (it fetches anvil and the Raiden 0.50 contracts into .devchain/)"
        );
        dir
    })
}

fn install(dir: &Path) {
    let root = dir.parent().expect(".devchain has a parent directory");
    let script = root.join("scripts/devchain.sh");
    eprintln!("installing the dev chain: {} install", script.display());
    let mut child = std::process::Command::new("bash")
        .arg(&script)
        .arg("install")
        .current_dir(root)
        .stdin(Stdio::null())
        .spawn()
        .expect("start scripts/devchain.sh install");
    let deadline = std::time::Instant::now() + INSTALL_LIMIT;
    loop {
        match child
            .try_wait()
            .expect("wait for scripts/devchain.sh install")
        {
            Some(status) => {
                assert!(
                    status.success(),
                    "scripts/devchain.sh install failed: {status}"
                );
                return;
            }
            None if std::time::Instant::now() > deadline => {
                let _ = child.kill();
                panic!("scripts/devchain.sh install did not finish within {INSTALL_LIMIT:?}");
            }
            None => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").port()
}

/// Quick retries, so a broken test fails fast.
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 10,
        request_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    }
}

/// One anvil with the contracts deployed; killed on drop.
#[derive(Debug)]
pub struct Devchain {
    _anvil: Child,
    pub url: String,
    pub deployment: Deployment,
    pub node: Node,
}

impl Devchain {
    pub async fn start() -> Self {
        let artifacts =
            Artifacts::load(&devchain_dir().join("contracts.json")).expect("contracts.json");
        let (anvil, url, node) = spawn_anvil().await;
        let params = DeployParams {
            settle_timeout: SETTLE_TIMEOUT,
            dev_keys: 3,
            tokens_per_key: U256::from(TOKENS_PER_KEY),
            ..DeployParams::default()
        };
        let deployment = deploy(&url, &artifacts, &params).await.expect("deploy");
        Self {
            _anvil: anvil,
            url,
            deployment,
            node,
        }
    }

    /// Dev key `i` (0 deployed the contracts).
    pub fn key(&self, i: usize) -> LocalSigner {
        self.deployment.dev_keys[i].signer().expect("dev key")
    }

    /// What an Ethereum hub on this chain announces.
    pub fn announced(&self) -> ChainDeployment {
        let d = &self.deployment;
        ChainDeployment {
            contracts: DeployedContracts {
                domain: channel_core::Domain {
                    chain_id: U256::from(d.chain_id),
                    token_network_address: d.token_network,
                },
                token: d.token,
                secret_registry: d.secret_registry,
                settlement_timeout: d.settle_timeout,
            },
            start_block: d.deploy_block,
            confirmations: 1,
        }
    }

    /// A device's access to this chain, polling quickly.
    pub fn access(&self) -> ChainAccess {
        let mut access = ChainAccess::new(self.url.clone());
        access.confirmations = Some(1);
        access.poll_interval = Duration::from_millis(50);
        access.receipt_timeout = Duration::from_secs(20);
        access.confirm_timeout = Duration::from_secs(20);
        access.retry = test_retry();
        access
    }
}

/// Starts anvil on a free loopback port; a start counts only while our process still runs
/// once the port answers (another process may have taken the port in between).
async fn spawn_anvil() -> (Child, String, Node) {
    let anvil = devchain_dir().join("bin/anvil");
    for _attempt in 0..5 {
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let mut child = Command::new(&anvil)
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
            .expect("spawn anvil");
        let node = Node::connect(&url, test_retry()).expect("node");
        for _ in 0..100 {
            if child.try_wait().expect("poll anvil").is_some() {
                break;
            }
            if node.chain_id().await.is_ok() {
                if child.try_wait().expect("poll anvil").is_none() {
                    return (child, url, node);
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("anvil did not start on a free loopback port in 5 attempts");
}
