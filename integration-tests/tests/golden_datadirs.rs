//! Golden data directories: a hub data dir and three device stores written by the binaries of
//! commit f030e4f (`scripts/make-golden-datadirs.sh`, which also wrote `manifest.json` from
//! what those binaries reported) must load in this build with every channel, proof and
//! pending transfer intact.
//!
//! The fixture (`tests/fixtures/golden/f030e4f/`): channels of three devices (car, charger,
//! meter) with the hub, direct payments to the hub, completed mediated payments both ways
//! between car and charger (so both hold the hub's proofs), and one mediated payment the hub
//! crashed in the middle of (fail point `after_forward_durable`): the car's lock is pending at
//! the hub and unacknowledged in the car's store, the hub's forward toward the charger is
//! signed but was never sent, and the charger's payment request is open. The hub was then
//! restarted, read back and killed with -9.
//!
//! The test copies the fixture to a temp dir, starts the current hub on the copied hub dir
//! (the settings of the generator: embedded ledger, 100-year settlement window so the pending
//! lock never expires), checks every channel of the manifest through gRPC, opens each device
//! store with the current SDK and checks it against the manifest and against the hub, and
//! finally connects the current SDK with the car's and the meter's stores and pays once more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::primitives::{u256_from_dec, U256};
use channel_core::{SignedBalanceProof, H256};
use integration_tests::device::{login, Bearer};
use integration_tests::{HubOptions, HubProcess};
use serde_json::Value;
use voltlane_client::store::{IncomingState, QueuedKind};
use voltlane_client::{Client, DeviceStore};
use voltlane_proto::convert::{u256, u256_bytes};
use voltlane_proto::v1;

const COMMIT: &str = "f030e4f";

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/golden")
        .join(COMMIT)
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
            // Git keeps no file modes but the executable bit: the hub refuses a key file
            // others can read, so the copy gets the mode the generator wrote (0600).
            std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
    }
}

fn dec(v: &Value) -> U256 {
    let s = v
        .as_str()
        .unwrap_or_else(|| panic!("{v} is not a decimal string"));
    u256_from_dec(s).unwrap_or_else(|e| panic!("{s}: {e:?}"))
}

fn num(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{v} is not a u64"))
}

fn bytes_u256(field: &str, b: &[u8]) -> U256 {
    u256(field, b).unwrap_or_else(|e| panic!("{field}: {e}"))
}

fn proof(p: &Option<v1::SignedBalanceProof>) -> Option<SignedBalanceProof> {
    p.clone()
        .map(|p| SignedBalanceProof::try_from(p).expect("a proof the hub sends decodes"))
}

fn h256(s: &str) -> H256 {
    s.parse()
        .unwrap_or_else(|e| panic!("{s} is not a hash: {e:?}"))
}

/// The hub, started on a copy of the fixture's hub data dir with the generator's settings.
async fn start_hub(manifest: &Value) -> HubProcess {
    let flags: Vec<String> = manifest["hub"]["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap().to_string())
        .collect();
    let window_at = flags
        .iter()
        .position(|f| f == "--settlement-window-secs")
        .unwrap();
    let window: u64 = flags[window_at + 1].parse().unwrap();
    let mut extra = flags.clone();
    extra.drain(window_at..window_at + 2);
    let options = HubOptions {
        settlement_window_secs: window,
        extra_args: extra,
        ..HubOptions::default()
    };
    // The harness gives every hub its own temp data dir: start one there, kill it, and put
    // the golden hub dir in its place.
    let mut hub = HubProcess::start(options).await.unwrap();
    hub.kill9().unwrap();
    for entry in std::fs::read_dir(hub.data_dir()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_name() == "hub.log" {
            continue;
        }
        if entry.file_type().unwrap().is_dir() {
            std::fs::remove_dir_all(entry.path()).unwrap();
        } else {
            std::fs::remove_file(entry.path()).unwrap();
        }
    }
    copy_dir(&fixture_dir().join("hub"), hub.data_dir());
    hub.restart().await.unwrap();
    hub
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn f030e4f_data_dirs_load_with_every_channel_proof_and_pending_transfer() {
    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_dir().join("manifest.json")).unwrap(),
    )
    .unwrap();
    let devices_dir = tempfile::tempdir().unwrap();
    for name in ["car", "charger", "meter"] {
        copy_dir(&fixture_dir().join(name), &devices_dir.path().join(name));
    }
    let mut hub = start_hub(&manifest).await;

    // ----- the hub: every channel as the old hub reported it -----
    let operator = hub.operator_key().unwrap();
    let hub_address = operator.address();
    assert_eq!(
        hub_address.to_string().to_lowercase(),
        manifest["hub"]["address"].as_str().unwrap().to_lowercase(),
        "the operator key in the golden hub dir"
    );
    let conn = hub.connect().await.unwrap();
    let token = login(conn.clone(), &operator, &hub_address).await.unwrap();
    let mut channels = v1::channels_client::ChannelsClient::with_interceptor(
        conn.clone(),
        Bearer::new(&token).unwrap(),
    );
    let mut ledger = v1::ledger_client::LedgerClient::with_interceptor(
        conn.clone(),
        Bearer::new(&token).unwrap(),
    );

    let pending = &manifest["pending"][0];
    let payer_channel = pending["payer_channel_id"].as_str().unwrap();
    let payee_channel = pending["payee_channel_id"].as_str().unwrap();

    let manifest_channels = manifest["channels"].as_array().unwrap();
    assert_eq!(manifest_channels.len(), 3, "car, charger and meter");
    let listed = channels
        .list_channels(v1::ListChannelsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .channels;
    assert_eq!(listed.len(), manifest_channels.len(), "the hub's channels");

    let mut hub_states = std::collections::HashMap::new();
    for want in manifest_channels {
        let id = dec(&want["channel_id"]);
        let state = channels
            .get_channel(v1::GetChannelRequest {
                channel_id: u256_bytes(&id),
            })
            .await
            .unwrap_or_else(|s| panic!("channel {id}: {s}"))
            .into_inner();
        let view = &want["hub_view"];
        assert_eq!(
            format!("0x{}", hex::encode(&state.device)).to_lowercase(),
            want["device"].as_str().unwrap().to_lowercase(),
            "channel {id}: device"
        );
        assert_eq!(
            state.phase,
            v1::ChannelPhase::Opened as i32,
            "channel {id}: phase"
        );
        for (field, bytes) in [
            ("device_deposit", &state.device_deposit),
            ("hub_deposit", &state.hub_deposit),
            ("device_withdraw", &state.device_withdraw),
            ("hub_withdraw", &state.hub_withdraw),
            ("device_balance", &state.device_balance),
            ("hub_balance", &state.hub_balance),
            ("device_capacity", &state.device_capacity),
            ("hub_capacity", &state.hub_capacity),
        ] {
            assert_eq!(
                bytes_u256(field, bytes),
                dec(&view[field]),
                "channel {id}: {field}"
            );
        }
        let device_proof = proof(&state.device_proof);
        let hub_proof = proof(&state.hub_proof);
        let nonce_and_transferred = |p: &Option<SignedBalanceProof>| {
            p.map_or((0, U256::ZERO), |p| {
                (p.proof.nonce, p.proof.balance.transferred_amount)
            })
        };
        assert_eq!(
            nonce_and_transferred(&device_proof),
            (num(&view["device_nonce"]), dec(&view["device_transferred"])),
            "channel {id}: the device's latest proof"
        );
        assert_eq!(
            nonce_and_transferred(&hub_proof),
            (num(&view["hub_nonce"]), dec(&view["hub_transferred"])),
            "channel {id}: the hub's latest proof"
        );
        // Locks: only the pending payment's, in the payer's proof and the hub's forward.
        let device_locked = device_proof.map_or(U256::ZERO, |p| p.proof.balance.locked_amount);
        let hub_locked = hub_proof.map_or(U256::ZERO, |p| p.proof.balance.locked_amount);
        let cid = want["channel_id"].as_str().unwrap();
        assert_eq!(
            device_locked.is_zero(),
            cid != payer_channel,
            "channel {id}: device-side lock"
        );
        assert_eq!(
            hub_locked.is_zero(),
            cid != payee_channel,
            "channel {id}: hub-side lock"
        );

        // The ledger's record: the participants' deposits.
        let record = ledger
            .get_channel(v1::GetLedgerChannelRequest {
                channel_id: u256_bytes(&id),
            })
            .await
            .unwrap()
            .into_inner();
        let record = channel_core::ledger::ChannelRecord::try_from(record).unwrap();
        for p in want["ledger"]["participants"].as_array().unwrap() {
            let address = p["address"].as_str().unwrap().to_lowercase();
            let side = record
                .participants
                .iter()
                .find(|s| s.address.to_string().to_lowercase() == address)
                .unwrap_or_else(|| panic!("channel {id}: participant {address}"));
            assert_eq!(
                side.total_deposit,
                dec(&p["total_deposit"]),
                "channel {id}: ledger deposit of {address}"
            );
            assert_eq!(
                side.total_withdraw,
                dec(&p["total_withdraw"]),
                "channel {id}: ledger withdraw of {address}"
            );
        }
        hub_states.insert(cid.to_string(), (want.clone(), device_proof, hub_proof));
    }

    // ----- the devices: each store as the old SDK left it -----
    let mut pending_secrethash = None;
    for name in ["car", "charger", "meter"] {
        let dev = &manifest["devices"][name];
        let store = DeviceStore::open(devices_dir.path().join(name)).unwrap();
        let signer = store.signer().unwrap().expect("the device key is kept");
        assert_eq!(
            signer.address().to_string().to_lowercase(),
            dev["address"].as_str().unwrap(),
            "{name}: key"
        );
        let channel = store.channel().unwrap().expect("the channel is kept");
        let cid = channel.id().to_string();
        let (want, hub_device_proof, hub_hub_proof) = hub_states
            .get(&cid)
            .unwrap_or_else(|| panic!("{name}: channel {cid} is not in the manifest"));
        assert_eq!(
            want["device_store"].as_str(),
            Some(name),
            "{name}: channel {cid}"
        );
        let view = &want["hub_view"];
        assert_eq!(channel.our_address(), signer.address());
        assert_eq!(channel.partner_address(), hub_address);
        assert_eq!(
            channel.our().total_deposit,
            dec(&view["device_deposit"]),
            "{name}: deposit"
        );
        assert_eq!(
            channel.partner().total_deposit,
            dec(&view["hub_deposit"]),
            "{name}: hub deposit"
        );

        // Our latest proof is the one the hub holds (the pending lock's included: the car
        // signed and kept it before it was sent).
        assert_eq!(
            channel.our_latest_proof().copied(),
            *hub_device_proof,
            "{name}: our latest proof = the hub's device proof"
        );
        // The hub's latest proof: the same as the hub's, except for the charger, whose
        // forward the hub signed but never sent.
        let hub_nonce = num(&view["hub_nonce"]);
        if cid == payee_channel {
            let before = &want["hub_view_before_pending"];
            assert_eq!(
                channel.partner().nonce(),
                num(&before["hub_nonce"]),
                "{name}: hub nonce"
            );
            assert_eq!(
                channel.partner().transferred(),
                dec(&before["hub_transferred"])
            );
            assert_eq!(
                channel.partner().locked(),
                U256::ZERO,
                "{name}: no lock received"
            );
            assert_eq!(
                hub_nonce,
                channel.partner().nonce() + 1,
                "the unsent forward"
            );
        } else {
            assert_eq!(
                channel.partner_latest_proof().copied(),
                *hub_hub_proof,
                "{name}: the hub's latest proof"
            );
        }
        // The device's exported proofs before the pending payment still match (nonces and
        // amounts; signatures for the directions nothing changed in since).
        let exported = &dev["proofs_before_pending"];
        for (dir, p) in [
            ("device_to_hub", channel.our_latest_proof()),
            ("hub_to_device", channel.partner_latest_proof()),
        ] {
            let e = &exported[dir];
            match p {
                None => assert!(e.is_null(), "{name}: {dir}"),
                Some(p) => {
                    let e_nonce: u64 = e["nonce"].as_str().unwrap().parse().unwrap();
                    assert!(p.proof.nonce >= e_nonce, "{name}: {dir} nonce");
                    if p.proof.nonce == e_nonce {
                        assert_eq!(
                            p.proof.balance.transferred_amount,
                            dec(&e["transferred_amount"])
                        );
                        assert_eq!(
                            format!("0x{}", hex::encode(p.signature.as_bytes())),
                            e["signature"].as_str().unwrap(),
                            "{name}: {dir} signature"
                        );
                    }
                }
            }
        }

        // Archived proofs: the balance data of every proof we signed, nonce by nonce, each
        // direct payment's as the old CLI reported it, the latest the channel's.
        let our_nonce = channel.our().nonce();
        let mut last = U256::ZERO;
        for n in 1..=our_nonce {
            let b = store
                .signed_balance(n)
                .unwrap()
                .unwrap_or_else(|| panic!("{name}: archived balance of nonce {n}"));
            assert!(b.transferred_amount >= last, "{name}: nonce {n}");
            last = b.transferred_amount;
        }
        if let Some(p) = channel.our_latest_proof() {
            assert_eq!(
                store.signed_balance(p.proof.nonce).unwrap(),
                Some(p.proof.balance)
            );
            if !p.proof.balance.locked_amount.is_zero() {
                let packed = store.archived_locks(&[p.proof.balance.locksroot]).unwrap();
                assert_eq!(packed.len(), 1, "{name}: the locks of our latest proof");
            }
        }
        for paid in manifest["direct_payments"][name].as_array().unwrap() {
            let n = num(&paid["nonce"]);
            let b = store.signed_balance(n).unwrap().unwrap();
            assert_eq!(
                b.transferred_amount,
                dec(&paid["transferred_amount"]),
                "{name}: payment {n}"
            );
        }

        // The hub's direct payments received (OperatorPay), as the hub reported them.
        let received = store.hub_payments().unwrap();
        let paid_by_hub = manifest["hub_payments"][name].as_array().unwrap();
        assert_eq!(received.len(), paid_by_hub.len(), "{name}: hub payments");
        for (got, want) in received.iter().zip(paid_by_hub) {
            assert_eq!(
                got.proof.proof.nonce,
                num(&want["nonce"]),
                "{name}: hub payment"
            );
            assert_eq!(got.amount, dec(&want["amount"]));
            assert_eq!(
                got.proof.proof.balance.transferred_amount,
                dec(&want["transferred_amount"])
            );
            assert!(got.proof.proof.nonce <= channel.partner().nonce());
        }
        assert!(!received.is_empty(), "{name}: the hub paid every device");

        // Unacknowledged proofs: the hub has every one of them; the car's pending lock is one.
        let unacked = store.unacked_all().unwrap();
        for u in &unacked {
            assert!(
                u.nonce() <= num(&view["device_nonce"]),
                "{name}: unacked {} beyond the hub's",
                u.nonce()
            );
        }
        if cid == payer_channel {
            let lock_nonce = num(&pending["payer_lock_nonce"]);
            let lock = unacked
                .iter()
                .find(|u| u.nonce() == lock_nonce)
                .unwrap_or_else(|| {
                    panic!("car: the pending lock (nonce {lock_nonce}) is unacknowledged")
                });
            let QueuedKind::LockedTransfer {
                lock,
                payment_request,
            } = lock.kind
            else {
                panic!(
                    "car: nonce {lock_nonce} is not a locked transfer: {:?}",
                    lock.kind
                );
            };
            assert_eq!(payment_request.request.amount, dec(&pending["amount"]));
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            assert!(
                lock.expiration > now,
                "the fixture's pending lock expired at {}: regenerate the fixture with \
                 scripts/make-golden-datadirs.sh (its settlement window bounds the lock)",
                lock.expiration
            );
            assert_eq!(channel.our().locks.get(&lock.secrethash), Some(&lock));
            let outgoing = store
                .outgoing(&lock.secrethash)
                .unwrap()
                .expect("car: the transfer record");
            assert_eq!(outgoing.lock, lock);
            assert_eq!(outgoing.lock_nonce, lock_nonce);
            assert_eq!(outgoing.channel_id.to_string(), payer_channel);
            pending_secrethash = Some((lock.secrethash, payment_request));
        }
    }

    // The pending payment: the charger's open request is the one the car's lock pays, and
    // the hub's forward locks the same secrethash.
    let (secrethash, request) = pending_secrethash.expect("the car's pending lock");
    if let Some(h) = pending["secrethash"].as_str() {
        assert_eq!(secrethash, h256(h));
    }
    let charger = DeviceStore::open(devices_dir.path().join("charger")).unwrap();
    let open = charger
        .payment_request(&secrethash)
        .unwrap()
        .expect("charger: the pending payment's request");
    assert_eq!(open.request, request);
    assert_eq!(open.secret.hash(), secrethash);
    assert_eq!(open.paid_nonce, None);
    assert!(
        charger.incoming(&secrethash).unwrap().is_none(),
        "the forward never reached the charger"
    );
    let forward = hub_states[payee_channel].2.expect("the hub's forward");
    assert_eq!(forward.proof.nonce, num(&pending["hub_forward_nonce"]));
    assert!(!forward.proof.balance.locked_amount.is_zero());
    drop(charger);

    // Completed mediated payments: the payer's transfer, the payee's request with its secret
    // and the payee's received lock, paid.
    let completed = manifest["mediated_completed"].as_array().unwrap();
    assert_eq!(completed.len(), 3);
    for done in completed {
        let h = h256(done["secrethash"].as_str().unwrap());
        let payer =
            DeviceStore::open(devices_dir.path().join(done["payer"].as_str().unwrap())).unwrap();
        let out = payer
            .outgoing(&h)
            .unwrap()
            .unwrap_or_else(|| panic!("{done}: payer's transfer"));
        assert_eq!(out.request.request.amount, dec(&done["amount"]));
        drop(payer);
        let payee =
            DeviceStore::open(devices_dir.path().join(done["payee"].as_str().unwrap())).unwrap();
        let req = payee
            .payment_request(&h)
            .unwrap()
            .unwrap_or_else(|| panic!("{done}: payee's request"));
        assert_eq!(req.secret.0, h256(done["secret"].as_str().unwrap()));
        let incoming = payee
            .incoming(&h)
            .unwrap()
            .unwrap_or_else(|| panic!("{done}: payee's lock"));
        assert!(
            matches!(incoming.state, IncomingState::Paid { unlock_nonce } if unlock_nonce == num(&done["payee_unlock_nonce"])),
            "{done}: {:?}",
            incoming.state
        );
    }

    // ----- the current SDK goes on with the old stores -----
    for (name, amount) in [("meter", 4u64), ("car", 3)] {
        let store = DeviceStore::open(devices_dir.path().join(name)).unwrap();
        let client = Client::connect_with_stored_key(&hub.url(), store)
            .await
            .unwrap();
        let before = client.balances().unwrap();
        let receipt = tokio::time::timeout(Duration::from_secs(30), client.pay(U256::from(amount)))
            .await
            .unwrap_or_else(|_| panic!("{name}: payment timed out"))
            .unwrap_or_else(|e| panic!("{name}: payment refused: {e}"));
        assert_eq!(
            receipt.transferred_amount,
            before.our_transferred + U256::from(amount)
        );
        let state = channels
            .get_channel(v1::GetChannelRequest {
                channel_id: u256_bytes(&before.channel_id),
            })
            .await
            .unwrap()
            .into_inner();
        let held = proof(&state.device_proof).unwrap();
        assert_eq!(
            held.proof.nonce, receipt.nonce,
            "{name}: the hub holds the new proof"
        );
        assert_eq!(
            held.proof.balance.transferred_amount,
            receipt.transferred_amount
        );
        drop(client);
    }
    hub.kill9().unwrap();
}
