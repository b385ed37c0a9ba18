//! Connecting and disconnecting one block in the tables: the UTXO set, undo data, the tx
//! index, the address index and the active chain, all in the caller's write transaction (left
//! uncommitted). The two functions are each other's inverse.
//!
//! The store checks no rule beyond what only it can see (an input that is not in the UTXO set,
//! an output that already is); everything else the caller decides in the callback
//! [`connect_block`] hands each transaction's spent coins to.

use std::collections::HashSet;

use chaincore::encode::serialize;
use chaincore::validation::Coin;
use chaincore::{Block, BlockHash, OutPoint, Transaction, Txid};
use redb::WriteTransaction;

use super::tables::{ADDR_TXS, ADDR_UTXOS, BLOCKS, TX_INDEX, UNDO, UTXOS};
use super::{
    addr_tx_key, addr_utxo_key, decode, outpoint_key, read, write, IndexEntry, StoreError,
};

/// Blocks with at least this many transactions write their address index on a second thread
/// while the coin pass runs.
pub const PARALLEL_INDEX_MIN_TXS: usize = 64;

/// What the tables refuse in a block being connected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// An input spends no unspent output.
    MissingInput {
        /// The spending transaction.
        txid: Txid,
        /// Which of its inputs.
        input: usize,
        /// The outpoint it names.
        outpoint: OutPoint,
    },
    /// A transaction creates an output that is already unspent (a duplicate txid).
    DuplicateOutput {
        /// The transaction.
        txid: Txid,
    },
}

/// Connects `block` (`hash`, its `txids`) at `height` on top of the tip in `wtx`: spends and
/// creates coins (`OP_RETURN` outputs never enter the set), writes the tx index, the address
/// index, the undo data, the active-chain row and the tip. A `new` block is stored with its
/// index entry in the same transaction. `on_spending` sees each non-coinbase transaction, its
/// txid and the coins its inputs spend (input order) once they are spent, in block order, and
/// may refuse it.
pub fn connect_block<'b, E>(
    wtx: &WriteTransaction,
    block: &'b Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    new: Option<&IndexEntry>,
    on_spending: impl FnMut(&'b Transaction, Txid, &[Coin]) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<StoreError> + From<Fault>,
{
    if let Some(entry) = new {
        write::block(wtx, hash, block)?;
        write::index(wtx, hash, entry)?;
    }
    let (send, spent_addrs) = std::sync::mpsc::channel();
    let spent = if block.txdata.len() < PARALLEL_INDEX_MIN_TXS {
        let spent = spend_and_create(wtx, block, hash, txids, height, on_spending, send)?;
        write::connect_address_index(wtx, height, block, txids, spent_addrs)?;
        spent
    } else {
        std::thread::scope(|s| {
            let indexer =
                s.spawn(|| write::connect_address_index(wtx, height, block, txids, spent_addrs));
            let spent = spend_and_create(wtx, block, hash, txids, height, on_spending, send);
            let indexed = indexer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let spent = spent?;
            indexed?;
            Ok::<_, E>(spent)
        })?
    };
    write::undo(wtx, hash, Some(&spent))?;
    write::active(wtx, height, Some(hash))?;
    write::tip(wtx, hash)?;
    Ok(())
}

/// The coin pass of [`connect_block`]; sends each transaction's spent P2PKH coins to the
/// address index writer, in block order. Returns every spent coin in spending order (the undo
/// data).
fn spend_and_create<'b, E>(
    wtx: &WriteTransaction,
    block: &'b Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    mut on_spending: impl FnMut(&'b Transaction, Txid, &[Coin]) -> Result<(), E>,
    spent_addrs: std::sync::mpsc::Sender<write::SpentAddrs>,
) -> Result<Vec<Coin>, E>
where
    E: From<StoreError> + From<Fault>,
{
    let mut utxos = wtx.open_table(UTXOS).map_err(StoreError::from)?;
    let mut tx_index = wtx.open_table(TX_INDEX).map_err(StoreError::from)?;
    let mut spent: Vec<Coin> = Vec::new();
    for (pos, (tx, txid)) in block.txdata.iter().zip(txids).enumerate() {
        let mut addrs = Vec::new();
        if !tx.is_coinbase() {
            let first = spent.len();
            for (input, txin) in tx.input.iter().enumerate() {
                let key = outpoint_key(&txin.previous_output);
                let row = utxos.remove(key).map_err(StoreError::from)?;
                let coin: Coin = match row {
                    Some(v) => decode("utxos", v.value())?,
                    None => {
                        return Err(Fault::MissingInput {
                            txid: *txid,
                            input,
                            outpoint: txin.previous_output,
                        }
                        .into())
                    }
                };
                if let Some(pkh) = coin.output.script_pubkey.p2pkh_hash() {
                    addrs.push((pkh, coin.height, key));
                }
                spent.push(coin);
            }
            on_spending(tx, *txid, &spent[first..])?;
        }
        for (vout, output) in tx.output.iter().enumerate() {
            if output.script_pubkey.op_return_data().is_some() {
                continue; // provably unspendable: never enters the UTXO set
            }
            let key = outpoint_key(&OutPoint {
                txid: *txid,
                vout: vout as u32,
            });
            let coin = Coin {
                output: output.clone(),
                height,
                is_coinbase: pos == 0,
            };
            let existed = utxos
                .insert(key, serialize(&coin).as_slice())
                .map_err(StoreError::from)?
                .is_some();
            if existed {
                return Err(Fault::DuplicateOutput { txid: *txid }.into());
            }
        }
        let mut location = [0u8; 36];
        location[..32].copy_from_slice(hash.as_bytes());
        location[32..].copy_from_slice(&(pos as u32).to_le_bytes());
        tx_index
            .insert(txid.to_byte_array(), location)
            .map_err(StoreError::from)?;
        // The index writer stops early only on its own error, which the caller reports.
        let _ = spent_addrs.send(addrs);
    }
    Ok(spent)
}

/// Disconnects the tip block `hash` at `height` in `wtx` using its undo data: removes the
/// coins it created, restores the ones it spent, and undoes its tx index, address index,
/// undo, active-chain and tip rows. Returns the block.
pub fn disconnect_block(
    wtx: &WriteTransaction,
    hash: &BlockHash,
    height: u32,
) -> Result<Block, StoreError> {
    let missing = |what| StoreError::Missing {
        what,
        key: hash.to_string(),
    };
    let block = read::block_in(&wtx.open_table(BLOCKS)?, hash)?.ok_or_else(|| missing("block"))?;
    let undo =
        read::undo_in(&wtx.open_table(UNDO)?, hash)?.ok_or_else(|| missing("undo data of"))?;
    let txids: Vec<Txid> = block.compute_txids();
    let in_block: HashSet<Txid> = txids.iter().copied().collect();
    {
        let mut utxos = wtx.open_table(UTXOS)?;
        let mut addr_utxos = wtx.open_table(ADDR_UTXOS)?;
        let mut addr_txs = wtx.open_table(ADDR_TXS)?;
        let mut tx_index = wtx.open_table(TX_INDEX)?;
        let mut undo_iter = undo.iter();
        for (tx, txid) in block.txdata.iter().zip(&txids) {
            for (vout, output) in tx.output.iter().enumerate() {
                let key = outpoint_key(&OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                });
                utxos.remove(key)?;
                if let Some(pkh) = output.script_pubkey.p2pkh_hash() {
                    addr_utxos.remove(addr_utxo_key(&pkh, height, &key))?;
                    addr_txs.remove(addr_tx_key(&pkh, height, txid))?;
                }
            }
            if !tx.is_coinbase() {
                for input in &tx.input {
                    let coin = undo_iter
                        .next()
                        .ok_or_else(|| missing("a spent coin in the undo data of"))?;
                    let key = outpoint_key(&input.previous_output);
                    let pkh = coin.output.script_pubkey.p2pkh_hash();
                    if let Some(pkh) = pkh {
                        addr_txs.remove(addr_tx_key(&pkh, height, txid))?;
                    }
                    if in_block.contains(&input.previous_output.txid) {
                        continue; // created and spent inside this block
                    }
                    utxos.insert(key, serialize(coin).as_slice())?;
                    if let Some(pkh) = pkh {
                        addr_utxos.insert(addr_utxo_key(&pkh, coin.height, &key), ())?;
                    }
                }
            }
            tx_index.remove(txid.to_byte_array())?;
        }
    }
    write::undo(wtx, hash, None)?;
    write::active(wtx, height, None)?;
    write::tip(wtx, &block.header.prev_blockhash)?;
    Ok(block)
}
