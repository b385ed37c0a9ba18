//! Every redb table the node keeps, with what it maps.

use redb::TableDefinition;

/// name → value: `schema` (u32 LE version), `tip` (best block hash), `coins_tip` (the block the
/// UTXO table's set belongs to; the coins cache holds the changes since), `index.tx` and
/// `index.address` (each index's best block: hash ‖ height u32 LE).
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");

/// block hash → index entry (header, height, chain work, status; see `IndexEntry`).
pub const BLOCK_INDEX: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("block_index");

/// block hash → serialized block.
pub const BLOCKS: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("blocks");

/// height → block hash, for the active chain only.
pub const ACTIVE_CHAIN: TableDefinition<u64, [u8; 32]> = TableDefinition::new("active_chain");

/// serialized outpoint (txid ‖ vout LE) → serialized `Coin`.
pub const UTXOS: TableDefinition<[u8; 36], &[u8]> = TableDefinition::new("utxos");

/// block hash → the coins the block spent, in spending order (undo data for disconnects, the
/// indexes and replays; kept when the block is disconnected).
pub const UNDO: TableDefinition<[u8; 32], &[u8]> = TableDefinition::new("undo");

/// txid → block hash ‖ position in block (u32 LE), for the transactions of the chain up to the
/// tx index's best block.
pub const TX_INDEX: TableDefinition<[u8; 32], [u8; 36]> = TableDefinition::new("tx_index");

/// pubkey hash ‖ coin height (u32 BE) ‖ outpoint key → value (i64 LE) ‖ coinbase (u8), one row
/// per unspent P2PKH output as of the address index's best block (prefix scans by address;
/// composite keys keep a busy address as cheap as a quiet one).
pub const ADDR_COINS: TableDefinition<[u8; 60], [u8; 9]> = TableDefinition::new("addr_coins");

/// pubkey hash ‖ height (u32 BE) ‖ txid → (), one row per transaction (of the chain up to the
/// address index's best block) paying or spending the address.
pub const ADDR_TXS: TableDefinition<[u8; 56], ()> = TableDefinition::new("addr_txs");

/// peer address (`ip:port`) → unix time it was learned or last reached.
pub const PEERS: TableDefinition<&str, u64> = TableDefinition::new("peers");
