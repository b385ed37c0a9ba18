//! RPC errors in one place (the shape of Zebra's `zebra-rpc/src/server/error.rs`): how the
//! node's own errors map to Bitcoin Core's codes, and extension traits that turn a `Result` or
//! an `Option` into an RPC answer with a code, so a method body says what went wrong, not how
//! to build the error.

use std::fmt::Display;

use chaincore::rpc::code;
use chaincore::validation::RuleError;
use jsonrpsee::core::RpcResult;
use jsonrpsee::types::ErrorObjectOwned;

use crate::chain::ChainError;
use crate::mempool::MempoolError;
use crate::p2p::P2pStopped;

/// An RPC error with Bitcoin Core's `code`.
pub fn err(code: i32, message: impl Into<String>) -> ErrorObjectOwned {
    ErrorObjectOwned::owned(code, message.into(), None::<()>)
}

/// `Result<T, E>` into an RPC answer.
pub trait MapError<T> {
    /// The error's text, with `code`.
    fn map_error(self, code: i32) -> RpcResult<T>;

    /// The error's text, as Core's generic `-1` (an error no other code fits).
    fn map_misc(self) -> RpcResult<T>
    where
        Self: Sized,
    {
        self.map_error(code::MISC_ERROR)
    }
}

impl<T, E: Display> MapError<T> for Result<T, E> {
    fn map_error(self, code: i32) -> RpcResult<T> {
        self.map_err(|e| err(code, e.to_string()))
    }
}

/// `Option<T>` into an RPC answer: `None` is an error.
pub trait OkOrError<T> {
    /// `None` becomes `message` with `code`.
    fn ok_or_error(self, code: i32, message: impl Into<String>) -> RpcResult<T>;
}

impl<T> OkOrError<T> for Option<T> {
    fn ok_or_error(self, code: i32, message: impl Into<String>) -> RpcResult<T> {
        self.ok_or_else(|| err(code, message))
    }
}

/// One of the node's errors as Bitcoin Core answers it.
pub trait ToRpcError {
    /// The RPC error.
    fn to_rpc_error(&self) -> ErrorObjectOwned;
}

impl ToRpcError for ChainError {
    fn to_rpc_error(&self) -> ErrorObjectOwned {
        match self {
            ChainError::BlockNotFound(_) => err(code::INVALID_ADDRESS_OR_KEY, "Block not found"),
            // The node shuts down on these.
            ChainError::Store(_) | ChainError::Stopping => {
                err(code::DATABASE_ERROR, self.to_string())
            }
            ChainError::Rule(_) | ChainError::Duplicate | ChainError::DuplicateInvalid => {
                err(code::VERIFY_REJECTED, self.to_string())
            }
        }
    }
}

impl ToRpcError for MempoolError {
    fn to_rpc_error(&self) -> ErrorObjectOwned {
        match self {
            MempoolError::AlreadyKnown => err(
                code::VERIFY_ALREADY_IN_CHAIN,
                "Transaction outputs already in utxo set",
            ),
            MempoolError::Rule(RuleError::InputsMissingOrSpent) => {
                err(code::VERIFY_ERROR, self.to_string())
            }
            // The node shuts down on these.
            MempoolError::Store(_) | MempoolError::Stopping => {
                err(code::DATABASE_ERROR, self.to_string())
            }
            _ => err(code::VERIFY_REJECTED, self.to_string()),
        }
    }
}

impl ToRpcError for P2pStopped {
    fn to_rpc_error(&self) -> ErrorObjectOwned {
        // Bitcoin Core's answer when it has no connection manager.
        err(
            code::CLIENT_P2P_DISABLED,
            "Error: Peer-to-peer functionality missing or disabled",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_error_gets_cores_code() {
        let code_of = |e: &dyn ToRpcError| e.to_rpc_error().code();
        assert_eq!(code_of(&ChainError::BlockNotFound(Default::default())), -5);
        assert_eq!(code_of(&ChainError::Stopping), -20);
        assert_eq!(code_of(&ChainError::from(RuleError::HighHash)), -26);
        assert_eq!(code_of(&MempoolError::AlreadyKnown), -27);
        assert_eq!(
            code_of(&MempoolError::from(RuleError::InputsMissingOrSpent)),
            -25
        );
        assert_eq!(code_of(&MempoolError::TxSize), -26);
        assert_eq!(code_of(&MempoolError::Stopping), -20);
        assert_eq!(code_of(&P2pStopped), -31);
        let missing: RpcResult<()> = None.ok_or_error(-8, "no");
        assert_eq!(missing.unwrap_err().message(), "no");
    }
}
