//! Work from a block template: the miner's own coinbase (BIP34 height, per-worker extranonce,
//! one P2PKH output), the merkle branch that lets a worker change its coinbase cheaply, and the
//! header to hash.

use anyhow::Context;
use chaincore::block::Header;
use chaincore::encode::{deserialize, serialize};
use chaincore::hash::sha256d;
use chaincore::pow::Target;
use chaincore::rpc::mining::BlockTemplate;
use chaincore::validation::coinbase_height_prefix;
use chaincore::{Amount, Block, BlockHash, Script, Transaction, TxMerkleNode, Txid};

/// Text in every coinbase after the height and extranonce.
const COINBASE_TAG: &[u8] = b"/chaincore-miner/";

/// A parsed `getblocktemplate` answer.
#[derive(Clone, Debug)]
pub struct Template {
    /// Block version.
    pub version: i32,
    /// The tip to build on.
    pub prev_blockhash: BlockHash,
    /// Height of the new block.
    pub height: u32,
    /// Compact target.
    pub bits: u32,
    /// Target to meet.
    pub target: Target,
    /// Block time.
    pub curtime: u32,
    /// Subsidy plus fees.
    pub coinbase_value: Amount,
    /// Transactions after the coinbase, in template order.
    pub transactions: Vec<Transaction>,
    /// Their txids.
    pub txids: Vec<Txid>,
    /// Id for the next long poll.
    pub longpollid: Option<String>,
}

impl Template {
    /// Reads a BIP22 template as `chaincore-node` (or Bitcoin Core) returns it: decodes the
    /// hex fields the typed answer carries as text.
    pub fn from_rpc(t: &BlockTemplate) -> anyhow::Result<Template> {
        let bits = u32::from_str_radix(&t.bits, 16).context("template 'bits' is not hex")?;
        let target = Target::from_compact(bits).context("template 'bits' is not a valid target")?;
        let mut transactions = Vec::new();
        let mut txids = Vec::new();
        for entry in &t.transactions {
            let tx: Transaction =
                deserialize(&hex::decode(&entry.data).context("transaction data is not hex")?)
                    .context("template transaction does not decode")?;
            txids.push(tx.compute_txid());
            transactions.push(tx);
        }
        Ok(Template {
            version: t.version,
            prev_blockhash: t.previousblockhash,
            height: t.height,
            bits,
            target,
            curtime: u32::try_from(t.curtime).context("template 'curtime' is past 2106")?,
            coinbase_value: Amount::from_units(t.coinbasevalue),
            transactions,
            txids,
            longpollid: Some(t.longpollid.clone()),
        })
    }
}

/// A template made ready for hashing: payout script and merkle branch.
#[derive(Debug)]
pub struct Work {
    /// The template.
    pub template: Template,
    /// Where the coinbase pays.
    pub payout: Script,
    /// Hashes that combine with the coinbase txid into the merkle root.
    branch: Vec<[u8; 32]>,
}

impl Work {
    /// Prepares `template` paying `payout`.
    pub fn new(template: Template, payout: Script) -> Work {
        let branch = merkle_branch(&template.txids);
        Work {
            template,
            payout,
            branch,
        }
    }

    /// The coinbase for `extranonce`: BIP34 height push, then the extranonce, then a tag.
    pub fn coinbase(&self, extranonce: u64) -> Transaction {
        let mut script_sig = coinbase_height_prefix(self.template.height);
        script_sig.push_slice(&extranonce.to_le_bytes());
        script_sig.push_slice(COINBASE_TAG);
        Transaction::new_coinbase(
            script_sig,
            self.template.coinbase_value,
            self.payout.clone(),
        )
    }

    /// The 80-byte header for `extranonce` (nonce 0).
    pub fn header(&self, extranonce: u64) -> [u8; 80] {
        let root = self
            .branch
            .iter()
            .fold(self.coinbase(extranonce).compute_txid().0, |acc, h| {
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&acc);
                buf[32..].copy_from_slice(h);
                sha256d(&buf)
            });
        let t = &self.template;
        Header {
            version: t.version,
            prev_blockhash: t.prev_blockhash,
            merkle_root: TxMerkleNode(root),
            time: t.curtime,
            bits: t.bits,
            nonce: 0,
        }
        .to_bytes()
    }

    /// The full block for a solved header.
    pub fn block(&self, extranonce: u64, header: &[u8; 80]) -> anyhow::Result<Block> {
        let header: Header = deserialize(header).context("header does not decode")?;
        let mut txdata = Vec::with_capacity(self.template.transactions.len() + 1);
        txdata.push(self.coinbase(extranonce));
        txdata.extend(self.template.transactions.iter().cloned());
        Ok(Block { header, txdata })
    }

    /// Hex of a solved block, ready for `submitblock`.
    pub fn block_hex(&self, extranonce: u64, header: &[u8; 80]) -> anyhow::Result<String> {
        Ok(hex::encode(serialize(&self.block(extranonce, header)?)))
    }
}

/// The extranonce of worker `worker`'s `n`-th header: worker id in the top 16 bits, so two
/// workers never hash the same header.
pub fn extranonce(worker: u16, n: u64) -> u64 {
    (u64::from(worker) << 48) | (n & 0xffff_ffff_ffff)
}

/// The merkle branch of position 0 (the coinbase) over `[coinbase] + txids`.
fn merkle_branch(txids: &[Txid]) -> Vec<[u8; 32]> {
    // `None` stands for the (unknown) node on the coinbase's path.
    let mut level: Vec<Option<[u8; 32]>> = std::iter::once(None)
        .chain(txids.iter().map(|t| Some(t.0)))
        .collect();
    let mut branch = Vec::new();
    while level.len() > 1 {
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        if let Some(sibling) = level[1] {
            branch.push(sibling);
        }
        level = level
            .chunks_exact(2)
            .map(|pair| match pair {
                [Some(a), Some(b)] => {
                    let mut buf = [0u8; 64];
                    buf[..32].copy_from_slice(a);
                    buf[32..].copy_from_slice(b);
                    Some(sha256d(&buf))
                }
                _ => None,
            })
            .collect();
    }
    branch
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincore::validation::check_coinbase_height;
    use chaincore::{OutPoint, TxIn};
    use serde_json::json;

    fn template(ntx: usize) -> Template {
        let txs: Vec<Transaction> = (0..ntx)
            .map(|i| Transaction {
                version: 1,
                input: vec![TxIn {
                    previous_output: OutPoint {
                        txid: Txid([i as u8; 32]),
                        vout: 0,
                    },
                    ..TxIn::default()
                }],
                output: vec![],
                lock_time: i as u32,
            })
            .collect();
        Template {
            version: 1,
            prev_blockhash: BlockHash([3; 32]),
            height: 17,
            bits: 0x207fffff,
            target: Target::from_compact(0x207fffff).unwrap(),
            curtime: 1_800_000_000,
            coinbase_value: Amount::from_units(5_000_000_000),
            txids: txs.iter().map(Transaction::compute_txid).collect(),
            transactions: txs,
            longpollid: None,
        }
    }

    #[test]
    fn merkle_root_matches_core_for_every_size() {
        for n in 0..12 {
            let work = Work::new(template(n), Script::new_p2pkh(&[1; 20]));
            for extra in [0, 7, extranonce(3, 5)] {
                let header: Header = deserialize(&work.header(extra)).unwrap();
                let block = work.block(extra, &header.to_bytes()).unwrap();
                assert_eq!(block.compute_merkle_root().0, header.merkle_root, "{n} txs");
            }
        }
    }

    #[test]
    fn coinbase_follows_consensus() {
        let work = Work::new(template(2), Script::new_p2pkh(&[1; 20]));
        let block = work.block(42, &work.header(42)).unwrap();
        check_coinbase_height(&block, 17).unwrap();
        chaincore::validation::check_transaction(&block.txdata[0]).unwrap();
        assert_eq!(
            block.txdata[0].output[0].value,
            Amount::from_units(5_000_000_000)
        );
        assert_ne!(
            work.header(1),
            work.header(2),
            "extranonce changes the header"
        );
    }

    #[test]
    fn worker_extranonces_never_overlap() {
        use std::collections::HashSet;
        let mut seen = HashSet::new();
        for worker in 0..64u16 {
            for n in (0..1_000u64).chain([0xffff_ffff_ffff]) {
                assert!(seen.insert(extranonce(worker, n)), "worker {worker} n {n}");
            }
        }
    }

    #[test]
    fn templates_parse_and_bad_ones_are_refused() {
        let t = template(1);
        let v = json!({
            "capabilities": ["proposal"], "version": 1, "rules": [], "vbavailable": {},
            "vbrequired": 0, "previousblockhash": t.prev_blockhash.to_string(),
            "transactions": [{
                "data": hex::encode(serialize(&t.transactions[0])),
                "txid": t.txids[0].to_string(), "hash": t.txids[0].to_string(),
                "depends": [], "fee": 0, "sigops": 1, "weight": 400,
            }],
            "coinbaseaux": {}, "coinbasevalue": 5_000_000_000i64, "longpollid": "x",
            "target": null, "mintime": 1_700_000_000u32, "mutable": [],
            "noncerange": "00000000ffffffff", "sigoplimit": 20000, "sizelimit": 1_000_000,
            "weightlimit": 4_000_000, "curtime": 1_800_000_000u32, "bits": "207fffff",
            "height": 17,
        });
        let answer: BlockTemplate = serde_json::from_value(v).unwrap();
        let parsed = Template::from_rpc(&answer).unwrap();
        assert_eq!(parsed.txids, t.txids);
        assert_eq!(parsed.longpollid.as_deref(), Some("x"));
        let mut bad = answer.clone();
        bad.bits = "zz".into();
        assert!(Template::from_rpc(&bad).is_err());
        let mut bad = answer;
        bad.transactions[0].data = "00".into();
        assert!(Template::from_rpc(&bad).is_err());
    }
}
