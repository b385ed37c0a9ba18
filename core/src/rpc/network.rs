//! Peers, connections and bans.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde::{Deserialize, Serialize};

use super::param::{coins, Param};
use crate::Amount;

/// Peers, connections and bans.
#[rpc(server, client)]
pub trait Net {
    /// Connected peers (Core's shape).
    #[method(name = "getpeerinfo")]
    async fn get_peer_info(&self) -> RpcResult<Vec<PeerInfo>>;

    /// Number of connected peers.
    #[method(name = "getconnectioncount")]
    async fn get_connection_count(&self) -> RpcResult<usize>;

    /// Connects to a peer: `add` keeps the connection, `onetry` tries once.
    #[method(name = "addnode")]
    async fn add_node(&self, node: Param<String>, command: Param<String>) -> RpcResult<()>;

    /// Node and network state (Core's shape).
    #[method(name = "getnetworkinfo")]
    async fn get_network_info(&self) -> RpcResult<NetworkInfo>;

    /// Drops the connection to a peer given as `IP:PORT`.
    #[method(name = "disconnectnode")]
    async fn disconnect_node(&self, address: Param<String>) -> RpcResult<()>;

    /// Known peer addresses.
    #[method(name = "getnodeaddresses")]
    async fn get_node_addresses(&self, count: Option<Param<usize>>) -> RpcResult<Vec<NodeAddress>>;

    /// Bans (`add`, optional seconds, default 24 h) or unbans (`remove`) an IP.
    #[method(name = "setban")]
    async fn set_ban(
        &self,
        subnet: Param<String>,
        command: Param<String>,
        bantime: Option<Param<u64>>,
    ) -> RpcResult<()>;

    /// Current bans.
    #[method(name = "listbanned")]
    async fn list_banned(&self) -> RpcResult<Vec<Ban>>;

    /// Lifts every ban.
    #[method(name = "clearbanned")]
    async fn clear_banned(&self) -> RpcResult<()>;

    /// Bytes received from and sent to peers since the node started, and the time (Core's
    /// shape, without `uploadtarget`).
    #[method(name = "getnettotals")]
    async fn get_net_totals(&self) -> RpcResult<NetTotals>;

    /// Sends a ping to every peer.
    #[method(name = "ping")]
    async fn ping(&self) -> RpcResult<()>;
}

/// How a peer is connected, as `getpeerinfo` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ConnectionType {
    /// It connected to us.
    Inbound,
    /// We connected because the operator asked (`--connect`, `--addnode`, `addnode`).
    Manual,
    /// We connected to a discovered address.
    OutboundFullRelay,
}

/// One peer in `getpeerinfo`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The node's id for the connection.
    pub id: u64,
    /// The peer's `IP:PORT`.
    pub addr: String,
    /// True if it connected to us.
    pub inbound: bool,
    /// True if the operator asked for it.
    pub addnode: bool,
    /// When the connection opened (Unix seconds).
    pub conntime: u64,
    /// Its protocol version (null before its `version`).
    pub version: Option<i32>,
    /// Its user agent (null before its `version`).
    pub subver: Option<String>,
    /// The height it announced (null before its `version`).
    pub startingheight: Option<i32>,
    /// Round trip of its last `pong` to one of our pings, in seconds (absent before one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pingtime: Option<f64>,
    /// We asked it to push new blocks to us as compact blocks (BIP152 high bandwidth).
    pub bip152_hb_to: bool,
    /// It asked us to push new blocks to it as compact blocks.
    pub bip152_hb_from: bool,
    /// How it is connected.
    pub connection_type: ConnectionType,
}

/// `getnetworkinfo`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkInfo {
    /// The node's version as a number.
    pub version: u32,
    /// The user agent it sends peers.
    pub subversion: String,
    /// The P2P protocol version.
    pub protocolversion: i32,
    /// Services offered, 16 hex digits.
    pub localservices: String,
    /// Always true.
    pub networkactive: bool,
    /// Connected peers.
    pub connections: usize,
    /// Lowest relay fee rate, coins per 1,000 bytes.
    #[serde(with = "coins")]
    pub relayfee: Amount,
    /// Warnings (none).
    pub warnings: Vec<String>,
}

/// A known address in `getnodeaddresses`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeAddress {
    /// IP address.
    pub address: String,
    /// Port.
    pub port: u16,
    /// Services it announced.
    pub services: u64,
}

/// A ban in `listbanned`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ban {
    /// The banned address with its prefix length (`192.0.2.1/32`).
    pub address: String,
    /// When it ends (Unix seconds).
    pub banned_until: u64,
    /// Seconds left.
    pub time_remaining: u64,
}

/// `getnettotals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetTotals {
    /// Bytes received from peers.
    pub totalbytesrecv: u64,
    /// Bytes sent to peers.
    pub totalbytessent: u64,
    /// The node's clock (Unix milliseconds).
    pub timemillis: u64,
}
