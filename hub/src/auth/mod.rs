//! Authentication: challenge/response proves key possession, a session token carries it.
//!
//! - [`challenges::ChallengeBook`]: random, single-use, short-lived challenges per address.
//! - [`sessions::SessionBook`]: bearer tokens → address, with expiry.
//! - [`Authenticator`]: both books behind locks, with the hub address and wall clock.
//! - [`interceptor::AuthInterceptor`]: the one tonic interceptor; puts [`AuthenticatedAddress`]
//!   into request extensions or answers UNAUTHENTICATED.
//! - [`service::AuthService`]: the `voltlane.v1.Auth` gRPC service.
//!
//! The books are pure (time and random bytes are arguments); the [`Authenticator`] supplies
//! the wall clock and OS randomness.

pub mod challenges;
pub mod interceptor;
pub mod service;
pub mod sessions;

use std::sync::{Mutex, MutexGuard};

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
    #[error("unknown, expired or already used challenge")]
    UnknownChallenge,
    #[error("challenge was issued to {issued_to}, not {claimed}")]
    ChallengeAddressMismatch {
        issued_to: Address,
        claimed: Address,
    },
    #[error("challenge signature is not by {expected}: {reason}")]
    BadSignature { expected: Address, reason: String },
    #[error("too many outstanding challenges; retry shortly")]
    TooManyChallenges,
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
    challenges: Mutex<ChallengeBook>,
    sessions: Mutex<SessionBook>,
}

impl Authenticator {
    pub fn new(hub: Address, limits: &Limits) -> Self {
        Self {
            hub,
            challenges: Mutex::new(ChallengeBook::new(hub, limits.challenge_ttl_secs)),
            sessions: Mutex::new(SessionBook::new(limits.session_ttl_secs)),
        }
    }

    pub fn hub_address(&self) -> Address {
        self.hub
    }

    fn challenges(&self) -> Result<MutexGuard<'_, ChallengeBook>, HubError> {
        self.challenges
            .lock()
            .map_err(|_| HubError::Internal("challenge book lock poisoned".into()))
    }

    fn sessions(&self) -> Result<MutexGuard<'_, SessionBook>, HubError> {
        self.sessions
            .lock()
            .map_err(|_| HubError::Internal("session book lock poisoned".into()))
    }

    /// A fresh challenge for `address`.
    pub fn challenge(&self, address: Address) -> Result<IssuedChallenge, HubError> {
        let bytes = random_bytes::<32>()?;
        Ok(self.challenges()?.issue(address, bytes, unix_now())?)
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
