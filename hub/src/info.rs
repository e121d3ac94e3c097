//! `voltlane.v1.Hub`: public facts a device needs before authenticating (no token needed).

use std::sync::Arc;

use channel_core::primitives::Address;
use tonic::{Request, Response, Status};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use crate::ledger::LedgerHandle;

/// Serves [`v1::HubInfo`].
#[derive(Clone, Debug)]
pub struct InfoService {
    hub: Address,
    ledger: Arc<LedgerHandle>,
    dev_faucet: bool,
}

impl InfoService {
    pub fn new(hub: Address, ledger: Arc<LedgerHandle>, dev_faucet: bool) -> Self {
        Self {
            hub,
            ledger,
            dev_faucet,
        }
    }
}

#[tonic::async_trait]
impl v1::hub_server::Hub for InfoService {
    async fn get_info(
        &self,
        _request: Request<v1::GetInfoRequest>,
    ) -> Result<Response<v1::HubInfo>, Status> {
        let config = self.ledger.read(|l| l.config().clone())?;
        Ok(Response::new(v1::HubInfo {
            hub_address: address_bytes(&self.hub),
            chain_id: u256_bytes(&config.domain.chain_id),
            token_network_address: address_bytes(&config.domain.token_network_address),
            settlement_timeout: config.settlement_timeout,
            ledger_time: self.ledger.now()?,
            dev_faucet: self.dev_faucet,
        }))
    }
}
