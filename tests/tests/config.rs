//! End-to-end: `chaincore.conf` in the data directory, read by real `chaincore-node`,
//! `chaincore-miner` and `chaincore-wallet` processes, on free loopback ports.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is a failed test

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use base64::Engine;
use chaincore::config::{layer, ConfigFile, NodeSettings};
use chaincore::Network;
use chaincore_tests::{binary, free_port, wait_for, TempDir, DEADLINE};
use serde_json::{json, Value};

/// A process this test started, its output in `log`, killed when dropped.
struct Process {
    child: Child,
    log: PathBuf,
}

impl Process {
    /// Starts `bin` with `args` and `envs`, and none of the `CHAINCORE_*` variables of the
    /// test's own environment.
    fn start(bin: &str, args: &[&str], envs: &[(&str, String)], log: PathBuf) -> Process {
        let file = std::fs::File::create(&log).unwrap();
        let child = command(bin, args, envs)
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("process starts");
        Process { child, log }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Panics with the log if the process has exited.
    fn check_running(&mut self) {
        if let Some(status) = self.child.try_wait().unwrap() {
            panic!("process exited with {status}:\n{}", self.log_text());
        }
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn command(bin: &str, args: &[&str], envs: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(binary(bin));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("CHAINCORE_") {
            cmd.env_remove(name);
        }
    }
    cmd.args(args)
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    cmd
}

/// Runs `bin` to the end (it must exit by itself).
fn run(bin: &str, args: &[&str]) -> Output {
    command(bin, args, &[]).output().expect("process runs")
}

/// Posts a JSON-RPC call to `127.0.0.1:port` as `credentials`: the HTTP status and the body.
fn call(port: u16, credentials: &str, method: &str) -> Result<(u16, Value), String> {
    let b64 = base64::engine::general_purpose::STANDARD.encode(credentials);
    let body = json!({"method": method, "params": [], "id": 1}).to_string();
    let answer = ureq::post(&format!("http://127.0.0.1:{port}/"))
        .timeout(DEADLINE)
        .set("Authorization", &format!("Basic {b64}"))
        .send_string(&body);
    match answer {
        Ok(r) => {
            let status = r.status();
            let text = r.into_string().map_err(|e| e.to_string())?;
            Ok((
                status,
                serde_json::from_str(&text).map_err(|e| e.to_string())?,
            ))
        }
        Err(ureq::Error::Status(code, _)) => Ok((code, Value::Null)),
        Err(e) => Err(e.to_string()),
    }
}

fn listening(port: u16) -> bool {
    TcpStream::connect(("127.0.0.1", port)).is_ok()
}

fn cookie(datadir: &Path) -> Option<String> {
    std::fs::read_to_string(datadir.join("regtest").join(".cookie")).ok()
}

#[test]
fn flag_over_environment_over_network_table_over_top_level() {
    let dir = TempDir::new("config-layers");
    let [rpc_top, rpc_net, rpc_env, rpc_flag] = [(); 4].map(|_| free_port());
    let [p2p_top, p2p_net, p2p_env] = [(); 3].map(|_| free_port());
    std::fs::write(
        dir.0.join("chaincore.conf"),
        format!(
            "network = \"regtest\"\nbind = \"127.0.0.1\"\nrpcbind = [\"127.0.0.1\"]\n\
             rpcport = {rpc_top}\nport = {p2p_top}\nrpcuser = \"top\"\nrpcpassword = \"top-secret\"\n\
             [regtest]\nrpcport = {rpc_net}\nport = {p2p_net}\nrpcuser = \"net\"\nrpcpassword = \"net-secret\"\n"
        ),
    )
    .unwrap();
    let datadir = dir.0.to_str().unwrap();
    let mut node = Process::start(
        "chaincore-node",
        &["--datadir", datadir, "--rpcport", &rpc_flag.to_string()],
        &[
            ("CHAINCORE_RPCPORT", rpc_env.to_string()),
            ("CHAINCORE_PORT", p2p_env.to_string()),
        ],
        dir.0.join("node.log"),
    );
    // The network comes from the top level, the credentials from the network's table, the RPC
    // port from the flag (over the environment, the table and the top level).
    let info = wait_for("the node's RPC on the flag's port", || {
        node.check_running();
        call(rpc_flag, "net:net-secret", "getblockchaininfo").ok()
    });
    assert_eq!(info.0, 200, "{info:?}");
    assert_eq!(info.1["result"]["chain"], json!("regtest"));
    let (status, _) = call(rpc_flag, "top:top-secret", "getblockcount").unwrap();
    assert_eq!(status, 401, "the network's table wins over the top level");
    // P2P listens on the environment's port (over the table and the top level).
    wait_for("P2P on the environment's port", || {
        listening(p2p_env).then_some(())
    });
    for port in [rpc_top, rpc_net, rpc_env, p2p_top, p2p_net] {
        assert!(
            !listening(port),
            "nothing listens on the losing layers' port {port}"
        );
    }
    let log = node.log_text();
    assert!(
        log.contains("config file read") && log.contains("chaincore.conf"),
        "{log}"
    );
}

#[test]
fn wallet_and_miner_reach_a_node_on_other_ports_with_datadir_and_network_only() {
    let dir = TempDir::new("config-clients");
    let datadir = dir.sub("data");
    let (rpc, p2p) = (free_port(), free_port());
    std::fs::write(
        datadir.join("chaincore.conf"),
        format!(
            "# every binary reads this file\nbind = \"127.0.0.1\"\nrpcbind = [\"127.0.0.1\"]\n\
             [regtest]\nrpcport = {rpc}\nport = {p2p}\n"
        ),
    )
    .unwrap();
    let d = datadir.to_str().unwrap();
    let common = ["--datadir", d, "--network", "regtest"];
    let mut node = Process::start("chaincore-node", &common, &[], dir.0.join("node.log"));
    let height = |node: &mut Process| {
        node.check_running();
        let credentials = cookie(&datadir)?;
        let (_, body) = call(rpc, credentials.trim(), "getblockcount").ok()?;
        body["result"].as_u64()
    };
    wait_for("the node's RPC on the file's port", || height(&mut node));

    let wallet = |args: &[&str]| {
        let out = run(
            "chaincore-wallet",
            &[&common[..], &["--json"], args].concat(),
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "wallet {args:?}: {text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str::<Value>(&text).unwrap()
    };
    assert_eq!(
        wallet(&["create", "--show-mnemonic"])["network"],
        json!("regtest")
    );
    assert!(datadir.join("regtest").join("wallet.json").exists());
    let address = wallet(&["addresses"])[0]["address"]
        .as_str()
        .unwrap()
        .to_string();

    let mut miner = Process::start(
        "chaincore-miner",
        &[&common[..], &["--address", &address, "--threads", "1"]].concat(),
        &[],
        dir.0.join("miner.log"),
    );
    wait_for("the miner's first block", || {
        miner.check_running();
        height(&mut node).filter(|h| *h >= 1)
    });
    let balance = wallet(&["balance"]);
    let immature: f64 = balance["immature"].as_str().unwrap().parse().unwrap();
    assert!(immature > 0.0, "the wallet sees the mined coins: {balance}");
    assert!(
        miner.log_text().contains("config file read"),
        "{}",
        miner.log_text()
    );
}

#[test]
fn unknown_keys_and_a_missing_explicit_file_are_errors() {
    let dir = TempDir::new("config-errors");
    let conf = dir.0.join("chaincore.conf");
    std::fs::write(&conf, "network = \"regtest\"\n[regtest]\nrpcprot = 1\n").unwrap();
    let d = dir.0.to_str().unwrap();
    let address = chaincore::Address::p2pkh([1; 20], Network::Regtest).to_string();
    for (bin, extra) in [
        ("chaincore-node", vec![]),
        ("chaincore-miner", vec!["--address", &address]),
        ("chaincore-wallet", vec!["info"]),
    ] {
        let out = run(bin, &[&["--datadir", d][..], &extra].concat());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bin} refuses the file");
        assert!(
            err.contains("unknown key `rpcprot`")
                && err.contains(conf.to_str().unwrap())
                && err.contains("line 3"),
            "{bin}: {err}"
        );
        assert!(!err.contains("panicked"), "{bin}: {err}");
    }
    let missing = dir.0.join("missing.conf");
    let out = run(
        "chaincore-node",
        &["--datadir", d, "--config", missing.to_str().unwrap()],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("missing.conf"),
        "{err}"
    );
}

#[test]
fn printed_default_config_parses_back() {
    let out = run("chaincore-node", &["--print-default-config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let file = ConfigFile::parse(&text, Path::new("printed.conf")).unwrap();
    let regtest = layer(&NodeSettings::default(), Some(&file), Network::Regtest).unwrap();
    assert_eq!(regtest.rpcport, Some(Network::Regtest.params().rpc_port));
    assert_eq!(regtest.port, Some(Network::Regtest.params().p2p_port));
    assert_eq!(regtest.network, Some(Network::Main), "the default network");
    assert_eq!(regtest.maxconnections, Some(125));
}
