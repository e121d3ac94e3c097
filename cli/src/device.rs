//! The device commands, through the SDK (`voltlane_client::Client`) with a local store
//! (`--store <dir>`): `open`, `pay`, `close`, `settle`, `export-proofs`; plus `login` and
//! `mint`, which only need the device's key. The key is `--key`, or else the one kept in the
//! store (created there on first use). The rules stay in the SDK and `channel-core`: a
//! command the device's own channel refuses (e.g. paying more than it holds) fails locally,
//! before anything is signed or sent (exit 1).

use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::primitives::U256;
use channel_core::LocalSigner;
use serde::Serialize;
use voltlane_client::{Balances, Client, DeviceStore, ExportedProof, ExportedProofs, Settlement};
use voltlane_proto::convert::{address_bytes, u256, u256_bytes};
use voltlane_proto::v1;

use crate::args::Global;
use crate::connect::{connect_options, read_key_file, HubConnection};
use crate::error::CliError;
use crate::output::{print, Render, Table};

fn store_dir(global: &Global, command: &str) -> Result<std::path::PathBuf, CliError> {
    global.store.clone().ok_or_else(|| {
        CliError::Usage(format!(
            "{command} needs the device store: give --store <dir>"
        ))
    })
}

fn open_store(dir: &std::path::Path) -> Result<DeviceStore, CliError> {
    DeviceStore::open(dir).map_err(|e| CliError::Local(format!("--store {}: {e}", dir.display())))
}

/// `--key`, else the store's key (created on first use).
async fn device_key(global: &Global, command: &str) -> Result<LocalSigner, CliError> {
    if let Some(path) = &global.key {
        return read_key_file(path);
    }
    let dir = global.store.as_ref().ok_or_else(|| {
        CliError::Usage(format!(
            "{command} needs the device's key: give --key or --store"
        ))
    })?;
    open_store(dir)?
        .load_or_create_signer()
        .await
        .map_err(|e| CliError::Local(format!("--store {}: {e}", dir.display())))
}

/// Connects the SDK client of `--store` (authenticated, background tasks running).
async fn client(global: &Global, command: &str) -> Result<Client, CliError> {
    let options = connect_options(global)?;
    let dir = store_dir(global, command)?;
    let store = open_store(&dir)?;
    let signer = match &global.key {
        Some(path) => read_key_file(path)?,
        None => store
            .load_or_create_signer()
            .await
            .map_err(|e| CliError::Local(format!("--store {}: {e}", dir.display())))?,
    };
    Ok(Client::connect_with(&global.hub, signer, store, &options).await?)
}

/// `login`'s result.
#[derive(Debug, Serialize)]
pub struct LoginView {
    pub address: String,
    pub hub_address: String,
    pub session_expires_at: u64,
}

impl Render for LoginView {
    fn table(&self) -> Table {
        Table::fields()
            .field("address", &self.address)
            .field("hub_address", &self.hub_address)
            .field("session_expires_at", self.session_expires_at)
    }
}

/// `voltlane login`: authenticates with the key and prints its address.
pub async fn login(global: &Global) -> Result<(), CliError> {
    let signer = device_key(global, "login").await?;
    let mut hub = HubConnection::connect(global).await?;
    let session = hub.login(&signer).await?;
    let view = LoginView {
        address: session.address.to_string(),
        hub_address: hub.hub_address().to_string(),
        session_expires_at: session.expires_at_unix,
    };
    print(&view, global.json)
}

/// `mint`'s result.
#[derive(Debug, Serialize)]
pub struct MintView {
    pub address: String,
    pub minted: String,
    pub token_balance: String,
}

impl Render for MintView {
    fn table(&self) -> Table {
        Table::fields()
            .field("address", &self.address)
            .field("minted", &self.minted)
            .field("token_balance", &self.token_balance)
    }
}

/// `voltlane mint <amount>`: dev-faucet tokens to the device's ledger account.
pub async fn mint(global: &Global, amount: U256) -> Result<(), CliError> {
    let signer = device_key(global, "mint").await?;
    let me = signer.address();
    let mut hub = HubConnection::connect(global).await?;
    hub.login(&signer).await?;
    hub.ledger()
        .mint(v1::MintRequest {
            to: address_bytes(&me),
            amount: u256_bytes(&amount),
        })
        .await
        .map_err(|s| CliError::status(&s))?;
    let balance = hub
        .ledger()
        .get_token_balance(v1::GetTokenBalanceRequest {
            address: address_bytes(&me),
        })
        .await
        .map_err(|s| CliError::status(&s))?
        .into_inner();
    let view = MintView {
        address: me.to_string(),
        minted: amount.to_string(),
        token_balance: u256("balance", &balance.balance)?.to_string(),
    };
    print(&view, global.json)
}

/// The channel as the device sees it (after `open`).
#[derive(Debug, Serialize)]
pub struct BalancesView {
    pub channel_id: String,
    pub phase: &'static str,
    pub device: String,
    pub hub: String,
    pub device_balance: String,
    pub hub_balance: String,
    pub device_spendable: String,
    pub device_deposit: String,
    pub hub_deposit: String,
    pub device_transferred: String,
    pub hub_transferred: String,
    pub device_nonce: u64,
    pub hub_nonce: u64,
}

impl From<&Balances> for BalancesView {
    fn from(b: &Balances) -> Self {
        Self {
            channel_id: b.channel_id.to_string(),
            phase: b.phase,
            device: b.device.to_string(),
            hub: b.hub.to_string(),
            device_balance: b.ours.to_string(),
            hub_balance: b.hubs.to_string(),
            device_spendable: b.our_spendable.to_string(),
            device_deposit: b.our_deposit.to_string(),
            hub_deposit: b.hub_deposit.to_string(),
            device_transferred: b.our_transferred.to_string(),
            hub_transferred: b.hub_transferred.to_string(),
            device_nonce: b.our_nonce,
            hub_nonce: b.hub_nonce,
        }
    }
}

impl Render for BalancesView {
    fn table(&self) -> Table {
        Table::fields()
            .field("channel_id", &self.channel_id)
            .field("phase", self.phase)
            .field("device", &self.device)
            .field("hub", &self.hub)
            .field("device_balance", &self.device_balance)
            .field("hub_balance", &self.hub_balance)
            .field("device_spendable", &self.device_spendable)
            .field("device_deposit", &self.device_deposit)
            .field("hub_deposit", &self.hub_deposit)
            .field("device_transferred", &self.device_transferred)
            .field("hub_transferred", &self.hub_transferred)
            .field("device_nonce", self.device_nonce)
            .field("hub_nonce", self.hub_nonce)
    }
}

/// `voltlane open <deposit>`.
pub async fn open(global: &Global, deposit: U256) -> Result<(), CliError> {
    let client = client(global, "open").await?;
    client.open_channel(deposit).await?;
    print(&BalancesView::from(&client.balances()?), global.json)
}

/// `pay`'s result: the acknowledged payment.
#[derive(Debug, Serialize)]
pub struct PaymentView {
    pub channel_id: String,
    pub nonce: u64,
    pub amount: String,
    /// Total the device has paid the hub in the channel, this payment included.
    pub transferred_amount: String,
}

impl Render for PaymentView {
    fn table(&self) -> Table {
        Table::fields()
            .field("channel_id", &self.channel_id)
            .field("nonce", self.nonce)
            .field("amount", &self.amount)
            .field("transferred_amount", &self.transferred_amount)
    }
}

/// `voltlane pay <amount>`: resolves once the hub acknowledged it.
pub async fn pay(global: &Global, amount: U256) -> Result<(), CliError> {
    let client = client(global, "pay").await?;
    let receipt = client.pay(amount).await?;
    let view = PaymentView {
        channel_id: client
            .channel_id()
            .map_or_else(String::new, |id| id.to_string()),
        nonce: receipt.nonce,
        amount: receipt.amount.to_string(),
        transferred_amount: receipt.transferred_amount.to_string(),
    };
    print(&view, global.json)
}

/// What the ledger paid each side.
#[derive(Debug, Serialize)]
pub struct SettlementView {
    pub channel_id: String,
    /// `false` when someone else (e.g. the hub) had settled already.
    pub settled_now: bool,
    pub device_amount: Option<String>,
    pub hub_amount: Option<String>,
}

impl SettlementView {
    fn new(channel_id: Option<U256>, s: Option<Settlement>) -> Self {
        Self {
            channel_id: s
                .map(|s| s.channel_id)
                .or(channel_id)
                .map_or_else(String::new, |id| id.to_string()),
            settled_now: s.is_some(),
            device_amount: s.map(|s| s.device_amount.to_string()),
            hub_amount: s.map(|s| s.hub_amount.to_string()),
        }
    }
}

impl Render for SettlementView {
    fn table(&self) -> Table {
        let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "-".into());
        Table::fields()
            .field("channel_id", &self.channel_id)
            .field("settled_now", self.settled_now)
            .field("device_amount", or_dash(&self.device_amount))
            .field("hub_amount", or_dash(&self.hub_amount))
    }
}

/// A unilateral close on the ledger.
#[derive(Debug, Serialize)]
pub struct ClosedView {
    pub channel_id: String,
    /// Ledger time after which `settle` succeeds.
    pub settle_after: u64,
}

impl Render for ClosedView {
    fn table(&self) -> Table {
        Table::fields()
            .field("channel_id", &self.channel_id)
            .field("settle_after", self.settle_after)
    }
}

/// `voltlane close [--unilateral]`.
pub async fn close(global: &Global, unilateral: bool) -> Result<(), CliError> {
    let client = client(global, "close").await?;
    if unilateral {
        let settle_after = client.close().await?;
        let view = ClosedView {
            channel_id: client
                .channel_id()
                .map_or_else(String::new, |id| id.to_string()),
            settle_after,
        };
        print(&view, global.json)
    } else {
        // The SDK first brings the channel's deposits up to the ledger's record.
        let settlement = client.cooperative_close().await?;
        print(&SettlementView::new(None, Some(settlement)), global.json)
    }
}

/// `voltlane settle`: waits out the settlement window, then settles.
pub async fn settle(global: &Global) -> Result<(), CliError> {
    let limit = global.timeout();
    let client = tokio::time::timeout(limit, client(global, "settle"))
        .await
        .map_err(|_| CliError::timed_out(limit))??;
    let limit = limit + Duration::from_secs(client.settlement_timeout());
    let settlement = tokio::time::timeout(limit, client.settle())
        .await
        .map_err(|_| CliError::timed_out(limit))??;
    print(
        &SettlementView::new(client.channel_id(), settlement),
        global.json,
    )
}

/// `export-proofs`: the SDK's export, as JSON or a table of both directions.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct ProofsView(ExportedProofs);

impl Render for ProofsView {
    fn table(&self) -> Table {
        let mut t = Table::with_header(&[
            "DIRECTION",
            "NONCE",
            "TRANSFERRED",
            "LOCKED",
            "SIGNER",
            "SIGNATURE",
        ]);
        let rows: [(&str, &Option<ExportedProof>); 2] = [
            ("device_to_hub", &self.0.device_to_hub),
            ("hub_to_device", &self.0.hub_to_device),
        ];
        for (direction, proof) in rows {
            if let Some(p) = proof {
                t.push(vec![
                    direction.to_string(),
                    p.nonce.clone(),
                    p.transferred_amount.clone(),
                    p.locked_amount.clone(),
                    p.signer.clone(),
                    p.signature.clone(),
                ]);
            }
        }
        t
    }
}

/// `voltlane export-proofs`.
pub async fn export_proofs(global: &Global) -> Result<(), CliError> {
    let client = client(global, "export-proofs").await?;
    let channel = client.channel()?.ok_or(CliError::Local(
        "no channel in the store yet: open one first".into(),
    ))?;
    let proofs = ExportedProofs::new(&channel)?;
    print(&ProofsView(proofs), global.json)
}
