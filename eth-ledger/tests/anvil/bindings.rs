//! Every selector and event topic declared with `sol!` matches the ABI shipped in
//! raiden-contracts 0.50 (`.devchain/contracts.json`), so the bindings cannot drift.

use alloy::primitives::keccak256;
use alloy::sol_types::{SolCall, SolEvent};
use serde_json::Value;
use voltlane_eth::bindings::{ICustomToken, ISecretRegistry, ITokenNetwork};

use super::common::artifacts;

/// Canonical type of an ABI parameter (tuples expanded).
fn canonical(param: &Value) -> String {
    let ty = param["type"].as_str().unwrap();
    if let Some(rest) = ty.strip_prefix("tuple") {
        let inner: Vec<String> = param["components"]
            .as_array()
            .unwrap()
            .iter()
            .map(canonical)
            .collect();
        format!("({}){rest}", inner.join(","))
    } else {
        ty.to_string()
    }
}

/// `name(types)` of every function or event in `abi`.
fn signatures(abi: &[Value], kind: &str) -> Vec<String> {
    abi.iter()
        .filter(|e| e["type"] == kind)
        .map(|e| {
            let params: Vec<String> = e["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .map(canonical)
                .collect();
            format!("{}({})", e["name"].as_str().unwrap(), params.join(","))
        })
        .collect()
}

fn indexed_count(abi: &[Value], signature: &str) -> usize {
    let name = signature.split('(').next().unwrap();
    abi.iter()
        .find(|e| e["type"] == "event" && e["name"] == name)
        .unwrap()["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["indexed"] == true)
        .count()
}

fn check_call<C: SolCall>(abi: &[Value], contract: &str) {
    let sigs = signatures(abi, "function");
    assert!(
        sigs.iter().any(|s| s == C::SIGNATURE),
        "{contract} has no function {} (ABI: {sigs:?})",
        C::SIGNATURE
    );
    assert_eq!(
        keccak256(C::SIGNATURE.as_bytes())[..4],
        C::SELECTOR,
        "{}",
        C::SIGNATURE
    );
}

fn check_event<E: SolEvent>(abi: &[Value], contract: &str, indexed: usize) {
    let sigs = signatures(abi, "event");
    assert!(
        sigs.iter().any(|s| s == E::SIGNATURE),
        "{contract} has no event {} (ABI: {sigs:?})",
        E::SIGNATURE
    );
    assert_eq!(keccak256(E::SIGNATURE.as_bytes()), E::SIGNATURE_HASH);
    assert_eq!(
        indexed_count(abi, E::SIGNATURE),
        indexed,
        "indexed parameters of {}",
        E::SIGNATURE
    );
}

#[test]
fn declared_selectors_and_topics_match_the_shipped_abi() {
    let a = artifacts();
    let tn = &a.token_network.abi;
    use ITokenNetwork as T;
    check_call::<T::openChannelCall>(tn, "TokenNetwork");
    check_call::<T::openChannelWithDepositCall>(tn, "TokenNetwork");
    check_call::<T::setTotalDepositCall>(tn, "TokenNetwork");
    check_call::<T::setTotalWithdrawCall>(tn, "TokenNetwork");
    check_call::<T::closeChannelCall>(tn, "TokenNetwork");
    check_call::<T::updateNonClosingBalanceProofCall>(tn, "TokenNetwork");
    check_call::<T::settleChannelCall>(tn, "TokenNetwork");
    check_call::<T::cooperativeSettleCall>(tn, "TokenNetwork");
    check_call::<T::unlockCall>(tn, "TokenNetwork");
    check_call::<T::getChannelIdentifierCall>(tn, "TokenNetwork");
    check_call::<T::getChannelParticipantInfoCall>(tn, "TokenNetwork");
    check_call::<T::settleable_afterCall>(tn, "TokenNetwork");
    check_call::<T::settle_timeoutCall>(tn, "TokenNetwork");
    check_call::<T::chain_idCall>(tn, "TokenNetwork");
    check_call::<T::tokenCall>(tn, "TokenNetwork");
    check_call::<T::secret_registryCall>(tn, "TokenNetwork");
    // The event's indexed counts are part of the contract: a mismatch would decode garbage.
    check_event::<T::ChannelOpened>(tn, "TokenNetwork", 3);
    check_event::<T::ChannelNewDeposit>(tn, "TokenNetwork", 2);
    check_event::<T::ChannelWithdraw>(tn, "TokenNetwork", 2);
    check_event::<T::ChannelClosed>(tn, "TokenNetwork", 3);
    check_event::<T::NonClosingBalanceProofUpdated>(tn, "TokenNetwork", 3);
    check_event::<T::ChannelSettled>(tn, "TokenNetwork", 1);
    check_event::<T::ChannelUnlocked>(tn, "TokenNetwork", 3);

    let sr = &a.secret_registry.abi;
    check_call::<ISecretRegistry::registerSecretCall>(sr, "SecretRegistry");
    check_call::<ISecretRegistry::getSecretRevealBlockTimeCall>(sr, "SecretRegistry");
    check_event::<ISecretRegistry::SecretRevealed>(sr, "SecretRegistry", 1);

    let ct = &a.custom_token.abi;
    check_call::<ICustomToken::mintCall>(ct, "CustomToken");
    check_call::<ICustomToken::mintForCall>(ct, "CustomToken");
    check_call::<ICustomToken::approveCall>(ct, "CustomToken");
    check_call::<ICustomToken::allowanceCall>(ct, "CustomToken");
    check_call::<ICustomToken::balanceOfCall>(ct, "CustomToken");
    check_call::<ICustomToken::totalSupplyCall>(ct, "CustomToken");
    check_event::<ICustomToken::Minted>(ct, "CustomToken", 2);
}

/// The check itself can fail: a signature the ABI does not have is caught.
#[test]
#[should_panic(expected = "has no function")]
fn a_drifted_declaration_is_caught() {
    alloy::sol! {
        interface IDrifted {
            function closeChannel(uint256 channel_identifier, address non_closing_participant, bytes32 balance_hash) external;
        }
    }
    check_call::<IDrifted::closeChannelCall>(&artifacts().token_network.abi, "TokenNetwork");
}
