//! The node's settings: command line, environment (`CHAINCORE_*`), the config file's network
//! table and its top level, merged in that order of precedence by `chaincore::config`; then
//! the defaults, filled in and checked here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;

use anyhow::{bail, Context};
use chaincore::config::{default_datadir, NodeSettings};
use chaincore::Network;
use clap::Parser;

/// ChainCore full node: validates and stores the chain, keeps a mempool, serves JSON-RPC.
///
/// Every setting is also a `CHAINCORE_*` environment variable and a key of
/// `<datadir>/chaincore.conf` (see docs/CONFIG.md).
#[derive(Parser, Debug, Default, Clone)]
#[command(name = "chaincore-node", version, about, long_about = None)]
pub struct Args {
    /// The settings (flags and environment).
    #[command(flatten)]
    pub settings: NodeSettings,
    /// Config file (TOML) [default: <datadir>/chaincore.conf, if it exists].
    #[arg(long, env = "CHAINCORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Print a chaincore.conf with every setting at its default, and exit.
    #[arg(long)]
    pub print_default_config: bool,
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
    /// Watch several nodes side by side: height, tip and its age, peers, mempool, hash rate;
    /// flags nodes that are unreachable, behind, or on a fork.
    Monitor {
        /// A node's RPC URL, `http://[user:password@]host:port`; repeat for each node.
        #[arg(long = "rpc", value_name = "URL", required = true)]
        rpc: Vec<String>,
        /// Cookie file for the URLs without user:password: one for all, or one per --rpc in
        /// order.
        #[arg(long, value_name = "FILE")]
        rpccookiefile: Vec<PathBuf>,
        /// Poll once, print and exit.
        #[arg(long)]
        once: bool,
        /// JSON instead of the table (one document with --once, else one line per poll).
        #[arg(long)]
        json: bool,
        /// Seconds between polls.
        #[arg(long, default_value_t = 2.0, value_parser = parse_interval)]
        interval: f64,
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

/// `--interval`: seconds, at least 0.1 and at most a day.
fn parse_interval(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if (0.1..=86_400.0).contains(&v) => Ok(v),
        _ => Err(format!(
            "'{s}' is not a number of seconds from 0.1 to 86400"
        )),
    }
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
    /// The config file read, if any.
    pub config_file: Option<PathBuf>,
    /// Where RPC listens.
    pub rpc_addrs: Vec<SocketAddr>,
    /// Extra allowed client networks (loopback always allowed).
    pub rpc_allow: Vec<IpNet>,
    /// RPC authentication.
    pub rpc_auth: RpcAuth,
    /// P2P settings.
    pub p2p: crate::p2p::P2pConfig,
    /// Logging: filter, format, and `debug.log` unless `--nodebuglogfile`.
    pub log: crate::logging::LogSettings,
    /// Keep the mempool in `mempool.dat` across restarts.
    pub persist_mempool: bool,
    /// The coins cache and the indexes.
    pub chain: crate::node::NodeOptions,
    /// Serve REST, `/rest/events` and `/metrics` without authentication on the RPC port.
    pub rest: bool,
}

/// An IP network (address and prefix length), from `1.2.3.4`, `10.0.0.0/8` or `::1/128`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

impl std::fmt::Display for IpNet {
    /// `ADDR/PREFIX`, as [`IpNet::parse`] reads it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
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
    /// Reads the config file, puts the command line and environment (already in `self`) over
    /// it, then fills in the defaults and checks the result.
    pub fn resolve(self) -> anyhow::Result<Config> {
        let (settings, file) = self.settings.load(self.config.as_deref())?;
        let mut config = resolve(settings)?;
        config.config_file = file;
        Ok(config)
    }
}

/// Largest `--dbcache`, in MiB.
const MAX_DBCACHE_MB: u64 = 1 << 20;

/// Fills in the defaults of merged `settings` and checks them: where every default is set.
pub fn resolve(settings: NodeSettings) -> anyhow::Result<Config> {
    let s = settings;
    let network = s.network.unwrap_or(Network::Main);
    let base = match s.datadir {
        Some(dir) => dir,
        None => default_datadir().context("HOME is not set: give --datadir")?,
    };
    let params = network.params();
    let rpc_port = s.rpcport.unwrap_or(params.rpc_port);
    let binds = match s.rpcbind {
        Some(binds) if !binds.is_empty() => binds,
        _ => vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ],
    };
    let rpc_allow = s
        .rpcallowip
        .unwrap_or_default()
        .iter()
        .map(|s| IpNet::parse(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // REST is on by default only while every RPC bind is loopback (Core's -rest advice); an
    // explicit rest = true with other binds reaches --rpcallowip clients only.
    let rest = s
        .rest
        .unwrap_or_else(|| binds.iter().all(|ip| ip.is_loopback()));
    if binds.iter().any(|ip| !ip.is_loopback()) && rpc_allow.is_empty() {
        bail!("--rpcbind on a non-loopback address needs --rpcallowip naming the clients allowed to connect");
    }
    let rpc_auth = match (s.rpcuser, s.rpcpassword) {
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
        _ => bail!(
            "--rpcuser and --rpcpassword go together: give both, or neither to use the cookie file"
        ),
    };
    let connect = s.connect.unwrap_or_default();
    let data_dir = base.join(network.to_string());
    Ok(Config {
        network,
        config_file: None,
        rpc_addrs: binds
            .into_iter()
            .map(|ip| SocketAddr::new(ip, rpc_port))
            .collect(),
        rpc_allow,
        rpc_auth,
        p2p: crate::p2p::P2pConfig {
            listen: s.listen.unwrap_or(true).then(|| {
                SocketAddr::new(
                    s.bind.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
                    s.port.unwrap_or(params.p2p_port),
                )
            }),
            connect_only: !connect.is_empty(),
            discover_local: match s.discover_local {
                Some(range) => parse_port_range(&range)?,
                None => Vec::new(),
            },
            peers: [connect, s.addnode.unwrap_or_default()].concat(),
            max_connections: s.maxconnections.unwrap_or(125),
            max_pending_headers: match s.pending_headers {
                Some(_) if network != Network::Regtest => {
                    bail!("--pending-headers is for regtest only")
                }
                Some(0) => bail!("--pending-headers must be at least 1"),
                Some(n) => n,
                None => crate::p2p::MAX_PENDING_HEADERS,
            },
        },
        log: crate::logging::LogSettings {
            level: s.log_level.unwrap_or_else(|| "info".to_string()),
            format: s.log_format.unwrap_or_default(),
            file: (!s.nodebuglogfile.unwrap_or(false)).then(|| data_dir.join("debug.log")),
        },
        data_dir,
        persist_mempool: s.persistmempool.unwrap_or(true),
        chain: crate::node::NodeOptions {
            dbcache: match s.dbcache {
                None => crate::node::NodeOptions::default().dbcache,
                Some(mb) if mb <= MAX_DBCACHE_MB => (mb << 20) as usize,
                Some(_) => bail!("--dbcache is in MiB, at most {MAX_DBCACHE_MB} (1 TiB)"),
            },
            txindex: s.txindex.unwrap_or(true),
            addressindex: s.addressindex.unwrap_or(true),
        },
        rest,
    })
}

/// What every setting is on `network` when nothing sets it, read back from [`resolve`] (so
/// the defaults are written once, there). Settings without a fixed default stay `None`: the
/// data directory (from `HOME`), the credentials (a cookie), `discover-local` (off) and the
/// hidden `pending-headers`.
pub fn defaults(network: Network) -> anyhow::Result<NodeSettings> {
    let c = resolve(NodeSettings {
        network: Some(network),
        datadir: Some(PathBuf::from("/")),
        ..NodeSettings::default()
    })?;
    let listen = c.p2p.listen;
    Ok(NodeSettings {
        network: Some(c.network),
        rpcport: c.rpc_addrs.first().map(|a| a.port()),
        rpcbind: Some(c.rpc_addrs.iter().map(|a| a.ip()).collect()),
        rpcallowip: Some(c.rpc_allow.iter().map(|n| n.to_string()).collect()),
        port: listen.map(|a| a.port()),
        bind: listen.map(|a| a.ip()),
        listen: Some(listen.is_some()),
        connect: Some(Vec::new()),
        addnode: Some(c.p2p.peers.clone()),
        maxconnections: Some(c.p2p.max_connections),
        persistmempool: Some(c.persist_mempool),
        dbcache: Some((c.chain.dbcache >> 20) as u64),
        txindex: Some(c.chain.txindex),
        addressindex: Some(c.chain.addressindex),
        rest: Some(c.rest),
        log_level: Some(c.log.level),
        log_format: Some(c.log.format),
        nodebuglogfile: Some(c.log.file.is_none()),
        ..NodeSettings::default()
    })
}

/// The text `--print-default-config` prints: every key with its help and default, the
/// network-dependent ones in a table per network.
pub fn default_config_text() -> anyhow::Result<String> {
    let defaults = Network::ALL
        .iter()
        .map(|&n| Ok((n, defaults(n)?)))
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(chaincore::config::render(&defaults)?)
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

#[cfg(test)]
mod tests {
    use super::*;
    use chaincore::config::{layer, ConfigFile};

    fn parse(args: &[&str]) -> anyhow::Result<Config> {
        let mut full = vec!["chaincore-node"];
        full.extend_from_slice(args);
        Args::try_parse_from(full)?.resolve()
    }

    /// A temporary directory of its own for one test, removed at the end.
    struct Dir(PathBuf);

    impl Dir {
        fn new(label: &str) -> Dir {
            let dir =
                std::env::temp_dir().join(format!("cc-config-{label}-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            Dir(dir)
        }

        fn arg(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn defaults_follow_the_network() {
        let dir = Dir::new("defaults");
        let c = parse(&["--network", "regtest", "--datadir", dir.arg()]).unwrap();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.data_dir, dir.0.join("regtest"));
        assert_eq!(c.config_file, None);
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
        let dir = Dir::new("bad");
        let d = dir.arg();
        assert!(parse(&["--network", "bitcoin"]).is_err());
        assert!(parse(&["--rpcport", "70000"]).is_err());
        let e = parse(&["--datadir", d, "--rpcuser", "u"]).unwrap_err();
        assert!(e.to_string().contains("go together"));
        let e = parse(&["--datadir", d, "--rpcbind", "0.0.0.0"]).unwrap_err();
        assert!(e.to_string().contains("--rpcallowip"));
        assert!(parse(&["--datadir", d, "--rpcallowip", "10.0.0.0/33"]).is_err());
        assert!(parse(&["--datadir", d, "--discover-local", "9-2"]).is_err());
        assert!(parse(&["--datadir", d, "--discover-local", "1-5000"]).is_err());
        let c = parse(&["--datadir", d, "--discover-local", "19001-19003"]).unwrap();
        assert_eq!(c.p2p.discover_local.len(), 3);
    }

    #[test]
    fn config_file_fills_gaps_and_cli_wins() {
        let dir = Dir::new("file");
        let file = dir.0.join("node.toml");
        std::fs::write(
            &file,
            "network = \"regtest\"\nrpcport = 1234\nport = 4321\n[regtest]\nlog-level = \"debug\"\n",
        )
        .unwrap();
        let f = file.to_str().unwrap();
        let c = parse(&["--config", f, "--datadir", dir.arg(), "--port", "999"]).unwrap();
        assert_eq!(c.network, Network::Regtest);
        assert_eq!(c.config_file.as_deref(), Some(file.as_path()));
        assert_eq!(c.rpc_addrs[0].port(), 1234);
        assert_eq!(c.p2p.listen.map(|a| a.port()), Some(999));
        assert_eq!(c.log.level, "debug");
        std::fs::write(&file, "rpcprot = 1\n").unwrap();
        let e = parse(&["--config", f]).unwrap_err().to_string();
        assert!(e.contains("unknown key `rpcprot`") && e.contains(f), "{e}");
        let missing = dir.0.join("missing.toml");
        let e = parse(&["--config", missing.to_str().unwrap()]).unwrap_err();
        assert!(
            e.to_string().contains("missing.toml"),
            "an explicit --config must exist"
        );
    }

    #[test]
    fn default_file_in_the_datadir() {
        let dir = Dir::new("datadir");
        let c = parse(&["--datadir", dir.arg()]).unwrap();
        assert_eq!(
            (c.network, c.config_file),
            (Network::Main, None),
            "no file is fine"
        );
        std::fs::write(
            dir.0.join("chaincore.conf"),
            "network = \"test\"\nmaxconnections = 7\n[test]\nrpcport = 5555\nconnect = [\"127.0.0.1:1\"]\n",
        )
        .unwrap();
        let c = parse(&["--datadir", dir.arg()]).unwrap();
        assert_eq!(
            c.network,
            Network::Test,
            "the top level chooses the network"
        );
        assert_eq!(c.config_file, Some(dir.0.join("chaincore.conf")));
        assert_eq!(c.rpc_addrs[0].port(), 5555, "and so the table");
        assert_eq!(c.p2p.max_connections, 7);
        assert!(c.p2p.connect_only);
        let c = parse(&["--datadir", dir.arg(), "--network", "main"]).unwrap();
        assert_eq!(
            c.rpc_addrs[0].port(),
            8732,
            "a flag's network takes its own table"
        );
        let c = parse(&["--datadir", dir.arg(), "--connect", "127.0.0.1:2"]).unwrap();
        assert_eq!(
            c.p2p.peers,
            vec!["127.0.0.1:2".parse().unwrap()],
            "a list flag replaces the file's"
        );
    }

    #[test]
    fn precedence_of_all_four_layers() {
        let text = "rpcport = 1\nport = 11\nmaxconnections = 21\n\
                    [regtest]\nrpcport = 2\nport = 12\n";
        let file = ConfigFile::parse(text, std::path::Path::new("chaincore.conf")).unwrap();
        // What clap gives for `--rpcport 4` with CHAINCORE_PORT=13 set (clap's own reading
        // of flag over environment is tested in chaincore::config, and end to end).
        let flags = Args::try_parse_from(["n", "--network", "regtest", "--rpcport", "4"])
            .unwrap()
            .settings;
        let with_env = NodeSettings {
            port: Some(13),
            ..flags
        };
        let s = layer(&with_env, Some(&file), Network::Regtest).unwrap();
        let c = resolve(NodeSettings {
            datadir: Some("/".into()),
            ..s
        })
        .unwrap();
        assert_eq!(c.rpc_addrs[0].port(), 4, "flag");
        assert_eq!(c.p2p.listen.map(|a| a.port()), Some(13), "environment");
        assert_eq!(c.p2p.max_connections, 21, "top level");
        let s = layer(&NodeSettings::default(), Some(&file), Network::Regtest).unwrap();
        assert_eq!((s.rpcport, s.port), (Some(2), Some(12)), "network table");
    }

    #[test]
    fn printed_default_config_parses_back_to_the_defaults() {
        let text = default_config_text().unwrap();
        let file = ConfigFile::parse(&text, std::path::Path::new("printed.conf")).unwrap();
        assert_eq!(file.network(), Some(Network::Main));
        for network in Network::ALL {
            let flags = NodeSettings {
                network: Some(network),
                ..NodeSettings::default()
            };
            let parsed = layer(&flags, Some(&file), network).unwrap();
            assert_eq!(parsed, defaults(network).unwrap(), "{network}");
            let with_dir = |s: NodeSettings| {
                let c = resolve(NodeSettings {
                    datadir: Some("/d".into()),
                    ..s
                })
                .unwrap();
                format!("{c:?}")
            };
            assert_eq!(with_dir(parsed), with_dir(flags), "{network}");
        }
    }

    #[test]
    fn docs_show_the_printed_default_config() {
        let doc = include_str!("../../docs/CONFIG.md");
        let text = default_config_text().unwrap();
        let block = doc
            .split("```toml\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        assert_eq!(
            block, text,
            "docs/CONFIG.md's example is what --print-default-config prints"
        );
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
        assert_eq!(IpNet::parse(&net.to_string()).unwrap(), net);
        assert!(IpNet::parse("::1")
            .unwrap()
            .contains("::1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
    }
}
