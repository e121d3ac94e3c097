//! The codec every generated `voltlane.v1` server and client uses: prost encoding, with decode
//! failures answered as `types.proto` promises.
//!
//! tonic's stock prost codec answers an undecodable message with INTERNAL. Here a request that
//! is not a valid encoding of its message (garbage, a truncated field, a wrong wire type) is
//! the caller's fault and gets INVALID_ARGUMENT `malformed voltlane.v1.<Message>: <reason>`,
//! on unary calls and on each message of a client stream alike. A response the client cannot
//! decode is the server's fault and stays INTERNAL, naming the message too.
//!
//! Which messages are requests and which are responses is read from the service definitions
//! by `build.rs` ([`WireMessage`] impls); a message used both ways fails the build.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, Codec, DecodeBuf, Decoder};
use tonic::Status;
use tonic_prost::ProstEncoder;

/// Which side of a call a message travels on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// Client to server: a decode failure is the caller's fault (INVALID_ARGUMENT).
    Request,
    /// Server to client: a decode failure is the server's fault (INTERNAL).
    Response,
}

/// A message of a `voltlane.v1` method, with its full protobuf name and direction.
pub trait WireMessage {
    /// Full protobuf name, e.g. `voltlane.v1.MintRequest`.
    const NAME: &'static str;
    const DIRECTION: Direction;
}

/// The status for a message of type `U` that failed to decode.
pub fn malformed<U: WireMessage>(error: &prost::DecodeError) -> Status {
    match U::DIRECTION {
        Direction::Request => crate::errors::status(
            tonic::Code::InvalidArgument,
            crate::v1::ErrorReason::MalformedMessage,
            format!("malformed {}: {error}", U::NAME),
        ),
        Direction::Response => {
            Status::internal(format!("malformed {} from the server: {error}", U::NAME))
        }
    }
}

/// Encodes `T` and decodes `U` with prost; see the module doc for the decode errors.
#[derive(Debug, Clone)]
pub struct VoltlaneCodec<T, U> {
    _types: PhantomData<fn(T) -> U>,
}

impl<T, U> Default for VoltlaneCodec<T, U> {
    fn default() -> Self {
        Self {
            _types: PhantomData,
        }
    }
}

impl<T, U> Codec for VoltlaneCodec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + WireMessage + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = VoltlaneDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::default())
    }

    fn decoder(&mut self) -> Self::Decoder {
        VoltlaneDecoder { _type: PhantomData }
    }
}

/// Decodes one `U` per gRPC message frame.
#[derive(Debug, Clone)]
pub struct VoltlaneDecoder<U> {
    _type: PhantomData<fn() -> U>,
}

impl<U: Message + Default + WireMessage> Decoder for VoltlaneDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| malformed::<U>(&e))
    }
}

// `impl WireMessage for crate::v1::…` for every request and response message, from build.rs.
include!(concat!(env!("OUT_DIR"), "/voltlane_wire_messages.rs"));

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;
    use crate::v1;

    #[test]
    fn requests_are_invalid_argument_and_responses_internal() {
        let garbage = [0xffu8; 12];
        let err = v1::MintRequest::decode(&garbage[..]).unwrap_err();
        let status = malformed::<v1::MintRequest>(&err);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status
            .message()
            .starts_with("malformed voltlane.v1.MintRequest: "));
        let status = malformed::<v1::Session>(&err);
        assert_eq!(status.code(), Code::Internal);
        assert!(status
            .message()
            .starts_with("malformed voltlane.v1.Session "));
    }

    #[test]
    fn every_method_message_has_a_direction() {
        assert_eq!(v1::PaymentMessage::DIRECTION, Direction::Request);
        assert_eq!(v1::PaymentAck::DIRECTION, Direction::Response);
        assert_eq!(v1::ChallengeRequest::NAME, "voltlane.v1.ChallengeRequest");
    }
}
