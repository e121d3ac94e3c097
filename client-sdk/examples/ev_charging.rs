//! An electric car pays a charge point operator (the hub) per energy step over a Voltlane
//! channel, then closes cooperatively and prints the settlement.
//!
//! Start a hub (`cargo run -p voltlane-hub`), then:
//! `cargo run -p voltlane-client --example ev_charging -- --hub http://127.0.0.1:50051 --store ./car-data`
//!
//! Money is integer token units throughout; the price is `price_per_wh` units per Wh.

use std::time::{Duration, Instant};

use clap::Parser;
use voltlane_client::{Client, ClientError, DeviceStore, U256};

#[derive(Parser, Debug)]
#[command(about = "EV charging session paid per Wh over a Voltlane channel")]
struct Args {
    /// The hub's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    hub: String,
    /// Where the car keeps its key, channel and proofs.
    #[arg(long, default_value = "./car-data")]
    store: String,
    /// Energy metered per step, Wh.
    #[arg(long, default_value_t = 100)]
    step_wh: u64,
    /// Number of metering steps (100 steps of 100 Wh = 10 kWh).
    #[arg(long, default_value_t = 100)]
    steps: u64,
    /// Price in token units per Wh.
    #[arg(long, default_value_t = 3)]
    price_per_wh: u64,
    /// Pause between steps, milliseconds (0 = as fast as the hub acknowledges).
    #[arg(long, default_value_t = 0)]
    step_interval_ms: u64,
}

/// Integer Wh as a kWh string with three decimals.
fn kwh(wh: u64) -> String {
    format!("{}.{:03}", wh / 1000, wh % 1000)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();

    let step_price = args
        .step_wh
        .checked_mul(args.price_per_wh)
        .ok_or("step_wh * price_per_wh overflows")?;
    let session_cost = step_price
        .checked_mul(args.steps)
        .ok_or("session cost overflows")?;
    let deposit = U256::from(session_cost);

    let store = DeviceStore::open(&args.store)?;
    let car = Client::connect_with_stored_key(&args.hub, store).await?;
    let (car_addr, hub_addr) = (car.address(), car.hub_address());
    println!("car {car_addr} connected to hub {hub_addr}");

    match car.mint(deposit).await {
        Ok(()) => println!("minted {deposit} test tokens from the dev faucet"),
        Err(e @ ClientError::Rpc { .. }) => {
            println!("faucet unavailable ({e}); using existing tokens")
        }
        Err(e) => return Err(e.into()),
    }
    let car_before = car.token_balance(car_addr).await?;
    let hub_before = car.token_balance(hub_addr).await?;

    let channel_id = car.open_channel(deposit).await?;
    let b = car.balances()?;
    println!(
        "channel {channel_id} open: car deposit {}, hub deposit {}",
        b.our_deposit, b.hub_deposit
    );
    println!(
        "charging {} steps of {} Wh at {} units/Wh ({} units per step)",
        args.steps, args.step_wh, args.price_per_wh, step_price
    );

    let start = Instant::now();
    let mut delivered_wh = 0u64;
    let mut paid = U256::ZERO;
    let report_every = (args.steps / 10).max(1);
    for step in 1..=args.steps {
        // The charger meters a step of energy; the car pays for it before the next one.
        delivered_wh += args.step_wh;
        let receipt = car.pay(U256::from(step_price)).await?;
        paid = receipt.transferred_amount;
        if step % report_every == 0 || step == args.steps {
            let secs = start.elapsed().as_secs_f64().max(1e-9);
            println!(
                "{:>8} kWh delivered | {:>10} units paid | nonce {:>6} | {:>8.1} payments/s",
                kwh(delivered_wh),
                paid,
                receipt.nonce,
                step as f64 / secs
            );
        }
        if args.step_interval_ms > 0 {
            tokio::time::sleep(Duration::from_millis(args.step_interval_ms)).await;
        }
    }

    let settlement = car.cooperative_close().await?;
    let car_after = car.token_balance(car_addr).await?;
    let hub_after = car.token_balance(hub_addr).await?;
    println!("cooperative close of channel {}:", settlement.channel_id);
    println!("  paid to the car: {}", settlement.device_amount);
    println!("  paid to the hub: {}", settlement.hub_amount);
    println!("ledger token balances (before opening -> after settling):");
    println!("  car {car_addr}: {car_before} -> {car_after}");
    println!("  hub {hub_addr}: {hub_before} -> {hub_after}");
    println!(
        "energy {} kWh for {} units ({} units/Wh)",
        kwh(delivered_wh),
        paid,
        args.price_per_wh
    );
    Ok(())
}
