//! The JSON behind the page (`GET /dashboard/state`) and how it is read: the hub's address and
//! ledger time, its channels as the book holds them, the payment rate, the last ledger events
//! and the sessions the relay holds. Amounts are decimal strings (they are 256-bit); counts
//! and sequence numbers are JSON numbers.

use channel_core::channel::{Channel, ChannelPhase};
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::session::MeterUnit;
use channel_core::U256;
use serde::Serialize;

use super::rate::RateHistory;
use super::DashboardError;
use crate::metrics::{Metrics, StateSource};
use crate::sessions::relay::SessionSnapshot;

/// Ledger events shown, newest last.
pub const RECENT_EVENTS: u64 = 20;

/// Everything the page shows.
#[derive(Clone, Debug, Serialize)]
pub struct DashboardState {
    pub hub_address: String,
    /// Ledger time, unix seconds.
    pub ledger_time: u64,
    /// Payments accepted on Pay streams since the hub started.
    pub total_payments: u64,
    /// Payments accepted per second, oldest first, one point per second sampled.
    pub payments_per_second: Vec<u64>,
    pub channels: Vec<ChannelRow>,
    /// The last [`RECENT_EVENTS`] ledger events, oldest first.
    pub events: Vec<EventRow>,
    pub sessions: Vec<SessionRow>,
}

/// One of the hub's channels, as the hub's book holds it.
#[derive(Clone, Debug, Serialize)]
pub struct ChannelRow {
    pub id: String,
    pub device: String,
    /// `open`, `cooperative_settling`, `closing`, `closed` or `settled`.
    pub phase: &'static str,
    pub device_deposit: String,
    pub hub_deposit: String,
    /// Off-chain balances: deposit, less withdrawn and sent, plus received.
    pub device_balance: String,
    pub hub_balance: String,
}

/// One ledger event.
#[derive(Clone, Debug, Serialize)]
pub struct EventRow {
    pub seq: u64,
    pub time: u64,
    pub kind: &'static str,
    /// The channel it concerns, if any.
    pub channel: Option<String>,
}

/// One relayed metered session.
#[derive(Clone, Debug, Serialize)]
pub struct SessionRow {
    pub id: String,
    pub payee: String,
    pub payer: Option<String>,
    pub unit: &'static str,
    pub price_per_unit: String,
    pub latest_seq: Option<u64>,
    pub latest_register: Option<u64>,
    /// Units metered since the first reading the hub relayed.
    pub units_metered: u64,
    /// `units_metered` at the session's price.
    pub amount_metered: String,
}

/// Reads the current state.
pub async fn collect(
    source: &StateSource,
    metrics: &Metrics,
    rate: &RateHistory,
) -> Result<DashboardState, DashboardError> {
    let ledger_time = source.ledger.now()?;
    let mut channels = Vec::new();
    for id in source.book.channel_ids()? {
        if let Some(shared) = source.book.get(&id)? {
            let ch = shared.lock().await.clone();
            channels.push(channel_row(&ch)?);
        }
    }
    let durable = source.ledger.durable_seq()?;
    let from = durable.saturating_sub(RECENT_EVENTS - 1).max(1);
    let (events, _live) = source.ledger.subscribe(from)?;
    let sessions = match &source.sessions {
        Some(relay) => relay.snapshot()?.iter().map(session_row).collect(),
        None => Vec::new(),
    };
    Ok(DashboardState {
        hub_address: source.book.operator_address().to_string(),
        ledger_time,
        total_payments: metrics.payments_accepted(),
        payments_per_second: rate.points()?,
        channels,
        events: events.iter().map(event_row).collect(),
        sessions,
    })
}

fn channel_row(ch: &Channel) -> Result<ChannelRow, DashboardError> {
    let balance = |r: Result<U256, _>| {
        r.map(|b: U256| b.to_string())
            .map_err(|source| DashboardError::Balance {
                id: ch.id(),
                source,
            })
    };
    Ok(ChannelRow {
        id: ch.id().to_string(),
        device: ch.partner_address().to_string(),
        phase: phase_name(ch.phase()),
        device_deposit: ch.partner().total_deposit.to_string(),
        hub_deposit: ch.our().total_deposit.to_string(),
        device_balance: balance(ch.partner_balance())?,
        hub_balance: balance(ch.our_balance())?,
    })
}

fn phase_name(phase: ChannelPhase) -> &'static str {
    match phase {
        ChannelPhase::Open => "open",
        ChannelPhase::CooperativeSettling { .. } => "cooperative_settling",
        ChannelPhase::Closing => "closing",
        ChannelPhase::Closed { .. } => "closed",
        ChannelPhase::Settled => "settled",
    }
}

fn event_row(e: &LedgerEvent) -> EventRow {
    use LedgerEventKind as K;
    let kind = match &e.kind {
        K::Minted { .. } => "minted",
        K::ChannelOpened { .. } => "channel_opened",
        K::Deposit { .. } => "deposit",
        K::Withdraw { .. } => "withdraw",
        K::ChannelClosed { .. } => "channel_closed",
        K::NonClosingBalanceProofUpdated { .. } => "balance_proof_updated",
        K::ChannelSettled { .. } => "channel_settled",
        K::SecretRegistered { .. } => "secret_registered",
        K::ChannelUnlocked { .. } => "channel_unlocked",
    };
    EventRow {
        seq: e.seq,
        time: e.time,
        kind,
        channel: e.kind.channel_id().map(|id| id.to_string()),
    }
}

fn unit_name(unit: MeterUnit) -> &'static str {
    match unit {
        MeterUnit::WattHour => "Wh",
        MeterUnit::SecondOfAccess => "s",
        MeterUnit::Reading => "reading",
    }
}

fn session_row(s: &SessionSnapshot) -> SessionRow {
    SessionRow {
        id: s.id.to_string(),
        payee: s.payee.to_string(),
        payer: s.payer.map(|p| p.to_string()),
        unit: unit_name(s.unit),
        price_per_unit: s.price_per_unit.to_string(),
        latest_seq: s.latest.map(|(seq, _)| seq),
        latest_register: s.latest.map(|(_, register)| register),
        units_metered: s.units_metered,
        amount_metered: s
            .price_per_unit
            .saturating_mul(U256::from(s.units_metered))
            .to_string(),
    }
}
