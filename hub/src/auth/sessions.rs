//! Session tokens: opaque random strings mapped to the address that authenticated.
//!
//! Bounds: an address holds at most [`MAX_SESSIONS_PER_ADDRESS`] live sessions (a new login
//! beyond that replaces the address's oldest session), and expired sessions are pruned in
//! expiry order on every login, so a device logging in in a loop cannot grow the book and the
//! pruning costs only what it removes. There is no global cap, so no caller can fill the book
//! and lock other addresses out: every session needs a signed challenge of its own key.

use std::collections::{BTreeSet, HashMap, VecDeque};

use channel_core::primitives::Address;

use super::AuthError;

/// Live sessions one address may hold; its oldest is replaced beyond this.
pub const MAX_SESSIONS_PER_ADDRESS: usize = 16;

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
    /// Tokens of each address, oldest first.
    by_address: HashMap<Address, VecDeque<String>>,
    /// Every token by `(expires_at, token)`, for pruning in expiry order.
    by_expiry: BTreeSet<(u64, String)>,
}

impl SessionBook {
    pub fn new(ttl_secs: u64) -> Self {
        Self {
            ttl: ttl_secs,
            sessions: HashMap::new(),
            by_address: HashMap::new(),
            by_expiry: BTreeSet::new(),
        }
    }

    /// Opens a session for `address` with a token made of `token_bytes` (fresh random bytes).
    /// Expired sessions are pruned first; if `address` then holds
    /// [`MAX_SESSIONS_PER_ADDRESS`] sessions, its oldest one ends.
    pub fn open(&mut self, address: Address, token_bytes: [u8; 32], now: u64) -> IssuedSession {
        self.prune(now);
        let token = hex::encode(token_bytes);
        let expires_at = now.saturating_add(self.ttl);
        let oldest = {
            let tokens = self.by_address.entry(address).or_default();
            tokens.push_back(token.clone());
            if tokens.len() > MAX_SESSIONS_PER_ADDRESS {
                tokens.pop_front()
            } else {
                None
            }
        };
        if let Some(oldest) = oldest {
            if let Some(s) = self.sessions.remove(&oldest) {
                self.by_expiry.remove(&(s.expires_at, oldest));
            }
        }
        self.sessions.insert(
            token.clone(),
            Session {
                address,
                expires_at,
            },
        );
        self.by_expiry.insert((expires_at, token.clone()));
        IssuedSession { token, expires_at }
    }

    /// The address of a live session.
    pub fn validate(&self, token: &str, now: u64) -> Result<Address, AuthError> {
        match self.sessions.get(token) {
            Some(s) if now < s.expires_at => Ok(s.address),
            _ => Err(AuthError::UnknownSession),
        }
    }

    /// Sessions held (live, or expired and not yet pruned).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Removes the sessions that expired at or before `now`.
    fn prune(&mut self, now: u64) {
        while let Some((expires_at, _)) = self.by_expiry.first() {
            if *expires_at > now {
                break;
            }
            let Some((_, token)) = self.by_expiry.pop_first() else {
                break;
            };
            let Some(session) = self.sessions.remove(&token) else {
                continue;
            };
            if let Some(tokens) = self.by_address.get_mut(&session.address) {
                tokens.retain(|t| *t != token);
                if tokens.is_empty() {
                    self.by_address.remove(&session.address);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token(n: u8) -> [u8; 32] {
        [n; 32]
    }

    #[test]
    fn tokens_expire() {
        let mut book = SessionBook::new(10);
        let s = book.open(Address([1; 20]), token(7), 100);
        assert_eq!(book.validate(&s.token, 109), Ok(Address([1; 20])));
        assert_eq!(book.validate(&s.token, 110), Err(AuthError::UnknownSession));
        assert_eq!(book.validate("nope", 100), Err(AuthError::UnknownSession));
    }

    #[test]
    fn expired_sessions_are_pruned_on_login() {
        let mut book = SessionBook::new(10);
        let a = Address([1; 20]);
        book.open(a, token(1), 100);
        book.open(Address([2; 20]), token(2), 105);
        assert_eq!(book.len(), 2);
        let s = book.open(a, token(3), 110);
        assert_eq!(book.len(), 2, "the session that expired at 110 is gone");
        assert_eq!(book.validate(&s.token, 110), Ok(a));
        book.open(a, token(4), 200);
        assert_eq!(book.len(), 1);
        assert!(!book.by_address.contains_key(&Address([2; 20])));
    }

    #[test]
    fn one_address_cannot_hold_more_than_its_cap_and_others_are_unaffected() {
        let mut book = SessionBook::new(1000);
        let (flooder, other) = (Address([1; 20]), Address([2; 20]));
        let theirs = book.open(other, token(0), 100);
        let first = book.open(flooder, token(1), 100);
        let mut last = first.clone();
        for n in 0..(3 * MAX_SESSIONS_PER_ADDRESS as u32) {
            let mut bytes = [0xaa; 32];
            bytes[..4].copy_from_slice(&n.to_be_bytes());
            last = book.open(flooder, bytes, 101);
        }
        assert_eq!(book.len(), MAX_SESSIONS_PER_ADDRESS + 1);
        assert_eq!(
            book.validate(&first.token, 102),
            Err(AuthError::UnknownSession),
            "the oldest session was replaced"
        );
        assert_eq!(book.validate(&last.token, 102), Ok(flooder));
        assert_eq!(book.validate(&theirs.token, 102), Ok(other));
    }
}
