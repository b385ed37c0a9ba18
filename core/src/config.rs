//! Settings from flags, `CHAINCORE_*` environment variables and the config file
//! `<datadir>/chaincore.conf`, for every ChainCore binary: the parsing lives here once, each
//! binary reads the file itself.
//!
//! # The file
//! TOML: top-level keys, and one table per network (`[main]`, `[test]`, `[regtest]`) whose keys
//! apply on that network only. Keys are named exactly as the flags (`rpcport`, `log-level`).
//! The file holds the node's settings ([`NodeSettings`]) and the RPC client settings the
//! miner, the wallet and the cli share ([`RpcSettings`]); each binary takes the keys it knows
//! and leaves the other's, and a key neither knows is an error naming it, its line and the
//! file. `docs/CONFIG.md` shows a commented example (what `chaincore-node
//! --print-default-config` prints).
//!
//! # Precedence
//! Flag, then environment variable, then the network's table, then the top level, then the
//! default. The environment variable of a key is `CHAINCORE_` and the key in upper case with
//! `-` as `_` (`log-level` → `CHAINCORE_LOG_LEVEL`); clap reads flags and environment
//! (so the two come in one value), and [`layer`] puts them over the file's layers.
//!
//! # Which file
//! `--config FILE` (`CHAINCORE_CONFIG`) names it, and then it must exist; otherwise
//! `<datadir>/chaincore.conf`, where `datadir` is the flag or environment variable, or
//! `~/.chaincore`; a missing default file is no error. A `datadir` key in the file moves the
//! data, but no second file is looked for there.

use std::path::{Path, PathBuf};

use clap::Args as _;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use crate::Network;

/// The config file's name inside the data directory.
pub const FILE_NAME: &str = "chaincore.conf";

/// The node's settings as flags, environment variables and config file keys, all optional:
/// `None` (or a list not given) means "not set at this layer". `chaincore-node` fills in the
/// defaults after merging the layers.
#[derive(clap::Args, Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct NodeSettings {
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
    pub rpcbind: Option<Vec<std::net::IpAddr>>,
    /// Client IPs (or CIDR ranges) allowed to call RPC besides loopback; needed with a
    /// non-loopback --rpcbind.
    #[arg(long, env = "CHAINCORE_RPCALLOWIP", value_delimiter = ',')]
    pub rpcallowip: Option<Vec<String>>,
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
    pub connect: Option<Vec<std::net::SocketAddr>>,
    /// Connect to this peer and keep the connection, plus up to 8 discovered ones; repeatable.
    #[arg(long, env = "CHAINCORE_ADDNODE", value_delimiter = ',')]
    pub addnode: Option<Vec<std::net::SocketAddr>>,
    /// Accept incoming peer connections [default: true].
    #[arg(long, env = "CHAINCORE_LISTEN")]
    pub listen: Option<bool>,
    /// Address to listen for peers on [default: 0.0.0.0].
    #[arg(long, env = "CHAINCORE_BIND")]
    pub bind: Option<std::net::IpAddr>,
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
    /// Coins cache in MiB: UTXO changes kept in memory and written in one batch when it is
    /// full, every 10 minutes and at shutdown; 0 writes them with every block [default: 450].
    #[arg(long, env = "CHAINCORE_DBCACHE")]
    pub dbcache: Option<u64>,
    /// Keep the tx index, for getrawtransaction of confirmed transactions [default: true].
    #[arg(
        long,
        env = "CHAINCORE_TXINDEX",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub txindex: Option<bool>,
    /// Keep the address index, for getaddressbalance, getaddressutxos and getaddresstxids
    /// [default: true].
    #[arg(
        long,
        env = "CHAINCORE_ADDRESSINDEX",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub addressindex: Option<bool>,
    /// Log filter: error, warn, info, debug, trace, or a RUST_LOG-style directive [default: info].
    #[arg(long, env = "CHAINCORE_LOG_LEVEL")]
    pub log_level: Option<String>,
    /// Serve the unauthenticated read-only REST interface, event stream and /metrics on the RPC
    /// port (`--rest=false` turns them off) [default: true while RPC is bound to loopback only].
    #[arg(
        long,
        env = "CHAINCORE_REST",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub rest: Option<bool>,
    /// Log lines as text or as JSON objects [default: text].
    #[arg(long, env = "CHAINCORE_LOG_FORMAT", value_enum)]
    pub log_format: Option<LogFormat>,
    /// Log to the terminal only, not to <datadir>/<network>/debug.log [default: false].
    #[arg(
        long,
        env = "CHAINCORE_NODEBUGLOGFILE",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub nodebuglogfile: Option<bool>,
}

/// How the node writes log lines.
#[derive(clap::ValueEnum, Serialize, Deserialize, Debug, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl NodeSettings {
    /// Reads the config file (`config`, or `<datadir>/chaincore.conf` if it exists) and
    /// returns these settings (flags and environment) over it, with the path of the file read.
    pub fn load(
        &self,
        config: Option<&Path>,
    ) -> Result<(NodeSettings, Option<PathBuf>), ConfigError> {
        load(self, self.datadir.as_deref(), self.network, config)
    }
}

/// How a miner, wallet or cli reaches a node: the RPC client settings they share, as flags,
/// environment variables and config file keys (the keys `network`, `datadir`, `rpcport`,
/// `rpcuser` and `rpcpassword` mean the same node as the node's own), all optional.
#[derive(clap::Args, Serialize, Deserialize, Debug, Default, Clone, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RpcSettings {
    /// Network: main, test or regtest [default: main].
    #[arg(long, env = "CHAINCORE_NETWORK")]
    pub network: Option<Network>,
    /// The node's data directory, for the config file and the cookie [default: ~/.chaincore].
    #[arg(long, env = "CHAINCORE_DATADIR")]
    pub datadir: Option<PathBuf>,
    /// Host (name or IP) of the node's RPC [default: 127.0.0.1].
    #[arg(long, env = "CHAINCORE_RPCCONNECT")]
    pub rpcconnect: Option<String>,
    /// The node's RPC port [default: the network's, 8732 / 18732 / 18743].
    #[arg(long, env = "CHAINCORE_RPCPORT")]
    pub rpcport: Option<u16>,
    /// Node RPC URL, instead of rpcconnect and rpcport, e.g. http://127.0.0.1:18743.
    #[arg(long, env = "CHAINCORE_RPC_URL")]
    pub rpc_url: Option<String>,
    /// RPC user (with --rpcpassword; also --rpc-user); without both, the cookie is used.
    #[arg(long, visible_alias = "rpc-user", env = "CHAINCORE_RPCUSER")]
    pub rpcuser: Option<String>,
    /// RPC password (with --rpcuser; also --rpc-password).
    #[arg(
        long,
        visible_alias = "rpc-password",
        env = "CHAINCORE_RPCPASSWORD",
        hide_env_values = true
    )]
    pub rpcpassword: Option<String>,
    /// Cookie file; wins over rpcuser and rpcpassword [default: <datadir>/<network>/.cookie].
    #[arg(long, env = "CHAINCORE_RPC_COOKIE")]
    pub rpc_cookie: Option<PathBuf>,
}

/// The RPC client settings of a miner, wallet or cli, flattened into its arguments:
/// [`RpcSettings`] and `--config`. Call [`RpcArgs::load`] first; it reads the config file and
/// resolves [`RpcArgs::network`].
#[derive(clap::Args, Debug, Clone)]
pub struct RpcArgs {
    /// The settings: flags and environment, and after [`RpcArgs::load`] the file's too.
    #[command(flatten)]
    pub settings: RpcSettings,
    /// Config file [default: <datadir>/chaincore.conf, if it exists].
    #[arg(long, env = "CHAINCORE_CONFIG")]
    pub config: Option<PathBuf>,
    /// The network, set by [`RpcArgs::load`] (main until then).
    #[arg(skip = Network::Main)]
    pub network: Network,
}

impl RpcArgs {
    /// Reads the config file and merges it under the flags and environment, sets
    /// [`RpcArgs::network`], and checks the credentials settings; returns the file read.
    pub fn load(&mut self) -> Result<Option<PathBuf>, ConfigError> {
        let (settings, file) = load(
            &self.settings,
            self.settings.datadir.as_deref(),
            self.settings.network,
            self.config.as_deref(),
        )?;
        if settings.rpcuser.is_some() != settings.rpcpassword.is_some() {
            return Err(ConfigError::Settings(
                "rpcuser and rpcpassword go together: give both, or neither to use the cookie file"
                    .into(),
            ));
        }
        self.network = settings.network.unwrap_or(Network::Main);
        self.settings = settings;
        Ok(file)
    }

    /// The RPC URL: `rpc-url`, or `http://<rpcconnect>:<rpcport>` with the network's port by
    /// default.
    pub fn url(&self) -> String {
        if let Some(url) = &self.settings.rpc_url {
            return url.clone();
        }
        let host = self.settings.rpcconnect.as_deref().unwrap_or("127.0.0.1");
        let port = self
            .settings
            .rpcport
            .unwrap_or(self.network.params().rpc_port);
        if host.contains(':') && !host.starts_with('[') {
            format!("http://[{host}]:{port}")
        } else {
            format!("http://{host}:{port}")
        }
    }

    /// `<datadir>/<network>`, the node's directory for this network.
    pub fn network_dir(&self) -> Result<PathBuf, String> {
        let base = match &self.settings.datadir {
            Some(d) => d.clone(),
            None => default_datadir().ok_or("HOME is not set: give --datadir")?,
        };
        Ok(base.join(self.network.to_string()))
    }

    /// The cookie file to read: `rpc-cookie`, or none with `rpcuser` and `rpcpassword`, or
    /// `<datadir>/<network>/.cookie`.
    pub fn cookie_path(&self) -> Result<Option<PathBuf>, String> {
        match (&self.settings.rpc_cookie, &self.settings.rpcuser) {
            (Some(c), _) => Ok(Some(c.clone())),
            (None, Some(_)) => Ok(None),
            (None, None) => Ok(Some(self.network_dir()?.join(".cookie"))),
        }
    }

    /// `user:password` for HTTP Basic auth: the cookie file's contents, or `rpcuser` and
    /// `rpcpassword`.
    pub fn credentials(&self) -> Result<String, String> {
        match (
            self.cookie_path()?,
            &self.settings.rpcuser,
            &self.settings.rpcpassword,
        ) {
            (Some(path), _, _) => read_cookie(&path),
            (None, Some(u), Some(p)) => Ok(format!("{u}:{p}")),
            _ => Err("give --rpcuser and --rpcpassword together".into()),
        }
    }
}

/// Reads a node's cookie file (`__cookie__:<hex>`).
pub fn read_cookie(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            format!(
                "cannot read the node's cookie {} ({e}); is the node running? or pass --rpcuser/--rpcpassword",
                path.display()
            )
        })
}

/// `~/.chaincore`, or `None` if `HOME` is not set.
pub fn default_datadir() -> Option<PathBuf> {
    match std::env::var_os("HOME") {
        Some(home) if !home.is_empty() => Some(PathBuf::from(home).join(".chaincore")),
        _ => None,
    }
}

/// What went wrong reading settings.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read (an explicit `--config` that does not exist, permissions).
    #[error("cannot read config file {}: {cause}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        cause: std::io::Error,
    },
    /// The file is not TOML, or holds an unknown key or a bad value.
    #[error("invalid config file {}: {message}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What and where (line, key, expected type).
        message: String,
    },
    /// The merged settings do not fit together.
    #[error("{0}")]
    Settings(String),
}

/// A parsed and checked config file: its top-level keys and its network tables.
#[derive(Debug, Clone)]
pub struct ConfigFile {
    path: PathBuf,
    top: toml::Table,
    networks: Vec<(Network, toml::Table)>,
}

impl ConfigFile {
    /// Parses `text` (read from `path`, named in errors) and checks every key: known to
    /// [`NodeSettings`] or [`RpcSettings`], a value of the right type, network tables only
    /// as tables, `network` only at the top level.
    pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: path.to_path_buf(),
            message,
        };
        let root = DeTable::parse(text).map_err(|mut e| {
            e.set_input(Some(text));
            invalid(e.to_string().trim_end().to_string())
        })?;
        let mut file = ConfigFile {
            path: path.to_path_buf(),
            top: toml::Table::new(),
            networks: Vec::new(),
        };
        for (key, value) in root.get_ref().iter() {
            let name: &str = key.get_ref();
            match Network::ALL.iter().find(|n| n.to_string() == name) {
                Some(&network) => {
                    let DeValue::Table(table) = value.get_ref() else {
                        return Err(invalid(format!(
                            "line {}: `{name}` must be a table, [{name}], of settings for that network",
                            line_of(text, key.span().start)
                        )));
                    };
                    let mut checked = toml::Table::new();
                    for (key, value) in table.iter() {
                        let (k, v) =
                            check_entry(text, Some(network), key, value).map_err(invalid)?;
                        checked.insert(k, v);
                    }
                    file.networks.push((network, checked));
                }
                None => {
                    let (k, v) = check_entry(text, None, key, value).map_err(invalid)?;
                    file.top.insert(k, v);
                }
            }
        }
        Ok(file)
    }

    /// Reads and parses the file at `path`, which must exist.
    pub fn read(path: &Path) -> Result<ConfigFile, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|cause| ConfigError::Read {
            path: path.to_path_buf(),
            cause,
        })?;
        ConfigFile::parse(&text, path)
    }

    /// The file `config` names, which must exist; or without it `<datadir>/chaincore.conf`
    /// (`datadir` or `~/.chaincore`) if it exists.
    pub fn find(
        config: Option<&Path>,
        datadir: Option<&Path>,
    ) -> Result<Option<ConfigFile>, ConfigError> {
        if let Some(path) = config {
            return ConfigFile::read(path).map(Some);
        }
        let Some(base) = datadir.map(Path::to_path_buf).or_else(default_datadir) else {
            return Ok(None);
        };
        let path = base.join(FILE_NAME);
        match std::fs::read_to_string(&path) {
            Ok(text) => ConfigFile::parse(&text, &path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(cause) => Err(ConfigError::Read { path, cause }),
        }
    }

    /// Where the file was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The top-level `network` key, if set.
    pub fn network(&self) -> Option<Network> {
        self.top
            .get("network")
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
    }
}

/// `flags` (flags and environment, as clap parsed them) over `file`'s table for `network`
/// over its top level: each key takes the value of the highest layer that sets it (a list
/// given at a higher layer replaces the lower one). Keys `T` does not know are left out.
pub fn layer<T>(flags: &T, file: Option<&ConfigFile>, network: Network) -> Result<T, ConfigError>
where
    T: clap::Args + Serialize + DeserializeOwned,
{
    let keys = keys::<T>();
    let mut merged = toml::Table::new();
    if let Some(file) = file {
        let table = file
            .networks
            .iter()
            .filter(|(n, _)| *n == network)
            .flat_map(|(_, t)| t.iter());
        for (k, v) in file.top.iter().chain(table) {
            if keys.contains(k) {
                merged.insert(k.clone(), v.clone());
            }
        }
    }
    let flags = toml::Table::try_from(flags)
        .map_err(|e| ConfigError::Settings(format!("a setting cannot be merged: {e}")))?;
    merged.extend(flags);
    toml::Value::Table(merged)
        .try_into()
        .map_err(|e: toml::de::Error| {
            ConfigError::Settings(format!("settings do not merge: {}", e.message()))
        })
}

/// The keys `T` knows: its flags' long names.
pub fn keys<T: clap::Args>() -> Vec<String> {
    T::augment_args(clap::Command::new("keys"))
        .get_arguments()
        .filter_map(|a| a.get_long().map(str::to_string))
        .collect()
}

/// A commented config file: for each key of [`NodeSettings`] (in flag order, hidden ones
/// left out) its help and its value in `defaults` (one entry per network) at the top level
/// where the networks agree and in each network's table where they differ, a key without a
/// default commented out; then the client-only keys of [`RpcSettings`], commented out.
pub fn render(defaults: &[(Network, NodeSettings)]) -> Result<String, ConfigError> {
    let tables = defaults
        .iter()
        .map(|(n, s)| Ok((*n, toml::Table::try_from(s)?)))
        .collect::<Result<Vec<_>, toml::ser::Error>>()
        .map_err(|e| ConfigError::Settings(format!("defaults cannot be written: {e}")))?;
    let mut out = String::from(
        "# chaincore.conf: settings for chaincore-node, and the RPC settings of chaincore-miner,\n\
         # chaincore-wallet and chaincore-cli. Keys are named as the flags; a flag or a CHAINCORE_*\n\
         # environment variable wins over the file, a network's table over the top level.\n\n",
    );
    let mut per_network = Vec::new();
    let node = NodeSettings::augment_args(clap::Command::new("node"));
    for arg in node.get_arguments().filter(|a| !a.is_hide_set()) {
        let Some(key) = arg.get_long() else { continue };
        let values: Vec<Option<&toml::Value>> = tables.iter().map(|(_, t)| t.get(key)).collect();
        let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
        let agree = values.windows(2).all(|w| w[0] == w[1]);
        match values.first() {
            // `network` chooses the table, so it stays at the top level: the first network's.
            Some(Some(v)) if agree || key == "network" => {
                out.push_str(&format!("{}{key} = {v}\n\n", comment(&help)))
            }
            Some(Some(_)) => {
                out.push_str(&format!(
                    "{}\n",
                    comment(&format!("{help}; set in each network's table below"))
                ));
                per_network.push(key);
            }
            _ => out.push_str(&format!("{}# {key} =\n\n", comment(&help))),
        }
    }
    out.push_str(
        "# Read by chaincore-miner, chaincore-wallet and chaincore-cli; the node leaves them.\n\n",
    );
    let node_keys = keys::<NodeSettings>();
    let rpc = RpcSettings::augment_args(clap::Command::new("rpc"));
    for arg in rpc.get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if !node_keys.iter().any(|k| k == key) {
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            out.push_str(&format!("{}# {key} =\n\n", comment(&help)));
        }
    }
    for (network, table) in &tables {
        out.push_str(&format!("[{network}]\n"));
        for key in &per_network {
            if let Some(v) = table.get(*key) {
                out.push_str(&format!("{key} = {v}\n"));
            }
        }
        out.push('\n');
    }
    Ok(out.trim_end().to_string() + "\n")
}

/// `text` as `# ` comment lines of at most 92 columns (a longer word stays whole).
fn comment(text: &str) -> String {
    let mut out = String::new();
    let mut line = String::from("#");
    for word in text.split_whitespace() {
        if line.len() > 1 && line.len() + 1 + word.len() > 92 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("#");
        }
        line.push(' ');
        line.push_str(word);
    }
    out.push_str(&line);
    out.push('\n');
    out
}

/// Checks one `key = value` of the file (in `network`'s table, or at the top level): known,
/// of the right type; returns it as an owned TOML pair, or the message saying what is wrong.
fn check_entry(
    text: &str,
    network: Option<Network>,
    key: &Spanned<toml::de::DeString<'_>>,
    value: &Spanned<DeValue<'_>>,
) -> Result<(String, toml::Value), String> {
    let name: &str = key.get_ref();
    let line = line_of(text, key.span().start);
    let place = match network {
        Some(n) => format!("line {line}, in [{n}]"),
        None => format!("line {line}"),
    };
    if network.is_some() && name == "network" {
        return Err(format!(
            "{place}: `network` belongs at the top level (a network's table cannot choose the network)"
        ));
    }
    let node = keys::<NodeSettings>();
    let rpc = keys::<RpcSettings>();
    let (is_node, is_rpc) = (
        node.iter().any(|k| k == name),
        rpc.iter().any(|k| k == name),
    );
    if !is_node && !is_rpc {
        let mut known: Vec<&str> = node.iter().chain(&rpc).map(String::as_str).collect();
        known.sort_unstable();
        known.dedup();
        return Err(format!(
            "{place}: unknown key `{name}` (keys are named as the flags: {}; tables: [main], [test], [regtest])",
            known.join(", ")
        ));
    }
    let mut single = DeTable::new();
    single.insert(key.clone(), value.clone());
    let single = Spanned::new(value.span(), single);
    let bad = |e: toml::de::Error| format!("{place}: bad value for `{name}`: {}", e.message());
    if is_node {
        NodeSettings::deserialize(toml::Deserializer::from(single.clone())).map_err(bad)?;
    }
    if is_rpc {
        RpcSettings::deserialize(toml::Deserializer::from(single.clone())).map_err(bad)?;
    }
    let mut owned = toml::Table::deserialize(toml::Deserializer::from(single)).map_err(bad)?;
    owned
        .remove(name)
        .map(|v| (name.to_string(), v))
        .ok_or_else(|| format!("{place}: `{name}` has no value"))
}

/// The 1-based line of byte offset `at` in `text`.
fn line_of(text: &str, at: usize) -> usize {
    let before = text.as_bytes().get(..at).unwrap_or(text.as_bytes());
    before.iter().filter(|&&b| b == b'\n').count() + 1
}

/// Finds and reads the config file, and puts `flags` over it for the network the flags, or
/// else the file's top level, choose; returns the merged settings and the file read.
fn load<T>(
    flags: &T,
    datadir: Option<&Path>,
    network: Option<Network>,
    config: Option<&Path>,
) -> Result<(T, Option<PathBuf>), ConfigError>
where
    T: clap::Args + Serialize + DeserializeOwned,
{
    let file = ConfigFile::find(config, datadir)?;
    let network = network
        .or_else(|| file.as_ref().and_then(ConfigFile::network))
        .unwrap_or(Network::Main);
    let merged = layer(flags, file.as_ref(), network)?;
    Ok((merged, file.map(|f| f.path)))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Held by the tests that set or read `CHAINCORE_*` variables (the process shares them).
    static ENV: std::sync::Mutex<()> = std::sync::Mutex::new(());

    fn file(text: &str) -> Result<ConfigFile, ConfigError> {
        ConfigFile::parse(text, Path::new("/etc/cc/chaincore.conf"))
    }

    const LAYERED: &str = r#"
network = "regtest"
rpcport = 1001
port = 2001
rpcuser = "top"
rpcpassword = "top-pass"
log-level = "debug"
rpcconnect = "10.0.0.1"

[regtest]
rpcport = 1002
port = 2002
rpcuser = "net"

[test]
rpcport = 9999
"#;

    #[test]
    fn four_layers_in_order() {
        let file = file(LAYERED).unwrap();
        assert_eq!(file.network(), Some(Network::Regtest));
        // clap puts the flag over the environment variable; `layer` puts both over the file.
        let flags = NodeSettings {
            rpcport: Some(1004),
            port: Some(2003),
            ..Default::default()
        };
        let s = layer(&flags, Some(&file), Network::Regtest).unwrap();
        assert_eq!(
            s.rpcport,
            Some(1004),
            "flag/env over network table over top level"
        );
        assert_eq!(s.port, Some(2003), "flag/env over network table");
        assert_eq!(
            s.rpcuser.as_deref(),
            Some("net"),
            "network table over top level"
        );
        assert_eq!(
            s.rpcpassword.as_deref(),
            Some("top-pass"),
            "top level fills the rest"
        );
        assert_eq!(s.log_level.as_deref(), Some("debug"));
        assert_eq!(s.network, Some(Network::Regtest));
        let none = layer(&NodeSettings::default(), Some(&file), Network::Regtest).unwrap();
        assert_eq!((none.rpcport, none.port), (Some(1002), Some(2002)));
        let main = layer(&NodeSettings::default(), Some(&file), Network::Main).unwrap();
        assert_eq!(
            main.rpcport,
            Some(1001),
            "other networks' tables do not apply"
        );
        // The client reads the same file: its keys, and the shared ones.
        let rpc = layer(&RpcSettings::default(), Some(&file), Network::Regtest).unwrap();
        assert_eq!(rpc.rpcport, Some(1002));
        assert_eq!(rpc.rpcconnect.as_deref(), Some("10.0.0.1"));
        assert_eq!(rpc.rpcuser.as_deref(), Some("net"));
    }

    #[test]
    fn flag_beats_environment() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        std::env::set_var("CHAINCORE_RPCCONNECT", "from-env");
        std::env::set_var("CHAINCORE_RPC_URL", "http://env:1/");
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            rpc: RpcSettings,
        }
        use clap::Parser;
        let cli = Cli::try_parse_from(["x", "--rpcconnect", "from-flag"]).unwrap();
        std::env::remove_var("CHAINCORE_RPCCONNECT");
        std::env::remove_var("CHAINCORE_RPC_URL");
        assert_eq!(cli.rpc.rpcconnect.as_deref(), Some("from-flag"));
        assert_eq!(cli.rpc.rpc_url.as_deref(), Some("http://env:1/"));
        let file =
            file("rpc-url = \"http://file:2/\"\n[main]\nrpc-url = \"http://table:3/\"\n").unwrap();
        let s = layer(&cli.rpc, Some(&file), Network::Main).unwrap();
        assert_eq!(
            s.rpc_url.as_deref(),
            Some("http://env:1/"),
            "env over network table"
        );
    }

    #[test]
    fn unknown_keys_name_key_line_and_file() {
        let e = file("rpcport = 1\nrpcprot = 2\n").unwrap_err().to_string();
        assert!(e.contains("/etc/cc/chaincore.conf"), "{e}");
        assert!(e.contains("line 2"), "{e}");
        assert!(e.contains("unknown key `rpcprot`"), "{e}");
        let e = file("[regtest]\nlog_level = \"info\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("unknown key `log_level`") && e.contains("[regtest]"),
            "{e}"
        );
        assert!(
            e.contains("log-level"),
            "the message lists the real names: {e}"
        );
        let e = file("[regtest]\nnetwork = \"main\"\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("top level"), "{e}");
        let e = file("regtest = 5\n").unwrap_err().to_string();
        assert!(e.contains("must be a table"), "{e}");
        let e = file("[signet]\nrpcport = 1\n").unwrap_err().to_string();
        assert!(e.contains("unknown key `signet`"), "{e}");
    }

    #[test]
    fn bad_values_name_key_line_file_and_type() {
        let e = file("\n\n[test]\nrpcport = \"x\"\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/etc/cc/chaincore.conf") && e.contains("line 4"),
            "{e}"
        );
        assert!(e.contains("`rpcport`") && e.contains("u16"), "{e}");
        let e = file("rpcport = 70000\n").unwrap_err().to_string();
        assert!(e.contains("`rpcport`"), "{e}");
        let e = file("network = \"bitcoin\"\n").unwrap_err().to_string();
        assert!(e.contains("`network`") && e.contains("regtest"), "{e}");
        let e = file("connect = [\"nope\"]\n").unwrap_err().to_string();
        assert!(e.contains("`connect`"), "{e}");
        let e = file("rpcport = \n").unwrap_err().to_string();
        assert!(e.contains("line 1"), "not TOML: {e}");
    }

    #[test]
    fn env_names_follow_the_keys() {
        for args in [
            NodeSettings::augment_args(clap::Command::new("n")),
            RpcSettings::augment_args(clap::Command::new("r")),
        ] {
            for arg in args.get_arguments() {
                let key = arg.get_long().unwrap();
                let env = arg.get_env().unwrap().to_str().unwrap();
                assert_eq!(
                    env,
                    format!("CHAINCORE_{}", key.to_uppercase().replace('-', "_"))
                );
            }
        }
    }

    #[test]
    fn keys_are_the_serde_names() {
        let full = NodeSettings {
            network: Some(Network::Test),
            datadir: Some("/d".into()),
            rpcport: Some(1),
            rpcbind: Some(vec![]),
            rpcallowip: Some(vec![]),
            rpcuser: Some("u".into()),
            rpcpassword: Some("p".into()),
            port: Some(2),
            connect: Some(vec![]),
            addnode: Some(vec![]),
            listen: Some(true),
            bind: Some("0.0.0.0".parse().unwrap()),
            discover_local: Some("1-2".into()),
            maxconnections: Some(3),
            pending_headers: Some(4),
            persistmempool: Some(false),
            dbcache: Some(5),
            txindex: Some(false),
            addressindex: Some(true),
            log_level: Some("info".into()),
            rest: Some(true),
            log_format: Some(LogFormat::Json),
            nodebuglogfile: Some(true),
        };
        let mut written: Vec<String> = toml::Table::try_from(&full)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut flags = keys::<NodeSettings>();
        written.sort();
        flags.sort();
        assert_eq!(written, flags);
        let text = toml::to_string(&full).unwrap();
        let back = layer(
            &NodeSettings::default(),
            Some(&file(&text).unwrap()),
            Network::Main,
        )
        .unwrap();
        assert_eq!(back, full);
        assert!(
            toml::Table::try_from(NodeSettings::default())
                .unwrap()
                .is_empty(),
            "unset keys are not written"
        );
        let rpc = RpcSettings {
            network: Some(Network::Main),
            datadir: Some("/d".into()),
            rpcconnect: Some("h".into()),
            rpcport: Some(1),
            rpc_url: Some("u".into()),
            rpcuser: Some("u".into()),
            rpcpassword: Some("p".into()),
            rpc_cookie: Some("/c".into()),
        };
        let mut written: Vec<String> = toml::Table::try_from(&rpc)
            .unwrap()
            .keys()
            .cloned()
            .collect();
        let mut flags = keys::<RpcSettings>();
        written.sort();
        flags.sort();
        assert_eq!(written, flags);
    }

    fn rpc_args(datadir: &Path, args: &[&str]) -> Result<RpcArgs, ConfigError> {
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            rpc: RpcArgs,
        }
        use clap::Parser;
        let mut full = vec!["x", "--datadir", datadir.to_str().unwrap()];
        full.extend_from_slice(args);
        let mut rpc = Cli::try_parse_from(full).unwrap().rpc;
        rpc.load().map(|_| rpc)
    }

    #[test]
    fn clients_find_the_node_from_datadir_and_network() {
        let _env = ENV.lock().unwrap_or_else(|e| e.into_inner());
        let dir = std::env::temp_dir().join(format!("cc-core-config-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("regtest")).unwrap();
        let rpc = rpc_args(&dir, &["--network", "regtest"]).unwrap();
        assert_eq!(
            rpc.url(),
            "http://127.0.0.1:18743",
            "no file: the network's port"
        );
        std::fs::write(
            dir.join(FILE_NAME),
            "rpcconnect = \"::1\"\n[regtest]\nrpcport = 4242\nmaxconnections = 3\n",
        )
        .unwrap();
        let rpc = rpc_args(&dir, &["--network", "regtest"]).unwrap();
        assert_eq!(rpc.network, Network::Regtest);
        assert_eq!(rpc.url(), "http://[::1]:4242");
        assert_eq!(
            rpc.cookie_path().unwrap(),
            Some(dir.join("regtest").join(".cookie"))
        );
        std::fs::write(dir.join("regtest").join(".cookie"), "__cookie__:abc\n").unwrap();
        assert_eq!(rpc.credentials().unwrap(), "__cookie__:abc");
        let rpc = rpc_args(
            &dir,
            &[
                "--network",
                "regtest",
                "--rpc-user",
                "u",
                "--rpc-password",
                "p",
            ],
        )
        .unwrap();
        assert_eq!(rpc.credentials().unwrap(), "u:p");
        let e = rpc_args(&dir, &["--rpcuser", "u"]).unwrap_err();
        assert!(e.to_string().contains("go together"), "{e}");
        let e = rpc_args(&dir, &["--config", dir.join("nope.conf").to_str().unwrap()]).unwrap_err();
        assert!(
            e.to_string().contains("nope.conf"),
            "an explicit --config must exist: {e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
