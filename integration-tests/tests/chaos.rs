//! Chaos test for issue 6: the real hub is `kill -9`ed over and over at random moments while
//! several devices stream payments, the operator pays devices back now and then, and some
//! devices close their channels on the ledger (with no proof of the hub's, or with an older
//! hub proof than the hub's latest) and then open a new one.
//!
//! Checked after every restart: the hub still holds every device nonce it acknowledged and
//! every hub payment the operator was answered (`Channels.GetChannel`). Checked at the end,
//! after the settlement windows: every closed channel was contested (the ledger holds the
//! device's last acknowledged nonce) and settled paying exactly the off-chain balances.
//!
//! Randomness (kill and pause lengths, payment sizes, when and how devices close) comes from
//! one seed, printed at the start: `VOLTLANE_CHAOS_SEED=<seed>` replays the same decisions
//! (the scheduling of the processes still varies). `VOLTLANE_CHAOS_KILLS=<n>` runs longer
//! than the default 20 kills. A summary line (kills, payments, closes, contests) goes to
//! stderr; `cargo test -p integration-tests --test chaos -- --nocapture` shows it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use channel_core::crypto::{LocalSigner, Signer};
use channel_core::primitives::{Address, U256};
use channel_core::SignedBalanceProof;
use futures::StreamExt;
use integration_tests::device::{device_key, device_nonce, login, payment_message, Bearer};
use integration_tests::process::connect;
use integration_tests::settlement::{
    ledger_outcome, settlements, token_balance, wait_settled, CloseExpectation,
};
use integration_tests::{
    within, HarnessError, HubOptions, HubProcess, Operator, PayAck, PaySession, TestDevice,
};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

const SEED_ENV: &str = "VOLTLANE_CHAOS_SEED";
const KILLS_ENV: &str = "VOLTLANE_CHAOS_KILLS";
const DEFAULT_KILLS: u64 = 20;
/// Devices streaming payments at any time; the first `CLOSER_SLOTS` of them close at random
/// moments and go on with a new key and channel.
const SLOTS: u64 = 6;
const CLOSER_SLOTS: u64 = 4;
const DEPOSIT: u64 = 1_000_000;
/// Settlement window: must cover a kill, the restart of a debug build and the contest.
const WINDOW_SECS: u64 = 5;
/// How long the hub runs between restart and kill, and stays dead, in ms.
const UP_MS: std::ops::Range<u64> = 250..900;
const DOWN_MS: std::ops::Range<u64> = 0..200;
const MAX_BATCH: u64 = 8;
const MAX_PAYMENT: u64 = 100;
const MAX_OPERATOR_PAYMENT: u64 = 20;
/// A closer slot closes this long (ms, drawn per channel) after opening, at the first batch
/// boundary once it has at least `MIN_PAYMENTS_BEFORE_CLOSE` payments acknowledged.
const CLOSE_AFTER_MS: std::ops::Range<u64> = 1_500..7_000;
const MIN_PAYMENTS_BEFORE_CLOSE: u64 = 3;
/// Channels checked at once after a restart.
const CHECKS_IN_PARALLEL: usize = 4;
/// Chance a device polls `ListChannels` after a batch (which makes the hub catch up with the
/// ledger inside the request, racing its watcher).
const LIST_CHANCE: f64 = 0.2;
/// Chance a closing device uses a stale hub proof (when it holds two or more).
const STALE_CHANCE: f64 = 0.6;
/// Bound of one call or one awaited ack; a dead hub fails faster (connection reset).
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Attempts to get through to a running hub before a device gives up (a violation).
const MAX_ATTEMPTS: u32 = 100;
const KEY_SEED: u64 = 0x6c;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_killed_at_random_keeps_acknowledged_payments_and_contests_every_close() {
    let seed = std::env::var(SEED_ENV)
        .ok()
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .expect("VOLTLANE_CHAOS_SEED is a u64")
        })
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64)
        });
    let kills = std::env::var(KILLS_ENV)
        .ok()
        .map(|s| {
            s.trim()
                .parse::<u64>()
                .expect("VOLTLANE_CHAOS_KILLS is a u64")
        })
        .unwrap_or(DEFAULT_KILLS);
    eprintln!("chaos seed {seed} ({SEED_ENV}={seed} replays it), {kills} kills");
    let limit = Duration::from_secs(60 + 3 * kills);
    within(limit, "the chaos run", run(seed, kills))
        .await
        .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
}

/// What the test knows about one channel ever opened.
#[derive(Clone, Debug)]
struct Record {
    key_index: u64,
    device: Address,
    id: U256,
    /// Highest device nonce the hub acknowledged, or showed it held after a reconnect, and
    /// that proof's transferred amount.
    acked: u64,
    acked_transferred: U256,
    /// Proofs of hub payments the operator was answered with, in nonce order.
    hub_proofs: Vec<SignedBalanceProof>,
    closing: bool,
    closed: Option<Closed>,
}

/// How a device closed: with which hub proof, and its own proof the hub must contest with.
#[derive(Clone, Debug)]
struct Closed {
    hub_proof: Option<SignedBalanceProof>,
    device_nonce: u64,
    device_transferred: U256,
}

#[derive(Debug, Default)]
struct Stats {
    kills: AtomicU64,
    payments_acked: AtomicU64,
    resent: AtomicU64,
    reconnects: AtomicU64,
    operator_pays: AtomicU64,
    operator_refused: AtomicU64,
    list_calls: AtomicU64,
}

fn bump(counter: &AtomicU64) {
    counter.fetch_add(1, Ordering::Relaxed);
}

#[derive(Debug)]
struct Shared {
    url: String,
    hub: Address,
    stop: AtomicBool,
    records: Mutex<Vec<Record>>,
    violations: Mutex<Vec<String>>,
    stats: Stats,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    fn violation(&self, what: String) {
        eprintln!("VIOLATION: {what}");
        self.violations.lock().unwrap().push(what);
    }

    fn with<T>(&self, idx: usize, f: impl FnOnce(&mut Record) -> T) -> T {
        f(&mut self.records.lock().unwrap()[idx])
    }

    fn snapshot(&self) -> Vec<Record> {
        self.records.lock().unwrap().clone()
    }
}

/// Runs `fut` for at most [`RPC_TIMEOUT`].
async fn rpc<T>(fut: impl Future<Output = Result<T, HarnessError>>) -> Result<T, HarnessError> {
    within(RPC_TIMEOUT, "a hub call", fut).await?
}

async fn run(seed: u64, kills: u64) {
    let started = Instant::now();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut hub = HubProcess::start(HubOptions {
        settlement_window_secs: WINDOW_SECS,
        ..HubOptions::default()
    })
    .await
    .unwrap();
    let operator_key = hub.operator_key().unwrap();
    let shared = Arc::new(Shared {
        url: hub.url(),
        hub: operator_key.address(),
        stop: AtomicBool::new(false),
        records: Mutex::new(Vec::new()),
        violations: Mutex::new(Vec::new()),
        stats: Stats::default(),
    });
    let mut operator = Operator::login(hub.connect().await.unwrap(), operator_key.clone())
        .await
        .unwrap();
    let hub_tokens_before = token_balance(&mut operator.ledger(), shared.hub)
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for slot in 0..SLOTS {
        let rng = StdRng::seed_from_u64(seed ^ (slot + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15));
        tasks.push(tokio::spawn(run_slot(shared.clone(), slot, rng)));
    }
    let operator_rng = StdRng::seed_from_u64(seed.rotate_left(17) ^ 0x5eed);
    let operator_task = tokio::spawn(run_operator(
        shared.clone(),
        operator_key.clone(),
        operator_rng,
    ));

    for kill in 1..=kills {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(UP_MS))).await;
        hub.kill9().unwrap();
        bump(&shared.stats.kills);
        tokio::time::sleep(Duration::from_millis(rng.gen_range(DOWN_MS))).await;
        let restart = Instant::now();
        hub.restart().await.unwrap();
        let restarted_in = restart.elapsed();
        check_held(&shared).await;
        eprintln!(
            "kill {kill} at {:.1?}: restarted in {restarted_in:.1?}, checked {} channels in {:.1?}, {} payments acked",
            started.elapsed(),
            shared.records.lock().unwrap().len(),
            restart.elapsed() - restarted_in,
            shared.stats.payments_acked.load(Ordering::Relaxed)
        );
    }

    // Let every device finish its batch (and any close in progress), then stop.
    tokio::time::sleep(Duration::from_millis(rng.gen_range(UP_MS))).await;
    shared.stop.store(true, Ordering::SeqCst);
    for task in tasks {
        task.await.unwrap();
    }
    operator_task.await.unwrap();
    eprintln!("devices stopped at {:.1?}", started.elapsed());
    check_held(&shared).await;

    operator
        .relogin(hub.connect().await.unwrap())
        .await
        .unwrap();
    let mut ledger = operator.ledger();
    let records = shared.snapshot();
    let closed: Vec<(&Record, &Closed)> = records
        .iter()
        .filter_map(|r| r.closed.as_ref().map(|c| (r, c)))
        .collect();
    let channels: Vec<(U256, Address)> = closed.iter().map(|(r, _)| (r.id, r.device)).collect();
    let outcomes = wait_settled(
        &mut ledger,
        &channels,
        Duration::from_secs(WINDOW_SECS + 15),
    )
    .await
    .unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    let settled = settlements(&mut ledger, Duration::from_secs(10))
        .await
        .unwrap();

    let mut problems = shared.violations.lock().unwrap().clone();
    if closed.is_empty() {
        problems.push("no device closed during the run: nothing was contested".into());
    }
    let (mut contested, mut stale_closes, mut hub_owed) = (0, 0, U256::ZERO);
    for (r, c) in &closed {
        let expectation = CloseExpectation {
            channel_id: r.id,
            device: r.device,
            hub: shared.hub,
            device_deposit: U256::from(DEPOSIT),
            device_nonce: c.device_nonce,
            device_transferred: c.device_transferred,
            hub_transferred: c
                .hub_proof
                .map_or(U256::ZERO, |p| p.proof.balance.transferred_amount),
            device_tokens_before: U256::ZERO,
        };
        let outcome = &outcomes[&r.id];
        if outcome.device_nonce == Some(c.device_nonce) {
            contested += 1;
        }
        if c.hub_proof.is_some() {
            stale_closes += 1;
        }
        let tokens = token_balance(&mut ledger, r.device).await.unwrap();
        problems.extend(expectation.check(outcome, settled.get(&r.id), tokens));
        hub_owed += expectation.hub_amount().unwrap();
    }
    // Only settled channels paid the hub; every channel still open holds the rest.
    let hub_tokens = token_balance(&mut ledger, shared.hub).await.unwrap();
    if hub_tokens != hub_tokens_before + hub_owed {
        problems.push(format!(
            "hub holds {hub_tokens} tokens, expected {} ({hub_tokens_before} before + {hub_owed} owed by settled channels)",
            hub_tokens_before + hub_owed
        ));
    }

    let s = &shared.stats;
    let count = |c: &AtomicU64| c.load(Ordering::Relaxed);
    eprintln!(
        "chaos summary: seed {seed}, {} kills in {:.1?}, {} channels, {} payments acked ({} re-sent, {} reconnects), \
         {} operator payments ({} refused), {} ListChannels, {} closes ({} no proof, {stale_closes} stale hub proof), \
         {contested} contested, {} settled, {} problem(s)",
        count(&s.kills),
        started.elapsed(),
        records.len(),
        count(&s.payments_acked),
        count(&s.resent),
        count(&s.reconnects),
        count(&s.operator_pays),
        count(&s.operator_refused),
        count(&s.list_calls),
        closed.len(),
        closed.len() - stale_closes,
        outcomes
            .values()
            .filter(|o| o.phase == v1::ChannelPhase::Settled)
            .count(),
        problems.len()
    );
    assert!(
        problems.is_empty(),
        "seed {seed}: {} problem(s):\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// After a restart: the hub still holds, for every channel ever opened, the device nonce it
/// acknowledged and the hub payments the operator was answered with.
async fn check_held(shared: &Shared) {
    let conn = match connect(&shared.url).await {
        Ok(c) => c,
        Err(e) => return shared.violation(format!("cannot reach the restarted hub: {e}")),
    };
    let checks = shared
        .snapshot()
        .into_iter()
        .map(|r| check_one(shared, conn.clone(), r));
    futures::stream::iter(checks)
        .buffer_unordered(CHECKS_IN_PARALLEL)
        .collect::<Vec<()>>()
        .await;
}

async fn check_one(shared: &Shared, conn: tonic::transport::Channel, r: Record) {
    let view = async {
        let key = device_key(KEY_SEED, r.key_index)?;
        let token = login(conn.clone(), &key, &shared.hub).await?;
        let mut channels =
            v1::channels_client::ChannelsClient::with_interceptor(conn, Bearer::new(&token)?);
        Ok(channels
            .get_channel(v1::GetChannelRequest {
                channel_id: u256_bytes(&r.id),
            })
            .await?
            .into_inner())
    };
    let view = match rpc(view).await {
        Ok(v) => v,
        Err(e) => {
            return shared.violation(format!("channel {}: GetChannel after restart: {e}", r.id))
        }
    };
    let held = device_nonce(&view);
    if held < r.acked {
        shared.violation(format!(
            "channel {}: after restart the hub holds device nonce {held}, it acknowledged {}",
            r.id, r.acked
        ));
    }
    let hub_held = view
        .hub_proof
        .as_ref()
        .and_then(|p| p.proof.as_ref())
        .map_or(0, |p| p.nonce);
    let hub_paid = r.hub_proofs.last().map_or(0, |p| p.proof.nonce);
    if hub_held < hub_paid {
        shared.violation(format!(
            "channel {}: after restart the hub holds its own nonce {hub_held}, OperatorPay answered {hub_paid}",
            r.id
        ));
    }
}

/// One device slot: open a channel, stream payments, maybe close, again with a new key.
async fn run_slot(shared: Arc<Shared>, slot: u64, mut rng: StdRng) {
    let closes = slot < CLOSER_SLOTS;
    for generation in 0.. {
        if shared.stopped() {
            return;
        }
        let Some((mut device, idx)) = open_new(&shared, slot * 10_000 + generation).await else {
            tokio::time::sleep(RETRY_PAUSE).await;
            continue;
        };
        if !stream(&shared, &mut device, idx, closes, &mut rng).await {
            return;
        }
    }
}

/// Logs a fresh key in and opens a funded channel; None when the hub died meanwhile (the
/// key is then never used again).
async fn open_new(shared: &Shared, key_index: u64) -> Option<(TestDevice, usize)> {
    let key = device_key(KEY_SEED, key_index).ok()?;
    let conn = rpc(connect(&shared.url)).await.ok()?;
    let mut device = rpc(TestDevice::login(conn, key)).await.ok()?;
    let id = rpc(device.open_channel(U256::from(DEPOSIT))).await.ok()?;
    let mut records = shared.records.lock().unwrap();
    records.push(Record {
        key_index,
        device: device.address(),
        id,
        acked: 0,
        acked_transferred: U256::ZERO,
        hub_proofs: Vec::new(),
        closing: false,
        closed: None,
    });
    Some((device, records.len() - 1))
}

/// Streams batches of payments until the device closes (true) or the run stops (false).
async fn stream(
    shared: &Shared,
    device: &mut TestDevice,
    idx: usize,
    closes: bool,
    rng: &mut StdRng,
) -> bool {
    let mut unacked: VecDeque<(SignedBalanceProof, U256)> = VecDeque::new();
    let mut session: Option<PaySession> = None;
    let close_at =
        closes.then(|| Instant::now() + Duration::from_millis(rng.gen_range(CLOSE_AFTER_MS)));
    loop {
        let stop = shared.stopped();
        if stop && unacked.is_empty() {
            return false;
        }
        if session.is_none() {
            match rpc(device.pay_session(64)).await {
                Ok(s) => {
                    // Re-send, in order, whatever the hub has not acknowledged or held.
                    for (proof, amount) in &unacked {
                        bump(&shared.stats.resent);
                        let _ = s.send(payment_message(proof, *amount)).await;
                    }
                    session = Some(s);
                }
                Err(_) => {
                    if !reconnect(shared, device, idx, &mut unacked).await {
                        return false;
                    }
                    continue;
                }
            }
        }
        let Some(s) = session.as_mut() else {
            continue;
        };
        if !stop {
            for _ in 0..rng.gen_range(1..=MAX_BATCH) {
                let amount = U256::from(rng.gen_range(1..=MAX_PAYMENT));
                let proof = device.sign_payment(amount).unwrap();
                unacked.push_back((proof, amount));
                if s.send(payment_message(&proof, amount)).await.is_err() {
                    break;
                }
            }
        }
        match drain_acks(shared, s, idx, &mut unacked).await {
            Drained::All => {}
            Drained::Broken => {
                session = None;
                if !reconnect(shared, device, idx, &mut unacked).await {
                    return false;
                }
                continue;
            }
            Drained::Refused => return false,
        }
        if stop {
            continue;
        }
        if rng.gen_bool(LIST_CHANCE) {
            list_channels(shared, device).await;
        }
        let acked = shared.with(idx, |r| r.acked);
        if acked >= MIN_PAYMENTS_BEFORE_CLOSE && close_at.is_some_and(|t| Instant::now() >= t) {
            drop(session);
            return close(shared, device, idx, rng).await;
        }
        tokio::time::sleep(Duration::from_millis(rng.gen_range(0..20))).await;
    }
}

enum Drained {
    /// Every payment sent was acknowledged.
    All,
    /// The stream failed (the hub died), or the hub already holds a re-sent payment (an
    /// earlier stream delivered it after all): reconnect, learn what it holds, re-send.
    Broken,
    /// The hub refused a payment: recorded as a violation; this slot stops.
    Refused,
}

async fn drain_acks(
    shared: &Shared,
    session: &mut PaySession,
    idx: usize,
    unacked: &mut VecDeque<(SignedBalanceProof, U256)>,
) -> Drained {
    while let Some((front, _)) = unacked.front() {
        let expected = front.proof.nonce;
        let ack = match tokio::time::timeout(RPC_TIMEOUT, session.next_ack()).await {
            Ok(Ok(Some(ack))) => ack,
            _ => return Drained::Broken,
        };
        match ack {
            PayAck::Rejected {
                code: tonic::Code::AlreadyExists,
                ..
            } => return Drained::Broken,
            PayAck::Accepted {
                nonce, transferred, ..
            } if nonce == expected => {
                unacked.pop_front();
                shared.with(idx, |r| {
                    r.acked = nonce;
                    r.acked_transferred = transferred;
                });
                bump(&shared.stats.payments_acked);
            }
            other => {
                let id = shared.with(idx, |r| r.id);
                shared.violation(format!(
                    "channel {id}: payment nonce {expected} answered {other:?}"
                ));
                return Drained::Refused;
            }
        }
    }
    Drained::All
}

/// Reconnects and logs in again until the hub answers, then learns which device nonce it
/// holds: every proof up to it counts as acknowledged (its ack was lost with the
/// connection); an acknowledged nonce above it is a violation. False when the hub could not
/// be reached in [`MAX_ATTEMPTS`] (also a violation).
async fn reconnect(
    shared: &Shared,
    device: &mut TestDevice,
    idx: usize,
    unacked: &mut VecDeque<(SignedBalanceProof, U256)>,
) -> bool {
    bump(&shared.stats.reconnects);
    let mut last_error = None;
    let mut view = None;
    for _ in 0..MAX_ATTEMPTS {
        tokio::time::sleep(RETRY_PAUSE).await;
        let attempt = async {
            let conn = connect(&shared.url).await?;
            device.relogin(conn).await?;
            device.hub_view().await
        };
        match rpc(attempt).await {
            Ok(v) => {
                view = Some(v);
                break;
            }
            Err(e) => last_error = Some(e),
        }
    }
    let Some(view) = view else {
        let id = shared.with(idx, |r| r.id);
        shared.violation(format!(
            "channel {id}: no GetChannel answer in {MAX_ATTEMPTS} attempts: {last_error:?}"
        ));
        return false;
    };
    let held = device_nonce(&view);
    let (id, acked) = shared.with(idx, |r| (r.id, r.acked));
    if held < acked {
        shared.violation(format!(
            "channel {id}: after reconnecting the hub holds device nonce {held}, it acknowledged {acked}"
        ));
    }
    while let Some((proof, _)) = unacked.front() {
        if proof.proof.nonce > held {
            break;
        }
        let (nonce, transferred) = (proof.proof.nonce, proof.proof.balance.transferred_amount);
        shared.with(idx, |r| {
            if nonce > r.acked {
                r.acked = nonce;
                r.acked_transferred = transferred;
            }
        });
        unacked.pop_front();
    }
    true
}

async fn list_channels(shared: &Shared, device: &TestDevice) {
    bump(&shared.stats.list_calls);
    let mut channels = device.channels();
    let _ = tokio::time::timeout(
        RPC_TIMEOUT,
        channels.list_channels(v1::ListChannelsRequest::default()),
    )
    .await;
}

/// Closes on the ledger as the device (every payment acknowledged), with no hub proof or a
/// stale one, retrying across kills until the ledger shows the channel closed; then makes
/// one more call at once, as a device app would. True once closed; false (a violation) when
/// the close did not go through in [`MAX_ATTEMPTS`].
async fn close(shared: &Shared, device: &mut TestDevice, idx: usize, rng: &mut StdRng) -> bool {
    let hub_proof = shared.with(idx, |r| {
        r.closing = true;
        let n = r.hub_proofs.len();
        (n >= 2 && rng.gen_bool(STALE_CHANCE)).then(|| r.hub_proofs[rng.gen_range(0..n - 1)])
    });
    let (id, me) = (device.channel_id().unwrap(), device.address());
    let mut closed = false;
    let mut last_error = None;
    for _ in 0..MAX_ATTEMPTS {
        match rpc(device.close_on_ledger(hub_proof.as_ref())).await {
            Ok(()) => {
                closed = true;
                break;
            }
            Err(e) => last_error = Some(e),
        }
        // The close may have landed before the hub died: ask the ledger.
        tokio::time::sleep(RETRY_PAUSE).await;
        let landed = async {
            let conn = connect(&shared.url).await?;
            device.relogin(conn).await?;
            ledger_outcome(&mut device.ledger(), id, me).await
        };
        if let Ok(o) = rpc(landed).await {
            if o.phase != v1::ChannelPhase::Opened {
                closed = true;
                break;
            }
        }
    }
    if !closed {
        shared.violation(format!(
            "channel {id}: the device's close did not go through in {MAX_ATTEMPTS} attempts: {last_error:?}"
        ));
        return false;
    }
    shared.with(idx, |r| {
        r.closed = Some(Closed {
            hub_proof,
            device_nonce: r.acked,
            device_transferred: r.acked_transferred,
        });
    });
    if rng.gen_bool(0.5) {
        list_channels(shared, device).await;
    } else {
        let _ = rpc(device.hub_view()).await;
    }
    true
}

/// The operator pays a random device with an open channel now and then; each answered
/// payment's proof is recorded (a device may later close with it, stale).
async fn run_operator(shared: Arc<Shared>, key: LocalSigner, mut rng: StdRng) {
    let mut operator: Option<Operator> = None;
    while !shared.stopped() {
        tokio::time::sleep(Duration::from_millis(rng.gen_range(20..100))).await;
        let Some(op) = operator.as_ref() else {
            if let Ok(conn) = rpc(connect(&shared.url)).await {
                operator = rpc(Operator::login(conn, key.clone())).await.ok();
            }
            continue;
        };
        let candidates: Vec<(usize, U256)> = shared
            .records
            .lock()
            .unwrap()
            .iter()
            .enumerate()
            .filter(|(_, r)| !r.closing && r.closed.is_none() && r.acked > 0)
            .map(|(i, r)| (i, r.id))
            .collect();
        if candidates.is_empty() {
            continue;
        }
        let (idx, id) = candidates[rng.gen_range(0..candidates.len())];
        let amount = U256::from(rng.gen_range(1..=MAX_OPERATOR_PAYMENT));
        match rpc(op.pay(id, amount)).await {
            Ok(proof) => {
                bump(&shared.stats.operator_pays);
                shared.with(idx, |r| {
                    if r.hub_proofs
                        .last()
                        .is_none_or(|p| p.proof.nonce < proof.proof.nonce)
                    {
                        r.hub_proofs.push(proof);
                    }
                });
            }
            Err(_) => {
                // Refused (e.g. the channel is closing) or the hub died: log in afresh.
                bump(&shared.stats.operator_refused);
                operator = None;
            }
        }
    }
}
