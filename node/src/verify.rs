//! Consistency checks from outside the write path: UTXO-set statistics and hash
//! (`gettxoutsetinfo`, over the stored set and the coins cache), and `verifychain`, which at
//! level 4 replays the whole active chain in memory and compares the result with the UTXO set
//! and with the address index as of the index's best block.

use std::collections::{BTreeMap, BTreeSet};

use crate::node::{Node, Snapshot};
use crate::store::indexes::{addr_coin_value, IndexKind};
use crate::store::{self, addr_tx_key, addr_utxo_key, outpoint_key, StoreError};
use chaincore::encode::deserialize;
use chaincore::encode::serialize;
use chaincore::hash::Sha256dWriter;
use chaincore::validation::{self, Coin};
use chaincore::{Amount, OutPoint};

/// Size, value and hash of a UTXO set.
pub struct UtxoStats {
    /// Number of unspent outputs.
    pub count: u64,
    /// Their total value.
    pub total: Amount,
    /// Transactions with at least one of them.
    pub transactions: u64,
    /// Core's `bogosize`: 50 bytes plus the script's length, summed over them.
    pub bogosize: u64,
    /// SHA-256d over every `outpoint key ‖ serialized coin`, in key order.
    pub hash: [u8; 32],
}

/// Statistics of the UTXO set of `snap` (the stored set with the coins cache over it), which
/// do not depend on when the cache was last flushed.
pub fn utxo_stats(snap: &Snapshot) -> Result<UtxoStats, StoreError> {
    let mut hasher = Sha256dWriter::default();
    let mut total = Amount::ZERO;
    let (mut transactions, mut bogosize) = (0u64, 0u64);
    // Keys start with the txid, so one transaction's coins are adjacent.
    let mut last_txid = None;
    let count = snap.utxos()?.for_each(|key, value, coin| {
        use std::io::Write;
        let _ = hasher.write_all(key);
        let _ = hasher.write_all(value);
        total = total + coin.output.value;
        bogosize += 50 + coin.output.script_pubkey.as_bytes().len() as u64;
        let txid = key.get(..32);
        if txid != last_txid.as_deref() {
            transactions += 1;
            last_txid = txid.map(<[u8]>::to_vec);
        }
    })?;
    Ok(UtxoStats {
        count,
        total,
        transactions,
        bogosize,
        hash: hasher.finish(),
    })
}

/// Why `verifychain` failed.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// The store failed.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// An inconsistency, described.
    #[error("{0}")]
    Inconsistent(String),
}

fn bad(msg: impl Into<String>) -> VerifyError {
    VerifyError::Inconsistent(msg.into())
}

/// Checks the last `nblocks` active blocks (0 = all) of the node's latest snapshot: stored,
/// hashing to their index entry, linked, and passing context-free checks (level ≥ 1). At
/// level ≥ 4, replays the whole chain and requires the UTXO set to equal the replay's, and
/// the address index (if enabled, and its best block is on the chain) to equal the replay's
/// at the index's best block.
pub fn verify_chain(node: &Node, level: u32, nblocks: u32) -> Result<(), VerifyError> {
    let snap = node.snapshot();
    let rtx = &snap.rtx;
    // The index as far as it has got; checked if its best block is on the snapshot's chain.
    let index_rtx = node.begin_read()?;
    let indexed = match node
        .index_progress
        .borrow()
        .iter()
        .any(|s| s.kind == IndexKind::Address)
    {
        true => store::read::index_best(&index_rtx, IndexKind::Address)?.map_or(Some(0), |b| {
            (snap.index.active_hash(b.height) == Some(b.hash)).then_some(b.height)
        }),
        false => None,
    };
    // What the address index should hold at its best block: coin rows and history rows.
    let mut at_index: Option<(AddressRows, BTreeSet<[u8; 56]>)> = None;
    let active: Vec<_> = (0..=snap.index.tip_height())
        .filter_map(|h| snap.index.active_hash(h))
        .collect();
    let first = if nblocks == 0 {
        0
    } else {
        active.len().saturating_sub(nblocks as usize)
    };
    let mut utxos: BTreeMap<[u8; 36], Vec<u8>> = BTreeMap::new();
    // Address history rows the replay expects.
    let mut history: BTreeSet<[u8; 56]> = BTreeSet::new();
    let replay = level >= 4;
    for (height, hash) in active.iter().enumerate() {
        if height < first && !replay {
            continue;
        }
        let block = store::read::block(rtx, hash)?
            .ok_or_else(|| bad(format!("block {hash} at height {height} is missing")))?;
        if block.block_hash() != *hash {
            return Err(bad(format!(
                "block at height {height} hashes to {}",
                block.block_hash()
            )));
        }
        if height > 0 && block.header.prev_blockhash != active[height - 1] {
            return Err(bad(format!("block {hash} does not link to its parent")));
        }
        if store::read::active_hash(rtx, height as u32)? != Some(*hash) {
            return Err(bad(format!(
                "active chain table disagrees at height {height}"
            )));
        }
        if level >= 1 && height >= first {
            validation::check_block(&block, node.network)
                .map_err(|e| bad(format!("block {hash}: {e}")))?;
        }
        if replay && height > 0 {
            for (pos, tx) in block.txdata.iter().enumerate() {
                let txid = tx.compute_txid();
                let mut touched = Vec::new();
                if !tx.is_coinbase() {
                    for i in &tx.input {
                        let spent = utxos
                            .remove(&outpoint_key(&i.previous_output))
                            .ok_or_else(|| bad(format!("replay: {txid} spends a missing coin")))?;
                        let coin: Coin = deserialize(&spent).map_err(|e| bad(e.to_string()))?;
                        touched.extend(coin.output.script_pubkey.p2pkh_hash());
                    }
                }
                touched.extend(
                    tx.output
                        .iter()
                        .filter_map(|o| o.script_pubkey.p2pkh_hash()),
                );
                history.extend(
                    touched
                        .iter()
                        .map(|pkh| addr_tx_key(pkh, height as u32, &txid)),
                );
                for (vout, out) in tx.output.iter().enumerate() {
                    if out.script_pubkey.op_return_data().is_some() {
                        continue;
                    }
                    let coin = Coin {
                        output: out.clone(),
                        height: height as u32,
                        is_coinbase: pos == 0,
                    };
                    let key = outpoint_key(&OutPoint {
                        txid,
                        vout: vout as u32,
                    });
                    utxos.insert(key, serialize(&coin));
                }
            }
        }
        if replay && indexed == Some(height as u32) {
            at_index = Some((address_rows(&utxos)?, history.clone()));
        }
    }
    if !replay {
        return Ok(());
    }
    let mut hasher = Sha256dWriter::default();
    for (k, v) in &utxos {
        use std::io::Write;
        let _ = hasher.write_all(k);
        let _ = hasher.write_all(v);
    }
    let stored = utxo_stats(&snap)?;
    if stored.count != utxos.len() as u64 || stored.hash != hasher.finish() {
        return Err(bad(format!(
            "UTXO set differs from a replay of the chain ({} stored, {} replayed)",
            stored.count,
            utxos.len()
        )));
    }
    // Address index: exactly the P2PKH coins of the replayed set at its best block, under
    // their heights with their values, and one history row per address per transaction that
    // paid or spent it.
    if let Some((expected, history)) = at_index {
        if store::read::address_coin_rows(&index_rtx)? != expected {
            return Err(bad("address index (unspent outputs) differs from a replay"));
        }
        if store::read::address_tx_keys(&index_rtx)? != history {
            return Err(bad("address index (history) differs from a replay"));
        }
    }
    Ok(())
}

/// Address-index coin rows: key → value.
type AddressRows = BTreeMap<[u8; 60], [u8; 9]>;

/// The address-index coin rows a UTXO set (outpoint key → serialized coin) calls for.
fn address_rows(utxos: &BTreeMap<[u8; 36], Vec<u8>>) -> Result<AddressRows, VerifyError> {
    let mut rows = BTreeMap::new();
    for (k, v) in utxos {
        let coin: Coin = deserialize(v).map_err(|e| bad(e.to_string()))?;
        if let Some(pkh) = coin.output.script_pubkey.p2pkh_hash() {
            rows.insert(addr_utxo_key(&pkh, coin.height, k), addr_coin_value(&coin));
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::tables::{ADDR_COINS, ADDR_TXS};
    use chaincore::{Network, Script};

    /// verifychain level 4 notices every kind of stray or missing address index row.
    #[test]
    fn level_4_catches_address_index_damage() {
        let dir = std::env::temp_dir().join(format!("cc-verify-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node::open(Network::Regtest, &dir).unwrap();
        let pkh = [7u8; 20];
        node.generate_blocks(5, &Script::new_p2pkh(&pkh)).unwrap();
        verify_chain(&node, 4, 0).unwrap();

        // Damage made behind the writer's back; a block mined after it publishes a snapshot
        // that sees it.
        let damage = |f: &dyn Fn(&redb::WriteTransaction)| {
            let wtx = node.store_for_tests().begin_write().unwrap();
            f(&wtx);
            wtx.commit().unwrap();
            node.generate_blocks(1, &Script::new_p2pkh(&[8; 20]))
                .unwrap();
        };
        // A row for an address with no coins at all.
        let stray = addr_utxo_key(&[9; 20], 1, &[1; 36]);
        damage(&|w| {
            w.open_table(ADDR_COINS)
                .unwrap()
                .insert(stray, [0; 9])
                .unwrap();
        });
        assert!(verify_chain(&node, 4, 0).is_err());
        damage(&|w| {
            w.open_table(ADDR_COINS).unwrap().remove(stray).unwrap();
        });
        verify_chain(&node, 4, 0).unwrap();

        // A history row gone missing.
        node.wait_for_indexes_for_tests();
        let first = store::read::address_txids(&node.begin_read().unwrap(), &pkh).unwrap()[0];
        damage(&|w| {
            let key = addr_tx_key(&pkh, first.0, &first.1);
            assert!(w
                .open_table(ADDR_TXS)
                .unwrap()
                .remove(key)
                .unwrap()
                .is_some());
        });
        assert!(verify_chain(&node, 4, 0).is_err());
        drop(node);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
