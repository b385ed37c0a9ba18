//! Harness for the end-to-end tests: builds the real binaries once, starts them on free
//! loopback ports with their own temporary data directories, talks JSON-RPC to them, and kills
//! whatever it started when dropped.
//!
//! # Layout
//! - this file: binaries, ports, temporary directories, [`Node`], [`Wallet`], [`Miner`],
//!   [`signed_spend`], [`solve_block`].
//! - [`builder`]: solved regtest blocks on any parent, built offline.
//! - [`client`]: a keep-alive JSON-RPC client for benchmarks.
//! - [`coins`]: many spendable coins on the builder's key; a many-input spend with a bad last
//!   signature; blocks of about 1 MB of unseen transactions.
//! - [`peer`]: a raw P2P peer on a socket.
//! - [`replay`]: a node's active chain replayed from its blocks (UTXO set, its hash, spends).
//! - [`crash_loop`], [`netns`], [`delay`]: the kill -9 loop, network namespaces, and the TUN
//!   forwarder that gives their paths latency and loss.
//! - [`lab`]: the network lab, many nodes on their own hosts (namespaces), and its checks.
//! - [`latency`]: timed GETs and p50/p99 lines for the benchmarks.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test harness: a panic is a failed test

use std::io::BufRead;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

pub mod builder;
pub mod client;
pub mod coins;
pub mod crash_loop;
pub mod delay;
pub mod lab;
pub mod latency;
pub mod netns;
pub mod peer;
pub mod replay;

/// How long any wait for a process or a condition may take on a slow, busy machine.
pub const DEADLINE: Duration = Duration::from_secs(120);

static RELEASE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`binary`] build and use release binaries (for benchmarks); call before starting
/// anything.
pub fn use_release_binaries() {
    RELEASE.store(true, std::sync::atomic::Ordering::SeqCst);
}

/// CPU seconds (user + system) process `pid` has used so far, from `/proc` (0 if it is gone).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may contain spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the full line, 12 and 13 here.
    (ticks(11) + ticks(12)) / 100.0
}

/// Path of a workspace binary, built once per process with the same cargo, in the dev profile
/// unless [`use_release_binaries`] was called.
pub fn binary(name: &str) -> PathBuf {
    static BUILT: OnceLock<Vec<(String, PathBuf)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut args = vec![
            "build",
            "--bins",
            "--message-format=json-render-diagnostics",
        ];
        if RELEASE.load(std::sync::atomic::Ordering::SeqCst) {
            args.push("--release");
        }
        let out = Command::new(cargo)
            .current_dir(workspace)
            .args(&args)
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo build runs");
        assert!(out.status.success(), "building the binaries failed");
        out.stdout
            .lines()
            .map_while(Result::ok)
            .filter_map(|l| serde_json::from_str::<Value>(&l).ok())
            .filter_map(|v| {
                let exe = v.get("executable")?.as_str()?.to_string();
                let name = v.get("target")?.get("name")?.as_str()?.to_string();
                Some((name, PathBuf::from(exe)))
            })
            .collect()
    });
    built
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, p)| p.clone())
        .unwrap_or_else(|| panic!("binary {name} was not built"))
}

/// A loopback TCP port nobody holds now, for a node to bind.
///
/// Ports come from 12000..32000, below Linux's ephemeral range (32768..60999), so no outgoing
/// connection (an RPC client, a peer) can take one between this call and the node's bind; each
/// test process starts at its own offset (from its pid) and never hands out a port twice, as
/// Bitcoin Core's test framework does. Asking the OS for port 0 instead can hand the same port
/// to two tests of one process in a row.
pub fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    const FIRST: u32 = 12_000;
    const SPAN: u32 = 20_000;
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id().wrapping_mul(613) % SPAN;
    loop {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        assert!(
            n < SPAN,
            "no free loopback port left in {FIRST}..{}",
            FIRST + SPAN
        );
        let port = u16::try_from(FIRST + (start + n) % SPAN).unwrap();
        let v4_free = TcpListener::bind(("127.0.0.1", port)).is_ok();
        // A port held on IPv6 loopback only would still refuse a node that binds both.
        let v6_free = !matches!(
            TcpListener::bind(("::1", port)),
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse
        );
        if v4_free && v6_free {
            return port;
        }
    }
}

/// A fresh temporary directory, removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates `chaincore-test-<label>-<pid>-<n>` under the system temp dir.
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir =
            std::env::temp_dir().join(format!("chaincore-test-{label}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl TempDir {
    /// A subdirectory `name`, created.
    pub fn sub(&self, name: &str) -> PathBuf {
        let dir = self.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}

impl Drop for TempDir {
    /// Removes the directory, unless a test is failing: then its node logs and stores are kept
    /// for a look, and the path is printed.
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("test failed: kept {}", self.0.display());
            return;
        }
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Polls `f` until it returns `Some`, or panics with `what` after [`DEADLINE`].
pub fn wait_for<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(start.elapsed() < DEADLINE, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running `chaincore-node` on regtest.
pub struct Node {
    child: Option<Child>,
    /// Data directory (`--datadir`).
    pub datadir: PathBuf,
    /// RPC port.
    pub rpc_port: u16,
    /// P2P port (listening on 127.0.0.1).
    pub p2p_port: u16,
    /// Extra arguments it was started with.
    args: Vec<String>,
    log: PathBuf,
    /// The address RPC and P2P are reached at (127.0.0.1 unless in a network namespace).
    pub host: String,
    /// The network namespace it runs in, if any (see [`netns`]).
    netns: Option<String>,
}

/// A JSON-RPC answer: the HTTP status and the parsed body (if JSON).
#[derive(Debug)]
pub struct Answer {
    /// HTTP status code.
    pub status: u16,
    /// Body as JSON, or `Value::String` of the raw text if it is not JSON.
    pub body: Value,
}

impl Node {
    /// Starts a regtest node in `datadir` with `args` and waits until RPC answers.
    pub fn start(datadir: &Path, args: &[&str]) -> Node {
        Node::start_on(datadir, args, "127.0.0.1", None)
    }

    /// Starts a regtest node inside network namespace `netns` whose address is `host`: RPC on
    /// `host` (open to the lab's subnets, where the test process is), P2P on every address of
    /// the namespace.
    pub fn start_in_netns(datadir: &Path, args: &[&str], netns: &str, host: &str) -> Node {
        Node::start_on(datadir, args, host, Some(netns.to_string()))
    }

    /// Starts a regtest node like [`Node::start`] with RPC on `rpc_port` (for a client started
    /// before the node).
    pub fn start_with_rpc_port(datadir: &Path, rpc_port: u16, args: &[&str]) -> Node {
        let mut node = Node::unstarted(datadir, args, "127.0.0.1", None);
        node.rpc_port = rpc_port;
        node.spawn();
        node
    }

    fn start_on(datadir: &Path, args: &[&str], host: &str, netns: Option<String>) -> Node {
        let mut node = Node::unstarted(datadir, args, host, netns);
        node.spawn();
        node
    }

    fn unstarted(datadir: &Path, args: &[&str], host: &str, netns: Option<String>) -> Node {
        Node {
            child: None,
            datadir: datadir.to_path_buf(),
            rpc_port: free_port(),
            p2p_port: free_port(),
            args: args.iter().map(|s| s.to_string()).collect(),
            log: datadir.join("node.log"),
            host: host.to_string(),
            netns,
        }
    }

    /// A handle that talks to the same node but owns no process (dropping it kills nothing),
    /// for calls from another thread.
    pub fn client(&self) -> Node {
        Node {
            child: None,
            datadir: self.datadir.clone(),
            rpc_port: self.rpc_port,
            p2p_port: self.p2p_port,
            args: self.args.clone(),
            log: self.log.clone(),
            host: self.host.clone(),
            netns: self.netns.clone(),
        }
    }

    fn spawn(&mut self) {
        self.spawn_without_waiting();
        wait_for("the node's RPC", || {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("node exited early with {status}:\n{}", self.log_text());
            }
            self.call("getblockcount", json!([])).ok()
        });
    }

    /// Starts the node process on its data directory and ports without waiting for RPC (to
    /// kill it while it opens its store).
    pub fn spawn_without_waiting(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut cmd = match &self.netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns]).arg(binary("chaincore-node"));
                c.args(["--bind", "0.0.0.0", "--rpcallowip", netns::SUBNET]);
                c
            }
            None => {
                let mut c = Command::new(binary("chaincore-node"));
                c.args(["--bind", "127.0.0.1"]);
                c
            }
        };
        let child = cmd
            .args(["--network", "regtest", "--rpcbind", &self.host])
            .args(["--log-level", "info"])
            .arg("--datadir")
            .arg(&self.datadir)
            .args(["--rpcport", &self.rpc_port.to_string()])
            .args(["--port", &self.p2p_port.to_string()])
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node starts");
        self.child = Some(child);
    }

    /// The node's log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `user:password` from the cookie file, if there is one.
    pub fn cookie(&self) -> Option<String> {
        std::fs::read_to_string(self.datadir.join("regtest").join(".cookie")).ok()
    }

    /// `<host>:<p2p port>`, for other nodes' `--connect`.
    pub fn p2p_addr(&self) -> String {
        format!("{}:{}", self.host, self.p2p_port)
    }

    /// The RPC URL.
    pub fn url(&self) -> String {
        format!("http://{}:{}/", self.host, self.rpc_port)
    }

    /// Posts a raw body with the given credentials (`None`: no Authorization header).
    pub fn post(&self, body: &str, credentials: Option<&str>) -> Result<Answer, String> {
        use base64::Engine;
        let mut req = ureq::post(&self.url()).timeout(DEADLINE);
        if let Some(c) = credentials {
            let b64 = base64::engine::general_purpose::STANDARD.encode(c);
            req = req.set("Authorization", &format!("Basic {b64}"));
        }
        let (status, text) = match req.send_string(body) {
            Ok(r) => (r.status(), r.into_string().map_err(|e| e.to_string())?),
            Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
            Err(e) => return Err(e.to_string()),
        };
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        Ok(Answer { status, body })
    }

    /// `GET <path>` without credentials (REST, `/metrics`): the status and the body's bytes,
    /// or why no HTTP answer came (a refused or dropped connection).
    pub fn get(&self, path: &str) -> Result<(u16, Vec<u8>), String> {
        let url = format!("http://{}:{}{path}", self.host, self.rpc_port);
        let response = match ureq::get(&url).timeout(DEADLINE).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return Err(e.to_string()),
        };
        let status = response.status();
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut response.into_reader(), &mut body)
            .map_err(|e| e.to_string())?;
        Ok((status, body))
    }

    /// Calls `method` with the node's credentials (JSON-RPC 1.0 style, like Bitcoin tools);
    /// returns the result or the error object.
    pub fn call(&self, method: &str, params: Value) -> Result<Value, Value> {
        self.call_body(&json!({"method": method, "params": params, "id": 1}).to_string())
    }

    /// [`Node::call`] with the request's JSON `body` already encoded (a bench that times the
    /// node, not the encoding of a megabyte of hex).
    pub fn call_body(&self, body: &str) -> Result<Value, Value> {
        let credentials = self.credentials().ok_or_else(|| json!("no cookie yet"))?;
        let answer = self.post(body, Some(&credentials)).map_err(|e| json!(e))?;
        match answer.body.get("error") {
            Some(e) if !e.is_null() => Err(e.clone()),
            _ => Ok(answer.body.get("result").cloned().unwrap_or(Value::Null)),
        }
    }

    /// Like [`Node::call`], panicking on an RPC error.
    pub fn rpc(&self, method: &str, params: Value) -> Value {
        self.call(method, params)
            .unwrap_or_else(|e| panic!("{method} failed: {e}"))
    }

    fn credentials(&self) -> Option<String> {
        let user = self.args.iter().position(|a| a == "--rpcuser");
        let pass = self.args.iter().position(|a| a == "--rpcpassword");
        match (user, pass) {
            (Some(u), Some(p)) => Some(format!("{}:{}", self.args[u + 1], self.args[p + 1])),
            _ => self.cookie(),
        }
    }

    /// The node's process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("node running").id()
    }

    /// CPU seconds (user + system) the node process has used so far, from `/proc`.
    pub fn cpu_seconds(&self) -> f64 {
        process_cpu_seconds(self.pid())
    }

    /// Resident memory of the node process in bytes (`VmRSS` in `/proc`), 0 if unreadable.
    pub fn rss_bytes(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            .map_or(0, |kb| kb * 1024)
    }

    /// Kills the process with SIGKILL (no clean shutdown) and waits for it.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the node again on the same data directory and port.
    pub fn restart(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Like [`Node::restart`], with `extra` added to its arguments for this run only.
    pub fn restart_with(&mut self, extra: &[&str]) {
        let kept = self.args.len();
        self.args.extend(extra.iter().map(|a| a.to_string()));
        self.restart();
        self.args.truncate(kept);
    }

    /// Asks the node to stop and waits for the process to exit.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let _ = self.call("stop", json!([]));
        let mut child = self.child.take().expect("node running");
        wait_for("the node to exit", || child.try_wait().unwrap())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// What a finished CLI process printed.
#[derive(Debug)]
pub struct CliOutput {
    /// Exit code (None if killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CliOutput {
    /// True if the process exited with 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }
}

/// A `chaincore-wallet` file bound to a node.
pub struct Wallet {
    /// The wallet file.
    pub path: PathBuf,
    /// The node's RPC URL.
    pub node_url: String,
    /// The cookie file to authenticate with.
    pub cookie: PathBuf,
    /// The node's data directory (passed as `--datadir`).
    pub datadir: PathBuf,
}

impl Wallet {
    /// A wallet file `name` in `dir`, talking to `node` (not created yet).
    pub fn new(dir: &Path, name: &str, node: &Node) -> Wallet {
        Wallet {
            path: dir.join(format!("{name}.json")),
            node_url: node.url(),
            cookie: node.datadir.join("regtest").join(".cookie"),
            datadir: node.datadir.clone(),
        }
    }

    /// Runs `chaincore-wallet` with this wallet and `args`, no stdin.
    pub fn run(&self, args: &[&str]) -> CliOutput {
        let out = Command::new(binary("chaincore-wallet"))
            .args(["--network", "regtest", "--rpc-url", &self.node_url])
            // The node's data directory: never a chaincore.conf of the machine's user.
            .arg("--datadir")
            .arg(&self.datadir)
            .arg("--wallet")
            .arg(&self.path)
            .arg("--rpc-cookie")
            .arg(&self.cookie)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("wallet runs");
        CliOutput {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Runs with `--json` and parses stdout, panicking on failure.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut full = vec!["--json"];
        full.extend_from_slice(args);
        let out = self.run(&full);
        assert!(
            out.ok(),
            "wallet {args:?} failed: {}{}",
            out.stdout,
            out.stderr
        );
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", out.stdout))
    }
}

/// A running `chaincore-miner` attached to a node.
pub struct Miner {
    child: Option<Child>,
    log: PathBuf,
}

impl Miner {
    /// Starts a regtest miner for `node` paying `address`, with extra `args`.
    pub fn start(node: &Node, address: &str, args: &[&str]) -> Miner {
        let log = node
            .datadir
            .join(format!("miner-{}-{}.log", address, free_port()));
        let file = std::fs::File::create(&log).unwrap();
        let mut cmd = Command::new(binary("chaincore-miner"));
        cmd.args([
            "--network",
            "regtest",
            "--address",
            address,
            "--rpc-url",
            &node.url(),
        ]);
        // The node's data directory: never a chaincore.conf of the machine's user.
        cmd.arg("--datadir").arg(&node.datadir);
        if !args.contains(&"--rpc-user") {
            cmd.arg("--rpc-cookie")
                .arg(node.datadir.join("regtest").join(".cookie"));
        }
        let child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .expect("miner starts");
        Miner {
            child: Some(child),
            log,
        }
    }

    /// Everything the miner printed so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends Ctrl-C (SIGINT) and waits for the miner to exit; returns its exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill")
            .args(["-INT", &child.id().to_string()])
            .status();
        wait_for("the miner to exit", || child.try_wait().unwrap()).code()
    }

    /// Sends `signal` (`INT`, `TERM`, …) and waits for the miner to exit; returns its exit
    /// code and how long it took to exit after the signal was sent.
    pub fn signal(&mut self, signal: &str) -> (Option<i32>, Duration) {
        let Some(mut child) = self.child.take() else {
            return (None, Duration::ZERO);
        };
        let sent = std::time::Instant::now();
        let _ = Command::new("kill")
            .args([&format!("-{signal}"), &child.id().to_string()])
            .status();
        let status = wait_for("the miner to exit", || child.try_wait().unwrap());
        (status.code(), sent.elapsed())
    }

    /// Waits for the miner to exit by itself; returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        wait_for("the miner to exit", || child.try_wait().unwrap()).code()
    }
}

impl Drop for Miner {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A P2PKH transaction spending `inputs` (all locked to `key` on regtest), signed.
pub fn signed_spend(
    key: &chaincore::key::PrivateKey,
    inputs: &[chaincore::OutPoint],
    outputs: Vec<chaincore::TxOut>,
) -> chaincore::Transaction {
    let lock =
        chaincore::Address::p2pkh(key.public_key().pubkey_hash(), chaincore::Network::Regtest)
            .script_pubkey();
    let mut tx = chaincore::Transaction::new_unsigned(inputs, outputs);
    for i in 0..tx.input.len() {
        chaincore::sign_p2pkh_input(&mut tx, i, &lock, key).unwrap();
    }
    tx
}

/// A block on `node`'s current template, solved by the test itself: a coinbase paying
/// `coinbasevalue + extra_fees` to `payout`, then `txs` (which need not be in the mempool).
pub fn solve_block(
    node: &Node,
    payout: &chaincore::Script,
    txs: Vec<chaincore::Transaction>,
    extra_fees: i64,
) -> chaincore::Block {
    let t = node.rpc("getblocktemplate", json!([{"rules": ["segwit"]}]));
    let height = t["height"].as_u64().unwrap() as u32;
    let mut script_sig = chaincore::validation::coinbase_height_prefix(height);
    script_sig.push_slice(b"e2e");
    let coinbase = chaincore::Transaction {
        version: 1,
        input: vec![chaincore::TxIn {
            previous_output: chaincore::OutPoint::NULL,
            script_sig,
            sequence: u32::MAX,
        }],
        output: vec![chaincore::TxOut {
            value: chaincore::Amount::from_units(t["coinbasevalue"].as_i64().unwrap() + extra_fees),
            script_pubkey: payout.clone(),
        }],
        lock_time: 0,
    };
    let mut txdata = vec![coinbase];
    txdata.extend(txs);
    let mut block = chaincore::Block {
        header: chaincore::block::Header {
            version: t["version"].as_i64().unwrap() as i32,
            prev_blockhash: t["previousblockhash"].as_str().unwrap().parse().unwrap(),
            merkle_root: Default::default(),
            time: t["curtime"].as_u64().unwrap() as u32,
            bits: u32::from_str_radix(t["bits"].as_str().unwrap(), 16).unwrap(),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().0;
    // The template's big-endian `target` is what a getblocktemplate miner compares against.
    let mut target = [0u8; 32];
    hex::decode_to_slice(t["target"].as_str().unwrap(), &mut target).unwrap();
    let target = chaincore::pow::Target::from_be_bytes(target).unwrap();
    while !target.is_met_by(&block.block_hash()) {
        block.header.nonce += 1;
    }
    block
}
