//! Block templates, block submission and in-process mining.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// Block templates, block submission and in-process mining.
#[rpc(server, client)]
pub trait Mining {
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
}
