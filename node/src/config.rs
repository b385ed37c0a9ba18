//! Command line, environment (`CHAINCORE_*`) and config file (TOML) settings, merged in that
//! order of precedence.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use chaincore::Network;
use clap::Parser;
use serde::Deserialize;

/// ChainCore full node: validates and stores the chain, keeps a mempool, serves JSON-RPC.
#[derive(Parser, Debug, Default, Clone)]
#[command(name = "chaincore-node", version, about, long_about = None)]
pub struct Args {
    /// Network to join: main, test or regtest [default: main].
    #[arg(long, env = "CHAINCORE_NETWORK")]
    pub network: Option<Network>,
    /// Data directory; each network's data lives in <datadir>/<network> [default: ~/.chaincore].
    #[arg(long, env = "CHAINCORE_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// JSON-RPC port [default: the network's, 8732 / 18732 / 18743].
    #[arg(long, env = "CHAINCORE_RPCPORT")]
    pub rpcport: Option<u16>,
    /// Address to serve JSON-RPC on; repeat for several [default: 127.0.0.1 and ::1].
    #[arg(long, env = "CHAINCORE_RPCBIND", value_delimiter = ',')]
    pub rpcbind: Vec<IpAddr>,
    /// Client IPs (or CIDR ranges) allowed to call RPC besides loopback; needed with a
    /// non-loopback --rpcbind.
    #[arg(long, env = "CHAINCORE_RPCALLOWIP", value_delimiter = ',')]
    pub rpcallowip: Vec<String>,
    /// RPC user name (with --rpcpassword); without both, a cookie file is used.
    #[arg(long, env = "CHAINCORE_RPCUSER")]
    pub rpcuser: Option<String>,
    /// RPC password (with --rpcuser).
    #[arg(long, env = "CHAINCORE_RPCPASSWORD", hide_env_values = true)]
    pub rpcpassword: Option<String>,
    /// P2P port [default: the network's, 8733 / 18733 / 18744].
    #[arg(long, env = "CHAINCORE_PORT")]
    pub port: Option<u16>,
    /// Connect to this peer and keep the connection, and to no discovered ones; repeatable.
    #[arg(long, env = "CHAINCORE_CONNECT", value_delimiter = ',')]
    pub connect: Vec<SocketAddr>,
    /// Connect to this peer and keep the connection, plus up to 8 discovered ones; repeatable.
    #[arg(long, env = "CHAINCORE_ADDNODE", value_delimiter = ',')]
    pub addnode: Vec<SocketAddr>,
    /// Accept incoming peer connections [default: true].
    #[arg(long, env = "CHAINCORE_LISTEN")]
    pub listen: Option<bool>,
    /// Address to listen for peers on [default: 0.0.0.0].
    #[arg(long, env = "CHAINCORE_BIND")]
    pub bind: Option<IpAddr>,
    /// Probe this range of localhost P2P ports for peers (development networks), e.g. 19001-19031.
    #[arg(long, env = "CHAINCORE_DISCOVER_LOCAL")]
    pub discover_local: Option<String>,
    /// Most peer connections, in and out [default: 125].
    #[arg(long, env = "CHAINCORE_MAXCONNECTIONS")]
    pub maxconnections: Option<usize>,
    /// Regtest only, for tests: headers of a lighter fork held per peer before the node only
    /// counts their work [default: 20,000].
    #[arg(long, env = "CHAINCORE_PENDING_HEADERS", hide = true)]
    pub pending_headers: Option<usize>,
    /// Save the mempool to mempool.dat at shutdown and every 2 minutes, and load it at start
    /// [default: true].
    #[arg(long, env = "CHAINCORE_PERSISTMEMPOOL")]
    pub persistmempool: Option<bool>,
    /// Serve the unauthenticated read-only REST interface, event stream and /metrics on the RPC
    /// port (`--rest=false` turns them off) [default: true while RPC is bound to loopback only].
    #[arg(long, env = "CHAINCORE_REST", num_args = 0..=1, default_missing_value = "true")]
    pub rest: Option<bool>,
    /// TOML file with any of these settings (same names, e.g. `rpcport = 18743`).
    #[arg(long, env = "CHAINCORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter: error, warn, info, debug, trace, or a RUST_LOG-style directive.
    #[arg(long, env = "CHAINCORE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Run something other than a single node.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum Command {
    /// Start N interconnected regtest nodes on this machine and show them live until Ctrl-C.
    Devnet {
        /// How many nodes.
        #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
        nodes: u16,
        /// First port: node i uses RPC port base + 2i and P2P port base + 2i + 1.
        #[arg(long, default_value_t = 19_000)]
        base_port: u16,
        /// Mine a block every few seconds on the nodes in turn.
        #[arg(long)]
        mine: bool,
        /// Where the nodes keep their data [default: <datadir>/devnet].
        #[arg(long)]
        datadir: Option<PathBuf>,
    },
    /// Write active-chain blocks FROM..=TO from the data directory while the node is stopped
    /// (the running node locks its store; use /rest/blocks/FROM/TO.jsonl then).
    Export {
        /// First height.
        #[arg(long)]
        from: u32,
        /// Last height.
        #[arg(long)]
        to: u32,
        /// jsonl: `getblock <hash> 1` per line; csv: one row per block; json: one array.
        #[arg(long, value_enum, default_value_t = crate::web::export::Format::Jsonl)]
        format: crate::web::export::Format,
        /// File to write [default: standard output].
        #[arg(long)]
        output: Option<PathBuf>,
    },
}

/// The subset of settings a config file may hold.
#[derive(Deserialize, Debug, Default)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    network: Option<Network>,
    datadir: Option<PathBuf>,
    rpcport: Option<u16>,
    #[serde(default)]
    rpcbind: Vec<IpAddr>,
    #[serde(default)]
    rpcallowip: Vec<String>,
    rpcuser: Option<String>,
    rpcpassword: Option<String>,
    port: Option<u16>,
    log_level: Option<String>,
    persistmempool: Option<bool>,
    #[serde(default)]
    connect: Vec<SocketAddr>,
    #[serde(default)]
    addnode: Vec<SocketAddr>,
    listen: Option<bool>,
    bind: Option<IpAddr>,
    maxconnections: Option<usize>,
    discover_local: Option<String>,
    rest: Option<bool>,
}

/// How RPC clients authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// A random cookie written to `<datadir>/<network>/.cookie`.
    Cookie,
    /// A fixed user and password.
    UserPassword {
        /// User name.
        user: String,
        /// Password.
        password: String,
    },
}

/// Final settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The network.
    pub network: Network,
    /// `<datadir>/<network>`: where this network's files live.
    pub data_dir: PathBuf,
    /// Where RPC listens.
    pub rpc_addrs: Vec<SocketAddr>,
    /// Extra allowed client networks (loopback always allowed).
    pub rpc_allow: Vec<IpNet>,
    /// RPC authentication.
    pub rpc_auth: RpcAuth,
    /// P2P settings.
    pub p2p: crate::p2p::P2pConfig,
    /// Log filter.
    pub log_level: String,
    /// Keep the mempool in `mempool.dat` across restarts.
    pub persist_mempool: bool,
    /// Serve REST, `/rest/events` and `/metrics` without authentication on the RPC port.
    pub rest: bool,
}

/// An IP network (address and prefix length), from `1.2.3.4`, `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `ADDR` or `ADDR/PREFIX`.
    pub fn parse(s: &str) -> anyhow::Result<IpNet> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = addr
            .parse()
            .with_context(|| format!("invalid IP address in rpcallowip '{s}'"))?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .with_context(|| format!("invalid prefix length in rpcallowip '{s}'"))?,
            None => max,
        };
        Ok(IpNet { addr, prefix })
    }

    /// True if `ip` is inside this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match (self.addr, ip) {
            (IpAddr::V4(_), IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            _ => ip,
        };
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl Args {
    /// Merges command line and environment (already in `self`) over the config file, then
    /// defaults, and checks the result.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let file = match &self.config {
            Some(path) => read_config_file(path)?,
            None => FileConfig::default(),
        };
        let network = self.network.or(file.network).unwrap_or(Network::Main);
        let base = match self.datadir.or(file.datadir) {
            Some(dir) => dir,
            None => default_datadir()?,
        };
        let params = network.params();
        let rpc_port = self.rpcport.or(file.rpcport).unwrap_or(params.rpc_port);
        let binds = if !self.rpcbind.is_empty() {
            self.rpcbind
        } else if !file.rpcbind.is_empty() {
            file.rpcbind
        } else {
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        };
        let allow_strings = if self.rpcallowip.is_empty() {
            file.rpcallowip
        } else {
            self.rpcallowip
        };
        let rpc_allow = allow_strings
            .iter()
            .map(|s| IpNet::parse(s))
            .collect::<anyhow::Result<Vec<_>>>()?;
        if binds.iter().any(|ip| !ip.is_loopback()) && rpc_allow.is_empty() {
            bail!("--rpcbind on a non-loopback address needs --rpcallowip naming the clients allowed to connect");
        }
        // On by default only while every RPC bind is loopback, as the issue and Core's
        // -rest advice ask; an explicit --rest=true with other binds reaches --rpcallowip only.
        let rest = self
            .rest
            .or(file.rest)
            .unwrap_or_else(|| binds.iter().all(|ip| ip.is_loopback()));
        let rpc_auth = match (self.rpcuser.or(file.rpcuser), self.rpcpassword.or(file.rpcpassword)) {
            (Some(user), Some(password)) => {
                if user.contains(':') {
                    bail!("--rpcuser must not contain ':'");
                }
                if password.is_empty() {
                    bail!("--rpcpassword must not be empty");
                }
                RpcAuth::UserPassword { user, password }
            }
            (None, None) => RpcAuth::Cookie,
            _ => bail!("--rpcuser and --rpcpassword go together: give both, or neither to use the cookie file"),
        };
        Ok(Config {
            network,
            data_dir: base.join(network.to_string()),
            rpc_addrs: binds
                .into_iter()
                .map(|ip| SocketAddr::new(ip, rpc_port))
                .collect(),
            rpc_allow,
            rpc_auth,
            p2p: crate::p2p::P2pConfig {
                listen: self.listen.or(file.listen).unwrap_or(true).then(|| {
                    SocketAddr::new(
                        self.bind
                            .or(file.bind)
                            .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                        self.port.or(file.port).unwrap_or(params.p2p_port),
                    )
                }),
                connect_only: !self.connect.is_empty() || !file.connect.is_empty(),
                discover_local: match self.discover_local.or(file.discover_local) {
                    Some(range) => parse_port_range(&range)?,
                    None => Vec::new(),
                },
                peers: [self.connect, self.addnode, file.connect, file.addnode].concat(),
                max_connections: self.maxconnections.or(file.maxconnections).unwrap_or(125),
                max_pending_headers: match self.pending_headers {
                    Some(_) if network != Network::Regtest => {
                        bail!("--pending-headers is for regtest only")
                    }
                    Some(0) => bail!("--pending-headers must be at least 1"),
                    Some(n) => n,
                    None => crate::p2p::MAX_PENDING_HEADERS,
                },
            },
            log_level: self
                .log_level
                .or(file.log_level)
                .unwrap_or_else(|| "info".to_string()),
            persist_mempool: self.persistmempool.or(file.persistmempool).unwrap_or(true),
            rest,
        })
    }
}

/// `START-END` → the localhost addresses in it (at most 1,000 ports).
fn parse_port_range(range: &str) -> anyhow::Result<Vec<SocketAddr>> {
    let parsed = range
        .split_once('-')
        .and_then(|(a, b)| Some((a.trim().parse::<u16>().ok()?, b.trim().parse::<u16>().ok()?)));
    match parsed {
        Some((start, end)) if start <= end && end - start < 1_000 => Ok((start..=end)
            .map(|p| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), p))
            .collect()),
        _ => bail!("--discover-local wants START-END, at most 1,000 ports, e.g. 19001-19031"),
    }
}

fn read_config_file(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("invalid config file {}", path.display()))
}

fn default_datadir() -> anyhow::Result<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Ok(PathBuf::from(home).join(".chaincore")),
        _ => bail!("HOME is not set: give --datadir"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let mut full = vec!["chaincore-node"];
        full.extend_from_slice(args);
        Args::try_parse_from(full)?.resolve()
    }

    #[test]
    fn defaults_follow_the_network() {
        let c = parse(&["--network", "regtest", "--datadir", "/tmp/x"]).unwrap();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.data_dir, PathBuf::from("/tmp/x/regtest"));
        assert_eq!(c.rpc_addrs.len(), 2);
        assert!(c
            .rpc_addrs
            .iter()
            .all(|a| a.ip().is_loopback() && a.port() == 18743));
        assert_eq!(c.p2p.listen.map(|a| a.port()), Some(18744));
        assert_eq!(c.rpc_auth, RpcAuth::Cookie);
    }

    #[test]
    fn bad_values_are_clear_errors() {
        assert!(parse(&["--network", "bitcoin"]).is_err());
        assert!(parse(&["--rpcport", "70000"]).is_err());
        let e = parse(&["--datadir", "/tmp/x", "--rpcuser", "u"]).unwrap_err();
        assert!(e.to_string().contains("go together"));
        let e = parse(&["--datadir", "/tmp/x", "--rpcbind", "0.0.0.0"]).unwrap_err();
        assert!(e.to_string().contains("--rpcallowip"));
        assert!(parse(&["--datadir", "/tmp/x", "--rpcallowip", "10.0.0.0/33"]).is_err());
        assert!(parse(&["--datadir", "/tmp/x", "--discover-local", "9-2"]).is_err());
        assert!(parse(&["--datadir", "/tmp/x", "--discover-local", "1-5000"]).is_err());
        let c = parse(&["--datadir", "/tmp/x", "--discover-local", "19001-19003"]).unwrap();
        assert_eq!(c.p2p.discover_local.len(), 3);
    }

    #[test]
    fn config_file_fills_gaps_and_cli_wins() {
        let dir = std::env::temp_dir().join(format!("cc-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("node.toml");
        std::fs::write(
            &file,
            "network = \"regtest\"\nrpcport = 1234\nport = 4321\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = parse(&["--config", f, "--datadir", "/tmp/y", "--port", "999"]).unwrap();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.rpc_addrs[0].port(), 1234);
        assert_eq!(c.p2p.listen.map(|a| a.port()), Some(999));
        std::fs::write(&file, "rpcprot = 1\n").unwrap();
        assert!(parse(&["--config", f]).is_err(), "unknown keys are refused");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn rest_is_on_only_for_loopback_binds_unless_set() {
        assert!(parse(&["--datadir", "/tmp/x"]).unwrap().rest);
        assert!(
            !parse(&["--datadir", "/tmp/x", "--rest=false"])
                .unwrap()
                .rest
        );
        assert!(parse(&["--datadir", "/tmp/x", "--rest"]).unwrap().rest);
        let open = [
            "--datadir",
            "/tmp/x",
            "--rpcbind",
            "0.0.0.0",
            "--rpcallowip",
            "10.0.0.0/8",
        ];
        assert!(!parse(&open).unwrap().rest);
        assert!(parse(&[&open[..], &["--rest=true"]].concat()).unwrap().rest);
        assert!(parse(&["--datadir", "/tmp/x", "--rest=maybe"]).is_err());
    }

    #[test]
    fn allow_ip_ranges() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.2.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(net.contains("::ffff:10.1.0.9".parse().unwrap()));
        assert!(IpNet::parse("::1")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
