//! The JSON-RPC methods (`chaincore::rpc::RpcServer`), shaped like Bitcoin Core's.
//!
//! Reads take the node's latest snapshot (`crate::snapshot`) and never wait for the writer;
//! changes (blocks, transactions, invalidations, templates, mining) go to the writer through
//! `crate::node`. Blocking work runs in `spawn_blocking`.

pub mod server;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chaincore::encode::{deserialize, serialize};
use chaincore::pow::{difficulty, Target};
use chaincore::rpc::{code, RpcServer};
use chaincore::{Address, Amount, Block, BlockHash, OutPoint, Transaction, Txid};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::types::ErrorObjectOwned;
use jsonrpsee::PendingSubscriptionSink;
use serde_json::{json, Value};

use crate::chain::{Accepted, ChainError};
use crate::node::Node;
use crate::store::{self, Status};

/// How long a long poll waits for mempool changes to settle before answering.
const LONGPOLL_MEMPOOL_DELAY: Duration = Duration::from_secs(1);
/// A long poll answers at the latest after this, before HTTP idle timeouts.
const LONGPOLL_MAX_WAIT: Duration = Duration::from_secs(60);

/// An RPC error with Bitcoin Core's code.
fn err(code: i32, msg: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, msg.into(), None::<()>)
}

fn internal(e: impl std::fmt::Display) -> ErrorObjectOwned {
    err(code::MISC_ERROR, e.to_string())
}

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
    tokio::task::spawn_blocking(f).await.map_err(internal)?
}

/// The RPC handler.
pub struct Rpc {
    node: Arc<Node>,
    p2p: Arc<crate::p2p::P2p>,
    /// The last template's JSON, valid while the tip and the mempool are unchanged.
    template_cache: Arc<std::sync::Mutex<Option<CachedTemplate>>>,
}

/// A block template answer and what it was built from.
struct CachedTemplate {
    tip: BlockHash,
    mempool_seq: u64,
    json: Value,
}

impl Rpc {
    /// Serves `node`.
    pub fn new(node: Arc<Node>, p2p: Arc<crate::p2p::P2p>) -> Rpc {
        Rpc {
            node,
            p2p,
            template_cache: Default::default(),
        }
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
            .ok_or_else(|| err(code::INVALID_PARAMETER, "verbosity must be 0, 1 or 2")),
        Some(_) => Err(err(
            code::TYPE_ERROR,
            "verbosity must be a number or a boolean",
        )),
    }
}

#[async_trait]
impl RpcServer for Rpc {
    async fn get_blockchain_info(&self) -> RpcResult<Value> {
        let snap = self.node.snapshot();
        let chain = &snap.index;
        let tip = chain.tip();
        // Best height any peer showed us (we fetch blocks right behind their headers).
        let headers = self.p2p.best_seen_height().max(u64::from(tip.height));
        Ok(json!({
            "chain": self.node.network.to_string(),
            "blocks": tip.height,
            "headers": headers,
            "bestblockhash": chain.tip_hash().to_string(),
            "bits": format!("{:08x}", tip.header.bits),
            "target": Target::from_compact(tip.header.bits).map(|t| t.to_string()),
            "difficulty": difficulty(tip.header.bits),
            "time": tip.header.time,
            "mediantime": chain.median_time_past(&chain.tip_hash()),
            "verificationprogress": f64::from(tip.height) / headers.max(1) as f64,
            "initialblockdownload": headers > u64::from(tip.height) + 6,
            "chainwork": tip.chainwork.to_string(),
            "size_on_disk": self.node.size_on_disk(),
            "pruned": false,
            "warnings": [],
        }))
    }

    async fn get_best_block_hash(&self) -> RpcResult<String> {
        Ok(self.node.tip.borrow().hash.to_string())
    }

    async fn get_block_count(&self) -> RpcResult<u32> {
        Ok(self.node.tip.borrow().height)
    }

    async fn get_block_hash(&self, height: i64) -> RpcResult<String> {
        let snap = self.node.snapshot();
        u32::try_from(height)
            .ok()
            .and_then(|h| snap.index.active_hash(h))
            .map(|h| h.to_string())
            .ok_or_else(|| err(code::INVALID_PARAMETER, "Block height out of range"))
    }

    async fn get_block(
        &self,
        blockhash: String,
        verbosity_param: Option<Value>,
    ) -> RpcResult<Value> {
        let hash: BlockHash = parse_hash(&blockhash, "blockhash")?;
        let level = verbosity(verbosity_param, 1)?;
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let Some(entry) = snap.index.entry(&hash).copied() else {
                return Err(err(code::INVALID_ADDRESS_OR_KEY, "Block not found"));
            };
            let header_json = header_json(&snap.index, &hash, &entry);
            let bytes = store::read::block_bytes(&snap.rtx, &hash)
                .map_err(internal)?
                .ok_or_else(|| err(code::MISC_ERROR, "Block not available"))?;
            if level == 0 {
                return Ok(json!(hex::encode(bytes)));
            }
            let block: Block = deserialize(&bytes).map_err(internal)?;
            let mut out = header_json;
            out["size"] = json!(bytes.len());
            out["strippedsize"] = json!(bytes.len());
            out["weight"] = json!(bytes.len() * 4);
            out["tx"] = if level == 1 {
                json!(block
                    .compute_txids()
                    .iter()
                    .map(|t| t.to_string())
                    .collect::<Vec<_>>())
            } else {
                json!(block
                    .txdata
                    .iter()
                    .map(|t| tx_json(t, node.network))
                    .collect::<Vec<_>>())
            };
            Ok(out)
        })
        .await
    }

    async fn get_block_header(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<Value> {
        let hash: BlockHash = parse_hash(&blockhash, "blockhash")?;
        let snap = self.node.snapshot();
        let entry = snap
            .index
            .entry(&hash)
            .copied()
            .ok_or_else(|| err(code::INVALID_ADDRESS_OR_KEY, "Block not found"))?;
        if verbose == Some(false) {
            return Ok(json!(hex::encode(entry.header.to_bytes())));
        }
        Ok(header_json(&snap.index, &hash, &entry))
    }

    async fn get_chain_tips(&self) -> RpcResult<Value> {
        let snap = self.node.snapshot();
        let chain = &snap.index;
        let parents: std::collections::HashSet<BlockHash> = chain
            .entries()
            .map(|(_, e)| e.header.prev_blockhash)
            .collect();
        let tip = chain.tip_hash();
        // Blocks with no children, and the active tip (which may have invalid children).
        let mut tips: Vec<Value> = chain
            .entries()
            .filter(|(h, _)| !parents.contains(h) || **h == tip)
            .map(|(h, e)| {
                // Branch length: blocks back to the active chain.
                let mut len = 0;
                let mut cur = *h;
                while !chain.is_active(&cur) {
                    len += 1;
                    match chain.entry(&cur) {
                        Some(x) => cur = x.header.prev_blockhash,
                        None => break,
                    }
                }
                let status = if chain.is_active(h) {
                    "active"
                } else if e.status == Status::Invalid {
                    "invalid"
                } else {
                    "valid-fork"
                };
                json!({"height": e.height, "hash": h.to_string(), "branchlen": len, "status": status})
            })
            .collect();
        tips.sort_by_key(|t| std::cmp::Reverse(t["height"].as_u64()));
        Ok(json!(tips))
    }

    async fn get_difficulty(&self) -> RpcResult<f64> {
        Ok(difficulty(self.node.snapshot().index.tip().header.bits))
    }

    async fn get_tx_out(
        &self,
        txid: String,
        n: u32,
        include_mempool: Option<bool>,
    ) -> RpcResult<Value> {
        let txid: Txid = parse_hash(&txid, "txid")?;
        let outpoint = OutPoint { txid, vout: n };
        let snap = self.node.snapshot();
        let include_mempool = include_mempool.unwrap_or(true);
        if include_mempool && snap.mempool.spender(&outpoint).is_some() {
            return Ok(Value::Null);
        }
        let tip = snap.index.tip_height();
        let coin = match store::read::coin(&snap.rtx, &outpoint).map_err(internal)? {
            Some(c) => Some((c, true)),
            None if include_mempool => snap.mempool.coin(&outpoint, tip + 1).map(|c| (c, false)),
            None => None,
        };
        Ok(match coin {
            None => Value::Null,
            Some((c, confirmed)) => json!({
                "bestblock": snap.index.tip_hash().to_string(),
                "confirmations": if confirmed { tip + 1 - c.height } else { 0 },
                "value": coins(c.output.value),
                "scriptPubKey": {
                    "hex": hex::encode(c.output.script_pubkey.as_bytes()),
                    "address": Address::from_script(&c.output.script_pubkey, self.node.network).map(|a| a.to_string()),
                },
                "coinbase": c.is_coinbase,
            }),
        })
    }

    async fn get_tx_out_set_info(&self) -> RpcResult<Value> {
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let stats = crate::verify::utxo_stats(&snap.rtx).map_err(internal)?;
            Ok(json!({
                "height": snap.index.tip_height(),
                "bestblock": snap.index.tip_hash().to_string(),
                "txouts": stats.count,
                "total_amount": coins(stats.total),
                "hash_serialized": hex::encode(stats.hash),
            }))
        })
        .await
    }

    async fn verify_chain(&self, checklevel: Option<u32>, nblocks: Option<u32>) -> RpcResult<bool> {
        let node = self.node.clone();
        blocking(move || {
            match crate::verify::verify_chain(&node, checklevel.unwrap_or(4), nblocks.unwrap_or(0))
            {
                Ok(()) => Ok(true),
                Err(e) => {
                    tracing::error!("verifychain failed: {e}");
                    Ok(false)
                }
            }
        })
        .await
    }

    async fn get_block_template(&self, request: Option<Value>) -> RpcResult<Value> {
        let longpollid = request
            .as_ref()
            .and_then(|r| r.get("longpollid"))
            .and_then(Value::as_str)
            .map(str::to_owned);
        if let Some(id) = longpollid {
            self.wait_for_change(&id).await;
        }
        let node = self.node.clone();
        let cache = self.template_cache.clone();
        blocking(move || {
            let tip = node.tip.borrow().hash;
            let seq = *node.mempool_seq.borrow();
            let mut cached = cache.lock().unwrap_or_else(|p| p.into_inner());
            let mut json = match &*cached {
                Some(c) if c.tip == tip && c.mempool_seq == seq => c.json.clone(),
                _ => {
                    let json = template_json(&node)?;
                    *cached = Some(CachedTemplate {
                        tip,
                        mempool_seq: seq,
                        json: json.clone(),
                    });
                    json
                }
            };
            drop(cached);
            // Time moves on even when nothing else does (miners without extranonce need it).
            let mintime = json["mintime"].as_u64().unwrap_or(0);
            json["curtime"] = json!(crate::chain::unix_now().max(mintime));
            Ok(json)
        })
        .await
    }

    async fn submit_block(&self, hexdata: String, _dummy: Option<Value>) -> RpcResult<Value> {
        let block: Block = decode_hex(&hexdata, "Block")?;
        if block.txdata.first().is_none_or(|t| !t.is_coinbase()) {
            return Err(err(
                code::DESERIALIZATION_ERROR,
                "Block does not start with a coinbase",
            ));
        }
        let node = self.node.clone();
        blocking(move || {
            Ok(match node.submit_block(block) {
                Ok(Accepted::BestChain) => Value::Null,
                Ok(Accepted::SideChain) => json!("inconclusive"),
                Err(ChainError::Duplicate) => json!("duplicate"),
                Err(ChainError::DuplicateInvalid) => json!("duplicate-invalid"),
                Err(ChainError::Rule(r)) => json!(r.to_string()),
                Err(ChainError::BlockNotFound(_)) => json!("rejected"),
                // The node shuts down on this.
                Err(e @ (ChainError::Store(_) | ChainError::Stopping)) => {
                    return Err(err(code::DATABASE_ERROR, e.to_string()));
                }
            })
        })
        .await
    }

    async fn get_mining_info(&self) -> RpcResult<Value> {
        let snap = self.node.snapshot();
        let tip = snap.index.tip();
        Ok(json!({
            "blocks": tip.height,
            "bits": format!("{:08x}", tip.header.bits),
            "difficulty": difficulty(tip.header.bits),
            "target": Target::from_compact(tip.header.bits).map(|t| t.to_string()),
            "networkhashps": network_hash_ps(&snap.index, 120),
            "pooledtx": snap.mempool.len(),
            "chain": self.node.network.to_string(),
            "warnings": [],
        }))
    }

    async fn get_network_hash_ps(
        &self,
        nblocks: Option<i64>,
        _height: Option<i64>,
    ) -> RpcResult<f64> {
        let n = nblocks.unwrap_or(120);
        let snap = self.node.snapshot();
        Ok(network_hash_ps(
            &snap.index,
            if n <= 0 { 120 } else { n as u32 },
        ))
    }

    async fn generate_to_address(
        &self,
        nblocks: u32,
        address: String,
        _maxtries: Option<u64>,
    ) -> RpcResult<Vec<String>> {
        let address = Address::parse(&address, self.node.network).map_err(|e| {
            err(
                code::INVALID_ADDRESS_OR_KEY,
                format!("Error: Invalid address: {e}"),
            )
        })?;
        let node = self.node.clone();
        blocking(move || {
            let hashes = node
                .generate_blocks(nblocks, &address.script_pubkey())
                .map_err(|e| err(code::MISC_ERROR, format!("generated block rejected: {e}")))?;
            Ok(hashes.iter().map(|h| h.to_string()).collect())
        })
        .await
    }

    async fn send_raw_transaction(
        &self,
        hexstring: String,
        _maxfeerate: Option<Value>,
    ) -> RpcResult<String> {
        let tx: Transaction = decode_hex(&hexstring, "TX")?;
        use crate::mempool::MempoolError;
        self.node
            .accept_transaction(tx, false)
            .await
            .map(|t| t.to_string())
            .map_err(|e| match e {
                MempoolError::AlreadyKnown => err(
                    code::VERIFY_ALREADY_IN_CHAIN,
                    "Transaction outputs already in utxo set",
                ),
                MempoolError::Rule(chaincore::validation::RuleError::InputsMissingOrSpent) => {
                    err(code::VERIFY_ERROR, "bad-txns-inputs-missingorspent")
                }
                // The node shuts down on this.
                e @ (MempoolError::Store(_) | MempoolError::Stopping) => {
                    err(code::DATABASE_ERROR, e.to_string())
                }
                other => err(code::VERIFY_REJECTED, other.to_string()),
            })
    }

    async fn test_mempool_accept(
        &self,
        rawtxs: Vec<String>,
        _maxfeerate: Option<Value>,
    ) -> RpcResult<Value> {
        let mut out = Vec::new();
        for raw in rawtxs {
            let tx: Transaction = decode_hex(&raw, "TX")?;
            let txid = tx.compute_txid().to_string();
            let res = self.node.accept_transaction(tx, true).await;
            out.push(match res {
                Ok(_) => json!({"txid": txid, "allowed": true}),
                Err(e) if e.is_fatal() => return Err(err(code::DATABASE_ERROR, e.to_string())),
                Err(e) => json!({"txid": txid, "allowed": false, "reject-reason": e.to_string()}),
            });
        }
        Ok(json!(out))
    }

    async fn get_raw_transaction(
        &self,
        txid: String,
        verbose: Option<Value>,
        _blockhash: Option<String>,
    ) -> RpcResult<Value> {
        let txid: Txid = parse_hash(&txid, "txid")?;
        let verbose = verbosity(verbose, 0)? > 0;
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let pooled = snap.mempool.get(&txid).map(|e| e.tx.clone());
            let tip = snap.index.tip_height();
            let (tx, block) = match pooled {
                Some(tx) => (tx, None),
                None => {
                    let (hash, pos) = store::read::tx_location(&snap.rtx, &txid)
                        .map_err(internal)?
                        .ok_or_else(|| {
                            err(
                                code::INVALID_ADDRESS_OR_KEY,
                                "No such mempool or blockchain transaction",
                            )
                        })?;
                    let block = store::read::block(&snap.rtx, &hash)
                        .map_err(internal)?
                        .ok_or_else(|| internal("block missing"))?;
                    let tx = block
                        .txdata
                        .get(pos as usize)
                        .cloned()
                        .ok_or_else(|| internal("bad tx index"))?;
                    (tx, Some((hash, block.header.time)))
                }
            };
            if !verbose {
                return Ok(json!(hex::encode(serialize(&tx))));
            }
            let mut out = tx_json(&tx, node.network);
            if let Some((hash, time)) = block {
                let height = snap.index.entry(&hash).map(|e| e.height).unwrap_or(0);
                out["blockhash"] = json!(hash.to_string());
                out["confirmations"] = json!(tip + 1 - height);
                out["time"] = json!(time);
                out["blocktime"] = json!(time);
            }
            Ok(out)
        })
        .await
    }

    async fn decode_raw_transaction(&self, hexstring: String) -> RpcResult<Value> {
        let tx: Transaction = decode_hex(&hexstring, "TX")?;
        let mut out = tx_json(&tx, self.node.network);
        if let Some(o) = out.as_object_mut() {
            o.remove("hex");
        }
        Ok(out)
    }

    async fn get_raw_mempool(&self, verbose: Option<bool>) -> RpcResult<Value> {
        let snap = self.node.snapshot();
        if verbose.unwrap_or(false) {
            let map: serde_json::Map<String, Value> = snap
                .mempool
                .entries()
                .map(|e| (e.txid.to_string(), mempool_entry_json(&snap.mempool, e)))
                .collect();
            Ok(Value::Object(map))
        } else {
            Ok(json!(snap
                .mempool
                .entries()
                .map(|e| e.txid.to_string())
                .collect::<Vec<_>>()))
        }
    }

    async fn estimate_smart_fee(
        &self,
        conf_target: u32,
        estimate_mode: Option<String>,
    ) -> RpcResult<Value> {
        if !(1..=crate::fees::MAX_TARGET).contains(&conf_target) {
            return Err(err(
                code::INVALID_PARAMETER,
                format!(
                    "Invalid conf_target, must be between 1 and {}",
                    crate::fees::MAX_TARGET
                ),
            ));
        }
        let mode = estimate_mode.unwrap_or_else(|| "unset".into());
        if !["unset", "economical", "conservative"].contains(&mode.to_lowercase().as_str()) {
            return Err(err(
                code::INVALID_PARAMETER,
                "Invalid estimate_mode parameter, must be one of: \"unset\", \"economical\", \"conservative\"",
            ));
        }
        let node = self.node.clone();
        blocking(move || {
            let rate = node.estimate_fee(conf_target).map_err(|e| {
                node.store_failed(&e);
                err(code::DATABASE_ERROR, e.to_string())
            })?;
            Ok(match rate {
                // Units per byte → coins per 1,000 bytes.
                Some(r) => json!({"feerate": r * 1000.0 / 100_000_000.0, "blocks": conf_target}),
                None => json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0}),
            })
        })
        .await
    }

    async fn save_mempool(&self) -> RpcResult<Value> {
        let node = self.node.clone();
        blocking(move || {
            let path = node
                .save_mempool()
                .map_err(|e| err(code::MISC_ERROR, e.to_string()))?;
            Ok(json!({ "filename": path.display().to_string() }))
        })
        .await
    }

    async fn get_mempool_info(&self) -> RpcResult<Value> {
        let snap = self.node.snapshot();
        let m = &snap.mempool;
        Ok(json!({
            "loaded": true,
            "size": m.len(),
            "bytes": m.bytes(),
            "usage": m.bytes(),
            "maxmempool": m.max_bytes(),
            "mempoolminfee": coins(Amount::from_units(crate::mempool::MIN_RELAY_FEE_RATE * 1000)),
            "minrelaytxfee": coins(Amount::from_units(crate::mempool::MIN_RELAY_FEE_RATE * 1000)),
            "orphans": self.node.orphan_count(),
        }))
    }

    async fn get_mempool_entry(&self, txid: String) -> RpcResult<Value> {
        let txid: Txid = parse_hash(&txid, "txid")?;
        let snap = self.node.snapshot();
        let e = snap
            .mempool
            .get(&txid)
            .ok_or_else(|| err(code::INVALID_ADDRESS_OR_KEY, "Transaction not in mempool"))?;
        Ok(mempool_entry_json(&snap.mempool, e))
    }

    async fn get_address_balance(&self, addresses: Value) -> RpcResult<Value> {
        let addrs = self.addresses(&addresses)?;
        let node = self.node.clone();
        blocking(move || {
            let view = AddressView::collect(&node, &addrs)?;
            let confirmed: Amount = view.confirmed.iter().map(|u| u.2.output.value).sum();
            let immature: Amount = view
                .confirmed
                .iter()
                .filter(|u| {
                    u.2.is_coinbase
                        && view.tip + 1 - u.2.height < chaincore::validation::COINBASE_MATURITY
                })
                .map(|u| u.2.output.value)
                .sum();
            let received: Amount = view.pending_in.iter().map(|u| u.2.output.value).sum();
            let spent: Amount = view.pending_spent.iter().map(|c| c.output.value).sum();
            Ok(json!({
                "balance": confirmed.to_units(),
                "immature": immature.to_units(),
                "unconfirmed": (received - spent).to_units(),
            }))
        })
        .await
    }

    async fn get_address_utxos(&self, addresses: Value) -> RpcResult<Value> {
        let addrs = self.addresses(&addresses)?;
        let node = self.node.clone();
        blocking(move || {
            let view = AddressView::collect(&node, &addrs)?;
            let row = |(addr, op, coin): &(Address, OutPoint, chaincore::validation::Coin),
                       confirmed: bool,
                       spent: bool| {
                json!({
                    "address": addr.to_string(),
                    "txid": op.txid.to_string(),
                    "outputIndex": op.vout,
                    "script": hex::encode(coin.output.script_pubkey.as_bytes()),
                    "satoshis": coin.output.value.to_units(),
                    "height": if confirmed { Some(coin.height) } else { None },
                    "coinbase": coin.is_coinbase,
                    "confirmations": if confirmed { view.tip + 1 - coin.height } else { 0 },
                    "spentInMempool": spent,
                })
            };
            let mut out: Vec<Value> = view
                .confirmed
                .iter()
                .map(|u| row(u, true, view.spent_outpoints.contains(&u.1)))
                .collect();
            out.extend(
                view.pending_in
                    .iter()
                    .map(|u| row(u, false, view.spent_outpoints.contains(&u.1))),
            );
            Ok(json!(out))
        })
        .await
    }

    async fn get_address_txids(&self, addresses: Value) -> RpcResult<Value> {
        let addrs = self.addresses(&addresses)?;
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let pool_txids = {
                let hashes: Vec<[u8; 20]> = addrs.iter().map(|a| a.pubkey_hash).collect();
                let pool: Vec<Txid> = snap
                    .mempool
                    .entries()
                    .filter(|e| {
                        e.tx.output.iter().any(|o| {
                            o.script_pubkey
                                .p2pkh_hash()
                                .is_some_and(|h| hashes.contains(&h))
                        }) || e.spent.iter().any(|c| {
                            c.output
                                .script_pubkey
                                .p2pkh_hash()
                                .is_some_and(|h| hashes.contains(&h))
                        })
                    })
                    .map(|e| e.txid)
                    .collect::<Vec<Txid>>();
                pool
            };
            let mut rows = Vec::new();
            for a in &addrs {
                rows.extend(
                    store::read::address_txids(&snap.rtx, &a.pubkey_hash).map_err(internal)?,
                );
            }
            rows.sort();
            rows.dedup();
            let mut out: Vec<String> = rows.into_iter().map(|(_, t)| t.to_string()).collect();
            out.extend(pool_txids.iter().map(|t| t.to_string()));
            Ok(json!(out))
        })
        .await
    }

    async fn invalidate_block(&self, blockhash: String) -> RpcResult<()> {
        self.set_validity(blockhash, false).await
    }

    async fn reconsider_block(&self, blockhash: String) -> RpcResult<()> {
        self.set_validity(blockhash, true).await
    }

    async fn get_peer_info(&self) -> RpcResult<Value> {
        Ok(self.p2p.peer_info())
    }

    async fn get_connection_count(&self) -> RpcResult<usize> {
        Ok(self.p2p.connection_count())
    }

    async fn add_node(&self, node: String, command: String) -> RpcResult<()> {
        let addr: std::net::SocketAddr = node
            .parse()
            .map_err(|_| err(code::INVALID_PARAMETER, format!("'{node}' is not IP:PORT")))?;
        match command.as_str() {
            "add" => self.p2p.add_node(addr, true),
            "onetry" => self.p2p.add_node(addr, false),
            _ => {
                return Err(err(
                    code::INVALID_PARAMETER,
                    "command must be 'add' or 'onetry'",
                ))
            }
        }
        Ok(())
    }

    async fn get_network_info(&self) -> RpcResult<Value> {
        Ok(json!({
            "version": 10000,
            "subversion": format!("/chaincore:{}/", env!("CARGO_PKG_VERSION")),
            "protocolversion": crate::p2p::message::PROTOCOL_VERSION,
            "localservices": "0000000000000000",
            "networkactive": true,
            "connections": self.p2p.connection_count(),
            "relayfee": coins(Amount::from_units(crate::mempool::MIN_RELAY_FEE_RATE * 1000)),
            "warnings": [],
        }))
    }

    async fn disconnect_node(&self, address: String) -> RpcResult<()> {
        let addr: std::net::SocketAddr = address.parse().map_err(|_| {
            err(
                code::INVALID_PARAMETER,
                format!("'{address}' is not IP:PORT"),
            )
        })?;
        if self.p2p.disconnect(&addr) {
            Ok(())
        } else {
            Err(err(-29, "Node not found in connected nodes"))
        }
    }

    async fn get_node_addresses(&self, count: Option<usize>) -> RpcResult<Value> {
        let list = self.p2p.known_addresses(count.unwrap_or(1).min(1000));
        Ok(json!(list
            .iter()
            .map(|a| json!({"address": a.ip().to_string(), "port": a.port(), "services": 0}))
            .collect::<Vec<_>>()))
    }

    async fn set_ban(
        &self,
        subnet: String,
        command: String,
        bantime: Option<u64>,
    ) -> RpcResult<()> {
        let ip: std::net::IpAddr = subnet
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| err(-30, format!("Error: Invalid IP/Subnet '{subnet}'")))?;
        match command.as_str() {
            "add" => self.p2p.set_ban(
                ip,
                Some(Duration::from_secs(
                    bantime.filter(|t| *t > 0).unwrap_or(24 * 3600),
                )),
            ),
            "remove" => self.p2p.set_ban(ip, None),
            _ => {
                return Err(err(
                    code::INVALID_PARAMETER,
                    "command must be 'add' or 'remove'",
                ))
            }
        }
        Ok(())
    }

    async fn list_banned(&self) -> RpcResult<Value> {
        let now = crate::chain::unix_now();
        Ok(json!(self
            .p2p
            .list_banned()
            .iter()
            .map(|(ip, left)| json!({"address": format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }), "banned_until": now + left, "time_remaining": left}))
            .collect::<Vec<_>>()))
    }

    async fn clear_banned(&self) -> RpcResult<()> {
        self.p2p.clear_banned();
        Ok(())
    }

    async fn ping(&self) -> RpcResult<()> {
        self.p2p.ping_all();
        Ok(())
    }

    async fn uptime(&self) -> RpcResult<u64> {
        Ok(self.node.started.elapsed().as_secs())
    }

    async fn stop(&self) -> RpcResult<String> {
        self.node.stopping.store(true, Ordering::Release);
        self.node.shutdown.send_replace(true);
        Ok("ChainCore server stopping".to_string())
    }

    async fn subscribe_new_tip(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let mut tips = self.node.tip.subscribe();
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                changed = tips.changed() => {
                    if changed.is_err() {
                        return Ok(());
                    }
                    let tip = *tips.borrow_and_update();
                    let msg = serde_json::value::to_raw_value(
                        &json!({"hash": tip.hash.to_string(), "height": tip.height}),
                    )?;
                    if sink.send(msg).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }

    async fn subscribe_new_tx(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let mut txs = self.node.new_tx.subscribe();
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                next = txs.recv() => match next {
                    Ok(txid) => {
                        let msg = serde_json::value::to_raw_value(&txid.to_string())?;
                        if sink.send(msg).await.is_err() {
                            return Ok(());
                        }
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!("a subscriber missed {n} transactions");
                    }
                    Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
                },
            }
        }
    }

    async fn help(&self, command: Option<String>) -> RpcResult<String> {
        let methods = [
            "addnode",
            "clearbanned",
            "disconnectnode",
            "decoderawtransaction",
            "estimatesmartfee",
            "generatetoaddress",
            "getaddressbalance",
            "getaddresstxids",
            "getaddressutxos",
            "getbestblockhash",
            "getblock",
            "getblockchaininfo",
            "getblockcount",
            "getblockhash",
            "getblockheader",
            "getblocktemplate",
            "getchaintips",
            "getconnectioncount",
            "getdifficulty",
            "getmempoolentry",
            "getmempoolinfo",
            "getmininginfo",
            "getnetworkhashps",
            "getnetworkinfo",
            "getnodeaddresses",
            "getpeerinfo",
            "getrawmempool",
            "getrawtransaction",
            "gettxout",
            "gettxoutsetinfo",
            "help",
            "invalidateblock",
            "listbanned",
            "ping",
            "reconsiderblock",
            "savemempool",
            "sendrawtransaction",
            "setban",
            "stop",
            "submitblock",
            "subscribenewtip",
            "subscribenewtx",
            "testmempoolaccept",
            "uptime",
            "verifychain",
        ];
        match command {
            None => Ok(methods.join("\n")),
            Some(c) if methods.contains(&c.as_str()) => {
                Ok(format!("{c}: see docs/RPC.md for parameters and results"))
            }
            Some(c) => Ok(format!("help: unknown command: {c}")),
        }
    }
}

impl Rpc {
    async fn set_validity(&self, blockhash: String, valid: bool) -> RpcResult<()> {
        let hash: BlockHash = parse_hash(&blockhash, "blockhash")?;
        let node = self.node.clone();
        blocking(move || {
            node.set_block_validity(&hash, valid).map_err(|e| match e {
                ChainError::BlockNotFound(_) => {
                    err(code::INVALID_ADDRESS_OR_KEY, "Block not found")
                }
                other => err(code::DATABASE_ERROR, other.to_string()),
            })
        })
        .await
    }

    /// Waits until the tip changes (answer at once) or the mempool changes (answer after a
    /// short delay), or a maximum wait passes. `id` is the long poll id we handed out.
    async fn wait_for_change(&self, id: &str) {
        let mut tip_rx = self.node.tip.subscribe();
        let mut pool_rx = self.node.mempool_seq.subscribe();
        let current = longpoll_id(*tip_rx.borrow(), *pool_rx.borrow());
        if current != id {
            return;
        }
        let deadline = tokio::time::sleep(LONGPOLL_MAX_WAIT);
        tokio::pin!(deadline);
        tokio::select! {
            _ = tip_rx.changed() => {}
            _ = pool_rx.changed() => {
                // More transactions may follow: give them a moment, but a new tip still wins.
                tokio::select! {
                    _ = tip_rx.changed() => {}
                    _ = tokio::time::sleep(LONGPOLL_MEMPOOL_DELAY) => {}
                }
            }
            _ = &mut deadline => {}
        }
    }
}

fn longpoll_id(tip: crate::node::Tip, mempool_seq: u64) -> String {
    format!("{}{}", tip.hash, mempool_seq)
}

fn template_json(node: &Node) -> RpcResult<Value> {
    let t = node
        .template()
        .map_err(|e| err(code::MISC_ERROR, e.to_string()))?;
    let seq = t.mempool_seq;
    let tip = crate::node::Tip {
        hash: t.prev_blockhash,
        height: t.height - 1,
    };
    let index: std::collections::HashMap<Txid, usize> = t
        .transactions
        .iter()
        .enumerate()
        .map(|(i, e)| (e.txid, i + 1))
        .collect();
    let txs: Vec<Value> = t
        .transactions
        .iter()
        .map(|e| {
            let mut depends: Vec<usize> = e
                .parents
                .iter()
                .filter_map(|p| index.get(p).copied())
                .collect();
            depends.sort_unstable();
            json!({
                "data": hex::encode(serialize(&e.tx)),
                "txid": e.txid.to_string(),
                "hash": e.txid.to_string(),
                "depends": depends,
                "fee": e.fee.to_units(),
                "sigops": e.tx.output.len(),
                "weight": e.size * 4,
            })
        })
        .collect();
    Ok(json!({
        "capabilities": ["proposal"],
        "version": t.version,
        "rules": [],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": t.prev_blockhash.to_string(),
        "transactions": txs,
        "coinbaseaux": {},
        "coinbasevalue": t.coinbase_value.to_units(),
        "longpollid": longpoll_id(tip, seq),
        "target": t.target().map(|x| x.to_string()),
        "mintime": t.mintime,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 20000,
        "sizelimit": chaincore::validation::MAX_BLOCK_SIZE,
        "weightlimit": chaincore::validation::MAX_BLOCK_SIZE * 4,
        "curtime": t.curtime,
        "bits": format!("{:08x}", t.bits),
        "height": t.height,
    }))
}

fn header_json(chain: &crate::chain::BlockIndex, hash: &BlockHash, e: &store::IndexEntry) -> Value {
    let confirmations: i64 = if chain.is_active(hash) {
        i64::from(chain.tip_height() - e.height) + 1
    } else {
        -1
    };
    let mut out = json!({
        "hash": hash.to_string(),
        "confirmations": confirmations,
        "height": e.height,
        "version": e.header.version,
        "versionHex": format!("{:08x}", e.header.version),
        "merkleroot": e.header.merkle_root.to_string(),
        "time": e.header.time,
        "mediantime": chain.median_time_past(hash),
        "nonce": e.header.nonce,
        "bits": format!("{:08x}", e.header.bits),
        "target": Target::from_compact(e.header.bits).map(|t| t.to_string()),
        "difficulty": difficulty(e.header.bits),
        "chainwork": e.chainwork.to_string(),
    });
    if e.height > 0 {
        out["previousblockhash"] = json!(e.header.prev_blockhash.to_string());
    }
    if chain.is_active(hash) {
        if let Some(next) = chain.active_hash(e.height + 1) {
            out["nextblockhash"] = json!(next.to_string());
        }
    }
    out
}

fn mempool_entry_json(pool: &crate::mempool::Mempool, e: &crate::mempool::Entry) -> Value {
    json!({
        "vsize": e.size,
        "weight": e.size * 4,
        "time": e.time,
        "fees": {"base": coins(e.fee)},
        "depends": e.parents.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        "spentby": pool.children_of(&e.txid).map(|c| c.to_string()).collect::<Vec<_>>(),
    })
}

fn network_hash_ps(chain: &crate::chain::BlockIndex, nblocks: u32) -> f64 {
    let tip = chain.tip();
    let back = nblocks.min(tip.height);
    if back == 0 {
        return 0.0;
    }
    let Some(start) = chain
        .active_hash(tip.height - back)
        .and_then(|h| chain.entry(&h).copied())
    else {
        return 0.0;
    };
    let secs = f64::from(tip.header.time.saturating_sub(start.header.time)).max(1.0);
    (tip.chainwork.to_f64() - start.chainwork.to_f64()) / secs
}

/// Everything the address RPCs need, gathered from one snapshot.
struct AddressView {
    tip: u32,
    confirmed: Vec<(Address, OutPoint, chaincore::validation::Coin)>,
    pending_in: Vec<(Address, OutPoint, chaincore::validation::Coin)>,
    pending_spent: Vec<chaincore::validation::Coin>,
    spent_outpoints: std::collections::HashSet<OutPoint>,
}

impl AddressView {
    fn collect(node: &Node, addrs: &[Address]) -> RpcResult<AddressView> {
        let snap = node.snapshot();
        let tip = snap.index.tip_height();
        let mut view = AddressView {
            tip,
            confirmed: Vec::new(),
            pending_in: Vec::new(),
            pending_spent: Vec::new(),
            spent_outpoints: Default::default(),
        };
        for a in addrs {
            for op in store::read::address_outpoints(&snap.rtx, &a.pubkey_hash).map_err(internal)? {
                if let Some(coin) = store::read::coin(&snap.rtx, &op).map_err(internal)? {
                    view.confirmed.push((*a, op, coin));
                }
            }
        }
        for e in snap.mempool.entries() {
            for (input, coin) in e.tx.input.iter().zip(&e.spent) {
                if addrs
                    .iter()
                    .any(|a| coin.output.script_pubkey.p2pkh_hash() == Some(a.pubkey_hash))
                {
                    view.pending_spent.push(coin.clone());
                    view.spent_outpoints.insert(input.previous_output);
                }
            }
            for (vout, out) in e.tx.output.iter().enumerate() {
                if let Some(a) = addrs
                    .iter()
                    .find(|a| out.script_pubkey.p2pkh_hash() == Some(a.pubkey_hash))
                {
                    let coin = chaincore::validation::Coin {
                        output: out.clone(),
                        height: tip + 1,
                        is_coinbase: false,
                    };
                    view.pending_in.push((
                        *a,
                        OutPoint {
                            txid: e.txid,
                            vout: vout as u32,
                        },
                        coin,
                    ));
                }
            }
        }
        Ok(view)
    }
}
