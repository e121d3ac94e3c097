//! The hub's side of device channels: off-chain state, payments, withdraws, cooperative close,
//! and the watcher that follows the ledger.
//!
//! - [`book`]: every channel's `channel_core::channel::Channel`, persisted before answering.
//! - `ledger_sync`: applies ledger events to the book (idempotently; it decides nothing).
//! - [`watcher`]: follows the ledger and runs the level-triggered channel monitor: contests
//!   stale closes and settles, from the ledger's state rather than from seen events.
//! - [`view`]: the wire view of a channel.
//! - [`liquidity`]: the auto-deposit task (the hub's deposit policy, level-triggered).
//! - [`service`]: the thin gRPC handlers.
//!
//! [`ChannelEngine`] is what the handlers call: one method per request, each decoding nothing
//! (the handlers did) and answering only once the change it made is durable.

pub mod book;
#[cfg(test)]
mod book_tests;
pub mod fanout;
mod ledger_sync;
pub mod liquidity;
pub mod presence;
pub mod push;
pub mod service;
pub mod view;
pub mod watcher;
#[cfg(test)]
mod watcher_tests;

use std::future::Future;
use std::sync::Arc;

use channel_core::channel::{ChannelError, CooperativeCloseProposal};
use channel_core::crypto::{LocalSigner, Signer};
use channel_core::ledger::{CoSignedWithdraw, LedgerOp};
use channel_core::primitives::{Address, U256};
use channel_core::proofs::Domain;
use voltlane_proto::convert::liquidity::OperatorDeposit;
use voltlane_proto::convert::requests::{
    ChannelId, CooperativeClose, ListChannels, OperatorPay, Payment, ReceivePayments,
    RequestWithdraw,
};
use voltlane_proto::v1;

use crate::error::HubError;
use crate::ledger::HubLedger;
use crate::shutdown::Shutdown;
use crate::store::KvStore;

pub use book::{ChannelBook, HubPayment, SentKind};
pub use presence::Presence;

/// The hub's channel engine (one per hub).
#[derive(Clone, Debug)]
pub struct ChannelEngine {
    pub book: Arc<ChannelBook>,
    pub ledger: HubLedger,
    pub operator: Arc<LocalSigner>,
    pub shutdown: Shutdown,
    /// Devices with a receive stream open (online payees).
    pub presence: Arc<Presence>,
}

impl ChannelEngine {
    pub fn new(
        store: Arc<dyn KvStore>,
        ledger: HubLedger,
        operator: Arc<LocalSigner>,
        domain: Domain,
        shutdown: Shutdown,
    ) -> Result<Self, HubError> {
        let book = Arc::new(ChannelBook::load(store, operator.clone(), domain)?);
        Ok(Self {
            book,
            ledger,
            operator,
            shutdown,
            presence: Presence::new(),
        })
    }

    /// The ledger watcher, to be spawned by `run`; ends with `shutdown`.
    pub fn watcher(
        &self,
        reveal_timeout: u64,
        shutdown: impl Future<Output = ()>,
    ) -> impl Future<Output = ()> {
        watcher::run(
            self.book.clone(),
            self.ledger.clone(),
            reveal_timeout,
            shutdown,
        )
    }

    /// Brings the book up to the ledger's durable events (a device may pay right after its
    /// deposit, before the watcher saw it).
    pub async fn catch_up(&self) -> Result<(), HubError> {
        watcher::catch_up(&self.book, &self.ledger).await
    }

    /// `Channels.GetChannel`: PERMISSION_DENIED unless `caller` is the channel's device.
    /// Caught up with the ledger first, so deposits (and the capacities they give) show at
    /// once rather than when the watcher gets to them.
    pub async fn get_channel(
        &self,
        caller: Address,
        id: ChannelId,
    ) -> Result<v1::ChannelState, HubError> {
        self.catch_up().await?;
        let ch = if caller == self.operator.address() {
            self.book.snapshot_any(&id.0).await?
        } else {
            self.book.snapshot(caller, &id.0).await?
        };
        view::channel_state(&ch)
    }

    /// `Channels.ListChannels`: the caller's channels with the hub (one page); for the
    /// operator, one page of every channel of the hub (its off-chain balances, which the
    /// ledger does not show) and the id to continue after, if there are more.
    pub async fn list_channels(
        &self,
        caller: Address,
        page: ListChannels,
    ) -> Result<(Vec<v1::ChannelState>, Option<U256>), HubError> {
        self.catch_up().await?;
        let (channels, more) = if caller == self.operator.address() {
            self.book.snapshots_page(page.after, page.limit).await?
        } else {
            (self.book.snapshots_of(caller).await?, false)
        };
        let next = if more {
            channels.last().map(|c| c.id())
        } else {
            None
        };
        let states = channels
            .iter()
            .map(view::channel_state)
            .collect::<Result<_, _>>()?;
        Ok((states, next))
    }

    /// `Channels.RequestWithdraw`: co-sign the caller's withdraw.
    pub async fn request_withdraw(
        &self,
        caller: Address,
        req: RequestWithdraw,
    ) -> Result<v1::CoSignedWithdraw, HubError> {
        self.catch_up().await?;
        let now = self.ledger.now()?;
        let ours = self
            .book
            .cosign_withdraw(caller, &req.withdraw, &req.participant_signature, now)
            .await?;
        Ok(view::cosigned(
            &req.withdraw,
            &req.participant_signature,
            &ours,
        ))
    }

    /// `Channels.CooperativeClose`: the core checks the proposal (every rule, expiry
    /// included) before anything changes; then the hub co-signs both whole-balance withdraws
    /// and stops payments, durably. If asked, it submits the cooperative settle as the hub;
    /// if that submission fails, payments resume and the error is returned.
    pub async fn cooperative_close(
        &self,
        caller: Address,
        req: CooperativeClose,
    ) -> Result<v1::CooperativeCloseResponse, HubError> {
        self.catch_up().await?;
        if req.device_withdraw.channel_identifier != req.channel_id {
            return Err(HubError::CooperativeClose(
                "device_withdraw.channel_identifier differs from channel_id".into(),
            ));
        }
        let proposal = CooperativeCloseProposal {
            proposer_withdraw: req.device_withdraw,
            proposer_signature: req.device_withdraw_signature,
            partner_withdraw: req.hub_withdraw,
            partner_withdraw_proposer_signature: req.hub_withdraw_partner_signature,
        };
        let now = self.ledger.now()?;
        let accepted = self
            .book
            .accept_cooperative_close(caller, &proposal, now)
            .await?;
        let (on_device, on_hub) = (accepted.on_proposer_withdraw, accepted.on_own_withdraw);
        let mut events = Vec::new();
        if req.submit {
            let op = LedgerOp::CooperativeSettle {
                channel_id: req.channel_id,
                withdraws: [
                    CoSignedWithdraw {
                        proof: req.device_withdraw,
                        participant_signature: req.device_withdraw_signature,
                        partner_signature: on_device,
                    },
                    CoSignedWithdraw {
                        proof: req.hub_withdraw,
                        participant_signature: on_hub,
                        partner_signature: req.hub_withdraw_partner_signature,
                    },
                ],
            };
            let submitted = self.ledger.execute(self.operator.address(), &op).await;
            let evs = match submitted {
                Ok(executed) => executed.events,
                Err(e) => {
                    self.book.resume_payments(&req.channel_id).await?;
                    return Err(e);
                }
            };
            events = evs.iter().map(v1::LedgerEvent::from).collect();
            self.catch_up().await?;
        }
        Ok(v1::CooperativeCloseResponse {
            device_withdraw: Some(view::cosigned(
                &req.device_withdraw,
                &req.device_withdraw_signature,
                &on_device,
            )),
            hub_withdraw: Some(view::cosigned(
                &req.hub_withdraw,
                &on_hub,
                &req.hub_withdraw_partner_signature,
            )),
            events,
        })
    }

    /// Payments of a `Payments.Pay` stream, in arrival order, each applied and durable when
    /// this returns (consecutive ones on a channel share one write). A payment refused for an
    /// unknown channel or beyond the known deposit may be waiting for a ledger event the hub
    /// has not applied yet: the hub catches up and judges it, and the ones after it, again.
    pub async fn take_payments(
        &self,
        caller: Address,
        payments: &[Payment],
    ) -> Result<Vec<Result<v1::PaymentAccepted, HubError>>, HubError> {
        let batch: Vec<_> = payments
            .iter()
            .map(|p| (p.balance_proof, p.amount))
            .collect();
        let mut results = self.book.take_payments(caller, &batch).await?;
        let retry_from = results.iter().position(|r| {
            matches!(
                r,
                Err(HubError::UnknownChannel(_))
                    | Err(HubError::Channel(ChannelError::InsufficientBalance { .. }))
            )
        });
        if let Some(k) = retry_from {
            self.catch_up().await?;
            let again = self.book.take_payments(caller, &batch[k..]).await?;
            results.truncate(k);
            results.extend(again);
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.map(|accepted| v1::PaymentAccepted {
                    nonce: accepted.nonce,
                    transferred_amount: voltlane_proto::convert::u256_bytes(
                        &accepted.transferred_amount,
                    ),
                    forward: None,
                })
            })
            .collect())
    }

    /// Whether `Payments.Pay` streams are served.
    pub fn payments_available(&self) -> Result<(), HubError> {
        if self.shutdown.is_triggered() {
            return Err(HubError::ShuttingDown);
        }
        Ok(())
    }

    /// `Payments.ReceivePayments`: proofs the hub signed for the caller after a nonce, and a
    /// receiver of later ones.
    pub async fn hub_payments_since(
        &self,
        caller: Address,
        req: ReceivePayments,
    ) -> Result<
        (
            Vec<HubPayment>,
            tokio::sync::broadcast::Receiver<HubPayment>,
        ),
        HubError,
    > {
        self.catch_up().await?;
        self.book
            .hub_payments_since(caller, &req.channel_id, req.after_nonce)
            .await
    }

    /// `Payments.OperatorPay`: only the operator's own address may call it.
    pub async fn operator_pay(
        &self,
        caller: Address,
        req: OperatorPay,
    ) -> Result<v1::HubPayment, HubError> {
        if caller != self.operator.address() {
            return Err(HubError::PermissionDenied(format!(
                "OperatorPay is for the hub operator {}, not {caller}",
                self.operator.address()
            )));
        }
        self.catch_up().await?;
        let p = self.book.pay_device(&req.channel_id, req.amount).await?;
        Ok(view::hub_payment(&p))
    }

    /// `Channels.OperatorDeposit`: only the operator may call it. The hub deposits its own
    /// tokens into channel `req.channel_id`; the amount is decided by the core against the
    /// ledger's record of the channel and the operator's tokens and sent as the new total
    /// deposit, so a refusal (not open, not growing, too few tokens) changes nothing and a
    /// repeated request is refused rather than doubled. Answers with the
    /// channel as the book sees it once the deposit is applied.
    pub async fn operator_deposit(
        &self,
        caller: Address,
        req: OperatorDeposit,
    ) -> Result<v1::OperatorDepositResponse, HubError> {
        let me = self.operator.address();
        if caller != me {
            return Err(HubError::PermissionDenied(format!(
                "OperatorDeposit is for the hub operator {me}, not {caller}"
            )));
        }
        self.catch_up().await?;
        let shared = self
            .book
            .get(&req.channel_id)?
            .ok_or(HubError::UnknownChannel(req.channel_id))?;
        let id = req.channel_id;
        let record = self
            .ledger
            .read(|l| l.channel_record(id).cloned())?
            .ok_or(channel_core::ledger::LedgerError::UnknownChannel(id))?;
        let available = self.ledger.token_balance(me).await?;
        let planned = channel_core::liquidity::deposit_target(&record, me, req.amount, available)?;
        // The operation names the new total: a deposit planned twice is refused, not doubled.
        let op = LedgerOp::SetTotalDeposit {
            channel_id: id,
            participant: me,
            total_deposit: planned.total_deposit,
        };
        let events = self.ledger.execute(me, &op).await?.events;
        self.catch_up().await?;
        let channel = shared.lock().await.clone();
        Ok(v1::OperatorDepositResponse {
            channel: Some(view::channel_state(&channel)?),
            events: events.iter().map(v1::LedgerEvent::from).collect(),
        })
    }
}
