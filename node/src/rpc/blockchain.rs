//! Blockchain methods: blocks, headers, chain tips, the UTXO set, `verifychain`, `invalidateblock`
//! / `reconsiderblock`, and the new-tip subscription.

use chaincore::encode::deserialize;
use chaincore::pow::{difficulty, Target};
use chaincore::rpc::blockchain::{
    BlockHeaderInfo, BlockInfo, BlockStats, BlockTransactions, BlockchainInfo, ChainTip,
    ChainTxStats, GetBlock, GetBlockHeader, HashOrHeight, IndexInfo, NewTip, TipStatus, TxOutInfo,
    TxOutSetInfo, Verbosity,
};
use chaincore::rpc::{code, BlockchainServer, Param};
use chaincore::{Block, BlockHash, OutPoint, Txid};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::PendingSubscriptionSink;

use super::{blocking, parse_hash, script_info, tx_info, verbosity, Rpc};
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
    async fn get_blockchain_info(&self) -> RpcResult<BlockchainInfo> {
        let snap = self.node.snapshot();
        let chain = &snap.index;
        let tip = chain.tip();
        // Best height any peer showed us (we fetch blocks right behind their headers).
        let headers = self.p2p.best_seen_height().max(u64::from(tip.height));
        Ok(BlockchainInfo {
            chain: self.node.network.to_string(),
            blocks: tip.height,
            headers,
            bestblockhash: chain.tip_hash(),
            bits: format!("{:08x}", tip.header.bits),
            target: Target::from_compact(tip.header.bits).map(|t| t.to_string()),
            difficulty: difficulty(tip.header.bits),
            time: tip.header.time,
            mediantime: chain.median_time_past(&chain.tip_hash()),
            verificationprogress: verification_progress(tip.height, headers),
            initialblockdownload: headers > u64::from(tip.height) + 6,
            chainwork: tip.chainwork.to_string(),
            size_on_disk: self.node.size_on_disk(),
            pruned: false,
            warnings: Vec::new(),
        })
    }

    async fn get_best_block_hash(&self) -> RpcResult<BlockHash> {
        Ok(self.node.tip.borrow().hash)
    }

    async fn get_block_count(&self) -> RpcResult<u32> {
        Ok(self.node.tip.borrow().height)
    }

    async fn get_block_hash(&self, height: Param<i64>) -> RpcResult<BlockHash> {
        let height = height.get()?;
        let snap = self.node.snapshot();
        u32::try_from(height)
            .ok()
            .and_then(|h| snap.index.active_hash(h))
            .ok_or_error(code::INVALID_PARAMETER, "Block height out of range")
    }

    async fn get_block(
        &self,
        blockhash: Param<String>,
        verbosity_param: Option<Param<Verbosity>>,
    ) -> RpcResult<GetBlock> {
        let hash: BlockHash = parse_hash(&blockhash.get()?, "blockhash")?;
        let level = verbosity(verbosity_param, 1)?;
        let node = self.node.clone();
        blocking(move || block_answer(&node.snapshot(), node.network, &hash, level)).await
    }

    async fn get_block_header(
        &self,
        blockhash: Param<String>,
        verbose: Option<Param<bool>>,
    ) -> RpcResult<GetBlockHeader> {
        let hash: BlockHash = parse_hash(&blockhash.get()?, "blockhash")?;
        let verbose = Param::optional(verbose)?;
        let snap = self.node.snapshot();
        let entry = snap
            .index
            .entry(&hash)
            .copied()
            .ok_or_error(code::INVALID_ADDRESS_OR_KEY, "Block not found")?;
        if verbose == Some(false) {
            return Ok(GetBlockHeader::Hex(hex::encode(entry.header.to_bytes())));
        }
        Ok(GetBlockHeader::Json(Box::new(header_info(
            &snap.index,
            &hash,
            &entry,
        ))))
    }

    async fn get_chain_tips(&self) -> RpcResult<Vec<ChainTip>> {
        let snap = self.node.snapshot();
        let chain = &snap.index;
        let parents: std::collections::HashSet<BlockHash> = chain
            .entries()
            .map(|(_, e)| e.header.prev_blockhash)
            .collect();
        let tip = chain.tip_hash();
        // Blocks with no children, and the active tip (which may have invalid children).
        let mut tips: Vec<ChainTip> = chain
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
                    TipStatus::Active
                } else if e.status == Status::Invalid {
                    TipStatus::Invalid
                } else {
                    TipStatus::ValidFork
                };
                ChainTip {
                    height: e.height,
                    hash: *h,
                    branchlen: len,
                    status,
                }
            })
            .collect();
        tips.sort_by_key(|t| std::cmp::Reverse(t.height));
        Ok(tips)
    }

    async fn get_chain_tx_stats(
        &self,
        nblocks: Option<Param<i64>>,
        blockhash: Option<Param<String>>,
    ) -> RpcResult<ChainTxStats> {
        let nblocks = Param::optional(nblocks)?;
        let blockhash = Param::optional(blockhash)?;
        let snap = self.node.snapshot();
        let chain = &snap.index;
        let hash = match blockhash {
            None => chain.tip_hash(),
            Some(s) => {
                let hash: BlockHash = parse_hash(&s, "blockhash")?;
                if chain.entry(&hash).is_none() {
                    return Err(err(code::INVALID_ADDRESS_OR_KEY, "Block not found"));
                }
                if !chain.is_active(&hash) {
                    return Err(err(code::INVALID_PARAMETER, "Block is not in main chain"));
                }
                hash
            }
        };
        let end = *chain
            .entry(&hash)
            .ok_or_error(code::INVALID_ADDRESS_OR_KEY, "Block not found")?;
        let most = i64::from(end.height.saturating_sub(1));
        let count = match nblocks {
            None => {
                let month = 30 * 24 * 60 * 60 / self.node.network.params().asert.target_spacing;
                month.min(most)
            }
            Some(n) if n < 0 || n > most => {
                return Err(err(
                    code::INVALID_PARAMETER,
                    "Invalid block count: should be between 0 and the block's height - 1",
                ))
            }
            Some(n) => n,
        };
        // At most the height - 1, so it fits.
        let count = u32::try_from(count).unwrap_or(0);
        let start = chain
            .active_hash(end.height - count)
            .and_then(|h| chain.entry(&h).copied().map(|e| (h, e)))
            .ok_or_error(code::MISC_ERROR, "window start not on the active chain")?;
        let (window_tx_count, window_interval, txrate) = if count == 0 {
            (None, None, None)
        } else {
            let txs = end.chain_tx - start.1.chain_tx;
            let interval = chain.median_time_past(&hash) - chain.median_time_past(&start.0);
            let rate = (interval > 0).then(|| txs as f64 / interval as f64);
            (Some(txs), Some(interval), rate)
        };
        Ok(ChainTxStats {
            time: end.header.time,
            txcount: end.chain_tx,
            window_final_block_hash: hash,
            window_final_block_height: end.height,
            window_block_count: count,
            window_tx_count,
            window_interval,
            txrate,
        })
    }

    async fn get_difficulty(&self) -> RpcResult<f64> {
        Ok(difficulty(self.node.snapshot().index.tip().header.bits))
    }

    async fn get_tx_out(
        &self,
        txid: Param<String>,
        n: Param<u32>,
        include_mempool: Option<Param<bool>>,
    ) -> RpcResult<Option<TxOutInfo>> {
        let txid: Txid = parse_hash(&txid.get()?, "txid")?;
        let outpoint = OutPoint {
            txid,
            vout: n.get()?,
        };
        let include_mempool = Param::optional(include_mempool)?;
        let snap = self.node.snapshot();
        let include_mempool = include_mempool.unwrap_or(true);
        if include_mempool && snap.mempool.spender(&outpoint).is_some() {
            return Ok(None);
        }
        let tip = snap.index.tip_height();
        let read = snap.clone();
        let confirmed = blocking(move || read.chain_coin(&outpoint).map_misc()).await?;
        let coin = match confirmed {
            Some(c) => Some((c, true)),
            None if include_mempool => snap.mempool.coin(&outpoint, tip + 1).map(|c| (c, false)),
            None => None,
        };
        Ok(coin.map(|(c, confirmed)| TxOutInfo {
            bestblock: snap.index.tip_hash(),
            confirmations: if confirmed { tip + 1 - c.height } else { 0 },
            value: c.output.value,
            scriptPubKey: script_info(&c.output.script_pubkey, self.node.network),
            coinbase: c.is_coinbase,
        }))
    }

    async fn get_block_stats(&self, hash_or_height: Param<HashOrHeight>) -> RpcResult<BlockStats> {
        let hash_or_height = hash_or_height.get()?;
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let hash = match &hash_or_height {
                HashOrHeight::Height(n) if *n < 0 => {
                    return Err(err(
                        code::INVALID_PARAMETER,
                        format!("Target block height {n} is negative"),
                    ))
                }
                HashOrHeight::Height(n) => {
                    let tip = snap.index.tip_height();
                    let height = u32::try_from(*n).ok().filter(|h| *h <= tip).ok_or_error(
                        code::INVALID_PARAMETER,
                        format!("Target block height {n} after current tip {tip}"),
                    )?;
                    snap.index
                        .active_hash(height)
                        .ok_or_error(code::INVALID_PARAMETER, "Block height out of range")?
                }
                HashOrHeight::Hash(s) => {
                    let hash: BlockHash = parse_hash(s, "blockhash")?;
                    if snap.index.entry(&hash).is_none() {
                        return Err(err(code::INVALID_ADDRESS_OR_KEY, "Block not found"));
                    }
                    if !snap.index.is_active(&hash) {
                        return Err(err(
                            code::INVALID_PARAMETER,
                            format!("Block is not in chain {}", node.network),
                        ));
                    }
                    hash
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

    async fn get_tx_out_set_info(&self) -> RpcResult<TxOutSetInfo> {
        let node = self.node.clone();
        blocking(move || {
            let snap = node.snapshot();
            let stats = crate::verify::utxo_stats(&snap).map_misc()?;
            Ok(TxOutSetInfo {
                height: snap.index.tip_height(),
                bestblock: snap.index.tip_hash(),
                transactions: stats.transactions,
                txouts: stats.count,
                bogosize: stats.bogosize,
                total_amount: stats.total,
                hash_serialized: hex::encode(stats.hash),
                disk_size: node.size_on_disk(),
            })
        })
        .await
    }

    async fn get_index_info(
        &self,
        index_name: Option<Param<String>>,
    ) -> RpcResult<std::collections::BTreeMap<String, IndexInfo>> {
        let name = Param::optional(index_name)?;
        let tip = self.node.snapshot().tip();
        let progress = self.node.index_progress.borrow().clone();
        Ok(progress
            .iter()
            .filter(|s| name.as_deref().is_none_or(|n| n == s.kind.name()))
            .map(|s| {
                (
                    s.kind.name().to_string(),
                    IndexInfo {
                        synced: s.at(&tip.hash, tip.height),
                        best_block_height: s.height(),
                    },
                )
            })
            .collect())
    }

    async fn verify_chain(
        &self,
        checklevel: Option<Param<u32>>,
        nblocks: Option<Param<u32>>,
    ) -> RpcResult<bool> {
        let checklevel = Param::optional(checklevel)?;
        let nblocks = Param::optional(nblocks)?;
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

    async fn invalidate_block(&self, blockhash: Param<String>) -> RpcResult<()> {
        self.set_validity(blockhash.get()?, false).await
    }

    async fn reconsider_block(&self, blockhash: Param<String>) -> RpcResult<()> {
        self.set_validity(blockhash.get()?, true).await
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
                    let msg = serde_json::value::to_raw_value(&NewTip {
                        hash: tip.hash,
                        height: tip.height,
                    })?;
                    if sink.send(msg).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// `getblock` of `hash` at verbosity `level` (0: hex, 1: txids, 2: decoded transactions), read
/// from `snap`; REST's block endpoints and the block-range export answer with it too.
pub(crate) fn block_answer(
    snap: &crate::snapshot::Snapshot,
    network: chaincore::Network,
    hash: &BlockHash,
    level: u64,
) -> RpcResult<GetBlock> {
    let Some(entry) = snap.index.entry(hash).copied() else {
        return Err(err(code::INVALID_ADDRESS_OR_KEY, "Block not found"));
    };
    let header = header_info(&snap.index, hash, &entry);
    let bytes = store::read::block_bytes(&snap.rtx, hash)
        .map_misc()?
        .ok_or_error(code::MISC_ERROR, "Block not available")?;
    if level == 0 {
        return Ok(GetBlock::Hex(hex::encode(bytes)));
    }
    let block: Block = deserialize(&bytes).map_misc()?;
    let tx = if level == 1 {
        BlockTransactions::Ids(block.compute_txids())
    } else {
        BlockTransactions::Full(block.txdata.iter().map(|t| tx_info(t, network)).collect())
    };
    Ok(GetBlock::Json(Box::new(BlockInfo {
        header,
        size: bytes.len(),
        strippedsize: bytes.len(),
        weight: bytes.len() * 4,
        tx,
    })))
}

/// `getblockheader`'s JSON for the indexed block `hash` (REST's headers endpoint too).
pub(crate) fn header_info(
    chain: &crate::chain::BlockIndex,
    hash: &BlockHash,
    e: &store::IndexEntry,
) -> BlockHeaderInfo {
    let active = chain.is_active(hash);
    BlockHeaderInfo {
        hash: *hash,
        confirmations: if active {
            i64::from(chain.tip_height() - e.height) + 1
        } else {
            -1
        },
        height: e.height,
        version: e.header.version,
        versionHex: format!("{:08x}", e.header.version),
        merkleroot: e.header.merkle_root.to_string(),
        time: e.header.time,
        mediantime: chain.median_time_past(hash),
        nonce: e.header.nonce,
        bits: format!("{:08x}", e.header.bits),
        target: Target::from_compact(e.header.bits).map(|t| t.to_string()),
        difficulty: difficulty(e.header.bits),
        chainwork: e.chainwork.to_string(),
        previousblockhash: (e.height > 0).then_some(e.header.prev_blockhash),
        nextblockhash: if active {
            chain.active_hash(e.height + 1)
        } else {
            None
        },
    }
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
) -> BlockStats {
    let mut spent = undo.iter();
    // Per non-coinbase transaction: (fee, size).
    let mut txs: Vec<(i64, usize)> = Vec::new();
    let mut ins = 0usize;
    let mut outs = 0usize;
    let mut total_out = 0i64;
    let mut unspendable = 0i64;
    for tx in &block.txdata {
        unspendable += tx
            .output
            .iter()
            .filter(|o| o.script_pubkey.op_return_data().is_some())
            .count() as i64;
        outs += tx.output.len();
        if tx.is_coinbase() {
            continue;
        }
        ins += tx.input.len();
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
    BlockStats {
        blockhash: block.block_hash(),
        height: entry.height,
        time: block.header.time,
        mediantime: median_time,
        txs: block.txdata.len(),
        ins,
        outs,
        subsidy: chaincore::pow::block_subsidy(entry.height).to_units(),
        totalfee: total_fee,
        total_out,
        total_size,
        total_weight: total_size * 4,
        avgfee: if n > 0 { total_fee / n } else { 0 },
        avgfeerate: if total_size > 0 {
            total_fee / total_size as i64
        } else {
            0
        },
        avgtxsize: if n > 0 { total_size as i64 / n } else { 0 },
        minfee: fees.iter().min().copied().unwrap_or(0),
        maxfee: fees.iter().max().copied().unwrap_or(0),
        medianfee: median(&fees),
        minfeerate: rates.iter().min().copied().unwrap_or(0),
        maxfeerate: rates.iter().max().copied().unwrap_or(0),
        mintxsize: sizes.iter().min().copied().unwrap_or(0),
        maxtxsize: sizes.iter().max().copied().unwrap_or(0),
        mediantxsize: median(&sizes_i),
        utxo_increase: outs as i64 - ins as i64,
        utxo_increase_actual: outs as i64 - ins as i64 - unspendable,
    }
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
