//! The on-disk layout of [`ChannelStateRecord`] version 1, pinned field by field: a record
//! written from a known channel must equal the JSON written out here, and that JSON must
//! decode to the same channel. A failure here means the layout of data already in the field
//! changed: add a new version instead.

use channel_core::locks::locksroot_of;
use channel_core::{BalanceData, BalanceProof};
use serde_json::{json, Value};

use super::*;

fn sig(r: u8, s: u8) -> Signature {
    let mut b = [0u8; 65];
    b[31] = r;
    b[63] = s;
    b[64] = 27;
    Signature::from_slice(&b).unwrap()
}

fn domain() -> Domain {
    Domain {
        chain_id: U256::from(337u64),
        token_network_address: Address([0x5c; 20]),
    }
}

const US: Address = Address([0x11; 20]);
const THEM: Address = Address([0x22; 20]);

fn proof(
    nonce: u64,
    transferred: u64,
    locks: &[HashTimeLock],
    signature: Signature,
) -> SignedBalanceProof {
    let locked = locks
        .iter()
        .map(|l| l.amount)
        .fold(U256::ZERO, |a, b| a + b);
    let locksroot = if locks.is_empty() {
        channel_core::EMPTY_LOCKSROOT
    } else {
        locksroot_of(locks)
    };
    SignedBalanceProof {
        proof: BalanceProof {
            domain: domain(),
            channel_identifier: U256::from(7u8),
            nonce,
            balance: BalanceData {
                transferred_amount: U256::from(transferred),
                locked_amount: locked,
                locksroot,
            },
            additional_hash: H256([0xad; 32]),
        },
        signature,
    }
}

/// A closed channel with something in every field: a lock and a known, registered secret on
/// our side, a pending withdraw of ours, proofs both ways.
fn busy_channel() -> Channel {
    let secret = Secret(H256([0x5e; 32]));
    let lock = HashTimeLock {
        expiration: 4_500,
        amount: U256::from(25u8),
        secrethash: secret.hash(),
    };
    let our = EndState {
        address: US,
        total_deposit: U256::from(1_000u32),
        total_withdraw: U256::ZERO,
        pending_withdraw: Some(PendingWithdraw {
            proof: WithdrawProof {
                domain: domain(),
                channel_identifier: U256::from(7u8),
                participant: US,
                total_withdraw: U256::from(100u8),
                withdrawable_until: 5_000,
            },
            participant_signature: sig(3, 4),
            partner_signature: None,
        }),
        latest: Some(proof(3, 40, &[lock], sig(1, 2))),
        locks: PendingLocks::from(vec![lock]),
    };
    let partner = EndState {
        address: THEM,
        total_deposit: U256::from(500u32),
        total_withdraw: U256::from(10u8),
        pending_withdraw: None,
        latest: Some(proof(2, 15, &[], sig(5, 6))),
        locks: PendingLocks::new(),
    };
    let secrets = BTreeMap::from([(
        secret.hash(),
        KnownSecret {
            secret,
            registered_at: Some(4_000),
        },
    )]);
    Channel::from_parts(ChannelParts {
        domain: domain(),
        id: U256::from(7u8),
        our,
        partner,
        phase: ChannelPhase::Closed {
            closer: THEM,
            at: 4_242,
        },
        secrets,
    })
    .unwrap()
}

fn hex32(b: u8) -> String {
    format!("0x{}", hex::encode([b; 32]))
}

fn hex20(b: u8) -> String {
    format!("0x{}", hex::encode([b; 20]))
}

fn sig_hex(r: u8, s: u8) -> String {
    let mut b = [0u8; 65];
    b[31] = r;
    b[63] = s;
    b[64] = 27;
    format!("0x{}", hex::encode(b))
}

fn domain_json() -> Value {
    json!({ "chain_id": "337", "token_network_address": hex20(0x5c) })
}

fn busy_json() -> Value {
    let secrethash = "0x9985b2e4b9b71b28ce59ea5ce77f0b110637b625c6d7f41e982c9510940a2056";
    let locksroot = "0x01837a07e6d4ff6952ee541a03d16907e073fdaf456f537f752a1d1273720119";
    json!({
        "domain": domain_json(),
        "id": "7",
        "our": {
            "address": hex20(0x11),
            "total_deposit": "1000",
            "total_withdraw": "0",
            "pending_withdraw": {
                "proof": {
                    "domain": domain_json(),
                    "channel_identifier": "7",
                    "participant": hex20(0x11),
                    "total_withdraw": "100",
                    "withdrawable_until": 5000
                },
                "participant_signature": sig_hex(3, 4),
                "partner_signature": null
            },
            "latest": {
                "proof": {
                    "domain": domain_json(),
                    "channel_identifier": "7",
                    "nonce": 3,
                    "balance": {
                        "transferred_amount": "40",
                        "locked_amount": "25",
                        "locksroot": locksroot
                    },
                    "additional_hash": hex32(0xad)
                },
                "signature": sig_hex(1, 2)
            },
            "locks": {
                "locks": [
                    { "expiration": 4500, "amount": "25", "secrethash": secrethash }
                ]
            }
        },
        "partner": {
            "address": hex20(0x22),
            "total_deposit": "500",
            "total_withdraw": "10",
            "pending_withdraw": null,
            "latest": {
                "proof": {
                    "domain": domain_json(),
                    "channel_identifier": "7",
                    "nonce": 2,
                    "balance": {
                        "transferred_amount": "15",
                        "locked_amount": "0",
                        "locksroot": "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
                    },
                    "additional_hash": hex32(0xad)
                },
                "signature": sig_hex(5, 6)
            },
            "locks": { "locks": [] }
        },
        "phase": { "Closed": { "closer": hex20(0x22), "at": 4242 } },
        "partner_key": hex20(0x22),
        "secrets": {
            secrethash: { "secret": hex32(0x5e), "registered_at": 4000 }
        }
    })
}

fn payload(bytes: &[u8]) -> Value {
    assert_eq!(bytes[0], CHANNEL_STATE_VERSION);
    serde_json::from_slice(&bytes[1..]).unwrap()
}

/// Compares field by field, so a failure names the field that moved.
fn assert_same_layout(got: &Value, want: &Value, at: &str) {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => {
            let (gk, wk): (Vec<_>, Vec<_>) = (g.keys().collect(), w.keys().collect());
            assert_eq!(gk, wk, "fields of {at}");
            for (k, wv) in w {
                assert_same_layout(&g[k], wv, &format!("{at}.{k}"));
            }
        }
        (Value::Array(g), Value::Array(w)) => {
            assert_eq!(g.len(), w.len(), "length of {at}");
            for (i, (gv, wv)) in g.iter().zip(w).enumerate() {
                assert_same_layout(gv, wv, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(got, want, "{at}"),
    }
}

#[test]
fn v1_layout_of_a_busy_channel_is_frozen() {
    let ch = busy_channel();
    let bytes = ChannelStateRecord::encode(&ch).unwrap();
    assert_same_layout(&payload(&bytes), &busy_json(), "channel");
    let mut stored = vec![1u8];
    stored.extend(serde_json::to_vec(&busy_json()).unwrap());
    assert_eq!(
        ChannelStateRecord::decode("channels", "7", &stored).unwrap(),
        ch
    );
}

#[test]
fn v1_layout_of_a_fresh_channel_is_frozen() {
    let ch = Channel::new(domain(), U256::from(7u8), US, THEM);
    let end = |a: u8| {
        json!({
            "address": hex20(a),
            "total_deposit": "0",
            "total_withdraw": "0",
            "pending_withdraw": null,
            "latest": null,
            "locks": { "locks": [] }
        })
    };
    // No "secrets" field while there are none.
    let want = json!({
        "domain": domain_json(),
        "id": "7",
        "our": end(0x11),
        "partner": end(0x22),
        "phase": "Open",
        "partner_key": hex20(0x22)
    });
    let bytes = ChannelStateRecord::encode(&ch).unwrap();
    assert_same_layout(&payload(&bytes), &want, "channel");
    let mut stored = vec![1u8];
    stored.extend(serde_json::to_vec(&want).unwrap());
    assert_eq!(
        ChannelStateRecord::decode("device", "channel", &stored).unwrap(),
        ch
    );
}

#[test]
fn v1_layout_of_every_phase_is_frozen() {
    let cases = [
        (PhaseRecord::Open, json!("Open")),
        (
            PhaseRecord::CooperativeSettling { until: 9 },
            json!({ "CooperativeSettling": { "until": 9 } }),
        ),
        (PhaseRecord::Closing, json!("Closing")),
        (
            PhaseRecord::Closed { closer: US, at: 3 },
            json!({ "Closed": { "closer": hex20(0x11), "at": 3 } }),
        ),
        (PhaseRecord::Settled, json!("Settled")),
    ];
    for (phase, want) in cases {
        assert_eq!(serde_json::to_value(phase).unwrap(), want);
        assert_eq!(serde_json::from_value::<PhaseRecord>(want).unwrap(), phase);
        assert_eq!(PhaseRecord::from(ChannelPhase::from(phase)), phase);
    }
}

#[test]
fn unknown_versions_and_broken_records_are_refused() {
    let bytes = ChannelStateRecord::encode(&busy_channel()).unwrap();
    let mut future = bytes.clone();
    future[0] = CHANNEL_STATE_VERSION + 1;
    assert!(matches!(
        ChannelStateRecord::decode("channels", "7", &future),
        Err(StoreError::Version {
            found: 2,
            supported: CHANNEL_STATE_VERSION,
            ..
        })
    ));
    assert!(matches!(
        ChannelStateRecord::decode("channels", "7", &[]),
        Err(StoreError::Corrupt { .. })
    ));
    // A partner key that is not the partner, and locks no proof carries: decoded JSON, but
    // not a channel.
    let mut wrong_key = busy_json();
    wrong_key["partner_key"] = json!(hex20(0x33));
    let mut no_locks = busy_json();
    no_locks["our"]["locks"] = json!({ "locks": [] });
    for broken in [wrong_key, no_locks] {
        let mut stored = vec![1u8];
        stored.extend(serde_json::to_vec(&broken).unwrap());
        assert!(matches!(
            ChannelStateRecord::decode("channels", "7", &stored),
            Err(StoreError::Corrupt { .. })
        ));
    }
}
