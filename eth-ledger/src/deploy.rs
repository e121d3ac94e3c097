//! Dev-chain deployment: funds a few dev keys with ether (anvil's `anvil_setBalance`), deploys
//! CustomToken, SecretRegistry and TokenNetwork from the bytecode in `contracts.json`, mints
//! dev tokens to every key, and describes the result as a [`Deployment`] (the
//! `deployment.json` that `scripts/devchain.sh start` writes). Only for dev nodes: a real
//! chain's TokenNetwork is deployed by its operator.

use std::path::Path;
use std::time::Duration;

use channel_core::crypto::keccak256;
use channel_core::{Address, LocalSigner, Signer, H256, U256};
use serde::{Deserialize, Serialize};

use crate::abi::{encode, Param, Value};
use crate::artifacts::Artifacts;
use crate::bindings::{custom_token, token_network};
use crate::error::EthError;
use crate::fees::DEFAULT_MAX_FEE_PER_GAS;
use crate::node::Node;
use crate::rpc::RetryPolicy;
use crate::tx::{Caps, TxSender};
use crate::wire;

/// What to deploy and whom to fund.
#[derive(Clone, Debug)]
pub struct DeployParams {
    /// TokenNetwork's settlement window, seconds.
    pub settle_timeout: u64,
    /// How many dev keys to create and fund (the first one deploys).
    pub dev_keys: u8,
    /// Ether (wei) given to each dev key.
    pub eth_per_key: U256,
    /// Dev tokens minted to each dev key.
    pub tokens_per_key: U256,
}

impl Default for DeployParams {
    fn default() -> Self {
        Self {
            settle_timeout: 500,
            dev_keys: 4,
            eth_per_key: U256::from(1_000u64) * U256::from(10u64).pow(U256::from(18u64)),
            tokens_per_key: U256::from(1_000_000_000u64),
        }
    }
}

/// A funded dev key. Public test material: never use it on a real chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevKey {
    pub address: Address,
    pub private_key: H256,
}

impl DevKey {
    pub fn signer(&self) -> Result<LocalSigner, EthError> {
        LocalSigner::from_bytes(self.private_key.as_bytes())
            .map_err(|e| EthError::Config(format!("dev key {}: {e}", self.address)))
    }
}

/// Where the contracts are (`deployment.json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deployment {
    pub chain_id: u64,
    pub rpc_url: String,
    pub token: Address,
    pub secret_registry: Address,
    pub token_network: Address,
    pub settle_timeout: u64,
    /// Block of the TokenNetwork deployment: where an event cursor starts.
    pub deploy_block: u64,
    pub dev_keys: Vec<DevKey>,
}

impl Deployment {
    pub fn write(&self, path: &Path) -> Result<(), EthError> {
        let text = serde_json::to_string_pretty(self)
            .map_err(|e| EthError::Config(format!("encoding deployment: {e}")))?;
        let io = |source| EthError::Io {
            what: "writing deployment",
            path: path.display().to_string(),
            source,
        };
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text + "\n").map_err(io)?;
        std::fs::rename(&tmp, path).map_err(io)
    }

    pub fn read(path: &Path) -> Result<Self, EthError> {
        let text = std::fs::read_to_string(path).map_err(|source| EthError::Io {
            what: "reading deployment",
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text)
            .map_err(|e| EthError::Config(format!("{}: {e}", path.display())))
    }
}

/// Dev key `index`: keccak256 of a fixed label and the index (deterministic, public).
pub fn dev_key(index: u8) -> Result<LocalSigner, EthError> {
    let seed = keccak256(&[b"voltlane devchain key ".as_slice(), &[index]].concat());
    LocalSigner::from_bytes(seed.as_bytes())
        .map_err(|e| EthError::Config(format!("dev key {index}: {e}")))
}

/// Gives `who` `wei` ether on a dev node.
pub async fn fund_eth(node: &Node, who: Address, wei: U256) -> Result<(), EthError> {
    node.dev_request(
        "anvil_setBalance",
        serde_json::json!([wire::data_hex(&who.0), wire::quantity_u256(&wei)]),
    )
    .await
    .map(|_| ())
}

const DEPLOY_GAS_CAP: u64 = 15_000_000;

/// Constructor arguments, checked against the constructor's declared parameters.
fn constructor_args(
    contract: &'static str,
    params: &[Param],
    values: &[Value],
) -> Result<Vec<u8>, EthError> {
    let kinds: Vec<_> = params.iter().map(|p| p.kind).collect();
    encode(&kinds, values).map_err(|e| EthError::InvalidInput {
        step: contract,
        reason: format!("constructor arguments: {e}"),
    })
}

/// Deploys the three contracts on the dev node at `rpc_url`.
pub async fn deploy(
    rpc_url: &str,
    artifacts: &Artifacts,
    params: &DeployParams,
) -> Result<Deployment, EthError> {
    if params.dev_keys == 0 {
        return Err(EthError::Config("at least one dev key is needed".into()));
    }
    let node = Node::connect(rpc_url, RetryPolicy::default())?;
    let chain_id = node.chain_id().await?;
    let mut keys = Vec::new();
    for i in 0..params.dev_keys {
        let key = dev_key(i)?;
        fund_eth(&node, key.address(), params.eth_per_key).await?;
        keys.push(key);
    }
    let deployer = &keys[0];
    let caps = Caps {
        gas: DEPLOY_GAS_CAP,
        fee_per_gas: DEFAULT_MAX_FEE_PER_GAS,
    };
    let tx = TxSender::new(
        node.clone(),
        deployer.clone(),
        chain_id,
        caps,
        Duration::from_secs(60),
    );
    let create = |name: &'static str, code: &[u8], args: Vec<u8>| {
        let mut input = code.to_vec();
        input.extend_from_slice(&args);
        let tx = &tx;
        async move {
            let receipt = tx.send(name, None, input).await?;
            let address = receipt.contract_address.ok_or(EthError::Decode {
                step: name,
                what: "receipt",
                reason: "no contract address".into(),
            })?;
            Ok::<_, EthError>((address, receipt.block_number))
        }
    };

    let initial_supply = params
        .tokens_per_key
        .saturating_mul(U256::from(params.dev_keys));
    let (token, _) = create(
        "deploy CustomToken",
        &artifacts.custom_token.bytecode,
        constructor_args(
            "deploy CustomToken",
            custom_token::CONSTRUCTOR,
            &[
                initial_supply.max(U256::from(1u8)).into(),
                18u64.into(),
                Value::String("Voltlane Dev Token".into()),
                Value::String("VLT".into()),
            ],
        )?,
    )
    .await?;
    let (secret_registry, _) = create(
        "deploy SecretRegistry",
        &artifacts.secret_registry.bytecode,
        Vec::new(),
    )
    .await?;
    let unlimited = U256::MAX;
    let (token_network, deploy_block) = create(
        "deploy TokenNetwork",
        &artifacts.token_network.bytecode,
        constructor_args(
            "deploy TokenNetwork",
            token_network::CONSTRUCTOR,
            &[
                token.into(),
                secret_registry.into(),
                params.settle_timeout.into(),
                deployer.address().into(),
                unlimited.into(),
                unlimited.into(),
            ],
        )?,
    )
    .await?;

    // The initial supply went to the deployer; every other key gets its share minted.
    for key in keys.iter().skip(1) {
        let input = custom_token::MINT_FOR
            .encode_call(&[params.tokens_per_key.into(), key.address().into()])
            .map_err(|e| EthError::InvalidInput {
                step: "mintFor",
                reason: e.to_string(),
            })?;
        tx.send("mintFor", Some(token), input).await?;
    }

    Ok(Deployment {
        chain_id,
        rpc_url: rpc_url.to_string(),
        token,
        secret_registry,
        token_network,
        settle_timeout: params.settle_timeout,
        deploy_block,
        dev_keys: keys
            .iter()
            .map(|k| DevKey {
                address: k.address(),
                private_key: H256(k.to_bytes()),
            })
            .collect(),
    })
}
