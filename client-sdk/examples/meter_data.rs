//! A meter sells its readings one by one in a metered session (unit `Reading`: each
//! published reading is one unit): the meter (the payee) signs every reading (session, seq,
//! register, unix timestamp) with its key and bills it; the buyer's SDK checks the signature,
//! the timestamp against its own clock, the seq and the rate before it pays, and the payment
//! commits to the reading's hash (the bill's memo, the balance proofs' additional hash).
//! That is trusted timestamping: the signed, timestamped reading plus a payment bound to its
//! hash prove what was published when, and that it was paid for.
//!
//! The meter publishes `--readings` readings, one every `--tick-ms`, never more than its
//! credit window ahead of payment, then ends the session. Both sign the receipt (its first
//! and last reading hashes are the ones printed), which is printed, written to a file and
//! verified offline; the demo exits 0 only if every figure and every hash adds up.
//!
//! `cargo run -p voltlane-hub -- --auto-deposit 1000000`
//! `cargo run -p voltlane-client --example meter_data -- --hub http://127.0.0.1:50051`

mod session_demo;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use channel_core::session::{MeterUnit, PayerLimits, StopReason};
use channel_core::Signer;
use channel_core::H256;
use clap::Parser;
use session_demo::{
    fee_allowance, fund, latest_publication, DemoResult, Device, Ending, Snapshot, Tally,
};
use voltlane_client::session::{Delivery, PayerHandle, PayerUpdate, SessionTerms};
use voltlane_client::{DeviceStore, U256};

#[derive(Parser, Debug)]
#[command(about = "A buyer pays a meter per signed, timestamped reading in a metered session")]
struct Args {
    /// The hub's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    hub: String,
    /// Where the meter keeps its key, channel and session.
    #[arg(long, default_value = "./meter-data")]
    meter_store: String,
    /// Where the buyer keeps its key, channel and session.
    #[arg(long, default_value = "./buyer-data")]
    buyer_store: String,
    /// Where the receipt JSON is written.
    #[arg(long, default_value = "./meter_data-receipt.json")]
    receipt_out: PathBuf,
    /// Price in token units per reading.
    #[arg(long, default_value_t = 10)]
    price_per_reading: u64,
    /// Readings the meter publishes ahead of payment, at most.
    #[arg(long, default_value_t = 2)]
    credit_window_readings: u64,
    /// Readings the meter publishes (and the buyer's budget covers).
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    readings: u64,
    /// Real milliseconds between readings.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    tick_ms: u64,
    /// Real seconds the meter waits for a payment once its credit window is used up.
    #[arg(long, default_value_t = 4)]
    credit_wait_secs: u64,
}

/// Reading hashes by seq, as one side saw them.
type Hashes = Arc<Mutex<BTreeMap<u64, H256>>>;

#[tokio::main]
async fn main() -> DemoResult<()> {
    session_demo::init_tracing();
    let args = Args::parse();
    // Readings per real hour, with room for a tick that runs late.
    let max_rate = 2 * 3_600 * 1_000 / args.tick_ms;

    let meter = Device::connect("meter", &args.hub, &args.meter_store).await?;
    let buyer = Device::connect("buyer", &args.hub, &args.buyer_store).await?;
    let price = U256::from(args.price_per_reading);
    let budget = price.saturating_mul(U256::from(args.readings));
    let needs = budget.saturating_add(fee_allowance(&buyer.client, budget, args.readings)?);
    fund(&meter, &buyer, budget, needs).await?;
    let before = Snapshot::take(&meter, &buyer)?;

    let terms = SessionTerms::new(
        MeterUnit::Reading,
        price,
        args.credit_window_readings,
        max_rate,
    );
    let key = meter
        .store
        .signer()?
        .ok_or("the meter's store holds no key")?;
    println!(
        "offer: {} per reading, {} readings of credit, signed by {} (at most {max_rate} readings per hour)",
        args.price_per_reading,
        args.credit_window_readings,
        key.address()
    );
    let feed = meter.client.offer_session(terms, key).await?;
    let limits = PayerLimits {
        budget,
        clock_tolerance_secs: 5,
    };
    let subscription = buyer.client.accept_session(feed.id(), limits).await?;
    feed.wait_accepted(session_demo::WAIT).await?;
    println!(
        "session {} accepted by the buyer: budget {budget}",
        feed.id()
    );
    let tally = Tally::start(&buyer.client, &subscription);
    let verified: Hashes = Arc::default();
    tokio::spawn(show_buyer(
        subscription.clone(),
        buyer.store.clone(),
        verified.clone(),
    ));

    // The meter start (seq 0) was published on acceptance.
    let published: Hashes = Arc::default();
    record_published(&meter, feed.id(), &published)?;
    let reason = publish_readings(&args, &meter, &feed, &published).await?;
    // The final reading (it carries the stop reason) is the latest publication now.
    record_published(&meter, feed.id(), &published)?;
    println!("meter: session ended ({reason:?})");

    let receipt = Ending {
        payee: &meter,
        payer: &buyer,
        payee_session: &feed,
        payer_session: &subscription,
        before,
        tally,
        receipt_out: &args.receipt_out,
    }
    .finish()
    .await?;

    // Every hash the buyer verified is the one the meter signed, and the receipt names the
    // meter start and the last reading paid for.
    let published = published.lock().map_err(|_| "hash table poisoned")?.clone();
    let verified = verified.lock().map_err(|_| "hash table poisoned")?.clone();
    for (seq, hash) in &verified {
        if published.get(seq) != Some(hash) {
            return Err(
                format!("the buyer verified reading {seq} as {hash}, not as published").into(),
            );
        }
    }
    let r = &receipt.receipt;
    let first = published.get(&0).copied();
    let paid_last = published.get(&args.readings).copied();
    println!(
        "receipt: first reading {} (seq 0: {}), last {} (seq {}: {}), {} readings paid",
        r.first_reading_hash,
        first == Some(r.first_reading_hash),
        r.last_reading_hash,
        args.readings,
        paid_last == Some(r.last_reading_hash),
        r.total_units
    );
    if first != Some(r.first_reading_hash) || paid_last != Some(r.last_reading_hash) {
        return Err("the receipt's reading hashes are not the readings published".into());
    }
    if r.total_units != args.readings {
        return Err(format!("{} readings paid of {}", r.total_units, args.readings).into());
    }
    Ok(())
}

/// Notes (and prints) the reading the meter published last.
fn record_published(meter: &Device, id: H256, published: &Hashes) -> DemoResult<()> {
    let p = latest_publication(meter, id)?.ok_or("the meter published no reading")?;
    let r = p.reading.reading;
    let bill = p.bill.map_or_else(
        || "no bill".to_string(),
        |b| {
            let bound = if b.request.memo_hash == r.hash() {
                "="
            } else {
                "!="
            };
            format!("bill of {} (memo {bound} reading hash)", b.request.amount)
        },
    );
    println!(
        "meter: reading {} at {} (unix s): register {}, hash {} | {bill}",
        r.seq,
        r.timestamp,
        r.register,
        r.hash()
    );
    if let Ok(mut map) = published.lock() {
        map.insert(r.seq, r.hash());
    }
    Ok(())
}

/// The meter's loop: publishes one reading per tick while the buyer is within the credit
/// window, pauses when it is used up, and ends the session after `readings` (or when no
/// payment makes room within `credit_wait_secs`: LocalOutOfCredit).
async fn publish_readings(
    args: &Args,
    meter: &Device,
    feed: &voltlane_client::session::PayeeHandle,
    published: &Hashes,
) -> DemoResult<StopReason> {
    let tick = Duration::from_millis(args.tick_ms);
    let mut count = 0u64;
    while count < args.readings {
        tokio::time::sleep(tick).await;
        let s = feed.status().await;
        if s.headroom_units == 0 {
            println!(
                "meter: {} readings unpaid: publishing paused",
                s.unpaid_units
            );
            if feed
                .wait_headroom(Duration::from_secs(args.credit_wait_secs))
                .await
                .is_err()
            {
                feed.stop(StopReason::LocalOutOfCredit).await?;
                return Ok(StopReason::LocalOutOfCredit);
            }
            continue;
        }
        count += 1;
        let delivery = feed.record(count).await?;
        record_published(meter, feed.id(), published)?;
        if let Delivery::Stop(reason) = delivery {
            return Ok(reason);
        }
    }
    // Wait for the last readings to be paid before ending (the buyer pays them).
    let deadline = tokio::time::Instant::now() + session_demo::WAIT;
    while feed.status().await.paid_units < count && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    feed.stop(StopReason::Local).await?;
    Ok(StopReason::Local)
}

/// The buyer's view: each reading its SDK verified before paying (with the hash it
/// verified), and each payment.
async fn show_buyer(subscription: PayerHandle, store: DeviceStore, verified: Hashes) {
    let id = subscription.id();
    let mut updates = subscription.updates();
    while let Ok(update) = updates.recv().await {
        match update {
            PayerUpdate::Reading { seq, due_units, .. } => {
                let hash = accepted_hash(&store, id, seq).await;
                let shown = hash.map_or_else(|| "(superseded)".to_string(), |h| h.to_string());
                println!(
                    "        buyer: reading {seq} verified (meter signature, timestamp, seq, rate): hash {shown}, {due_units} due"
                );
                if let (Some(h), Ok(mut map)) = (hash, verified.lock()) {
                    map.insert(seq, h);
                }
            }
            PayerUpdate::Paid {
                amount,
                paid_units,
                paid_amount,
                ..
            } => println!(
                "        buyer: paid {amount}, committed to the reading's hash ({paid_units} readings, {paid_amount} in all)"
            ),
            PayerUpdate::PaymentFailed { units, reason } => {
                println!("        buyer: payment for {units} readings failed ({reason}); due again")
            }
            PayerUpdate::Refused(e) => println!("        buyer: reading refused, not paid: {e}"),
            PayerUpdate::Ended(reason) => println!("        buyer: session ended ({reason:?})"),
            PayerUpdate::PayeePresence(_) => {}
        }
    }
}

/// The hash of reading `seq` as the buyer's SDK accepted it (its stored session), once the
/// store holds it; `None` if a later reading took its place first.
async fn accepted_hash(store: &DeviceStore, id: H256, seq: u64) -> Option<H256> {
    for _ in 0..100 {
        if let Ok(Some(r)) = store.payer_session(&id) {
            match r.session.last_seq() {
                Some(s) if s == seq => return r.session.last_reading_hash(),
                Some(s) if s > seq => return None,
                _ => {}
            }
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}
