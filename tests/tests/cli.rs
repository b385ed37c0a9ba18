//! `chaincore-cli` against a real node: the cookie found from `--network`/`--datadir`,
//! `-rpcwait` waiting for a node started after it, arguments read as JSON or strings, results
//! printed as bitcoin-cli prints them, and Core's error codes with exit status 1.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output, Stdio};

use chaincore_tests::{binary, free_port, wait_for, Node, TempDir};

/// A process killed when dropped (a failed assertion must not leave it waiting).
struct Killed(Option<std::process::Child>);

impl Drop for Killed {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the cli against `node` with `args` after the connection options.
fn cli(node: &Node, args: &[&str]) -> Output {
    let port = node.rpc_port.to_string();
    Command::new(binary("chaincore-cli"))
        .args(["-regtest", "-datadir"])
        .arg(&node.datadir)
        .args(["-rpcport", &port])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).trim_end().to_string()
}

#[test]
fn calls_print_results_and_errors_as_bitcoin_cli_does() {
    let dir = TempDir::new("cli");
    let node = Node::start(&dir.sub("a"), &[]);
    let count = cli(&node, &["getblockcount"]);
    assert!(count.status.success(), "{count:?}");
    assert_eq!(stdout(&count), "0");

    // A number argument, and a string printed bare.
    let hash = cli(&node, &["getblockhash", "0"]);
    assert!(hash.status.success(), "{hash:?}");
    let hash = stdout(&hash);
    assert_eq!(hash.len(), 64);
    // A string argument that is not JSON, and an object printed as indented JSON.
    let header = cli(&node, &["getblockheader", &hash]);
    let header: serde_json::Value = serde_json::from_slice(&header.stdout).unwrap();
    assert_eq!(header["height"], 0);
    assert!(stdout(&cli(&node, &["getblockheader", &hash])).contains("\n  \"height\": 0"));
    // A JSON argument, and -named.
    let address = "r6Ku1CCtg8Q3AMdYBnm1WehvnEMNCSRwpg";
    let balance = cli(
        &node,
        &[
            "getaddressbalance",
            &format!("{{\"addresses\":[\"{address}\"]}}"),
        ],
    );
    assert!(balance.status.success(), "{balance:?}");
    let named = cli(
        &node,
        &[
            "-named",
            "getblock",
            &format!("blockhash={hash}"),
            "verbosity=0",
        ],
    );
    assert!(named.status.success(), "{named:?}");
    assert!(stdout(&named).starts_with("01000000"), "{named:?}");
    // null prints nothing.
    let ping = cli(&node, &["ping"]);
    assert!(ping.status.success());
    assert_eq!(stdout(&ping), "");

    // The port from the data directory's chaincore.conf, as the node, miner and wallet read it.
    std::fs::write(
        node.datadir.join("chaincore.conf"),
        format!("[regtest]\nrpcport = {}\n", node.rpc_port),
    )
    .unwrap();
    let from_conf = Command::new(binary("chaincore-cli"))
        .args(["-regtest", "-datadir"])
        .arg(&node.datadir)
        .arg("getblockcount")
        .output()
        .unwrap();
    assert!(from_conf.status.success(), "{from_conf:?}");
    assert_eq!(stdout(&from_conf), "0");

    // Errors: Core's code and message on stderr, exit status 1.
    let unknown = cli(&node, &["nosuchmethod"]);
    assert_eq!(unknown.status.code(), Some(1));
    let err = String::from_utf8_lossy(&unknown.stderr);
    assert!(
        err.starts_with("error code: -32601\nerror message:\n"),
        "{err}"
    );
    let bad = cli(&node, &["getblockhash", "ten"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("error code: -3"));
    // help <method> from the node.
    let help = cli(&node, &["help", "getblock"]);
    assert!(
        stdout(&help).starts_with("getblock \"blockhash\" ( verbosity )"),
        "{help:?}"
    );
}

#[test]
fn rpcwait_waits_for_a_node_started_after_it() {
    let dir = TempDir::new("cli-wait");
    let datadir = dir.sub("late");
    let port = free_port();
    let mut waiting = Killed(Some(
        Command::new(binary("chaincore-cli"))
            .args(["-regtest", "-rpcwait=120", "-datadir"])
            .arg(&datadir)
            .args(["-rpcport", &port.to_string(), "getblockcount"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    // No node yet: without -rpcwait the call fails at once.
    let now = Command::new(binary("chaincore-cli"))
        .args(["-regtest", "-datadir"])
        .arg(&datadir)
        .args(["-rpcport", &port.to_string(), "getblockcount"])
        .output()
        .unwrap();
    assert_eq!(now.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&now.stderr).contains("error:"));
    let node = Node::start_with_rpc_port(&datadir, port, &[]);
    let out = waiting.0.take().unwrap().wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(stdout(&out), "0");
    // Refused credentials end the wait at once, with status 1.
    let mut refused = Killed(Some(
        Command::new(binary("chaincore-cli"))
            .args([
                "-regtest",
                "-rpcwait",
                "-rpcuser=nobody",
                "-rpcpassword=wrong",
            ])
            .args(["-rpcport", &port.to_string(), "getblockcount"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let status = wait_for("the refused cli to exit", || {
        refused.0.as_mut().unwrap().try_wait().unwrap()
    });
    assert_eq!(status.code(), Some(1));
    let out = refused.0.take().unwrap().wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("refused the credentials"));
    drop(node);
}
