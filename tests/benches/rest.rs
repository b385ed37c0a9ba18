//! REST, metrics and export figures (issue #17) on a release node with 10,000 blocks:
//! `cargo bench -p chaincore-tests --bench rest` (`REST_BENCH_BLOCKS` to change the count).
//!
//! Prints: `/metrics` scrape time (200 scrapes, p50/p99/max), REST block fetch latency for
//! random heights (`.json` with decoded transactions, `.bin`; 500 each, p50/p99/max), and
//! export throughput in blocks/s for the whole chain over REST (`/rest/blocks/…jsonl`, `.csv`)
//! and from the stopped node's data directory (`chaincore-node export`, JSONL and CSV).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // bench code

use std::process::Command;
use std::time::Instant;

use chaincore_tests::latency::{summary, timed};
use chaincore_tests::{binary, use_release_binaries, Node, TempDir};
use serde_json::json;

const ELSEWHERE: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";

fn main() {
    use_release_binaries();
    let blocks: u32 = std::env::var("REST_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = TempDir::new("rest-bench");
    let mut node = Node::start(&dir.sub("a"), &[]);
    let start = Instant::now();
    let mut left = blocks;
    while left > 0 {
        // Small calls: each must answer within the client's deadline on a busy machine.
        let n = left.min(200);
        node.rpc("generatetoaddress", json!([n, ELSEWHERE]));
        left -= n;
    }
    println!(
        "chain: {blocks} blocks mined in {:.1} s",
        start.elapsed().as_secs_f64()
    );

    summary(
        "GET /metrics",
        (0..200).map(|_| timed(&node, "/metrics")).collect(),
    );
    // A fixed pseudo-random walk over the heights (no rand dependency needed).
    let heights: Vec<u32> = (0..500u64)
        .map(|i| ((i * 2_654_435_761) % u64::from(blocks)) as u32 + 1)
        .collect();
    let hashes: Vec<String> = heights
        .iter()
        .map(|h| {
            node.rpc("getblockhash", json!([h]))
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for ext in ["json", "bin"] {
        summary(
            &format!("GET /rest/block/<hash>.{ext}"),
            hashes
                .iter()
                .map(|h| timed(&node, &format!("/rest/block/{h}.{ext}")))
                .collect(),
        );
    }
    for ext in ["jsonl", "csv"] {
        let took = timed(&node, &format!("/rest/blocks/0/{blocks}.{ext}"));
        println!(
            "REST export .{ext:<5}          {} blocks in {:.2} s: {:.0} blocks/s",
            blocks + 1,
            took.as_secs_f64(),
            f64::from(blocks + 1) / took.as_secs_f64()
        );
    }
    assert!(node.stop().success());
    for format in ["jsonl", "csv"] {
        let out = dir.0.join(format!("export.{format}"));
        let start = Instant::now();
        let run = Command::new(binary("chaincore-node"))
            .args(["--network", "regtest", "--datadir"])
            .arg(&node.datadir)
            .args(["export", "--from", "0", "--to", &blocks.to_string()])
            .args(["--format", format, "--output"])
            .arg(&out)
            .output()
            .unwrap();
        let took = start.elapsed();
        assert!(
            run.status.success(),
            "{}",
            String::from_utf8_lossy(&run.stderr)
        );
        println!(
            "chaincore-node export {format:<5}  {} blocks in {:.2} s: {:.0} blocks/s (open included)",
            blocks + 1,
            took.as_secs_f64(),
            f64::from(blocks + 1) / took.as_secs_f64()
        );
    }
}
