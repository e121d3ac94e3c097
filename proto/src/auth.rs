//! What a device signs to authenticate: EIP-191 personal-sign over
//! `"voltlane-auth:" || hub_address (20) || challenge (32)`. Shared by hub and SDK.

use channel_core::crypto::eip191_hash;
use channel_core::primitives::{Address, H256};

/// Domain-separation prefix of auth messages.
pub const AUTH_PREFIX: &[u8] = b"voltlane-auth:";

/// The bytes signed (before EIP-191 hashing).
pub fn auth_message(hub: &Address, challenge: &[u8; 32]) -> Vec<u8> {
    let mut m = Vec::with_capacity(AUTH_PREFIX.len() + 52);
    m.extend_from_slice(AUTH_PREFIX);
    m.extend_from_slice(hub.as_bytes());
    m.extend_from_slice(challenge);
    m
}

/// The digest whose signature proves key possession to `hub`.
pub fn auth_digest(hub: &Address, challenge: &[u8; 32]) -> H256 {
    eip191_hash(&auth_message(hub, challenge))
}

/// Metadata key of the session token.
pub const AUTHORIZATION_HEADER: &str = "authorization";
/// Scheme prefix of the token value: `authorization: Bearer <token>`.
pub const BEARER_PREFIX: &str = "Bearer ";
