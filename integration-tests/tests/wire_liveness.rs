//! Liveness and deadlines on the wire, against a real hub process that is frozen with
//! `SIGSTOP` (the kernel still accepts its connections, nobody answers: what a hung or
//! unplugged hub looks like from a device):
//! - a device streaming payments notices the frozen hub within its HTTP/2 keepalive interval
//!   plus timeout ([`voltlane_client::LinkState`]), its further payments wait unacknowledged,
//!   and after `SIGCONT` they are re-sent and applied exactly once (the hub's nonce is the
//!   number of payments and its balance their sum);
//! - a unary call to the frozen hub fails at its deadline with
//!   [`ClientError::DeadlineExceeded`] and changes nothing in the device;
//! - the other way round, the hub closes the connection of a peer that stopped answering its
//!   keepalive pings.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_core::LocalSigner;
use futures::future::join_all;
use integration_tests::device::device_nonce;
use integration_tests::{eventually, within, HubOptions, HubProcess, TestDevice};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use voltlane_client::{Client, ClientError, ConnectOptions, DeviceStore, U256};
use voltlane_proto::convert::{u256, u256_bytes};
use voltlane_proto::v1;

/// The device's keepalive in these tests: a ping every second, a second to answer it.
const KEEPALIVE: Duration = Duration::from_secs(1);

fn u(n: u64) -> U256 {
    U256::from(n)
}

fn device_key(n: u8) -> LocalSigner {
    let mut b = [0x5au8; 32];
    b[31] = n;
    LocalSigner::from_bytes(&b).unwrap()
}

/// A hub that pings its devices every second too.
fn hub_options() -> HubOptions {
    HubOptions {
        extra_args: [
            "--http2-keepalive-interval-secs",
            "1",
            "--http2-keepalive-timeout-secs",
            "1",
        ]
        .map(String::from)
        .to_vec(),
        ..HubOptions::default()
    }
}

/// The hub process stopped with `SIGSTOP`; `SIGCONT` on [`Frozen::thaw`] or drop (so that a
/// failing test leaves no stopped process behind).
struct Frozen {
    pid: Option<u32>,
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(status.success(), "kill -{sig} {pid}: {status}");
}

impl Frozen {
    /// Stops the hub and waits until every one of its threads is stopped (`kill` only sends
    /// the signal: a thread running on another core may still answer a request meanwhile).
    fn freeze(hub: &HubProcess) -> Self {
        let pid = hub.pid().expect("the hub runs");
        signal(pid, "STOP");
        let frozen = Self { pid: Some(pid) };
        let started = Instant::now();
        while !all_threads_stopped(pid) {
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "hub {pid} did not stop"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        frozen
    }

    fn thaw(mut self) {
        if let Some(pid) = self.pid.take() {
            signal(pid, "CONT");
        }
    }
}

/// Whether every thread of process `pid` is in state `T` (stopped), per `/proc`.
fn all_threads_stopped(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // `pid (comm) S ...`: the state follows the last `)`.
            stat.rsplit_once(')')
                .is_some_and(|(_, rest)| rest.trim_start().starts_with('T'))
        })
    })
}

impl Drop for Frozen {
    fn drop(&mut self) {
        if let Some(pid) = self.pid.take() {
            let _ = Command::new("kill")
                .arg("-CONT")
                .arg(pid.to_string())
                .status();
        }
    }
}

/// The hub's view of channel `id`, read by the operator (who may read any channel).
async fn hub_view(hub: &HubProcess, id: U256) -> v1::ChannelState {
    let operator = TestDevice::login(hub.connect().await.unwrap(), hub.operator_key().unwrap())
        .await
        .unwrap();
    operator
        .channels()
        .get_channel(v1::GetChannelRequest {
            channel_id: u256_bytes(&id),
        })
        .await
        .unwrap()
        .into_inner()
}

fn transferred(state: &v1::ChannelState) -> U256 {
    let balance = state
        .device_proof
        .as_ref()
        .and_then(|p| p.proof.as_ref())
        .and_then(|p| p.balance.as_ref())
        .expect("the hub holds a device proof");
    u256("transferred_amount", &balance.transferred_amount).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_hub_is_noticed_and_queued_payments_land_exactly_once() {
    within(
        Duration::from_secs(60),
        "the frozen-hub test",
        frozen_hub_run(),
    )
    .await
    .unwrap();
}

async fn frozen_hub_run() {
    let hub = HubProcess::start(hub_options()).await.unwrap();
    let options = ConnectOptions::new()
        .keepalive(Some(KEEPALIVE), KEEPALIVE)
        .call_timeout(Duration::from_secs(5));
    let client = Arc::new(
        Client::connect_with(
            &hub.url(),
            device_key(1),
            DeviceStore::in_memory(),
            &options,
        )
        .await
        .unwrap(),
    );
    client.mint(u(10_000)).await.unwrap();
    let id = client.open_channel(u(5_000)).await.unwrap();

    // 20 payments of 3, acknowledged while the hub runs.
    for r in join_all((0..20).map(|_| client.pay(u(3)))).await {
        r.unwrap();
    }
    let mut link = client.link();
    let failures_before = link.borrow().failures;

    let frozen = Frozen::freeze(&hub);
    let frozen_at = Instant::now();
    // 10 payments of 5 while the hub is frozen: signed, sent, never acknowledged.
    let pending: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.pay(u(5)).await })
        })
        .collect();

    // The device notices: keepalive closes the silent connection and the link reports the
    // failure (bounded generously; it takes about one interval plus one timeout).
    within(
        Duration::from_secs(15),
        "the device to notice the frozen hub",
        link.wait_for(|l| l.failures > failures_before),
    )
    .await
    .unwrap()
    .unwrap();
    let noticed_after = frozen_at.elapsed();
    eprintln!("frozen hub noticed after {noticed_after:?}");
    assert!(!link.borrow().up);

    // The payments wait, unacknowledged.
    eventually(Duration::from_secs(5), "10 signed payments", || {
        let nonce = client.balances().unwrap().our_nonce;
        async move { nonce == 30 }
    })
    .await;
    let balances = client.balances().unwrap();
    assert_eq!(balances.unacked, 10);
    assert!(pending.iter().all(|p| !p.is_finished()));

    // SIGCONT: the device reconnects, re-sends what the hub lacks, every pay resolves.
    frozen.thaw();
    let mut nonces = Vec::new();
    for p in pending {
        let receipt = within(Duration::from_secs(30), "a queued payment's ack", p)
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(receipt.amount, u(5));
        nonces.push(receipt.nonce);
    }
    nonces.sort_unstable();
    assert_eq!(nonces, (21..=30).collect::<Vec<_>>());
    within(
        Duration::from_secs(10),
        "the link to come back up",
        link.wait_for(|l| l.up),
    )
    .await
    .unwrap()
    .unwrap();

    let balances = client.balances().unwrap();
    assert_eq!(balances.unacked, 0);
    assert_eq!(balances.our_nonce, 30);
    assert_eq!(balances.our_transferred, u(20 * 3 + 10 * 5));

    // The hub applied each payment once: its nonce is the count, its balance the sum.
    let state = hub_view(&hub, id).await;
    assert_eq!(device_nonce(&state), 30);
    assert_eq!(transferred(&state), u(110));
    assert_eq!(u256("hub_balance", &state.hub_balance).unwrap(), u(110));
    assert_eq!(
        u256("device_balance", &state.device_balance).unwrap(),
        u(5_000 - 110)
    );

    // And the stream works on: one more payment, acknowledged once.
    let receipt = client.pay(u(1)).await.unwrap();
    assert_eq!(receipt.nonce, 31);
    let state = hub_view(&hub, id).await;
    assert_eq!(device_nonce(&state), 31);
    assert_eq!(transferred(&state), u(111));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unary_call_to_a_frozen_hub_fails_at_its_deadline_and_changes_nothing() {
    within(Duration::from_secs(60), "the deadline test", deadline_run())
        .await
        .unwrap();
}

async fn deadline_run() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let deadline = Duration::from_secs(1);
    // Keepalive far longer than the deadline: the deadline is what ends the calls.
    let options = ConnectOptions::new()
        .keepalive(Some(Duration::from_secs(30)), Duration::from_secs(20))
        .call_timeout(deadline);
    let client = Client::connect_with(
        &hub.url(),
        device_key(2),
        DeviceStore::in_memory(),
        &options,
    )
    .await
    .unwrap();
    client.mint(u(1_000)).await.unwrap();
    client.open_channel(u(100)).await.unwrap();
    client.pay(u(7)).await.unwrap();
    let before = client.balances().unwrap();
    let me = client.address();

    let frozen = Frozen::freeze(&hub);
    for result in [
        client.deposit(u(50)).await.map(|_| ()),
        client.token_balance(me).await.map(|_| ()),
    ] {
        let e = result.expect_err("the hub is frozen");
        match &e {
            ClientError::DeadlineExceeded { after, .. } => assert_eq!(*after, deadline),
            other => panic!("expected DeadlineExceeded, got {other:?}"),
        }
        assert_eq!(e.code(), Some(tonic::Code::DeadlineExceeded));
        assert!(
            e.to_string().ends_with("within the 1s call deadline"),
            "{e}"
        );
    }
    assert_eq!(
        client.balances().unwrap(),
        before,
        "nothing changed in the device"
    );
    // A missed deadline is not a transport failure.
    assert_eq!(client.link().borrow().failures, 0);
    frozen.thaw();

    // After SIGCONT: the deposit's first step (reading the ledger's record of the channel)
    // missed its deadline, so no transaction was ever sent; the hub holds what it held, and
    // the device pays on. (A request the hub had received before it stopped could still take
    // effect after SIGCONT: the device would then learn of it from the ledger.)
    client.pay(u(3)).await.unwrap();
    let state = hub_view(&hub, client.channel_id().unwrap()).await;
    assert_eq!(
        u256("device_deposit", &state.device_deposit).unwrap(),
        u(100)
    );
    assert_eq!(client.balances().unwrap().our_deposit, u(100));
    assert_eq!(device_nonce(&state), 2);
    assert_eq!(transferred(&state), u(10));
}

/// A peer that opens an HTTP/2 connection (preface and SETTINGS) and then never sends another
/// byte, so it answers none of the hub's pings: the hub closes the connection after its
/// keepalive interval plus timeout (1 s + 1 s here).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_closes_the_connection_of_a_peer_that_stopped_answering() {
    let hub = HubProcess::start(hub_options()).await.unwrap();
    let mut socket = tokio::net::TcpStream::connect(hub.addr()).await.unwrap();
    socket
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    // An empty SETTINGS frame: length 0, type 4, no flags, stream 0.
    socket
        .write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
        .await
        .unwrap();
    let opened = Instant::now();
    let mut received = Vec::new();
    let read_to_end = async {
        let mut buf = [0u8; 1024];
        loop {
            match socket.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    within(
        Duration::from_secs(15),
        "the hub to close the silent connection",
        read_to_end,
    )
    .await
    .unwrap();
    eprintln!("silent peer dropped after {:?}", opened.elapsed());
    // Among what the hub sent: a PING (frame type 6) that was never answered.
    assert!(
        has_frame_of_type(&received, 6),
        "no PING among {received:?}"
    );
}

/// Whether the server-to-client HTTP/2 byte stream `bytes` holds a frame of type `kind`.
fn has_frame_of_type(bytes: &[u8], kind: u8) -> bool {
    let mut at = 0;
    while let Some(header) = bytes.get(at..at + 9) {
        if header[3] == kind {
            return true;
        }
        let len =
            (usize::from(header[0]) << 16) | (usize::from(header[1]) << 8) | usize::from(header[2]);
        at += 9 + len;
    }
    false
}
