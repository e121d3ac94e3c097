//! Checks every entry of the shared Raiden 0.50 vectors (`../shared/vectors/raiden-proofs.json`,
//! computed by an independent implementation) against channel-core, byte for byte.
//!
//! The file is read at test time from the shared directory beside the repository; set
//! `VOLTLANE_SHARED_DIR` to point elsewhere.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::str::FromStr;

use channel_core::crypto::{eip191_hash, Signer};
use channel_core::locks::{locksroot_of, pack_locks, Secret};
use channel_core::primitives::{decode_hex, u256_from_dec};
use channel_core::proofs::{participants_hash, unlock_identifier, BalanceData, MessageType};
use channel_core::settlement::{settle_amounts, SettlementInput};
use channel_core::{
    Address, BalanceProof, Domain, HashTimeLock, LocalSigner, Signature, SignedBalanceProof,
    WithdrawProof, H256, U256,
};
use serde_json::Value;

fn vectors() -> Value {
    let dir = std::env::var_os("VOLTLANE_SHARED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared"));
    let path = dir.join("vectors/raiden-proofs.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vectors at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} missing or not a string in {v}"))
}

fn u256(v: &Value, key: &str) -> U256 {
    u256_from_dec(s(v, key)).unwrap()
}

fn h256(v: &Value, key: &str) -> H256 {
    H256::from_str(s(v, key)).unwrap()
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    decode_hex(s(v, key)).unwrap()
}

fn signer(v: &Value, name: &str) -> LocalSigner {
    let acct = &v["accounts"][name];
    let key = LocalSigner::from_bytes(&decode_hex(s(acct, "private_key")).unwrap()).unwrap();
    assert_eq!(
        key.address().to_string(),
        s(acct, "address"),
        "address (EIP-55) of account {name}"
    );
    key
}

fn domain(v: &Value) -> Domain {
    Domain {
        chain_id: U256::from(v["chain_id"].as_u64().unwrap()),
        token_network_address: Address::from_str(s(v, "token_network_address")).unwrap(),
    }
}

#[test]
fn accounts_derive_their_checksummed_addresses() {
    let v = vectors();
    let accounts = v["accounts"].as_object().unwrap();
    assert!(accounts.len() >= 4);
    for name in accounts.keys() {
        let key = signer(&v, name);
        let parsed: Address = s(&v["accounts"][name], "address").parse().unwrap();
        assert_eq!(parsed, key.address());
    }
}

#[test]
fn locksroots() {
    let v = vectors();
    let cases = v["locksroot"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let locks: Vec<HashTimeLock> = case["locks"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| {
                let secret = Secret(h256(l, "secret"));
                assert_eq!(secret.hash(), h256(l, "secrethash"), "sha256 secrethash");
                HashTimeLock {
                    expiration: l["expiration"].as_u64().unwrap(),
                    amount: U256::from(l["amount"].as_u64().unwrap()),
                    secrethash: secret.hash(),
                }
            })
            .collect();
        assert_eq!(pack_locks(&locks), bytes(case, "packed"));
        assert_eq!(locksroot_of(&locks), h256(case, "locksroot"));
        let set = locks
            .iter()
            .fold(channel_core::PendingLocks::new(), |s, l| s.with(*l));
        assert_eq!(set.locksroot(), h256(case, "locksroot"));
    }
}

#[test]
fn balance_proofs_and_counter_signatures() {
    let v = vectors();
    let domain = domain(&v);
    let cases = v["balance_proofs"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let key = signer(&v, s(case, "signer"));
        assert_eq!(case["message_type"], MessageType::BalanceProof as u8);
        let balance = BalanceData {
            transferred_amount: u256(case, "transferred_amount"),
            locked_amount: u256(case, "locked_amount"),
            locksroot: h256(case, "locksroot"),
        };
        assert_eq!(balance.balance_hash(), h256(case, "balance_hash"));
        let proof = BalanceProof {
            domain,
            channel_identifier: u256(case, "channel_identifier"),
            nonce: s(case, "nonce").parse().unwrap(),
            balance,
            additional_hash: h256(case, "additional_hash"),
        };
        assert_eq!(proof.pack(), bytes(case, "packed"));
        assert_eq!(proof.signing_hash(), h256(case, "message_hash"));
        assert_eq!(
            eip191_hash(&bytes(case, "packed")),
            h256(case, "message_hash")
        );
        let signed = proof.sign(&key).unwrap();
        assert_eq!(
            signed.signature.as_bytes().to_vec(),
            bytes(case, "signature")
        );
        assert_eq!(signed.signer().unwrap(), key.address());

        let counter = &case["counter_signatures"];
        for (kind, ty) in [
            ("close", MessageType::BalanceProof),
            ("update", MessageType::BalanceProofUpdate),
        ] {
            let c = &counter[kind];
            assert_eq!(c["message_type"], ty as u8);
            let partner = signer(&v, s(c, "signer"));
            assert_eq!(
                proof.pack_counter_signed(ty, &signed.signature),
                bytes(c, "packed"),
                "{kind} packing"
            );
            let (hash, sig) = match ty {
                MessageType::BalanceProof => {
                    (signed.closing_hash(), signed.counter_sign_close(&partner))
                }
                _ => (signed.update_hash(), signed.counter_sign_update(&partner)),
            };
            assert_eq!(hash, h256(c, "message_hash"), "{kind} hash");
            assert_eq!(sig.unwrap().as_bytes().to_vec(), bytes(c, "signature"));
            let parsed = Signature::from_slice(&bytes(c, "signature")).unwrap();
            assert_eq!(parsed.recover(&hash).unwrap(), partner.address());
        }
    }
}

#[test]
fn empty_balance_hashes_to_zero() {
    assert_eq!(BalanceData::EMPTY.balance_hash(), H256::ZERO);
    let none = SignedBalanceProof::none(domain(&vectors()), U256::from(1u8));
    assert!(none.is_none());
}

#[test]
fn withdraws() {
    let v = vectors();
    let domain = domain(&v);
    let cases = v["withdraws"].as_array().unwrap();
    assert!(!cases.is_empty());
    for case in cases {
        let key = signer(&v, s(case, "signer"));
        assert_eq!(case["message_type"], MessageType::Withdraw as u8);
        let proof = WithdrawProof {
            domain,
            channel_identifier: u256(case, "channel_identifier"),
            participant: s(case, "participant").parse().unwrap(),
            total_withdraw: u256(case, "total_withdraw"),
            withdrawable_until: s(case, "withdrawable_until").parse().unwrap(),
        };
        assert_eq!(proof.pack(), bytes(case, "packed"));
        assert_eq!(proof.signing_hash(), h256(case, "message_hash"));
        assert_eq!(
            proof.sign(&key).unwrap().as_bytes().to_vec(),
            bytes(case, "signature")
        );
    }
}

#[test]
fn participants_hash_and_unlock_identifier() {
    let v = vectors();
    let p = &v["participants_hash"];
    let a: Address = s(p, "participant1").parse().unwrap();
    let b: Address = s(p, "participant2").parse().unwrap();
    assert_eq!(participants_hash(a, b), h256(p, "hash"));
    assert_eq!(
        participants_hash(b, a),
        h256(p, "hash"),
        "order-independent"
    );

    let u = &v["unlock_identifier"];
    assert_eq!(
        unlock_identifier(
            &u256(u, "channel_identifier"),
            s(u, "sender").parse().unwrap(),
            s(u, "receiver").parse().unwrap()
        ),
        h256(u, "hash")
    );
}

#[test]
fn settlement_cases() {
    let v = vectors();
    let cases = v["settlement"].as_array().unwrap();
    assert!(!cases.is_empty());
    let input = |p: &Value| SettlementInput {
        deposit: u256(p, "deposit"),
        withdrawn: u256(p, "withdrawn"),
        transferred: u256(p, "transferred"),
        locked: u256(p, "locked"),
    };
    for (i, case) in cases.iter().enumerate() {
        let (p1, p2) = (input(&case["p1"]), input(&case["p2"]));
        let out = settle_amounts(&p1, &p2);
        let want = &case["settled"];
        assert_eq!(out.p1_amount, u256(want, "p1_amount"), "case {i} p1_amount");
        assert_eq!(out.p2_amount, u256(want, "p2_amount"), "case {i} p2_amount");
        assert_eq!(out.p1_locked_kept, u256(want, "p1_locked_kept"), "case {i}");
        assert_eq!(out.p2_locked_kept, u256(want, "p2_locked_kept"), "case {i}");
        // Swapping the participants swaps the outcome.
        let swapped = settle_amounts(&p2, &p1);
        assert_eq!(swapped.p1_amount, out.p2_amount, "case {i} symmetric");
        assert_eq!(
            swapped.p2_locked_kept, out.p1_locked_kept,
            "case {i} symmetric"
        );
    }
}
