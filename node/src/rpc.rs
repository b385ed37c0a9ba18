//! The JSON-RPC methods, shaped like Bitcoin Core's: one file per topic, each implementing
//! that topic's `chaincore::rpc::*Server` trait for [`Rpc`] (`blockchain`, `mining`, `rawtx`,
//! `mempool`, `address`, `network`, `control`), merged into one module by [`Rpc::into_module`];
//! the shared parameter parsing and JSON shapes stay here; `server` is the HTTP side.
//!
//! Reads take the node's latest snapshot (`crate::snapshot`) and never wait for the writer;
//! changes (blocks, transactions, invalidations, templates, mining) go to the writer through
//! `crate::node`. Blocking work runs in `spawn_blocking`.

mod address;
mod blockchain;
mod control;
mod error;
mod mempool;
mod mining;
mod network;
mod rawtx;
pub mod server;

use std::sync::Arc;

use chaincore::encode::{deserialize, serialize};
use chaincore::rpc::code;
use chaincore::{Address, Amount, Transaction};
use jsonrpsee::core::RpcResult;
use serde_json::{json, Value};

use crate::node::Node;
use error::{err, MapError, OkOrError};

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
    let bytes = hex::decode(s).map_err(|_| {
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

    fn addresses(&self, param: &Value) -> RpcResult<Vec<Address>> {
        let list: Vec<&str> = match param {
            Value::String(s) => vec![s.as_str()],
            Value::Object(o) => match o.get("addresses") {
                Some(Value::Array(a)) => a.iter().filter_map(Value::as_str).collect(),
                _ => {
                    return Err(err(
                        code::TYPE_ERROR,
                        "expected {\"addresses\": [\"address\", ...]}",
                    ))
                }
            },
            Value::Array(a) => a.iter().filter_map(Value::as_str).collect(),
            _ => {
                return Err(err(
                    code::TYPE_ERROR,
                    "expected an address or {\"addresses\": [...]}",
                ))
            }
        };
        list.into_iter()
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

/// Core's JSON for a transaction.
fn tx_json(tx: &Transaction, network: chaincore::Network) -> Value {
    let vin: Vec<Value> = tx
        .input
        .iter()
        .map(|i| {
            if tx.is_coinbase() {
                json!({"coinbase": hex::encode(i.script_sig.as_bytes()), "sequence": i.sequence})
            } else {
                json!({
                    "txid": i.previous_output.txid.to_string(),
                    "vout": i.previous_output.vout,
                    "scriptSig": {"hex": hex::encode(i.script_sig.as_bytes())},
                    "sequence": i.sequence,
                })
            }
        })
        .collect();
    let vout: Vec<Value> = tx
        .output
        .iter()
        .enumerate()
        .map(|(n, o)| {
            let mut spk = json!({"hex": hex::encode(o.script_pubkey.as_bytes())});
            if let Some(a) = Address::from_script(&o.script_pubkey, network) {
                spk["type"] = json!("pubkeyhash");
                spk["address"] = json!(a.to_string());
            } else if o.script_pubkey.op_return_data().is_some() {
                spk["type"] = json!("nulldata");
            } else {
                spk["type"] = json!("nonstandard");
            }
            json!({"value": coins(o.value), "n": n, "scriptPubKey": spk})
        })
        .collect();
    let size = tx.size();
    json!({
        "txid": tx.compute_txid().to_string(),
        "hash": tx.compute_txid().to_string(),
        "version": tx.version,
        "size": size,
        "vsize": size,
        "weight": size * 4,
        "locktime": tx.lock_time,
        "vin": vin,
        "vout": vout,
        "hex": hex::encode(serialize(tx)),
    })
}

/// An amount as a JSON number of coins (Core prints 8 decimals).
fn coins(a: Amount) -> Value {
    serde_json::from_str(&a.to_string()).unwrap_or(Value::Null)
}

fn verbosity(v: Option<Value>, default: u8) -> RpcResult<u8> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(u8::from(b)),
        Some(Value::Number(n)) => n
            .as_u64()
            .filter(|n| *n <= 2)
            .map(|n| n as u8)
            .ok_or_error(code::INVALID_PARAMETER, "verbosity must be 0, 1 or 2"),
        Some(_) => Err(err(
            code::TYPE_ERROR,
            "verbosity must be a number or a boolean",
        )),
    }
}
