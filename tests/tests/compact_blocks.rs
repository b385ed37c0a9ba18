//! End-to-end: compact block relay (BIP152) between real `chaincore-node` processes.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chaincore::encode::serialize;
use chaincore::key::PrivateKey;
use chaincore::p2p::compact::{CompactBlock, PrefilledTx};
use chaincore::{Address, Amount, Network, OutPoint, Script, Transaction, TxOut};
use chaincore_tests::peer::RawPeer;
use chaincore_tests::{wait_for, Node, TempDir};
use serde_json::{json, Value};

fn key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x5c; 32]).unwrap()
}

fn lock() -> Script {
    Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).script_pubkey()
}

fn addr() -> String {
    Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).to_string()
}

fn tip(node: &Node) -> Value {
    node.rpc("getbestblockhash", json!([]))
}

fn in_mempool(node: &Node, txid: &Value) -> bool {
    node.rpc("getrawmempool", json!([]))
        .as_array()
        .is_some_and(|m| m.contains(txid))
}

/// `log` without its ANSI colour codes.
fn plain(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ parameters, ended by a letter.
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// A signed spend of a coin that does not exist: a block holding it is invalid.
fn spend_of_no_coin() -> Transaction {
    chaincore_tests::signed_spend(
        &key(),
        &[OutPoint {
            txid: chaincore::Txid([0x42; 32]),
            vout: 0,
        }],
        vec![TxOut {
            value: Amount::from_units(1_000),
            script_pubkey: lock(),
        }],
    )
}

fn send(node: &Node, tx: &Transaction) -> Value {
    node.rpc("sendrawtransaction", json!([hex::encode(serialize(tx))]))
}

/// `b` follows `a`; after 101 blocks `b` has asked `a` for high-bandwidth relay. A block
/// with six spends, three of which `b` never saw, reaches `b` as a compact block: rebuilt
/// from its mempool and one `getblocktxn` round trip, without a full-block fallback and
/// without either side misbehaving.
#[test]
fn a_compact_block_is_completed_with_getblocktxn() {
    let dir = TempDir::new("cmpct-getblocktxn");
    let a = Node::start(&dir.sub("a"), &[]);
    let b = Node::start(&dir.sub("b"), &["--connect", &a.p2p_addr()]);
    wait_for("b to connect", || {
        (b.rpc("getconnectioncount", json!([])).as_u64()? == 1).then_some(())
    });
    a.rpc("generatetoaddress", json!([101, addr()]));
    wait_for("b to sync", || (tip(&b) == tip(&a)).then_some(()));
    wait_for("b to choose a for high-bandwidth relay", || {
        let peers = b.rpc("getpeerinfo", json!([]));
        (peers[0]["bip152_hb_to"] == json!(true)).then_some(())
    });
    wait_for("a to see b's choice", || {
        let peers = a.rpc("getpeerinfo", json!([]));
        (peers[0]["bip152_hb_from"] == json!(true)).then_some(())
    });

    // Coins: block 1's coinbase split six ways, mined.
    let cb = a.rpc("getblock", json!([a.rpc("getblockhash", json!([1])), 2]));
    let txid = cb["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
    let each = 8 * 100_000_000;
    let split = chaincore_tests::signed_spend(
        &key(),
        &[OutPoint { txid, vout: 0 }],
        vec![
            TxOut {
                value: Amount::from_units(each),
                script_pubkey: lock(),
            };
            6
        ],
    );
    let split_id = split.compute_txid();
    send(&a, &split);
    a.rpc("generatetoaddress", json!([1, addr()]));
    wait_for("b to take the split's block", || {
        (tip(&b) == tip(&a)).then_some(())
    });

    let spends: Vec<Transaction> = (0..6)
        .map(|vout| {
            chaincore_tests::signed_spend(
                &key(),
                &[OutPoint {
                    txid: split_id,
                    vout,
                }],
                vec![TxOut {
                    value: Amount::from_units(each - 1_000),
                    script_pubkey: Script::new_p2pkh(&[vout as u8; 20]),
                }],
            )
        })
        .collect();
    // Three reach both mempools; the other three are only in the block.
    for tx in &spends[..3] {
        let id = send(&a, tx);
        wait_for("a relayed spend in b's mempool", || {
            in_mempool(&b, &id).then_some(())
        });
    }
    let block = chaincore_tests::solve_block(&a, &lock(), spends.clone(), 3 * 1_000);
    assert_eq!(
        a.rpc("submitblock", json!([hex::encode(serialize(&block))])),
        Value::Null
    );
    let hash = json!(block.block_hash().to_string());
    wait_for("b to take the block", || (tip(&b) == hash).then_some(()));

    let log = plain(&b.log_text());
    assert!(
        log.contains("(getblocktxn)") && log.contains("missing=3 txs=7"),
        "b did not ask for the three missing transactions:\n{log}"
    );
    assert!(!log.contains("fetching it whole"), "{log}");
    assert!(
        b.rpc("getrawmempool", json!([]))
            .as_array()
            .unwrap()
            .is_empty(),
        "the block confirmed b's three"
    );
    assert_eq!(b.rpc("getconnectioncount", json!([])), json!(1));
    assert_eq!(b.rpc("verifychain", json!([4, 0])), json!(true));
}

/// A compact block of an invalid block (valid header and proof of work, a transaction
/// spending a coin that does not exist) costs its sender nothing: BIP152 high-bandwidth
/// peers relay before validating, so Core does not punish it. The same block sent whole is
/// misbehaviour.
#[test]
fn an_invalid_block_costs_nothing_as_a_compact_block_but_does_whole() {
    let dir = TempDir::new("cmpct-invalid");
    let node = Node::start(&dir.sub("n"), &[]);
    node.rpc("generatetoaddress", json!([101, addr()]));
    let bogus = spend_of_no_coin();
    let block = chaincore_tests::solve_block(&node, &lock(), vec![bogus], 0);
    let mut compact = CompactBlock::from_block(&block, 7);
    // Everything prefilled: nothing to find in the mempool, no getblocktxn.
    compact.short_ids.clear();
    compact.prefilled.push(PrefilledTx {
        index: 1,
        tx: block.txdata[1].clone(),
    });

    let mut peer = RawPeer::connect(&node);
    peer.send("cmpctblock", &serialize(&compact));
    // Messages are handled in order: once the ping is answered the block has been judged.
    assert!(peer.sync(), "disconnected for a compact block");
    let log = node.log_text();
    assert!(
        log.contains("compact block from a peer is invalid"),
        "{log}"
    );
    assert_eq!(tip(&node), node.rpc("getblockhash", json!([101])));

    let mut peer = RawPeer::connect(&node);
    peer.send("block", &serialize(&block));
    assert!(peer.closed(), "a known-invalid full block was tolerated");
}

/// The commands a raw peer receives until the node answers a ping sent now (the node sends
/// to one peer in order, so this is everything queued for it before).
fn received_until_pong(peer: &mut RawPeer) -> Vec<(String, Vec<u8>)> {
    peer.send("ping", &77u64.to_le_bytes());
    let mut got = Vec::new();
    while let Some((command, payload)) = peer.recv() {
        if command == "pong" && payload == 77u64.to_le_bytes() {
            return got;
        }
        got.push((command, payload));
    }
    panic!("the node hung up");
}

/// A block given to `submitblock` that extends the tip goes to high-bandwidth peers as a
/// `cmpctblock` before it is validated (Core's `NewPoWValidBlock` fires for every block,
/// whoever gave it): a peer receives even one the node then rejects. One whose transactions
/// do not match its merkle root is not relayed.
#[test]
fn a_submitted_block_goes_to_high_bandwidth_peers_before_validation() {
    let dir = TempDir::new("cmpct-submitted");
    let node = Node::start(&dir.sub("n"), &[]);
    node.rpc("generatetoaddress", json!([101, addr()]));
    let mut peer = RawPeer::connect(&node);
    let hb = chaincore::p2p::compact::SendCmpct {
        high_bandwidth: true,
        version: 1,
    };
    peer.send("sendcmpct", &serialize(&hb));
    assert!(peer.sync(), "disconnected for sendcmpct");

    let bogus = spend_of_no_coin();
    let block = chaincore_tests::solve_block(&node, &lock(), vec![bogus], 0);
    let answer = node.rpc("submitblock", json!([hex::encode(serialize(&block))]));
    assert!(
        answer.as_str().is_some(),
        "an invalid block was accepted: {answer}"
    );
    let compacts: Vec<CompactBlock> = received_until_pong(&mut peer)
        .into_iter()
        .filter(|(c, _)| c == "cmpctblock")
        .map(|(_, p)| chaincore::encode::deserialize(&p).unwrap())
        .collect();
    assert_eq!(compacts.len(), 1, "no cmpctblock for the submitted block");
    assert_eq!(compacts[0].block_hash(), block.block_hash());
    assert_eq!(tip(&node), node.rpc("getblockhash", json!([101])));

    // The same transactions under another merkle root: refused, and never relayed.
    let mut mismatched = block.clone();
    mismatched.header.merkle_root = Default::default();
    let target = mismatched.header.target().unwrap();
    while !target.is_met_by(&mismatched.block_hash()) {
        mismatched.header.nonce += 1;
    }
    let answer = node.rpc("submitblock", json!([hex::encode(serialize(&mismatched))]));
    assert_eq!(answer, json!("bad-txnmrklroot"));
    let got = received_until_pong(&mut peer);
    assert!(
        got.iter().all(|(c, _)| c != "cmpctblock"),
        "a block whose merkle root does not match was relayed"
    );
}
