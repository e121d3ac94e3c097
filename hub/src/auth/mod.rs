//! Authentication: challenge/response proves key possession, a session token carries it.
//!
//! - [`challenges::ChallengeBook`]: self-authenticating (MAC'd), short-lived challenges bound
//!   to an address; issuing stores nothing, redeeming makes them single use.
//! - [`sessions::SessionBook`]: bearer tokens → address, with expiry and a per-address cap.
//! - [`Authenticator`]: both books behind locks, with the hub address and wall clock.
//! - [`interceptor::AuthInterceptor`]: the one tonic interceptor; puts [`AuthenticatedAddress`]
//!   into request extensions or answers UNAUTHENTICATED.
//! - [`service::AuthService`]: the `voltlane.v1.Auth` gRPC service.
//!
//! The books are pure (time, random bytes and the challenge secret are arguments); the
//! [`Authenticator`] supplies the wall clock, OS randomness and the per-process secret.

pub mod challenges;
pub mod interceptor;
pub mod service;
pub mod sessions;

use std::sync::{Mutex, MutexGuard, OnceLock};

use channel_core::primitives::Address;
use channel_core::Signature;

use crate::clock::{random_bytes, unix_now};
use crate::config::Limits;
use crate::error::HubError;
use challenges::{ChallengeBook, IssuedChallenge};
use sessions::{IssuedSession, SessionBook};

pub use interceptor::AuthInterceptor;

/// Why authentication failed (all map to UNAUTHENTICATED).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("missing `authorization: Bearer <token>` metadata")]
    MissingToken,
    #[error("authorization metadata must be `Bearer <token>`")]
    MalformedToken,
    #[error("unknown or expired session token")]
    UnknownSession,
    #[error("challenge was not issued by this hub to {claimed}: ask for a new one")]
    ForeignChallenge { claimed: Address },
    #[error("challenge expired at {expires_at} (now {now}): ask for a new one")]
    ChallengeExpired { expires_at: u64, now: u64 },
    #[error("challenge was already used: ask for a new one")]
    ChallengeUsed,
    #[error("challenge signature is not by {expected}: {reason}")]
    BadSignature { expected: Address, reason: String },
}

/// The caller's address, inserted into request extensions by the interceptor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthenticatedAddress(pub Address);

/// The authenticated caller of `req`; UNAUTHENTICATED when the interceptor did not run.
pub fn caller<T>(req: &tonic::Request<T>) -> Result<Address, HubError> {
    req.extensions()
        .get::<AuthenticatedAddress>()
        .map(|a| a.0)
        .ok_or(HubError::Auth(AuthError::MissingToken))
}

/// Shared authentication state of the hub.
#[derive(Debug)]
pub struct Authenticator {
    hub: Address,
    challenge_ttl_secs: u64,
    /// Created on first use with the per-process challenge secret from OS randomness.
    challenges: OnceLock<Mutex<ChallengeBook>>,
    sessions: Mutex<SessionBook>,
}

impl Authenticator {
    pub fn new(hub: Address, limits: &Limits) -> Self {
        Self {
            hub,
            challenge_ttl_secs: limits.challenge_ttl_secs,
            challenges: OnceLock::new(),
            sessions: Mutex::new(SessionBook::new(limits.session_ttl_secs)),
        }
    }

    pub fn hub_address(&self) -> Address {
        self.hub
    }

    fn challenges(&self) -> Result<MutexGuard<'_, ChallengeBook>, HubError> {
        let book = match self.challenges.get() {
            Some(book) => book,
            None => {
                let secret = random_bytes::<32>()?;
                let fresh = ChallengeBook::new(self.hub, self.challenge_ttl_secs, secret);
                // A concurrent first caller may have won; its book (and secret) is kept.
                self.challenges.get_or_init(|| Mutex::new(fresh))
            }
        };
        book.lock()
            .map_err(|_| HubError::Internal("challenge book lock poisoned".into()))
    }

    fn sessions(&self) -> Result<MutexGuard<'_, SessionBook>, HubError> {
        self.sessions
            .lock()
            .map_err(|_| HubError::Internal("session book lock poisoned".into()))
    }

    /// A fresh challenge for `address`. Stores nothing.
    pub fn challenge(&self, address: Address) -> Result<IssuedChallenge, HubError> {
        let nonce = random_bytes::<8>()?;
        Ok(self.challenges()?.issue(address, nonce, unix_now()))
    }

    /// Redeems a signed challenge for a session.
    pub fn authenticate(
        &self,
        address: Address,
        challenge: &[u8; 32],
        signature: &Signature,
    ) -> Result<IssuedSession, HubError> {
        let now = unix_now();
        self.challenges()?
            .redeem(address, challenge, signature, now)?;
        let token = random_bytes::<32>()?;
        let session = self.sessions()?.open(address, token, now);
        tracing::info!(%address, "device authenticated");
        Ok(session)
    }

    /// The address of a valid session token.
    pub fn validate(&self, token: &str) -> Result<Address, HubError> {
        Ok(self.sessions()?.validate(token, unix_now())?)
    }
}
