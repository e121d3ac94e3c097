//! Per-channel publish/subscribe for what the hub pushes to devices (its signed proofs,
//! payer events): a message reaches only the streams of its own channel, so a hub with
//! thousands of open streams wakes one of them per message, not all of them.
//!
//! Each channel gets a bounded `broadcast` on its first subscriber; a subscriber that falls
//! behind sees `Lagged` and reconnects for a replay from the store. A channel's sender is
//! dropped once nobody listens.

use std::collections::HashMap;
use std::sync::Mutex;

use channel_core::U256;
use tokio::sync::broadcast;

/// Messages buffered per channel and subscriber before it counts as lagging (and reconnects
/// for a replay). A channel's buffer is allocated whole on its first subscriber, so it stays
/// small: one device's stream rarely has more than its pipelining window outstanding.
pub const FANOUT_BUFFER: usize = 256;

/// Messages of type `T` routed by channel id.
#[derive(Debug)]
pub struct Fanout<T> {
    senders: Mutex<HashMap<U256, broadcast::Sender<T>>>,
    capacity: usize,
}

impl<T: Clone> Fanout<T> {
    /// Each channel buffers up to `capacity` messages per subscriber.
    pub fn new(capacity: usize) -> Self {
        Self {
            senders: Mutex::new(HashMap::new()),
            capacity: capacity.max(1),
        }
    }

    /// A receiver of every message published for `channel` from now on.
    pub fn subscribe(&self, channel: U256) -> broadcast::Receiver<T> {
        match self.senders.lock() {
            Ok(mut map) => map
                .entry(channel)
                .or_insert_with(|| broadcast::channel(self.capacity).0)
                .subscribe(),
            // A poisoned map: a receiver that never gets anything; the device replays from
            // the store when it reconnects.
            Err(_) => broadcast::channel(1).1,
        }
    }

    /// Sends `msg` to the subscribers of `channel` (none is fine).
    pub fn publish(&self, channel: U256, msg: T) {
        if let Ok(mut map) = self.senders.lock() {
            if let Some(tx) = map.get(&channel) {
                if tx.send(msg).is_err() {
                    map.remove(&channel);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn messages_reach_only_their_channel() {
        let f = Fanout::new(8);
        let (a, b) = (U256::from(1u64), U256::from(2u64));
        let mut ra = f.subscribe(a);
        let mut rb = f.subscribe(b);
        f.publish(a, 10u32);
        f.publish(b, 20u32);
        f.publish(U256::from(3u64), 30u32);
        assert_eq!(ra.recv().await.unwrap(), 10);
        assert_eq!(rb.recv().await.unwrap(), 20);
        assert!(ra.try_recv().is_err());
        drop(ra);
        f.publish(a, 11);
        assert!(
            f.senders.lock().unwrap().get(&a).is_none(),
            "dropped once unheard"
        );
        let mut ra = f.subscribe(a);
        f.publish(a, 12);
        assert_eq!(ra.recv().await.unwrap(), 12);
    }
}
