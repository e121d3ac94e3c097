//! Broken gRPC message framing through the real hub process: raw HTTP/2 requests whose body
//! ends inside a message (in its 5-byte header or in its body), or whose message header has
//! a compression flag other than 0 and 1, are the caller's fault and get INVALID_ARGUMENT
//! naming the problem (tonic alone answers INTERNAL). A well-framed raw request still works,
//! and the hub serves on.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use integration_tests::{within, HubOptions, HubProcess};
use tonic::codegen::{http, Service};
use tonic::{Code, Status};
use voltlane_proto::v1;

/// POSTs `body` (raw gRPC framing) to `method` on `conn` and returns the status the hub
/// answered in its response headers (a trailers-only response), if any, and the HTTP status.
async fn raw_call(
    conn: &mut tonic::transport::Channel,
    method: &str,
    body: &[u8],
) -> (http::StatusCode, Option<Status>) {
    let body = String::from_utf8(body.to_vec()).expect("test frames are ASCII");
    let request = http::Request::builder()
        .method(http::Method::POST)
        .uri(method)
        .header(http::header::CONTENT_TYPE, "application/grpc")
        .header(http::header::TE, "trailers")
        .body(tonic::body::Body::new(body))
        .unwrap();
    futures::future::poll_fn(|cx| conn.poll_ready(cx))
        .await
        .unwrap();
    let response = conn.call(request).await.unwrap();
    (
        response.status(),
        Status::from_header_map(response.headers()),
    )
}

fn expect_invalid(answer: (http::StatusCode, Option<Status>), mentions: &str) {
    let (http_status, status) = answer;
    assert_eq!(http_status, http::StatusCode::OK);
    let status = status.expect("a trailers-only error answer");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(
        status.message().contains(mentions),
        "{:?} should mention {mentions:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_frames_and_bad_compression_flags_are_invalid_argument() {
    within(Duration::from_secs(30), "the framing test", run())
        .await
        .unwrap();
}

async fn run() {
    let hub = HubProcess::start(HubOptions::default()).await.unwrap();
    let mut conn = hub.connect().await.unwrap();
    const GET_INFO: &str = "/voltlane.v1.Hub/GetInfo";
    const GET_CHALLENGE: &str = "/voltlane.v1.Auth/GetChallenge";

    // A well-framed empty GetInfoRequest: no error in the headers (OK comes in trailers).
    let (http_status, status) = raw_call(&mut conn, GET_INFO, &[0, 0, 0, 0, 0]).await;
    assert_eq!(http_status, http::StatusCode::OK);
    assert!(status.is_none(), "{status:?}");

    // The body ends 3 bytes into a message whose header declares 10.
    expect_invalid(
        raw_call(&mut conn, GET_INFO, &[0, 0, 0, 0, 10, 1, 2, 3]).await,
        "truncated gRPC message frame: the request ended after 3 of the 10 bytes its header \
         declares",
    );
    // The body ends inside the 5-byte message header.
    expect_invalid(
        raw_call(&mut conn, GET_CHALLENGE, &[0, 0, 0]).await,
        "truncated gRPC message frame: the request ended after 3 of the 5 bytes of a message \
         header",
    );
    // A compression flag that does not exist.
    expect_invalid(
        raw_call(&mut conn, GET_INFO, &[7, 0, 0, 0, 0]).await,
        "invalid gRPC message frame: compression flag 7",
    );

    // The hub serves on, on the same connection.
    let info = v1::hub_client::HubClient::new(conn)
        .get_info(v1::GetInfoRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(!info.hub_address.is_empty());
}
