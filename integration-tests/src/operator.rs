//! [`Operator`]: the hub's operator as a gRPC client, logged in with the operator key the hub
//! created in its data directory ([`crate::HubProcess::operator_key`]).
//!
//! Call order: [`Operator::login`], then [`Operator::pay`] (`Payments.OperatorPay`, the hub
//! pays a device) or [`Operator::ledger`] for ledger queries; after a hub restart
//! [`Operator::relogin`] (sessions do not survive restarts).

use channel_core::crypto::{LocalSigner, Signer};
use channel_core::primitives::{Address, U256};
use channel_core::SignedBalanceProof;
use tonic::transport::Channel;
use voltlane_proto::convert::u256_bytes;
use voltlane_proto::v1;

use crate::device::{login, Authed, Bearer};
use crate::error::HarnessError;

/// A logged-in operator session.
#[derive(Debug)]
pub struct Operator {
    key: LocalSigner,
    conn: Channel,
    bearer: Bearer,
}

impl Operator {
    /// Logs the operator key in at the hub it belongs to.
    pub async fn login(conn: Channel, key: LocalSigner) -> Result<Self, HarnessError> {
        let token = login(conn.clone(), &key, &key.address()).await?;
        Ok(Self {
            key,
            conn,
            bearer: Bearer::new(&token)?,
        })
    }

    /// Logs in again on `conn` (a restarted hub forgot the session).
    pub async fn relogin(&mut self, conn: Channel) -> Result<(), HarnessError> {
        let token = login(conn.clone(), &self.key, &self.key.address()).await?;
        self.bearer = Bearer::new(&token)?;
        self.conn = conn;
        Ok(())
    }

    /// The hub's (= the operator's) address.
    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn ledger(&self) -> v1::ledger_client::LedgerClient<Authed> {
        v1::ledger_client::LedgerClient::with_interceptor(self.conn.clone(), self.bearer.clone())
    }

    pub fn payments(&self) -> v1::payments_client::PaymentsClient<Authed> {
        v1::payments_client::PaymentsClient::with_interceptor(
            self.conn.clone(),
            self.bearer.clone(),
        )
    }

    /// `Payments.OperatorPay`: the hub pays `amount` to the device of channel `id`; returns
    /// the proof the hub signed (nonce and transferred amount of the hub's side).
    pub async fn pay(&self, id: U256, amount: U256) -> Result<SignedBalanceProof, HarnessError> {
        let paid = self
            .payments()
            .operator_pay(v1::OperatorPayRequest {
                channel_id: u256_bytes(&id),
                amount: u256_bytes(&amount),
            })
            .await?
            .into_inner();
        let proof = paid
            .balance_proof
            .ok_or_else(|| HarnessError::protocol("HubPayment.balance_proof missing"))?;
        SignedBalanceProof::try_from(proof).map_err(|e| HarnessError::protocol(e.to_string()))
    }
}
