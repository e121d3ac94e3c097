//! Round trips and field-naming of the conversions.

use channel_core::ledger::{
    ChannelPhase, ChannelRecord, LedgerEvent, LedgerEventKind, ParticipantRecord, SubmittedBalance,
};
use channel_core::primitives::{Address, H256, U256};
use channel_core::{
    BalanceData, BalanceProof, Domain, LocalSigner, Secret, SignedBalanceProof, WithdrawProof,
    EMPTY_LOCKSROOT,
};

use super::requests::{CloseChannel, OpenChannel, SetTotalDeposit};
use super::*;
use crate::v1;

fn signer(n: u8) -> LocalSigner {
    let mut b = [0u8; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).unwrap()
}

fn domain() -> Domain {
    Domain {
        chain_id: U256::from(337u32),
        token_network_address: Address([0xaa; 20]),
    }
}

fn proof() -> BalanceProof {
    BalanceProof {
        domain: domain(),
        channel_identifier: U256::from(7u8),
        nonce: 3,
        balance: BalanceData {
            transferred_amount: U256::from(1_000_000u64),
            locked_amount: U256::ZERO,
            locksroot: EMPTY_LOCKSROOT,
        },
        additional_hash: H256([9; 32]),
    }
}

#[test]
fn signed_balance_proof_round_trip() {
    let signed = proof().sign(&signer(1)).unwrap();
    let wire = v1::SignedBalanceProof::from(&signed);
    assert_eq!(SignedBalanceProof::try_from(wire).unwrap(), signed);
}

#[test]
fn withdraw_round_trip() {
    let w = WithdrawProof {
        domain: domain(),
        channel_identifier: U256::MAX,
        participant: Address([3; 20]),
        total_withdraw: U256::from(5u8),
        withdrawable_until: 99,
    };
    let cs = CoSignedWithdraw {
        proof: w,
        participant_signature: w.sign(&signer(1)).unwrap(),
        partner_signature: w.sign(&signer(2)).unwrap(),
    };
    let wire = v1::CoSignedWithdraw::from(&cs);
    assert_eq!(CoSignedWithdraw::try_from(wire).unwrap(), cs);
}

#[test]
fn wrong_length_names_the_nested_field() {
    let signed = proof().sign(&signer(1)).unwrap();
    let mut wire = v1::SignedBalanceProof::from(&signed);
    if let Some(b) = wire.proof.as_mut().and_then(|p| p.balance.as_mut()) {
        b.transferred_amount.pop();
    }
    let err = SignedBalanceProof::try_from(wire).unwrap_err();
    assert_eq!(err.field, "proof.balance.transferred_amount");
    assert_eq!(
        err.to_string(),
        "proof.balance.transferred_amount: must be 32 bytes (big-endian uint256), got 31"
    );
}

#[test]
fn missing_and_malformed_fields_are_named() {
    let err = SignedBalanceProof::try_from(v1::SignedBalanceProof::default()).unwrap_err();
    assert_eq!(err.to_string(), "proof: is required");

    let mut wire = v1::SignedBalanceProof::from(&proof().sign(&signer(1)).unwrap());
    wire.signature[64] = 5;
    let err = SignedBalanceProof::try_from(wire).unwrap_err();
    assert_eq!(err.field, "signature");
    assert!(err.to_string().contains("v must be 27 or 28"), "{err}");

    let mut wire = v1::SignedBalanceProof::from(&proof().sign(&signer(1)).unwrap());
    wire.signature.clear();
    let err = SignedBalanceProof::try_from(wire).unwrap_err();
    assert_eq!(err.field, "signature");

    let mut wire = v1::SignedBalanceProof::from(&proof().sign(&signer(1)).unwrap());
    if let Some(d) = wire.proof.as_mut().and_then(|p| p.domain.as_mut()) {
        d.token_network_address = vec![1; 21];
    }
    let err = SignedBalanceProof::try_from(wire).unwrap_err();
    assert_eq!(
        err.to_string(),
        "proof.domain.token_network_address: must be 20 bytes (address), got 21"
    );
}

#[test]
fn none_proof_may_be_unsigned() {
    let none = SignedBalanceProof::none(domain(), U256::from(7u8));
    let mut wire = v1::SignedBalanceProof::from(&none);
    assert_eq!(SignedBalanceProof::try_from(wire.clone()).unwrap(), none);
    wire.signature.clear();
    assert_eq!(SignedBalanceProof::try_from(wire).unwrap(), none);
}

#[test]
fn open_channel_deposit_is_optional_and_checked() {
    let open = |total_deposit: Vec<u8>| {
        OpenChannel::try_from(v1::OpenChannelRequest {
            partner: vec![7; 20],
            total_deposit,
        })
    };
    assert_eq!(open(vec![]).unwrap().total_deposit, None);
    let mut five = vec![0; 32];
    five[31] = 5;
    assert_eq!(open(five).unwrap().total_deposit, Some(U256::from(5u8)));
    assert_eq!(
        open(vec![1; 33]).unwrap_err().to_string().split(':').next(),
        Some("total_deposit")
    );
}

#[test]
fn request_errors_name_top_level_fields() {
    let err = SetTotalDeposit::try_from(v1::SetTotalDepositRequest {
        channel_id: vec![0; 32],
        participant: vec![0; 19],
        total_deposit: vec![0; 32],
    })
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "participant: must be 20 bytes (address), got 19"
    );

    let mut bad = v1::SignedBalanceProof::from(&proof().sign(&signer(1)).unwrap());
    if let Some(p) = bad.proof.as_mut() {
        p.additional_hash.push(0);
    }
    let err = CloseChannel::try_from(v1::CloseChannelRequest {
        channel_id: vec![0; 32],
        partner_proof: Some(bad),
        closing_signature: vec![],
    })
    .unwrap_err();
    assert_eq!(err.field, "partner_proof.proof.additional_hash");
}

#[test]
fn ledger_records_and_events_round_trip() {
    let mut record = ChannelRecord {
        id: U256::from(1u8),
        participants: [
            ParticipantRecord::new(Address([1; 20])),
            ParticipantRecord::new(Address([2; 20])),
        ],
        phase: ChannelPhase::Closed,
        opened_at: 10,
        closer: Some(Address([1; 20])),
        closed_at: Some(20),
        settle_after: Some(140),
    };
    record.participants[1].total_deposit = U256::from(50u8);
    record.participants[1].balance = Some(SubmittedBalance::from_proof(&proof()));
    let wire = v1::LedgerChannel::from(&record);
    assert_eq!(ChannelRecord::try_from(wire.clone()).unwrap(), record);

    let mut three = wire;
    three.participants.push(v1::LedgerParticipant::default());
    assert_eq!(
        ChannelRecord::try_from(three).unwrap_err().to_string(),
        "participants: must have exactly 2 entries, got 3"
    );

    let events = [
        LedgerEventKind::Minted {
            to: Address([4; 20]),
            amount: U256::from(9u8),
        },
        LedgerEventKind::ChannelSettled {
            channel_id: U256::from(1u8),
            participant1: Address([1; 20]),
            participant1_amount: U256::from(3u8),
            participant1_locksroot: EMPTY_LOCKSROOT,
            participant2: Address([2; 20]),
            participant2_amount: U256::from(4u8),
            participant2_locksroot: H256::ZERO,
        },
        LedgerEventKind::SecretRegistered {
            secrethash: Secret(H256([5; 32])).hash(),
            secret: Secret(H256([5; 32])),
        },
    ];
    for (i, kind) in events.into_iter().enumerate() {
        let e = LedgerEvent {
            seq: i as u64 + 1,
            time: 42,
            kind,
        };
        assert_eq!(LedgerEvent::try_from(v1::LedgerEvent::from(&e)).unwrap(), e);
    }
    let err = LedgerEvent::try_from(v1::LedgerEvent::default()).unwrap_err();
    assert_eq!(err.to_string(), "kind: is required");
}

#[test]
fn phase_enum_rejects_unknown_and_unspecified() {
    assert_eq!(channel_phase("phase", 2).unwrap(), ChannelPhase::Closed);
    assert_eq!(
        channel_phase("phase", 0).unwrap_err().to_string(),
        "phase: must not be UNSPECIFIED"
    );
    assert_eq!(
        channel_phase("phase", 9).unwrap_err().to_string(),
        "phase: unknown enum value 9"
    );
}

#[test]
fn settle_request_round_trips_and_names_missing_balance_data() {
    use channel_core::ledger::SettleTransaction;
    use channel_core::Signer;
    let settle = SettleTransaction {
        channel_id: U256::from(7u8),
        balances: [
            (signer(1).address(), proof().balance),
            (signer(2).address(), BalanceData::EMPTY),
        ],
    };
    let wire = v1::SettleChannelRequest::from(&settle);
    assert_eq!(SettleTransaction::try_from(wire.clone()), Ok(settle));
    let mut missing = wire.clone();
    missing.participant2_balance = None;
    assert_eq!(
        SettleTransaction::try_from(missing)
            .unwrap_err()
            .to_string(),
        "participant2_balance: is required"
    );
    let mut short = wire;
    if let Some(b) = short.participant1_balance.as_mut() {
        b.locksroot.pop();
    }
    let err = SettleTransaction::try_from(short).unwrap_err().to_string();
    assert!(
        err.starts_with("participant1_balance.locksroot: must be 32 bytes"),
        "{err}"
    );
}
