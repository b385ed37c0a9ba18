//! Blocks, the chain and the UTXO set; `invalidateblock` / `reconsiderblock`; tip subscriptions.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// Blocks, the chain and the UTXO set; `invalidateblock` / `reconsiderblock`; tip subscriptions.
#[rpc(server, client)]
pub trait Blockchain {
    /// State of the chain (Core's shape).
    #[method(name = "getblockchaininfo")]
    async fn get_blockchain_info(&self) -> RpcResult<Value>;

    /// Hash of the best block.
    #[method(name = "getbestblockhash")]
    async fn get_best_block_hash(&self) -> RpcResult<String>;

    /// Height of the best block.
    #[method(name = "getblockcount")]
    async fn get_block_count(&self) -> RpcResult<u32>;

    /// Hash of the active-chain block at `height`.
    #[method(name = "getblockhash")]
    async fn get_block_hash(&self, height: i64) -> RpcResult<String>;

    /// A block: hex (verbosity 0), JSON with txids (1) or with decoded transactions (2).
    #[method(name = "getblock")]
    async fn get_block(&self, blockhash: String, verbosity: Option<Value>) -> RpcResult<Value>;

    /// A header as JSON (`verbose` true, the default) or hex.
    #[method(name = "getblockheader")]
    async fn get_block_header(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<Value>;

    /// Every known branch tip.
    #[method(name = "getchaintips")]
    async fn get_chain_tips(&self) -> RpcResult<Value>;

    /// Difficulty of the best block relative to `0x1d00ffff`.
    #[method(name = "getdifficulty")]
    async fn get_difficulty(&self) -> RpcResult<f64>;

    /// An unspent output, or null.
    #[method(name = "gettxout")]
    async fn get_tx_out(
        &self,
        txid: String,
        n: u32,
        include_mempool: Option<bool>,
    ) -> RpcResult<Value>;

    /// Statistics of one active-chain block, by hash or height: Bitcoin Core's fields that
    /// apply to a chain without segwit (amounts in units, sizes in bytes, fee rates in units
    /// per byte).
    #[method(name = "getblockstats")]
    async fn get_block_stats(&self, hash_or_height: Value) -> RpcResult<Value>;

    /// Statistics and a hash of the UTXO set.
    #[method(name = "gettxoutsetinfo")]
    async fn get_tx_out_set_info(&self) -> RpcResult<Value>;

    /// Checks the active chain's blocks and, at level 4, that the UTXO set equals a replay.
    #[method(name = "verifychain")]
    async fn verify_chain(&self, checklevel: Option<u32>, nblocks: Option<u32>) -> RpcResult<bool>;

    /// Marks a block invalid and moves off it.
    #[method(name = "invalidateblock")]
    async fn invalidate_block(&self, blockhash: String) -> RpcResult<()>;

    /// Removes the invalid mark from a block and its relatives.
    #[method(name = "reconsiderblock")]
    async fn reconsider_block(&self, blockhash: String) -> RpcResult<()>;

    /// WebSocket only: pushes `{"hash","height"}` for every new best tip.
    #[subscription(name = "subscribenewtip", unsubscribe = "unsubscribenewtip", item = Value)]
    async fn subscribe_new_tip(&self) -> SubscriptionResult;
}
