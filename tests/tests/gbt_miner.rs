//! A getblocktemplate (BIP22) miner that does what cpuminer 2.5.1 (`minerd -a sha256d
//! --coinbase-addr=ADDR`) does, byte for byte, against a real node: its JSON-RPC 1.0 request
//! bodies, its checks on the template, its own coinbase (its BIP34 height bytes, `01 0N` for
//! heights 1-16 where Core writes `OP_N`; one P2PKH output to the Base58Check address), its merkle root from the transactions' raw
//! data, its header layout, its target comparison, its `submitblock` and long poll. Nothing
//! here uses the node's own block building, so a template the real miner could not use fails
//! here too. (CI cannot fetch the real binary; it was run against the node by hand.)

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use chaincore::hash::sha256d;
use chaincore::key::PrivateKey;
use chaincore::{Address, Amount, Network, OutPoint, TxOut};
use chaincore_tests::{Node, TempDir};
use serde_json::{json, Value};

const USER: &str = "miner";
const PASS: &str = "s3cret";

/// cpuminer's GBT request (`gbt_req` / `gbt_lp_req`), including the trailing CRLF.
fn gbt_request(longpollid: Option<&str>) -> String {
    let caps = r#"["coinbasetxn", "coinbasevalue", "longpoll", "workid"]"#;
    let rules = r#"["segwit"]"#;
    match longpollid {
        None => format!(
            "{{\"method\": \"getblocktemplate\", \"params\": [{{\"capabilities\": {caps}, \"rules\": {rules}}}], \"id\":0}}\r\n"
        ),
        Some(id) => format!(
            "{{\"method\": \"getblocktemplate\", \"params\": [{{\"capabilities\": {caps}, \"rules\": {rules}, \"longpollid\": \"{id}\"}}], \"id\":0}}\r\n"
        ),
    }
}

/// cpuminer's `address_to_script`: versions 5 and 196 mean P2SH, anything else P2PKH.
fn address_to_script(addr: &str) -> Vec<u8> {
    let bin = bs58::decode(addr).with_check(None).into_vec().unwrap();
    assert_eq!(bin.len(), 21);
    assert!(bin[0] != 5 && bin[0] != 196, "would be read as P2SH");
    let mut script = vec![0x76, 0xa9, 0x14];
    script.extend_from_slice(&bin[1..]);
    script.extend_from_slice(&[0x88, 0xac]);
    script
}

/// One unit of work as `gbt_work_decode` leaves it.
struct Work {
    height: u32,
    header: [u8; 80],
    /// Hex of the transaction count, the coinbase and the template's transactions.
    txs: String,
    /// Big-endian target.
    target: [u8; 32],
    coinbase: Vec<u8>,
}

fn hex_field<const N: usize>(t: &Value, key: &str) -> [u8; N] {
    let mut out = [0u8; N];
    hex::decode_to_slice(t[key].as_str().unwrap(), &mut out)
        .unwrap_or_else(|e| panic!("JSON invalid {key}: {e}"));
    out
}

fn varint(n: usize) -> Vec<u8> {
    match n {
        0..=0xfc => vec![n as u8],
        0xfd..=0xffff => {
            let mut v = vec![0xfd];
            v.extend_from_slice(&(n as u16).to_le_bytes());
            v
        }
        _ => {
            let mut v = vec![0xfe];
            v.extend_from_slice(&(n as u32).to_le_bytes());
            v
        }
    }
}

/// A port of cpuminer 2.5.1's `gbt_work_decode` for a template without `coinbasetxn`.
fn decode(t: &Value, pk_script: &[u8]) -> Work {
    let height = u32::try_from(t["height"].as_i64().expect("JSON invalid height")).unwrap();
    let version = t["version"].as_i64().expect("JSON invalid version") as u32;
    assert!(version & 0xff <= 4, "Unrecognized block version: {version}");
    let prevhash: [u8; 32] = hex_field(t, "previousblockhash");
    let curtime = t["curtime"].as_i64().expect("JSON invalid curtime") as u32;
    let bits: [u8; 4] = hex_field(t, "bits");
    let target: [u8; 32] = hex_field(t, "target");
    let txa = t["transactions"]
        .as_array()
        .expect("JSON invalid transactions");
    let cbvalue = t["coinbasevalue"]
        .as_i64()
        .expect("JSON invalid coinbasevalue");
    assert!(t.get("default_witness_commitment").is_none());
    assert!(!t["rules"]
        .as_array()
        .is_some_and(|r| r.contains(&json!("segwit"))));

    // The coinbase.
    let mut cb = Vec::new();
    cb.extend_from_slice(&1u32.to_le_bytes());
    cb.push(1);
    cb.extend_from_slice(&[0; 32]);
    cb.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
    // BIP 34 as cpuminer 2.5.1 writes it (`cpu-miner.c` lines 471-477:
    // `for (n = work->height; n; n >>= 8) { cbtx[cbtx_size++] = n & 0xff; if (n < 0x100 &&
    // n >= 0x80) cbtx[cbtx_size++] = 0; } cbtx[42] = cbtx_size - 43;`): a data push of the
    // little-endian height for every height, so `01 01` at height 1 where Core writes OP_1.
    let script_sig = {
        let mut digits = Vec::new();
        let mut n = height;
        while n != 0 {
            digits.push((n & 0xff) as u8);
            if (0x80..0x100).contains(&n) {
                digits.push(0);
            }
            n >>= 8;
        }
        let mut s = vec![digits.len() as u8];
        s.extend(digits);
        s
    };
    cb.push(script_sig.len() as u8);
    cb.extend(&script_sig);
    cb.extend_from_slice(&0xffff_ffffu32.to_le_bytes());
    cb.push(1);
    cb.extend_from_slice(&cbvalue.to_le_bytes());
    cb.push(pk_script.len() as u8);
    cb.extend_from_slice(pk_script);
    cb.extend_from_slice(&0u32.to_le_bytes());

    // Transactions and the merkle root, hashed from their raw data.
    let mut txs = hex::encode(varint(1 + txa.len()));
    txs.push_str(&hex::encode(&cb));
    let mut tree = vec![sha256d(&cb)];
    for tx in txa {
        let data = tx["data"].as_str().expect("JSON invalid transactions");
        tree.push(sha256d(&hex::decode(data).unwrap()));
        txs.push_str(data);
    }
    while tree.len() > 1 {
        if tree.len() % 2 == 1 {
            tree.push(*tree.last().unwrap());
        }
        tree = tree
            .chunks(2)
            .map(|pair| sha256d(&[pair[0], pair[1]].concat()))
            .collect();
    }

    // The header: display-order previous hash reversed, bits bytes reversed.
    let mut header = [0u8; 80];
    header[..4].copy_from_slice(&version.to_le_bytes());
    header[4..36].copy_from_slice(&prevhash);
    header[4..36].reverse();
    header[36..68].copy_from_slice(&tree[0]);
    header[68..72].copy_from_slice(&curtime.to_le_bytes());
    header[72..76].copy_from_slice(&bits);
    header[72..76].reverse();
    Work {
        height,
        header,
        txs,
        target,
        coinbase: cb,
    }
}

/// Scans nonces until the hash, read as a little-endian number, is at most the target.
fn scan(work: &mut Work) {
    for nonce in 0..=u32::MAX {
        work.header[76..].copy_from_slice(&nonce.to_le_bytes());
        let mut hash = sha256d(&work.header);
        hash.reverse();
        if hash <= work.target {
            return;
        }
    }
    panic!("no nonce meets the target");
}

fn post(node: &Node, body: &str) -> Value {
    let answer = node.post(body, Some(&format!("{USER}:{PASS}"))).unwrap();
    assert_eq!(answer.status, 200, "{}", answer.body);
    // JSON-RPC 1.0 shape: result, error and id, no "jsonrpc".
    assert!(answer.body.get("jsonrpc").is_none(), "{}", answer.body);
    assert_eq!(answer.body["error"], Value::Null, "{}", answer.body);
    answer.body
}

/// Gets work, solves it and submits it the way cpuminer does; returns the work.
fn mine_one(node: &Node, pk_script: &[u8]) -> Work {
    let template = post(node, &gbt_request(None))["result"].clone();
    let mut work = decode(&template, pk_script);
    scan(&mut work);
    let body = format!(
        "{{\"method\": \"submitblock\", \"params\": [\"{}{}\"], \"id\":1}}\r\n",
        hex::encode(work.header),
        work.txs
    );
    let answer = post(node, &body);
    assert_eq!(
        answer["result"],
        Value::Null,
        "block at {} refused",
        work.height
    );
    let mut hash = sha256d(&work.header);
    hash.reverse();
    assert_eq!(
        node.rpc("getbestblockhash", json!([])),
        json!(hex::encode(hash))
    );
    work
}

#[test]
fn a_cpuminer_style_getblocktemplate_miner_mines_accepted_blocks() {
    let dir = TempDir::new("gbt-miner");
    let node = Node::start(&dir.0, &["--rpcuser", USER, "--rpcpassword", PASS]);
    let key = PrivateKey::from_bytes(&[0x42; 32]).unwrap();
    let addr = Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).to_string();
    let pk_script = address_to_script(&addr);

    // Heights 1-16 (the `01 0N` data pushes Core does not write) and 17-20, all by the miner.
    let first = mine_one(&node, &pk_script);
    for height in 2..=20 {
        assert_eq!(mine_one(&node, &pk_script).height, height);
    }

    // A mempool transaction in a miner-built block, at height 128 (a height push that needs
    // the sign byte): spend the first coinbase once it is mature.
    node.rpc("generatetoaddress", json!([107, addr]));
    let coinbase = OutPoint {
        txid: chaincore::Txid(sha256d(&first.coinbase)),
        vout: 0,
    };
    let spend = chaincore_tests::signed_spend(
        &key,
        &[coinbase],
        vec![TxOut {
            value: Amount::from_units(50 * 100_000_000 - 10_000),
            script_pubkey: chaincore::Script::new_p2pkh(&key.public_key().pubkey_hash()),
        }],
    );
    let txid = node.rpc(
        "sendrawtransaction",
        json!([hex::encode(chaincore::encode::serialize(&spend))]),
    );
    let work = mine_one(&node, &pk_script);
    assert_eq!(work.height, 128);
    assert_eq!(node.rpc("getrawmempool", json!([])), json!([]));
    let confirmed = node.rpc("getrawtransaction", json!([txid, true]));
    assert_eq!(confirmed["confirmations"], json!(1));

    // Long poll with cpuminer's body: answered with the template for the new tip.
    let template = post(&node, &gbt_request(None))["result"].clone();
    let id = template["longpollid"].as_str().unwrap().to_string();
    let url_node = node.url();
    let waiter = std::thread::spawn(move || {
        use base64::Engine;
        let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASS}"));
        let text = ureq::post(&url_node)
            .set("Authorization", &format!("Basic {auth}"))
            .send_string(&gbt_request(Some(&id)))
            .unwrap()
            .into_string()
            .unwrap();
        serde_json::from_str::<Value>(&text).unwrap()
    });
    let mined = node.rpc("generatetoaddress", json!([1, addr]));
    let answer = waiter.join().unwrap();
    assert_eq!(answer["error"], Value::Null);
    assert_eq!(answer["result"]["previousblockhash"], mined[0]);
    assert_eq!(answer["result"]["height"], json!(130));
    // And that template is one the miner can use.
    let mut work = decode(&answer["result"], &pk_script);
    scan(&mut work);
}
