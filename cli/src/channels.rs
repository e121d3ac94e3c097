//! `channels list`, `channels show` and the operator's `deposit`.
//!
//! - `list` reads the ledger (`Ledger.ListChannels`): every channel of the hub (or of
//!   `--participant` with the hub), any phase, with deposits and withdraws. Any session may
//!   read it.
//! - `show` is the hub's off-chain view (`Channels.GetChannel`): balances, capacities and
//!   the latest nonces both ways. The hub shows a channel only to its device, so the caller's
//!   key (`--key`, or the key in `--store`) must be the device's.
//! - `deposit` is `Channels.OperatorDeposit`: the hub's own tokens into one of its channels;
//!   the hub accepts it only from its operator key.

use channel_core::ledger::{ChannelPhase, ChannelRecord};
use channel_core::primitives::{Address, U256};
use channel_core::LocalSigner;
use serde::Serialize;
use voltlane_client::DeviceStore;
use voltlane_proto::convert::{address, address_bytes, channel_phase, u256, u256_bytes};
use voltlane_proto::v1;

use crate::args::{ChannelRef, DepositArgs, Global};
use crate::connect::{read_key_file, HubConnection};
use crate::error::CliError;
use crate::ledger::phase_name;
use crate::output::{print, Render, Table};

/// One row of `channels list`.
#[derive(Debug, Serialize)]
pub struct ChannelListEntry {
    pub channel_id: String,
    pub phase: &'static str,
    /// The hub's partner in the channel.
    pub device: String,
    pub device_deposit: String,
    pub hub_deposit: String,
    pub device_withdraw: String,
    pub hub_withdraw: String,
}

/// `channels list`.
#[derive(Debug, Serialize)]
pub struct ChannelList {
    pub hub: String,
    pub channels: Vec<ChannelListEntry>,
}

impl Render for ChannelList {
    fn table(&self) -> Table {
        let mut t = Table::with_header(&[
            "CHANNEL",
            "PHASE",
            "DEVICE",
            "DEVICE_DEPOSIT",
            "HUB_DEPOSIT",
            "DEVICE_WITHDRAW",
            "HUB_WITHDRAW",
        ]);
        for c in &self.channels {
            t.push(vec![
                c.channel_id.clone(),
                c.phase.to_string(),
                c.device.clone(),
                c.device_deposit.clone(),
                c.hub_deposit.clone(),
                c.device_withdraw.clone(),
                c.hub_withdraw.clone(),
            ]);
        }
        t
    }
}

/// The row of `record` seen from `hub`, if the hub is one of its participants.
fn list_entry(record: &ChannelRecord, hub: Address) -> Option<ChannelListEntry> {
    let [a, b] = &record.participants;
    let (hub_side, device_side) = if a.address == hub {
        (a, b)
    } else if b.address == hub {
        (b, a)
    } else {
        return None;
    };
    Some(ChannelListEntry {
        channel_id: record.id.to_string(),
        phase: phase_name(record.phase),
        device: device_side.address.to_string(),
        device_deposit: device_side.total_deposit.to_string(),
        hub_deposit: hub_side.total_deposit.to_string(),
        device_withdraw: device_side.total_withdraw.to_string(),
        hub_withdraw: hub_side.total_withdraw.to_string(),
    })
}

async fn ledger_channels_of(
    hub: &HubConnection,
    participant: Address,
) -> Result<Vec<ChannelRecord>, CliError> {
    let reply = hub
        .ledger()
        .list_channels(v1::ListLedgerChannelsRequest {
            participant: address_bytes(&participant),
        })
        .await
        .map_err(|s| CliError::status(&s))?
        .into_inner();
    let mut records = reply
        .channels
        .into_iter()
        .map(ChannelRecord::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    records.sort_by_key(|r| r.id);
    Ok(records)
}

/// `voltlane channels list [--participant ADDR]`.
pub async fn list(global: &Global, participant: Option<Address>) -> Result<(), CliError> {
    let mut hub = HubConnection::connect(global).await?;
    hub.login_any(global).await?;
    let hub_address = hub.hub_address();
    let records = ledger_channels_of(&hub, participant.unwrap_or(hub_address)).await?;
    let view = ChannelList {
        hub: hub_address.to_string(),
        channels: records
            .iter()
            .filter_map(|r| list_entry(r, hub_address))
            .collect(),
    };
    print(&view, global.json)
}

/// The hub's view of one channel (`Channels.ChannelState`), decoded.
#[derive(Debug, Serialize)]
pub struct ChannelView {
    pub channel_id: String,
    pub phase: &'static str,
    pub device: String,
    pub hub: String,
    pub device_deposit: String,
    pub hub_deposit: String,
    pub device_withdraw: String,
    pub hub_withdraw: String,
    pub device_balance: String,
    pub hub_balance: String,
    pub device_capacity: String,
    pub hub_capacity: String,
    /// Nonce of the latest device proof the hub holds (0: none).
    pub device_nonce: u64,
    /// Total the device has paid the hub.
    pub device_transferred: String,
    /// Nonce of the latest hub proof (0: none).
    pub hub_nonce: u64,
    /// Total the hub has paid the device.
    pub hub_transferred: String,
}

impl Render for ChannelView {
    fn table(&self) -> Table {
        Table::fields()
            .field("channel_id", &self.channel_id)
            .field("phase", self.phase)
            .field("device", &self.device)
            .field("hub", &self.hub)
            .field("device_deposit", &self.device_deposit)
            .field("hub_deposit", &self.hub_deposit)
            .field("device_withdraw", &self.device_withdraw)
            .field("hub_withdraw", &self.hub_withdraw)
            .field("device_balance", &self.device_balance)
            .field("hub_balance", &self.hub_balance)
            .field("device_capacity", &self.device_capacity)
            .field("hub_capacity", &self.hub_capacity)
            .field("device_nonce", self.device_nonce)
            .field("device_transferred", &self.device_transferred)
            .field("hub_nonce", self.hub_nonce)
            .field("hub_transferred", &self.hub_transferred)
    }
}

/// Nonce and transferred amount of an optional proof (`(0, 0)` when absent).
fn proof_totals(
    field: &str,
    proof: &Option<v1::SignedBalanceProof>,
) -> Result<(u64, U256), CliError> {
    let Some(p) = proof.as_ref().and_then(|p| p.proof.as_ref()) else {
        return Ok((0, U256::ZERO));
    };
    let transferred = match &p.balance {
        Some(b) => u256(
            &format!("{field}.proof.balance.transferred_amount"),
            &b.transferred_amount,
        )?,
        None => U256::ZERO,
    };
    Ok((p.nonce, transferred))
}

impl TryFrom<&v1::ChannelState> for ChannelView {
    type Error = CliError;

    fn try_from(s: &v1::ChannelState) -> Result<Self, CliError> {
        let dec = |field: &str, bytes: &[u8]| u256(field, bytes).map(|v| v.to_string());
        let (device_nonce, device_transferred) = proof_totals("device_proof", &s.device_proof)?;
        let (hub_nonce, hub_transferred) = proof_totals("hub_proof", &s.hub_proof)?;
        Ok(Self {
            channel_id: dec("channel_id", &s.channel_id)?,
            phase: phase_name(channel_phase("phase", s.phase)?),
            device: address("device", &s.device)?.to_string(),
            hub: address("hub", &s.hub)?.to_string(),
            device_deposit: dec("device_deposit", &s.device_deposit)?,
            hub_deposit: dec("hub_deposit", &s.hub_deposit)?,
            device_withdraw: dec("device_withdraw", &s.device_withdraw)?,
            hub_withdraw: dec("hub_withdraw", &s.hub_withdraw)?,
            device_balance: dec("device_balance", &s.device_balance)?,
            hub_balance: dec("hub_balance", &s.hub_balance)?,
            device_capacity: dec("device_capacity", &s.device_capacity)?,
            hub_capacity: dec("hub_capacity", &s.hub_capacity)?,
            device_nonce,
            device_transferred: device_transferred.to_string(),
            hub_nonce,
            hub_transferred: hub_transferred.to_string(),
        })
    }
}

/// The caller's key for `show`: `--key`, else the key kept in `--store`.
fn caller_key(global: &Global) -> Result<LocalSigner, CliError> {
    if let Some(path) = &global.key {
        return read_key_file(path);
    }
    let Some(dir) = &global.store else {
        return Err(CliError::Usage(
            "channels show needs the device's key: give --key or --store".into(),
        ));
    };
    let store = DeviceStore::open(dir)
        .map_err(|e| CliError::Local(format!("--store {}: {e}", dir.display())))?;
    store
        .signer()
        .map_err(|e| CliError::Local(format!("--store {}: {e}", dir.display())))?
        .ok_or_else(|| CliError::Local(format!("--store {} holds no key", dir.display())))
}

/// The id of `device`'s channel with the hub: the open one, else the newest.
async fn channel_of(hub: &HubConnection, device: Address) -> Result<U256, CliError> {
    let records = ledger_channels_of(hub, device).await?;
    let with_hub: Vec<&ChannelRecord> = records
        .iter()
        .filter(|r| r.partner_of(device) == Some(hub.hub_address()))
        .collect();
    with_hub
        .iter()
        .find(|r| r.phase == ChannelPhase::Opened)
        .or_else(|| with_hub.last())
        .map(|r| r.id)
        .ok_or_else(|| CliError::Rejected {
            code: tonic::Code::NotFound,
            message: format!("{device} has no channel with the hub"),
        })
}

/// `voltlane channels show <id|address>`.
pub async fn show(global: &Global, channel: ChannelRef) -> Result<(), CliError> {
    let signer = caller_key(global)?;
    let mut hub = HubConnection::connect(global).await?;
    hub.login(&signer).await?;
    let id = match channel {
        ChannelRef::Id(id) => id,
        ChannelRef::Device(device) => channel_of(&hub, device).await?,
    };
    let state = hub
        .channels()
        .get_channel(v1::GetChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .map_err(|s| CliError::status(&s))?
        .into_inner();
    print(&ChannelView::try_from(&state)?, global.json)
}

/// `voltlane deposit <channel> <amount> [--total]` with the operator's `--key`.
pub async fn deposit(global: &Global, args: &DepositArgs) -> Result<(), CliError> {
    let Some(path) = &global.key else {
        return Err(CliError::Usage(
            "deposit needs the operator's key file: give --key (the hub's operator.key)".into(),
        ));
    };
    let signer = read_key_file(path)?;
    let mut hub = HubConnection::connect(global).await?;
    hub.login(&signer).await?;
    let amount = if args.total {
        v1::operator_deposit_request::Amount::TotalDeposit(u256_bytes(&args.amount))
    } else {
        v1::operator_deposit_request::Amount::Additional(u256_bytes(&args.amount))
    };
    let reply = hub
        .channels()
        .operator_deposit(v1::OperatorDepositRequest {
            channel_id: u256_bytes(&args.channel_id),
            amount: Some(amount),
        })
        .await
        .map_err(|s| CliError::status(&s))?
        .into_inner();
    let state = reply
        .channel
        .ok_or_else(|| CliError::malformed("OperatorDepositResponse.channel is missing"))?;
    print(&ChannelView::try_from(&state)?, global.json)
}

#[cfg(test)]
mod tests {
    use super::*;
    use channel_core::ledger::ParticipantRecord;

    #[test]
    fn list_rows_put_the_hub_on_its_side_whoever_opened() {
        let hub = Address([0xbb; 20]);
        let device = Address([0xdd; 20]);
        let mut opener = ParticipantRecord::new(device);
        opener.total_deposit = U256::from(700u32);
        let mut partner = ParticipantRecord::new(hub);
        partner.total_deposit = U256::from(300u32);
        partner.total_withdraw = U256::from(5u32);
        let record = ChannelRecord {
            id: U256::from(9u8),
            participants: [opener, partner],
            phase: ChannelPhase::Closed,
            opened_at: 1,
            closer: Some(device),
            closed_at: Some(2),
            settle_after: Some(5),
        };
        let row = list_entry(&record, hub).unwrap();
        assert_eq!(row.device, device.to_string());
        assert_eq!(row.device_deposit, "700");
        assert_eq!(row.hub_deposit, "300");
        assert_eq!(row.hub_withdraw, "5");
        assert_eq!(row.phase, "closed");
        assert!(list_entry(&record, Address([0x11; 20])).is_none());
    }
}
