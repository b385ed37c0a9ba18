//! The node's JSON-RPC interface, defined once, one trait per topic as Bitcoin Core groups its
//! methods: the node implements each generated `*Server` trait (and merges them into one
//! module), the miner and wallet call the generated `*Client` traits.
//!
//! Method names, parameter order, result shapes and error codes follow Bitcoin Core. Every
//! result is a serde type declared next to its method (shaped like Core's, so the node answers
//! with it and the miner and wallet read it: a renamed field breaks them at compile time); every
//! parameter is a [`Param`], which turns a wrong JSON type into Core's `-3` "Expected type …".
//! `docs/RPC.md` documents every method, and [`help`] holds what the `help` method says.

pub mod address;
pub mod blockchain;
pub mod control;
pub mod help;
pub mod legacy;
pub mod mempool;
pub mod mining;
pub mod network;
pub mod param;
pub mod rawtx;
pub mod rest;

pub use address::{AddressIndexClient, AddressIndexServer};
pub use blockchain::{BlockchainClient, BlockchainServer};
pub use control::{ControlClient, ControlServer};
pub use mempool::{MempoolClient, MempoolServer};
pub use mining::{MiningClient, MiningServer};
pub use network::{NetClient, NetServer};
pub use param::{JsonType, Param};
pub use rawtx::{RawTransactionsClient, RawTransactionsServer};

/// Bitcoin Core's RPC error codes that this interface uses.
pub mod code {
    /// Generic application error.
    pub const MISC_ERROR: i32 = -1;
    /// Unexpected type passed as a parameter.
    pub const TYPE_ERROR: i32 = -3;
    /// Invalid address or key, or unknown block / transaction.
    pub const INVALID_ADDRESS_OR_KEY: i32 = -5;
    /// Invalid, missing or duplicate parameter.
    pub const INVALID_PARAMETER: i32 = -8;
    /// Database error.
    pub const DATABASE_ERROR: i32 = -20;
    /// Error parsing or validating a structure in raw format.
    pub const DESERIALIZATION_ERROR: i32 = -22;
    /// General error during transaction or block submission.
    pub const VERIFY_ERROR: i32 = -25;
    /// Transaction or block was rejected by network rules.
    pub const VERIFY_REJECTED: i32 = -26;
    /// Transaction already in the chain.
    pub const VERIFY_ALREADY_IN_CHAIN: i32 = -27;
    /// The node named is not connected.
    pub const CLIENT_NODE_NOT_CONNECTED: i32 = -29;
    /// An invalid IP or subnet.
    pub const CLIENT_INVALID_IP_OR_SUBNET: i32 = -30;
    /// Peer-to-peer networking is not running (the node is shutting down).
    pub const CLIENT_P2P_DISABLED: i32 = -31;
}

/// Connects to a node's RPC over HTTP with Basic credentials (`user:password`).
#[cfg(feature = "rpc-client")]
pub fn http_client(
    url: &str,
    credentials: &str,
    timeout: std::time::Duration,
) -> Result<jsonrpsee_http_client::HttpClient, String> {
    use base64::Engine;
    use jsonrpsee_http_client::{HeaderMap, HeaderValue, HttpClientBuilder};
    let auth = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    );
    let mut headers = HeaderMap::new();
    headers.insert(
        "Authorization",
        HeaderValue::from_str(&auth)
            .map_err(|_| "credentials contain characters HTTP cannot carry".to_string())?,
    );
    HttpClientBuilder::default()
        .set_headers(headers)
        .request_timeout(timeout)
        .build(url)
        .map_err(|e| format!("bad RPC URL '{url}': {e}"))
}

/// True if the node refused the credentials (HTTP 401 or 403).
#[cfg(feature = "rpc-client")]
pub fn is_auth_failure(e: &jsonrpsee::core::client::Error) -> bool {
    match e {
        jsonrpsee::core::client::Error::Transport(t) => {
            let text = t.to_string();
            text.contains("401") || text.contains("403")
        }
        _ => false,
    }
}

/// How the miner and wallet reach a node: the flags they share, and what they resolve to.
#[cfg(feature = "rpc-client")]
#[derive(clap::Args, Debug, Clone)]
pub struct NodeArgs {
    /// Network: main, test or regtest.
    #[arg(long, env = "CHAINCORE_NETWORK", default_value = "main")]
    pub network: crate::Network,
    /// Node RPC URL [default: http://127.0.0.1:<the network's RPC port>].
    #[arg(long, env = "CHAINCORE_RPC_URL")]
    pub rpc_url: Option<String>,
    /// Cookie file [default: <datadir>/<network>/.cookie].
    #[arg(long, env = "CHAINCORE_RPC_COOKIE", conflicts_with_all = ["rpc_user", "rpc_password"])]
    pub rpc_cookie: Option<std::path::PathBuf>,
    /// RPC user (with --rpc-password).
    #[arg(long, env = "CHAINCORE_RPC_USER", requires = "rpc_password")]
    pub rpc_user: Option<String>,
    /// RPC password (with --rpc-user).
    #[arg(
        long,
        env = "CHAINCORE_RPC_PASSWORD",
        requires = "rpc_user",
        hide_env_values = true
    )]
    pub rpc_password: Option<String>,
    /// The node's data directory, for default paths [default: ~/.chaincore].
    #[arg(long, env = "CHAINCORE_DATADIR")]
    pub datadir: Option<std::path::PathBuf>,
}

#[cfg(feature = "rpc-client")]
impl NodeArgs {
    /// The RPC URL to use.
    pub fn url(&self) -> String {
        self.rpc_url
            .clone()
            .unwrap_or_else(|| format!("http://127.0.0.1:{}", self.network.params().rpc_port))
    }

    /// `<datadir>/<network>`, the node's directory for this network.
    pub fn network_dir(&self) -> Result<std::path::PathBuf, String> {
        let base = match &self.datadir {
            Some(d) => d.clone(),
            None => match std::env::var_os("HOME") {
                Some(h) if !h.is_empty() => std::path::PathBuf::from(h).join(".chaincore"),
                _ => return Err("HOME is not set: give --datadir".into()),
            },
        };
        Ok(base.join(self.network.to_string()))
    }

    /// The cookie file to read, or `None` with `--rpc-user`/`--rpc-password`.
    pub fn cookie_path(&self) -> Result<Option<std::path::PathBuf>, String> {
        if self.rpc_user.is_some() && self.rpc_password.is_some() {
            return Ok(None);
        }
        match &self.rpc_cookie {
            Some(c) => Ok(Some(c.clone())),
            None => Ok(Some(self.network_dir()?.join(".cookie"))),
        }
    }

    /// `user:password` for HTTP Basic auth: the flags, or the cookie file's contents.
    pub fn credentials(&self) -> Result<String, String> {
        match (self.cookie_path()?, &self.rpc_user, &self.rpc_password) {
            (None, Some(u), Some(p)) => Ok(format!("{u}:{p}")),
            (Some(path), _, _) => read_cookie(&path),
            _ => Err("give --rpc-user and --rpc-password together".into()),
        }
    }
}

/// Reads a node's cookie file (`__cookie__:<hex>`).
#[cfg(feature = "rpc-client")]
pub fn read_cookie(path: &std::path::Path) -> Result<String, String> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_string())
        .map_err(|e| {
            format!(
                "cannot read the node's cookie {} ({e}); is the node running? or pass --rpc-user/--rpc-password",
                path.display()
            )
        })
}
