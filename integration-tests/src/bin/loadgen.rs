//! `loadgen`: opens N channels with a hub and runs M concurrent pipelined payment streams,
//! then prints acknowledged payments/s, latency percentiles (send → ack), the raw k256 sign
//! and verify rates measured in this process right before the run, and the ratio of the
//! achieved rate to the crypto bound `cores / (sign + verify)`.
//!
//! Stream `s` pays over channel `s` (so `--streams` must not exceed `--channels`; extra
//! channels stay idle): one device, one channel, one `Payments.Pay` stream with at most
//! `--window` unacknowledged payments. Everything is bounded: payments per stream, an
//! optional `--duration-secs`, per-ack and overall timeouts. Loopback use is intended.
//!
//! ```text
//! cargo run --release -p integration-tests --bin loadgen -- --spawn --channels 100 --streams 100 --payments 200
//! cargo run --release -p integration-tests --bin loadgen -- --hub http://127.0.0.1:50051 --channels 10 --streams 10
//! ```

use std::collections::HashMap;
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_core::primitives::U256;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use integration_tests::device::{device_key, TestDevice};
use integration_tests::process::connect;
use integration_tests::stats::{percentile, CryptoCost};
use integration_tests::{HarnessError, HubOptions, HubProcess, PayAck};
use tokio::sync::Barrier;
use tonic::transport::Channel;

type BoxError = Box<dyn Error + Send + Sync>;

/// Load generator for a Voltlane hub.
#[derive(Debug, Parser)]
#[command(name = "loadgen")]
struct Args {
    /// URL of a running hub.
    #[arg(long, conflicts_with = "spawn", required_unless_present = "spawn")]
    hub: Option<String>,
    /// Start a hub process of our own (temporary data dir, free loopback port).
    #[arg(long)]
    spawn: bool,
    /// Channels (devices) to open.
    #[arg(long, default_value_t = 1)]
    channels: usize,
    /// Concurrent payment streams (at most --channels).
    #[arg(long, default_value_t = 1)]
    streams: usize,
    /// Payments per stream.
    #[arg(long, default_value_t = 1000)]
    payments: u64,
    /// Stop sending after this many seconds even if --payments is not reached.
    #[arg(long)]
    duration_secs: Option<u64>,
    /// Amount of each payment (token units).
    #[arg(long, default_value_t = 1)]
    amount: u64,
    /// Unacknowledged payments allowed per stream.
    #[arg(long, default_value_t = 64)]
    window: usize,
    /// HTTP/2 connections the devices are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    /// Seed of the device keys (default: from the clock, so reruns open fresh channels).
    #[arg(long)]
    seed: Option<u64>,
    /// Signatures and verifications timed for the crypto rates.
    #[arg(long, default_value_t = 2000)]
    crypto_samples: usize,
    /// Devices set up (login, mint, open, deposit) concurrently.
    #[arg(long, default_value_t = 64)]
    setup_concurrency: usize,
    /// Longest wait for any one acknowledgement, seconds.
    #[arg(long, default_value_t = 30)]
    ack_timeout_secs: u64,
    /// Bound on the whole run, seconds.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
}

/// What one stream saw.
#[derive(Debug, Default)]
struct StreamResult {
    accepted: u64,
    rejected: u64,
    first_rejection: Option<String>,
    latencies: Vec<Duration>,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    if args.streams == 0 || args.streams > args.channels {
        return Err("--streams must be between 1 and --channels".into());
    }
    let bound = Duration::from_secs(args.timeout_secs);
    tokio::time::timeout(bound, run(args))
        .await
        .map_err(|_| format!("loadgen did not finish within {bound:?}"))?
}

async fn run(args: Args) -> Result<(), BoxError> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (_hub, url) = match &args.hub {
        Some(url) => (None, url.clone()),
        None => {
            let hub = HubProcess::start(HubOptions::default()).await?;
            let url = hub.url();
            (Some(hub), url)
        }
    };
    println!("hub: {url}{}", if args.spawn { " (spawned)" } else { "" });
    println!("cores: {cores}");
    println!("channels: {}", args.channels);
    println!("streams: {}", args.streams);
    println!("payments_per_stream: {}", args.payments);
    println!("window: {}", args.window);

    let started = Instant::now();
    let devices = setup(&args, &url).await?;
    println!("setup_secs: {:.2}", started.elapsed().as_secs_f64());

    let crypto = CryptoCost::measure(args.crypto_samples)?;
    let crypto_bound = crypto.bound(cores);
    println!("k256_sign_per_sec: {:.0}", crypto.signs_per_sec());
    println!("k256_verify_per_sec: {:.0}", crypto.verifies_per_sec());
    println!("crypto_bound_payments_per_sec: {crypto_bound:.0}");

    let (results, elapsed) = pay(&args, devices).await?;
    let mut latencies: Vec<Duration> = Vec::new();
    let (mut accepted, mut rejected, mut rejection) = (0u64, 0u64, None);
    for r in results {
        accepted += r.accepted;
        rejected += r.rejected;
        rejection = rejection.or(r.first_rejection);
        latencies.extend(r.latencies);
    }
    latencies.sort_unstable();
    let rate = accepted as f64 / elapsed.as_secs_f64();
    println!("acked_payments: {accepted}");
    println!("rejected_payments: {rejected}");
    if let Some(reason) = rejection {
        println!("first_rejection: {reason}");
    }
    println!("elapsed_secs: {:.3}", elapsed.as_secs_f64());
    println!("acked_payments_per_sec: {rate:.0}");
    for (name, q) in [("p50", 0.5), ("p99", 0.99), ("p999", 0.999)] {
        println!(
            "latency_{name}_ms: {:.3}",
            percentile(&latencies, q).as_secs_f64() * 1e3
        );
    }
    println!("ratio_to_crypto_bound: {:.3}", rate / crypto_bound);
    Ok(())
}

/// Logs in N devices over `--connections` connections, each minting, opening a channel and
/// depositing enough for its stream.
async fn setup(args: &Args, url: &str) -> Result<Vec<TestDevice>, BoxError> {
    let mut conns: Vec<Channel> = Vec::new();
    for _ in 0..args.connections.max(1) {
        conns.push(connect(url).await?);
    }
    let seed = match args.seed {
        Some(s) => s,
        None => std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64,
    };
    let per_channel = if args.duration_secs.is_some() {
        1_000_000_000_000
    } else {
        args.payments + 1
    };
    let deposit = U256::from(args.amount) * U256::from(per_channel);
    let conns = &conns;
    let mut devices: Vec<(usize, TestDevice)> = futures::stream::iter(0..args.channels)
        .map(|i| async move {
            let key = device_key(seed, i as u64)?;
            let mut device = TestDevice::login(conns[i % conns.len()].clone(), key).await?;
            device.open_channel(deposit).await?;
            Ok::<_, HarnessError>((i, device))
        })
        .buffer_unordered(args.setup_concurrency.max(1))
        .try_collect()
        .await?;
    devices.sort_by_key(|(i, _)| *i);
    Ok(devices.into_iter().map(|(_, d)| d).collect())
}

/// Runs the streams; returns their results and the time from the common start to the last
/// acknowledgement.
async fn pay(
    args: &Args,
    devices: Vec<TestDevice>,
) -> Result<(Vec<StreamResult>, Duration), BoxError> {
    let barrier = Arc::new(Barrier::new(args.streams + 1));
    let deadline = args.duration_secs.map(Duration::from_secs);
    let mut tasks = Vec::new();
    for device in devices.into_iter().take(args.streams) {
        let plan = Plan {
            payments: args.payments,
            amount: U256::from(args.amount),
            window: args.window.max(1),
            duration: deadline,
            ack_timeout: Duration::from_secs(args.ack_timeout_secs),
        };
        tasks.push(tokio::spawn(stream(device, plan, barrier.clone())));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.await??);
    }
    Ok((results, started.elapsed()))
}

/// Parameters of one stream.
#[derive(Clone, Copy, Debug)]
struct Plan {
    payments: u64,
    amount: U256,
    window: usize,
    duration: Option<Duration>,
    ack_timeout: Duration,
}

/// One device's pipelined stream: keeps up to `window` payments unacknowledged.
async fn stream(
    mut device: TestDevice,
    plan: Plan,
    barrier: Arc<Barrier>,
) -> Result<StreamResult, HarnessError> {
    let mut session = device.pay_session(plan.window).await;
    barrier.wait().await;
    let session = session
        .as_mut()
        .map_err(|e| HarnessError::Protocol(e.to_string()))?;
    let started = Instant::now();
    let mut sent_at: HashMap<u64, Instant> = HashMap::with_capacity(plan.window);
    let mut sent = 0u64;
    let mut out = StreamResult {
        latencies: Vec::with_capacity(plan.payments.min(1 << 20) as usize),
        ..StreamResult::default()
    };
    loop {
        let time_left = plan.duration.is_none_or(|d| started.elapsed() < d);
        while sent_at.len() < plan.window && sent < plan.payments && time_left {
            let msg = device.next_payment(plan.amount)?;
            sent_at.insert(msg.request_id, Instant::now());
            session.send(msg).await?;
            sent += 1;
        }
        if sent_at.is_empty() {
            break;
        }
        let ack = tokio::time::timeout(plan.ack_timeout, session.next_ack())
            .await
            .map_err(|_| HarnessError::Timeout {
                what: "a payment acknowledgement".into(),
                after: plan.ack_timeout,
            })??
            .ok_or_else(|| HarnessError::Protocol("hub ended the pay stream early".into()))?;
        let at = sent_at.remove(&ack.request_id()).ok_or_else(|| {
            HarnessError::Protocol(format!("ack for unknown request {}", ack.request_id()))
        })?;
        out.latencies.push(at.elapsed());
        match ack {
            PayAck::Accepted { .. } => out.accepted += 1,
            PayAck::Rejected { code, reason, .. } => {
                out.rejected += 1;
                out.first_rejection
                    .get_or_insert_with(|| format!("{code:?}: {reason}"));
            }
        }
    }
    session.finish();
    Ok(out)
}
