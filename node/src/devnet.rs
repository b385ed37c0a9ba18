//! `chaincore-node devnet`: starts several regtest nodes, connected to each other, as child
//! processes of this binary, optionally mines at a gentle pace, and prints a live table until
//! Ctrl-C, when every node is asked to stop and waited for.

use std::io::{IsTerminal, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chaincore::rpc::{
    http_client, BlockchainClient, ControlClient, MempoolClient, MiningClient, NetClient,
};
use chaincore::{Address, Network};

/// Credentials every devnet node uses.
const USER: &str = "devnet";
const PASSWORD: &str = "devnet";
/// Seconds between blocks with `--mine`.
const MINE_EVERY: Duration = Duration::from_secs(5);
/// Table refresh interval.
const REFRESH: Duration = Duration::from_secs(2);

/// Runs the devnet until Ctrl-C.
pub fn run(nodes: u16, base_port: u16, mine: bool, dir: &Path) -> anyhow::Result<()> {
    let last_port = u32::from(base_port) + 2 * u32::from(nodes);
    if last_port > u32::from(u16::MAX) {
        anyhow::bail!("--base-port {base_port} leaves no room for {nodes} nodes");
    }
    let exe = std::env::current_exe().context("cannot find this program's path")?;
    let rpc_port = |i: u16| base_port + 2 * i;
    let p2p_port = |i: u16| base_port + 2 * i + 1;
    let mut children: Vec<Child> = Vec::new();
    for i in 0..nodes {
        let data = dir.join(format!("node{i}"));
        std::fs::create_dir_all(&data)
            .with_context(|| format!("cannot create {}", data.display()))?;
        let log = std::fs::File::create(data.join("node.log"))?;
        let mut cmd = Command::new(&exe);
        cmd.args([
            "--network",
            "regtest",
            "--rpcbind",
            "127.0.0.1",
            "--bind",
            "127.0.0.1",
        ])
        .arg("--datadir")
        .arg(&data)
        .args([
            "--rpcport",
            &rpc_port(i).to_string(),
            "--port",
            &p2p_port(i).to_string(),
        ])
        .args([
            "--rpcuser",
            USER,
            "--rpcpassword",
            PASSWORD,
            "--log-level",
            "info",
        ]);
        for j in 0..i {
            cmd.args(["--connect", &format!("127.0.0.1:{}", p2p_port(j))]);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start node {i}"))?;
        children.push(child);
    }
    println!(
        "devnet: {nodes} regtest nodes in {}, RPC user/password {USER}/{PASSWORD}",
        dir.display()
    );
    for i in 0..nodes {
        println!(
            "  node{i}: rpc http://127.0.0.1:{}  p2p 127.0.0.1:{}",
            rpc_port(i),
            p2p_port(i)
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let result = runtime.block_on(async {
        let clients = (0..nodes)
            .map(|i| {
                http_client(
                    &format!("http://127.0.0.1:{}", rpc_port(i)),
                    &format!("{USER}:{PASSWORD}"),
                    Duration::from_secs(30),
                )
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| anyhow::anyhow!(e))?;
        let payout = Address::p2pkh([0xde; 20], Network::Regtest).to_string();
        let mut next_miner = 0usize;
        let mut last_block = Instant::now();
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            if mine && last_block.elapsed() >= MINE_EVERY {
                let _ = clients[next_miner]
                    .generate_to_address(1.into(), payout.clone().into(), None)
                    .await;
                next_miner = (next_miner + 1) % clients.len();
                last_block = Instant::now();
            }
            let mut rows = Vec::new();
            for (i, c) in clients.iter().enumerate() {
                let row = match (
                    c.get_block_count().await,
                    c.get_best_block_hash().await,
                    c.get_connection_count().await,
                    c.get_mempool_info().await,
                ) {
                    (Ok(h), Ok(tip), Ok(peers), Ok(pool)) => {
                        format!("node{i:<3} {h:>7}  {tip}  {peers:>5}  {:>7}", pool.size)
                    }
                    _ => format!("node{i:<3} (starting or unreachable)"),
                };
                rows.push(row);
            }
            if std::io::stdout().is_terminal() {
                print!("\x1b[2J\x1b[H");
            }
            println!(
                "{:<8} {:>7}  {:<64}  {:>5}  {:>7}",
                "node", "height", "tip", "peers", "mempool"
            );
            for r in rows {
                println!("{r}");
            }
            println!("(Ctrl-C stops every node)");
            let _ = std::io::stdout().flush();
            tokio::select! {
                _ = &mut ctrl_c => break,
                _ = tokio::time::sleep(REFRESH) => {}
            }
        }
        for c in &clients {
            let _ = c.stop().await;
        }
        Ok::<(), anyhow::Error>(())
    });
    // Wait for every node to exit cleanly (kill one that does not within a minute).
    for (i, mut child) in children.into_iter().enumerate() {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(50))
                }
                _ => {
                    eprintln!("node{i} did not stop in time; killing it");
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
    }
    println!("devnet stopped");
    result
}
