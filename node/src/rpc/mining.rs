//! Mining methods: `getblocktemplate` (with long poll and a cached answer), `submitblock`, mining
//! statistics and in-process mining.

use std::sync::Arc;
use std::time::Duration;

use chaincore::encode::serialize;
use chaincore::pow::{difficulty, Target};
use chaincore::rpc::mining::{BlockTemplate, MiningInfo, TemplateRequest, TemplateTransaction};
use chaincore::rpc::{code, MiningServer, Param};
use chaincore::validation;
use chaincore::{Address, Block, BlockHash, Txid};
use jsonrpsee::core::{async_trait, RpcResult};

use super::{blocking, decode_hex, Rpc};
use crate::chain::{Accepted, ChainError};
use crate::node::Node;

use super::error::{err, ToRpcError};

#[async_trait]
impl MiningServer for Rpc {
    async fn get_block_template(
        &self,
        request: Option<Param<TemplateRequest>>,
    ) -> RpcResult<BlockTemplate> {
        let request = Param::optional(request)?.unwrap_or_default();
        if let Some(id) = request.longpollid {
            self.wait_for_change(&id).await;
        }
        let node = self.node.clone();
        let cache = self.template_cache.clone();
        blocking(move || {
            let tip = node.tip.borrow().hash;
            let seq = *node.mempool_seq.borrow();
            let lock = || cache.lock().unwrap_or_else(|p| p.into_inner());
            let hit = match &*lock() {
                Some(c) if c.tip == tip && c.mempool_seq == seq => Some(c.template.clone()),
                _ => None,
            };
            // Built without the cache's lock: building takes milliseconds on a full pool.
            let mut template = match hit {
                Some(template) => template,
                None => {
                    let template = block_template(&node)?;
                    *lock() = Some(CachedTemplate {
                        tip,
                        mempool_seq: seq,
                        template: template.clone(),
                    });
                    template
                }
            };
            // Time moves on even when nothing else does (miners without extranonce need it).
            template.curtime = crate::chain::unix_now().max(u64::from(template.mintime));
            Ok(template)
        })
        .await
    }

    async fn submit_block(
        &self,
        hexdata: Param<String>,
        dummy: Option<Param<String>>,
    ) -> RpcResult<Option<String>> {
        Param::optional(dummy)?;
        let block: Block = decode_hex(&hexdata.get()?, "Block")?;
        if block.txdata.first().is_none_or(|t| !t.is_coinbase()) {
            return Err(err(
                code::DESERIALIZATION_ERROR,
                "Block does not start with a coinbase",
            ));
        }
        // Relayed to high-bandwidth peers before it is validated, if it extends our tip and
        // its transactions match its merkle root; those txids are not hashed again.
        let block = Arc::new(block);
        let txids = validation::txids_matching_merkle_root(&block);
        if let Some(txids) = &txids {
            if let Err(e) = self.p2p.relay_submitted(&block, txids).await {
                tracing::debug!("submitted block not relayed before validation: {e}");
            }
        }
        let node = self.node.clone();
        blocking(move || {
            let submitted = match txids {
                Some(txids) => node.submit_block_with_txids(block, txids),
                None => node.submit_block(block),
            };
            Ok(match submitted {
                Ok(Accepted::BestChain) => None,
                Ok(Accepted::SideChain) => Some("inconclusive".to_string()),
                Err(ChainError::Duplicate) => Some("duplicate".to_string()),
                Err(ChainError::DuplicateInvalid) => Some("duplicate-invalid".to_string()),
                Err(ChainError::Rule(r)) => Some(r.to_string()),
                Err(ChainError::BlockNotFound(_)) => Some("rejected".to_string()),
                // The node shuts down on these.
                Err(e @ (ChainError::Store(_) | ChainError::Stopping)) => {
                    return Err(e.to_rpc_error());
                }
            })
        })
        .await
    }

    async fn get_mining_info(&self) -> RpcResult<MiningInfo> {
        let snap = self.node.snapshot();
        let tip = snap.index.tip();
        Ok(MiningInfo {
            blocks: tip.height,
            bits: format!("{:08x}", tip.header.bits),
            difficulty: difficulty(tip.header.bits),
            target: Target::from_compact(tip.header.bits).map(|t| t.to_string()),
            networkhashps: network_hash_ps(&snap.index, 120),
            pooledtx: snap.mempool.len(),
            chain: self.node.network.to_string(),
            warnings: Vec::new(),
        })
    }

    async fn get_network_hash_ps(
        &self,
        nblocks: Option<Param<i64>>,
        height: Option<Param<i64>>,
    ) -> RpcResult<f64> {
        let n = Param::optional(nblocks)?.unwrap_or(120);
        Param::optional(height)?;
        let snap = self.node.snapshot();
        Ok(network_hash_ps(
            &snap.index,
            if n <= 0 { 120 } else { n as u32 },
        ))
    }

    async fn generate_to_address(
        &self,
        nblocks: Param<u32>,
        address: Param<String>,
        maxtries: Option<Param<u64>>,
    ) -> RpcResult<Vec<BlockHash>> {
        let nblocks = nblocks.get()?;
        let address = address.get()?;
        Param::optional(maxtries)?;
        let address = Address::parse(&address, self.node.network).map_err(|e| {
            err(
                code::INVALID_ADDRESS_OR_KEY,
                format!("Error: Invalid address: {e}"),
            )
        })?;
        let node = self.node.clone();
        blocking(move || {
            node.generate_blocks(nblocks, &address.script_pubkey())
                .map_err(|e| e.to_rpc_error())
        })
        .await
    }
}

/// How long a long poll waits for mempool changes to settle before answering.
const LONGPOLL_MEMPOOL_DELAY: Duration = Duration::from_secs(1);

/// A long poll answers at the latest after this, before HTTP idle timeouts.
const LONGPOLL_MAX_WAIT: Duration = Duration::from_secs(60);

/// A block template answer and what it was built from.
pub(super) struct CachedTemplate {
    tip: BlockHash,
    mempool_seq: u64,
    template: BlockTemplate,
}

fn longpoll_id(tip: crate::node::Tip, mempool_seq: u64) -> String {
    format!("{}{}", tip.hash, mempool_seq)
}

fn block_template(node: &Node) -> RpcResult<BlockTemplate> {
    let t = node.template();
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
    let transactions = t
        .transactions
        .iter()
        .map(|e| {
            let mut depends: Vec<usize> = e
                .parents
                .iter()
                .filter_map(|p| index.get(p).copied())
                .collect();
            depends.sort_unstable();
            TemplateTransaction {
                data: hex::encode(serialize(&e.tx)),
                txid: e.txid,
                hash: e.txid,
                depends,
                fee: e.fee.to_units(),
                sigops: e.tx.output.len(),
                weight: e.size * 4,
            }
        })
        .collect();
    let strings = |v: &[&str]| v.iter().map(|s| s.to_string()).collect();
    Ok(BlockTemplate {
        capabilities: strings(&["proposal"]),
        version: t.version,
        rules: Vec::new(),
        vbavailable: Default::default(),
        vbrequired: 0,
        previousblockhash: t.prev_blockhash,
        transactions,
        coinbaseaux: Default::default(),
        coinbasevalue: t.coinbase_value.to_units(),
        longpollid: longpoll_id(tip, seq),
        target: t.target().map(|x| x.to_string()),
        mintime: t.mintime,
        mutable: strings(&["time", "transactions", "prevblock"]),
        noncerange: "00000000ffffffff".to_string(),
        sigoplimit: 20000,
        sizelimit: chaincore::validation::MAX_BLOCK_SIZE,
        weightlimit: chaincore::validation::MAX_BLOCK_SIZE * 4,
        curtime: u64::from(t.curtime),
        bits: format!("{:08x}", t.bits),
        height: t.height,
    })
}

/// Core's `getnetworkhashps`: the work of the last `nblocks` active blocks over the time they
/// took (0 on a chain of one block).
pub(crate) fn network_hash_ps(chain: &crate::chain::BlockIndex, nblocks: u32) -> f64 {
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

impl Rpc {
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
