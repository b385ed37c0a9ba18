//! The JSON-RPC request path, minus HTTP: what an RPC client's request body reaches.
//!
//! Input: a request body. As the node's server does, a JSON-RPC 1.0 body (no `"jsonrpc"`
//! member) goes through [`upgrade_legacy`]; then each call (each element of a batch, at most
//! [`MAX_BATCH`], the server's limit) goes through jsonrpsee's request parsing and the
//! parameter decoding that `#[rpc]` generates for every method of every topic trait of
//! `chaincore::rpc`, into a stub
//! server whose every method refuses once its parameters have decoded; a 1.0 body's answers
//! then go through [`downgrade_response`].
//!
//! Checked: no panic; an upgraded body is no longer 1.0 style; every answer is JSON, and a
//! downgraded answer has `result`, `error` and `id` and no `jsonrpc`. Not reached: the checks
//! the node's methods make inside their bodies (`node/src/rpc/`), which need a node.

use std::sync::OnceLock;

use chaincore::rpc::legacy::{downgrade_response, is_legacy, upgrade_legacy};
use chaincore::rpc::{
    AddressIndexServer, BlockchainServer, ControlServer, MempoolServer, MiningServer, NetServer,
    RawTransactionsServer,
};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::{Methods, PendingSubscriptionSink};
use serde_json::value::RawValue;
use serde_json::Value;

use chaincore::rpc::address::{AddressBalance, AddressTxids, AddressUtxos, Addresses};
use chaincore::rpc::blockchain::{
    BlockStats, BlockchainInfo, ChainTip, ChainTxStats, GetBlock, GetBlockHeader, HashOrHeight,
    TxOutInfo, TxOutSetInfo, Verbosity,
};
use chaincore::rpc::mempool::{FeeEstimate, MempoolEntry, MempoolInfo, RawMempool, SavedMempool};
use chaincore::rpc::mining::{BlockTemplate, MiningInfo, TemplateRequest};
use chaincore::rpc::network::{Ban, NetTotals, NetworkInfo, NodeAddress, PeerInfo};
use chaincore::rpc::rawtx::{GetRawTransaction, MempoolAcceptance, TransactionInfo};
use chaincore::rpc::Param;
use chaincore::{BlockHash, Txid};

/// Most calls in one batch (the node's `rpc::server::MAX_BATCH`).
pub const MAX_BATCH: usize = 100;

/// Runs one input (see the module docs).
pub fn run(data: &[u8]) {
    let legacy = is_legacy(data);
    let body = if legacy {
        let up = upgrade_legacy(data);
        assert!(
            !is_legacy(&up),
            "an upgraded request is still JSON-RPC 1.0 style"
        );
        up
    } else {
        data.to_vec()
    };
    let Ok(text) = std::str::from_utf8(&body) else {
        return;
    };
    let server = server();
    let answer = match batch(text) {
        Some(calls) => {
            let answers: Vec<String> = calls
                .iter()
                .take(MAX_BATCH)
                .map(|c| server.call(c.get()))
                .collect();
            format!("[{}]", answers.join(","))
        }
        None => server.call(text),
    };
    let parsed: Value = match serde_json::from_str(&answer) {
        Ok(v) => v,
        Err(e) => panic!("an answer that is not JSON ({e}): {answer}"),
    };
    if legacy {
        let down: Value = match serde_json::from_slice(&downgrade_response(answer.as_bytes())) {
            Ok(v) => v,
            Err(e) => panic!("a downgraded answer that is not JSON ({e})"),
        };
        let answers = match (&parsed, &down) {
            (Value::Array(_), Value::Array(d)) => d.clone(),
            (Value::Object(_), d @ Value::Object(_)) => vec![d.clone()],
            _ => panic!("downgrading changed the answer's shape: {down}"),
        };
        for a in &answers {
            assert!(
                a.get("jsonrpc").is_none()
                    && ["result", "error", "id"].iter().all(|k| a.get(k).is_some()),
                "a downgraded answer not in the 1.0 shape: {a}"
            );
        }
    }
}

/// The calls of a batch body, or `None` if `text` is not a JSON array.
fn batch(text: &str) -> Option<Vec<Box<RawValue>>> {
    if !text.trim_start().starts_with('[') {
        return None;
    }
    serde_json::from_str(text).ok()
}

/// The stub server's methods and a runtime to call them on, made once per process.
struct Server {
    runtime: tokio::runtime::Runtime,
    methods: Methods,
}

impl Server {
    /// One call through jsonrpsee; a body that is not a request gets JSON-RPC's parse error.
    fn call(&self, request: &str) -> String {
        match self
            .runtime
            .block_on(self.methods.raw_json_request(request, 1))
        {
            Ok((answer, _notifications)) => answer.get().to_string(),
            Err(_) => {
                r#"{"jsonrpc":"2.0","error":{"code":-32700,"message":"Parse error"},"id":null}"#
                    .to_string()
            }
        }
    }
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| Server {
        runtime: match tokio::runtime::Builder::new_current_thread().build() {
            Ok(r) => r,
            Err(e) => panic!("cannot start a tokio runtime: {e}"),
        },
        methods: stub_methods(),
    })
}

/// Every topic's methods of [`Stub`], in one set (as the node merges its modules).
fn stub_methods() -> Methods {
    let mut methods = Methods::new();
    let topics: [Methods; 7] = [
        BlockchainServer::into_rpc(Stub).into(),
        MiningServer::into_rpc(Stub).into(),
        RawTransactionsServer::into_rpc(Stub).into(),
        MempoolServer::into_rpc(Stub).into(),
        AddressIndexServer::into_rpc(Stub).into(),
        NetServer::into_rpc(Stub).into(),
        ControlServer::into_rpc(Stub).into(),
    ];
    for topic in topics {
        if let Err(e) = methods.merge(topic) {
            panic!("two topics register one method name: {e}");
        }
    }
    methods
}

/// What every method answers once its parameters have decoded (each [`Param`] is checked
/// first, so a wrong type answers Core's `-3` as the node's methods do).
fn refused() -> ErrorObjectOwned {
    ErrorObjectOwned::owned(-1, "fuzz stub: parameters decoded", None::<()>)
}

/// A server whose methods all answer [`refused`] and whose subscriptions are all rejected.
struct Stub;

#[async_trait]
impl BlockchainServer for Stub {
    async fn get_blockchain_info(&self) -> RpcResult<BlockchainInfo> {
        Err(refused())
    }

    async fn get_best_block_hash(&self) -> RpcResult<BlockHash> {
        Err(refused())
    }

    async fn get_block_count(&self) -> RpcResult<u32> {
        Err(refused())
    }

    async fn get_block_hash(&self, _height: Param<i64>) -> RpcResult<BlockHash> {
        _height.get()?;
        Err(refused())
    }

    async fn get_block(
        &self,
        _blockhash: Param<String>,
        _verbosity: Option<Param<Verbosity>>,
    ) -> RpcResult<GetBlock> {
        _blockhash.get()?;
        Param::optional(_verbosity)?;
        Err(refused())
    }

    async fn get_block_header(
        &self,
        _blockhash: Param<String>,
        _verbose: Option<Param<bool>>,
    ) -> RpcResult<GetBlockHeader> {
        _blockhash.get()?;
        Param::optional(_verbose)?;
        Err(refused())
    }

    async fn get_chain_tips(&self) -> RpcResult<Vec<ChainTip>> {
        Err(refused())
    }

    async fn get_chain_tx_stats(
        &self,
        _nblocks: Option<Param<i64>>,
        _blockhash: Option<Param<String>>,
    ) -> RpcResult<ChainTxStats> {
        Param::optional(_nblocks)?;
        Param::optional(_blockhash)?;
        Err(refused())
    }

    async fn get_difficulty(&self) -> RpcResult<f64> {
        Err(refused())
    }

    async fn get_tx_out(
        &self,
        _txid: Param<String>,
        _n: Param<u32>,
        _include_mempool: Option<Param<bool>>,
    ) -> RpcResult<Option<TxOutInfo>> {
        _txid.get()?;
        _n.get()?;
        Param::optional(_include_mempool)?;
        Err(refused())
    }

    async fn get_block_stats(&self, _hash_or_height: Param<HashOrHeight>) -> RpcResult<BlockStats> {
        _hash_or_height.get()?;
        Err(refused())
    }

    async fn get_tx_out_set_info(&self) -> RpcResult<TxOutSetInfo> {
        Err(refused())
    }

    async fn get_index_info(
        &self,
        _index_name: Option<Param<String>>,
    ) -> RpcResult<std::collections::BTreeMap<String, chaincore::rpc::blockchain::IndexInfo>> {
        Param::optional(_index_name)?;
        Err(refused())
    }

    async fn verify_chain(
        &self,
        _checklevel: Option<Param<u32>>,
        _nblocks: Option<Param<u32>>,
    ) -> RpcResult<bool> {
        Param::optional(_checklevel)?;
        Param::optional(_nblocks)?;
        Err(refused())
    }

    async fn invalidate_block(&self, _blockhash: Param<String>) -> RpcResult<()> {
        _blockhash.get()?;
        Err(refused())
    }

    async fn reconsider_block(&self, _blockhash: Param<String>) -> RpcResult<()> {
        _blockhash.get()?;
        Err(refused())
    }

    async fn subscribe_new_tip(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        pending.reject(refused()).await;
        Ok(())
    }
}

#[async_trait]
impl MiningServer for Stub {
    async fn get_block_template(
        &self,
        _template_request: Option<Param<TemplateRequest>>,
    ) -> RpcResult<BlockTemplate> {
        Param::optional(_template_request)?;
        Err(refused())
    }

    async fn submit_block(
        &self,
        _hexdata: Param<String>,
        _dummy: Option<Param<String>>,
    ) -> RpcResult<Option<String>> {
        Param::optional(_dummy)?;
        _hexdata.get()?;
        Err(refused())
    }

    async fn get_mining_info(&self) -> RpcResult<MiningInfo> {
        Err(refused())
    }

    async fn get_network_hash_ps(
        &self,
        _nblocks: Option<Param<i64>>,
        _height: Option<Param<i64>>,
    ) -> RpcResult<f64> {
        Param::optional(_nblocks)?;
        Param::optional(_height)?;
        Err(refused())
    }

    async fn generate_to_address(
        &self,
        _nblocks: Param<u32>,
        _address: Param<String>,
        _maxtries: Option<Param<u64>>,
    ) -> RpcResult<Vec<BlockHash>> {
        _nblocks.get()?;
        _address.get()?;
        Param::optional(_maxtries)?;
        Err(refused())
    }
}

#[async_trait]
impl RawTransactionsServer for Stub {
    async fn send_raw_transaction(
        &self,
        _hexstring: Param<String>,
        _maxfeerate: Option<Param<f64>>,
    ) -> RpcResult<Txid> {
        Param::optional(_maxfeerate)?;
        _hexstring.get()?;
        Err(refused())
    }

    async fn test_mempool_accept(
        &self,
        _rawtxs: Param<Vec<String>>,
        _maxfeerate: Option<Param<f64>>,
    ) -> RpcResult<Vec<MempoolAcceptance>> {
        Param::optional(_maxfeerate)?;
        _rawtxs.get()?;
        Err(refused())
    }

    async fn get_raw_transaction(
        &self,
        _txid: Param<String>,
        _verbose: Option<Param<Verbosity>>,
        _blockhash: Option<Param<String>>,
    ) -> RpcResult<GetRawTransaction> {
        _txid.get()?;
        Param::optional(_verbose)?;
        Param::optional(_blockhash)?;
        Err(refused())
    }

    async fn decode_raw_transaction(
        &self,
        _hexstring: Param<String>,
    ) -> RpcResult<TransactionInfo> {
        _hexstring.get()?;
        Err(refused())
    }
}

#[async_trait]
impl MempoolServer for Stub {
    async fn get_raw_mempool(&self, _verbose: Option<Param<bool>>) -> RpcResult<RawMempool> {
        Param::optional(_verbose)?;
        Err(refused())
    }

    async fn get_mempool_info(&self) -> RpcResult<MempoolInfo> {
        Err(refused())
    }

    async fn estimate_smart_fee(
        &self,
        _conf_target: Param<u32>,
        _estimate_mode: Option<Param<String>>,
    ) -> RpcResult<FeeEstimate> {
        _conf_target.get()?;
        Param::optional(_estimate_mode)?;
        Err(refused())
    }

    async fn save_mempool(&self) -> RpcResult<SavedMempool> {
        Err(refused())
    }

    async fn get_mempool_entry(&self, _txid: Param<String>) -> RpcResult<MempoolEntry> {
        _txid.get()?;
        Err(refused())
    }

    async fn subscribe_new_tx(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        pending.reject(refused()).await;
        Ok(())
    }
}

#[async_trait]
impl AddressIndexServer for Stub {
    async fn get_address_balance(&self, _addresses: Param<Addresses>) -> RpcResult<AddressBalance> {
        _addresses.get()?;
        Err(refused())
    }

    async fn get_address_utxos(&self, _addresses: Param<Addresses>) -> RpcResult<AddressUtxos> {
        _addresses.get()?;
        Err(refused())
    }

    async fn get_address_txids(&self, _addresses: Param<Addresses>) -> RpcResult<AddressTxids> {
        _addresses.get()?;
        Err(refused())
    }
}

#[async_trait]
impl NetServer for Stub {
    async fn get_peer_info(&self) -> RpcResult<Vec<PeerInfo>> {
        Err(refused())
    }

    async fn get_connection_count(&self) -> RpcResult<usize> {
        Err(refused())
    }

    async fn add_node(&self, _node: Param<String>, _command: Param<String>) -> RpcResult<()> {
        _node.get()?;
        _command.get()?;
        Err(refused())
    }

    async fn get_network_info(&self) -> RpcResult<NetworkInfo> {
        Err(refused())
    }

    async fn disconnect_node(&self, _address: Param<String>) -> RpcResult<()> {
        _address.get()?;
        Err(refused())
    }

    async fn get_node_addresses(
        &self,
        _count: Option<Param<usize>>,
    ) -> RpcResult<Vec<NodeAddress>> {
        Param::optional(_count)?;
        Err(refused())
    }

    async fn set_ban(
        &self,
        _subnet: Param<String>,
        _command: Param<String>,
        _bantime: Option<Param<u64>>,
    ) -> RpcResult<()> {
        _subnet.get()?;
        _command.get()?;
        Param::optional(_bantime)?;
        Err(refused())
    }

    async fn list_banned(&self) -> RpcResult<Vec<Ban>> {
        Err(refused())
    }

    async fn clear_banned(&self) -> RpcResult<()> {
        Err(refused())
    }

    async fn get_net_totals(&self) -> RpcResult<NetTotals> {
        Err(refused())
    }

    async fn ping(&self) -> RpcResult<()> {
        Err(refused())
    }
}

#[async_trait]
impl ControlServer for Stub {
    async fn uptime(&self) -> RpcResult<u64> {
        Err(refused())
    }

    async fn stop(&self) -> RpcResult<String> {
        Err(refused())
    }

    async fn help(&self, _command: Option<Param<String>>) -> RpcResult<String> {
        Param::optional(_command)?;
        Err(refused())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The target reaches each method's parameter decoding: good parameters get to the stub,
    /// a wrong type gets Core's type error, a missing one jsonrpsee's invalid-parameters
    /// error, and a 1.0 call is upgraded first.
    #[test]
    fn calls_reach_parameter_decoding() {
        let answer = |body: &str| -> Value {
            let body = if is_legacy(body.as_bytes()) {
                upgrade_legacy(body.as_bytes())
            } else {
                body.as_bytes().to_vec()
            };
            serde_json::from_str(&server().call(std::str::from_utf8(&body).unwrap())).unwrap()
        };
        let ok = answer(r#"{"jsonrpc":"2.0","method":"getblockhash","params":[1],"id":1}"#);
        assert_eq!(ok["error"]["code"], -1, "{ok}");
        let bad = answer(r#"{"jsonrpc":"2.0","method":"getblockhash","params":["x"],"id":1}"#);
        assert_eq!(bad["error"]["code"], -3, "{bad}");
        let missing = answer(r#"{"jsonrpc":"2.0","method":"getblockhash","params":[],"id":1}"#);
        assert_eq!(missing["error"]["code"], -32602, "{missing}");
        let legacy = answer(r#"{"method":"gettxout","params":["ab",1,true],"id":2}"#);
        assert_eq!(legacy["error"]["code"], -1, "{legacy}");
        run(br#"[{"method":"uptime","id":1},{"jsonrpc":"2.0","method":"stop","id":2},7]"#);
    }
}
