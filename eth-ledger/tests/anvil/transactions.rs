//! The transactions themselves: EIP-1559 (type 2), sent from the party's own address, with
//! the tip the node suggests and a fee cap of twice the base fee plus the tip; and the two
//! caps (gas, fee per gas) refuse before anything is signed or sent.

use channel_core::{Signer, U256};
use serde_json::{json, Value};
use voltlane_eth::wire::{parse_address, parse_u256, parse_u64};
use voltlane_eth::{EthError, EthereumLedger};

use super::common::{u, Devchain};

fn quantity(v: &Value, what: &str) -> U256 {
    parse_u256(&v[what], what).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_is_a_type_2_transaction_with_the_chosen_fees() {
    let chain = Devchain::start().await;
    let key = chain.key(1);
    let la = chain.ledger(&key).await;
    let outcome = la.mint(u(5)).await.unwrap();

    let tx = chain
        .node
        .dev_request(
            "eth_getTransactionByHash",
            json!([outcome.tx_hash.to_string()]),
        )
        .await
        .unwrap();
    assert_eq!(tx["type"], json!("0x2"), "{tx}");
    // The node recovered our address from the signature (and so the y-parity is right).
    assert_eq!(parse_address(&tx["from"], "from").unwrap(), key.address());
    assert_eq!(
        parse_u64(&tx["chainId"], "chainId").unwrap(),
        chain.deployment.chain_id
    );
    assert_eq!(tx["accessList"], json!([]));

    // Fees from the block before (the latest one when the fees were chosen).
    let parent = chain
        .node
        .dev_request(
            "eth_getBlockByNumber",
            json!([format!("{:#x}", outcome.block_number - 1), false]),
        )
        .await
        .unwrap();
    let base_fee = quantity(&parent, "baseFeePerGas");
    let suggested = chain
        .node
        .dev_request("eth_maxPriorityFeePerGas", json!([]))
        .await
        .unwrap();
    let tip = parse_u256(&suggested, "tip").unwrap();
    assert_eq!(quantity(&tx, "maxPriorityFeePerGas"), tip);
    assert_eq!(
        quantity(&tx, "maxFeePerGas"),
        base_fee * U256::from(2u8) + tip
    );
    // The gas limit is the estimate plus a fifth, and the receipt's gas fits under it.
    let limit = parse_u64(&tx["gas"], "gas").unwrap();
    assert!(
        outcome.gas_used <= limit && limit <= outcome.gas_used * 2,
        "{limit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gas_and_fee_caps_refuse_before_sending() {
    let chain = Devchain::start().await;
    let key = chain.key(1);
    let a = key.address();
    let sent = chain.node.transaction_count(a).await.unwrap();
    let balance = chain.ledger(&key).await.token_balance(a).await.unwrap();

    let mut config = chain.config();
    config.gas_cap = 21_000;
    let tight_gas = EthereumLedger::connect(&config, &key).await.unwrap();
    let err = tight_gas.mint(u(5)).await.unwrap_err();
    assert!(
        matches!(err, EthError::GasCapExceeded { step: "mint", cap: 21_000, estimate } if estimate > 21_000),
        "{err:?}"
    );
    assert!(err.to_string().contains("not sent"), "{err}");

    let mut config = chain.config();
    config.max_fee_per_gas = U256::from(1u8);
    let tight_fee = EthereumLedger::connect(&config, &key).await.unwrap();
    let err = tight_fee.mint(u(5)).await.unwrap_err();
    assert!(
        matches!(err, EthError::FeeCapExceeded { step: "mint", .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("fee cap 1 wei/gas"), "{err}");

    // Nothing reached the chain.
    assert_eq!(chain.node.transaction_count(a).await.unwrap(), sent);
    assert_eq!(tight_fee.token_balance(a).await.unwrap(), balance);
    // The same ledger with room under both caps sends.
    chain.ledger(&key).await.mint(u(5)).await.unwrap();
    assert_eq!(chain.node.transaction_count(a).await.unwrap(), sent + 1);
}
