//! The address index: balances, unspent outputs and history by address.

use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use serde_json::Value;

/// The address index: balances, unspent outputs and history by address.
#[rpc(server, client)]
pub trait AddressIndex {
    /// Confirmed and unconfirmed balance of addresses (`{"addresses": [...]}` or one address).
    #[method(name = "getaddressbalance")]
    async fn get_address_balance(&self, addresses: Value) -> RpcResult<Value>;

    /// Unspent outputs of addresses, confirmed and in the mempool.
    #[method(name = "getaddressutxos")]
    async fn get_address_utxos(&self, addresses: Value) -> RpcResult<Value>;

    /// Txids touching addresses, oldest first, then mempool ones.
    #[method(name = "getaddresstxids")]
    async fn get_address_txids(&self, addresses: Value) -> RpcResult<Value>;
}
