//! The node itself: uptime, stop and help.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;

use super::param::Param;

/// The node itself: uptime, stop and help.
#[rpc(server, client)]
pub trait Control {
    /// Seconds since the node started.
    #[method(name = "uptime")]
    async fn uptime(&self) -> RpcResult<u64>;

    /// Stops the node cleanly.
    #[method(name = "stop")]
    async fn stop(&self) -> RpcResult<String>;

    /// Lists the methods, or describes one.
    #[method(name = "help")]
    async fn help(&self, command: Option<Param<String>>) -> RpcResult<String>;
}
