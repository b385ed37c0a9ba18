//! A heavier fork deeper than the real pending-header cap (20,000): `cargo bench -p
//! chaincore-tests --bench deep_fork [-- LIGHT HEAVY]` (default 25,500 and 25,600 blocks
//! after a common first block). Two release nodes are loaded with the two branches over
//! `submitblock`, then the lighter one is pointed at the heavier; prints how long it takes to
//! follow it.

use std::time::Instant;

use chaincore_tests::builder::Builder;
use chaincore_tests::{Node, TempDir};
use serde_json::{json, Value};

fn main() {
    let mut args = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .map(|a| a.parse::<usize>());
    let light_n = match args.next() {
        Some(Ok(n)) => n,
        Some(Err(e)) => return eprintln!("LIGHT must be a number: {e}"),
        None => 25_500,
    };
    let heavy_n = match args.next() {
        Some(Ok(n)) if n > light_n => n,
        Some(Ok(_)) => return eprintln!("HEAVY must be more than LIGHT"),
        Some(Err(e)) => return eprintln!("HEAVY must be a number: {e}"),
        None => light_n + 100,
    };
    chaincore_tests::use_release_binaries();
    let dir = TempDir::new("deep-fork-bench");
    let light = Node::start(&dir.sub("light"), &[]);
    let heavy = Node::start(&dir.sub("heavy"), &[]);
    let mut b = Builder::new();
    let common = b.build(&chaincore::Network::Regtest.genesis_hash());
    let mut branch = |n: usize| {
        let mut parent = common.block_hash();
        (0..n)
            .map(|_| {
                let block = b.build(&parent);
                parent = block.block_hash();
                hex::encode(chaincore::encode::serialize(&block))
            })
            .collect::<Vec<_>>()
    };
    let light_blocks = branch(light_n);
    let heavy_blocks = branch(heavy_n);
    let common_hex = hex::encode(chaincore::encode::serialize(&common));
    let loading = Instant::now();
    std::thread::scope(|s| {
        for (node, blocks) in [(&light, &light_blocks), (&heavy, &heavy_blocks)] {
            let common_hex = &common_hex;
            s.spawn(move || {
                node.rpc("submitblock", json!([common_hex]));
                for raw in blocks {
                    assert_eq!(node.rpc("submitblock", json!([raw])), Value::Null);
                }
            });
        }
    });
    println!(
        "loaded {light_n} and {heavy_n} blocks after a common one in {:.1} s",
        loading.elapsed().as_secs_f64()
    );
    let following = Instant::now();
    light.rpc("addnode", json!([heavy.p2p_addr(), "add"]));
    let target = heavy.rpc("getbestblockhash", json!([]));
    // Longer than the tests' deadline: tens of thousands of blocks cross over.
    while light.rpc("getbestblockhash", json!([])) != target {
        if following.elapsed() > std::time::Duration::from_secs(1_800) {
            println!(
                "NOT followed after 30 minutes: light node at height {}",
                light.rpc("getblockcount", json!([]))
            );
            std::process::exit(1);
        }
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    println!(
        "a fork {light_n} deep (cap 20,000 headers) followed in {:.1} s: {heavy_n} blocks fetched and connected, {light_n} disconnected",
        following.elapsed().as_secs_f64()
    );
}
