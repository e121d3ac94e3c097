//! Test support: a dev chain per test (anvil on a free loopback port plus a fresh
//! deployment), connected ledgers for two participants, and a two-party off-chain harness
//! whose proofs are bound to the chain's domain.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::OnceLock;
use std::time::Duration;

use channel_core::channel::{Channel, ChannelEvent};
use channel_core::testing::sends;
use channel_core::{Address, Domain, LocalSigner, Signer, H256, U256};
use tokio::process::{Child, Command};
use voltlane_eth::artifacts::{default_devchain_dir, Artifacts};
use voltlane_eth::{
    deploy, DeployParams, Deployment, EthConfig, EthereumLedger, Node, RetryPolicy,
};

/// Settlement window used by the tests (seconds of chain time, skipped with evm_increaseTime).
pub const SETTLE_TIMEOUT: u64 = 100;
/// Tokens each dev key holds after deployment.
pub const TOKENS_PER_KEY: u64 = 1_000_000_000;

/// `.devchain/` of the repository (found from this crate's manifest directory, whatever the
/// current directory) with anvil and contracts.json. When either is missing the tests install
/// them first with `scripts/devchain.sh install` (anvil from npm, the contracts from PyPI;
/// bounded by [`INSTALL_LIMIT`]), as the dashboard test installs chromium, so that
/// `cargo test --workspace` needs nothing else on a fresh machine. If that fails, the test
/// fails saying what to run: these tests never skip silently.
pub fn devchain_dir() -> &'static Path {
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
            install_devchain(&dir);
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

/// Longest wait for `scripts/devchain.sh install` (downloads from npm and PyPI).
pub const INSTALL_LIMIT: Duration = Duration::from_secs(600);

/// Runs `scripts/devchain.sh install` for `dir`'s repository, killing it after
/// [`INSTALL_LIMIT`].
fn install_devchain(dir: &Path) {
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

pub fn artifacts() -> Artifacts {
    Artifacts::load(&devchain_dir().join("contracts.json")).expect("contracts.json")
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    l.local_addr().expect("local addr").port()
}

/// Retries quickly so that tests fail fast when something is really broken.
pub fn test_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 10,
        request_timeout: Duration::from_secs(2),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
    }
}

/// One anvil process with the contracts deployed. Killed on drop.
#[derive(Debug)]
pub struct Devchain {
    _anvil: Child,
    pub url: String,
    pub deployment: Deployment,
    pub node: Node,
}

impl Devchain {
    pub async fn start() -> Self {
        let artifacts = artifacts();
        let (child, url, node) = Self::spawn_anvil().await;
        let params = DeployParams {
            settle_timeout: SETTLE_TIMEOUT,
            dev_keys: 3,
            tokens_per_key: U256::from(TOKENS_PER_KEY),
            ..DeployParams::default()
        };
        let deployment = deploy(&url, &artifacts, &params).await.expect("deploy");
        Self {
            _anvil: child,
            url,
            deployment,
            node,
        }
    }

    /// Starts anvil on a free loopback port and waits until it answers. The port is chosen
    /// before anvil binds it, so another process can take it in between: then our anvil
    /// exits (and whatever answers on the port is not ours), so a start counts only while our
    /// process is still running once the port answers; otherwise it is retried on a new port.
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

    pub fn config(&self) -> EthConfig {
        let mut c = EthConfig::new(self.url.clone(), self.deployment.token_network);
        c.retry = test_retry();
        c.receipt_timeout = Duration::from_secs(20);
        c
    }

    /// Dev key `i` (1 and 2 are the participants; 0 deployed).
    pub fn key(&self, i: usize) -> LocalSigner {
        self.deployment.dev_keys[i].signer().expect("dev key")
    }

    pub async fn ledger(&self, key: &LocalSigner) -> EthereumLedger {
        EthereumLedger::connect(&self.config(), key)
            .await
            .expect("connect")
    }

    pub fn domain(&self) -> Domain {
        Domain {
            chain_id: U256::from(self.deployment.chain_id),
            token_network_address: self.deployment.token_network,
        }
    }

    /// Dev keys 1 and 2, each with its own connection, and their token balances now.
    pub async fn parties(&self) -> Parties {
        let (key_a, key_b) = (self.key(1), self.key(2));
        let (la, lb) = (self.ledger(&key_a).await, self.ledger(&key_b).await);
        let (a, b) = (key_a.address(), key_b.address());
        let a0 = la.token_balance(a).await.expect("balance of a");
        let b0 = la.token_balance(b).await.expect("balance of b");
        Parties {
            key_a,
            key_b,
            la,
            lb,
            a,
            b,
            a0,
            b0,
        }
    }
}

/// The two participants of a test: keys, ledgers, addresses and starting token balances.
#[derive(Debug)]
pub struct Parties {
    pub key_a: LocalSigner,
    pub key_b: LocalSigner,
    pub la: EthereumLedger,
    pub lb: EthereumLedger,
    pub a: Address,
    pub b: Address,
    pub a0: U256,
    pub b0: U256,
}

/// Two participants' channel views on one domain, with messages handed across directly.
#[derive(Debug)]
pub struct Pair {
    pub a: Channel,
    pub b: Channel,
    pub key_a: LocalSigner,
    pub key_b: LocalSigner,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    A,
    B,
}

impl Pair {
    pub fn new(domain: Domain, id: U256, key_a: LocalSigner, key_b: LocalSigner) -> Self {
        let a = Channel::new(domain, id, key_a.address(), key_b.address());
        let b = Channel::new(domain, id, key_b.address(), key_a.address());
        Self { a, b, key_a, key_b }
    }

    pub fn deposit(&mut self, side: Side, total: U256) {
        let who = match side {
            Side::A => self.key_a.address(),
            Side::B => self.key_b.address(),
        };
        self.a.handle_ledger_deposit(who, total).unwrap();
        self.b.handle_ledger_deposit(who, total).unwrap();
    }

    /// Runs `command` on `side`, then hands every message across until none is left.
    pub fn drive(
        &mut self,
        side: Side,
        now: u64,
        command: impl FnOnce(&mut Channel, &LocalSigner) -> Vec<ChannelEvent>,
    ) -> Vec<ChannelEvent> {
        let (first, key) = match side {
            Side::A => (&mut self.a, &self.key_a),
            Side::B => (&mut self.b, &self.key_b),
        };
        let events = command(first, key);
        let mut all = events.clone();
        let mut queue: Vec<(Side, _)> = sends(&events)
            .into_iter()
            .map(|m| (other(side), m))
            .collect();
        let mut rounds = 0;
        while let Some((to, msg)) = queue.pop() {
            rounds += 1;
            assert!(rounds < 64, "message exchange does not terminate");
            let (ch, key) = match to {
                Side::A => (&mut self.a, &self.key_a),
                Side::B => (&mut self.b, &self.key_b),
            };
            let out = ch.handle_message(&msg, now, key).unwrap();
            queue.extend(sends(&out).into_iter().map(|m| (other(to), m)));
            all.extend(out);
        }
        all
    }

    pub fn pay(&mut self, side: Side, amount: u64) {
        self.drive(side, 0, |ch, key| {
            ch.send_payment(U256::from(amount), H256::ZERO, key)
                .unwrap()
        });
    }
}

fn other(s: Side) -> Side {
    match s {
        Side::A => Side::B,
        Side::B => Side::A,
    }
}

pub fn u(v: u64) -> U256 {
    U256::from(v)
}
