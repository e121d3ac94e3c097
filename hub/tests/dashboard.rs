//! The dashboard in a real browser: a hub with its metrics listener, a device paying it and a
//! metered session publishing readings. Headless chromium loads `/dashboard` while payments
//! flow (a live page, no more payments than made); once they are answered, the numbers the
//! page renders must equal what the hub's API says (the device's `Channels.GetChannel`, the
//! metrics scrape, `Hub.GetInfo`, the readings published). Then a screenshot is saved to
//! `<target dir>/dashboard.png`.
//!
//! Needs Debian's `chromium`; the test installs it when missing (as root, or with
//! passwordless sudo).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage};
use channel_core::crypto::Signer;
use channel_core::primitives::U256;
use channel_core::session::{MeterReading, MeterUnit, Publication, SessionOffer};
use channel_core::{Domain, LocalSigner, SignedBalanceProof, H256};
use common::*;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use voltlane_hub::HubConfig;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

/// Payments sent per batch, batches, and the pause between batches.
const BATCH: u64 = 5;
const BATCHES: u64 = 8;
const PAUSE: Duration = Duration::from_millis(400);
const AMOUNT: u64 = 7;

/// `GET path` over HTTP/1.1; returns the status line, the lower-cased headers and the body.
async fn get(addr: SocketAddr, path: &str) -> (String, String, String) {
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    conn.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tokio::time::timeout(Duration::from_secs(10), conn.read_to_string(&mut response))
        .await
        .expect("the endpoint answers within 10 s")
        .unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    (status.to_string(), headers.to_lowercase(), body.to_string())
}

async fn state(addr: SocketAddr) -> serde_json::Value {
    let (status, headers, body) = get(addr, "/dashboard/state").await;
    assert!(status.contains("200"), "{status}: {body}");
    assert!(
        headers.contains("content-type: application/json"),
        "{headers}"
    );
    serde_json::from_str(&body).unwrap()
}

/// Accepted payments as the metrics scrape counts them.
async fn scraped_payments(addr: SocketAddr) -> u64 {
    let (_, _, body) = get(addr, "/metrics").await;
    let series = "voltlane_payments_total{outcome=\"accepted\",code=\"OK\"} ";
    body.lines()
        .find_map(|l| l.strip_prefix(series))
        .expect("the accepted series is exposed")
        .trim()
        .parse()
        .unwrap()
}

/// The text of the element with `id` in a dumped DOM (the text up to its first child tag).
fn text_of(dom: &str, id: &str) -> Option<String> {
    let at = dom.find(&format!("id=\"{id}\""))?;
    let rest = &dom[at..];
    let open = rest.find('>')?;
    let text = &rest[open + 1..];
    Some(text[..text.find('<')?].trim().to_string())
}

fn must_text(dom: &str, id: &str) -> String {
    text_of(dom, id).unwrap_or_else(|| panic!("no element with id {id} in the page:\n{dom}"))
}

/// The `chromium` binary; installed with apt-get (as root, or with passwordless sudo) when
/// missing.
fn chromium() -> PathBuf {
    let which = || {
        std::process::Command::new("which")
            .arg("chromium")
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()))
    };
    if let Some(path) = which() {
        return path;
    }
    // As root, apt-get directly; otherwise through passwordless sudo (`sudo -n` fails at
    // once rather than prompting when a password would be needed).
    let uid = std::process::Command::new("id").arg("-u").output().unwrap();
    let root = String::from_utf8_lossy(&uid.stdout).trim() == "0";
    let apt = |args: &[&str]| {
        let mut cmd = if root {
            std::process::Command::new("apt-get")
        } else {
            let mut c = std::process::Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        cmd.args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    let installed = apt(&["update", "-qq"]) && apt(&["install", "-y", "-qq", "chromium"]);
    assert!(
        installed,
        "chromium is missing and could not be installed: install it with \
         `sudo apt-get install -y chromium` (Debian's package) and run the test again"
    );
    which().expect("chromium is on PATH after apt-get install")
}

/// Runs headless chromium on `url` with `args`; returns its stdout. Killed after 25 s.
async fn headless(chromium: &Path, profile: &Path, url: &str, args: &[&str]) -> String {
    let mut cmd = tokio::process::Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=4000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url)
    .kill_on_drop(true)
    .stdin(std::process::Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(25), cmd.output())
        .await
        .expect("chromium finishes within 25 s")
        .unwrap();
    assert!(
        out.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn sign(channel: &mut Channel, key: &LocalSigner, amount: u64) -> SignedBalanceProof {
    channel
        .send_payment(U256::from(amount), H256::ZERO, key)
        .unwrap()
        .into_iter()
        .find_map(|e| match e {
            ChannelEvent::Send(ChannelMessage::Payment { proof, .. }) => Some(proof),
            _ => None,
        })
        .unwrap()
}

fn reading(session: H256, seq: u64, register: u64, now: u64, meter: &LocalSigner) -> Publication {
    let reading = MeterReading {
        session_id: session,
        transaction_id: H256::ZERO,
        seq,
        register,
        timestamp: now,
        measurand: MeterUnit::WattHour,
        stopped_reason: None,
    }
    .sign(meter)
    .unwrap();
    Publication {
        reading,
        bill: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_in_headless_chromium_shows_what_the_hub_api_says() {
    let chromium = chromium();
    let dir = tempfile::tempdir().unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (hub, metrics) = TestHub::start_with_metrics(HubConfig::new(dir.path())).await;

    // A device with a funded channel.
    let conn = hub.channel().await;
    let key = key(41);
    let hub_addr = hub_address(conn.clone()).await;
    let token = login(conn.clone(), &key).await;
    let mut ledger =
        v1::ledger_client::LedgerClient::with_interceptor(conn.clone(), Bearer(token.clone()));
    let id = open_funded_channel(&mut ledger, key.address(), hub_addr, 1_000, 1_000).await;
    let time = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    let domain = Domain::try_from(time.domain.unwrap()).unwrap();
    let channel_id = U256::from_be_slice(&id);
    let mut channel = Channel::new(domain, channel_id, key.address(), hub_addr);
    channel
        .handle_ledger_deposit(key.address(), U256::from(1_000u32))
        .unwrap();

    // A metered session the device sells, with three readings relayed.
    let session = H256([0x5e; 32]);
    let offer = SessionOffer {
        domain,
        session_id: session,
        payee: key.address(),
        meter_key: key.address(),
        unit: MeterUnit::WattHour,
        price_per_unit: U256::from(3u8),
        credit_window_units: 100,
        max_units: None,
        max_units_per_hour: 11_000,
        expires_at: time.now + 600,
    }
    .sign(&key)
    .unwrap();
    let mut sessions =
        v1::sessions_client::SessionsClient::with_interceptor(conn.clone(), Bearer(token.clone()));
    sessions
        .open_session(v1::OpenSessionRequest {
            offer: Some((&offer).into()),
            payer: Vec::new(),
        })
        .await
        .unwrap();
    for (seq, register) in [(1, 1_200), (2, 1_250), (4, 1_291)] {
        let p = reading(session, seq, register, time.now, &key);
        sessions
            .publish(v1::SessionPublication::from(&p))
            .await
            .unwrap();
    }

    // Payments flow in batches on one Pay stream while the page is fetched.
    let proofs: Vec<_> = (0..BATCH * BATCHES)
        .map(|_| sign(&mut channel, &key, AMOUNT))
        .collect();
    let mut pay =
        v1::payments_client::PaymentsClient::with_interceptor(conn.clone(), Bearer(token.clone()));
    let (tx, rx) = mpsc::channel(proofs.len());
    let mut acks = pay.pay(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let sender = tokio::spawn(async move {
        for (i, proof) in proofs.iter().enumerate() {
            tx.send(v1::PaymentMessage {
                request_id: i as u64 + 1,
                balance_proof: Some(proof.into()),
                amount: u256_bytes(&U256::from(AMOUNT)),
                kind: None,
            })
            .await
            .unwrap();
            if (i as u64 + 1).is_multiple_of(BATCH) {
                tokio::time::sleep(PAUSE).await;
            }
        }
        tx
    });
    let url = format!("http://{metrics}/dashboard");
    let live = {
        let (chromium, profile, url) = (chromium.clone(), profile.path().to_owned(), url.clone());
        tokio::spawn(async move { headless(&chromium, &profile, &url, &["--dump-dom"]).await })
    };
    let (status, headers, page) = get(metrics, "/dashboard").await;
    assert!(status.contains("200"), "{status}");
    assert!(headers.contains("content-type: text/html"), "{headers}");
    for external in ["http://", "https://", "src=\"//", "href=\"//"] {
        assert!(!page.contains(external), "the page refers to {external}");
    }
    let mut accepted = 0;
    for _ in 0..BATCH * BATCHES {
        let ack = tokio::time::timeout(Duration::from_secs(10), acks.next())
            .await
            .expect("every payment is answered within 10 s")
            .unwrap()
            .unwrap();
        assert!(
            matches!(ack.outcome, Some(v1::payment_ack::Outcome::Accepted(_))),
            "{ack:?}"
        );
        accepted += 1;
    }
    let tx = sender.await.unwrap();

    // The page loaded while they flowed is live and shows no more payments than were made.
    let live = live.await.unwrap();
    assert!(must_text(&live, "status").starts_with("live"), "{live}");
    let seen: u64 = must_text(&live, "total-payments").parse().unwrap();
    assert!(seen <= accepted, "{seen} > {accepted}");

    // The sampler has seen every payment once its points add up to the count.
    let mut sampled = 0;
    for _ in 0..50 {
        let s = state(metrics).await;
        sampled = s["payments_per_second"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_u64().unwrap())
            .sum::<u64>();
        if sampled == accepted {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        sampled, accepted,
        "the rate history adds up to the payments"
    );

    let dom = headless(&chromium, profile.path(), &url, &["--dump-dom"]).await;

    // What the API says.
    let api = v1::channels_client::ChannelsClient::with_interceptor(conn.clone(), Bearer(token))
        .get_channel(v1::GetChannelRequest {
            channel_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let dec = |bytes: &[u8]| U256::from_be_slice(bytes).to_string();
    let cid = channel_id.to_string();
    let on_page = |field: &str| must_text(&dom, &format!("channel-{cid}-{field}"));
    assert_eq!(on_page("device-balance"), dec(&api.device_balance));
    assert_eq!(on_page("hub-balance"), dec(&api.hub_balance));
    assert_eq!(on_page("device-deposit"), dec(&api.device_deposit));
    assert_eq!(on_page("hub-deposit"), dec(&api.hub_deposit));
    // And those are the payments made: 40 × 7 of the device's 1000.
    assert_eq!(
        dec(&api.hub_balance),
        (BATCH * BATCHES * AMOUNT).to_string()
    );
    assert_eq!(on_page("phase"), "open");
    assert_eq!(on_page("device"), key.address().to_string());

    let total: u64 = must_text(&dom, "total-payments").parse().unwrap();
    assert_eq!(total, accepted);
    assert_eq!(total, scraped_payments(metrics).await);
    assert_eq!(must_text(&dom, "window-payments"), accepted.to_string());
    assert_eq!(must_text(&dom, "hub-address"), hub_addr.to_string());
    assert_eq!(must_text(&dom, "channel-count"), "1");
    // The chart has a point per sampled second.
    let line = dom
        .find("id=\"rate-line\"")
        .map(|at| &dom[at..])
        .and_then(|rest| rest.split("points=\"").nth(1))
        .and_then(|rest| rest.split('"').next())
        .expect("the chart's line has points");
    let window: usize = must_text(&dom, "rate-window").parse().unwrap();
    assert!(window >= 1);
    assert_eq!(line.split_whitespace().count(), window, "{line}");

    // The ledger events: mint, open and deposit, newest first.
    assert_eq!(must_text(&dom, "event-1-kind"), "minted");
    assert_eq!(must_text(&dom, "event-2-kind"), "channel_opened");
    assert_eq!(must_text(&dom, "event-2-channel"), cid);
    assert_eq!(must_text(&dom, "event-3-kind"), "deposit");

    // The session: its latest reading and the units since the first, at its price.
    let sid = session.to_string();
    let on_page = |field: &str| must_text(&dom, &format!("session-{sid}-{field}"));
    assert_eq!(on_page("seq"), "4");
    assert_eq!(on_page("register"), "1291");
    assert_eq!(on_page("units"), "91");
    assert_eq!(on_page("amount"), "273");
    assert_eq!(on_page("price"), "3");
    assert_eq!(on_page("unit"), "Wh");
    assert_eq!(on_page("payer"), "-");

    // A screenshot, in the target directory.
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .unwrap()
        .to_path_buf();
    let png = target.join("dashboard.png");
    let _ = std::fs::remove_file(&png);
    headless(
        &chromium,
        profile.path(),
        &url,
        &[
            &format!("--screenshot={}", png.display()),
            "--window-size=1280,900",
        ],
    )
    .await;
    let bytes = std::fs::read(&png).expect("chromium wrote the screenshot");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "a PNG");
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert_eq!((width, height), (1280, 900));
    assert!(
        bytes.len() > 20_000,
        "a rendered page, not a blank one: {} bytes",
        bytes.len()
    );

    drop(tx);
    hub.stop().await;
}
