//! The network lab: many real nodes, each on its own host (a network namespace from
//! [`netns`](crate::netns)), that know only one or two seeds and find the rest by `addr`
//! gossip; partitions, `kill -9` and restarts, late joiners; and what the scenarios check
//! (one tip, one UTXO set, every coin accounted for).
//!
//! Host 0 and host 1 are the seeds: host 0 knows nobody, host 1 knows host 0, every other host
//! knows both. Labs in one process run one at a time ([`exclusive`]): two cores cannot hold
//! two dozen debug nodes at once.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use chaincore::key::PrivateKey;
use chaincore::pow::block_subsidy;
use chaincore::{Address, Network};
use serde_json::{json, Value};

use crate::netns::{Lab, Wiring};
use crate::{wait_for, Node, TempDir};

/// Held while a lab runs; see [`exclusive`].
static ONE_LAB: Mutex<()> = Mutex::new(());

/// Waits until no other lab of this process runs (a failed test's lock is taken over).
pub fn exclusive() -> MutexGuard<'static, ()> {
    ONE_LAB.lock().unwrap_or_else(|e| e.into_inner())
}

/// A regtest address no test spends from, for `generatetoaddress` on node `miner`: one per
/// node, so two nodes mining on one parent in the same second make different blocks.
pub fn payout(miner: usize) -> String {
    let key = PrivateKey::from_bytes(&[0x31 + (miner % 200) as u8; 32]).unwrap();
    Address::p2pkh(key.public_key().pubkey_hash(), Network::Regtest).to_string()
}

/// Nodes on the hosts of one lab; dropping it kills the nodes, then removes the namespaces and
/// the hubs, then the data directories.
pub struct Net {
    /// Node `i` runs on host `i`; `None` until started.
    pub nodes: Vec<Option<Node>>,
    /// The namespaces.
    pub lab: Lab,
    dir: TempDir,
    args: Vec<String>,
}

impl Net {
    /// A lab of `hosts` hosts on subnet `10.<net>.0.0/24` (names tagged `tag`, joined as
    /// `wiring` says, see [`Lab::on_subnet`]) with nodes started on the first `running`, each
    /// with `args` too. Panics, saying why, where namespaces cannot be made (not root): never
    /// a silent pass.
    pub fn start(
        tag: &str,
        net: u8,
        hosts: usize,
        running: usize,
        args: &[&str],
        wiring: &Wiring,
    ) -> Net {
        let lab = Lab::on_subnet(tag, net, hosts, wiring).unwrap_or_else(|e| {
            panic!("the network lab needs root to create network namespaces (CI runs as root): {e}")
        });
        let mut net = Net {
            nodes: (0..hosts).map(|_| None).collect(),
            lab,
            dir: TempDir::new(&format!("lab-{tag}")),
            args: args.iter().map(|a| a.to_string()).collect(),
        };
        for i in 0..running {
            net.start_node(i);
        }
        net
    }

    /// Starts the node of host `i` (fresh data directory) knowing the seeds.
    pub fn start_node(&mut self, i: usize) {
        let seeds: Vec<String> = (0..i.min(2)).map(|s| self.node(s).p2p_addr()).collect();
        let mut args: Vec<String> = Vec::new();
        for s in &seeds {
            args.extend(["--addnode".to_string(), s.clone()]);
        }
        args.extend(self.args.iter().cloned());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (ns, host) = self.lab.host(i);
        let datadir = self.dir.sub(&format!("n{i}"));
        let node = Node::start_in_netns(&datadir, &args, ns, host);
        self.nodes[i] = Some(node);
    }

    /// Node `i` (panics if not started).
    pub fn node(&self, i: usize) -> &Node {
        self.nodes[i].as_ref().expect("node started")
    }

    /// Node `i`, mutably (to kill and restart it).
    pub fn node_mut(&mut self, i: usize) -> &mut Node {
        self.nodes[i].as_mut().expect("node started")
    }

    /// The running nodes.
    pub fn running(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().flatten()
    }

    /// The hosts (by address) node `i` has a connection with.
    pub fn peers_of(&self, i: usize) -> HashSet<String> {
        self.node(i)
            .call("getpeerinfo", json!([]))
            .ok()
            .and_then(|v| v.as_array().cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|p| p["addr"].as_str()?.split(':').next().map(str::to_string))
            .collect()
    }

    /// The round-trip times of node `i`'s P2P connections as its host's kernel measured them
    /// (`ss -ti`: the lowest round trip seen on each TCP connection to another host), by the
    /// peer's address. RPC connections (from the test process) are left out.
    pub fn p2p_rtts(&self, i: usize) -> Vec<(String, Duration)> {
        let (ns, addr) = self.lab.host(i);
        let subnet = addr.rsplit_once('.').map_or("", |(net, _)| net);
        let out = std::process::Command::new("ip")
            .args(["netns", "exec", ns, "ss", "-tinH", "state", "established"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run ss in {ns}: {e}"));
        let text = String::from_utf8_lossy(&out.stdout);
        let mut rtts = Vec::new();
        let mut peer: Option<String> = None;
        for line in text.lines() {
            if !line.starts_with(char::is_whitespace) {
                // `Recv-Q Send-Q Local:Port Peer:Port`: a connection to another host?
                let ends: Vec<&str> = line.split_whitespace().collect();
                let ip_of = |s: &&str| s.rsplit_once(':').map(|(ip, _)| ip.to_string());
                peer = match (ends.get(2).and_then(ip_of), ends.get(3).and_then(ip_of)) {
                    (Some(l), Some(p))
                        if l == addr && p.rsplit_once('.').map(|x| x.0) == Some(subnet) =>
                    {
                        Some(p)
                    }
                    _ => None,
                };
                continue;
            }
            let Some(p) = peer.take() else { continue };
            let field = |name: &str| {
                line.split_whitespace()
                    .find_map(|f| f.strip_prefix(name))
                    .and_then(|v| v.split('/').next()?.parse::<f64>().ok())
            };
            if let Some(ms) = field("minrtt:").or_else(|| field("rtt:")) {
                rtts.push((p, Duration::from_secs_f64(ms / 1e3)));
            }
        }
        rtts
    }

    /// Waits until every running node has at least `min` connections.
    pub fn wait_connected(&self, min: usize) {
        let started = Instant::now();
        let count = self.nodes.iter().flatten().count();
        loop {
            let counts: Vec<usize> = (0..count).map(|i| self.peers_of(i).len()).collect();
            if counts.iter().all(|&c| c >= min) {
                return;
            }
            assert!(
                started.elapsed() < crate::DEADLINE,
                "connections per node after {:?}: {counts:?}",
                crate::DEADLINE
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Best block hash of node `i`, `None` while it does not answer.
    pub fn tip(&self, i: usize) -> Option<String> {
        let v = self.node(i).call("getbestblockhash", json!([])).ok()?;
        v.as_str().map(str::to_string)
    }

    /// Waits until the nodes `which` all have the same tip; returns it.
    pub fn wait_agree(&self, which: &[usize], what: &str) -> String {
        wait_for(what, || {
            let tips: Vec<Option<String>> = which.iter().map(|&i| self.tip(i)).collect();
            let first = tips.first()?.clone()?;
            tips.iter()
                .all(|t| t.as_deref() == Some(&first))
                .then_some(first)
        })
    }

    /// Waits until the tip of every node of `which` is `hash`.
    pub fn wait_tip(&self, which: &[usize], hash: &str, what: &str) {
        wait_for(what, || {
            which
                .iter()
                .all(|&i| self.tip(i).as_deref() == Some(hash))
                .then_some(())
        });
    }

    /// Mines `n` blocks on node `i` (regtest: `generatetoaddress`); their hashes.
    pub fn mine(&self, i: usize, n: u32) -> Vec<String> {
        self.node(i)
            .rpc("generatetoaddress", json!([n, payout(i)]))
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect()
    }

    /// Mines on the nodes `miners` for `span`, each on its own schedule of exponentially
    /// distributed gaps with mean `interval × miners.len()`, so the network finds a block every
    /// `interval` on average and two miners sometimes find one close together, as independent
    /// hashers do (regtest difficulty is fixed: the schedule plays the hash rate). The gaps are
    /// drawn from `seed`. Returns the blocks mined.
    pub fn mine_poisson(
        &self,
        miners: &[usize],
        interval: Duration,
        span: Duration,
        seed: u64,
    ) -> Vec<String> {
        let mean = interval.as_secs_f64() * miners.len() as f64;
        let start = Instant::now();
        let threads: Vec<_> = miners
            .iter()
            .enumerate()
            .map(|(k, &i)| {
                let node = self.node(i).client();
                let mut state = (seed ^ (k as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)) | 1;
                std::thread::spawn(move || {
                    let mut mined = Vec::new();
                    let mut at = Duration::ZERO;
                    loop {
                        state ^= state << 13;
                        state ^= state >> 7;
                        state ^= state << 17;
                        let u = ((state >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
                        at += Duration::from_secs_f64(-u.ln() * mean);
                        if at >= span {
                            return mined;
                        }
                        if let Some(wait) = (start + at).checked_duration_since(Instant::now()) {
                            std::thread::sleep(wait);
                        }
                        let hashes = node.rpc("generatetoaddress", json!([1, payout(i)]));
                        mined.extend(
                            hashes
                                .as_array()
                                .into_iter()
                                .flatten()
                                .filter_map(|h| h.as_str().map(str::to_string)),
                        );
                    }
                })
            })
            .collect();
        threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    }

    /// The stale blocks the nodes `which` know of: every block of every branch off the active
    /// chain in each node's `getchaintips` (walked back to where it forks), each block once.
    pub fn stale_blocks(&self, which: &[usize]) -> HashSet<String> {
        let mut stale = HashSet::new();
        for &i in which {
            let tips = self.node(i).rpc("getchaintips", json!([]));
            for tip in tips.as_array().into_iter().flatten() {
                if tip["status"] != "valid-fork" {
                    continue;
                }
                let mut hash = tip["hash"].as_str().unwrap().to_string();
                for _ in 0..tip["branchlen"].as_u64().unwrap_or(0) {
                    let header = self.node(i).rpc("getblockheader", json!([hash]));
                    let prev = header["previousblockhash"].as_str().unwrap().to_string();
                    stale.insert(std::mem::replace(&mut hash, prev));
                }
            }
        }
        stale
    }

    /// The txids in node `i`'s mempool.
    pub fn mempool(&self, i: usize) -> HashSet<String> {
        self.node(i)
            .rpc("getrawmempool", json!([]))
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect()
    }

    /// Checks the nodes `which` hold one UTXO set (by `hash_serialized`) that holds exactly
    /// the subsidies of the active chain (every block here claims its whole subsidy and pays
    /// no coins to unspendable outputs, so nothing is burned); returns the tip height.
    pub fn assert_one_utxo_set(&self, which: &[usize]) -> u64 {
        let infos: Vec<Value> = which
            .iter()
            .map(|&i| self.node(i).rpc("gettxoutsetinfo", json!([])))
            .collect();
        let first = &infos[0];
        for (info, &i) in infos.iter().zip(which) {
            assert_eq!(
                info["hash_serialized"], first["hash_serialized"],
                "node {i}'s UTXO set differs from node {}'s",
                which[0]
            );
            assert_eq!(info["height"], first["height"]);
        }
        let height = first["height"].as_u64().unwrap();
        let subsidies: i64 = (1..=height as u32)
            .map(|h| block_subsidy(h).to_units())
            .sum();
        let total = (first["total_amount"].as_f64().unwrap() * 1e8).round() as i64;
        assert_eq!(total, subsidies, "total coins at height {height}");
        height
    }
}
