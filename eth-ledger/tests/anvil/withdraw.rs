//! A withdraw co-signed through channel-core's withdraw protocol pays out on the real
//! contract, exactly, and the channel keeps working afterwards.

use channel_core::channel::ChannelEvent;
use channel_core::Signer;
use voltlane_eth::ledger::SignedWithdraw;

use super::common::{u, Devchain, Pair, Side};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withdraw_signed_by_both_pays_exactly() {
    let chain = Devchain::start().await;
    let (key_a, key_b) = (chain.key(1), chain.key(2));
    let (la, lb) = (chain.ledger(&key_a).await, chain.ledger(&key_b).await);
    let (a, b) = (key_a.address(), key_b.address());

    let (id, _) = la.open_channel(b, u(1_000)).await.unwrap();
    lb.set_total_deposit(id, a, u(500)).await.unwrap();
    let mut pair = Pair::new(chain.domain(), id, key_a.clone(), key_b.clone());
    pair.deposit(Side::A, u(1_000));
    pair.deposit(Side::B, u(500));
    pair.pay(Side::A, 300);
    let b0 = lb.token_balance(b).await.unwrap();

    let now = lb.ledger_time().await.unwrap();
    let events = pair.drive(Side::B, now, |ch, key| {
        ch.request_withdraw(u(600), now + 600, now, key).unwrap()
    });
    let ready = events
        .iter()
        .find_map(|e| match e {
            ChannelEvent::WithdrawReady {
                proof,
                participant_signature,
                partner_signature,
            } => Some(SignedWithdraw {
                proof: *proof,
                participant_signature: *participant_signature,
                partner_signature: *partner_signature,
            }),
            _ => None,
        })
        .expect("withdraw confirmed by A");
    // Anyone may submit it: A does, B gets the tokens.
    la.set_total_withdraw(a, &ready).await.unwrap();

    assert_eq!(lb.token_balance(b).await.unwrap(), b0 + u(600));
    let info_b = lb.participant_info(id, b, a).await.unwrap();
    assert_eq!(info_b.withdrawn, u(600));
    assert_eq!(info_b.deposit, u(500));
    let network = chain.deployment.token_network;
    assert_eq!(lb.token_balance(network).await.unwrap(), u(900));

    // Both views learn of it: B keeps 500 deposited + 300 received - 600 withdrawn.
    pair.a.handle_ledger_withdraw(b, u(600)).unwrap();
    pair.b.handle_ledger_withdraw(b, u(600)).unwrap();
    assert_eq!(pair.b.our_balance().unwrap(), u(200));
}
