//! An EV charging session metered and paid per Wh: a charger (the payee, a device of its
//! own) meters a simulated 11 kW session and signs every reading with its meter's key; a car
//! (the payer) checks each signed reading and pays for exactly the Wh it shows, through the
//! hub. The charger delivers at most its credit window ahead of payment; the car stops paying
//! at its budget, and the charger then stops within the window (OCPP stoppedReason
//! `LocalOutOfCredit`). Both sign the receipt, which is printed, written to a file and
//! verified offline; the demo ends with an OCPP-style transaction summary and exits 0 only if
//! every figure adds up.
//!
//! Time is compressed (`--speedup`, default 120: one real second is two minutes of charging),
//! so the offer declares the charger's maximum power times the speedup as its maximum rate:
//! the car's SDK checks readings against wall-clock timestamps.
//!
//! Start a hub that matches device deposits (the charger needs the hub's capacity toward
//! it), then run the example:
//! `cargo run -p voltlane-hub -- --auto-deposit 1000000`
//! `cargo run -p voltlane-client --example ev_charging -- --hub http://127.0.0.1:50051`

mod session_demo;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use channel_core::session::{MeterUnit, PayerLimits, SessionError, StopReason};
use channel_core::Signer;
use clap::Parser;
use session_demo::{
    fee_allowance, fund, latest_publication, DemoResult, Device, Ending, Snapshot, Tally,
};
use voltlane_client::session::{Delivery, PayerHandle, PayerUpdate, SessionTerms};
use voltlane_client::{LocalSigner, U256};

#[derive(Parser, Debug)]
#[command(about = "A car pays a charger per metered Wh in a metered session")]
struct Args {
    /// The hub's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    hub: String,
    /// Where the charger keeps its key, channel and session.
    #[arg(long, default_value = "./charger-data")]
    charger_store: String,
    /// Where the car keeps its key, channel and session.
    #[arg(long, default_value = "./car-data")]
    car_store: String,
    /// Where the receipt JSON is written.
    #[arg(long, default_value = "./ev_charging-receipt.json")]
    receipt_out: PathBuf,
    /// Price in token units per Wh.
    #[arg(long, default_value_t = 2)]
    price_per_wh: u64,
    /// Wh the charger delivers ahead of payment, at most.
    #[arg(long, default_value_t = 500)]
    credit_window_wh: u64,
    /// The most the car pays in this session, token units.
    #[arg(long, default_value_t = 6_000)]
    budget: u64,
    /// The power the car draws, W.
    #[arg(long, default_value_t = 11_000)]
    power_w: u64,
    /// The charger's maximum power, W (the offer's maximum rate, before the speedup).
    #[arg(long, default_value_t = 22_000)]
    max_power_w: u64,
    /// Simulated seconds per real second.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    speedup: u64,
    /// Real milliseconds between meter readings.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(100..=10_000))]
    tick_ms: u64,
    /// Real seconds the charger waits for a payment once its credit window is used up.
    #[arg(long, default_value_t = 4)]
    credit_wait_secs: u64,
    /// The meter's register at the start, Wh (OCPP meterStart).
    #[arg(long, default_value_t = 1_234_000)]
    meter_start: u64,
    /// Real seconds after which the charger ends the session anyway (TimeLimitReached).
    #[arg(long, default_value_t = 120)]
    max_secs: u64,
}

/// Integer Wh as kWh with three decimals.
fn kwh(wh: u64) -> String {
    format!("{}.{:03}", wh / 1000, wh % 1000)
}

/// Integer W as kW with one decimal.
fn kw(w: u64) -> String {
    format!("{}.{}", w / 1000, (w % 1000) / 100)
}

/// A fresh meter key: the meter's own, apart from the charger's device key (a real meter
/// keeps it in its secure element; the offer names its address).
fn meter_key() -> DemoResult<LocalSigner> {
    Ok(LocalSigner::from_bytes(&rand::random::<[u8; 32]>())?)
}

#[tokio::main]
async fn main() -> DemoResult<()> {
    session_demo::init_tracing();
    let args = Args::parse();
    let max_rate = args
        .max_power_w
        .checked_mul(args.speedup)
        .ok_or("max power x speedup overflows")?;
    if args.power_w > args.max_power_w {
        return Err(
            "--power-w is above --max-power-w: the car's SDK would refuse the readings".into(),
        );
    }

    let charger = Device::connect("charger", &args.hub, &args.charger_store).await?;
    let car = Device::connect("car", &args.hub, &args.car_store).await?;
    let budget = U256::from(args.budget);
    let capacity = budget.saturating_add(
        U256::from(args.price_per_wh).saturating_mul(U256::from(args.credit_window_wh)),
    );
    let payments = args.max_secs.saturating_mul(1000) / args.tick_ms + 1;
    let needs = budget.saturating_add(fee_allowance(&car.client, budget, payments)?);
    fund(&charger, &car, capacity, needs).await?;
    let before = Snapshot::take(&charger, &car)?;

    // The charger offers the session (shown to the car as a QR code, say); the car accepts.
    let meter = meter_key()?;
    let transaction_id = format!("EV-{}", rand::random::<u32>());
    let mut terms = SessionTerms::new(
        MeterUnit::WattHour,
        U256::from(args.price_per_wh),
        args.credit_window_wh,
        max_rate,
    );
    terms.meter_start = args.meter_start;
    terms.transaction_id = Some(transaction_id.clone());
    println!(
        "offer: {} per Wh, {} Wh of credit, meter {} | compressed time: 1 s = {} s of \
         charging, so the offer's maximum rate is {} W x {}",
        args.price_per_wh,
        args.credit_window_wh,
        meter.address(),
        args.speedup,
        args.max_power_w,
        args.speedup
    );
    let charging = charger.client.offer_session(terms, meter).await?;
    let limits = PayerLimits {
        budget,
        clock_tolerance_secs: 5,
    };
    let paying = car.client.accept_session(charging.id(), limits).await?;
    charging.wait_accepted(session_demo::WAIT).await?;
    println!(
        "session {} accepted by the car: budget {budget} (= {} Wh)",
        charging.id(),
        kwh(args.budget / args.price_per_wh.max(1))
    );
    let tally = Tally::start(&car.client, &paying);
    tokio::spawn(show_car(paying.clone()));

    let stopped = meter_energy(&args, &charging).await?;
    println!("charger: session stopped ({stopped:?})");

    let receipt = Ending {
        payee: &charger,
        payer: &car,
        payee_session: &charging,
        payer_session: &paying,
        before,
        tally,
        receipt_out: &args.receipt_out,
    }
    .finish()
    .await?;

    // What an OCPP central system would record for this transaction.
    let status = charging.status().await;
    let last = latest_publication(&charger, charging.id())?.ok_or("no reading was published")?;
    let r = last.reading.reading;
    println!("OCPP transaction summary (StopTransaction):");
    println!("  transactionId  {transaction_id}");
    println!("  idTag          {}", car.client.address());
    println!("  meterStart     {} Wh", args.meter_start);
    println!(
        "  meterStop      {} Wh (reading seq {}, at {})",
        r.register, r.seq, r.timestamp
    );
    println!("  stoppedReason  {:?}", r.stopped_reason.unwrap_or(stopped));
    println!(
        "  energy         {} kWh delivered, {} kWh paid ({} Wh unpaid: the charger's loss, \
         within the {} Wh window)",
        kwh(status.delivered_units),
        kwh(receipt.receipt.total_units),
        status.unpaid_units,
        args.credit_window_wh
    );
    println!(
        "  cost           {} token units at {} per Wh",
        receipt.receipt.total_paid, args.price_per_wh
    );
    if status.unpaid_units > args.credit_window_wh {
        return Err("the charger delivered beyond its credit window".into());
    }
    Ok(())
}

/// The charger's metering loop: energy flows at `power_w` (compressed) while the credit
/// window has room; when it is used up the energy pauses, and if no payment makes room
/// within `credit_wait_secs` the charger stops (LocalOutOfCredit). Shows kWh, cost and power
/// live.
async fn meter_energy(
    args: &Args,
    charging: &voltlane_client::session::PayeeHandle,
) -> DemoResult<StopReason> {
    let started = Instant::now();
    let tick = Duration::from_millis(args.tick_ms);
    let mut register = args.meter_start;
    let mut last = Instant::now();
    // Energy that flowed and is not on the register yet, in mWh (the register counts Wh).
    let mut flowing_mwh: u128 = 0;
    loop {
        tokio::time::sleep(tick).await;
        if started.elapsed() > Duration::from_secs(args.max_secs) {
            charging.stop(StopReason::TimeLimitReached).await?;
            return Ok(StopReason::TimeLimitReached);
        }
        let headroom = charging.status().await.headroom_units;
        if headroom == 0 {
            let unpaid = charging.status().await.unpaid_units;
            println!("charger: {unpaid} Wh unpaid fills the credit window: energy paused");
            match charging
                .wait_headroom(Duration::from_secs(args.credit_wait_secs))
                .await
            {
                Ok(0) => {
                    let ended = charging.status().await.ended;
                    return Ok(ended.unwrap_or(StopReason::Other));
                }
                Ok(room) => {
                    println!("charger: payment received, {room} Wh of credit: energy resumes");
                    last = Instant::now();
                    continue;
                }
                Err(_) => {
                    println!(
                        "charger: no payment within {} s: stopping (LocalOutOfCredit)",
                        args.credit_wait_secs
                    );
                    charging.stop(StopReason::LocalOutOfCredit).await?;
                    return Ok(StopReason::LocalOutOfCredit);
                }
            }
        }
        let dt_ms = u64::try_from(last.elapsed().as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        last = Instant::now();
        flowing_mwh +=
            u128::from(args.power_w) * u128::from(args.speedup) * u128::from(dt_ms) / 3_600;
        let available = u64::try_from(flowing_mwh / 1_000).unwrap_or(u64::MAX);
        let step = available.min(headroom);
        // Energy beyond the credit window is not delivered (the contactor throttles it).
        flowing_mwh = if step < available {
            0
        } else {
            flowing_mwh - u128::from(step) * 1_000
        };
        register += step;
        let delivery = charging.record(register).await?;
        let s = charging.status().await;
        let sim_secs = started.elapsed().as_secs() * args.speedup;
        let power = step.saturating_mul(3_600_000) / dt_ms.saturating_mul(args.speedup);
        println!(
            "[{:02}:{:02} simulated] {:>7} kWh | cost {:>6} | {:>5} kW | paid {:>7} kWh ({}) | unpaid {} Wh",
            sim_secs / 60,
            sim_secs % 60,
            kwh(s.delivered_units),
            U256::from(s.delivered_units).saturating_mul(U256::from(args.price_per_wh)),
            kw(power),
            kwh(s.paid_units),
            s.paid_amount,
            s.unpaid_units
        );
        if let Delivery::Stop(reason) = delivery {
            return Ok(reason);
        }
    }
}

/// The car's view: every reading its SDK verified and what it paid for it; at the budget it
/// stops paying.
async fn show_car(paying: PayerHandle) {
    let mut updates = paying.updates();
    while let Ok(update) = updates.recv().await {
        match update {
            PayerUpdate::Reading {
                seq,
                metered_units,
                due_units,
                ..
            } => println!(
                "  car: reading {seq} verified (meter signature, seq, time, rate): {} kWh, {due_units} Wh due",
                kwh(metered_units)
            ),
            PayerUpdate::Paid {
                amount, paid_units, ..
            } => println!("  car: paid {amount}, {} kWh paid in all", kwh(paid_units)),
            PayerUpdate::PaymentFailed { units, reason } => {
                println!("  car: payment for {units} Wh failed ({reason}); due again")
            }
            PayerUpdate::Refused(e @ SessionError::BudgetExceeded { .. }) => {
                println!("  car: reading refused, not paid: {e}; the budget is reached, the car stops paying");
                if let Err(e) = paying.stop(StopReason::EnergyLimitReached).await {
                    println!("  car: could not stop: {e}");
                }
            }
            PayerUpdate::Refused(e) => println!("  car: reading refused, not paid: {e}"),
            PayerUpdate::Ended(reason) => println!("  car: session ended ({reason:?})"),
            PayerUpdate::PayeePresence(_) => {}
        }
    }
}
