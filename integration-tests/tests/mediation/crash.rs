//! `kill -9` of the hub at every step of a mediated payment: the hub is started with one of
//! its mediation fail points (`hub/src/failpoint.rs`, `MEDIATION_STEPS`), which aborts the
//! process right after that step is durable and before anything about it leaves. The payer
//! and the payee (raw protobuf devices) drive the payment until the hub dies; the hub is
//! restarted on the same data directory without the fail point; both log in again, reconnect
//! their streams (the payee asks for the hub's proofs after its last nonce, the payer for its
//! outcomes), re-send what was not acknowledged, and drive the payment to its end.
//!
//! The end must be one of the two the protocol allows, and exact on all four sides (payer,
//! the hub toward the payer, the hub toward the payee, payee): completed (the payee got the
//! amount, the hub amount + fee) or expired (every balance where it was). Nothing else.

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use channel_core::{Secret, U256};
use futures::StreamExt;
use integration_tests::mediation::{
    matched_device, test_key, test_secret, ChannelSnapshot, MediationSetup,
};
use integration_tests::{within, Forward, PayAck, PaySession, TestDevice};
use tonic::Code;
use voltlane_proto::convert::mediation::HubMessageKind;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

const FAILPOINT_ENV: &str = "VOLTLANE_FAILPOINTS";
/// The hub's mediation fail points, in protocol order (checked against the hub's list).
const STEPS: &[&str] = &[
    "after_forward_durable",
    "after_outgoing_unlocked",
    "after_incoming_unlocked",
];
/// SIGABRT, what `std::process::abort` dies of.
const SIGABRT: i32 = 6;
/// Bound of one wait for the hub (start, exit, a message).
const WAIT: Duration = Duration::from_secs(20);
/// Bound of one crash run, restart included (an expiry path included too).
const RUN_LIMIT: Duration = Duration::from_secs(75);
const SEED: u8 = 0xc7;
const PAYER_DEPOSIT: u64 = 5_000;
const PAYEE_DEPOSIT: u64 = 2_000;
const AMOUNT: u64 = 250;

fn setup(step: &str) -> MediationSetup {
    MediationSetup {
        fee_flat: 2,
        fee_ppm: 10_000,
        reveal_timeout: 3,
        // Room for the longest lock of these runs (`lock_expiration(now, 10)`).
        settlement_window: 20,
        auto_deposit: 1_000_000,
        env: vec![(FAILPOINT_ENV.into(), step.into())],
    }
}

fn u(n: u64) -> U256 {
    U256::from(n)
}

/// The names listed by `MEDIATION_STEPS` in the hub's fail point module.
fn hub_mediation_steps() -> Vec<String> {
    let source = include_str!("../../../hub/src/failpoint.rs");
    let start = source
        .find("pub const MEDIATION_STEPS")
        .expect("MEDIATION_STEPS in hub/src/failpoint.rs");
    let list = &source[start..];
    let list = &list[list.find("= &[").expect("a list") + 4..list.find("];").expect("its end")];
    list.split(',')
        .map(str::trim)
        .filter(|ident| !ident.is_empty())
        .map(|ident| {
            let decl = format!("pub const {ident}: &str = \"");
            let at = source.find(&decl).expect("the fail point's declaration") + decl.len();
            let end = source[at..].find('"').expect("the name's end");
            source[at..at + end].to_string()
        })
        .collect()
}

#[test]
fn every_mediation_step_of_the_hub_is_crashed_here() {
    assert_eq!(hub_mediation_steps(), STEPS);
}

// The payer's lock, its forward and the record are one write (so are the unlock toward the
// payee and the secret in the payer's channel): there is no step between them to crash at.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_after_forward_durable() {
    crash_at(STEPS[0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_after_outgoing_unlocked() {
    crash_at(STEPS[1]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_after_incoming_unlocked() {
    crash_at(STEPS[2]).await;
}

/// The hub dies with the forward durable but unsent; after the restart the payee gets the
/// lock from its backlog and never reveals: the restarted hub takes its lock back at that
/// lock's expiration and the payer takes back its own after the incoming one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_after_forward_durable_then_the_payee_never_reveals() {
    let run = CrashRun {
        step: STEPS[0],
        payee_reveals: false,
        margin: 3,
        variant: 1,
    };
    within(RUN_LIMIT, "forward durable, silent payee", async {
        assert_eq!(crash_run(run).await, "expired");
    })
    .await
    .unwrap();
}

/// How the payee's lock ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PayeeEnd {
    Paid,
    TakenBack,
}

/// One mediated payment as the two devices see it: what was signed, what was acknowledged.
struct Transfer {
    secret: Secret,
    expiration: u64,
    lock_msg: v1::PaymentMessage,
    /// The hub's answer to the lock: forwarded or not (None until acknowledged).
    forwarded: Option<bool>,
    unlock: Option<v1::PaymentMessage>,
    unlock_acked: bool,
    expired: Option<v1::PaymentMessage>,
    expired_acked: bool,
    /// The payment failed: the payer takes its lock back once it expires.
    payer_failed: bool,
    payee_has_lock: bool,
    /// Whether the payee reveals its secret at all (a silent payee lets the payment expire).
    payee_reveals: bool,
    /// The payee's reveal got an answer (a dead hub gives none: it is sent again).
    reveal_answered: bool,
    payee_end: Option<PayeeEnd>,
}

impl Transfer {
    fn payer_done(&self) -> bool {
        self.unlock_acked || self.expired_acked
    }

    fn payee_done(&self) -> bool {
        self.payee_end.is_some() || (self.forwarded == Some(false) && !self.payee_has_lock)
    }
}

/// The streams of one hub run.
struct Links {
    pay: PaySession,
    incoming: tonic::Streaming<v1::HubPayment>,
    events: tonic::Streaming<v1::PayerEvent>,
}

impl Links {
    /// Opens the payee's receive stream first (the hub forwards only to an online payee).
    async fn open(payer: &TestDevice, payee: &TestDevice) -> Self {
        let incoming = payee
            .receive(payee.channel().unwrap().partner().nonce())
            .await
            .unwrap();
        let events = payer
            .mediation()
            .payer_events(v1::PayerEventsRequest {
                channel_id: u256_bytes(&payer.channel_id().unwrap()),
            })
            .await
            .unwrap()
            .into_inner();
        let pay = payer.pay_session(8).await.unwrap();
        Self {
            pay,
            incoming,
            events,
        }
    }
}

/// Why [`drive`] stopped.
#[derive(Debug)]
enum Stop {
    Done,
    /// A stream or call failed: the hub is gone (or refused something it must not).
    HubGone(String),
}

/// Runs the payment on from wherever it stands until both sides are done or the hub fails.
async fn drive(
    t: &mut Transfer,
    payer: &mut TestDevice,
    payee: &mut TestDevice,
    links: &mut Links,
) -> Stop {
    loop {
        if t.payer_done() && t.payee_done() {
            return Stop::Done;
        }
        if t.payee_reveals && t.payee_has_lock && !t.reveal_answered && t.payee_end.is_none() {
            match payee
                .mediation()
                .reveal_secret(v1::RevealSecretRequest {
                    channel_id: u256_bytes(&payee.channel_id().unwrap()),
                    secret: t.secret.0 .0.to_vec(),
                })
                .await
            {
                // Paid (or already paid before a crash): the unlock arrives on the stream.
                Ok(_) => t.reveal_answered = true,
                Err(s) if s.code() == Code::AlreadyExists => t.reveal_answered = true,
                // Too late: the hub takes its lock back instead.
                Err(s) if s.code() == Code::FailedPrecondition => t.reveal_answered = true,
                Err(s) => return Stop::HubGone(format!("reveal: {s:?}")),
            }
            continue;
        }
        if t.payer_failed && t.expired.is_none() && !t.payer_done() {
            let now = match payer.ledger_now().await {
                Ok(now) => now,
                Err(e) => return Stop::HubGone(format!("ledger time: {e}")),
            };
            if now >= t.expiration {
                let msg = payer.sign_lock_expired(t.secret.hash(), now).unwrap();
                t.expired = Some(msg.clone());
                if let Err(e) = links.pay.send(msg).await {
                    return Stop::HubGone(format!("send lock expiry: {e}"));
                }
            }
        }
        tokio::select! {
            ack = links.pay.next_ack() => match ack {
                Ok(Some(ack)) => on_ack(t, ack),
                other => return Stop::HubGone(format!("pay stream: {other:?}")),
            },
            m = links.incoming.next() => match m {
                Some(Ok(m)) => {
                    let now = match payee.ledger_now().await {
                        Ok(now) => now,
                        Err(e) => return Stop::HubGone(format!("ledger time: {e}")),
                    };
                    let m = payee.apply_hub_message(m, now).unwrap();
                    match m.kind {
                        HubMessageKind::LockedTransfer { lock, .. } => {
                            assert_eq!(lock.secrethash, t.secret.hash());
                            assert_eq!(lock.amount, u(AMOUNT));
                            t.payee_has_lock = true;
                        }
                        HubMessageKind::Unlock { secret } => {
                            assert_eq!(secret, t.secret);
                            t.payee_end = Some(PayeeEnd::Paid);
                        }
                        HubMessageKind::LockExpired { .. } => {
                            t.payee_end = Some(PayeeEnd::TakenBack);
                        }
                        HubMessageKind::Payment => panic!("unexpected direct payment {m:?}"),
                    }
                }
                other => return Stop::HubGone(format!("receive stream: {other:?}")),
            },
            e = links.events.next() => match e {
                Some(Ok(e)) => match e.outcome {
                    Some(v1::payer_event::Outcome::SecretRevealed(s)) => {
                        assert_eq!(s, t.secret.0 .0.to_vec());
                        if t.unlock.is_none() && t.expired.is_none() {
                            let msg = payer.sign_unlock(t.secret).unwrap();
                            t.unlock = Some(msg.clone());
                            if let Err(e) = links.pay.send(msg).await {
                                return Stop::HubGone(format!("send unlock: {e}"));
                            }
                        }
                    }
                    Some(v1::payer_event::Outcome::Failed(_)) => t.payer_failed = true,
                    None => panic!("a payer event without outcome"),
                },
                other => return Stop::HubGone(format!("payer events: {other:?}")),
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
}

fn on_ack(t: &mut Transfer, ack: PayAck) {
    let lock_nonce = t.lock_msg.request_id;
    let nonce_of = |m: &Option<v1::PaymentMessage>| m.as_ref().map(|m| m.request_id);
    match &ack {
        PayAck::Accepted {
            nonce,
            forward: Some(forward),
            ..
        } if *nonce == lock_nonce => {
            let was_forwarded = matches!(forward, Forward::Forwarded { .. });
            t.forwarded = Some(was_forwarded);
            if !was_forwarded {
                t.payer_failed = true;
            }
        }
        PayAck::Accepted {
            nonce,
            forward: None,
            ..
        } if Some(*nonce) == nonce_of(&t.unlock) => t.unlock_acked = true,
        PayAck::Accepted {
            nonce,
            forward: None,
            ..
        } if Some(*nonce) == nonce_of(&t.expired) => t.expired_acked = true,
        other => panic!("unexpected answer on the pay stream: {other:?}"),
    }
}

/// One crash run: where the hub dies, and how the payment is meant to end.
#[derive(Clone, Copy, Debug)]
struct CrashRun {
    step: &'static str,
    /// The payee reveals its secret (the payment completes) or stays silent (it expires).
    payee_reveals: bool,
    /// Seconds the payer's lock outlives the shortest lock the hub forwards.
    margin: u64,
    /// Distinguishes the keys and secrets of runs sharing a step.
    variant: u8,
}

async fn crash_at(step: &'static str) {
    let run = CrashRun {
        step,
        payee_reveals: true,
        // Long enough for the crash and a restart before the payee's lock expires.
        margin: 10,
        variant: 0,
    };
    let outcome = within(RUN_LIMIT, step, crash_run(run)).await.unwrap();
    assert_eq!(outcome, "completed");
}

/// Runs the payment through the crash and the restart; returns how it ended.
async fn crash_run(run: CrashRun) -> &'static str {
    let step = run.step;
    let s = setup(step);
    let mut hub = s.start().await.unwrap();
    let n = u8::try_from(STEPS.iter().position(|x| *x == step).unwrap()).unwrap() + 5 * run.variant;
    let key = |i: u8| test_key(SEED, 10 * n + i).unwrap();
    let mut payer = matched_device(&hub, key(1), PAYER_DEPOSIT, PAYER_DEPOSIT, WAIT)
        .await
        .unwrap();
    let mut payee = matched_device(&hub, key(2), PAYEE_DEPOSIT, PAYEE_DEPOSIT, WAIT)
        .await
        .unwrap();
    let payer_before = ChannelSnapshot::of(&payer).await.unwrap();
    let payee_before = ChannelSnapshot::of(&payee).await.unwrap();
    let lock = s.lock_amount(AMOUNT);

    let now = payer.ledger_now().await.unwrap();
    let secret = test_secret(SEED, u64::from(n));
    let request = payee
        .payment_request(u(AMOUNT), secret, u64::from(n), now + 600)
        .unwrap();
    let expiration = s.lock_expiration(now, run.margin);
    let lock_msg = payer
        .sign_locked_transfer(&request, u(lock), expiration, now)
        .unwrap();
    let mut t = Transfer {
        secret,
        expiration,
        lock_msg: lock_msg.clone(),
        forwarded: None,
        unlock: None,
        unlock_acked: false,
        expired: None,
        expired_acked: false,
        payer_failed: false,
        payee_has_lock: false,
        payee_reveals: run.payee_reveals,
        reveal_answered: false,
        payee_end: None,
    };

    // First run: the hub dies at the fail point.
    let mut links = Links::open(&payer, &payee).await;
    links.pay.send(lock_msg).await.unwrap();
    let stop = drive(&mut t, &mut payer, &mut payee, &mut links).await;
    assert!(
        matches!(stop, Stop::HubGone(_)),
        "the payment ended without the hub dying at {step}"
    );
    drop(links);
    let status = hub.wait_exit(WAIT).await.unwrap();
    assert_eq!(status.signal(), Some(SIGABRT), "the hub died of {status}");
    let log = std::fs::read_to_string(hub.log_path()).unwrap();
    assert!(
        log.contains(&format!("fail point {step} hit")),
        "the hub did not die at {step}:\n{}",
        hub.log_tail()
    );

    // Second run, without the fail point: reconnect, re-send, drive to the end.
    hub.options_mut().env.clear();
    hub.restart().await.unwrap();
    payer.relogin(hub.connect().await.unwrap()).await.unwrap();
    payee.relogin(hub.connect().await.unwrap()).await.unwrap();
    let mut links = Links::open(&payer, &payee).await;
    if t.forwarded.is_none() {
        links.pay.send(t.lock_msg.clone()).await.unwrap();
    }
    for (msg, acked) in [(&t.unlock, t.unlock_acked), (&t.expired, t.expired_acked)] {
        if let (Some(msg), false) = (msg, acked) {
            links.pay.send(msg.clone()).await.unwrap();
        }
    }
    match drive(&mut t, &mut payer, &mut payee, &mut links).await {
        Stop::Done => {}
        Stop::HubGone(why) => panic!("after the restart from {step}: {why}"),
    }

    // Completed or expired, exactly, on all four sides.
    let payer_now = ChannelSnapshot::of(&payer).await.unwrap();
    let payee_now = ChannelSnapshot::of(&payee).await.unwrap();
    assert_eq!(
        payer_now,
        ChannelSnapshot::of_device_record(&payer).unwrap()
    );
    assert_eq!(
        payee_now,
        ChannelSnapshot::of_device_record(&payee).unwrap()
    );
    let completed = (
        ChannelSnapshot {
            device_nonce: payer_now.device_nonce,
            device_balance: u(PAYER_DEPOSIT - lock),
            hub_balance: u(PAYER_DEPOSIT + lock),
            device_capacity: u(PAYER_DEPOSIT - lock),
            hub_capacity: u(PAYER_DEPOSIT + lock),
            ..payer_before.clone()
        },
        ChannelSnapshot {
            hub_nonce: payee_now.hub_nonce,
            device_balance: u(PAYEE_DEPOSIT + AMOUNT),
            hub_balance: u(PAYEE_DEPOSIT - AMOUNT),
            device_capacity: u(PAYEE_DEPOSIT + AMOUNT),
            hub_capacity: u(PAYEE_DEPOSIT - AMOUNT),
            ..payee_before.clone()
        },
    );
    let expired = (
        ChannelSnapshot {
            device_nonce: payer_now.device_nonce,
            ..payer_before
        },
        ChannelSnapshot {
            hub_nonce: payee_now.hub_nonce,
            ..payee_before
        },
    );
    let end = (payer_now, payee_now);
    assert!(
        end == completed || end == expired,
        "after a crash at {step} the payment is neither completed nor expired:\n\
         payer channel {:?}\npayee channel {:?}\ncompleted would be {completed:?}\n\
         expired would be {expired:?}",
        end.0,
        end.1
    );
    let outcome = if end == completed {
        assert!(run.payee_reveals, "paid without revealing the secret");
        assert!(t.unlock_acked && t.payee_end == Some(PayeeEnd::Paid));
        "completed"
    } else {
        assert!(t.expired_acked && t.payee_end != Some(PayeeEnd::Paid));
        "expired"
    };
    assert!(payer.channel().unwrap().our().locks.is_empty());
    assert!(payee.channel().unwrap().partner().locks.is_empty());
    eprintln!("crash at {step}: the payment {outcome}");
    outcome
}
