//! The wallet's connection to `chaincore-node`: the shared `chaincore::rpc` client traits over
//! HTTP, with errors that say what to fix.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use chaincore::encode::{deserialize, serialize};
use chaincore::rpc::address::Addresses;
use chaincore::rpc::blockchain::Verbosity;
use chaincore::rpc::rawtx::GetRawTransaction;
use chaincore::rpc::{
    http_client, is_auth_failure, AddressIndexClient, MempoolClient, RawTransactionsClient,
};
use chaincore::{OutPoint, Transaction, Txid};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::rpc_params;
use jsonrpsee_http_client::HttpClient;

/// `{"addresses": [...]}` for the address index methods.
fn addresses_param(addresses: &[String]) -> chaincore::rpc::Param<Addresses> {
    Addresses::Object {
        addresses: addresses.to_vec(),
        chain_info: false,
    }
    .into()
}

/// Most calls the wallet puts in one JSON-RPC batch (the node's limit is 100).
pub const MAX_BATCH: usize = 100;

/// A connected node.
pub struct NodeClient {
    client: HttpClient,
    url: String,
}

/// A coin as the node reports it.
pub struct Utxo {
    /// Transaction id.
    pub txid: String,
    /// Output index.
    pub vout: u32,
    /// Value in units.
    pub value: i64,
    /// Paying address.
    pub address: String,
    /// Confirmations (0 in the mempool).
    pub confirmations: u64,
    /// From a coinbase.
    pub coinbase: bool,
    /// Already spent by a mempool transaction.
    pub spent_in_mempool: bool,
}

impl Utxo {
    /// The outpoint.
    pub fn outpoint(&self) -> OutPoint {
        OutPoint {
            txid: self.txid.parse().unwrap_or_default(),
            vout: self.vout,
        }
    }
}

/// A transaction as the node has it.
pub struct RawTx {
    /// The transaction.
    pub tx: Transaction,
    /// Confirmations (0 in the mempool).
    pub confirmations: u64,
    /// Its block's time, or when the node's mempool took it; Unix seconds.
    pub time: Option<u64>,
}

/// One transaction touching the wallet.
pub struct HistoryRow {
    /// Transaction id.
    pub txid: Txid,
    /// The transaction, its confirmations and time.
    pub raw: RawTx,
    /// The value of the wallet's coins it spends, units.
    pub spent: i64,
    /// The value of every coin it spends, units; `None` for a coinbase.
    pub input_total: Option<i64>,
}

impl NodeClient {
    /// A client for `url` using `user:password` credentials.
    pub fn new(url: &str, credentials: &str) -> anyhow::Result<NodeClient> {
        let client = http_client(url, credentials, Duration::from_secs(120))
            .map_err(|e| anyhow::anyhow!("{e} (check --rpc-url)"))?;
        Ok(NodeClient {
            client,
            url: url.to_string(),
        })
    }

    fn explain(&self, e: jsonrpsee::core::client::Error) -> anyhow::Error {
        use jsonrpsee::core::client::Error;
        match e {
            Error::Call(obj) => {
                anyhow::anyhow!("the node refused: {} (code {})", obj.message(), obj.code())
            }
            e if is_auth_failure(&e) => anyhow::anyhow!("the node at {} refused the RPC credentials: check --rpc-cookie, or --rpc-user and --rpc-password", self.url),
            Error::Transport(t) => anyhow::anyhow!("cannot reach the node at {}: {t} (is chaincore-node running? check --rpc-url)", self.url),
            Error::RequestTimeout => {
                anyhow::anyhow!("the node at {} did not answer in time", self.url)
            }
            other => anyhow::anyhow!("RPC to {} failed: {other}", self.url),
        }
    }

    /// Coins of `addresses`, confirmed then mempool.
    pub async fn utxos(&self, addresses: &[String]) -> anyhow::Result<Vec<Utxo>> {
        let rows = self
            .client
            .get_address_utxos(addresses_param(addresses))
            .await
            .map_err(|e| self.explain(e))?
            .into_utxos();
        Ok(rows
            .into_iter()
            .map(|u| Utxo {
                txid: u.txid.to_string(),
                vout: u.outputIndex,
                value: u.satoshis,
                address: u.address,
                confirmations: u64::from(u.confirmations),
                coinbase: u.coinbase,
                spent_in_mempool: u.spentInMempool,
            })
            .collect())
    }

    /// For each of `addresses`, whether the node's address index has any transaction paying or
    /// spending it (in the active chain or the mempool). Asks in JSON-RPC batches of at most
    /// [`MAX_BATCH`] `getaddresstxids` calls, one per address.
    pub async fn used(&self, addresses: &[String]) -> anyhow::Result<Vec<bool>> {
        let mut used = Vec::with_capacity(addresses.len());
        for chunk in addresses.chunks(MAX_BATCH) {
            let mut batch = BatchRequestBuilder::new();
            for a in chunk {
                batch.insert("getaddresstxids", rpc_params![a])?;
            }
            let answers = self
                .client
                .batch_request::<Vec<Txid>>(batch)
                .await
                .map_err(|e| self.explain(e))?;
            if answers.len() != chunk.len() {
                bail!(
                    "the node answered {} of {} getaddresstxids calls",
                    answers.len(),
                    chunk.len()
                );
            }
            for (answer, address) in answers.into_iter().zip(chunk) {
                let txids = answer.map_err(|e| {
                    anyhow::anyhow!(
                        "the node refused getaddresstxids for {address}: {} (code {})",
                        e.message(),
                        e.code()
                    )
                })?;
                used.push(!txids.is_empty());
            }
        }
        Ok(used)
    }

    /// The node's `estimatesmartfee` for `target` blocks, in coins per 1,000 bytes; `None`
    /// when the node has no data yet.
    pub async fn fee_estimate(&self, target: u32) -> anyhow::Result<Option<f64>> {
        let estimate = self
            .client
            .estimate_smart_fee(target.into(), None)
            .await
            .map_err(|e| self.explain(e))?;
        Ok(estimate.feerate)
    }

    /// Broadcasts a signed transaction; returns its txid.
    pub async fn send_raw(&self, tx: &Transaction) -> anyhow::Result<String> {
        self.client
            .send_raw_transaction(hex::encode(serialize(tx)).into(), None)
            .await
            .map(|txid| txid.to_string())
            .map_err(|e| self.explain(e))
    }

    /// A mempool or confirmed transaction.
    pub async fn raw_tx(&self, txid: &Txid) -> anyhow::Result<RawTx> {
        let answer = self
            .client
            .get_raw_transaction(
                txid.to_string().into(),
                Some(Verbosity::Bool(true).into()),
                None,
            )
            .await
            .map_err(|e| self.explain(e))?;
        let GetRawTransaction::Json(info) = answer else {
            bail!("the node answered getrawtransaction {txid} with hex, not JSON");
        };
        let hex = info.hex.context("node answer lacks hex")?;
        let tx: Transaction =
            deserialize(&hex::decode(hex)?).context("node sent an undecodable transaction")?;
        Ok(RawTx {
            tx,
            confirmations: u64::from(info.confirmations.unwrap_or(0)),
            time: info.time.map(u64::from),
        })
    }

    /// When the node's mempool took `txid` (Unix seconds), if it is there.
    async fn mempool_time(&self, txid: &Txid) -> Option<u64> {
        let entry = self
            .client
            .get_mempool_entry(txid.to_string().into())
            .await
            .ok()?;
        Some(entry.time)
    }

    /// Every transaction touching `addresses`, oldest first, with what it spends.
    pub async fn history(&self, addresses: &[String]) -> anyhow::Result<Vec<HistoryRow>> {
        let txids = self
            .client
            .get_address_txids(addresses_param(addresses))
            .await
            .map_err(|e| self.explain(e))?
            .into_txids();
        let network_addresses: Vec<chaincore::Script> = addresses
            .iter()
            .filter_map(|a| {
                let payload = chaincore::address::base58check_decode(a).ok()?;
                let hash: [u8; 20] = payload.get(1..)?.try_into().ok()?;
                Some(chaincore::Script::new_p2pkh(&hash))
            })
            .collect();
        let ours = |s: &chaincore::Script| network_addresses.contains(s);
        let mut cache: HashMap<Txid, Transaction> = HashMap::new();
        let mut rows = Vec::new();
        for txid in txids {
            let mut raw = self.raw_tx(&txid).await?;
            if raw.confirmations == 0 {
                raw.time = self.mempool_time(&txid).await;
            }
            let (mut spent, mut input_total) = (0i64, Some(0i64));
            if !raw.tx.is_coinbase() {
                for input in &raw.tx.input {
                    let prev = &input.previous_output;
                    if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(prev.txid)
                    {
                        slot.insert(self.raw_tx(&prev.txid).await?.tx);
                    }
                    match cache
                        .get(&prev.txid)
                        .and_then(|p| p.output.get(prev.vout as usize))
                    {
                        Some(out) => {
                            input_total = input_total.map(|t| t + out.value.to_units());
                            if ours(&out.script_pubkey) {
                                spent += out.value.to_units();
                            }
                        }
                        None => input_total = None,
                    }
                }
            } else {
                input_total = None;
            }
            cache.insert(txid, raw.tx.clone());
            rows.push(HistoryRow {
                txid,
                raw,
                spent,
                input_total,
            });
        }
        Ok(rows)
    }
}
