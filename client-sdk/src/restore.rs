//! Rebuilding the channel when the ledger has an open channel with the hub but the device
//! store does not (the device crashed between opening and persisting, or lost its store).
//!
//! The latest proofs both ways are taken from the hub's `Channels.GetChannel`, each checked to
//! be signed by the right party for this exact channel and domain. Caveat: a dishonest hub
//! could hand back an older device proof than the newest one the device signed before it lost
//! its store; only a store that survives avoids that.
//!
//! The proofs are installed with `Channel::restore_latest_proofs`, which checks them again.

use channel_core::channel::Channel;
use channel_core::SignedBalanceProof;
use tonic::Code;
use voltlane_proto::v1;

use crate::error::ClientError;
use crate::shared::Shared;

/// Asks the hub for the latest proofs of `channel` and installs them. A hub that does not know
/// the channel yet leaves it as it is.
pub(crate) async fn from_hub(shared: &Shared, channel: Channel) -> Result<Channel, ClientError> {
    let channel_id = channel.id();
    let state = crate::payments::hub_channel_state(shared, channel_id).await;
    let state = match state {
        Ok(s) => s,
        Err(e) if e.code() == Some(Code::NotFound) => return Ok(channel),
        Err(e) => return Err(e),
    };
    let decode = |p: Option<v1::SignedBalanceProof>, field: &str| {
        p.map(|p| SignedBalanceProof::try_from(p).map_err(|e| e.within(field)))
            .transpose()
            .map(|p| p.filter(|p| p.proof.nonce > 0))
    };
    let ours = decode(state.device_proof, "device_proof")?;
    let theirs = decode(state.hub_proof, "hub_proof")?;
    restore_proofs(channel, ours, theirs)
}

/// Installs `ours` as our latest proof and `theirs` as the partner's, after checking them.
pub fn restore_proofs(
    mut channel: Channel,
    ours: Option<SignedBalanceProof>,
    theirs: Option<SignedBalanceProof>,
) -> Result<Channel, ClientError> {
    channel
        .restore_latest_proofs(ours, theirs)
        .map_err(|e| ClientError::HubMisbehaved(format!("restored proof refused: {e}")))?;
    Ok(channel)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use channel_core::primitives::U256;
    use channel_core::{Address, Domain, LocalSigner, Signer, H256};

    use super::*;

    #[test]
    fn restored_channel_continues_with_the_next_nonce_both_ways() {
        let dev = LocalSigner::from_bytes(&[1; 32]).unwrap();
        let hub = LocalSigner::from_bytes(&[2; 32]).unwrap();
        let domain = Domain {
            chain_id: U256::from(1u64),
            token_network_address: Address([3; 20]),
        };
        let id = U256::from(4u64);
        let fresh = |us: &LocalSigner, them: &LocalSigner| {
            let mut ch = Channel::new(domain, id, us.address(), them.address());
            ch.handle_ledger_deposit(us.address(), U256::from(100u64))
                .unwrap();
            ch.handle_ledger_deposit(them.address(), U256::from(100u64))
                .unwrap();
            ch
        };
        let mut device = fresh(&dev, &hub);
        let mut hub_side = fresh(&hub, &dev);
        for _ in 0..3 {
            device
                .send_payment(U256::from(5u64), H256::ZERO, &dev)
                .unwrap();
        }
        hub_side
            .send_payment(U256::from(7u64), H256::ZERO, &hub)
            .unwrap();

        let restored = restore_proofs(
            fresh(&dev, &hub),
            device.our_latest_proof().copied(),
            hub_side.our_latest_proof().copied(),
        )
        .unwrap();
        assert_eq!(restored.our().nonce(), 3);
        assert_eq!(restored.partner().nonce(), 1);
        assert_eq!(restored.our_balance().unwrap(), U256::from(100 - 15 + 7));

        // Swapped proofs are refused: each must be signed by its own side.
        let err = restore_proofs(
            fresh(&dev, &hub),
            hub_side.our_latest_proof().copied(),
            None,
        )
        .unwrap_err();
        assert!(matches!(err, ClientError::HubMisbehaved(_)), "{err}");
    }
}
