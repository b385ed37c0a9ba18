//! The JSON-RPC methods, shaped like Bitcoin Core's: one file per topic, each implementing
//! that topic's `chaincore::rpc::*Server` trait for [`Rpc`] (`blockchain`, `mining`, `rawtx`,
//! `mempool`, `address`, `network`, `control`), merged into one module by [`Rpc::into_module`];
//! the shared parameter parsing and JSON shapes stay here; `arity` checks parameter counts
//! against each method's usage before it runs; `server` is the HTTP side.
//!
//! Reads take the node's latest snapshot (`crate::snapshot`) and never wait for the writer;
//! changes (blocks, transactions, invalidations, templates, mining) go to the writer through
//! `crate::node`. Blocking work runs in `spawn_blocking`.

mod address;
mod arity;
mod blockchain;
mod control;
mod error;
mod mempool;
mod mining;
mod network;
mod rawtx;
pub mod server;
mod timing;

pub(crate) use blockchain::{block_answer, header_info};
pub(crate) use mining::network_hash_ps;

use std::sync::Arc;

use chaincore::encode::{deserialize, serialize};
use chaincore::rpc::blockchain::{ScriptPubKeyInfo, Verbosity};
use chaincore::rpc::code;
use chaincore::rpc::rawtx::{ScriptSigInfo, TransactionInfo, TxInInfo, TxOutEntry};
use chaincore::rpc::Param;
use chaincore::{Address, Transaction};
use jsonrpsee::core::RpcResult;

use crate::node::Node;
use error::{err, MapError};

/// Parses a 64-digit hex hash parameter, with Bitcoin Core's -8 messages for the wrong length
/// and for digits that are not hex.
fn parse_hash<T: std::str::FromStr>(s: &str, what: &str) -> RpcResult<T> {
    s.parse().map_err(|_| {
        let message = if s.len() != 64 {
            format!("{what} must be of length 64 (not {}, for '{s}')", s.len())
        } else {
            format!("{what} must be hexadecimal string (not '{s}')")
        };
        err(code::INVALID_PARAMETER, message)
    })
}

fn decode_hex<T: chaincore::encode::Decodable>(s: &str, what: &str) -> RpcResult<T> {
    // Into a buffer of the right size: `hex::decode` collects byte by byte, three times
    // slower on a megabyte block.
    let mut bytes = vec![0u8; s.len() / 2];
    hex::decode_to_slice(s, &mut bytes).map_err(|_| {
        err(
            code::DESERIALIZATION_ERROR,
            format!("{what} decode failed: not hex"),
        )
    })?;
    deserialize(&bytes).map_err(|e| {
        err(
            code::DESERIALIZATION_ERROR,
            format!("{what} decode failed: {e}"),
        )
    })
}

/// Runs blocking node work off the async executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> RpcResult<T> + Send + 'static,
) -> RpcResult<T> {
    tokio::task::spawn_blocking(f).await.map_misc()?
}

/// The RPC handler (cheap to clone: every topic's module holds one).
#[derive(Clone)]
pub struct Rpc {
    node: Arc<Node>,
    p2p: crate::p2p::P2pHandle,
    /// The last template's JSON, valid while the tip and the mempool are unchanged.
    template_cache: Arc<std::sync::Mutex<Option<mining::CachedTemplate>>>,
}

impl Rpc {
    /// Serves `node`.
    pub fn new(node: Arc<Node>, p2p: crate::p2p::P2pHandle) -> Rpc {
        Rpc {
            node,
            p2p,
            template_cache: Default::default(),
        }
    }

    /// Every method of every topic, in one module.
    pub fn into_module(
        self,
    ) -> Result<jsonrpsee::RpcModule<()>, jsonrpsee::core::RegisterMethodError> {
        use chaincore::rpc::{
            AddressIndexServer, BlockchainServer, ControlServer, MempoolServer, MiningServer,
            NetServer, RawTransactionsServer,
        };
        let mut module = jsonrpsee::RpcModule::new(());
        module.merge(BlockchainServer::into_rpc(self.clone()))?;
        module.merge(MiningServer::into_rpc(self.clone()))?;
        module.merge(RawTransactionsServer::into_rpc(self.clone()))?;
        module.merge(MempoolServer::into_rpc(self.clone()))?;
        module.merge(AddressIndexServer::into_rpc(self.clone()))?;
        module.merge(NetServer::into_rpc(self.clone()))?;
        module.merge(ControlServer::into_rpc(self))?;
        Ok(module)
    }

    fn addresses(&self, param: &chaincore::rpc::address::Addresses) -> RpcResult<Vec<Address>> {
        param
            .list()
            .iter()
            .map(|a| {
                Address::parse(a, self.node.network).map_err(|e| {
                    err(
                        code::INVALID_ADDRESS_OR_KEY,
                        format!("Invalid address '{a}': {e}"),
                    )
                })
            })
            .collect()
    }
}

/// Core's JSON for a transaction (with its hex).
fn tx_info(tx: &Transaction, network: chaincore::Network) -> TransactionInfo {
    let coinbase = tx.is_coinbase();
    let vin = tx
        .input
        .iter()
        .map(|i| {
            let script = hex::encode(i.script_sig.as_bytes());
            TxInInfo {
                coinbase: coinbase.then(|| script.clone()),
                txid: (!coinbase).then_some(i.previous_output.txid),
                vout: (!coinbase).then_some(i.previous_output.vout),
                scriptSig: (!coinbase).then_some(ScriptSigInfo { hex: script }),
                sequence: i.sequence,
            }
        })
        .collect();
    let vout = tx
        .output
        .iter()
        .zip(0..)
        .map(|(o, n)| TxOutEntry {
            value: o.value,
            n,
            scriptPubKey: script_info(&o.script_pubkey, network),
        })
        .collect();
    let size = tx.size();
    TransactionInfo {
        txid: tx.compute_txid(),
        hash: tx.compute_txid(),
        version: tx.version,
        size,
        vsize: size,
        weight: size * 4,
        locktime: tx.lock_time,
        vin,
        vout,
        hex: Some(hex::encode(serialize(tx))),
        blockhash: None,
        confirmations: None,
        time: None,
        blocktime: None,
    }
}

/// An output script as Core describes it.
pub(crate) fn script_info(
    script: &chaincore::Script,
    network: chaincore::Network,
) -> ScriptPubKeyInfo {
    let address = Address::from_script(script, network);
    let kind = if address.is_some() {
        "pubkeyhash"
    } else if script.op_return_data().is_some() {
        "nulldata"
    } else {
        "nonstandard"
    };
    ScriptPubKeyInfo {
        hex: hex::encode(script.as_bytes()),
        kind: kind.to_string(),
        address: address.map(|a| a.to_string()),
    }
}

/// A verbosity parameter's level: `default` when absent, else 0, 1 or 2.
fn verbosity(v: Option<Param<Verbosity>>, default: u64) -> RpcResult<u64> {
    let Some(v) = v else { return Ok(default) };
    let level = v.get()?.level();
    if level > 2 {
        return Err(err(code::INVALID_PARAMETER, "verbosity must be 0, 1 or 2"));
    }
    Ok(level)
}
