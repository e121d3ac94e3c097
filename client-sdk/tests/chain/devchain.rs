//! A dev chain per test: anvil on a free loopback port with Raiden's TokenNetwork 0.50
//! deployed (`voltlane_eth::devnet::Devnet`, which installs anvil and the contracts into
//! `.devchain/` with `scripts/devchain.sh install` when missing; a test never skips), plus
//! what the SDK's chain seam needs from it: the hub's announcement and the device's access.

use std::time::Duration;

use voltlane_client::ledger::{ChainAccess, ChainDeployment, DeployedContracts};
use voltlane_client::{LocalSigner, U256};
use voltlane_eth::devnet::{quick_retry, Devnet};
use voltlane_eth::DeployParams;

/// Settlement window of the test deployment (chain seconds, skipped with evm_increaseTime).
pub const SETTLE_TIMEOUT: u64 = 100;
/// Tokens each dev key holds after deployment.
pub const TOKENS_PER_KEY: u64 = 1_000_000;

/// One anvil process with the contracts deployed, killed on drop.
#[derive(Debug)]
pub struct Devchain {
    pub net: Devnet,
}

impl std::ops::Deref for Devchain {
    type Target = Devnet;

    fn deref(&self) -> &Devnet {
        &self.net
    }
}

impl Devchain {
    pub async fn start() -> Self {
        let params = DeployParams {
            settle_timeout: SETTLE_TIMEOUT,
            dev_keys: 3,
            tokens_per_key: U256::from(TOKENS_PER_KEY),
            ..DeployParams::default()
        };
        Self {
            net: Devnet::start(&params).await.expect("start the dev chain"),
        }
    }

    pub fn key(&self, i: usize) -> LocalSigner {
        self.net.key(i).expect("dev key")
    }

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
        access.retry = quick_retry();
        access
    }
}
