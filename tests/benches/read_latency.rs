//! Read latency while the node writes (issue #11), on a release node:
//! `cargo bench -p chaincore-tests --bench read_latency [-- --quick]` (or
//! `READ_LATENCY_QUICK=1`: a smaller block, a 20-block reorg, 5 sends).
//!
//! Eight threads, each with a keep-alive client, call `getblockcount` and `getblockchaininfo`
//! in turn (a 2 ms pause after each call, `READ_LATENCY_PAUSE_MS` to change it), timing every
//! call, through these phases:
//! - idle: nothing else happens (the baseline);
//! - (b) reorg: `invalidateblock` of the first of the active chain's last 100 blocks while a
//!   stored branch of 100 other blocks waits beside it (same work: ties keep the first seen),
//!   so 100 blocks disconnect and 100 connect in the one call; each block holds about 20 KB of
//!   two-in, two-out spends (each branch of its own coins), so the 100 disconnected blocks'
//!   transactions go back to the mempool;
//! - (a) block: `submitblock` of a block of about 1 MB whose ~2,600 transactions (two inputs,
//!   two outputs each) the node has never seen, so every signature is checked;
//! - (c) bad tx: a raw P2P peer sends a 600-input transaction (98 KB) whose last signature is
//!   well-formed but wrong, 20 times, reconnecting whenever the node hangs up.
//!
//! (b) runs before (a) so that everything is stored before the clients start: the big block
//! sits on the reorg's new branch. A call counts in a phase if it was in flight at any time
//! during it. Per phase: the phase's own duration, the node's CPU in it, and per method the
//! count, p50, p99 and max. Target p99 ≤ 20 ms in every phase.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // bench code

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chaincore::encode::serialize;
use chaincore::{Amount, Network};
use chaincore_tests::builder::Builder;
use chaincore_tests::client::RpcClient;
use chaincore_tests::coins::spend_coins;
use chaincore_tests::peer::RawPeer;
use chaincore_tests::{Node, TempDir};
use serde_json::{json, Value};

const CLIENTS: usize = 8;
const METHODS: [&str; 2] = ["getblockcount", "getblockchaininfo"];
const TARGET_P99_MS: f64 = 20.0;

/// How big each phase is.
struct Plan {
    idle: Duration,
    block_size: usize,
    reorg_depth: usize,
    reorg_block_size: usize,
    sends: usize,
}

/// One timed call.
struct Sample {
    start: Instant,
    end: Instant,
    method: usize,
}

/// One phase: when it ran and what the node spent on it.
struct Phase {
    name: String,
    start: Instant,
    end: Instant,
    cpu: f64,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick")
        || std::env::var("READ_LATENCY_QUICK").is_ok_and(|v| v != "0");
    let pause = Duration::from_millis(
        std::env::var("READ_LATENCY_PAUSE_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2),
    );
    let plan = if quick {
        Plan {
            idle: Duration::from_secs(2),
            block_size: 250_000,
            reorg_depth: 20,
            reorg_block_size: 20_000,
            sends: 5,
        }
    } else {
        Plan {
            idle: Duration::from_secs(5),
            block_size: 1_000_000,
            reorg_depth: 100,
            reorg_block_size: 20_000,
            sends: 20,
        }
    };
    chaincore_tests::use_release_binaries();
    let dir = TempDir::new("read-latency");
    let node = Node::start(&dir.0, &[]);

    // Setup, before any client starts: coins for the big block and the bad transaction, the
    // active branch and the waiting one, and the big block on the waiting one's tip.
    let setup = Instant::now();
    let mut b = Builder::new();
    // A two-in, two-out spend is about 374 bytes: one coin per 187 bytes of block.
    let per_reorg_block = plan.reorg_block_size / 180;
    let block_coins = plan.block_size / 180;
    let (tip, coins) = b.submit_coins(
        &node,
        &Network::Regtest.genesis_hash(),
        600 + block_coins + 2 * plan.reorg_depth * per_reorg_block,
        1_000_000,
    );
    let (bad_coins, rest) = coins.split_at(600);
    let (block_coins, mut reorg_coins) = rest.split_at(block_coins);
    // Each branch's blocks spend coins of their own, so the disconnected transactions go
    // back to the mempool and stay there.
    let mut branch = |b: &mut Builder, expect: Value| {
        let mut parent = tip;
        let mut hashes = Vec::new();
        for _ in 0..plan.reorg_depth {
            let (block, used) = b.build_full(&parent, reorg_coins, plan.reorg_block_size);
            reorg_coins = &reorg_coins[used..];
            parent = block.block_hash();
            hashes.push(parent);
            let answer = node.rpc("submitblock", json!([hex::encode(serialize(&block))]));
            assert_eq!(answer, expect, "block {parent}");
        }
        hashes
    };
    let active = branch(&mut b, Value::Null);
    let waiting = *branch(&mut b, json!("inconclusive")).last().unwrap();
    let (big, used) = b.build_full(&waiting, block_coins, plan.block_size);
    let big_hex = hex::encode(serialize(&big));
    let bad = spend_coins(b.key(), bad_coins, 280, Amount::from_units(100_000), true);
    let bad_payload = serialize(&bad);
    println!(
        "setup {:.1} s: release node at height {}; {CLIENTS} keep-alive clients, {} ms pause \
         after each call{}",
        setup.elapsed().as_secs_f64(),
        node.rpc("getblockcount", json!([])),
        pause.as_millis(),
        if quick { " (--quick)" } else { "" }
    );

    let stop = AtomicBool::new(false);
    let (phases, samples) = std::thread::scope(|s| {
        let readers: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let (client, stop) = (RpcClient::new(&node), &stop);
                s.spawn(move || {
                    let mut samples = Vec::new();
                    let mut n = i;
                    while !stop.load(Ordering::Acquire) {
                        let method = n % METHODS.len();
                        n += 1;
                        let start = Instant::now();
                        client.call(METHODS[method], json!([]));
                        samples.push(Sample {
                            start,
                            end: Instant::now(),
                            method,
                        });
                        std::thread::sleep(pause);
                    }
                    samples
                })
            })
            .collect();
        let mut phases = Vec::new();
        let mut run = |name: String, f: &mut dyn FnMut()| {
            // A second between phases, so no call is in flight for two of them.
            std::thread::sleep(Duration::from_secs(1));
            let cpu = node.cpu_seconds();
            let start = Instant::now();
            f();
            phases.push(Phase {
                name,
                start,
                end: Instant::now(),
                cpu: node.cpu_seconds() - cpu,
            });
        };
        run("idle".into(), &mut || std::thread::sleep(plan.idle));
        run(
            format!(
                "(b) reorg: {} blocks off, {} on, {} KB each",
                plan.reorg_depth,
                plan.reorg_depth,
                plan.reorg_block_size / 1000
            ),
            &mut || {
                node.rpc("invalidateblock", json!([active[0].to_string()]));
            },
        );
        assert_eq!(
            node.rpc("getbestblockhash", json!([])),
            json!(waiting.to_string())
        );
        run(
            format!(
                "(a) block: {} bytes, {} new txs",
                big.size(),
                big.txdata.len() - 2
            ),
            &mut || {
                assert_eq!(node.rpc("submitblock", json!([big_hex])), Value::Null);
            },
        );
        let mut disconnects = 0;
        run(
            format!(
                "(c) bad tx: {} inputs, {} bytes, sent {}x",
                bad.input.len(),
                bad.size(),
                plan.sends
            ),
            &mut || {
                let mut peer = RawPeer::connect(&node);
                for i in 0..plan.sends {
                    peer.send("tx", &bad_payload);
                    if !peer.sync() {
                        disconnects += 1;
                        if i + 1 < plan.sends {
                            peer = RawPeer::connect(&node);
                        }
                    }
                }
            },
        );
        stop.store(true, Ordering::Release);
        let samples: Vec<Sample> = readers
            .into_iter()
            .flat_map(|r| r.join().unwrap())
            .collect();
        println!(
            "(a) used {used} coins; (c) peer disconnected {disconnects} of {} times",
            plan.sends
        );
        (phases, samples)
    });
    assert_eq!(
        node.rpc("getbestblockhash", json!([])),
        json!(big.block_hash().to_string())
    );
    let pool = node.rpc("getrawmempool", json!([]));
    assert!(!pool
        .as_array()
        .unwrap()
        .contains(&json!(bad.compute_txid().to_string())));

    println!(
        "{:<44} {:>9} {:>8} | {:<34} | {:<34}",
        "phase",
        "duration",
        "node CPU",
        "getblockcount: n p50 p99 max ms",
        "getblockchaininfo: n p50 p99 max ms"
    );
    let mut worst = 0.0f64;
    for phase in &phases {
        let mut cols = Vec::new();
        for method in 0..METHODS.len() {
            let mut times: Vec<Duration> = samples
                .iter()
                .filter(|s| s.method == method && s.start < phase.end && s.end > phase.start)
                .map(|s| s.end - s.start)
                .collect();
            times.sort();
            if times.is_empty() {
                cols.push(format!("{:<34}", "no calls"));
                continue;
            }
            let p99 = ms(percentile(&times, 0.99));
            worst = worst.max(p99);
            cols.push(format!(
                "{:>6} {:>7.2} {:>8.2} {:>9.2}",
                times.len(),
                ms(percentile(&times, 0.5)),
                p99,
                ms(*times.last().unwrap())
            ));
        }
        println!(
            "{:<44} {:>7.0}ms {:>7.2}s | {} | {}",
            phase.name,
            ms(phase.end - phase.start),
            phase.cpu,
            cols[0],
            cols[1]
        );
    }
    println!(
        "worst p99 {worst:.1} ms (target ≤ {TARGET_P99_MS} ms in every phase: {})",
        if worst <= TARGET_P99_MS {
            "met"
        } else {
            "missed"
        }
    );
}

/// The `p` quantile of sorted `times` (nearest rank).
fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
