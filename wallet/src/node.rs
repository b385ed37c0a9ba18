//! The wallet's connection to `chaincore-node`: the shared `chaincore::rpc` client traits over
//! HTTP, with errors that say what to fix.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{bail, Context};
use chaincore::encode::{deserialize, serialize};
use chaincore::rpc::{
    http_client, is_auth_failure, AddressIndexClient, MempoolClient, RawTransactionsClient,
};
use chaincore::{Amount, OutPoint, Transaction, Txid};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::BatchRequestBuilder;
use jsonrpsee::rpc_params;
use jsonrpsee_http_client::HttpClient;
use serde_json::{json, Value};

/// Most calls the wallet puts in one JSON-RPC batch (the node's limit is 100).
pub const MAX_BATCH: usize = 100;

/// A connected node.
pub struct NodeClient {
    client: HttpClient,
    url: String,
}

/// Balance of the wallet's addresses, in units.
pub struct Balance {
    /// Confirmed, including immature coinbase outputs.
    pub balance: i64,
    /// Confirmed coinbase outputs not yet spendable.
    pub immature: i64,
    /// Net effect of mempool transactions.
    pub unconfirmed: i64,
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

/// One transaction's effect on the wallet.
pub struct HistoryRow {
    /// Transaction id.
    pub txid: Txid,
    /// Received minus spent, units.
    pub delta: i64,
    /// Confirmations (0 in the mempool).
    pub confirmations: u64,
}

impl HistoryRow {
    /// The change in coins with a sign.
    pub fn delta_string(&self) -> String {
        let sign = if self.delta >= 0 { "+" } else { "-" };
        format!("{sign}{}", Amount::from_units(self.delta.abs()))
    }
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

    /// Balance of `addresses`.
    pub async fn balance(&self, addresses: &[String]) -> anyhow::Result<Balance> {
        let v = self
            .client
            .get_address_balance(json!({"addresses": addresses}))
            .await
            .map_err(|e| self.explain(e))?;
        let field = |k: &str| {
            v[k].as_i64()
                .with_context(|| format!("node answer lacks {k}"))
        };
        Ok(Balance {
            balance: field("balance")?,
            immature: field("immature")?,
            unconfirmed: field("unconfirmed")?,
        })
    }

    /// Coins of `addresses`, confirmed then mempool.
    pub async fn utxos(&self, addresses: &[String]) -> anyhow::Result<Vec<Utxo>> {
        let v = self
            .client
            .get_address_utxos(json!({"addresses": addresses}))
            .await
            .map_err(|e| self.explain(e))?;
        let rows = v.as_array().context("node answer is not a list")?;
        rows.iter()
            .map(|u| {
                Ok(Utxo {
                    txid: u["txid"].as_str().context("txid")?.to_string(),
                    vout: u["outputIndex"].as_u64().context("outputIndex")? as u32,
                    value: u["satoshis"].as_i64().context("satoshis")?,
                    address: u["address"].as_str().context("address")?.to_string(),
                    confirmations: u["confirmations"].as_u64().unwrap_or(0),
                    coinbase: u["coinbase"].as_bool().unwrap_or(false),
                    spent_in_mempool: u["spentInMempool"].as_bool().unwrap_or(false),
                })
            })
            .collect()
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
                .batch_request::<Value>(batch)
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
                let txids = txids
                    .as_array()
                    .with_context(|| format!("getaddresstxids for {address}: not a list"))?;
                used.push(!txids.is_empty());
            }
        }
        Ok(used)
    }

    /// The node's `estimatesmartfee` for `target` blocks, in coins per 1,000 bytes; `None`
    /// when the node has no data yet.
    pub async fn fee_estimate(&self, target: u32) -> anyhow::Result<Option<f64>> {
        let v: Value = self
            .client
            .estimate_smart_fee(target, None)
            .await
            .map_err(|e| self.explain(e))?;
        Ok(v.get("feerate").and_then(Value::as_f64))
    }

    /// Broadcasts a signed transaction; returns its txid.
    pub async fn send_raw(&self, tx: &Transaction) -> anyhow::Result<String> {
        self.client
            .send_raw_transaction(hex::encode(serialize(tx)), None)
            .await
            .map_err(|e| self.explain(e))
    }

    async fn raw_tx(&self, txid: &Txid) -> anyhow::Result<(Transaction, u64)> {
        let v: Value = self
            .client
            .get_raw_transaction(txid.to_string(), Some(json!(true)), None)
            .await
            .map_err(|e| self.explain(e))?;
        let bytes = hex::decode(v["hex"].as_str().context("node answer lacks hex")?)?;
        let tx: Transaction =
            deserialize(&bytes).context("node sent an undecodable transaction")?;
        Ok((tx, v["confirmations"].as_u64().unwrap_or(0)))
    }

    /// Every transaction touching `addresses`, oldest first, with its net effect.
    pub async fn history(&self, addresses: &[String]) -> anyhow::Result<Vec<HistoryRow>> {
        let txids = self
            .client
            .get_address_txids(json!({"addresses": addresses}))
            .await
            .map_err(|e| self.explain(e))?;
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
        for id in txids.as_array().context("node answer is not a list")? {
            let txid: Txid = id.as_str().context("txid")?.parse()?;
            let (tx, confirmations) = self.raw_tx(&txid).await?;
            let mut delta: i64 = tx
                .output
                .iter()
                .filter(|o| ours(&o.script_pubkey))
                .map(|o| o.value.to_units())
                .sum();
            if !tx.is_coinbase() {
                for input in &tx.input {
                    let prev = &input.previous_output;
                    if let std::collections::hash_map::Entry::Vacant(slot) = cache.entry(prev.txid)
                    {
                        slot.insert(self.raw_tx(&prev.txid).await?.0);
                    }
                    if let Some(out) = cache
                        .get(&prev.txid)
                        .and_then(|p| p.output.get(prev.vout as usize))
                    {
                        if ours(&out.script_pubkey) {
                            delta -= out.value.to_units();
                        }
                    }
                }
            }
            cache.insert(txid, tx);
            rows.push(HistoryRow {
                txid,
                delta,
                confirmations,
            });
        }
        Ok(rows)
    }
}
