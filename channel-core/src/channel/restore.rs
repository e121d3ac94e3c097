//! Rebuilding a channel from proofs kept elsewhere: a participant that lost its own state can
//! take the latest proofs both ways (e.g. from its partner or a backup) and continue with the
//! next nonce. Every proof is checked to be signed by its side, for this channel and ledger,
//! and to carry no locks (a locksroot cannot be restored without the locks behind it).

use super::{Channel, ChannelError};
use crate::proofs::SignedBalanceProof;

impl Channel {
    /// Installs `ours` as the latest proof we signed and `theirs` as the partner's latest,
    /// replacing whatever this side had. Nothing changes if either proof is refused.
    pub fn restore_latest_proofs(
        &mut self,
        ours: Option<SignedBalanceProof>,
        theirs: Option<SignedBalanceProof>,
    ) -> Result<(), ChannelError> {
        for (proof, signer) in [(&ours, self.our.address), (&theirs, self.partner.address)] {
            let Some(p) = proof else { continue };
            self.check_domain(&p.proof.domain, &p.proof.channel_identifier)?;
            if !p.proof.balance.locked_amount.is_zero()
                || p.proof.balance.locksroot != crate::locks::EMPTY_LOCKSROOT
            {
                return Err(ChannelError::BalanceMismatch {
                    field: "locked_amount",
                    expected: "0 (locks cannot be restored)".into(),
                    got: p.proof.balance.locked_amount.to_string(),
                });
            }
            crate::crypto::verify_signer(&p.proof.signing_hash(), &p.signature, signer)?;
        }
        if let Some(p) = ours {
            self.our.latest = Some(p);
            self.our.locks = Default::default();
        }
        if let Some(p) = theirs {
            self.partner.latest = Some(p);
            self.partner.locks = Default::default();
        }
        Ok(())
    }
}
