//! The rows of the indexes that follow the chain (Bitcoin Core's `BaseIndex` shape): the tx
//! index and the address index, each with its own best block in the meta table, written by
//! `crate::indexer` from stored blocks and their undo data, never by a block connect.

use chaincore::validation::Coin;
use chaincore::{Block, BlockHash, OutPoint, Txid};
use redb::{ReadableTable, WriteTransaction};

use super::tables::{ADDR_COINS, ADDR_TXS, META, TX_INDEX};
use super::{addr_tx_key, addr_utxo_key, outpoint_key, StoreError};

/// One of the indexes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum IndexKind {
    /// txid → block and position (`getrawtransaction` of confirmed transactions).
    Tx,
    /// Address → unspent outputs and history (`getaddressbalance`, `getaddressutxos`,
    /// `getaddresstxids`).
    Address,
}

impl IndexKind {
    /// Both, in the order they are written.
    pub const ALL: [IndexKind; 2] = [IndexKind::Tx, IndexKind::Address];

    /// The name `getindexinfo` reports (Bitcoin Core's `txindex`; `addressindex` as the
    /// address-index forks call it).
    pub fn name(self) -> &'static str {
        match self {
            IndexKind::Tx => "txindex",
            IndexKind::Address => "addressindex",
        }
    }

    fn meta_key(self) -> &'static str {
        match self {
            IndexKind::Tx => "index.tx",
            IndexKind::Address => "index.address",
        }
    }
}

/// The block an index has taken in last, and its height.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexBest {
    /// Its hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
}

/// The best block of `kind` in `meta`; `None` for an index that has taken in nothing yet
/// (genesis has nothing to index: its outputs are not spendable).
pub fn best(
    meta: &impl ReadableTable<&'static str, &'static [u8]>,
    kind: IndexKind,
) -> Result<Option<IndexBest>, StoreError> {
    let Some(row) = meta.get(kind.meta_key())? else {
        return Ok(None);
    };
    let v = row.value();
    if v.len() != 36 {
        return Err(StoreError::Corrupt {
            table: "meta",
            source: chaincore::encode::Error::Invalid("an index's best block row is not 36 bytes"),
        });
    }
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&v[..32]);
    Ok(Some(IndexBest {
        hash: BlockHash(hash),
        height: u32::from_le_bytes([v[32], v[33], v[34], v[35]]),
    }))
}

/// Records `best` as the best block of `kind`.
pub fn set_best(
    wtx: &WriteTransaction,
    kind: IndexKind,
    best: &IndexBest,
) -> Result<(), StoreError> {
    let mut row = [0u8; 36];
    row[..32].copy_from_slice(best.hash.as_bytes());
    row[32..].copy_from_slice(&best.height.to_le_bytes());
    wtx.open_table(META)?
        .insert(kind.meta_key(), row.as_slice())?;
    Ok(())
}

/// The value of an address-index coin row: its value (i64 LE) and whether a coinbase made it.
pub fn addr_coin_value(coin: &Coin) -> [u8; 9] {
    let mut v = [0u8; 9];
    v[..8].copy_from_slice(&coin.output.value.to_units().to_le_bytes());
    v[8] = u8::from(coin.is_coinbase);
    v
}

/// Takes `block` (`hash`, `txids`, at `height`, whose inputs spent `undo`) into `kind`.
pub fn connect(
    wtx: &WriteTransaction,
    kind: IndexKind,
    block: &Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    undo: &[Coin],
) -> Result<(), StoreError> {
    match kind {
        IndexKind::Tx => {
            let mut t = wtx.open_table(TX_INDEX)?;
            for (pos, txid) in txids.iter().enumerate() {
                let mut location = [0u8; 36];
                location[..32].copy_from_slice(hash.as_bytes());
                location[32..].copy_from_slice(&(pos as u32).to_le_bytes());
                t.insert(txid.to_byte_array(), location)?;
            }
        }
        IndexKind::Address => {
            let mut coins = wtx.open_table(ADDR_COINS)?;
            let mut history = wtx.open_table(ADDR_TXS)?;
            let mut spent = undo.iter();
            for (pos, (tx, txid)) in block.txdata.iter().zip(txids).enumerate() {
                // Addresses this transaction pays or spends: one history row each.
                let mut touched: Vec<[u8; 20]> = Vec::new();
                if !tx.is_coinbase() {
                    for input in &tx.input {
                        let coin = spent.next().ok_or_else(|| short_undo(hash))?;
                        if let Some(pkh) = coin.output.script_pubkey.p2pkh_hash() {
                            let key = outpoint_key(&input.previous_output);
                            coins.remove(addr_utxo_key(&pkh, coin.height, &key))?;
                            touched.push(pkh);
                        }
                    }
                }
                for (vout, output) in tx.output.iter().enumerate() {
                    if let Some(pkh) = output.script_pubkey.p2pkh_hash() {
                        let key = outpoint_key(&OutPoint {
                            txid: *txid,
                            vout: vout as u32,
                        });
                        let coin = Coin {
                            output: output.clone(),
                            height,
                            is_coinbase: pos == 0,
                        };
                        coins.insert(addr_utxo_key(&pkh, height, &key), addr_coin_value(&coin))?;
                        touched.push(pkh);
                    }
                }
                touched.sort_unstable();
                touched.dedup();
                for pkh in &touched {
                    history.insert(addr_tx_key(pkh, height, txid), ())?;
                }
            }
        }
    }
    Ok(())
}

/// Takes `block` (as [`connect`] took it in) out of `kind` again.
pub fn disconnect(
    wtx: &WriteTransaction,
    kind: IndexKind,
    block: &Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    undo: &[Coin],
) -> Result<(), StoreError> {
    match kind {
        IndexKind::Tx => {
            let mut t = wtx.open_table(TX_INDEX)?;
            for txid in txids {
                // Only if it still points here: the same transaction may be indexed in
                // another block.
                let here = t
                    .get(txid.to_byte_array())?
                    .is_some_and(|v| v.value()[..32] == *hash.as_bytes());
                if here {
                    t.remove(txid.to_byte_array())?;
                }
            }
        }
        IndexKind::Address => {
            let in_block: std::collections::HashSet<&Txid> = txids.iter().collect();
            let mut coins = wtx.open_table(ADDR_COINS)?;
            let mut history = wtx.open_table(ADDR_TXS)?;
            let mut spent = undo.iter();
            for (tx, txid) in block.txdata.iter().zip(txids) {
                for (vout, output) in tx.output.iter().enumerate() {
                    if let Some(pkh) = output.script_pubkey.p2pkh_hash() {
                        let key = outpoint_key(&OutPoint {
                            txid: *txid,
                            vout: vout as u32,
                        });
                        coins.remove(addr_utxo_key(&pkh, height, &key))?;
                        history.remove(addr_tx_key(&pkh, height, txid))?;
                    }
                }
                if tx.is_coinbase() {
                    continue;
                }
                for input in &tx.input {
                    let coin = spent.next().ok_or_else(|| short_undo(hash))?;
                    let Some(pkh) = coin.output.script_pubkey.p2pkh_hash() else {
                        continue;
                    };
                    history.remove(addr_tx_key(&pkh, height, txid))?;
                    if in_block.contains(&input.previous_output.txid) {
                        continue; // created and spent inside this block
                    }
                    let key = outpoint_key(&input.previous_output);
                    coins.insert(
                        addr_utxo_key(&pkh, coin.height, &key),
                        addr_coin_value(coin),
                    )?;
                }
            }
        }
    }
    Ok(())
}

fn short_undo(hash: &BlockHash) -> StoreError {
    StoreError::Missing {
        what: "a spent coin in the undo data of",
        key: hash.to_string(),
    }
}

/// Forgets the best block of `kind` (it holds nothing again).
pub fn clear_best(wtx: &WriteTransaction, kind: IndexKind) -> Result<(), StoreError> {
    wtx.open_table(META)?.remove(kind.meta_key())?;
    Ok(())
}
