//! Cooperative settle from two fully signed withdraw proofs.

use super::*;

#[test]
fn cooperative_settle_pays_both_and_allows_reopen() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let wd = withdraw(1, a, 20, 100);
    let (s1, s2) = sigs(&wd, &w.a, &w.b);
    w.ok(|l| l.set_total_withdraw(a, &wd, &s1, &s2, 20));
    // Cumulative totals 90 + 60 = 150 deposited: a takes 70 more, b takes 60.
    let wa = withdraw(1, a, 90, 100);
    let wb = withdraw(1, b, 60, 100);
    let (aa, ab) = sigs(&wa, &w.a, &w.b);
    let (bb, ba) = sigs(&wb, &w.b, &w.a);
    let ev = w.ok(|l| l.cooperative_settle(c, u(1), &wb, (&bb, &ba), &wa, (&aa, &ab), 21));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::ChannelSettled {
            channel_id: u(1),
            participant1: a,
            participant1_amount: u(70),
            participant1_locksroot: EMPTY_LOCKSROOT,
            participant2: b,
            participant2_amount: u(60),
            participant2_locksroot: EMPTY_LOCKSROOT
        }
    );
    assert_eq!(w.l.token_balance(a), u(990));
    assert_eq!(w.l.token_balance(b), u(1010));
    assert_eq!(w.l.contract_balance(), U256::ZERO);
    assert_eq!(w.channel_phase(1), ChannelPhase::Settled);
    assert_eq!(w.l.open_channel(a, b, 22).unwrap(), u(2));
}

#[test]
fn cooperative_settle_rejections() {
    let mut w = World::new();
    let (a, b, c) = w.addr();
    let wd = withdraw(1, a, 20, 100);
    let (s1, s2) = sigs(&wd, &w.a, &w.b);
    w.ok(|l| l.set_total_withdraw(a, &wd, &s1, &s2, 20));
    let wa = withdraw(1, a, 90, 100);
    let wb = withdraw(1, b, 60, 100);
    let (aa, ab) = sigs(&wa, &w.a, &w.b);
    let (bb, ba) = sigs(&wb, &w.b, &w.a);

    w.rejected(LedgerError::UnknownChannel(u(6)), |l| {
        l.cooperative_settle(c, u(6), &wa, (&aa, &ab), &wb, (&bb, &ba), 30)
    });
    let foreign = WithdrawProof {
        domain: other_domain(),
        ..wb
    };
    let (fb, fa) = sigs(&foreign, &w.b, &w.a);
    let err = LedgerError::WrongDomain {
        expected: domain(),
        got: other_domain(),
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &foreign, (&fb, &fa), 30)
    });
    let other_channel = withdraw(2, b, 60, 100);
    let (ob, oa) = sigs(&other_channel, &w.b, &w.a);
    let err = LedgerError::WrongChannel {
        expected: u(1),
        got: u(2),
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &other_channel, (&ob, &oa), 30)
    });
    let stranger = withdraw(1, c, 60, 100);
    let (xc, xa) = sigs(&stranger, &w.c, &w.a);
    let err = LedgerError::NotParticipant {
        channel_id: u(1),
        address: c,
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &stranger, (&xc, &xa), 30)
    });
    let err = LedgerError::WithdrawExpired {
        until: 100,
        now: 100,
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &wb, (&bb, &ba), 100)
    });
    let err = LedgerError::CooperativeSettleSameParticipant { participant: a };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &wa, (&aa, &ab), 30)
    });
    let short = withdraw(1, b, 59, 100);
    let (tb, ta) = sigs(&short, &w.b, &w.a);
    let err = LedgerError::CooperativeSettleNotWhole {
        total_deposit: u(150),
        total_withdraw: u(149),
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &short, (&tb, &ta), 30)
    });
    // a already withdrew 20; a total of 10 would take tokens back from a.
    let lower = withdraw(1, a, 10, 100);
    let more = withdraw(1, b, 140, 100);
    let (la, lb) = sigs(&lower, &w.a, &w.b);
    let (mb, ma) = sigs(&more, &w.b, &w.a);
    let err = LedgerError::CooperativeWithdrawDecreasing {
        participant: a,
        withdrawn: u(20),
        total_withdraw: u(10),
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &lower, (&la, &lb), &more, (&mb, &ma), 30)
    });
    let err = wrong_signer("withdrawing participant", b, a);
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &wb, (&ba, &ba), 30)
    });
    let err = wrong_signer("withdraw partner", b, a);
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &aa), &wb, (&bb, &ba), 30)
    });

    close_by_a(&mut w, &SignedBalanceProof::none(domain(), u(1)), 40);
    let err = LedgerError::WrongPhase {
        channel_id: u(1),
        expected: ChannelPhase::Opened,
        actual: ChannelPhase::Closed,
    };
    w.rejected(err, |l| {
        l.cooperative_settle(c, u(1), &wa, (&aa, &ab), &wb, (&bb, &ba), 41)
    });
}
