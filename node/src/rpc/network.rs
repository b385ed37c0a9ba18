//! Network methods: peers, connections, addresses and bans. Each asks the P2P manager through
//! the handle; once P2P has stopped (the node is shutting down) they answer Core's -31.

use std::time::Duration;

use chaincore::rpc::{code, NetServer};
use chaincore::Amount;
use jsonrpsee::core::{async_trait, RpcResult};
use serde_json::{json, Value};

use super::{coins, Rpc};

use super::error::{err, OkOrError, ToRpcError};

#[async_trait]
impl NetServer for Rpc {
    async fn get_peer_info(&self) -> RpcResult<Value> {
        self.p2p.peer_info().await.map_err(|e| e.to_rpc_error())
    }

    async fn get_connection_count(&self) -> RpcResult<usize> {
        self.p2p
            .connection_count()
            .await
            .map_err(|e| e.to_rpc_error())
    }

    async fn add_node(&self, node: String, command: String) -> RpcResult<()> {
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

    async fn get_network_info(&self) -> RpcResult<Value> {
        let connections = self
            .p2p
            .connection_count()
            .await
            .map_err(|e| e.to_rpc_error())?;
        Ok(json!({
            "version": 10000,
            "subversion": format!("/chaincore:{}/", env!("CARGO_PKG_VERSION")),
            "protocolversion": crate::p2p::message::PROTOCOL_VERSION,
            "localservices": "0000000000000000",
            "networkactive": true,
            "connections": connections,
            "relayfee": coins(Amount::from_units(crate::mempool::MIN_RELAY_FEE_RATE * 1000)),
            "warnings": [],
        }))
    }

    async fn disconnect_node(&self, address: String) -> RpcResult<()> {
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

    async fn get_node_addresses(&self, count: Option<usize>) -> RpcResult<Value> {
        let list = self
            .p2p
            .known_addresses(count.unwrap_or(1).min(1000))
            .await
            .map_err(|e| e.to_rpc_error())?;
        Ok(json!(list
            .iter()
            .map(|a| json!({"address": a.ip().to_string(), "port": a.port(), "services": 0}))
            .collect::<Vec<_>>()))
    }

    async fn set_ban(
        &self,
        subnet: String,
        command: String,
        bantime: Option<u64>,
    ) -> RpcResult<()> {
        let ip: std::net::IpAddr = subnet
            .split('/')
            .next()
            .and_then(|s| s.parse().ok())
            .ok_or_error(
                code::CLIENT_INVALID_IP_OR_SUBNET,
                format!("Error: Invalid IP/Subnet '{subnet}'"),
            )?;
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

    async fn list_banned(&self) -> RpcResult<Value> {
        let now = crate::chain::unix_now();
        let banned = self.p2p.list_banned().await.map_err(|e| e.to_rpc_error())?;
        Ok(json!(banned
            .iter()
            .map(|(ip, left)| json!({"address": format!("{ip}/{}", if ip.is_ipv4() { 32 } else { 128 }), "banned_until": now + left, "time_remaining": left}))
            .collect::<Vec<_>>()))
    }

    async fn clear_banned(&self) -> RpcResult<()> {
        self.p2p.clear_banned().await.map_err(|e| e.to_rpc_error())
    }

    async fn get_net_totals(&self) -> RpcResult<Value> {
        let (received, sent) = self.p2p.traffic();
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        Ok(json!({
            "totalbytesrecv": received,
            "totalbytessent": sent,
            "timemillis": millis,
        }))
    }

    async fn ping(&self) -> RpcResult<()> {
        self.p2p.ping_all().await.map_err(|e| e.to_rpc_error())
    }
}
