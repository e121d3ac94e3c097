//! Costs of the hot path: signing, checking a partner's signature, public-key recovery,
//! packing + hashing a balance proof, and a whole "receive payment" transition.
//!
//! `cargo bench -p channel-core --bench crypto`. Checking goes through libsecp256k1:
//! `peer_verify` is what the hub and devices run per message (recovery with the signature's
//! own `v`, compared with the learned key), `recover` is recovery to an address, and
//! `libsecp256k1_verify` is a plain ECDSA verify against the known key, for scale. The `k256_`
//! rows are the same operations in k256 (pure Rust, constant time), measured in the same run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::channel::ChannelMessage;
use channel_core::crypto::{PeerKey, Signer};
use channel_core::testing::{sends, Pair};
use channel_core::{BalanceData, BalanceProof, H256, U256};
use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use k256::ecdsa::signature::hazmat::PrehashVerifier;
use std::hint::black_box;

fn proof(nonce: u64) -> BalanceProof {
    BalanceProof {
        domain: channel_core::testing::test_domain(),
        channel_identifier: U256::from(1u8),
        nonce,
        balance: BalanceData {
            transferred_amount: U256::from(nonce * 10),
            ..BalanceData::EMPTY
        },
        additional_hash: H256::ZERO,
    }
}

fn crypto(c: &mut Criterion) {
    let signer = channel_core::testing::test_signer(1);
    let p = proof(7);
    let hash = p.signing_hash();
    let sig = signer.sign_hash(&hash).expect("sign");
    let mut peer = PeerKey::new(signer.address());
    peer.verify(&hash, &sig).expect("learn key");

    c.bench_function("sign", |b| b.iter(|| signer.sign_hash(black_box(&hash))));
    c.bench_function("peer_verify", |b| {
        b.iter(|| peer.verify(black_box(&hash), black_box(&sig)))
    });
    c.bench_function("recover", |b| b.iter(|| sig.recover(black_box(&hash))));
    let secp_key =
        secp256k1::PublicKey::from_slice(signer.verifying_key().to_encoded_point(false).as_bytes())
            .expect("public key");
    let secp_sig =
        secp256k1::ecdsa::Signature::from_compact(&sig.as_bytes()[..64]).expect("r || s");
    let secp_msg = secp256k1::Message::from_digest(hash.0);
    c.bench_function("libsecp256k1_verify", |b| {
        b.iter(|| black_box(&secp_sig).verify(black_box(secp_msg), black_box(&secp_key)))
    });
    let k256_sig = k256::ecdsa::Signature::from_slice(&sig.as_bytes()[..64]).expect("r || s");
    let recid = k256::ecdsa::RecoveryId::from_byte(sig.as_bytes()[64] - 27).expect("v");
    c.bench_function("k256_verify_prehash", |b| {
        b.iter(|| {
            signer
                .verifying_key()
                .verify_prehash(black_box(hash.as_bytes()), black_box(&k256_sig))
        })
    });
    c.bench_function("k256_recover_from_prehash", |b| {
        b.iter(|| {
            k256::ecdsa::VerifyingKey::recover_from_prehash(
                black_box(hash.as_bytes()),
                black_box(&k256_sig),
                recid,
            )
        })
    });
    c.bench_function("pack_and_hash_balance_proof", |b| {
        b.iter(|| black_box(&p).signing_hash())
    });
}

fn receive_payment(c: &mut Criterion) {
    let mut pair = Pair::new(U256::MAX >> 2, U256::ZERO);
    pair.pay(channel_core::testing::Side::A, U256::from(1u8))
        .expect("warm-up payment");
    c.bench_function("receive_payment_transition", |b| {
        b.iter_batched(
            || {
                let mut sender = pair.a.clone();
                let events = sender
                    .send_payment(U256::from(1u8), H256::ZERO, &pair.key_a)
                    .expect("send");
                let Some(ChannelMessage::Payment { proof, amount }) = sends(&events).pop() else {
                    unreachable!("send_payment emits a payment")
                };
                (pair.b.clone(), proof, amount)
            },
            |(mut receiver, proof, amount)| {
                receiver
                    .handle_payment(&proof, amount)
                    .expect("valid payment")
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, crypto, receive_payment);
criterion_main!(benches);
