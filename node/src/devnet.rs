//! `chaincore-node devnet`: starts several regtest nodes, connected to each other, as child
//! processes of this binary, optionally mines at a gentle pace, and shows them in the
//! [`monitor`](crate::monitor) table until Ctrl-C (or `q`), when every node is asked to stop
//! and waited for.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chaincore::rpc::{http_client, ControlClient, MiningClient};
use chaincore::{Address, Network};

use crate::monitor;

/// Credentials every devnet node uses.
const USER: &str = "devnet";
const PASSWORD: &str = "devnet";
/// Seconds between blocks with `--mine`.
const MINE_EVERY: Duration = Duration::from_secs(5);
/// Refresh interval of the monitor table.
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
        let targets = (0..nodes)
            .map(|i| {
                monitor::Target::new(
                    &format!("http://{USER}:{PASSWORD}@127.0.0.1:{}", rpc_port(i)),
                    None,
                )
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
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
        if mine {
            let miners = clients.clone();
            tokio::spawn(async move {
                let payout = Address::p2pkh([0xde; 20], Network::Regtest).to_string();
                for c in miners.iter().cycle() {
                    tokio::time::sleep(MINE_EVERY).await;
                    let _ = c
                        .generate_to_address(1.into(), payout.clone().into(), None)
                        .await;
                }
            });
        }
        let watched = monitor::watch(&targets, REFRESH, false).await;
        for c in &clients {
            let _ = c.stop().await;
        }
        watched
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
