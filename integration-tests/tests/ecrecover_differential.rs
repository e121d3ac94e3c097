//! Our signature recovery against the EVM's own: the `ecrecover` precompile (address 0x01) on
//! anvil, asked with `eth_call`, for genuine signatures and for crafted ones: zero hash,
//! hash at or above the curve order, high s, `r = n - 1`, `r`/`s` out of range, points that
//! are not on the curve, every `v` byte around 27 and 28.
//!
//! The rule: whenever [`Signature::from_slice`] accepts the bytes, our recovered address (or
//! our refusal) equals the EVM's answer. Where we refuse earlier than the EVM, it is one of
//! the contract rules, and the test pins what the EVM would have done: `v` outside {27, 28}
//! and `r`/`s` out of range recover nothing there either; a high `s` recovers, on the EVM, the
//! same address as its low-s twin with the other `v` (the malleable duplicate we refuse).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::crypto::{keccak256, CryptoError, Signature, Signer};
use channel_core::primitives::Address;
use channel_core::H256;
use integration_tests::device::device_key;
use rand::{Rng, SeedableRng};
use voltlane_eth::devnet::{ensure_installed, spawn_anvil};
use voltlane_eth::Node;

/// secp256k1's group order `n`, big-endian.
const ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfe,
    0xba, 0xae, 0xdc, 0xe6, 0xaf, 0x48, 0xa0, 0x3b, 0xbf, 0xd2, 0x5e, 0x8c, 0xd0, 0x36, 0x41, 0x41,
];

/// `n - k` for small `k`, big-endian.
fn order_minus(k: u8) -> [u8; 32] {
    let mut out = ORDER;
    let (low, borrow) = out[31].overflowing_sub(k);
    out[31] = low;
    assert!(!borrow, "only small k");
    out
}

/// `n - s` (the high-s twin of a low `s`), big-endian.
fn negate(s: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let mut d = i16::from(ORDER[i]) - i16::from(s[i]) - borrow;
        borrow = i16::from(d < 0);
        if d < 0 {
            d += 256;
        }
        out[i] = d as u8;
    }
    out
}

/// The EVM's `ecrecover(hash, v, r, s)`: `None` when the precompile returns nothing.
async fn evm_ecrecover(node: &Node, hash: &H256, v: u8, r: &[u8], s: &[u8]) -> Option<Address> {
    let mut input = Vec::with_capacity(128);
    input.extend_from_slice(hash.as_bytes());
    input.extend_from_slice(&[0u8; 31]);
    input.push(v);
    input.extend_from_slice(r);
    input.extend_from_slice(s);
    let precompile = Address({
        let mut a = [0u8; 20];
        a[19] = 1;
        a
    });
    let out = node
        .call_data("ecrecover differential", precompile, &input)
        .await
        .unwrap();
    if out.is_empty() || out.iter().all(|b| *b == 0) {
        return None;
    }
    assert_eq!(out.len(), 32, "ecrecover returns one word");
    let mut addr = [0u8; 20];
    addr.copy_from_slice(&out[12..]);
    Some(Address(addr))
}

/// One case: our verdict on `r || s || v` over `hash` against the EVM's.
async fn compare(node: &Node, hash: &H256, r: &[u8], s: &[u8], v: u8, tally: &mut [usize; 4]) {
    let mut bytes = [0u8; 65];
    bytes[..32].copy_from_slice(r);
    bytes[32..64].copy_from_slice(s);
    bytes[64] = v;
    let evm = evm_ecrecover(node, hash, v, r, s).await;
    match Signature::from_slice(&bytes).and_then(|sig| sig.recover(hash)) {
        Ok(ours) => {
            assert_eq!(evm, Some(ours), "{hash:?} {bytes:02x?}");
            tally[0] += 1;
        }
        Err(CryptoError::Unrecoverable) => {
            assert_eq!(
                evm, None,
                "EVM recovers what we cannot: {hash:?} {bytes:02x?}"
            );
            tally[1] += 1;
        }
        Err(CryptoError::HighS) => {
            // The EVM takes the malleable twin: the low-s signature with the other v.
            let low = negate(s);
            let twin = evm_ecrecover(node, hash, 55 - v, r, &low).await;
            assert_eq!(evm, twin, "high s: {hash:?} {bytes:02x?}");
            tally[2] += 1;
        }
        Err(CryptoError::NonCanonical | CryptoError::BadRecoveryByte(_)) => {
            assert_eq!(
                evm, None,
                "EVM recovers what the contract rules refuse: {bytes:02x?}"
            );
            tally[3] += 1;
        }
        Err(other) => panic!("unexpected refusal {other}: {bytes:02x?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_agrees_with_the_evm_ecrecover_precompile() {
    let devchain = ensure_installed().await.unwrap();
    let (_child, _port, node) = spawn_anvil(&devchain.join("bin/anvil"), None)
        .await
        .unwrap();
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x0ec0_4ec0);
    // [recovered alike, unrecoverable alike, high s (twin alike), refused by the rules]
    let mut tally = [0usize; 4];

    let mut hashes = vec![
        H256::ZERO,
        H256([0xff; 32]),
        H256(ORDER),
        H256(order_minus(1)),
    ];
    for i in 0u64..40 {
        hashes.push(keccak256(&i.to_be_bytes()));
    }
    for (i, hash) in hashes.iter().enumerate() {
        // Genuine signatures, both v, and the high-s twin.
        let sig = device_key(0xEC, i as u64).unwrap().sign_hash(hash).unwrap();
        let b = sig.as_bytes();
        for v in [27u8, 28] {
            compare(&node, hash, &b[..32], &b[32..64], v, &mut tally).await;
        }
        compare(
            &node,
            hash,
            &b[..32],
            &negate(&b[32..64]),
            b[64],
            &mut tally,
        )
        .await;
        // The v bytes the contract refuses.
        for v in [0u8, 1, 26, 29, 30, 255] {
            compare(&node, hash, &b[..32], &b[32..64], v, &mut tally).await;
        }
        // Crafted r and s: random (about half of all x are not on the curve), edges.
        let random: [u8; 32] = rng.gen();
        let small = {
            let mut x = [0u8; 32];
            x[31] = rng.gen_range(1..=255);
            x
        };
        let edges: [[u8; 32]; 6] = [
            random,
            small,
            order_minus(1),
            order_minus(2),
            ORDER,
            [0; 32],
        ];
        for r in &edges {
            for s in [&b[32..64], &small[..], &order_minus(1)[..], &ORDER[..]] {
                let v = 27 + rng.gen_range(0..2u8);
                compare(&node, hash, r, s, v, &mut tally).await;
            }
        }
    }
    eprintln!(
        "ecrecover differential: {} recovered alike, {} unrecoverable alike, {} high-s, {} refused by the rules",
        tally[0], tally[1], tally[2], tally[3]
    );
    assert!(
        tally.iter().all(|n| *n > 0),
        "every kind of case ran: {tally:?}"
    );
}
