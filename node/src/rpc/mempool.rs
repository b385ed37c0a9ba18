//! Mempool methods: contents, entries, limits, fee estimates, saving, and the new-transaction
//! subscription.

use chaincore::rpc::{code, MempoolServer};
use chaincore::{Amount, Txid};
use jsonrpsee::core::{async_trait, RpcResult, SubscriptionResult};
use jsonrpsee::PendingSubscriptionSink;
use serde_json::{json, Value};

use super::{blocking, coins, parse_hash, Rpc};

use super::error::{err, OkOrError};

#[async_trait]
impl MempoolServer for Rpc {
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
            .ok_or_error(code::INVALID_ADDRESS_OR_KEY, "Transaction not in mempool")?;
        Ok(mempool_entry_json(&snap.mempool, e))
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
