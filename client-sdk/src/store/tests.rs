#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::channel::Channel;
use channel_core::primitives::{Address, U256};
use channel_core::{Domain, LocalSigner, Signer, H256};

use super::*;

fn domain() -> Domain {
    Domain {
        chain_id: U256::from(1337u64),
        token_network_address: Address([0x11; 20]),
    }
}

fn signer(b: u8) -> LocalSigner {
    LocalSigner::from_bytes(&[b; 32]).unwrap()
}

/// A channel in which the device (key 1) paid `n` times 10 to the hub (key 2).
fn channel_with_payments(n: u64) -> (Channel, Vec<UnackedPayment>) {
    let dev = signer(1);
    let hub = signer(2);
    let mut ch = Channel::new(domain(), U256::from(7u64), dev.address(), hub.address());
    ch.handle_ledger_deposit(dev.address(), U256::from(100_000u64))
        .unwrap();
    let mut sent = Vec::new();
    for _ in 0..n {
        ch.send_payment(U256::from(10u64), H256::ZERO, &dev)
            .unwrap();
        sent.push(UnackedPayment {
            proof: *ch.our_latest_proof().unwrap(),
            amount: U256::from(10u64),
            kind: QueuedKind::Direct,
        });
    }
    (ch, sent)
}

async fn put_unacked(store: &DeviceStore, p: &UnackedPayment) {
    let mut batch = DeviceBatch::new();
    batch.unacked(p).unwrap();
    store.commit(batch).await.unwrap();
}

async fn put_records(store: &DeviceStore, f: impl FnOnce(&mut DeviceBatch)) {
    let mut batch = DeviceBatch::new();
    f(&mut batch);
    store.commit(batch).await.unwrap();
}

async fn roundtrip(store: DeviceStore) {
    assert!(store.channel().unwrap().is_none());
    assert_eq!(store.ledger_seq().unwrap(), 0);

    let key = store.load_or_create_signer().await.unwrap();
    let again = store.load_or_create_signer().await.unwrap();
    assert_eq!(key.address(), again.address(), "the key is created once");

    let (ch, sent) = channel_with_payments(3);
    store.put_channel(&ch).await.unwrap();
    for p in &sent {
        put_unacked(&store, p).await;
    }
    let hub = HubRecord {
        hub_address: signer(2).address(),
        domain: domain(),
        settlement_timeout: 30,
    };
    store.put_hub(&hub).await.unwrap();
    store.put_ledger_seq(42).await.unwrap();

    assert_eq!(store.channel().unwrap(), Some(ch));
    assert_eq!(store.unacked_all().unwrap(), sent);
    assert_eq!(store.unacked(2).unwrap(), Some(sent[1]));
    assert_eq!(store.hub().unwrap(), Some(hub));
    assert_eq!(store.ledger_seq().unwrap(), 42);
}

#[tokio::test]
async fn memory_round_trip() {
    roundtrip(DeviceStore::in_memory()).await;
}

#[tokio::test]
async fn sled_round_trip_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device");
    let (ch, sent) = channel_with_payments(2);
    let addr = {
        let store = DeviceStore::open(&path).unwrap();
        roundtrip(store.clone()).await;
        store.put_channel(&ch).await.unwrap();
        store.prune_unacked(10).await.unwrap();
        put_unacked(&store, &sent[1]).await;
        store.signer().unwrap().unwrap().address()
    };
    let store = DeviceStore::open(&path).unwrap();
    assert_eq!(store.signer().unwrap().unwrap().address(), addr);
    assert_eq!(store.channel().unwrap(), Some(ch));
    assert_eq!(store.unacked_all().unwrap(), vec![sent[1]]);
}

#[tokio::test]
async fn the_channel_is_a_shared_channel_record_and_unknown_versions_are_refused() {
    let ch = Channel::new(
        domain(),
        U256::from(3u8),
        Address([1; 20]),
        Address([2; 20]),
    );
    let kv = std::sync::Arc::new(voltlane_store::MemoryStore::new());
    let store = DeviceStore::with_store(kv.clone());
    store.put_channel(&ch).await.unwrap();
    // The device writes the hub's record type, byte for byte.
    let bytes = kv.read(ns::DEVICE, CHANNEL).unwrap().unwrap();
    assert_eq!(bytes, ChannelStateRecord::encode(&ch).unwrap());
    assert_eq!(bytes[0], CHANNEL_STATE_VERSION);
    assert_eq!(store.channel().unwrap(), Some(ch));

    let mut future = bytes;
    future[0] = CHANNEL_STATE_VERSION + 1;
    let mut batch = WriteBatch::new();
    batch.put(ns::DEVICE, CHANNEL, future);
    kv.write(batch).unwrap().durable().await.unwrap();
    assert_eq!(
        store.channel(),
        Err(StoreError::UnsupportedVersion {
            key: "device/channel".into(),
            version: CHANNEL_STATE_VERSION + 1
        })
    );
}

#[test]
fn records_carry_a_version_byte_and_unknown_versions_are_refused() {
    let bytes = record::encode("ledger_seq", &5u64).unwrap();
    assert_eq!(bytes[0], RECORD_VERSION);
    assert_eq!(&bytes[1..], b"5");
    assert_eq!(record::decode::<u64>("ledger_seq", &bytes).unwrap(), 5);

    let mut future = bytes.clone();
    future[0] = RECORD_VERSION + 1;
    assert_eq!(
        record::decode::<u64>("ledger_seq", &future),
        Err(StoreError::UnsupportedVersion {
            key: "ledger_seq".into(),
            version: RECORD_VERSION + 1
        })
    );
    assert!(matches!(
        record::decode::<u64>("ledger_seq", &[]),
        Err(StoreError::Corrupt { .. })
    ));
    assert!(matches!(
        record::decode::<u64>("ledger_seq", &[RECORD_VERSION, b'x']),
        Err(StoreError::Corrupt { .. })
    ));
}

#[tokio::test]
async fn unacked_log_is_pruned_up_to_the_acknowledged_nonce() {
    let store = DeviceStore::in_memory();
    let (_, sent) = channel_with_payments(300);
    for p in &sent {
        put_unacked(&store, p).await;
    }
    // Keys sort numerically (big-endian nonce), not lexically: 256 comes after 255.
    let all = store.unacked_all().unwrap();
    assert!(all.windows(2).all(|w| w[0].nonce() < w[1].nonce()));

    let pruned = store.prune_unacked(257).await.unwrap();
    assert_eq!(pruned.len(), 257);
    assert_eq!(pruned.last().unwrap().nonce(), 257);
    let left = store.unacked_all().unwrap();
    assert_eq!(left.first().unwrap().nonce(), 258);
    assert_eq!(left.len(), 43);
    assert!(
        store.prune_unacked(10).await.unwrap().is_empty(),
        "idempotent"
    );

    store.clear_channel().await.unwrap();
    assert!(store.unacked_all().unwrap().is_empty());
}

#[tokio::test]
async fn signer_key_is_not_printed() {
    let store = DeviceStore::in_memory();
    let s = store.load_or_create_signer().await.unwrap();
    let rec = KeyRecord {
        secret_hex: hex::encode(s.to_bytes()),
    };
    assert!(!format!("{rec:?}").contains(&rec.secret_hex));
}

mod mediated {
    use channel_core::mediation::{PaymentRequest, SignedPaymentRequest};
    use channel_core::{HashTimeLock, Secret};

    use super::*;

    fn request(s: &Secret) -> SignedPaymentRequest {
        PaymentRequest {
            domain: domain(),
            payee: signer(3).address(),
            amount: U256::from(100u64),
            secrethash: s.hash(),
            payment_id: 12,
            expires_at: 5_000,
            memo_hash: H256::ZERO,
        }
        .sign(&signer(3))
        .unwrap()
    }

    fn lock(s: &Secret) -> HashTimeLock {
        HashTimeLock {
            expiration: 4_000,
            amount: U256::from(102u64),
            secrethash: s.hash(),
        }
    }

    #[test]
    fn direct_entries_keep_the_old_format_and_old_entries_read_as_direct() {
        let (_, sent) = channel_with_payments(1);
        let bytes = record::encode("unacked", &sent[0]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&bytes[1..]).unwrap();
        assert_eq!(
            json.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["amount", "proof"],
            "a direct payment is written exactly as before mediated kinds existed"
        );
        // A record written by an SDK without kinds: a direct payment.
        let old = serde_json::json!({ "proof": json["proof"], "amount": "10" });
        let mut old_bytes = vec![RECORD_VERSION];
        old_bytes.extend(serde_json::to_vec(&old).unwrap());
        let read: UnackedPayment = record::decode("unacked", &old_bytes).unwrap();
        assert_eq!(read, sent[0]);
        assert_eq!(read.kind, QueuedKind::Direct);
    }

    #[tokio::test]
    async fn every_mediated_kind_round_trips_in_the_unacknowledged_log() {
        let store = DeviceStore::in_memory();
        let (_, sent) = channel_with_payments(4);
        let s = Secret(H256([7; 32]));
        let kinds = [
            QueuedKind::Direct,
            QueuedKind::LockedTransfer {
                lock: lock(&s),
                payment_request: request(&s),
            },
            QueuedKind::Unlock { secret: s },
            QueuedKind::LockExpired {
                secrethash: s.hash(),
            },
        ];
        let entries: Vec<_> = sent
            .iter()
            .zip(kinds)
            .map(|(p, kind)| UnackedPayment { kind, ..*p })
            .collect();
        for e in &entries {
            put_unacked(&store, e).await;
        }
        assert_eq!(store.unacked_all().unwrap(), entries);
        assert_eq!(store.prune_unacked(2).await.unwrap(), entries[..2]);
        assert_eq!(store.unacked_all().unwrap(), entries[2..]);
        assert_eq!(entries[1].kind.secrethash(), Some(s.hash()));
        assert_eq!(entries[2].kind.secrethash(), Some(s.hash()));
        assert_eq!(entries[0].kind.secrethash(), None);
    }

    fn records(s: &Secret) -> (OutgoingTransfer, PaymentRequestRecord, IncomingTransfer) {
        let out = OutgoingTransfer {
            channel_id: U256::from(7u64),
            request: request(s),
            lock: lock(s),
            fee: U256::from(2u64),
            lock_nonce: 3,
            forward: Some(ForwardRecord::NotForwarded(Refusal {
                code: 9,
                reason: "payee offline".into(),
            })),
            rejected: None,
            failure: None,
            secret: None,
            unlock_nonce: None,
            unlock_acked: false,
            expired_nonce: Some(4),
            previous_proof: None,
        };
        let req = PaymentRequestRecord {
            request: request(s),
            secret: *s,
            paid_nonce: Some(8),
        };
        let inc = IncomingTransfer {
            channel_id: U256::from(7u64),
            lock: lock(s),
            payer: signer(1).address(),
            payment_request: request(s),
            lock_nonce: 5,
            state: IncomingState::Refused {
                reason: "amount too low".into(),
            },
        };
        (out, req, inc)
    }

    #[tokio::test]
    async fn transfer_records_survive_a_reopen_and_leaving_the_channel() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("device");
        let s = Secret(H256([7; 32]));
        let (out, req, inc) = records(&s);
        {
            let store = DeviceStore::open(&path).unwrap();
            assert_eq!(store.outgoing(&s.hash()).unwrap(), None);
            put_records(&store, |b| {
                b.outgoing(&out).unwrap();
                b.payment_request(&req).unwrap();
                b.incoming(&inc).unwrap();
            })
            .await;
            store.clear_channel().await.unwrap();
        }
        let store = DeviceStore::open(&path).unwrap();
        assert_eq!(store.outgoing(&s.hash()).unwrap(), Some(out));
        assert_eq!(store.payment_request(&s.hash()).unwrap(), Some(req));
        assert_eq!(store.incoming(&s.hash()).unwrap(), Some(inc));
        let other = H256([8; 32]);
        assert_eq!(store.outgoing(&other).unwrap(), None);
        assert_eq!(store.payment_request(&other).unwrap(), None);
    }

    #[test]
    fn a_request_record_does_not_print_its_secret() {
        let s = Secret(H256([0xab; 32]));
        let (_, req, _) = records(&s);
        let shown = format!("{req:?}");
        assert!(!shown.contains(&hex::encode([0xab; 32])), "{shown}");
        // The derived form would show it: the redaction is what keeps it out.
        assert!(format!("{:?}", req.secret).contains(&hex::encode([0xab; 32])));
        assert!(shown.contains("paid_nonce"), "{shown}");
    }
}

#[test]
fn a_database_still_open_elsewhere_is_refused_after_a_bounded_wait() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device");
    let held = DeviceStore::open(&path).unwrap();
    let started = std::time::Instant::now();
    let err = DeviceStore::open(&path).unwrap_err().to_string();
    assert!(err.contains("lock"), "{err}");
    // It waited for the lock (sled's threads may still be releasing it) before giving up.
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_secs(1), "{waited:?}");
    assert!(waited < std::time::Duration::from_secs(10), "{waited:?}");
    drop(held);
    // Closed: reopening works, again and again straight after each close.
    for _ in 0..20 {
        drop(DeviceStore::open(&path).unwrap());
    }
}

/// Every proof the device signs stays findable by nonce until the channel is cleared: the hub
/// may close with any of them, and settling then needs its balance data.
#[tokio::test]
async fn every_signed_balance_is_kept_until_the_channel_is_cleared() {
    let store = DeviceStore::in_memory();
    let dev = signer(1);
    let (mut ch, _) = channel_with_payments(0);
    for _ in 0..3 {
        ch.send_payment(U256::from(10u64), H256::ZERO, &dev)
            .unwrap();
        store.put_channel(&ch).await.unwrap();
    }
    for nonce in 1..=3u64 {
        let kept = store.signed_balance(nonce).unwrap().unwrap();
        assert_eq!(kept.transferred_amount, U256::from(10 * nonce));
    }
    assert_eq!(store.signed_balance(4).unwrap(), None);
    store.clear_channel().await.unwrap();
    assert_eq!(store.signed_balance(1).unwrap(), None);
}

/// The locks behind every proof the device signs stay findable by their root until the
/// channel is cleared: the hub may close with a proof whose locks the channel no longer holds.
#[tokio::test]
async fn the_locks_of_every_signed_proof_are_kept_until_the_channel_is_cleared() {
    let store = DeviceStore::in_memory();
    let dev = signer(1);
    let (mut ch, _) = channel_with_payments(0);
    let secret = channel_core::Secret(H256([3; 32]));
    let lock = channel_core::HashTimeLock {
        expiration: 500,
        amount: U256::from(7u64),
        secrethash: secret.hash(),
    };
    ch.send_locked_transfer(lock, 1, H256::ZERO, &dev).unwrap();
    store.put_channel(&ch).await.unwrap();
    let (root, packed) = ch.our_signed_locks().unwrap();
    ch.send_unlock(secret, H256::ZERO, &dev).unwrap();
    store.put_channel(&ch).await.unwrap();
    assert_eq!(ch.our_signed_locks(), None);
    let other = H256([9; 32]);
    assert_eq!(store.archived_locks(&[other, root]).unwrap(), vec![packed]);
    store.clear_channel().await.unwrap();
    assert_eq!(
        store.archived_locks(&[root]).unwrap(),
        Vec::<Vec<u8>>::new()
    );
}

/// A store written before the shared seam (raw keys: bare names, big-endian nonces, raw
/// hashes) opens with every record in place, and opening it again changes nothing.
#[tokio::test]
async fn a_store_in_the_legacy_key_layout_is_moved_once_and_reads_the_same() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("device");
    let (ch, sent) = channel_with_payments(2);
    let s = channel_core::Secret(H256([5; 32]));
    let request = PaymentRequestRecord {
        request: channel_core::mediation::PaymentRequest {
            domain: domain(),
            payee: signer(3).address(),
            amount: U256::from(9u64),
            secrethash: s.hash(),
            payment_id: 1,
            expires_at: 10,
            memo_hash: H256::ZERO,
        }
        .sign(&signer(3))
        .unwrap(),
        secret: s,
        paid_nonce: None,
    };
    {
        let db = sled::open(&path).unwrap();
        db.insert("channel", ChannelStateRecord::encode(&ch).unwrap())
            .unwrap();
        db.insert("ledger_seq", record::encode("ledger_seq", &17u64).unwrap())
            .unwrap();
        for p in &sent {
            let mut k = b"unacked/".to_vec();
            k.extend_from_slice(&p.nonce().to_be_bytes());
            db.insert(k, record::encode("unacked/", p).unwrap())
                .unwrap();
        }
        let mut k = b"request/".to_vec();
        k.extend_from_slice(s.hash().as_bytes());
        db.insert(k, record::encode("request/", &request).unwrap())
            .unwrap();
        db.flush().unwrap();
    }
    for _ in 0..2 {
        let store = DeviceStore::open(&path).unwrap();
        assert_eq!(store.channel().unwrap(), Some(ch.clone()));
        assert_eq!(store.ledger_seq().unwrap(), 17);
        assert_eq!(store.unacked_all().unwrap(), sent);
        assert_eq!(
            store.payment_request(&s.hash()).unwrap(),
            Some(request.clone())
        );
    }
}
