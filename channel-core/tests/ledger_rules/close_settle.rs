//! Close (with a proof or none), updates by the non-closer, and settle after the window.

use super::*;

#[test]
fn close_with_none_then_settle_returns_deposits() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let none = SignedBalanceProof::none(domain(), u(1));
    let ev = close_by_a(&mut w, &none, 30);
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::ChannelClosed {
            channel_id: u(1),
            closing_participant: a,
            nonce: 0,
            balance_hash: H256::ZERO
        }
    );
    let ch = w.l.channel(u(1)).unwrap();
    assert_eq!(ch.closer, Some(a));
    assert_eq!(ch.closed_at, Some(30));
    assert_eq!(ch.settle_after, Some(30 + TIMEOUT));
    assert!(ch.participants.iter().all(|p| p.balance.is_none()));

    let window = LedgerError::SettlementWindowOpen {
        settle_after: 130,
        now: 130,
    };
    w.rejected(window, |l| {
        l.settle_channel(
            c,
            &settle_of(1, BalanceData::EMPTY, BalanceData::EMPTY),
            130,
        )
    });
    let ev = w.ok(|l| {
        l.settle_channel(
            c,
            &settle_of(1, BalanceData::EMPTY, BalanceData::EMPTY),
            131,
        )
    });
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::ChannelSettled {
            channel_id: u(1),
            participant1: a,
            participant1_amount: u(100),
            participant1_locksroot: EMPTY_LOCKSROOT,
            participant2: b,
            participant2_amount: u(50),
            participant2_locksroot: EMPTY_LOCKSROOT
        }
    );
    assert_eq!(w.l.token_balance(a), u(1000));
    assert_eq!(w.l.token_balance(b), u(1000));
    assert_eq!(w.l.contract_balance(), U256::ZERO);
    assert_eq!(w.channel_phase(1), ChannelPhase::Settled);
    assert!(w.l.open_channel_between(a, b).is_none());

    let settled = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Closed,
        actual: ChannelPhase::Settled,
    };
    w.rejected(settled, |l| {
        l.settle_channel(
            c,
            &settle_of(1, BalanceData::EMPTY, BalanceData::EMPTY),
            200,
        )
    });
    // The pair may open again, under a new identifier.
    assert_eq!(w.l.open_channel(b, a, 201).unwrap(), u(2));
    assert_eq!(w.l.open_channel_between(a, b).unwrap().id, u(2));
    assert_eq!(w.channel_phase(1), ChannelPhase::Settled);
}

#[test]
fn close_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let bp = proof(&w.b, 1, 3, balance(20, 0, EMPTY_LOCKSROOT));
    let sig = bp.counter_sign_close(&w.a).unwrap();
    w.rejected(LedgerError::UnknownChannel(u(5)), |l| {
        l.close_channel(a, u(5), &bp, &sig, 30)
    });
    let not_participant = LedgerError::NotParticipant {
        channel_id: u(1),
        address: c,
    };
    w.rejected(not_participant, |l| l.close_channel(c, u(1), &bp, &sig, 30));

    let mut foreign = bp;
    foreign.proof.domain = other_domain();
    let wrong_domain = LedgerError::WrongDomain {
        expected: domain(),
        got: other_domain(),
    };
    w.rejected(wrong_domain, |l| {
        l.close_channel(a, u(1), &foreign, &sig, 30)
    });
    let for_two = proof(&w.b, 2, 3, balance(20, 0, EMPTY_LOCKSROOT));
    let wrong_channel = LedgerError::WrongChannel {
        expected: u(1),
        got: u(2),
    };
    w.rejected(wrong_channel, |l| {
        l.close_channel(a, u(1), &for_two, &sig, 30)
    });

    // Nonce 0 must be exactly the empty proof.
    let signed_zero = proof(&w.b, 1, 0, BalanceData::EMPTY);
    w.rejected(LedgerError::MalformedEmptyProof, |l| {
        l.close_channel(a, u(1), &signed_zero, &sig, 30)
    });
    let mut zero_with_balance = SignedBalanceProof::none(domain(), u(1));
    zero_with_balance.proof.balance = balance(1, 0, EMPTY_LOCKSROOT);
    w.rejected(LedgerError::MalformedEmptyProof, |l| {
        l.close_channel(a, u(1), &zero_with_balance, &sig, 30)
    });

    // The proof must be the partner's, and the counter-signature the closer's.
    let own = proof(&w.a, 1, 3, balance(20, 0, EMPTY_LOCKSROOT));
    let own_sig = own.counter_sign_close(&w.a).unwrap();
    let err = wrong_signer("partner balance proof", b, a);
    w.rejected(err, |l| l.close_channel(a, u(1), &own, &own_sig, 30));
    let by_c = bp.counter_sign_close(&w.c).unwrap();
    let err = wrong_signer("closing participant", a, c);
    w.rejected(err, |l| l.close_channel(a, u(1), &bp, &by_c, 30));
    let update_sig = bp.counter_sign_update(&w.a).unwrap();
    let err = LedgerError::BadSignature {
        role: "closing participant",
        source: CryptoError::WrongSigner {
            expected: a,
            actual: update_sig.recover(&bp.closing_hash()).unwrap(),
        },
    };
    w.rejected(err, |l| l.close_channel(a, u(1), &bp, &update_sig, 30));

    w.ok(|l| l.close_channel(a, u(1), &bp, &sig, 30));
    let twice = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Opened,
        actual: ChannelPhase::Closed,
    };
    let a_sig = SignedBalanceProof::none(domain(), u(1))
        .counter_sign_close(&w.b)
        .unwrap();
    let none = SignedBalanceProof::none(domain(), u(1));
    w.rejected(twice, |l| l.close_channel(b, u(1), &none, &a_sig, 31));
}

#[test]
fn update_then_settle_pays_exactly_settle_amounts() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    // b sent a 40 (nonce 2); a sent b 10 (nonce 1), then 25 (nonce 4).
    let bp = proof(&w.b, 1, 2, balance(40, 0, EMPTY_LOCKSROOT));
    let ev = close_by_a(&mut w, &bp, 30);
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::ChannelClosed {
            channel_id: u(1),
            closing_participant: a,
            nonce: 2,
            balance_hash: bp.proof.balance.balance_hash()
        }
    );
    assert_eq!(
        w.l.channel(u(1))
            .unwrap()
            .participant(b)
            .unwrap()
            .balance
            .as_ref()
            .unwrap()
            .nonce,
        2
    );

    // A monitoring service (c) submits b's counter-signed update of a's proof.
    let old = proof(&w.a, 1, 1, balance(10, 0, EMPTY_LOCKSROOT));
    let newer = proof(&w.a, 1, 4, balance(25, 0, EMPTY_LOCKSROOT));
    let old_sig = old.counter_sign_update(&w.b).unwrap();
    let new_sig = newer.counter_sign_update(&w.b).unwrap();
    let ev = w.ok(|l| l.update_non_closing_balance_proof(c, u(1), &newer, &new_sig, 130));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::NonClosingBalanceProofUpdated {
            channel_id: u(1),
            closing_participant: a,
            nonce: 4,
            balance_hash: newer.proof.balance.balance_hash()
        }
    );
    let stale = LedgerError::NonceNotIncreasing { stored: 4, got: 1 };
    w.rejected(stale, |l| {
        l.update_non_closing_balance_proof(c, u(1), &old, &old_sig, 40)
    });
    let late = LedgerError::SettlementWindowClosed {
        settle_after: 130,
        now: 131,
    };
    w.rejected(late, |l| {
        l.update_non_closing_balance_proof(c, u(1), &newer, &new_sig, 131)
    });

    let expected = settle_amounts(
        &SettlementInput::new(u(100), U256::ZERO, &newer.proof.balance),
        &SettlementInput::new(u(50), U256::ZERO, &bp.proof.balance),
    );
    assert_eq!(expected.p1_amount, u(115));
    w.ok(|l| l.settle_channel(b, &settle_of(1, newer.proof.balance, bp.proof.balance), 131));
    assert_eq!(w.l.token_balance(a), u(900) + expected.p1_amount);
    assert_eq!(w.l.token_balance(b), u(950) + expected.p2_amount);
    assert_eq!(w.l.contract_balance(), U256::ZERO);
}

#[test]
fn update_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let ap = proof(&w.a, 1, 3, balance(10, 0, EMPTY_LOCKSROOT));
    let sig = ap.counter_sign_update(&w.b).unwrap();
    let opened = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Closed,
        actual: ChannelPhase::Opened,
    };
    w.rejected(opened, |l| {
        l.update_non_closing_balance_proof(c, u(1), &ap, &sig, 20)
    });
    w.rejected(LedgerError::UnknownChannel(u(4)), |l| {
        l.update_non_closing_balance_proof(c, u(4), &ap, &sig, 20)
    });
    close_by_a(&mut w, &SignedBalanceProof::none(domain(), u(1)), 30);

    let mut foreign = ap;
    foreign.proof.domain = other_domain();
    let wrong_domain = LedgerError::WrongDomain {
        expected: domain(),
        got: other_domain(),
    };
    w.rejected(wrong_domain, |l| {
        l.update_non_closing_balance_proof(c, u(1), &foreign, &sig, 40)
    });
    let for_two = proof(&w.a, 2, 3, balance(10, 0, EMPTY_LOCKSROOT));
    let wrong_channel = LedgerError::WrongChannel {
        expected: u(1),
        got: u(2),
    };
    w.rejected(wrong_channel, |l| {
        l.update_non_closing_balance_proof(c, u(1), &for_two, &sig, 40)
    });
    let none = SignedBalanceProof::none(domain(), u(1));
    let zero = LedgerError::NonceNotIncreasing { stored: 0, got: 0 };
    w.rejected(zero, |l| {
        l.update_non_closing_balance_proof(c, u(1), &none, &sig, 40)
    });

    // The proof must be the closer's; the counter-signature the non-closer's.
    let by_b = proof(&w.b, 1, 3, balance(10, 0, EMPTY_LOCKSROOT));
    let by_b_sig = by_b.counter_sign_update(&w.b).unwrap();
    let err = wrong_signer("closing participant balance proof", a, b);
    w.rejected(err, |l| {
        l.update_non_closing_balance_proof(c, u(1), &by_b, &by_b_sig, 40)
    });
    let self_signed = ap.counter_sign_update(&w.a).unwrap();
    let err = wrong_signer("non-closing participant", b, a);
    w.rejected(err, |l| {
        l.update_non_closing_balance_proof(c, u(1), &ap, &self_signed, 40)
    });

    w.ok(|l| l.update_non_closing_balance_proof(b, u(1), &ap, &sig, 40));
    let equal = LedgerError::NonceNotIncreasing { stored: 3, got: 3 };
    w.rejected(equal, |l| {
        l.update_non_closing_balance_proof(c, u(1), &ap, &sig, 41)
    });
}

#[test]
fn settle_rejections() {
    let mut w = World::new();
    let c = w.c.address();
    w.rejected(LedgerError::UnknownChannel(u(3)), |l| {
        l.settle_channel(
            c,
            &settle_of(3, BalanceData::EMPTY, BalanceData::EMPTY),
            500,
        )
    });
    let opened = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Closed,
        actual: ChannelPhase::Opened,
    };
    w.rejected(opened, |l| {
        l.settle_channel(
            c,
            &settle_of(1, BalanceData::EMPTY, BalanceData::EMPTY),
            500,
        )
    });
    close_by_a(&mut w, &SignedBalanceProof::none(domain(), u(1)), 30);
    let early = LedgerError::SettlementWindowOpen {
        settle_after: 130,
        now: 31,
    };
    w.rejected(early, |l| {
        l.settle_channel(c, &settle_of(1, BalanceData::EMPTY, BalanceData::EMPTY), 31)
    });
}

/// Settle takes the balance data of both stored proofs, as the contract does, and checks each
/// against the hash the ledger stores: data it does not store is refused, naming whose.
#[test]
fn settle_demands_the_balance_data_behind_both_stored_hashes() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    // A closes with B's proof (25 transferred); nothing is stored for A.
    let bp = proof(&w.b, 1, 3, balance(25, 0, EMPTY_LOCKSROOT));
    close_by_a(&mut w, &bp, 30);
    let good = settle_of(1, BalanceData::EMPTY, bp.proof.balance);

    // B's data as of an older proof: not what is stored.
    let older = balance(20, 0, EMPTY_LOCKSROOT);
    let mut wrong = good;
    wrong.balances[1].1 = older;
    let mismatch = LedgerError::BalanceDataMismatch {
        participant: b,
        stored: bp.proof.balance.balance_hash(),
        given: older.balance_hash(),
    };
    w.rejected(mismatch, |l| l.settle_channel(c, &wrong, 131));
    // A claims to have transferred something, but nothing of A's was submitted.
    let mut inflated = good;
    inflated.balances[0].1 = balance(1, 0, EMPTY_LOCKSROOT);
    let mismatch = LedgerError::BalanceDataMismatch {
        participant: a,
        stored: H256::ZERO,
        given: inflated.balances[0].1.balance_hash(),
    };
    w.rejected(mismatch, |l| l.settle_channel(c, &inflated, 131));
    // A stranger in place of a participant, or one participant twice.
    let mut stranger = good;
    stranger.balances[0].0 = c;
    let err = LedgerError::SettleParticipantsMismatch {
        channel_id: u(1),
        got: format!("{c} and {b}"),
    };
    w.rejected(err, |l| l.settle_channel(c, &stranger, 131));
    let mut twice = good;
    twice.balances[0] = twice.balances[1];
    let err = LedgerError::SettleParticipantsMismatch {
        channel_id: u(1),
        got: format!("{b} and {b}"),
    };
    w.rejected(err, |l| l.settle_channel(c, &twice, 131));

    // The right data, in either order, settles: A gets 100 + 25, B 50 - 25.
    let mut swapped = good;
    swapped.balances.swap(0, 1);
    w.ok(|l| l.settle_channel(c, &swapped, 131));
    assert_eq!(w.l.token_balance(a), u(900 + 125));
    assert_eq!(w.l.token_balance(b), u(950 + 25));
}
