//! The final receipt: both sides sign one packing; any change to it, or a signature from
//! anyone else, is refused; it survives a JSON round trip.

use super::fixtures::*;
use super::*;
use crate::crypto::Signer;
use crate::primitives::{H256, U256};
use crate::testing::test_signer;

fn receipt() -> SessionReceipt {
    let mut payer = payer(1_000_000);
    payer
        .handle_reading(&reading(0, 1_000, 1_000), 1_000)
        .unwrap();
    let due = payer
        .handle_reading(&reading(1, 1_025, 1_010), 1_010)
        .unwrap();
    payer.begin_payment(due.additional_hash, due.units).unwrap();
    payer.record_paid(due.additional_hash).unwrap();
    payer.receipt().unwrap()
}

fn signed(r: SessionReceipt) -> SignedSessionReceipt {
    SignedSessionReceipt {
        receipt: r,
        payer_signature: r.sign_part(&payer_key()).unwrap(),
        payee_signature: r.sign_part(&payee_key()).unwrap(),
    }
}

#[test]
fn receipt_says_what_was_paid_and_against_which_readings() {
    let r = receipt();
    assert_eq!(r.pack().len(), receipt::SESSION_RECEIPT_LEN);
    assert_eq!((r.total_units, r.total_paid), (25, U256::from(75u8)));
    assert_eq!(r.first_reading_hash, raw(0, 1_000, 1_000).hash());
    assert_eq!(r.last_reading_hash, raw(1, 1_025, 1_010).hash());
    assert_eq!(r.payer, payer_key().address());
    assert_eq!(r.payee, payee_key().address());
}

#[test]
fn signed_receipt_verifies_and_round_trips_through_json() {
    let s = signed(receipt());
    assert_eq!(s.verify(), Ok(()));
    let json = serde_json::to_string_pretty(&s).unwrap();
    let back: SignedSessionReceipt = serde_json::from_str(&json).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.verify(), Ok(()));
}

#[test]
fn any_tampering_is_refused() {
    let s = signed(receipt());
    let mut edits: Vec<SignedSessionReceipt> = Vec::new();
    let mut e = s;
    e.receipt.total_units = 26;
    e.receipt.total_paid = U256::from(78u8);
    edits.push(e);
    e = s;
    e.receipt.price_per_unit = U256::from(1u8);
    e.receipt.total_paid = U256::from(25u8);
    edits.push(e);
    e = s;
    e.receipt.session_id = H256([8; 32]);
    edits.push(e);
    e = s;
    e.receipt.first_reading_hash = H256([1; 32]);
    edits.push(e);
    e = s;
    e.receipt.last_reading_hash = H256([1; 32]);
    edits.push(e);
    e = s;
    e.receipt.unit = MeterUnit::Reading;
    edits.push(e);
    e = s;
    e.receipt.domain.chain_id = U256::from(1u8);
    edits.push(e);
    e = s;
    e.receipt.payer = test_signer(9).address();
    edits.push(e);
    e = s;
    std::mem::swap(&mut e.payer_signature, &mut e.payee_signature);
    edits.push(e);
    for (i, edit) in edits.iter().enumerate() {
        assert!(
            matches!(edit.verify(), Err(SessionError::BadReceiptSignature { .. })),
            "edit {i} verified: {:?}",
            edit.verify()
        );
    }
    // Totals that do not match the price are refused even when both signed them.
    let mut r = receipt();
    r.total_paid = U256::from(74u8);
    assert_eq!(
        signed(r).verify(),
        Err(SessionError::ReceiptMismatch {
            field: "total_paid",
            expected: "75".into(),
            got: "74".into()
        })
    );
}

#[test]
fn only_the_payer_and_payee_sign() {
    let stranger = test_signer(9);
    assert_eq!(
        receipt().sign_part(&stranger),
        Err(SessionError::NotSigner {
            expected: payee_key().address(),
            signer: stranger.address()
        })
    );
    let mut s = signed(receipt());
    s.payee_signature = receipt().sign_part(&payer_key()).unwrap();
    assert!(matches!(
        s.verify(),
        Err(SessionError::BadReceiptSignature { role: "payee", .. })
    ));
}
