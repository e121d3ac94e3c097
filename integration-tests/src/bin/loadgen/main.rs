//! `loadgen`: opens N channels with a hub and runs M concurrent pipelined payment streams,
//! then prints acknowledged payments/s, latency percentiles (send → ack), the raw k256 sign
//! and verify rates measured in this process right before and right after the run (averaged;
//! their drift is printed), and the ratio of the achieved rate to the crypto bound
//! `cores / (sign + verify)`.
//!
//! Stream `s` pays over channel `s` (so `--streams` must not exceed `--channels`; extra
//! channels stay idle): one device, one channel, one `Payments.Pay` stream with at most
//! `--window` unacknowledged payments. With `--spread`, stream `s` goes on to channel
//! `s + streams`, `s + 2 × streams`, ... so the payments cover every channel. Everything is bounded: payments per stream, an
//! optional `--duration-secs`, per-ack and overall timeouts. Loopback use is intended.
//!
//! Closed loop by default (each stream keeps `--window` payments in flight). With `--rate R`
//! each stream sends open loop, `R` payments per second on average whatever the acks do (Poisson
//! arrivals by default, or `--arrivals fixed`; streams are not synchronised, see [`schedule`]), and
//! latency is measured from the *scheduled* send time, so a stalled hub shows up as latency
//! rather than as a slower sender (no coordinated omission). A spawned hub's resident memory
//! and its user/system CPU per acknowledged payment (from `/proc`) are printed beside the
//! crypto rates. `--json` prints one JSON object instead of `name: value` lines. `--restart`
//! then kills the spawned hub with SIGKILL, times its restart and checks every device's last
//! acknowledged payment against the restarted hub.
//!
//! ```text
//! cargo run --release -p integration-tests --bin loadgen -- --spawn --channels 100 --streams 100 --payments 200
//! cargo run --release -p integration-tests --bin loadgen -- --spawn --channels 1000 --streams 1000 --rate 5 --duration-secs 20 --payments 1000000 --connections 1000 --presign
//! cargo run --release -p integration-tests --bin loadgen -- --spawn --channels 100000 --streams 1000 --payments 10 --spread --restart --connections 128 --setup-concurrency 512 --timeout-secs 3600
//! cargo run --release -p integration-tests --bin loadgen -- --hub http://127.0.0.1:50051 --channels 10 --streams 10
//! cargo run --release -p integration-tests --bin loadgen -- --spawn --sessions 1000 --payments 20
//! ```

use std::collections::{HashMap, VecDeque};
use std::error::Error;
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_core::primitives::U256;
use clap::Parser;
use futures::{StreamExt, TryStreamExt};
use integration_tests::device::{device_key, device_nonce, HubIdentity, TestDevice};
use integration_tests::process::connect;
use integration_tests::stats::{latency_ms, CryptoCost, ProcStats};
use integration_tests::{HarnessError, HubOptions, HubProcess, PayAck};
use tokio::sync::Barrier;
use tonic::transport::Channel;

type BoxError = Box<dyn Error + Send + Sync>;

mod mediated;
mod schedule;
mod sessions;

use schedule::{Arrivals, Schedule};

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
    /// Open loop: payments per second per stream, on the schedule `--arrivals` names (the
    /// window still bounds what is in flight; a payment that finds it full waits, and its
    /// latency counts from its scheduled time).
    #[arg(long)]
    rate: Option<f64>,
    /// Open loop: how each stream's sends are spaced: `poisson` (independent exponential
    /// gaps) or `fixed` (exactly 1/rate apart, from a random phase per stream).
    #[arg(long, value_enum, default_value_t = Arrivals::Poisson, requires = "rate")]
    arrivals: Arrivals,
    /// Sign every stream's payments before the clock starts, so that during the run this
    /// machine's cores do what the hub does and not what the devices (on their own CPUs) do.
    /// With `--duration-secs` each stream pre-signs what its rate can send in that time plus a
    /// margin, and signs on the fly beyond that (counted in `signed_during_run`). Payments
    /// signed but not sent leave the devices' records ahead of the hub's, so not with
    /// `--restart`.
    #[arg(long, conflicts_with_all = ["spread", "restart"])]
    presign: bool,
    /// Print one JSON object instead of `name: value` lines.
    #[arg(long)]
    json: bool,
    /// Mediated payments: `--streams` payers pay `--payees` payee devices through the hub
    /// (hash-time-locked transfers, the whole protocol per payment). Needs `--spawn` (the
    /// loadgen funds the hub's liquidity as its operator).
    #[arg(long, requires = "spawn")]
    mediated: bool,
    /// Payee devices of `--mediated` (their channels come on top of `--channels`).
    #[arg(long, default_value_t = 1)]
    payees: usize,
    /// Metered sessions: this many concurrent sessions, each between its own payee (a
    /// charger) and payer (a car) using the device SDK; every session publishes
    /// `--payments` readings, each paid through the hub before the next. Needs `--spawn`.
    #[arg(long, requires = "spawn", conflicts_with = "mediated")]
    sessions: Option<usize>,
    /// Spread the payments over every channel: stream `s` pays `--payments` over channel `s`,
    /// then over channel `s + streams`, and so on, so `--channels` × `--payments` payments in
    /// all with `--streams` in flight. Closed loop only.
    #[arg(long, conflicts_with_all = ["rate", "mediated", "sessions"])]
    spread: bool,
    /// After the run, `kill -9` the spawned hub, restart it on its data directory and time
    /// until it serves again; then log every device in again and check that the hub still
    /// holds each device's last acknowledged payment. Prints the data directory's size too.
    #[arg(long, requires = "spawn", conflicts_with_all = ["mediated", "sessions"])]
    restart: bool,
}

/// The figures of a run, printed at the end as `name: value` lines or one JSON object.
#[derive(Debug, Default)]
struct Report(Vec<(&'static str, serde_json::Value)>);

impl Report {
    fn add(&mut self, name: &'static str, value: impl Into<serde_json::Value>) {
        self.0.push((name, value.into()));
    }

    fn print(&self, json: bool) {
        if json {
            let map: serde_json::Map<String, serde_json::Value> = self
                .0
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect();
            println!("{}", serde_json::Value::Object(map));
        } else {
            for (k, v) in &self.0 {
                match v {
                    serde_json::Value::String(s) => println!("{k}: {s}"),
                    other => println!("{k}: {other}"),
                }
            }
        }
    }
}

impl Report {
    /// The figures every mode ends with: the latency percentiles of `latencies` (sorted),
    /// the ratio of `rate` to the in-run crypto `bound`, and the spawned hub's resident
    /// memory and CPU per one of the `count` units, if its `/proc` stats were read.
    fn add_latency_bound_and_hub(
        &mut self,
        latencies: &[Duration],
        rate: f64,
        bound: f64,
        count: u64,
        hub: (Option<ProcStats>, Option<ProcStats>),
    ) {
        for (name, ms) in latency_ms(latencies) {
            self.add(name, ms);
        }
        self.add("ratio_to_crypto_bound", round(rate / bound, 3));
        if let (Some(before), Some(after)) = hub {
            let (user, system) = before.cpu_us_per(&after, count);
            self.add("hub_rss_mb", round(after.rss_kb as f64 / 1024.0, 1));
            self.add("hub_cpu_user_us_per_payment", round(user, 1));
            self.add("hub_cpu_system_us_per_payment", round(system, 1));
        }
    }
}

/// Rounds for display.
fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

/// What one stream saw.
#[derive(Debug, Default)]
struct StreamResult {
    accepted: u64,
    rejected: u64,
    first_rejection: Option<String>,
    latencies: Vec<Duration>,
    /// Payments signed after the clock started although `--presign` was given.
    signed_during_run: u64,
}

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let args = Args::parse();
    // Off unless RUST_LOG asks (e.g. RUST_LOG=voltlane_client=warn for the session devices).
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .try_init();
    if args.streams == 0 || args.streams > args.channels {
        return Err("--streams must be between 1 and --channels".into());
    }
    let bound = Duration::from_secs(args.timeout_secs);
    tokio::time::timeout(bound, run(args))
        .await
        .map_err(|_| format!("loadgen did not finish within {bound:?}"))?
}

async fn run(args: Args) -> Result<(), BoxError> {
    if args.rate.is_some_and(|r| !(r > 0.0 && r.is_finite())) {
        return Err("--rate must be a positive number of payments per second".into());
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if args.mediated {
        return mediated::run(&args, cores).await;
    }
    if let Some(n) = args.sessions {
        return sessions::run(&args, n, cores).await;
    }
    let (mut hub, url) = match &args.hub {
        Some(url) => (None, url.clone()),
        None => {
            let hub = HubProcess::start(HubOptions::default()).await?;
            let url = hub.url();
            (Some(hub), url)
        }
    };
    let hub_pid = hub.as_ref().and_then(HubProcess::pid);
    let mut report = Report::default();
    report.add(
        "hub",
        format!("{url}{}", if args.spawn { " (spawned)" } else { "" }),
    );
    report.add("cores", cores);
    report.add("channels", args.channels);
    report.add("streams", args.streams);
    report.add("payments_per_stream", args.payments);
    report.add("window", args.window);
    report.add(
        "mode",
        match args.rate {
            Some(r) => format!(
                "open loop, {r} payments/s per stream, {} arrivals",
                match args.arrivals {
                    Arrivals::Poisson => "poisson",
                    Arrivals::Fixed => "fixed-interval",
                }
            ),
            None => "closed loop".to_string(),
        },
    );

    let started = Instant::now();
    let devices = setup(&args, &url).await?;
    report.add("setup_secs", round(started.elapsed().as_secs_f64(), 2));

    // The baseline is measured right before and right after the run and averaged: a machine's
    // speed drifts, and one short measurement can be off by a third. The drift is printed.
    let crypto_before = CryptoCost::measure(args.crypto_samples)?;
    let before = hub_pid.and_then(ProcStats::read);
    let (results, elapsed, mut devices) = pay(&args, devices).await?;
    let after = hub_pid.and_then(ProcStats::read);
    let crypto_after = CryptoCost::measure(args.crypto_samples)?;
    let crypto = crypto_before.mean(&crypto_after);
    let crypto_bound = crypto.bound(cores);
    for (name, rate) in crypto.figures() {
        report.add(name, rate);
    }
    report.add(
        "crypto_baseline_drift",
        round(crypto_before.drift(&crypto_after), 3),
    );
    report.add("crypto_bound_payments_per_sec", crypto_bound.round());
    let mut latencies: Vec<Duration> = Vec::new();
    let (mut accepted, mut rejected, mut rejection) = (0u64, 0u64, None);
    let mut signed_during_run = 0u64;
    for r in results {
        accepted += r.accepted;
        rejected += r.rejected;
        rejection = rejection.or(r.first_rejection);
        latencies.extend(r.latencies);
        signed_during_run += r.signed_during_run;
    }
    latencies.sort_unstable();
    let rate = accepted as f64 / elapsed.as_secs_f64();
    report.add("acked_payments", accepted);
    report.add("rejected_payments", rejected);
    if let Some(reason) = rejection {
        report.add("first_rejection", reason);
    }
    report.add("elapsed_secs", round(elapsed.as_secs_f64(), 3));
    if args.presign {
        report.add("signed_during_run", signed_during_run);
    }
    report.add("acked_payments_per_sec", rate.round());
    let measured = before.is_some() && after.is_some();
    report.add_latency_bound_and_hub(&latencies, rate, crypto_bound, accepted, (before, after));
    if measured {
        report.add("sign_us", round(crypto.sign.as_secs_f64() * 1e6, 1));
        report.add("hub_verify_us", round(crypto.verify.as_secs_f64() * 1e6, 1));
    }
    if let (true, Some(hub)) = (args.restart, hub.as_mut()) {
        restart_and_check(&args, hub, &mut devices, &mut report).await?;
    }
    report.print(args.json);
    Ok(())
}

/// `--restart`: the data directory's size, then `kill -9`, restart and the time until the hub
/// serves again, its memory then, and a check of every device's last acknowledged payment.
async fn restart_and_check(
    args: &Args,
    hub: &mut HubProcess,
    devices: &mut [TestDevice],
    report: &mut Report,
) -> Result<(), BoxError> {
    report.add(
        "data_dir_mb",
        round(dir_bytes(hub.data_dir())? as f64 / 1e6, 1),
    );
    hub.kill9()?;
    let started = Instant::now();
    hub.restart().await?;
    report.add("restart_secs", round(started.elapsed().as_secs_f64(), 2));
    if let Some(stats) = hub.pid().and_then(ProcStats::read) {
        report.add(
            "hub_rss_mb_after_restart",
            round(stats.rss_kb as f64 / 1024.0, 1),
        );
    }
    let mut conns: Vec<Channel> = Vec::new();
    for _ in 0..args.connections.max(1) {
        conns.push(hub.connect().await?);
    }
    let conns = &conns;
    let checked = Instant::now();
    let lost: u64 = futures::stream::iter(devices.iter_mut().enumerate())
        .map(|(i, device)| async move {
            device.relogin(conns[i % conns.len()].clone()).await?;
            let held = device_nonce(&device.hub_view().await?);
            let acked = device.channel()?.our().nonce();
            Ok::<u64, HarnessError>(u64::from(held != acked))
        })
        .buffer_unordered(args.setup_concurrency.max(1))
        .try_fold(0, |sum, lost| async move { Ok(sum + lost) })
        .await?;
    report.add("devices_checked_after_restart", devices.len());
    report.add("check_secs", round(checked.elapsed().as_secs_f64(), 2));
    report.add("acknowledged_payments_lost", lost);
    Ok(())
}

/// Bytes of the regular files under `dir`.
fn dir_bytes(dir: &std::path::Path) -> std::io::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata()?;
        total += if meta.is_dir() {
            dir_bytes(&entry.path())?
        } else {
            meta.len()
        };
    }
    Ok(total)
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
    let identity = HubIdentity::fetch(conns[0].clone()).await?;
    let conns = &conns;
    let mut devices: Vec<(usize, TestDevice)> = futures::stream::iter(0..args.channels)
        .map(|i| async move {
            let key = device_key(seed, i as u64)?;
            let conn = conns[i % conns.len()].clone();
            let mut device = TestDevice::login_to(conn, key, identity).await?;
            device.open_channel(deposit).await?;
            Ok::<_, HarnessError>((i, device))
        })
        .buffer_unordered(args.setup_concurrency.max(1))
        .try_collect()
        .await?;
    devices.sort_by_key(|(i, _)| *i);
    Ok(devices.into_iter().map(|(_, d)| d).collect())
}

/// Runs the streams; returns their results, the time from the common start to the last
/// acknowledgement, and the devices (in the order given).
async fn pay(
    args: &Args,
    devices: Vec<TestDevice>,
) -> Result<(Vec<StreamResult>, Duration, Vec<TestDevice>), BoxError> {
    let barrier = Arc::new(Barrier::new(args.streams + 1));
    let deadline = args.duration_secs.map(Duration::from_secs);
    let plan = Plan {
        presign: args.presign,
        rate: args.rate.map(|r| (r, args.arrivals)),
        schedule_seed: args.seed.unwrap_or_else(|| std::process::id().into()),
        payments: args.payments,
        amount: U256::from(args.amount),
        window: args.window.max(1),
        duration: deadline,
        ack_timeout: Duration::from_secs(args.ack_timeout_secs),
    };
    // Stream s takes device s, and with --spread also s + streams, s + 2 × streams, ...
    let mut shares: Vec<Vec<(usize, TestDevice)>> = (0..args.streams).map(|_| Vec::new()).collect();
    let mut idle = Vec::new();
    for (i, device) in devices.into_iter().enumerate() {
        match shares.get_mut(i % args.streams) {
            Some(share) if args.spread || i < args.streams => share.push((i, device)),
            _ => idle.push((i, device)),
        }
    }
    let mut tasks = Vec::new();
    for (s, share) in shares.into_iter().enumerate() {
        let plan = Plan {
            schedule_seed: plan.schedule_seed ^ (s as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ..plan
        };
        tasks.push(tokio::spawn(stream_share(share, plan, barrier.clone())));
    }
    barrier.wait().await;
    let started = Instant::now();
    let mut results = Vec::new();
    let mut all = idle;
    for task in tasks {
        let (result, share) = task.await??;
        results.push(result);
        all.extend(share);
    }
    let elapsed = started.elapsed();
    all.sort_by_key(|(i, _)| *i);
    Ok((results, elapsed, all.into_iter().map(|(_, d)| d).collect()))
}

/// One stream's devices in turn: each gets its own `Pay` stream and `plan.payments`
/// payments. The stream waits at `barrier` once, before its first payment.
async fn stream_share(
    mut share: Vec<(usize, TestDevice)>,
    plan: Plan,
    barrier: Arc<Barrier>,
) -> Result<(StreamResult, Vec<(usize, TestDevice)>), HarnessError> {
    let mut total = StreamResult::default();
    let mut barrier = Some(barrier);
    for (_, device) in share.iter_mut() {
        let r = stream(device, plan, barrier.take()).await?;
        total.accepted += r.accepted;
        total.rejected += r.rejected;
        total.first_rejection = total.first_rejection.or(r.first_rejection);
        total.latencies.extend(r.latencies);
        total.signed_during_run += r.signed_during_run;
    }
    if let Some(b) = barrier {
        b.wait().await;
    }
    Ok((total, share))
}

/// Parameters of one stream.
#[derive(Clone, Copy, Debug)]
struct Plan {
    /// Open loop: payments per second and how they are spaced.
    rate: Option<(f64, Arrivals)>,
    /// Seed of this stream's open-loop schedule.
    schedule_seed: u64,
    /// Sign the stream's payments before the barrier.
    presign: bool,
    payments: u64,
    amount: U256,
    window: usize,
    duration: Option<Duration>,
    ack_timeout: Duration,
}

impl Plan {
    /// How many payments a stream signs before the clock starts: all of them, or with a
    /// duration what its rate can send in it (plus a quarter and 20, for Poisson's spread).
    fn presign_count(&self) -> u64 {
        match (self.duration, self.rate) {
            (Some(d), Some((rate, _))) => {
                let expected = rate * d.as_secs_f64();
                self.payments.min((expected * 1.25 + 20.0).ceil() as u64)
            }
            _ => self.payments,
        }
    }
}

/// One device's pipelined stream: keeps up to `window` payments unacknowledged.
async fn stream(
    device: &mut TestDevice,
    plan: Plan,
    barrier: Option<Arc<Barrier>>,
) -> Result<StreamResult, HarnessError> {
    let mut session = device.pay_session(plan.window).await;
    let mut presigned = VecDeque::new();
    if plan.presign {
        for _ in 0..plan.presign_count() {
            presigned.push_back(device.next_payment(plan.amount)?);
        }
    }
    if let Some(barrier) = barrier {
        barrier.wait().await;
    }
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
    // Open loop: when the next payment is due (its latency counts from then).
    let mut schedule = plan
        .rate
        .map(|(rate, arrivals)| Schedule::new(arrivals, rate, started, plan.schedule_seed));
    loop {
        let time_left = plan.duration.is_none_or(|d| started.elapsed() < d);
        while sent_at.len() < plan.window && sent < plan.payments && time_left {
            let due = schedule.as_ref().map(Schedule::due);
            if due.is_some_and(|t| t > Instant::now()) {
                break;
            }
            if let Some(s) = schedule.as_mut() {
                s.advance();
            }
            let msg = match presigned.pop_front() {
                Some(msg) => msg,
                None => {
                    out.signed_during_run += 1;
                    device.next_payment(plan.amount)?
                }
            };
            sent_at.insert(msg.request_id, due.unwrap_or_else(Instant::now));
            session.send(msg).await?;
            sent += 1;
        }
        let more_to_send = sent < plan.payments && time_left;
        if sent_at.is_empty() && !more_to_send {
            break;
        }
        let next_due = if more_to_send && sent_at.len() < plan.window {
            // Wake at the next send, or at the end of the run if that comes first (a long
            // Poisson gap must not keep the stream, and the measured elapsed time, running).
            let end = plan.duration.map(|d| started + d);
            match (schedule.as_ref().map(Schedule::due), end) {
                (Some(due), Some(end)) => Some(due.min(end)),
                (due, _) => due,
            }
        } else {
            None
        };
        let ack = match next_due {
            Some(due) => tokio::select! {
                _ = tokio::time::sleep_until(due.into()) => continue,
                ack = tokio::time::timeout(plan.ack_timeout, session.next_ack()) => ack,
            },
            None if sent_at.is_empty() => continue,
            None => tokio::time::timeout(plan.ack_timeout, session.next_ack()).await,
        };
        let ack = ack
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
