//! A keep-alive JSON-RPC client (one `ureq` agent, so one reused connection), for benchmarks
//! that measure the node rather than connection setup.

use serde_json::{json, Value};

use crate::Node;

/// A keep-alive JSON-RPC client of one node, with its cookie credentials.
pub struct RpcClient {
    agent: ureq::Agent,
    url: String,
    auth: String,
}

impl RpcClient {
    /// A client of `node` (which must have written its cookie).
    pub fn new(node: &Node) -> RpcClient {
        use base64::Engine;
        RpcClient {
            agent: ureq::AgentBuilder::new()
                .max_idle_connections_per_host(4)
                .timeout(crate::DEADLINE)
                .build(),
            url: node.url(),
            auth: format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(node.cookie().unwrap())
            ),
        }
    }

    /// Calls `method` (JSON-RPC 2.0); panics on a transport or RPC error.
    pub fn call(&self, method: &str, params: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "method": method, "params": params, "id": 1});
        let text = self
            .agent
            .post(&self.url)
            .set("Authorization", &self.auth)
            .send_string(&body.to_string())
            .unwrap_or_else(|e| panic!("{method}: {e}"))
            .into_string()
            .unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v.get("error").is_none(), "{method}: {v}");
        v["result"].clone()
    }
}
