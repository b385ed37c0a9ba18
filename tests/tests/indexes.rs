//! The coins cache and the indexes that follow the chain, end to end: the UTXO set of a node
//! on the default cache equals that of one flushing with every block (`--dbcache 0`) through
//! blocks, a reorg and a kill -9; an address index enabled late catches up, `getindexinfo`
//! telling the truth at every step, and then equals the UTXO set.

use chaincore::key::PrivateKey;
use chaincore::{Address, Network};
use chaincore_tests::builder::Builder;
use chaincore_tests::{wait_for, Node, TempDir};
use serde_json::{json, Value};

/// The address every [`Builder`] block pays (its key is `[0x42; 32]`).
fn builder_address() -> String {
    let key = PrivateKey::from_bytes(&[0x42; 32]).expect("a valid key");
    Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).to_string()
}

fn submit(node: &Node, block: &chaincore::Block) {
    let hex = hex::encode(chaincore::encode::serialize(block));
    assert_eq!(node.rpc("submitblock", json!([hex])), Value::Null);
}

fn utxo_hash(node: &Node) -> (Value, Value) {
    let info = node.rpc("gettxoutsetinfo", json!([]));
    (info["bestblock"].clone(), info["hash_serialized"].clone())
}

#[test]
fn the_utxo_set_of_the_default_cache_equals_one_flushed_with_every_block() {
    let dir = TempDir::new("cache-vs-tiny");
    let mut cached = Node::start(&dir.sub("cached"), &["--listen", "false"]);
    let tiny = Node::start(&dir.sub("tiny"), &["--listen", "false", "--dbcache", "0"]);
    let mut b = Builder::new();
    let mut parent = Network::Regtest.genesis_hash();
    let mut chain = Vec::new();
    for _ in 0..115 {
        let block = b.build(&parent);
        parent = block.block_hash();
        submit(&cached, &block);
        submit(&tiny, &block);
        chain.push(parent);
    }
    assert_eq!(utxo_hash(&cached), utxo_hash(&tiny));
    // A reorg below the tip: both disconnect three blocks that moved coins.
    let target = chain[111].to_string();
    cached.rpc("invalidateblock", json!([target]));
    tiny.rpc("invalidateblock", json!([target]));
    assert_eq!(utxo_hash(&cached), utxo_hash(&tiny));
    // A heavier branch from there, then a kill -9 of the cached node before any flush: it
    // replays from its last flush (genesis) on restart.
    let mut parent = chain[110];
    for _ in 0..5 {
        let block = b.build(&parent);
        parent = block.block_hash();
        submit(&cached, &block);
        submit(&tiny, &block);
    }
    let before = utxo_hash(&cached);
    assert_eq!(before, utxo_hash(&tiny));
    cached.restart();
    assert_eq!(utxo_hash(&cached), before);
    assert!(cached.log_text().contains("UTXO set replayed"));
    assert_eq!(cached.rpc("verifychain", json!([4, 0])), json!(true));
    assert_eq!(tiny.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn an_address_index_enabled_late_catches_up_truthfully_and_equals_the_utxo_set() {
    let dir = TempDir::new("index-late");
    let data = dir.sub("node");
    let mut off = Node::start(
        &data,
        &[
            "--listen",
            "false",
            "--addressindex=false",
            "--txindex=false",
        ],
    );
    let mut b = Builder::new();
    let mut parent = Network::Regtest.genesis_hash();
    for _ in 0..160 {
        let block = b.build(&parent);
        parent = block.block_hash();
        submit(&off, &block);
    }
    assert_eq!(off.rpc("getindexinfo", json!([])), json!({}));
    let e = off
        .call("getaddressbalance", json!([builder_address()]))
        .unwrap_err();
    assert!(
        e["message"].as_str().unwrap().contains("--addressindex"),
        "{e}"
    );
    off.stop();

    let on = Node::start(&data, &["--listen", "false"]);
    let tip = on.rpc("getblockcount", json!([])).as_u64().unwrap();
    assert_eq!(tip, 160);
    // Every answer while it catches up is true: synced exactly when at the tip, and the
    // height only grows.
    let mut last = [0u64; 2];
    wait_for("the indexes to catch up", || {
        let info = on.rpc("getindexinfo", json!([]));
        let mut all = true;
        for (i, name) in ["txindex", "addressindex"].iter().enumerate() {
            let height = info[name]["best_block_height"].as_u64().unwrap();
            let synced = info[name]["synced"].as_bool().unwrap();
            assert_eq!(synced, height == tip, "{info}");
            assert!(height >= last[i], "{name} went back: {info}");
            last[i] = height;
            all &= synced;
        }
        // The array answers name where the index is when asked (`chainInfo`): at or past
        // what getindexinfo just said, a block of the active chain.
        let with_info = json!([{"addresses": [builder_address()], "chainInfo": true}]);
        for method in ["getaddressutxos", "getaddresstxids"] {
            let answer = on.rpc(method, with_info.clone());
            let height = answer["height"].as_u64().unwrap();
            assert!(height >= last[1] && height <= tip, "{method}: {answer}");
            let list = if method == "getaddressutxos" {
                "utxos"
            } else {
                "txids"
            };
            assert!(answer[list].is_array(), "{answer}");
            if height > 0 {
                assert_eq!(answer["hash"], on.rpc("getblockhash", json!([height])));
            }
        }
        all.then_some(())
    });
    let at = on.rpc(
        "getaddresstxids",
        json!([{"addresses": [builder_address()], "chainInfo": true}]),
    );
    assert_eq!(at["height"].as_u64(), Some(tip), "{at}");
    assert_eq!(at["hash"], on.rpc("getbestblockhash", json!([])));
    // Every coin of the chain pays the builder's address: the index holds exactly the set.
    let set = on.rpc("gettxoutsetinfo", json!([]));
    let addr = builder_address();
    let utxos = on.rpc("getaddressutxos", json!([{"addresses": [addr]}]));
    let utxos = utxos.as_array().unwrap();
    assert_eq!(utxos.len() as u64, set["txouts"].as_u64().unwrap());
    let mut total = 0i64;
    for u in utxos {
        let out = on.rpc("gettxout", json!([u["txid"], u["outputIndex"], false]));
        assert_eq!(out["confirmations"], u["confirmations"], "{u}");
        total += u["satoshis"].as_i64().unwrap();
    }
    let balance = on.rpc("getaddressbalance", json!([addr]));
    assert_eq!(balance["balance"].as_i64().unwrap(), total);
    assert!(balance.get("index_height").is_none(), "{balance}");
    let coins = (set["total_amount"].as_f64().unwrap() * 1e8).round() as i64;
    assert_eq!(total, coins);
    assert_eq!(on.rpc("verifychain", json!([4, 0])), json!(true));
    // The tx index found the spends too.
    let spend = utxos
        .iter()
        .find(|u| !u["coinbase"].as_bool().unwrap())
        .unwrap();
    let tx = on.rpc("getrawtransaction", json!([spend["txid"], true]));
    assert_eq!(tx["confirmations"], spend["confirmations"]);
}
