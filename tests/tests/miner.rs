//! End-to-end: real `chaincore-miner` processes mining on a real regtest `chaincore-node`.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use chaincore::{Address, Network};
use chaincore_tests::{wait_for, Miner, Node, TempDir};
use serde_json::json;

fn address(n: u8) -> String {
    Address::p2pkh([n; 20], Network::Regtest).to_string()
}

fn balance(node: &Node, a: &str) -> i64 {
    node.rpc("getaddressbalance", json!([a]))["balance"]
        .as_i64()
        .unwrap()
}

fn height(node: &Node) -> u64 {
    node.rpc("getblockcount", json!([])).as_u64().unwrap()
}

#[test]
fn mines_blocks_to_its_address_and_prints_a_summary() {
    let dir = TempDir::new("miner");
    let node = Node::start(&dir.0, &[]);
    let a = address(1);
    let mut miner = Miner::start(&node, &a, &["--threads", "1"]);
    wait_for("the chain to grow by 5 blocks", || {
        (height(&node) >= 5).then_some(())
    });
    assert!(balance(&node, &a) >= 5 * 50 * 100_000_000);
    // Every block's coinbase pays the miner's address.
    let tip = node.rpc("getbestblockhash", json!([]));
    let block = node.rpc("getblock", json!([tip, 2]));
    assert_eq!(
        block["tx"][0]["vout"][0]["scriptPubKey"]["address"],
        json!(a)
    );
    assert_eq!(miner.interrupt(), Some(0));
    let log = miner.log_text();
    assert!(log.contains("accepted"), "{log}");
    assert!(log.contains("summary:"), "{log}");
    // Without --kernel the miner timed the kernels at start and said which it took.
    assert!(
        log.contains("kernel speeds on one thread (MH/s): portable"),
        "{log}"
    );
    assert!(log.contains("; using "), "{log}");
    assert_eq!(node.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn benchmark_prints_a_table_row_for_the_forced_kernel() {
    // Only `portable` (sha2 is built optimised even in test builds): the hand-written kernels
    // are so slow unoptimised that one 2^18-nonce chunk takes seconds. Every kernel's figure
    // and the start-up pick are covered by the kernel unit tests and the mining test's log.
    let out = std::process::Command::new(chaincore_tests::binary("chaincore-miner"))
        .args([
            "--benchmark",
            "--seconds",
            "1",
            "--threads",
            "2",
            "--kernel",
            "portable",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let mut lines = text.lines();
    assert!(
        lines.next().unwrap().starts_with("kernel "),
        "a header first: {text}"
    );
    let fields: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(fields[0], "portable", "{text}");
    let one: f64 = fields[1].parse().unwrap();
    let two: f64 = fields[2].parse().unwrap();
    assert!(one > 0.0 && two > 0.0, "{text}");
    let scaling: f64 = fields[3].trim_end_matches('x').parse().unwrap();
    assert!(
        (scaling - two / one).abs() < 0.02,
        "scaling is 2 threads / 1 thread: {text}"
    );
    // A forced kernel is not raced against the others.
    assert!(!text.contains("start-up measurement picks"), "{text}");
}

#[test]
fn two_miners_on_one_node_both_find_blocks_without_duplicates() {
    let dir = TempDir::new("miners");
    let node = Node::start(&dir.0, &[]);
    let (a, b) = (address(2), address(3));
    let mut m1 = Miner::start(&node, &a, &["--threads", "1"]);
    let mut m2 = Miner::start(&node, &b, &["--threads", "1", "--cpu-affinity", "off"]);
    wait_for("both miners to find blocks", || {
        (balance(&node, &a) > 0 && balance(&node, &b) > 0).then_some(())
    });
    m1.interrupt();
    m2.interrupt();
    for log in [m1.log_text(), m2.log_text()] {
        assert!(!log.contains("duplicate"), "{log}");
        assert!(!log.contains("rejected:"), "{log}");
    }
}

#[test]
fn backs_off_while_the_node_is_away_then_resumes_on_the_new_tip() {
    let dir = TempDir::new("miner-restart");
    let mut node = Node::start(&dir.0, &[]);
    let a = address(4);
    let mut miner = Miner::start(&node, &a, &["--threads", "1"]);
    wait_for("some blocks", || (height(&node) >= 3).then_some(()));
    node.kill9();
    wait_for("two retries with growing delays", || {
        let log = miner.log_text();
        let delays: Vec<u64> = log
            .lines()
            .filter_map(|l| l.split("retrying in ").nth(1))
            .filter_map(|rest| rest.split(' ').next()?.parse().ok())
            .collect();
        (delays.len() >= 3 && delays[2] > delays[0]).then_some(())
    });
    node.restart();
    let before = height(&node);
    wait_for("mining to resume on the restarted node", || {
        (height(&node) >= before + 3).then_some(())
    });
    assert!(miner.log_text().contains("cookie changed"));
    assert_eq!(miner.interrupt(), Some(0));
    assert_eq!(node.rpc("verifychain", json!([4, 0])), json!(true));
}

#[test]
fn bad_address_or_credentials_exit_with_a_clear_error() {
    let dir = TempDir::new("miner-errors");
    let node = Node::start(&dir.0, &[]);
    let mut bad = Miner::start(&node, "not-an-address", &["--threads", "1"]);
    assert_ne!(bad.wait_exit(), Some(0));
    assert!(
        bad.log_text().contains("bad --address"),
        "{}",
        bad.log_text()
    );
    let main_address = Address::p2pkh([1; 20], Network::Main).to_string();
    let mut wrong_net = Miner::start(&node, &main_address, &["--threads", "1"]);
    assert_ne!(wrong_net.wait_exit(), Some(0));
    assert!(
        wrong_net.log_text().contains("main network"),
        "{}",
        wrong_net.log_text()
    );

    let mut refused = Miner::start(
        &node,
        &address(5),
        &[
            "--threads",
            "1",
            "--rpc-user",
            "u",
            "--rpc-password",
            "wrong",
        ],
    );
    assert_ne!(refused.wait_exit(), Some(0));
    assert!(
        refused.log_text().contains("refused the RPC credentials"),
        "{}",
        refused.log_text()
    );
}

/// The longest backoff delay in the miner's log so far, in ms.
fn longest_retry_delay(log: &str) -> u64 {
    log.lines()
        .filter_map(|l| l.split("retrying in ").nth(1))
        .filter_map(|rest| rest.split(' ').next()?.parse().ok())
        .max()
        .unwrap_or(0)
}

#[test]
fn sigint_and_sigterm_end_a_long_backoff_at_once_with_the_summary() {
    let dir = TempDir::new("miner-signals");
    let mut node = Node::start(&dir.0, &[]);
    let a = address(6);
    let mut int = Miner::start(&node, &a, &["--threads", "1"]);
    let mut term = Miner::start(&node, &a, &["--threads", "1", "--cpu-affinity", "off"]);
    wait_for("both miners to mine", || {
        (int.log_text().contains("hashrate") && term.log_text().contains("hashrate")).then_some(())
    });
    node.kill9();
    // A retry of 3 s or more: the miner is asleep in its backoff when the signal comes.
    wait_for("both miners in a backoff of 3 s or more", || {
        (longest_retry_delay(&int.log_text()) >= 3_000
            && longest_retry_delay(&term.log_text()) >= 3_000)
            .then_some(())
    });
    for (miner, signal) in [(&mut int, "INT"), (&mut term, "TERM")] {
        let (code, took) = miner.signal(signal);
        let log = miner.log_text();
        // Measured, not asserted (timers in tests are flaky on a busy machine): the target
        // is under 1 s.
        eprintln!("SIG{signal} during a backoff: the miner exited in {took:?}");
        assert_eq!(code, Some(0), "SIG{signal}: {log}");
        assert!(log.contains(&format!("SIG{signal} received")), "{log}");
        assert!(log.contains("summary:"), "{log}");
    }
}

#[test]
fn a_miner_started_before_its_node_waits_for_the_cookie() {
    let dir = TempDir::new("miner-cookie");
    let mut node = Node::start(&dir.0, &[]);
    node.kill9();
    let cookie = dir.0.join("regtest").join(".cookie");
    let _ = std::fs::remove_file(&cookie);
    let a = address(7);
    let mut miner = Miner::start(&node, &a, &["--threads", "1"]);
    wait_for("the miner to say it waits for the node", || {
        miner
            .log_text()
            .contains("waiting for the node")
            .then_some(())
    });
    node.restart();
    wait_for("blocks from the miner", || {
        (balance(&node, &a) > 0).then_some(())
    });
    assert_eq!(miner.interrupt(), Some(0));
}
