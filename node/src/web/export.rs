//! The block-range export: active-chain blocks `from..=to` as a JSON array, JSON Lines, or CSV,
//! written block by block to any `Write` (a streamed HTTP body for `/rest/blocks/…`, a file or
//! stdout for `chaincore-node export`), so no range is ever held in memory whole.
//!
//! JSON and JSON Lines carry `getblock <hash> 1` for each block. CSV has one row per block with
//! [`CSV_HEADER`]'s columns (hashes as hex, the genesis block's `previousblockhash` empty,
//! which PostgreSQL's `COPY … (FORMAT csv)` reads as NULL).

use std::io::Write;

use chaincore::rpc::blockchain::{BlockTransactions, GetBlock};
use chaincore::Network;

use crate::snapshot::Snapshot;

/// The CSV columns.
pub const CSV_HEADER: &str =
    "height,hash,previousblockhash,merkleroot,time,mediantime,bits,nonce,version,size,ntx,chainwork";

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// One JSON array.
    Json,
    /// One JSON object per line.
    Jsonl,
    /// Comma-separated values with a header row.
    Csv,
}

impl Format {
    /// The format a file extension (`json`, `jsonl`, `csv`) names.
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "json" => Some(Format::Json),
            "jsonl" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }

    /// Its HTTP content type.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Jsonl => "application/jsonl",
            Format::Csv => "text/csv",
        }
    }
}

/// Why `from..=to` cannot be exported from `snap`, if it cannot.
pub fn check_range(snap: &Snapshot, from: u32, to: u32) -> Result<(), String> {
    let tip = snap.index.tip_height();
    if from > to {
        return Err(format!("Invalid range: from {from} is above to {to}"));
    }
    if to > tip {
        return Err(format!(
            "Invalid range: to {to} is above the tip's height {tip}"
        ));
    }
    Ok(())
}

/// Writes blocks `from..=to` of `snap`'s active chain to `out` in `format`; stops at the first
/// write error (a client that went away).
pub fn write_range(
    snap: &Snapshot,
    network: Network,
    from: u32,
    to: u32,
    format: Format,
    out: &mut impl Write,
) -> std::io::Result<()> {
    let fail = |e: String| std::io::Error::other(e);
    check_range(snap, from, to).map_err(fail)?;
    match format {
        Format::Json => out.write_all(b"[")?,
        Format::Csv => writeln!(out, "{CSV_HEADER}")?,
        Format::Jsonl => {}
    }
    for height in from..=to {
        let hash = snap
            .index
            .active_hash(height)
            .ok_or_else(|| fail(format!("no active block at height {height}")))?;
        let info = match crate::rpc::block_answer(snap, network, &hash, 1) {
            Ok(GetBlock::Json(info)) => info,
            Ok(GetBlock::Hex(_)) => return Err(fail("verbosity 1 gave hex".into())),
            Err(e) => return Err(fail(e.message().to_string())),
        };
        match format {
            Format::Json | Format::Jsonl => {
                if format == Format::Json && height > from {
                    out.write_all(b",\n")?;
                }
                serde_json::to_writer(&mut *out, &info)?;
                if format == Format::Jsonl {
                    out.write_all(b"\n")?;
                }
            }
            Format::Csv => {
                let h = &info.header;
                let ntx = match &info.tx {
                    BlockTransactions::Ids(ids) => ids.len(),
                    BlockTransactions::Full(txs) => txs.len(),
                };
                writeln!(
                    out,
                    "{},{},{},{},{},{},{},{},{},{},{},{}",
                    h.height,
                    h.hash,
                    h.previousblockhash
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                    h.merkleroot,
                    h.time,
                    h.mediantime,
                    h.bits,
                    h.nonce,
                    h.version,
                    info.size,
                    ntx,
                    h.chainwork
                )?;
            }
        }
    }
    if format == Format::Json {
        out.write_all(b"]\n")?;
    }
    out.flush()
}
