//! Blockchain methods: blocks, headers, chain tips, the UTXO set, `verifychain`, `invalidateblock`
//! / `reconsiderblock`, and the new-tip subscription.

use chaincore::encode::deserialize;
use chaincore::pow::{difficulty, Target};
use chaincore::rpc::{code, BlockchainServer};
use chaincore::{Address, Block, BlockHash, OutPoint, Txid};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::PendingSubscriptionSink;
use serde_json::{json, Value};

use super::{blocking, coins, parse_hash, tx_json, verbosity, Rpc};
use crate::store::{self, Status};

use super::error::{err, MapError, OkOrError, ToRpcError};

/// Bitcoin Core's `verificationprogress`: the share of the known chain verified, blocks
/// counted from genesis, so 1.0 at the best known tip (a fresh node with nothing to sync is
/// done, not at 0.0) and below it while headers are ahead of the blocks.
fn verification_progress(blocks: u32, headers: u64) -> f64 {
    let known = headers.max(u64::from(blocks)) + 1;
    (u64::from(blocks) + 1) as f64 / known as f64
}

#[async_trait]
impl BlockchainServer for Rpc {
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
            "verificationprogress": verification_progress(tip.height, headers),
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
            .ok_or_error(code::INVALID_PARAMETER, "Block height out of range")
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
                .map_misc()?
                .ok_or_error(code::MISC_ERROR, "Block not available")?;
            if level == 0 {
                return Ok(json!(hex::encode(bytes)));
            }
            let block: Block = deserialize(&bytes).map_misc()?;
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
            .ok_or_error(code::INVALID_ADDRESS_OR_KEY, "Block not found")?;
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
        let read = snap.clone();
        let confirmed =
            blocking(move || store::read::coin(&read.rtx, &outpoint).map_misc()).await?;
        let coin = match confirmed {
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

    async fn get_block_stats(&self, hash_or_height: Value) -> RpcResult<Value> {
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let hash = match &hash_or_height {
                Value::Number(n) => {
                    let tip = snap.index.tip_height();
                    let height = n
                        .as_u64()
                        .and_then(|h| u32::try_from(h).ok())
                        .filter(|h| *h <= tip)
                        .ok_or_error(
                            code::INVALID_PARAMETER,
                            format!("Target block height {n} after current tip {tip}"),
                        )?;
                    snap.index
                        .active_hash(height)
                        .ok_or_error(code::INVALID_PARAMETER, "Block height out of range")?
                }
                Value::String(s) => {
                    let hash: BlockHash = parse_hash(s, "blockhash")?;
                    if !snap.index.is_active(&hash) {
                        return Err(err(
                            code::INVALID_ADDRESS_OR_KEY,
                            if snap.index.entry(&hash).is_some() {
                                "Block is not in main chain"
                            } else {
                                "Block not found"
                            },
                        ));
                    }
                    hash
                }
                _ => {
                    return Err(err(
                        code::TYPE_ERROR,
                        "hash_or_height must be a block hash or a height",
                    ))
                }
            };
            let entry = snap
                .index
                .entry(&hash)
                .copied()
                .ok_or_error(code::INVALID_ADDRESS_OR_KEY, "Block not found")?;
            let block = store::read::block(&snap.rtx, &hash)
                .map_misc()?
                .ok_or_error(code::MISC_ERROR, "Block not available")?;
            // Genesis spends nothing and has no undo data; every other block has some.
            let undo = match store::read::undo(&snap.rtx, &hash).map_misc()? {
                Some(undo) => undo,
                None if entry.height == 0 => Vec::new(),
                None => return Err(err(code::MISC_ERROR, "Undo data not available")),
            };
            Ok(block_stats(
                &block,
                &undo,
                &entry,
                snap.index.median_time_past(&hash),
            ))
        })
        .await
    }

    async fn get_tx_out_set_info(&self) -> RpcResult<Value> {
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let stats = crate::verify::utxo_stats(&snap.rtx).map_misc()?;
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

    async fn invalidate_block(&self, blockhash: String) -> RpcResult<()> {
        self.set_validity(blockhash, false).await
    }

    async fn reconsider_block(&self, blockhash: String) -> RpcResult<()> {
        self.set_validity(blockhash, true).await
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

impl Rpc {
    async fn set_validity(&self, blockhash: String, valid: bool) -> RpcResult<()> {
        let hash: BlockHash = parse_hash(&blockhash, "blockhash")?;
        let node = self.node.clone();
        blocking(move || {
            node.set_block_validity(&hash, valid)
                .map_err(|e| e.to_rpc_error())
        })
        .await
    }
}

/// `getblockstats` of `block` (its `undo` data: the coins it spent, in order).
fn block_stats(
    block: &Block,
    undo: &[chaincore::validation::Coin],
    entry: &store::IndexEntry,
    median_time: i64,
) -> Value {
    let mut spent = undo.iter();
    // Per non-coinbase transaction: (fee, size).
    let mut txs: Vec<(i64, usize)> = Vec::new();
    let mut ins = 0usize;
    let mut outs = 0usize;
    let mut total_out = 0i64;
    let mut utxo_increase = 0i64;
    for tx in &block.txdata {
        let created = tx
            .output
            .iter()
            .filter(|o| o.script_pubkey.op_return_data().is_none())
            .count();
        outs += tx.output.len();
        utxo_increase += created as i64;
        if tx.is_coinbase() {
            continue;
        }
        ins += tx.input.len();
        utxo_increase -= tx.input.len() as i64;
        let inputs: i64 = spent
            .by_ref()
            .take(tx.input.len())
            .map(|c| c.output.value.to_units())
            .sum();
        let out: i64 = tx.output.iter().map(|o| o.value.to_units()).sum();
        total_out += out;
        txs.push((inputs - out, tx.size()));
    }
    let n = txs.len() as i64;
    let fees: Vec<i64> = txs.iter().map(|t| t.0).collect();
    let sizes: Vec<usize> = txs.iter().map(|t| t.1).collect();
    let rates: Vec<i64> = txs.iter().map(|(f, s)| f / (*s as i64).max(1)).collect();
    let total_fee: i64 = fees.iter().sum();
    let total_size: usize = sizes.iter().sum();
    let median = |v: &[i64]| -> i64 {
        let mut v = v.to_vec();
        v.sort_unstable();
        match v.len() {
            0 => 0,
            n if n % 2 == 1 => v[n / 2],
            n => (v[n / 2 - 1] + v[n / 2]) / 2,
        }
    };
    let sizes_i: Vec<i64> = sizes.iter().map(|s| *s as i64).collect();
    json!({
        "blockhash": block.block_hash().to_string(),
        "height": entry.height,
        "time": block.header.time,
        "mediantime": median_time,
        "txs": block.txdata.len(),
        "ins": ins,
        "outs": outs,
        "subsidy": chaincore::pow::block_subsidy(entry.height).to_units(),
        "totalfee": total_fee,
        "total_out": total_out,
        "total_size": total_size,
        "total_weight": total_size * 4,
        "avgfee": if n > 0 { total_fee / n } else { 0 },
        "avgfeerate": if total_size > 0 { total_fee / total_size as i64 } else { 0 },
        "avgtxsize": if n > 0 { total_size as i64 / n } else { 0 },
        "minfee": fees.iter().min().copied().unwrap_or(0),
        "maxfee": fees.iter().max().copied().unwrap_or(0),
        "medianfee": median(&fees),
        "minfeerate": rates.iter().min().copied().unwrap_or(0),
        "maxfeerate": rates.iter().max().copied().unwrap_or(0),
        "mintxsize": sizes.iter().min().copied().unwrap_or(0),
        "maxtxsize": sizes.iter().max().copied().unwrap_or(0),
        "mediantxsize": median(&sizes_i),
        "utxo_increase": utxo_increase,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verification_progress_is_the_share_of_the_known_chain() {
        assert_eq!(
            verification_progress(0, 0),
            1.0,
            "a fresh node has nothing to sync"
        );
        assert_eq!(verification_progress(101, 101), 1.0);
        assert_eq!(verification_progress(0, 9), 0.1);
        assert_eq!(verification_progress(49, 99), 0.5);
    }
}
