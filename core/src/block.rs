//! Block headers and blocks.

use std::io::{Read, Write};

use crate::encode::{self, impl_consensus_encoding, Decodable, Encodable};
use crate::hash::{BlockHash, Sha256dWriter, TxMerkleNode, Txid};
use crate::merkle::compute_merkle_root;
use crate::pow::Target;
use crate::transaction::{encoded_size, Transaction};

/// Size of a serialized header.
pub const HEADER_SIZE: usize = 80;

/// The 80-byte block header.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Header {
    /// Block version.
    pub version: i32,
    /// Hash of the previous block's header.
    pub prev_blockhash: BlockHash,
    /// Merkle root of the block's transactions.
    pub merkle_root: TxMerkleNode,
    /// Block time, Unix seconds.
    pub time: u32,
    /// The target in compact form.
    pub bits: u32,
    /// Nonce varied by miners.
    pub nonce: u32,
}
impl_consensus_encoding!(
    Header,
    version,
    prev_blockhash,
    merkle_root,
    time,
    bits,
    nonce
);

impl Header {
    /// The block hash: SHA-256d of the 80-byte header.
    pub fn compute_block_hash(&self) -> BlockHash {
        let mut w = Sha256dWriter::default();
        self.consensus_encode(&mut w)
            .expect("hashing writer cannot fail");
        BlockHash(w.finish())
    }

    /// The 80 serialized bytes.
    pub fn to_bytes(&self) -> [u8; HEADER_SIZE] {
        let mut out = [0u8; HEADER_SIZE];
        self.consensus_encode(&mut &mut out[..])
            .expect("a header is exactly 80 bytes");
        out
    }

    /// The target `bits` encodes, or `None` if it is negative, zero or overflows.
    pub fn target(&self) -> Option<Target> {
        Target::from_compact(self.bits)
    }
}

/// A block: a header and its transactions, coinbase first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Block {
    /// The header.
    pub header: Header,
    /// The transactions.
    pub txdata: Vec<Transaction>,
}

impl Encodable for Block {
    fn consensus_encode<W: Write + ?Sized>(&self, w: &mut W) -> std::io::Result<usize> {
        Ok(self.header.consensus_encode(w)? + self.txdata.consensus_encode(w)?)
    }
}

impl Decodable for Block {
    fn consensus_decode<R: Read + ?Sized>(r: &mut R) -> Result<Self, encode::Error> {
        Ok(Block {
            header: Header::consensus_decode(r)?,
            txdata: Vec::consensus_decode(r)?,
        })
    }
}

impl Block {
    /// The block hash (of the header).
    pub fn block_hash(&self) -> BlockHash {
        self.header.compute_block_hash()
    }

    /// The txids of the block's transactions, in order.
    pub fn compute_txids(&self) -> Vec<Txid> {
        self.txdata.iter().map(Transaction::compute_txid).collect()
    }

    /// The merkle root of the transactions and whether the tree is mutated (see
    /// [`compute_merkle_root`]).
    pub fn compute_merkle_root(&self) -> (TxMerkleNode, bool) {
        compute_merkle_root(&self.compute_txids())
    }

    /// Serialized size in bytes.
    pub fn size(&self) -> usize {
        encoded_size(self)
    }

    /// The coinbase transaction, if the block has one first.
    pub fn coinbase(&self) -> Option<&Transaction> {
        self.txdata.first().filter(|tx| tx.is_coinbase())
    }
}

impl std::str::FromStr for Block {
    type Err = encode::Error;

    /// Parses a block from its serialization in hex.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bytes = hex::decode(s).map_err(|_| encode::Error::Invalid("not hex"))?;
        encode::deserialize(&bytes)
    }
}
