//! The node's operations through the writer, on a real store: what a caller sees right after
//! an answer, the signature step outside the writer, and the reject cache.

use chaincore::key::PrivateKey;
use chaincore::sighash::{legacy_sighash, SIGHASH_ALL};
use chaincore::{Amount, OutPoint, Script, TxOut};

use super::*;

struct Fixture {
    node: Arc<Node>,
    /// Runs the node's async operations.
    rt: tokio::runtime::Runtime,
    dir: std::path::PathBuf,
    /// A mature coinbase paying `key()`: (outpoint, value).
    coin: (OutPoint, Amount),
}

impl Drop for Fixture {
    fn drop(&mut self) {
        self.node.stop_writer();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x42; 32]).unwrap()
}

fn lock() -> Script {
    Script::new_p2pkh(&key().public_key().pubkey_hash())
}

/// A node with 101 blocks mined to `key()`, so the first coinbase is spendable.
fn fixture(label: &str) -> Fixture {
    let dir = std::env::temp_dir().join(format!("cc-node-{label}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let node = Node::open(Network::Regtest, &dir).unwrap();
    let hashes = node.generate_blocks(101, &lock()).unwrap();
    let snap = node.snapshot();
    let first = store::read::block(&snap.rtx, &hashes[0]).unwrap().unwrap();
    let coinbase = &first.txdata[0];
    let coin = (
        OutPoint {
            txid: coinbase.compute_txid(),
            vout: 0,
        },
        coinbase.output[0].value,
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    Fixture {
        node,
        rt,
        dir,
        coin,
    }
}

/// Spends `coin` to `key()` less a fee; `good` false signs the wrong digest (well-formed,
/// fails only at verification).
fn spend((prev, value): (OutPoint, Amount), good: bool) -> Transaction {
    let pay = TxOut {
        value: Amount::from_units(value.to_units() - 10_000),
        script_pubkey: lock(),
    };
    let mut tx = Transaction::new_unsigned(&[prev], vec![pay]);
    let digest = if good {
        legacy_sighash(&tx, 0, &lock(), SIGHASH_ALL)
    } else {
        [7u8; 32]
    };
    let mut sig = key().sign_digest(&digest);
    sig.push(SIGHASH_ALL as u8);
    tx.input[0].script_sig = Script::new_p2pkh_script_sig(&sig, &key().public_key().to_bytes());
    tx
}

#[test]
fn an_accepted_transaction_is_in_the_snapshot_the_answer_follows() {
    let f = fixture("visible");
    let tx = spend(f.coin, true);
    let txid =
        f.rt.block_on(f.node.accept_transaction(tx.clone(), false))
            .unwrap();
    assert!(f.node.snapshot().mempool.contains(&txid));
    assert!(matches!(
        f.rt.block_on(f.node.accept_transaction(tx, false)),
        Err(MempoolError::AlreadyInMempool)
    ));
    // A block confirms it: gone from the pool in the snapshot after the answer.
    let mined = f.node.generate_blocks(1, &lock()).unwrap();
    let snap = f.node.snapshot();
    assert_eq!(snap.index.tip_hash(), mined[0]);
    assert!(!snap.mempool.contains(&txid));
}

#[test]
fn a_bad_signature_is_refused_before_the_writer_and_a_relayed_one_only_once_per_tip() {
    let f = fixture("rejects");
    let bad = spend(f.coin, false);
    let e =
        f.rt.block_on(f.node.accept_transaction(bad.clone(), false))
            .unwrap_err();
    assert!(e.is_consensus(), "{e}");
    assert!(e
        .to_string()
        .starts_with("mandatory-script-verify-flag-failed"));
    match f.rt.block_on(f.node.accept_relayed(bad.clone(), 1)) {
        Relayed::Rejected(e) => assert!(e.is_consensus()),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        f.rt.block_on(f.node.accept_relayed(bad.clone(), 2)),
        Relayed::RecentlyRejected
    ));
    // A new tip forgets: checked (and refused) again.
    f.node.generate_blocks(1, &lock()).unwrap();
    assert!(matches!(
        f.rt.block_on(f.node.accept_relayed(bad, 1)),
        Relayed::Rejected(_)
    ));
    // The good spend of the same coin was never blocked by the bad one.
    assert!(f
        .rt
        .block_on(f.node.accept_transaction(spend(f.coin, true), false))
        .is_ok());
}

#[test]
fn the_writer_adds_nothing_whose_signatures_were_not_checked() {
    let f = fixture("unverified");
    let tx = spend(f.coin, false);
    let answer = f
        .node
        .call(|reply| Command::AcceptTx {
            tx: Box::new(tx.clone()),
            verified: false,
            test_only: false,
            reply,
        })
        .unwrap();
    assert!(matches!(answer, Ok(Admission::NeedsSignatures)));
    assert!(!f.node.snapshot().mempool.contains(&tx.compute_txid()));
}

/// Issue #23, item 2: a block whose transactions the mempool verified connects without their
/// signatures being checked again (so at every hop of a relay whose mempools hold them);
/// where the pool does not vouch for a transaction, its signatures are checked. Shown with a
/// bad signature the pool was told is good: the block connects on the pool's word, and a node
/// without that transaction in its pool refuses the same block.
#[test]
fn a_block_connects_without_rechecking_signatures_its_mempool_verified() {
    let f = fixture("trusted");
    let tx = spend(f.coin, false);
    let answer = f
        .node
        .call(|reply| Command::AcceptTx {
            tx: Box::new(tx.clone()),
            verified: true,
            test_only: false,
            reply,
        })
        .unwrap();
    assert!(matches!(answer, Ok(Admission::Valid(_))), "{answer:?}");
    let mined = f.node.generate_blocks(1, &lock()).unwrap();
    let snap = f.node.snapshot();
    assert_eq!(
        snap.index.tip_hash(),
        mined[0],
        "connected on the pool's word"
    );
    let blocks: Vec<Block> = (1..=snap.index.tip_height())
        .map(|h| {
            let hash = snap.index.active_hash(h).unwrap();
            store::read::block(&snap.rtx, &hash).unwrap().unwrap()
        })
        .collect();
    assert!(blocks[blocks.len() - 1].txdata.contains(&tx));

    let dir = f.dir.with_extension("fresh");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let fresh = Node::open(Network::Regtest, &dir).unwrap();
    let (last, before) = blocks.split_last().unwrap();
    for b in before {
        fresh.submit_block(b.clone()).unwrap();
    }
    match fresh.submit_block(last.clone()) {
        Err(ChainError::Rule(r)) => assert!(matches!(r.reason, RuleError::Script(_)), "{r:?}"),
        other => panic!("the bad signature was not checked: {other:?}"),
    }
    fresh.stop_writer();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_transaction_over_the_standard_size_is_refused_as_policy() {
    let f = fixture("size");
    let mut big = spend(f.coin, true);
    let filler = TxOut {
        value: Amount::ZERO,
        script_pubkey: Script::new_op_return(&[0; 80]).unwrap(),
    };
    big.output.extend(std::iter::repeat_n(
        filler,
        crate::mempool::MAX_STANDARD_TX_SIZE / 90,
    ));
    assert!(big.size() > crate::mempool::MAX_STANDARD_TX_SIZE);
    let e =
        f.rt.block_on(f.node.accept_transaction(big, false))
            .unwrap_err();
    assert_eq!(e.to_string(), "tx-size");
    assert!(
        !e.is_consensus(),
        "policy: a peer relaying it is not punished"
    );
}

/// Waits (polling, generous deadline) until `f` holds.
fn wait_until(what: &str, f: impl Fn() -> bool) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !f() {
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        std::thread::yield_now();
    }
}

#[test]
fn a_child_relayed_while_its_parent_gets_in_is_accepted_not_remembered_as_refused() {
    let f = fixture("race");
    let parent = spend(f.coin, true);
    let parent_out = (
        OutPoint {
            txid: parent.compute_txid(),
            vout: 0,
        },
        parent.output[0].value,
    );
    let child = spend(parent_out, true);
    let child_txid = child.compute_txid();
    // Hold the writer, so the child's command and then the parent's queue behind it and run in
    // one batch, the child's first: the writer sees no parent, but the parent is in by the
    // time the child's answer comes.
    let (entered, in_pause) = std::sync::mpsc::channel();
    let (resume, resumed) = std::sync::mpsc::channel();
    let n = f.node.clone();
    let held = std::thread::spawn(move || {
        n.call(|reply| Command::Pause {
            entered,
            resume: resumed,
            reply,
        })
    });
    in_pause
        .recv_timeout(std::time::Duration::from_secs(60))
        .expect("the writer takes the pause");
    let n = f.node.clone();
    let c = child.clone();
    let relayed = f.rt.spawn(async move { n.accept_relayed(c, 1).await });
    wait_until("the child's command", || f.node.writer.queued() >= 1);
    let n = f.node.clone();
    let p = parent.clone();
    let admitted =
        f.rt.spawn(async move { n.accept_transaction(p, false).await });
    wait_until("the parent's command", || f.node.writer.queued() >= 2);
    resume.send(()).unwrap();
    held.join().unwrap().unwrap();
    f.rt.block_on(admitted).unwrap().unwrap();
    let first = f.rt.block_on(relayed).unwrap();
    assert!(
        f.node.snapshot().mempool.contains(&child_txid),
        "the child is in the pool (first answer {first:?})"
    );
    assert!(matches!(
        f.rt.block_on(f.node.accept_relayed(child, 3)),
        Relayed::Rejected(MempoolError::AlreadyInMempool)
    ));
}

/// A version-3 store (index entries without `chain_tx`) opens as version 4 with the same
/// transaction counts a version-4 node wrote, and keeps working.
/// Rewrites a stopped node's current store at `path` as schema `version` (3 or 4) wrote it:
/// address rows without values and no coins tip or index best blocks (a version-4 store
/// committed its UTXO set and indexes with every block), and for version 3 index entries
/// without `chain_tx`.
fn downgrade(path: &std::path::Path, version: u32) {
    use crate::store::tables::{ADDR_COINS, BLOCK_INDEX, META};
    use redb::{ReadableTable, TableDefinition};
    let v4_addr: TableDefinition<[u8; 60], ()> = TableDefinition::new("addr_utxos");
    let db = redb::Database::create(path).unwrap();
    let wtx = db.begin_write().unwrap();
    {
        let rows: Vec<[u8; 60]> = wtx
            .open_table(ADDR_COINS)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| r.unwrap().0.value())
            .collect();
        assert!(!rows.is_empty());
        let mut old = wtx.open_table(v4_addr).unwrap();
        for k in rows {
            old.insert(k, ()).unwrap();
        }
        let mut meta = wtx.open_table(META).unwrap();
        for row in ["coins_tip", "index.tx", "index.address"] {
            assert!(meta.remove(row).unwrap().is_some(), "{row}");
        }
        meta.insert("schema", version.to_le_bytes().as_slice())
            .unwrap();
        if version == 3 {
            let mut index = wtx.open_table(BLOCK_INDEX).unwrap();
            let rows: Vec<([u8; 32], Vec<u8>)> = index
                .iter()
                .unwrap()
                .map(|r| {
                    let (k, v) = r.unwrap();
                    (k.value(), v.value()[..117].to_vec())
                })
                .collect();
            for (k, v) in rows {
                index.insert(k, v.as_slice()).unwrap();
            }
        }
    }
    wtx.delete_table(ADDR_COINS).unwrap();
    wtx.commit().unwrap();
}

#[test]
fn version_3_and_4_stores_are_upgraded_in_place() {
    use crate::store::tables::META;
    use redb::ReadableDatabase;

    let f = fixture("upgrade");
    f.rt.block_on(f.node.accept_transaction(spend(f.coin, true), false))
        .unwrap();
    f.node.generate_blocks(1, &lock()).unwrap();
    let written: std::collections::BTreeMap<BlockHash, u64> = f
        .node
        .snapshot()
        .index
        .entries()
        .map(|(h, e)| (*h, e.chain_tx))
        .collect();
    assert_eq!(
        written.values().max(),
        Some(&(1 + 102 + 1)),
        "genesis, 102 coinbases, a spend"
    );
    let stats = crate::verify::utxo_stats(&f.node.snapshot()).unwrap().hash;
    // Stopped, so the copy holds a flushed UTXO set and indexes at the tip, as an old
    // version's store did.
    f.node.wait_for_indexes_for_tests();
    f.node.stop_writer();
    for version in [3, 4] {
        let dir = f.dir.with_extension(format!("v{version}"));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(f.dir.join("chain.redb"), dir.join("chain.redb")).unwrap();
        let path = dir.join("chain.redb");
        downgrade(&path, version);
        let node = Node::open(Network::Regtest, &dir).unwrap();
        let upgraded: std::collections::BTreeMap<BlockHash, u64> = node
            .snapshot()
            .index
            .entries()
            .map(|(h, e)| (*h, e.chain_tx))
            .collect();
        assert_eq!(upgraded, written);
        assert_eq!(
            crate::verify::utxo_stats(&node.snapshot()).unwrap().hash,
            stats
        );
        // The indexes start at the tip (nothing to catch up) and equal a replay.
        let tip = node.snapshot().tip();
        assert!(node
            .index_progress
            .borrow()
            .iter()
            .all(|s| s.at(&tip.hash, tip.height)));
        crate::verify::verify_chain(&node, 4, 0).unwrap();
        node.generate_blocks(1, &lock()).unwrap();
        assert_eq!(node.snapshot().index.tip().chain_tx, 1 + 102 + 1 + 1);
        node.wait_for_indexes_for_tests();
        crate::verify::verify_chain(&node, 4, 0).unwrap();
        node.stop_writer();
        drop(node);
        let db = redb::Database::open(&path).unwrap();
        let rtx = db.begin_read().unwrap();
        let meta = rtx.open_table(META).unwrap();
        let schema = meta.get("schema").unwrap().unwrap();
        assert_eq!(
            schema.value(),
            crate::store::SCHEMA_VERSION.to_le_bytes().as_slice()
        );
        drop((schema, meta, rtx, db));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
