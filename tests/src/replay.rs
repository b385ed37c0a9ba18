//! The active chain of a running node replayed from its raw blocks over RPC, independently of
//! the node's own bookkeeping: the UTXO set it must hold (and `gettxoutsetinfo`'s hash of it),
//! every transaction confirmed, and any spend of a coin that was not unspent at the time.

use std::collections::{BTreeMap, HashMap};

use chaincore::encode::{deserialize, serialize};
use chaincore::hash::Sha256dWriter;
use chaincore::pow::block_subsidy;
use chaincore::validation::Coin;
use chaincore::{Amount, Block, OutPoint, Txid};
use serde_json::json;

use crate::Node;

/// The result of replaying a node's active chain.
pub struct Replay {
    /// Height of the tip replayed.
    pub height: u32,
    /// Unspent outputs after the tip, by [`outpoint_key`] (the node's key order).
    pub utxos: BTreeMap<[u8; 36], Coin>,
    /// Every transaction of the active chain, with its height.
    pub txids: HashMap<Txid, u32>,
    /// Inputs that spent an outpoint not unspent at that point (missing, or spent twice),
    /// described.
    pub bad_spends: Vec<String>,
    /// The block subsidies of heights 1 to the tip, summed.
    pub subsidies: Amount,
    /// Fees the transactions paid minus what the coinbases claimed beyond their subsidy.
    pub unclaimed_fees: i64,
}

/// The node's key for an outpoint: txid (internal byte order) then vout little-endian.
pub fn outpoint_key(o: &OutPoint) -> [u8; 36] {
    let mut k = [0u8; 36];
    k[..32].copy_from_slice(o.txid.as_bytes());
    k[32..].copy_from_slice(&o.vout.to_le_bytes());
    k
}

impl Replay {
    /// Replays `node`'s active chain from height 1; panics if the tip moves meanwhile (call
    /// it once nothing else is changing the chain).
    pub fn of(node: &Node) -> Replay {
        let tip = node.rpc("getbestblockhash", json!([]));
        let height = node.rpc("getblockcount", json!([])).as_u64().unwrap() as u32;
        let mut replay = Replay {
            height,
            utxos: BTreeMap::new(),
            txids: HashMap::new(),
            bad_spends: Vec::new(),
            subsidies: Amount::ZERO,
            unclaimed_fees: 0,
        };
        for h in 1..=height {
            let hash = node.rpc("getblockhash", json!([h]));
            let raw = node.rpc("getblock", json!([hash, 0]));
            let block: Block = deserialize(&hex::decode(raw.as_str().unwrap()).unwrap()).unwrap();
            replay.connect(&block, h);
        }
        assert_eq!(
            node.rpc("getbestblockhash", json!([])),
            tip,
            "the tip moved during the replay"
        );
        replay
    }

    fn connect(&mut self, block: &Block, height: u32) {
        let subsidy = block_subsidy(height).to_units();
        self.subsidies = self.subsidies + block_subsidy(height);
        let mut fees = 0i64;
        let mut claimed = 0i64;
        for (pos, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            self.txids.insert(txid, height);
            let out_total: i64 = tx.output.iter().map(|o| o.value.to_units()).sum();
            if pos == 0 {
                claimed = out_total - subsidy;
            } else {
                let mut in_total = 0;
                for (i, input) in tx.input.iter().enumerate() {
                    match self.utxos.remove(&outpoint_key(&input.previous_output)) {
                        Some(coin) => in_total += coin.output.value.to_units(),
                        None => self.bad_spends.push(format!(
                            "input {i} of {txid} at height {height} spends {}:{}, not unspent",
                            input.previous_output.txid, input.previous_output.vout
                        )),
                    }
                }
                fees += in_total - out_total;
            }
            for (vout, out) in tx.output.iter().enumerate() {
                if out.script_pubkey.op_return_data().is_some() {
                    continue;
                }
                let coin = Coin {
                    output: out.clone(),
                    height,
                    is_coinbase: pos == 0,
                };
                let outpoint = OutPoint {
                    txid,
                    vout: vout as u32,
                };
                self.utxos.insert(outpoint_key(&outpoint), coin);
            }
        }
        self.unclaimed_fees += fees - claimed;
    }

    /// The total value of the replayed UTXO set.
    pub fn total(&self) -> Amount {
        self.utxos.values().map(|c| c.output.value).sum()
    }

    /// `gettxoutsetinfo`'s `hash_serialized` of the replayed set: SHA-256d over every
    /// `outpoint key ‖ serialized coin`, in key order (docs/RPC.md).
    pub fn utxo_hash(&self) -> String {
        use std::io::Write;
        let mut w = Sha256dWriter::default();
        for (k, coin) in &self.utxos {
            w.write_all(k).unwrap();
            w.write_all(&serialize(coin)).unwrap();
        }
        hex::encode(w.finish())
    }
}

/// The total value of `node`'s UTXO set as `gettxoutsetinfo` reports it (`total_amount`, a
/// JSON number of coins), in units.
pub fn utxo_total(node: &Node) -> Amount {
    let info = node.rpc("gettxoutsetinfo", json!([]));
    let coins = info["total_amount"].to_string();
    let (whole, frac) = coins.split_once('.').unwrap_or((&coins, "0"));
    Amount::from_units(
        whole.parse::<i64>().unwrap() * 100_000_000
            + format!("{frac:0<8}")[..8].parse::<i64>().unwrap(),
    )
}
