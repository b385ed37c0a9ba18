//! `invalidateblock` and `reconsiderblock` of 500, 1,000 and 2,000 blocks on a release node:
//! `cargo bench -p chaincore-tests --bench invalidate`. Both disconnect or connect every
//! affected block with its undo data, so the time per block should stay flat as the count
//! grows (it grew with the index size times the depth before).

use std::time::Instant;

use chaincore_tests::builder::Builder;
use chaincore_tests::{Node, TempDir};
use serde_json::json;

fn main() {
    chaincore_tests::use_release_binaries();
    let dir = TempDir::new("invalidate-bench");
    let node = Node::start(&dir.0, &["--listen", "false"]);
    let mut builder = Builder::new();
    let mut parent = chaincore::Network::Regtest.genesis_hash();
    let mut hashes = Vec::new();
    for _ in 0..2_100 {
        let block = builder.build(&parent);
        parent = block.block_hash();
        hashes.push(parent);
        let hex = hex::encode(chaincore::encode::serialize(&block));
        assert_eq!(
            node.rpc("submitblock", json!([hex])),
            serde_json::Value::Null
        );
    }
    println!("2,100 blocks (one spend each from height 101), release node");
    for n in [500usize, 1_000, 2_000] {
        let target = hashes[hashes.len() - n].to_string();
        let t = Instant::now();
        node.rpc("invalidateblock", json!([target]));
        let inv = t.elapsed();
        assert_eq!(
            node.rpc("getblockcount", json!([])),
            json!(hashes.len() - n)
        );
        let t = Instant::now();
        node.rpc("reconsiderblock", json!([target]));
        let rec = t.elapsed();
        assert_eq!(node.rpc("getblockcount", json!([])), json!(hashes.len()));
        println!(
            "  {n:>5} blocks: invalidate {:>7.1} ms ({:.2} ms/block), reconsider {:>7.1} ms ({:.2} ms/block)",
            inv.as_secs_f64() * 1e3,
            inv.as_secs_f64() * 1e3 / n as f64,
            rec.as_secs_f64() * 1e3,
            rec.as_secs_f64() * 1e3 / n as f64
        );
    }
}
