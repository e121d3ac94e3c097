//! `voltlane.v1.Ledger`: thin handlers. Each decodes its request with `TryFrom` (errors name
//! the field), calls one `Ledger` method as the authenticated caller through the
//! [`LedgerHandle`] (which persists before returning), and encodes the result.
//!
//! `Mint` is the dev faucet: off unless enabled, and each call limited to the configured cap
//! by `Ledger::faucet_mint`; its refusals (zero address, zero amount, over the cap) are about
//! the request's own fields and are answered as INVALID_ARGUMENT naming `to` or `amount`.

use std::sync::Arc;

use channel_core::channel::{CloseTransaction, UpdateTransaction};
use channel_core::ledger::{Ledger, LedgerError, LedgerEvent, LedgerEventKind, LedgerOp};
use channel_core::primitives::{Address, U256};
use channel_core::{Domain, SignedBalanceProof};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};
use voltlane_proto::convert::requests::{
    AccountAddress, ChannelId, CloseChannel, CooperativeSettle, Mint, OpenChannel, RegisterSecret,
    SecretHash, SetTotalDeposit, SetTotalWithdraw, Unlock, UpdateNonClosing,
};
use voltlane_proto::convert::{address_bytes, optional_address, u256_bytes, FieldError, Rule};
use voltlane_proto::v1;

use super::handle::PublishedEvent;
use super::LedgerHandle;
use crate::auth::caller;
use crate::error::HubError;
use crate::shutdown::Shutdown;

/// Buffered events per subscriber between the forwarding task and the gRPC stream.
const SUBSCRIBER_BUFFER: usize = 64;

/// The gRPC service over a [`LedgerHandle`].
#[derive(Clone, Debug)]
pub struct LedgerService {
    ledger: Arc<LedgerHandle>,
    dev_faucet: bool,
    faucet_max_mint: U256,
    shutdown: Shutdown,
}

impl LedgerService {
    /// The service, with the faucet cap at `Ledger::DEFAULT_FAUCET_MAX_MINT` until
    /// [`Self::with_faucet_max_mint`].
    pub fn new(ledger: Arc<LedgerHandle>, dev_faucet: bool, shutdown: Shutdown) -> Self {
        Self {
            ledger,
            dev_faucet,
            faucet_max_mint: Ledger::DEFAULT_FAUCET_MAX_MINT,
            shutdown,
        }
    }

    /// Caps one `Mint` call at `max` tokens.
    pub fn with_faucet_max_mint(mut self, max: U256) -> Self {
        self.faucet_max_mint = max;
        self
    }

    /// Flips to `true` once the ledger store failed (see [`LedgerHandle::failed`]).
    pub fn failed(&self) -> watch::Receiver<bool> {
        self.ledger.failed()
    }

    fn domain(&self) -> Result<Domain, HubError> {
        self.ledger.read(|l| l.config().domain)
    }

    /// Decodes `request` (its fields checked, named on error), turns it into its ledger
    /// operation and executes that as the authenticated caller: every transaction RPC is this.
    async fn execute<M, D>(&self, request: Request<M>, op: impl FnOnce(D) -> LedgerOp) -> OpResult
    where
        D: TryFrom<M, Error = FieldError>,
    {
        let caller = caller(&request)?;
        let op = op(decode(request.into_inner())?);
        let events = self.ledger.execute(caller, &op).await?;
        Ok(op_response(&events))
    }
}

fn decode<M, D: TryFrom<M, Error = FieldError>>(m: M) -> Result<D, HubError> {
    D::try_from(m).map_err(HubError::from)
}

/// A faucet rule broken by the request's own `to` or `amount` becomes a field error naming it.
fn faucet_refusal(e: HubError) -> HubError {
    let field = match &e {
        HubError::Ledger(LedgerError::MintToZeroAddress) => "to",
        HubError::Ledger(LedgerError::ZeroMint | LedgerError::FaucetCapExceeded { .. }) => "amount",
        _ => return e,
    };
    FieldError::new(field, Rule::Invalid(e.to_string())).into()
}

fn op_response(events: &[LedgerEvent]) -> Response<v1::LedgerOpResponse> {
    Response::new(v1::LedgerOpResponse {
        events: events.iter().map(Into::into).collect(),
    })
}

type OpResult = Result<Response<v1::LedgerOpResponse>, Status>;

#[tonic::async_trait]
impl v1::ledger_server::Ledger for LedgerService {
    async fn get_channel(
        &self,
        request: Request<v1::GetLedgerChannelRequest>,
    ) -> Result<Response<v1::LedgerChannel>, Status> {
        let ChannelId(id) = decode(request.into_inner())?;
        let channel = self
            .ledger
            .read_durable(|l| l.channel(id).map(v1::LedgerChannel::from))
            .await?;
        channel.map(Response::new).ok_or_else(|| {
            HubError::Ledger(channel_core::ledger::LedgerError::UnknownChannel(id)).into()
        })
    }

    async fn list_channels(
        &self,
        request: Request<v1::ListLedgerChannelsRequest>,
    ) -> Result<Response<v1::LedgerChannels>, Status> {
        let AccountAddress(who) = decode(request.into_inner())?;
        let channels = self
            .ledger
            .read_durable(|l| {
                l.channels_of(who)
                    .into_iter()
                    .map(v1::LedgerChannel::from)
                    .collect()
            })
            .await?;
        Ok(Response::new(v1::LedgerChannels { channels }))
    }

    async fn get_token_balance(
        &self,
        request: Request<v1::GetTokenBalanceRequest>,
    ) -> Result<Response<v1::TokenBalance>, Status> {
        let AccountAddress(who) = decode(request.into_inner())?;
        let balance = self.ledger.read_durable(|l| l.token_balance(who)).await?;
        Ok(Response::new(v1::TokenBalance {
            address: address_bytes(&who),
            balance: u256_bytes(&balance),
        }))
    }

    async fn get_time(
        &self,
        _request: Request<v1::GetTimeRequest>,
    ) -> Result<Response<v1::LedgerTime>, Status> {
        let now = self.ledger.now()?;
        let (contract_balance, config, last_event_seq) = self
            .ledger
            .read_durable(|l| (l.contract_balance(), l.config().clone(), l.last_event_seq()))
            .await?;
        Ok(Response::new(v1::LedgerTime {
            now,
            last_event_seq,
            contract_balance: u256_bytes(&contract_balance),
            domain: Some((&config.domain).into()),
            settlement_timeout: config.settlement_timeout,
        }))
    }

    async fn get_secret_registration(
        &self,
        request: Request<v1::GetSecretRegistrationRequest>,
    ) -> Result<Response<v1::SecretRegistration>, Status> {
        let SecretHash(hash) = decode(request.into_inner())?;
        let at = self
            .ledger
            .read_durable(|l| l.secret_registered_at(&hash))
            .await?;
        Ok(Response::new(v1::SecretRegistration {
            registered: at.is_some(),
            registered_at: at.unwrap_or(0),
        }))
    }

    async fn get_pending_unlocks(
        &self,
        request: Request<v1::GetPendingUnlocksRequest>,
    ) -> Result<Response<v1::PendingUnlocks>, Status> {
        let ChannelId(id) = decode(request.into_inner())?;
        let unlocks = self
            .ledger
            .read_durable(|l| {
                let record = l.channel(id).ok_or(LedgerError::UnknownChannel(id))?;
                let [a, b] = [
                    record.participants[0].address,
                    record.participants[1].address,
                ];
                Ok::<_, LedgerError>(
                    [(a, b), (b, a)]
                        .into_iter()
                        .filter_map(|(sender, receiver)| l.pending_unlock(id, sender, receiver))
                        .map(|e| v1::PendingUnlock {
                            sender: address_bytes(&e.sender),
                            receiver: address_bytes(&e.receiver),
                            locksroot: e.locksroot.0.to_vec(),
                            locked_amount: u256_bytes(&e.locked_amount),
                        })
                        .collect::<Vec<_>>(),
                )
            })
            .await?
            .map_err(HubError::from)?;
        Ok(Response::new(v1::PendingUnlocks { unlocks }))
    }

    type SubscribeStream = ReceiverStream<Result<v1::LedgerEvent, Status>>;

    async fn subscribe(
        &self,
        request: Request<v1::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let req = request.into_inner();
        let from_seq = req.from_seq;
        let participant =
            optional_address("participant", &req.participant).map_err(HubError::from)?;
        let (replay, live) = self.ledger.subscribe(from_seq)?;
        let replay = match participant {
            Some(who) => self
                .ledger
                .published(replay)?
                .into_iter()
                .filter(|p| p.concerns(who))
                .map(|p| p.event)
                .collect(),
            None => replay,
        };
        let (tx, rx) = mpsc::channel(SUBSCRIBER_BUFFER);
        tokio::spawn(forward_events(
            replay,
            live,
            from_seq.saturating_sub(1),
            participant,
            tx,
            self.shutdown.clone(),
        ));
        Ok(Response::new(ReceiverStream::new(rx)))
    }

    async fn mint(&self, request: Request<v1::MintRequest>) -> OpResult {
        if !self.dev_faucet {
            return Err(HubError::FaucetDisabled.into());
        }
        let Mint { to, amount } = decode(request.into_inner())?;
        let max = self.faucet_max_mint;
        let (events, _) = self
            .ledger
            .apply(|l, now| l.faucet_mint(to, amount, max, now))
            .await
            .map_err(faucet_refusal)?;
        Ok(op_response(&events))
    }

    async fn open_channel(
        &self,
        request: Request<v1::OpenChannelRequest>,
    ) -> Result<Response<v1::OpenChannelResponse>, Status> {
        let caller = caller(&request)?;
        let OpenChannel {
            partner,
            total_deposit,
        } = decode(request.into_inner())?;
        let op = LedgerOp::OpenChannel {
            partner,
            total_deposit: total_deposit.unwrap_or(U256::ZERO),
        };
        let events = self.ledger.execute(caller, &op).await?;
        let id = events
            .iter()
            .find_map(|e| match e.kind {
                LedgerEventKind::ChannelOpened { channel_id, .. } => Some(channel_id),
                _ => None,
            })
            .ok_or_else(|| HubError::Internal("an open emitted no ChannelOpened".into()))?;
        Ok(Response::new(v1::OpenChannelResponse {
            channel_id: u256_bytes(&id),
            events: events.iter().map(Into::into).collect(),
        }))
    }

    async fn set_total_deposit(&self, request: Request<v1::SetTotalDepositRequest>) -> OpResult {
        self.execute(request, |r: SetTotalDeposit| LedgerOp::SetTotalDeposit {
            channel_id: r.channel_id,
            participant: r.participant,
            total_deposit: r.total_deposit,
        })
        .await
    }

    async fn set_total_withdraw(&self, request: Request<v1::SetTotalWithdrawRequest>) -> OpResult {
        self.execute(request, |r: SetTotalWithdraw| {
            LedgerOp::SetTotalWithdraw(r.withdraw)
        })
        .await
    }

    async fn close_channel(&self, request: Request<v1::CloseChannelRequest>) -> OpResult {
        let domain = self.domain()?;
        self.execute(request, |r: CloseChannel| {
            LedgerOp::Close(CloseTransaction {
                channel_id: r.channel_id,
                partner_proof: r
                    .partner_proof
                    .unwrap_or_else(|| SignedBalanceProof::none(domain, r.channel_id)),
                closing_signature: r.closing_signature,
            })
        })
        .await
    }

    async fn update_non_closing_balance_proof(
        &self,
        request: Request<v1::UpdateNonClosingBalanceProofRequest>,
    ) -> OpResult {
        self.execute(request, |r: UpdateNonClosing| {
            LedgerOp::Update(UpdateTransaction {
                channel_id: r.channel_id,
                closer_proof: r.closer_proof,
                non_closing_signature: r.non_closing_signature,
            })
        })
        .await
    }

    async fn settle_channel(&self, request: Request<v1::SettleChannelRequest>) -> OpResult {
        self.execute(request, LedgerOp::Settle).await
    }

    async fn register_secret(&self, request: Request<v1::RegisterSecretRequest>) -> OpResult {
        self.execute(request, |r: RegisterSecret| {
            LedgerOp::RegisterSecret(r.secret)
        })
        .await
    }

    async fn unlock(&self, request: Request<v1::UnlockRequest>) -> OpResult {
        self.execute(request, |r: Unlock| LedgerOp::Unlock {
            channel_id: r.channel_id,
            receiver: r.receiver,
            sender: r.sender,
            packed_locks: r.packed_locks,
        })
        .await
    }

    async fn cooperative_settle(&self, request: Request<v1::CooperativeSettleRequest>) -> OpResult {
        self.execute(request, |r: CooperativeSettle| {
            LedgerOp::CooperativeSettle {
                channel_id: r.channel_id,
                withdraws: [r.withdraw1, r.withdraw2],
            }
        })
        .await
    }
}

/// Sends the replay, then live events newer than the last one sent, until the client goes
/// away, the subscriber lags (ABORTED with the seq to resume from) or the hub shuts down
/// (UNAVAILABLE).
async fn forward_events(
    replay: Vec<LedgerEvent>,
    mut live: broadcast::Receiver<Arc<PublishedEvent>>,
    mut last: u64,
    participant: Option<Address>,
    tx: mpsc::Sender<Result<v1::LedgerEvent, Status>>,
    mut shutdown: Shutdown,
) {
    for e in replay {
        last = e.seq;
        if tx.send(Ok((&e).into())).await.is_err() {
            return;
        }
    }
    loop {
        let next = tokio::select! {
            _ = shutdown.wait() => {
                let _ = tx.send(Err(HubError::ShuttingDown.into())).await;
                return;
            }
            _ = tx.closed() => return,
            next = live.recv() => next,
        };
        match next {
            Ok(p) if p.event.seq <= last => continue,
            Ok(p) => {
                last = p.event.seq;
                if participant.is_some_and(|who| !p.concerns(who)) {
                    continue;
                }
                if tx.send(Ok((&p.event).into())).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => {
                let next_seq = last.saturating_add(1);
                let _ = tx
                    .send(Err(HubError::SubscriberLagged { next_seq }.into()))
                    .await;
                return;
            }
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
