//! The address index: balances, unspent outputs and history by address.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use super::param::{JsonType, Param};
use crate::{BlockHash, Txid};

/// The address index: balances, unspent outputs and history by address.
#[rpc(server, client)]
pub trait AddressIndex {
    /// Confirmed and unconfirmed balance of addresses (`{"addresses": [...]}` or one address).
    #[method(name = "getaddressbalance")]
    async fn get_address_balance(&self, addresses: Param<Addresses>) -> RpcResult<AddressBalance>;

    /// Unspent outputs of addresses, confirmed and in the mempool.
    #[method(name = "getaddressutxos")]
    async fn get_address_utxos(&self, addresses: Param<Addresses>) -> RpcResult<AddressUtxos>;

    /// Txids touching addresses, oldest first, then mempool ones.
    #[method(name = "getaddresstxids")]
    async fn get_address_txids(&self, addresses: Param<Addresses>) -> RpcResult<AddressTxids>;
}

/// The addresses an address-index method reads: one address, a list, or (as the insight and
/// Bitcoin Core address-index forks take them) `{"addresses": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Addresses {
    /// One address.
    One(String),
    /// A list.
    List(Vec<String>),
    /// `{"addresses": [...]}`, and optionally `"chainInfo": true` (the insight/bitcore
    /// address-index option): `getaddressutxos` and `getaddresstxids` then also name the block
    /// their confirmed part is as of.
    Object {
        /// The addresses.
        addresses: Vec<String>,
        /// Answer with the block the index is at.
        #[serde(
            default,
            rename = "chainInfo",
            skip_serializing_if = "std::ops::Not::not"
        )]
        chain_info: bool,
    },
}

impl JsonType for Addresses {
    const JSON_TYPE: &'static str = "string or array or object";
}

impl Addresses {
    /// The addresses, in the order given.
    pub fn list(&self) -> &[String] {
        match self {
            Addresses::One(a) => std::slice::from_ref(a),
            Addresses::List(l) | Addresses::Object { addresses: l, .. } => l,
        }
    }

    /// True if the caller asked for `chainInfo`.
    pub fn chain_info(&self) -> bool {
        matches!(
            self,
            Addresses::Object {
                chain_info: true,
                ..
            }
        )
    }
}

/// `getaddressutxos`: the outputs, or with `chainInfo` the outputs and the address index's
/// best block, which the confirmed ones are as of (bitcore's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddressUtxos {
    /// The outputs alone.
    List(Vec<AddressUtxo>),
    /// With `chainInfo`.
    WithChainInfo {
        /// The outputs.
        utxos: Vec<AddressUtxo>,
        /// The address index's best block (behind the chain's tip while it catches up).
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
}

impl AddressUtxos {
    /// The outputs, whichever form.
    pub fn into_utxos(self) -> Vec<AddressUtxo> {
        match self {
            AddressUtxos::List(u) | AddressUtxos::WithChainInfo { utxos: u, .. } => u,
        }
    }
}

/// `getaddresstxids`: the txids, or with `chainInfo` the txids and the address index's best
/// block, which the confirmed ones reach up to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AddressTxids {
    /// The txids alone.
    List(Vec<Txid>),
    /// With `chainInfo`.
    WithChainInfo {
        /// The txids.
        txids: Vec<Txid>,
        /// The address index's best block (behind the chain's tip while it catches up).
        hash: BlockHash,
        /// Its height.
        height: u32,
    },
}

impl AddressTxids {
    /// The txids, whichever form.
    pub fn into_txids(self) -> Vec<Txid> {
        match self {
            AddressTxids::List(t) | AddressTxids::WithChainInfo { txids: t, .. } => t,
        }
    }
}

/// `getaddressbalance`, in units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressBalance {
    /// Confirmed balance, immature coinbases included.
    pub balance: i64,
    /// Confirmed coinbase outputs not yet spendable.
    pub immature: i64,
    /// Mempool effect: received minus spent.
    pub unconfirmed: i64,
    /// Present only while the address index is behind the chain's tip: the height it has
    /// indexed up to, which `balance` and `immature` are as of (see `getindexinfo`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index_height: Option<u32>,
}

/// One unspent output in `getaddressutxos` (the insight address-index shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[allow(non_snake_case)] // the address index's field names `outputIndex`, `spentInMempool`
pub struct AddressUtxo {
    /// The address it pays.
    pub address: String,
    /// The transaction that created it.
    pub txid: Txid,
    /// Its index there.
    pub outputIndex: u32,
    /// Its script as hex.
    pub script: String,
    /// Its value in units.
    pub satoshis: i64,
    /// Its block's height (null in the mempool).
    pub height: Option<u32>,
    /// True if a coinbase created it.
    pub coinbase: bool,
    /// Its confirmations (0 in the mempool).
    pub confirmations: u32,
    /// True if a mempool transaction spends it.
    pub spentInMempool: bool,
}
