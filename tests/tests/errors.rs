//! End-to-end: the mistakes a new user makes get one clear line from the real node process,
//! with `RUST_BACKTRACE=1` set (as many Rust users have it, and as CI runs): a port in use, a
//! data directory another node holds, a data directory the user may not write. None prints a
//! backtrace; those are for panics.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use chaincore_tests::{binary, free_port, wait_for, Node, TempDir};

/// Runs a regtest node on `datadir` with these ports and `RUST_BACKTRACE=1` until it exits
/// (it must fail at start); returns what it printed.
fn node_that_fails(datadir: &Path, rpc_port: u16, p2p_port: u16, as_nobody: bool) -> Output {
    let mut cmd = Command::new(binary("chaincore-node"));
    cmd.args(["--network", "regtest", "--bind", "127.0.0.1"])
        .arg("--datadir")
        .arg(datadir)
        .args(["--rpcport", &rpc_port.to_string()])
        .args(["--port", &p2p_port.to_string()])
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if as_nobody {
        use std::os::unix::process::CommandExt;
        cmd.uid(65_534).gid(65_534);
    }
    let mut child = cmd.spawn().expect("the node starts");
    wait_for("the node to give up", || child.try_wait().unwrap());
    child.wait_with_output().unwrap()
}

/// The error line, checked for what every user error shares: exit status 1, one `error:`
/// line, no backtrace.
fn error_text(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        !stderr.to_lowercase().contains("backtrace"),
        "a user error prints no backtrace: {stderr}"
    );
    assert_eq!(stderr.matches("error:").count(), 1, "{stderr}");
    stderr
}

#[test]
fn a_busy_rpc_port_names_the_port_and_rpcport() {
    let dir = TempDir::new("errors-rpc-port");
    let port = free_port();
    let _v4 = TcpListener::bind(("127.0.0.1", port)).unwrap();
    // Where the machine has IPv6 loopback, take the port there too, as another node would.
    let _v6 = TcpListener::bind(("::1", port));
    let out = node_that_fails(&dir.0, port, free_port(), false);
    let text = error_text(&out);
    assert!(
        text.contains(&port.to_string()) && text.contains("in use") && text.contains("--rpcport"),
        "{text}"
    );
}

#[test]
fn a_busy_p2p_port_names_port() {
    let dir = TempDir::new("errors-p2p-port");
    let port = free_port();
    let _taken = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let out = node_that_fails(&dir.0, free_port(), port, false);
    let text = error_text(&out);
    assert!(
        text.contains(&format!("127.0.0.1:{port}"))
            && text.contains("in use")
            && text.contains("--port"),
        "{text}"
    );
}

#[test]
fn a_second_node_on_one_datadir_is_told_once() {
    let dir = TempDir::new("errors-datadir");
    let first = Node::start(&dir.0, &[]);
    let out = node_that_fails(&dir.0, free_port(), free_port(), false);
    let text = error_text(&out);
    let expected = format!(
        "another chaincore-node is using {}",
        dir.0.join("regtest").display()
    );
    assert_eq!(text.matches(&expected).count(), 1, "{text}");
    assert!(!text.contains("Database already open"), "{text}");
    // The first node is untouched.
    assert!(first.call("getblockcount", serde_json::json!([])).is_ok());
}

#[test]
fn a_datadir_the_user_may_not_write_says_permission_denied() {
    let dir = TempDir::new("errors-permission");
    let locked = dir.0.join("locked");
    std::fs::create_dir(&locked).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o555)).unwrap();
    // Root may write anywhere: as root (CI), run the node as `nobody`, for whom the
    // directory really is read-only. The binary and the temp dir are readable by anyone.
    let root = std::fs::metadata("/proc/self").map(|m| {
        use std::os::unix::fs::MetadataExt;
        m.uid() == 0
    });
    let datadir = locked.join("data");
    let out = node_that_fails(&datadir, free_port(), free_port(), root.unwrap_or(false));
    let text = error_text(&out);
    assert!(
        text.contains("Permission denied") && text.contains(&datadir.display().to_string()),
        "{text}"
    );
}
