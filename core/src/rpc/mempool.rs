//! The mempool, fee estimates and transaction subscriptions.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// The mempool, fee estimates and transaction subscriptions.
#[rpc(server, client)]
pub trait Mempool {
    /// Txids in the mempool, or (verbose) entries by txid.
    #[method(name = "getrawmempool")]
    async fn get_raw_mempool(&self, verbose: Option<bool>) -> RpcResult<Value>;

    /// Mempool size and limits.
    #[method(name = "getmempoolinfo")]
    async fn get_mempool_info(&self) -> RpcResult<Value>;

    /// Bitcoin Core's fee estimate for confirmation within `conf_target` blocks: `feerate`
    /// (coins per 1,000 bytes) and `blocks`, or `errors` when the node has no data.
    #[method(name = "estimatesmartfee")]
    async fn estimate_smart_fee(
        &self,
        conf_target: u32,
        estimate_mode: Option<String>,
    ) -> RpcResult<Value>;

    /// Writes the mempool to `mempool.dat` now (it is also written at shutdown and every two
    /// minutes); answers `{"filename": path}`.
    #[method(name = "savemempool")]
    async fn save_mempool(&self) -> RpcResult<Value>;

    /// One mempool entry.
    #[method(name = "getmempoolentry")]
    async fn get_mempool_entry(&self, txid: String) -> RpcResult<Value>;

    /// WebSocket only: pushes the txid of every transaction accepted into the mempool.
    #[subscription(name = "subscribenewtx", unsubscribe = "unsubscribenewtx", item = String)]
    async fn subscribe_new_tx(&self) -> SubscriptionResult;
}
