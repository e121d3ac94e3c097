//! The Prometheus endpoint of an in-process hub: after accepted and rejected payments a scrape
//! of `/metrics` shows exactly those counts (by status code), the open Pay stream, the
//! channel and its deposit, and every other family.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage};
use channel_core::crypto::Signer;
use channel_core::primitives::U256;
use channel_core::{Domain, SignedBalanceProof, H256};
use common::*;
use futures::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use voltlane_hub::HubConfig;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

/// `GET path` over HTTP/1.1; returns the status line, the headers and the body.
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

async fn scrape(addr: SocketAddr) -> String {
    let (status, headers, body) = get(addr, "/metrics").await;
    assert!(status.contains("200"), "{status}");
    assert!(
        headers.contains("content-type: application/openmetrics-text"),
        "{headers}"
    );
    body
}

/// The value of the sample `series` (name and labels exactly as exposed), if present.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        Some(value.trim().parse().unwrap())
    })
}

fn payments(text: &str, outcome: &str, code: &str) -> Option<f64> {
    sample(
        text,
        &format!("voltlane_payments_total{{outcome=\"{outcome}\",code=\"{code}\"}}"),
    )
}

fn message(id: u64, proof: Option<&SignedBalanceProof>, amount: u64) -> v1::PaymentMessage {
    v1::PaymentMessage {
        request_id: id,
        balance_proof: proof.map(Into::into),
        amount: u256_bytes(&U256::from(amount)),
        kind: None,
    }
}

fn sign(channel: &mut Channel, key: &channel_core::LocalSigner, amount: u64) -> SignedBalanceProof {
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

#[tokio::test]
async fn a_scrape_counts_accepted_and_rejected_payments_and_shows_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let (hub, metrics) = TestHub::start_with_metrics(HubConfig::new(dir.path())).await;

    let fresh = scrape(metrics).await;
    assert_eq!(payments(&fresh, "accepted", "OK"), Some(0.0), "{fresh}");
    assert_eq!(sample(&fresh, "voltlane_pay_streams_active"), Some(0.0));
    assert_eq!(sample(&fresh, "voltlane_sessions_active"), Some(0.0));
    assert_eq!(
        sample(&fresh, "voltlane_channels{phase=\"opened\"}"),
        Some(0.0)
    );

    // A device with a funded channel.
    let conn = hub.channel().await;
    let key = key(31);
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
    let mut channel = Channel::new(domain, U256::from_be_slice(&id), key.address(), hub_addr);
    channel
        .handle_ledger_deposit(key.address(), U256::from(1_000u32))
        .unwrap();

    // N = 7 accepted, M = 3 rejected (a replay twice, one without a proof), on one stream.
    let proofs: Vec<_> = (0..7).map(|_| sign(&mut channel, &key, 10)).collect();
    let mut msgs: Vec<_> = proofs
        .iter()
        .enumerate()
        .map(|(i, p)| message(i as u64 + 1, Some(p), 10))
        .collect();
    msgs.push(message(8, Some(&proofs[2]), 10));
    msgs.push(message(9, None, 10));
    msgs.push(message(10, Some(&proofs[0]), 10));

    let mut pay =
        v1::payments_client::PaymentsClient::with_interceptor(conn.clone(), Bearer(token.clone()));
    let (tx, rx) = mpsc::channel(msgs.len());
    let n = msgs.len();
    for m in msgs {
        tx.send(m).await.unwrap();
    }
    let mut acks = pay.pay(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let mut outcomes = Vec::new();
    while outcomes.len() < n {
        let ack = acks.next().await.unwrap().unwrap();
        outcomes.push(matches!(
            ack.outcome,
            Some(v1::payment_ack::Outcome::Accepted(_))
        ));
    }
    assert_eq!(
        outcomes,
        [true, true, true, true, true, true, true, false, false, false]
    );

    // The stream is still open (the device has not closed its side).
    let text = scrape(metrics).await;
    assert_eq!(payments(&text, "accepted", "OK"), Some(7.0), "{text}");
    assert_eq!(
        payments(&text, "rejected", "ALREADY_EXISTS"),
        Some(2.0),
        "{text}"
    );
    assert_eq!(
        payments(&text, "rejected", "INVALID_ARGUMENT"),
        Some(1.0),
        "{text}"
    );
    let rejected: f64 = text
        .lines()
        .filter(|l| l.starts_with("voltlane_payments_total{outcome=\"rejected\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(rejected, 3.0, "no other rejection counted: {text}");
    assert_eq!(sample(&text, "voltlane_pay_streams_active"), Some(1.0));
    let batches = sample(&text, "voltlane_payment_ack_latency_seconds_count").unwrap();
    assert!(
        (1.0..=10.0).contains(&batches),
        "one observation per batch: {batches}"
    );
    assert!(sample(&text, "voltlane_store_fsync_batch_size_count").unwrap() >= 1.0);
    assert!(sample(&text, "voltlane_store_fsync_duration_seconds_count").unwrap() >= 1.0);
    assert_eq!(
        sample(&text, "voltlane_channels{phase=\"opened\"}"),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, "voltlane_channels{phase=\"settled\"}"),
        Some(0.0)
    );
    assert_eq!(sample(&text, "voltlane_channel_deposits"), Some(1000.0));
    // Open and deposit, at least.
    assert!(sample(&text, "voltlane_ledger_events_applied_total").unwrap() >= 2.0);
    for family in [
        "# TYPE voltlane_payments counter",
        "# TYPE voltlane_payment_ack_latency_seconds histogram",
        "# TYPE voltlane_store_fsync_batch_size histogram",
        "# TYPE voltlane_store_fsync_duration_seconds histogram",
        "# TYPE voltlane_pay_streams_active gauge",
        "# TYPE voltlane_channels gauge",
        "# TYPE voltlane_channel_deposits gauge",
        "# TYPE voltlane_ledger_events_applied counter",
        "# TYPE voltlane_watcher_actions counter",
        "# TYPE voltlane_sessions_active gauge",
    ] {
        assert!(text.contains(family), "{family} missing from {text}");
    }
    assert_eq!(
        sample(
            &text,
            "voltlane_watcher_actions_total{action=\"settle\",outcome=\"done\"}"
        ),
        Some(0.0)
    );
    assert!(text.ends_with("# EOF\n"), "{text}");

    // A metered session opened on the relay shows in the active-sessions gauge.
    let offer = channel_core::session::SessionOffer {
        domain,
        session_id: H256([0x5e; 32]),
        payee: key.address(),
        meter_key: key.address(),
        unit: channel_core::session::MeterUnit::WattHour,
        price_per_unit: U256::from(1u8),
        credit_window_units: 10,
        max_units: None,
        max_units_per_hour: 11_000,
        expires_at: time.now + 600,
    }
    .sign(&key)
    .unwrap();
    v1::sessions_client::SessionsClient::with_interceptor(conn.clone(), Bearer(token.clone()))
        .open_session(v1::OpenSessionRequest {
            offer: Some((&offer).into()),
            payer: Vec::new(),
        })
        .await
        .unwrap();
    assert_eq!(
        sample(&scrape(metrics).await, "voltlane_sessions_active"),
        Some(1.0)
    );

    // The device closes its side: the stream ends and the gauge goes back to zero.
    drop(tx);
    assert!(acks.next().await.is_none());
    let mut open = sample(&scrape(metrics).await, "voltlane_pay_streams_active");
    for _ in 0..100 {
        if open == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        open = sample(&scrape(metrics).await, "voltlane_pay_streams_active");
    }
    assert_eq!(open, Some(0.0));

    let (status, _, _) = get(metrics, "/other").await;
    assert!(status.contains("404"), "{status}");
    hub.stop().await;
}
