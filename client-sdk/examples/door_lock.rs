//! A door lock rents access per second in a metered session: the lock (the payee, a device
//! of its own) counts each second it stands open as one unit (`SecondOfAccess`) and signs a
//! reading for it; the renter (the payer) pays for every second a verified reading shows,
//! through the hub. The lock stays OPEN while paid up to its credit window and relocks on the
//! first unpaid second beyond it. The renter leaves (stops paying) after `--rent-secs`
//! seconds; the lock then relocks, waits `--credit-wait-secs` for a payment and ends the
//! session (LocalOutOfCredit). Both sign the receipt, which is printed, written to a file and
//! verified offline; the demo exits 0 only if every figure adds up.
//!
//! Time is compressed: a second of access passes every `--tick-ms` (default 250 ms), so the
//! offer declares its maximum rate (seconds of access per hour) scaled to match, since the
//! renter's SDK checks readings against wall-clock timestamps.
//!
//! `cargo run -p voltlane-hub -- --auto-deposit 1000000`
//! `cargo run -p voltlane-client --example door_lock -- --hub http://127.0.0.1:50051`

mod session_demo;

use std::path::PathBuf;
use std::time::Duration;

use channel_core::session::{MeterUnit, PayerLimits, StopReason};
use clap::Parser;
use session_demo::{
    fee_allowance, fund, latest_publication, DemoResult, Device, Ending, Snapshot, Tally,
};
use voltlane_client::session::{Delivery, PayeeHandle, PayerHandle, PayerUpdate, SessionTerms};
use voltlane_client::U256;

#[derive(Parser, Debug)]
#[command(about = "A renter pays a door lock per second of access in a metered session")]
struct Args {
    /// The hub's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    hub: String,
    /// Where the lock keeps its key, channel and session.
    #[arg(long, default_value = "./lock-data")]
    lock_store: String,
    /// Where the renter keeps its key, channel and session.
    #[arg(long, default_value = "./renter-data")]
    renter_store: String,
    /// Where the receipt JSON is written.
    #[arg(long, default_value = "./door_lock-receipt.json")]
    receipt_out: PathBuf,
    /// Price in token units per second of access.
    #[arg(long, default_value_t = 5)]
    price_per_second: u64,
    /// Seconds of access the lock grants ahead of payment, at most.
    #[arg(long, default_value_t = 5)]
    credit_window_secs: u64,
    /// Seconds of access the renter pays for before it leaves (a minute, compressed).
    #[arg(long, default_value_t = 60)]
    rent_secs: u64,
    /// Real milliseconds per second of access.
    #[arg(long, default_value_t = 250, value_parser = clap::value_parser!(u64).range(50..=1_000))]
    tick_ms: u64,
    /// Real seconds the relocked lock waits for a payment before it ends the session.
    #[arg(long, default_value_t = 4)]
    credit_wait_secs: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Bolt {
    Open,
    Locked,
}

#[tokio::main]
async fn main() -> DemoResult<()> {
    session_demo::init_tracing();
    let args = Args::parse();
    // Seconds of access per real hour, with room for a tick that runs late.
    let max_rate = 2 * 3_600 * 1_000 / args.tick_ms;

    let lock = Device::connect("lock", &args.hub, &args.lock_store).await?;
    let renter = Device::connect("renter", &args.hub, &args.renter_store).await?;
    let price = U256::from(args.price_per_second);
    let budget = price.saturating_mul(U256::from(
        args.rent_secs.saturating_add(args.credit_window_secs),
    ));
    let needs = budget.saturating_add(fee_allowance(&renter.client, budget, args.rent_secs + 1)?);
    fund(&lock, &renter, budget, needs).await?;
    let before = Snapshot::take(&lock, &renter)?;

    let terms = SessionTerms::new(
        MeterUnit::SecondOfAccess,
        price,
        args.credit_window_secs,
        max_rate,
    );
    println!(
        "offer: {} per second of access, {} s of credit | compressed time: a second of \
         access every {} ms, so the offer's maximum rate is {max_rate} s per hour",
        args.price_per_second, args.credit_window_secs, args.tick_ms
    );
    // The lock signs its readings with its own device key.
    let meter = lock
        .store
        .signer()?
        .ok_or("the lock's store holds no key")?;
    let door = lock.client.offer_session(terms, meter).await?;
    let limits = PayerLimits {
        budget,
        clock_tolerance_secs: 5,
    };
    let rental = renter.client.accept_session(door.id(), limits).await?;
    door.wait_accepted(session_demo::WAIT).await?;
    println!("session {} accepted by the renter", door.id());
    let tally = Tally::start(&renter.client, &rental);
    tokio::spawn(show_renter(rental.clone(), args.rent_secs));

    let reason = run_lock(&args, &door).await?;
    if let Some(p) = latest_publication(&lock, door.id())? {
        let r = p.reading.reading;
        println!(
            "lock: final reading seq {}: {} s of access, at {}, {:?}",
            r.seq, r.register, r.timestamp, r.stopped_reason
        );
    }
    println!("lock: session ended ({reason:?})");

    let receipt = Ending {
        payee: &lock,
        payer: &renter,
        payee_session: &door,
        payer_session: &rental,
        before,
        tally,
        receipt_out: &args.receipt_out,
    }
    .finish()
    .await?;
    let s = door.status().await;
    println!(
        "access: {} s open, {} s paid ({}), {} s unpaid (the lock's loss, within its {} s window)",
        s.delivered_units,
        receipt.receipt.total_units,
        receipt.receipt.total_paid,
        s.unpaid_units,
        args.credit_window_secs
    );
    if s.unpaid_units > args.credit_window_secs {
        return Err("the lock stayed open beyond its credit window".into());
    }
    Ok(())
}

/// The lock's loop: one second of access per tick while the credit window has room (OPEN);
/// on the first second beyond it, LOCKED until a payment makes room, or the end.
async fn run_lock(args: &Args, door: &PayeeHandle) -> DemoResult<StopReason> {
    let tick = Duration::from_millis(args.tick_ms);
    let mut bolt = Bolt::Locked;
    let mut seconds = 0u64;
    loop {
        let s = door.status().await;
        if let Some(reason) = s.ended {
            return Ok(reason);
        }
        if s.headroom_units == 0 {
            if bolt == Bolt::Open {
                bolt = Bolt::Locked;
                println!(
                    "[{seconds:>3} s] LOCKED: {} s unpaid fill the credit window",
                    s.unpaid_units
                );
            }
            match door
                .wait_headroom(Duration::from_secs(args.credit_wait_secs))
                .await
            {
                Ok(_) => continue,
                Err(_) => {
                    println!(
                        "[{seconds:>3} s] no payment within {} s: the lock ends the session",
                        args.credit_wait_secs
                    );
                    door.stop(StopReason::LocalOutOfCredit).await?;
                    return Ok(StopReason::LocalOutOfCredit);
                }
            }
        }
        if bolt == Bolt::Locked {
            bolt = Bolt::Open;
            println!(
                "[{seconds:>3} s] OPEN: paid {} s ({}), {} s of credit",
                s.paid_units, s.paid_amount, s.headroom_units
            );
        }
        tokio::time::sleep(tick).await;
        seconds += 1;
        match door.record(seconds).await? {
            Delivery::Continue { .. } => {}
            Delivery::Stop(reason) => {
                println!("[{seconds:>3} s] LOCKED: session stopped ({reason:?})");
                return Ok(reason);
            }
        }
    }
}

/// The renter's view: verified readings and payments; after `rent_secs` it leaves.
async fn show_renter(rental: PayerHandle, rent_secs: u64) {
    let mut updates = rental.updates();
    let mut left = false;
    while let Ok(update) = updates.recv().await {
        match update {
            PayerUpdate::Reading {
                metered_units,
                due_units,
                ..
            } => {
                if due_units > 0 {
                    println!("        renter: {metered_units} s metered, paying {due_units} s");
                }
                if metered_units >= rent_secs && !left {
                    left = true;
                    println!("        renter: {rent_secs} s used, leaving: stops paying");
                    if let Err(e) = rental.stop(StopReason::Local).await {
                        println!("        renter: could not stop: {e}");
                    }
                }
            }
            PayerUpdate::PaymentFailed { units, reason } => {
                println!("        renter: payment for {units} s failed ({reason}); due again")
            }
            PayerUpdate::Refused(e) => println!("        renter: reading refused, not paid: {e}"),
            PayerUpdate::Ended(reason) => println!("        renter: session ended ({reason:?})"),
            PayerUpdate::Paid { .. } | PayerUpdate::PayeePresence(_) => {}
        }
    }
}
