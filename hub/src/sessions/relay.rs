//! The session mailbox: open sessions by id, their parties, the publications and receipt
//! signatures to replay, and the watchers to pass them to.
//!
//! Watchers get events through bounded channels filled with `try_send`: a watcher that falls
//! behind is dropped (its stream ends) and re-watches, getting the state replayed, instead of
//! slowing the payee's publishing down.
//!
//! What a session costs the relay is bounded per key: only a payee with an open channel
//! holding a deposit of its own opens sessions, at most [`RelayLimits::max_sessions_per_key`]
//! of them, and a session nobody uses for [`RelayLimits::idle_timeout`] expires. Use is what
//! moves a session on: its opening, its payer's acceptance, a new reading or bill, a new
//! receipt signature. Reopening, re-accepting, republishing the same publication and watching
//! are not use, so a key keeps its sessions only by metering on them.

use std::collections::hash_map::Entry;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use channel_core::channel::ChannelPhase;
use channel_core::crypto::verify_signer;
use channel_core::session::{MeterUnit, Publication, SessionError, SignedSessionOffer};
use channel_core::{Address, Domain, H256, U256};
use tokio::sync::mpsc;
use tonic::Status;
use voltlane_proto::convert::address_bytes;
use voltlane_proto::convert::sessions::ReceiptPart;
use voltlane_proto::v1;

use crate::channels::ChannelEngine;
use crate::error::HubError;
use crate::ledger::HubLedger;

/// A relayed session unused for this long expires, unless configured
/// (`--session-idle-timeout-secs`).
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Sessions one payee key may have relayed at once, unless configured
/// (`--max-sessions-per-key`).
pub const MAX_SESSIONS_PER_KEY: usize = 16;

/// Events buffered per watcher before it counts as fallen behind.
pub const WATCH_BUFFER: usize = 64;

/// Where a watcher's events go.
pub type WatchSender = mpsc::Sender<Result<v1::SessionEvent, Status>>;

/// Which side of a session a caller is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Payer,
    Payee,
}

#[derive(Debug)]
struct Relayed {
    offer: SignedSessionOffer,
    /// Only this payer may accept (a resumed session).
    reserved_payer: Option<Address>,
    payer: Option<Address>,
    first: Option<Publication>,
    latest: Option<Publication>,
    payer_part: Option<ReceiptPart>,
    payee_part: Option<ReceiptPart>,
    payer_watchers: Vec<WatchSender>,
    payee_watchers: Vec<WatchSender>,
    /// When the session was last used: opened, accepted by its payer, given a new reading or
    /// bill, or a new receipt signature. Reopening, re-accepting, republishing the latest
    /// publication, signing the same receipt again and watching leave it alone: a session
    /// kept open by those alone expires.
    last_used: Instant,
}

impl Relayed {
    fn role_of(&self, who: Address) -> Option<Role> {
        if who == self.offer.offer.payee {
            Some(Role::Payee)
        } else if self.payer == Some(who) {
            Some(Role::Payer)
        } else {
            None
        }
    }

    fn watchers(&mut self, role: Role) -> &mut Vec<WatchSender> {
        match role {
            Role::Payer => &mut self.payer_watchers,
            Role::Payee => &mut self.payee_watchers,
        }
    }

    /// Sends `event` to every watcher of `role`, dropping those that are gone or behind.
    fn notify(&mut self, role: Role, event: v1::session_event::Kind) {
        let event = v1::SessionEvent { kind: Some(event) };
        self.watchers(role)
            .retain(|w| w.try_send(Ok(event.clone())).is_ok());
    }

    fn watching(&mut self, role: Role) -> bool {
        let watchers = self.watchers(role);
        watchers.retain(|w| !w.is_closed());
        !watchers.is_empty()
    }

    /// Unused for `idle_timeout` (watched or not): the session is gone.
    fn expired(&self, now: Instant, idle_timeout: Duration) -> bool {
        now.saturating_duration_since(self.last_used) >= idle_timeout
    }
}

/// The relayed sessions, by id and by payee.
#[derive(Debug, Default)]
struct Table {
    sessions: HashMap<H256, Relayed>,
    /// The ids of each payee's sessions (for the per-key cap, without a scan of the table).
    by_payee: HashMap<Address, Vec<H256>>,
}

impl Table {
    fn insert(&mut self, s: Relayed) {
        let (id, payee) = (s.offer.offer.session_id, s.offer.offer.payee);
        self.by_payee.entry(payee).or_default().push(id);
        self.sessions.insert(id, s);
    }

    /// Drops session `id`; its watchers' streams end with it.
    fn remove(&mut self, id: &H256) {
        let Some(s) = self.sessions.remove(id) else {
            return;
        };
        if let Entry::Occupied(mut ids) = self.by_payee.entry(s.offer.offer.payee) {
            ids.get_mut().retain(|i| i != id);
            if ids.get().is_empty() {
                ids.remove();
            }
        }
    }

    /// How many sessions `payee` has relayed.
    fn count_of(&self, payee: &Address) -> usize {
        self.by_payee.get(payee).map_or(0, Vec::len)
    }

    /// Drops every expired session of `payee`.
    fn expire_of(&mut self, payee: &Address, now: Instant, idle_timeout: Duration) {
        let expired: Vec<H256> = self
            .by_payee
            .get(payee)
            .into_iter()
            .flatten()
            .filter(|id| {
                self.sessions
                    .get(id)
                    .is_some_and(|s| s.expired(now, idle_timeout))
            })
            .copied()
            .collect();
        for id in &expired {
            self.remove(id);
        }
    }

    /// Drops every expired session.
    fn expire_all(&mut self, now: Instant, idle_timeout: Duration) {
        let expired: Vec<H256> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.expired(now, idle_timeout))
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            self.remove(id);
        }
    }

    /// Session `id` if it has not expired; an expired one is dropped here and is as unknown
    /// as one never opened.
    fn live(
        &mut self,
        id: H256,
        now: Instant,
        idle_timeout: Duration,
    ) -> Result<&mut Relayed, HubError> {
        if self
            .sessions
            .get(&id)
            .is_some_and(|s| s.expired(now, idle_timeout))
        {
            self.remove(&id);
        }
        self.sessions
            .get_mut(&id)
            .ok_or(HubError::UnknownSession(id))
    }
}

/// How much the relay holds: sessions in all, sessions per payee key, and how long an unused
/// session lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// `--max-sessions`.
    pub max_sessions: usize,
    /// `--max-sessions-per-key`.
    pub max_sessions_per_key: usize,
    /// `--session-idle-timeout-secs`.
    pub idle_timeout: Duration,
}

impl RelayLimits {
    /// At most `max_sessions` in all, the defaults otherwise.
    pub fn new(max_sessions: usize) -> Self {
        Self {
            max_sessions,
            max_sessions_per_key: MAX_SESSIONS_PER_KEY,
            idle_timeout: IDLE_TIMEOUT,
        }
    }
}

/// The relay's monotonic clock; unit tests move it forward instead of sleeping.
#[derive(Clone, Debug, Default)]
struct Clock {
    #[cfg(test)]
    skew: Arc<std::sync::atomic::AtomicU64>,
}

impl Clock {
    #[cfg(not(test))]
    fn now(&self) -> Instant {
        Instant::now()
    }

    #[cfg(test)]
    fn now(&self) -> Instant {
        let now = Instant::now();
        let skew = self.skew.load(std::sync::atomic::Ordering::SeqCst);
        now.checked_add(Duration::from_millis(skew)).unwrap_or(now)
    }

    #[cfg(test)]
    fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.skew.fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A read-only view of one relayed session, for the dashboard.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSnapshot {
    pub id: H256,
    pub payee: Address,
    /// The payer that accepted, if one has.
    pub payer: Option<Address>,
    pub unit: MeterUnit,
    pub price_per_unit: U256,
    /// Sequence number and register of the latest publication, if any.
    pub latest: Option<(u64, u64)>,
    /// The latest register less the first publication's register (what the session metered
    /// while relayed here).
    pub units_metered: u64,
}

impl SessionSnapshot {
    fn of(s: &Relayed) -> Self {
        let latest = s.latest.map(|p| p.reading.reading);
        let first = s.first.map(|p| p.reading.reading);
        let units_metered = match (first, latest) {
            (Some(f), Some(l)) => l.register.saturating_sub(f.register),
            _ => 0,
        };
        Self {
            id: s.offer.offer.session_id,
            payee: s.offer.offer.payee,
            payer: s.payer,
            unit: s.offer.offer.unit,
            price_per_unit: s.offer.offer.price_per_unit,
            latest: latest.map(|r| (r.seq, r.register)),
            units_metered,
        }
    }
}

fn presence(watching: bool) -> v1::session_event::Kind {
    v1::session_event::Kind::Presence(v1::PeerPresence { watching })
}

fn session_error(e: SessionError) -> HubError {
    HubError::Session(e)
}

/// The hub's open sessions.
#[derive(Clone, Debug)]
pub struct SessionRelay {
    table: Arc<Mutex<Table>>,
    domain: Domain,
    ledger: HubLedger,
    limits: RelayLimits,
    /// The hub's channels, where a payee's deposit is looked up. Without them (a relay
    /// built with [`SessionRelay::new`] alone) no session opens.
    channels: Option<ChannelEngine>,
    clock: Clock,
}

impl SessionRelay {
    /// A relay of at most `max_sessions` sessions, with the default per-key cap and idle
    /// timeout, that opens no session until it is given the hub's channels
    /// ([`SessionRelay::with_channels`]).
    pub fn new(domain: Domain, ledger: HubLedger, max_sessions: usize) -> Self {
        Self {
            table: Arc::new(Mutex::new(Table::default())),
            domain,
            ledger,
            limits: RelayLimits::new(max_sessions),
            channels: None,
            clock: Clock::default(),
        }
    }

    /// The same relay with `limits`.
    pub fn with_limits(mut self, limits: RelayLimits) -> Self {
        self.limits = limits;
        self
    }

    /// The same relay, opening sessions for payees with an open, funded channel in
    /// `channels`.
    pub fn with_channels(mut self, channels: ChannelEngine) -> Self {
        self.channels = Some(channels);
        self
    }

    /// Moves the relay's clock forward by `by` (tests of the idle timeout).
    #[cfg(test)]
    pub(crate) fn advance_clock(&self, by: Duration) {
        self.clock.advance(by);
    }

    fn lock(&self) -> Result<MutexGuard<'_, Table>, HubError> {
        self.table
            .lock()
            .map_err(|_| HubError::Internal("session relay lock poisoned".into()))
    }

    /// Sessions currently relayed (expired ones included until they are dropped).
    pub fn len(&self) -> usize {
        self.table.lock().map_or(0, |t| t.sessions.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only view of every relayed session, ordered by session id.
    pub fn snapshot(&self) -> Result<Vec<SessionSnapshot>, HubError> {
        let table = self.lock()?;
        let mut out: Vec<_> = table.sessions.values().map(SessionSnapshot::of).collect();
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// Opens (or reopens) `offer` for its payee `caller`; returns the payer that accepted,
    /// if any. See `Sessions.OpenSession`.
    ///
    /// Refused unless `caller` has an open channel with the hub holding a deposit of its own
    /// ([`HubError::SessionUnfunded`]); a new session beyond the caller's cap
    /// ([`HubError::TooManySessionsForKey`]) or the relay's ([`HubError::TooManySessions`])
    /// is refused once expired sessions have made what room they can. Reopening a session
    /// does not count as using it: it expires `idle_timeout` after its last use all the same.
    pub async fn open(
        &self,
        caller: Address,
        offer: SignedSessionOffer,
        payer: Option<Address>,
    ) -> Result<Option<Address>, HubError> {
        let o = &offer.offer;
        if caller != o.payee {
            return Err(HubError::PermissionDenied(format!(
                "only the offer's payee {} may open session {}",
                o.payee, o.session_id
            )));
        }
        match payer {
            // Resuming an accepted session: the offer's expiry bounded acceptance only.
            Some(_) => offer.verify_terms(&self.domain),
            None => offer.verify(&self.domain, self.ledger.now()?),
        }
        .map_err(session_error)?;
        self.require_funded(caller).await?;
        let (now, idle) = (self.clock.now(), self.limits.idle_timeout);
        let mut table = self.lock()?;
        if let Ok(s) = table.live(o.session_id, now, idle) {
            if s.offer != offer {
                return Err(HubError::SessionExists(o.session_id));
            }
            if let (Some(want), Some(have)) = (payer, s.payer) {
                if want != have {
                    return Err(HubError::SessionTaken {
                        session: o.session_id,
                        payer: have,
                    });
                }
            }
            s.reserved_payer = payer.or(s.reserved_payer);
            return Ok(s.payer);
        }
        let per_key = self.limits.max_sessions_per_key;
        if table.count_of(&caller) >= per_key {
            table.expire_of(&caller, now, idle);
            if table.count_of(&caller) >= per_key {
                return Err(HubError::TooManySessionsForKey {
                    key: caller,
                    max: per_key,
                });
            }
        }
        if table.sessions.len() >= self.limits.max_sessions {
            table.expire_all(now, idle);
            if table.sessions.len() >= self.limits.max_sessions {
                return Err(HubError::TooManySessions(self.limits.max_sessions));
            }
        }
        table.insert(Relayed {
            offer,
            reserved_payer: payer,
            payer: None,
            first: None,
            latest: None,
            payer_part: None,
            payee_part: None,
            payer_watchers: Vec::new(),
            payee_watchers: Vec::new(),
            last_used: now,
        });
        Ok(None)
    }

    /// Ok if `caller` has an open channel with the hub holding a deposit of its own. A
    /// deposit the book has not applied yet counts: on a miss the book catches up with the
    /// ledger and looks again.
    async fn require_funded(&self, caller: Address) -> Result<(), HubError> {
        let channels = self
            .channels
            .as_ref()
            .ok_or(HubError::SessionUnfunded(caller))?;
        if has_funded_channel(channels, caller).await? {
            return Ok(());
        }
        channels.catch_up().await?;
        if has_funded_channel(channels, caller).await? {
            Ok(())
        } else {
            Err(HubError::SessionUnfunded(caller))
        }
    }

    /// `caller` accepts session `id` as its payer; returns the offer.
    pub fn accept(&self, caller: Address, id: H256) -> Result<SignedSessionOffer, HubError> {
        let now = self.ledger.now()?;
        let (clock, idle) = (self.clock.now(), self.limits.idle_timeout);
        let mut table = self.lock()?;
        let s = table.live(id, clock, idle)?;
        if caller == s.offer.offer.payee {
            return Err(HubError::PermissionDenied(format!(
                "the payee {caller} cannot pay its own session {id}"
            )));
        }
        if let Some(holder) = s.payer.or(s.reserved_payer) {
            if holder != caller {
                return Err(HubError::SessionTaken {
                    session: id,
                    payer: holder,
                });
            }
        }
        if s.payer.is_none() {
            if s.reserved_payer.is_none() {
                s.offer.verify(&self.domain, now).map_err(session_error)?;
            }
            s.payer = Some(caller);
            s.last_used = clock;
            s.notify(
                Role::Payee,
                v1::session_event::Kind::Accepted(v1::SessionAccepted {
                    payer: address_bytes(&caller),
                }),
            );
        }
        Ok(s.offer)
    }

    /// The payee `caller` publishes `p` on its session; returns whether the payer watched.
    pub fn publish(&self, caller: Address, p: Publication) -> Result<bool, HubError> {
        let now = self.ledger.now()?;
        let id = p.reading.reading.session_id;
        let (clock, idle) = (self.clock.now(), self.limits.idle_timeout);
        let mut table = self.lock()?;
        let s = table.live(id, clock, idle)?;
        if caller != s.offer.offer.payee {
            return Err(HubError::PermissionDenied(format!(
                "only the payee {} publishes on session {id}",
                s.offer.offer.payee
            )));
        }
        // Before a payer (re-)accepts, e.g. right after a hub restart, the publication is
        // kept as the latest and replayed to the payer when it watches.
        p.verify(&s.offer.offer, now).map_err(session_error)?;
        if let Some(latest) = &s.latest {
            let (last, got) = (latest.reading.reading.seq, p.reading.reading.seq);
            if got < last || (got == last && latest.reading != p.reading) {
                return Err(HubError::Session(SessionError::SeqNotIncreasing {
                    last,
                    got,
                }));
            }
        }
        s.first.get_or_insert(p);
        if s.latest != Some(p) {
            s.latest = Some(p);
            s.last_used = clock;
        }
        s.notify(
            Role::Payer,
            v1::session_event::Kind::Publication((&p).into()),
        );
        Ok(s.watching(Role::Payer))
    }

    /// `caller` signs the receipt in `part`; passed on to the other side.
    pub fn sign_receipt(&self, caller: Address, part: ReceiptPart) -> Result<(), HubError> {
        let id = part.receipt.session_id;
        let (clock, idle) = (self.clock.now(), self.limits.idle_timeout);
        let mut table = self.lock()?;
        let s = table.live(id, clock, idle)?;
        let role = s.role_of(caller).ok_or_else(|| not_party(caller, id))?;
        let r = &part.receipt;
        if r.payee != s.offer.offer.payee || Some(r.payer) != s.payer {
            return Err(HubError::Session(SessionError::ReceiptMismatch {
                field: "payer/payee",
                expected: format!("payer {:?}, payee {}", s.payer, s.offer.offer.payee),
                got: format!("payer {}, payee {}", r.payer, r.payee),
            }));
        }
        verify_signer(&r.signing_hash(), &part.signature, caller).map_err(|source| {
            HubError::Session(SessionError::BadReceiptSignature {
                role: match role {
                    Role::Payer => "payer",
                    Role::Payee => "payee",
                },
                source,
            })
        })?;
        let (slot, other) = match role {
            Role::Payer => (&mut s.payer_part, Role::Payee),
            Role::Payee => (&mut s.payee_part, Role::Payer),
        };
        if *slot != Some(part) {
            *slot = Some(part);
            s.last_used = clock;
        }
        s.notify(
            other,
            v1::session_event::Kind::ReceiptSignature((&part).into()),
        );
        Ok(())
    }

    /// Registers `tx` as a watcher of session `id` for `caller` and queues the replay;
    /// returns the caller's role.
    pub fn watch(&self, caller: Address, id: H256, tx: WatchSender) -> Result<Role, HubError> {
        use v1::session_event::Kind;
        let (clock, idle) = (self.clock.now(), self.limits.idle_timeout);
        let mut table = self.lock()?;
        let s = table.live(id, clock, idle)?;
        let role = s.role_of(caller).ok_or_else(|| not_party(caller, id))?;
        let other = match role {
            Role::Payer => Role::Payee,
            Role::Payee => Role::Payer,
        };
        let mut replay = Vec::new();
        match role {
            Role::Payee => {
                if let Some(payer) = s.payer {
                    replay.push(Kind::Accepted(v1::SessionAccepted {
                        payer: address_bytes(&payer),
                    }));
                }
                if let Some(part) = &s.payer_part {
                    replay.push(Kind::ReceiptSignature(part.into()));
                }
            }
            Role::Payer => {
                if let Some(first) = &s.first {
                    replay.push(Kind::Publication(first.into()));
                }
                if let Some(latest) = s.latest.filter(|l| Some(l) != s.first.as_ref()) {
                    replay.push(Kind::Publication((&latest).into()));
                }
                if let Some(part) = &s.payee_part {
                    replay.push(Kind::ReceiptSignature(part.into()));
                }
            }
        }
        replay.push(presence(s.watching(other)));
        for kind in replay {
            tx.try_send(Ok(v1::SessionEvent { kind: Some(kind) }))
                .map_err(|_| {
                    HubError::Internal("new session watcher could not take its replay".into())
                })?;
        }
        s.watchers(role).push(tx);
        s.notify(other, presence(true));
        Ok(role)
    }

    /// A watcher of `role` on session `id` went away: tell the other side if none is left.
    pub fn watcher_gone(&self, id: H256, role: Role) {
        let Ok(mut table) = self.lock() else {
            return;
        };
        if let Some(s) = table.sessions.get_mut(&id) {
            if !s.watching(role) {
                let other = match role {
                    Role::Payer => Role::Payee,
                    Role::Payee => Role::Payer,
                };
                s.notify(other, presence(false));
            }
        }
    }
}

/// Whether `who` has an open channel with the hub holding a deposit of `who`'s own (the hub's
/// deposit alone does not count).
async fn has_funded_channel(channels: &ChannelEngine, who: Address) -> Result<bool, HubError> {
    for (_, shared) in channels.book.channels_of(&who)? {
        let ch = shared.lock().await;
        if ch.phase() == ChannelPhase::Open && !ch.partner().total_deposit.is_zero() {
            return Ok(true);
        }
    }
    Ok(false)
}

fn not_party(caller: Address, id: H256) -> HubError {
    HubError::PermissionDenied(format!(
        "{caller} is neither the payee nor the accepted payer of session {id}"
    ))
}
