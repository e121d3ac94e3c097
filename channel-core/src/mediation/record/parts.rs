//! A [`MediatedTransfer`] taken apart into plain data ([`MediatedTransferParts`]) and put
//! together again, for the hub's record type, which owns the on-disk layout. The record's
//! fields stay private to the core; [`MediatedTransfer::from_parts`] checks what the data
//! alone can show (both locks under one secrethash, a known secret that opens them).

use super::{Leg, MediatedTransfer, MEDIATED_TRANSFER_VERSION};
use crate::locks::{HashTimeLock, Secret};
use crate::primitives::{Address, H256, U256};

/// A mediated transfer as plain data (see the module docs).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MediatedTransferParts {
    pub incoming_channel: U256,
    pub payer: Address,
    pub incoming_lock: HashTimeLock,
    pub outgoing_channel: U256,
    pub payee: Address,
    pub outgoing_lock: HashTimeLock,
    pub fee: U256,
    pub reveal_timeout: u64,
    pub secret: Option<Secret>,
    pub secret_registered_at: Option<u64>,
    pub incoming: Leg,
    pub outgoing: Leg,
}

/// Why [`MediatedTransfer::from_parts`] refused its parts.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MediatedTransferPartsError {
    #[error("the incoming lock ({incoming}) and the outgoing lock ({outgoing}) have different secrethashes")]
    LockMismatch { incoming: H256, outgoing: H256 },
    #[error("the secret does not open the locks of {0}", .secrethash)]
    SecretMismatch { secrethash: H256 },
}

impl MediatedTransfer {
    /// This transfer as plain data (the inverse of [`MediatedTransfer::from_parts`]).
    pub fn to_parts(&self) -> MediatedTransferParts {
        MediatedTransferParts {
            incoming_channel: self.incoming_channel,
            payer: self.payer,
            incoming_lock: self.incoming_lock,
            outgoing_channel: self.outgoing_channel,
            payee: self.payee,
            outgoing_lock: self.outgoing_lock,
            fee: self.fee,
            reveal_timeout: self.reveal_timeout,
            secret: self.secret,
            secret_registered_at: self.secret_registered_at,
            incoming: self.incoming,
            outgoing: self.outgoing,
        }
    }

    /// A transfer put together from `parts`, once they hold together (see the module docs).
    pub fn from_parts(p: MediatedTransferParts) -> Result<Self, MediatedTransferPartsError> {
        let secrethash = p.incoming_lock.secrethash;
        if p.outgoing_lock.secrethash != secrethash {
            return Err(MediatedTransferPartsError::LockMismatch {
                incoming: secrethash,
                outgoing: p.outgoing_lock.secrethash,
            });
        }
        if p.secret.is_some_and(|s| s.hash() != secrethash) {
            return Err(MediatedTransferPartsError::SecretMismatch { secrethash });
        }
        Ok(Self {
            version: MEDIATED_TRANSFER_VERSION,
            incoming_channel: p.incoming_channel,
            payer: p.payer,
            incoming_lock: p.incoming_lock,
            outgoing_channel: p.outgoing_channel,
            payee: p.payee,
            outgoing_lock: p.outgoing_lock,
            fee: p.fee,
            reveal_timeout: p.reveal_timeout,
            secret: p.secret,
            secret_registered_at: p.secret_registered_at,
            incoming: p.incoming,
            outgoing: p.outgoing,
        })
    }
}
