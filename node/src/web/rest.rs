//! Bitcoin Core's REST interface (`src/rest.cpp`), read-only: the same paths, formats
//! (`.json`, `.hex`, `.bin`) and text errors, answered with the same result types and
//! builders as the matching JSON-RPC methods, plus address and block-range endpoints.
//!
//! | path | answer |
//! |---|---|
//! | `chaininfo.json` | `getblockchaininfo` |
//! | `block/<hash>.<fmt>`, `block/notxdetails/<hash>.<fmt>` | `getblock` 2 / 1 (`.hex`, `.bin`: the block) |
//! | `headers/<count>/<hash>.<fmt>`, `headers/<hash>.<fmt>?count=N` | up to 2,000 headers from `hash` on the active chain |
//! | `blockhashbyheight/<height>.<fmt>` | `{"blockhash"}` |
//! | `tx/<txid>.<fmt>` | `getrawtransaction` verbose |
//! | `getutxos[/checkmempool]/<txid>-<n>/….json` | Core's `getutxos` (at most 15 outpoints) |
//! | `mempool/info.json`, `mempool/contents.json` | `getmempoolinfo`, `getrawmempool true` |
//! | `address/<address>/{balance,utxos,txids}.json` | `getaddressbalance`, `getaddressutxos`, `getaddresstxids` |
//! | `blocks/<from>/<to>.{json,jsonl,csv}` | the range, streamed ([`super::export`]) |

use chaincore::encode::{serialize, CompactSize, Encodable};
use chaincore::rpc::address::Addresses;
use chaincore::rpc::blockchain::{GetBlock, Verbosity};
use chaincore::rpc::mempool::RawMempool;
use chaincore::rpc::rawtx::GetRawTransaction;
use chaincore::rpc::rest::{BlockHashByHeight, GetUtxos, RestUtxo, MEMPOOL_HEIGHT};
use chaincore::rpc::{
    AddressIndexServer, BlockchainServer, MempoolServer, Param, RawTransactionsServer,
};
use chaincore::{BlockHash, OutPoint, Txid};
use jsonrpsee::types::ErrorObjectOwned;
use serde::Serialize;

use super::export::{self, Format};
use super::{Keep, Reply, RestError, Web};

/// Most headers one `headers` request returns (Core's `MAX_REST_HEADERS_RESULTS`).
pub const MAX_HEADERS: u32 = 2_000;
/// Most outpoints one `getutxos` request asks for (Core's `MAX_GETUTXOS_OUTPOINTS`).
pub const MAX_OUTPOINTS: usize = 15;

/// The output format a path ends in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Data {
    Json,
    Hex,
    Bin,
}

/// Splits `name.fmt` into `name` and its format; anything else is Core's 404.
fn data_format<'a>(path: &'a str, available: &[Data]) -> Result<(&'a str, Data), RestError> {
    let names = available
        .iter()
        .map(|d| match d {
            Data::Json => "json",
            Data::Hex => "hex",
            Data::Bin => "bin",
        })
        .collect::<Vec<_>>()
        .join(", ");
    let refuse = || RestError::not_found(format!("output format not found (available: {names})"));
    let (name, ext) = path.rsplit_once('.').ok_or_else(refuse)?;
    let data = match ext {
        "json" => Data::Json,
        "hex" => Data::Hex,
        "bin" => Data::Bin,
        _ => return Err(refuse()),
    };
    if !available.contains(&data) {
        return Err(refuse());
    }
    Ok((name, data))
}

const ALL: &[Data] = &[Data::Json, Data::Hex, Data::Bin];

fn json<T: Serialize>(value: &T) -> Result<Reply, RestError> {
    let mut body = serde_json::to_vec(value).map_err(|e| RestError::internal(e.to_string()))?;
    body.push(b'\n');
    Ok(Reply::Full("application/json", body))
}

fn hex_reply(bytes: &[u8]) -> Reply {
    Reply::Full(
        "text/plain",
        format!("{}\n", hex::encode(bytes)).into_bytes(),
    )
}

fn bin_reply(bytes: Vec<u8>) -> Reply {
    Reply::Full("application/octet-stream", bytes)
}

/// An RPC builder's error as HTTP: unknown things are 404, bad parameters 400, the rest 500.
fn from_rpc(e: ErrorObjectOwned) -> RestError {
    use chaincore::rpc::code;
    let message = e.message().to_string();
    match e.code() {
        code::INVALID_ADDRESS_OR_KEY => RestError::not_found(message),
        code::INVALID_PARAMETER | code::TYPE_ERROR | code::DESERIALIZATION_ERROR => {
            RestError::bad_request(message)
        }
        _ => RestError::internal(message),
    }
}

fn parse_hash<T: std::str::FromStr>(s: &str) -> Result<T, RestError> {
    s.parse()
        .map_err(|_| RestError::bad_request(format!("Invalid hash: {s}")))
}

/// `key`'s value in a query string (`a=1&b=2`).
fn query_value<'a>(query: &'a str, key: &str) -> Option<&'a str> {
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
}

/// Answers `/rest/<route>?<query>`.
pub async fn route(web: &Web, route: &str, query: &str, keep: Keep) -> Result<Reply, RestError> {
    let parts: Vec<&str> = route.split('/').collect();
    match parts.as_slice() {
        ["chaininfo.json"] => json(&web.rpc.get_blockchain_info().await.map_err(from_rpc)?),
        ["block", "notxdetails", name] => block(web, name, 1).await,
        ["block", name] => block(web, name, 2).await,
        ["headers", count, name] => headers(web, name, count).await,
        ["headers", name] => {
            let count = query_value(query, "count").unwrap_or("5");
            headers(web, name, count).await
        }
        ["blockhashbyheight", name] => block_hash_by_height(web, name).await,
        ["tx", name] => tx(web, name).await,
        ["getutxos", rest @ ..] => utxos(web, rest).await,
        ["mempool", "info.json"] => json(&web.rpc.get_mempool_info().await.map_err(from_rpc)?),
        ["mempool", "contents.json"] => {
            let verbose = match query_value(query, "verbose") {
                None | Some("true") => true,
                Some("false") => false,
                Some(v) => {
                    return Err(RestError::bad_request(format!(
                        "The \"verbose\" query parameter must be either \"true\" or \"false\" (not {v})"
                    )))
                }
            };
            let pool: RawMempool = web
                .rpc
                .get_raw_mempool(Some(Param::from(verbose)))
                .await
                .map_err(from_rpc)?;
            json(&pool)
        }
        ["address", address, what] => address_info(web, address, what).await,
        ["blocks", from, name] => blocks(web, from, name, keep).await,
        _ => Err(RestError::not_found(format!(
            "unknown REST path /rest/{route} (see docs/REST.md)"
        ))),
    }
}

async fn block(web: &Web, name: &str, level: u64) -> Result<Reply, RestError> {
    let (hash, data) = data_format(name, ALL)?;
    let hash: BlockHash = parse_hash(hash)?;
    let level = if data == Data::Json { level } else { 0 };
    let node = web.node.clone();
    let answer = tokio::task::spawn_blocking(move || {
        crate::rpc::block_answer(&node.snapshot(), node.network, &hash, level)
    })
    .await
    .map_err(|e| RestError::internal(e.to_string()))?
    .map_err(|e| match e.code() {
        chaincore::rpc::code::INVALID_ADDRESS_OR_KEY => {
            RestError::not_found(format!("{hash} not found"))
        }
        _ => from_rpc(e),
    })?;
    match (answer, data) {
        (GetBlock::Hex(h), Data::Hex) => {
            Ok(Reply::Full("text/plain", format!("{h}\n").into_bytes()))
        }
        (GetBlock::Hex(h), _) => Ok(bin_reply(
            hex::decode(h).map_err(|e| RestError::internal(e.to_string()))?,
        )),
        (info, _) => json(&info),
    }
}

async fn headers(web: &Web, name: &str, count: &str) -> Result<Reply, RestError> {
    let (hash, data) = data_format(name, ALL)?;
    let count = count
        .parse::<u32>()
        .ok()
        .filter(|c| (1..=MAX_HEADERS).contains(c))
        .ok_or_else(|| {
            RestError::bad_request(format!(
                "Header count is invalid or out of acceptable range (1-{MAX_HEADERS}): {count}"
            ))
        })?;
    let hash: BlockHash = parse_hash(hash)?;
    let snap = web.node.snapshot();
    let chain = &snap.index;
    // As Core: from `hash` forward on the active chain; nothing if it is unknown or off it.
    let mut hashes = Vec::new();
    if let Some(start) = chain.entry(&hash).filter(|_| chain.is_active(&hash)) {
        let end = start
            .height
            .saturating_add(count - 1)
            .min(chain.tip_height());
        hashes.extend((start.height..=end).filter_map(|h| chain.active_hash(h)));
    }
    let entries = hashes.iter().filter_map(|h| chain.entry(h).map(|e| (h, e)));
    match data {
        Data::Json => json(
            &entries
                .map(|(h, e)| crate::rpc::header_info(chain, h, e))
                .collect::<Vec<_>>(),
        ),
        _ => {
            let bytes: Vec<u8> = entries.flat_map(|(_, e)| e.header.to_bytes()).collect();
            Ok(if data == Data::Hex {
                hex_reply(&bytes)
            } else {
                bin_reply(bytes)
            })
        }
    }
}

async fn block_hash_by_height(web: &Web, name: &str) -> Result<Reply, RestError> {
    let (height, data) = data_format(name, ALL)?;
    let h: i64 = height
        .parse()
        .ok()
        .filter(|h| *h >= 0)
        .ok_or_else(|| RestError::bad_request(format!("Invalid height: {height}")))?;
    let blockhash = web
        .rpc
        .get_block_hash(Param::from(h))
        .await
        .map_err(|e| RestError::not_found(e.message().to_string()))?;
    match data {
        Data::Json => json(&BlockHashByHeight { blockhash }),
        Data::Hex => Ok(Reply::Full(
            "text/plain",
            format!("{blockhash}\n").into_bytes(),
        )),
        Data::Bin => Ok(bin_reply(blockhash.to_byte_array().to_vec())),
    }
}

async fn tx(web: &Web, name: &str) -> Result<Reply, RestError> {
    let (txid, data) = data_format(name, ALL)?;
    let id: Txid = parse_hash(txid)?;
    let verbose = Verbosity::Bool(data == Data::Json);
    let answer = web
        .rpc
        .get_raw_transaction(
            Param::from(id.to_string()),
            Some(Param::from(verbose)),
            None,
        )
        .await
        .map_err(|e| match e.code() {
            chaincore::rpc::code::INVALID_ADDRESS_OR_KEY => {
                RestError::not_found(format!("{id} not found"))
            }
            _ => from_rpc(e),
        })?;
    match (answer, data) {
        (GetRawTransaction::Hex(h), Data::Hex) => {
            Ok(Reply::Full("text/plain", format!("{h}\n").into_bytes()))
        }
        (GetRawTransaction::Hex(h), _) => Ok(bin_reply(
            hex::decode(h).map_err(|e| RestError::internal(e.to_string()))?,
        )),
        (info, _) => json(&info),
    }
}

/// `getutxos[/checkmempool]/<txid>-<n>/…<fmt>`.
async fn utxos(web: &Web, parts: &[&str]) -> Result<Reply, RestError> {
    let Some((last, _)) = parts.split_last() else {
        return Err(RestError::bad_request("Error: empty request"));
    };
    let (last_name, data) = data_format(last, ALL)?;
    let mut names: Vec<&str> = parts[..parts.len() - 1].to_vec();
    names.push(last_name);
    let check_mempool = names.first() == Some(&"checkmempool");
    if check_mempool {
        names.remove(0);
    }
    names.retain(|n| !n.is_empty());
    if names.is_empty() {
        return Err(RestError::bad_request("Error: empty request"));
    }
    if names.len() > MAX_OUTPOINTS {
        return Err(RestError::bad_request(format!(
            "Error: max outpoints exceeded (max: {MAX_OUTPOINTS}, tried: {})",
            names.len()
        )));
    }
    let outpoints = names
        .iter()
        .map(|n| {
            let (txid, vout) = n.split_once('-')?;
            Some(OutPoint {
                txid: txid.parse().ok()?,
                vout: vout.parse().ok()?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| RestError::bad_request("Parse error"))?;
    let node = web.node.clone();
    let (answer, coins) = tokio::task::spawn_blocking(move || {
        let snap = node.snapshot();
        let tip = snap.index.tip_height();
        let mut bitmap = String::new();
        let mut utxos = Vec::new();
        for op in &outpoints {
            let coin = if check_mempool && snap.mempool.spender(op).is_some() {
                None
            } else {
                match snap
                    .chain_coin(op)
                    .map_err(|e| RestError::internal(e.to_string()))?
                {
                    Some(c) => Some((c.height, c.output)),
                    None if check_mempool => snap
                        .mempool
                        .coin(op, tip + 1)
                        .map(|c| (MEMPOOL_HEIGHT, c.output)),
                    None => None,
                }
            };
            bitmap.push(if coin.is_some() { '1' } else { '0' });
            if let Some((height, output)) = coin {
                utxos.push((height, output));
            }
        }
        let answer = GetUtxos {
            chainHeight: tip,
            chaintipHash: snap.index.tip_hash(),
            bitmap,
            utxos: utxos
                .iter()
                .map(|(height, o)| RestUtxo {
                    height: *height,
                    value: o.value,
                    scriptPubKey: crate::rpc::script_info(&o.script_pubkey, node.network),
                })
                .collect(),
        };
        Ok::<_, RestError>((answer, utxos))
    })
    .await
    .map_err(|e| RestError::internal(e.to_string()))??;
    match data {
        Data::Json => json(&answer),
        _ => {
            let bytes = utxos_bytes(&answer, &coins)?;
            Ok(if data == Data::Hex {
                hex_reply(&bytes)
            } else {
                bin_reply(bytes)
            })
        }
    }
}

/// Core's binary `getutxos` answer: tip height (u32), tip hash, the bitmap as a byte vector
/// (bit i of byte i/8 set if outpoint i is unspent), then the `coins` as (u32 0, u32 height,
/// output).
fn utxos_bytes(answer: &GetUtxos, coins: &[(u32, chaincore::TxOut)]) -> Result<Vec<u8>, RestError> {
    let fail = |e: std::io::Error| RestError::internal(e.to_string());
    let mut out = Vec::new();
    answer
        .chainHeight
        .consensus_encode(&mut out)
        .map_err(fail)?;
    answer
        .chaintipHash
        .consensus_encode(&mut out)
        .map_err(fail)?;
    let mut bits = vec![0u8; answer.bitmap.len().div_ceil(8)];
    for (i, c) in answer.bitmap.chars().enumerate() {
        if c == '1' {
            bits[i / 8] |= 1 << (i % 8);
        }
    }
    CompactSize(bits.len() as u64)
        .consensus_encode(&mut out)
        .map_err(fail)?;
    out.extend(bits);
    CompactSize(coins.len() as u64)
        .consensus_encode(&mut out)
        .map_err(fail)?;
    for (height, output) in coins {
        0u32.consensus_encode(&mut out).map_err(fail)?;
        height.consensus_encode(&mut out).map_err(fail)?;
        out.extend(serialize(output));
    }
    Ok(out)
}

async fn address_info(web: &Web, address: &str, what: &str) -> Result<Reply, RestError> {
    let param = || Param::from(Addresses::One(address.to_string()));
    let bad_address = |e: ErrorObjectOwned| RestError::bad_request(e.message().to_string());
    match what {
        "balance.json" => json(
            &web.rpc
                .get_address_balance(param())
                .await
                .map_err(bad_address)?,
        ),
        "utxos.json" => json(
            &web.rpc
                .get_address_utxos(param())
                .await
                .map_err(bad_address)?,
        ),
        "txids.json" => json(
            &web.rpc
                .get_address_txids(param())
                .await
                .map_err(bad_address)?,
        ),
        _ => Err(RestError::not_found(
            "address endpoints: balance.json, utxos.json, txids.json",
        )),
    }
}

async fn blocks(web: &Web, from: &str, name: &str, keep: Keep) -> Result<Reply, RestError> {
    let (to, format) = name
        .rsplit_once('.')
        .and_then(|(to, ext)| Some((to, Format::from_extension(ext)?)))
        .ok_or_else(|| {
            RestError::not_found("output format not found (available: json, jsonl, csv)")
        })?;
    let parse = |s: &str| {
        s.parse::<u32>()
            .map_err(|_| RestError::bad_request(format!("Invalid height: {s}")))
    };
    let (from, to) = (parse(from)?, parse(to)?);
    let snap = web.node.snapshot();
    export::check_range(&snap, from, to).map_err(RestError::bad_request)?;
    let network = web.node.network;
    let (mut writer, chunks) = super::ChunkWriter::new();
    tokio::task::spawn_blocking(move || {
        let _keep = keep;
        if let Err(e) = export::write_range(&snap, network, from, to, format, &mut writer) {
            tracing::debug!("block export stopped: {e}");
        }
    });
    Ok(Reply::Stream(format.content_type(), chunks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_queries_parse_as_core_does() {
        let (name, data) = data_format("00ab.bin", ALL).unwrap();
        assert_eq!((name, data), ("00ab", Data::Bin));
        assert_eq!(data_format("a.b.json", ALL).unwrap(), ("a.b", Data::Json));
        for bad in ["00ab", "00ab.xml", "00ab."] {
            let e = data_format(bad, ALL).unwrap_err();
            assert_eq!(e.status, http::StatusCode::NOT_FOUND, "{bad}");
            assert!(e.message.contains("available: json, hex, bin"));
        }
        assert_eq!(
            query_value("count=7&verbose=false", "verbose"),
            Some("false")
        );
        assert_eq!(query_value("count", "count"), None);
        assert_eq!(query_value("", "count"), None);
        let e = parse_hash::<BlockHash>("zz").unwrap_err();
        assert_eq!(e.status, http::StatusCode::BAD_REQUEST);
    }
}
