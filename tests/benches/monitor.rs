//! CPU cost of `chaincore-node monitor` watching 10 release nodes (issue #18):
//! `cargo bench -p chaincore-tests --bench monitor [-- SECONDS]` (default 60 per phase).
//!
//! Ten nodes in a line share a 100-block chain. Three phases of SECONDS each: the nodes alone
//! (the baseline), then `monitor --json` polling all ten every 2 s, then every 0.5 s, its output
//! read and thrown away. Per phase: the monitor's CPU (per cent of one core and per poll) and
//! what the ten nodes used above the baseline to answer it.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)] // bench code

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chaincore_tests::{binary, process_cpu_seconds, wait_for, Node, TempDir};
use serde_json::json;

const NODES: usize = 10;
const PAYOUT: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";

fn nodes_cpu(nodes: &[Node]) -> f64 {
    nodes.iter().map(Node::cpu_seconds).sum()
}

fn main() {
    chaincore_tests::use_release_binaries();
    let seconds: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(60);
    let phase = Duration::from_secs(seconds);
    let dir = TempDir::new("bench-monitor");
    let mut nodes: Vec<Node> = Vec::new();
    for i in 0..NODES {
        let sub = dir.sub(&format!("n{i}"));
        let node = match nodes.last() {
            Some(prev) => Node::start(&sub, &["--connect", &prev.p2p_addr()]),
            None => Node::start(&sub, &[]),
        };
        nodes.push(node);
    }
    nodes[0].rpc("generatetoaddress", json!([100, PAYOUT]));
    let tip = nodes[0].rpc("getbestblockhash", json!([]));
    wait_for("every node on the tip", || {
        nodes
            .iter()
            .all(|n| n.rpc("getbestblockhash", json!([])) == tip)
            .then_some(())
    });

    let before = nodes_cpu(&nodes);
    std::thread::sleep(phase);
    let baseline = (nodes_cpu(&nodes) - before) / phase.as_secs_f64();
    println!(
        "{NODES} idle nodes: {:.2}% of one core in all ({seconds} s)",
        baseline * 100.0
    );

    for interval in ["2", "0.5"] {
        let mut cmd = Command::new(binary("chaincore-node"));
        cmd.arg("monitor");
        for n in &nodes {
            cmd.args(["--rpc", &n.url()])
                .arg("--rpccookiefile")
                .arg(n.datadir.join("regtest").join(".cookie"));
        }
        let mut child = cmd
            .args(["--json", "--interval", interval])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // The first poll, then the measured phase.
        let first = lines.next().unwrap().unwrap();
        assert!(first.contains("\"fork\":false"), "{first}");
        let start = Instant::now();
        let monitor_before = process_cpu_seconds(child.id());
        let nodes_before = nodes_cpu(&nodes);
        let mut polls = 0u32;
        while start.elapsed() < phase {
            let line = lines.next().unwrap().unwrap();
            assert!(line.contains("\"unreachable\":0"), "{line}");
            polls += 1;
        }
        let wall = start.elapsed().as_secs_f64();
        let monitor = process_cpu_seconds(child.id()) - monitor_before;
        let served = (nodes_cpu(&nodes) - nodes_before) / wall - baseline;
        let _ = child.kill();
        let _ = child.wait();
        println!(
            "monitor every {interval} s over {NODES} nodes: {polls} polls in {wall:.0} s; \
             monitor {:.2}% of one core ({:.2} ms CPU per poll); nodes +{:.2}% of one core \
             in all to answer",
            monitor / wall * 100.0,
            monitor * 1000.0 / f64::from(polls.max(1)),
            served * 100.0
        );
    }
}
