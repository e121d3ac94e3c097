//! Property tests of metered sessions: a payee delivering energy and publishing readings at
//! random, irregular (often coarse) moments, billing what they show, a payer checking and
//! paying each bill, payments completing late, out of order or failing, with real signatures
//! and a simulated clock.
//!
//! After every step: a payee that delivers only within the headroom it is told is never owed
//! more than the credit window; the payer never pays (or has in flight) a unit no accepted
//! reading shows, and no reading shows a unit the payee did not deliver; what each side
//! counts as paid is exactly units × price, and both agree; accepted seq and register only
//! grow. At the end the receipt both sign verifies and matches both sides.
//!
//! Cases default to 64; set `PROPTEST_CASES` for more.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use channel_core::crypto::{keccak256, Signer};
use channel_core::mediation::PaymentRequest;
use channel_core::session::{
    Delivery, MeterUnit, PayeeSession, PayerLimits, PayerSession, SessionError, SessionOffer,
    SignedSessionReceipt, StopReason,
};
use channel_core::testing::{test_domain, test_signer};
use channel_core::{H256, U256};
use proptest::prelude::*;

const MAX_WH_PER_HOUR: u64 = 11_000;

#[derive(Clone, Debug)]
enum Op {
    /// `secs` pass while the payee tries to deliver `want` Wh (as much as its headroom and
    /// the meter's physical rate allow).
    Deliver { want: u64, secs: u64 },
    /// The payee publishes a reading and bills it; the payer handles both and pays.
    Publish,
    /// A payment in flight (picked by the index) completes.
    Arrive(usize),
    /// A payment in flight (picked by the index) fails.
    Fail(usize),
    /// Time passes with nothing delivered.
    Idle(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u64..3_000, 1u64..900).prop_map(|(want, secs)| Op::Deliver { want, secs }),
        3 => Just(Op::Publish),
        3 => any::<usize>().prop_map(Op::Arrive),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => (1u64..120).prop_map(Op::Idle),
    ]
}

struct World {
    price: U256,
    window: u64,
    payee: PayeeSession,
    payer: PayerSession,
    /// Keys (secrethashes) of payments in flight.
    in_flight: Vec<H256>,
    next_key: u64,
    now: u64,
    last_seq: Option<u64>,
    last_metered: u64,
    budget_refusals: u64,
}

impl World {
    fn new(price: u64, window: u64, max_units: Option<u64>, budget: Option<u64>) -> Self {
        let offer = SessionOffer {
            domain: test_domain(),
            session_id: H256([0x11; 32]),
            payee: test_signer(3).address(),
            meter_key: test_signer(4).address(),
            unit: MeterUnit::WattHour,
            price_per_unit: U256::from(price),
            credit_window_units: window,
            max_units,
            max_units_per_hour: MAX_WH_PER_HOUR,
            expires_at: 10_000,
        };
        let signed = offer.sign(&test_signer(3)).unwrap();
        let limits = PayerLimits {
            budget: budget.map_or(U256::MAX, U256::from),
            clock_tolerance_secs: 0,
        };
        let payer = PayerSession::accept(
            &signed,
            &test_domain(),
            test_signer(5).address(),
            limits,
            1_000,
        )
        .unwrap();
        let payee = PayeeSession::start(offer, keccak256(b"ocpp-tx"), 52_000, 1_000);
        Self {
            price: U256::from(price),
            window,
            payee,
            payer,
            in_flight: Vec::new(),
            next_key: 0,
            now: 1_000,
            last_seq: None,
            last_metered: 0,
            budget_refusals: 0,
        }
    }

    fn deliver(&mut self, want: u64, secs: u64) {
        self.now += secs;
        if self.payee.ended().is_some() {
            return;
        }
        let physical = MAX_WH_PER_HOUR * secs / 3_600;
        let units = want.min(physical).min(self.payee.headroom());
        let register = 52_000 + self.payee.delivered_units() + units;
        match self.payee.record_delivery(register, self.now).unwrap() {
            Delivery::Continue { headroom_units } => {
                assert_eq!(headroom_units, self.payee.headroom());
            }
            Delivery::Stop(reason) => {
                // An obedient payee only stops at the offer's cap, never out of credit.
                assert_eq!(reason, StopReason::EnergyLimitReached);
            }
        }
    }

    fn publish(&mut self) {
        let reading = self.payee.publish_reading();
        let signed = reading.sign(&test_signer(4)).unwrap();
        let before = self.payer.clone();
        match self.payer.handle_reading(&signed, self.now) {
            Ok(due) => {
                assert_eq!(due.additional_hash, reading.hash());
                assert_eq!(due.amount, U256::from(due.units) * self.price);
                assert_eq!(due.units, self.payer.uncovered_units());
                assert!(self.last_seq.is_none_or(|s| due.reading_seq > s));
                assert!(due.metered_units >= self.last_metered);
                self.last_seq = Some(due.reading_seq);
                self.last_metered = due.metered_units;
            }
            Err(SessionError::BudgetExceeded { .. }) => {
                assert_eq!(self.payer, before);
                self.budget_refusals += 1;
            }
            Err(SessionError::Ended(_)) => {
                assert_eq!(self.payer, before);
                assert!(self.payer.ended().is_some());
            }
            Err(e) => panic!("honest reading {reading:?} refused: {e}"),
        }
        let units = self.payee.unbilled_units();
        if units == 0 {
            return;
        }
        self.next_key += 1;
        let key = keccak256(&self.next_key.to_be_bytes());
        let amount = self.payee.record_bill(key, units, 100_000).unwrap();
        let bill = PaymentRequest {
            domain: test_domain(),
            payee: test_signer(3).address(),
            amount,
            secrethash: key,
            payment_id: reading.seq,
            expires_at: 100_000,
            memo_hash: reading.hash(),
        }
        .sign(&test_signer(3))
        .unwrap();
        match self.payer.check_bill(&bill, self.now) {
            Ok(paid_units) => {
                // An honest payee bills exactly what the payer finds uncovered.
                assert_eq!(paid_units, units);
                self.payer.begin_payment(key, paid_units).unwrap();
                self.in_flight.push(key);
            }
            Err(_) => {
                // Refused (a reading over budget, or after the payer's end): never paid.
                self.payee.handle_bill_failed(key).unwrap();
            }
        }
    }

    fn arrive(&mut self, pick: usize) {
        if self.in_flight.is_empty() {
            return;
        }
        let key = self.in_flight.remove(pick % self.in_flight.len());
        let bill = self.payee.handle_bill_paid(key).unwrap();
        let paid = self.payer.record_paid(key).unwrap();
        assert_eq!((bill.units, bill.amount), (paid.units, paid.amount));
        assert_eq!(bill.reading_hash, paid.reading_hash);
    }

    fn fail(&mut self, pick: usize) {
        if self.in_flight.is_empty() {
            return;
        }
        let key = self.in_flight.remove(pick % self.in_flight.len());
        let bill = self.payee.handle_bill_failed(key).unwrap();
        assert_eq!(
            self.payer.handle_payment_failed(key).unwrap().units,
            bill.units
        );
    }

    fn check(&self) {
        let (payer, payee) = (&self.payer, &self.payee);
        // The payee, delivering within its headroom, is never owed more than the window.
        assert!(payee.unpaid_units() <= self.window);
        // No unit is paid or in flight that a reading does not show, and no reading shows a
        // unit that was not delivered.
        assert!(payer.paid_units() + payer.in_flight_units() <= payer.metered_units());
        assert!(payer.metered_units() <= payee.delivered_units());
        assert!(payer.metered_units() <= payer.budget_units());
        // Money is exactly units × price, on both sides, and both agree.
        assert_eq!(
            payer.paid_amount(),
            U256::from(payer.paid_units()) * self.price
        );
        assert_eq!(
            payee.paid_amount(),
            U256::from(payee.paid_units()) * self.price
        );
        assert_eq!(payer.paid_units(), payee.paid_units());
        let billed: u64 = payee.bills().iter().map(|b| b.units).sum();
        assert_eq!(payer.in_flight_units(), billed);
        assert_eq!(payer.in_flight().len(), self.in_flight.len());
        assert_eq!(payer.last_seq(), self.last_seq);
    }
}

proptest! {
    #[test]
    fn sessions_keep_credit_metering_and_money_exact(
        price in 1u64..1_000,
        window in 1u64..2_500,
        max_units in proptest::option::of(1u64..40_000),
        budget in proptest::option::of(0u64..20_000_000),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut w = World::new(price, window, max_units, budget);
        w.publish(); // the meter start
        w.check();
        for op in ops {
            match op {
                Op::Deliver { want, secs } => w.deliver(want, secs),
                Op::Publish => w.publish(),
                Op::Arrive(i) => w.arrive(i),
                Op::Fail(i) => w.fail(i),
                Op::Idle(secs) => w.now += secs,
            }
            w.check();
        }
        // End: the payee stops, publishes its final reading, every payment arrives.
        w.payee.stop(StopReason::Remote);
        w.publish();
        while !w.in_flight.is_empty() {
            w.arrive(0);
            w.check();
        }
        let budget_units = w.payer.budget_units();
        if w.payee.delivered_units() <= budget_units {
            // Not held back by the budget: every delivered unit was paid, exactly.
            prop_assert_eq!(w.budget_refusals, 0);
            prop_assert_eq!(w.payer.paid_units(), w.payee.delivered_units());
        } else {
            prop_assert!(w.payer.paid_units() <= budget_units);
        }
        let receipt = w.payer.receipt().unwrap();
        let ours = w.payee.receipt(test_signer(5).address()).unwrap();
        prop_assert_eq!(receipt.check_matches(&ours), Ok(()));
        let signed = SignedSessionReceipt {
            receipt,
            payer_signature: receipt.sign_part(&test_signer(5)).unwrap(),
            payee_signature: receipt.sign_part(&test_signer(3)).unwrap(),
        };
        prop_assert_eq!(signed.verify(), Ok(()));
        prop_assert_eq!(receipt.total_paid, U256::from(receipt.total_units) * w.price);
    }
}
