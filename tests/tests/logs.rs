//! What the node's log says about the chain, read from `<datadir>/<network>/debug.log` of a real
//! node: a line per new tip and per reorg, no terminal escape codes, JSON lines on request, and
//! no file with `--nodebuglogfile`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chaincore::Network;
use chaincore_tests::builder::Builder;
use chaincore_tests::{wait_for, Node, TempDir};
use serde_json::Value;

fn debug_log(node: &Node) -> String {
    std::fs::read_to_string(node.datadir.join("regtest").join("debug.log")).unwrap_or_default()
}

#[test]
fn debug_log_tells_new_tips_and_reorgs() {
    let dir = TempDir::new("logs");
    let node = Node::start(&dir.sub("a"), &[]);
    let genesis = Network::Regtest.genesis_hash();
    let mut builder = Builder::new();
    let chain = builder.submit_chain(&node, &genesis, 5);
    // A heavier branch off height 2: blocks 3..5 are disconnected.
    let mut fork = Vec::new();
    let mut parent = chain[1];
    for _ in 0..4 {
        let block = builder.build(&parent);
        parent = block.block_hash();
        fork.push(parent);
        let raw = hex::encode(chaincore::encode::serialize(&block));
        node.rpc("submitblock", serde_json::json!([raw]));
    }
    let new_tip = *fork.last().unwrap();
    wait_for("the reorg", || {
        (node.rpc("getbestblockhash", serde_json::json!([])) == new_tip.to_string()).then_some(())
    });
    let log = wait_for("the reorg line in debug.log", || {
        let log = debug_log(&node);
        log.contains("reorg").then_some(log)
    });
    assert!(!log.contains('\u{1b}'), "escape codes in debug.log:\n{log}");
    // Its terminal output went to a file here, not a terminal: no colours there either.
    let output = node.log_text();
    assert!(
        output.contains("new tip") && !output.contains('\u{1b}'),
        "{output}"
    );
    let tips: Vec<&str> = log.lines().filter(|l| l.contains("new tip")).collect();
    assert_eq!(tips.len(), 5 + 4, "{log}");
    let last = tips.last().unwrap();
    for field in [
        "height=6".to_string(),
        format!("hash={new_tip}"),
        "txs=1".into(),
        "size=".into(),
        "since_parent=1".into(),
        "chain_txs=7".into(),
        "progress=".into(),
    ] {
        assert!(last.contains(&field), "{field} missing in: {last}");
    }
    let reorg = log.lines().find(|l| l.contains("reorg")).unwrap();
    for field in [
        "depth=3".to_string(),
        format!("old_tip={}", chain[4]),
        "old_height=5".into(),
        format!("new_tip={new_tip}"),
        "new_height=6".into(),
        "3 blocks disconnected".into(),
    ] {
        assert!(reorg.contains(&field), "{field} missing in: {reorg}");
    }
}

#[test]
fn json_lines_on_request_and_no_file_when_asked() {
    let dir = TempDir::new("logs-json");
    let node = Node::start(&dir.sub("json"), &["--log-format", "json"]);
    Builder::new().submit_chain(&node, &Network::Regtest.genesis_hash(), 1);
    let line = wait_for("a new-tip line", || {
        debug_log(&node)
            .lines()
            .find(|l| l.contains("new tip"))
            .map(str::to_owned)
    });
    let v: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["fields"]["message"], "new tip");
    assert_eq!(v["fields"]["height"], 1);

    let quiet = Node::start(&dir.sub("quiet"), &["--nodebuglogfile"]);
    Builder::new().submit_chain(&quiet, &Network::Regtest.genesis_hash(), 1);
    assert!(quiet.log_text().contains("new tip"));
    assert!(!quiet.datadir.join("regtest").join("debug.log").exists());
}
