//! The JSON of every RPC method, pinned by insta snapshots (`tests/tests/snapshots/`): results
//! and error answers, as a client reads them over HTTP from a real node.
//!
//! The chain is built by the test itself ([`Builder`]: fixed key, fixed times, deterministic
//! signatures), so hashes, heights and amounts are the same on every run; only what depends on
//! the clock, the ports or the machine is redacted. A changed snapshot is a changed RPC answer:
//! review it (`cargo insta review`, or `INSTA_UPDATE=always` and `git diff`) before accepting it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chaincore::encode::serialize;
use chaincore::{Address, Amount, Network, OutPoint, Script, TxOut};
use chaincore_tests::builder::Builder;
use chaincore_tests::peer::RawPeer;
use chaincore_tests::{signed_spend, wait_for, Node, TempDir};
use serde_json::{json, Value};

/// A regtest address whose key nobody has (the README's).
const ELSEWHERE: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";

/// The answer to one JSON-RPC 2.0 call: `{"result": …}` or `{"error": …}`.
fn answer(node: &Node, method: &str, params: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
    let credentials = node.cookie().expect("cookie");
    let reply = node.post(&body.to_string(), Some(&credentials)).unwrap();
    match reply.body.get("error") {
        Some(e) if !e.is_null() => json!({ "error": e }),
        _ => json!({ "result": reply.body.get("result").cloned().unwrap_or(Value::Null) }),
    }
}

/// Snapshots `answer(method, params)` under `name`, with the clock's and the machine's fields
/// redacted.
macro_rules! snap {
    ($node:expr, $name:expr, $method:expr, $params:expr) => {
        insta::assert_json_snapshot!($name, answer(&$node, $method, $params), {
            ".result.size_on_disk" => number("[bytes]"),
            ".result.disk_size" => number("[bytes]"),
            ".result.curtime" => number("[now]"),
            ".result.*.time" => number("[now]"),
            ".result[].conntime" => number("[now]"),
            ".result[].addr" => insta::dynamic_redaction(|value, _| {
                let addr = value.as_str().unwrap_or_default();
                assert!(addr.starts_with("127.0.0.1:"), "a loopback peer: {value:?}");
                "[addr]"
            }),
            ".result.timemillis" => number("[now]"),
            ".result.totalbytesrecv" => number("[bytes]"),
            ".result.totalbytessent" => number("[bytes]"),
            ".result.filename" => insta::dynamic_redaction(|value, _| {
                let path = value.as_str().unwrap_or_default();
                assert!(path.ends_with("mempool.dat"), "{value:?}");
                "[path]"
            }),
            ".result[].banned_until" => number("[time]"),
        })
    };
}

/// Redacts a field that varies from run to run, after checking it is a positive whole
/// number (a counter or a clock that stopped working would not be).
fn number(label: &'static str) -> insta::internals::Redaction {
    insta::dynamic_redaction(move |value, _| {
        assert!(
            value.as_u64().is_some_and(|n| n > 0),
            "{label}: a positive whole number, not {value:?}"
        );
        label
    })
}

#[test]
fn every_method_answers_as_pinned() {
    let dir = TempDir::new("rpc-snapshots");
    let node = Node::start(&dir.sub("a"), &[]);
    let genesis = Network::Regtest.genesis_hash();
    let mut builder = Builder::new();

    // 102 blocks: 101 and 102 each spend an old coinbase into two outputs.
    let chain = builder.submit_chain(&node, &genesis, 102);
    let tip = *chain.last().unwrap();
    // A one-block side branch off height 100.
    let fork = builder.build(&chain[99]);
    let raw_fork = hex::encode(serialize(&fork));
    assert_eq!(
        node.rpc("submitblock", json!([raw_fork])),
        json!("inconclusive")
    );

    // One mempool transaction: half of block 102's own spend to elsewhere, with an OP_RETURN.
    let spend = &builder.transactions(&tip)[1];
    let coin = OutPoint {
        txid: spend.compute_txid(),
        vout: 0,
    };
    let elsewhere = Address::parse(ELSEWHERE, Network::Regtest).unwrap();
    let paid = spend.output[0].value.to_units() - 10_000;
    let tx = signed_spend(
        builder.key(),
        &[coin],
        vec![
            TxOut {
                value: Amount::from_units(paid),
                script_pubkey: elsewhere.script_pubkey(),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: Script::new_op_return(b"snapshot").unwrap(),
            },
        ],
    );
    let raw_tx = hex::encode(serialize(&tx));
    let txid = tx.compute_txid().to_string();
    assert_eq!(node.rpc("sendrawtransaction", json!([raw_tx])), json!(txid));

    // One peer, with a handshake whose every field is fixed.
    let _peer = RawPeer::connect(&node);
    wait_for("the peer in getpeerinfo", || {
        (node.rpc("getconnectioncount", json!([])) == json!(1)).then_some(())
    });

    let tip = tip.to_string();
    let mine = Address::p2pkh(builder.key().public_key().pubkey_hash(), Network::Regtest);
    let mine = mine.to_string();
    let zeros = "0".repeat(64);

    // Blockchain.
    snap!(node, "getblockchaininfo", "getblockchaininfo", json!([]));
    snap!(node, "getbestblockhash", "getbestblockhash", json!([]));
    snap!(node, "getblockcount", "getblockcount", json!([]));
    snap!(node, "getblockhash", "getblockhash", json!([101]));
    snap!(
        node,
        "getblockhash_out_of_range",
        "getblockhash",
        json!([500])
    );
    snap!(
        node,
        "getblockhash_wrong_type",
        "getblockhash",
        json!(["1"])
    );
    snap!(node, "getblock_0", "getblock", json!([tip, 0]));
    snap!(node, "getblock_1", "getblock", json!([tip]));
    snap!(node, "getblock_2", "getblock", json!([tip, 2]));
    snap!(node, "getblock_bad_hash", "getblock", json!(["00ff"]));
    snap!(node, "getblock_unknown", "getblock", json!([zeros]));
    snap!(node, "getblock_bad_verbosity", "getblock", json!([tip, 3]));
    snap!(node, "getblockheader", "getblockheader", json!([tip]));
    snap!(
        node,
        "getblockheader_hex",
        "getblockheader",
        json!([tip, false])
    );
    snap!(node, "getchaintips", "getchaintips", json!([]));
    snap!(node, "getchaintxstats", "getchaintxstats", json!([]));
    snap!(
        node,
        "getchaintxstats_window",
        "getchaintxstats",
        json!([10, chain[100].to_string()])
    );
    snap!(
        node,
        "getchaintxstats_bad_count",
        "getchaintxstats",
        json!([102])
    );
    snap!(
        node,
        "getchaintxstats_side_chain",
        "getchaintxstats",
        json!([1, fork.block_hash().to_string()])
    );
    snap!(node, "getdifficulty", "getdifficulty", json!([]));
    snap!(
        node,
        "gettxout",
        "gettxout",
        json!([spend.compute_txid().to_string(), 1])
    );
    snap!(
        node,
        "gettxout_spent_in_mempool",
        "gettxout",
        json!([spend.compute_txid().to_string(), 0])
    );
    snap!(node, "gettxout_mempool", "gettxout", json!([txid, 0]));
    snap!(node, "getblockstats", "getblockstats", json!([102]));
    snap!(node, "getblockstats_future", "getblockstats", json!([1000]));
    snap!(node, "getblockstats_negative", "getblockstats", json!([-1]));
    let fork_hash = fork.block_hash().to_string();
    snap!(
        node,
        "getblockstats_side_chain",
        "getblockstats",
        json!([fork_hash])
    );
    snap!(node, "gettxoutsetinfo", "gettxoutsetinfo", json!([]));
    wait_for("the indexes to take in the tip", || {
        let info = node.rpc("getindexinfo", json!([]));
        (info["txindex"]["synced"] == true && info["addressindex"]["synced"] == true).then_some(())
    });
    snap!(node, "getindexinfo", "getindexinfo", json!([]));
    snap!(node, "getindexinfo_one", "getindexinfo", json!(["txindex"]));
    snap!(node, "verifychain", "verifychain", json!([4, 10]));
    snap!(
        node,
        "invalidateblock_unknown",
        "invalidateblock",
        json!([zeros])
    );
    snap!(
        node,
        "invalidateblock_typo",
        "invalidateblock",
        json!(["not-a-hash"])
    );
    let fork_hash = fork.block_hash().to_string();
    snap!(
        node,
        "invalidateblock",
        "invalidateblock",
        json!([fork_hash])
    );
    snap!(
        node,
        "reconsiderblock",
        "reconsiderblock",
        json!([fork_hash])
    );

    // Mempool.
    snap!(node, "getrawmempool", "getrawmempool", json!([]));
    snap!(
        node,
        "getrawmempool_verbose",
        "getrawmempool",
        json!([true])
    );
    snap!(node, "getmempoolinfo", "getmempoolinfo", json!([]));
    insta::assert_json_snapshot!(
        "getmempoolentry",
        answer(&node, "getmempoolentry", json!([txid])),
        { ".result.time" => "[now]" }
    );
    snap!(
        node,
        "getmempoolentry_unknown",
        "getmempoolentry",
        json!([zeros])
    );
    snap!(node, "estimatesmartfee", "estimatesmartfee", json!([6]));
    snap!(
        node,
        "estimatesmartfee_bad_target",
        "estimatesmartfee",
        json!([0])
    );
    snap!(
        node,
        "estimatesmartfee_bad_mode",
        "estimatesmartfee",
        json!([6, "fast"])
    );
    snap!(node, "savemempool", "savemempool", json!([]));

    // Raw transactions.
    snap!(
        node,
        "sendrawtransaction_duplicate",
        "sendrawtransaction",
        json!([raw_tx])
    );
    snap!(
        node,
        "sendrawtransaction_not_hex",
        "sendrawtransaction",
        json!(["zz"])
    );
    snap!(
        node,
        "testmempoolaccept",
        "testmempoolaccept",
        json!([[raw_tx]])
    );
    snap!(
        node,
        "getrawtransaction",
        "getrawtransaction",
        json!([txid])
    );
    snap!(
        node,
        "getrawtransaction_verbose",
        "getrawtransaction",
        json!([txid, true])
    );
    snap!(
        node,
        "getrawtransaction_confirmed",
        "getrawtransaction",
        json!([spend.compute_txid().to_string(), 1])
    );
    snap!(
        node,
        "getrawtransaction_unknown",
        "getrawtransaction",
        json!([zeros])
    );
    snap!(
        node,
        "decoderawtransaction",
        "decoderawtransaction",
        json!([raw_tx])
    );
    snap!(
        node,
        "decoderawtransaction_bad",
        "decoderawtransaction",
        json!(["00"])
    );

    // Address index.
    snap!(
        node,
        "getaddressbalance",
        "getaddressbalance",
        json!([{"addresses": [mine]}])
    );
    snap!(
        node,
        "getaddressbalance_bad",
        "getaddressbalance",
        json!(["nonsense"])
    );
    snap!(
        node,
        "getaddressutxos",
        "getaddressutxos",
        json!([ELSEWHERE])
    );
    snap!(
        node,
        "getaddresstxids",
        "getaddresstxids",
        json!([{"addresses": [ELSEWHERE]}])
    );

    // Mining.
    snap!(node, "getblocktemplate", "getblocktemplate", json!([]));
    snap!(node, "getmininginfo", "getmininginfo", json!([]));
    snap!(node, "getnetworkhashps", "getnetworkhashps", json!([]));
    snap!(
        node,
        "submitblock_duplicate",
        "submitblock",
        json!([raw_fork])
    );
    snap!(node, "submitblock_bad", "submitblock", json!(["00"]));
    snap!(
        node,
        "generatetoaddress_none",
        "generatetoaddress",
        json!([0, ELSEWHERE])
    );
    snap!(
        node,
        "generatetoaddress_bad_address",
        "generatetoaddress",
        json!([1, "nonsense"])
    );

    // Network.
    snap!(node, "getpeerinfo", "getpeerinfo", json!([]));
    snap!(node, "getconnectioncount", "getconnectioncount", json!([]));
    snap!(node, "getnetworkinfo", "getnetworkinfo", json!([]));
    snap!(node, "getnodeaddresses", "getnodeaddresses", json!([]));
    snap!(node, "addnode_bad", "addnode", json!(["nonsense", "add"]));
    snap!(
        node,
        "addnode_bad_command",
        "addnode",
        json!(["127.0.0.1:1", "sometimes"])
    );
    snap!(
        node,
        "disconnectnode_unknown",
        "disconnectnode",
        json!(["127.0.0.1:1"])
    );
    snap!(node, "setban", "setban", json!(["192.0.2.1", "add", 3600]));
    snap!(node, "setban_bad", "setban", json!(["nonsense", "add"]));
    snap!(
        node,
        "setban_subnet",
        "setban",
        json!(["10.0.0.0/8", "add"])
    );
    snap!(node, "listbanned", "listbanned", json!([]));
    snap!(node, "clearbanned", "clearbanned", json!([]));
    snap!(node, "getnettotals", "getnettotals", json!([]));
    snap!(node, "ping", "ping", json!([]));

    // Control, and what every method shares.
    snap!(node, "help", "help", json!([]));
    snap!(node, "help_getblock", "help", json!(["getblock"]));
    snap!(node, "help_unknown", "help", json!(["nosuchmethod"]));
    snap!(node, "unknown_method", "nosuchmethod", json!([]));
    snap!(node, "missing_parameter", "getblockhash", json!([]));
    snap!(
        node,
        "named_parameters",
        "getblockhash",
        json!({"height": 1})
    );
    snap!(
        node,
        "named_parameter_unknown",
        "getblockhash",
        json!({"heigth": 1})
    );
    snap!(
        node,
        "named_parameter_missing",
        "gettxout",
        json!({"txid": zeros})
    );
    snap!(
        node,
        "maxfeerate_wrong_type",
        "sendrawtransaction",
        json!([raw_tx, "high"])
    );
    snap!(node, "too_many_parameters", "getblockcount", json!([1, 2]));
    insta::assert_json_snapshot!("uptime", answer(&node, "uptime", json!([])), {
        ".result" => insta::dynamic_redaction(|value, _| {
            assert!(value.as_u64().is_some(), "uptime is whole seconds: {value:?}");
            "[seconds]"
        }),
    });

    // Last: these change the chain or stop the node.
    insta::assert_json_snapshot!(
        "generatetoaddress",
        answer(&node, "generatetoaddress", json!([1, ELSEWHERE])),
        { ".result[]" => "[hash]" }
    );
    snap!(node, "stop", "stop", json!([]));
}
