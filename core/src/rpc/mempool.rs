//! The mempool, fee estimates and transaction subscriptions.

use std::collections::BTreeMap;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use super::param::{coins, Param};
use crate::{Amount, Txid};

/// The mempool, fee estimates and transaction subscriptions.
#[rpc(server, client)]
pub trait Mempool {
    /// Txids in the mempool, or (verbose) entries by txid.
    #[method(name = "getrawmempool")]
    async fn get_raw_mempool(&self, verbose: Option<Param<bool>>) -> RpcResult<RawMempool>;

    /// Mempool size and limits.
    #[method(name = "getmempoolinfo")]
    async fn get_mempool_info(&self) -> RpcResult<MempoolInfo>;

    /// Bitcoin Core's fee estimate for confirmation within `conf_target` blocks: `feerate`
    /// (coins per 1,000 bytes) and `blocks`, or `errors` when the node has no data.
    #[method(name = "estimatesmartfee")]
    async fn estimate_smart_fee(
        &self,
        conf_target: Param<u32>,
        estimate_mode: Option<Param<String>>,
    ) -> RpcResult<FeeEstimate>;

    /// Writes the mempool to `mempool.dat` now (it is also written at shutdown and every two
    /// minutes); answers `{"filename": path}`.
    #[method(name = "savemempool")]
    async fn save_mempool(&self) -> RpcResult<SavedMempool>;

    /// One mempool entry.
    #[method(name = "getmempoolentry")]
    async fn get_mempool_entry(&self, txid: Param<String>) -> RpcResult<MempoolEntry>;

    /// WebSocket only: pushes the txid of every transaction accepted into the mempool.
    #[subscription(name = "subscribenewtx", unsubscribe = "unsubscribenewtx", item = Txid)]
    async fn subscribe_new_tx(&self) -> SubscriptionResult;
}

/// `getrawmempool`: txids, or entries by txid with `verbose`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RawMempool {
    /// Txids.
    Ids(Vec<Txid>),
    /// Entries by txid.
    Verbose(BTreeMap<Txid, MempoolEntry>),
}

/// A mempool entry (`getmempoolentry`, `getrawmempool` with `verbose`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MempoolEntry {
    /// Virtual size (the size).
    pub vsize: usize,
    /// Weight: 4 × size.
    pub weight: usize,
    /// When it entered the mempool (Unix seconds).
    pub time: u64,
    /// Its fees.
    pub fees: MempoolFees,
    /// Unconfirmed transactions it spends.
    pub depends: Vec<Txid>,
    /// Mempool transactions that spend it.
    pub spentby: Vec<Txid>,
}

/// A mempool entry's fees.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolFees {
    /// Its own fee.
    #[serde(with = "coins")]
    pub base: Amount,
}

/// `getmempoolinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolInfo {
    /// True once `mempool.dat` has been loaded.
    pub loaded: bool,
    /// Transactions.
    pub size: usize,
    /// Their total size.
    pub bytes: usize,
    /// Memory used (their size).
    pub usage: usize,
    /// Size limit in bytes.
    pub maxmempool: usize,
    /// Lowest fee rate accepted now, coins per 1,000 bytes.
    #[serde(with = "coins")]
    pub mempoolminfee: Amount,
    /// Lowest relay fee rate, coins per 1,000 bytes.
    #[serde(with = "coins")]
    pub minrelaytxfee: Amount,
    /// Transactions held until their parents arrive.
    pub orphans: usize,
}

/// `estimatesmartfee`: a rate, or errors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeEstimate {
    /// Coins per 1,000 bytes (absent without data).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub feerate: Option<f64>,
    /// Why there is no rate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<String>>,
    /// The target the rate is for (0 without data).
    pub blocks: u32,
}

/// `savemempool`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedMempool {
    /// The file written.
    pub filename: String,
}
