//! Refusals of the real hub process carry their gRPC code by meaning and their
//! machine-readable reason (a `google.rpc.ErrorInfo` in the status details, domain
//! `voltlane.hub`), as docs/errors.md lists them: a request refused for the channel's state is
//! FAILED_PRECONDITION, a malformed argument INVALID_ARGUMENT.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use channel_core::primitives::U256;
use channel_core::BalanceData;
use integration_tests::device::device_key;
use integration_tests::{within, HubOptions, HubProcess, TestDevice};
use tonic::Code;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::errors::status_reason;
use voltlane_proto::v1;

/// Long enough that the test always runs inside the window.
const WINDOW_SECS: u64 = 600;

fn refused<T: std::fmt::Debug>(
    answer: Result<T, tonic::Status>,
    code: Code,
    reason: &str,
) -> tonic::Status {
    let status = answer.expect_err("the hub should refuse");
    assert_eq!(status.code(), code, "{status:?}");
    assert_eq!(
        status_reason(&status).as_deref(),
        Some(reason),
        "{status:?}"
    );
    status
}

fn settle_request(device: &TestDevice, id: U256) -> v1::SettleChannelRequest {
    v1::SettleChannelRequest {
        channel_id: u256_bytes(&id),
        participant1: address_bytes(&device.address()),
        participant1_balance: Some((&BalanceData::EMPTY).into()),
        participant2: address_bytes(&device.hub_address()),
        participant2_balance: Some((&BalanceData::EMPTY).into()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn settle_inside_the_window_is_failed_precondition_settle_window_open() {
    within(
        Duration::from_secs(30),
        "settle_inside_the_window_is_failed_precondition_settle_window_open",
        settle_inside_the_window(),
    )
    .await
    .unwrap();
}

async fn settle_inside_the_window() {
    let hub = HubProcess::start(HubOptions {
        settlement_window_secs: WINDOW_SECS,
        ..HubOptions::default()
    })
    .await
    .unwrap();
    let mut device = TestDevice::login(hub.connect().await.unwrap(), device_key(41, 0).unwrap())
        .await
        .unwrap();
    let id = device.open_channel(U256::from(100u64)).await.unwrap();

    // Open: settling needs a closed channel first (the channel's state, not the request).
    refused(
        device
            .ledger()
            .settle_channel(settle_request(&device, id))
            .await,
        Code::FailedPrecondition,
        "CHANNEL_NOT_CLOSED",
    );

    device.close_on_ledger(None).await.unwrap();
    let status = refused(
        device
            .ledger()
            .settle_channel(settle_request(&device, id))
            .await,
        Code::FailedPrecondition,
        "SETTLE_WINDOW_OPEN",
    );
    assert!(
        status.message().contains("settlement window still open"),
        "{status:?}"
    );

    // An argument that can never be valid: INVALID_ARGUMENT, whatever the state.
    let mut short = settle_request(&device, id);
    short.participant2.pop();
    refused(
        device.ledger().settle_channel(short).await,
        Code::InvalidArgument,
        "MALFORMED_FIELD",
    );
    // A channel that does not exist.
    refused(
        device
            .ledger()
            .settle_channel(settle_request(&device, id + U256::from(1000u64)))
            .await,
        Code::NotFound,
        "UNKNOWN_CHANNEL",
    );
}
