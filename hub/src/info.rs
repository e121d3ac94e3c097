//! `voltlane.v1.Hub`: public facts a device needs before authenticating (no token needed).

use channel_core::liquidity::default_reveal_timeout;
use channel_core::mediation::FeePolicy;
use channel_core::primitives::{Address, U256};
use tonic::{Request, Response, Status};
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use crate::config::HubConfig;
use crate::ledger::{HubLedger, LedgerKind};

/// Serves [`v1::HubInfo`].
#[derive(Clone, Debug)]
pub struct InfoService {
    hub: Address,
    ledger: HubLedger,
    dev_faucet: bool,
    fee: FeePolicy,
    /// `None`: the default for the ledger's settlement window.
    reveal_timeout: Option<u64>,
    auto_deposit: Option<U256>,
}

impl InfoService {
    /// Default mediation settings (no fee, no auto-deposit, the default reveal timeout).
    pub fn new(hub: Address, ledger: HubLedger, dev_faucet: bool) -> Self {
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
        let facts = self.ledger.facts()?;
        let chain = facts.chain.as_ref();
        Ok(Response::new(v1::HubInfo {
            hub_address: address_bytes(&self.hub),
            chain_id: u256_bytes(&facts.domain.chain_id),
            token_network_address: address_bytes(&facts.domain.token_network_address),
            settlement_timeout: facts.settlement_timeout,
            ledger_time: self.ledger.now()?,
            // The faucet is the embedded ledger's `Ledger.Mint`; a chain has none.
            dev_faucet: self.dev_faucet && facts.kind == LedgerKind::Embedded,
            mediation_fee_flat: u256_bytes(&self.fee.flat),
            mediation_fee_ppm: self.fee.proportional_ppm,
            reveal_timeout: self
                .reveal_timeout
                .unwrap_or_else(|| default_reveal_timeout(facts.settlement_timeout)),
            auto_deposit: self.auto_deposit.as_ref().map_or_else(Vec::new, u256_bytes),
            ledger_kind: match facts.kind {
                LedgerKind::Embedded => v1::LedgerKind::Embedded,
                LedgerKind::Ethereum => v1::LedgerKind::Ethereum,
            }
            .into(),
            token_address: chain.map_or_else(Vec::new, |c| address_bytes(&c.token)),
            secret_registry_address: chain
                .map_or_else(Vec::new, |c| address_bytes(&c.secret_registry)),
            start_block: chain.map_or(0, |c| c.start_block),
            confirmations: chain.map_or(0, |c| c.confirmations),
        }))
    }
}
