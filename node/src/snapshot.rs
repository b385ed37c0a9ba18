//! The immutable view of the chain state that the writer publishes after every change, for
//! RPC and P2P to read without waiting for the writer.
//!
//! A snapshot holds a copy of the block index, of the mempool and of the coins cache
//! (persistent collections: a copy costs a few reference counts) and a redb read transaction
//! begun right after the writer's last commit, so the four always agree with each other,
//! however long a reader keeps them and whatever the writer does meanwhile. The indexes move
//! on their own (`crate::indexer`): readers of an index take a read transaction of their own. Holding one also holds on to the pages
//! its read transaction sees, so a reader keeps a snapshot no longer than one request.

use std::sync::{Arc, OnceLock};

use chaincore::validation::Coin;
use chaincore::{BlockHash, OutPoint};
use redb::ReadTransaction;

use crate::chain::BlockIndex;
use crate::mempool::{ChainView, Mempool};
use crate::mining::Template;
use crate::store::{self, StoreError};

/// The chain state as of one moment (see the module docs).
pub struct Snapshot {
    /// Known blocks and the active chain.
    pub index: BlockIndex,
    /// The mempool.
    pub mempool: Mempool,
    /// The store as of the same moment.
    pub rtx: ReadTransaction,
    /// The coins cache as of the same moment: the UTXO set is these over `rtx`'s table.
    pub coins: store::coins::Entries,
    /// Bumped on every mempool change (long-poll ids).
    pub mempool_seq: u64,
    /// The block template on this tip and pool, once a caller built one (see
    /// `crate::node::Node::template`).
    pub template: OnceLock<Arc<Template>>,
}

/// The best tip as published to waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Best block hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
}

impl Snapshot {
    /// The best tip.
    pub fn tip(&self) -> Tip {
        Tip {
            hash: self.index.tip_hash(),
            height: self.index.tip_height(),
        }
    }

    /// An unspent output of the active chain's UTXO set.
    pub fn chain_coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        self.utxos()?.coin(outpoint)
    }

    /// The UTXO set as of this snapshot (for many lookups, or a walk over all of it).
    pub fn utxos(
        &self,
    ) -> Result<store::coins::CoinsView<'_, store::coins::UtxoTable>, StoreError> {
        store::read::coins(&self.rtx, &self.coins)
    }

    /// Runs `f` with what the mempool needs from the chain to check a transaction against
    /// this snapshot.
    pub fn with_view<T>(&self, f: impl FnOnce(&ChainView<'_>) -> T) -> T {
        let coin = |o: &OutPoint| self.chain_coin(o);
        let view = ChainView {
            coin: &coin,
            next_height: self.index.tip_height() + 1,
            median_time_past: self.index.median_time_past(&self.index.tip_hash()),
        };
        f(&view)
    }
}
