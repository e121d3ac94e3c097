//! The auto-deposit task: with `--auto-deposit <amount>`, the hub keeps its deposit in every
//! open device channel at least at that amount, so a device has receiving capacity as soon
//! as its channel opens.
//!
//! Level-triggered, like the watcher's monitor: it looks at the ledger's *current* record of
//! a channel and asks the core (`channel_core::liquidity::auto_deposit`) what to do, then
//! sends the new total deposit as a ledger operation (on either ledger). At start-up (and after falling
//! behind the event stream) it passes over every channel of the hub; after that, each burst
//! of ledger events is looked at for the hub channels it names only, so a hub with many
//! channels does not pass over all of them for every open (which made setting up N channels
//! cost O(N²)). A crash between deciding and depositing, or a channel opened while the hub
//! was down, is handled by the start-up pass; a deposit already made decides "nothing". A
//! channel the operator cannot afford is logged (once while it stays unaffordable) and
//! skipped; a later mint to the operator looks at those channels again.

use std::collections::BTreeSet;
use std::future::Future;

use channel_core::ledger::{ChannelPhase, LedgerEventKind, LedgerOp};
use channel_core::liquidity::{auto_deposit, AutoDeposit};
use channel_core::primitives::{Address, U256};
use tokio::sync::broadcast::error::{RecvError, TryRecvError};

use crate::ledger::HubLedger;

/// Runs the policy `policy` (the hub's wanted deposit per device channel) for the operator
/// `hub` until `shutdown` completes; does nothing when `policy` is `None`.
pub async fn run(
    ledger: HubLedger,
    hub: Address,
    policy: Option<U256>,
    shutdown: impl Future<Output = ()>,
) {
    let Some(policy) = policy else { return };
    tracing::info!(%policy, "auto-deposit policy on");
    tokio::pin!(shutdown);
    let mut warned = BTreeSet::new();
    loop {
        // Subscribe before the pass, so a change made during it triggers the next one.
        let subscribed = ledger
            .durable_seq()
            .and_then(|seq| ledger.subscribe(seq.saturating_add(1)));
        let mut rx = match subscribed {
            Ok((_, rx)) => rx,
            Err(e) => {
                tracing::error!(error = %e, "auto-deposit cannot subscribe to the ledger");
                return;
            }
        };
        pass(&ledger, hub, policy, &mut warned).await;
        loop {
            tokio::select! {
                _ = &mut shutdown => return,
                event = rx.recv() => match event {
                    Ok(first) => {
                        // Coalesce a burst of events: the hub's channels they name, and
                        // whether the operator got tokens (the skipped ones may fit now).
                        let mut touched = BTreeSet::new();
                        let mut minted = false;
                        let mut lagged = false;
                        let mut next = Some(first);
                        while let Some(p) = next {
                            if p.concerns(hub) {
                                if let Some(id) = p.event.kind.channel_id() {
                                    touched.insert(id);
                                }
                                minted |= matches!(p.event.kind, LedgerEventKind::Minted { .. });
                            }
                            next = match rx.try_recv() {
                                Ok(p) => Some(p),
                                Err(TryRecvError::Lagged(_)) => {
                                    lagged = true;
                                    None
                                }
                                Err(_) => None,
                            };
                        }
                        if lagged {
                            // Events were missed: look at every channel again.
                            pass(&ledger, hub, policy, &mut warned).await;
                            continue;
                        }
                        if minted {
                            touched.extend(warned.iter().copied());
                        }
                        for id in touched {
                            top_up(&ledger, hub, policy, id, &mut warned).await;
                        }
                    }
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return,
                },
            }
        }
    }
}

/// One pass over every open channel of the hub on the ledger. `warned` holds the channels
/// reported unaffordable and not topped up since.
pub async fn pass(ledger: &HubLedger, hub: Address, policy: U256, warned: &mut BTreeSet<U256>) {
    let open: Vec<U256> = match ledger.read(|l| {
        l.channel_records_of(hub)
            .into_iter()
            .filter(|c| c.phase == ChannelPhase::Opened)
            .map(|c| c.id)
            .collect()
    }) {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = %e, "auto-deposit cannot read the ledger");
            return;
        }
    };
    warned.retain(|id| open.contains(id));
    for id in open {
        top_up(ledger, hub, policy, id, warned).await;
    }
}

/// Decides for channel `id` from the ledger's current record and the operator's tokens
/// and, when the policy asks for it, raises the hub's total deposit. The operation names the
/// new *total*, so a top-up sent twice (a pass racing a crash, or a chain transaction whose
/// effect was not mirrored yet) is refused by the ledger rather than doubled.
async fn top_up(
    ledger: &HubLedger,
    hub: Address,
    policy: U256,
    id: U256,
    warned: &mut BTreeSet<U256>,
) {
    let decided = match ledger.read(|l| l.channel_record(id).cloned()) {
        Ok(None) => Ok(AutoDeposit::Nothing),
        Ok(Some(record)) => ledger
            .token_balance(hub)
            .await
            .map(|available| auto_deposit(policy, &record, hub, available)),
        Err(e) => Err(e),
    };
    let planned = match decided {
        Ok(AutoDeposit::TopUp(p)) => p,
        Ok(AutoDeposit::Nothing) => {
            warned.remove(&id);
            return;
        }
        Ok(AutoDeposit::Unaffordable { needed, available }) => {
            if warned.insert(id) {
                tracing::warn!(channel = %id, %needed, %available, "auto-deposit skipped: the operator lacks the tokens");
            }
            return;
        }
        Err(e) => {
            tracing::error!(channel = %id, error = %e, "auto-deposit cannot read the ledger");
            return;
        }
    };
    let op = LedgerOp::SetTotalDeposit {
        channel_id: id,
        participant: hub,
        total_deposit: planned.total_deposit,
    };
    match ledger.execute(hub, &op).await {
        Ok(_) => {
            warned.remove(&id);
            tracing::info!(channel = %id, total_deposit = %planned.total_deposit, added = %planned.added, "auto-deposit: hub deposit raised");
        }
        Err(e) => tracing::warn!(channel = %id, error = %e, "auto-deposit refused"),
    }
}
