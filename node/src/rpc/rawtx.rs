//! Raw transaction methods: send, test, look up and decode.

use chaincore::encode::serialize;
use chaincore::rpc::blockchain::Verbosity;
use chaincore::rpc::rawtx::{GetRawTransaction, MempoolAcceptance, TransactionInfo};
use chaincore::rpc::{code, Param, RawTransactionsServer};
use chaincore::{Transaction, Txid};
use jsonrpsee::core::{async_trait, RpcResult};

use super::{blocking, decode_hex, parse_hash, tx_info, verbosity, Rpc};
use crate::store::indexes::IndexKind;
use crate::store::{self};

use super::error::{err, MapError, OkOrError, ToRpcError};

#[async_trait]
impl RawTransactionsServer for Rpc {
    async fn send_raw_transaction(
        &self,
        hexstring: Param<String>,
        maxfeerate: Option<Param<f64>>,
    ) -> RpcResult<Txid> {
        // Type-checked as Core does; the fee-rate cap itself is not enforced (docs/RPC.md).
        Param::optional(maxfeerate)?;
        let tx: Transaction = decode_hex(&hexstring.get()?, "TX")?;
        self.node
            .accept_transaction(tx, false)
            .await
            .map_err(|e| e.to_rpc_error())
    }

    async fn test_mempool_accept(
        &self,
        rawtxs: Param<Vec<String>>,
        maxfeerate: Option<Param<f64>>,
    ) -> RpcResult<Vec<MempoolAcceptance>> {
        Param::optional(maxfeerate)?;
        let mut out = Vec::new();
        for raw in rawtxs.get()? {
            let tx: Transaction = decode_hex(&raw, "TX")?;
            let txid = tx.compute_txid();
            let res = self.node.accept_transaction(tx, true).await;
            out.push(match res {
                Ok(_) => MempoolAcceptance {
                    txid,
                    allowed: true,
                    reject_reason: None,
                },
                Err(e) if e.is_fatal() => return Err(err(code::DATABASE_ERROR, e.to_string())),
                Err(e) => MempoolAcceptance {
                    txid,
                    allowed: false,
                    reject_reason: Some(e.to_string()),
                },
            });
        }
        Ok(out)
    }

    async fn get_raw_transaction(
        &self,
        txid: Param<String>,
        verbose: Option<Param<Verbosity>>,
        blockhash: Option<Param<String>>,
    ) -> RpcResult<GetRawTransaction> {
        let txid: Txid = parse_hash(&txid.get()?, "txid")?;
        let verbose = verbosity(verbose, 0)? > 0;
        Param::optional(blockhash)?;
        let node = self.node.clone();
        let index = node
            .index_state(IndexKind::Tx, super::address::INDEX_PATIENCE)
            .await;
        blocking(move || {
            let snap = node.snapshot();
            let pooled = snap.mempool.get(&txid).map(|e| e.tx.clone());
            let tip = snap.index.tip_height();
            let (tx, block) = match pooled {
                Some(tx) => (tx, None),
                None => {
                    // Bitcoin Core's messages for a tx index that is off or still building.
                    let Some(index) = index else {
                        return Err(err(
                            code::INVALID_ADDRESS_OR_KEY,
                            "No such mempool transaction. Use --txindex to enable blockchain \
                             transaction queries",
                        ));
                    };
                    let rtx = node.begin_read().map_misc()?;
                    let not_found = if index.at(&snap.index.tip_hash(), tip) {
                        "No such mempool or blockchain transaction"
                    } else {
                        "No such mempool or blockchain transaction. Blockchain transactions \
                         are still in the process of being indexed"
                    };
                    let (hash, pos) = store::read::tx_location(&rtx, &txid)
                        .map_misc()?
                        .ok_or_else(|| err(code::INVALID_ADDRESS_OR_KEY, not_found))?;
                    let block = store::read::block(&rtx, &hash)
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
                return Ok(GetRawTransaction::Hex(hex::encode(serialize(&tx))));
            }
            let mut out = tx_info(&tx, node.network);
            if let Some((hash, time)) = block {
                let height = snap.index.entry(&hash).map(|e| e.height).unwrap_or(0);
                out.blockhash = Some(hash);
                out.confirmations = Some(tip + 1 - height);
                out.time = Some(time);
                out.blocktime = Some(time);
            }
            Ok(GetRawTransaction::Json(Box::new(out)))
        })
        .await
    }

    async fn decode_raw_transaction(&self, hexstring: Param<String>) -> RpcResult<TransactionInfo> {
        let tx: Transaction = decode_hex(&hexstring.get()?, "TX")?;
        Ok(TransactionInfo {
            hex: None,
            ..tx_info(&tx, self.node.network)
        })
    }
}
