//! The one auth interceptor: `authorization: Bearer <token>` → [`AuthenticatedAddress`] in the
//! request extensions, UNAUTHENTICATED otherwise.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};
use voltlane_proto::auth::{AUTHORIZATION_HEADER, BEARER_PREFIX};

use super::{AuthError, AuthenticatedAddress, Authenticator};
use crate::error::HubError;

/// Validates session tokens; clone it onto every authenticated service.
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    auth: Arc<Authenticator>,
}

impl AuthInterceptor {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }

    fn authenticate(&self, req: &Request<()>) -> Result<AuthenticatedAddress, HubError> {
        let value = req
            .metadata()
            .get(AUTHORIZATION_HEADER)
            .ok_or(AuthError::MissingToken)?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix(BEARER_PREFIX))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(AuthError::MalformedToken)?;
        self.auth.validate(token).map(AuthenticatedAddress)
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        let address = self.authenticate(&req)?;
        req.extensions_mut().insert(address);
        Ok(req)
    }
}
