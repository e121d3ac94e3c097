//! A peer hammering the unauthenticated `Auth.GetChallenge` must not lock anyone else out:
//! issuing a challenge costs the hub no state, so there is no table for the flood to fill.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use channel_core::crypto::Signer;
use common::*;
use tonic::Code;
use voltlane_proto::convert::address_bytes;
use voltlane_proto::v1;

/// Challenges the flooder asks for: more than the 100,000 outstanding challenges the hub used
/// to keep in a table before refusing everyone.
const FLOOD_CALLS: usize = 120_000;
/// Calls the flooder keeps in flight on its one connection.
const FLOOD_CONCURRENCY: usize = 32;
/// Upper bound on the flood's duration, so the test stays bounded on a slow machine (the
/// assertions hold however many calls fit).
const FLOOD_BUDGET: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_challenge_flood_locks_nobody_out() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let flooder_channel = hub.channel().await;
    let flooder = key(40).address();

    let issued = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let deadline = Instant::now() + FLOOD_BUDGET;
    let mut workers = Vec::new();
    for _ in 0..FLOOD_CONCURRENCY {
        let mut auth = v1::auth_client::AuthClient::new(flooder_channel.clone());
        let issued = issued.clone();
        let refused = refused.clone();
        workers.push(tokio::spawn(async move {
            let mut last_error = None;
            while Instant::now() < deadline
                && issued.load(Ordering::Relaxed) + refused.load(Ordering::Relaxed) < FLOOD_CALLS
            {
                let request = v1::ChallengeRequest {
                    address: address_bytes(&flooder),
                };
                match auth.get_challenge(request).await {
                    Ok(_) => issued.fetch_add(1, Ordering::Relaxed),
                    Err(status) => {
                        last_error = Some(status);
                        refused.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
            last_error
        }));
    }
    let mut last_error = None;
    for w in workers {
        last_error = w.await.unwrap().or(last_error);
    }
    let issued = issued.load(Ordering::Relaxed);
    let refused = refused.load(Ordering::Relaxed);
    eprintln!(
        "flood: {issued} challenges issued, {refused} refused in {:?}",
        FLOOD_BUDGET.saturating_sub(deadline.saturating_duration_since(Instant::now()))
    );
    assert!(issued > 0, "the flood ran");
    assert_eq!(
        refused, 0,
        "every challenge of the flood was issued; last refusal: {last_error:?}"
    );

    // Another device, on its own connection, logs in right after the flood.
    let other = hub.channel().await;
    let token = login(other.clone(), &key(41)).await;
    let mut ledger =
        v1::ledger_client::LedgerClient::with_interceptor(other, Bearer(token.clone()));
    ledger.get_time(v1::GetTimeRequest {}).await.unwrap();

    // And the flooder itself is not locked out either.
    let login = try_login(flooder_channel, &key(40)).await;
    assert!(login.is_ok(), "{login:?}");
    hub.stop().await;
}

/// [`login`] that returns the status instead of panicking.
async fn try_login(
    channel: tonic::transport::Channel,
    who: &channel_core::crypto::LocalSigner,
) -> Result<String, tonic::Status> {
    let hub = hub_address(channel.clone()).await;
    let mut auth = v1::auth_client::AuthClient::new(channel);
    let challenge = auth
        .get_challenge(v1::ChallengeRequest {
            address: address_bytes(&who.address()),
        })
        .await?
        .into_inner();
    let c: [u8; 32] = challenge
        .challenge
        .as_slice()
        .try_into()
        .map_err(|_| tonic::Status::new(Code::Internal, "challenge is not 32 bytes"))?;
    let sig = who
        .sign_hash(&voltlane_proto::auth::auth_digest(&hub, &c))
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    Ok(auth
        .authenticate(v1::AuthenticateRequest {
            address: address_bytes(&who.address()),
            challenge: c.to_vec(),
            signature: sig.as_bytes().to_vec(),
        })
        .await?
        .into_inner()
        .token)
}
