//! Hostile requests over real gRPC: bodies that are not the protobuf message the method takes,
//! and dev-faucet mints the ledger must refuse. Each gets a precise status and changes nothing.

// Helpers outside `#[test]` functions are not covered by clippy's allow-unwrap-in-tests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use channel_core::crypto::Signer;
use channel_core::primitives::{Address, U256};
use common::*;
use prost::bytes::{Buf, BufMut};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::transport::Channel;
use tonic::{Code, Status};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

/// Sends its bytes verbatim as the message and hands back the raw bytes of each answer.
#[derive(Clone, Copy, Debug, Default)]
struct RawCodec;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;

    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }

    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining()).to_vec()))
    }
}

/// A varint that never ends: not a protobuf message of any type.
const GARBAGE: &[u8] = &[0xff; 12];
/// Field 1 (`address`, bytes) announcing 20 bytes and carrying 3: a truncated message.
const TRUNCATED: &[u8] = &[0x0a, 0x14, 1, 2, 3];

async fn raw_unary(channel: Channel, path: &'static str, body: &[u8]) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready()
        .await
        .map_err(|e| Status::unavailable(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(path);
    grpc.unary(tonic::Request::new(body.to_vec()), path, RawCodec)
        .await
        .map(tonic::Response::into_inner)
}

fn assert_invalid_argument(result: Result<Vec<u8>, Status>, what: &str) {
    let status = result.expect_err(what);
    assert_eq!(status.code(), Code::InvalidArgument, "{what}: {status:?}");
    assert!(
        status.message().starts_with("malformed "),
        "{what}: the reason says the message is malformed: {status:?}"
    );
}

#[tokio::test]
async fn undecodable_bodies_are_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let channel = hub.channel().await;

    // Unary, no token needed: the body itself is the problem.
    for (body, what) in [(GARBAGE, "garbage"), (TRUNCATED, "truncated")] {
        let result = raw_unary(channel.clone(), "/voltlane.v1.Auth/GetChallenge", body).await;
        let status = result.clone().unwrap_err();
        assert_invalid_argument(result, what);
        assert!(
            status.message().contains("ChallengeRequest"),
            "{what}: the reason names the message: {status:?}"
        );
    }
    // A well-formed body still works through the same raw path.
    let ok = raw_unary(
        channel.clone(),
        "/voltlane.v1.Auth/GetChallenge",
        &[&[0x0a, 20][..], &[7; 20]].concat(),
    )
    .await;
    assert!(ok.is_ok(), "{ok:?}");

    // Authenticated unary: the interceptor lets the call through, the body is refused.
    let dev = key(1);
    let token = login(channel.clone(), &dev).await;
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(GARBAGE.to_vec());
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    let result = grpc
        .unary(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static("/voltlane.v1.Ledger/Mint"),
            RawCodec,
        )
        .await
        .map(tonic::Response::into_inner);
    assert_invalid_argument(result, "garbage mint");

    // The `Payments.Pay` stream: the garbage message ends the stream with INVALID_ARGUMENT.
    let mut grpc = tonic::client::Grpc::new(channel.clone());
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(futures::stream::iter(vec![GARBAGE.to_vec()]));
    request.metadata_mut().insert(
        "authorization",
        MetadataValue::try_from(format!("Bearer {token}")).unwrap(),
    );
    let outcome = match grpc
        .streaming(
            request,
            tonic::codegen::http::uri::PathAndQuery::from_static("/voltlane.v1.Payments/Pay"),
            RawCodec,
        )
        .await
    {
        Ok(response) => {
            let mut acks = response.into_inner();
            let mut outcome = Ok(Vec::new());
            loop {
                match acks.message().await {
                    Ok(Some(ack)) => outcome = Ok(ack),
                    Ok(None) => break,
                    Err(status) => {
                        outcome = Err(status);
                        break;
                    }
                }
            }
            outcome
        }
        Err(status) => Err(status),
    };
    let status = outcome.clone().unwrap_err();
    assert_invalid_argument(outcome, "garbage payment");
    assert!(status.message().contains("PaymentMessage"), "{status:?}");

    // Nothing happened on the ledger.
    let mut ledger = ledger_as(channel, &dev).await;
    let time = ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(time.last_event_seq, 0);
    hub.stop().await;
}

async fn last_event_seq(ledger: &mut AuthedLedger) -> u64 {
    ledger
        .get_time(v1::GetTimeRequest {})
        .await
        .unwrap()
        .into_inner()
        .last_event_seq
}

async fn mint(ledger: &mut AuthedLedger, to: Address, amount: U256) -> Result<(), Status> {
    ledger
        .mint(v1::MintRequest {
            to: address_bytes(&to),
            amount: u256_bytes(&amount),
        })
        .await
        .map(|_| ())
}

#[tokio::test]
async fn the_faucet_refuses_zero_address_zero_amount_and_huge_mints() {
    let dir = tempfile::tempdir().unwrap();
    let hub = TestHub::start(dir.path()).await;
    let dev = key(1);
    let mut ledger = ledger_as(hub.channel().await, &dev).await;
    mint(&mut ledger, dev.address(), U256::from(1_000u32))
        .await
        .unwrap();
    let seq = last_event_seq(&mut ledger).await;

    let refusals = [
        (Address::ZERO, U256::from(5u8), "zero address"),
        (dev.address(), U256::ZERO, "zero"),
        (dev.address(), U256::from(1u8) << 255, "faucet cap"),
        (dev.address(), U256::MAX, "faucet cap"),
    ];
    for (to, amount, reason) in refusals {
        let status = mint(&mut ledger, to, amount).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(
            status.message().contains(reason),
            "mint of {amount} to {to}: {status:?}"
        );
    }
    assert_eq!(last_event_seq(&mut ledger).await, seq, "nothing minted");
    assert_eq!(
        token_balance(&mut ledger, dev.address()).await,
        U256::from(1_000u32)
    );
    assert_eq!(token_balance(&mut ledger, Address::ZERO).await, U256::ZERO);
    hub.stop().await;
}

#[tokio::test]
async fn the_faucet_cap_follows_the_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = voltlane_hub::HubConfig::new(dir.path());
    config.limits.faucet_max_mint = U256::from(1_000u32);
    let hub = TestHub::start_with(config).await;
    let dev = key(1);
    let mut ledger = ledger_as(hub.channel().await, &dev).await;
    mint(&mut ledger, dev.address(), U256::from(1_000u32))
        .await
        .unwrap();
    let seq = last_event_seq(&mut ledger).await;
    let status = mint(&mut ledger, dev.address(), U256::from(1_001u32))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        status.message(),
        "amount: one dev-faucet mint is at most 1000 tokens (the faucet cap), got 1001"
    );
    assert_eq!(last_event_seq(&mut ledger).await, seq, "nothing minted");
    assert_eq!(
        token_balance(&mut ledger, dev.address()).await,
        U256::from(1_000u32)
    );
    hub.stop().await;
}
