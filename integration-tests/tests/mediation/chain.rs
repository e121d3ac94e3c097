//! A mediated payment on a real chain (anvil with Raiden's TokenNetwork 0.50, the real hub
//! process with `--ledger ethereum`, raw protobuf devices that open their channels on the
//! chain themselves): the payer learns the secret and withholds its unlock. The hub's watcher
//! registers the secret in the chain's SecretRegistry within its reveal timeout before the
//! payer's lock expires, refuses the payer's lock expiry, closes, settles after the window and
//! unlocks the tokens the contract kept back: it ends with its deposit plus amount + fee, the
//! payer with exactly the rest. The chain's clock runs at five times wall-clock speed.

use std::time::Duration;

use crate::checks::{payer_events, reveal, u, WAIT};
use integration_tests::chain::{chain_device, eventually, ChainHub};
use integration_tests::mediation::{next_ack, next_item, test_secret, MediationSetup};
use integration_tests::{within, Forward, PayAck};
use tonic::Code;
use voltlane_proto::convert::mediation::HubMessageKind;
use voltlane_proto::v1;

const SEED: u8 = 0xc7;
const DEPOSIT: u64 = 1_000;
const AMOUNT: u64 = 100;
/// Settlement window of the deployment (seconds of chain time).
const WINDOW: u64 = 100;
/// The hub's reveal timeout (seconds of chain time): a few blocks at the test's clock.
const REVEAL: u64 = 40;

fn setup() -> MediationSetup {
    MediationSetup {
        fee_flat: 2,
        fee_ppm: 10_000,
        reveal_timeout: REVEAL,
        settlement_window: WINDOW,
        auto_deposit: DEPOSIT,
        env: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_chain_a_payer_withholding_its_unlock_loses_to_the_hub() {
    within(
        Duration::from_secs(200),
        "payer withholds on a chain",
        async {
            let s = setup();
            let args = s.options().extra_args;
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let net = ChainHub::start(WINDOW, 4, &args).await.unwrap();
            let _clock = net.run_clock(Duration::from_millis(200), 1);
            let (mut payer, eth) = chain_device(&net, 2, u(DEPOSIT), u(DEPOSIT)).await.unwrap();
            let (mut payee, _) = chain_device(&net, 3, u(DEPOSIT), u(DEPOSIT)).await.unwrap();
            let hub = payer.hub_address();
            let mut incoming = payee.receive(0).await.unwrap();
            let mut events = payer_events(&payer).await;
            let mut pay = payer.pay_session(8).await.unwrap();
            let lock = s.lock_amount(AMOUNT);
            let secret = test_secret(SEED, 1);

            // The payer locks amount + fee; a margin covers the hub's follower lag.
            let now = eth.ledger_time().await.unwrap();
            let expiration = s.lock_expiration(now, 15);
            let request = payee
                .payment_request(u(AMOUNT), secret, 1, now + 600)
                .unwrap();
            let msg = payer
                .sign_locked_transfer(&request, u(lock), expiration, now)
                .unwrap();
            pay.send(msg).await.unwrap();
            match next_ack(&mut pay, WAIT).await.unwrap() {
                PayAck::Accepted {
                    forward: Some(Forward::Forwarded { outgoing_lock, .. }),
                    ..
                } => assert_eq!(outgoing_lock.expiration, expiration - REVEAL),
                other => panic!("expected the lock forwarded, got {other:?}"),
            }
            // The payee is paid off-chain; the payer learns the secret and keeps its lock.
            let m = next_item(&mut incoming, "the hub's lock", WAIT)
                .await
                .unwrap();
            let at = eth.ledger_time().await.unwrap();
            let applied = payee.apply_hub_message(m, at).unwrap();
            assert!(matches!(
                applied.kind,
                HubMessageKind::LockedTransfer { .. }
            ));
            reveal(&payee, payee.channel_id().unwrap(), secret)
                .await
                .unwrap();
            let m = next_item(&mut incoming, "the hub's unlock", WAIT)
                .await
                .unwrap();
            let at = eth.ledger_time().await.unwrap();
            assert_eq!(
                payee.apply_hub_message(m, at).unwrap().kind,
                HubMessageKind::Unlock { secret }
            );
            let event = next_item(&mut events, "the payer's event", WAIT)
                .await
                .unwrap();
            assert_eq!(
                event.outcome,
                Some(v1::payer_event::Outcome::SecretRevealed(
                    secret.0 .0.to_vec()
                ))
            );
            let hub_tokens = eth.token_balance(hub).await.unwrap();
            let payer_tokens = eth.token_balance(payer.address()).await.unwrap();

            // Once the lock expired on the chain's clock, the payer tries to take it back:
            // refused (the secret is registered in time, or the hub already closed to claim it).
            let now = eventually(Duration::from_secs(60), "the lock's expiry", || async {
                let t = eth.ledger_time().await?;
                Ok((t >= expiration).then_some(t))
            })
            .await
            .unwrap();
            let msg = payer.sign_lock_expired(secret.hash(), now).unwrap();
            pay.send(msg).await.unwrap();
            match next_ack(&mut pay, WAIT).await.unwrap() {
                PayAck::Rejected { code, reason, .. } => {
                    assert_eq!(code, Code::FailedPrecondition, "{reason}")
                }
                other => {
                    panic!("the hub let the payer take back a lock it had paid out: {other:?}")
                }
            }

            // The hub closed, settled after the window and unlocked: exact token balances.
            eventually(
                Duration::from_secs(120),
                "the hub's claim on the chain",
                || async {
                    let got = eth.token_balance(hub).await?;
                    Ok((got == hub_tokens + u(DEPOSIT + lock)).then_some(()))
                },
            )
            .await
            .unwrap();
            assert_eq!(
                eth.token_balance(payer.address()).await.unwrap(),
                payer_tokens + u(DEPOSIT - lock),
                "the payer gets exactly the rest"
            );
            let registered = eth
                .secret_registered_at(&secret.hash())
                .await
                .unwrap()
                .expect("the secret is registered on the chain");
            assert!(
                registered < expiration && registered >= expiration - REVEAL,
                "registered at {registered}, the lock expires at {expiration}"
            );
        },
    )
    .await
    .unwrap();
}
