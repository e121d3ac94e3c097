//! Open, deposit both sides, a few hundred payments both ways made with channel-core, then a
//! cooperative settle on the real contract: every token balance ends exact.

use voltlane_eth::ledger::SignedWithdraw;

use super::common::{u, Devchain, Pair, Parties, Side};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_both_ways_then_cooperative_settle_pay_exactly() {
    let chain = Devchain::start().await;
    let Parties {
        key_a,
        key_b,
        la,
        lb,
        a,
        b,
        a0,
        b0,
    } = chain.parties().await;

    let (id, _) = la.open_channel(b, u(10_000)).await.unwrap();
    lb.set_total_deposit(id, a, u(7_000)).await.unwrap();
    let info_a = la.participant_info(id, a, b).await.unwrap();
    let info_b = la.participant_info(id, b, a).await.unwrap();
    assert_eq!((info_a.deposit, info_b.deposit), (u(10_000), u(7_000)));

    let mut pair = Pair::new(chain.domain(), id, key_a.clone(), key_b.clone());
    pair.deposit(Side::A, u(10_000));
    pair.deposit(Side::B, u(7_000));
    let (mut sent_a, mut sent_b) = (0u64, 0u64);
    for i in 0..300u64 {
        let amount_a = i % 37 + 1;
        pair.pay(Side::A, amount_a);
        sent_a += amount_a;
        if i % 2 == 0 {
            let amount_b = i % 23 + 1;
            pair.pay(Side::B, amount_b);
            sent_b += amount_b;
        }
    }
    assert_eq!(pair.a.our().nonce(), 300);
    assert_eq!(pair.b.our().nonce(), 150);

    let now = la.ledger_time().await.unwrap();
    let until = now + 600;
    let proposal = pair
        .a
        .propose_cooperative_close(until, now, &key_a)
        .unwrap();
    let acceptance = pair
        .b
        .accept_cooperative_close(&proposal, now, &key_b)
        .unwrap();
    let w_a = SignedWithdraw {
        proof: proposal.proposer_withdraw,
        participant_signature: proposal.proposer_signature,
        partner_signature: acceptance.on_proposer_withdraw,
    };
    let w_b = SignedWithdraw {
        proof: proposal.partner_withdraw,
        participant_signature: acceptance.on_own_withdraw,
        partner_signature: proposal.partner_withdraw_proposer_signature,
    };
    lb.cooperative_settle(&w_b, &w_a).await.unwrap();

    let expect_a = 10_000 - sent_a + sent_b;
    let expect_b = 7_000 - sent_b + sent_a;
    assert_eq!(w_a.proof.total_withdraw, u(expect_a));
    assert_eq!(
        la.token_balance(a).await.unwrap(),
        a0 - u(10_000) + u(expect_a)
    );
    assert_eq!(
        la.token_balance(b).await.unwrap(),
        b0 - u(7_000) + u(expect_b)
    );
    // The channel is gone and the contract holds nothing of it.
    assert_eq!(la.channel_identifier(a, b).await.unwrap(), u(0));
    let token_network = chain.deployment.token_network;
    assert_eq!(la.token_balance(token_network).await.unwrap(), u(0));
}
