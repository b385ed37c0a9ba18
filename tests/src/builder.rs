//! Solved regtest blocks on any parent, built by the tests themselves: back-dated one second
//! per height from genesis (so no future-time wait however many are built), and from height
//! 101 on each spends its own branch's coinbase of 100 blocks before into two outputs.

use std::collections::HashMap;

use chaincore::key::PrivateKey;
use chaincore::pow::block_subsidy;
use chaincore::validation::{coinbase_height_prefix, next_work_required, COINBASE_MATURITY};
use chaincore::{Address, Amount, Block, BlockHash, Network, OutPoint, Script, Transaction, TxOut};

use crate::signed_spend;

const NET: Network = Network::Regtest;

/// A block the builder made, with what it needs to build on it.
struct Built {
    block: Block,
    height: u32,
}

/// Builds solved regtest blocks on any known parent.
pub struct Builder {
    key: PrivateKey,
    payout: Script,
    blocks: HashMap<BlockHash, Built>,
    tag: u32,
}

impl Builder {
    /// A builder that knows the genesis block.
    pub fn new() -> Builder {
        let key = PrivateKey::from_bytes(&[0x42; 32]).expect("a valid key");
        let payout = Address::p2pkh(key.public_key().pubkey_hash(), NET).script_pubkey();
        let genesis = NET.genesis_block().clone();
        let mut blocks = HashMap::new();
        blocks.insert(
            genesis.block_hash(),
            Built {
                block: genesis,
                height: 0,
            },
        );
        Builder {
            key,
            payout,
            blocks,
            tag: 0,
        }
    }

    /// The height of a block the builder made (or genesis).
    pub fn height(&self, hash: &BlockHash) -> u32 {
        self.blocks[hash].height
    }

    /// The hash of the ancestor of `hash` at `height`.
    pub fn ancestor(&self, hash: &BlockHash, height: u32) -> BlockHash {
        let mut cur = *hash;
        while self.blocks[&cur].height > height {
            cur = self.blocks[&cur].block.header.prev_blockhash;
        }
        cur
    }

    /// A new solved block on `parent`; from height 101 on it spends the coinbase of its own
    /// branch 100 blocks down.
    pub fn build(&mut self, parent: &BlockHash) -> Block {
        self.build_with(parent, Vec::new(), 0)
    }

    /// Builds `n` blocks on `parent`, one on the other, and submits each to `node`, which
    /// must accept it onto its best chain; returns their hashes in order.
    pub fn submit_chain(
        &mut self,
        node: &crate::Node,
        parent: &BlockHash,
        n: usize,
    ) -> Vec<BlockHash> {
        let mut parent = *parent;
        let mut hashes = Vec::with_capacity(n);
        for _ in 0..n {
            let block = self.build(&parent);
            parent = block.block_hash();
            hashes.push(parent);
            let raw = hex::encode(chaincore::encode::serialize(&block));
            assert_eq!(
                node.rpc("submitblock", serde_json::json!([raw])),
                serde_json::Value::Null,
                "block {parent} refused"
            );
        }
        hashes
    }

    /// The key every coinbase pays (to sign spends of them).
    pub fn key(&self) -> &PrivateKey {
        &self.key
    }

    /// The transactions of a block the builder made.
    pub fn transactions(&self, hash: &BlockHash) -> &[Transaction] {
        &self.blocks[hash].block.txdata
    }

    /// [`Builder::build`] with `extra` transactions after its own, paying `extra_fees` more.
    pub fn build_with(
        &mut self,
        parent: &BlockHash,
        extra: Vec<Transaction>,
        extra_fees: i64,
    ) -> Block {
        let prev = &self.blocks[parent];
        let height = prev.height + 1;
        let prev_time = prev.block.header.time;
        self.tag += 1;
        let mut txs = Vec::new();
        if height > COINBASE_MATURITY {
            let source = self.ancestor(parent, height - COINBASE_MATURITY);
            let coinbase = &self.blocks[&source].block.txdata[0];
            let value = coinbase.output[0].value.to_units();
            let half = Amount::from_units(value / 2 - 500);
            let out = TxOut {
                value: half,
                script_pubkey: self.payout.clone(),
            };
            txs.push(signed_spend(
                &self.key,
                &[OutPoint {
                    txid: coinbase.compute_txid(),
                    vout: 0,
                }],
                vec![out.clone(), out],
            ));
        }
        let fees: i64 = txs.iter().map(|_| 1_000).sum::<i64>() + extra_fees;
        txs.extend(extra);
        let mut script_sig = coinbase_height_prefix(height);
        script_sig.push_slice(&self.tag.to_le_bytes());
        let coinbase = Transaction::new_coinbase(
            script_sig,
            Amount::from_units(block_subsidy(height).to_units() + fees),
            self.payout.clone(),
        );
        let mut txdata = vec![coinbase];
        txdata.extend(txs);
        let mut block = Block {
            header: chaincore::block::Header {
                version: 1,
                prev_blockhash: *parent,
                merkle_root: Default::default(),
                time: prev_time + 1,
                bits: next_work_required(NET, height - 1, prev_time),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().0;
        let target = block.header.target().expect("regtest bits are valid");
        while !target.is_met_by(&block.block_hash()) {
            block.header.nonce += 1;
        }
        self.blocks.insert(
            block.block_hash(),
            Built {
                block: block.clone(),
                height,
            },
        );
        block
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder::new()
    }
}
