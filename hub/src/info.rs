//! `voltlane.v1.Hub`: public facts a device needs before authenticating (no token needed).

use std::sync::Arc;

use channel_core::liquidity::default_reveal_timeout;
use channel_core::mediation::FeePolicy;
use channel_core::primitives::{Address, U256};
use tonic::{Request, Response, Status};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use crate::config::HubConfig;
use crate::ledger::LedgerHandle;

/// Serves [`v1::HubInfo`].
#[derive(Clone, Debug)]
pub struct InfoService {
    hub: Address,
    ledger: Arc<LedgerHandle>,
    dev_faucet: bool,
    fee: FeePolicy,
    /// `None`: the default for the ledger's settlement window.
    reveal_timeout: Option<u64>,
    auto_deposit: Option<U256>,
}

impl InfoService {
    /// Default mediation settings (no fee, no auto-deposit, the default reveal timeout).
    pub fn new(hub: Address, ledger: Arc<LedgerHandle>, dev_faucet: bool) -> Self {
        Self {
            hub,
            ledger,
            dev_faucet,
            fee: FeePolicy::default(),
            reveal_timeout: None,
            auto_deposit: None,
        }
    }

    /// The fee, reveal timeout and auto-deposit policy as configured.
    pub fn with_mediation(mut self, config: &HubConfig) -> Self {
        self.fee = config.mediation_fee();
        self.reveal_timeout = Some(config.reveal_timeout());
        self.auto_deposit = config.mediation.auto_deposit;
        self
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
            mediation_fee_flat: u256_bytes(&self.fee.flat),
            mediation_fee_ppm: self.fee.proportional_ppm,
            reveal_timeout: self
                .reveal_timeout
                .unwrap_or_else(|| default_reveal_timeout(config.settlement_timeout)),
            auto_deposit: self.auto_deposit.as_ref().map_or_else(Vec::new, u256_bytes),
            ledger_kind: v1::LedgerKind::Embedded.into(),
            token_address: Vec::new(),
            secret_registry_address: Vec::new(),
            start_block: 0,
            confirmations: 0,
        }))
    }
}
