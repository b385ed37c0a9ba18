//! Connecting and disconnecting one block: the UTXO changes (gathered in [`Changes`] over the
//! coins cache and the UTXO table), the undo data, the active chain and the tip, in the
//! caller's write transaction (left uncommitted). The two are each other's inverse. The
//! indexes follow later, from the stored block and undo data (`crate::indexer`).
//!
//! The store checks no rule beyond what only it can see (an input that is not in the UTXO set,
//! an output that already is); everything else the caller decides in the callback
//! [`connect_block`] hands each transaction's spent coins to.

use std::collections::HashSet;

use chaincore::validation::Coin;
use chaincore::{Block, BlockHash, OutPoint, Transaction, Txid};
use redb::{ReadableTable, WriteTransaction};

use super::coins::{Changes, CoinsCache};
use super::tables::{BLOCKS, UNDO, UTXOS};
use super::{read, write, IndexEntry, StoreError};

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

/// Connects `block` (`hash`, its `txids`) at `height` on top of the tip in `wtx`: works out
/// the coins it spends and creates (`OP_RETURN` outputs never enter the set) over `coins`,
/// and writes the undo data, the active-chain row and the tip. A `new` block is stored with
/// its index entry in the same transaction. `on_spending` sees each non-coinbase transaction,
/// its txid and the coins its inputs spend (input order) once they are spent, in block order,
/// and may refuse it. Returns the UTXO changes, for the cache to take once `wtx` commits.
#[allow(clippy::too_many_arguments)] // one block's identity and place, and the callback
pub fn connect_block<'b, E>(
    wtx: &WriteTransaction,
    coins: &CoinsCache,
    block: &'b Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    new: Option<&IndexEntry>,
    on_spending: impl FnMut(&'b Transaction, Txid, &[Coin]) -> Result<(), E>,
) -> Result<Changes, E>
where
    E: From<StoreError> + From<Fault>,
{
    if let Some(entry) = new {
        write::block(wtx, hash, block)?;
        write::index(wtx, hash, entry)?;
    }
    let (changes, spent) = {
        let utxos = wtx.open_table(UTXOS).map_err(StoreError::from)?;
        spend_and_create(&utxos, coins, block, txids, height, on_spending)?
    };
    write::undo(wtx, hash, &spent)?;
    write::active(wtx, height, Some(hash))?;
    write::tip(wtx, hash)?;
    Ok(changes)
}

/// The coin pass: spends each input and creates each output of `block` at `height` as
/// `coins` over `utxos` see them. Returns the changes and every spent coin in spending order
/// (the undo data).
pub fn spend_and_create<'b, E>(
    utxos: &impl ReadableTable<[u8; 36], &'static [u8]>,
    coins: &CoinsCache,
    block: &'b Block,
    txids: &[Txid],
    height: u32,
    mut on_spending: impl FnMut(&'b Transaction, Txid, &[Coin]) -> Result<(), E>,
) -> Result<(Changes, Vec<Coin>), E>
where
    E: From<StoreError> + From<Fault>,
{
    let mut changes = Changes::default();
    let mut spent: Vec<Coin> = Vec::new();
    for (pos, (tx, txid)) in block.txdata.iter().zip(txids).enumerate() {
        if !tx.is_coinbase() {
            let first = spent.len();
            for (input, txin) in tx.input.iter().enumerate() {
                match changes.spend(coins, utxos, &txin.previous_output)? {
                    Some(coin) => spent.push(coin),
                    None => {
                        return Err(Fault::MissingInput {
                            txid: *txid,
                            input,
                            outpoint: txin.previous_output,
                        }
                        .into())
                    }
                }
            }
            on_spending(tx, *txid, &spent[first..])?;
        }
        for (vout, output) in tx.output.iter().enumerate() {
            if output.script_pubkey.op_return_data().is_some() {
                continue; // provably unspendable: never enters the UTXO set
            }
            let outpoint = OutPoint {
                txid: *txid,
                vout: vout as u32,
            };
            let coin = Coin {
                output: output.clone(),
                height,
                is_coinbase: pos == 0,
            };
            if !changes.create(coins, outpoint, &coin) {
                return Err(Fault::DuplicateOutput { txid: *txid }.into());
            }
        }
    }
    Ok((changes, spent))
}

/// The UTXO changes that undo `block` with its undo data `undo`: the coins it created go, the
/// ones it spent come back.
pub fn disconnect_changes(
    block: &Block,
    txids: &[Txid],
    undo: &[Coin],
    hash: &BlockHash,
) -> Result<Changes, StoreError> {
    let in_block: HashSet<Txid> = txids.iter().copied().collect();
    let mut changes = Changes::default();
    let mut undo_iter = undo.iter();
    for (tx, txid) in block.txdata.iter().zip(txids) {
        for (vout, output) in tx.output.iter().enumerate() {
            if output.script_pubkey.op_return_data().is_none() {
                changes.remove(OutPoint {
                    txid: *txid,
                    vout: vout as u32,
                });
            }
        }
        if !tx.is_coinbase() {
            for input in &tx.input {
                let coin = undo_iter.next().ok_or_else(|| StoreError::Missing {
                    what: "a spent coin in the undo data of",
                    key: hash.to_string(),
                })?;
                if in_block.contains(&input.previous_output.txid) {
                    continue; // created and spent inside this block
                }
                changes.restore(input.previous_output, coin);
            }
        }
    }
    Ok(changes)
}

/// Disconnects the tip block `hash` at `height` in `wtx` using its undo data (which stays:
/// the indexes and a replay after a crash may still need it): rewinds the active-chain and
/// tip rows and returns the block and the UTXO changes, for the cache to take once `wtx`
/// commits.
pub fn disconnect_block(
    wtx: &WriteTransaction,
    hash: &BlockHash,
    height: u32,
) -> Result<(Block, Changes), StoreError> {
    let (block, undo) = block_and_undo(&wtx.open_table(BLOCKS)?, &wtx.open_table(UNDO)?, hash)?;
    let changes = disconnect_changes(&block, &block.compute_txids(), &undo, hash)?;
    write::active(wtx, height, None)?;
    write::tip(wtx, &block.header.prev_blockhash)?;
    Ok((block, changes))
}

/// A stored block and its undo data, both of which must be there.
pub fn block_and_undo(
    blocks: &impl ReadableTable<[u8; 32], &'static [u8]>,
    undo: &impl ReadableTable<[u8; 32], &'static [u8]>,
    hash: &BlockHash,
) -> Result<(Block, Vec<Coin>), StoreError> {
    let missing = |what| StoreError::Missing {
        what,
        key: hash.to_string(),
    };
    let block = read::block_in(blocks, hash)?.ok_or_else(|| missing("block"))?;
    let undo = read::undo_in(undo, hash)?.ok_or_else(|| missing("undo data of"))?;
    Ok((block, undo))
}
