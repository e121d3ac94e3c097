//! Regression test for issue 6 (A): devices that paid the hub close their channels on the
//! ledger all at once, with no proof of the hub's, and each immediately makes another hub
//! call. Those calls make the hub catch up with the ledger inside the request; the hub must
//! still contest every close with the device's last acknowledged proof, so each device gets
//! back exactly its deposit minus what it paid, and the hub exactly what it was paid.
//!
//! The other call is spread over `Channels.ListChannels`, `Channels.GetChannel`, a
//! `Payments.Pay` of more than the device has left (refused, after the hub caught up) and
//! the operator's `Payments.OperatorPay` to the closed channel. The whole scenario runs
//! several rounds on one hub, since a single round does not lose a close every time.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use channel_core::primitives::{Address, U256};
use channel_core::proofs::{BalanceData, BalanceProof};
use channel_core::H256;
use integration_tests::device::{device_key, device_nonce, payment_message};
use integration_tests::settlement::{settlements, token_balance, wait_settled, CloseExpectation};
use integration_tests::{within, HubOptions, HubProcess, Operator, PayAck, TestDevice};
use tokio::sync::Barrier;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

const DEVICES: u64 = 16;
const ROUNDS: u64 = 3;
const DEPOSIT: u64 = 10_000;
/// Four acknowledged payments of 1,000: the hub is owed 4,000 per channel.
const PAYMENT: u64 = 1_000;
const PAYMENTS: u64 = 4;
const WINDOW_SECS: u64 = 2;
/// Window + a second of ledger-time granularity + the watcher's tick, with slack.
const SETTLE_WITHIN: Duration = Duration::from_secs(WINDOW_SECS + 10);
/// Key seed of this test's devices (one key index per round and device).
const KEY_SEED: u64 = 0x6a;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_device_closes_followed_by_other_calls_are_all_contested() {
    within(
        Duration::from_secs(150),
        "concurrent_device_closes_followed_by_other_calls_are_all_contested",
        run(),
    )
    .await
    .unwrap();
}

async fn run() {
    let hub = HubProcess::start(HubOptions {
        settlement_window_secs: WINDOW_SECS,
        ..HubOptions::default()
    })
    .await
    .unwrap();
    let operator = Arc::new(
        Operator::login(hub.connect().await.unwrap(), hub.operator_key().unwrap())
            .await
            .unwrap(),
    );
    let mut problems = Vec::new();
    for round in 0..ROUNDS {
        let found = run_round(&hub, &operator, round).await;
        eprintln!(
            "round {round}: {} problem(s) in {DEVICES} channels",
            found.len()
        );
        problems.extend(found);
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) over {ROUNDS} rounds of {DEVICES} concurrent closes:\n{}",
        problems.len(),
        problems.join("\n")
    );
}

/// One round: fund and pay, close all at once with a follow-up call each, wait for
/// settlement, compare. Returns the problems found.
async fn run_round(hub: &HubProcess, operator: &Arc<Operator>, round: u64) -> Vec<String> {
    let deposit = U256::from(DEPOSIT);
    let mut ledger = operator.ledger();
    let hub_addr = operator.address();
    let hub_tokens_before = token_balance(&mut ledger, hub_addr).await.unwrap();

    // Fund and pay, all devices at once.
    let setups = (0..DEVICES).map(|i| async move {
        let key = device_key(KEY_SEED, round * DEVICES + i).unwrap();
        let mut device = TestDevice::login(hub.connect().await.unwrap(), key)
            .await
            .unwrap();
        device.open_channel(deposit).await.unwrap();
        let acked = device
            .pay_acked(U256::from(PAYMENT), PAYMENTS)
            .await
            .unwrap();
        assert_eq!(acked, PAYMENTS);
        let tokens = device.token_balance(device.address()).await.unwrap();
        (device, tokens)
    });
    let devices = futures::future::join_all(setups).await;

    let mut expectations = Vec::new();
    for (device, tokens) in &devices {
        expectations.push(CloseExpectation {
            channel_id: device.channel_id().unwrap(),
            device: device.address(),
            hub: hub_addr,
            device_deposit: deposit,
            device_nonce: PAYMENTS,
            device_transferred: U256::from(PAYMENT * PAYMENTS),
            hub_transferred: U256::ZERO,
            device_tokens_before: *tokens,
        });
    }

    // Everyone closes at the same moment and immediately makes one more call.
    let barrier = Arc::new(Barrier::new(devices.len()));
    let mut tasks = Vec::new();
    for (i, (device, _)) in devices.into_iter().enumerate() {
        let barrier = barrier.clone();
        let operator = operator.clone();
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            device.close_on_ledger(None).await.unwrap();
            let note = follow_up(i, &device, &operator).await;
            (device, note)
        }));
    }
    let mut devices = Vec::new();
    let mut problems = Vec::new();
    for task in tasks {
        let (device, note) = task.await.unwrap();
        if let Err(problem) = note {
            problems.push(problem);
        }
        devices.push(device);
    }

    let channels: Vec<(U256, Address)> = devices
        .iter()
        .map(|d| (d.channel_id().unwrap(), d.address()))
        .collect();
    let outcomes = match wait_settled(&mut ledger, &channels, SETTLE_WITHIN).await {
        Ok(o) => o,
        Err(e) => {
            problems.push(format!("round {round}: {e}"));
            return problems;
        }
    };
    let settled = settlements(&mut ledger, Duration::from_secs(10))
        .await
        .unwrap();
    let mut hub_owed = U256::ZERO;
    for (device, expected) in devices.iter().zip(&expectations) {
        let tokens = device.token_balance(device.address()).await.unwrap();
        problems.extend(
            expected
                .check(
                    &outcomes[&expected.channel_id],
                    settled.get(&expected.channel_id),
                    tokens,
                )
                .into_iter()
                .map(|p| format!("round {round}: {p}")),
        );
        hub_owed += expected.hub_amount().unwrap();
    }
    let hub_tokens = token_balance(&mut ledger, hub_addr).await.unwrap();
    if hub_tokens != hub_tokens_before + hub_owed {
        problems.push(format!(
            "round {round}: hub holds {hub_tokens} tokens, expected {} ({hub_tokens_before} before + {hub_owed} owed)",
            hub_tokens_before + hub_owed
        ));
    }
    problems
}

/// The call device `i` makes right after its close; `Err` describes a wrong answer.
async fn follow_up(i: usize, device: &TestDevice, operator: &Operator) -> Result<(), String> {
    let id = device.channel_id().unwrap();
    match i % 4 {
        0 => {
            let all = device
                .channels()
                .list_channels(v1::ListChannelsRequest::default())
                .await
                .map_err(|e| format!("channel {id}: ListChannels failed: {e}"))?
                .into_inner()
                .channels;
            let mine = all
                .iter()
                .find(|c| c.channel_id == u256_bytes(&id))
                .ok_or_else(|| format!("channel {id}: missing from ListChannels"))?;
            check_held(id, device_nonce(mine))
        }
        1 => {
            let view = device
                .hub_view()
                .await
                .map_err(|e| format!("channel {id}: GetChannel failed: {e}"))?;
            check_held(id, device_nonce(&view))
        }
        2 => pay_more_than_left(device).await,
        _ => {
            // Paying into a channel the device has just closed changes nothing on the
            // ledger whatever the hub answers: the device closed without the hub's proofs.
            let answer = operator.pay(id, U256::from(1u64)).await;
            eprintln!("channel {id}: OperatorPay after the close: {answer:?}");
            Ok(())
        }
    }
}

fn check_held(id: U256, held: u64) -> Result<(), String> {
    if held == PAYMENTS {
        Ok(())
    } else {
        Err(format!(
            "channel {id}: the hub holds device nonce {held}, acknowledged {PAYMENTS}"
        ))
    }
}

/// A correctly signed next payment of more than the device has left: the hub must refuse it
/// (it has to look at the ledger to be sure, which is what makes it catch up).
async fn pay_more_than_left(device: &TestDevice) -> Result<(), String> {
    let ch = device.channel().unwrap();
    let id = ch.id();
    let amount = U256::from(DEPOSIT - PAYMENT * PAYMENTS + 1_000);
    let proof = BalanceProof {
        domain: *ch.domain(),
        channel_identifier: id,
        nonce: ch.our().nonce() + 1,
        balance: BalanceData {
            transferred_amount: ch.our().transferred() + amount,
            ..ch.our().balance_data()
        },
        additional_hash: H256::ZERO,
    }
    .sign(device.key())
    .unwrap();
    let mut session = device
        .pay_session(1)
        .await
        .map_err(|e| format!("channel {id}: Pay failed to open: {e}"))?;
    session
        .send(payment_message(&proof, amount))
        .await
        .map_err(|e| format!("channel {id}: Pay send failed: {e}"))?;
    session.finish();
    match session.next_ack().await {
        Ok(Some(PayAck::Rejected { code, reason, .. })) => {
            eprintln!("channel {id}: over-balance payment refused: {code:?} {reason}");
            Ok(())
        }
        other => Err(format!(
            "channel {id}: a payment of {amount} with {} left was answered {other:?}",
            DEPOSIT - PAYMENT * PAYMENTS
        )),
    }
}
