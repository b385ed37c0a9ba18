//! End-to-end: the real `chaincore-node` binary on a loopback port, driven over JSON-RPC.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::time::{Duration, Instant};

use chaincore::encode::serialize;
use chaincore::key::PrivateKey;
use chaincore::{Address, Amount, Block, BlockHash, Network, OutPoint, Transaction, TxOut};
use chaincore_tests::{wait_for, Node, TempDir};
use serde_json::{json, Value};

fn key(n: u8) -> PrivateKey {
    PrivateKey::from_bytes(&[n; 32]).unwrap()
}

fn address(k: &PrivateKey) -> Address {
    Address::p2pkh(k.public_key().pubkey_hash(), Network::Regtest)
}

/// A signed one-input P2PKH spend of `prev` (locked to `k`) paying `outputs`.
fn spend(k: &PrivateKey, prev: OutPoint, outputs: Vec<TxOut>) -> Transaction {
    chaincore_tests::signed_spend(k, &[prev], outputs)
}

fn pay(to: &Address, units: i64) -> TxOut {
    TxOut {
        value: Amount::from_units(units),
        script_pubkey: to.script_pubkey(),
    }
}

/// Confirmed, mature-or-not UTXOs of an address as (outpoint, value, coinbase, confirmations).
fn utxos(node: &Node, a: &Address) -> Vec<(OutPoint, i64, bool, u64)> {
    node.rpc("getaddressutxos", json!([{"addresses": [a.to_string()]}]))
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                OutPoint {
                    txid: u["txid"].as_str().unwrap().parse().unwrap(),
                    vout: u["outputIndex"].as_u64().unwrap() as u32,
                },
                u["satoshis"].as_i64().unwrap(),
                u["coinbase"].as_bool().unwrap(),
                u["confirmations"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn balance(node: &Node, a: &Address) -> Value {
    node.rpc("getaddressbalance", json!([{"addresses": [a.to_string()]}]))
}

#[test]
fn cookie_auth_works_and_wrong_credentials_are_refused() {
    let dir = TempDir::new("auth");
    let node = Node::start(&dir.0, &[]);
    let cookie = node.cookie().expect("cookie written");
    assert!(cookie.starts_with("__cookie__:") && cookie.len() == 11 + 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.0.join("regtest/.cookie"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));

    let body = r#"{"method":"getblockcount","params":[],"id":1}"#;
    let start = Instant::now();
    let wrong = node.post(body, Some("__cookie__:00")).unwrap();
    assert_eq!(wrong.status, 401);
    assert!(
        start.elapsed() >= Duration::from_millis(250),
        "401 comes after a delay"
    );
    assert_eq!(node.post(body, None).unwrap().status, 401);
    // Still serving the right credentials.
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
}

#[test]
fn user_password_auth_and_clean_stop_removes_cookie() {
    let dir = TempDir::new("userpass");
    let mut node = Node::start(&dir.0, &["--rpcuser", "alice", "--rpcpassword", "s3cret"]);
    assert!(
        node.cookie().is_none(),
        "no cookie with --rpcuser/--rpcpassword"
    );
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
    let body = r#"{"method":"getblockcount","params":[],"id":1}"#;
    assert_eq!(node.post(body, Some("alice:wrong")).unwrap().status, 401);
    assert!(node.stop().success());

    let dir2 = TempDir::new("cookie-removed");
    let mut node2 = Node::start(&dir2.0, &[]);
    assert!(node2.cookie().is_some());
    assert!(node2.stop().success());
    assert!(node2.cookie().is_none(), "cookie removed on clean shutdown");
}

#[test]
fn mine_spend_and_balances() {
    let dir = TempDir::new("spend");
    let node = Node::start(&dir.0, &[]);
    let (a, b) = (key(1), key(2));
    let (addr_a, addr_b) = (address(&a), address(&b));
    // Nothing to sync at genesis: verified all of the known chain (Core's meaning).
    let info = node.rpc("getblockchaininfo", json!([]));
    assert_eq!(info["verificationprogress"], json!(1.0), "{info}");
    let hashes = node.rpc("generatetoaddress", json!([101, addr_a.to_string()]));
    assert_eq!(hashes.as_array().unwrap().len(), 101);
    assert_eq!(node.rpc("getblockcount", json!([])), json!(101));
    let db_bytes = std::fs::metadata(dir.0.join("regtest").join("chain.redb"))
        .unwrap()
        .len();
    assert!(db_bytes > 0);
    assert_eq!(
        node.rpc("getblockchaininfo", json!([]))["size_on_disk"],
        json!(db_bytes)
    );

    let bal = balance(&node, &addr_a);
    assert_eq!(bal["balance"], json!(101 * 50 * 100_000_000i64));
    // Coinbases with at least 100 confirmations (heights 1 and 2) can be spent in the next
    // block; the other 99 are immature.
    assert_eq!(bal["immature"], json!(99 * 50 * 100_000_000i64));

    let mature = utxos(&node, &addr_a)
        .into_iter()
        .find(|u| u.3 >= 100)
        .expect("a mature coinbase");
    let fee = 10_000;
    let to_b = 12 * 100_000_000 + 50_000_000;
    let change = mature.1 - to_b - fee;
    let tx = spend(&a, mature.0, vec![pay(&addr_b, to_b), pay(&addr_a, change)]);
    let txid = node.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    assert_eq!(txid, json!(tx.compute_txid().to_string()));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([txid]));
    assert_eq!(balance(&node, &addr_b)["unconfirmed"], json!(to_b));
    // Sending it again is refused as already in the mempool.
    let again = node.call("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    assert_eq!(
        again.unwrap_err()["message"],
        json!("txn-already-in-mempool")
    );

    let block = node.rpc("generatetoaddress", json!([1, addr_b.to_string()]));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
    let mined = node.rpc("getblock", json!([block[0], 1]));
    assert_eq!(mined["tx"][1], txid);
    // Its statistics, by height and by hash alike.
    let stats = node.rpc("getblockstats", json!([102]));
    assert_eq!(stats, node.rpc("getblockstats", json!([block[0]])));
    assert_eq!(stats["blockhash"], block[0]);
    assert_eq!(stats["txs"], json!(2));
    assert_eq!(stats["ins"], json!(1));
    assert_eq!(stats["outs"], json!(3));
    assert_eq!(stats["totalfee"], json!(fee));
    assert_eq!(stats["subsidy"], json!(50 * 100_000_000i64));
    assert_eq!(stats["total_out"], json!(to_b + change));
    assert_eq!(stats["total_size"], json!(serialize(&tx).len()));
    assert_eq!(stats["utxo_increase"], json!(3 - 1));
    let beyond = node.call("getblockstats", json!([103])).unwrap_err();
    assert_eq!(beyond["code"], json!(-8), "{beyond}");
    let unknown = node
        .call("getblockstats", json!(["00".repeat(32)]))
        .unwrap_err();
    assert_eq!(unknown["code"], json!(-5), "{unknown}");
    assert_eq!(node.rpc("getblockstats", json!([0]))["txs"], json!(1));

    let bal_b = balance(&node, &addr_b);
    assert_eq!(bal_b["unconfirmed"], json!(0));
    // B: the payment plus its own immature coinbase (subsidy + the fee).
    assert_eq!(bal_b["balance"], json!(to_b + 50 * 100_000_000 + fee));
    assert_eq!(bal_b["immature"], json!(50 * 100_000_000 + fee));
    let bal_a = balance(&node, &addr_a);
    assert_eq!(
        bal_a["balance"],
        json!(101 * 50 * 100_000_000i64 - to_b - fee)
    );

    let verbose = node.rpc("getrawtransaction", json!([txid, true]));
    assert_eq!(verbose["confirmations"], json!(1));
    assert_eq!(
        verbose["vout"][0]["scriptPubKey"]["address"],
        json!(addr_b.to_string())
    );
    let txids = node.rpc(
        "getaddresstxids",
        json!([{"addresses": [addr_b.to_string()]}]),
    );
    assert!(txids.as_array().unwrap().contains(&txid));
    assert_eq!(node.rpc("verifychain", json!([4, 0])), json!(true));
}

/// Builds and solves a block on the node's tip paying `to`, as an external miner would.
fn solve_block(node: &Node, to: &Address, txs: Vec<Transaction>) -> Block {
    chaincore_tests::solve_block(node, &to.script_pubkey(), txs, 0)
}

#[test]
fn submitblock_accepts_a_block_solved_by_the_test() {
    let dir = TempDir::new("submit");
    let node = Node::start(&dir.0, &[]);
    let to = address(&key(3));
    let block = solve_block(&node, &to, vec![]);
    let hex_block = hex::encode(serialize(&block));
    assert_eq!(node.rpc("submitblock", json!([hex_block])), Value::Null);
    assert_eq!(
        node.rpc("getbestblockhash", json!([])),
        json!(block.block_hash().to_string())
    );
    assert_eq!(
        node.rpc("submitblock", json!([hex_block])),
        json!("duplicate")
    );

    // A block with a wrong merkle root is refused with Core's reason and changes nothing.
    let mut bad = solve_block(&node, &to, vec![]);
    bad.header.merkle_root = Default::default();
    let target = bad.header.target().unwrap();
    while !target.is_met_by(&bad.block_hash()) {
        bad.header.nonce += 1;
    }
    assert_eq!(
        node.rpc("submitblock", json!([hex::encode(serialize(&bad))])),
        json!("bad-txnmrklroot")
    );
    // Parent unknown.
    let mut orphan = solve_block(&node, &to, vec![]);
    orphan.header.prev_blockhash = BlockHash([7; 32]);
    while !target.is_met_by(&orphan.block_hash()) {
        orphan.header.nonce += 1;
    }
    assert_eq!(
        node.rpc("submitblock", json!([hex::encode(serialize(&orphan))])),
        json!("prev-blk-not-found")
    );
    assert_eq!(node.rpc("getblockcount", json!([])), json!(1));
}

#[test]
fn long_poll_wakes_on_a_new_block() {
    let dir = TempDir::new("longpoll");
    let node = Node::start(&dir.0, &[]);
    let t = node.rpc("getblocktemplate", json!([{}]));
    let id = t["longpollid"].as_str().unwrap().to_string();
    let url = node.url();
    let cookie = node.cookie().unwrap();
    let waiter = std::thread::spawn(move || {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(cookie);
        let started = Instant::now();
        let body = json!({"method": "getblocktemplate", "params": [{"longpollid": id}], "id": 1});
        let text = ureq::post(&url)
            .set("Authorization", &format!("Basic {auth}"))
            .send_string(&body.to_string())
            .unwrap()
            .into_string()
            .unwrap();
        (
            started.elapsed(),
            serde_json::from_str::<Value>(&text).unwrap(),
        )
    });
    // Give the long poll time to be waiting, then mine.
    std::thread::sleep(Duration::from_millis(500));
    let mined = node.rpc(
        "generatetoaddress",
        json!([1, address(&key(4)).to_string()]),
    );
    let (elapsed, answer) = waiter.join().unwrap();
    assert_eq!(answer["result"]["previousblockhash"], mined[0]);
    assert_eq!(answer["result"]["height"], json!(2));
    assert!(
        elapsed < Duration::from_secs(30),
        "woke on the block, not the timeout"
    );
}

#[test]
fn kill_9_during_mining_reopens_consistent() {
    let dir = TempDir::new("kill9");
    let mut node = Node::start(&dir.0, &[]);
    let a = address(&key(5));
    // Some history with spends, so undo data and the address index matter.
    node.rpc("generatetoaddress", json!([101, a.to_string()]));
    let coin = utxos(&node, &a).into_iter().find(|u| u.3 >= 100).unwrap();
    let tx = spend(&key(5), coin.0, vec![pay(&address(&key(6)), coin.1 - 1000)]);
    node.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));

    // Mine in a loop from another thread, in calls of 1 to 5 blocks (so some commits defer
    // durability to the call's last block), and kill the node in the middle of it.
    let url_node = (node.url(), node.cookie().unwrap());
    let returned = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let miner = {
        let returned = returned.clone();
        std::thread::spawn(move || {
            use base64::Engine;
            let auth = base64::engine::general_purpose::STANDARD.encode(&url_node.1);
            for i in 0..1000 {
                let n = 1 + i % 5;
                let body =
                    json!({"method": "generatetoaddress", "params": [n, a.to_string()], "id": 1});
                let Ok(answer) = ureq::post(&url_node.0)
                    .set("Authorization", &format!("Basic {auth}"))
                    .send_string(&body.to_string())
                else {
                    return; // the node is gone
                };
                let Ok(text) = answer.into_string() else {
                    return;
                };
                let v: Value = serde_json::from_str(&text).unwrap();
                if let Some(last) = v["result"].as_array().and_then(|h| h.last()) {
                    returned
                        .lock()
                        .unwrap()
                        .push(last.as_str().unwrap().to_string());
                }
            }
        })
    };
    wait_for("mining to make progress", || {
        (returned.lock().unwrap().len() >= 10).then_some(())
    });
    node.kill9();
    miner.join().unwrap();
    let last_returned = returned.lock().unwrap().last().cloned().unwrap();

    node.restart();
    let height = node.rpc("getblockcount", json!([])).as_u64().unwrap();
    let header = node.rpc("getblockheader", json!([last_returned]));
    assert!(
        header["confirmations"].as_i64().unwrap() >= 1,
        "every block a finished generatetoaddress returned survives the kill: {header}"
    );
    assert_eq!(node.rpc("verifychain", json!([4, 0])), json!(true));
    let info = node.rpc("gettxoutsetinfo", json!([]));
    // Recomputed from the blocks alone, the way `gettxoutsetinfo` defines it.
    let replay = chaincore_tests::replay::Replay::of(&node);
    assert_eq!(replay.bad_spends, Vec::<String>::new());
    assert_eq!(info["txouts"], json!(replay.utxos.len()));
    assert_eq!(info["hash_serialized"], json!(replay.utxo_hash()));
    // And it keeps working.
    node.rpc("generatetoaddress", json!([2, a.to_string()]));
    assert_eq!(node.rpc("getblockcount", json!([])), json!(height + 2));
    assert_eq!(node.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn bad_input_gets_clear_errors_and_the_node_keeps_serving() {
    let dir = TempDir::new("badinput");
    let node = Node::start(&dir.0, &[]);
    let code = |r: Result<Value, Value>| r.unwrap_err()["code"].as_i64().unwrap();
    assert_eq!(code(node.call("nosuchmethod", json!([]))), -32601);
    let wrong_type = node.call("getblockhash", json!(["ten"])).unwrap_err();
    assert_eq!(wrong_type["code"], json!(-3));
    assert_eq!(
        wrong_type["message"],
        json!("Expected type number, got string")
    );
    let too_many = node.call("getblockcount", json!([1])).unwrap_err();
    assert_eq!(too_many["code"], json!(-1));
    assert!(
        too_many["message"]
            .as_str()
            .unwrap()
            .starts_with("getblockcount\n"),
        "{too_many}"
    );
    assert_eq!(code(node.call("getblockhash", json!([99]))), -8);
    assert_eq!(code(node.call("getblock", json!(["zz"]))), -8);
    assert_eq!(code(node.call("getblock", json!(["00".repeat(32)]))), -5);
    assert_eq!(code(node.call("sendrawtransaction", json!(["zz"]))), -22);
    assert_eq!(code(node.call("sendrawtransaction", json!(["0100"]))), -22);
    assert_eq!(
        code(node.call("getaddressbalance", json!(["notanaddress"]))),
        -5
    );
    let block = solve_block(&node, &address(&key(7)), vec![]);
    let raw = hex::encode(serialize(&block));
    assert_eq!(
        code(node.call("submitblock", json!([&raw[..raw.len() - 10]]))),
        -22
    );

    let cookie = node.cookie().unwrap();
    // Oversized body: 413, not a crash.
    let huge = format!(
        r#"{{"method":"sendrawtransaction","params":["{}"],"id":1}}"#,
        "00".repeat(1_100_000)
    );
    assert_eq!(node.post(&huge, Some(&cookie)).unwrap().status, 413);
    // Batch over the limit.
    let batch: Vec<Value> = (0..101)
        .map(|i| json!({"jsonrpc": "2.0", "method": "getblockcount", "params": [], "id": i}))
        .collect();
    let answer = node.post(&json!(batch).to_string(), Some(&cookie)).unwrap();
    assert_eq!(answer.body["error"]["code"], json!(-32010), "{answer:?}");
    // A batch within the limit works.
    let batch: Vec<Value> = (0..3)
        .map(|i| json!({"jsonrpc": "2.0", "method": "getblockcount", "params": [], "id": i}))
        .collect();
    let answer = node.post(&json!(batch).to_string(), Some(&cookie)).unwrap();
    assert_eq!(answer.body.as_array().unwrap().len(), 3);
    // Not JSON at all.
    let answer = node.post("{nope", Some(&cookie)).unwrap();
    assert_eq!(answer.body["error"]["code"], json!(-32700));
    // JSON-RPC 2.0 requests get 2.0 answers; 1.0 requests get result/error/id.
    let v2 = node
        .post(
            r#"{"jsonrpc":"2.0","method":"getblockcount","params":[],"id":7}"#,
            Some(&cookie),
        )
        .unwrap();
    assert_eq!(v2.body, json!({"jsonrpc": "2.0", "result": 0, "id": 7}));
    let v1 = node
        .post(
            r#"{"version":"1.1","method":"getblockcount","params":[],"id":8}"#,
            Some(&cookie),
        )
        .unwrap();
    assert_eq!(v1.body, json!({"result": 0, "error": null, "id": 8}));
    // Still serving.
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
    assert_eq!(
        node.rpc("uptime", json!([])).as_u64().map(|_| true),
        Some(true)
    );
}

#[test]
fn websocket_subscriptions_push_tips_and_transactions() {
    use tungstenite::client::IntoClientRequest;
    let dir = TempDir::new("ws");
    let node = Node::start(&dir.0, &[]);
    let a = address(&key(8));
    node.rpc("generatetoaddress", json!([101, a.to_string()]));

    let cookie = node.cookie().unwrap();
    let mut request = format!("ws://127.0.0.1:{}/", node.rpc_port)
        .into_client_request()
        .unwrap();
    use base64::Engine;
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(&cookie)
    );
    request
        .headers_mut()
        .insert("Authorization", auth.parse().unwrap());
    let (mut ws, _) = tungstenite::connect(request).expect("websocket connects with credentials");
    if let tungstenite::stream::MaybeTlsStream::Plain(s) = ws.get_mut() {
        s.set_read_timeout(Some(chaincore_tests::DEADLINE)).unwrap();
    }
    // Subscribe on one connection to both streams.
    let sub = |ws: &mut tungstenite::WebSocket<_>, id: u32, method: &str| {
        let req = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": []});
        ws.send(tungstenite::Message::Text(req.to_string().into()))
            .unwrap();
    };
    sub(&mut ws, 1, "subscribenewtip");
    sub(&mut ws, 2, "subscribenewtx");
    let mut read = || -> Value {
        loop {
            if let tungstenite::Message::Text(t) = ws.read().expect("a message before the deadline")
            {
                return serde_json::from_str(t.as_str()).unwrap();
            }
        }
    };
    let acks = [read(), read()];
    assert!(
        acks.iter()
            .all(|m| m["result"].is_string() || m["result"].is_number()),
        "{acks:?}"
    );

    let mined = node.rpc("generatetoaddress", json!([1, a.to_string()]));
    let tip = read();
    assert_eq!(tip["method"], json!("subscribenewtip"));
    assert_eq!(tip["params"]["result"]["hash"], mined[0]);
    assert_eq!(tip["params"]["result"]["height"], json!(102));

    let coin = utxos(&node, &a).into_iter().find(|u| u.3 >= 100).unwrap();
    let tx = spend(&key(8), coin.0, vec![pay(&a, coin.1 - 1000)]);
    node.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    let pushed = read();
    assert_eq!(pushed["method"], json!("subscribenewtx"));
    assert_eq!(
        pushed["params"]["result"],
        json!(tx.compute_txid().to_string())
    );

    // Without credentials the upgrade is refused.
    let bare = format!("ws://127.0.0.1:{}/", node.rpc_port);
    assert!(tungstenite::connect(bare).is_err());
}

/// Transactions keep arriving while blocks connect (a block extending the tip is connected
/// without the node's state lock): the pool must never keep a transaction whose coin a block
/// has spent, so one more block of everything in it is valid, every coin is spent exactly once
/// and the chain and indexes verify.
#[test]
fn transactions_accepted_while_blocks_connect_stay_consistent() {
    let dir = TempDir::new("concurrent");
    let node = Node::start(&dir.0, &[]);
    let (k, miner) = (key(8), address(&key(9)));
    let a = address(&k);
    node.rpc("generatetoaddress", json!([140, a.to_string()]));
    let mature: Vec<_> = utxos(&node, &a)
        .into_iter()
        .filter(|u| u.3 >= 100)
        .collect();
    assert_eq!(mature.len(), 41);

    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..20 {
                node.rpc("generatetoaddress", json!([1, miner.to_string()]));
            }
        });
        s.spawn(|| {
            for coin in &mature {
                // Two conflicting spends of each coin: whichever the node sees first wins.
                for fee in [1_000, 2_000] {
                    let tx = spend(&k, coin.0, vec![pay(&a, coin.1 - fee)]);
                    let _ = node.call("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
                }
            }
        });
    });

    node.rpc("generatetoaddress", json!([1, miner.to_string()]));
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
    for coin in &mature {
        let out = node.rpc("gettxout", json!([coin.0.txid.to_string(), coin.0.vout]));
        assert_eq!(out, Value::Null, "{:?} still unspent", coin.0);
    }
    let history = node.rpc("getaddresstxids", json!([{"addresses": [a.to_string()]}]));
    // 140 coinbases plus exactly one spend per mature coin.
    assert_eq!(history.as_array().unwrap().len(), 140 + mature.len());
    assert_eq!(node.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn unknown_malformed_and_genesis_hashes_get_core_answers_and_the_node_keeps_running() {
    let dir = TempDir::new("hashes");
    let node = Node::start(&dir.0, &[]);
    node.rpc(
        "generatetoaddress",
        json!([3, address(&key(3)).to_string()]),
    );
    let tip = node.rpc("getbestblockhash", json!([]));
    let genesis = node.rpc("getblockhash", json!([0]));
    let error = |r: Result<Value, Value>| {
        let e = r.unwrap_err();
        (
            e["code"].as_i64().unwrap(),
            e["message"].as_str().unwrap().to_string(),
        )
    };
    let unknown = "ab".repeat(32);
    for method in [
        "invalidateblock",
        "reconsiderblock",
        "getblock",
        "getblockheader",
    ] {
        // A typo: the caller's mistake, -5, and the node goes on.
        assert_eq!(
            error(node.call(method, json!([unknown]))),
            (-5, "Block not found".to_string()),
            "{method}"
        );
        assert_eq!(
            error(node.call(method, json!(["abc"]))),
            (
                -8,
                "blockhash must be of length 64 (not 3, for 'abc')".to_string()
            ),
            "{method}"
        );
        let not_hex = "zz".repeat(32);
        assert_eq!(
            error(node.call(method, json!([not_hex]))),
            (
                -8,
                format!("blockhash must be hexadecimal string (not '{not_hex}')")
            ),
            "{method}"
        );
        assert_eq!(node.rpc("getbestblockhash", json!([])), tip, "{method}");
    }
    // Genesis: readable, and invalidating it does nothing (Core answers null).
    assert_eq!(node.rpc("getblockheader", json!([genesis]))["height"], 0);
    assert_eq!(node.rpc("getblock", json!([genesis]))["height"], 0);
    assert_eq!(node.rpc("invalidateblock", json!([genesis])), Value::Null);
    assert_eq!(node.rpc("reconsiderblock", json!([genesis])), Value::Null);
    assert_eq!(node.rpc("getbestblockhash", json!([])), tip);
    assert_eq!(node.rpc("getblockcount", json!([])), 3);
    // Still serving, and still able to write.
    node.rpc(
        "generatetoaddress",
        json!([1, address(&key(3)).to_string()]),
    );
    assert_eq!(node.rpc("getblockcount", json!([])), 4);
}

#[test]
fn idle_sockets_from_the_same_address_do_not_lock_out_authenticated_clients() {
    use std::io::Read;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let dir = TempDir::new("idle-sockets");
    let node = Node::start(&dir.0, &[]);
    let addr = format!("127.0.0.1:{}", node.rpc_port);
    let stop = Arc::new(AtomicBool::new(false));
    let open = Arc::new(AtomicUsize::new(0));
    // 40 threads on 127.0.0.1 (like the miner and the wallet) that hold a socket open without
    // sending anything, and open a new one as soon as the node closes theirs.
    let holders: Vec<_> = (0..40)
        .map(|_| {
            let (stop, open, addr) = (stop.clone(), open.clone(), addr.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let Ok(mut s) = std::net::TcpStream::connect(&addr) else {
                        continue;
                    };
                    s.set_read_timeout(Some(Duration::from_millis(200)))
                        .unwrap();
                    open.fetch_add(1, Ordering::Relaxed);
                    let mut buf = [0u8; 64];
                    loop {
                        match s.read(&mut buf) {
                            Ok(0) => break, // closed by the node: reopen
                            Err(_) if !stop.load(Ordering::Relaxed) => continue,
                            _ => break,
                        }
                    }
                    open.fetch_sub(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    wait_for("40 idle sockets", || {
        (open.load(Ordering::Relaxed) == 40).then_some(())
    });
    for i in 0..20 {
        assert_eq!(
            node.call("getblockcount", json!([])),
            Ok(json!(0)),
            "call {i}"
        );
    }
    // Past the socket cap: more idle sockets than it allows. The idle ones that never
    // authenticated are closed first, so callers still get in.
    let extra: Vec<_> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(&addr).ok())
        .collect();
    for i in 0..20 {
        assert_eq!(
            node.call("getblockcount", json!([])),
            Ok(json!(0)),
            "call {i} past the cap"
        );
    }
    stop.store(true, Ordering::Relaxed);
    for h in holders {
        h.join().unwrap();
    }
    drop(extra);
}
