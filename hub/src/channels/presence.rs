//! Which device channels have a `Payments.ReceivePayments` stream open right now: the hub
//! forwards a mediated payment only to a payee that is online to reveal its secret, and says
//! "payee offline" otherwise instead of locking its own funds for nothing.
//!
//! A stream holds a [`PresenceGuard`] for as long as it runs; dropping it (stream ended,
//! client gone, hub shutting down) takes the channel offline when it was the last one.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use channel_core::U256;

/// Open receive streams per channel.
#[derive(Debug, Default)]
pub struct Presence {
    open: Mutex<HashMap<U256, usize>>,
}

impl Presence {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Marks `channel` online until the guard is dropped.
    pub fn enter(self: &Arc<Self>, channel: U256) -> PresenceGuard {
        if let Ok(mut open) = self.open.lock() {
            *open.entry(channel).or_insert(0) += 1;
        }
        PresenceGuard {
            presence: self.clone(),
            channel,
        }
    }

    /// Whether the device of `channel` has a receive stream open.
    pub fn is_online(&self, channel: &U256) -> bool {
        self.open
            .lock()
            .map(|open| open.get(channel).is_some_and(|n| *n > 0))
            .unwrap_or(false)
    }
}

/// Keeps a channel online while alive.
#[derive(Debug)]
pub struct PresenceGuard {
    presence: Arc<Presence>,
    channel: U256,
}

impl Drop for PresenceGuard {
    fn drop(&mut self) {
        if let Ok(mut open) = self.presence.open.lock() {
            if let Some(n) = open.get_mut(&self.channel) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    open.remove(&self.channel);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_while_any_guard_lives() {
        let p = Presence::new();
        let ch = U256::from(7u64);
        assert!(!p.is_online(&ch));
        let a = p.enter(ch);
        let b = p.enter(ch);
        assert!(p.is_online(&ch));
        drop(a);
        assert!(p.is_online(&ch), "one stream still open");
        drop(b);
        assert!(!p.is_online(&ch));
        assert!(!p.is_online(&U256::from(8u64)));
    }
}
