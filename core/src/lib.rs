//! ChainCore consensus: Bitcoin's formats byte for byte, our rules, keys and addresses. No I/O.
//!
//! # Layout
//! - `config` (feature `config`): settings from flags, environment and `chaincore.conf`.
//! - [`encode`]: consensus encoding (`Encodable`/`Decodable`, CompactSize).
//! - [`hash`]: SHA-256d, HASH160 and the `Txid`/`BlockHash`/`TxMerkleNode` newtypes.
//! - [`amount`]: `Amount` in base units (1 coin = 100,000,000).
//! - [`script`]: scripts and the P2PKH / `OP_RETURN` templates.
//! - [`transaction`]: `OutPoint`, `TxIn`, `TxOut`, `Transaction`.
//! - [`block`]: `Header`, `Block`.
//! - [`merkle`]: the merkle root with CVE-2012-2459 mutation detection.
//! - [`pow`]: compact targets, chain work, ASERT, subsidy.
//! - [`sighash`]: Bitcoin's legacy signature hash.
//! - [`key`]: k256 keys, WIF, strict-DER low-S signatures.
//! - [`address`]: Base58Check P2PKH addresses.
//! - [`network`]: `main`/`test`/`regtest` parameters and genesis blocks.
//! - `p2p` (feature `p2p`): Bitcoin's P2P messages and their framing codec.
//! - `rpc` (feature `rpc`): the JSON-RPC interface shared by node, miner and wallet.
//! - [`validation`]: the consensus rules, one function each, with Bitcoin Core's reject reasons.

pub mod address;
pub mod amount;
pub mod block;
#[cfg(feature = "config")]
pub mod config;
pub mod encode;
pub mod hash;
pub mod key;
pub mod merkle;
pub mod network;
#[cfg(feature = "p2p")]
pub mod p2p;
pub mod pow;
#[cfg(feature = "rpc")]
pub mod rpc;
pub mod script;
pub mod sighash;
pub mod transaction;
pub mod validation;

pub use address::Address;
pub use amount::Amount;
pub use block::{Block, Header};
pub use hash::{BlockHash, TxMerkleNode, Txid};
pub use network::Network;
pub use script::Script;
pub use sighash::sign_p2pkh_input;
pub use transaction::{OutPoint, Transaction, TxIn, TxOut};
