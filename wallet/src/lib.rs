//! The wallet file and its keys, as a library: the `chaincore-wallet` binary uses it, and so
//! does the wallet-file fuzz target (`fuzz/`), which feeds it damaged and hostile files.
//!
//! # Layout
//! - [`keystore`]: the wallet file (HD seed or random keys, plain or encrypted), atomic writes.
//! - [`hd`]: BIP39 mnemonics and the BIP32 keys of the wallet's BIP44-style account.

pub mod hd;
pub mod keystore;
