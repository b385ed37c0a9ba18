//! Results of the read-only REST endpoints that have no JSON-RPC twin, shaped as Bitcoin
//! Core's `rest.cpp` writes them. Every other REST answer is the matching RPC result type.

use serde::{Deserialize, Serialize};

use super::blockchain::ScriptPubKeyInfo;
use super::param::coins;
use crate::{Amount, BlockHash};

/// The height Core's `getutxos` reports for an output that is only in the mempool.
pub const MEMPOOL_HEIGHT: u32 = 0x7FFF_FFFF;

/// `/rest/blockhashbyheight/<height>.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHashByHeight {
    /// The active chain's block at that height.
    pub blockhash: BlockHash,
}

/// `/rest/getutxos/…json`: which of the asked outpoints are unspent, and those outputs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)] // Core's field names
pub struct GetUtxos {
    /// Height of the active tip the answer was read at.
    pub chainHeight: u32,
    /// Hash of that tip.
    pub chaintipHash: BlockHash,
    /// One `0`/`1` per asked outpoint, in order: `1` if it is unspent.
    pub bitmap: String,
    /// The unspent ones, in the order asked.
    pub utxos: Vec<RestUtxo>,
}

/// One unspent output in [`GetUtxos`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[allow(non_snake_case)] // Core's field name `scriptPubKey`
pub struct RestUtxo {
    /// Height of the block that created it, or [`MEMPOOL_HEIGHT`] if it is unconfirmed.
    pub height: u32,
    /// Its value, in coins.
    #[serde(with = "coins")]
    pub value: Amount,
    /// Its script.
    pub scriptPubKey: ScriptPubKeyInfo,
}

/// The data of one Server-Sent Event on `/rest/events`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "event")]
pub enum ChainEvent {
    /// The active tip (sent first, then on every change).
    Tip {
        /// Its hash.
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
    /// The mempool (sent first, then at most once a second while it changes).
    Mempool {
        /// Transactions in it.
        size: usize,
        /// Their bytes.
        bytes: usize,
    },
}
