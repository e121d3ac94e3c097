//! `voltlane.v1.Auth`: challenge issuance and session login (no token needed).

use std::sync::Arc;

use tonic::{Request, Response, Status};
use voltlane_proto::convert::requests::{AccountAddress, Authenticate};
use voltlane_proto::v1;

use super::Authenticator;
use crate::error::HubError;

/// gRPC front of the [`Authenticator`].
#[derive(Clone, Debug)]
pub struct AuthService {
    auth: Arc<Authenticator>,
}

impl AuthService {
    pub fn new(auth: Arc<Authenticator>) -> Self {
        Self { auth }
    }
}

#[tonic::async_trait]
impl v1::auth_server::Auth for AuthService {
    async fn get_challenge(
        &self,
        request: Request<v1::ChallengeRequest>,
    ) -> Result<Response<v1::Challenge>, Status> {
        let AccountAddress(address) = request.into_inner().try_into().map_err(HubError::from)?;
        let issued = self.auth.challenge(address)?;
        Ok(Response::new(v1::Challenge {
            challenge: issued.challenge.to_vec(),
            expires_at_unix: issued.expires_at,
        }))
    }

    async fn authenticate(
        &self,
        request: Request<v1::AuthenticateRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let req = Authenticate::try_from(request.into_inner()).map_err(HubError::from)?;
        let session = self
            .auth
            .authenticate(req.address, &req.challenge, &req.signature)?;
        Ok(Response::new(v1::Session {
            token: session.token,
            expires_at_unix: session.expires_at,
        }))
    }
}
