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
