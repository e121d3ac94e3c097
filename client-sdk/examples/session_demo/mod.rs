//! What the three metered-session examples (`ev_charging`, `door_lock`, `meter_data`) share:
//! connecting both devices of a demo to the hub with their own stores, funding their
//! channels from the dev faucet, tallying what the payer paid (and the hub's fees), and the
//! ending every demo has: both sides sign the receipt, it is printed, written to a file and
//! verified offline, and every figure is checked against the channel balances.
//!
//! Not an example itself (no `main.rs`): each example includes it with `mod session_demo;`.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use voltlane_client::session::{
    receipt_json, verify_receipt_json, PayeeHandle, PayerHandle, PayerUpdate, SignedSessionReceipt,
};
use voltlane_client::{Balances, Client, DeviceStore, U256};

/// A demo's error: anything that stops it, with a message for the terminal.
pub type DemoResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

/// How long a demo waits for something the hub or the other device does.
pub const WAIT: Duration = Duration::from_secs(30);

/// Logs warnings and errors unless `RUST_LOG` says otherwise.
pub fn init_tracing() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
}

/// One device of a demo: its client and a handle on its store (to read its records).
pub struct Device {
    pub name: &'static str,
    pub client: Client,
    pub store: DeviceStore,
}

impl Device {
    /// Connects with the key kept in the store at `path` (created on first use).
    pub async fn connect(name: &'static str, hub: &str, path: &str) -> DemoResult<Self> {
        let store = DeviceStore::open(path)?;
        let client = Client::connect_with_stored_key(hub, store.clone()).await?;
        println!("{name:<8} {} (store {path})", client.address());
        Ok(Self {
            name,
            client,
            store,
        })
    }

    fn balances(&self) -> DemoResult<Balances> {
        Ok(self.client.balances()?)
    }
}

/// Mints `amount` test tokens to `to` from the hub's dev faucet.
async fn faucet(
    by: &Client,
    to: voltlane_client::Address,
    amount: U256,
    who: &str,
) -> DemoResult<()> {
    by.mint_to(to, amount)
        .await
        .map_err(|e| format!("the dev faucet refused {amount} tokens for the {who}: {e}"))?;
    Ok(())
}

/// What the payer may need on top of `budget` for the hub's fees over at most `payments`
/// payments: the proportional fee on the whole budget plus the flat fee on each.
pub fn fee_allowance(payer: &Client, budget: U256, payments: u64) -> DemoResult<U256> {
    let fees = payer.mediation_info().fees;
    let proportional = fees.fee_for(budget)?;
    let flat = fees
        .flat
        .checked_mul(U256::from(payments))
        .ok_or("flat fee allowance overflows")?;
    Ok(proportional.saturating_add(flat))
}

/// Opens (or tops up) both channels: the payer can spend `payer_needs`, and the hub can
/// pay the payee `payee_capacity` (its auto-deposit matches the payee's deposit, so the payee
/// deposits that much and the hub gets the tokens to match it).
pub async fn fund(
    payee: &Device,
    payer: &Device,
    payee_capacity: U256,
    payer_needs: U256,
) -> DemoResult<()> {
    let hub = payer.client.hub_address();

    // The payer: enough spendable balance for the budget and the fees.
    let (deposit, spendable) = match payer.client.channel_id() {
        Some(_) => {
            let b = payer.balances()?;
            (b.our_deposit, b.our_spendable)
        }
        None => (U256::ZERO, U256::ZERO),
    };
    let top_up = payer_needs.saturating_sub(spendable);
    if !top_up.is_zero() {
        faucet(&payer.client, payer.client.address(), top_up, payer.name).await?;
        faucet(&payer.client, hub, top_up, "hub").await?;
    }
    let id = payer
        .client
        .open_channel(deposit.saturating_add(top_up))
        .await?;
    println!(
        "{:<8} channel {id}: spendable {}",
        payer.name,
        payer.balances()?.our_spendable
    );

    // The payee: the hub's side of its channel must hold what the session can pay it.
    let (deposit, capacity) = match payee.client.channel_id() {
        Some(_) => {
            let b = payee.balances()?;
            (b.our_deposit, b.hubs.saturating_sub(b.hub_locked))
        }
        None => (U256::ZERO, U256::ZERO),
    };
    let top_up = payee_capacity.saturating_sub(capacity);
    if !top_up.is_zero() {
        faucet(&payee.client, payee.client.address(), top_up, payee.name).await?;
        faucet(&payee.client, hub, top_up, "hub").await?;
    }
    let id = payee
        .client
        .open_channel(deposit.saturating_add(top_up))
        .await?;
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let b = payee.balances()?;
        let capacity = b.hubs.saturating_sub(b.hub_locked);
        if capacity >= payee_capacity {
            println!(
                "{:<8} channel {id}: the hub can pay it {capacity}",
                payee.name
            );
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(format!(
                "the hub can pay the {} only {capacity} of the {payee_capacity} the session \
                 needs: start the hub with --auto-deposit 1000000",
                payee.name
            )
            .into());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Both channels' balances at one moment.
#[derive(Clone)]
pub struct Snapshot {
    payee: Balances,
    payer: Balances,
}

impl Snapshot {
    pub fn take(payee: &Device, payer: &Device) -> DemoResult<Self> {
        Ok(Self {
            payee: payee.balances()?,
            payer: payer.balances()?,
        })
    }
}

fn print_balances(when: &str, payee: &Device, payer: &Device, s: &Snapshot) {
    println!("balances {when} (off-chain, in the channels with the hub):");
    for (d, b) in [(payer, &s.payer), (payee, &s.payee)] {
        println!(
            "  {:<8} owns {:>10} (locked {}), the hub {:>10}",
            d.name, b.ours, b.our_locked, b.hubs
        );
    }
}

/// What the payer's SDK reported paid, and the hub's fee on each payment, as it happened.
#[derive(Clone)]
pub struct Tally {
    totals: Arc<Mutex<(U256, U256)>>,
}

impl Tally {
    /// Starts counting the `Paid` updates of `session`, paid by `payer`.
    pub fn start(payer: &Client, session: &PayerHandle) -> Self {
        let fees = payer.mediation_info().fees;
        let totals = Arc::new(Mutex::new((U256::ZERO, U256::ZERO)));
        let mut updates = session.updates();
        let sink = totals.clone();
        tokio::spawn(async move {
            while let Ok(update) = updates.recv().await {
                if let PayerUpdate::Paid { amount, .. } = update {
                    let fee = fees.fee_for(amount).unwrap_or(U256::MAX);
                    if let Ok(mut t) = sink.lock() {
                        t.0 = t.0.saturating_add(amount);
                        t.1 = t.1.saturating_add(fee);
                    }
                }
            }
        });
        Self { totals }
    }

    /// `(paid, fees)` so far.
    fn totals(&self) -> (U256, U256) {
        self.totals.lock().map_or((U256::MAX, U256::MAX), |t| *t)
    }
}

/// How a demo ends its session.
pub struct Ending<'a> {
    pub payee: &'a Device,
    pub payer: &'a Device,
    pub payee_session: &'a PayeeHandle,
    pub payer_session: &'a PayerHandle,
    pub before: Snapshot,
    pub tally: Tally,
    pub receipt_out: &'a Path,
}

/// One figure that must agree with another.
fn check(failures: &mut Vec<String>, what: &str, got: U256, expected: U256) {
    let mark = if got == expected { "ok" } else { "MISMATCH" };
    println!("  {what:<52} {got:>10} (expected {expected:>10}) {mark}");
    if got != expected {
        failures.push(format!("{what}: {got}, expected {expected}"));
    }
}

impl Ending<'_> {
    /// Both sides finish and sign the receipt; prints it, writes it to `receipt_out`, reads
    /// it back and verifies it offline, then checks units × price = paid on both sides
    /// against the channel balances. Errors unless every figure adds up.
    pub async fn finish(self) -> DemoResult<SignedSessionReceipt> {
        let (a, b) = tokio::join!(
            self.payee_session.finish(WAIT),
            self.payer_session.finish(WAIT)
        );
        let (receipt, payer_receipt) = (a?, b?);
        if receipt != payer_receipt {
            return Err("the payee and the payer ended with different receipts".into());
        }
        let json = receipt_json(&receipt)?;
        println!("session receipt, signed by both:\n{json}");
        std::fs::write(self.receipt_out, &json)
            .map_err(|e| format!("cannot write {}: {e}", self.receipt_out.display()))?;
        let read_back = std::fs::read_to_string(self.receipt_out)
            .map_err(|e| format!("cannot read {}: {e}", self.receipt_out.display()))?;
        let verified = verify_receipt_json(&read_back)?;
        if verified != receipt {
            return Err("the receipt file does not hold the receipt written".into());
        }
        println!(
            "receipt written to {} and verified offline (`voltlane verify-receipt {}`)",
            self.receipt_out.display(),
            self.receipt_out.display()
        );

        // Completed payments are unlocked in the background: wait for both channels to
        // hold no lock before comparing balances.
        let deadline = tokio::time::Instant::now() + WAIT;
        let after = loop {
            let s = Snapshot::take(self.payee, self.payer)?;
            let settled = s.payer.our_locked.is_zero() && s.payee.hub_locked.is_zero();
            if settled || tokio::time::Instant::now() >= deadline {
                break s;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        print_balances("before", self.payee, self.payer, &self.before);
        print_balances("after", self.payee, self.payer, &after);

        let r = &receipt.receipt;
        let payee = self.payee_session.status().await;
        let payer = self.payer_session.status().await;
        let (tallied, fees) = self.tally.totals();
        let units = U256::from(r.total_units);
        let mut failures = Vec::new();
        println!(
            "figures ({} units at {} per unit):",
            r.total_units, r.price_per_unit
        );
        check(
            &mut failures,
            "receipt: units x price = total paid",
            r.total_paid,
            units.saturating_mul(r.price_per_unit),
        );
        check(
            &mut failures,
            "payee session: paid units",
            U256::from(payee.paid_units),
            units,
        );
        check(
            &mut failures,
            "payee session: paid amount",
            payee.paid_amount,
            r.total_paid,
        );
        check(
            &mut failures,
            "payer session: paid units",
            U256::from(payer.paid_units),
            units,
        );
        check(
            &mut failures,
            "payer session: paid amount",
            payer.paid_amount,
            r.total_paid,
        );
        check(
            &mut failures,
            "payer updates: sum of payments",
            tallied,
            r.total_paid,
        );
        check(
            &mut failures,
            "payee channel: gained",
            after.payee.ours.saturating_sub(self.before.payee.ours),
            r.total_paid,
        );
        check(
            &mut failures,
            "payer channel: spent (paid + hub fees)",
            self.before.payer.ours.saturating_sub(after.payer.ours),
            r.total_paid.saturating_add(fees),
        );
        if failures.is_empty() {
            println!("all figures add up");
            Ok(receipt)
        } else {
            Err(format!("figures do not add up: {}", failures.join("; ")).into())
        }
    }
}

/// The latest reading (and bill) the payee published in session `id`, from its store.
pub fn latest_publication(
    payee: &Device,
    id: channel_core::H256,
) -> DemoResult<Option<channel_core::session::Publication>> {
    Ok(payee.store.payee_session(&id)?.and_then(|r| r.latest))
}
