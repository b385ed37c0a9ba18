//! End-to-end: `chaincore-node monitor --once --json` over real nodes, one of them cut off and
//! mining alone (a fork), one far behind, one not running.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::process::Command;

use chaincore_tests::{binary, free_port, wait_for, Node, TempDir};
use serde_json::{json, Value};

const PAYOUT: &str = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";

/// Another payout, so c's blocks differ from a's (same parent, payout and second would give
/// the same block).
fn other_payout() -> String {
    chaincore::Address::p2pkh([0x11; 20], chaincore::Network::Regtest).to_string()
}

/// Runs `monitor --once --json` over `nodes` (cookie credentials) plus `extra` URLs.
fn monitor(nodes: &[&Node], extra: &[String]) -> Value {
    let mut cmd = Command::new(binary("chaincore-node"));
    cmd.arg("monitor");
    for n in nodes {
        cmd.args(["--rpc", &n.url()]);
    }
    for url in extra {
        cmd.args(["--rpc", url]);
    }
    // One cookie per URL, in order; the closed port's URL reuses the last node's.
    for n in nodes {
        cmd.arg("--rpccookiefile")
            .arg(n.datadir.join("regtest").join(".cookie"));
    }
    for _ in extra {
        cmd.arg("--rpccookiefile")
            .arg(nodes[0].datadir.join("regtest").join(".cookie"));
    }
    let out = cmd.args(["--once", "--json"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn statuses(report: &Value) -> Vec<String> {
    report["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn monitor_reports_a_fork_a_lagging_node_and_an_unreachable_one() {
    let dir = TempDir::new("monitor");
    let a = Node::start(&dir.sub("a"), &[]);
    let b = Node::start(&dir.sub("b"), &["--connect", &a.p2p_addr()]);
    // c is the devnet node cut off from the others: no peers, mining alone.
    let c = Node::start(&dir.sub("c"), &[]);
    wait_for("a and b to connect", || {
        (b.rpc("getconnectioncount", json!([])).as_u64()? >= 1).then_some(())
    });
    a.rpc("generatetoaddress", json!([2, PAYOUT]));
    c.rpc("generatetoaddress", json!([3, other_payout()]));
    let a_tip = a.rpc("getbestblockhash", json!([]));
    wait_for("b to follow a", || {
        (b.rpc("getbestblockhash", json!([])) == a_tip).then_some(())
    });
    let closed = format!("http://127.0.0.1:{}", free_port());

    let report = monitor(&[&a, &b, &c], std::slice::from_ref(&closed));
    assert_eq!(report["fork"], json!(true), "{report:#}");
    assert_eq!(report["unreachable"], json!(1), "{report:#}");
    // c has the most work (3 blocks against 2): a and b are on the other branch.
    assert_eq!(
        statuses(&report),
        ["fork", "fork", "ok", "unreachable"],
        "{report:#}"
    );
    assert_eq!(report["best_height"], json!(3));
    assert_eq!(report["best_tip"], c.rpc("getbestblockhash", json!([])));
    let nodes = report["nodes"].as_array().unwrap();
    assert_eq!(nodes[0]["height"], json!(2));
    assert_eq!(nodes[0]["tip"], a_tip);
    assert_eq!(nodes[0]["peers_in"], json!(1));
    assert_eq!(nodes[1]["peers_out"], json!(1));
    assert_eq!(nodes[2]["peers_in"].as_u64(), Some(0));
    assert_eq!(nodes[3]["url"], json!(closed));
    assert!(nodes[3]["error"].as_str().is_some(), "{report:#}");
    assert!(nodes[3].get("height").is_none(), "{report:#}");

    // Heal: a learns c's heavier chain, b follows; d is a fresh node at genesis.
    a.rpc("addnode", json!([c.p2p_addr(), "onetry"]));
    let c_tip = c.rpc("getbestblockhash", json!([]));
    wait_for("a and b to reorg onto c's chain", || {
        (a.rpc("getbestblockhash", json!([])) == c_tip
            && b.rpc("getbestblockhash", json!([])) == c_tip)
            .then_some(())
    });
    let d = Node::start(&dir.sub("d"), &[]);
    let report = monitor(&[&a, &b, &c, &d], &[]);
    assert_eq!(report["fork"], json!(false), "{report:#}");
    assert_eq!(
        statuses(&report),
        ["ok", "ok", "ok", "behind"],
        "{report:#}"
    );
    assert_eq!(report["nodes"][3]["behind_by"], json!(3), "{report:#}");
}

#[test]
fn monitor_refuses_bad_arguments_with_the_fix() {
    let run = |args: &[&str]| {
        Command::new(binary("chaincore-node"))
            .arg("monitor")
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["--rpc", "http://127.0.0.1:1", "--once"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--rpccookiefile"), "{err}");
    let out = run(&["--rpc", "ftp://x:y@127.0.0.1:1", "--once"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("http://"));
    let out = run(&["--rpc", "http://x:y@127.0.0.1:1", "--interval", "0"]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("0.1 to 86400"));
}
