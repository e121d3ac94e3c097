//! A pending hash-time lock on the real contracts: the receiver registers the secret in the
//! SecretRegistry before the lock expires, closes with the sender's locked balance proof,
//! settles, and `unlock` (with channel-core's packed locks) pays it the locked amount.

use channel_core::{HashTimeLock, Secret, H256};

use super::common::{u, Devchain, Pair, Parties, Side, SETTLE_TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lock_registered_before_expiry_is_unlocked_to_the_receiver() {
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

    let (id, _) = la.open_channel(b, u(1_000)).await.unwrap();
    let mut pair = Pair::new(chain.domain(), id, key_a.clone(), key_b.clone());
    pair.deposit(Side::A, u(1_000));
    pair.pay(Side::A, 50);

    let now = la.ledger_time().await.unwrap();
    let secret = Secret(H256([0x5e; 32]));
    let lock = HashTimeLock {
        expiration: now + 300,
        amount: u(200),
        secrethash: secret.hash(),
    };
    // A second lock whose secret never reaches the chain: it goes back to A.
    let lost = HashTimeLock {
        expiration: now + 300,
        amount: u(70),
        secrethash: Secret(H256([0x77; 32])).hash(),
    };
    for l in [lock, lost] {
        pair.drive(Side::A, now, |ch, key| {
            ch.send_locked_transfer(l, now, H256::ZERO, key).unwrap()
        });
    }
    let a_proof = pair.b.partner().balance_data();
    assert_eq!(a_proof.locked_amount, u(270));

    // B registers the secret on chain before expiry, then closes with A's locked proof.
    lb.register_secret(secret).await.unwrap();
    let registered = lb.secret_registered_at(&secret.hash()).await.unwrap();
    assert!(registered.is_some_and(|t| t < lock.expiration));
    let again = lb.register_secret(secret).await.unwrap_err();
    assert!(again.to_string().contains("already registered"), "{again}");

    let close = pair.b.close(&key_b).unwrap();
    lb.close_channel(a, &close).await.unwrap();
    chain.node.increase_time(SETTLE_TIMEOUT + 1).await.unwrap();
    lb.settle_channel(id, (a, a_proof), (b, channel_core::BalanceData::EMPTY))
        .await
        .unwrap();
    // Settlement paid the transferred part; the locked 270 stays in the contract.
    assert_eq!(la.token_balance(a).await.unwrap(), a0 - u(1_000) + u(680));
    assert_eq!(la.token_balance(b).await.unwrap(), b0 + u(50));

    let locks = pair.b.partner().locks.as_slice().to_vec();
    assert_eq!(locks, vec![lock, lost]);
    let unlocked = lb.unlock(id, b, a, &locks).await.unwrap();
    assert_eq!(unlocked.unlocked_amount, u(200));
    assert_eq!(unlocked.returned_tokens, u(70));
    assert_eq!(la.token_balance(a).await.unwrap(), a0 - u(1_000) + u(750));
    assert_eq!(la.token_balance(b).await.unwrap(), b0 + u(250));
    let network = chain.deployment.token_network;
    assert_eq!(la.token_balance(network).await.unwrap(), u(0));

    // Unlocking twice is refused by the contract, with its reason.
    let twice = lb.unlock(id, b, a, &locks).await.unwrap_err().to_string();
    assert!(twice.contains("TN/unlock"), "{twice}");
}
