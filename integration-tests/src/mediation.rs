//! What the mediated-payment test files share: a hub started with mediation settings
//! ([`MediationSetup`]), devices whose channel the hub has matched by auto-deposit
//! ([`matched_device`]), the hub's view of one device channel as a value to compare before
//! and after a refused input ([`ChannelSnapshot`]), and bounded waits for the next message
//! of a stream or for a ledger time.
//!
//! Call order: [`MediationSetup::start`], then [`matched_device`] per device; the waits and
//! snapshots at any time after. Every wait is bounded by the limit its caller gives.

use std::time::{Duration, Instant};

use channel_core::crypto::{LocalSigner, Signer};
use channel_core::{Secret, H256, U256};
use futures::StreamExt;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use crate::device::device_nonce;
use crate::error::HarnessError;
use crate::{HubOptions, HubProcess, Operator, PayAck, PaySession, TestDevice};

/// Pause between polls of the hub or the ledger.
const POLL: Duration = Duration::from_millis(50);
/// Tokens the operator mints for itself at start (what auto-deposit draws on).
const OPERATOR_TOKENS: u64 = 10_000_000;

/// How to start a mediating hub.
#[derive(Clone, Debug)]
pub struct MediationSetup {
    /// `--mediation-fee-flat`.
    pub fee_flat: u64,
    /// `--mediation-fee-ppm`.
    pub fee_ppm: u64,
    /// `--reveal-timeout-secs`.
    pub reveal_timeout: u64,
    /// `--settlement-window-secs` (more than twice the reveal timeout; every lock expires
    /// within it).
    pub settlement_window: u64,
    /// `--auto-deposit`: the most the hub puts into one device channel.
    pub auto_deposit: u64,
    /// Further environment of the hub process (fail points).
    pub env: Vec<(String, String)>,
}

impl MediationSetup {
    /// The hub's options for this setup.
    pub fn options(&self) -> HubOptions {
        HubOptions {
            extra_args: vec![
                "--auto-deposit".into(),
                self.auto_deposit.to_string(),
                "--mediation-fee-flat".into(),
                self.fee_flat.to_string(),
                "--mediation-fee-ppm".into(),
                self.fee_ppm.to_string(),
                "--reveal-timeout-secs".into(),
                self.reveal_timeout.to_string(),
            ],
            settlement_window_secs: self.settlement_window,
            env: self.env.clone(),
            ..HubOptions::default()
        }
    }

    /// Starts the hub and mints the operator the tokens its auto-deposits draw on.
    pub async fn start(&self) -> Result<HubProcess, HarnessError> {
        let hub = HubProcess::start(self.options()).await?;
        let operator_key = hub.operator_key()?;
        let operator = Operator::login(hub.connect().await?, operator_key.clone()).await?;
        operator
            .ledger()
            .mint(v1::MintRequest {
                to: address_bytes(&operator_key.address()),
                amount: u256_bytes(&U256::from(OPERATOR_TOKENS)),
            })
            .await?;
        Ok(hub)
    }

    /// The hub's fee for forwarding `amount`: flat + ppm rounded up.
    pub fn fee(&self, amount: u64) -> u64 {
        self.fee_flat + (amount * self.fee_ppm).div_ceil(1_000_000)
    }

    /// What a payer locks so that the payee receives `amount`.
    pub fn lock_amount(&self, amount: u64) -> u64 {
        amount + self.fee(amount)
    }

    /// The earliest lock expiration the hub forwards at ledger time `now` (the outgoing lock,
    /// one reveal timeout earlier, must outlive another reveal timeout), plus `margin`.
    pub fn lock_expiration(&self, now: u64, margin: u64) -> u64 {
        now + 2 * self.reveal_timeout + 1 + margin
    }
}

/// A test key: 32 bytes of `seed` ending in `n`.
pub fn test_key(seed: u8, n: u8) -> Result<LocalSigner, HarnessError> {
    let mut b = [seed; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).map_err(|e| HarnessError::Channel(e.to_string()))
}

/// A payee's secret: 32 bytes of `seed` starting with `n`.
pub fn test_secret(seed: u8, n: u64) -> Secret {
    let mut b = [seed; 32];
    b[..8].copy_from_slice(&n.to_be_bytes());
    Secret(H256(b))
}

/// Logs `key` in, opens a channel with `deposit` and waits (at most `limit`) until the hub
/// has matched it with `hub_deposit`, which the device then records.
pub async fn matched_device(
    hub: &HubProcess,
    key: LocalSigner,
    deposit: u64,
    hub_deposit: u64,
    limit: Duration,
) -> Result<TestDevice, HarnessError> {
    let mut d = TestDevice::login(hub.connect().await?, key).await?;
    d.open_channel(U256::from(deposit)).await?;
    let started = Instant::now();
    loop {
        let view = d.hub_view().await?;
        if uint(&view.hub_deposit)? == U256::from(hub_deposit) {
            d.learn_hub_deposit(U256::from(hub_deposit))?;
            return Ok(d);
        }
        if started.elapsed() >= limit {
            return Err(HarnessError::Timeout {
                what: format!("the hub to deposit {hub_deposit} into the device's channel"),
                after: started.elapsed(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The hub's view of one device channel (`Channels.GetChannel`): the nonces both ways, what
/// each side owns (locks included) and what each can still send (locks excluded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChannelSnapshot {
    /// Latest device proof the hub holds.
    pub device_nonce: u64,
    /// Latest hub proof the hub signed.
    pub hub_nonce: u64,
    pub device_balance: U256,
    pub hub_balance: U256,
    pub device_capacity: U256,
    pub hub_capacity: U256,
}

impl ChannelSnapshot {
    /// The hub's view of `device`'s channel now.
    pub async fn of(device: &TestDevice) -> Result<Self, HarnessError> {
        let v = device.hub_view().await?;
        Ok(Self {
            device_nonce: device_nonce(&v),
            hub_nonce: v
                .hub_proof
                .as_ref()
                .and_then(|p| p.proof.as_ref())
                .map_or(0, |p| p.nonce),
            device_balance: uint(&v.device_balance)?,
            hub_balance: uint(&v.hub_balance)?,
            device_capacity: uint(&v.device_capacity)?,
            hub_capacity: uint(&v.hub_capacity)?,
        })
    }

    /// What the device's own record says the hub's view must be: the same nonces, balances
    /// and capacities seen from the device's side.
    pub fn of_device_record(device: &TestDevice) -> Result<Self, HarnessError> {
        let ch = device.channel()?;
        let err = |e: channel_core::channel::ChannelError| HarnessError::Channel(e.to_string());
        Ok(Self {
            device_nonce: ch.our().nonce(),
            hub_nonce: ch.partner().nonce(),
            device_balance: ch.our_balance().map_err(err)?,
            hub_balance: ch.partner_balance().map_err(err)?,
            device_capacity: ch.our_distributable().map_err(err)?,
            hub_capacity: ch.partner_distributable().map_err(err)?,
        })
    }
}

/// A big-endian uint256 field.
pub fn uint(bytes: &[u8]) -> Result<U256, HarnessError> {
    U256::try_from_be_slice(bytes)
        .ok_or_else(|| HarnessError::Protocol(format!("{} bytes are not a uint256", bytes.len())))
}

/// The next message of a stream, within `limit`; an ended stream or a status is an error.
pub async fn next_item<T>(
    stream: &mut tonic::Streaming<T>,
    what: &str,
    limit: Duration,
) -> Result<T, HarnessError> {
    match crate::within(limit, what, stream.next()).await? {
        Some(item) => Ok(item?),
        None => Err(HarnessError::Protocol(format!("{what}: the stream ended"))),
    }
}

/// The next answer on a `Pay` stream, within `limit`.
pub async fn next_ack(session: &mut PaySession, limit: Duration) -> Result<PayAck, HarnessError> {
    crate::within(limit, "a PaymentAck", session.next_ack())
        .await??
        .ok_or_else(|| HarnessError::Protocol("the Pay stream ended".into()))
}

/// Polls `Ledger.GetTime` until the ledger's time is at least `t`; returns it.
pub async fn wait_ledger_time(
    device: &TestDevice,
    t: u64,
    limit: Duration,
) -> Result<u64, HarnessError> {
    let started = Instant::now();
    loop {
        let now = device.ledger_now().await?;
        if now >= t {
            return Ok(now);
        }
        if started.elapsed() >= limit {
            return Err(HarnessError::Timeout {
                what: format!("ledger time {t} (it is {now})"),
                after: started.elapsed(),
            });
        }
        tokio::time::sleep(POLL).await;
    }
}
