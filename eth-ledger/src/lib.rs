//! Voltlane's Ethereum ledger backend: the Raiden TokenNetwork v0.50 contracts (with their
//! SecretRegistry and the dev CustomToken) on an EVM chain, reached over JSON-RPC.
//!
//! [`EthereumLedger`] offers the same operations as the embedded
//! [`channel_core::ledger::Ledger`] (open, deposit, withdraw, close, update, settle, register
//! secret, unlock, cooperative settle, token balance, ledger time), executes `channel-core`'s
//! [`channel_core::ledger::LedgerOp`] values ([`EthereumLedger::execute`]) and reads the
//! contracts' events into [`channel_core::ledger::LedgerEventKind`] from a block cursor
//! ([`EthereumLedger::poll_events`]), numbered as ledger events for a
//! [`channel_core::ledger::LedgerMirror`] by [`number_events`]. Every proof it submits is built and signed by
//! `channel-core`; this crate only checks that a proof belongs to this ledger and to the right
//! signers before paying gas for it, then sends it as an EIP-1559 transaction signed with the
//! party's own key.
//!
//! The Ethereum client is this crate's own and small, built on crates the workspace already
//! has (`k256`/`sha3` through `channel-core`, `hyper`, `serde_json`): Solidity ABI encoding,
//! RLP, transaction signing and a JSON-RPC 2.0 client over one HTTP/1.1 connection.
//!
//! What this crate does not do: it keeps no state beyond the local transaction nonce (the
//! caller persists its event cursor), it does not decide when to close, update or settle (the
//! channel rules in `channel-core` do; the hub's `ChainLedger` and the SDK drive it). It
//! speaks plain `http://` only: **`https://` RPC URLs are not supported yet**
//! ([`EthError::HttpsNotSupported`]); to reach a TLS endpoint, put a local TLS-terminating
//! proxy in front of it and give this crate the proxy's `http://127.0.0.1:…` URL.
//!
//! Layout: [`error`]; the Ethereum formats: [`abi`] (Solidity ABI), [`bindings`] (the
//! contracts' functions and events), [`rlp`], [`transaction`] (EIP-1559 signing), [`fees`];
//! the node: `http` (one HTTP/1.1 connection), `jsonrpc` (requests and answers), [`rpc`]
//! (retries and timeouts), [`wire`] (JSON shapes: logs, receipts, filters), [`node`] (typed
//! methods); the backend: `tx` (nonce, gas cap, broadcast, receipts), [`ledger`] (the
//! operations), [`events`] (log cursor), [`follow`] (one poll applied to a follower's mirror); [`artifacts`] (the contracts' JSON) and [`deploy`](mod@deploy)
//! (dev-chain deployment), [`devnet`] (a throwaway anvil with the contracts, for tests).

pub mod abi;
pub mod artifacts;
pub mod bindings;
pub mod deploy;
pub mod devnet;
pub mod error;
pub mod events;
pub mod fees;
pub mod follow;
mod http;
mod jsonrpc;
pub mod ledger;
pub mod node;
pub mod rlp;
pub mod rpc;
pub mod transaction;
mod tx;
pub mod wire;

pub use deploy::{deploy, DeployParams, Deployment, DevKey};
pub use error::EthError;
pub use events::{number_events, ChainEvent, EventCursor};
pub use follow::{FollowError, MirrorPosition};
pub use ledger::{EthConfig, EthereumLedger, ParticipantInfo, TxOutcome};
pub use node::Node;
pub use rpc::RetryPolicy;
