//! The node's JSON-RPC interface, defined once: the node implements the generated
//! `RpcServer` trait, the miner and wallet call the generated `RpcClient`.
//!
//! Method names, parameter order, result shapes and error codes follow Bitcoin Core. Results
//! are JSON values shaped like Core's; `docs/RPC.md` documents every method.

pub mod legacy;

use jsonrpsee::core::{RpcResult, SubscriptionResult};
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

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
}

/// ChainCore's JSON-RPC methods.
#[rpc(server, client)]
pub trait Rpc {
    /// State of the chain (Core's shape).
    #[method(name = "getblockchaininfo")]
    async fn get_blockchain_info(&self) -> RpcResult<Value>;

    /// Hash of the best block.
    #[method(name = "getbestblockhash")]
    async fn get_best_block_hash(&self) -> RpcResult<String>;

    /// Height of the best block.
    #[method(name = "getblockcount")]
    async fn get_block_count(&self) -> RpcResult<u32>;

    /// Hash of the active-chain block at `height`.
    #[method(name = "getblockhash")]
    async fn get_block_hash(&self, height: i64) -> RpcResult<String>;

    /// A block: hex (verbosity 0), JSON with txids (1) or with decoded transactions (2).
    #[method(name = "getblock")]
    async fn get_block(&self, blockhash: String, verbosity: Option<Value>) -> RpcResult<Value>;

    /// A header as JSON (`verbose` true, the default) or hex.
    #[method(name = "getblockheader")]
    async fn get_block_header(&self, blockhash: String, verbose: Option<bool>) -> RpcResult<Value>;

    /// Every known branch tip.
    #[method(name = "getchaintips")]
    async fn get_chain_tips(&self) -> RpcResult<Value>;

    /// Difficulty of the best block relative to `0x1d00ffff`.
    #[method(name = "getdifficulty")]
    async fn get_difficulty(&self) -> RpcResult<f64>;

    /// An unspent output, or null.
    #[method(name = "gettxout")]
    async fn get_tx_out(
        &self,
        txid: String,
        n: u32,
        include_mempool: Option<bool>,
    ) -> RpcResult<Value>;

    /// Statistics and a hash of the UTXO set.
    #[method(name = "gettxoutsetinfo")]
    async fn get_tx_out_set_info(&self) -> RpcResult<Value>;

    /// Checks the active chain's blocks and, at level 4, that the UTXO set equals a replay.
    #[method(name = "verifychain")]
    async fn verify_chain(&self, checklevel: Option<u32>, nblocks: Option<u32>) -> RpcResult<bool>;

    /// A BIP22 block template; with `longpollid`, waits for a change.
    #[method(name = "getblocktemplate")]
    async fn get_block_template(&self, template_request: Option<Value>) -> RpcResult<Value>;

    /// Submits a block: null if accepted, else a reason string.
    #[method(name = "submitblock")]
    async fn submit_block(&self, hexdata: String, dummy: Option<Value>) -> RpcResult<Value>;

    /// Mining-related state.
    #[method(name = "getmininginfo")]
    async fn get_mining_info(&self) -> RpcResult<Value>;

    /// Estimated hashes per second over the last `nblocks` blocks (default 120).
    #[method(name = "getnetworkhashps")]
    async fn get_network_hash_ps(
        &self,
        nblocks: Option<i64>,
        height: Option<i64>,
    ) -> RpcResult<f64>;

    /// Mines `nblocks` blocks to `address` in-process; returns their hashes.
    #[method(name = "generatetoaddress")]
    async fn generate_to_address(
        &self,
        nblocks: u32,
        address: String,
        maxtries: Option<u64>,
    ) -> RpcResult<Vec<String>>;

    /// Validates and adds a transaction to the mempool; returns its txid.
    #[method(name = "sendrawtransaction")]
    async fn send_raw_transaction(
        &self,
        hexstring: String,
        maxfeerate: Option<Value>,
    ) -> RpcResult<String>;

    /// Whether transactions would be accepted, without adding them.
    #[method(name = "testmempoolaccept")]
    async fn test_mempool_accept(
        &self,
        rawtxs: Vec<String>,
        maxfeerate: Option<Value>,
    ) -> RpcResult<Value>;

    /// A mempool or active-chain transaction, as hex or JSON.
    #[method(name = "getrawtransaction")]
    async fn get_raw_transaction(
        &self,
        txid: String,
        verbose: Option<Value>,
        blockhash: Option<String>,
    ) -> RpcResult<Value>;

    /// Decodes a transaction's hex.
    #[method(name = "decoderawtransaction")]
    async fn decode_raw_transaction(&self, hexstring: String) -> RpcResult<Value>;

    /// Txids in the mempool, or (verbose) entries by txid.
    #[method(name = "getrawmempool")]
    async fn get_raw_mempool(&self, verbose: Option<bool>) -> RpcResult<Value>;

    /// Mempool size and limits.
    #[method(name = "getmempoolinfo")]
    async fn get_mempool_info(&self) -> RpcResult<Value>;

    /// Bitcoin Core's fee estimate for confirmation within `conf_target` blocks: `feerate`
    /// (coins per 1,000 bytes) and `blocks`, or `errors` when the node has no data.
    #[method(name = "estimatesmartfee")]
    async fn estimate_smart_fee(
        &self,
        conf_target: u32,
        estimate_mode: Option<String>,
    ) -> RpcResult<Value>;

    /// Writes the mempool to `mempool.dat` now (it is also written at shutdown and every two
    /// minutes); answers `{"filename": path}`.
    #[method(name = "savemempool")]
    async fn save_mempool(&self) -> RpcResult<Value>;

    /// One mempool entry.
    #[method(name = "getmempoolentry")]
    async fn get_mempool_entry(&self, txid: String) -> RpcResult<Value>;

    /// Confirmed and unconfirmed balance of addresses (`{"addresses": [...]}` or one address).
    #[method(name = "getaddressbalance")]
    async fn get_address_balance(&self, addresses: Value) -> RpcResult<Value>;

    /// Unspent outputs of addresses, confirmed and in the mempool.
    #[method(name = "getaddressutxos")]
    async fn get_address_utxos(&self, addresses: Value) -> RpcResult<Value>;

    /// Txids touching addresses, oldest first, then mempool ones.
    #[method(name = "getaddresstxids")]
    async fn get_address_txids(&self, addresses: Value) -> RpcResult<Value>;

    /// Marks a block invalid and moves off it.
    #[method(name = "invalidateblock")]
    async fn invalidate_block(&self, blockhash: String) -> RpcResult<()>;

    /// Removes the invalid mark from a block and its relatives.
    #[method(name = "reconsiderblock")]
    async fn reconsider_block(&self, blockhash: String) -> RpcResult<()>;

    /// Connected peers (Core's shape).
    #[method(name = "getpeerinfo")]
    async fn get_peer_info(&self) -> RpcResult<Value>;

    /// Number of connected peers.
    #[method(name = "getconnectioncount")]
    async fn get_connection_count(&self) -> RpcResult<usize>;

    /// Connects to a peer: `add` keeps the connection, `onetry` tries once.
    #[method(name = "addnode")]
    async fn add_node(&self, node: String, command: String) -> RpcResult<()>;

    /// Node and network state (Core's shape).
    #[method(name = "getnetworkinfo")]
    async fn get_network_info(&self) -> RpcResult<Value>;

    /// Drops the connection to a peer given as `IP:PORT`.
    #[method(name = "disconnectnode")]
    async fn disconnect_node(&self, address: String) -> RpcResult<()>;

    /// Known peer addresses.
    #[method(name = "getnodeaddresses")]
    async fn get_node_addresses(&self, count: Option<usize>) -> RpcResult<Value>;

    /// Bans (`add`, optional seconds, default 24 h) or unbans (`remove`) an IP.
    #[method(name = "setban")]
    async fn set_ban(&self, subnet: String, command: String, bantime: Option<u64>)
        -> RpcResult<()>;

    /// Current bans.
    #[method(name = "listbanned")]
    async fn list_banned(&self) -> RpcResult<Value>;

    /// Lifts every ban.
    #[method(name = "clearbanned")]
    async fn clear_banned(&self) -> RpcResult<()>;

    /// Sends a ping to every peer.
    #[method(name = "ping")]
    async fn ping(&self) -> RpcResult<()>;

    /// Seconds since the node started.
    #[method(name = "uptime")]
    async fn uptime(&self) -> RpcResult<u64>;

    /// Stops the node cleanly.
    #[method(name = "stop")]
    async fn stop(&self) -> RpcResult<String>;

    /// WebSocket only: pushes `{"hash","height"}` for every new best tip.
    #[subscription(name = "subscribenewtip", unsubscribe = "unsubscribenewtip", item = Value)]
    async fn subscribe_new_tip(&self) -> SubscriptionResult;

    /// WebSocket only: pushes the txid of every transaction accepted into the mempool.
    #[subscription(name = "subscribenewtx", unsubscribe = "unsubscribenewtx", item = String)]
    async fn subscribe_new_tx(&self) -> SubscriptionResult;

    /// Lists the methods, or describes one.
    #[method(name = "help")]
    async fn help(&self, command: Option<String>) -> RpcResult<String>;
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
