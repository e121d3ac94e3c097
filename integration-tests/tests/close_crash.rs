//! Regression test for issue 6 (B): the hub dies right after it has applied and durably
//! recorded a device's `ChannelClosed`, before contesting it (the hub's test fail point
//! `after_device_close_applied`, which aborts the process like `kill -9`). Restarted on the
//! same data directory without the fail point, the hub must still contest every device close
//! with the device's last acknowledged proof and settle exactly.
//!
//! Half of the devices close with no proof of the hub's, the other half with an older hub
//! proof than the hub's latest (the hub paid them twice with `OperatorPay`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::process::ExitStatusExt;
use std::time::Duration;

use channel_core::primitives::{Address, U256};
use channel_core::SignedBalanceProof;
use integration_tests::device::{device_key, device_nonce};
use integration_tests::settlement::{
    ledger_outcome, settlements, token_balance, wait_settled, CloseExpectation,
};
use integration_tests::{within, HubOptions, HubProcess, Operator, TestDevice};
use voltlane_proto::v1;

const DEVICES: u64 = 8;
const DEPOSIT: u64 = 10_000;
const PAYMENT: u64 = 1_000;
const PAYMENTS: u64 = 4;
/// What the hub pays back to the odd devices: two payments; they close with the first.
const HUB_PAYMENTS: [u64; 2] = [100, 200];
/// Long enough for the abort, a restart of a debug build and the contest.
const WINDOW_SECS: u64 = 5;
const SETTLE_WITHIN: Duration = Duration::from_secs(WINDOW_SECS + 12);
const FAILPOINT_ENV: &str = "VOLTLANE_FAILPOINTS";
const FAILPOINT: &str = "after_device_close_applied";
/// SIGABRT, what `std::process::abort` dies of.
const SIGABRT: i32 = 6;
const KEY_SEED: u64 = 0x6b;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hub_dying_after_applying_device_closes_still_contests_them_after_restart() {
    within(
        Duration::from_secs(90),
        "hub_dying_after_applying_device_closes_still_contests_them_after_restart",
        run(),
    )
    .await
    .unwrap();
}

struct Closer {
    device: TestDevice,
    /// The hub proof the device closes with (None = no proof).
    close_with: Option<SignedBalanceProof>,
    expectation: CloseExpectation,
}

async fn run() {
    let mut hub = HubProcess::start(HubOptions {
        settlement_window_secs: WINDOW_SECS,
        env: vec![(FAILPOINT_ENV.into(), FAILPOINT.into())],
        ..HubOptions::default()
    })
    .await
    .unwrap();
    let mut operator = Operator::login(hub.connect().await.unwrap(), hub.operator_key().unwrap())
        .await
        .unwrap();
    let hub_addr = operator.address();
    let deposit = U256::from(DEPOSIT);

    let mut closers = Vec::new();
    for i in 0..DEVICES {
        let key = device_key(KEY_SEED, i).unwrap();
        let mut device = TestDevice::login(hub.connect().await.unwrap(), key)
            .await
            .unwrap();
        let id = device.open_channel(deposit).await.unwrap();
        assert_eq!(
            device
                .pay_acked(U256::from(PAYMENT), PAYMENTS)
                .await
                .unwrap(),
            PAYMENTS
        );
        let mut close_with = None;
        if i % 2 == 1 {
            let mut proofs = Vec::new();
            for amount in HUB_PAYMENTS {
                proofs.push(operator.pay(id, U256::from(amount)).await.unwrap());
            }
            // Stale: the first of the hub's two proofs.
            close_with = Some(proofs[0]);
        }
        let expectation = CloseExpectation {
            channel_id: id,
            device: device.address(),
            hub: hub_addr,
            device_deposit: deposit,
            device_nonce: PAYMENTS,
            device_transferred: U256::from(PAYMENT * PAYMENTS),
            hub_transferred: close_with.map_or(U256::ZERO, |p| p.proof.balance.transferred_amount),
            device_tokens_before: device.token_balance(device.address()).await.unwrap(),
        };
        closers.push(Closer {
            device,
            close_with,
            expectation,
        });
    }
    let hub_tokens_before = token_balance(&mut operator.ledger(), hub_addr)
        .await
        .unwrap();

    // All close at once; the hub aborts as soon as it has applied the first of them, so some
    // closes may fail or never reach the ledger.
    let closes = closers
        .iter()
        .map(|c| c.device.close_on_ledger(c.close_with.as_ref()));
    let answers = futures::future::join_all(closes).await;
    let status = hub.wait_exit(Duration::from_secs(15)).await.unwrap();
    assert_eq!(
        status.signal(),
        Some(SIGABRT),
        "the hub should abort at the fail point, exited {status}; log tail:\n{}",
        hub.log_tail()
    );
    let log = std::fs::read_to_string(hub.log_path()).unwrap();
    assert!(
        log.contains(&format!("fail point {FAILPOINT} hit")),
        "log tail:\n{}",
        hub.log_tail()
    );

    // Restart without the fail point.
    hub.options_mut().env.clear();
    hub.restart().await.unwrap();
    operator
        .relogin(hub.connect().await.unwrap())
        .await
        .unwrap();
    let mut ledger = operator.ledger();
    let (mut before_crash, mut after_restart) = (0, 0);
    for (c, answer) in closers.iter_mut().zip(&answers) {
        let id = c.expectation.channel_id;
        c.device
            .relogin(hub.connect().await.unwrap())
            .await
            .unwrap();
        let held = device_nonce(&c.device.hub_view().await.unwrap());
        assert!(
            held >= PAYMENTS,
            "channel {id}: after the restart the hub holds device nonce {held}, acknowledged {PAYMENTS}"
        );
        let outcome = ledger_outcome(&mut ledger, id, c.device.address())
            .await
            .unwrap();
        match outcome.phase {
            v1::ChannelPhase::Opened => {
                // This close never reached the ledger: close now, against the restarted hub.
                assert!(
                    answer.is_err(),
                    "channel {id}: close answered OK but is open"
                );
                c.device
                    .close_on_ledger(c.close_with.as_ref())
                    .await
                    .unwrap();
                after_restart += 1;
            }
            _ => {
                assert_eq!(outcome.closer, Some(c.device.address()), "channel {id}");
                before_crash += 1;
            }
        }
    }
    eprintln!(
        "{before_crash} close(s) reached the ledger before the hub aborted, {after_restart} were made after the restart"
    );
    assert!(before_crash >= 1, "the fail point fires only after a close");

    let channels: Vec<(U256, Address)> = closers
        .iter()
        .map(|c| (c.expectation.channel_id, c.device.address()))
        .collect();
    let outcomes = wait_settled(&mut ledger, &channels, SETTLE_WITHIN)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let settled = settlements(&mut ledger, Duration::from_secs(10))
        .await
        .unwrap();
    let mut problems = Vec::new();
    let mut hub_owed = U256::ZERO;
    for c in &closers {
        let e = &c.expectation;
        let tokens = c.device.token_balance(e.device).await.unwrap();
        problems.extend(e.check(&outcomes[&e.channel_id], settled.get(&e.channel_id), tokens));
        hub_owed += e.hub_amount().unwrap();
    }
    let hub_tokens = token_balance(&mut ledger, hub_addr).await.unwrap();
    if hub_tokens != hub_tokens_before + hub_owed {
        problems.push(format!(
            "hub holds {hub_tokens} tokens, expected {} ({hub_tokens_before} before + {hub_owed} owed)",
            hub_tokens_before + hub_owed
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in {DEVICES} channels closed around a hub crash:\n{}",
        problems.len(),
        problems.join("\n")
    );
}
