//! Raw transaction methods: send, test, look up and decode.

use chaincore::encode::serialize;
use chaincore::rpc::{code, RawTransactionsServer};
use chaincore::{Transaction, Txid};
use jsonrpsee::core::{async_trait, RpcResult};
use serde_json::{json, Value};

use super::{blocking, decode_hex, parse_hash, tx_json, verbosity, Rpc};
use crate::store::{self};

use super::error::{err, MapError, OkOrError, ToRpcError};

#[async_trait]
impl RawTransactionsServer for Rpc {
    async fn send_raw_transaction(
        &self,
        hexstring: String,
        _maxfeerate: Option<Value>,
    ) -> RpcResult<String> {
        let tx: Transaction = decode_hex(&hexstring, "TX")?;
        self.node
            .accept_transaction(tx, false)
            .await
            .map(|t| t.to_string())
            .map_err(|e| e.to_rpc_error())
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
                        .map_misc()?
                        .ok_or_else(|| {
                            err(
                                code::INVALID_ADDRESS_OR_KEY,
                                "No such mempool or blockchain transaction",
                            )
                        })?;
                    let block = store::read::block(&snap.rtx, &hash)
                        .map_misc()?
                        .ok_or_error(code::MISC_ERROR, "block missing")?;
                    let tx = block
                        .txdata
                        .get(pos as usize)
                        .cloned()
                        .ok_or_error(code::MISC_ERROR, "bad tx index")?;
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
}
