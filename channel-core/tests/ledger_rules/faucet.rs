//! Minting and the dev faucet: no zero address, no zero amount, one mint capped, supply and
//! balance arithmetic checked. Every refusal leaves the ledger unchanged.

use super::*;

const CAP: u64 = 1_000;

#[test]
fn the_faucet_mints_up_to_its_cap() {
    let mut w = World::new();
    let (_, _, c) = w.addr();
    let supply = w.l.total_supply();
    let ev = w.ok(|l| l.faucet_mint(c, u(CAP), u(CAP), 30));
    assert_eq!(
        ev[0].kind,
        LedgerEventKind::Minted {
            to: c,
            amount: u(CAP)
        }
    );
    assert_eq!(w.l.token_balance(c), u(1000 + CAP));
    assert_eq!(w.l.total_supply(), supply + u(CAP));
    assert_eq!(Ledger::check_faucet_mint(c, u(1), u(CAP)), Ok(()));
}

#[test]
fn faucet_refusals_name_the_rule_and_change_nothing() {
    let mut w = World::new();
    let (a, _, _) = w.addr();
    w.rejected(LedgerError::MintToZeroAddress, |l| {
        l.faucet_mint(Address::ZERO, u(5), u(CAP), 30)
    });
    w.rejected(LedgerError::ZeroMint, |l| {
        l.faucet_mint(a, U256::ZERO, u(CAP), 30)
    });
    w.rejected(
        LedgerError::FaucetCapExceeded {
            requested: u(CAP + 1),
            max: u(CAP),
        },
        |l| l.faucet_mint(a, u(CAP + 1), u(CAP), 30),
    );
    let huge = U256::from(1u8) << 255;
    w.rejected(
        LedgerError::FaucetCapExceeded {
            requested: huge,
            max: Ledger::DEFAULT_FAUCET_MAX_MINT,
        },
        |l| l.faucet_mint(a, huge, Ledger::DEFAULT_FAUCET_MAX_MINT, 30),
    );
    // The zero address is refused before the amount is looked at.
    assert_eq!(
        Ledger::check_faucet_mint(Address::ZERO, U256::ZERO, u(CAP)),
        Err(LedgerError::MintToZeroAddress)
    );
    assert_eq!(
        LedgerError::FaucetCapExceeded {
            requested: u(CAP + 1),
            max: u(CAP),
        }
        .to_string(),
        "one dev-faucet mint is at most 1000 tokens (the faucet cap), got 1001"
    );
}

#[test]
fn plain_mints_refuse_the_zero_address_zero_and_overflow() {
    let mut w = World::new();
    let (a, b, _) = w.addr();
    w.rejected(LedgerError::MintToZeroAddress, |l| {
        l.mint(Address::ZERO, u(5), 30)
    });
    w.rejected(LedgerError::ZeroMint, |l| l.mint(a, U256::ZERO, 30));

    // Raise the supply to the very top, one mint at a time (no faucet cap here).
    let headroom = U256::MAX - w.l.total_supply();
    w.ok(|l| l.mint_with_events(b, headroom, 30));
    assert_eq!(w.l.total_supply(), U256::MAX);
    w.rejected(LedgerError::Overflow("total token supply"), |l| {
        l.mint(a, u(1), 31)
    });
    w.rejected(LedgerError::Overflow("total token supply"), |l| {
        l.faucet_mint(a, u(1), u(CAP), 31)
    });
}
