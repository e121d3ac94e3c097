//! A car pays a charger that someone else owns, through the hub: a mediated payment per
//! charging session. Each device has its own channel with the hub. The charger (the payee)
//! issues a signed payment request for every session; the car (the payer) pays it, the hub
//! forwards the locked amount to the charger, the charger reveals its secret, and the car
//! ends with a receipt (the request plus the secret) that proves the charger was paid.
//!
//! Start a hub that matches device deposits with its own liquidity, then run the example:
//! `cargo run -p voltlane-hub -- --auto-deposit 1000000 --mediation-fee-flat 1 --mediation-fee-ppm 10000`
//! `cargo run -p voltlane-client --example car_pays_charger -- --hub http://127.0.0.1:50051`
//!
//! Both devices keep their keys and proofs in their own stores (`--car-store`,
//! `--charger-store`). Test tokens come from the hub's dev faucet, the hub's included, so
//! that its auto-deposit can give the charger receiving capacity.

use std::time::Duration;

use clap::Parser;
use voltlane_client::{Client, ClientError, DeviceStore, MediatedPayment, U256};

#[derive(Parser, Debug)]
#[command(about = "A car pays a charger through the hub with mediated payments")]
struct Args {
    /// The hub's gRPC endpoint.
    #[arg(long, default_value = "http://127.0.0.1:50051")]
    hub: String,
    /// Where the car keeps its key, channel and proofs.
    #[arg(long, default_value = "./car-data")]
    car_store: String,
    /// Where the charger keeps its key, channel, requests and proofs.
    #[arg(long, default_value = "./charger-data")]
    charger_store: String,
    /// Number of charging sessions, each paid with one request.
    #[arg(long, default_value_t = 5)]
    sessions: u64,
    /// Price of one session in token units (what the charger receives).
    #[arg(long, default_value_t = 250)]
    price: u64,
    /// Close both channels cooperatively at the end and print the settlements.
    #[arg(long)]
    close: bool,
}

/// How long the example waits for something the hub does in the background.
const WAIT: Duration = Duration::from_secs(20);

/// Mints from the dev faucet, or explains why the existing tokens are used.
async fn faucet(client: &Client, to: voltlane_client::Address, amount: U256, who: &str) {
    match client.mint_to(to, amount).await {
        Ok(()) => println!("minted {amount} test tokens for the {who}"),
        Err(e) => println!("faucet unavailable for the {who} ({e}); using existing tokens"),
    }
}

/// Waits until the hub has deposited into the charger's channel (its auto-deposit policy).
async fn wait_for_hub_capacity(charger: &Client) -> Result<U256, Box<dyn std::error::Error>> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let b = charger.balances()?;
        if !b.hub_deposit.is_zero() {
            return Ok(b.hubs);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(
                "the hub put no deposit into the charger's channel: start it with \
                        --auto-deposit <amount> (or deposit with Channels.OperatorDeposit)"
                    .into(),
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let args = Args::parse();
    let price = U256::from(args.price);
    let total = U256::from(
        args.price
            .checked_mul(args.sessions)
            .ok_or("price * sessions overflows")?,
    );

    let charger =
        Client::connect_with_stored_key(&args.hub, DeviceStore::open(&args.charger_store)?).await?;
    let car =
        Client::connect_with_stored_key(&args.hub, DeviceStore::open(&args.car_store)?).await?;
    let hub = car.hub_address();
    let info = car.mediation_info();
    println!(
        "hub {hub}: fee {} + {} ppm, reveal timeout {} s",
        info.fees.flat, info.fees.proportional_ppm, info.reveal_timeout
    );
    println!("charger {}", charger.address());
    println!("car     {}", car.address());

    // The charger opens a channel; the hub matches its deposit with its own tokens, which is
    // the charger's capacity to receive.
    faucet(&charger, charger.address(), total, "charger").await;
    faucet(&charger, hub, total, "hub").await;
    charger.open_channel(total).await?;
    let capacity = wait_for_hub_capacity(&charger).await?;
    println!("charger's channel open; the hub can pay it up to {capacity}");

    // The car's deposit covers every session plus the hub's fee on each.
    let fee = info.fees.fee_for(price)?;
    let car_deposit = price
        .checked_add(fee)
        .and_then(|p| p.checked_mul(U256::from(args.sessions)))
        .ok_or("car deposit overflows")?;
    faucet(&car, car.address(), car_deposit, "car").await;
    car.open_channel(car_deposit).await?;
    println!("car's channel open with {car_deposit} (fee per session {fee})");

    let mut incoming = charger.mediated_payments();
    for session in 1..=args.sessions {
        // The charger meters a session and asks to be paid for it (e.g. shown as a QR code).
        let request = charger.create_payment_request(price, session, 120).await?;
        let receipt = pay_with_retries(&car, &charger, request, session).await?;
        receipt.verify(&car.domain())?;
        let paid: MediatedPayment = tokio::time::timeout(WAIT, async {
            loop {
                match incoming.recv().await {
                    Ok(p) if p.payment_id == session => return Ok(p),
                    Ok(_) => continue,
                    Err(e) => return Err(e),
                }
            }
        })
        .await??;
        println!(
            "session {session}: car paid {} (fee {}) | charger received {} from {} (unlock \
             nonce {}) | proof of payment: secret {}",
            receipt.lock_amount, receipt.fee, paid.amount, paid.payer, paid.nonce, receipt.secret.0
        );
    }

    let (c, k) = (car.balances()?, charger.balances()?);
    println!("final balances (off-chain):");
    println!(
        "  car     owns {} in its channel (locked {}), the hub {}",
        c.ours, c.our_locked, c.hubs
    );
    println!(
        "  charger owns {} in its channel (incoming locked {}), the hub {}",
        k.ours, k.hub_locked, k.hubs
    );

    if args.close {
        for (who, client) in [("car", &car), ("charger", &charger)] {
            let s = client.cooperative_close().await?;
            let tokens = client.token_balance(client.address()).await?;
            println!(
                "{who}: channel {} settled, {} paid out to it; ledger balance now {tokens}",
                s.channel_id, s.device_amount
            );
        }
    }
    Ok(())
}

/// Pays `request`; when the charger's payment stream is not up yet at the hub, asks the
/// charger for a fresh request and tries again (the refused lock is taken back by itself
/// once it expires).
async fn pay_with_retries(
    car: &Client,
    charger: &Client,
    mut request: voltlane_client::SignedPaymentRequest,
    session: u64,
) -> Result<voltlane_client::MediatedReceipt, ClientError> {
    let mut attempts = 0;
    loop {
        match car.pay_request(&request).await {
            Err(ClientError::PayeeOffline { reason }) if attempts < 5 => {
                attempts += 1;
                println!("session {session}: charger not reachable yet ({reason}); retrying");
                tokio::time::sleep(Duration::from_secs(1)).await;
                request = charger
                    .create_payment_request(request.request.amount, session, 120)
                    .await?;
            }
            other => return other,
        }
    }
}
