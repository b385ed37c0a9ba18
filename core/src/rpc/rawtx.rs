//! Raw transactions: send, test, look up and decode.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use super::blockchain::{ScriptPubKeyInfo, Verbosity};
use super::param::{coins, Param};
use crate::{Amount, BlockHash, Txid};

/// Raw transactions: send, test, look up and decode.
#[rpc(server, client)]
pub trait RawTransactions {
    /// Validates and adds a transaction to the mempool; returns its txid.
    #[method(name = "sendrawtransaction")]
    async fn send_raw_transaction(
        &self,
        hexstring: Param<String>,
        maxfeerate: Option<Param<f64>>,
    ) -> RpcResult<Txid>;

    /// Whether transactions would be accepted, without adding them.
    #[method(name = "testmempoolaccept")]
    async fn test_mempool_accept(
        &self,
        rawtxs: Param<Vec<String>>,
        maxfeerate: Option<Param<f64>>,
    ) -> RpcResult<Vec<MempoolAcceptance>>;

    /// A mempool or active-chain transaction, as hex or JSON.
    #[method(name = "getrawtransaction")]
    async fn get_raw_transaction(
        &self,
        txid: Param<String>,
        verbose: Option<Param<Verbosity>>,
        blockhash: Option<Param<String>>,
    ) -> RpcResult<GetRawTransaction>;

    /// Decodes a transaction's hex.
    #[method(name = "decoderawtransaction")]
    async fn decode_raw_transaction(&self, hexstring: Param<String>) -> RpcResult<TransactionInfo>;
}

/// One transaction's answer in `testmempoolaccept`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MempoolAcceptance {
    /// Its txid.
    pub txid: Txid,
    /// Whether the mempool would take it.
    pub allowed: bool,
    /// Why not (absent when allowed).
    #[serde(
        rename = "reject-reason",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub reject_reason: Option<String>,
}

/// `getrawtransaction`: hex, or JSON with `verbose`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum GetRawTransaction {
    /// The serialized transaction as hex.
    Hex(String),
    /// The transaction as JSON.
    Json(Box<TransactionInfo>),
}

/// A transaction as JSON (Core's shape, as `decoderawtransaction`, `getrawtransaction` with
/// `verbose` and `getblock` with verbosity 2 show it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransactionInfo {
    /// Its txid.
    pub txid: Txid,
    /// Its hash (the txid: there is no witness).
    pub hash: Txid,
    /// Version.
    pub version: i32,
    /// Serialized size in bytes.
    pub size: usize,
    /// Virtual size (the size).
    pub vsize: usize,
    /// Weight: 4 × size.
    pub weight: usize,
    /// Lock time.
    pub locktime: u32,
    /// Inputs.
    pub vin: Vec<TxInInfo>,
    /// Outputs.
    pub vout: Vec<TxOutEntry>,
    /// The serialized transaction (absent in `decoderawtransaction`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hex: Option<String>,
    /// The block holding it (`getrawtransaction` of a confirmed transaction).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blockhash: Option<BlockHash>,
    /// Its confirmations (with `blockhash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub confirmations: Option<u32>,
    /// The block's time (with `blockhash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time: Option<u32>,
    /// The block's time (with `blockhash`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocktime: Option<u32>,
}

/// An input: the coinbase's script, or the output it spends and its script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)] // Core's field name `scriptSig`
pub struct TxInInfo {
    /// The coinbase script as hex (coinbase only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coinbase: Option<String>,
    /// The spent output's txid (not for a coinbase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid: Option<Txid>,
    /// The spent output's index (not for a coinbase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vout: Option<u32>,
    /// The signature script (not for a coinbase).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scriptSig: Option<ScriptSigInfo>,
    /// Sequence number.
    pub sequence: u32,
}

/// A signature script.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScriptSigInfo {
    /// The script as hex.
    pub hex: String,
}

/// An output of a decoded transaction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)] // Core's field name `scriptPubKey`
pub struct TxOutEntry {
    /// Its value.
    #[serde(with = "coins")]
    pub value: Amount,
    /// Its index.
    pub n: u32,
    /// Its script.
    pub scriptPubKey: ScriptPubKeyInfo,
}
