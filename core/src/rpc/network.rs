//! Peers, connections and bans.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// Peers, connections and bans.
#[rpc(server, client)]
pub trait Net {
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

    /// Bytes received from and sent to peers since the node started, and the time (Core's
    /// shape, without `uploadtarget`).
    #[method(name = "getnettotals")]
    async fn get_net_totals(&self) -> RpcResult<Value>;

    /// Sends a ping to every peer.
    #[method(name = "ping")]
    async fn ping(&self) -> RpcResult<()>;
}
