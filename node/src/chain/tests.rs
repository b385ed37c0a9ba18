//! Chain-state tests on a real redb store: contextual reject reasons, orphans, and reorgs that
//! must leave exactly the state of connecting the winning branch from scratch.

use chaincore::block::Header;
use chaincore::key::PrivateKey;
use chaincore::pow::block_subsidy;
use chaincore::validation::coinbase_height_prefix;
use chaincore::{
    Address, Amount, Block, BlockHash, Network, OutPoint, Script, Transaction, TxIn, TxOut,
};

use super::*;
use crate::mempool::Mempool;
use crate::store::Store;

const NET: Network = Network::Regtest;

struct Fixture {
    chain: Chain,
    mempool: Mempool,
    dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The coins cache of most fixtures: large enough that only the tests that ask flush it, so
/// every reopen replays.
const TEST_DBCACHE: usize = 64 << 20;

fn fixture(label: &str) -> Fixture {
    fixture_with(label, TEST_DBCACHE)
}

fn fixture_with(label: &str, dbcache: usize) -> Fixture {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("cc-chain-{label}-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open(&dir.join("chain.redb")).unwrap();
    Fixture {
        chain: Chain::open(store, NET, dbcache).unwrap(),
        mempool: Mempool::new(crate::mempool::DEFAULT_MAX_BYTES),
        dir: TempDir(dir),
    }
}

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

fn script(k: &PrivateKey) -> Script {
    Address::p2pkh(k.public_key().pubkey_hash(), NET).script_pubkey()
}

fn now() -> i64 {
    unix_now() as i64
}

/// A solved block on `parent` (height `height`) paying `value` (None: subsidy + no fees) to
/// key 1, with `txs` and a tag so sibling blocks differ.
fn make_block(
    chain: &Chain,
    parent: BlockHash,
    txs: Vec<Transaction>,
    tag: u8,
    value: Option<Amount>,
) -> Block {
    let prev = *chain.index().entry(&parent).unwrap();
    let height = prev.height + 1;
    let mut script_sig = coinbase_height_prefix(height);
    script_sig.push_slice(&[tag, 0xcc]);
    let coinbase = Transaction {
        version: 1,
        input: vec![TxIn {
            previous_output: OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
        }],
        output: vec![TxOut {
            value: value.unwrap_or(block_subsidy(height)),
            script_pubkey: script(&key(1)),
        }],
        lock_time: 0,
    };
    let mut txdata = vec![coinbase];
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: 1,
            prev_blockhash: parent,
            merkle_root: Default::default(),
            time: prev.header.time + 1,
            bits: chain.index().next_bits(&prev),
            nonce: 0,
        },
        txdata,
    };
    solve(&mut block);
    block
}

fn solve(block: &mut Block) {
    block.header.merkle_root = block.compute_merkle_root().0;
    let target = block.header.target().unwrap();
    block.header.nonce = 0;
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
}

/// Accepts a block the way the node's writer does.
fn submit(f: &mut Fixture, block: Block) -> Result<Accepted, ChainError> {
    f.chain
        .accept_block(&block, None, &mut f.mempool, now(), true)
}

fn extend(f: &mut Fixture, n: usize, tag: u8) -> Vec<Block> {
    let mut out = Vec::new();
    for _ in 0..n {
        let b = make_block(&f.chain, f.chain.tip_hash(), vec![], tag, None);
        submit(f, b.clone()).unwrap();
        out.push(b);
    }
    out
}

fn spend(k: &PrivateKey, prev: OutPoint, value: Amount, to: Script) -> Transaction {
    let pay = TxOut {
        value,
        script_pubkey: to,
    };
    let mut tx = Transaction::new_unsigned(&[prev], vec![pay]);
    chaincore::sign_p2pkh_input(&mut tx, 0, &script(k), k).unwrap();
    tx
}

fn coinbase_out(b: &Block) -> OutPoint {
    OutPoint {
        txid: b.txdata[0].compute_txid(),
        vout: 0,
    }
}

fn reason(r: Result<Accepted, ChainError>) -> String {
    r.unwrap_err().to_string()
}

#[test]
fn contextual_header_rules() {
    let mut f = fixture("header");
    let tip = f.chain.tip_hash();
    let mut b = make_block(&f.chain, tip, vec![], 0, None);
    b.header.bits = 0x1f00ffff;
    solve(&mut b);
    assert_eq!(reason(submit(&mut f, b)), "bad-diffbits");

    let mut b = make_block(&f.chain, tip, vec![], 0, None);
    b.header.time = f.chain.index().tip().header.time; // not above the median time past
    solve(&mut b);
    assert_eq!(reason(submit(&mut f, b)), "time-too-old");

    let mut b = make_block(&f.chain, tip, vec![], 0, None);
    b.header.time = (now() + 121) as u32;
    solve(&mut b);
    assert_eq!(reason(submit(&mut f, b)), "time-too-new");

    let mut b = make_block(&f.chain, tip, vec![], 0, None);
    b.txdata[0].input[0].script_sig = coinbase_height_prefix(2);
    b.txdata[0].input[0].script_sig.push_slice(b"xx");
    solve(&mut b);
    assert_eq!(reason(submit(&mut f, b)), "bad-cb-height");

    let b = make_block(
        &f.chain,
        tip,
        vec![],
        0,
        Some(block_subsidy(1) + Amount::from_units(1)),
    );
    assert_eq!(reason(submit(&mut f, b)), "bad-cb-amount");
    assert_eq!(f.chain.tip_height(), 0, "nothing above was accepted");
}

#[test]
fn contextual_transaction_rules() {
    let mut f = fixture("tx");
    let blocks = extend(&mut f, 101, 0);
    let k = key(1);
    let tip = f.chain.tip_hash();

    // Missing input.
    let ghost = spend(
        &k,
        OutPoint {
            txid: chaincore::Txid([9; 32]),
            vout: 0,
        },
        Amount::ONE_COIN,
        script(&k),
    );
    let b = make_block(&f.chain, tip, vec![ghost], 0, None);
    assert_eq!(reason(submit(&mut f, b)), "bad-txns-inputs-missingorspent");

    // Premature coinbase spend: the coinbase at height 2 matures for a block at height 102, the
    // one at height 3 does not.
    let young = spend(&k, coinbase_out(&blocks[2]), Amount::ONE_COIN, script(&k));
    let b = make_block(&f.chain, tip, vec![young], 0, None);
    assert_eq!(
        reason(submit(&mut f, b)),
        "bad-txns-premature-spend-of-coinbase"
    );

    // Outputs above inputs.
    let greedy = spend(
        &k,
        coinbase_out(&blocks[0]),
        Amount::from_units(51 * 100_000_000),
        script(&k),
    );
    let b = make_block(&f.chain, tip, vec![greedy], 0, None);
    assert_eq!(reason(submit(&mut f, b)), "bad-txns-in-belowout");

    // A signature by the wrong key.
    let forged = spend(
        &key(2),
        coinbase_out(&blocks[0]),
        Amount::ONE_COIN,
        script(&k),
    );
    let b = make_block(&f.chain, tip, vec![forged], 0, None);
    assert!(reason(submit(&mut f, b)).starts_with("mandatory-script-verify-flag-failed"));

    // Lock time in the future.
    let mut late = spend(&k, coinbase_out(&blocks[0]), Amount::ONE_COIN, script(&k));
    late.lock_time = 500;
    late.input[0].sequence = 0;
    let b = make_block(&f.chain, tip, vec![late], 0, None);
    assert_eq!(reason(submit(&mut f, b)), "bad-txns-nonfinal");

    // Double spend inside one block.
    let a = spend(&k, coinbase_out(&blocks[0]), Amount::ONE_COIN, script(&k));
    let a2 = spend(
        &k,
        coinbase_out(&blocks[0]),
        Amount::from_units(2),
        script(&k),
    );
    let b = make_block(&f.chain, tip, vec![a.clone(), a2], 0, None);
    assert_eq!(reason(submit(&mut f, b)), "bad-txns-inputs-missingorspent");

    // A failed block is remembered as invalid; its children are refused too.
    assert_eq!(f.chain.tip_height(), 101);
    let good = make_block(&f.chain, tip, vec![a], 0, None);
    submit(&mut f, good).unwrap();
    assert_eq!(f.chain.tip_height(), 102);
}

#[test]
fn orphans_connect_when_their_parent_arrives() {
    let mut f = fixture("orphan");
    let genesis = f.chain.tip_hash();
    let b1 = make_block(&f.chain, genesis, vec![], 0, None);
    // Build b2 on b1 without submitting b1: needs b1 in the index, so use a scratch chain.
    let mut scratch = fixture("orphan-scratch");
    submit(&mut scratch, b1.clone()).unwrap();
    let b2 = make_block(&scratch.chain, b1.block_hash(), vec![], 0, None);
    assert_eq!(reason(submit(&mut f, b2.clone())), "prev-blk-not-found");
    assert_eq!(submit(&mut f, b1).unwrap(), Accepted::BestChain);
    assert_eq!(f.chain.tip_hash(), b2.block_hash());
}

/// UTXO set, address index and tx index as sorted rows, for comparing two stores.
type Snapshot = (Vec<([u8; 36], Vec<u8>)>, Vec<String>);

fn snapshot(chain: &Chain) -> Snapshot {
    index_all(chain);
    let rtx = chain.store().begin_read().unwrap();
    let mut utxos = Vec::new();
    crate::store::read::coins(&rtx, chain.coins().map())
        .unwrap()
        .for_each(|k, v, _| utxos.push((*k, v.to_vec())))
        .unwrap();
    let mut index = Vec::new();
    for (k, _) in utxos.iter().filter_map(|(k, v)| {
        let c: chaincore::validation::Coin = chaincore::encode::deserialize(v).ok()?;
        c.output.script_pubkey.p2pkh_hash().map(|h| (h, k))
    }) {
        let mut ops = crate::store::read::address_coins(&rtx, &k).unwrap();
        ops.sort_by_key(|(o, _)| *o);
        index.push(format!("{}:{ops:?}", hex::encode(k)));
        let mut txs = crate::store::read::address_txids(&rtx, &k).unwrap();
        txs.sort();
        index.push(format!("{}:{txs:?}", hex::encode(k)));
    }
    index.sort();
    index.dedup();
    (utxos, index)
}

/// Brings both indexes to the chain's tip, as the indexer thread does.
fn index_all(chain: &Chain) {
    let mut states =
        crate::indexer::Indexer::load(chain.store(), &crate::store::indexes::IndexKind::ALL)
            .unwrap();
    crate::indexer::catch_up(chain.store(), chain.index(), &mut states).unwrap();
}

#[test]
fn reorg_to_more_work_matches_connecting_from_scratch() {
    let mut f = fixture("reorg");
    let prefix = extend(&mut f, 101, 0);
    let k = key(1);
    let fork = f.chain.tip_hash();

    // Branch A: one block with a spend of the first coinbase, paying key 3.
    let t = spend(
        &k,
        coinbase_out(&prefix[0]),
        Amount::from_units(49 * 100_000_000),
        script(&key(3)),
    );
    let a1 = make_block(&f.chain, fork, vec![t.clone()], 0xa, None);
    submit(&mut f, a1.clone()).unwrap();
    assert_eq!(f.chain.tip_hash(), a1.block_hash());

    // Branch B: two empty blocks from the same fork point: more work, so it wins.
    let b1 = make_block(&f.chain, fork, vec![], 0xb, None);
    assert_eq!(submit(&mut f, b1.clone()).unwrap(), Accepted::SideChain);
    let mut side = fixture("reorg-side");
    for b in &prefix {
        submit(&mut side, b.clone()).unwrap();
    }
    submit(&mut side, b1.clone()).unwrap();
    let b2 = make_block(&side.chain, b1.block_hash(), vec![], 0xb, None);
    submit(&mut side, b2.clone()).unwrap();
    assert_eq!(submit(&mut f, b2.clone()).unwrap(), Accepted::BestChain);
    assert_eq!(f.chain.tip_hash(), b2.block_hash());

    // The spend from the losing branch is back in the mempool.
    assert!(f.mempool.get(&t.compute_txid()).is_some());
    // UTXO set and address index equal those of a chain that only ever saw prefix + B.
    assert_eq!(snapshot(&f.chain), snapshot(&side.chain));

    // And the returned transaction can be mined on the new branch.
    let tip = f.chain.tip_hash();
    let b3 = make_block(&f.chain, tip, vec![t.clone()], 0xb, None);
    submit(&mut f, b3).unwrap();
    assert!(f.mempool.get(&t.compute_txid()).is_none());
    index_all(&f.chain);
    let rtx = f.chain.store().begin_read().unwrap();
    assert!(crate::store::read::tx_location(&rtx, &t.compute_txid())
        .unwrap()
        .is_some());
}

/// A block of 80 transactions spending coins it creates itself: the address index must hold
/// exactly the UTXO set's P2PKH coins, and disconnecting the block must restore the state of a
/// chain that never saw it.
#[test]
fn large_block_index_matches_utxo_set_and_disconnects_cleanly() {
    let mut f = fixture("large");
    let prefix = extend(&mut f, 101, 0);
    let mut before = fixture("large-before");
    for b in &prefix {
        submit(&mut before, b.clone()).unwrap();
    }
    let k = key(1);
    let (mut prev, mut value) = (coinbase_out(&prefix[0]), block_subsidy(1));
    let mut txs = Vec::new();
    for _ in 0..80 {
        value = Amount::from_units(value.to_units() - 1_000);
        let tx = spend(&k, prev, value, script(&k));
        prev = OutPoint {
            txid: tx.compute_txid(),
            vout: 0,
        };
        txs.push(tx);
    }
    let big = make_block(&f.chain, f.chain.tip_hash(), txs.clone(), 0, None);
    assert_eq!(submit(&mut f, big.clone()).unwrap(), Accepted::BestChain);

    let pkh = k.public_key().pubkey_hash();
    index_all(&f.chain);
    let rtx = f.chain.store().begin_read().unwrap();
    let mut from_utxos = Vec::new();
    crate::store::read::coins(&rtx, f.chain.coins().map())
        .unwrap()
        .for_each(|key, _, coin| {
            if coin.output.script_pubkey.p2pkh_hash() == Some(pkh) {
                from_utxos.push(crate::store::outpoint_from_key(key));
            }
        })
        .unwrap();
    let mut indexed: Vec<OutPoint> = crate::store::read::address_coins(&rtx, &pkh)
        .unwrap()
        .into_iter()
        .map(|(o, _)| o)
        .collect();
    from_utxos.sort();
    indexed.sort();
    assert_eq!(indexed, from_utxos);
    assert!(indexed.contains(&prev) && !indexed.contains(&coinbase_out(&prefix[0])));
    let history = crate::store::read::address_txids(&rtx, &pkh).unwrap();
    for tx in &txs {
        assert!(history.contains(&(102, tx.compute_txid())));
    }
    drop(rtx);

    f.chain
        .invalidate_block(&big.block_hash(), &mut f.mempool)
        .unwrap();
    assert_eq!(f.chain.tip_hash(), before.chain.tip_hash());
    assert_eq!(snapshot(&f.chain), snapshot(&before.chain));
}

#[test]
fn invalidate_and_reconsider_move_the_tip() {
    let mut f = fixture("invalidate");
    let blocks = extend(&mut f, 5, 0);
    let target = blocks[2].block_hash();
    f.chain.invalidate_block(&target, &mut f.mempool).unwrap();
    assert_eq!(f.chain.tip_hash(), blocks[1].block_hash());
    // Children of an invalid block are refused.
    let child = make_block(&f.chain, blocks[4].block_hash(), vec![], 0, None);
    assert_eq!(reason(submit(&mut f, child)), "bad-prevblk");
    f.chain.reconsider_block(&target, &mut f.mempool).unwrap();
    assert_eq!(f.chain.tip_hash(), blocks[4].block_hash());
}

#[test]
fn reopening_the_store_restores_the_chain() {
    let mut f = fixture("reopen");
    extend(&mut f, 3, 0);
    let tip = f.chain.tip_hash();
    let Fixture { chain, dir, .. } = f;
    drop(chain);
    let chain = Chain::open(
        Store::open(&dir.0.join("chain.redb")).unwrap(),
        NET,
        TEST_DBCACHE,
    )
    .unwrap();
    assert_eq!(chain.tip_hash(), tip);
    assert_eq!(chain.tip_height(), 3);
}

/// The indexer in small steps: each batch moves an index's best block as far as its budget
/// goes, the rows always matching that block; after a reorg below it, it takes the
/// disconnected blocks out first.
#[test]
fn an_index_behind_the_tip_moves_in_batches_and_follows_a_reorg_down() {
    use crate::indexer::{batch, Indexer};
    use crate::store::indexes::IndexKind;
    let mut f = fixture("indexer");
    let blocks = extend(&mut f, 30, 0);
    let pkh = key(1).public_key().pubkey_hash();
    let store = f.chain.shared_store();
    let mut states = Indexer::load(&store, &IndexKind::ALL).unwrap();
    assert!(states.iter().all(|s| s.best.is_none()));
    let coins_at = |height: u32| {
        let rtx = store.begin_read().unwrap();
        let coins = crate::store::read::address_coins(&rtx, &pkh).unwrap();
        assert!(coins.iter().all(|(_, c)| c.height <= height));
        coins.len() as u32
    };
    // One coinbase per block: a budget of 10 transactions takes in 10 blocks.
    batch(&store, f.chain.index(), &mut states, 10).unwrap();
    for s in &states {
        assert_eq!(s.height(), 10);
        assert!(!s.at(&f.chain.tip_hash(), f.chain.tip_height()));
    }
    assert_eq!(coins_at(10), 10);
    let rtx = store.begin_read().unwrap();
    assert_eq!(
        crate::store::read::index_best(&rtx, IndexKind::Address)
            .unwrap()
            .map(|b| (b.hash, b.height)),
        Some((blocks[9].block_hash(), 10))
    );
    drop(rtx);
    batch(&store, f.chain.index(), &mut states, 1_000).unwrap();
    assert!(states
        .iter()
        .all(|s| s.at(&f.chain.tip_hash(), f.chain.tip_height())));
    assert_eq!(coins_at(30), 30);
    // Off blocks 21..=30: the next batches take them out, then stop at the new tip.
    f.chain
        .invalidate_block(&blocks[20].block_hash(), &mut f.mempool)
        .unwrap();
    assert_eq!(f.chain.tip_height(), 20);
    batch(&store, f.chain.index(), &mut states, 4).unwrap();
    assert!(states.iter().all(|s| s.height() == 26));
    crate::indexer::catch_up(&store, f.chain.index(), &mut states).unwrap();
    assert!(states.iter().all(|s| s.height() == 20));
    assert_eq!(coins_at(20), 20);
    let rtx = store.begin_read().unwrap();
    let gone = blocks[25].txdata[0].compute_txid();
    assert!(crate::store::read::tx_location(&rtx, &gone)
        .unwrap()
        .is_none());
    let kept = blocks[19].txdata[0].compute_txid();
    assert!(crate::store::read::tx_location(&rtx, &kept)
        .unwrap()
        .is_some());
}

/// A UTXO set flushed at the old tip, a reorg whose disconnects go below it (in the cache
/// only), then a crash before the next flush: the reopen replays from the flushed block down
/// to the fork and up the new branch, to exactly the state before the crash, which is that of
/// a chain that only ever saw the winning branch, flushing with every block.
#[test]
fn a_crash_after_a_reorg_below_the_flushed_tip_replays_to_the_same_state() {
    let mut f = fixture("replay-reorg");
    let prefix = extend(&mut f, 103, 0);
    f.chain.flush_coins().unwrap();
    assert_eq!(
        f.chain.store().coins_tip().unwrap(),
        Some(f.chain.tip_hash())
    );
    let k = key(1);
    // Branch B from height 101, one longer, its first block spending the first coinbase.
    let fork = prefix[100].block_hash();
    let t = spend(
        &k,
        coinbase_out(&prefix[0]),
        Amount::from_units(49 * 100_000_000),
        script(&key(3)),
    );
    let mut side = fixture_with("replay-reorg-side", 0);
    for b in &prefix[..101] {
        submit(&mut side, b.clone()).unwrap();
    }
    let mut parent = fork;
    let mut branch = Vec::new();
    for i in 0..3 {
        let txs = if i == 0 { vec![t.clone()] } else { vec![] };
        let b = make_block(&side.chain, parent, txs, 0xb, None);
        submit(&mut side, b.clone()).unwrap();
        parent = b.block_hash();
        branch.push(b);
    }
    for b in &branch {
        submit(&mut f, b.clone()).unwrap();
    }
    assert_eq!(f.chain.tip_hash(), parent);
    let before = snapshot(&f.chain);
    assert_eq!(before, snapshot(&side.chain));
    assert_eq!(side.chain.store().coins_tip().unwrap(), Some(parent));
    assert!(
        side.chain.coins().is_empty(),
        "a cache of 0 flushes with every block"
    );
    // The flushed set still belongs to the old tip: the reopen must replay.
    assert_eq!(
        f.chain.store().coins_tip().unwrap(),
        Some(prefix[102].block_hash())
    );
    let f = reopen(f);
    assert_eq!(f.chain.tip_hash(), parent);
    assert_eq!(f.chain.store().coins_tip().unwrap(), Some(parent));
    assert_eq!(snapshot(&f.chain), before);
}

/// Adds `tx` to the fixture's mempool as the node would.
fn pool_add(f: &mut Fixture, tx: Transaction) {
    let rtx = f.chain.store().begin_read().unwrap();
    let utxos = crate::store::read::coins(&rtx, f.chain.coins().map()).unwrap();
    let coin = |o: &OutPoint| utxos.coin(o);
    let view = crate::mempool::ChainView {
        coin: &coin,
        next_height: f.chain.tip_height() + 1,
        median_time_past: f.chain.index().median_time_past(&f.chain.tip_hash()),
    };
    let entry = f.mempool.check(tx, &view, 0, &|_| false).unwrap();
    f.mempool.insert(entry).unwrap();
}

/// A chain of 101 blocks, then branch A confirming T (a spend of the first coinbase) with T's
/// child C in the pool, then branch B (two blocks from the same fork point, more work, with
/// `b_txs` in its first block) connected on top. Returns the fixture, T and C.
fn reorg_with_pool(
    label: &str,
    b_txs: impl Fn(&[Block]) -> Vec<Transaction>,
) -> (Fixture, Transaction, Transaction) {
    let mut f = fixture(label);
    let prefix = extend(&mut f, 101, 0);
    let k = key(1);
    let fork = f.chain.tip_hash();
    let t = spend(
        &k,
        coinbase_out(&prefix[0]),
        Amount::from_units(49 * 100_000_000),
        script(&k),
    );
    let a1 = make_block(&f.chain, fork, vec![t.clone()], 0xa, None);
    submit(&mut f, a1).unwrap();
    let child_of_t = OutPoint {
        txid: t.compute_txid(),
        vout: 0,
    };
    let c = spend(
        &k,
        child_of_t,
        Amount::from_units(48 * 100_000_000),
        script(&k),
    );
    pool_add(&mut f, c.clone());
    let mut side = fixture(&format!("{label}-side"));
    for b in &prefix {
        submit(&mut side, b.clone()).unwrap();
    }
    let b1 = make_block(&side.chain, fork, b_txs(&prefix), 0xb, None);
    submit(&mut side, b1.clone()).unwrap();
    let b2 = make_block(&side.chain, b1.block_hash(), vec![], 0xb, None);
    submit(&mut f, b1).unwrap();
    submit(&mut f, b2).unwrap();
    (f, t, c)
}

#[test]
fn reorg_rechecks_the_whole_mempool() {
    // Branch B double-spends T's input with T2.
    let (f, t, c) = reorg_with_pool("reorg-pool", |prefix| {
        let k = key(1);
        vec![spend(
            &k,
            coinbase_out(&prefix[0]),
            Amount::from_units(47 * 100_000_000),
            script(&k),
        )]
    });
    // T conflicts with B's T2, so neither T nor its child C may stay in the pool.
    assert!(f.mempool.get(&t.compute_txid()).is_none());
    assert!(f.mempool.get(&c.compute_txid()).is_none());
    assert_eq!(f.mempool.len(), 0);
}

#[test]
fn reorg_keeps_parents_before_children() {
    // Branch B is empty: T comes back, and C after it.
    let (mut f, t, c) = reorg_with_pool("reorg-order", |_| vec![]);
    let order: Vec<_> = f
        .mempool
        .select_for_block(1_000_000)
        .iter()
        .map(|e| e.txid)
        .collect();
    assert_eq!(order, vec![t.compute_txid(), c.compute_txid()]);
    // And a block built from that order connects.
    let tip = f.chain.tip_hash();
    let b3 = make_block(&f.chain, tip, vec![t, c], 0xb, None);
    submit(&mut f, b3).unwrap();
}

/// Reopens the fixture's store the way the node starts: open, then activate.
fn reopen(f: Fixture) -> Fixture {
    let Fixture { chain, dir, .. } = f;
    drop(chain);
    let mut chain = Chain::open(
        Store::open(&dir.0.join("chain.redb")).unwrap(),
        NET,
        TEST_DBCACHE,
    )
    .unwrap();
    let mut mempool = Mempool::new(crate::mempool::DEFAULT_MAX_BYTES);
    chain.activate_best_chain(&mut mempool, &|_| false).unwrap();
    Fixture {
        chain,
        mempool,
        dir,
    }
}

#[test]
fn restart_after_a_crash_mid_reorg_lands_on_the_most_work_chain() {
    let mut f = fixture("crash-reorg");
    let main = extend(&mut f, 3, 0);
    // A heavier branch from height 1 whose blocks were stored but, as after a crash between
    // storing them and connecting them, never activated.
    let mut parent = main[0].block_hash();
    let mut side = Vec::new();
    for _ in 0..4 {
        let b = make_block(&f.chain, parent, vec![], 1, None);
        let (entry, _) = f
            .chain
            .check_new_block(&b, b.block_hash(), None, now())
            .unwrap();
        f.chain.store_block(&b, &b.block_hash(), entry).unwrap();
        parent = b.block_hash();
        side.push(b);
    }
    assert_eq!(f.chain.tip_hash(), main[2].block_hash());
    let f = reopen(f);
    assert_eq!(f.chain.tip_hash(), parent);
    assert_eq!(f.chain.tip_height(), 5);
}

#[test]
fn resubmitting_a_stored_inactive_block_activates_it() {
    let mut f = fixture("resubmit");
    let main = extend(&mut f, 2, 0);
    let side = make_block(&f.chain, main[1].block_hash(), vec![], 1, None);
    let (entry, _) = f
        .chain
        .check_new_block(&side, side.block_hash(), None, now())
        .unwrap();
    f.chain
        .store_block(&side, &side.block_hash(), entry)
        .unwrap();
    assert_eq!(f.chain.tip_hash(), main[1].block_hash());
    // Bitcoin Core answers `duplicate` and runs chain selection.
    assert_eq!(reason(submit(&mut f, side.clone())), "duplicate");
    assert_eq!(f.chain.tip_hash(), side.block_hash());
    assert_eq!(reason(submit(&mut f, side)), "duplicate");
}

#[test]
fn restart_after_a_crash_mid_invalidation_moves_off_the_invalid_blocks() {
    let mut f = fixture("crash-invalidate");
    let main = extend(&mut f, 4, 0);
    // The marks are written first; a crash before the first disconnect leaves the tip on them.
    f.chain.mark_invalid(&main[1].block_hash()).unwrap();
    assert_eq!(f.chain.tip_hash(), main[3].block_hash());
    let f = reopen(f);
    assert_eq!(f.chain.tip_hash(), main[0].block_hash());
    assert!(f.chain.index().entry(&main[3].block_hash()).unwrap().status == Status::Invalid);
}

#[test]
fn unknown_and_genesis_blocks_are_callers_mistakes_not_store_failures() {
    let mut f = fixture("unknown");
    extend(&mut f, 1, 0);
    let unknown = BlockHash([7; 32]);
    let e = f
        .chain
        .invalidate_block(&unknown, &mut f.mempool)
        .unwrap_err();
    assert!(matches!(e, ChainError::BlockNotFound(h) if h == unknown) && !e.is_fatal());
    let e = f
        .chain
        .reconsider_block(&unknown, &mut f.mempool)
        .unwrap_err();
    assert!(matches!(e, ChainError::BlockNotFound(_)) && !e.is_fatal());
    // Invalidating genesis does nothing, as in Bitcoin Core.
    let tip = f.chain.tip_hash();
    f.chain
        .invalidate_block(&NET.genesis_hash(), &mut f.mempool)
        .unwrap();
    assert_eq!(f.chain.tip_hash(), tip);
    assert_eq!(
        f.chain.index().entry(&NET.genesis_hash()).unwrap().status,
        Status::Valid
    );
}

#[test]
fn rule_failures_name_the_block_transaction_and_input() {
    let mut f = fixture("context");
    let b = extend(&mut f, 1, 0);
    let missing = OutPoint {
        txid: chaincore::Txid([3; 32]),
        vout: 2,
    };
    let tx = spend(&key(1), missing, Amount::from_units(1), script(&key(2)));
    let txid = tx.compute_txid();
    let block = make_block(&f.chain, b[0].block_hash(), vec![tx], 0, None);
    let e = submit(&mut f, block.clone()).unwrap_err();
    assert_eq!(e.to_string(), "bad-txns-inputs-missingorspent");
    let ChainError::Rule(r) = e else {
        panic!("not a rule failure: {e}")
    };
    assert_eq!(r.block, Some(block.block_hash()));
    assert_eq!(r.height, Some(2));
    assert_eq!(r.txid, Some(txid));
    assert_eq!(r.input, Some((0, missing)));
    assert!(r.detail().contains(&txid.to_string()), "{}", r.detail());
}

#[test]
fn a_store_of_another_network_is_refused_naming_both() {
    let f = fixture("network");
    let Fixture { chain, dir, .. } = f;
    drop(chain);
    let e = Chain::open(
        Store::open(&dir.0.join("chain.redb")).unwrap(),
        Network::Main,
        TEST_DBCACHE,
    )
    .err()
    .unwrap();
    assert!(e.is_fatal());
    let text = e.to_string();
    assert!(text.contains("regtest") && text.contains("main"), "{text}");
}

#[test]
fn invalidate_and_reconsider_touch_only_the_blocks_they_affect() {
    let mut f = fixture("linear");
    let main = extend(&mut f, 30, 0);
    // A side branch off height 10 that stays lighter.
    let mut parent = main[9].block_hash();
    for _ in 0..5 {
        let b = make_block(&f.chain, parent, vec![], 2, None);
        parent = b.block_hash();
        assert_eq!(submit(&mut f, b).unwrap(), Accepted::SideChain);
    }
    let side_tip = parent;
    let target = main[20].block_hash();
    f.chain.invalidate_block(&target, &mut f.mempool).unwrap();
    assert_eq!(f.chain.tip_hash(), main[19].block_hash());
    let invalid: Vec<_> = f
        .chain
        .index()
        .entries()
        .filter(|(_, e)| e.status == Status::Invalid)
        .map(|(h, _)| *h)
        .collect();
    assert_eq!(invalid.len(), 10);
    assert_eq!(
        f.chain.index().entry(&side_tip).unwrap().status,
        Status::Valid
    );
    // Invalidating below the fork moves to the side branch (now the most work).
    f.chain
        .invalidate_block(&main[10].block_hash(), &mut f.mempool)
        .unwrap();
    assert_eq!(f.chain.tip_hash(), side_tip);
    // Reconsidering a descendant clears its invalid ancestors too.
    f.chain
        .reconsider_block(&main[29].block_hash(), &mut f.mempool)
        .unwrap();
    assert_eq!(f.chain.tip_hash(), main[29].block_hash());
    assert!(f
        .chain
        .index()
        .entries()
        .all(|(_, e)| e.status == Status::Valid));
}
