//! Mempool methods: contents, entries, limits, fee estimates, saving, and the new-transaction
//! subscription.

use chaincore::rpc::mempool::{
    FeeEstimate, MempoolEntry, MempoolFees, MempoolInfo, RawMempool, SavedMempool,
};
use chaincore::rpc::{code, MempoolServer, Param};
use chaincore::{Amount, Txid};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::PendingSubscriptionSink;

use super::{blocking, parse_hash, Rpc};

use super::error::{err, OkOrError};

#[async_trait]
impl MempoolServer for Rpc {
    async fn get_raw_mempool(&self, verbose: Option<Param<bool>>) -> RpcResult<RawMempool> {
        let verbose = Param::optional(verbose)?.unwrap_or(false);
        let snap = self.node.snapshot();
        Ok(if verbose {
            RawMempool::Verbose(
                snap.mempool
                    .entries()
                    .map(|e| (e.txid, mempool_entry(&snap.mempool, e)))
                    .collect(),
            )
        } else {
            RawMempool::Ids(snap.mempool.entries().map(|e| e.txid).collect())
        })
    }

    async fn estimate_smart_fee(
        &self,
        conf_target: Param<u32>,
        estimate_mode: Option<Param<String>>,
    ) -> RpcResult<FeeEstimate> {
        let conf_target = conf_target.get()?;
        let estimate_mode = Param::optional(estimate_mode)?;
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
                Some(r) => FeeEstimate {
                    feerate: Some(r * 1000.0 / 100_000_000.0),
                    errors: None,
                    blocks: conf_target,
                },
                None => FeeEstimate {
                    feerate: None,
                    errors: Some(vec!["Insufficient data or no feerate found".to_string()]),
                    blocks: 0,
                },
            })
        })
        .await
    }

    async fn save_mempool(&self) -> RpcResult<SavedMempool> {
        let node = self.node.clone();
        blocking(move || {
            let path = node
                .save_mempool()
                .map_err(|e| err(code::MISC_ERROR, e.to_string()))?;
            Ok(SavedMempool {
                filename: path.display().to_string(),
            })
        })
        .await
    }

    async fn get_mempool_info(&self) -> RpcResult<MempoolInfo> {
        let snap = self.node.snapshot();
        let m = &snap.mempool;
        let min_fee = Amount::from_units(crate::mempool::MIN_RELAY_FEE_RATE * 1000);
        Ok(MempoolInfo {
            loaded: true,
            size: m.len(),
            bytes: m.bytes(),
            usage: m.bytes(),
            maxmempool: m.max_bytes(),
            mempoolminfee: min_fee,
            minrelaytxfee: min_fee,
            orphans: self.node.orphan_count(),
        })
    }

    async fn get_mempool_entry(&self, txid: Param<String>) -> RpcResult<MempoolEntry> {
        let txid: Txid = parse_hash(&txid.get()?, "txid")?;
        let snap = self.node.snapshot();
        let e = snap
            .mempool
            .get(&txid)
            .ok_or_error(code::INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")?;
        Ok(mempool_entry(&snap.mempool, e))
    }

    async fn subscribe_new_tx(&self, pending: PendingSubscriptionSink) -> SubscriptionResult {
        let sink = pending.accept().await?;
        let mut txs = self.node.new_tx.subscribe();
        loop {
            tokio::select! {
                _ = sink.closed() => return Ok(()),
                next = txs.recv() => match next {
                    Ok(txid) => {
                        let msg = serde_json::value::to_raw_value(&txid)?;
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
}

fn mempool_entry(pool: &crate::mempool::Mempool, e: &crate::mempool::Entry) -> MempoolEntry {
    MempoolEntry {
        vsize: e.size,
        weight: e.size * 4,
        time: e.time,
        fees: MempoolFees { base: e.fee },
        depends: e.parents.iter().copied().collect(),
        spentby: pool.children_of(&e.txid).copied().collect(),
    }
}
