//! Checks `docs/wire-formats.md` against channel-core: every vector of
//! `tests/vectors/wire-formats.json` (computed by an implementation independent of this
//! crate), byte for byte.
//!
//! For each signed message (payment request, session offer, meter reading, session receipt,
//! auth challenge) and each case: the layout rows are contiguous and add up to the packed
//! length; packing the case's fields by those rows (this file's own packing, not the crate's)
//! gives the vector's bytes, and so does the crate's `pack()`; the EIP-191 digest computed by
//! hand, the crate's `signing_hash()` and the vector agree; the crate signs exactly the
//! vector's signature (RFC 6979), which recovers to the signer and passes the crate's
//! verifier; and flipping any byte of the packing or of the signature breaks it. The doc's
//! layout tables must match the JSON rows, its field-by-field dumps the packings, and every
//! long hex value it quotes must be a value of the vectors. Last, the payer's checks the doc
//! lists refuse what it says they do.
//!
//! The vectors pin version 1 of every layout: a change to a packing is a new tag and new
//! vectors, never an edit of these.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::PathBuf;
use std::str::FromStr;

use channel_core::crypto::{keccak256, sha256, verify_signer, Signer};
use channel_core::mediation::{
    PaymentRequest, PaymentRequestError, SignedPaymentRequest, PAYMENT_REQUEST_LEN,
    PAYMENT_REQUEST_TAG,
};
use channel_core::primitives::{decode_hex, u256_from_dec};
use channel_core::session::offer::{SESSION_OFFER_LEN, SESSION_OFFER_TAG};
use channel_core::session::reading::{METER_READING_LEN, METER_READING_TAG};
use channel_core::session::receipt::{SESSION_RECEIPT_LEN, SESSION_RECEIPT_TAG};
use channel_core::session::{
    MeterReading, MeterUnit, PayerLimits, PayerSession, SessionError, SessionOffer, SessionReceipt,
    SignedMeterReading, SignedSessionOffer, SignedSessionReceipt, StopReason,
};
use channel_core::{Address, Domain, LocalSigner, Secret, Signature, H256, U256};
use serde_json::Value;

fn manifest_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn vectors() -> Value {
    let path = manifest_dir().join("tests/vectors/wire-formats.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read vectors at {}: {e}", path.display()));
    serde_json::from_str(&text).expect("vectors are JSON")
}

fn doc() -> String {
    let path = manifest_dir().join("../docs/wire-formats.md");
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read the doc at {}: {e}", path.display()))
}

// --- reading the JSON ---

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} missing or not a string in {v}"))
}

fn u64_of(v: &Value, key: &str) -> u64 {
    s(v, key).parse().unwrap()
}

fn opt_u64(v: &Value, key: &str) -> Option<u64> {
    match &v[key] {
        Value::Null => None,
        _ => Some(u64_of(v, key)),
    }
}

fn u256(v: &Value, key: &str) -> U256 {
    u256_from_dec(s(v, key)).unwrap()
}

fn h256(v: &Value, key: &str) -> H256 {
    H256::from_str(s(v, key)).unwrap()
}

fn address(v: &Value, key: &str) -> Address {
    Address::from_str(s(v, key)).unwrap()
}

fn bytes(v: &Value, key: &str) -> Vec<u8> {
    decode_hex(s(v, key)).unwrap()
}

fn unit(v: &Value, key: &str) -> MeterUnit {
    serde_json::from_value(v[key].clone()).unwrap()
}

fn stop_reason(v: &Value, key: &str) -> Option<StopReason> {
    serde_json::from_value(v[key].clone()).unwrap()
}

fn account(v: &Value, name: &str) -> LocalSigner {
    let acct = &v["accounts"][name];
    assert!(acct.is_object(), "no account {name}");
    LocalSigner::from_bytes(&bytes(acct, "private_key")).unwrap()
}

fn domain(v: &Value) -> Domain {
    let d = &v["domain"];
    Domain {
        chain_id: u256(d, "chain_id"),
        token_network_address: address(d, "token_network_address"),
    }
}

fn cases<'a>(v: &'a Value, structure: &str) -> &'a [Value] {
    let cases = v[structure]["cases"].as_array().unwrap();
    assert!(!cases.is_empty(), "{structure} has no cases");
    cases
}

/// One layout row: field, offset, length, encoding.
fn layout(v: &Value, structure: &str) -> Vec<(String, usize, usize, String)> {
    v[structure]["layout"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| {
            let r = row.as_array().unwrap();
            (
                r[0].as_str().unwrap().to_string(),
                r[1].as_u64().unwrap() as usize,
                r[2].as_u64().unwrap() as usize,
                r[3].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

// --- this file's own packing, from the layout rows ---

/// The rows are contiguous from 0 and add up to the structure's length, which is the
/// crate's constant.
fn check_layout(v: &Value, structure: &str, crate_len: usize) {
    let mut next = 0;
    for (field, offset, length, _) in layout(v, structure) {
        assert_eq!(offset, next, "{structure}.{field} offset");
        next += length;
    }
    assert_eq!(next, crate_len, "{structure} length (crate constant)");
    assert_eq!(
        v[structure]["length"].as_u64().unwrap() as usize,
        crate_len,
        "{structure} length (vectors)"
    );
}

/// Encodes one field as the doc's encoding names say.
fn encode(v: &Value, encoding: &str, value: &Value) -> Vec<u8> {
    let text = || value.as_str().unwrap();
    match encoding {
        "ascii" => text().as_bytes().to_vec(),
        "address" => Address::from_str(text()).unwrap().as_bytes().to_vec(),
        "uint256" => u256_from_dec(text()).unwrap().to_be_bytes::<32>().to_vec(),
        "bytes32" => H256::from_str(text()).unwrap().as_bytes().to_vec(),
        "uint64" => text().parse::<u64>().unwrap().to_be_bytes().to_vec(),
        "unit_code" => vec![v["unit_codes"][text()].as_u64().unwrap() as u8],
        "present" => vec![u8::from(!value.is_null())],
        "optional_uint64" => match value {
            Value::Null => 0u64.to_be_bytes().to_vec(),
            _ => text().parse::<u64>().unwrap().to_be_bytes().to_vec(),
        },
        "stop_reason_code" => match value {
            Value::Null => vec![0],
            _ => vec![v["stop_reason_codes"][text()].as_u64().unwrap() as u8],
        },
        other => panic!("unknown encoding {other}"),
    }
}

/// Packs `case` by the layout rows of `structure`: the tag (or prefix) and the domain come
/// from the structure and the file, every other field from the case (`max_units.present`
/// reads `max_units`).
fn pack_by_layout(v: &Value, structure: &str, case: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    for (field, offset, length, encoding) in layout(v, structure) {
        let key = field.split('.').next().unwrap();
        let value = match key {
            "tag" | "prefix" => &v[structure][key],
            "chain_id" | "token_network_address" => &v["domain"][key],
            _ => &case[key],
        };
        let encoded = encode(v, &encoding, value);
        assert_eq!(encoded.len(), length, "{structure}.{field} length");
        assert_eq!(out.len(), offset, "{structure}.{field} offset");
        out.extend_from_slice(&encoded);
    }
    out
}

/// EIP-191 personal-sign digest, spelled out as the doc states it.
fn eip191_by_hand(packed: &[u8]) -> H256 {
    let mut m = b"\x19Ethereum Signed Message:\n".to_vec();
    m.extend_from_slice(packed.len().to_string().as_bytes());
    m.extend_from_slice(packed);
    keccak256(&m)
}

/// The checks every signed packing gets: the layout packing, the crate's packing and the
/// vector agree; the digest by hand, the crate's and the vector's agree; the crate signs the
/// vector's signature; it recovers to `signer`; any flipped byte of the packing or the
/// signature no longer verifies as `signer`.
fn check_signed(
    what: &str,
    case: &Value,
    layout_packed: &[u8],
    crate_packed: &[u8],
    crate_hash: H256,
    signature_key: &str,
    signer: &LocalSigner,
) {
    let packed = bytes(case, "packed");
    assert_eq!(layout_packed, packed, "{what}: layout packing");
    assert_eq!(crate_packed, packed, "{what}: pack()");
    let hash = h256(case, "signing_hash");
    assert_eq!(eip191_by_hand(&packed), hash, "{what}: EIP-191 digest");
    assert_eq!(crate_hash, hash, "{what}: signing_hash()");
    let expected = bytes(case, signature_key);
    let ours = signer.sign_hash(&hash).unwrap();
    assert_eq!(
        ours.as_bytes().to_vec(),
        expected,
        "{what}: RFC 6979 signature"
    );
    assert!(matches!(expected[64], 27 | 28), "{what}: v");
    let sig = Signature::from_slice(&expected).unwrap();
    assert_eq!(
        sig.recover(&hash).unwrap(),
        signer.address(),
        "{what}: signer"
    );

    for i in 0..packed.len() {
        let mut flipped = packed.clone();
        flipped[i] ^= 0x01;
        assert!(
            verify_signer(&eip191_by_hand(&flipped), &sig, signer.address()).is_err(),
            "{what}: flipping packed byte {i} still verifies"
        );
    }
    for i in 0..expected.len() {
        let mut flipped = expected.clone();
        flipped[i] ^= 0x01;
        let verifies = Signature::from_slice(&flipped)
            .map(|f| verify_signer(&hash, &f, signer.address()).is_ok())
            .unwrap_or(false);
        assert!(
            !verifies,
            "{what}: flipping signature byte {i} still verifies"
        );
    }
}

// --- the structures ---

fn payment_request(v: &Value, case: &Value) -> PaymentRequest {
    PaymentRequest {
        domain: domain(v),
        payee: address(case, "payee"),
        amount: u256(case, "amount"),
        secrethash: h256(case, "secrethash"),
        payment_id: u64_of(case, "payment_id"),
        expires_at: u64_of(case, "expires_at"),
        memo_hash: h256(case, "memo_hash"),
    }
}

fn session_offer(v: &Value, case: &Value) -> SessionOffer {
    SessionOffer {
        domain: domain(v),
        session_id: h256(case, "session_id"),
        payee: address(case, "payee"),
        meter_key: address(case, "meter_key"),
        unit: unit(case, "unit"),
        price_per_unit: u256(case, "price_per_unit"),
        credit_window_units: u64_of(case, "credit_window_units"),
        max_units: opt_u64(case, "max_units"),
        max_units_per_hour: u64_of(case, "max_units_per_hour"),
        expires_at: u64_of(case, "expires_at"),
    }
}

fn meter_reading(case: &Value) -> MeterReading {
    MeterReading {
        session_id: h256(case, "session_id"),
        transaction_id: h256(case, "transaction_id"),
        seq: u64_of(case, "seq"),
        register: u64_of(case, "register"),
        timestamp: u64_of(case, "timestamp"),
        measurand: unit(case, "measurand"),
        stopped_reason: stop_reason(case, "stopped_reason"),
    }
}

fn session_receipt(v: &Value, case: &Value) -> SessionReceipt {
    SessionReceipt {
        domain: domain(v),
        session_id: h256(case, "session_id"),
        payer: address(case, "payer"),
        payee: address(case, "payee"),
        unit: unit(case, "unit"),
        price_per_unit: u256(case, "price_per_unit"),
        total_units: u64_of(case, "total_units"),
        total_paid: u256(case, "total_paid"),
        first_reading_hash: h256(case, "first_reading_hash"),
        last_reading_hash: h256(case, "last_reading_hash"),
    }
}

fn signed_offer(v: &Value, index: usize) -> SignedSessionOffer {
    let case = &cases(v, "session_offer")[index];
    SignedSessionOffer {
        offer: session_offer(v, case),
        signature: Signature::from_slice(&bytes(case, "signature")).unwrap(),
    }
}

fn signed_reading(v: &Value, index: usize) -> SignedMeterReading {
    let case = &cases(v, "meter_reading")[index];
    SignedMeterReading {
        reading: meter_reading(case),
        signature: Signature::from_slice(&bytes(case, "signature")).unwrap(),
    }
}

fn signed_request(v: &Value, index: usize) -> SignedPaymentRequest {
    let case = &cases(v, "payment_request")[index];
    SignedPaymentRequest {
        request: payment_request(v, case),
        signature: Signature::from_slice(&bytes(case, "signature")).unwrap(),
    }
}

#[test]
fn accounts_derive_their_addresses() {
    let v = vectors();
    let accounts = v["accounts"].as_object().unwrap();
    assert_eq!(accounts.len(), 4);
    for (name, acct) in accounts {
        let key = account(&v, name);
        assert_eq!(key.address().to_string(), s(acct, "address"), "{name}");
    }
}

#[test]
fn enum_codes_are_the_crates() {
    let v = vectors();
    let units = v["unit_codes"].as_object().unwrap();
    assert_eq!(units.len(), 3);
    for (name, code) in units {
        let unit: MeterUnit = serde_json::from_value(Value::String(name.clone())).unwrap();
        assert_eq!(u64::from(unit.code()), code.as_u64().unwrap(), "{name}");
    }
    let reasons = v["stop_reason_codes"].as_object().unwrap();
    assert_eq!(reasons.len(), 22);
    let mut codes: Vec<u8> = reasons
        .iter()
        .map(|(name, code)| {
            let reason: StopReason = serde_json::from_value(Value::String(name.clone())).unwrap();
            assert_eq!(u64::from(reason.code()), code.as_u64().unwrap(), "{name}");
            reason.code()
        })
        .collect();
    codes.sort_unstable();
    assert_eq!(
        codes,
        (1..=22).collect::<Vec<u8>>(),
        "codes 1..=22, never 0"
    );
}

#[test]
fn payment_requests() {
    let v = vectors();
    check_layout(&v, "payment_request", PAYMENT_REQUEST_LEN);
    assert_eq!(
        s(&v["payment_request"], "tag").as_bytes(),
        PAYMENT_REQUEST_TAG
    );
    let domain = domain(&v);
    for (i, case) in cases(&v, "payment_request").iter().enumerate() {
        let what = format!("payment_request[{i}]");
        let key = account(&v, s(case, "signer"));
        assert_eq!(
            Secret(h256(case, "secret")).hash(),
            h256(case, "secrethash"),
            "{what}: secrethash = sha256(secret)"
        );
        assert_eq!(sha256(&bytes(case, "secret")), h256(case, "secrethash"));
        if let Some(reading) = case["bills_reading"].as_u64() {
            let r = &cases(&v, "meter_reading")[reading as usize];
            assert_eq!(
                h256(case, "memo_hash"),
                h256(r, "hash"),
                "{what}: memo_hash"
            );
        }
        let request = payment_request(&v, case);
        check_signed(
            &what,
            case,
            &pack_by_layout(&v, "payment_request", case),
            &request.pack(),
            request.signing_hash(),
            "signature",
            &key,
        );
        let signed = request.sign(&key).unwrap();
        assert_eq!(signed, signed_request(&v, i));
        let expires_at = request.expires_at;
        assert_eq!(signed.verify(&domain, expires_at - 1), Ok(()), "{what}");
        assert!(matches!(
            signed.verify(&domain, expires_at),
            Err(PaymentRequestError::Expired { .. })
        ));
        let mut more = signed;
        more.request.amount += U256::from(1u8);
        assert!(matches!(
            more.verify(&domain, expires_at - 1),
            Err(PaymentRequestError::BadSignature(_))
        ));
    }
}

#[test]
fn session_offers() {
    let v = vectors();
    check_layout(&v, "session_offer", SESSION_OFFER_LEN);
    assert_eq!(s(&v["session_offer"], "tag").as_bytes(), SESSION_OFFER_TAG);
    let domain = domain(&v);
    for (i, case) in cases(&v, "session_offer").iter().enumerate() {
        let what = format!("session_offer[{i}]");
        let key = account(&v, s(case, "signer"));
        let offer = session_offer(&v, case);
        assert_eq!(
            offer.meter_key,
            account(&v, s(case, "meter_signer")).address()
        );
        check_signed(
            &what,
            case,
            &pack_by_layout(&v, "session_offer", case),
            &offer.pack(),
            offer.signing_hash(),
            "signature",
            &key,
        );
        let signed = offer.sign(&key).unwrap();
        assert_eq!(signed, signed_offer(&v, i));
        assert_eq!(signed.verify(&domain, offer.expires_at - 1), Ok(()));
        assert!(matches!(
            signed.verify(&domain, offer.expires_at),
            Err(SessionError::OfferExpired { .. })
        ));
        assert_eq!(signed.verify_terms(&domain), Ok(()));
        let mut cheaper = signed;
        cheaper.offer.price_per_unit = U256::ZERO;
        assert!(matches!(
            cheaper.verify_terms(&domain),
            Err(SessionError::BadOfferSignature(_))
        ));
    }
}

#[test]
fn meter_readings() {
    let v = vectors();
    check_layout(&v, "meter_reading", METER_READING_LEN);
    assert_eq!(s(&v["meter_reading"], "tag").as_bytes(), METER_READING_TAG);
    for (i, case) in cases(&v, "meter_reading").iter().enumerate() {
        let what = format!("meter_reading[{i}]");
        let key = account(&v, s(case, "signer"));
        assert_eq!(
            keccak256(s(case, "transaction_id_source").as_bytes()),
            h256(case, "transaction_id"),
            "{what}: transaction_id = keccak256(OCPP transactionId)"
        );
        let reading = meter_reading(case);
        check_signed(
            &what,
            case,
            &pack_by_layout(&v, "meter_reading", case),
            &reading.pack(),
            reading.signing_hash(),
            "signature",
            &key,
        );
        // The hash a payment commits to: keccak256 of the packing, without the prefix.
        assert_eq!(reading.hash(), h256(case, "hash"), "{what}: hash");
        assert_eq!(keccak256(&bytes(case, "packed")), h256(case, "hash"));
        assert_ne!(reading.hash(), reading.signing_hash());
        let signed = reading.sign(&key).unwrap();
        assert_eq!(signed, signed_reading(&v, i));
        assert_eq!(signed.verify(key.address()), Ok(()));
        let mut more = signed;
        more.reading.register += 1;
        assert!(matches!(
            more.verify(key.address()),
            Err(SessionError::BadReadingSignature(_))
        ));
    }
}

#[test]
fn session_receipts() {
    let v = vectors();
    check_layout(&v, "session_receipt", SESSION_RECEIPT_LEN);
    assert_eq!(
        s(&v["session_receipt"], "tag").as_bytes(),
        SESSION_RECEIPT_TAG
    );
    let readings = cases(&v, "meter_reading");
    for (i, case) in cases(&v, "session_receipt").iter().enumerate() {
        let receipt = session_receipt(&v, case);
        for (link, field) in [
            ("first_reading", "first_reading_hash"),
            ("last_reading", "last_reading_hash"),
        ] {
            let r = &readings[case[link].as_u64().unwrap() as usize];
            assert_eq!(h256(case, field), h256(r, "hash"), "receipt[{i}].{field}");
        }
        let mut parts = Vec::new();
        for (role, signature_key) in [
            ("payer_signer", "payer_signature"),
            ("payee_signer", "payee_signature"),
        ] {
            let key = account(&v, s(case, role));
            check_signed(
                &format!("session_receipt[{i}] {signature_key}"),
                case,
                &pack_by_layout(&v, "session_receipt", case),
                &receipt.pack(),
                receipt.signing_hash(),
                signature_key,
                &key,
            );
            parts.push(receipt.sign_part(&key).unwrap());
        }
        let signed = SignedSessionReceipt {
            receipt,
            payer_signature: parts[0],
            payee_signature: parts[1],
        };
        assert_eq!(signed.verify(), Ok(()));
        assert_eq!(
            signed.payer_signature.as_bytes().to_vec(),
            bytes(case, "payer_signature")
        );
        let mut swapped = signed;
        swapped.payer_signature = signed.payee_signature;
        assert!(matches!(
            swapped.verify(),
            Err(SessionError::BadReceiptSignature { role: "payer", .. })
        ));
        let mut overpaid = signed;
        overpaid.receipt.total_paid += U256::from(1u8);
        assert!(matches!(
            overpaid.verify(),
            Err(SessionError::ReceiptMismatch {
                field: "total_paid",
                ..
            })
        ));
    }
}

/// The auth message is built by `voltlane_proto::auth::auth_message`, which this crate cannot
/// call; the vector pins the layout the doc states, the digest and the signature.
#[test]
fn auth_messages() {
    let v = vectors();
    check_layout(&v, "auth_message", 14 + 20 + 32);
    assert_eq!(s(&v["auth_message"], "prefix"), "voltlane-auth:");
    for (i, case) in cases(&v, "auth_message").iter().enumerate() {
        let key = account(&v, s(case, "signer"));
        let hub = address(case, "hub_address");
        assert_eq!(hub, account(&v, s(case, "hub")).address());
        let mut packed = b"voltlane-auth:".to_vec();
        packed.extend_from_slice(hub.as_bytes());
        packed.extend_from_slice(&bytes(case, "challenge"));
        check_signed(
            &format!("auth_message[{i}]"),
            case,
            &pack_by_layout(&v, "auth_message", case),
            &packed,
            eip191_by_hand(&packed),
            "signature",
            &key,
        );
    }
}

/// Every `<!-- layout: NAME -->` table of the doc lists the JSON's rows of NAME, in order
/// (offset, length, field), and every structure of the JSON has such a table.
#[test]
fn doc_tables_match_the_layouts() {
    let v = vectors();
    let doc = doc();
    for structure in [
        "payment_request",
        "session_offer",
        "meter_reading",
        "session_receipt",
        "auth_message",
    ] {
        let marker = format!("<!-- layout: {structure} -->");
        let at = doc
            .find(&marker)
            .unwrap_or_else(|| panic!("the doc has no {marker}"));
        let rows: Vec<(usize, usize, String)> = doc[at + marker.len()..]
            .lines()
            .skip_while(|l| l.trim().is_empty())
            .take_while(|l| l.trim_start().starts_with('|'))
            .filter_map(|l| {
                let cells: Vec<&str> = l.split('|').map(str::trim).collect();
                let offset = cells.get(1)?.parse().ok()?;
                let length = cells.get(2)?.parse().ok()?;
                let field = cells.get(3)?.trim_matches('`').to_string();
                Some((offset, length, field))
            })
            .collect();
        let expected: Vec<(usize, usize, String)> = layout(&v, structure)
            .into_iter()
            .map(|(field, offset, length, _)| (offset, length, field))
            .collect();
        assert_eq!(rows, expected, "doc table of {structure}");
    }
}

/// Every `<!-- dump: NAME.CASE -->` block of the doc splits that case's packing by the layout
/// rows: `offset length field hex`, one row per field, every row of the layout.
#[test]
fn doc_dumps_split_the_packings() {
    let v = vectors();
    let doc = doc();
    let marker = "<!-- dump: ";
    let mut dumps = 0;
    for (at, _) in doc.match_indices(marker) {
        let rest = &doc[at + marker.len()..];
        let name = &rest[..rest.find(" -->").unwrap()];
        let (structure, index) = name.split_once('.').unwrap();
        let case = &cases(&v, structure)[index.parse::<usize>().unwrap()];
        let packed = s(case, "packed").trim_start_matches("0x");
        let rows: Vec<(usize, usize, String, String)> = rest
            .lines()
            .skip(2) // the marker's line and the opening fence
            .take_while(|l| !l.starts_with("```"))
            .map(|l| {
                let cells: Vec<&str> = l.split_whitespace().collect();
                assert_eq!(cells.len(), 4, "dump {name}: row {l}");
                (
                    cells[0].parse().unwrap(),
                    cells[1].parse().unwrap(),
                    cells[2].to_string(),
                    cells[3].to_string(),
                )
            })
            .collect();
        let expected: Vec<(usize, usize, String, String)> = layout(&v, structure)
            .into_iter()
            .map(|(field, offset, length, _)| {
                let hex = packed[2 * offset..2 * (offset + length)].to_string();
                (offset, length, field, hex)
            })
            .collect();
        assert_eq!(rows, expected, "dump {name}");
        dumps += 1;
    }
    assert_eq!(dumps, 4, "dumps in the doc");
}

/// The doc quotes no hash, packing or signature that the vectors do not hold, and it quotes
/// the first case of every structure.
#[test]
fn doc_quotes_only_the_vectors() {
    let v = vectors();
    let json = serde_json::to_string(&v).unwrap().to_lowercase();
    let doc = doc();
    let mut quoted = 0;
    for word in doc.split(|c: char| !c.is_ascii_alphanumeric()) {
        let long_hex = word.len() >= 66
            && word.starts_with("0x")
            && word[2..].chars().all(|c| c.is_ascii_hexdigit());
        if long_hex {
            quoted += 1;
            assert!(
                json.contains(&word.to_lowercase()),
                "the doc quotes {word}, which is not in the vectors"
            );
        }
    }
    assert!(quoted > 0);
    for (structure, signature) in [
        ("payment_request", "signature"),
        ("session_offer", "signature"),
        ("meter_reading", "signature"),
        ("session_receipt", "payer_signature"),
        ("auth_message", "signature"),
    ] {
        let first = &cases(&v, structure)[0];
        for key in ["packed", "signing_hash", signature] {
            assert!(
                doc.contains(s(first, key)),
                "the doc does not quote {structure}[0].{key}"
            );
        }
    }
}

// --- what the payer checks (the doc's list, in channel_core::session::PayerSession) ---

fn reading_like(base: &SignedMeterReading, f: impl FnOnce(&mut MeterReading)) -> MeterReading {
    let mut r = base.reading;
    f(&mut r);
    r
}

#[test]
fn payer_refuses_what_the_doc_says_it_refuses() {
    let v = vectors();
    let domain = domain(&v);
    let (payee, meter, payer) = (
        account(&v, "payee"),
        account(&v, "meter"),
        account(&v, "payer"),
    );
    let offer = signed_offer(&v, 0);
    let (r0, r1, r2) = (
        signed_reading(&v, 0),
        signed_reading(&v, 1),
        signed_reading(&v, 2),
    );
    let limits = PayerLimits {
        budget: U256::from(1_000_000u64),
        clock_tolerance_secs: 5,
    };
    let start = r0.reading.timestamp;
    let mut session =
        PayerSession::accept(&offer, &domain, payer.address(), limits, start).unwrap();
    assert_eq!(session.handle_reading(&r0, start).unwrap().units, 0);
    let now = r1.reading.timestamp;
    let due = session.handle_reading(&r1, now).unwrap();
    assert_eq!((due.units, due.amount), (500, U256::from(1_500u64)));
    assert_eq!(due.additional_hash, r1.reading.hash());
    let bill = signed_request(&v, 0);
    assert_eq!(session.check_bill(&bill, now), Ok(500));
    let before = session.clone();

    let refused = |session: &mut PayerSession, r: MeterReading, key: &LocalSigner| {
        session
            .handle_reading(&r.sign(key).unwrap(), now)
            .unwrap_err()
    };
    let next = |f: fn(&mut MeterReading)| {
        reading_like(&r1, |r| {
            r.seq = 2;
            f(r);
        })
    };
    // The register falls.
    let e = refused(&mut session, next(|r| r.register -= 1), &meter);
    assert!(matches!(e, SessionError::RegisterBackwards { .. }), "{e}");
    // Ten years ahead of the payer's clock.
    let e = refused(
        &mut session,
        next(|r| r.timestamp += 10 * 365 * 86_400),
        &meter,
    );
    assert!(matches!(e, SessionError::FromTheFuture { .. }), "{e}");
    // Dated 1970, after an accepted reading.
    let e = refused(&mut session, next(|r| r.timestamp = 0), &meter);
    assert!(matches!(e, SessionError::TimestampBackwards { .. }), "{e}");
    // Faster than the offer's physical ceiling.
    let e = refused(
        &mut session,
        next(|r| {
            r.register += 1_000;
            r.timestamp += 1;
        }),
        &meter,
    );
    assert!(matches!(e, SessionError::TooFast { .. }), "{e}");
    // The same seq again with other contents.
    let e = refused(&mut session, reading_like(&r1, |r| r.register += 1), &meter);
    assert!(matches!(e, SessionError::SeqNotIncreasing { .. }), "{e}");
    // Not the offer's meter key.
    let e = refused(&mut session, next(|_| {}), &payee);
    assert!(matches!(e, SessionError::BadReadingSignature(_)), "{e}");
    // Another OCPP transaction.
    let e = refused(
        &mut session,
        next(|r| r.transaction_id = H256([1; 32])),
        &meter,
    );
    assert!(matches!(e, SessionError::WrongTransaction { .. }), "{e}");
    // Another unit.
    let e = refused(
        &mut session,
        next(|r| r.measurand = MeterUnit::Reading),
        &meter,
    );
    assert!(matches!(e, SessionError::WrongUnit { .. }), "{e}");

    // Bills: 10^30, a part of a unit, another reading, another signer.
    let bill_of = |amount: U256, memo_hash: H256, key: &LocalSigner| {
        let mut r = bill.request;
        r.amount = amount;
        r.memo_hash = memo_hash;
        r.payee = key.address();
        r.sign(key).unwrap()
    };
    let huge = U256::from(10u8).pow(U256::from(30u8));
    let e = session
        .check_bill(&bill_of(huge, r1.reading.hash(), &payee), now)
        .unwrap_err();
    assert!(matches!(e, SessionError::BillNotWholeUnits { .. }), "{e}");
    let e = session
        .check_bill(
            &bill_of(huge * U256::from(3u8), r1.reading.hash(), &payee),
            now,
        )
        .unwrap_err();
    assert!(matches!(e, SessionError::BillBeyondMetered { .. }), "{e}");
    let e = session
        .check_bill(
            &bill_of(U256::from(1_501u64), r1.reading.hash(), &payee),
            now,
        )
        .unwrap_err();
    assert!(matches!(e, SessionError::BillNotWholeUnits { .. }), "{e}");
    let e = session
        .check_bill(
            &bill_of(U256::from(1_500u64), r0.reading.hash(), &payee),
            now,
        )
        .unwrap_err();
    assert!(
        matches!(e, SessionError::BillForUnknownReading { .. }),
        "{e}"
    );
    let e = session
        .check_bill(
            &bill_of(U256::from(1_500u64), r1.reading.hash(), &meter),
            now,
        )
        .unwrap_err();
    assert!(matches!(e, SessionError::NotSigner { .. }), "{e}");
    let e = session
        .check_bill(&bill, bill.request.expires_at)
        .unwrap_err();
    assert!(matches!(e, SessionError::BadBill(_)), "{e}");

    // Nothing refused changed the session; the last reading of the vectors is accepted.
    assert_eq!(session, before);
    let due = session.handle_reading(&r2, r2.reading.timestamp).unwrap();
    assert_eq!(due.units, 734);
    assert_eq!(session.ended(), Some(StopReason::EVDisconnected));

    // A budget of 1 500 tokens at 3 per Wh: 500 Wh; reading 2 shows 734.
    let small = PayerLimits {
        budget: U256::from(1_500u64),
        ..limits
    };
    let mut session = PayerSession::accept(&offer, &domain, payer.address(), small, start).unwrap();
    session.handle_reading(&r0, start).unwrap();
    let e = session
        .handle_reading(&r2, r2.reading.timestamp)
        .unwrap_err();
    assert!(matches!(e, SessionError::BudgetExceeded { .. }), "{e}");
}
