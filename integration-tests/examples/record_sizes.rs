//! Bytes per stored record in a golden data dir (`tests/fixtures/golden/<commit>/`, written by
//! `scripts/make-golden-datadirs.sh`), as stored today (one version byte + serde_json) and as
//! the same data would take in two denser forms:
//!
//! - **compact serde**: the same serde types through a postcard/bincode-like encoding (no
//!   field names, varint integers and lengths, enum variants by index). Hashes, addresses and
//!   decimal amounts keep their serde form (hex and decimal strings), since that is how the
//!   types serialize; only the JSON framing goes.
//! - **prost**: the record's data as the wire's own protobuf messages (`voltlane.v1`):
//!   `BalanceData`, `SignedBalanceProof`, `HubPayment`, `PaymentMessage`, and for a channel
//!   `ChannelState` (id, domain, both addresses, phase, deposits, withdraws, both latest
//!   proofs) plus one `Lock` per pending lock. Amounts and hashes as raw bytes. A channel
//!   record also keeps things `ChannelState` has no field for (known secrets, a pending
//!   withdraw, timers): the prost figure for channels is a lower bound.
//!
//! `cargo run -p integration-tests --example record_sizes [-- <fixture dir>]`
//! (default: the f030e4f fixture). Only prints; no assertions, nothing timed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use channel_core::channel::Channel;
use channel_core::mediation::SignedPaymentRequest;
use channel_core::primitives::{Address, U256};
use channel_core::{BalanceData, HashTimeLock, Secret, SignedBalanceProof, H256};
use prost::Message;
use serde::{Deserialize, Serialize};
use voltlane_client::store::{ChannelStateRecord, HubPaymentRecord, QueuedKind, UnackedPayment};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Every `(key, value)` of a sled database (all trees), opened on a copy.
fn records(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let copy = tempfile::tempdir().unwrap();
    copy_dir(dir, copy.path());
    let db = sled::open(copy.path()).unwrap();
    let mut out = Vec::new();
    for name in db.tree_names() {
        let tree = db.open_tree(&name).unwrap();
        let prefix = if &*name == b"__sled__default" {
            String::new()
        } else {
            format!("[{}]", String::from_utf8_lossy(&name))
        };
        for kv in tree.iter() {
            let (k, v) = kv.unwrap();
            out.push((
                format!("{prefix}{}", String::from_utf8_lossy(&k)),
                v.to_vec(),
            ));
        }
    }
    out
}

/// `signed_balances_00..01/000..05` -> `signed_balances_<id>`; `unacked/000..9` -> `unacked`.
fn namespace(key: &str) -> String {
    let ns = key.split('/').next().unwrap_or(key);
    match ns.rsplit_once('_') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{head}_<id>")
        }
        _ => ns.to_string(),
    }
}

fn json<T: for<'de> Deserialize<'de>>(key: &str, bytes: &[u8]) -> T {
    let (version, body) = bytes.split_first().unwrap();
    assert_eq!(*version, 1, "{key}: record version");
    serde_json::from_slice(body).unwrap_or_else(|e| panic!("{key}: {e}"))
}

// ----- the hub's record of a proof it sent (hub crate type, mirrored) -----

#[derive(Serialize, Deserialize)]
struct HubSent {
    #[serde(with = "channel_core::primitives::u256_dec")]
    channel_id: U256,
    proof: SignedBalanceProof,
    #[serde(with = "channel_core::primitives::u256_dec")]
    amount: U256,
    #[serde(default)]
    kind: SentKind,
}

#[allow(clippy::large_enum_variant)]
#[derive(Default, Serialize, Deserialize)]
enum SentKind {
    #[default]
    Payment,
    LockedTransfer {
        lock: HashTimeLock,
        payer: Address,
        payment_request: SignedPaymentRequest,
    },
    Unlock {
        secret: Secret,
    },
    LockExpired {
        secrethash: H256,
    },
}

// ----- prost forms -----

fn prost_proof(p: &SignedBalanceProof) -> usize {
    v1::SignedBalanceProof::from(p).encoded_len()
}

fn prost_balance(b: &BalanceData) -> usize {
    v1::BalanceData::from(b).encoded_len()
}

fn prost_channel(ch: &Channel) -> usize {
    let state = v1::ChannelState {
        channel_id: u256_bytes(&ch.id()),
        domain: Some(v1::Domain::from(ch.domain())),
        device: address_bytes(&ch.our_address()),
        hub: address_bytes(&ch.partner_address()),
        phase: 1,
        device_deposit: u256_bytes(&ch.our().total_deposit),
        hub_deposit: u256_bytes(&ch.partner().total_deposit),
        device_withdraw: u256_bytes(&ch.our().total_withdraw),
        hub_withdraw: u256_bytes(&ch.partner().total_withdraw),
        device_proof: ch.our_latest_proof().map(v1::SignedBalanceProof::from),
        hub_proof: ch.partner_latest_proof().map(v1::SignedBalanceProof::from),
        ..Default::default()
    };
    let locks: usize = ch
        .our()
        .locks
        .as_slice()
        .iter()
        .chain(ch.partner().locks.as_slice())
        .map(|l| {
            let n = v1::Lock::from(l).encoded_len();
            n + 1 + prost::length_delimiter_len(n)
        })
        .sum();
    state.encoded_len() + locks
}

fn prost_hub_sent(s: &HubSent) -> usize {
    let kind = match &s.kind {
        SentKind::Payment => None,
        SentKind::LockedTransfer {
            lock,
            payer,
            payment_request,
        } => Some(v1::hub_payment::Kind::LockedTransfer(
            v1::IncomingTransfer {
                lock: Some(v1::Lock::from(lock)),
                payer: address_bytes(payer),
                payment_request: Some(v1::SignedPaymentRequest::from(payment_request)),
            },
        )),
        SentKind::Unlock { secret } => Some(v1::hub_payment::Kind::Unlock(v1::HubUnlock {
            secret: secret.0.as_bytes().to_vec(),
        })),
        SentKind::LockExpired { secrethash } => {
            Some(v1::hub_payment::Kind::LockExpired(v1::HubLockExpired {
                secrethash: secrethash.as_bytes().to_vec(),
            }))
        }
    };
    v1::HubPayment {
        channel_id: u256_bytes(&s.channel_id),
        balance_proof: Some(v1::SignedBalanceProof::from(&s.proof)),
        amount: u256_bytes(&s.amount),
        kind,
    }
    .encoded_len()
}

fn prost_unacked(u: &UnackedPayment) -> usize {
    use v1::payment_message::Kind;
    let kind = match &u.kind {
        QueuedKind::Direct => None,
        QueuedKind::LockedTransfer {
            lock,
            payment_request,
        } => Some(Kind::LockedTransfer(v1::MediatedLock {
            lock: Some(v1::Lock::from(lock)),
            payment_request: Some(v1::SignedPaymentRequest::from(payment_request)),
        })),
        QueuedKind::Unlock { secret } => Some(Kind::Unlock(v1::PayerUnlock {
            secret: secret.0.as_bytes().to_vec(),
        })),
        QueuedKind::LockExpired { secrethash } => Some(Kind::LockExpired(v1::PayerLockExpired {
            secrethash: secrethash.as_bytes().to_vec(),
        })),
    };
    v1::PaymentMessage {
        request_id: 0,
        balance_proof: Some(v1::SignedBalanceProof::from(&u.proof)),
        amount: u256_bytes(&u.amount),
        kind,
    }
    .encoded_len()
}

fn prost_hub_payment(p: &HubPaymentRecord) -> usize {
    v1::HubPayment {
        channel_id: Vec::new(),
        balance_proof: Some(v1::SignedBalanceProof::from(&p.proof)),
        amount: u256_bytes(&p.amount),
        kind: None,
    }
    .encoded_len()
}

// ----- figures -----

#[derive(Default)]
struct Sizes {
    n: usize,
    json: usize,
    compact: usize,
    prost: usize,
    min: usize,
    max: usize,
}

impl Sizes {
    fn add(&mut self, json: usize, compact: usize, prost: usize) {
        if self.n == 0 || json < self.min {
            self.min = json;
        }
        self.max = self.max.max(json);
        self.n += 1;
        self.json += json;
        self.compact += compact;
        self.prost += prost;
    }
}

fn main() {
    let dir = std::env::args()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/golden/f030e4f")
        });
    println!("golden data dir: {}", dir.display());

    let mut by_ns: BTreeMap<(String, String), (usize, usize)> = BTreeMap::new();
    let mut kinds: BTreeMap<&'static str, Sizes> = BTreeMap::new();
    let stores = [
        ("hub", dir.join("hub/db")),
        ("car", dir.join("car")),
        ("charger", dir.join("charger")),
        ("meter", dir.join("meter")),
    ];
    for (who, path) in &stores {
        let side = if *who == "hub" { "hub" } else { "device" };
        for (key, value) in records(path) {
            let e = by_ns.entry((side.into(), namespace(&key))).or_default();
            e.0 += 1;
            e.1 += value.len();
            let ns = namespace(&key);
            let j = value.len();
            match (side, ns.as_str()) {
                ("hub", "channels") | ("device", "channel") => {
                    let rec: ChannelStateRecord = json(&key, &value);
                    let ch = rec.clone().into_channel().unwrap();
                    let k = if side == "hub" {
                        "hub channels/<id>: ChannelStateRecord"
                    } else {
                        "device channel: ChannelStateRecord"
                    };
                    kinds
                        .entry(k)
                        .or_default()
                        .add(j, compact::size(&rec), prost_channel(&ch));
                }
                ("hub", "signed_balances_<id>") | ("device", "signed_balance") => {
                    let b: BalanceData = json(&key, &value);
                    let k = if side == "hub" {
                        "hub signed_balances_<id>/<nonce>: BalanceData"
                    } else {
                        "device signed_balance/<nonce>: BalanceData"
                    };
                    kinds
                        .entry(k)
                        .or_default()
                        .add(j, compact::size(&b), prost_balance(&b));
                }
                ("hub", "hub_sent_<id>") => {
                    let s: HubSent = json(&key, &value);
                    let k = match s.kind {
                        SentKind::Payment => "hub hub_sent_<id>/<nonce>: direct payment",
                        SentKind::LockedTransfer { .. } => {
                            "hub hub_sent_<id>/<nonce>: locked transfer"
                        }
                        _ => "hub hub_sent_<id>/<nonce>: unlock / expiry",
                    };
                    kinds
                        .entry(k)
                        .or_default()
                        .add(j, compact::size(&s), prost_hub_sent(&s));
                    kinds
                        .entry("hub hub_sent_<id>/<nonce>:   its SignedBalanceProof")
                        .or_default()
                        .add(
                            serde_json::to_vec(&s.proof).unwrap().len(),
                            compact::size(&s.proof),
                            prost_proof(&s.proof),
                        );
                }
                ("device", "unacked") => {
                    let u: UnackedPayment = json(&key, &value);
                    let k = if u.kind.is_direct() {
                        "device unacked/<nonce>: direct"
                    } else {
                        "device unacked/<nonce>: mediated step"
                    };
                    kinds
                        .entry(k)
                        .or_default()
                        .add(j, compact::size(&u), prost_unacked(&u));
                }
                ("device", "hub_payment") => {
                    let p: HubPaymentRecord = json(&key, &value);
                    kinds
                        .entry("device hub_payment/<nonce>: HubPaymentRecord")
                        .or_default()
                        .add(j, compact::size(&p), prost_hub_payment(&p));
                }
                _ => {}
            }
        }
    }

    println!("\nrecords per namespace (all stores of the fixture), value bytes:");
    println!(
        "{:<8} {:<30} {:>6} {:>9} {:>8}",
        "SIDE", "NAMESPACE", "COUNT", "BYTES", "AVG"
    );
    for ((side, ns), (n, bytes)) in &by_ns {
        println!(
            "{side:<8} {ns:<30} {n:>6} {bytes:>9} {:>8}",
            bytes / n.max(&1)
        );
    }

    println!("\nbytes per record (averages; JSON = version byte + serde_json, as stored):");
    println!(
        "{:<50} {:>4} {:>6} {:>6} {:>6} {:>9} {:>6}",
        "RECORD", "N", "JSON", "min", "max", "COMPACT", "PROST"
    );
    for (k, s) in &kinds {
        let n = s.n.max(1);
        println!(
            "{k:<50} {:>4} {:>6} {:>6} {:>6} {:>9} {:>6}",
            s.n,
            s.json / n,
            s.min,
            s.max,
            s.compact / n,
            s.prost / n
        );
    }
}

/// A byte counter for a postcard/bincode-like serde encoding: no field names, varint
/// integers and lengths, enum variants by index, `is_human_readable() == false`.
mod compact {
    use serde::ser::{self, Serialize};

    pub fn size<T: Serialize>(value: &T) -> usize {
        let mut c = Counter(0);
        value.serialize(&mut c).expect("counting cannot fail");
        c.0
    }

    #[derive(Debug)]
    pub struct Counter(pub usize);

    #[derive(Debug)]
    pub struct Never;
    impl std::fmt::Display for Never {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("never")
        }
    }
    impl std::error::Error for Never {}
    impl ser::Error for Never {
        fn custom<T: std::fmt::Display>(_: T) -> Self {
            Never
        }
    }

    fn varint(v: u64) -> usize {
        (64 - (v | 1).leading_zeros()).div_ceil(7) as usize
    }

    type R = Result<(), Never>;

    impl ser::Serializer for &mut Counter {
        type Ok = ();
        type Error = Never;
        type SerializeSeq = Self;
        type SerializeTuple = Self;
        type SerializeTupleStruct = Self;
        type SerializeTupleVariant = Self;
        type SerializeMap = Self;
        type SerializeStruct = Self;
        type SerializeStructVariant = Self;

        fn is_human_readable(&self) -> bool {
            false
        }
        fn serialize_bool(self, _: bool) -> R {
            self.0 += 1;
            Ok(())
        }
        fn serialize_i8(self, _: i8) -> R {
            self.0 += 1;
            Ok(())
        }
        fn serialize_i16(self, v: i16) -> R {
            self.serialize_i64(v.into())
        }
        fn serialize_i32(self, v: i32) -> R {
            self.serialize_i64(v.into())
        }
        fn serialize_i64(self, v: i64) -> R {
            self.0 += varint(((v << 1) ^ (v >> 63)) as u64);
            Ok(())
        }
        fn serialize_u8(self, _: u8) -> R {
            self.0 += 1;
            Ok(())
        }
        fn serialize_u16(self, v: u16) -> R {
            self.serialize_u64(v.into())
        }
        fn serialize_u32(self, v: u32) -> R {
            self.serialize_u64(v.into())
        }
        fn serialize_u64(self, v: u64) -> R {
            self.0 += varint(v);
            Ok(())
        }
        fn serialize_u128(self, v: u128) -> R {
            self.0 += varint((v >> 64) as u64) + varint(v as u64);
            Ok(())
        }
        fn serialize_f32(self, _: f32) -> R {
            self.0 += 4;
            Ok(())
        }
        fn serialize_f64(self, _: f64) -> R {
            self.0 += 8;
            Ok(())
        }
        fn serialize_char(self, c: char) -> R {
            self.0 += c.len_utf8();
            Ok(())
        }
        fn serialize_str(self, v: &str) -> R {
            self.0 += varint(v.len() as u64) + v.len();
            Ok(())
        }
        fn serialize_bytes(self, v: &[u8]) -> R {
            self.0 += varint(v.len() as u64) + v.len();
            Ok(())
        }
        fn serialize_none(self) -> R {
            self.0 += 1;
            Ok(())
        }
        fn serialize_some<T: ?Sized + Serialize>(self, v: &T) -> R {
            self.0 += 1;
            v.serialize(self)
        }
        fn serialize_unit(self) -> R {
            Ok(())
        }
        fn serialize_unit_struct(self, _: &'static str) -> R {
            Ok(())
        }
        fn serialize_unit_variant(self, _: &'static str, i: u32, _: &'static str) -> R {
            self.0 += varint(i.into());
            Ok(())
        }
        fn serialize_newtype_struct<T: ?Sized + Serialize>(self, _: &'static str, v: &T) -> R {
            v.serialize(self)
        }
        fn serialize_newtype_variant<T: ?Sized + Serialize>(
            self,
            _: &'static str,
            i: u32,
            _: &'static str,
            v: &T,
        ) -> R {
            self.0 += varint(i.into());
            v.serialize(self)
        }
        fn serialize_seq(self, len: Option<usize>) -> Result<Self, Never> {
            self.0 += varint(len.unwrap_or(0) as u64);
            Ok(self)
        }
        fn serialize_tuple(self, _: usize) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_tuple_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_tuple_variant(
            self,
            _: &'static str,
            i: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self, Never> {
            self.0 += varint(i.into());
            Ok(self)
        }
        fn serialize_map(self, len: Option<usize>) -> Result<Self, Never> {
            self.0 += varint(len.unwrap_or(0) as u64);
            Ok(self)
        }
        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self, Never> {
            Ok(self)
        }
        fn serialize_struct_variant(
            self,
            _: &'static str,
            i: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self, Never> {
            self.0 += varint(i.into());
            Ok(self)
        }
    }

    macro_rules! compound {
        ($($t:ident :: $m:ident),*) => {$(
            impl<'a> ser::$t for &'a mut Counter {
                type Ok = ();
                type Error = Never;
                fn $m<T: ?Sized + Serialize>(&mut self, v: &T) -> R {
                    v.serialize(&mut **self)
                }
                fn end(self) -> R {
                    Ok(())
                }
            }
        )*};
    }
    compound!(
        SerializeSeq::serialize_element,
        SerializeTuple::serialize_element,
        SerializeTupleStruct::serialize_field,
        SerializeTupleVariant::serialize_field
    );

    impl ser::SerializeMap for &mut Counter {
        type Ok = ();
        type Error = Never;
        fn serialize_key<T: ?Sized + Serialize>(&mut self, k: &T) -> R {
            k.serialize(&mut **self)
        }
        fn serialize_value<T: ?Sized + Serialize>(&mut self, v: &T) -> R {
            v.serialize(&mut **self)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeStruct for &mut Counter {
        type Ok = ();
        type Error = Never;
        fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &'static str, v: &T) -> R {
            v.serialize(&mut **self)
        }
        fn end(self) -> R {
            Ok(())
        }
    }

    impl ser::SerializeStructVariant for &mut Counter {
        type Ok = ();
        type Error = Never;
        fn serialize_field<T: ?Sized + Serialize>(&mut self, _: &'static str, v: &T) -> R {
            v.serialize(&mut **self)
        }
        fn end(self) -> R {
            Ok(())
        }
    }
}
