//! [`EthereumLedger::execute`]: a `channel-core` [`LedgerOp`] sent as the contract call it
//! stands for, through the typed operations of `channel` and `closing` (every check of theirs
//! still runs).
//!
//! An op names what the embedded ledger needs; a few contract calls also want the channel's
//! other participant (deposit, withdraw, close) or who closed it (update). Those are read from
//! the chain: the participants from the channel's `ChannelOpened` log
//! ([`EthereumLedger::channel_participants`]), the closer from `getChannelParticipantInfo`.
//! Checks that need no node (a proof bound to another chain or channel, malformed locks) run
//! before those reads, so obviously wrong input costs no round trip.
//!
//! The sender is always our own account. The contract lets anyone raise a participant's
//! deposit with their own tokens, and so does the embedded ledger, so a `SetTotalDeposit` for
//! the partner is sent as it is (we pay).

use channel_core::channel::{CloseTransaction, UpdateTransaction};
use channel_core::ledger::{CoSignedWithdraw, LedgerOp};
use channel_core::{Address, H256, U256};

use super::{decoded, EthereumLedger, TxOutcome};
use crate::bindings::token_network as tn;
use crate::error::EthError;
use crate::wire::LogFilter;

impl EthereumLedger {
    /// Sends `op` as our transaction and waits for its receipt. What it did arrives as
    /// events ([`EthereumLedger::poll_events`]); for an open, the new channel's identifier is
    /// in its `ChannelOpened` event.
    pub async fn execute(&self, op: &LedgerOp) -> Result<TxOutcome, EthError> {
        let step = op.name();
        match op {
            LedgerOp::OpenChannel {
                partner,
                total_deposit,
            } => Ok(self.open_channel(*partner, *total_deposit).await?.1),
            LedgerOp::SetTotalDeposit {
                channel_id,
                participant,
                total_deposit,
            } => {
                let partner = self.partner_in(step, *channel_id, *participant).await?;
                self.set_total_deposit_for(*channel_id, *participant, partner, *total_deposit)
                    .await
            }
            LedgerOp::SetTotalWithdraw(w) => {
                self.check_domain(step, "withdraw proof", &w.proof.domain)?;
                let partner = self
                    .partner_in(step, w.proof.channel_identifier, w.proof.participant)
                    .await?;
                self.set_total_withdraw(partner, w).await
            }
            LedgerOp::Close(close) => self.execute_close(step, close).await,
            LedgerOp::Update(update) => self.execute_update(step, update).await,
            LedgerOp::Settle(settle) => {
                let [a, b] = settle.balances;
                self.settle_channel(settle.channel_id, a, b).await
            }
            LedgerOp::RegisterSecret(secret) => self.register_secret(*secret).await,
            LedgerOp::Unlock {
                channel_id,
                receiver,
                sender,
                packed_locks,
            } => Ok(self
                .unlock_packed(*channel_id, *receiver, *sender, packed_locks)
                .await?
                .outcome),
            LedgerOp::CooperativeSettle {
                channel_id,
                withdraws: [w1, w2],
            } => {
                self.execute_cooperative_settle(step, *channel_id, w1, w2)
                    .await
            }
        }
    }

    /// The two participants of `channel_id` (opener first), from its `ChannelOpened` log.
    ///
    /// Looked up once per channel (participants never change) and kept. The lookup asks for
    /// the log in one `eth_getLogs` from `first_block` to the head, narrowed to this
    /// contract, this event and this channel identifier: a node answers that from its log
    /// index, and it is asked once. A provider that caps the block range of every query
    /// refuses it; then the range is searched in windows of `max_log_range` blocks, newest
    /// first (a contest usually concerns a recent channel). Refused if no such channel was
    /// ever opened.
    pub async fn channel_participants(&self, channel_id: U256) -> Result<[Address; 2], EthError> {
        if let Some(known) = self.known_participants(&channel_id) {
            return Ok(known);
        }
        let head = self.node.block_number().await?;
        let whole = self.opened_filter(channel_id, self.first_block, head);
        let logs = match self.node.logs_once(&whole).await {
            Ok(logs) => logs,
            // Refused, or no answer this once: the windows' queries are retried as usual, and
            // a node that is down fails the first of them.
            Err(_) => self.opened_logs_in_windows(channel_id, head).await?,
        };
        let participants = self.participants_of(channel_id, &logs)?;
        if let Ok(mut known) = self.participants.lock() {
            known.insert(channel_id, participants);
        }
        Ok(participants)
    }

    fn known_participants(&self, channel_id: &U256) -> Option<[Address; 2]> {
        self.participants
            .lock()
            .ok()
            .and_then(|known| known.get(channel_id).copied())
    }

    fn opened_filter(&self, channel_id: U256, from_block: u64, to_block: u64) -> LogFilter {
        LogFilter {
            addresses: vec![self.token_network],
            topic0: vec![tn::CHANNEL_OPENED.topic0()],
            topic1: vec![H256(channel_id.to_be_bytes::<32>())],
            from_block,
            to_block,
        }
    }

    /// `channel_id`'s `ChannelOpened` logs, searched in windows of `max_log_range` blocks
    /// from `head` back to `first_block`; stops at the first window that has one.
    async fn opened_logs_in_windows(
        &self,
        channel_id: U256,
        head: u64,
    ) -> Result<Vec<crate::wire::Log>, EthError> {
        let mut to = head;
        loop {
            let from = to
                .saturating_sub(self.max_log_range.saturating_sub(1))
                .max(self.first_block);
            let logs = self
                .node
                .logs(&self.opened_filter(channel_id, from, to))
                .await?;
            if logs.iter().any(|l| !l.removed) || from <= self.first_block {
                return Ok(logs);
            }
            to = from - 1;
        }
    }

    fn participants_of(
        &self,
        channel_id: U256,
        logs: &[crate::wire::Log],
    ) -> Result<[Address; 2], EthError> {
        const STEP: &str = "ChannelOpened lookup";
        let log = logs
            .iter()
            .find(|l| !l.removed && l.address == self.token_network)
            .ok_or_else(|| EthError::InvalidInput {
                step: STEP,
                reason: format!(
                    "no channel {channel_id} was ever opened on token network {}",
                    self.token_network
                ),
            })?;
        let opened = tn::CHANNEL_OPENED
            .decode_log(&log.topics, &log.data)
            .map_err(decoded(STEP))?;
        let p1 = opened.address("participant1").map_err(decoded(STEP))?;
        let p2 = opened.address("participant2").map_err(decoded(STEP))?;
        Ok([p1, p2])
    }

    /// The channel partner of `participant` in `channel_id`.
    async fn partner_in(
        &self,
        step: &'static str,
        channel_id: U256,
        participant: Address,
    ) -> Result<Address, EthError> {
        let [p1, p2] = self.channel_participants(channel_id).await?;
        other_of([p1, p2], participant).ok_or_else(|| EthError::InvalidInput {
            step,
            reason: format!(
                "{participant} is not a participant of channel {channel_id} ({p1} and {p2} are)"
            ),
        })
    }

    /// Our close: the partner is whoever else is in the channel.
    async fn execute_close(
        &self,
        step: &'static str,
        close: &CloseTransaction,
    ) -> Result<TxOutcome, EthError> {
        let proof = &close.partner_proof.proof;
        self.check_domain(step, "partner balance proof", &proof.domain)?;
        Self::check_channel(
            step,
            "partner balance proof",
            close.channel_id,
            proof.channel_identifier,
        )?;
        let partner = self.partner_in(step, close.channel_id, self.me).await?;
        self.close_channel(partner, close).await
    }

    /// An update of the closer's proof: the closer is who the contract says closed.
    async fn execute_update(
        &self,
        step: &'static str,
        update: &UpdateTransaction,
    ) -> Result<TxOutcome, EthError> {
        let proof = &update.closer_proof.proof;
        self.check_domain(step, "closer balance proof", &proof.domain)?;
        Self::check_channel(
            step,
            "closer balance proof",
            update.channel_id,
            proof.channel_identifier,
        )?;
        let [p1, p2] = self.channel_participants(update.channel_id).await?;
        let info = self.participant_info(update.channel_id, p1, p2).await?;
        let (closer, non_closer) = if info.is_the_closer {
            (p1, p2)
        } else if self
            .participant_info(update.channel_id, p2, p1)
            .await?
            .is_the_closer
        {
            (p2, p1)
        } else {
            return Err(EthError::InvalidInput {
                step,
                reason: format!(
                    "channel {} is not closed (no closer on chain): nothing to update",
                    update.channel_id
                ),
            });
        };
        self.update_non_closing_balance_proof(closer, non_closer, update)
            .await
    }

    async fn execute_cooperative_settle(
        &self,
        step: &'static str,
        channel_id: U256,
        w1: &CoSignedWithdraw,
        w2: &CoSignedWithdraw,
    ) -> Result<TxOutcome, EthError> {
        // `cooperative_settle` checks the second withdraw against the first.
        Self::check_channel(
            step,
            "first withdraw",
            channel_id,
            w1.proof.channel_identifier,
        )?;
        self.cooperative_settle(w1, w2).await
    }
}

/// The one of `pair` that is not `who`, if `who` is one of them.
fn other_of(pair: [Address; 2], who: Address) -> Option<Address> {
    match pair {
        [a, b] if a == who => Some(b),
        [a, b] if b == who => Some(a),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;
    use std::time::Duration;

    use channel_core::ledger::SettleTransaction;
    use channel_core::testing::{test_domain, test_signer, Pair, Side};
    use channel_core::{BalanceData, Domain, LocalSigner, Secret, Signer};

    use super::*;
    use crate::fees::DEFAULT_MAX_FEE_PER_GAS;
    use crate::node::Node;
    use crate::rpc::RetryPolicy;
    use crate::tx::{Caps, TxSender};

    /// A ledger for `key` on `domain` whose node is a closed loopback port: any request it
    /// made would fail as `Unavailable`, so an input error proves nothing was asked or sent.
    fn offline_ledger(key: &LocalSigner, domain: Domain) -> EthereumLedger {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        ledger_on(&format!("http://127.0.0.1:{port}"), key, domain)
    }

    /// A ledger for `key` on `domain` talking to the node at `url` (no deployment checks).
    fn ledger_on(url: &str, key: &LocalSigner, domain: Domain) -> EthereumLedger {
        let policy = RetryPolicy {
            attempts: 1,
            request_timeout: Duration::from_millis(500),
            initial_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(1),
        };
        let node = Node::connect(url, policy).unwrap();
        let caps = Caps {
            gas: 3_000_000,
            fee_per_gas: DEFAULT_MAX_FEE_PER_GAS,
        };
        EthereumLedger {
            tx: TxSender::new(node.clone(), key.clone(), 337, caps, Duration::from_secs(1)),
            node,
            me: key.address(),
            domain,
            token_network: domain.token_network_address,
            token: Address([0x70; 20]),
            secret_registry: Address([0x5e; 20]),
            settle_timeout: 100,
            confirmations: 1,
            max_log_range: 100,
            first_block: 0,
            participants: Default::default(),
        }
    }

    fn paid_pair() -> Pair {
        let mut pair = Pair::new(U256::from(500u64), U256::from(300u64));
        pair.pay(Side::A, U256::from(40u64)).unwrap();
        pair.pay(Side::B, U256::from(15u64)).unwrap();
        pair
    }

    fn other_domain() -> Domain {
        Domain {
            chain_id: U256::from(1u64),
            ..test_domain()
        }
    }

    async fn refused(ledger: &EthereumLedger, op: &LedgerOp) -> EthError {
        let err = ledger.execute(op).await.unwrap_err();
        assert!(
            err.is_input_error(),
            "{} refused before any RPC, got: {err}",
            op.name()
        );
        err
    }

    #[tokio::test]
    async fn a_close_for_another_channel_or_chain_is_refused_before_any_rpc() {
        let mut pair = paid_pair();
        let (b_ch, key_b) = pair.parts(Side::B);
        let close = b_ch.close(key_b).unwrap();
        let ours = offline_ledger(key_b, test_domain());
        let mut elsewhere = close.clone();
        elsewhere.channel_id = U256::from(2u8);
        let err = refused(&ours, &LedgerOp::Close(elsewhere)).await;
        assert!(err.to_string().contains("not channel 2"), "{err}");

        let foreign = offline_ledger(key_b, other_domain());
        let err = refused(&foreign, &LedgerOp::Close(close)).await;
        assert!(matches!(err, EthError::WrongDomain { .. }), "{err}");
    }

    #[tokio::test]
    async fn an_update_or_withdraw_bound_elsewhere_is_refused_before_any_rpc() {
        let mut pair = paid_pair();
        pair.b
            .handle_ledger_closed(pair.key_a.address(), 1_000)
            .unwrap();
        let update = pair.b.update_transaction(&pair.key_b).unwrap().unwrap();
        let foreign = offline_ledger(&pair.key_b, other_domain());
        let err = refused(&foreign, &LedgerOp::Update(update.clone())).await;
        assert!(matches!(err, EthError::WrongDomain { .. }), "{err}");
        let mut elsewhere = update;
        elsewhere.channel_id = U256::from(9u8);
        let ours = offline_ledger(&pair.key_b, test_domain());
        let err = refused(&ours, &LedgerOp::Update(elsewhere)).await;
        assert!(err.to_string().contains("not channel 9"), "{err}");

        let key = test_signer(1);
        let w = CoSignedWithdraw {
            proof: channel_core::WithdrawProof {
                domain: other_domain(),
                channel_identifier: U256::from(1u8),
                participant: key.address(),
                total_withdraw: U256::from(5u8),
                withdrawable_until: 2_000,
            },
            participant_signature: channel_core::Signature::EMPTY,
            partner_signature: channel_core::Signature::EMPTY,
        };
        let err = refused(&ours, &LedgerOp::SetTotalWithdraw(w)).await;
        assert!(matches!(err, EthError::WrongDomain { .. }), "{err}");
    }

    #[tokio::test]
    async fn malformed_or_missing_locks_are_refused_before_any_rpc() {
        let key = test_signer(2);
        let ledger = offline_ledger(&key, test_domain());
        let unlock = |packed_locks: Vec<u8>| LedgerOp::Unlock {
            channel_id: U256::from(1u8),
            receiver: key.address(),
            sender: test_signer(1).address(),
            packed_locks,
        };
        let err = refused(&ledger, &unlock(vec![7; 5])).await;
        assert!(err.to_string().contains("packed locks"), "{err}");
        let err = refused(&ledger, &unlock(Vec::new())).await;
        assert!(err.to_string().contains("no locks"), "{err}");
    }

    #[tokio::test]
    async fn cooperative_settle_checks_the_channel_and_both_signatures_before_any_rpc() {
        let mut pair = paid_pair();
        let proposal = pair
            .a
            .propose_cooperative_close(2_000, 1_000, &pair.key_a)
            .unwrap();
        let acceptance = pair
            .b
            .accept_cooperative_close(&proposal, 1_000, &pair.key_b)
            .unwrap();
        let w_a = CoSignedWithdraw {
            proof: proposal.proposer_withdraw,
            participant_signature: proposal.proposer_signature,
            partner_signature: acceptance.on_proposer_withdraw,
        };
        let w_b = CoSignedWithdraw {
            proof: proposal.partner_withdraw,
            participant_signature: acceptance.on_own_withdraw,
            partner_signature: proposal.partner_withdraw_proposer_signature,
        };
        let ledger = offline_ledger(&pair.key_a, test_domain());
        let op = |channel_id: u8, withdraws| LedgerOp::CooperativeSettle {
            channel_id: U256::from(channel_id),
            withdraws,
        };
        let err = refused(&ledger, &op(3, [w_a, w_b])).await;
        assert!(err.to_string().contains("not channel 3"), "{err}");
        let err = refused(&ledger, &op(1, [w_a, w_a])).await;
        assert!(err.to_string().contains("both withdraws"), "{err}");
        // B's signature where A's belongs: the existing signer check still runs.
        let forged = CoSignedWithdraw {
            participant_signature: w_a.partner_signature,
            ..w_a
        };
        let err = refused(&ledger, &op(1, [forged, w_b])).await;
        assert!(matches!(err, EthError::WrongSigner { .. }), "{err}");
    }

    #[tokio::test]
    async fn settle_with_one_participant_twice_and_the_zero_secret_are_refused() {
        let key = test_signer(1);
        let ledger = offline_ledger(&key, test_domain());
        let settle = SettleTransaction {
            channel_id: U256::from(1u8),
            balances: [(key.address(), BalanceData::EMPTY); 2],
        };
        let err = refused(&ledger, &LedgerOp::Settle(settle)).await;
        assert!(err.to_string().contains("both participants"), "{err}");
        let err = refused(&ledger, &LedgerOp::RegisterSecret(Secret(H256::ZERO))).await;
        assert!(err.to_string().contains("zero secret"), "{err}");
    }

    #[tokio::test]
    async fn ops_that_need_the_chain_ask_it_and_report_it_unreachable() {
        let key = test_signer(1);
        let ledger = offline_ledger(&key, test_domain());
        let deposit = LedgerOp::SetTotalDeposit {
            channel_id: U256::from(1u8),
            participant: test_signer(2).address(),
            total_deposit: U256::from(10u8),
        };
        let err = ledger.execute(&deposit).await.unwrap_err();
        assert!(matches!(err, EthError::Unavailable { .. }), "{err}");
    }

    #[test]
    fn the_other_participant() {
        let (a, b, c) = (Address([1; 20]), Address([2; 20]), Address([3; 20]));
        assert_eq!(other_of([a, b], a), Some(b));
        assert_eq!(other_of([a, b], b), Some(a));
        assert_eq!(other_of([a, b], c), None);
    }

    /// A JSON-RPC endpoint on loopback that knows the head and one channel's `ChannelOpened`
    /// log, and refuses any `eth_getLogs` wider than `cap` blocks, as hosted providers do.
    /// Counts the `eth_getLogs` queries it is asked.
    struct Provider {
        url: String,
        log_queries: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    }

    #[derive(Clone, Copy)]
    struct Opened {
        token_network: Address,
        channel_id: U256,
        block: u64,
        participants: [Address; 2],
    }

    async fn provider(head: u64, cap: u64, opened: Opened) -> Provider {
        use std::sync::atomic::{AtomicUsize, Ordering};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let log_queries = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = log_queries.clone();
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let answer = |req: &serde_json::Value| {
                        let quantity = |v: &serde_json::Value| {
                            u64::from_str_radix(v.as_str().unwrap().trim_start_matches("0x"), 16)
                                .unwrap()
                        };
                        match req["method"].as_str() {
                            Some("eth_blockNumber") => Ok(serde_json::json!(format!("0x{head:x}"))),
                            Some("eth_getLogs") => {
                                counter.fetch_add(1, Ordering::SeqCst);
                                let f = &req["params"][0];
                                let (from, to) =
                                    (quantity(&f["fromBlock"]), quantity(&f["toBlock"]));
                                if to.saturating_sub(from) >= cap {
                                    return Err(serde_json::json!({
                                        "code": -32005,
                                        "message": format!("block range is limited to {cap}")
                                    }));
                                }
                                let wanted =
                                    crate::wire::data_hex(&opened.channel_id.to_be_bytes::<32>());
                                let asks = f["topics"][1]
                                    .as_array()
                                    .unwrap()
                                    .iter()
                                    .any(|t| t == &serde_json::json!(wanted));
                                if !asks || opened.block < from || opened.block > to {
                                    return Ok(serde_json::json!([]));
                                }
                                let word = |a: Address| {
                                    let mut w = [0u8; 32];
                                    w[12..].copy_from_slice(&a.0);
                                    crate::wire::data_hex(&w)
                                };
                                Ok(serde_json::json!([{
                                    "address": crate::wire::data_hex(&opened.token_network.0),
                                    "topics": [
                                        crate::wire::data_hex(&tn::CHANNEL_OPENED.topic0().0),
                                        wanted,
                                        word(opened.participants[0]),
                                        word(opened.participants[1]),
                                    ],
                                    "data": "0x",
                                    "blockNumber": format!("0x{:x}", opened.block),
                                    "logIndex": "0x0",
                                    "transactionHash": crate::wire::data_hex(&[0x77; 32]),
                                    "removed": false,
                                }]))
                            }
                            _ => Err(
                                serde_json::json!({"code": -32601, "message": "no such method"}),
                            ),
                        }
                    };
                    serve_json_rpc(conn, answer).await;
                });
            }
        });
        Provider { url, log_queries }
    }

    /// Appends what `conn` has to `buf`; false once it is closed or failed.
    async fn read_more(conn: &mut tokio::net::TcpStream, buf: &mut Vec<u8>) -> bool {
        use tokio::io::AsyncReadExt;
        let mut chunk = [0u8; 4096];
        match conn.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    /// Answers HTTP/1.1 JSON-RPC requests on `conn` (kept alive) with `answer`.
    async fn serve_json_rpc(
        mut conn: tokio::net::TcpStream,
        answer: impl Fn(&serde_json::Value) -> Result<serde_json::Value, serde_json::Value>,
    ) {
        use tokio::io::AsyncWriteExt;
        let mut buf = Vec::new();
        loop {
            let head_end = loop {
                if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                    break at + 4;
                }
                if !read_more(&mut conn, &mut buf).await {
                    return;
                }
            };
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map(|v| v.trim().parse().unwrap())
                .unwrap_or(0);
            while buf.len() < head_end + length {
                if !read_more(&mut conn, &mut buf).await {
                    return;
                }
            }
            let request: serde_json::Value =
                serde_json::from_slice(&buf[head_end..head_end + length]).unwrap();
            buf.drain(..head_end + length);
            let id = request["id"].clone();
            let body = match answer(&request) {
                Ok(result) => serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result}),
                Err(error) => serde_json::json!({"jsonrpc": "2.0", "id": id, "error": error}),
            }
            .to_string();
            let response = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            if conn.write_all(response.as_bytes()).await.is_err() {
                return;
            }
        }
    }

    async fn finds(ledger: &EthereumLedger, opened: &Opened) {
        assert_eq!(
            ledger
                .channel_participants(opened.channel_id)
                .await
                .unwrap(),
            opened.participants
        );
    }

    /// A contest needs the channel's participants. Behind a provider that caps `eth_getLogs`
    /// at 100 blocks, the one wide query is refused and the lookup searches back from the
    /// head in windows; the answer is kept, so the next lookup asks nothing. A channel never
    /// opened is refused after searching back to the deployment's first block, no further.
    #[tokio::test]
    async fn participants_are_found_behind_a_provider_that_caps_log_ranges() {
        use std::sync::atomic::Ordering;
        let key = test_signer(1);
        let opened = Opened {
            token_network: test_domain().token_network_address,
            channel_id: U256::from(7u8),
            block: 9_420,
            participants: [key.address(), test_signer(2).address()],
        };
        let capped = provider(10_000, 100, opened).await;
        let mut ledger = ledger_on(&capped.url, &key, test_domain());
        ledger.first_block = 9_000;
        finds(&ledger, &opened).await;
        // The refused wide query, then windows 9,901..=10,000 down to 9,401..=9,500.
        assert_eq!(capped.log_queries.load(Ordering::SeqCst), 1 + 6);
        finds(&ledger, &opened).await;
        assert_eq!(
            capped.log_queries.load(Ordering::SeqCst),
            7,
            "kept, not asked again"
        );

        let err = ledger
            .channel_participants(U256::from(8u8))
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("no channel 8 was ever opened"),
            "{err}"
        );
        // The refused wide query, then ten windows down to 9,001 and the first block alone.
        assert_eq!(capped.log_queries.load(Ordering::SeqCst), 7 + 1 + 11);

        // A node without a cap answers the one wide query.
        let uncapped = provider(10_000, u64::MAX, opened).await;
        let ledger = ledger_on(&uncapped.url, &key, test_domain());
        finds(&ledger, &opened).await;
        assert_eq!(uncapped.log_queries.load(Ordering::SeqCst), 1);
    }
}
