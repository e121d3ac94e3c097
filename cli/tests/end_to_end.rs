//! The `voltlane` binary against a real `voltlane-hub` process on loopback (started by the
//! `integration-tests` harness): the test runs the binary as an operator and a device and
//! reads its stdout, stderr and exit code.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use channel_core::crypto::Signer;
use channel_core::primitives::Address;
use channel_core::LocalSigner;
use integration_tests::{HubOptions, HubProcess};
use serde_json::Value;

/// Bound of one CLI run (a cooperative close included).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// Runs `voltlane --hub <hub> <args>` with none of the CLI's environment variables set.
async fn voltlane(hub: &str, args: &[&str]) -> Output {
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_voltlane"));
    for var in [
        "VOLTLANE_HUB",
        "VOLTLANE_CA_CERT",
        "VOLTLANE_KEY_FILE",
        "VOLTLANE_STORE",
    ] {
        cmd.env_remove(var);
    }
    cmd.arg("--hub").arg(hub).args(args).kill_on_drop(true);
    tokio::time::timeout(RUN_LIMIT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("voltlane {args:?} did not finish within {RUN_LIMIT:?}"))
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs and expects exit 0; returns stdout.
async fn ok(hub: &str, args: &[&str]) -> String {
    let out = voltlane(hub, args).await;
    assert_eq!(
        out.status.code(),
        Some(0),
        "voltlane {args:?}\nstdout: {}\nstderr: {}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// Runs with `--json` and parses stdout.
async fn ok_json(hub: &str, args: &[&str]) -> Value {
    let mut all = args.to_vec();
    all.push("--json");
    let text = ok(hub, &all).await;
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}\n{text}"))
}

/// The value of `field` in a `field  value` table.
fn field<'a>(table: &'a str, name: &str) -> &'a str {
    table
        .lines()
        .find_map(|l| {
            let mut parts = l.splitn(2, ' ');
            (parts.next() == Some(name)).then(|| parts.next().unwrap_or("").trim())
        })
        .unwrap_or_else(|| panic!("no field {name} in\n{table}"))
}

/// Sends `kill <sig> <pid>` to the hub this test started.
fn signal(sig: &str, pid: &str) {
    let status = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .unwrap();
    assert!(status.success(), "kill {sig} {pid}: {status}");
}

fn write_key(dir: &Path, name: &str) -> (PathBuf, Address) {
    let signer = LocalSigner::from_bytes(&rand::random::<[u8; 32]>()).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, hex::encode(signer.to_bytes())).unwrap();
    (path, signer.address())
}

#[tokio::test]
async fn info_health_usage_errors_and_a_dead_hub() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let url = hub.url();
    let operator = hub.operator_key().unwrap().address();

    let table = ok(&url, &["info"]).await;
    assert_eq!(field(&table, "hub_address"), operator.to_string());
    assert_eq!(field(&table, "chain_id"), "337");
    assert_eq!(field(&table, "endpoint"), url);
    let info = ok_json(&url, &["info"]).await;
    assert_eq!(info["hub_address"], operator.to_string());
    assert_eq!(info["chain_id"], "337");
    assert_eq!(info["settlement_timeout"], 3);
    assert_eq!(info["auto_deposit"], Value::Null);

    let health = ok_json(&url, &["health"]).await;
    assert_eq!(health["serving"], true);
    assert_eq!(health["services"].as_array().unwrap().len(), 6);
    let table = ok(&url, &["health"]).await;
    assert!(table.contains("voltlane.v1.Payments   SERVING"), "{table}");

    // Usage errors: clap's exit 2, before anything is sent.
    for args in [
        &["pay", "-5"][..],
        &["pay", "1e3"],
        &["channels", "show", "xyz"],
        &["nope"],
    ] {
        let out = voltlane(&url, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
    }
    let out = voltlane(&url, &["pay", "5"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--store"), "{}", stderr(&out));

    // Nothing listens on a port just freed: exit 4, named UNAVAILABLE.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{port}");
    for args in [&["info"][..], &["channels", "list"]] {
        let out = voltlane(&dead, args).await;
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: UNAVAILABLE: "),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
}

#[tokio::test]
async fn a_device_pays_through_the_cli_and_the_hub_shows_the_exact_balance() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let url = hub.url();
    let dir = tempfile::tempdir().unwrap();
    let (key, device) = write_key(dir.path(), "device.key");
    let key = key.to_str().unwrap();
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    let operator_key = hub.data_dir().join("operator.key");
    let operator_key = operator_key.to_str().unwrap();

    let login = ok_json(&url, &["login", "--key", key]).await;
    assert_eq!(login["address"], device.to_string());

    let minted = ok_json(&url, &["mint", "1000", "--key", key]).await;
    assert_eq!(minted["token_balance"], "1000");
    let opened = ok_json(&url, &["open", "600", "--key", key, "--store", store]).await;
    assert_eq!(opened["device_deposit"], "600");
    assert_eq!(opened["phase"], "open");
    let id = opened["channel_id"].as_str().unwrap().to_string();

    let paid = ok_json(&url, &["pay", "150", "--key", key, "--store", store]).await;
    assert_eq!(paid["nonce"], 1);
    assert_eq!(paid["transferred_amount"], "150");
    let table = ok(&url, &["pay", "25", "--store", store]).await;
    assert_eq!(field(&table, "nonce"), "2");
    assert_eq!(field(&table, "transferred_amount"), "175");

    // The hub's view, by id and by the device's address, as a table and as JSON.
    let table = ok(&url, &["channels", "show", &id, "--key", key]).await;
    assert_eq!(field(&table, "device"), device.to_string());
    assert_eq!(field(&table, "device_balance"), "425");
    assert_eq!(field(&table, "hub_balance"), "175");
    assert_eq!(field(&table, "device_nonce"), "2");
    assert_eq!(field(&table, "device_transferred"), "175");
    let by_address = device.to_string();
    let shown = ok_json(&url, &["channels", "show", &by_address, "--store", store]).await;
    assert_eq!(shown["channel_id"], id);
    assert_eq!(shown["phase"], "opened");
    assert_eq!(shown["device_deposit"], "600");
    assert_eq!(shown["device_balance"], "425");
    assert_eq!(shown["hub_balance"], "175");
    assert_eq!(shown["device_capacity"], "425");
    assert_eq!(shown["device_transferred"], "175");

    // The ledger: the channel in the hub's list, and its record.
    let list = ok_json(&url, &["channels", "list"]).await;
    let rows = list["channels"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{list}");
    assert_eq!(rows[0]["channel_id"], id);
    assert_eq!(rows[0]["device"], device.to_string());
    assert_eq!(rows[0]["device_deposit"], "600");
    assert_eq!(rows[0]["hub_deposit"], "0");
    let table = ok(&url, &["channels", "list"]).await;
    let row = table.lines().nth(1).unwrap();
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells,
        [id.as_str(), "opened", &by_address, "600", "0", "0", "0"]
    );
    let record = ok_json(&url, &["ledger", "show", &id]).await;
    assert_eq!(record["participants"][0]["address"], device.to_string());
    assert_eq!(record["participants"][0]["total_deposit"], "600");

    // The operator deposits 100 of its own tokens; the hub's balance grows by exactly that.
    ok(&url, &["mint", "500", "--key", operator_key]).await;
    let after = ok_json(&url, &["deposit", &id, "100", "--key", operator_key]).await;
    assert_eq!(after["hub_deposit"], "100");
    assert_eq!(after["hub_balance"], "275");
    assert_eq!(after["device_balance"], "425");

    let proofs = ok_json(&url, &["export-proofs", "--store", store]).await;
    assert_eq!(proofs["device_to_hub"]["nonce"], "2");
    assert_eq!(proofs["device_to_hub"]["transferred_amount"], "175");
    assert_eq!(proofs["device_to_hub"]["signer"], device.to_string());

    // Refusals by the hub: exit 3, the status name and the reason on stderr, nothing on stdout.
    let rejected: [(&[&str], &str); 4] = [
        (&["channels", "show", "424242", "--key", key], "NOT_FOUND"),
        (&["ledger", "show", "424242"], "NOT_FOUND"),
        (&["deposit", &id, "1", "--key", key], "PERMISSION_DENIED"),
        (
            &["deposit", &id, "100000", "--key", operator_key],
            "FAILED_PRECONDITION",
        ),
    ];
    for (args, code) in rejected {
        let out = voltlane(&url, args).await;
        assert_eq!(out.status.code(), Some(3), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with(&format!("error: {code}: ")),
            "{args:?}: {}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty(), "{args:?}");
    }
    // Paying more than the channel holds is refused by the device's own channel, before
    // anything is signed or sent: a local error, and the hub's view is unchanged.
    let out = voltlane(&url, &["pay", "1000", "--store", store]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let shown = ok_json(&url, &["channels", "show", &id, "--key", key]).await;
    assert_eq!(shown["device_nonce"], 2);
    assert_eq!(shown["device_balance"], "425");

    // A hub that stops answering (SIGSTOP): the CLI gives up after --timeout-secs with exit
    // 4 instead of waiting forever; nothing was paid.
    let pid = hub.pid().unwrap().to_string();
    signal("-STOP", &pid);
    let out = voltlane(&url, &["pay", "5", "--store", store, "--timeout-secs", "2"]).await;
    signal("-CONT", &pid);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("error: DEADLINE_EXCEEDED: no answer from the hub within 2 s"),
        "{}",
        stderr(&out)
    );
    let shown = ok_json(&url, &["channels", "show", &id, "--key", key]).await;
    assert_eq!(shown["device_nonce"], 2);

    // Cooperative close: each side gets exactly its balance.
    let settled = ok_json(&url, &["close", "--store", store]).await;
    assert_eq!(settled["channel_id"], id);
    assert_eq!(settled["device_amount"], "425");
    assert_eq!(settled["hub_amount"], "275");
    let record = ok_json(&url, &["ledger", "show", &id]).await;
    assert_eq!(record["phase"], "settled");
}

/// A self-signed CA (PEM) and a certificate for 127.0.0.1 signed by it (cert and key PEM).
fn test_pki() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "voltlane cli test CA");
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    (ca.pem(), cert.pem(), key.serialize_pem())
}

#[tokio::test]
async fn https_needs_the_hubs_ca_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, cert_pem, key_pem) = test_pki();
    let (other_ca, _, _) = test_pki();
    let path = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.to_str().unwrap().to_string()
    };
    let (ca, other, cert, key) = (
        path("ca.pem", &ca_pem),
        path("other-ca.pem", &other_ca),
        path("hub.pem", &cert_pem),
        path("hub-key.pem", &key_pem),
    );
    // The harness checks readiness in plain text, so wait with the CLI's own health check.
    let hub = HubProcess::spawn(HubOptions {
        extra_args: vec!["--tls-cert".into(), cert, "--tls-key".into(), key],
        ..HubOptions::default()
    })
    .unwrap();
    let url = format!("https://{}", hub.addr());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let out = voltlane(&url, &["health", "--ca-cert", &ca]).await;
        if out.status.code() == Some(0) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "hub over TLS not healthy: {}\n{}",
            stderr(&out),
            hub.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let info = ok_json(&url, &["info", "--ca-cert", &ca]).await;
    assert_eq!(
        info["hub_address"],
        hub.operator_key().unwrap().address().to_string()
    );
    // A device pays over TLS through the SDK.
    let store = dir.path().join("store");
    let store = store.to_str().unwrap();
    ok(&url, &["mint", "100", "--store", store, "--ca-cert", &ca]).await;
    ok(&url, &["open", "100", "--store", store, "--ca-cert", &ca]).await;
    let paid = ok_json(&url, &["pay", "9", "--store", store, "--ca-cert", &ca]).await;
    assert_eq!(paid["transferred_amount"], "9");

    // The ways out over TLS: a unilateral close, then settle after the 3 s window (the
    // hub's watcher may settle first; either way the ledger ends settled).
    let closed = ok_json(
        &url,
        &["close", "--unilateral", "--store", store, "--ca-cert", &ca],
    )
    .await;
    assert!(closed["settle_after"].as_u64().unwrap() > 0, "{closed}");
    let id = paid["channel_id"].as_str().unwrap().to_string();
    let settled = ok_json(&url, &["settle", "--store", store, "--ca-cert", &ca]).await;
    assert_eq!(settled["channel_id"], id);
    if settled["settled_now"] == true {
        assert_eq!(settled["device_amount"], "91");
        assert_eq!(settled["hub_amount"], "9");
    }
    let record = ok_json(&url, &["ledger", "show", &id, "--ca-cert", &ca]).await;
    assert_eq!(record["phase"], "settled");
    let device = ok_json(&url, &["login", "--store", store, "--ca-cert", &ca]).await;
    assert_eq!(record["closer"], device["address"]);

    // No CA for https: a usage error naming the flag. Another CA: the handshake fails.
    let out = voltlane(&url, &["info"]).await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--ca-cert"), "{}", stderr(&out));
    for args in [
        &["info", "--ca-cert", &other][..],
        &["pay", "1", "--store", store, "--ca-cert", &other],
    ] {
        let out = voltlane(&url, args).await;
        assert_eq!(out.status.code(), Some(4), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: UNAVAILABLE: "),
            "{}",
            stderr(&out)
        );
    }
}

/// A receipt of 25 Wh at 3 tokens per Wh, signed by both sides, as the SDK exports it.
fn receipt_file(dir: &Path) -> (PathBuf, String, channel_core::session::SignedSessionReceipt) {
    use channel_core::primitives::{H256, U256};
    use channel_core::session::{MeterUnit, SessionReceipt, SignedSessionReceipt};
    use channel_core::Domain;
    let payer = LocalSigner::from_bytes(&rand::random::<[u8; 32]>()).unwrap();
    let payee = LocalSigner::from_bytes(&rand::random::<[u8; 32]>()).unwrap();
    let receipt = SessionReceipt {
        domain: Domain {
            chain_id: U256::from(337u32),
            token_network_address: Address([0x0b; 20]),
        },
        session_id: H256(rand::random()),
        payer: payer.address(),
        payee: payee.address(),
        unit: MeterUnit::WattHour,
        price_per_unit: U256::from(3u8),
        total_units: 25,
        total_paid: U256::from(75u8),
        first_reading_hash: H256([1; 32]),
        last_reading_hash: H256([2; 32]),
    };
    let signed = SignedSessionReceipt {
        receipt,
        payer_signature: receipt.sign_part(&payer).unwrap(),
        payee_signature: receipt.sign_part(&payee).unwrap(),
    };
    let json = voltlane_client::session::receipt_json(&signed).unwrap();
    let path = dir.join("receipt.json");
    std::fs::write(&path, &json).unwrap();
    (path, json, signed)
}

#[tokio::test]
async fn verify_receipt_passes_a_signed_receipt_offline_and_fails_a_tampered_one() {
    // No hub: the receipt is checked offline, so a dead endpoint does not matter.
    let dead = "http://127.0.0.1:9";
    let dir = tempfile::tempdir().unwrap();
    let (path, json, signed) = receipt_file(dir.path());
    let file = path.to_str().unwrap();

    let table = ok(dead, &["verify-receipt", file]).await;
    let r = &signed.receipt;
    assert_eq!(field(&table, "session_id"), r.session_id.to_string());
    assert_eq!(field(&table, "payer"), r.payer.to_string());
    assert_eq!(field(&table, "payee"), r.payee.to_string());
    assert_eq!(field(&table, "unit"), "WattHour");
    assert_eq!(field(&table, "units"), "25");
    assert_eq!(field(&table, "total_paid"), "75");
    let v = ok_json(dead, &["verify-receipt", file]).await;
    assert_eq!(v["valid"], true);
    assert_eq!(v["total_paid"], "75");
    assert_eq!(v["units"], 25);

    // Tampered: the payee claims 26 Wh were paid for 78 (the price adds up, the payer's
    // signature does not cover it).
    let tampered = json
        .replace("\"total_units\": 25", "\"total_units\": 26")
        .replace("\"total_paid\": \"75\"", "\"total_paid\": \"78\"");
    assert_ne!(tampered, json);
    std::fs::write(&path, tampered).unwrap();
    let out = voltlane(dead, &["verify-receipt", file]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).starts_with("error: ") && stderr(&out).contains("signature of the payer"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));

    let out = voltlane(dead, &["verify-receipt", "/nonexistent/receipt.json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}
