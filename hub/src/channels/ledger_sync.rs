//! How the ledger's events reach the hub's channels: each durable event with a seq above the
//! last applied one is applied in order, each through the book's one
//! [`transition`](ChannelBook::transition) helper (a `ChannelOpened` with the hub creates the
//! channel if it does not exist yet; everything else goes to the core's idempotent
//! `Channel::handle_ledger_event`), and then the progress is recorded.
//!
//! Events of different channels are applied concurrently (each channel's own events in
//! order), so their durable writes share group commits instead of waiting for one fsync
//! each: a burst of thousands of opens and deposits costs a few flushes, not thousands. A
//! `SecretRegistered` (which concerns every channel holding the lock) is applied on its own,
//! after everything before it and before everything after it.
//!
//! Applying is not reacting: nothing here decides to contest or settle. The watcher does that
//! from the ledger's current state (level-triggered), so it does not matter whether an event
//! was applied by the watcher, by a request catching up, or before a crash. Because every
//! application is idempotent, a crash between a channel write and the progress write only
//! means the event is applied again, harmlessly, after the restart.

use channel_core::channel::Channel;
use channel_core::crypto::Signer;
use channel_core::ledger::{LedgerEvent, LedgerEventKind};
use channel_core::primitives::{Address, U256};

use super::book::{ChannelBook, CHANNEL_RECORD_VERSION, KEY_APPLIED_SEQ, NS_BOOK};
use crate::error::HubError;
use crate::ledger::HubLedger;
use crate::store::{record, WriteBatch};

impl ChannelBook {
    /// Applies ledger events with seq above the last applied one, in order, then records the
    /// progress durably. Serialised: one caller at a time. Returns how many events concerned
    /// the hub's channels.
    pub async fn apply_ledger_events(&self, events: &[LedgerEvent]) -> Result<usize, HubError> {
        let mut applied = self.ledger_progress.lock().await;
        self.apply_locked(&mut applied, events).await
    }

    /// Applies every event of `ledger` the book has not applied yet, waiting for the ones
    /// still being flushed (the book applies durable events only). Cheap when there is none;
    /// otherwise the events are read under the progress lock, so concurrent callers (every
    /// `GetChannel` catches up) read and decode a backlog once, not once each.
    pub async fn catch_up_with(&self, ledger: &HubLedger) -> Result<usize, HubError> {
        let durable = ledger.settled_seq().await?;
        if *self.ledger_progress.lock().await >= durable {
            return Ok(0);
        }
        let mut applied = self.ledger_progress.lock().await;
        let (replay, _live) = ledger.subscribe(applied.saturating_add(1))?;
        self.apply_locked(&mut applied, &replay).await
    }

    async fn apply_locked(
        &self,
        applied: &mut u64,
        events: &[LedgerEvent],
    ) -> Result<usize, HubError> {
        let pending: Vec<&LedgerEvent> = events.iter().filter(|e| e.seq > *applied).collect();
        let Some(last) = pending.last().map(|e| e.seq) else {
            return Ok(0);
        };
        let mut relevant = 0;
        for segment in pending.split_inclusive(|e| is_secret_registration(e)) {
            let (per_channel, barrier) = match segment.split_last() {
                Some((e, rest)) if is_secret_registration(e) => (rest, Some(*e)),
                _ => (segment, None),
            };
            relevant += self.apply_per_channel(per_channel).await?;
            if let Some(e) = barrier {
                relevant += usize::from(self.apply_event(e).await?);
            }
        }
        let mut batch = WriteBatch::new();
        batch.put(
            NS_BOOK,
            KEY_APPLIED_SEQ,
            record::encode(CHANNEL_RECORD_VERSION, &last)?,
        );
        self.store.write(batch)?.durable().await?;
        *applied = last;
        if relevant > 0 {
            self.ledger_moved.notify_one();
        }
        crate::failpoint::fail_point!(
            AFTER_DEVICE_CLOSE_APPLIED if events.iter().any(|e| self.is_device_close(e))
        );
        Ok(relevant)
    }

    /// Applies `events` (none of them a `SecretRegistered`): each channel's in order, the
    /// channels concurrently. Returns how many concerned the hub's channels.
    async fn apply_per_channel(&self, events: &[&LedgerEvent]) -> Result<usize, HubError> {
        let mut by_channel: std::collections::BTreeMap<_, Vec<&LedgerEvent>> =
            std::collections::BTreeMap::new();
        for e in events {
            by_channel.entry(e.kind.channel_id()).or_default().push(e);
        }
        let runs = by_channel.into_values().map(|run| async move {
            // A run that opens one of the hub's channels creates it with the rest of the run
            // applied (one durable write for open + deposit); otherwise event by event.
            // (A replayed open of a channel the book has goes event by event.)
            if let Some((first, rest)) = run.split_first() {
                if let Some((id, partner)) = self.opened_with_me(first) {
                    if self.create_channel(id, partner, rest).await? {
                        return Ok::<_, HubError>(run.len());
                    }
                    let mut relevant = 1;
                    for e in rest {
                        relevant += usize::from(self.apply_event(e).await?);
                    }
                    return Ok(relevant);
                }
            }
            let mut relevant = 0;
            for e in run {
                relevant += usize::from(self.apply_event(e).await?);
            }
            Ok(relevant)
        });
        let mut relevant = 0;
        for r in futures::future::join_all(runs).await {
            relevant += r?;
        }
        Ok(relevant)
    }

    /// The last ledger event seq applied.
    pub async fn applied_seq(&self) -> u64 {
        *self.ledger_progress.lock().await
    }

    /// Applies one event (idempotent). `true` if it concerns one of the hub's channels.
    pub(super) async fn apply_event(&self, event: &LedgerEvent) -> Result<bool, HubError> {
        if matches!(event.kind, LedgerEventKind::ChannelOpened { .. }) {
            let Some((id, partner)) = self.opened_with_me(event) else {
                return Ok(false);
            };
            self.create_channel(id, partner, &[]).await?;
            return Ok(true);
        }
        if let LedgerEventKind::SecretRegistered { secrethash, .. } = &event.kind {
            // No channel id: it concerns every channel holding a lock with this secrethash
            // (the registration makes those locks claimable and no longer expirable).
            return self.apply_secret_registered(event, secrethash).await;
        }
        let Some(id) = event.kind.channel_id() else {
            return Ok(false);
        };
        let Some(shared) = self.get(&id)? else {
            return Ok(false);
        };
        let applied = self
            .transition(&shared, |ch: &mut Channel, batch| {
                self.prune_lock_archive(batch, &id, ch.lock_archive_after(event))?;
                Ok(ch.handle_ledger_event(event))
            })
            .await?;
        if let Err(e) = applied {
            // The ledger is the authority; a disagreement is logged, not fatal.
            tracing::warn!(channel = %id, error = %e, "ledger event not applicable to channel");
        }
        Ok(true)
    }

    /// The channel id and the partner of a `ChannelOpened` between the hub and someone.
    fn opened_with_me(&self, event: &LedgerEvent) -> Option<(U256, Address)> {
        let me = self.operator.address();
        match &event.kind {
            LedgerEventKind::ChannelOpened {
                channel_id,
                participant1,
                participant2,
                ..
            } if *participant1 == me => Some((*channel_id, *participant2)),
            LedgerEventKind::ChannelOpened {
                channel_id,
                participant1,
                participant2,
                ..
            } if *participant2 == me => Some((*channel_id, *participant1)),
            _ => None,
        }
    }

    /// Applies a `SecretRegistered` to each hub channel with a pending lock of `secrethash`.
    async fn apply_secret_registered(
        &self,
        event: &LedgerEvent,
        secrethash: &channel_core::H256,
    ) -> Result<bool, HubError> {
        let mut any = false;
        for id in self.channels_with_locks() {
            let Some(shared) = self.get(&id)? else {
                continue;
            };
            let holds = {
                let ch = shared.lock().await;
                ch.our().locks.contains(secrethash) || ch.partner().locks.contains(secrethash)
            };
            if !holds {
                continue;
            }
            any = true;
            let applied = self
                .transition(&shared, |ch: &mut Channel, _| {
                    Ok(ch.handle_ledger_event(event))
                })
                .await?;
            if let Err(e) = applied {
                tracing::warn!(channel = %id, error = %e, "secret registration not applicable");
            }
        }
        Ok(any)
    }

    #[cfg(feature = "failpoints")]
    fn is_device_close(&self, event: &LedgerEvent) -> bool {
        matches!(event.kind, LedgerEventKind::ChannelClosed { closing_participant, .. }
            if closing_participant != self.operator.address())
    }
}

fn is_secret_registration(e: &LedgerEvent) -> bool {
    matches!(e.kind, LedgerEventKind::SecretRegistered { .. })
}
