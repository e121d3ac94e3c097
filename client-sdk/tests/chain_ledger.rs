//! The SDK's ledger seam on a real chain, without a hub: two parties (a device and the hub's
//! key, each with its own `ChainLedger` and store) open, deposit, pay off-chain, close with a
//! stale proof on one side, update, wait out the window and settle — every transaction and
//! read through `voltlane_client::ledger::DeviceLedger` on anvil with Raiden's TokenNetwork
//! 0.50 — and end with exact token balances. Also: a hub announcing other contracts than the
//! chain's is refused, and a reconnect reloads the follower from the store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "chain/devchain.rs"]
mod devchain;

use channel_core::channel::{Channel, ChannelEvent, ChannelMessage, LedgerAction, LedgerView};
use channel_core::ledger::{ChannelPhase, LedgerEvent, LedgerEventKind, LedgerOp};
use channel_core::{Address, Signer, H256};
use voltlane_client::ledger::{ChainError, ChainLedger, DeviceLedger};
use voltlane_client::{ClientError, DeviceStore, LocalSigner, U256};

use devchain::{Devchain, SETTLE_TIMEOUT, TOKENS_PER_KEY};

fn u(v: u64) -> U256 {
    U256::from(v)
}

async fn seam(chain: &Devchain, key: &LocalSigner, store: DeviceStore) -> DeviceLedger {
    let ledger = ChainLedger::connect(&chain.access(), &chain.announced(), key, store)
        .await
        .expect("connect the chain ledger");
    DeviceLedger::Ethereum(Box::new(ledger))
}

/// `from` pays `to` `amount` directly; every message is handed across until none is left.
fn pay(
    from: &mut Channel,
    from_key: &LocalSigner,
    to: &mut Channel,
    to_key: &LocalSigner,
    amount: u64,
) {
    let first = from.send_payment(u(amount), H256::ZERO, from_key).unwrap();
    let mut queue: Vec<(bool, ChannelMessage)> =
        sends(&first).into_iter().map(|m| (true, m)).collect();
    while let Some((to_partner, msg)) = queue.pop() {
        let (ch, key) = if to_partner {
            (&mut *to, to_key)
        } else {
            (&mut *from, from_key)
        };
        let out = ch.handle_message(&msg, 0, key).unwrap();
        queue.extend(sends(&out).into_iter().map(|m| (!to_partner, m)));
    }
}

fn sends(events: &[ChannelEvent]) -> Vec<ChannelMessage> {
    events
        .iter()
        .filter_map(|e| match e {
            ChannelEvent::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn feed(channel: &mut Channel, events: &[LedgerEvent]) {
    for e in events {
        channel.handle_ledger_event(e).unwrap();
    }
}

fn chain_of(ledger: &DeviceLedger) -> &ChainLedger {
    ledger.chain().expect("a chain ledger")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn open_deposit_close_update_settle_through_the_seam_with_exact_balances() {
    let chain = Devchain::start().await;
    let (dev_key, hub_key) = (chain.key(1), chain.key(2));
    let (d, h) = (dev_key.address(), hub_key.address());
    let domain = chain.announced().contracts.domain;
    let dev_store = DeviceStore::in_memory();
    let dev = seam(&chain, &dev_key, dev_store.clone()).await;
    let hub = seam(&chain, &hub_key, DeviceStore::in_memory()).await;
    assert_eq!(dev.kind(), "ethereum");
    assert_eq!(chain_of(&dev).domain(), domain);
    let (d0, h0) = (
        dev.token_balance(d).await.unwrap(),
        dev.token_balance(h).await.unwrap(),
    );
    assert_eq!(d0, u(TOKENS_PER_KEY));
    assert_eq!(h0, u(TOKENS_PER_KEY));
    assert!(
        dev.now().await.unwrap() > 0,
        "ledger time is the chain's block time"
    );

    // Open (device) and deposit (both), each answered with its events once mirrored.
    let id = dev.open_channel(h).await.unwrap();
    let opened = dev.channel(id).await.unwrap();
    assert_eq!(opened.phase, ChannelPhase::Opened);
    assert_eq!(opened.partner_of(d), Some(h));
    let events = dev
        .execute(&LedgerOp::SetTotalDeposit {
            channel_id: id,
            participant: d,
            total_deposit: u(100),
        })
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| matches!(
            e.kind,
            LedgerEventKind::Deposit { participant, total_deposit, .. }
                if participant == d && total_deposit == u(100)
        )),
        "{events:?}"
    );
    hub.execute(&LedgerOp::SetTotalDeposit {
        channel_id: id,
        participant: h,
        total_deposit: u(60),
    })
    .await
    .unwrap();
    let mine = dev.channels_of(d).await.unwrap();
    assert_eq!(mine.len(), 1, "only the device's channels are mirrored");
    assert_eq!(mine[0].participant(h).unwrap().total_deposit, u(60));
    assert!(hub.channels_of(h).await.unwrap().iter().any(|r| r.id == id));
    assert_eq!(dev.token_balance(d).await.unwrap(), d0 - u(100));

    // Off-chain: the device pays 30 then 10, the hub pays 5.
    let mut cd = Channel::new(domain, id, d, h);
    let mut ch = Channel::new(domain, id, h, d);
    cd.handle_ledger_record(&dev.channel(id).await.unwrap())
        .unwrap();
    ch.handle_ledger_record(&hub.channel(id).await.unwrap())
        .unwrap();
    pay(&mut cd, &dev_key, &mut ch, &hub_key, 30);
    pay(&mut cd, &dev_key, &mut ch, &hub_key, 10);
    pay(&mut ch, &hub_key, &mut cd, &dev_key, 5);
    assert_eq!(cd.our().nonce(), 2);

    // The device closes with the hub's latest proof; its own proofs are not on chain yet.
    let close = cd.close(&dev_key).unwrap();
    let events = dev.execute(&LedgerOp::Close(close)).await.unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e.kind, LedgerEventKind::ChannelClosed { closing_participant, .. } if closing_participant == d)));
    feed(&mut cd, &events);
    let closed = dev.channel(id).await.unwrap();
    assert_eq!(closed.phase, ChannelPhase::Closed);
    let settle_after = closed
        .settle_after
        .expect("a closed record has settle_after");

    // The hub's side follows the chain, learns of the close, and its monitor asks for the
    // update with the device's latest proof (nonce 2), sent through the seam.
    chain_of(&hub).catch_up().await.unwrap();
    feed(&mut ch, &chain_of(&hub).undelivered_after(0).unwrap());
    let record = hub.channel(id).await.unwrap();
    let now = hub.now().await.unwrap();
    let actions = ch
        .poll_ledger_actions(
            &LedgerView {
                record: &record,
                now,
                reveal_timeout: 10,
                pending_unlocks: &[],
                archived_locks: &[],
            },
            &hub_key,
        )
        .unwrap();
    let update = actions
        .into_iter()
        .find_map(|a| match a {
            LedgerAction::Update(tx) => Some(tx),
            _ => None,
        })
        .expect("the hub's monitor asks for an update");
    assert_eq!(update.closer_proof.proof.nonce, 2);
    let events = hub.execute(&LedgerOp::Update(*update)).await.unwrap();
    assert!(events.iter().any(|e| matches!(
        e.kind,
        LedgerEventKind::NonClosingBalanceProofUpdated { nonce: 2, .. }
    )));
    feed(&mut ch, &events);

    // The window passes on chain; the device's follower reads past it and its monitor asks
    // for the settle.
    chain.node.increase_time(SETTLE_TIMEOUT + 1).await.unwrap();
    chain.node.mine(1).await.unwrap();
    chain_of(&dev).catch_up().await.unwrap();
    feed(&mut cd, &chain_of(&dev).undelivered_after(0).unwrap());
    let record = dev.channel(id).await.unwrap();
    assert_eq!(
        record.participant(d).unwrap().nonce(),
        2,
        "the update is mirrored"
    );
    let now = dev.now().await.unwrap();
    assert!(
        now > settle_after,
        "ledger time {now} is past {settle_after}"
    );
    let actions = cd
        .poll_ledger_actions(
            &LedgerView {
                record: &record,
                now,
                reveal_timeout: 10,
                pending_unlocks: &[],
                archived_locks: &[],
            },
            &dev_key,
        )
        .unwrap();
    assert!(
        actions
            .iter()
            .any(|a| matches!(a, LedgerAction::Settle { .. })),
        "{actions:?}"
    );
    let settle = cd.settle_transaction(&record, |_| None).unwrap();
    let events = dev.execute(&LedgerOp::Settle(settle)).await.unwrap();
    assert!(events.iter().any(
        |e| matches!(e.kind, LedgerEventKind::ChannelSettled { channel_id, .. } if channel_id == id)
    ));
    assert_eq!(dev.channel(id).await.unwrap().phase, ChannelPhase::Settled);
    assert!(dev.pending_unlocks(id).await.unwrap().is_empty());

    // Exact payouts: the device put in 100, paid 40 and received 5; the hub put in 60.
    assert_eq!(dev.token_balance(d).await.unwrap(), d0 - u(100) + u(65));
    assert_eq!(dev.token_balance(h).await.unwrap(), h0 - u(60) + u(95));

    // A reconnect on the same store reloads the follower: the record is there at once.
    let state = chain_of(&dev).state().unwrap();
    let again = seam(&chain, &dev_key, dev_store.clone()).await;
    assert_eq!(chain_of(&again).state().unwrap().mirror, state.mirror);
    assert_eq!(
        again.channel(id).await.unwrap().phase,
        ChannelPhase::Settled
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_announcing_other_contracts_than_the_chains_is_refused() {
    let chain = Devchain::start().await;
    let key = chain.key(1);
    let access = chain.access();

    let mut other_chain = chain.announced();
    other_chain.contracts.domain.chain_id = u(1);
    let err = ChainLedger::connect(&access, &other_chain, &key, DeviceStore::in_memory())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            ChainError::WrongDeployment {
                what: "chain id",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("refusing a hub"), "{err}");

    let mut other_token = chain.announced();
    other_token.contracts.token = Address([0x42; 20]);
    let err = ChainLedger::connect(&access, &other_token, &key, DeviceStore::in_memory())
        .await
        .unwrap_err();
    assert!(
        matches!(err, ChainError::WrongDeployment { what: "token", .. }),
        "{err}"
    );

    // No TokenNetwork at the announced address: voltlane-eth's own check.
    let mut nothing = chain.announced();
    nothing.contracts.domain.token_network_address = Address([0x43; 20]);
    let err = ChainLedger::connect(&access, &nothing, &key, DeviceStore::in_memory())
        .await
        .unwrap_err();
    assert!(matches!(err, ChainError::Node(_)), "{err}");

    // The faucet is the embedded ledger's: on a chain the seam says so.
    let ledger = seam(&chain, &key, DeviceStore::in_memory()).await;
    let err = ledger.mint(key.address(), u(5)).await.unwrap_err();
    assert!(
        matches!(err, ClientError::FaucetEmbeddedOnly { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("embedded"), "{err}");
}
