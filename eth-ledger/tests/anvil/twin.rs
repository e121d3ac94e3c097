//! The twin ledgers: one scenario written as `channel-core` `LedgerOp`s, every op sent by the
//! party it belongs to through its own `EthereumLedger::execute` on anvil and then executed by
//! the embedded `Ledger` at that transaction's block timestamp. Both must pay every token
//! alike, and a `LedgerMirror` fed only the chain's confirmed events (numbered with
//! `number_events`) must hold what the embedded ledger holds: channel records, secret
//! registrations and kept-back locks.
//!
//! Channel 1 (A opens, B deposits): payments both ways, two locked transfers A → B, one secret
//! registered; A closes with a stale proof of B, B updates with A's latest, B settles after
//! the window (its own stored proof is the stale one, found in its archive), B unlocks.
//! Channel 2 (C opens, B deposits, C tops up B's deposit): payments both ways, B withdraws
//! part, then a cooperative settle.

use std::collections::{BTreeMap, BTreeSet};

use channel_core::channel::ChannelEvent;
use channel_core::ledger::{
    ChannelPhase, CoSignedWithdraw, Ledger, LedgerConfig, LedgerMirror, LedgerOp,
};
use channel_core::locks::pack_locks;
use channel_core::{Address, BalanceData, HashTimeLock, LocalSigner, Secret, Signer, H256, U256};
use voltlane_eth::{number_events, EthereumLedger, EventCursor};

use super::common::{u, Devchain, Pair, Side, SETTLE_TIMEOUT};

/// The chain, each party's handle on it, the embedded twin and the mirror of the chain.
struct Twin {
    chain: Devchain,
    handles: BTreeMap<Address, EthereumLedger>,
    embedded: Ledger,
    mirror: LedgerMirror,
    cursor: EventCursor,
}

impl Twin {
    async fn new(chain: Devchain, keys: &[&LocalSigner]) -> Self {
        let mut handles = BTreeMap::new();
        for key in keys {
            handles.insert(key.address(), chain.ledger(key).await);
        }
        let mut embedded = Ledger::new(LedgerConfig {
            domain: chain.domain(),
            settlement_timeout: SETTLE_TIMEOUT,
        });
        let now = chain.node.block_timestamp(None).await.unwrap();
        for (who, handle) in &handles {
            let held = handle.token_balance(*who).await.unwrap();
            embedded.mint(*who, held, now).unwrap();
        }
        let cursor = EventCursor::from_block(chain.node.block_number().await.unwrap() + 1);
        Self {
            chain,
            handles,
            embedded,
            mirror: LedgerMirror::new(),
            cursor,
        }
    }

    fn handle(&self, who: Address) -> &EthereumLedger {
        &self.handles[&who]
    }

    async fn chain_time(&self) -> u64 {
        self.chain.node.block_timestamp(None).await.unwrap()
    }

    /// `op` sent by `who` on anvil, then executed by the embedded ledger at the block's time.
    async fn run(&mut self, who: Address, op: LedgerOp) {
        let outcome = self
            .handle(who)
            .execute(&op)
            .await
            .unwrap_or_else(|e| panic!("{} by {who} on anvil: {e}", op.name()));
        let time = self
            .chain
            .node
            .block_timestamp(Some(outcome.block_number))
            .await
            .unwrap();
        self.embedded
            .execute(who, &op, time)
            .unwrap_or_else(|e| panic!("{} by {who} on the embedded ledger: {e}", op.name()));
    }

    /// Feeds the mirror every confirmed event since the cursor, numbered after its last seq.
    async fn sync_mirror(&mut self) {
        let reader = self.handles.values().next().unwrap();
        for _ in 0..100 {
            let (events, next) = reader.poll_events(self.cursor).await.unwrap();
            for e in number_events(events, self.mirror.last_seq()).unwrap() {
                assert!(self.mirror.apply(&e).unwrap(), "event {} applied", e.seq);
            }
            if next == self.cursor {
                return;
            }
            self.cursor = next;
        }
        panic!("the event cursor did not catch up with the head in 100 polls");
    }

    /// The mirror of the chain holds what the embedded ledger holds, field by field.
    async fn assert_mirror_matches(&mut self, ids: &[U256], secrethashes: &[H256], when: &str) {
        self.sync_mirror().await;
        for id in ids {
            let e = self.embedded.channel(*id).unwrap();
            let m = self
                .mirror
                .channel(*id)
                .unwrap_or_else(|| panic!("{when}: mirror has no channel {id}"));
            let at = format!("{when}, channel {id}");
            assert_eq!(m.phase, e.phase, "{at}: phase");
            assert_eq!(m.closer, e.closer, "{at}: closer");
            // Both ledgers run on the same block timestamps here, so even the times agree.
            assert_eq!(m.opened_at, e.opened_at, "{at}: opened_at");
            assert_eq!(m.closed_at, e.closed_at, "{at}: closed_at");
            assert_eq!(m.settle_after, e.settle_after, "{at}: settle_after");
            for (mp, ep) in m.participants.iter().zip(&e.participants) {
                let who = format!("{at}, participant {}", ep.address);
                assert_eq!(mp.address, ep.address, "{who}: address");
                assert_eq!(mp.total_deposit, ep.total_deposit, "{who}: deposit");
                assert_eq!(mp.nonce(), ep.nonce(), "{who}: nonce");
                assert_eq!(mp.balance_hash(), ep.balance_hash(), "{who}: balance hash");
                // Settled too: the chain's cooperative settle emits a `ChannelWithdraw` per
                // participant, and the embedded ledger records the same totals.
                assert_eq!(mp.total_withdraw, ep.total_withdraw, "{who}: withdraw");
            }
            let [p1, p2] = [e.participants[0].address, e.participants[1].address];
            let kept: BTreeSet<_> = [(p1, p2), (p2, p1)]
                .into_iter()
                .filter_map(|(s, r)| {
                    self.embedded
                        .pending_unlock(*id, s, r)
                        .map(|k| (s, r, k.locksroot))
                })
                .collect();
            let mirrored: BTreeSet<_> = self
                .mirror
                .pending_unlocks(*id)
                .into_iter()
                .map(|p| (p.sender, p.receiver, p.locksroot))
                .collect();
            assert_eq!(mirrored, kept, "{at}: pending unlocks");
        }
        for h in secrethashes {
            assert_eq!(
                self.mirror.secret_registered_at(h),
                self.embedded.secret_registered_at(h),
                "{when}: registration of secret {h}"
            );
        }
    }

    /// Token balances of `who` on anvil and on the embedded ledger.
    async fn balances(&self, who: Address) -> (U256, U256) {
        let on_chain = self.handle(who).token_balance(who).await.unwrap();
        (on_chain, self.embedded.token_balance(who))
    }
}

/// The withdraw `side` requested and its partner co-signed.
fn cosigned(events: &[ChannelEvent]) -> CoSignedWithdraw {
    events
        .iter()
        .find_map(|e| match e {
            ChannelEvent::WithdrawReady {
                proof,
                participant_signature,
                partner_signature,
            } => Some(CoSignedWithdraw {
                proof: *proof,
                participant_signature: *participant_signature,
                partner_signature: *partner_signature,
            }),
            _ => None,
        })
        .expect("withdraw co-signed by the partner")
}

/// `side` of `pair` pays `amount`; when B pays, the balance data of the proof it signed goes
/// to its archive (what a driver keeps until settlement).
fn pay(pair: &mut Pair, side: Side, amount: u64, archive: &mut BTreeMap<u64, BalanceData>) {
    pair.pay(side, amount);
    if side == Side::B {
        let (nonce, data) = pair.b.our_signed_balance().unwrap();
        archive.insert(nonce, data);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_scenario_as_ledger_ops_pays_and_mirrors_alike_on_both_ledgers() {
    let chain = Devchain::start().await;
    // Dev key 0 deployed the contracts; it holds tokens like the others and plays C.
    let (key_c, key_a, key_b) = (chain.key(0), chain.key(1), chain.key(2));
    let mut t = Twin::new(chain, &[&key_a, &key_b, &key_c]).await;
    let (a, b, c) = (key_a.address(), key_b.address(), key_c.address());
    let start = [
        t.balances(a).await,
        t.balances(b).await,
        t.balances(c).await,
    ];
    for (on_chain, embedded) in start {
        assert_eq!(on_chain, embedded, "the twins start alike");
    }
    let domain = t.chain.domain();
    let (ch1, ch2) = (u(1), u(2));

    // ----- channel 1: A and B -----
    let open = LedgerOp::OpenChannel {
        partner: b,
        total_deposit: u(5_000),
    };
    t.run(a, open).await;
    let deposit_b = LedgerOp::SetTotalDeposit {
        channel_id: ch1,
        participant: b,
        total_deposit: u(3_000),
    };
    t.run(b, deposit_b).await;
    let mut p1 = Pair::new(domain, ch1, key_a.clone(), key_b.clone());
    p1.deposit(Side::A, u(5_000));
    p1.deposit(Side::B, u(3_000));
    let mut archive_b = BTreeMap::new();
    pay(&mut p1, Side::A, 100, &mut archive_b);
    pay(&mut p1, Side::B, 40, &mut archive_b);
    pay(&mut p1, Side::A, 60, &mut archive_b);
    pay(&mut p1, Side::B, 35, &mut archive_b);
    // A will close with this proof of B's (75 sent, nonce 2), not B's latest.
    let stale = *p1.a.partner_latest_proof().unwrap();
    pay(&mut p1, Side::B, 25, &mut archive_b);
    pay(&mut p1, Side::A, 30, &mut archive_b);

    let now = t.chain_time().await;
    let secret = Secret(H256([0x51; 32]));
    let never = Secret(H256([0x52; 32]));
    let locks = [(secret, 200), (never, 70)].map(|(s, amount)| HashTimeLock {
        expiration: now + 3 * SETTLE_TIMEOUT,
        amount: u(amount),
        secrethash: s.hash(),
    });
    for lock in locks {
        p1.drive(Side::A, now, |ch, key| {
            ch.send_locked_transfer(lock, now, H256::ZERO, key).unwrap()
        });
    }
    assert_eq!(p1.b.partner().balance_data().locked_amount, u(270));
    t.run(b, LedgerOp::RegisterSecret(secret)).await;

    // ----- channel 2: C and B, opened while channel 1 is still open -----
    let open = LedgerOp::OpenChannel {
        partner: b,
        total_deposit: u(4_000),
    };
    t.run(c, open).await;
    t.run(
        b,
        LedgerOp::SetTotalDeposit {
            channel_id: ch2,
            participant: b,
            total_deposit: u(2_000),
        },
    )
    .await;
    // C tops up B's side with its own tokens: the contract allows it, and so does the twin.
    t.run(
        c,
        LedgerOp::SetTotalDeposit {
            channel_id: ch2,
            participant: b,
            total_deposit: u(2_500),
        },
    )
    .await;
    // Side A of this pair is C.
    let mut p2 = Pair::new(domain, ch2, key_c.clone(), key_b.clone());
    p2.deposit(Side::A, u(4_000));
    p2.deposit(Side::B, u(2_500));
    p2.pay(Side::A, 300);
    p2.pay(Side::B, 120);
    let now = t.chain_time().await;
    let events = p2.drive(Side::B, now, |ch, key| {
        ch.request_withdraw(u(1_000), now + 600, now, key).unwrap()
    });
    t.run(b, LedgerOp::SetTotalWithdraw(cosigned(&events)))
        .await;
    p2.a.handle_ledger_withdraw(b, u(1_000)).unwrap();
    p2.b.handle_ledger_withdraw(b, u(1_000)).unwrap();

    // ----- channel 1 closes with B's stale proof; B answers with A's latest -----
    let mut close = p1.a.close(&key_a).unwrap();
    close.partner_proof = stale;
    close.closing_signature = stale.counter_sign_close(&key_a).unwrap();
    t.run(a, LedgerOp::Close(close)).await;
    let closed_at = t.embedded.channel(ch1).unwrap().closed_at.unwrap();
    p1.b.handle_ledger_closed(a, closed_at).unwrap();
    let update = p1.b.update_transaction(&key_b).unwrap().unwrap();
    assert_eq!(update.closer_proof.proof.balance.locked_amount, u(270));
    t.run(b, LedgerOp::Update(update)).await;

    let secrets = [secret.hash(), never.hash()];
    t.assert_mirror_matches(&[ch1, ch2], &secrets, "after the update")
        .await;

    // ----- after the window B settles, from the mirror's record and its archive -----
    t.chain
        .node
        .increase_time(SETTLE_TIMEOUT + 1)
        .await
        .unwrap();
    let record = t.mirror.channel(ch1).unwrap().clone();
    let settle =
        p1.b.settle_transaction(&record, |nonce| archive_b.get(&nonce).copied())
            .unwrap();
    assert_eq!(
        settle.balances[0],
        (b, stale.proof.balance),
        "B's stored proof is the stale one, from the archive"
    );
    t.run(b, LedgerOp::Settle(settle)).await;
    t.assert_mirror_matches(&[ch1, ch2], &secrets, "after the settle")
        .await;
    assert_eq!(
        t.mirror.pending_unlocks(ch1).len(),
        1,
        "A's locks toward B are kept back"
    );

    let unlock = LedgerOp::Unlock {
        channel_id: ch1,
        receiver: b,
        sender: a,
        packed_locks: pack_locks(p1.b.partner().locks.as_slice()),
    };
    t.run(b, unlock).await;

    // ----- channel 2 settles cooperatively, C proposing -----
    let now = t.chain_time().await;
    let proposal =
        p2.a.propose_cooperative_close(now + 600, now, &key_c)
            .unwrap();
    let acceptance =
        p2.b.accept_cooperative_close(&proposal, now, &key_b)
            .unwrap();
    let w_c = CoSignedWithdraw {
        proof: proposal.proposer_withdraw,
        participant_signature: proposal.proposer_signature,
        partner_signature: acceptance.on_proposer_withdraw,
    };
    let w_b = CoSignedWithdraw {
        proof: proposal.partner_withdraw,
        participant_signature: acceptance.on_own_withdraw,
        partner_signature: proposal.partner_withdraw_proposer_signature,
    };
    let coop = LedgerOp::CooperativeSettle {
        channel_id: ch2,
        withdraws: [w_c, w_b],
    };
    t.run(c, coop).await;
    t.assert_mirror_matches(&[ch1, ch2], &secrets, "at the end")
        .await;
    // The contract's cooperative settle names both locksroots as 32 zero bytes: nothing kept.
    assert!(
        t.mirror.pending_unlocks(ch2).is_empty(),
        "cooperative settle"
    );
    for id in [ch1, ch2] {
        assert_eq!(t.mirror.channel(id).unwrap().phase, ChannelPhase::Settled);
    }
    assert!(t.mirror.pending_unlocks(ch1).is_empty(), "unlocked");

    // (a) Identical payouts, and the figures the proofs say.
    let end = [
        t.balances(a).await,
        t.balances(b).await,
        t.balances(c).await,
    ];
    for (who, (on_chain, embedded)) in [a, b, c].iter().zip(end) {
        assert_eq!(on_chain, embedded, "payout of {who}");
    }
    // A: sent 190 and 200 by lock, got 75; B: the mirror image, plus C's 300 - 120 and
    // C's 500 top-up; C: paid 180 net and the 500 top-up.
    assert_eq!(end[0].0 + u(315), start[0].0);
    assert_eq!(end[1].0, start[1].0 + u(315 + 180 + 500));
    assert_eq!(end[2].0 + u(680), start[2].0);
    let network = t.chain.deployment.token_network;
    assert_eq!(t.handle(a).token_balance(network).await.unwrap(), u(0));
    assert_eq!(t.embedded.contract_balance(), u(0));
}
