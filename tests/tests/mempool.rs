//! End-to-end: the mempool across restarts (`mempool.dat`) and fee estimates
//! (`estimatesmartfee`), against the real node binary and the real wallet.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use chaincore::encode::serialize;
use chaincore::{Address, Amount, Network, OutPoint, Transaction, TxOut, Txid};
use chaincore_tests::builder::Builder;
use chaincore_tests::{signed_spend, Node, TempDir, Wallet};
use serde_json::{json, Value};

/// A node with 101 back-dated blocks whose coinbases the builder's key can spend.
fn node_with_coins(dir: &TempDir) -> (Node, Builder, Vec<chaincore::BlockHash>) {
    node_with_coins_args(dir, &[])
}

/// [`node_with_coins`] with extra node arguments.
fn node_with_coins_args(
    dir: &TempDir,
    args: &[&str],
) -> (Node, Builder, Vec<chaincore::BlockHash>) {
    let node = Node::start(&dir.0, args);
    let mut b = Builder::new();
    let hashes = b.submit_chain(&node, &Network::Regtest.genesis_hash(), 101);
    (node, b, hashes)
}

fn send(node: &Node, tx: &Transaction) -> Txid {
    node.rpc("sendrawtransaction", json!([hex::encode(serialize(tx))]))
        .as_str()
        .unwrap()
        .parse()
        .unwrap()
}

fn pool(node: &Node) -> Vec<Value> {
    node.rpc("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .clone()
}

/// One transaction splitting block 2's coinbase into `n` outputs, and one spend of each.
fn fan_out(b: &Builder, hashes: &[chaincore::BlockHash], n: usize) -> Vec<Transaction> {
    let key = b.key().clone();
    let lock = Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let coinbase = OutPoint {
        txid: b.transactions(&hashes[1])[0].compute_txid(),
        vout: 0,
    };
    let each = (50 * 100_000_000 - 100_000) / n as i64;
    let out = |v: i64| TxOut {
        value: Amount::from_units(v),
        script_pubkey: lock.clone(),
    };
    let split = signed_spend(&key, &[coinbase], (0..n).map(|_| out(each)).collect());
    let txid = split.compute_txid();
    let mut txs = vec![split];
    for vout in 0..n as u32 - 1 {
        txs.push(signed_spend(
            &key,
            &[OutPoint { txid, vout }],
            vec![out(each - 1_000)],
        ));
    }
    txs
}

#[test]
fn two_hundred_transactions_survive_a_restart_and_get_mined() {
    let dir = TempDir::new("mempool-restart");
    let (mut node, b, hashes) = node_with_coins(&dir);
    let txs = fan_out(&b, &hashes, 200);
    for tx in &txs {
        send(&node, tx);
    }
    assert_eq!(pool(&node).len(), 200);
    node.stop();
    node.restart();
    assert_eq!(pool(&node).len(), 200, "{}", node.log_text());
    let key = b.key();
    let to = Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).to_string();
    let mined = node.rpc("generatetoaddress", json!([1, to]));
    let block = node.rpc("getblock", json!([mined[0], 1]));
    assert_eq!(block["tx"].as_array().unwrap().len(), 201);
    assert!(pool(&node).is_empty());
}

#[test]
fn after_kill_9_the_saved_transactions_are_back_and_conflicting_ones_are_dropped() {
    let dir = TempDir::new("mempool-kill");
    let (mut node, mut b, hashes) = node_with_coins(&dir);
    let key = b.key().clone();
    let lock = Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let pay = |v: i64| TxOut {
        value: Amount::from_units(v),
        script_pubkey: lock.clone(),
    };
    // Two saved transactions: one spends block 2's coinbase, which the next block's own spend
    // (the builder's, at height 102) takes another way; one spends what block 101 paid.
    let block2_coinbase = OutPoint {
        txid: b.transactions(&hashes[1])[0].compute_txid(),
        vout: 0,
    };
    let paid = OutPoint {
        txid: b.transactions(&hashes[100])[1].compute_txid(),
        vout: 0,
    };
    let doomed = signed_spend(&key, &[block2_coinbase], vec![pay(49 * 100_000_000)]);
    let kept = signed_spend(&key, &[paid], vec![pay(24 * 100_000_000)]);
    let (doomed_id, kept_id) = (send(&node, &doomed), send(&node, &kept));
    let saved = node.rpc("savemempool", json!([]));
    assert!(saved["filename"].as_str().unwrap().ends_with("mempool.dat"));
    let block = b.build(hashes.last().unwrap());
    assert_eq!(
        node.rpc("submitblock", json!([hex::encode(serialize(&block))])),
        Value::Null
    );
    assert_eq!(pool(&node), vec![json!(kept_id.to_string())]);
    // A crash: the file still holds both; on start the conflicting one is dropped.
    node.kill9();
    node.restart();
    let after = pool(&node);
    assert!(after.contains(&json!(kept_id.to_string())), "{after:?}");
    assert!(!after.contains(&json!(doomed_id.to_string())), "{after:?}");
    assert!(node.log_text().contains("saved mempool loaded"));
}

#[test]
fn estimatesmartfee_answers_as_core_and_the_wallet_pays_what_it_says() {
    let dir = TempDir::new("fees");
    let node = Node::start(&dir.0, &[]);
    // Nothing to go on: Core's "no data" answer.
    let empty = node.rpc("estimatesmartfee", json!([6]));
    assert_eq!(
        empty,
        json!({"errors": ["Insufficient data or no feerate found"], "blocks": 0})
    );
    assert_eq!(
        node.call("estimatesmartfee", json!([0])).unwrap_err()["code"],
        json!(-8)
    );
    assert_eq!(
        node.call("estimatesmartfee", json!([2, "fast"]))
            .unwrap_err()["code"],
        json!(-8)
    );
    let w = Wallet::new(&dir.0, "w", &node);
    w.json(&["create", "--show-mnemonic"]);
    let addr = w.json(&["new-address"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    // Four mature coinbases, one for each send below.
    node.rpc("generatetoaddress", json!([104, addr]));
    // No estimate yet: the wallet falls back to the relay fee and says so.
    let to = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";
    let dry = w.json(&["send", to, "1", "--dry-run"]);
    assert_eq!(dry["fee_rate_chosen"], json!(1));
    assert!(dry["fee_rate_source"]
        .as_str()
        .unwrap()
        .contains("no fee estimate"));
    // A ladder of fee rates in the pool (it fits in one block: the relay fee is enough).
    for rate in [2, 5, 9] {
        w.json(&["send", to, "0.1", "--fee-rate", &rate.to_string()]);
    }
    let est = node.rpc("estimatesmartfee", json!([6]));
    assert_eq!(est, json!({"feerate": 0.00001, "blocks": 6}));
    let dry = w.json(&["send", to, "1", "--dry-run"]);
    assert_eq!(dry["fee_rate_chosen"], json!(1));
    assert!(dry["fee_rate_source"]
        .as_str()
        .unwrap()
        .contains("estimate"));
    // The fee is the chosen rate times the signed size: exact, or one byte more when the
    // re-signed signature came out a byte shorter (the wallet keeps the larger size's fee so
    // the rate is never below the one chosen; see `build_and_sign`).
    let fee = dry["fee"]
        .as_str()
        .unwrap()
        .parse::<Amount>()
        .unwrap()
        .to_units();
    let size = dry["size"].as_i64().unwrap();
    assert!(
        fee == size || fee == size + 1,
        "fee {fee} for {size} bytes at 1 unit/byte"
    );
    // After blocks the estimate still has data (the mined transactions).
    node.rpc("generatetoaddress", json!([1, addr]));
    assert!(pool(&node).is_empty());
    assert_eq!(
        node.rpc("estimatesmartfee", json!([1, "conservative"])),
        json!({"feerate": 0.00001, "blocks": 1})
    );
}

#[test]
fn with_persistmempool_false_a_restart_starts_empty() {
    let dir = TempDir::new("mempool-off");
    let (mut node, b, hashes) = node_with_coins_args(&dir, &["--persistmempool", "false"]);
    let txs = fan_out(&b, &hashes, 3);
    for tx in &txs {
        send(&node, tx);
    }
    node.stop();
    node.restart();
    assert!(pool(&node).is_empty());
    assert!(!dir.0.join("regtest").join("mempool.dat").exists());
}

#[test]
fn a_dust_output_is_refused_with_reason_dust() {
    let dir = TempDir::new("mempool-dust");
    let (node, b, hashes) = node_with_coins(&dir);
    let key = b.key().clone();
    let lock = Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).script_pubkey();
    let coinbase = OutPoint {
        txid: b.transactions(&hashes[1])[0].compute_txid(),
        vout: 0,
    };
    let out = |v: i64| TxOut {
        value: Amount::from_units(v),
        script_pubkey: lock.clone(),
    };
    // A 1-unit output beside the payment: dust (below 546 units for P2PKH).
    let dusty = signed_spend(
        &key,
        &[coinbase],
        vec![out(50 * 100_000_000 - 100_000), out(1)],
    );
    let e = node
        .call(
            "sendrawtransaction",
            json!([hex::encode(serialize(&dusty))]),
        )
        .unwrap_err();
    assert_eq!(e["code"], json!(-26), "{e}");
    assert_eq!(e["message"], json!("dust"), "{e}");
    let accept = node.rpc(
        "testmempoolaccept",
        json!([[hex::encode(serialize(&dusty))]]),
    );
    assert_eq!(accept[0]["reject-reason"], json!("dust"), "{accept}");
    // 546 units is the threshold itself: relayed.
    let fine = signed_spend(
        &key,
        &[coinbase],
        vec![out(50 * 100_000_000 - 100_000), out(546)],
    );
    send(&node, &fine);
    assert_eq!(pool(&node).len(), 1);
}
