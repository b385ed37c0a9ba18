//! P2P benchmarks with release binaries on loopback: block propagation along a line of 5
//! nodes (an empty block; a ~1 MB block whose transactions no mempool has; a ~1 MB block
//! whose transactions every mempool has, the compact block case), with the P2P bytes sent per
//! hop, and a fresh node syncing full blocks from one peer and from three, against connecting
//! the same blocks locally through `submitblock`.
//!
//! Run: `cargo bench -p chaincore-tests --bench p2p [-- FULL_BLOCKS]` (the sync chain's full
//! blocks, 200 by default; ~10 minutes on 2 cores).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // bench code

use std::time::{Duration, Instant};

use chaincore::encode::serialize;
use chaincore::key::PrivateKey;
use chaincore::{Address, Amount, Block, Network, OutPoint, Script, Transaction, TxOut};
use chaincore_tests::{Node, TempDir};
use serde_json::{json, Value};

const FULL_BLOCK_TXS: usize = 5_100;
/// Full blocks in the sync chain unless the command line names another number.
const SYNC_FULL_BLOCKS: usize = 200;
/// Compact blocks timed along the line (the median is the figure).
const COMPACT_ROUNDS: usize = 5;
/// Coinbases split into coins for the line's full blocks: one block of spends no mempool has,
/// then [`COMPACT_ROUNDS`].
const COINBASES: u64 = ((1 + COMPACT_ROUNDS) * FULL_BLOCK_TXS).div_ceil(SPLIT) as u64;
/// How often a sync's end is asked for.
const SYNC_POLL: Duration = Duration::from_millis(50);
/// Outputs of one coinbase split: as many as stay within the 100,000-byte standard size.
const SPLIT: usize = 2_500;

fn key() -> PrivateKey {
    PrivateKey::from_bytes(&[0x3c; 32]).unwrap()
}

fn lock() -> Script {
    Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).script_pubkey()
}

fn addr() -> String {
    Address::p2pkh(key().public_key().pubkey_hash(), Network::Regtest).to_string()
}

fn tx(inputs: Vec<OutPoint>, outputs: Vec<TxOut>) -> Transaction {
    chaincore_tests::signed_spend(&key(), &inputs, outputs)
}

fn tip(n: &Node) -> Value {
    n.rpc("getbestblockhash", json!([]))
}

/// Splits the coinbases of heights `heights` into [`SPLIT`] outputs each (mined in one block);
/// returns the new coins.
fn make_coins(node: &Node, heights: std::ops::RangeInclusive<u64>) -> Vec<(OutPoint, i64)> {
    let mut coins = Vec::new();
    for h in heights {
        let block = node.rpc("getblock", json!([node.rpc("getblockhash", json!([h])), 2]));
        let txid = block["tx"][0]["txid"].as_str().unwrap().parse().unwrap();
        let each = (50 * 100_000_000 - 200_000) / SPLIT as i64;
        let split = tx(
            vec![OutPoint { txid, vout: 0 }],
            vec![
                TxOut {
                    value: Amount::from_units(each),
                    script_pubkey: lock()
                };
                SPLIT
            ],
        );
        node.rpc(
            "sendrawtransaction",
            json!([hex::encode(serialize(&split))]),
        );
        let id = split.compute_txid();
        coins.extend((0..SPLIT as u32).map(|vout| (OutPoint { txid: id, vout }, each)));
    }
    // The splits may need more than one block.
    while !node
        .rpc("getrawmempool", json!([]))
        .as_array()
        .unwrap()
        .is_empty()
    {
        node.rpc("generatetoaddress", json!([1, addr()]));
    }
    coins
}

/// `n` one-input spends of `coins` (taken from it), each paying a fee of 1,000 units.
fn spends(coins: &mut Vec<(OutPoint, i64)>, n: usize) -> Vec<Transaction> {
    coins
        .drain(..n)
        .map(|(o, v)| {
            tx(
                vec![o],
                vec![TxOut {
                    value: Amount::from_units(v - 1_000),
                    script_pubkey: lock(),
                }],
            )
        })
        .collect()
}

/// A solved block on `node`'s tip with `n` one-input spends taken from `coins`.
fn full_block(node: &Node, coins: &mut Vec<(OutPoint, i64)>, n: usize) -> Block {
    chaincore_tests::solve_block(node, &lock(), spends(coins, n), n as i64 * 1_000)
}

/// P2P bytes sent so far by each node (`getnettotals`).
fn bytes_sent(nodes: &[Node]) -> Vec<u64> {
    nodes
        .iter()
        .map(|n| {
            n.rpc("getnettotals", json!([]))["totalbytessent"]
                .as_u64()
                .unwrap()
        })
        .collect()
}

/// Bytes all `nodes` sent since `before`, per hop of the line.
fn per_hop(nodes: &[Node], before: &[u64]) -> f64 {
    let after = bytes_sent(nodes);
    let total: u64 = after.iter().zip(before).map(|(a, b)| a - b).sum();
    total as f64 / (nodes.len() - 1) as f64
}

/// Number of transactions in `node`'s mempool.
fn mempool_size(node: &Node) -> u64 {
    node.rpc("getmempoolinfo", json!([]))["size"]
        .as_u64()
        .unwrap()
}

/// Time until every node in `nodes` has `hash` as its tip, asking every millisecond (for
/// propagation, which takes milliseconds).
fn until_all_have(nodes: &[Node], hash: &Value, since: Instant) -> Duration {
    until_all_have_every(nodes, hash, since, Duration::from_millis(1))
}

/// [`until_all_have`], asking every `poll`: a sync of tens of seconds is timed every 50 ms, so
/// a thousand RPC calls a second do not take the syncing node's CPU.
fn until_all_have_every(nodes: &[Node], hash: &Value, since: Instant, poll: Duration) -> Duration {
    // A node that has it keeps it (nothing else is mined meanwhile): only the others are asked.
    let mut pending = nodes.iter().peekable();
    while let Some(node) = pending.peek() {
        if &tip(node) == hash {
            pending.next();
            continue;
        }
        assert!(
            since.elapsed() < Duration::from_secs(1800),
            "propagation timed out"
        );
        std::thread::sleep(poll);
    }
    since.elapsed()
}

/// Seconds `node` has spent connecting blocks so far (its `chaincore_block_connect_seconds`).
fn connect_seconds(node: &Node) -> f64 {
    let (status, body) = node.get("/metrics").expect("metrics answer");
    assert_eq!(status, 200);
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("chaincore_block_connect_seconds_sum "))
        .and_then(|v| v.trim().parse().ok())
        .expect("chaincore_block_connect_seconds_sum in /metrics")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// One compact block's trip along the line.
struct Round {
    /// The block's size in bytes.
    size: usize,
    /// From the `submitblock` request to the first node until every node has it as its tip.
    total_ms: f64,
    /// The last node's connect time (from its metrics), the end of `total_ms`.
    last_connect_ms: f64,
    bytes_per_hop: f64,
}

/// Relays [`FULL_BLOCK_TXS`] spends of `coins` to every mempool of `line`, then times a block
/// of them from `submitblock` on the first node until every node has connected it. The
/// request is encoded before the clock starts: it is the miner's work, not the nodes'.
fn compact_round(line: &[Node], coins: &mut Vec<(OutPoint, i64)>) -> Round {
    let before = line.iter().map(mempool_size).collect::<Vec<_>>();
    let spends = spends(coins, FULL_BLOCK_TXS);
    for t in &spends {
        line[0].rpc("sendrawtransaction", json!([hex::encode(serialize(t))]));
    }
    let relayed = Instant::now();
    while line
        .iter()
        .zip(&before)
        .any(|(n, b)| mempool_size(n) < b + FULL_BLOCK_TXS as u64)
    {
        assert!(
            relayed.elapsed() < Duration::from_secs(600),
            "transactions did not reach every mempool"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Fees are in the template's coinbase value already.
    let block = chaincore_tests::solve_block(&line[0], &lock(), spends, 0);
    let hash = json!(block.block_hash().to_string());
    let request =
        json!({"method": "submitblock", "params": [hex::encode(serialize(&block))], "id": 1})
            .to_string();
    let sent = bytes_sent(line);
    let last_connects = connect_seconds(&line[4]);
    let start = Instant::now();
    assert_eq!(line[0].call_body(&request), Ok(Value::Null));
    // The first node relays the block before it validates it (as every node does), so the
    // relay overlaps its connect; the last node's own connect (from its metrics) ends the
    // time.
    let t = until_all_have(line, &hash, start);
    Round {
        size: block.size(),
        total_ms: ms(t),
        last_connect_ms: (connect_seconds(&line[4]) - last_connects) * 1e3,
        bytes_per_hop: per_hop(line, &sent),
    }
}

fn main() {
    chaincore_tests::use_release_binaries();
    let dir = TempDir::new("p2p-bench");

    // Propagation along a line of 5.
    let mut line: Vec<Node> = Vec::new();
    for i in 0..5 {
        let sub = dir.0.join(format!("line{i}"));
        std::fs::create_dir_all(&sub).unwrap();
        let node = match line.last() {
            Some(prev) => Node::start(&sub, &["--connect", &prev.p2p_addr()]),
            None => Node::start(&sub, &[]),
        };
        line.push(node);
    }
    // The coinbases of heights 1 to COINBASES are mature once the empty block is in.
    line[0].rpc("generatetoaddress", json!([COINBASES + 99, addr()]));
    until_all_have(&line, &tip(&line[0]), Instant::now());
    let start = Instant::now();
    let mined = line[0].rpc("generatetoaddress", json!([1, addr()]));
    let t = until_all_have(&line, &mined[0], start);
    println!(
        "propagation, empty block, 5 nodes in a line: {:.1} ms in all ({:.1} ms per hop)",
        ms(t),
        ms(t) / 4.0
    );
    let mut coins = make_coins(&line[0], 1..=COINBASES);
    until_all_have(&line, &tip(&line[0]), Instant::now());

    // Transactions no mempool has: each hop asks for all of them and checks every signature.
    let block = full_block(&line[0], &mut coins, FULL_BLOCK_TXS);
    let size = block.size();
    let before = bytes_sent(&line);
    let start = Instant::now();
    assert_eq!(
        line[0].rpc("submitblock", json!([hex::encode(serialize(&block))])),
        Value::Null
    );
    let t = until_all_have(&line, &json!(block.block_hash().to_string()), start);
    println!(
        "propagation, {size}-byte block of {FULL_BLOCK_TXS} spends in no mempool: {:.0} ms in all ({:.0} ms per hop, including validation at every node), {:.0} bytes sent per hop",
        ms(t),
        ms(t) / 4.0,
        per_hop(&line, &before)
    );

    // Transactions every mempool has (relayed first): a compact block per hop, rebuilt from
    // the mempool, relayed before validation, signatures not checked again.
    let rounds: Vec<Round> = (0..COMPACT_ROUNDS)
        .map(|_| compact_round(&line, &mut coins))
        .collect();
    for (i, r) in rounds.iter().enumerate() {
        println!(
            "propagation, {}-byte block of {FULL_BLOCK_TXS} spends in every mempool, round {}: {:.1} ms in all ({:.1} ms per hop), of which {:.1} ms the last node's connect: {:.1} ms per hop without it; {:.0} bytes sent per hop",
            r.size,
            i + 1,
            r.total_ms,
            r.total_ms / 4.0,
            r.last_connect_ms,
            (r.total_ms - r.last_connect_ms) / 4.0,
            r.bytes_per_hop
        );
    }
    let median = |f: fn(&Round) -> f64| {
        let mut v: Vec<f64> = rounds.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let total = median(|r| r.total_ms);
    println!(
        "propagation, ~1 MB block of {FULL_BLOCK_TXS} spends in every mempool, median of {COMPACT_ROUNDS}: {total:.1} ms in all ({:.1} ms per hop; target ≤ 20), {:.1} ms per hop without the last node's connect",
        total / 4.0,
        median(|r| (r.total_ms - r.last_connect_ms) / 4.0),
    );
    drop(line);

    // A source chain with full blocks.
    let source = Node::start(&dir.0.join("source").tap(), &[]);
    let full_blocks = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(SYNC_FULL_BLOCKS);
    let splits = ((full_blocks * FULL_BLOCK_TXS) as u64).div_ceil(SPLIT as u64);
    // In calls of 100: past ~6 blocks/s the median-time-past rule makes mining wait for the
    // clock, and one call must answer within the client's timeout.
    let mut left = 100 + splits;
    while left > 0 {
        source.rpc("generatetoaddress", json!([left.min(100), addr()]));
        left -= left.min(100);
    }
    let mut coins = make_coins(&source, 1..=splits);
    let mut raw_blocks = Vec::new();
    for _ in 0..full_blocks {
        let b = full_block(&source, &mut coins, FULL_BLOCK_TXS);
        assert_eq!(
            source.rpc("submitblock", json!([hex::encode(serialize(&b))])),
            Value::Null
        );
    }
    let height = source.rpc("getblockcount", json!([])).as_u64().unwrap();
    let mut bytes = 0usize;
    for h in 1..=height {
        let hex_block = source.rpc(
            "getblock",
            json!([source.rpc("getblockhash", json!([h])), 0]),
        );
        bytes += hex_block.as_str().unwrap().len() / 2;
        raw_blocks.push(hex_block);
    }
    let target = tip(&source);
    let mb = bytes as f64 / 1e6;
    println!("sync chain: {height} blocks, {mb:.1} MB ({full_blocks} full blocks)");

    // Local: submitblock the same blocks in order.
    let local = Node::start(&dir.0.join("local").tap(), &[]);
    let cpu = local.cpu_seconds();
    let start = Instant::now();
    for raw in &raw_blocks {
        assert_eq!(local.rpc("submitblock", json!([raw])), Value::Null);
    }
    let t_local = start.elapsed().as_secs_f64();
    println!(
        "connect locally via submitblock: {:.0} blocks/s, {:.2} MB/s ({t_local:.1} s; node CPU {:.1} s)",
        height as f64 / t_local,
        mb / t_local,
        local.cpu_seconds() - cpu
    );
    // Its indexes catch up at a low priority after the blocks: let them finish, and stop the
    // node, so that work does not slow the syncs timed next.
    let local_rss = settle_and_stop(local);

    // From one peer.
    let start = Instant::now();
    let one = Node::start(&dir.0.join("one").tap(), &["--connect", &source.p2p_addr()]);
    let source_cpu = source.cpu_seconds();
    until_all_have_every(std::slice::from_ref(&one), &target, start, SYNC_POLL);
    let t_one = start.elapsed().as_secs_f64();
    println!(
        "sync from 1 peer: {:.0} blocks/s, {:.2} MB/s ({t_one:.1} s, {:.0}% of local; node CPU {:.1} s, its peer's {:.1} s)",
        height as f64 / t_one,
        mb / t_one,
        100.0 * t_local / t_one,
        one.cpu_seconds(),
        source.cpu_seconds() - source_cpu
    );
    settle_and_stop(one);

    // From three peers (the source and two nodes that synced from it).
    let b = Node::start(&dir.0.join("b").tap(), &["--connect", &source.p2p_addr()]);
    let c = Node::start(&dir.0.join("c").tap(), &["--connect", &source.p2p_addr()]);
    let helpers = [b, c];
    until_all_have_every(&helpers, &target, Instant::now(), SYNC_POLL);
    for h in &helpers {
        wait_indexes(h);
    }
    let (b_addr, c_addr) = (helpers[0].p2p_addr(), helpers[1].p2p_addr());
    let start = Instant::now();
    let three = Node::start(
        &dir.0.join("three").tap(),
        &[
            "--connect",
            &b_addr,
            "--connect",
            &c_addr,
            "--connect",
            &source.p2p_addr(),
        ],
    );
    until_all_have_every(std::slice::from_ref(&three), &target, start, SYNC_POLL);
    let t_three = start.elapsed().as_secs_f64();
    println!(
        "sync from 3 peers: {:.0} blocks/s, {:.2} MB/s ({t_three:.1} s, {:.0}% of local; target ≥ 90%)",
        height as f64 / t_three,
        mb / t_three,
        100.0 * t_local / t_three
    );
    // Memory after the sync, against the coins cache it may fill (--dbcache, default 450 MiB)
    // and redb's page cache (its default, up to 1 GiB).
    println!(
        "RSS after the 3-peer sync: {:.0} MiB; after local submitblock and its indexes: {:.0} MiB \
         (--dbcache 450 MiB, redb's page cache up to 1 GiB besides)",
        three.rss_bytes() as f64 / (1 << 20) as f64,
        local_rss as f64 / (1 << 20) as f64
    );
}

/// Waits until every index of `node` has taken in its tip.
fn wait_indexes(node: &Node) {
    let started = Instant::now();
    loop {
        let info = node.rpc("getindexinfo", json!([]));
        if info
            .as_object()
            .is_some_and(|m| m.values().all(|i| i["synced"] == true))
        {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(1800),
            "indexes never caught up: {info}"
        );
        std::thread::sleep(SYNC_POLL);
    }
}

/// Waits for `node`'s indexes, stops it; its RSS just before.
fn settle_and_stop(mut node: Node) -> u64 {
    wait_indexes(&node);
    let rss = node.rss_bytes();
    node.stop();
    rss
}

trait Tap {
    fn tap(self) -> Self;
}

impl Tap for std::path::PathBuf {
    fn tap(self) -> Self {
        std::fs::create_dir_all(&self).unwrap();
        self
    }
}
