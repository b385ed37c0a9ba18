//! Control methods: uptime, stop, and `help` from the method table in `chaincore::rpc::help`.

use std::sync::atomic::Ordering;

use chaincore::rpc::{help, ControlServer, Param};
use jsonrpsee::core::{async_trait, RpcResult};

use super::Rpc;

#[async_trait]
impl ControlServer for Rpc {
    async fn uptime(&self) -> RpcResult<u64> {
        Ok(self.node.started.elapsed().as_secs())
    }

    async fn stop(&self) -> RpcResult<String> {
        self.node.stopping.store(true, Ordering::Release);
        self.node.shutdown.send_replace(true);
        Ok("ChainCore server stopping".to_string())
    }

    async fn help(&self, command: Option<Param<String>>) -> RpcResult<String> {
        Ok(match Param::optional(command)? {
            None => help::overview(),
            Some(c) => help::describe(&c).unwrap_or_else(|| format!("help: unknown command: {c}")),
        })
    }
}

#[cfg(test)]
mod tests {
    use chaincore::rpc::help::METHODS;

    /// Every method the node registers is in `help`, and every `help` entry is registered.
    #[test]
    fn help_lists_exactly_the_registered_methods() {
        let dir = std::env::temp_dir().join(format!("cc-rpc-help-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = crate::node::Node::open(chaincore::Network::Regtest, &dir).unwrap();
        let config = crate::p2p::P2pConfig {
            listen: None,
            peers: Vec::new(),
            connect_only: true,
            discover_local: Vec::new(),
            max_connections: 0,
            max_pending_headers: 0,
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let p2p = rt
            .block_on(crate::p2p::P2pHandle::start(node.clone(), config))
            .unwrap();
        let module = super::Rpc::new(node.clone(), p2p).into_module().unwrap();
        let mut registered: Vec<&str> = module
            .method_names()
            .filter(|m| !m.starts_with("unsubscribe"))
            .collect();
        registered.sort_unstable();
        let mut listed: Vec<&str> = METHODS.iter().map(|m| m.name).collect();
        listed.sort_unstable();
        assert_eq!(registered, listed);
        node.stop_writer();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
