//! The unauthenticated read-only side of the RPC port: REST answers pinned by insta snapshots
//! (`tests/tests/snapshots/rest__*.snap`) on a chain the test builds itself, `.bin` blocks equal
//! to `getblock <hash> 0`, `/metrics` read by a Prometheus text-format parser, `--rest=false`,
//! `--rpcallowip` seen from another host (a network namespace), the event stream, and the
//! block-range export of 1,000 blocks over REST and from a stopped node's data directory.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};

use chaincore::encode::serialize;
use chaincore::{Address, Amount, Network, OutPoint, TxOut};
use chaincore_tests::builder::Builder;
use chaincore_tests::netns::Lab;
use chaincore_tests::peer::RawPeer;
use chaincore_tests::{binary, free_port, signed_spend, wait_for, Node, TempDir};
use serde_json::{json, Value};

/// A regtest address whose key nobody has (the README's).
const ELSEWHERE: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";

/// `GET path` as the snapshot records it: the status, and the body as JSON if it is JSON, else
/// as text.
fn answer(node: &Node, path: &str) -> Value {
    let (status, body) = node.get(path).unwrap();
    let text = String::from_utf8_lossy(&body).to_string();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    json!({ "status": status, "body": body })
}

macro_rules! snap {
    ($node:expr, $name:expr, $path:expr) => {
        insta::assert_json_snapshot!($name, answer(&$node, &$path), {
            ".body.size_on_disk" => "[bytes]",
            ".body.*.time" => "[now]",
        })
    };
}

#[test]
fn rest_answers_as_pinned() {
    let dir = TempDir::new("rest-snapshots");
    let node = Node::start(&dir.sub("a"), &[]);
    let genesis = Network::Regtest.genesis_hash();
    let mut builder = Builder::new();
    // 102 blocks: 101 and 102 each spend an old coinbase into two outputs.
    let chain = builder.submit_chain(&node, &genesis, 102);
    let tip = *chain.last().unwrap();
    // One mempool transaction: half of block 102's own spend to elsewhere.
    let spend = &builder.transactions(&tip)[1];
    let coin = OutPoint {
        txid: spend.compute_txid(),
        vout: 0,
    };
    let elsewhere = Address::parse(ELSEWHERE, Network::Regtest).unwrap();
    let tx = signed_spend(
        builder.key(),
        &[coin],
        vec![TxOut {
            value: Amount::from_units(spend.output[0].value.to_units() - 10_000),
            script_pubkey: elsewhere.script_pubkey(),
        }],
    );
    let txid = tx.compute_txid();
    let sent = node.rpc("sendrawtransaction", json!([hex::encode(serialize(&tx))]));
    assert_eq!(sent, json!(txid.to_string()));
    let mine = Address::p2pkh(builder.key().public_key().pubkey_hash(), Network::Regtest);
    let confirmed = spend.compute_txid();
    let zeros = "0".repeat(64);

    snap!(node, "chaininfo", "/rest/chaininfo.json");
    snap!(node, "block", format!("/rest/block/{tip}.json"));
    snap!(
        node,
        "block_notxdetails",
        format!("/rest/block/notxdetails/{tip}.json")
    );
    snap!(node, "block_hex", format!("/rest/block/{tip}.hex"));
    snap!(node, "block_unknown", format!("/rest/block/{zeros}.json"));
    snap!(node, "block_bad_hash", "/rest/block/00ff.json");
    snap!(node, "block_bad_format", format!("/rest/block/{tip}.xml"));
    snap!(
        node,
        "headers",
        format!("/rest/headers/3/{}.json", chain[99])
    );
    snap!(
        node,
        "headers_query",
        format!("/rest/headers/{}.hex?count=2", chain[100])
    );
    snap!(
        node,
        "headers_too_many",
        format!("/rest/headers/2001/{tip}.json")
    );
    snap!(
        node,
        "headers_unknown",
        format!("/rest/headers/5/{zeros}.json")
    );
    snap!(
        node,
        "blockhashbyheight",
        "/rest/blockhashbyheight/101.json"
    );
    snap!(
        node,
        "blockhashbyheight_hex",
        "/rest/blockhashbyheight/101.hex"
    );
    snap!(
        node,
        "blockhashbyheight_out_of_range",
        "/rest/blockhashbyheight/500.json"
    );
    snap!(
        node,
        "blockhashbyheight_bad",
        "/rest/blockhashbyheight/-1.json"
    );
    snap!(node, "tx_confirmed", format!("/rest/tx/{confirmed}.json"));
    snap!(node, "tx_mempool", format!("/rest/tx/{txid}.json"));
    snap!(node, "tx_hex", format!("/rest/tx/{txid}.hex"));
    snap!(node, "tx_unknown", format!("/rest/tx/{zeros}.json"));
    snap!(
        node,
        "getutxos",
        format!("/rest/getutxos/{confirmed}-0/{confirmed}-1/{txid}-0.json")
    );
    snap!(
        node,
        "getutxos_checkmempool",
        format!("/rest/getutxos/checkmempool/{confirmed}-0/{confirmed}-1/{txid}-0.json")
    );
    snap!(
        node,
        "getutxos_hex",
        format!("/rest/getutxos/checkmempool/{confirmed}-1.hex")
    );
    snap!(node, "getutxos_bad", "/rest/getutxos/nonsense.json");
    snap!(
        node,
        "getutxos_too_many",
        format!(
            "/rest/getutxos/{}.json",
            vec![format!("{confirmed}-0"); 16].join("/")
        )
    );
    snap!(node, "mempool_info", "/rest/mempool/info.json");
    snap!(node, "mempool_contents", "/rest/mempool/contents.json");
    snap!(
        node,
        "mempool_contents_ids",
        "/rest/mempool/contents.json?verbose=false"
    );
    snap!(
        node,
        "address_balance",
        format!("/rest/address/{mine}/balance.json")
    );
    snap!(
        node,
        "address_utxos",
        format!("/rest/address/{ELSEWHERE}/utxos.json")
    );
    snap!(
        node,
        "address_txids",
        format!("/rest/address/{ELSEWHERE}/txids.json")
    );
    snap!(node, "address_bad", "/rest/address/nonsense/balance.json");
    snap!(node, "blocks_csv", "/rest/blocks/100/102.csv");
    snap!(node, "blocks_bad_range", "/rest/blocks/5/2.jsonl");
    snap!(node, "blocks_past_tip", "/rest/blocks/0/103.json");
    snap!(node, "unknown_path", "/rest/nothing");

    // `.bin` is the block's bytes: what `getblock <hash> 0` gives as hex.
    for hash in [genesis, chain[0], tip] {
        let (status, bin) = node.get(&format!("/rest/block/{hash}.bin")).unwrap();
        assert_eq!(status, 200);
        let raw = node.rpc("getblock", json!([hash.to_string(), 0]));
        assert_eq!(hex::encode(&bin), raw.as_str().unwrap(), "block {hash}");
    }
    // The headers as bytes: 80 each, in chain order.
    let (_, bin) = node
        .get(&format!("/rest/headers/3/{}.bin", chain[99]))
        .unwrap();
    assert_eq!(bin.len(), 240);
    let raw = node.rpc("getblockheader", json!([chain[100].to_string(), false]));
    assert_eq!(hex::encode(&bin[80..160]), raw.as_str().unwrap());
    // The JSON array of a range is the same blocks as its JSON Lines.
    let (_, array) = node.get("/rest/blocks/0/102.json").unwrap();
    let array: Vec<Value> = serde_json::from_slice(&array).unwrap();
    let (_, lines) = node.get("/rest/blocks/0/102.jsonl").unwrap();
    let lines: Vec<Value> = lines
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(array.len(), 103);
    assert_eq!(array, lines);
    // Writing is not REST's: a POST is refused, and RPC without credentials is still 401.
    let refused = ureq::post(&format!("{}rest/chaininfo.json", node.url())).call();
    assert!(
        matches!(refused, Err(ureq::Error::Status(405, _))),
        "{refused:?}"
    );
    assert_eq!(node.post("{}", None).unwrap().status, 401);
}

#[test]
fn events_stream_the_tip_and_the_mempool() {
    let dir = TempDir::new("rest-events");
    let node = Node::start(&dir.sub("a"), &[]);
    let mut sock = std::net::TcpStream::connect(("127.0.0.1", node.rpc_port)).unwrap();
    sock.set_read_timeout(Some(chaincore_tests::DEADLINE))
        .unwrap();
    write!(sock, "GET /rest/events HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut lines = BufReader::new(sock).lines();
    let mut next_data = |event: &str| -> Value {
        loop {
            let line = lines.next().expect("the stream goes on").unwrap();
            if line == format!("event: {event}") {
                let data = lines.next().unwrap().unwrap();
                return serde_json::from_str(data.strip_prefix("data: ").unwrap()).unwrap();
            }
        }
    };
    let first = next_data("tip");
    assert_eq!(first["height"], 0);
    assert_eq!(next_data("mempool")["size"], 0);
    let mined = node.rpc("generatetoaddress", json!([1, ELSEWHERE]));
    let tip = next_data("tip");
    assert_eq!(tip["height"], 1);
    assert_eq!(tip["hash"], mined[0]);
}

/// Samples of a scrape by name (labels joined into the key as `name{k=v,…}`).
fn scrape(node: &Node) -> std::collections::HashMap<String, f64> {
    let (status, body) = node.get("/metrics").unwrap();
    assert_eq!(status, 200);
    let text = String::from_utf8(body).unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let parsed = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    parsed
        .samples
        .into_iter()
        .filter_map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                _ => return None,
            };
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            let key = if labels.is_empty() {
                s.metric
            } else {
                format!("{}{{{}}}", s.metric, labels.join(","))
            };
            Some((key, value))
        })
        .collect()
}

/// The metric names docs/REST.md lists, each as it appears in a scrape.
const LISTED: &[&str] = &[
    "chaincore_chain_height",
    "chaincore_chain_headers",
    "chaincore_chain_tip_age_seconds",
    "chaincore_block_connect_seconds_count",
    "chaincore_chain_reorgs_total",
    "chaincore_chain_reorg_depth_count",
    "chaincore_mempool_transactions",
    "chaincore_mempool_bytes",
    "chaincore_mempool_evictions_total",
    "chaincore_mempool_orphans",
    "chaincore_peers{direction=inbound}",
    "chaincore_peers{direction=outbound}",
    "chaincore_p2p_sent_bytes_total{message=version}",
    "chaincore_p2p_received_bytes_total{message=version}",
    "chaincore_rpc_requests_total{method=generatetoaddress}",
    "chaincore_rpc_request_seconds_count{method=sendrawtransaction}",
    "chaincore_template_build_seconds_count",
    "process_resident_memory_bytes",
];

#[test]
fn metrics_parse_and_are_sane_after_mining_and_a_send() {
    let dir = TempDir::new("rest-metrics");
    let node = Node::start(&dir.sub("a"), &[]);
    let builder = Builder::new();
    let mine = Address::p2pkh(builder.key().public_key().pubkey_hash(), Network::Regtest);
    let hashes = node.rpc("generatetoaddress", json!([101, mine.to_string()]));
    let first = node.rpc("getblock", json!([hashes[0], 2]));
    let coinbase = &first["tx"][0];
    let tx = signed_spend(
        builder.key(),
        &[OutPoint {
            txid: coinbase["txid"].as_str().unwrap().parse().unwrap(),
            vout: 0,
        }],
        vec![TxOut {
            value: Amount::from_units(50 * 100_000_000 - 10_000),
            script_pubkey: Address::parse(ELSEWHERE, Network::Regtest)
                .unwrap()
                .script_pubkey(),
        }],
    );
    let raw = hex::encode(serialize(&tx));
    node.rpc("sendrawtransaction", json!([raw]));
    node.rpc("getblocktemplate", json!([]));
    // A peer that says hello and leaves.
    drop(RawPeer::connect(&node));
    let peer = RawPeer::connect(&node);
    wait_for("the peer counted", || {
        let m = scrape(&node);
        let gone = m
            .keys()
            .any(|k| k.starts_with("chaincore_p2p_disconnects_total{reason="));
        (m.get("chaincore_peers{direction=inbound}") == Some(&1.0) && gone).then_some(())
    });
    let m = scrape(&node);
    for name in LISTED {
        assert!(m.contains_key(*name), "{name} missing from /metrics: {m:?}");
    }
    assert_eq!(m["chaincore_chain_height"], 101.0);
    assert_eq!(m["chaincore_chain_headers"], 101.0);
    assert!(m["chaincore_block_connect_seconds_count"] >= 101.0);
    assert_eq!(m["chaincore_chain_reorgs_total"], 0.0);
    assert_eq!(m["chaincore_mempool_transactions"], 1.0);
    assert_eq!(m["chaincore_mempool_bytes"], tx.size() as f64);
    assert_eq!(m["chaincore_mempool_evictions_total"], 0.0);
    assert_eq!(m["chaincore_peers{direction=outbound}"], 0.0);
    assert!(m["chaincore_p2p_received_bytes_total{message=version}"] > 80.0);
    assert!(m["chaincore_rpc_requests_total{method=generatetoaddress}"] >= 1.0);
    assert!(m["chaincore_rpc_request_seconds_count{method=sendrawtransaction}"] >= 1.0);
    assert!(m["chaincore_template_build_seconds_count"] >= 1.0);
    assert!(m["process_resident_memory_bytes"] > 1e6);
    // A reorg one block deep: invalidate the tip, mine two on its parent.
    let tip = node.rpc("getbestblockhash", json!([]));
    node.rpc("invalidateblock", json!([tip]));
    node.rpc("generatetoaddress", json!([2, ELSEWHERE]));
    node.rpc("reconsiderblock", json!([tip]));
    let m = scrape(&node);
    assert!(m["chaincore_chain_reorgs_total"] >= 1.0, "{m:?}");
    assert_eq!(m["chaincore_chain_height"], 102.0);
    drop(peer);
}

#[test]
fn rest_false_gives_404_and_rpc_goes_on() {
    let dir = TempDir::new("rest-off");
    let node = Node::start(&dir.sub("a"), &["--rest=false"]);
    for path in ["/rest/chaininfo.json", "/metrics", "/rest/events"] {
        let (status, body) = node.get(path).unwrap();
        assert_eq!(status, 404, "{path}");
        assert!(String::from_utf8_lossy(&body).contains("--rest=false"));
    }
    assert_eq!(node.rpc("getblockcount", json!([])), json!(0));
}

/// A node process inside a network namespace, killed on drop.
struct Netns(Child);

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `curl` run inside namespace `ns`: the HTTP status, or 0 if no answer came.
fn curl_in(ns: &str, url: &str, extra: &[&str]) -> u16 {
    let out = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "curl",
            "-s",
            "-o",
            "/dev/null",
            "-m",
            "10",
        ])
        .args(extra)
        .args(["-w", "%{http_code}", url])
        .output()
        .expect("ip netns exec curl runs");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn rest_on_a_non_loopback_bind_reaches_only_rpcallowip_clients() {
    let lab = Lab::new(2).unwrap_or_else(|e| {
        panic!("this test needs root to create network namespaces (CI runs as root): {e}")
    });
    let dir = TempDir::new("rest-allowip");
    let (ns0, host0) = lab.host(0);
    let (ns1, host1) = lab.host(1);
    let rpc_port = free_port();
    let log = std::fs::File::create(dir.0.join("node.log")).unwrap();
    let _node = Netns(
        Command::new("ip")
            .args(["netns", "exec", ns0])
            .arg(binary("chaincore-node"))
            .args(["--network", "regtest", "--datadir"])
            .arg(dir.sub("a"))
            .args(["--rpcbind", host0, "--rpcport", &rpc_port.to_string()])
            .args(["--bind", host0, "--port", &free_port().to_string()])
            // Only the other host: the test itself (its management address) is outside.
            .args(["--rpcallowip", &format!("{host1}/32"), "--rest=true"])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap(),
    );
    let url = format!("http://{host0}:{rpc_port}/rest/chaininfo.json");
    wait_for("REST from the allowed host", || {
        (curl_in(ns1, &url, &[]) == 200).then_some(())
    });
    assert_eq!(
        curl_in(ns1, &format!("http://{host0}:{rpc_port}/metrics"), &[]),
        200
    );
    // The dashboard too; JSON-RPC (a POST) from the allowed host still needs credentials.
    let rpc = format!("http://{host0}:{rpc_port}/");
    assert_eq!(curl_in(ns1, &rpc, &[]), 200);
    assert_eq!(
        curl_in(ns1, &rpc, &["-d", r#"{"method":"getblockcount"}"#]),
        401
    );
    // The test process, at its management address, is not in --rpcallowip: no answer at all.
    let outside = ureq::get(&url)
        .timeout(std::time::Duration::from_secs(10))
        .call();
    assert!(
        matches!(outside, Err(ureq::Error::Transport(_))),
        "a client outside --rpcallowip got {outside:?}"
    );
    let log = std::fs::read_to_string(dir.0.join("node.log")).unwrap();
    assert!(log.contains("not in --rpcallowip"), "{log}");

    // Without --rest, a non-loopback bind serves no REST (404) even to allowed clients.
    let other = Node::start_in_netns(&dir.sub("b"), &[], ns1, host1);
    let (status, _) = other.get("/rest/chaininfo.json").unwrap();
    assert_eq!(status, 404);
}

/// The block hashes in an export: JSON Lines objects' `hash`, or CSV rows' second column.
fn exported_hashes(text: &str, csv: bool) -> Vec<String> {
    if csv {
        let mut rows = text.lines();
        assert_eq!(rows.next().unwrap().split(',').nth(1), Some("hash"));
        rows.map(|r| r.split(',').nth(1).unwrap().to_string())
            .collect()
    } else {
        text.lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                v["hash"].as_str().unwrap().to_string()
            })
            .collect()
    }
}

#[test]
fn export_of_1000_blocks_round_trips_their_hashes() {
    let dir = TempDir::new("rest-export");
    let mut node = Node::start(&dir.sub("a"), &[]);
    let mined: Vec<String> =
        serde_json::from_value(node.rpc("generatetoaddress", json!([1000, ELSEWHERE]))).unwrap();
    let (status, body) = node.get("/rest/blocks/1/1000.jsonl").unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        exported_hashes(&String::from_utf8(body).unwrap(), false),
        mined
    );
    let (_, body) = node.get("/rest/blocks/1/1000.csv").unwrap();
    assert_eq!(
        exported_hashes(&String::from_utf8(body).unwrap(), true),
        mined
    );

    // While the node runs, its store is locked: export says to stop it.
    let datadir = node.datadir.clone();
    let export = |format: &str, out: &std::path::Path| {
        Command::new(binary("chaincore-node"))
            .args(["--network", "regtest", "--datadir"])
            .arg(&datadir)
            .args([
                "export", "--from", "1", "--to", "1000", "--format", format, "--output",
            ])
            .arg(out)
            .output()
            .unwrap()
    };
    let busy = export("jsonl", &dir.0.join("busy.jsonl"));
    assert!(!busy.status.success());
    assert!(String::from_utf8_lossy(&busy.stderr).contains("stop the node first"));
    assert!(node.stop().success());
    for format in ["jsonl", "csv"] {
        let out = dir.0.join(format!("blocks.{format}"));
        let run = export(format, &out);
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        let text = std::fs::read_to_string(&out).unwrap();
        assert_eq!(exported_hashes(&text, format == "csv"), mined, "{format}");
    }
    // A range past the tip is refused with the reason.
    let bad = Command::new(binary("chaincore-node"))
        .args(["--network", "regtest", "--datadir"])
        .arg(&datadir)
        .args(["export", "--from", "0", "--to", "1001"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("above the tip"));
}
