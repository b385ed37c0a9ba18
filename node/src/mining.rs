//! Block templates (for `getblocktemplate` and the in-process miner) and the in-process miner
//! behind `generatetoaddress`.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::Arc;

use chaincore::block::Header;
use chaincore::merkle::MerkleTxids;
use chaincore::pow::{block_subsidy, Target};
use chaincore::validation::{coinbase_height_prefix, MAX_BLOCK_SIZE};
use chaincore::{Amount, Block, BlockHash, Script, Transaction};

use crate::chain::BlockIndex;
use crate::mempool::{Entry, Mempool};

/// Bytes kept free in a template for the header, the transaction count and the coinbase.
pub const COINBASE_RESERVE: usize = 1_000;

/// Everything needed to build a block on the current tip.
#[derive(Debug, Clone)]
pub struct Template {
    /// Block version.
    pub version: i32,
    /// The tip the block builds on.
    pub prev_blockhash: BlockHash,
    /// Height of the new block.
    pub height: u32,
    /// Required compact target.
    pub bits: u32,
    /// Block time to use (at least median time past + 1).
    pub curtime: u32,
    /// Earliest allowed block time.
    pub mintime: u32,
    /// Subsidy plus fees.
    pub coinbase_value: Amount,
    /// Chosen transactions, parents first, with fee and size.
    pub transactions: Vec<Arc<Entry>>,
    /// The mempool sequence number it was built on (long-poll ids).
    pub mempool_seq: u64,
}

impl Template {
    /// Builds a template from the chain tip and the mempool (at sequence `mempool_seq`) at time
    /// `now`.
    pub fn new(chain: &BlockIndex, mempool: &Mempool, mempool_seq: u64, now: u64) -> Template {
        let tip = *chain.tip();
        let height = tip.height + 1;
        let mtp = chain.median_time_past(&chain.tip_hash());
        let mintime = u32::try_from(mtp + 1).unwrap_or(u32::MAX);
        let transactions: Vec<Arc<Entry>> = mempool
            .select_for_block(MAX_BLOCK_SIZE - COINBASE_RESERVE)
            .into_iter()
            .filter(|e| e.tx.is_final(height, mtp))
            .collect();
        let fees: Amount = transactions.iter().map(|e| e.fee).sum();
        Template {
            version: 1,
            prev_blockhash: chain.tip_hash(),
            height,
            bits: chain.next_bits(&tip),
            curtime: u32::try_from(now).unwrap_or(u32::MAX).max(mintime),
            mintime,
            coinbase_value: block_subsidy(height) + fees,
            transactions,
            mempool_seq,
        }
    }

    /// The target the block hash must meet.
    pub fn target(&self) -> Option<Target> {
        Target::from_compact(self.bits)
    }

    /// A block paying the coinbase to `script_pubkey`, with `extranonce` after the height push;
    /// nonce 0, merkle root set; with its txids (the entries' own after the coinbase's) and
    /// their merkle root.
    pub fn block(&self, script_pubkey: &Script, extranonce: u64) -> (Block, MerkleTxids) {
        let mut script_sig = coinbase_height_prefix(self.height);
        script_sig.push_slice(&extranonce.to_le_bytes());
        let coinbase =
            Transaction::new_coinbase(script_sig, self.coinbase_value, script_pubkey.clone());
        let mut txdata = Vec::with_capacity(self.transactions.len() + 1);
        txdata.push(coinbase);
        txdata.extend(self.transactions.iter().map(|e| e.tx.clone()));
        let mut block = Block {
            header: Header {
                version: self.version,
                prev_blockhash: self.prev_blockhash,
                merkle_root: Default::default(),
                time: self.curtime,
                bits: self.bits,
                nonce: 0,
            },
            txdata,
        };
        let txids = MerkleTxids::new(
            std::iter::once(block.txdata[0].compute_txid())
                .chain(self.transactions.iter().map(|e| e.txid))
                .collect(),
        );
        block.header.merkle_root = txids.root();
        (block, txids)
    }
}

/// Searches nonces on `threads` threads until the header meets its target, `stop` is set, or
/// every nonce was tried. Returns the solved header.
pub fn solve(header: Header, threads: usize, stop: &AtomicBool) -> Option<Header> {
    let target = Target::from_compact(header.bits)?;
    // Easy targets (regtest) are met within a few hashes: skip starting threads.
    let mut h = header;
    for nonce in 0..64 {
        h.nonce = nonce;
        if target.is_met_by(&h.compute_block_hash()) {
            return Some(h);
        }
    }
    let found = AtomicBool::new(false);
    let winner = AtomicU32::new(0);
    let threads = threads.max(1) as u32;
    std::thread::scope(|s| {
        for start in 0..threads {
            let (found, winner) = (&found, &winner);
            s.spawn(move || {
                let mut h = header;
                let mut nonce = 64 + start;
                loop {
                    if found.load(Ordering::Acquire) || stop.load(Ordering::Acquire) {
                        return;
                    }
                    h.nonce = nonce;
                    if target.is_met_by(&h.compute_block_hash()) {
                        winner.store(nonce, Ordering::Release);
                        found.store(true, Ordering::Release);
                        return;
                    }
                    match nonce.checked_add(threads) {
                        Some(n) => nonce = n,
                        None => return,
                    }
                }
            });
        }
    });
    found.load(Ordering::Acquire).then(|| Header {
        nonce: winner.load(Ordering::Acquire),
        ..header
    })
}
