//! The session mailbox: open sessions by id, their parties, the publications and receipt
//! signatures to replay, and the watchers to pass them to.
//!
//! Watchers get events through bounded channels filled with `try_send`: a watcher that falls
//! behind is dropped (its stream ends) and re-watches, getting the state replayed, instead of
//! slowing the payee's publishing down.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use channel_core::crypto::verify_signer;
use channel_core::session::{MeterUnit, Publication, SessionError, SignedSessionOffer};
use channel_core::{Address, Domain, H256, U256};
use tokio::sync::mpsc;
use tonic::Status;
use voltlane_proto::convert::address_bytes;
use voltlane_proto::convert::sessions::ReceiptPart;
use voltlane_proto::v1;

use crate::error::HubError;
use crate::ledger::HubLedger;

/// A relayed session nobody watched for this long may be dropped to make room.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

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
    last_activity: Instant,
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

    fn idle(&mut self, now: Instant) -> bool {
        !self.watching(Role::Payer)
            && !self.watching(Role::Payee)
            && now.duration_since(self.last_activity) >= IDLE_TIMEOUT
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
    sessions: Arc<Mutex<HashMap<H256, Relayed>>>,
    domain: Domain,
    ledger: HubLedger,
    max_sessions: usize,
}

impl SessionRelay {
    pub fn new(domain: Domain, ledger: HubLedger, max_sessions: usize) -> Self {
        Self {
            sessions: Arc::new(Mutex::new(HashMap::new())),
            domain,
            ledger,
            max_sessions,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, HashMap<H256, Relayed>>, HubError> {
        self.sessions
            .lock()
            .map_err(|_| HubError::Internal("session relay lock poisoned".into()))
    }

    /// Sessions currently relayed.
    pub fn len(&self) -> usize {
        self.sessions.lock().map_or(0, |s| s.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A read-only view of every relayed session, ordered by session id.
    pub fn snapshot(&self) -> Result<Vec<SessionSnapshot>, HubError> {
        let sessions = self.lock()?;
        let mut out: Vec<_> = sessions.values().map(SessionSnapshot::of).collect();
        out.sort_by_key(|s| s.id);
        Ok(out)
    }

    /// Opens (or reopens) `offer` for its payee `caller`; returns the payer that accepted,
    /// if any. See `Sessions.OpenSession`.
    pub fn open(
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
        let mut sessions = self.lock()?;
        if let Some(s) = sessions.get_mut(&o.session_id) {
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
            s.last_activity = Instant::now();
            return Ok(s.payer);
        }
        if sessions.len() >= self.max_sessions {
            let now = Instant::now();
            sessions.retain(|_, s| !s.idle(now));
            if sessions.len() >= self.max_sessions {
                return Err(HubError::TooManySessions(self.max_sessions));
            }
        }
        sessions.insert(
            o.session_id,
            Relayed {
                offer,
                reserved_payer: payer,
                payer: None,
                first: None,
                latest: None,
                payer_part: None,
                payee_part: None,
                payer_watchers: Vec::new(),
                payee_watchers: Vec::new(),
                last_activity: Instant::now(),
            },
        );
        Ok(None)
    }

    /// `caller` accepts session `id` as its payer; returns the offer.
    pub fn accept(&self, caller: Address, id: H256) -> Result<SignedSessionOffer, HubError> {
        let now = self.ledger.now()?;
        let mut sessions = self.lock()?;
        let s = sessions.get_mut(&id).ok_or(HubError::UnknownSession(id))?;
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
            s.notify(
                Role::Payee,
                v1::session_event::Kind::Accepted(v1::SessionAccepted {
                    payer: address_bytes(&caller),
                }),
            );
        }
        s.last_activity = Instant::now();
        Ok(s.offer)
    }

    /// The payee `caller` publishes `p` on its session; returns whether the payer watched.
    pub fn publish(&self, caller: Address, p: Publication) -> Result<bool, HubError> {
        let now = self.ledger.now()?;
        let id = p.reading.reading.session_id;
        let mut sessions = self.lock()?;
        let s = sessions.get_mut(&id).ok_or(HubError::UnknownSession(id))?;
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
        s.latest = Some(p);
        s.last_activity = Instant::now();
        s.notify(
            Role::Payer,
            v1::session_event::Kind::Publication((&p).into()),
        );
        Ok(s.watching(Role::Payer))
    }

    /// `caller` signs the receipt in `part`; passed on to the other side.
    pub fn sign_receipt(&self, caller: Address, part: ReceiptPart) -> Result<(), HubError> {
        let id = part.receipt.session_id;
        let mut sessions = self.lock()?;
        let s = sessions.get_mut(&id).ok_or(HubError::UnknownSession(id))?;
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
        *slot = Some(part);
        s.last_activity = Instant::now();
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
        let mut sessions = self.lock()?;
        let s = sessions.get_mut(&id).ok_or(HubError::UnknownSession(id))?;
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
        s.last_activity = Instant::now();
        s.notify(other, presence(true));
        Ok(role)
    }

    /// A watcher of `role` on session `id` went away: tell the other side if none is left.
    pub fn watcher_gone(&self, id: H256, role: Role) {
        let Ok(mut sessions) = self.lock() else {
            return;
        };
        if let Some(s) = sessions.get_mut(&id) {
            s.last_activity = Instant::now();
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

fn not_party(caller: Address, id: H256) -> HubError {
    HubError::PermissionDenied(format!(
        "{caller} is neither the payee nor the accepted payer of session {id}"
    ))
}
