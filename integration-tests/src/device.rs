//! [`TestDevice`]: a device speaking raw `voltlane.v1` protobuf, with a
//! `channel_core::channel::Channel` as its own record of the channel.
//!
//! Call order: [`TestDevice::login`], [`TestDevice::open_channel`] (mint, open, deposit on
//! the ledger as the device itself), then [`TestDevice::next_payment`] to sign payments and
//! a [`PaySession`] to stream them. After a hub restart, [`TestDevice::relogin`] (sessions
//! do not survive restarts). A payment's `request_id` is its nonce.

use channel_core::channel::{Channel as ChannelState, ChannelEvent, ChannelMessage};
use channel_core::crypto::{keccak256_concat, LocalSigner, Signer};
use channel_core::primitives::{Address, U256};
use channel_core::{Domain, SignedBalanceProof, H256};
use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Request, Status, Streaming};
use voltlane_proto::auth::auth_digest;
use voltlane_proto::convert::{address_bytes, u256_bytes};
use voltlane_proto::v1;

use crate::error::HarnessError;

pub mod ledger_monitor;
pub mod mediated;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone, Debug)]
pub struct Bearer(MetadataValue<Ascii>);

impl Bearer {
    pub fn new(token: &str) -> Result<Self, HarnessError> {
        MetadataValue::try_from(format!("Bearer {token}"))
            .map(Self)
            .map_err(|_| HarnessError::protocol("session token is not ASCII"))
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        req.metadata_mut().insert("authorization", self.0.clone());
        Ok(req)
    }
}

/// A connection with the session token attached.
pub type Authed = InterceptedService<Channel, Bearer>;

/// The device key number `index` derived from `seed` (keccak256(seed || index)).
pub fn device_key(seed: u64, index: u64) -> Result<LocalSigner, HarnessError> {
    let secret = keccak256_concat(&[&seed.to_be_bytes(), &index.to_be_bytes()]);
    LocalSigner::from_bytes(secret.as_bytes()).map_err(|e| HarnessError::Channel(e.to_string()))
}

/// `Hub.GetInfo` (no authentication).
pub async fn hub_info(conn: Channel) -> Result<v1::HubInfo, HarnessError> {
    Ok(v1::hub_client::HubClient::new(conn)
        .get_info(v1::GetInfoRequest {})
        .await?
        .into_inner())
}

/// Challenge/response login of `key` at the hub `hub`; returns the session token.
pub async fn login(
    conn: Channel,
    key: &LocalSigner,
    hub: &Address,
) -> Result<String, HarnessError> {
    let mut auth = v1::auth_client::AuthClient::new(conn);
    let challenge = auth
        .get_challenge(v1::ChallengeRequest {
            address: address_bytes(&key.address()),
        })
        .await?
        .into_inner()
        .challenge;
    let c: [u8; 32] = challenge
        .as_slice()
        .try_into()
        .map_err(|_| HarnessError::protocol("challenge is not 32 bytes"))?;
    let sig = key
        .sign_hash(&auth_digest(hub, &c))
        .map_err(|e| HarnessError::Channel(e.to_string()))?;
    Ok(auth
        .authenticate(v1::AuthenticateRequest {
            address: address_bytes(&key.address()),
            challenge: c.to_vec(),
            signature: sig.as_bytes().to_vec(),
        })
        .await?
        .into_inner()
        .token)
}

/// Who a hub is: its operator address and the ledger domain its channels live in, read from
/// `Hub.GetInfo` once and shared by every device a harness logs in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HubIdentity {
    pub hub: Address,
    pub domain: Domain,
}

impl HubIdentity {
    /// Reads the identity from `Hub.GetInfo`.
    pub async fn fetch(conn: Channel) -> Result<Self, HarnessError> {
        let info = hub_info(conn).await?;
        let hub = Address::from_slice(&info.hub_address)
            .map_err(|_| HarnessError::protocol("hub_address is not 20 bytes"))?;
        let chain_id = U256::try_from_be_slice(&info.chain_id)
            .ok_or_else(|| HarnessError::protocol("chain_id is not a uint256"))?;
        let token_network_address = Address::from_slice(&info.token_network_address)
            .map_err(|_| HarnessError::protocol("token_network_address is not 20 bytes"))?;
        Ok(Self {
            hub,
            domain: Domain {
                chain_id,
                token_network_address,
            },
        })
    }
}

/// One device with at most one channel with the hub.
#[derive(Debug)]
pub struct TestDevice {
    key: LocalSigner,
    hub: Address,
    domain: Domain,
    conn: Channel,
    bearer: Bearer,
    channel: Option<ChannelState>,
}

impl TestDevice {
    /// Reads the hub's address and logs `key` in.
    pub async fn login(conn: Channel, key: LocalSigner) -> Result<Self, HarnessError> {
        let identity = HubIdentity::fetch(conn.clone()).await?;
        Self::login_to(conn, key, identity).await
    }

    /// Logs `key` in at a hub whose identity is already known (two RPCs: challenge and
    /// response).
    pub async fn login_to(
        conn: Channel,
        key: LocalSigner,
        identity: HubIdentity,
    ) -> Result<Self, HarnessError> {
        let token = login(conn.clone(), &key, &identity.hub).await?;
        Ok(Self {
            key,
            hub: identity.hub,
            domain: identity.domain,
            conn,
            bearer: Bearer::new(&token)?,
            channel: None,
        })
    }

    /// Logs in again on `conn` (a restarted hub forgot the session).
    pub async fn relogin(&mut self, conn: Channel) -> Result<(), HarnessError> {
        let token = login(conn.clone(), &self.key, &self.hub).await?;
        self.bearer = Bearer::new(&token)?;
        self.conn = conn;
        Ok(())
    }

    // ----- getters -----

    pub fn key(&self) -> &LocalSigner {
        &self.key
    }

    pub fn address(&self) -> Address {
        self.key.address()
    }

    pub fn hub_address(&self) -> Address {
        self.hub
    }

    /// The device's own channel record.
    pub fn channel(&self) -> Result<&ChannelState, HarnessError> {
        self.channel
            .as_ref()
            .ok_or_else(|| HarnessError::protocol("no channel opened yet"))
    }

    pub fn channel_id(&self) -> Result<U256, HarnessError> {
        Ok(self.channel()?.id())
    }

    pub fn ledger(&self) -> v1::ledger_client::LedgerClient<Authed> {
        v1::ledger_client::LedgerClient::with_interceptor(self.conn.clone(), self.bearer.clone())
    }

    pub fn channels(&self) -> v1::channels_client::ChannelsClient<Authed> {
        v1::channels_client::ChannelsClient::with_interceptor(
            self.conn.clone(),
            self.bearer.clone(),
        )
    }

    pub fn payments(&self) -> v1::payments_client::PaymentsClient<Authed> {
        v1::payments_client::PaymentsClient::with_interceptor(
            self.conn.clone(),
            self.bearer.clone(),
        )
    }

    pub fn sessions(&self) -> v1::sessions_client::SessionsClient<Authed> {
        v1::sessions_client::SessionsClient::with_interceptor(
            self.conn.clone(),
            self.bearer.clone(),
        )
    }

    // ----- ledger setup -----

    /// Mints `deposit` test tokens, opens a channel with the hub and deposits them, each as
    /// a ledger operation of the device; returns the channel id.
    pub async fn open_channel(&mut self, deposit: U256) -> Result<U256, HarnessError> {
        let mut ledger = self.ledger();
        ledger
            .mint(v1::MintRequest {
                to: address_bytes(&self.address()),
                amount: u256_bytes(&deposit),
            })
            .await?;
        // One operation: open and deposit (`openChannelWithDeposit`).
        let opened = ledger
            .open_channel(v1::OpenChannelRequest {
                partner: address_bytes(&self.hub),
                total_deposit: u256_bytes(&deposit),
            })
            .await?
            .into_inner();
        let id = U256::try_from_be_slice(&opened.channel_id)
            .ok_or_else(|| HarnessError::protocol("channel_id is not a uint256"))?;
        self.track_channel(id, deposit)?;
        Ok(id)
    }

    /// Starts keeping the device's state of channel `id` with the hub, opened (elsewhere,
    /// e.g. on a chain) with the device's deposit `deposit`.
    pub fn track_channel(&mut self, id: U256, deposit: U256) -> Result<(), HarnessError> {
        let mut channel = ChannelState::new(self.domain, id, self.address(), self.hub);
        channel
            .handle_ledger_deposit(self.address(), deposit)
            .map_err(|e| HarnessError::Channel(e.to_string()))?;
        self.channel = Some(channel);
        Ok(())
    }

    // ----- payments -----

    /// Signs the next payment of `amount` (nonce + 1) and updates the device's record.
    pub fn sign_payment(&mut self, amount: U256) -> Result<SignedBalanceProof, HarnessError> {
        let channel = self
            .channel
            .as_mut()
            .ok_or_else(|| HarnessError::protocol("no channel opened yet"))?;
        let events = channel
            .send_payment(amount, H256::ZERO, &self.key)
            .map_err(|e| HarnessError::Channel(e.to_string()))?;
        events
            .into_iter()
            .find_map(|e| match e {
                ChannelEvent::Send(ChannelMessage::Payment { proof, .. }) => Some(proof),
                _ => None,
            })
            .ok_or_else(|| HarnessError::Channel("send_payment produced no proof".into()))
    }

    /// Signs the next payment and wraps it as a `PaymentMessage` whose `request_id` is the
    /// nonce.
    pub fn next_payment(&mut self, amount: U256) -> Result<v1::PaymentMessage, HarnessError> {
        let proof = self.sign_payment(amount)?;
        Ok(payment_message(&proof, amount))
    }

    /// `Channels.GetChannel`: the hub's view of this device's channel.
    pub async fn hub_view(&self) -> Result<v1::ChannelState, HarnessError> {
        Ok(self
            .channels()
            .get_channel(v1::GetChannelRequest {
                channel_id: u256_bytes(&self.channel_id()?),
            })
            .await?
            .into_inner())
    }

    /// `Ledger.GetChannel` of this device's channel.
    pub async fn ledger_view(&self) -> Result<v1::LedgerChannel, HarnessError> {
        Ok(self
            .ledger()
            .get_channel(v1::GetLedgerChannelRequest {
                channel_id: u256_bytes(&self.channel_id()?),
            })
            .await?
            .into_inner())
    }

    /// Pays `count` payments of `amount` on one stream and requires every one acknowledged
    /// as accepted, in order; returns the last acknowledged nonce.
    pub async fn pay_acked(&mut self, amount: U256, count: u64) -> Result<u64, HarnessError> {
        let window = usize::try_from(count).unwrap_or(usize::MAX).clamp(1, 256);
        let mut session = self.pay_session(window).await?;
        let mut expected = Vec::new();
        for _ in 0..count {
            let msg = self.next_payment(amount)?;
            expected.push(msg.request_id);
            session.send(msg).await?;
        }
        session.finish();
        let mut last = self.channel()?.our().nonce().saturating_sub(count);
        for nonce in expected {
            match session.next_ack().await? {
                Some(PayAck::Accepted { nonce: n, .. }) if n == nonce => last = n,
                other => {
                    return Err(HarnessError::protocol(format!(
                        "payment nonce {nonce}: expected an accepting ack, got {other:?}"
                    )))
                }
            }
        }
        Ok(last)
    }

    /// Opens a `Payments.Pay` stream with room for `window` unsent messages.
    pub async fn pay_session(&self, window: usize) -> Result<PaySession, HarnessError> {
        PaySession::open(self.payments(), window).await
    }
}

/// A `PaymentMessage` carrying `proof`, with `request_id` = nonce.
pub fn payment_message(proof: &SignedBalanceProof, amount: U256) -> v1::PaymentMessage {
    v1::PaymentMessage {
        request_id: proof.proof.nonce,
        balance_proof: Some(proof.into()),
        amount: u256_bytes(&amount),
        kind: None,
    }
}

/// The device's nonce as the hub holds it (0 = no payment yet).
pub fn device_nonce(state: &v1::ChannelState) -> u64 {
    state
        .device_proof
        .as_ref()
        .and_then(|p| p.proof.as_ref())
        .map_or(0, |p| p.nonce)
}

/// What the hub did with a payer's lock it took.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Forward {
    Forwarded {
        payee_channel: U256,
        fee: U256,
        outgoing_lock: channel_core::HashTimeLock,
    },
    NotForwarded {
        code: Code,
        reason: String,
    },
}

impl Forward {
    fn from_proto(f: v1::payment_accepted::Forward) -> Result<Self, HarnessError> {
        let bad = |e: voltlane_proto::FieldError| HarnessError::protocol(e.to_string());
        Ok(match f {
            v1::payment_accepted::Forward::Forwarded(r) => Forward::Forwarded {
                payee_channel: voltlane_proto::convert::u256(
                    "payee_channel_id",
                    &r.payee_channel_id,
                )
                .map_err(bad)?,
                fee: voltlane_proto::convert::u256("fee", &r.fee).map_err(bad)?,
                outgoing_lock: voltlane_proto::convert::required("outgoing_lock", r.outgoing_lock)
                    .map_err(bad)?,
            },
            v1::payment_accepted::Forward::NotForwarded(r) => Forward::NotForwarded {
                code: Code::from_i32(r.code),
                reason: r.reason,
            },
        })
    }
}

/// One answer on the `Pay` stream.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayAck {
    Accepted {
        request_id: u64,
        nonce: u64,
        transferred: U256,
        /// Locked transfers only: what became of the forward.
        forward: Option<Forward>,
    },
    Rejected {
        request_id: u64,
        code: Code,
        reason: String,
    },
}

impl PayAck {
    pub fn request_id(&self) -> u64 {
        match self {
            Self::Accepted { request_id, .. } | Self::Rejected { request_id, .. } => *request_id,
        }
    }

    fn from_proto(ack: v1::PaymentAck) -> Result<Self, HarnessError> {
        match ack.outcome {
            Some(v1::payment_ack::Outcome::Accepted(a)) => Ok(Self::Accepted {
                request_id: ack.request_id,
                nonce: a.nonce,
                transferred: U256::try_from_be_slice(&a.transferred_amount).ok_or_else(|| {
                    HarnessError::protocol("ack transferred_amount is not a uint256")
                })?,
                forward: a.forward.map(Forward::from_proto).transpose()?,
            }),
            Some(v1::payment_ack::Outcome::Rejected(r)) => Ok(Self::Rejected {
                request_id: ack.request_id,
                code: Code::from_i32(r.code),
                reason: r.reason,
            }),
            None => Err(HarnessError::protocol("PaymentAck without outcome")),
        }
    }
}

/// An open `Payments.Pay` stream: push messages with [`PaySession::send`], read answers with
/// [`PaySession::next_ack`]. Sending and reading may be interleaved freely (pipelining).
#[derive(Debug)]
pub struct PaySession {
    tx: Option<mpsc::Sender<v1::PaymentMessage>>,
    acks: Streaming<v1::PaymentAck>,
}

impl PaySession {
    async fn open(
        mut client: v1::payments_client::PaymentsClient<Authed>,
        window: usize,
    ) -> Result<Self, HarnessError> {
        let (tx, rx) = mpsc::channel(window.max(1));
        let acks = client.pay(ReceiverStream::new(rx)).await?.into_inner();
        Ok(Self { tx: Some(tx), acks })
    }

    /// Queues one message for the stream.
    pub async fn send(&self, msg: v1::PaymentMessage) -> Result<(), HarnessError> {
        let tx = self
            .tx
            .as_ref()
            .ok_or_else(|| HarnessError::protocol("pay stream already finished"))?;
        tx.send(msg)
            .await
            .map_err(|_| HarnessError::protocol("pay stream closed"))
    }

    /// The next answer; `Ok(None)` when the hub ended the stream.
    pub async fn next_ack(&mut self) -> Result<Option<PayAck>, HarnessError> {
        match self.acks.next().await {
            None => Ok(None),
            Some(ack) => PayAck::from_proto(ack?).map(Some),
        }
    }

    /// Ends the request side (the hub then ends its side after the last ack).
    pub fn finish(&mut self) {
        self.tx = None;
    }
}
