//! The node's redb database: block index, blocks, active chain, UTXO set, undo data, tx index
//! and address index (tables in [`tables`]).
//!
//! Every block connect or disconnect is one write transaction with two-phase commit and
//! immediate durability for the block, its undo data and the tip, so a crash at any instant
//! reopens to the last committed tip. The UTXO changes wait in the coins cache ([`coins`]) and
//! are flushed in one transaction per batch of blocks; the store records the block the flushed
//! set belongs to, and on open the chain replays the blocks after it. The indexes
//! ([`indexes`]) follow the chain with their own best blocks. A batch of blocks mined
//! in-process may defer durability to its last commit ([`Store::begin_write_with`]).

pub mod coins;
pub mod connect;
pub mod indexes;
pub mod tables;
mod upgrade;

use std::collections::BTreeSet;
use std::path::Path;

use chaincore::block::Header;
use chaincore::encode::{self, deserialize, serialize, Decodable, Encodable};
use chaincore::pow::Work;
use chaincore::validation::Coin;
use chaincore::{Block, BlockHash, OutPoint, Txid};
use redb::{
    Database, Durability, ReadTransaction, ReadableDatabase, ReadableTable, WriteTransaction,
};

use tables::*;

/// Version of the table layout. Version 4 added [`IndexEntry::chain_tx`]; version 5 the coins
/// cache's `coins_tip`, the indexes' best blocks and coin values in the address index. Older
/// stores (3 and 4) are upgraded in place when opened, in the open's one transaction; any
/// other version is refused.
pub const SCHEMA_VERSION: u32 = 5;

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed (I/O, corruption, commit).
    #[error("database error: {0}")]
    Db(#[from] redb::Error),
    /// A thread the store needs could not start.
    #[error("cannot start the writer thread: {0}")]
    Io(std::io::Error),
    /// Another process (a second node on the same data directory) holds the database.
    #[error("another chaincore-node is using {0}")]
    InUse(String),
    /// The database was written by another version of the node.
    #[error("database schema version {found} is not supported (this node reads version {SCHEMA_VERSION}); use a new --datadir or the matching node version")]
    Schema {
        /// Version found on disk.
        found: u32,
    },
    /// A row that must exist is missing (a block, its undo data, an index entry): the
    /// database is damaged.
    #[error("database is missing {what} {key}; the data directory is damaged: restore it or use a new --datadir")]
    Missing {
        /// What kind of row.
        what: &'static str,
        /// Its key (a block hash, usually).
        key: String,
    },
    /// The database belongs to another network.
    #[error("the database at {path} holds the {found} chain, not {expected}; start with --network {found} or use a new --datadir")]
    WrongNetwork {
        /// The database file.
        path: String,
        /// The network whose genesis block the database holds ("an unknown network" if none).
        found: String,
        /// The network the node was started for.
        expected: chaincore::Network,
    },
    /// Stored bytes do not decode.
    #[error("corrupt record in table {table}: {source}")]
    Corrupt {
        /// Table name.
        table: &'static str,
        /// Decoding error.
        source: encode::Error,
    },
}

macro_rules! db_err {
    ($($ty:ty),*) => {$(
        impl From<$ty> for StoreError {
            fn from(e: $ty) -> Self {
                StoreError::Db(e.into())
            }
        }
    )*};
}
db_err!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// Validation state of a known block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    /// Stored and passed context-free checks; connectable as far as we know.
    Valid,
    /// Failed validation, or descends from a block that did, or was invalidated by the operator.
    Invalid,
}

/// What the node keeps in memory and on disk about every block it has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexEntry {
    /// The header.
    pub header: Header,
    /// Height in its chain.
    pub height: u32,
    /// Total work of the chain ending here.
    pub chainwork: Work,
    /// Validation state.
    pub status: Status,
    /// Transactions in the chain up to and including this block (Bitcoin Core's `nChainTx`).
    pub chain_tx: u64,
}

impl Encodable for IndexEntry {
    fn consensus_encode<W: std::io::Write + ?Sized>(&self, w: &mut W) -> std::io::Result<usize> {
        Ok(self.header.consensus_encode(w)?
            + self.height.consensus_encode(w)?
            + self.chainwork.to_be_bytes().consensus_encode(w)?
            + u8::from(self.status == Status::Invalid).consensus_encode(w)?
            + self.chain_tx.consensus_encode(w)?)
    }
}

impl Decodable for IndexEntry {
    fn consensus_decode<R: std::io::Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        Ok(IndexEntry {
            header: Header::consensus_decode(r)?,
            height: u32::consensus_decode(r)?,
            chainwork: Work::from_be_bytes(<[u8; 32]>::consensus_decode(r)?),
            status: match u8::consensus_decode(r)? {
                0 => Status::Valid,
                1 => Status::Invalid,
                _ => return Err(encode::Error::Invalid("block status")),
            },
            chain_tx: u64::consensus_decode(r)?,
        })
    }
}

/// Serializes an outpoint as a UTXO table key.
pub fn outpoint_key(outpoint: &OutPoint) -> [u8; 36] {
    let mut key = [0u8; 36];
    key[..32].copy_from_slice(outpoint.txid.as_bytes());
    key[32..].copy_from_slice(&outpoint.vout.to_le_bytes());
    key
}

/// Reads an outpoint back from a UTXO table key.
pub fn outpoint_from_key(key: &[u8; 36]) -> OutPoint {
    let mut txid = [0u8; 32];
    txid.copy_from_slice(&key[..32]);
    let mut vout = [0u8; 4];
    vout.copy_from_slice(&key[32..]);
    OutPoint {
        txid: Txid(txid),
        vout: u32::from_le_bytes(vout),
    }
}

/// Address-UTXO key: pubkey hash ‖ height of the coin (u32 BE) ‖ outpoint key. Coins of one
/// address sort by height, so a block's new coins land together at the end of its range.
pub fn addr_utxo_key(pubkey_hash: &[u8; 20], height: u32, outpoint: &[u8; 36]) -> [u8; 60] {
    let mut key = [0u8; 60];
    key[..20].copy_from_slice(pubkey_hash);
    key[20..24].copy_from_slice(&height.to_be_bytes());
    key[24..].copy_from_slice(outpoint);
    key
}

/// Address-history key: pubkey hash ‖ height (u32 BE) ‖ txid, so history sorts by height.
pub fn addr_tx_key(pubkey_hash: &[u8; 20], height: u32, txid: &Txid) -> [u8; 56] {
    let mut key = [0u8; 56];
    key[..20].copy_from_slice(pubkey_hash);
    key[20..24].copy_from_slice(&height.to_be_bytes());
    key[24..].copy_from_slice(txid.as_bytes());
    key
}

/// The keys stored under `pubkey_hash` in an address table, in key order.
fn addr_rows<const N: usize>(
    table: &impl ReadableTable<[u8; N], ()>,
    pubkey_hash: &[u8; 20],
) -> Result<Vec<[u8; N]>, StoreError> {
    let mut low = [0u8; N];
    let mut high = [0xffu8; N];
    low[..20].copy_from_slice(pubkey_hash);
    high[..20].copy_from_slice(pubkey_hash);
    let mut out = Vec::new();
    for row in table.range(low..=high)? {
        out.push(row?.0.value());
    }
    Ok(out)
}

/// The height stored after the pubkey hash in an address table key.
fn addr_row_height(key: &[u8]) -> u32 {
    let mut h = [0u8; 4];
    h.copy_from_slice(&key[20..24]);
    u32::from_be_bytes(h)
}

fn decode<T: Decodable>(table: &'static str, bytes: &[u8]) -> Result<T, StoreError> {
    deserialize(bytes).map_err(|source| StoreError::Corrupt { table, source })
}

/// The database.
pub struct Store {
    db: Database,
    path: std::path::PathBuf,
}

impl Store {
    /// Opens (or creates) the database at `path`, creating missing tables and checking the schema
    /// version. redb repairs an unclean shutdown on open.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let db = Database::create(path).map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                StoreError::InUse(path.parent().unwrap_or(path).display().to_string())
            }
            e => e.into(),
        })?;
        let store = Store {
            db,
            path: path.to_path_buf(),
        };
        let wtx = store.begin_write()?;
        {
            let mut meta = wtx.open_table(META)?;
            let found = match meta.get("schema")? {
                Some(v) => Some(u32::from_le_bytes(v.value().try_into().map_err(|_| {
                    StoreError::Corrupt {
                        table: "meta",
                        source: encode::Error::Invalid("schema version row is not 4 bytes"),
                    }
                })?)),
                None => None,
            };
            match found {
                Some(v @ (3 | 4)) => {
                    drop(meta);
                    if v == 3 {
                        upgrade::from_3(&wtx)?;
                    }
                    upgrade::from_4(&wtx)?;
                    meta = wtx.open_table(META)?;
                    meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                    tracing::info!("upgraded the store from schema {v} to {SCHEMA_VERSION}");
                }
                Some(v) if v != SCHEMA_VERSION => return Err(StoreError::Schema { found: v }),
                Some(_) => {}
                None => {
                    meta.insert("schema", SCHEMA_VERSION.to_le_bytes().as_slice())?;
                }
            }
            wtx.open_table(BLOCK_INDEX)?;
            wtx.open_table(BLOCKS)?;
            wtx.open_table(ACTIVE_CHAIN)?;
            wtx.open_table(UTXOS)?;
            wtx.open_table(UNDO)?;
            wtx.open_table(TX_INDEX)?;
            wtx.open_table(ADDR_COINS)?;
            wtx.open_table(ADDR_TXS)?;
            wtx.open_table(PEERS)?;
        }
        wtx.commit()?;
        Ok(store)
    }

    /// A write transaction: two-phase commit, durable on commit.
    pub fn begin_write(&self) -> Result<WriteTransaction, StoreError> {
        self.begin_write_with(true)
    }

    /// A write transaction whose commit waits for the disk (`durable`) or not. A commit that
    /// does not is visible at once but becomes durable only with the next durable commit
    /// (redb); a crash before that reopens at the last durable commit, as consistent as any
    /// other. Used for all but the last of a batch of blocks mined in-process.
    pub fn begin_write_with(&self, durable: bool) -> Result<WriteTransaction, StoreError> {
        let mut wtx = self.db.begin_write()?;
        wtx.set_two_phase_commit(true);
        wtx.set_quick_repair(true);
        wtx.set_durability(if durable {
            Durability::Immediate
        } else {
            Durability::None
        })?;
        Ok(wtx)
    }

    /// Commits durably once, which makes every earlier commit durable too.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.begin_write()?.commit()?;
        Ok(())
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes the database file takes on disk.
    pub fn size_on_disk(&self) -> u64 {
        std::fs::metadata(&self.path).map_or(0, |m| m.len())
    }

    /// A read snapshot; never waits for writers.
    pub fn begin_read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// Every block index entry, for loading the in-memory index at start.
    pub fn load_index(&self) -> Result<Vec<(BlockHash, IndexEntry)>, StoreError> {
        let rtx = self.begin_read()?;
        let table = rtx.open_table(BLOCK_INDEX)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            let (k, v) = row?;
            out.push((BlockHash(k.value()), decode("block_index", v.value())?));
        }
        Ok(out)
    }

    /// The saved peer addresses.
    pub fn load_peers(&self) -> Result<Vec<std::net::SocketAddr>, StoreError> {
        let rtx = self.begin_read()?;
        let table = rtx.open_table(PEERS)?;
        let mut out = Vec::new();
        for row in table.iter()? {
            if let Ok(addr) = row?.0.value().parse() {
                out.push(addr);
            }
        }
        Ok(out)
    }

    /// Saves (`true`) or deletes (`false`) peer addresses, in one transaction.
    pub fn save_peers(&self, changes: &[(std::net::SocketAddr, bool)]) -> Result<(), StoreError> {
        let wtx = self.begin_write()?;
        {
            let mut t = wtx.open_table(PEERS)?;
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            for (addr, keep) in changes {
                let key = addr.to_string();
                if *keep {
                    t.insert(key.as_str(), now)?;
                } else {
                    t.remove(key.as_str())?;
                }
            }
        }
        wtx.commit()?;
        Ok(())
    }

    /// The stored best-chain tip, if any.
    pub fn tip(&self) -> Result<Option<BlockHash>, StoreError> {
        hash_row(&self.begin_read()?.open_table(META)?, "tip")
    }

    /// The block the UTXO table's set belongs to (the coins cache's last flush), if any.
    pub fn coins_tip(&self) -> Result<Option<BlockHash>, StoreError> {
        hash_row(&self.begin_read()?.open_table(META)?, coins::COINS_TIP)
    }
}

/// A block hash stored in the meta table under `name`.
fn hash_row(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &'static str,
) -> Result<Option<BlockHash>, StoreError> {
    match meta.get(name)? {
        None => Ok(None),
        Some(v) => match <[u8; 32]>::try_from(v.value()) {
            Ok(hash) => Ok(Some(BlockHash(hash))),
            Err(_) => Err(StoreError::Corrupt {
                table: "meta",
                source: encode::Error::Invalid("a block hash row is not 32 bytes"),
            }),
        },
    }
}

/// Reads shared by read snapshots and write transactions.
pub mod read {
    use super::*;

    /// A stored block.
    pub fn block(rtx: &ReadTransaction, hash: &BlockHash) -> Result<Option<Block>, StoreError> {
        block_in(&rtx.open_table(BLOCKS)?, hash)
    }

    /// A block's undo data: the coins its transactions spent, in spending order.
    pub fn undo(rtx: &ReadTransaction, hash: &BlockHash) -> Result<Option<Vec<Coin>>, StoreError> {
        undo_in(&rtx.open_table(UNDO)?, hash)
    }

    /// [`block`] from the blocks table of a read or a write transaction.
    pub fn block_in(
        table: &impl ReadableTable<[u8; 32], &'static [u8]>,
        hash: &BlockHash,
    ) -> Result<Option<Block>, StoreError> {
        let row = table.get(hash.to_byte_array())?;
        row.map(|v| decode("blocks", v.value())).transpose()
    }

    /// [`undo`] from the undo table of a read or a write transaction.
    pub fn undo_in(
        table: &impl ReadableTable<[u8; 32], &'static [u8]>,
        hash: &BlockHash,
    ) -> Result<Option<Vec<Coin>>, StoreError> {
        let row = table.get(hash.to_byte_array())?;
        row.map(|v| decode("undo", v.value())).transpose()
    }

    /// A stored block's raw bytes.
    pub fn block_bytes(
        rtx: &ReadTransaction,
        hash: &BlockHash,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let table = rtx.open_table(BLOCKS)?;
        Ok(table.get(hash.to_byte_array())?.map(|v| v.value().to_vec()))
    }

    /// The active-chain block hash at `height`.
    pub fn active_hash(
        rtx: &ReadTransaction,
        height: u32,
    ) -> Result<Option<BlockHash>, StoreError> {
        let table = rtx.open_table(ACTIVE_CHAIN)?;
        Ok(table.get(u64::from(height))?.map(|v| BlockHash(v.value())))
    }

    /// The UTXO set as of `rtx` with the coins cache `entries` taken at the same moment.
    pub fn coins<'a>(
        rtx: &ReadTransaction,
        entries: &'a coins::Entries,
    ) -> Result<coins::CoinsView<'a, coins::UtxoTable>, StoreError> {
        Ok(coins::CoinsView {
            entries,
            table: rtx.open_table(UTXOS)?,
        })
    }

    /// The best block of index `kind` as of `rtx`.
    pub fn index_best(
        rtx: &ReadTransaction,
        kind: indexes::IndexKind,
    ) -> Result<Option<indexes::IndexBest>, StoreError> {
        indexes::best(&rtx.open_table(META)?, kind)
    }

    /// Where an active-chain transaction is: block hash and position.
    pub fn tx_location(
        rtx: &ReadTransaction,
        txid: &Txid,
    ) -> Result<Option<(BlockHash, u32)>, StoreError> {
        let table = rtx.open_table(TX_INDEX)?;
        Ok(table.get(txid.to_byte_array())?.map(|v| {
            let v = v.value();
            let mut hash = [0u8; 32];
            hash.copy_from_slice(&v[..32]);
            let mut pos = [0u8; 4];
            pos.copy_from_slice(&v[32..]);
            (BlockHash(hash), u32::from_le_bytes(pos))
        }))
    }

    /// Unspent outputs paying `pubkey_hash` as of the address index's best block, oldest
    /// first.
    pub fn address_coins(
        rtx: &ReadTransaction,
        pubkey_hash: &[u8; 20],
    ) -> Result<Vec<(OutPoint, Coin)>, StoreError> {
        let table = rtx.open_table(ADDR_COINS)?;
        let mut low = [0u8; 60];
        let mut high = [0xffu8; 60];
        low[..20].copy_from_slice(pubkey_hash);
        high[..20].copy_from_slice(pubkey_hash);
        let mut out = Vec::new();
        for row in table.range(low..=high)? {
            let (k, v) = row?;
            let (key, value) = (k.value(), v.value());
            let mut outpoint = [0u8; 36];
            outpoint.copy_from_slice(&key[24..]);
            let mut units = [0u8; 8];
            units.copy_from_slice(&value[..8]);
            out.push((
                outpoint_from_key(&outpoint),
                Coin {
                    output: chaincore::TxOut {
                        value: chaincore::Amount::from_units(i64::from_le_bytes(units)),
                        script_pubkey: chaincore::Script::new_p2pkh(pubkey_hash),
                    },
                    height: addr_row_height(&key),
                    is_coinbase: value[8] != 0,
                },
            ));
        }
        Ok(out)
    }

    /// Active-chain transactions touching `pubkey_hash`, as (height, txid), oldest first.
    pub fn address_txids(
        rtx: &ReadTransaction,
        pubkey_hash: &[u8; 20],
    ) -> Result<Vec<(u32, Txid)>, StoreError> {
        let table = rtx.open_table(ADDR_TXS)?;
        let mut out = Vec::new();
        for key in addr_rows(&table, pubkey_hash)? {
            let mut txid = [0u8; 32];
            txid.copy_from_slice(&key[24..]);
            out.push((addr_row_height(&key), Txid(txid)));
        }
        Ok(out)
    }

    /// Every address-coin row (for verification).
    pub fn address_coin_rows(
        rtx: &ReadTransaction,
    ) -> Result<std::collections::BTreeMap<[u8; 60], [u8; 9]>, StoreError> {
        let mut out = std::collections::BTreeMap::new();
        for row in rtx.open_table(ADDR_COINS)?.iter()? {
            let (k, v) = row?;
            out.insert(k.value(), v.value());
        }
        Ok(out)
    }

    /// Every address-history key (for verification).
    pub fn address_tx_keys(rtx: &ReadTransaction) -> Result<BTreeSet<[u8; 56]>, StoreError> {
        all_keys(&rtx.open_table(ADDR_TXS)?)
    }

    fn all_keys<const N: usize>(
        table: &impl ReadableTable<[u8; N], ()>,
    ) -> Result<BTreeSet<[u8; N]>, StoreError> {
        let mut out = BTreeSet::new();
        for row in table.iter()? {
            out.insert(row?.0.value());
        }
        Ok(out)
    }
}

/// Writes, all inside one caller-owned write transaction.
pub mod write {
    use super::*;

    /// Stores (or updates) a block index entry.
    pub fn index(
        wtx: &WriteTransaction,
        hash: &BlockHash,
        e: &IndexEntry,
    ) -> Result<(), StoreError> {
        wtx.open_table(BLOCK_INDEX)?
            .insert(hash.to_byte_array(), serialize(e).as_slice())?;
        Ok(())
    }

    /// Stores a block's bytes.
    pub fn block(
        wtx: &WriteTransaction,
        hash: &BlockHash,
        block: &Block,
    ) -> Result<(), StoreError> {
        wtx.open_table(BLOCKS)?
            .insert(hash.to_byte_array(), serialize(block).as_slice())?;
        Ok(())
    }

    /// Sets the best tip.
    pub fn tip(wtx: &WriteTransaction, hash: &BlockHash) -> Result<(), StoreError> {
        wtx.open_table(META)?
            .insert("tip", hash.as_bytes().as_slice())?;
        Ok(())
    }

    /// Sets or clears the active-chain hash at `height`.
    pub fn active(
        wtx: &WriteTransaction,
        height: u32,
        hash: Option<&BlockHash>,
    ) -> Result<(), StoreError> {
        let mut t = wtx.open_table(ACTIVE_CHAIN)?;
        match hash {
            Some(h) => t.insert(u64::from(height), h.to_byte_array())?,
            None => t.remove(u64::from(height))?,
        };
        Ok(())
    }

    /// Stores a block's undo data.
    pub fn undo(
        wtx: &WriteTransaction,
        hash: &BlockHash,
        spent: &Vec<Coin>,
    ) -> Result<(), StoreError> {
        wtx.open_table(UNDO)?
            .insert(hash.to_byte_array(), serialize(spent).as_slice())?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_malformed_schema_row_is_an_error_not_a_panic() {
        let dir = std::env::temp_dir().join(format!("cc-store-schema-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("chain.redb");
        {
            let db = Database::create(&path).unwrap();
            let wtx = db.begin_write().unwrap();
            wtx.open_table(META)
                .unwrap()
                .insert("schema", [1u8, 2].as_slice())
                .unwrap();
            wtx.commit().unwrap();
        }
        let e = Store::open(&path).err().unwrap();
        assert!(e.to_string().contains("schema version row"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
