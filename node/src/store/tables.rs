//! Every redb table the node keeps, with what it maps.

use redb::TableDefinition;

/// name → value: `schema` (u32 LE version), `tip` (best block hash).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// block hash → index entry (header, height, chain work, status; see `IndexEntry`).
pub const BLOCK_INDEX: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("block_index");

/// block hash → serialized block.
pub const BLOCKS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blocks");

/// height → block hash, for the active chain only.
pub const ACTIVE_CHAIN: TableDefinition<u64, [u8; 32]> = TableDefinition::new("active_chain");

/// serialized outpoint (txid ‖ vout LE) → serialized `Coin`.
pub const UTXOS: TableDefinition<[u8; 36], &[u8]> = TableDefinition::new("utxos");

/// block hash → the coins the block spent, in spending order (undo data for disconnects).
pub const UNDO: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("undo");

/// txid → block hash ‖ position in block (u32 LE), for active-chain transactions.
pub const TX_INDEX: TableDefinition<[u8; 32], [u8; 36]> = TableDefinition::new("tx_index");

/// pubkey hash ‖ coin height (u32 BE) ‖ outpoint key → (), one row per unspent P2PKH output
/// (prefix scans by address; composite keys keep a busy address as cheap as a quiet one).
pub const ADDR_UTXOS: TableDefinition<[u8; 60], ()> = TableDefinition::new("addr_utxos");

/// pubkey hash ‖ height (u32 BE) ‖ txid → (), one row per active-chain transaction paying or
/// spending the address.
pub const ADDR_TXS: TableDefinition<[u8; 56], ()> = TableDefinition::new("addr_txs");

/// peer address (`ip:port`) → unix time it was learned or last reached.
pub const PEERS: TableDefinition<&str, u64> = TableDefinition::new("peers");
