//! A unilateral close with a stale proof, corrected by the non-closer's update, then settled
//! after the window: exact payouts on the real contract, and the same payouts as the embedded
//! `channel_core::ledger::Ledger` given the very same signed proofs.

use channel_core::channel::{CloseTransaction, UpdateTransaction};
use channel_core::ledger::{Ledger, LedgerConfig};
use channel_core::{Address, BalanceData, Signer, U256};
use voltlane_eth::EthereumLedger;

use super::common::{u, Devchain, Pair, Parties, Side, SETTLE_TIMEOUT};

const DEPOSIT_A: u64 = 5_000;
const DEPOSIT_B: u64 = 3_000;

/// Off-chain history: both pay; A keeps an old copy of its view; both pay more. A then
/// closes from the old copy (B's proof is stale), and B answers with A's latest proof.
struct Dispute {
    close: CloseTransaction,
    update: UpdateTransaction,
    /// What each participant's stored proof says at settlement.
    a_data: BalanceData,
    b_data: BalanceData,
}

fn off_chain(pair: &mut Pair) -> Dispute {
    for i in 0..40u64 {
        pair.pay(Side::A, i + 1); // 820 in all
        pair.pay(Side::B, 2 * i + 1); // 1600 in all
    }
    let mut stale_a = pair.a.clone();
    for i in 0..25u64 {
        pair.pay(Side::A, 3 + i); // 375 more
        pair.pay(Side::B, 5); // 125 more
    }
    let close = stale_a.close(&pair.key_a).unwrap();
    let b_data = close.partner_proof.proof.balance;
    pair.b
        .handle_ledger_closed(pair.key_a.address(), 0)
        .unwrap();
    let update = pair.b.update_transaction(&pair.key_b).unwrap().unwrap();
    let a_data = pair.a.our().balance_data();
    assert_eq!(update.closer_proof, *pair.a.our().latest.as_ref().unwrap());
    Dispute {
        close,
        update,
        a_data,
        b_data,
    }
}

/// Runs the dispute on anvil; returns (A's payout, B's payout) as token balance changes
/// from just before opening to after settlement.
async fn on_anvil(chain: &Devchain) -> (U256, U256, Dispute) {
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

    let (id, _) = la.open_channel(b, u(DEPOSIT_A)).await.unwrap();
    lb.set_total_deposit(id, a, u(DEPOSIT_B)).await.unwrap();
    let mut pair = Pair::new(chain.domain(), id, key_a, key_b);
    pair.deposit(Side::A, u(DEPOSIT_A));
    pair.deposit(Side::B, u(DEPOSIT_B));
    let d = off_chain(&mut pair);

    la.close_channel(b, &d.close).await.unwrap();
    let closed_b = la.participant_info(id, b, a).await.unwrap();
    assert_eq!(closed_b.nonce, d.close.partner_proof.proof.nonce);
    lb.update_non_closing_balance_proof(a, b, &d.update)
        .await
        .unwrap();
    let updated_a = la.participant_info(id, a, b).await.unwrap();
    assert!(updated_a.is_the_closer);
    assert_eq!(updated_a.nonce, d.update.closer_proof.proof.nonce);

    // Still inside the window: the contract refuses, and says why.
    let early = lb.settle_channel(id, (a, d.a_data), (b, d.b_data)).await;
    let err = early.unwrap_err().to_string();
    assert!(err.contains("TN/settle: settlement timeout"), "{err}");

    chain.node.increase_time(SETTLE_TIMEOUT + 1).await.unwrap();
    lb.settle_channel(id, (a, d.a_data), (b, d.b_data))
        .await
        .unwrap();
    let a1 = la.token_balance(a).await.unwrap();
    let b1 = la.token_balance(b).await.unwrap();
    (a1 + u(DEPOSIT_A) - a0, b1 + u(DEPOSIT_B) - b0, d)
}

/// The same dispute, same signed proofs, on the embedded ledger.
fn on_embedded(ledger_of: &EthereumLedger, d: &Dispute, a: Address, b: Address) -> (U256, U256) {
    let mut ledger = Ledger::new(LedgerConfig {
        domain: ledger_of.domain(),
        settlement_timeout: SETTLE_TIMEOUT,
    });
    let now = 1_000;
    ledger.mint(a, u(DEPOSIT_A), now).unwrap();
    ledger.mint(b, u(DEPOSIT_B), now).unwrap();
    let id = ledger.open_channel(a, b, now).unwrap();
    assert_eq!(
        id, d.close.channel_id,
        "both ledgers number channels from 1"
    );
    ledger
        .set_total_deposit(a, id, a, u(DEPOSIT_A), now)
        .unwrap();
    ledger
        .set_total_deposit(b, id, b, u(DEPOSIT_B), now)
        .unwrap();
    ledger
        .close_channel(
            a,
            id,
            &d.close.partner_proof,
            &d.close.closing_signature,
            now,
        )
        .unwrap();
    ledger
        .update_non_closing_balance_proof(
            b,
            id,
            &d.update.closer_proof,
            &d.update.non_closing_signature,
            now + 1,
        )
        .unwrap();
    // The same balance data the contract was given.
    let settle = channel_core::ledger::SettleTransaction {
        channel_id: id,
        balances: [(a, d.a_data), (b, d.b_data)],
    };
    ledger
        .settle_channel(b, &settle, now + SETTLE_TIMEOUT + 1)
        .unwrap();
    (ledger.token_balance(a), ledger.token_balance(b))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_close_corrected_by_update_settles_exactly() {
    let chain = Devchain::start().await;
    let (paid_a, paid_b, d) = on_anvil(&chain).await;
    // A sent 820 + 375; B's proof A closed with says 1600 (the 125 after it are lost to A).
    assert_eq!(d.a_data.transferred_amount, u(1_195));
    assert_eq!(d.b_data.transferred_amount, u(1_600));
    assert_eq!(paid_a, u(DEPOSIT_A - 1_195 + 1_600));
    assert_eq!(paid_b, u(DEPOSIT_B - 1_600 + 1_195));
    let network = chain.deployment.token_network;
    let ledger = chain.ledger(&chain.key(0)).await;
    assert_eq!(ledger.token_balance(network).await.unwrap(), u(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn embedded_ledger_and_anvil_pay_the_same() {
    let chain = Devchain::start().await;
    let (paid_a, paid_b, d) = on_anvil(&chain).await;
    let (key_a, key_b) = (chain.key(1), chain.key(2));
    let la = chain.ledger(&key_a).await;
    let (emb_a, emb_b) = on_embedded(&la, &d, key_a.address(), key_b.address());
    assert_eq!((emb_a, emb_b), (paid_a, paid_b));
    assert_eq!(paid_a + paid_b, u(DEPOSIT_A + DEPOSIT_B));
}
