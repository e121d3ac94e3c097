//! Request messages converted into the arguments of the domain call they ask for.
//!
//! Each struct mirrors one request message with every field decoded and checked against the
//! encoding rules; errors name the field as it is spelled in the `.proto` file.

use channel_core::ledger::SettleTransaction;
use channel_core::primitives::{Address, H256, U256};
use channel_core::{Secret, Signature, SignedBalanceProof, WithdrawProof};

use super::{
    address, address_bytes, h256, required, signature, u256, u256_bytes, CoSignedWithdraw,
    FieldError,
};
use crate::v1;

/// Generates a one-field argument struct and its `TryFrom` for each listed request message.
macro_rules! single_field {
    ($(#[$doc:meta])* $name:ident($ty:ty) via $parse:ident from { $($msg:ident . $field:ident),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub struct $name(pub $ty);
        $(
            impl TryFrom<v1::$msg> for $name {
                type Error = FieldError;
                fn try_from(m: v1::$msg) -> Result<Self, FieldError> {
                    $parse(stringify!($field), &m.$field).map($name)
                }
            }
        )+
    };
}

single_field!(
    /// A request naming one channel.
    ChannelId(U256) via u256 from {
        GetPendingUnlocksRequest.channel_id,
        GetLedgerChannelRequest.channel_id,
        GetChannelRequest.channel_id,
    }
);

single_field!(
    /// A request naming one account.
    AccountAddress(Address) via address from {
        ChallengeRequest.address,
        ListLedgerChannelsRequest.participant,
        GetTokenBalanceRequest.address,
    }
);

single_field!(
    /// A request naming one secret hash.
    SecretHash(H256) via h256 from { GetSecretRegistrationRequest.secrethash }
);

/// `Auth.Authenticate`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Authenticate {
    pub address: Address,
    pub challenge: [u8; 32],
    pub signature: Signature,
}

impl TryFrom<v1::AuthenticateRequest> for Authenticate {
    type Error = FieldError;
    fn try_from(m: v1::AuthenticateRequest) -> Result<Self, FieldError> {
        Ok(Authenticate {
            address: address("address", &m.address)?,
            challenge: h256("challenge", &m.challenge)?.0,
            signature: signature("signature", &m.signature)?,
        })
    }
}

/// `Channels.ListChannels`: one page of channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ListChannels {
    /// Only channels with a higher id.
    pub after: Option<U256>,
    /// At most this many, in `1..=LIST_CHANNELS_MAX_LIMIT`.
    pub limit: usize,
}

/// The page size of `ListChannels` when the request leaves `limit` at 0.
pub const LIST_CHANNELS_DEFAULT_LIMIT: usize = 1_000;
/// The largest page `ListChannels` returns.
pub const LIST_CHANNELS_MAX_LIMIT: usize = 10_000;

impl TryFrom<v1::ListChannelsRequest> for ListChannels {
    type Error = FieldError;
    fn try_from(m: v1::ListChannelsRequest) -> Result<Self, FieldError> {
        let after = if m.after_channel_id.is_empty() {
            None
        } else {
            Some(u256("after_channel_id", &m.after_channel_id)?)
        };
        let limit = match m.limit as usize {
            0 => LIST_CHANNELS_DEFAULT_LIMIT,
            n if n <= LIST_CHANNELS_MAX_LIMIT => n,
            n => {
                return Err(FieldError::new(
                    "limit",
                    super::Rule::Invalid(format!(
                        "must be at most {LIST_CHANNELS_MAX_LIMIT}, got {n}"
                    )),
                ))
            }
        };
        Ok(Self { after, limit })
    }
}

/// `Ledger.OpenChannel`: with a deposit, `openChannelWithDeposit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OpenChannel {
    pub partner: Address,
    pub total_deposit: Option<U256>,
}

impl TryFrom<v1::OpenChannelRequest> for OpenChannel {
    type Error = FieldError;
    fn try_from(m: v1::OpenChannelRequest) -> Result<Self, FieldError> {
        Ok(OpenChannel {
            partner: address("partner", &m.partner)?,
            total_deposit: match m.total_deposit.is_empty() {
                true => None,
                false => Some(u256("total_deposit", &m.total_deposit)?),
            },
        })
    }
}

/// `Ledger.Mint`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mint {
    pub to: Address,
    pub amount: U256,
}

impl TryFrom<v1::MintRequest> for Mint {
    type Error = FieldError;
    fn try_from(m: v1::MintRequest) -> Result<Self, FieldError> {
        Ok(Mint {
            to: address("to", &m.to)?,
            amount: u256("amount", &m.amount)?,
        })
    }
}

/// `Ledger.SetTotalDeposit`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetTotalDeposit {
    pub channel_id: U256,
    pub participant: Address,
    pub total_deposit: U256,
}

impl TryFrom<v1::SetTotalDepositRequest> for SetTotalDeposit {
    type Error = FieldError;
    fn try_from(m: v1::SetTotalDepositRequest) -> Result<Self, FieldError> {
        Ok(SetTotalDeposit {
            channel_id: u256("channel_id", &m.channel_id)?,
            participant: address("participant", &m.participant)?,
            total_deposit: u256("total_deposit", &m.total_deposit)?,
        })
    }
}

/// `Ledger.SetTotalWithdraw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetTotalWithdraw {
    pub withdraw: CoSignedWithdraw,
}

impl TryFrom<v1::SetTotalWithdrawRequest> for SetTotalWithdraw {
    type Error = FieldError;
    fn try_from(m: v1::SetTotalWithdrawRequest) -> Result<Self, FieldError> {
        Ok(SetTotalWithdraw {
            withdraw: required("withdraw", m.withdraw)?,
        })
    }
}

/// `Ledger.CloseChannel`. `partner_proof` is `None` when the caller closes without one; the
/// driver substitutes [`SignedBalanceProof::none`] for the ledger's domain.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CloseChannel {
    pub channel_id: U256,
    pub partner_proof: Option<SignedBalanceProof>,
    pub closing_signature: Signature,
}

impl TryFrom<v1::CloseChannelRequest> for CloseChannel {
    type Error = FieldError;
    fn try_from(m: v1::CloseChannelRequest) -> Result<Self, FieldError> {
        Ok(CloseChannel {
            channel_id: u256("channel_id", &m.channel_id)?,
            partner_proof: m
                .partner_proof
                .map(|p| SignedBalanceProof::try_from(p).map_err(|e| e.within("partner_proof")))
                .transpose()?,
            closing_signature: signature("closing_signature", &m.closing_signature)?,
        })
    }
}

/// `Ledger.UpdateNonClosingBalanceProof`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UpdateNonClosing {
    pub channel_id: U256,
    pub closer_proof: SignedBalanceProof,
    pub non_closing_signature: Signature,
}

impl TryFrom<v1::UpdateNonClosingBalanceProofRequest> for UpdateNonClosing {
    type Error = FieldError;
    fn try_from(m: v1::UpdateNonClosingBalanceProofRequest) -> Result<Self, FieldError> {
        Ok(UpdateNonClosing {
            channel_id: u256("channel_id", &m.channel_id)?,
            closer_proof: required("closer_proof", m.closer_proof)?,
            non_closing_signature: signature("non_closing_signature", &m.non_closing_signature)?,
        })
    }
}

/// `Ledger.SettleChannel`: the channel and both participants' stored balance data.
impl TryFrom<v1::SettleChannelRequest> for SettleTransaction {
    type Error = FieldError;
    fn try_from(m: v1::SettleChannelRequest) -> Result<Self, FieldError> {
        Ok(SettleTransaction {
            channel_id: u256("channel_id", &m.channel_id)?,
            balances: [
                (
                    address("participant1", &m.participant1)?,
                    required("participant1_balance", m.participant1_balance)?,
                ),
                (
                    address("participant2", &m.participant2)?,
                    required("participant2_balance", m.participant2_balance)?,
                ),
            ],
        })
    }
}

impl From<&SettleTransaction> for v1::SettleChannelRequest {
    fn from(t: &SettleTransaction) -> Self {
        let [(p1, b1), (p2, b2)] = &t.balances;
        v1::SettleChannelRequest {
            channel_id: u256_bytes(&t.channel_id),
            participant1: address_bytes(p1),
            participant1_balance: Some(b1.into()),
            participant2: address_bytes(p2),
            participant2_balance: Some(b2.into()),
        }
    }
}

/// `Ledger.RegisterSecret`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RegisterSecret {
    pub secret: Secret,
}

impl TryFrom<v1::RegisterSecretRequest> for RegisterSecret {
    type Error = FieldError;
    fn try_from(m: v1::RegisterSecretRequest) -> Result<Self, FieldError> {
        Ok(RegisterSecret {
            secret: Secret(h256("secret", &m.secret)?),
        })
    }
}

/// `Ledger.Unlock`. The packed locks stay bytes: the ledger checks their layout and root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unlock {
    pub channel_id: U256,
    pub receiver: Address,
    pub sender: Address,
    pub packed_locks: Vec<u8>,
}

impl TryFrom<v1::UnlockRequest> for Unlock {
    type Error = FieldError;
    fn try_from(m: v1::UnlockRequest) -> Result<Self, FieldError> {
        Ok(Unlock {
            channel_id: u256("channel_id", &m.channel_id)?,
            receiver: address("receiver", &m.receiver)?,
            sender: address("sender", &m.sender)?,
            packed_locks: m.packed_locks,
        })
    }
}

/// `Ledger.CooperativeSettle`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooperativeSettle {
    pub channel_id: U256,
    pub withdraw1: CoSignedWithdraw,
    pub withdraw2: CoSignedWithdraw,
}

impl TryFrom<v1::CooperativeSettleRequest> for CooperativeSettle {
    type Error = FieldError;
    fn try_from(m: v1::CooperativeSettleRequest) -> Result<Self, FieldError> {
        Ok(CooperativeSettle {
            channel_id: u256("channel_id", &m.channel_id)?,
            withdraw1: required("withdraw1", m.withdraw1)?,
            withdraw2: required("withdraw2", m.withdraw2)?,
        })
    }
}

/// `Channels.RequestWithdraw`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestWithdraw {
    pub withdraw: WithdrawProof,
    pub participant_signature: Signature,
}

impl TryFrom<v1::RequestWithdrawRequest> for RequestWithdraw {
    type Error = FieldError;
    fn try_from(m: v1::RequestWithdrawRequest) -> Result<Self, FieldError> {
        Ok(RequestWithdraw {
            withdraw: required("withdraw", m.withdraw)?,
            participant_signature: signature("participant_signature", &m.participant_signature)?,
        })
    }
}

/// `Channels.CooperativeClose`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CooperativeClose {
    pub channel_id: U256,
    pub device_withdraw: WithdrawProof,
    pub device_withdraw_signature: Signature,
    pub hub_withdraw: WithdrawProof,
    pub hub_withdraw_partner_signature: Signature,
    pub submit: bool,
}

impl TryFrom<v1::CooperativeCloseRequest> for CooperativeClose {
    type Error = FieldError;
    fn try_from(m: v1::CooperativeCloseRequest) -> Result<Self, FieldError> {
        Ok(CooperativeClose {
            channel_id: u256("channel_id", &m.channel_id)?,
            device_withdraw: required("device_withdraw", m.device_withdraw)?,
            device_withdraw_signature: signature(
                "device_withdraw_signature",
                &m.device_withdraw_signature,
            )?,
            hub_withdraw: required("hub_withdraw", m.hub_withdraw)?,
            hub_withdraw_partner_signature: signature(
                "hub_withdraw_partner_signature",
                &m.hub_withdraw_partner_signature,
            )?,
            submit: m.submit,
        })
    }
}

/// `Payments.Pay`: one proof of the stream (a direct payment or a mediated step).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Payment {
    pub request_id: u64,
    pub balance_proof: SignedBalanceProof,
    pub amount: U256,
    pub kind: super::mediation::PaymentKind,
}

impl TryFrom<v1::PaymentMessage> for Payment {
    type Error = FieldError;
    fn try_from(m: v1::PaymentMessage) -> Result<Self, FieldError> {
        Ok(Payment {
            request_id: m.request_id,
            balance_proof: required("balance_proof", m.balance_proof)?,
            amount: u256("amount", &m.amount)?,
            kind: m.kind.try_into()?,
        })
    }
}

/// `Payments.ReceivePayments`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReceivePayments {
    pub channel_id: U256,
    pub after_nonce: u64,
}

impl TryFrom<v1::ReceivePaymentsRequest> for ReceivePayments {
    type Error = FieldError;
    fn try_from(m: v1::ReceivePaymentsRequest) -> Result<Self, FieldError> {
        Ok(ReceivePayments {
            channel_id: u256("channel_id", &m.channel_id)?,
            after_nonce: m.after_nonce,
        })
    }
}

/// `Payments.OperatorPay`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OperatorPay {
    pub channel_id: U256,
    pub amount: U256,
}

impl TryFrom<v1::OperatorPayRequest> for OperatorPay {
    type Error = FieldError;
    fn try_from(m: v1::OperatorPayRequest) -> Result<Self, FieldError> {
        Ok(OperatorPay {
            channel_id: u256("channel_id", &m.channel_id)?,
            amount: u256("amount", &m.amount)?,
        })
    }
}
