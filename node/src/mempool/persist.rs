//! The mempool on disk (`mempool.dat`, Bitcoin Core's `-persistmempool`): written at clean
//! shutdown, every [`SAVE_INTERVAL`] and by the `savemempool` RPC; read at start, each
//! transaction validated again against the chain as it then is.
//!
//! Format (ours): `CCMP`, version u32 LE (1), CompactSize count, then each transaction in
//! pool order (parents before children) in consensus serialization. Written to a temporary
//! file, synced, then renamed over the old one, so a crash leaves the previous save or the new
//! one, never half of one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chaincore::encode::{self, CompactSize, Decodable, Encodable};
use chaincore::Transaction;

/// How often the node saves its mempool while running.
pub const SAVE_INTERVAL: Duration = Duration::from_secs(120);
/// The file's name in the network's data directory.
pub const FILE_NAME: &str = "mempool.dat";

const MAGIC: &[u8; 4] = b"CCMP";
const VERSION: u32 = 1;
/// Most transactions read back (a 100 MB pool of minimal transactions holds fewer).
const MAX_SAVED: u64 = 2_000_000;

/// Why the saved mempool could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum PersistError {
    /// The file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not a saved mempool of this version.
    #[error("{path} is not a mempool file this node reads: {why}")]
    Format {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        why: String,
    },
}

/// Writes `txs` to `path` atomically.
pub fn save(path: &Path, txs: &[Transaction]) -> Result<(), PersistError> {
    let io = |source| PersistError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut bytes = Vec::new();
    bytes.extend_from_slice(MAGIC);
    bytes.extend_from_slice(&VERSION.to_le_bytes());
    let written: std::io::Result<()> = (|| {
        CompactSize(txs.len() as u64).consensus_encode(&mut bytes)?;
        for tx in txs {
            tx.consensus_encode(&mut bytes)?;
        }
        Ok(())
    })();
    written.map_err(io)?;
    // A temporary file with a random name beside the target: a save from `savemempool` and
    // the periodic one never write the same file.
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = tempfile::Builder::new()
        .prefix(".mempool.")
        .suffix(".tmp")
        .tempfile_in(dir)
        .map_err(io)?;
    file.write_all(&bytes).map_err(io)?;
    file.as_file().sync_all().map_err(io)?;
    file.persist(path).map_err(|e| io(e.error))?;
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)?;
    Ok(())
}

/// Reads the transactions saved at `path`; none if there is no file.
pub fn load(path: &Path) -> Result<Vec<Transaction>, PersistError> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(PersistError::Io {
                path: path.to_path_buf(),
                source,
            })
        }
    };
    let format = |why: String| PersistError::Format {
        path: path.to_path_buf(),
        why,
    };
    let Some(rest) = bytes.strip_prefix(MAGIC) else {
        return Err(format("no CCMP header".into()));
    };
    let r = &mut &rest[..];
    let read: Result<Vec<Transaction>, encode::Error> = (|| {
        let version = u32::consensus_decode(r)?;
        if version != VERSION {
            return Err(encode::Error::Invalid("mempool file version"));
        }
        let n = CompactSize::consensus_decode(r)?.0;
        if n > MAX_SAVED {
            return Err(encode::Error::Invalid(
                "more transactions than a pool holds",
            ));
        }
        let mut txs = Vec::new();
        for _ in 0..n {
            txs.push(Transaction::consensus_decode(r)?);
        }
        if !r.is_empty() {
            return Err(encode::Error::TrailingBytes(r.len()));
        }
        Ok(txs)
    })();
    read.map_err(|e| format(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_damage_is_an_error() {
        let dir = std::env::temp_dir().join(format!("cc-mempool-dat-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(FILE_NAME);
        assert!(load(&path).unwrap().is_empty(), "no file: nothing saved");
        let txs = vec![chaincore::Network::Regtest.genesis_block().txdata[0].clone(); 3];
        save(&path, &txs).unwrap();
        assert_eq!(load(&path).unwrap(), txs);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes.truncate(bytes.len() - 3);
        std::fs::write(&path, &bytes).unwrap();
        assert!(matches!(load(&path), Err(PersistError::Format { .. })));
        std::fs::write(&path, b"nonsense").unwrap();
        assert!(matches!(load(&path), Err(PersistError::Format { .. })));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
