//! The reason of a refusal on the wire: [`v1::ErrorReason`] (errors.proto) carried on a gRPC
//! status as a `google.rpc.ErrorInfo` in the status details (domain [`ERROR_DOMAIN`], reason
//! the value's name without its `ERROR_REASON_` prefix), the gRPC richer error model that any
//! gRPC client can read.
//!
//! The hub builds its statuses with [`status`]; a client reads the reason with
//! [`status_reason`] (any string, so a reason newer than the client is kept as it is) and
//! turns a known one back into the enum with [`parse_reason`].

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::v1;

/// The `ErrorInfo.domain` of every reason the hub sends.
pub const ERROR_DOMAIN: &str = "voltlane.hub";

const PREFIX: &str = "ERROR_REASON_";

/// The wire name of `reason`: its proto name without the `ERROR_REASON_` prefix, e.g.
/// `"PAYEE_OFFLINE"`.
pub fn reason_name(reason: v1::ErrorReason) -> &'static str {
    let full = reason.as_str_name();
    full.strip_prefix(PREFIX).unwrap_or(full)
}

/// The reason named `name` (a wire name as [`reason_name`] gives it); `None` for a name this
/// build does not know, and for `UNSPECIFIED`.
pub fn parse_reason(name: &str) -> Option<v1::ErrorReason> {
    let reason = v1::ErrorReason::from_str_name(&format!("{PREFIX}{name}"))?;
    (reason != v1::ErrorReason::Unspecified).then_some(reason)
}

/// A status with `code`, `message` and `reason` as its `ErrorInfo`.
pub fn status(code: Code, reason: v1::ErrorReason, message: impl Into<String>) -> Status {
    Status::with_error_details(
        code,
        message,
        ErrorDetails::with_error_info(
            reason_name(reason),
            ERROR_DOMAIN,
            std::collections::HashMap::new(),
        ),
    )
}

/// The `ErrorInfo.reason` of `status` when its domain is [`ERROR_DOMAIN`]; `None` for a
/// status without one (a hub before reasons, or a status made by the transport).
pub fn status_reason(status: &Status) -> Option<String> {
    status
        .get_details_error_info()
        .filter(|info| info.domain == ERROR_DOMAIN && !info.reason.is_empty())
        .map(|info| info.reason)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reason_travels_in_the_status_details() {
        let s = status(
            Code::FailedPrecondition,
            v1::ErrorReason::SettleWindowOpen,
            "settlement window still open",
        );
        assert_eq!(s.code(), Code::FailedPrecondition);
        assert_eq!(s.message(), "settlement window still open");
        assert_eq!(status_reason(&s).as_deref(), Some("SETTLE_WINDOW_OPEN"));
        // Through the HTTP/2 trailers, as a client sees it.
        let response = s.into_http::<()>();
        let back = Status::from_header_map(response.headers()).unwrap();
        assert_eq!(status_reason(&back).as_deref(), Some("SETTLE_WINDOW_OPEN"));
    }

    #[test]
    fn names_round_trip_and_unknown_names_are_none() {
        for r in [
            v1::ErrorReason::PayeeOffline,
            v1::ErrorReason::NoCapacity,
            v1::ErrorReason::Internal,
        ] {
            assert_eq!(parse_reason(reason_name(r)), Some(r));
        }
        assert_eq!(reason_name(v1::ErrorReason::PayeeOffline), "PAYEE_OFFLINE");
        assert_eq!(parse_reason("UNSPECIFIED"), None);
        assert_eq!(parse_reason("SOMETHING_NEWER"), None);
        assert_eq!(status_reason(&Status::internal("no details")), None);
    }
}
