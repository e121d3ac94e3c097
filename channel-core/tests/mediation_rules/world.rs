//! A hub with one channel per device on the embedded ledger, every participant with its own
//! real `Channel` view and key, messages handed across explicitly. Shared by the mediation
//! rule tests and the mediation property tests.

use std::collections::BTreeMap;

use channel_core::channel::{Channel, ChannelError, ChannelEvent, ChannelMessage};
use channel_core::crypto::{LocalSigner, Signer};
use channel_core::ledger::{Ledger, LedgerConfig};
use channel_core::locks::{pack_locks, HashTimeLock};
use channel_core::mediation::{
    take_and_forward, MediatedTransfer, MediationConfig, MediationError,
};
use channel_core::testing::{sends, test_domain, test_signer};
use channel_core::{Address, H256, U256};

pub const WINDOW: u64 = 100;
pub const HUB_SEED: u8 = 100;

pub fn u(n: u64) -> U256 {
    U256::from(n)
}

/// One device: its key and its view of its channel with the hub.
#[derive(Clone, Debug)]
pub struct Device {
    pub key: LocalSigner,
    pub channel: Channel,
}

/// The hub, its devices and the ledger they share.
#[derive(Clone, Debug)]
pub struct Star {
    pub ledger: Ledger,
    pub hub_key: LocalSigner,
    /// The hub's view of each device channel, by device address.
    pub hub: BTreeMap<Address, Channel>,
    pub devices: BTreeMap<Address, Device>,
    /// Device addresses in creation order.
    pub order: Vec<Address>,
    pub now: u64,
}

impl Star {
    /// One channel per `(device deposit, hub deposit)`; device `i` has key seed `i + 1`.
    pub fn new(deposits: &[(u64, u64)]) -> Self {
        let hub_key = test_signer(HUB_SEED);
        let hub_addr = hub_key.address();
        let now = 1_000;
        let ledger = Ledger::new(LedgerConfig {
            domain: test_domain(),
            settlement_timeout: WINDOW,
        });
        let mut star = Star {
            ledger,
            hub_key: hub_key.clone(),
            hub: BTreeMap::new(),
            devices: BTreeMap::new(),
            order: Vec::new(),
            now,
        };
        for (i, (dev_deposit, hub_deposit)) in deposits.iter().enumerate() {
            let key = test_signer(i as u8 + 1);
            let addr = key.address();
            let id = star.ledger.open_channel(addr, hub_addr, now).unwrap();
            for (who, amount) in [(addr, *dev_deposit), (hub_addr, *hub_deposit)] {
                if amount > 0 {
                    star.ledger.mint(who, u(amount), now).unwrap();
                    star.ledger
                        .set_total_deposit(who, id, who, u(amount), now)
                        .unwrap();
                }
            }
            let mut dev = Channel::new(test_domain(), id, addr, hub_addr);
            let mut hub = Channel::new(test_domain(), id, hub_addr, addr);
            for ch in [&mut dev, &mut hub] {
                ch.handle_ledger_deposit(addr, u(*dev_deposit)).unwrap();
                ch.handle_ledger_deposit(hub_addr, u(*hub_deposit)).unwrap();
            }
            star.hub.insert(addr, hub);
            star.devices.insert(addr, Device { key, channel: dev });
            star.order.push(addr);
        }
        star
    }

    pub fn addr(&self, i: usize) -> Address {
        self.order[i]
    }

    pub fn hub_channel(&self, device: Address) -> &Channel {
        &self.hub[&device]
    }

    pub fn device_channel(&self, device: Address) -> &Channel {
        &self.devices[&device].channel
    }

    /// The device sends a locked transfer to the hub and the hub receives it.
    pub fn lock_to_hub(&mut self, device: Address, lock: HashTimeLock) -> Result<(), ChannelError> {
        let now = self.now;
        let dev = self.devices.get_mut(&device).unwrap();
        let mut sent = dev.channel.clone();
        let events = sent.send_locked_transfer(lock, now, H256::ZERO, &dev.key)?;
        let mut hub = self.hub[&device].clone();
        for msg in sends(&events) {
            hub.handle_message(&msg, now, &self.hub_key)?;
        }
        dev.channel = sent;
        self.hub.insert(device, hub);
        Ok(())
    }

    /// A mediated payment as the hub takes it: the payer signs its locked transfer, the hub
    /// takes it only together with its forward of `amount` to `payee`
    /// (`mediation::take_and_forward`) and the payee receives the forward. On a refusal the
    /// hub holds nothing and the payer takes its lock back (`Channel::retract_refused_lock`),
    /// so every channel is as before.
    pub fn pay_through_hub(
        &mut self,
        payer: Address,
        payee: Address,
        lock: HashTimeLock,
        amount: U256,
        config: &MediationConfig,
    ) -> Result<MediatedTransfer, MediationError> {
        let now = self.now;
        let dev = self.devices.get_mut(&payer).unwrap();
        let previous = dev.channel.our_latest_proof().copied();
        let events = dev
            .channel
            .send_locked_transfer(lock, now, H256::ZERO, &dev.key)?;
        let Some(ChannelMessage::LockedTransfer { proof, .. }) = sends(&events).into_iter().next()
        else {
            panic!("a locked transfer sent no message");
        };
        let mut incoming = self.hub[&payer].clone();
        let mut outgoing = self.hub[&payee].clone();
        match take_and_forward(
            &mut incoming,
            &proof,
            &lock,
            amount,
            &mut outgoing,
            config,
            now,
            H256::ZERO,
            &self.hub_key,
        ) {
            Ok((record, events)) => {
                self.hub.insert(payer, incoming);
                self.hub.insert(payee, outgoing);
                self.deliver_to_device(payee, &events).unwrap();
                Ok(record)
            }
            Err(e) => {
                assert_eq!(
                    incoming, self.hub[&payer],
                    "a refusal changed the payer's channel"
                );
                assert_eq!(
                    outgoing, self.hub[&payee],
                    "a refusal changed the payee's channel"
                );
                let dev = self.devices.get_mut(&payer).unwrap();
                dev.channel
                    .retract_refused_lock(&lock, previous.as_ref())
                    .unwrap();
                Err(e)
            }
        }
    }

    /// Delivers the hub's messages among `events` to `device`.
    pub fn deliver_to_device(
        &mut self,
        device: Address,
        events: &[ChannelEvent],
    ) -> Result<(), ChannelError> {
        let now = self.now;
        let dev = self.devices.get_mut(&device).unwrap();
        for msg in sends(events) {
            dev.channel.handle_message(&msg, now, &dev.key)?;
        }
        Ok(())
    }

    /// The device signs a message with `command`; returns it for the hub to handle.
    pub fn device_sends(
        &mut self,
        device: Address,
        command: impl FnOnce(&mut Channel, &LocalSigner, u64) -> Result<Vec<ChannelEvent>, ChannelError>,
    ) -> Result<ChannelMessage, ChannelError> {
        let now = self.now;
        let dev = self.devices.get_mut(&device).unwrap();
        let events = command(&mut dev.channel, &dev.key, now)?;
        Ok(sends(&events).into_iter().next().unwrap())
    }

    /// Closes every channel honestly and settles it: the hub closes with the device's latest
    /// proof, the device contests with the hub's, then settle and unlock both directions.
    /// Secrets that should count must already be registered on the ledger.
    pub fn settle_all(&mut self) {
        let now = self.now;
        let hub_addr = self.hub_key.address();
        for addr in self.order.clone() {
            let dev_key = self.devices[&addr].key.clone();
            let id = self.hub[&addr].id();
            let proof = self.hub[&addr]
                .partner_latest_proof()
                .copied()
                .unwrap_or_else(|| channel_core::SignedBalanceProof::none(test_domain(), id));
            let sig = proof.counter_sign_close(&self.hub_key).unwrap();
            self.ledger
                .close_channel(hub_addr, id, &proof, &sig, now)
                .unwrap();
            let dev = &mut self.devices.get_mut(&addr).unwrap().channel;
            dev.handle_ledger_closed(hub_addr, now).unwrap();
            if let Some(tx) = dev.update_transaction(&dev_key).unwrap() {
                self.ledger
                    .update_non_closing_balance_proof(
                        addr,
                        id,
                        &tx.closer_proof,
                        &tx.non_closing_signature,
                        now + 1,
                    )
                    .unwrap();
            }
            let after = now + WINDOW + 1;
            let hub_ch = &self.hub[&addr];
            let record = self.ledger.channel(id).unwrap().clone();
            let settle = hub_ch.settle_transaction(&record, |_| None).unwrap();
            self.ledger
                .settle_channel(hub_addr, &settle, after)
                .unwrap();
            for (sender, receiver, locks) in [
                (hub_addr, addr, hub_ch.our().locks.as_slice()),
                (addr, hub_addr, hub_ch.partner().locks.as_slice()),
            ] {
                if !locks.is_empty() {
                    self.ledger
                        .unlock(hub_addr, id, receiver, sender, &pack_locks(locks), after)
                        .unwrap();
                }
            }
        }
    }

    /// What each participant's token balance should be after `settle_all`: per channel, its
    /// withdrawn amount plus its balance, with every pending lock whose secret the ledger
    /// registered in time moved to the receiver.
    pub fn expected_payouts(&self) -> BTreeMap<Address, U256> {
        let claimed = |locks: &[HashTimeLock]| {
            locks
                .iter()
                .filter(|l| {
                    self.ledger
                        .secret_registered_at(&l.secrethash)
                        .is_some_and(|t| t < l.expiration)
                })
                .fold(U256::ZERO, |acc, l| acc + l.amount)
        };
        let mut out = BTreeMap::new();
        let hub_addr = self.hub_key.address();
        for (addr, ch) in &self.hub {
            let ours = claimed(ch.our().locks.as_slice());
            let theirs = claimed(ch.partner().locks.as_slice());
            let hub_gets = ch.our().total_withdraw + ch.our_balance().unwrap() - ours + theirs;
            let dev_gets =
                ch.partner().total_withdraw + ch.partner_balance().unwrap() - theirs + ours;
            *out.entry(hub_addr).or_insert(U256::ZERO) += hub_gets;
            *out.entry(*addr).or_insert(U256::ZERO) += dev_gets;
        }
        out
    }
}
