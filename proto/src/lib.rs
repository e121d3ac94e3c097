//! # voltlane-proto
//!
//! The `voltlane.v1` gRPC API of Voltlane: prost messages and tonic clients/servers generated
//! from `proto/voltlane/v1/*.proto` (compiled with protox, no `protoc` needed), the encoded
//! file descriptor set for tonic-reflection, and [`convert`]: checked conversions between wire
//! messages and `channel-core` types whose errors name the offending field and the rule.
//! Every generated server and client uses [`codec::VoltlaneCodec`], so an undecodable request
//! is answered with INVALID_ARGUMENT naming the message. [`errors`] carries the machine-readable
//! reason of a refusal (errors.proto) on a status.
//!
//! What this crate does not do: no validation beyond the encoding rules (lengths, presence,
//! signature form); protocol rules (nonces, balances, phases) belong to `channel-core`.

pub mod auth;
pub mod codec;
pub mod convert;
pub mod errors;

pub use convert::{FieldError, Rule};

/// The canonical name of a gRPC status code, as the gRPC specification spells it (what
/// operators grep for in logs, metrics labels and CLI errors).
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// Generated code of package `voltlane.v1`.
#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod v1 {
    tonic::include_proto!("voltlane.v1");
}

/// Encoded `FileDescriptorSet` of every voltlane.v1 file, for tonic-reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/voltlane_descriptor.bin"));
