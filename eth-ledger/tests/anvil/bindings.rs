//! Every function, constructor and event declared in `voltlane_eth::bindings` matches the ABI
//! shipped in raiden-contracts 0.50 (`.devchain/contracts.json`): names, parameter names and
//! types, indexed flags, and so the selectors and topics computed from them. The bindings
//! cannot drift from the contracts.

use channel_core::crypto::keccak256;
use serde_json::Value;
use voltlane_eth::abi::{Event, Function, Kind, Param, UINT256};
use voltlane_eth::bindings::{custom_token, secret_registry, token_network};

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

fn params(entry: &Value, key: &str) -> Vec<Value> {
    entry[key].as_array().cloned().unwrap_or_default()
}

/// `name(types)` of an ABI entry, as the ABI describes it.
fn abi_signature(entry: &Value) -> String {
    let types: Vec<String> = params(entry, "inputs").iter().map(canonical).collect();
    format!(
        "{}({})",
        entry["name"].as_str().unwrap_or(""),
        types.join(",")
    )
}

/// Our parameters against the ABI's: same types, same order; same names where the ABI names
/// them (it leaves return values and some inputs unnamed); same indexed flags.
fn check_params(what: &str, ours: &[Param], abi: &[Value], compare_names: bool) {
    assert_eq!(ours.len(), abi.len(), "{what}: number of parameters");
    for (i, (p, a)) in ours.iter().zip(abi).enumerate() {
        assert_eq!(
            p.kind.canonical(),
            canonical(a),
            "{what}: type of parameter {i}"
        );
        let name = a["name"].as_str().unwrap_or("");
        if compare_names && !name.is_empty() {
            assert_eq!(p.name, name, "{what}: name of parameter {i}");
        }
        assert_eq!(
            p.indexed,
            a["indexed"] == true,
            "{what}: indexed flag of {}",
            p.name
        );
    }
}

fn check_function(abi: &[Value], contract: &str, f: &Function) {
    let entry = abi
        .iter()
        .filter(|e| e["type"] == "function")
        .find(|e| abi_signature(e) == f.signature())
        .unwrap_or_else(|| {
            let sigs: Vec<String> = abi
                .iter()
                .filter(|e| e["type"] == "function")
                .map(abi_signature)
                .collect();
            panic!(
                "{contract} has no function {} (ABI: {sigs:?})",
                f.signature()
            )
        });
    let what = format!("{contract}.{}", f.signature());
    check_params(&what, f.inputs, &params(entry, "inputs"), true);
    check_params(
        &format!("{what} returns"),
        f.outputs,
        &params(entry, "outputs"),
        false,
    );
    assert_eq!(
        f.selector(),
        keccak256(abi_signature(entry).as_bytes()).0[..4],
        "{what}"
    );
}

fn check_event(abi: &[Value], contract: &str, e: &Event) {
    let entry = abi
        .iter()
        .find(|x| x["type"] == "event" && x["name"] == e.name)
        .unwrap_or_else(|| panic!("{contract} has no event {}", e.name));
    let what = format!("{contract}.{}", e.signature());
    // The indexed flags are part of the contract: a mismatch would decode garbage.
    check_params(&what, e.params, &params(entry, "inputs"), true);
    assert_eq!(
        e.topic0(),
        keccak256(abi_signature(entry).as_bytes()),
        "{what}"
    );
}

fn check_constructor(abi: &[Value], contract: &str, ours: &[Param]) {
    let entry = abi
        .iter()
        .find(|x| x["type"] == "constructor")
        .unwrap_or_else(|| panic!("{contract} has no constructor"));
    check_params(
        &format!("{contract} constructor"),
        ours,
        &params(entry, "inputs"),
        true,
    );
}

/// A contract's name, shipped ABI, and our declarations of its functions and events.
type Contract<'a> = (
    &'static str,
    &'a [Value],
    &'static [Function],
    &'static [Event],
);

#[test]
fn declared_functions_and_events_match_the_shipped_abi() {
    let a = artifacts();
    let cases: [Contract; 3] = [
        (
            "TokenNetwork",
            &a.token_network.abi,
            token_network::FUNCTIONS,
            token_network::EVENTS,
        ),
        (
            "SecretRegistry",
            &a.secret_registry.abi,
            secret_registry::FUNCTIONS,
            secret_registry::EVENTS,
        ),
        (
            "CustomToken",
            &a.custom_token.abi,
            custom_token::FUNCTIONS,
            custom_token::EVENTS,
        ),
    ];
    let mut checked = 0;
    for (contract, abi, functions, events) in cases {
        for f in functions {
            check_function(abi, contract, f);
            checked += 1;
        }
        for e in events {
            check_event(abi, contract, e);
            checked += 1;
        }
    }
    // 16 + 7 on TokenNetwork, 2 + 1 on SecretRegistry, 6 + 1 on CustomToken.
    assert_eq!(checked, 33);
    check_constructor(
        &a.token_network.abi,
        "TokenNetwork",
        token_network::CONSTRUCTOR,
    );
    check_constructor(
        &a.custom_token.abi,
        "CustomToken",
        custom_token::CONSTRUCTOR,
    );
}

/// The check itself can fail: a signature the ABI does not have is caught.
#[test]
#[should_panic(expected = "has no function")]
fn a_drifted_function_is_caught() {
    const DRIFTED: Function = Function {
        name: "closeChannel",
        inputs: &[
            voltlane_eth::abi::param("channel_identifier", UINT256),
            voltlane_eth::abi::param("non_closing_participant", Kind::Address),
            voltlane_eth::abi::param("balance_hash", Kind::Bytes32),
        ],
        outputs: &[],
    };
    check_function(&artifacts().token_network.abi, "TokenNetwork", &DRIFTED);
}

/// ... and so is an event whose indexed flags are wrong (its topic would still match).
#[test]
#[should_panic(expected = "indexed flag of balance_hash")]
fn a_wrongly_indexed_event_is_caught() {
    use voltlane_eth::abi::indexed;
    const DRIFTED: Event = Event {
        name: "ChannelClosed",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("closing_participant", Kind::Address),
            indexed("nonce", UINT256),
            indexed("balance_hash", Kind::Bytes32),
        ],
    };
    check_event(&artifacts().token_network.abi, "TokenNetwork", &DRIFTED);
}
