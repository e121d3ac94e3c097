//! Whole mediated transfers through the rules: completed with exact fees, failed because the
//! payee never reveals (both locks come back), claimed on the ledger because the payer never
//! unlocks, and the record surviving serialization.

use channel_core::channel::ChannelMessage;
use channel_core::crypto::Signer;
use channel_core::mediation::{Leg, MediatedTransfer, MediationAction, Stage};
use channel_core::H256;

use crate::world::Star;
use crate::{amt, Fixture};

fn settle_and_check(
    star: &mut Star,
) -> std::collections::BTreeMap<channel_core::Address, channel_core::U256> {
    let want = star.expected_payouts();
    star.settle_all();
    for (who, amount) in &want {
        assert_eq!(star.ledger.token_balance(*who), *amount, "payout of {who}");
    }
    assert_eq!(
        star.ledger.contract_balance(),
        amt(0),
        "nothing left in the contract"
    );
    want
}

#[test]
fn car_pays_charger_through_the_hub_with_an_exact_fee() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    assert_eq!(record.stage(), Stage::Forwarded);
    assert_eq!(record.poll(fx.star.now), vec![]);
    assert_eq!(
        record.poll_timeout(),
        Some(fx.star.now + 40),
        "outgoing expiry"
    );
    // The charger sees the lock and reveals its secret.
    assert!(fx
        .star
        .device_channel(fx.payee)
        .partner()
        .locks
        .contains(&fx.secret.hash()));
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .unwrap();
    let actions = record.poll(fx.star.now);
    assert_eq!(
        actions[0],
        MediationAction::UnlockOutgoing {
            channel: record.outgoing_channel(),
            secret: fx.secret
        }
    );
    let incoming = fx.star.hub[&fx.payer].clone();
    let out = fx.star.hub.get_mut(&fx.payee).unwrap();
    let events = record
        .unlock_outgoing(out, &incoming, fx.star.now, H256::ZERO, &key)
        .unwrap();
    fx.star.deliver_to_device(fx.payee, &events).unwrap();
    assert_eq!(
        record.poll(fx.star.now),
        vec![MediationAction::RevealSecretToPayer {
            channel: record.incoming_channel(),
            secret: fx.secret
        }]
    );
    // The car learns the secret (its proof of payment) and unlocks toward the hub.
    let secret = fx.secret;
    let msg = fx
        .star
        .device_sends(fx.payer, |ch, k, _| ch.send_unlock(secret, H256::ZERO, k))
        .unwrap();
    let ChannelMessage::Unlock { proof, secret } = msg else {
        panic!("unlock expected")
    };
    let inc = fx.star.hub.get_mut(&fx.payer).unwrap();
    record.handle_incoming_unlock(inc, &proof, &secret).unwrap();
    assert_eq!(record.stage(), Stage::Completed);
    assert!(record.is_finished());
    assert_eq!(record.poll(fx.star.now + 1_000), vec![]);
    assert_eq!(record.poll_timeout(), None);
    // Off-chain: car 898, charger 1,100, hub 1,102 + 900.
    assert_eq!(fx.star.device_channel(fx.payer).our_balance(), Ok(amt(898)));
    assert_eq!(
        fx.star.device_channel(fx.payee).our_balance(),
        Ok(amt(1_100))
    );
    let hub_total = fx.star.hub_channel(fx.payer).our_balance().unwrap()
        + fx.star.hub_channel(fx.payee).our_balance().unwrap();
    assert_eq!(hub_total, amt(2_002));
    let paid = settle_and_check(&mut fx.star);
    assert_eq!(paid[&key.address()], amt(2_002));
    assert_eq!(paid[&fx.payee], amt(1_100));
}

#[test]
fn a_payee_that_never_reveals_gets_both_locks_expired_and_nothing_moves() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    let out_expiry = record.outgoing_lock().expiration;
    assert_eq!(
        fx.star.hub_channel(fx.payee).our_distributable(),
        Ok(amt(900))
    );
    assert_eq!(record.poll(out_expiry - 1), vec![]);
    fx.star.now = out_expiry;
    let actions = record.poll(fx.star.now);
    assert_eq!(
        actions,
        vec![MediationAction::ExpireOutgoing {
            channel: record.outgoing_channel(),
            secrethash: fx.secret.hash()
        }]
    );
    let out = fx.star.hub.get_mut(&fx.payee).unwrap();
    let events = record
        .expire_outgoing(out, out_expiry, H256::ZERO, &key)
        .unwrap();
    fx.star.deliver_to_device(fx.payee, &events).unwrap();
    assert_eq!(record.stage(), Stage::Refunding);
    assert_eq!(
        fx.star.hub_channel(fx.payee).our_distributable(),
        Ok(amt(1_000))
    );
    // The payer's lock expires later; the payer takes it back.
    fx.star.now = record.incoming_lock().expiration;
    let hash = fx.secret.hash();
    let msg = fx
        .star
        .device_sends(fx.payer, |ch, k, now| {
            ch.send_lock_expired(hash, now, H256::ZERO, k)
        })
        .unwrap();
    let ChannelMessage::LockExpired { proof, .. } = msg else {
        panic!("lock expired expected")
    };
    let inc = fx.star.hub.get_mut(&fx.payer).unwrap();
    record
        .handle_incoming_expired(inc, &proof, fx.star.now)
        .unwrap();
    assert_eq!(record.stage(), Stage::Refunded);
    assert!(record.is_finished());
    assert_eq!(
        fx.star.device_channel(fx.payer).our_distributable(),
        Ok(amt(1_000))
    );
    // A late reveal changes nothing now.
    let before = record.clone();
    assert!(record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .is_err());
    assert_eq!(record, before);
    let paid = settle_and_check(&mut fx.star);
    assert_eq!(paid[&key.address()], amt(2_000));
    assert_eq!(paid[&fx.payer], amt(1_000));
}

#[test]
fn a_payer_that_withholds_the_unlock_pays_on_the_ledger() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    let key = fx.star.hub_key.clone();
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .unwrap();
    let incoming = fx.star.hub[&fx.payer].clone();
    let out = fx.star.hub.get_mut(&fx.payee).unwrap();
    let events = record
        .unlock_outgoing(out, &incoming, fx.star.now, H256::ZERO, &key)
        .unwrap();
    fx.star.deliver_to_device(fx.payee, &events).unwrap();
    let deadline = record.must_register_secret_by().unwrap();
    assert_eq!(record.poll_timeout(), Some(deadline.from));
    assert!(!record
        .poll(deadline.from - 1)
        .iter()
        .any(|a| matches!(a, MediationAction::RegisterSecret { .. })));
    fx.star.now = deadline.from;
    assert!(record
        .poll(fx.star.now)
        .contains(&MediationAction::RegisterSecret {
            secret: fx.secret,
            before: deadline.before
        }));
    fx.star
        .ledger
        .register_secret(key.address(), fx.secret, fx.star.now)
        .unwrap();
    record
        .handle_secret_registered(fx.secret, fx.star.now)
        .unwrap();
    assert_eq!(record.must_register_secret_by(), None);
    assert_eq!(record.poll_timeout(), Some(deadline.before));
    fx.star.now = deadline.before;
    assert!(record
        .poll(fx.star.now)
        .contains(&MediationAction::ClaimOnLedger {
            channel: record.incoming_channel(),
            secrethash: fx.secret.hash()
        }));
    assert_eq!(record.incoming_leg(), Leg::Locked);
    let paid = settle_and_check(&mut fx.star);
    assert_eq!(
        paid[&key.address()],
        amt(2_002),
        "hub claimed 102, paid 100"
    );
    assert_eq!(paid[&fx.payer], amt(898));
    assert_eq!(paid[&fx.payee], amt(1_100));
}

#[test]
fn the_record_survives_serialization_and_refuses_unknown_versions() {
    let mut fx = Fixture::two_devices();
    let mut record = fx.forwarded(102, 100, 60);
    record
        .handle_secret_reveal(fx.secret, &fx.star.hub[&fx.payer], fx.star.now)
        .unwrap();
    let json = serde_json::to_string(&record).unwrap();
    let back: MediatedTransfer = serde_json::from_str(&json).unwrap();
    assert_eq!(back, record);
    assert_eq!(back.poll(fx.star.now), record.poll(fx.star.now));
    let newer = json.replacen("\"version\":1", "\"version\":2", 1);
    assert_ne!(newer, json);
    let err = serde_json::from_str::<MediatedTransfer>(&newer).unwrap_err();
    assert!(
        err.to_string().contains("version 2 is not supported"),
        "{err}"
    );
}
