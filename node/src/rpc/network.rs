//! Network methods: peers, connections, addresses and bans. Each asks the P2P manager through
//! the handle; once P2P has stopped (the node is shutting down) they answer Core's -31.

use std::time::Duration;

use chaincore::rpc::network::{Ban, NetTotals, NetworkInfo, NodeAddress, PeerInfo};
use chaincore::rpc::{code, NetServer, Param};
use chaincore::Amount;
use jsonrpsee::core::{async_trait, RpcResult};

use super::Rpc;

use super::error::{err, ToRpcError};

#[async_trait]
impl NetServer for Rpc {
    async fn get_peer_info(&self) -> RpcResult<Vec<PeerInfo>> {
        self.p2p.peer_info().await.map_err(|e| e.to_rpc_error())
    }

    async fn get_connection_count(&self) -> RpcResult<usize> {
        self.p2p
            .connection_count()
            .await
            .map_err(|e| e.to_rpc_error())
    }

    async fn add_node(&self, node: Param<String>, command: Param<String>) -> RpcResult<()> {
        let (node, command) = (node.get()?, command.get()?);
        let addr: std::net::SocketAddr = node
            .parse()
            .map_err(|_| err(code::INVALID_PARAMETER, format!("'{node}' is not IP:PORT")))?;
        let keep = match command.as_str() {
            "add" => true,
            "onetry" => false,
            _ => {
                return Err(err(
                    code::INVALID_PARAMETER,
                    "command must be 'add' or 'onetry'",
                ))
            }
        };
        self.p2p.add_node(addr, keep).map_err(|e| e.to_rpc_error())
    }

    async fn get_network_info(&self) -> RpcResult<NetworkInfo> {
        let connections = self
            .p2p
            .connection_count()
            .await
            .map_err(|e| e.to_rpc_error())?;
        Ok(NetworkInfo {
            version: 10000,
            subversion: format!("/chaincore:{}/", env!("CARGO_PKG_VERSION")),
            protocolversion: crate::p2p::message::PROTOCOL_VERSION,
            localservices: "0000000000000000".to_string(),
            networkactive: true,
            connections,
            relayfee: Amount::from_units(crate::mempool::MIN_RELAY_FEE_RATE * 1000),
            warnings: Vec::new(),
        })
    }

    async fn disconnect_node(&self, address: Param<String>) -> RpcResult<()> {
        let address = address.get()?;
        let addr: std::net::SocketAddr = address.parse().map_err(|_| {
            err(
                code::INVALID_PARAMETER,
                format!("'{address}' is not IP:PORT"),
            )
        })?;
        if self
            .p2p
            .disconnect(addr)
            .await
            .map_err(|e| e.to_rpc_error())?
        {
            Ok(())
        } else {
            Err(err(
                code::CLIENT_NODE_NOT_CONNECTED,
                "Node not found in connected nodes",
            ))
        }
    }

    async fn get_node_addresses(&self, count: Option<Param<usize>>) -> RpcResult<Vec<NodeAddress>> {
        // As Core: 0 means all of them.
        let count = match Param::optional(count)?.unwrap_or(1) {
            0 => usize::MAX,
            n => n,
        };
        let list = self
            .p2p
            .known_addresses(count)
            .await
            .map_err(|e| e.to_rpc_error())?;
        Ok(list
            .iter()
            .map(|a| NodeAddress {
                address: a.ip().to_string(),
                port: a.port(),
                services: 0,
            })
            .collect())
    }

    async fn set_ban(
        &self,
        subnet: Param<String>,
        command: Param<String>,
        bantime: Option<Param<u64>>,
    ) -> RpcResult<()> {
        let (subnet, command) = (subnet.get()?, command.get()?);
        let bantime = Param::optional(bantime)?;
        let (address, prefix) = match subnet.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (subnet.as_str(), None),
        };
        let invalid = || {
            err(
                code::CLIENT_INVALID_IP_OR_SUBNET,
                format!("Error: Invalid IP/Subnet '{subnet}'"),
            )
        };
        let ip: std::net::IpAddr = address.parse().map_err(|_| invalid())?;
        // Bans are per address: a wider subnet would silently ban only its first address.
        let whole = if ip.is_ipv4() { "32" } else { "128" };
        if prefix.is_some_and(|p| p != whole) {
            return Err(err(
                code::CLIENT_INVALID_IP_OR_SUBNET,
                format!("Error: only single addresses can be banned (/{whole}), not '{subnet}'"),
            ));
        }
        let ban = match command.as_str() {
            "add" => Some(Duration::from_secs(
                bantime.filter(|t| *t > 0).unwrap_or(24 * 3600),
            )),
            "remove" => None,
            _ => {
                return Err(err(
                    code::INVALID_PARAMETER,
                    "command must be 'add' or 'remove'",
                ))
            }
        };
        self.p2p
            .set_ban(ip, ban)
            .await
            .map_err(|e| e.to_rpc_error())
    }

    async fn list_banned(&self) -> RpcResult<Vec<Ban>> {
        let now = crate::chain::unix_now();
        let banned = self.p2p.list_banned().await.map_err(|e| e.to_rpc_error())?;
        Ok(banned
            .iter()
            .map(|(ip, left)| Ban {
                address: format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }),
                banned_until: now + left,
                time_remaining: *left,
            })
            .collect())
    }

    async fn clear_banned(&self) -> RpcResult<()> {
        self.p2p.clear_banned().await.map_err(|e| e.to_rpc_error())
    }

    async fn get_net_totals(&self) -> RpcResult<NetTotals> {
        let (received, sent) = self.p2p.traffic();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(NetTotals {
            totalbytesrecv: received,
            totalbytessent: sent,
            timemillis: millis,
        })
    }

    async fn ping(&self) -> RpcResult<()> {
        self.p2p.ping_all().await.map_err(|e| e.to_rpc_error())
    }
}
