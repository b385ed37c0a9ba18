//! The browser dashboard and explorer on the RPC port, under the REST access rules:
//! server-rendered HTML ([`html`], maud: every value escaped), SVG charts drawn here
//! ([`charts`]), one stylesheet and one small script embedded in the binary, no front-end
//! build and nothing fetched from elsewhere (a `Content-Security-Policy` of `'self'` says so
//! to the browser).
//!
//! | path | page |
//! |---|---|
//! | `/` | status (network, tip, sync, peers, mempool, difficulty, hash rate, uptime) and charts |
//! | `/part/status` | the live part of `/` alone, which the script fetches again on each event |
//! | `/blocks?from=<height>` | recent blocks, 25 a page |
//! | `/block/<hash or height>` | one block: header, size, fees, miner, transactions |
//! | `/tx/<txid>` | one transaction: inputs with their coins, outputs, OP_RETURN text |
//! | `/address/<address>` | balance, unspent outputs, history |
//! | `/search?q=` | a height, block hash, txid or address: a redirect to its page, else 404 |
//! | `/static/style.css`, `/static/live.js` | the embedded assets |
//!
//! Pages read the typed answers of the RPC builders that REST answers with
//! (`getblockchaininfo`, `getmempoolinfo`, `getpeerinfo`, `getblock`, `getblockstats`,
//! `getrawtransaction`, the address index), plus a few figures only a page needs (the coins a
//! transaction spent, read from the block's undo data or the mempool entry; the miner and size
//! of recent blocks; mempool samples kept by [`Samples`]).

mod charts;
mod html;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chaincore::encode::{deserialize, CompactSize, Decodable};
use chaincore::rpc::address::Addresses;
use chaincore::rpc::blockchain::{BlockInfo, BlockStats, GetBlock, HashOrHeight, Verbosity};
use chaincore::rpc::rawtx::{GetRawTransaction, TransactionInfo};
use chaincore::rpc::{
    AddressIndexServer, BlockchainServer, MempoolServer, NetServer, Param, RawTransactionsServer,
};
use chaincore::validation::Coin;
use chaincore::{Address, Block, BlockHash, Transaction, Txid};
use http_body_util::Full;
use jsonrpsee::server::HttpBody;

use super::Web;
use crate::node::Node;
use crate::snapshot::Snapshot;
use crate::store;

/// The stylesheet, served at `/static/style.css`.
const STYLE: &str = include_str!("pages/style.css");
/// The live-update script, served at `/static/live.js`.
const SCRIPT: &str = include_str!("pages/live.js");

/// Blocks the dashboard's charts cover unless `?n=` says otherwise.
pub const CHART_BLOCKS: u32 = 120;
/// Most blocks a chart covers.
pub const MAX_CHART_BLOCKS: u32 = 2_016;
/// Blocks on one page of the block list.
pub const BLOCKS_PER_PAGE: u32 = 25;
/// Transactions listed on a block page (the rest are counted).
pub const MAX_LISTED_TXS: usize = 500;
/// Entries of an address's history and unspent outputs listed (newest first).
pub const MAX_LISTED_ROWS: usize = 200;
/// How often the mempool is sampled for its chart.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// Mempool samples kept (an hour at [`SAMPLE_EVERY`]).
pub const MAX_SAMPLES: usize = 360;
/// Recent blocks whose miner and size are remembered, so a refresh reads no block again.
const MINER_CACHE: usize = 8_192;
/// Fee-rate bands of the mempool summary, lower bounds in units per byte.
pub const FEE_BANDS: [u64; 8] = [0, 1, 2, 5, 10, 20, 50, 100];

/// True for the paths of the pages (GET or HEAD without a WebSocket upgrade; `rpc::server`
/// checks those, as a JSON-RPC POST to `/` is not a page).
pub fn is_page_path(path: &str) -> bool {
    matches!(path, "/" | "/blocks" | "/search" | "/part/status")
        || ["/block/", "/tx/", "/address/", "/static/"]
            .iter()
            .any(|p| path.starts_with(p))
}

/// One mempool sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// Unix time of the sample.
    pub time: u64,
    /// Transactions in the pool.
    pub count: usize,
    /// Their serialized bytes.
    pub bytes: usize,
}

/// The last [`MAX_SAMPLES`] mempool samples, taken every [`SAMPLE_EVERY`] by
/// [`Samples::start`] for the mempool chart.
#[derive(Default)]
pub struct Samples(Mutex<VecDeque<Sample>>);

impl Samples {
    /// Samples `node`'s mempool now and every [`SAMPLE_EVERY`] until the node shuts down.
    pub fn start(node: Arc<Node>) -> Arc<Samples> {
        let samples = Arc::new(Samples::default());
        let keep = samples.clone();
        let mut shutdown = node.shutdown.subscribe();
        tokio::spawn(async move {
            loop {
                let snap = node.snapshot();
                keep.push(Sample {
                    time: crate::chain::unix_now(),
                    count: snap.mempool.len(),
                    bytes: snap.mempool.bytes(),
                });
                drop(snap);
                tokio::select! {
                    _ = tokio::time::sleep(SAMPLE_EVERY) => {}
                    _ = shutdown.changed() => return,
                }
            }
        });
        samples
    }

    fn push(&self, s: Sample) {
        let mut ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if ring.len() == MAX_SAMPLES {
            ring.pop_front();
        }
        ring.push_back(s);
    }

    fn all(&self) -> Vec<Sample> {
        let ring = self.0.lock().unwrap_or_else(|e| e.into_inner());
        ring.iter().copied().collect()
    }
}

/// What a page remembers of a recent block: its size and its miner (the coinbase's first
/// paid address).
#[derive(Debug, Clone)]
struct BlockFacts {
    size: usize,
    miner: Option<String>,
}

/// The miner and size of blocks already shown, by hash (cleared when it grows past
/// [`MINER_CACHE`]).
#[derive(Default)]
pub struct FactCache(Mutex<HashMap<BlockHash, BlockFacts>>);

/// A page's answer before it becomes HTTP.
enum Page {
    /// HTML with a status.
    Html(http::StatusCode, String),
    /// An embedded asset.
    Asset(&'static str, &'static str),
    /// A redirect (303) to a page.
    Redirect(String),
}

impl Page {
    fn error(status: http::StatusCode, title: &str, detail: &str) -> Page {
        Page::Html(status, html::error_page(status, title, detail))
    }

    fn not_found(detail: &str) -> Page {
        Page::error(http::StatusCode::NOT_FOUND, "Not found", detail)
    }

    fn internal(detail: impl std::fmt::Display) -> Page {
        Page::error(
            http::StatusCode::INTERNAL_SERVER_ERROR,
            "The node could not answer",
            &detail.to_string(),
        )
    }
}

/// Answers a GET of a page path (see [`is_page_path`]).
pub async fn serve(web: &Web, path: &str, query: &str) -> http::Response<HttpBody> {
    let page = match route(web, path, query).await {
        Ok(page) | Err(page) => page,
    };
    let mut r = match page {
        Page::Html(status, body) => {
            let mut r = http::Response::new(HttpBody::new(Full::new(body.into())));
            *r.status_mut() = status;
            set(
                &mut r,
                http::header::CONTENT_TYPE,
                "text/html; charset=utf-8",
            );
            set(&mut r, http::header::CACHE_CONTROL, "no-store");
            r
        }
        Page::Asset(kind, body) => {
            let mut r = http::Response::new(HttpBody::new(Full::new(body.into())));
            set(&mut r, http::header::CONTENT_TYPE, kind);
            set(&mut r, http::header::CACHE_CONTROL, "max-age=300");
            r
        }
        Page::Redirect(to) => {
            let mut r = http::Response::new(HttpBody::from(String::new()));
            *r.status_mut() = http::StatusCode::SEE_OTHER;
            if let Ok(v) = http::HeaderValue::from_str(&to) {
                r.headers_mut().insert(http::header::LOCATION, v);
            }
            r
        }
    };
    set(
        &mut r,
        http::header::CONTENT_SECURITY_POLICY,
        "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    );
    set(&mut r, http::header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    set(&mut r, http::header::REFERRER_POLICY, "no-referrer");
    r
}

fn set(r: &mut http::Response<HttpBody>, name: http::HeaderName, value: &'static str) {
    r.headers_mut()
        .insert(name, http::HeaderValue::from_static(value));
}

/// `key`'s value in a query string, `+` and `%XX` decoded (a search box sends them).
fn query_value(query: &str, key: &str) -> Option<String> {
    let raw = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)?
        .1;
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).ok()
}

async fn route(web: &Web, path: &str, query: &str) -> Result<Page, Page> {
    match path {
        "/" => Ok(Page::Html(
            http::StatusCode::OK,
            dashboard(web, query, true).await?,
        )),
        "/part/status" => Ok(Page::Html(
            http::StatusCode::OK,
            dashboard(web, query, false).await?,
        )),
        "/static/style.css" => Ok(Page::Asset("text/css; charset=utf-8", STYLE)),
        "/static/live.js" => Ok(Page::Asset("text/javascript; charset=utf-8", SCRIPT)),
        "/blocks" => blocks(web, query).await,
        "/search" => search(web, &query_value(query, "q").unwrap_or_default()).await,
        _ => {
            if let Some(id) = path.strip_prefix("/block/") {
                block(web, id).await
            } else if let Some(id) = path.strip_prefix("/tx/") {
                tx(web, id).await
            } else if let Some(a) = path.strip_prefix("/address/") {
                address(web, a).await
            } else {
                Err(Page::not_found(&format!("There is no page at {path}.")))
            }
        }
    }
}

/// Runs blocking snapshot work off the executor.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Page> + Send + 'static,
) -> Result<T, Page> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(Page::internal)?
}

/// Everything the status part of the dashboard shows.
pub(crate) struct Status {
    info: chaincore::rpc::blockchain::BlockchainInfo,
    mempool: chaincore::rpc::mempool::MempoolInfo,
    peers: Vec<chaincore::rpc::network::PeerInfo>,
    hash_rate: f64,
    uptime: Duration,
    now: u64,
    /// Per [`FEE_BANDS`] entry: transactions and bytes.
    bands: Vec<(u64, usize, usize)>,
    /// The last blocks, oldest first.
    recent: Vec<ChartBlock>,
    samples: Vec<Sample>,
}

/// One block as the charts see it.
#[derive(Debug, Clone)]
pub(crate) struct ChartBlock {
    height: u32,
    time: u32,
    difficulty: f64,
    chainwork: f64,
    txs: u64,
    size: usize,
    miner: Option<String>,
}

async fn dashboard(web: &Web, query: &str, whole: bool) -> Result<String, Page> {
    let n = query_value(query, "n")
        .and_then(|n| n.parse::<u32>().ok())
        .unwrap_or(CHART_BLOCKS)
        .clamp(2, MAX_CHART_BLOCKS);
    let info = web.rpc.get_blockchain_info().await.map_err(rpc_page)?;
    let mempool = web.rpc.get_mempool_info().await.map_err(rpc_page)?;
    // A node whose P2P has stopped still shows its chain.
    let peers = web.rpc.get_peer_info().await.unwrap_or_default();
    let node = web.node.clone();
    let facts = web.facts.clone();
    let (recent, bands, hash_rate) = blocking(move || {
        let snap = node.snapshot();
        let recent = chart_blocks(&snap, &facts, n)?;
        let hash_rate = crate::rpc::network_hash_ps(&snap.index, 120);
        Ok((recent, fee_bands(&snap), hash_rate))
    })
    .await?;
    let status = Status {
        info,
        mempool,
        peers,
        hash_rate,
        uptime: web.node.started.elapsed(),
        now: crate::chain::unix_now(),
        bands,
        recent,
        samples: web.samples.all(),
    };
    Ok(if whole {
        html::dashboard(&status, web.node.network)
    } else {
        html::live_part(&status).into_string()
    })
}

fn fee_bands(snap: &Snapshot) -> Vec<(u64, usize, usize)> {
    let mut bands: Vec<(u64, usize, usize)> = FEE_BANDS.iter().map(|b| (*b, 0, 0)).collect();
    for e in snap.mempool.entries() {
        let rate = e.fee.to_units().max(0) as u64 / e.size.max(1) as u64;
        let i = FEE_BANDS.iter().rposition(|b| rate >= *b).unwrap_or(0);
        bands[i].1 += 1;
        bands[i].2 += e.size;
    }
    bands
}

/// The miner (first address the coinbase pays) and size of an active block, from the cache
/// or the store.
fn facts(snap: &Snapshot, cache: &FactCache, hash: &BlockHash) -> Result<BlockFacts, Page> {
    if let Some(f) = cache.0.lock().unwrap_or_else(|e| e.into_inner()).get(hash) {
        return Ok(f.clone());
    }
    let bytes = store::read::block_bytes(&snap.rtx, hash)
        .map_err(Page::internal)?
        .ok_or_else(|| Page::internal(format!("block {hash} is not in the store")))?;
    // Only the coinbase is decoded: header (80 bytes), transaction count, first transaction.
    let miner = bytes.get(80..).and_then(|mut rest| {
        CompactSize::consensus_decode(&mut rest).ok()?;
        let coinbase = Transaction::consensus_decode(&mut rest).ok()?;
        coinbase
            .output
            .iter()
            .find_map(|o| Address::from_script(&o.script_pubkey, snap.index.network()))
            .map(|a| a.to_string())
    });
    let f = BlockFacts {
        size: bytes.len(),
        miner,
    };
    let mut map = cache.0.lock().unwrap_or_else(|e| e.into_inner());
    if map.len() >= MINER_CACHE {
        map.clear();
    }
    map.insert(*hash, f.clone());
    Ok(f)
}

/// The last `n` blocks of the active chain, oldest first, genesis left out (its time is the
/// network's launch, not a block interval, and it pays no address).
fn chart_blocks(snap: &Snapshot, cache: &FactCache, n: u32) -> Result<Vec<ChartBlock>, Page> {
    let tip = snap.index.tip_height();
    let from = (tip + 1).saturating_sub(n).max(1);
    let mut out = Vec::with_capacity(n as usize + 1);
    let mut prev_tx: Option<u64> = None;
    for height in from - 1..=tip {
        let Some(hash) = snap.index.active_hash(height) else {
            continue;
        };
        let Some(e) = snap.index.entry(&hash).copied() else {
            continue;
        };
        let txs = match prev_tx {
            Some(p) => e.chain_tx.saturating_sub(p),
            None => 0,
        };
        prev_tx = Some(e.chain_tx);
        if height < from {
            continue;
        }
        let f = facts(snap, cache, &hash)?;
        out.push(ChartBlock {
            height,
            time: e.header.time,
            difficulty: chaincore::pow::difficulty(e.header.bits),
            chainwork: e.chainwork.to_f64(),
            txs,
            size: f.size,
            miner: f.miner,
        });
    }
    Ok(out)
}

/// An RPC builder's refusal as a page.
fn rpc_page(e: jsonrpsee::types::ErrorObjectOwned) -> Page {
    use chaincore::rpc::code;
    match e.code() {
        code::INVALID_ADDRESS_OR_KEY => Page::not_found(e.message()),
        code::INVALID_PARAMETER | code::TYPE_ERROR | code::DESERIALIZATION_ERROR => {
            Page::error(http::StatusCode::BAD_REQUEST, "Bad request", e.message())
        }
        _ => Page::internal(e.message()),
    }
}

/// One row of the block list.
pub(crate) struct BlockRow {
    height: u32,
    hash: BlockHash,
    time: u32,
    txs: u64,
    size: usize,
    miner: Option<String>,
}

async fn blocks(web: &Web, query: &str) -> Result<Page, Page> {
    let node = web.node.clone();
    let facts = web.facts.clone();
    let from = query_value(query, "from").and_then(|f| f.parse::<u32>().ok());
    let (rows, tip) = blocking(move || {
        let snap = node.snapshot();
        let tip = snap.index.tip_height();
        let top = from.unwrap_or(tip).min(tip);
        let mut rows = Vec::new();
        for height in (top.saturating_sub(BLOCKS_PER_PAGE - 1)..=top).rev() {
            let Some(hash) = snap.index.active_hash(height) else {
                continue;
            };
            let Some(e) = snap.index.entry(&hash).copied() else {
                continue;
            };
            let before = match height
                .checked_sub(1)
                .and_then(|h| snap.index.active_hash(h))
            {
                Some(p) => snap.index.entry(&p).map_or(0, |p| p.chain_tx),
                None => 0,
            };
            let f = self::facts(&snap, &facts, &hash)?;
            rows.push(BlockRow {
                height,
                hash,
                time: e.header.time,
                txs: e.chain_tx - before,
                size: f.size,
                miner: f.miner,
            });
        }
        Ok((rows, tip))
    })
    .await?;
    Ok(Page::Html(
        http::StatusCode::OK,
        html::blocks(&rows, tip, crate::chain::unix_now()),
    ))
}

/// A block page's data.
pub(crate) struct BlockPage {
    info: BlockInfo,
    stats: Option<BlockStats>,
    miner: Option<String>,
    txs: Vec<TransactionInfo>,
    total_txs: usize,
}

async fn block(web: &Web, id: &str) -> Result<Page, Page> {
    let node = web.node.clone();
    let id = id.to_string();
    let hash = blocking(move || {
        let snap = node.snapshot();
        let hash = if let Ok(h) = id.parse::<u32>() {
            snap.index.active_hash(h)
        } else {
            id.parse::<BlockHash>()
                .ok()
                .filter(|h| snap.index.entry(h).is_some())
        };
        hash.ok_or_else(|| Page::not_found(&format!("No block {id} on this node.")))
    })
    .await?;
    let node = web.node.clone();
    let network = node.network;
    let answer = blocking(move || {
        crate::rpc::block_answer(&node.snapshot(), network, &hash, 2).map_err(rpc_page)
    })
    .await?;
    let GetBlock::Json(info) = answer else {
        return Err(Page::internal("getblock 2 answered without JSON"));
    };
    let mut info = *info;
    // Blocks off the active chain have no stats (getblockstats refuses them).
    let stats = web
        .rpc
        .get_block_stats(Param::from(HashOrHeight::Hash(hash.to_string())))
        .await
        .ok();
    let txs = match std::mem::replace(
        &mut info.tx,
        chaincore::rpc::blockchain::BlockTransactions::Ids(Vec::new()),
    ) {
        chaincore::rpc::blockchain::BlockTransactions::Full(t) => t,
        chaincore::rpc::blockchain::BlockTransactions::Ids(_) => Vec::new(),
    };
    let total_txs = txs.len();
    let miner = txs
        .first()
        .and_then(|c| c.vout.iter().find_map(|o| o.scriptPubKey.address.clone()));
    let page = BlockPage {
        info,
        stats,
        miner,
        txs: txs.into_iter().take(MAX_LISTED_TXS).collect(),
        total_txs,
    };
    Ok(Page::Html(http::StatusCode::OK, html::block(&page)))
}

/// A transaction page's data.
pub(crate) struct TxPage {
    info: TransactionInfo,
    /// The coins its inputs spent, in order (none for a coinbase; none if unknown).
    spent: Option<Vec<Coin>>,
    height: Option<u32>,
    network: chaincore::Network,
}

async fn tx(web: &Web, id: &str) -> Result<Page, Page> {
    let txid: Txid = id
        .parse()
        .map_err(|_| Page::not_found(&format!("{id} is not a transaction id (64 hex digits).")))?;
    let answer = web
        .rpc
        .get_raw_transaction(
            Param::from(txid.to_string()),
            Some(Param::from(Verbosity::Bool(true))),
            None,
        )
        .await
        .map_err(rpc_page)?;
    let GetRawTransaction::Json(info) = answer else {
        return Err(Page::internal("getrawtransaction answered without JSON"));
    };
    let node = web.node.clone();
    let (spent, height) = blocking(move || spent_coins(&node.snapshot(), &txid)).await?;
    let page = TxPage {
        info: *info,
        spent,
        height,
        network: web.node.network,
    };
    Ok(Page::Html(http::StatusCode::OK, html::tx(&page)))
}

/// The coins `txid` spent, in input order, and the height of its block: from the mempool
/// entry, or from its block's undo data (the coins every non-coinbase transaction of the
/// block spent, in order).
fn spent_coins(snap: &Snapshot, txid: &Txid) -> Result<(Option<Vec<Coin>>, Option<u32>), Page> {
    if let Some(e) = snap.mempool.get(txid) {
        return Ok((Some(e.spent.clone()), None));
    }
    let Some((hash, pos)) = store::read::tx_location(&snap.rtx, txid).map_err(Page::internal)?
    else {
        return Ok((None, None));
    };
    let height = snap.index.entry(&hash).map(|e| e.height);
    if pos == 0 {
        return Ok((None, height));
    }
    let Some(bytes) = store::read::block_bytes(&snap.rtx, &hash).map_err(Page::internal)? else {
        return Ok((None, height));
    };
    let block: Block = deserialize(&bytes).map_err(Page::internal)?;
    let Some(undo) = store::read::undo(&snap.rtx, &hash).map_err(Page::internal)? else {
        return Ok((None, height));
    };
    let pos = pos as usize;
    let before: usize = block
        .txdata
        .iter()
        .take(pos)
        .skip(1)
        .map(|t| t.input.len())
        .sum();
    let count = block.txdata.get(pos).map_or(0, |t| t.input.len());
    Ok((
        undo.get(before..before + count).map(<[Coin]>::to_vec),
        height,
    ))
}

/// An address page's data.
pub(crate) struct AddressPage {
    address: String,
    balance: chaincore::rpc::address::AddressBalance,
    utxos: Vec<chaincore::rpc::address::AddressUtxo>,
    /// Newest first.
    history: Vec<Txid>,
    total_utxos: usize,
    total_history: usize,
}

async fn address(web: &Web, a: &str) -> Result<Page, Page> {
    if Address::parse(a, web.node.network).is_err() {
        return Err(Page::not_found(&format!(
            "{a} is not a {} address.",
            web.node.network
        )));
    }
    let param = || Param::from(Addresses::One(a.to_string()));
    let balance = web
        .rpc
        .get_address_balance(param())
        .await
        .map_err(rpc_page)?;
    let mut utxos = (web.rpc.get_address_utxos(param()).await)
        .map_err(rpc_page)?
        .into_utxos();
    let mut history = (web.rpc.get_address_txids(param()).await)
        .map_err(rpc_page)?
        .into_txids();
    let (total_utxos, total_history) = (utxos.len(), history.len());
    utxos.sort_by_key(|u| std::cmp::Reverse(u.height.unwrap_or(u32::MAX)));
    utxos.truncate(MAX_LISTED_ROWS);
    history.reverse();
    history.truncate(MAX_LISTED_ROWS);
    let page = AddressPage {
        address: a.to_string(),
        balance,
        utxos,
        history,
        total_utxos,
        total_history,
    };
    Ok(Page::Html(http::StatusCode::OK, html::address(&page)))
}

/// Where a search for `q` leads: a height, a block hash, a txid (pool or chain) or an
/// address.
async fn search(web: &Web, q: &str) -> Result<Page, Page> {
    let q = q.trim().to_string();
    if q.is_empty() {
        return Err(Page::not_found(
            "Type a height, a block hash, a transaction id or an address.",
        ));
    }
    let network = web.node.network;
    let node = web.node.clone();
    blocking(move || {
        let snap = node.snapshot();
        if let Ok(height) = q.parse::<u32>() {
            if snap.index.active_hash(height).is_some() {
                return Ok(Page::Redirect(format!("/block/{height}")));
            }
        }
        if let Ok(hash) = q.parse::<BlockHash>() {
            if snap.index.entry(&hash).is_some() {
                return Ok(Page::Redirect(format!("/block/{hash}")));
            }
        }
        if let Ok(txid) = q.parse::<Txid>() {
            let known = snap.mempool.contains(&txid)
                || store::read::tx_location(&snap.rtx, &txid)
                    .map_err(Page::internal)?
                    .is_some();
            if known {
                return Ok(Page::Redirect(format!("/tx/{txid}")));
            }
        }
        if let Ok(a) = Address::parse(&q, network) {
            return Ok(Page::Redirect(format!("/address/{a}")));
        }
        Err(Page::not_found(&format!(
            "Nothing on this node matches \u{201c}{q}\u{201d}: not a height of the active chain, a known block or transaction, nor a {network} address."
        )))
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_paths_and_queries() {
        for p in [
            "/",
            "/blocks",
            "/block/7",
            "/tx/ab",
            "/address/x",
            "/static/style.css",
        ] {
            assert!(is_page_path(p), "{p}");
        }
        for p in ["/rest/chaininfo.json", "/metrics", "/wallet/w", "/blocksx"] {
            assert!(!is_page_path(p), "{p}");
        }
        assert_eq!(query_value("q=a+b%21&n=3", "q").as_deref(), Some("a b!"));
        assert_eq!(query_value("n=3", "n").as_deref(), Some("3"));
        assert_eq!(query_value("q=%zz", "q"), None);
        assert_eq!(query_value("q=%4", "q"), None);
        assert_eq!(query_value("q=%ff", "q"), None, "not UTF-8");
        assert_eq!(query_value("", "q"), None);
    }

    #[test]
    fn samples_keep_the_last_ones() {
        let s = Samples::default();
        for i in 0..MAX_SAMPLES + 5 {
            s.push(Sample {
                time: i as u64,
                count: i,
                bytes: 0,
            });
        }
        let all = s.all();
        assert_eq!(all.len(), MAX_SAMPLES);
        assert_eq!(all[0].time, 5);
    }
}
