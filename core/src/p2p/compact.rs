//! Compact blocks (BIP152): the `sendcmpct`, `cmpctblock`, `getblocktxn` and `blocktxn`
//! payloads, short transaction IDs, and rebuilding a block from a compact block and the
//! transactions a node already holds (Bitcoin Core's `blockencodings.cpp`).
//!
//! A compact block is the header, a random nonce, a 6-byte short ID per transaction and a few
//! transactions sent in full ("prefilled", at least the coinbase). A short ID is SipHash-2-4
//! of the txid, keyed with the first two little-endian 64-bit words of
//! SHA-256(header ‖ nonce), cut to its low 48 bits. We speak version 1 (txids: our
//! transactions have no witnesses).
//!
//! Decoding bounds everything a peer controls: at most [`MAX_COMPACT_TXS`] transactions per
//! message, differential indexes checked for overflow past 16 bits (as Core), every prefilled
//! index inside the block, and pre-allocation capped.

use std::collections::HashMap;
use std::hash::Hasher;
use std::io::{Read, Write};

use sha2::{Digest, Sha256};
use siphasher::sip::SipHasher24;

use crate::block::Header;
use crate::encode::{self, CompactSize, Decodable, Encodable};
use crate::merkle::MerkleTxids;
use crate::{Block, BlockHash, Transaction, Txid};

/// The compact block version we speak (BIP152 version 1: short IDs of txids).
pub const COMPACT_VERSION: u64 = 1;

/// The lowest protocol version that speaks compact blocks (Core's `SHORT_IDS_BLOCKS_VERSION`):
/// older peers are never sent `sendcmpct`, as Core does not send it to them.
pub const SHORT_IDS_BLOCKS_VERSION: i32 = 70_014;

/// Most transactions one compact block, `getblocktxn` or `blocktxn` may name: indexes are
/// 16-bit in Bitcoin Core, so no block of more than 65,536 transactions can be relayed
/// compactly (a 1 MB block holds at most about 16,000 of ours).
pub const MAX_COMPACT_TXS: usize = 1 << 16;

/// Vector entries reserved ahead of reading; longer vectors grow as their bytes arrive.
const PREALLOC: usize = 1_024;

/// A short transaction ID: the low 48 bits of a keyed SipHash-2-4 of the txid.
pub type ShortId = u64;

/// The two SipHash keys of a compact block: the first two little-endian 64-bit words of
/// SHA-256 (single, not double) of the 80-byte header followed by the nonce (little-endian).
pub fn short_id_keys(header: &Header, nonce: u64) -> (u64, u64) {
    let mut hasher = Sha256::new();
    hasher.update(header.to_bytes());
    hasher.update(nonce.to_le_bytes());
    let digest = hasher.finalize();
    let word = |i: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&digest[8 * i..8 * i + 8]);
        u64::from_le_bytes(w)
    };
    (word(0), word(1))
}

/// The short ID of `txid` under `keys`: SipHash-2-4 of its 32 bytes (internal order, as
/// hashed), keeping the low 48 bits.
pub fn short_id(keys: (u64, u64), txid: &Txid) -> ShortId {
    let mut hasher = SipHasher24::new_with_keys(keys.0, keys.1);
    hasher.write(&txid.0);
    hasher.finish() & 0xffff_ffff_ffff
}

/// `sendcmpct`: whether the sender wants new blocks pushed as compact blocks before it asks
/// (high-bandwidth mode) or announced and fetched on request (low-bandwidth mode), and the
/// compact block version it speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SendCmpct {
    /// True: send `cmpctblock` unasked (high bandwidth); false: announce, then serve requests.
    pub high_bandwidth: bool,
    /// Compact block version (we speak [`COMPACT_VERSION`]).
    pub version: u64,
}

/// A transaction sent in full inside a compact block, at its position in the block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PrefilledTx {
    /// Its index in the block (absolute; differential on the wire).
    pub index: usize,
    /// The transaction.
    pub tx: Transaction,
}

/// `cmpctblock`: a block as its header, a nonce, short IDs of the transactions the receiver
/// probably has, and the others in full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CompactBlock {
    /// The block's header.
    pub header: Header,
    /// Salt for the short ID keys.
    pub nonce: u64,
    /// Short IDs of the transactions not prefilled, in block order.
    pub short_ids: Vec<ShortId>,
    /// Transactions sent in full, by increasing index.
    pub prefilled: Vec<PrefilledTx>,
}

/// `getblocktxn`: the transactions of a block, by index, that a compact block left us without.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GetBlockTxn {
    /// The block.
    pub block_hash: BlockHash,
    /// Indexes in the block, increasing (differential on the wire).
    pub indexes: Vec<usize>,
}

/// `blocktxn`: the transactions a `getblocktxn` asked for, in its order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockTxn {
    /// The block.
    pub block_hash: BlockHash,
    /// The transactions.
    pub txs: Vec<Transaction>,
}

/// Why a compact block could not become a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CompactError {
    /// Two transactions of the compact block have the same short ID: it cannot be rebuilt
    /// (an accident or a grinder), so the full block is needed. Not the sender's fault.
    #[error("compact block has duplicate short ids")]
    DuplicateShortIds,
    /// A `blocktxn` for another block, or with a different number of transactions than asked
    /// for: the peer broke the protocol.
    #[error("blocktxn does not answer the getblocktxn sent")]
    WrongBlockTxn,
    /// The rebuilt transactions do not hash to the header's merkle root (a short ID
    /// collision picked a wrong transaction, or the block is mutated): ask for the full block.
    #[error("rebuilt block does not match its merkle root")]
    MerkleMismatch,
}

impl CompactBlock {
    /// The compact form of `block` with `nonce`: the coinbase prefilled, every other
    /// transaction by short ID (as Bitcoin Core sends them).
    pub fn from_block(block: &Block, nonce: u64) -> CompactBlock {
        CompactBlock::with_txids(block, &block.compute_txids(), nonce)
    }

    /// [`CompactBlock::from_block`] for a block whose txids (`txids`, in block order) are
    /// known already.
    pub fn with_txids(block: &Block, txids: &[Txid], nonce: u64) -> CompactBlock {
        let keys = short_id_keys(&block.header, nonce);
        CompactBlock {
            header: block.header,
            nonce,
            short_ids: txids
                .iter()
                .skip(1)
                .map(|txid| short_id(keys, txid))
                .collect(),
            prefilled: block
                .txdata
                .first()
                .map(|tx| PrefilledTx {
                    index: 0,
                    tx: tx.clone(),
                })
                .into_iter()
                .collect(),
        }
    }

    /// The block's hash.
    pub fn block_hash(&self) -> BlockHash {
        self.header.compute_block_hash()
    }

    /// Number of transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.short_ids.len() + self.prefilled.len()
    }

    /// Starts rebuilding the block: prefilled transactions in place, and each short ID
    /// matched against `candidates` (the mempool's and the orphan pool's transactions, with
    /// their txids). A short ID two different candidates match is left empty, to be asked
    /// for (as Core does). Fails if the compact block repeats a short ID.
    pub fn reconstruct<'a>(
        &self,
        candidates: impl IntoIterator<Item = (Txid, &'a Transaction)>,
    ) -> Result<PartialBlock, CompactError> {
        let count = self.tx_count();
        let mut slots: Vec<Option<(Txid, Transaction)>> = vec![None; count];
        let mut collided = vec![false; count];
        for p in &self.prefilled {
            // Decoding checked that every index is inside the block and increasing.
            if let Some(slot) = slots.get_mut(p.index) {
                *slot = Some((p.tx.compute_txid(), p.tx.clone()));
            }
        }
        let mut by_short_id: HashMap<ShortId, usize> = HashMap::with_capacity(count);
        let mut next = self.short_ids.iter();
        for (index, slot) in slots.iter().enumerate() {
            if slot.is_some() {
                continue;
            }
            let Some(id) = next.next() else { break };
            if by_short_id.insert(*id, index).is_some() {
                return Err(CompactError::DuplicateShortIds);
            }
        }
        let keys = short_id_keys(&self.header, self.nonce);
        for (txid, tx) in candidates {
            let Some(&index) = by_short_id.get(&short_id(keys, &txid)) else {
                continue;
            };
            if collided[index] {
                continue;
            }
            match &slots[index] {
                None => slots[index] = Some((txid, tx.clone())),
                Some((held, _)) if *held == txid => {}
                Some(_) => {
                    // Two transactions we hold share this short ID: ask for the real one.
                    slots[index] = None;
                    collided[index] = true;
                }
            }
        }
        Ok(PartialBlock {
            header: self.header,
            slots,
        })
    }
}

/// A block being rebuilt from a compact block: the transactions found so far, and the
/// indexes still missing.
#[derive(Clone, Debug)]
pub struct PartialBlock {
    header: Header,
    slots: Vec<Option<(Txid, Transaction)>>,
}

impl PartialBlock {
    /// The block's hash.
    pub fn block_hash(&self) -> BlockHash {
        self.header.compute_block_hash()
    }

    /// Indexes of the transactions still missing, increasing (what `getblocktxn` asks for).
    pub fn missing(&self) -> Vec<usize> {
        (0..self.slots.len())
            .filter(|i| self.slots[*i].is_none())
            .collect()
    }

    /// Number of transactions in the block.
    pub fn tx_count(&self) -> usize {
        self.slots.len()
    }

    /// The block and its txids (with their merkle root), with `txs` (the answer to
    /// `getblocktxn`, in its order) in the missing places; its merkle root checked against the
    /// header (which also rejects the CVE-2012-2459 mutation). `WrongBlockTxn` if `txs` are more or fewer than missing.
    pub fn fill(self, txs: Vec<Transaction>) -> Result<(Block, MerkleTxids), CompactError> {
        let missing = self.slots.iter().filter(|s| s.is_none()).count();
        if txs.len() != missing {
            return Err(CompactError::WrongBlockTxn);
        }
        let mut given = txs.into_iter();
        let mut txdata = Vec::with_capacity(self.slots.len());
        let mut txids = Vec::with_capacity(self.slots.len());
        for slot in self.slots {
            let (txid, tx) = match slot {
                Some(held) => held,
                None => {
                    let tx = given.next().ok_or(CompactError::WrongBlockTxn)?;
                    (tx.compute_txid(), tx)
                }
            };
            txids.push(txid);
            txdata.push(tx);
        }
        let txids = MerkleTxids::new(txids);
        if txids.mutated() || txids.root() != self.header.merkle_root {
            return Err(CompactError::MerkleMismatch);
        }
        Ok((
            Block {
                header: self.header,
                txdata,
            },
            txids,
        ))
    }
}

/// Writes absolute, increasing `indexes` differentially (each after the first as its distance
/// from the previous one, minus one).
fn encode_indexes<W: Write + ?Sized>(
    w: &mut W,
    indexes: impl Iterator<Item = usize>,
    mut each: impl FnMut(&mut W, usize) -> std::io::Result<usize>,
) -> std::io::Result<usize> {
    let mut n = 0;
    let mut prev: Option<usize> = None;
    for (i, index) in indexes.enumerate() {
        let diff = match prev {
            None => index,
            Some(p) => index.saturating_sub(p + 1),
        };
        n += CompactSize(diff as u64).consensus_encode(w)?;
        n += each(w, i)?;
        prev = Some(index);
    }
    Ok(n)
}

/// Reads the next differential index after `prev`: at most 16 bits (Core's "indexes
/// overflowed 16 bits"), so the sum can never wrap.
fn decode_index<R: Read + ?Sized>(r: &mut R, prev: Option<usize>) -> Result<usize, encode::Error> {
    let diff = CompactSize::consensus_decode(r)?.0;
    let index = match prev {
        None => Some(diff),
        Some(p) => diff.checked_add(p as u64 + 1),
    };
    match index {
        Some(i) if i < MAX_COMPACT_TXS as u64 => Ok(i as usize),
        _ => Err(encode::Error::Invalid(
            "differential index overflows 16 bits",
        )),
    }
}

/// Reads a count of at most [`MAX_COMPACT_TXS`].
fn decode_count<R: Read + ?Sized>(r: &mut R) -> Result<usize, encode::Error> {
    let n = encode::read_len(r)?;
    if n > MAX_COMPACT_TXS {
        return Err(encode::Error::Invalid("more than 65,536 transactions"));
    }
    Ok(n)
}

impl Encodable for SendCmpct {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<usize> {
        Ok(self.high_bandwidth.consensus_encode(w)? + self.version.consensus_encode(w)?)
    }
}

impl Decodable for SendCmpct {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        Ok(SendCmpct {
            high_bandwidth: bool::consensus_decode(r)?,
            version: u64::consensus_decode(r)?,
        })
    }
}

impl Encodable for CompactBlock {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<usize> {
        let mut n = self.header.consensus_encode(w)? + self.nonce.consensus_encode(w)?;
        n += CompactSize(self.short_ids.len() as u64).consensus_encode(w)?;
        for id in &self.short_ids {
            w.write_all(&id.to_le_bytes()[..6])?;
            n += 6;
        }
        n += CompactSize(self.prefilled.len() as u64).consensus_encode(w)?;
        n += encode_indexes(w, self.prefilled.iter().map(|p| p.index), |w, i| {
            self.prefilled[i].tx.consensus_encode(w)
        })?;
        Ok(n)
    }
}

impl Decodable for CompactBlock {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        let header = Header::consensus_decode(r)?;
        let nonce = u64::consensus_decode(r)?;
        let n = decode_count(r)?;
        let mut short_ids = Vec::with_capacity(n.min(PREALLOC));
        for _ in 0..n {
            let mut id = [0u8; 8];
            r.read_exact(&mut id[..6])?;
            short_ids.push(u64::from_le_bytes(id));
        }
        let m = decode_count(r)?;
        if n + m > MAX_COMPACT_TXS {
            return Err(encode::Error::Invalid("more than 65,536 transactions"));
        }
        let mut prefilled: Vec<PrefilledTx> = Vec::with_capacity(m.min(PREALLOC));
        for _ in 0..m {
            let index = decode_index(r, prefilled.last().map(|p| p.index))?;
            if index >= n + m {
                return Err(encode::Error::Invalid(
                    "prefilled index past the block's end",
                ));
            }
            prefilled.push(PrefilledTx {
                index,
                tx: Transaction::consensus_decode(r)?,
            });
        }
        Ok(CompactBlock {
            header,
            nonce,
            short_ids,
            prefilled,
        })
    }
}

impl Encodable for GetBlockTxn {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<usize> {
        let mut n = self.block_hash.consensus_encode(w)?;
        n += CompactSize(self.indexes.len() as u64).consensus_encode(w)?;
        n += encode_indexes(w, self.indexes.iter().copied(), |_, _| Ok(0))?;
        Ok(n)
    }
}

impl Decodable for GetBlockTxn {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        let block_hash = BlockHash::consensus_decode(r)?;
        let n = decode_count(r)?;
        let mut indexes: Vec<usize> = Vec::with_capacity(n.min(PREALLOC));
        for _ in 0..n {
            indexes.push(decode_index(r, indexes.last().copied())?);
        }
        Ok(GetBlockTxn {
            block_hash,
            indexes,
        })
    }
}

impl Encodable for BlockTxn {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<usize> {
        Ok(self.block_hash.consensus_encode(w)? + self.txs.consensus_encode(w)?)
    }
}

impl Decodable for BlockTxn {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        let block_hash = BlockHash::consensus_decode(r)?;
        let n = decode_count(r)?;
        let mut txs = Vec::with_capacity(n.min(PREALLOC));
        for _ in 0..n {
            txs.push(Transaction::consensus_decode(r)?);
        }
        Ok(BlockTxn { block_hash, txs })
    }
}

#[cfg(test)]
mod tests;
