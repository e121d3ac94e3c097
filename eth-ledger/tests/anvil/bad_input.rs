//! Bad input is refused with an error that names the problem, and changes nothing on chain:
//! a balance proof signed by the wrong key, proofs bound to another chain id or token
//! network, and a closing signature that is not ours. A refusal by the contract itself comes
//! back with the contract's reason.

use channel_core::channel::CloseTransaction;
use channel_core::Signer;
use channel_core::{Address, Domain, SignedBalanceProof, U256};
use voltlane_eth::{EthError, EthereumLedger};

use super::common::{u, Devchain, Pair, Side};

async fn nothing_happened(chain: &Devchain, la: &EthereumLedger, id: U256, before: u64) {
    let (a, b) = (chain.key(1).address(), chain.key(2).address());
    assert_eq!(chain.node.transaction_count(a).await.unwrap(), before);
    let info = la.participant_info(id, a, b).await.unwrap();
    assert!(!info.is_the_closer);
    assert_eq!(la.channel_identifier(a, b).await.unwrap(), id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_key_chain_or_network_is_refused_and_changes_nothing() {
    let chain = Devchain::start().await;
    let (key_a, key_b, stranger) = (chain.key(1), chain.key(2), chain.key(0));
    let la = chain.ledger(&key_a).await;
    let (a, b) = (key_a.address(), key_b.address());
    let (id, _) = la.open_channel(b, u(1_000)).await.unwrap();
    let sent = chain.node.transaction_count(a).await.unwrap();

    // B's proof, but signed by a stranger's key.
    let mut back = Pair::new(chain.domain(), id, key_b.clone(), key_a.clone());
    back.deposit(Side::A, u(1_000));
    back.pay(Side::A, 5); // key_b pays key_a: a proof signed by B
    let genuine = back.a.our().latest.unwrap();
    let forged = genuine.proof.sign(&stranger).unwrap();
    let close = CloseTransaction {
        channel_id: id,
        closing_signature: forged.counter_sign_close(&key_a).unwrap(),
        partner_proof: forged,
    };
    let err = la.close_channel(b, &close).await.unwrap_err();
    assert!(
        matches!(err, EthError::WrongSigner { expected, got, .. } if expected == b && got == stranger.address()),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("closeChannel") && msg.contains("signed by"),
        "{msg}"
    );
    nothing_happened(&chain, &la, id, sent).await;

    // A closing signature that is not ours.
    let close = CloseTransaction {
        channel_id: id,
        closing_signature: genuine.counter_sign_close(&stranger).unwrap(),
        partner_proof: genuine,
    };
    let err = la.close_channel(b, &close).await.unwrap_err();
    assert!(err.to_string().contains("closing signature"), "{err}");
    nothing_happened(&chain, &la, id, sent).await;

    // Proofs for another chain id, and for another token network.
    let other_chain = Domain {
        chain_id: U256::from(1u8),
        ..chain.domain()
    };
    let other_network = Domain {
        token_network_address: Address([0x11; 20]),
        ..chain.domain()
    };
    for (domain, needle) in [(other_chain, "chain 1 /"), (other_network, "0x1111")] {
        let mut wrong = Pair::new(domain, id, key_b.clone(), key_a.clone());
        wrong.deposit(Side::A, u(1_000));
        wrong.pay(Side::A, 5);
        let proof: SignedBalanceProof = wrong.a.our().latest.unwrap();
        let close = CloseTransaction {
            channel_id: id,
            closing_signature: proof.counter_sign_close(&key_a).unwrap(),
            partner_proof: proof,
        };
        let err = la.close_channel(b, &close).await.unwrap_err();
        assert!(matches!(err, EthError::WrongDomain { .. }), "{err:?}");
        assert!(err.is_input_error());
        let msg = err.to_string();
        assert!(msg.contains(needle), "{msg}");
        nothing_happened(&chain, &la, id, sent).await;
    }

    // The same proofs pass our checks once bound to this ledger: the genuine close works.
    let close = CloseTransaction {
        channel_id: id,
        closing_signature: genuine.counter_sign_close(&key_a).unwrap(),
        partner_proof: genuine,
    };
    la.close_channel(b, &close).await.unwrap();
    assert!(la.participant_info(id, a, b).await.unwrap().is_the_closer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contract_refusals_carry_the_contract_reason() {
    let chain = Devchain::start().await;
    let (key_a, key_b) = (chain.key(1), chain.key(2));
    let la = chain.ledger(&key_a).await;
    let (a, b) = (key_a.address(), key_b.address());
    let (id, _) = la.open_channel(b, u(100)).await.unwrap();

    // Settling an open channel: the contract's own check fails at gas estimation.
    let empty = channel_core::BalanceData::EMPTY;
    let err = la
        .settle_channel(id, (a, empty), (b, empty))
        .await
        .unwrap_err();
    assert!(matches!(err, EthError::Reverted { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("settleChannel") && msg.contains("TN/settle: channel not closed"),
        "{msg}"
    );

    // A second channel for the same pair.
    let err = la.open_channel(b, u(0)).await.unwrap_err().to_string();
    assert!(
        err.contains("openChannel") && err.contains("TN/open: channel exists"),
        "{err}"
    );

    // A deposit that does not grow is ours to refuse (the core's rule), before any gas.
    let err = la.set_total_deposit(id, b, u(100)).await.unwrap_err();
    assert!(err.is_input_error(), "{err:?}");
}
