//! The slice of the Raiden 0.50 contracts' interface this crate uses: function, constructor
//! and event descriptors (names and parameter types as in the contracts' ABI). Only what we
//! call or listen to is declared; a test checks every declaration here (names, types, indexed
//! flags, selectors, topics) against the ABI in `.devchain/contracts.json`, so the two cannot
//! drift apart.

use crate::abi::{indexed, param, Event, Function, Kind, Param, UINT256};

const ADDRESS: Kind = Kind::Address;
const BYTES32: Kind = Kind::Bytes32;

/// Raiden TokenNetwork v0.50.
pub mod token_network {
    use super::*;

    /// Constructor: token, secret registry, settle timeout, controller, deposit limits.
    pub const CONSTRUCTOR: &[Param] = &[
        param("_token_address", ADDRESS),
        param("_secret_registry", ADDRESS),
        param("_settle_timeout", UINT256),
        param("_controller", ADDRESS),
        param("_channel_participant_deposit_limit", UINT256),
        param("_token_network_deposit_limit", UINT256),
    ];

    /// One participant's side of `cooperativeSettle` (a withdraw signed by both):
    /// `(participant, total_withdraw, withdrawable_until, participant_signature,
    /// partner_signature)`.
    pub const WITHDRAW_INPUT: Kind =
        Kind::Tuple(&[ADDRESS, UINT256, UINT256, Kind::Bytes, Kind::Bytes]);

    const CHANNEL_ID: Param = param("channel_identifier", UINT256);
    const RETURNS_ID: &[Param] = &[param("channel_identifier", UINT256)];

    pub const OPEN_CHANNEL: Function = Function {
        name: "openChannel",
        inputs: &[
            param("participant1", ADDRESS),
            param("participant2", ADDRESS),
        ],
        outputs: RETURNS_ID,
    };
    pub const OPEN_CHANNEL_WITH_DEPOSIT: Function = Function {
        name: "openChannelWithDeposit",
        inputs: &[
            param("participant1", ADDRESS),
            param("participant2", ADDRESS),
            param("participant1_total_deposit", UINT256),
        ],
        outputs: RETURNS_ID,
    };
    pub const SET_TOTAL_DEPOSIT: Function = Function {
        name: "setTotalDeposit",
        inputs: &[
            CHANNEL_ID,
            param("participant", ADDRESS),
            param("total_deposit", UINT256),
            param("partner", ADDRESS),
        ],
        outputs: &[],
    };
    pub const SET_TOTAL_WITHDRAW: Function = Function {
        name: "setTotalWithdraw",
        inputs: &[
            CHANNEL_ID,
            param("participant", ADDRESS),
            param("total_withdraw", UINT256),
            param("withdrawable_until", UINT256),
            param("participant_signature", Kind::Bytes),
            param("partner_signature", Kind::Bytes),
        ],
        outputs: &[],
    };
    pub const CLOSE_CHANNEL: Function = Function {
        name: "closeChannel",
        inputs: &[
            CHANNEL_ID,
            param("non_closing_participant", ADDRESS),
            param("closing_participant", ADDRESS),
            param("balance_hash", BYTES32),
            param("nonce", UINT256),
            param("additional_hash", BYTES32),
            param("non_closing_signature", Kind::Bytes),
            param("closing_signature", Kind::Bytes),
        ],
        outputs: &[],
    };
    pub const UPDATE_NON_CLOSING_BALANCE_PROOF: Function = Function {
        name: "updateNonClosingBalanceProof",
        inputs: &[
            CHANNEL_ID,
            param("closing_participant", ADDRESS),
            param("non_closing_participant", ADDRESS),
            param("balance_hash", BYTES32),
            param("nonce", UINT256),
            param("additional_hash", BYTES32),
            param("closing_signature", Kind::Bytes),
            param("non_closing_signature", Kind::Bytes),
        ],
        outputs: &[],
    };
    pub const SETTLE_CHANNEL: Function = Function {
        name: "settleChannel",
        inputs: &[
            CHANNEL_ID,
            param("participant1", ADDRESS),
            param("participant1_transferred_amount", UINT256),
            param("participant1_locked_amount", UINT256),
            param("participant1_locksroot", BYTES32),
            param("participant2", ADDRESS),
            param("participant2_transferred_amount", UINT256),
            param("participant2_locked_amount", UINT256),
            param("participant2_locksroot", BYTES32),
        ],
        outputs: &[],
    };
    pub const COOPERATIVE_SETTLE: Function = Function {
        name: "cooperativeSettle",
        inputs: &[
            CHANNEL_ID,
            param("data1", WITHDRAW_INPUT),
            param("data2", WITHDRAW_INPUT),
        ],
        outputs: &[],
    };
    pub const UNLOCK: Function = Function {
        name: "unlock",
        inputs: &[
            CHANNEL_ID,
            param("receiver", ADDRESS),
            param("sender", ADDRESS),
            param("locks", Kind::Bytes),
        ],
        outputs: &[],
    };
    pub const GET_CHANNEL_IDENTIFIER: Function = Function {
        name: "getChannelIdentifier",
        inputs: &[param("participant", ADDRESS), param("partner", ADDRESS)],
        outputs: RETURNS_ID,
    };
    pub const GET_CHANNEL_PARTICIPANT_INFO: Function = Function {
        name: "getChannelParticipantInfo",
        inputs: &[
            CHANNEL_ID,
            param("participant", ADDRESS),
            param("partner", ADDRESS),
        ],
        outputs: &[
            param("deposit", UINT256),
            param("withdrawn_amount", UINT256),
            param("is_the_closer", Kind::Bool),
            param("balance_hash", BYTES32),
            param("nonce", UINT256),
            param("locksroot", BYTES32),
            param("locked_amount", UINT256),
        ],
    };
    pub const SETTLEABLE_AFTER: Function = Function {
        name: "settleable_after",
        inputs: &[CHANNEL_ID],
        outputs: &[param("timestamp", UINT256)],
    };
    pub const SETTLE_TIMEOUT: Function = Function {
        name: "settle_timeout",
        inputs: &[],
        outputs: &[param("settle_timeout", UINT256)],
    };
    pub const CHAIN_ID: Function = Function {
        name: "chain_id",
        inputs: &[],
        outputs: &[param("chain_id", UINT256)],
    };
    pub const TOKEN: Function = Function {
        name: "token",
        inputs: &[],
        outputs: &[param("token", ADDRESS)],
    };
    pub const SECRET_REGISTRY: Function = Function {
        name: "secret_registry",
        inputs: &[],
        outputs: &[param("secret_registry", ADDRESS)],
    };

    pub const CHANNEL_OPENED: Event = Event {
        name: "ChannelOpened",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("participant1", ADDRESS),
            indexed("participant2", ADDRESS),
        ],
    };
    pub const CHANNEL_NEW_DEPOSIT: Event = Event {
        name: "ChannelNewDeposit",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("participant", ADDRESS),
            param("total_deposit", UINT256),
        ],
    };
    pub const CHANNEL_WITHDRAW: Event = Event {
        name: "ChannelWithdraw",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("participant", ADDRESS),
            param("total_withdraw", UINT256),
        ],
    };
    pub const CHANNEL_CLOSED: Event = Event {
        name: "ChannelClosed",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("closing_participant", ADDRESS),
            indexed("nonce", UINT256),
            param("balance_hash", BYTES32),
        ],
    };
    pub const NON_CLOSING_BALANCE_PROOF_UPDATED: Event = Event {
        name: "NonClosingBalanceProofUpdated",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("closing_participant", ADDRESS),
            indexed("nonce", UINT256),
            param("balance_hash", BYTES32),
        ],
    };
    pub const CHANNEL_SETTLED: Event = Event {
        name: "ChannelSettled",
        params: &[
            indexed("channel_identifier", UINT256),
            param("participant1", ADDRESS),
            param("participant1_amount", UINT256),
            param("participant1_locksroot", BYTES32),
            param("participant2", ADDRESS),
            param("participant2_amount", UINT256),
            param("participant2_locksroot", BYTES32),
        ],
    };
    pub const CHANNEL_UNLOCKED: Event = Event {
        name: "ChannelUnlocked",
        params: &[
            indexed("channel_identifier", UINT256),
            indexed("receiver", ADDRESS),
            indexed("sender", ADDRESS),
            param("locksroot", BYTES32),
            param("unlocked_amount", UINT256),
            param("returned_tokens", UINT256),
        ],
    };

    /// Every function declared above.
    pub const FUNCTIONS: &[Function] = &[
        OPEN_CHANNEL,
        OPEN_CHANNEL_WITH_DEPOSIT,
        SET_TOTAL_DEPOSIT,
        SET_TOTAL_WITHDRAW,
        CLOSE_CHANNEL,
        UPDATE_NON_CLOSING_BALANCE_PROOF,
        SETTLE_CHANNEL,
        COOPERATIVE_SETTLE,
        UNLOCK,
        GET_CHANNEL_IDENTIFIER,
        GET_CHANNEL_PARTICIPANT_INFO,
        SETTLEABLE_AFTER,
        SETTLE_TIMEOUT,
        CHAIN_ID,
        TOKEN,
        SECRET_REGISTRY,
    ];

    /// Every event declared above.
    pub const EVENTS: &[Event] = &[
        CHANNEL_OPENED,
        CHANNEL_NEW_DEPOSIT,
        CHANNEL_WITHDRAW,
        CHANNEL_CLOSED,
        NON_CLOSING_BALANCE_PROOF_UPDATED,
        CHANNEL_SETTLED,
        CHANNEL_UNLOCKED,
    ];
}

/// Raiden SecretRegistry v0.50.
pub mod secret_registry {
    use super::*;

    pub const REGISTER_SECRET: Function = Function {
        name: "registerSecret",
        inputs: &[param("secret", BYTES32)],
        outputs: &[param("registered", Kind::Bool)],
    };
    pub const GET_SECRET_REVEAL_BLOCK_TIME: Function = Function {
        name: "getSecretRevealBlockTime",
        inputs: &[param("secrethash", BYTES32)],
        outputs: &[param("block_time", UINT256)],
    };

    pub const SECRET_REVEALED: Event = Event {
        name: "SecretRevealed",
        params: &[indexed("secrethash", BYTES32), param("secret", BYTES32)],
    };

    pub const FUNCTIONS: &[Function] = &[REGISTER_SECRET, GET_SECRET_REVEAL_BLOCK_TIME];
    pub const EVENTS: &[Event] = &[SECRET_REVEALED];
}

/// Raiden's test token (CustomToken): an ERC-20 with a free `mint`.
pub mod custom_token {
    use super::*;

    /// Constructor: initial supply (to the deployer), decimals, name, symbol.
    pub const CONSTRUCTOR: &[Param] = &[
        param("initial_supply", UINT256),
        param("decimal_units", Kind::Uint(8)),
        param("token_name", Kind::String),
        param("token_symbol", Kind::String),
    ];

    pub const MINT: Function = Function {
        name: "mint",
        inputs: &[param("num", UINT256)],
        outputs: &[],
    };
    pub const MINT_FOR: Function = Function {
        name: "mintFor",
        inputs: &[param("num", UINT256), param("target", ADDRESS)],
        outputs: &[],
    };
    pub const APPROVE: Function = Function {
        name: "approve",
        inputs: &[param("_spender", ADDRESS), param("_value", UINT256)],
        outputs: &[param("success", Kind::Bool)],
    };
    pub const ALLOWANCE: Function = Function {
        name: "allowance",
        inputs: &[param("_owner", ADDRESS), param("_spender", ADDRESS)],
        outputs: &[param("remaining", UINT256)],
    };
    pub const BALANCE_OF: Function = Function {
        name: "balanceOf",
        inputs: &[param("_owner", ADDRESS)],
        outputs: &[param("balance", UINT256)],
    };
    pub const TOTAL_SUPPLY: Function = Function {
        name: "totalSupply",
        inputs: &[],
        outputs: &[param("supply", UINT256)],
    };

    pub const MINTED: Event = Event {
        name: "Minted",
        params: &[indexed("_to", ADDRESS), indexed("_num", UINT256)],
    };

    pub const FUNCTIONS: &[Function] =
        &[MINT, MINT_FOR, APPROVE, ALLOWANCE, BALANCE_OF, TOTAL_SUPPLY];
    pub const EVENTS: &[Event] = &[MINTED];
}
