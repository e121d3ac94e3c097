//! RPC failure mid-operation: a loopback TCP proxy between the ledger and anvil forwards the
//! signed transaction to anvil (so it executes) but drops the answer, then stops forwarding
//! for a while. The ledger retries with the same signed bytes; the operation completes once
//! and only once (the sender's transaction count and the balances say so).

use channel_core::Signer;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use voltlane_eth::{EthereumLedger, RetryPolicy};

use super::common::{u, Devchain};

/// Forwards loopback connections to `upstream` unless paused. Armed with a marker, it lets
/// the first request containing it through, closes that connection without its answer, and
/// pauses itself.
#[derive(Debug)]
struct Proxy {
    url: String,
    paused: watch::Sender<bool>,
    trip_marker: Arc<std::sync::Mutex<Option<&'static [u8]>>>,
    tripped: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(upstream: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (paused, paused_rx) = watch::channel(false);
        let trip_marker: Arc<std::sync::Mutex<Option<&'static [u8]>>> = Arc::default();
        let tripped = Arc::new(AtomicBool::new(false));
        let (marker, trip, pause) = (trip_marker.clone(), tripped.clone(), paused.clone());
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (marker, trip, pause) = (marker.clone(), trip.clone(), pause.clone());
                let mut rx = paused_rx.clone();
                tokio::spawn(async move {
                    // While paused, hold the connection without forwarding anything.
                    if rx.wait_for(|p| !*p).await.is_err() {
                        return;
                    }
                    let Ok(server) = TcpStream::connect(upstream).await else {
                        return;
                    };
                    relay(client, server, marker, trip, pause).await;
                });
            }
        });
        Self {
            url,
            paused,
            trip_marker,
            tripped,
            task,
        }
    }

    fn arm(&self, marker: &'static [u8]) {
        *self.trip_marker.lock().unwrap() = Some(marker);
    }

    fn pause(&self, on: bool) {
        self.paused.send_replace(on);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(
    client: TcpStream,
    server: TcpStream,
    marker: Arc<std::sync::Mutex<Option<&'static [u8]>>>,
    tripped: Arc<AtomicBool>,
    pause: watch::Sender<bool>,
) {
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    let up = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match cr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if *pause.borrow() {
                // A paused proxy forwards nothing, on old connections either.
                return;
            }
            let chunk = &buf[..n];
            let armed = *marker.lock().unwrap();
            let hit = armed.is_some_and(|m| chunk.windows(m.len()).any(|w| w == m));
            if sw.write_all(chunk).await.is_err() {
                return;
            }
            if hit && !tripped.swap(true, Ordering::SeqCst) {
                *marker.lock().unwrap() = None;
                pause.send_replace(true);
                // Give the node time to execute it, then drop the answer with the connection.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if tripped.load(Ordering::SeqCst) && *pause.borrow() {
                // Paused after the trip: nothing more goes back to the client here.
                return;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    // Whichever direction ends first ends the connection (both halves drop).
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

fn patient_retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 30,
        request_timeout: Duration::from_millis(700),
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(300),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_and_a_stalled_node_neither_lose_nor_repeat_an_operation() {
    let chain = Devchain::start().await;
    let upstream: std::net::SocketAddr = chain.url.trim_start_matches("http://").parse().unwrap();
    let proxy = Proxy::start(upstream).await;
    let key_a = chain.key(1);
    let b = chain.key(2).address();
    let a = key_a.address();

    let mut config = chain.config();
    config.rpc_url = proxy.url.clone();
    config.retry = patient_retry();
    let la = Arc::new(EthereumLedger::connect(&config, &key_a).await.unwrap());

    // 1. Mint (not idempotent: running it twice would mint twice) with the answer to
    //    eth_sendRawTransaction lost and the node unreachable for two seconds.
    let count0 = chain.node.transaction_count(a).await.unwrap();
    let balance0 = la.token_balance(a).await.unwrap();
    proxy.arm(b"eth_sendRawTransaction");
    let op = tokio::spawn({
        let la = la.clone();
        async move { la.mint(u(1_000)).await }
    });
    // The transaction reaches the chain while its answer is lost (bounded wait).
    let mut mined = false;
    for _ in 0..500 {
        if proxy.tripped.load(Ordering::SeqCst)
            && chain.node.transaction_count(a).await.unwrap() == count0 + 1
        {
            mined = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(mined, "the send went through the proxy and got mined");
    // The node stays unreachable for the ledger for a while; the operation keeps waiting.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert!(!op.is_finished(), "the operation waits for the node");
    proxy.pause(false);
    let outcome = tokio::time::timeout(Duration::from_secs(30), op)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(outcome.block_number > 0);
    assert_eq!(chain.node.transaction_count(a).await.unwrap(), count0 + 1);
    assert_eq!(la.token_balance(a).await.unwrap(), balance0 + u(1_000));

    // 2. A two-transaction operation (approve + open with deposit) started while the node
    //    is unreachable: it waits, then completes, and the next nonce is still right.
    proxy.pause(true);
    let op = tokio::spawn({
        let la = la.clone();
        async move { la.open_channel(b, u(250)).await }
    });
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(chain.node.transaction_count(a).await.unwrap(), count0 + 1);
    proxy.pause(false);
    let (id, _) = tokio::time::timeout(Duration::from_secs(30), op)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(chain.node.transaction_count(a).await.unwrap(), count0 + 3);
    assert_eq!(la.participant_info(id, a, b).await.unwrap().deposit, u(250));
    assert_eq!(
        la.token_balance(a).await.unwrap(),
        balance0 + u(1_000) - u(250)
    );
}
