//! Blocks, the chain and the UTXO set; `invalidateblock` / `reconsiderblock`; tip subscriptions.

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use super::param::{coins, JsonType, Param};
use super::rawtx::TransactionInfo;
use crate::{Amount, BlockHash, Txid};

/// Blocks, the chain and the UTXO set; `invalidateblock` / `reconsiderblock`; tip subscriptions.
#[rpc(server, client)]
pub trait Blockchain {
    /// State of the chain (Core's shape).
    #[method(name = "getblockchaininfo")]
    async fn get_blockchain_info(&self) -> RpcResult<BlockchainInfo>;

    /// Hash of the best block.
    #[method(name = "getbestblockhash")]
    async fn get_best_block_hash(&self) -> RpcResult<BlockHash>;

    /// Height of the best block.
    #[method(name = "getblockcount")]
    async fn get_block_count(&self) -> RpcResult<u32>;

    /// Hash of the active-chain block at `height`.
    #[method(name = "getblockhash")]
    async fn get_block_hash(&self, height: Param<i64>) -> RpcResult<BlockHash>;

    /// A block: hex (verbosity 0), JSON with txids (1) or with decoded transactions (2).
    #[method(name = "getblock")]
    async fn get_block(
        &self,
        blockhash: Param<String>,
        verbosity: Option<Param<Verbosity>>,
    ) -> RpcResult<GetBlock>;

    /// A header as JSON (`verbose` true, the default) or hex.
    #[method(name = "getblockheader")]
    async fn get_block_header(
        &self,
        blockhash: Param<String>,
        verbose: Option<Param<bool>>,
    ) -> RpcResult<GetBlockHeader>;

    /// Every known branch tip, highest first; always the active one.
    #[method(name = "getchaintips")]
    async fn get_chain_tips(&self) -> RpcResult<Vec<ChainTip>>;

    /// Transaction counts and rate over the `nblocks` blocks (default: a month of blocks, at
    /// most the block's height - 1) ending at the active-chain block `blockhash` (default: the
    /// tip).
    #[method(name = "getchaintxstats")]
    async fn get_chain_tx_stats(
        &self,
        nblocks: Option<Param<i64>>,
        blockhash: Option<Param<String>>,
    ) -> RpcResult<ChainTxStats>;

    /// Difficulty of the best block relative to `0x1d00ffff`.
    #[method(name = "getdifficulty")]
    async fn get_difficulty(&self) -> RpcResult<f64>;

    /// An unspent output, or null.
    #[method(name = "gettxout")]
    async fn get_tx_out(
        &self,
        txid: Param<String>,
        n: Param<u32>,
        include_mempool: Option<Param<bool>>,
    ) -> RpcResult<Option<TxOutInfo>>;

    /// Statistics of one active-chain block, by hash or height: Bitcoin Core's fields except
    /// `feerate_percentiles`, the `utxo_size_inc` pair and the `stats` selection (amounts in
    /// units, sizes in bytes, fee rates in units per byte).
    #[method(name = "getblockstats")]
    async fn get_block_stats(&self, hash_or_height: Param<HashOrHeight>) -> RpcResult<BlockStats>;

    /// Statistics and a hash of the UTXO set.
    #[method(name = "gettxoutsetinfo")]
    async fn get_tx_out_set_info(&self) -> RpcResult<TxOutSetInfo>;

    /// The indexes that are enabled, each with whether it has taken in the chain's tip and
    /// the height it has taken in (Bitcoin Core's shape); only `index_name` if given.
    #[method(name = "getindexinfo")]
    async fn get_index_info(
        &self,
        index_name: Option<Param<String>>,
    ) -> RpcResult<std::collections::BTreeMap<String, IndexInfo>>;

    /// Checks the active chain's blocks and, at level 4, that the UTXO set equals a replay.
    #[method(name = "verifychain")]
    async fn verify_chain(
        &self,
        checklevel: Option<Param<u32>>,
        nblocks: Option<Param<u32>>,
    ) -> RpcResult<bool>;

    /// Marks a block invalid and moves off it.
    #[method(name = "invalidateblock")]
    async fn invalidate_block(&self, blockhash: Param<String>) -> RpcResult<()>;

    /// Removes the invalid mark from a block and its relatives.
    #[method(name = "reconsiderblock")]
    async fn reconsider_block(&self, blockhash: Param<String>) -> RpcResult<()>;

    /// WebSocket only: pushes `{"hash","height"}` for every new best tip.
    #[subscription(name = "subscribenewtip", unsubscribe = "unsubscribenewtip", item = NewTip)]
    async fn subscribe_new_tip(&self) -> SubscriptionResult;
}

/// `getblockchaininfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockchainInfo {
    /// Network name: `main`, `test` or `regtest`.
    pub chain: String,
    /// Height of the best block.
    pub blocks: u32,
    /// Best height any peer showed (at least `blocks`).
    pub headers: u64,
    /// Hash of the best block.
    pub bestblockhash: BlockHash,
    /// The best block's compact target, 8 hex digits.
    pub bits: String,
    /// The best block's target, 64 hex digits (null if `bits` is not a valid target).
    pub target: Option<String>,
    /// The best block's difficulty.
    pub difficulty: f64,
    /// The best block's time.
    pub time: u32,
    /// Median time of the last 11 blocks.
    pub mediantime: i64,
    /// Share of the known chain verified (1.0 at the best known tip).
    pub verificationprogress: f64,
    /// True while far behind the best height peers showed.
    pub initialblockdownload: bool,
    /// Total work of the best chain, 64 hex digits.
    pub chainwork: String,
    /// Bytes of the store on disk.
    pub size_on_disk: u64,
    /// Always false: blocks are never pruned.
    pub pruned: bool,
    /// Warnings (none).
    pub warnings: Vec<String>,
}

/// `getblock`'s `verbosity`: 0, 1 or 2, or (as Core also takes) a boolean for 0 or 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Verbosity {
    /// `false` is 0, `true` is 1.
    Bool(bool),
    /// A level.
    Level(u64),
}

impl JsonType for Verbosity {
    const JSON_TYPE: &'static str = "number or bool";
}

impl Verbosity {
    /// The level.
    pub fn level(self) -> u64 {
        match self {
            Verbosity::Bool(b) => u64::from(b),
            Verbosity::Level(l) => l,
        }
    }
}

/// A block by hash or by height (`getblockstats`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HashOrHeight {
    /// A height on the active chain.
    Height(i64),
    /// A block hash (64 hex digits; checked by the method).
    Hash(String),
}

impl JsonType for HashOrHeight {
    const JSON_TYPE: &'static str = "string or number";
}

/// `getblockheader` with `verbose` true.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)] // Core's field name `versionHex`
pub struct BlockHeaderInfo {
    /// The block's hash.
    pub hash: BlockHash,
    /// Blocks on top of it and itself on the active chain, or -1 off it.
    pub confirmations: i64,
    /// Height.
    pub height: u32,
    /// Header version.
    pub version: i32,
    /// Header version as 8 hex digits.
    pub versionHex: String,
    /// Merkle root of its transactions.
    pub merkleroot: String,
    /// Block time.
    pub time: u32,
    /// Median time of the 11 blocks ending here.
    pub mediantime: i64,
    /// Nonce.
    pub nonce: u32,
    /// Compact target, 8 hex digits.
    pub bits: String,
    /// Target, 64 hex digits (null if `bits` is not a valid target).
    pub target: Option<String>,
    /// Difficulty.
    pub difficulty: f64,
    /// Total work of the chain ending here, 64 hex digits.
    pub chainwork: String,
    /// The parent (absent for genesis).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previousblockhash: Option<BlockHash>,
    /// The next block on the active chain (absent at the tip and off the active chain).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nextblockhash: Option<BlockHash>,
}

/// `getblockheader`: JSON, or hex with `verbose` false.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetBlockHeader {
    /// The 80-byte header as hex.
    Hex(String),
    /// The header as JSON.
    Json(Box<BlockHeaderInfo>),
}

/// `getblock` with verbosity 1 or 2.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BlockInfo {
    /// The header's fields.
    #[serde(flatten)]
    pub header: BlockHeaderInfo,
    /// Serialized size in bytes.
    pub size: usize,
    /// Size without witness data (the same: there is none).
    pub strippedsize: usize,
    /// Weight: 4 × size.
    pub weight: usize,
    /// Its transactions: txids (verbosity 1) or decoded (2).
    pub tx: BlockTransactions,
}

/// A block's transactions in `getblock`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum BlockTransactions {
    /// Txids (verbosity 1).
    Ids(Vec<Txid>),
    /// Decoded transactions (verbosity 2).
    Full(Vec<TransactionInfo>),
}

/// `getblock`: hex (verbosity 0) or JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetBlock {
    /// The serialized block as hex.
    Hex(String),
    /// The block as JSON.
    Json(Box<BlockInfo>),
}

/// A branch tip's state in `getchaintips`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TipStatus {
    /// The active chain's tip.
    Active,
    /// A branch with an invalid block.
    Invalid,
    /// A fully validated branch that is not active.
    ValidFork,
}

/// One branch tip in `getchaintips`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainTip {
    /// Height of the tip.
    pub height: u32,
    /// Hash of the tip.
    pub hash: BlockHash,
    /// Blocks back to the active chain (0 for the active tip).
    pub branchlen: u32,
    /// The branch's state.
    pub status: TipStatus,
}

/// `getchaintxstats` (Core's shape).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainTxStats {
    /// Time of the window's final block.
    pub time: u32,
    /// Transactions in the chain up to and including the final block.
    pub txcount: u64,
    /// Hash of the final block.
    pub window_final_block_hash: BlockHash,
    /// Height of the final block.
    pub window_final_block_height: u32,
    /// Blocks in the window.
    pub window_block_count: u32,
    /// Transactions in the window (absent when the window is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_tx_count: Option<u64>,
    /// Seconds between the median times of the window's ends (absent when it is empty).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_interval: Option<i64>,
    /// Transactions per second in the window (absent unless `window_interval` > 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txrate: Option<f64>,
}

/// The output script in `gettxout` and decoded transactions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptPubKeyInfo {
    /// The script as hex.
    pub hex: String,
    /// `pubkeyhash`, `nulldata` or `nonstandard`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The address it pays (P2PKH only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
}

/// `gettxout`: one unspent output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)] // Core's field name `scriptPubKey`
pub struct TxOutInfo {
    /// The best block's hash.
    pub bestblock: BlockHash,
    /// Blocks since the output was confirmed (0 in the mempool).
    pub confirmations: u32,
    /// Its value.
    #[serde(with = "coins")]
    pub value: Amount,
    /// Its script.
    pub scriptPubKey: ScriptPubKeyInfo,
    /// True if a coinbase created it.
    pub coinbase: bool,
}

/// `getblockstats`: amounts in units, sizes in bytes, fee rates in units per byte.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockStats {
    /// The block's hash.
    pub blockhash: BlockHash,
    /// Height.
    pub height: u32,
    /// Block time.
    pub time: u32,
    /// Median time of the 11 blocks ending here.
    pub mediantime: i64,
    /// Transactions, coinbase included.
    pub txs: usize,
    /// Inputs, coinbase excluded.
    pub ins: usize,
    /// Outputs, coinbase included.
    pub outs: usize,
    /// Block subsidy.
    pub subsidy: i64,
    /// Fees paid.
    pub totalfee: i64,
    /// Output value of non-coinbase transactions.
    pub total_out: i64,
    /// Size of non-coinbase transactions.
    pub total_size: usize,
    /// Weight of non-coinbase transactions.
    pub total_weight: usize,
    /// Average fee per non-coinbase transaction.
    pub avgfee: i64,
    /// Average fee rate.
    pub avgfeerate: i64,
    /// Average transaction size.
    pub avgtxsize: i64,
    /// Lowest fee.
    pub minfee: i64,
    /// Highest fee.
    pub maxfee: i64,
    /// Median fee.
    pub medianfee: i64,
    /// Lowest fee rate.
    pub minfeerate: i64,
    /// Highest fee rate.
    pub maxfeerate: i64,
    /// Smallest transaction.
    pub mintxsize: usize,
    /// Largest transaction.
    pub maxtxsize: usize,
    /// Median transaction size.
    pub mediantxsize: i64,
    /// Outputs created minus inputs spent (Core's `utxo_increase`: every output counts).
    pub utxo_increase: i64,
    /// The same without unspendable outputs (`OP_RETURN`), which never enter the UTXO set.
    pub utxo_increase_actual: i64,
}

/// One index in `getindexinfo`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IndexInfo {
    /// True if the index has taken in the chain up to the current tip.
    pub synced: bool,
    /// Height of the last block the index has taken in.
    pub best_block_height: u32,
}

/// `gettxoutsetinfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TxOutSetInfo {
    /// Height of the best block.
    pub height: u32,
    /// Hash of the best block.
    pub bestblock: BlockHash,
    /// Transactions with unspent outputs.
    pub transactions: u64,
    /// Unspent outputs.
    pub txouts: u64,
    /// Core's "meaningless metric for UTXO set size": 50 bytes plus the script's length, per
    /// output.
    pub bogosize: u64,
    /// Their total value.
    #[serde(with = "coins")]
    pub total_amount: Amount,
    /// SHA-256d over the set in our own format (docs/RPC.md; not Core's `hash_serialized_3`).
    pub hash_serialized: String,
    /// Bytes of the whole store on disk (the UTXO set shares one database with the blocks).
    pub disk_size: u64,
}

/// What `subscribenewtip` pushes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTip {
    /// The new best block's hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
}
