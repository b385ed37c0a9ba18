//! Upgrades of an older store in place, when it is opened, inside the open's write transaction
//! (so a crash leaves the old version, which upgrades again at the next start).

use std::collections::HashMap;

use chaincore::encode::{CompactSize, Decodable};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::indexes::{self, IndexBest, IndexKind};
use super::tables::{ADDR_COINS, BLOCKS, BLOCK_INDEX, META, UTXOS};
use super::{coins, decode, IndexEntry, StoreError};

/// The version-4 address-UTXO table: the same keys as [`ADDR_COINS`], without values.
const V4_ADDR_UTXOS: TableDefinition<[u8; 60], ()> = TableDefinition::new("addr_utxos");

/// Bytes of a version-3 index entry: header (80), height (4), chainwork (32), status (1).
const V3_ENTRY_LEN: usize = 117;

fn corrupt(table: &'static str, what: &'static str) -> StoreError {
    StoreError::Corrupt {
        table,
        source: chaincore::encode::Error::Invalid(what),
    }
}

/// Version 3 → 4: appends `chain_tx` to every index entry, counting each block's transactions
/// from its stored bytes and adding them up from genesis in height order.
pub(super) fn from_3(wtx: &WriteTransaction) -> Result<(), StoreError> {
    let mut index = wtx.open_table(BLOCK_INDEX)?;
    let blocks = wtx.open_table(BLOCKS)?;
    // (height, hash, parent, transactions in the block, old entry bytes)
    let mut rows = Vec::new();
    for row in index.iter()? {
        let (key, value) = row?;
        let (hash, old) = (key.value(), value.value().to_vec());
        if old.len() != V3_ENTRY_LEN {
            return Err(corrupt("block_index", "a version-3 entry is not 117 bytes"));
        }
        let mut parent = [0u8; 32];
        parent.copy_from_slice(&old[4..36]);
        let height = u32::from_le_bytes([old[80], old[81], old[82], old[83]]);
        let block = blocks
            .get(hash)?
            .ok_or_else(|| corrupt("blocks", "an indexed block is missing"))?;
        let mut body = block
            .value()
            .get(80..)
            .ok_or_else(|| corrupt("blocks", "a block is shorter than its header"))?;
        let count = CompactSize::consensus_decode(&mut body)
            .map_err(|source| StoreError::Corrupt {
                table: "blocks",
                source,
            })?
            .0;
        rows.push((height, hash, parent, count, old));
    }
    rows.sort_unstable_by_key(|r| r.0);
    let mut chain_tx: HashMap<[u8; 32], u64> = HashMap::with_capacity(rows.len());
    for (height, hash, parent, count, mut entry) in rows {
        let below = match height {
            0 => 0,
            _ => *chain_tx
                .get(&parent)
                .ok_or_else(|| corrupt("block_index", "an entry's parent is missing"))?,
        };
        let total = below + count;
        chain_tx.insert(hash, total);
        entry.extend_from_slice(&total.to_le_bytes());
        index.insert(hash, entry.as_slice())?;
    }
    Ok(())
}

/// Version 4 → 5. A version-4 store committed the UTXO set, the tx index and the address index
/// with every block, so all three belong to its tip: the tip becomes `coins_tip` and both
/// indexes' best block, and the address rows move to [`ADDR_COINS`] with each coin's value
/// and coinbase flag read from the UTXO set.
pub(super) fn from_4(wtx: &WriteTransaction) -> Result<(), StoreError> {
    let tip = super::hash_row(&wtx.open_table(META)?, "tip")?;
    {
        let old = wtx.open_table(V4_ADDR_UTXOS)?;
        let utxos = wtx.open_table(UTXOS)?;
        let mut new = wtx.open_table(ADDR_COINS)?;
        for row in old.iter()? {
            let key = row?.0.value();
            let mut outpoint = [0u8; 36];
            outpoint.copy_from_slice(&key[24..]);
            let coin: chaincore::validation::Coin = match utxos.get(outpoint)? {
                Some(v) => decode("utxos", v.value())?,
                None => {
                    return Err(corrupt(
                        "addr_utxos",
                        "an indexed coin is not in the UTXO set",
                    ))
                }
            };
            new.insert(key, indexes::addr_coin_value(&coin))?;
        }
    }
    wtx.delete_table(V4_ADDR_UTXOS)?;
    let Some(tip) = tip else {
        return Ok(());
    };
    let entry: IndexEntry = match wtx.open_table(BLOCK_INDEX)?.get(tip.to_byte_array())? {
        Some(v) => decode("block_index", v.value())?,
        None => return Err(corrupt("block_index", "the tip's entry is missing")),
    };
    wtx.open_table(META)?
        .insert(coins::COINS_TIP, tip.as_bytes().as_slice())?;
    let best = IndexBest {
        hash: tip,
        height: entry.height,
    };
    for kind in IndexKind::ALL {
        indexes::set_best(wtx, kind, &best)?;
    }
    Ok(())
}
