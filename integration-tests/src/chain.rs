//! A real hub process settling on a dev chain: [`ChainHub`] starts anvil with Raiden's
//! TokenNetwork 0.50 deployed (`voltlane_eth::devnet`), writes a funded dev key as the hub's
//! operator key, and starts `voltlane-hub --ledger ethereum` against it. Devices reach the
//! chain themselves with their own key ([`ChainHub::ledger`]), as they would in production.

use std::time::Duration;

use channel_core::primitives::{Address, U256};
use channel_core::{LocalSigner, Signer};
use voltlane_eth::devnet::Devnet;
use voltlane_eth::{DeployParams, EthereumLedger};

use crate::error::HarnessError;
use crate::process::{HubOptions, HubProcess};

/// Tokens every funded dev key holds after deployment.
pub const TOKENS_PER_KEY: u64 = 1_000_000_000;
/// How often the hub's follower polls the chain in these tests.
const POLL_MS: u64 = 100;

/// A dev chain and a hub settling on it (see the module docs).
#[derive(Debug)]
pub struct ChainHub {
    pub chain: Devnet,
    pub hub: HubProcess,
    /// The hub's operator key (dev key 1, funded with ether and tokens).
    pub operator: LocalSigner,
    /// Between the hub and the node, when started with one.
    pub proxy: Option<NodeProxy>,
    /// Holds the operator key file for the hub's lifetime.
    _key_dir: tempfile::TempDir,
}

impl ChainHub {
    /// Starts anvil, deploys with a settlement window of `settle_timeout` seconds of chain
    /// time and `dev_keys` funded keys (key 0 deploys, key 1 is the hub's operator, keys 2..
    /// are for devices), then starts the hub with `extra_args` besides the chain flags.
    pub async fn start(
        settle_timeout: u64,
        dev_keys: u8,
        extra_args: &[&str],
    ) -> Result<Self, HarnessError> {
        Self::start_with(settle_timeout, dev_keys, extra_args, false).await
    }

    /// As [`ChainHub::start`]; with `through_proxy`, the hub reaches the node through a
    /// [`NodeProxy`] ([`ChainHub::proxy`]) that a test can switch off and on.
    pub async fn start_with(
        settle_timeout: u64,
        dev_keys: u8,
        extra_args: &[&str],
        through_proxy: bool,
    ) -> Result<Self, HarnessError> {
        Self::start_full(
            settle_timeout,
            dev_keys,
            extra_args,
            through_proxy,
            Vec::new(),
        )
        .await
    }

    /// As [`ChainHub::start_with`], with environment variables for the hub process (e.g.
    /// `VOLTLANE_FAILPOINTS`).
    pub async fn start_full(
        settle_timeout: u64,
        dev_keys: u8,
        extra_args: &[&str],
        through_proxy: bool,
        env: Vec<(String, String)>,
    ) -> Result<Self, HarnessError> {
        let params = DeployParams {
            settle_timeout,
            dev_keys: dev_keys.max(2),
            tokens_per_key: U256::from(TOKENS_PER_KEY),
            ..DeployParams::default()
        };
        let chain = Devnet::start(&params).await?;
        let operator = chain.key(1)?;
        let key_dir = tempfile::Builder::new()
            .prefix("voltlane-operator-")
            .tempdir()?;
        let key_file = key_dir.path().join("operator.key");
        let secret = chain
            .deployment
            .dev_keys
            .get(1)
            .ok_or_else(|| HarnessError::protocol("no dev key 1"))?
            .private_key;
        std::fs::write(&key_file, hex_of(secret.as_bytes()))?;
        // The hub refuses a key file that group or others may access.
        std::fs::set_permissions(
            &key_file,
            std::os::unix::fs::PermissionsExt::from_mode(0o600),
        )?;
        let proxy = if through_proxy {
            let upstream = std::net::SocketAddr::from(([127, 0, 0, 1], chain.port));
            Some(NodeProxy::start(upstream).await?)
        } else {
            None
        };
        let hub_rpc = proxy.as_ref().map_or(chain.url.clone(), |p| p.url.clone());
        let mut args: Vec<String> = [
            "--ledger",
            "ethereum",
            "--eth-rpc-url",
            &hub_rpc,
            "--token-network",
            &chain.deployment.token_network.to_string(),
            "--eth-start-block",
            &chain.deployment.deploy_block.to_string(),
            "--eth-poll-interval-ms",
            &POLL_MS.to_string(),
            "--operator-key-file",
            &key_file.display().to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra_args.iter().map(|s| s.to_string()));
        let hub = HubProcess::start(HubOptions {
            extra_args: args,
            env,
            ..HubOptions::default()
        })
        .await?;
        Ok(Self {
            chain,
            hub,
            operator,
            proxy,
            _key_dir: key_dir,
        })
    }

    /// The hub's address on the chain.
    pub fn hub_address(&self) -> Address {
        self.operator.address()
    }

    /// Funded dev key `i` (2 and up are free for devices).
    pub fn key(&self, i: usize) -> Result<LocalSigner, HarnessError> {
        Ok(self.chain.key(i)?)
    }

    /// A connection to the chain as `key` (a device's own).
    pub async fn ledger(&self, key: &LocalSigner) -> Result<EthereumLedger, HarnessError> {
        Ok(EthereumLedger::connect(&self.chain.config(), key).await?)
    }

    /// Moves the chain's clock forward by `seconds` and mines a block there.
    pub async fn advance(&self, seconds: u64) -> Result<(), HarnessError> {
        Ok(self.chain.advance(seconds).await?)
    }

    /// Makes the chain's clock run: every `every` of wall-clock time, one block `step`
    /// seconds later (anvil otherwise mines only on transactions, and chain time stands
    /// still). Stops when the returned handle is dropped.
    pub fn run_clock(&self, every: Duration, step: u64) -> ClockTask {
        let node = self.chain.node.clone();
        ClockTask(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if node.increase_time(step).await.is_ok() {
                    let _ = node.mine(1).await;
                }
            }
        }))
    }
}

/// The task of [`ChainHub::run_clock`]; aborted on drop.
#[derive(Debug)]
pub struct ClockTask(tokio::task::JoinHandle<()>);

impl Drop for ClockTask {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Polls `check` every 100 ms until it returns `Some`, at most `limit`.
pub async fn eventually<T, F, Fut>(
    limit: Duration,
    what: &str,
    mut check: F,
) -> Result<T, HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<T>, HarnessError>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = check().await? {
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(HarnessError::Timeout {
                what: what.to_string(),
                after: limit,
            });
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A loopback TCP proxy in front of the chain's node that can be switched off and on: while
/// off it refuses new connections and cuts open ones, as a stopped node would. Stops with
/// the value.
#[derive(Debug)]
pub struct NodeProxy {
    pub url: String,
    down: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl NodeProxy {
    /// Forwards to the node at `upstream` (`host:port`).
    pub async fn start(upstream: std::net::SocketAddr) -> Result<Self, HarnessError> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let url = format!("http://{}", listener.local_addr()?);
        let (down, down_rx) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if *down_rx.borrow() {
                    continue; // dropped: the connection is refused
                }
                let mut rx = down_rx.clone();
                tokio::spawn(async move {
                    let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                        return;
                    };
                    let (mut client, mut server) = (client, server);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                        _ = rx.wait_for(|down| *down) => {}
                    }
                });
            }
        });
        Ok(Self { url, down, task })
    }

    /// Switches the node off (`true`) or back on.
    pub fn set_down(&self, down: bool) {
        self.down.send_replace(down);
    }
}

impl Drop for NodeProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A raw-protobuf device (dev key `key_index`) logged in at the hub, with its channel opened
/// and funded with `deposit` on the chain by itself, once the hub shows `hub_deposit` of its
/// own in it (0: do not wait for one). Returns the device's own connection to the chain too.
pub async fn chain_device(
    net: &ChainHub,
    key_index: usize,
    deposit: U256,
    hub_deposit: U256,
) -> Result<(crate::TestDevice, EthereumLedger), HarnessError> {
    let key = net.key(key_index)?;
    let eth = net.ledger(&key).await?;
    let mut device = crate::TestDevice::login(net.hub.connect().await?, key).await?;
    let (me, hub) = (device.address(), device.hub_address());
    eth.execute(&channel_core::ledger::LedgerOp::OpenChannel {
        partner: hub,
        total_deposit: deposit,
    })
    .await?;
    let id = eth.channel_identifier(me, hub).await?;
    device.track_channel(id, deposit)?;
    let view = eventually(
        Duration::from_secs(30),
        "the hub to see the channel",
        || async {
            Ok(device.hub_view().await.ok().filter(|v| {
                U256::try_from_be_slice(&v.device_deposit) == Some(deposit)
                    && U256::try_from_be_slice(&v.hub_deposit).unwrap_or(U256::ZERO) >= hub_deposit
            }))
        },
    )
    .await?;
    let hub_total = U256::try_from_be_slice(&view.hub_deposit).unwrap_or(U256::ZERO);
    if !hub_total.is_zero() {
        device.learn_hub_deposit(hub_total)?;
    }
    Ok((device, eth))
}
