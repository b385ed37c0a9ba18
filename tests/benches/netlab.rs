//! The network lab's figures (issue #19), with release binaries, at 12 and then 30 nodes (each
//! on its own host, a network namespace), with or without delay and loss on every path between
//! hosts: empty-block propagation to 50 / 90 / 100 % of the nodes, the same for blocks of about
//! 1 MB of unseen transactions, bytes sent per node per block, the stale-block rate with blocks
//! every 10 s from three miners on Poisson schedules, convergence after a half-and-half split
//! heals, and a late joiner's sync of 2,000 blocks. Root only. Run with
//! `cargo bench -p chaincore-tests --bench netlab -- [--sizes 12,30] [--delay-ms 50]
//! [--loss 0.01] [--stale-blocks 30]` (`NETLAB_SIZES` also sets the sizes).

#![allow(clippy::unwrap_used, clippy::expect_used)] // bench code

use std::time::{Duration, Instant};

use chaincore_tests::builder::Builder;
use chaincore_tests::lab::Net;
use chaincore_tests::netns::Wiring;
use serde_json::{json, Value};

/// How long a block may take to reach a node (a 1 MB block at 30 nodes with delay and loss,
/// on a busy machine, can take longer than the harness's usual deadline).
const ARRIVAL_DEADLINE: Duration = Duration::from_secs(300);

/// Milliseconds since `t`.
fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

/// When each of the nodes `which` first had `hash` as its tip, in ms after `start` (polled
/// every 2 ms, one thread per node).
fn arrivals(net: &Net, which: &[usize], hash: &str, start: Instant) -> Vec<f64> {
    let handles: Vec<_> = which
        .iter()
        .map(|&i| {
            let node = net.node(i).client();
            let hash = hash.to_string();
            std::thread::spawn(move || loop {
                if node.call("getbestblockhash", json!([])).ok() == Some(json!(hash)) {
                    return ms(start);
                }
                assert!(start.elapsed() < ARRIVAL_DEADLINE, "no arrival");
                std::thread::sleep(Duration::from_millis(2));
            })
        })
        .collect();
    let mut times: Vec<f64> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    times.sort_by(f64::total_cmp);
    times
}

/// The `p`-th percentile of sorted `times` (the time by which `p` % of the nodes had it).
fn pct(times: &[f64], p: usize) -> f64 {
    let k = (times.len() * p).div_ceil(100).max(1);
    times[k - 1]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn bytes_sent(net: &Net, which: &[usize]) -> u64 {
    which
        .iter()
        .map(|&i| {
            net.node(i).rpc("getnettotals", json!([]))["totalbytessent"]
                .as_u64()
                .unwrap()
        })
        .sum()
}

/// What to run, from the command line.
struct Args {
    sizes: Vec<usize>,
    delay: Duration,
    loss: f64,
    stale_blocks: u32,
}

impl Args {
    fn parse() -> Args {
        let sizes = std::env::var("NETLAB_SIZES").unwrap_or_else(|_| "12,30".into());
        let mut args = Args {
            sizes: sizes.split(',').filter_map(|s| s.parse().ok()).collect(),
            delay: Duration::ZERO,
            loss: 0.0,
            stale_blocks: 30,
        };
        let mut it = std::env::args().skip(1);
        while let Some(flag) = it.next() {
            let mut value = || it.next().unwrap_or_else(|| panic!("{flag} needs a value"));
            match flag.as_str() {
                "--sizes" => {
                    args.sizes = value().split(',').map(|s| s.parse().unwrap()).collect();
                }
                "--delay-ms" => args.delay = Duration::from_millis(value().parse().unwrap()),
                "--loss" => args.loss = value().parse().unwrap(),
                "--stale-blocks" => args.stale_blocks = value().parse().unwrap(),
                // cargo bench passes it to every bench binary.
                "--bench" => {}
                other => panic!("unknown argument {other}"),
            }
        }
        args
    }
}

fn run(n: usize, subnet: u8, args: &Args) {
    let all: Vec<usize> = (0..n).collect();
    // The split below is the even hosts against the odd ones: the odd on the second hub.
    let odd: Vec<usize> = all.iter().copied().filter(|i| i % 2 == 1).collect();
    let wiring = Wiring {
        delay: args.delay,
        loss: args.loss,
        far: odd,
    };
    let mut net = Net::start("bn", subnet, n + 1, n, &[], &wiring);
    net.wait_connected(3);
    let mut builder = Builder::new();
    let genesis = chaincore::Network::Regtest.genesis_hash();
    let hashes = builder.submit_chain(net.node(0), &genesis, 2_000);
    let tip = hashes.last().unwrap().to_string();
    net.wait_tip(&all, &tip, "the 2,000 pre-built blocks on every node");

    // About 1 MB blocks of unseen transactions, each submitted to another node.
    let rounds = 3;
    let (parent, coins) = builder.submit_coins(net.node(0), &hashes[1_999], 16_500, 100_000);
    net.wait_tip(&all, &parent.to_string(), "the coins on every node");
    let mut parent = parent;
    let mut coins = &coins[..];
    let (mut p50, mut p90, mut p100) = (Vec::new(), Vec::new(), Vec::new());
    let before = bytes_sent(&net, &all);
    let mut size = 0;
    for r in 0..rounds {
        let (block, used) = builder.build_full(&parent, coins, 1_000_000);
        coins = &coins[used..];
        parent = block.block_hash();
        size = block.size();
        let raw = hex::encode(chaincore::encode::serialize(&block));
        let miner = (r * 7 + 3) % n;
        let start = Instant::now();
        assert_eq!(
            net.node(miner).rpc("submitblock", json!([raw])),
            serde_json::Value::Null
        );
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != miner).collect();
        let times = arrivals(&net, &others, &parent.to_string(), start);
        p50.push(pct(&times, 50));
        p90.push(pct(&times, 90));
        p100.push(pct(&times, 100));
    }
    let per_node_block = (bytes_sent(&net, &all) - before) as f64 / (rounds * n) as f64;
    println!(
        "{n} nodes: {size}-byte block propagation (median of {rounds}, from submitblock): \
         50% {:.0} ms, 90% {:.0} ms, 100% {:.0} ms; {:.0} bytes sent per node per block",
        median(p50),
        median(p90),
        median(p100),
        per_node_block
    );

    // Empty blocks, each from another miner, one at a time.
    let rounds = 10;
    let (mut p50, mut p90, mut p100) = (Vec::new(), Vec::new(), Vec::new());
    let before = bytes_sent(&net, &all);
    for r in 0..rounds {
        let miner = (r * 7) % n;
        let start = Instant::now();
        let hash = net.mine(miner, 1).pop().unwrap();
        let others: Vec<usize> = all.iter().copied().filter(|&i| i != miner).collect();
        let times = arrivals(&net, &others, &hash, start);
        p50.push(pct(&times, 50));
        p90.push(pct(&times, 90));
        p100.push(pct(&times, 100));
    }
    let per_node_block = (bytes_sent(&net, &all) - before) as f64 / (rounds * n) as f64;
    println!(
        "{n} nodes: empty block propagation (median of {rounds}): 50% {:.0} ms, 90% {:.0} ms, \
         100% {:.0} ms; {:.0} bytes sent per node per block (pings and addr included)",
        median(p50),
        median(p90),
        median(p100),
        per_node_block
    );

    // Blocks every 10 s on average from three miners, each on its own Poisson schedule.
    let miners = [2 % n, n / 2, n - 1];
    let span = Duration::from_secs(10 * u64::from(args.stale_blocks));
    let stale_before = net.stale_blocks(&all).len();
    let mined = net.mine_poisson(&miners, Duration::from_secs(10), span, 0x5eed ^ n as u64);
    // One more block settles a last race: mined once node 0 has the greatest height any node
    // has (the last scheduled block may still be on its way), so it outweighs every tip.
    chaincore_tests::wait_for("node 0 at the greatest height", || {
        let heights: Vec<Value> = all
            .iter()
            .map(|&i| net.node(i).rpc("getblockcount", json!([])))
            .collect();
        let max = heights.iter().filter_map(Value::as_u64).max()?;
        (heights[0].as_u64() == Some(max)).then_some(())
    });
    let tip = net.mine(0, 1).pop().unwrap();
    net.wait_tip(&all, &tip, "all on one tip after the 10 s blocks");
    let stale = net.stale_blocks(&all).len() - stale_before;
    println!(
        "{n} nodes: blocks every 10 s for {} s from {} miners: {} mined, {stale} stale \
         ({:.1} %)",
        span.as_secs(),
        miners.len(),
        mined.len(),
        100.0 * stale as f64 / mined.len().max(1) as f64
    );

    // A half-and-half split, 3 blocks against 5, healed.
    let (b, a): (Vec<usize>, Vec<usize>) = all.iter().partition(|&&i| wiring.far.contains(&i));
    net.lab.partition(&a, &b).unwrap();
    let a_tip = net.mine(a[1], 3).pop().unwrap();
    let b_tip = net.mine(b[1], 5).pop().unwrap();
    net.wait_tip(&a, &a_tip, "side a on its tip");
    net.wait_tip(&b, &b_tip, "side b on its tip");
    let start = Instant::now();
    net.lab.heal(&a, &b).unwrap();
    let times = arrivals(&net, &all, &b_tip, start);
    println!(
        "{n} nodes: after a {}+{} split (3 vs 5 blocks) heals, all on the heavier tip in {:.0} ms",
        a.len(),
        b.len(),
        pct(&times, 100)
    );

    // A late joiner that knows only the seeds.
    let start = Instant::now();
    net.start_node(n);
    let times = arrivals(&net, &[n], &b_tip, start);
    let height = net.node(n).rpc("getblockcount", json!([]));
    println!(
        "{n} nodes: a late joiner synced {height} blocks in {:.1} s (start-up included)",
        times[0] / 1e3
    );
    let (forwarded, dropped) = net.lab.forwarded();
    if forwarded + dropped > 0 {
        println!("{n} nodes: the delay forwarders passed {forwarded} packets, dropped {dropped}");
    }
}

fn main() {
    chaincore_tests::use_release_binaries();
    let args = Args::parse();
    println!(
        "netlab: sizes {:?}, one-way delay {:?}, loss {} per packet and direction",
        args.sizes, args.delay, args.loss
    );
    for (k, &n) in args.sizes.iter().enumerate() {
        let started = Instant::now();
        run(n, 90 + k as u8, &args);
        println!(
            "{n} nodes: run took {:.0} s",
            started.elapsed().as_secs_f64()
        );
    }
}
