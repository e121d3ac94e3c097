//! The slice of the Raiden 0.50 contracts' interface this crate uses, declared in Solidity
//! syntax with `sol!`. Only what we call or listen to is declared; a test checks every
//! selector and event topic here against the ABI in `.devchain/contracts.json`, so the two
//! cannot drift apart.

use alloy::sol;

sol! {
    /// Raiden TokenNetwork v0.50.
    interface ITokenNetwork {
        /// One participant's side of `cooperativeSettle` (a withdraw signed by both).
        struct WithdrawInput {
            address participant;
            uint256 total_withdraw;
            uint256 withdrawable_until;
            bytes participant_signature;
            bytes partner_signature;
        }

        event ChannelOpened(uint256 indexed channel_identifier, address indexed participant1, address indexed participant2);
        event ChannelNewDeposit(uint256 indexed channel_identifier, address indexed participant, uint256 total_deposit);
        event ChannelWithdraw(uint256 indexed channel_identifier, address indexed participant, uint256 total_withdraw);
        event ChannelClosed(uint256 indexed channel_identifier, address indexed closing_participant, uint256 indexed nonce, bytes32 balance_hash);
        event NonClosingBalanceProofUpdated(uint256 indexed channel_identifier, address indexed closing_participant, uint256 indexed nonce, bytes32 balance_hash);
        event ChannelSettled(uint256 indexed channel_identifier, address participant1, uint256 participant1_amount, bytes32 participant1_locksroot, address participant2, uint256 participant2_amount, bytes32 participant2_locksroot);
        event ChannelUnlocked(uint256 indexed channel_identifier, address indexed receiver, address indexed sender, bytes32 locksroot, uint256 unlocked_amount, uint256 returned_tokens);

        function openChannel(address participant1, address participant2) external returns (uint256);
        function openChannelWithDeposit(address participant1, address participant2, uint256 participant1_total_deposit) external returns (uint256);
        function setTotalDeposit(uint256 channel_identifier, address participant, uint256 total_deposit, address partner) external;
        function setTotalWithdraw(uint256 channel_identifier, address participant, uint256 total_withdraw, uint256 withdrawable_until, bytes participant_signature, bytes partner_signature) external;
        function closeChannel(uint256 channel_identifier, address non_closing_participant, address closing_participant, bytes32 balance_hash, uint256 nonce, bytes32 additional_hash, bytes non_closing_signature, bytes closing_signature) external;
        function updateNonClosingBalanceProof(uint256 channel_identifier, address closing_participant, address non_closing_participant, bytes32 balance_hash, uint256 nonce, bytes32 additional_hash, bytes closing_signature, bytes non_closing_signature) external;
        function settleChannel(uint256 channel_identifier, address participant1, uint256 participant1_transferred_amount, uint256 participant1_locked_amount, bytes32 participant1_locksroot, address participant2, uint256 participant2_transferred_amount, uint256 participant2_locked_amount, bytes32 participant2_locksroot) external;
        function cooperativeSettle(uint256 channel_identifier, WithdrawInput data1, WithdrawInput data2) external;
        function unlock(uint256 channel_identifier, address receiver, address sender, bytes locks) external;

        function getChannelIdentifier(address participant, address partner) external view returns (uint256);
        function getChannelParticipantInfo(uint256 channel_identifier, address participant, address partner) external view returns (uint256 deposit, uint256 withdrawn_amount, bool is_the_closer, bytes32 balance_hash, uint256 nonce, bytes32 locksroot, uint256 locked_amount);
        function settleable_after(uint256 channel_identifier) external view returns (uint256);
        function settle_timeout() external view returns (uint256);
        function chain_id() external view returns (uint256);
        function token() external view returns (address);
        function secret_registry() external view returns (address);
    }

    /// Raiden SecretRegistry v0.50.
    interface ISecretRegistry {
        event SecretRevealed(bytes32 indexed secrethash, bytes32 secret);

        function registerSecret(bytes32 secret) external returns (bool);
        function getSecretRevealBlockTime(bytes32 secrethash) external view returns (uint256);
    }

    /// Raiden's test token (CustomToken): an ERC-20 with a free `mint`.
    interface ICustomToken {
        event Minted(address indexed _to, uint256 indexed _num);

        function mint(uint256 num) external;
        function mintFor(uint256 num, address target) external;
        function approve(address _spender, uint256 _value) external returns (bool);
        function allowance(address _owner, address _spender) external view returns (uint256);
        function balanceOf(address _owner) external view returns (uint256);
        function totalSupply() external view returns (uint256);
    }
}
