//! Dashboard figures (issue #18) on a release node with 10,000 blocks:
//! `cargo bench -p chaincore-tests --bench dashboard` (`DASHBOARD_BENCH_BLOCKS` to change the
//! count; needs Debian's `chromium`).
//!
//! Prints: the server time of the dashboard (`GET /`, cold then 100 warm), of its live part
//! (`GET /part/status`, what a refresh fetches) and of the explorer pages; then, in headless
//! Chromium, first contentful paint and load of the dashboard (10 loads), and the time from a
//! new block's submission to the dashboard showing it (event, fetch and swap; 10 blocks).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // bench code

#[path = "../tests/browser/mod.rs"]
mod browser;

use std::time::{Duration, Instant};

use chaincore::Network;
use chaincore_tests::builder::Builder;
use chaincore_tests::latency::{summary, timed};
use chaincore_tests::{use_release_binaries, wait_for, Node, TempDir};
use serde_json::{json, Value};

fn main() {
    use_release_binaries();
    let blocks: usize = std::env::var("DASHBOARD_BENCH_BLOCKS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let dir = TempDir::new("dashboard-bench");
    let node = Node::start(&dir.sub("node"), &[]);
    let mut builder = Builder::new();
    let start = Instant::now();
    let chain = builder.submit_chain(&node, &Network::Regtest.genesis_hash(), blocks);
    println!(
        "chain: {blocks} blocks built and submitted in {:.1} s",
        start.elapsed().as_secs_f64()
    );
    let mut tip = *chain.last().unwrap();

    println!(
        "GET / cold (reads 120 blocks)      {:.3} ms",
        timed(&node, "/").as_secs_f64() * 1e3
    );
    summary("GET /", (0..100).map(|_| timed(&node, "/")).collect());
    summary(
        "GET /part/status (a refresh)",
        (0..100).map(|_| timed(&node, "/part/status")).collect(),
    );
    summary(
        "GET /?n=2016 (charts of 2016 blocks)",
        (0..20).map(|_| timed(&node, "/?n=2016")).collect(),
    );
    summary(
        "GET /blocks",
        (0..100).map(|_| timed(&node, "/blocks")).collect(),
    );
    let mid = blocks / 2;
    summary(
        "GET /block/<height>",
        (0..100)
            .map(|_| timed(&node, &format!("/block/{mid}")))
            .collect(),
    );
    let spend = builder.transactions(&tip)[1].compute_txid();
    summary(
        "GET /tx/<txid>",
        (0..100)
            .map(|_| timed(&node, &format!("/tx/{spend}")))
            .collect(),
    );

    let mut chromium = browser::Browser::start(&dir.sub("chromium"));
    let url = format!("http://127.0.0.1:{}/", node.rpc_port);
    let (mut paint, mut load) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        chromium.open(&url);
        let t: Value = wait_for("the load timing", || {
            let v = chromium.eval(
                "(() => { const p = performance.getEntriesByName('first-contentful-paint')[0];
                   const n = performance.getEntriesByType('navigation')[0];
                   return n && n.loadEventEnd > 0
                     ? { fcp: p ? p.startTime : null, load: n.loadEventEnd } : null; })()",
            );
            (!v.is_null()).then_some(v)
        });
        if let Some(fcp) = t["fcp"].as_f64() {
            paint.push(Duration::from_secs_f64(fcp / 1e3));
        }
        load.push(Duration::from_secs_f64(t["load"].as_f64().unwrap() / 1e3));
    }
    if paint.is_empty() {
        println!("Chromium first contentful paint   not reported by this Chromium");
    } else {
        summary("Chromium first contentful paint", paint);
    }
    summary("Chromium load event", load);
    chromium.assert_no_errors("the dashboard");

    wait_for("the event stream", || {
        (chromium.eval("document.documentElement.dataset.live") == json!("connected")).then_some(())
    });
    let mut refresh = Vec::new();
    let mut fetch = Vec::new();
    for _ in 0..10 {
        let block = builder.build(&tip);
        tip = block.block_hash();
        let height = builder.height(&tip).to_string();
        let raw = hex::encode(chaincore::encode::serialize(&block));
        let submitted = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        assert_eq!(node.rpc("submitblock", json!([raw])), Value::Null);
        wait_for("the dashboard to show the block", || {
            (chromium.text("height") == height).then_some(())
        });
        // The page notes when it swapped the new part in (same clock, milliseconds).
        let at = chromium.eval("Number(document.documentElement.dataset.refreshedAt)");
        let at = Duration::from_millis(at.as_f64().unwrap() as u64);
        refresh.push(at.saturating_sub(submitted));
        let ms = chromium.eval("Number(document.documentElement.dataset.refreshMs)");
        fetch.push(Duration::from_secs_f64(ms.as_f64().unwrap() / 1e3));
    }
    summary("new block to dashboard (wall)", refresh);
    summary("  of which fetch and swap (page)", fetch);
    chromium.assert_no_errors("the dashboard after refreshes");
}
