//! Block templates, block submission and in-process mining.

use std::collections::BTreeMap;

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use super::param::{JsonType, Param};
use crate::{BlockHash, Txid};

/// Block templates, block submission and in-process mining.
#[rpc(server, client)]
pub trait Mining {
    /// A BIP22 block template; with `longpollid`, waits for a change.
    #[method(name = "getblocktemplate")]
    async fn get_block_template(
        &self,
        template_request: Option<Param<TemplateRequest>>,
    ) -> RpcResult<BlockTemplate>;

    /// Submits a block: null if accepted, else a reason string.
    #[method(name = "submitblock")]
    async fn submit_block(
        &self,
        hexdata: Param<String>,
        dummy: Option<Param<String>>,
    ) -> RpcResult<Option<String>>;

    /// Mining-related state.
    #[method(name = "getmininginfo")]
    async fn get_mining_info(&self) -> RpcResult<MiningInfo>;

    /// Estimated hashes per second over the last `nblocks` blocks (default 120).
    #[method(name = "getnetworkhashps")]
    async fn get_network_hash_ps(
        &self,
        nblocks: Option<Param<i64>>,
        height: Option<Param<i64>>,
    ) -> RpcResult<f64>;

    /// Mines `nblocks` blocks to `address` in-process; returns their hashes.
    #[method(name = "generatetoaddress")]
    async fn generate_to_address(
        &self,
        nblocks: Param<u32>,
        address: Param<String>,
        maxtries: Option<Param<u64>>,
    ) -> RpcResult<Vec<BlockHash>>;
}

/// `getblocktemplate`'s request object (BIP22/BIP23); other members are accepted and ignored.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateRequest {
    /// Rules the client supports (`segwit` …); ignored: no soft fork rules apply.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rules: Vec<String>,
    /// Wait until the template changes from the one with this id (long poll).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub longpollid: Option<String>,
}

impl JsonType for TemplateRequest {
    const JSON_TYPE: &'static str = "object";
}

/// A BIP22 block template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockTemplate {
    /// BIP23 capabilities: `proposal`.
    pub capabilities: Vec<String>,
    /// Block version.
    pub version: i32,
    /// Soft fork rules in force (none).
    pub rules: Vec<String>,
    /// Version bits available (none).
    pub vbavailable: BTreeMap<String, u32>,
    /// Version bits required (0).
    pub vbrequired: u32,
    /// The block to build on.
    pub previousblockhash: BlockHash,
    /// Transactions to include, in order.
    pub transactions: Vec<TemplateTransaction>,
    /// Data for the coinbase script (none).
    pub coinbaseaux: BTreeMap<String, String>,
    /// What the coinbase may claim: subsidy plus fees, in units.
    pub coinbasevalue: i64,
    /// Id to long-poll on.
    pub longpollid: String,
    /// Target, 64 hex digits (null if `bits` is not a valid target).
    pub target: Option<String>,
    /// Earliest block time allowed.
    pub mintime: u32,
    /// What the miner may change.
    pub mutable: Vec<String>,
    /// Nonce range, 16 hex digits.
    pub noncerange: String,
    /// Signature operation limit.
    pub sigoplimit: u32,
    /// Block size limit in bytes.
    pub sizelimit: usize,
    /// Block weight limit.
    pub weightlimit: usize,
    /// The node's time (at least `mintime`).
    pub curtime: u64,
    /// Compact target, 8 hex digits.
    pub bits: String,
    /// Height of the block to build.
    pub height: u32,
}

/// A transaction in a block template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateTransaction {
    /// The serialized transaction as hex.
    pub data: String,
    /// Its txid.
    pub txid: Txid,
    /// Its hash (the txid: there is no witness).
    pub hash: Txid,
    /// 1-based positions in `transactions` of the ones it spends.
    pub depends: Vec<usize>,
    /// Its fee in units.
    pub fee: i64,
    /// Its signature operations.
    pub sigops: usize,
    /// Its weight.
    pub weight: usize,
}

/// `getmininginfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MiningInfo {
    /// Height of the best block.
    pub blocks: u32,
    /// The best block's compact target, 8 hex digits.
    pub bits: String,
    /// The best block's difficulty.
    pub difficulty: f64,
    /// The best block's target (null if `bits` is not a valid target).
    pub target: Option<String>,
    /// Estimated network hashes per second over the last 120 blocks.
    pub networkhashps: f64,
    /// Transactions in the mempool.
    pub pooledtx: usize,
    /// Network name.
    pub chain: String,
    /// Warnings (none).
    pub warnings: Vec<String>,
}
