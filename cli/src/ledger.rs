//! `ledger show <channel id>`: the embedded ledger's record of one channel
//! (`Ledger.GetChannel`): phase, times, both participants' deposits, withdraws and submitted
//! balance proofs. Any session may read the ledger, so without `--key` the CLI logs in with
//! a throwaway key. [`LedgerChannelView`] is shared with `channels list`.

use channel_core::ledger::{ChannelPhase, ChannelRecord, ParticipantRecord};
use channel_core::primitives::U256;
use serde::Serialize;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

use crate::args::Global;
use crate::connect::HubConnection;
use crate::error::CliError;
use crate::output::{print, Render, Table};

/// The ledger phase as the CLI names it: `opened`, `closed` or `settled`.
pub fn phase_name(phase: ChannelPhase) -> &'static str {
    match phase {
        ChannelPhase::Opened => "opened",
        ChannelPhase::Closed => "closed",
        ChannelPhase::Settled => "settled",
    }
}

/// One participant of a ledger channel.
#[derive(Debug, Serialize)]
pub struct ParticipantView {
    pub address: String,
    pub total_deposit: String,
    pub total_withdraw: String,
    /// The participant's balance proof submitted at close or update, as the ledger keeps it
    /// (nonce and balance hash, like the contract); `null` until then.
    pub submitted_nonce: Option<u64>,
    pub submitted_balance_hash: Option<String>,
}

impl From<&ParticipantRecord> for ParticipantView {
    fn from(p: &ParticipantRecord) -> Self {
        Self {
            address: p.address.to_string(),
            total_deposit: p.total_deposit.to_string(),
            total_withdraw: p.total_withdraw.to_string(),
            submitted_nonce: p.balance.as_ref().map(|b| b.nonce),
            submitted_balance_hash: p.balance.as_ref().map(|b| b.balance_hash.to_string()),
        }
    }
}

/// A ledger channel.
#[derive(Debug, Serialize)]
pub struct LedgerChannelView {
    pub channel_id: String,
    pub phase: &'static str,
    pub opened_at: u64,
    pub closer: Option<String>,
    pub closed_at: Option<u64>,
    pub settle_after: Option<u64>,
    /// `[0]` the opener, `[1]` its partner.
    pub participants: Vec<ParticipantView>,
}

impl From<&ChannelRecord> for LedgerChannelView {
    fn from(r: &ChannelRecord) -> Self {
        Self {
            channel_id: r.id.to_string(),
            phase: phase_name(r.phase),
            opened_at: r.opened_at,
            closer: r.closer.map(|a| a.to_string()),
            closed_at: r.closed_at,
            settle_after: r.settle_after,
            participants: r.participants.iter().map(ParticipantView::from).collect(),
        }
    }
}

fn or_dash<T: ToString>(v: &Option<T>) -> String {
    v.as_ref().map_or_else(|| "-".to_string(), T::to_string)
}

impl Render for LedgerChannelView {
    fn table(&self) -> Table {
        let mut t = Table::fields()
            .field("channel_id", &self.channel_id)
            .field("phase", self.phase)
            .field("opened_at", self.opened_at)
            .field("closer", or_dash(&self.closer))
            .field("closed_at", or_dash(&self.closed_at))
            .field("settle_after", or_dash(&self.settle_after));
        for (i, p) in self.participants.iter().enumerate() {
            let role = if i == 0 { "opener" } else { "partner" };
            t = t
                .field(role, &p.address)
                .field(&format!("{role}.total_deposit"), &p.total_deposit)
                .field(&format!("{role}.total_withdraw"), &p.total_withdraw)
                .field(
                    &format!("{role}.submitted_nonce"),
                    or_dash(&p.submitted_nonce),
                )
                .field(
                    &format!("{role}.submitted_balance_hash"),
                    or_dash(&p.submitted_balance_hash),
                );
        }
        t
    }
}

/// `Ledger.GetChannel` on an open connection with a session.
pub async fn fetch(hub: &HubConnection, id: U256) -> Result<ChannelRecord, CliError> {
    let reply = hub
        .ledger()
        .get_channel(v1::GetLedgerChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .map_err(|s| CliError::status(&s))?
        .into_inner();
    Ok(ChannelRecord::try_from(reply)?)
}

/// `voltlane ledger show <channel id>`.
pub async fn show(global: &Global, id: U256) -> Result<(), CliError> {
    let mut hub = HubConnection::connect(global).await?;
    hub.login_any(global).await?;
    let record = fetch(&hub, id).await?;
    print(&LedgerChannelView::from(&record), global.json)
}
