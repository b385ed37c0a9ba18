//! Raw transactions: send, test, look up and decode.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// Raw transactions: send, test, look up and decode.
#[rpc(server, client)]
pub trait RawTransactions {
    /// Validates and adds a transaction to the mempool; returns its txid.
    #[method(name = "sendrawtransaction")]
    async fn send_raw_transaction(
        &self,
        hexstring: String,
        maxfeerate: Option<Value>,
    ) -> RpcResult<String>;

    /// Whether transactions would be accepted, without adding them.
    #[method(name = "testmempoolaccept")]
    async fn test_mempool_accept(
        &self,
        rawtxs: Vec<String>,
        maxfeerate: Option<Value>,
    ) -> RpcResult<Value>;

    /// A mempool or active-chain transaction, as hex or JSON.
    #[method(name = "getrawtransaction")]
    async fn get_raw_transaction(
        &self,
        txid: String,
        verbose: Option<Value>,
        blockhash: Option<String>,
    ) -> RpcResult<Value>;

    /// Decodes a transaction's hex.
    #[method(name = "decoderawtransaction")]
    async fn decode_raw_transaction(&self, hexstring: String) -> RpcResult<Value>;
}
