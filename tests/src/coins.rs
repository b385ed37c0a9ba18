//! Many spendable coins on the [`Builder`]'s key, and what the writer tests and the
//! read-latency benchmark build from them: fan-out blocks that split each block's own spend into
//! thousands of small coins, a many-input spend whose last signature is wrong, and blocks of
//! about 1 MB of transactions no node has seen.

use chaincore::sighash::{legacy_sighash, SIGHASH_ALL};
use chaincore::validation::COINBASE_MATURITY;
use chaincore::{Amount, Block, BlockHash, OutPoint, Script, Transaction, TxOut};

use crate::builder::Builder;
use crate::{signed_spend, Node};

/// The largest transaction the node relays or takes over RPC: Bitcoin Core's standard size
/// (`MAX_STANDARD_TX_WEIGHT` / 4; without witnesses, bytes).
pub const MAX_STANDARD_TX_SIZE: usize = 100_000;

/// The consensus block size limit.
pub const MAX_BLOCK_SIZE: usize = 1_000_000;

/// Outputs per fan-out transaction: 2,500 P2PKH outputs of 34 bytes keep it near 85 KB, under
/// [`MAX_STANDARD_TX_SIZE`].
const FAN_OUT: usize = 2_500;

/// What a fan-out transaction leaves as fee (well above 1 unit per byte).
const FAN_OUT_FEE: i64 = 100_000;

/// A coin the builder's key can spend at once (not a coinbase).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spendable {
    /// Where it is.
    pub outpoint: OutPoint,
    /// What it holds.
    pub value: Amount,
}

impl Builder {
    /// The P2PKH script of the builder's key.
    pub fn script(&self) -> Script {
        chaincore::Address::p2pkh(
            self.key().public_key().pubkey_hash(),
            chaincore::Network::Regtest,
        )
        .script_pubkey()
    }

    /// Builds on `parent` (a block the builder made) and submits to `node`, which must take
    /// each onto its best chain, the blocks that leave `count` coins of `value` units each on
    /// the builder's key; returns the last block's hash and the coins.
    ///
    /// First, if `parent` is below height 101, plain blocks up to 101. Then each block holds
    /// fan-out transactions that split the two outputs of its parent's own spend (see
    /// [`Builder::build`], about 25 coins each) into up to 2,500 coins apiece, so a block yields
    /// up to 5,000. The coinbase claims exactly the fees, so the UTXO set keeps holding the sum
    /// of the subsidies. The last block's own spend is left unspent.
    pub fn submit_coins(
        &mut self,
        node: &Node,
        parent: &BlockHash,
        count: usize,
        value: i64,
    ) -> (BlockHash, Vec<Spendable>) {
        let mut tip = *parent;
        let height = self.height(&tip);
        if height <= COINBASE_MATURITY {
            let n = (COINBASE_MATURITY + 1 - height) as usize;
            tip = *self.submit_chain(node, &tip, n).last().unwrap();
        }
        let mut coins = Vec::with_capacity(count);
        let script = self.script();
        while coins.len() < count {
            let funding = &self.transactions(&tip)[1];
            let funding_id = funding.compute_txid();
            let mut fan_outs = Vec::new();
            for (vout, out) in funding.output.iter().enumerate() {
                let available = out.value.to_units() - FAN_OUT_FEE;
                let n = (count - coins.len())
                    .min(FAN_OUT)
                    .min((available / value) as usize);
                assert!(n > 0, "coins of {value} units are too large to make");
                let mut outputs = vec![
                    TxOut {
                        value: Amount::from_units(value),
                        script_pubkey: script.clone(),
                    };
                    n
                ];
                let change = available - n as i64 * value;
                if change > 0 {
                    outputs.push(TxOut {
                        value: Amount::from_units(change),
                        script_pubkey: script.clone(),
                    });
                }
                let tx = signed_spend(
                    self.key(),
                    &[OutPoint {
                        txid: funding_id,
                        vout: vout as u32,
                    }],
                    outputs,
                );
                assert!(tx.size() <= MAX_STANDARD_TX_SIZE, "{}", tx.size());
                let txid = tx.compute_txid();
                coins.extend((0..n as u32).map(|vout| Spendable {
                    outpoint: OutPoint { txid, vout },
                    value: Amount::from_units(value),
                }));
                fan_outs.push(tx);
                if coins.len() == count {
                    break;
                }
            }
            let fees = FAN_OUT_FEE * fan_outs.len() as i64;
            let block = self.build_with(&tip, fan_outs, fees);
            tip = block.block_hash();
            let raw = hex::encode(chaincore::encode::serialize(&block));
            assert_eq!(
                node.rpc("submitblock", serde_json::json!([raw])),
                serde_json::Value::Null,
                "fan-out block {tip} refused"
            );
        }
        (tip, coins)
    }

    /// A block on `parent` of at most `max_size` bytes (capped at the consensus limit): the
    /// builder's own spend, then transactions each spending two of `coins` (from the front) to
    /// two outputs on the builder's key, 1,000 units of fee each, as many as fit. Its
    /// transactions are new, so a node that connects it checks every signature. Returns the
    /// block and how many coins it used.
    pub fn build_full(
        &mut self,
        parent: &BlockHash,
        coins: &[Spendable],
        max_size: usize,
    ) -> (Block, usize) {
        const FEE: i64 = 1_000;
        let max_size = max_size.min(MAX_BLOCK_SIZE);
        // Header, transaction count, coinbase and the builder's own spend, with room to spare.
        let mut size = 1_000;
        let script = self.script();
        let mut txs = Vec::new();
        let mut used = 0;
        for pair in coins.chunks_exact(2) {
            let half = (pair[0].value.to_units() + pair[1].value.to_units() - FEE) / 2;
            let rest = pair[0].value.to_units() + pair[1].value.to_units() - FEE - half;
            let pay = |units| TxOut {
                value: Amount::from_units(units),
                script_pubkey: script.clone(),
            };
            let tx = signed_spend(
                self.key(),
                &[pair[0].outpoint, pair[1].outpoint],
                vec![pay(half), pay(rest)],
            );
            if size + tx.size() > max_size {
                break;
            }
            size += tx.size();
            used += 2;
            txs.push(tx);
        }
        let fees = FEE * txs.len() as i64;
        let block = self.build_with(parent, txs, fees);
        assert!(block.size() <= max_size, "{}", block.size());
        (block, used)
    }
}

/// A transaction spending every one of `coins` (all locked to `key`) to `outputs` equal
/// outputs locked to `key` (the last takes the remainder), leaving `fee`. Every input is
/// signed; with `bad_last`, the last signature is made by the right key, strict DER with low S
/// and `SIGHASH_ALL`, but over the digest of input 0 instead of its own: it fails only at
/// ECDSA verification, after every other input passed.
///
/// Legacy signature hashing is quadratic: each input's digest covers every input and output,
/// so outputs make each of the checks heavier too.
pub fn spend_coins(
    key: &chaincore::key::PrivateKey,
    coins: &[Spendable],
    outputs: usize,
    fee: Amount,
    bad_last: bool,
) -> Transaction {
    let lock =
        chaincore::Address::p2pkh(key.public_key().pubkey_hash(), chaincore::Network::Regtest)
            .script_pubkey();
    let total: Amount = coins.iter().map(|c| c.value).sum();
    let outputs = outputs.max(1);
    let each = (total - fee).to_units() / outputs as i64;
    let last = (total - fee).to_units() - each * (outputs as i64 - 1);
    let pay = |units| TxOut {
        value: Amount::from_units(units),
        script_pubkey: lock.clone(),
    };
    let mut paid: Vec<TxOut> = (1..outputs).map(|_| pay(each)).collect();
    paid.push(pay(last));
    let outpoints: Vec<OutPoint> = coins.iter().map(|c| c.outpoint).collect();
    let mut tx = signed_spend(key, &outpoints, paid);
    if bad_last && tx.input.len() > 1 {
        // Legacy sighash blanks every other input's script, so replacing this one changes no
        // other input's digest.
        let mut sig = key.sign_digest(&legacy_sighash(&tx, 0, &lock, SIGHASH_ALL));
        sig.push(SIGHASH_ALL as u8);
        let last = tx.input.len() - 1;
        tx.input[last].script_sig =
            Script::new_p2pkh_script_sig(&sig, &key.public_key().to_bytes());
    }
    tx
}
