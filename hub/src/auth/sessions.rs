//! Session tokens: opaque random strings mapped to the address that authenticated.

use std::collections::HashMap;

use channel_core::primitives::Address;

use super::AuthError;

/// A session handed to a device.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedSession {
    pub token: String,
    pub expires_at: u64,
}

#[derive(Clone, Copy, Debug)]
struct Session {
    address: Address,
    expires_at: u64,
}

/// Live sessions. Pure: `now` and token bytes are arguments.
#[derive(Debug)]
pub struct SessionBook {
    ttl: u64,
    sessions: HashMap<String, Session>,
}

impl SessionBook {
    pub fn new(ttl_secs: u64) -> Self {
        Self {
            ttl: ttl_secs,
            sessions: HashMap::new(),
        }
    }

    /// Opens a session for `address` with a token made of `token_bytes` (fresh random bytes).
    /// Expired sessions are pruned on the way.
    pub fn open(&mut self, address: Address, token_bytes: [u8; 32], now: u64) -> IssuedSession {
        self.sessions.retain(|_, s| s.expires_at > now);
        let token = hex::encode(token_bytes);
        let expires_at = now.saturating_add(self.ttl);
        self.sessions.insert(
            token.clone(),
            Session {
                address,
                expires_at,
            },
        );
        IssuedSession { token, expires_at }
    }

    /// The address of a live session.
    pub fn validate(&self, token: &str, now: u64) -> Result<Address, AuthError> {
        match self.sessions.get(token) {
            Some(s) if now < s.expires_at => Ok(s.address),
            _ => Err(AuthError::UnknownSession),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire() {
        let mut book = SessionBook::new(10);
        let s = book.open(Address([1; 20]), [7; 32], 100);
        assert_eq!(book.validate(&s.token, 109), Ok(Address([1; 20])));
        assert_eq!(book.validate(&s.token, 110), Err(AuthError::UnknownSession));
        assert_eq!(book.validate("nope", 100), Err(AuthError::UnknownSession));
    }
}
