//! The block index as readers see it: every known block's [`IndexEntry`] and the active chain
//! by height, in persistent collections so that a copy for a snapshot costs a few reference
//! counts, whatever the chain's length.

use chaincore::validation;
use chaincore::{BlockHash, Network};

use crate::store::IndexEntry;

/// Known blocks and the active chain. Cloning shares the structure (see the module docs).
#[derive(Clone)]
pub struct BlockIndex {
    network: Network,
    entries: imbl::HashMap<BlockHash, IndexEntry>,
    /// Active chain, by height; never empty once the chain is open (genesis is at 0).
    active: imbl::Vector<BlockHash>,
}

impl BlockIndex {
    /// An empty index for `network`.
    pub(super) fn new(network: Network) -> BlockIndex {
        BlockIndex {
            network,
            entries: imbl::HashMap::new(),
            active: imbl::Vector::new(),
        }
    }

    /// The network.
    pub fn network(&self) -> Network {
        self.network
    }

    /// Best block hash.
    pub fn tip_hash(&self) -> BlockHash {
        *self
            .active
            .last()
            .expect("an open chain's active chain holds genesis")
    }

    /// Best block height.
    pub fn tip_height(&self) -> u32 {
        self.active.len().saturating_sub(1) as u32
    }

    /// Index entry of the tip.
    pub fn tip(&self) -> &IndexEntry {
        &self.entries[&self.tip_hash()]
    }

    /// Index entry of any known block.
    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.entries.get(hash)
    }

    /// The active-chain hash at `height`.
    pub fn active_hash(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// True if `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.entries
            .get(hash)
            .is_some_and(|e| self.active.get(e.height as usize) == Some(hash))
    }

    /// All index entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = (&BlockHash, &IndexEntry)> {
        self.entries.iter()
    }

    /// Number of known blocks.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Median of the times of `hash` and its 10 predecessors.
    pub fn median_time_past(&self, hash: &BlockHash) -> i64 {
        let mut times = Vec::with_capacity(validation::MEDIAN_TIME_SPAN);
        let mut cur = self.entries.get(hash);
        while let Some(e) = cur {
            times.push(e.header.time);
            if times.len() == validation::MEDIAN_TIME_SPAN || e.height == 0 {
                break;
            }
            cur = self.entries.get(&e.header.prev_blockhash);
        }
        validation::median_time(&times)
    }

    /// The `bits` the block after `prev` must carry.
    pub fn next_bits(&self, prev: &IndexEntry) -> u32 {
        validation::next_work_required(self.network, prev.height, prev.header.time)
    }

    /// Adds or replaces an entry; returns the one it replaced.
    pub(super) fn insert(&mut self, hash: BlockHash, entry: IndexEntry) -> Option<IndexEntry> {
        self.entries.insert(hash, entry)
    }

    /// The entry of `hash`, to change in place.
    pub(super) fn entry_mut(&mut self, hash: &BlockHash) -> Option<&mut IndexEntry> {
        self.entries.get_mut(hash)
    }

    /// Replaces the active chain (on open).
    pub(super) fn set_active(&mut self, hashes: Vec<BlockHash>) {
        self.active = hashes.into_iter().collect();
    }

    /// Appends a block to the active chain.
    pub(super) fn push_active(&mut self, hash: BlockHash) {
        self.active.push_back(hash);
    }

    /// Removes the tip from the active chain.
    pub(super) fn pop_active(&mut self) {
        self.active.pop_back();
    }
}

/// The genesis block's entry, as written into an empty store.
pub(super) fn genesis_entry(network: Network) -> IndexEntry {
    let genesis = network.genesis_block();
    IndexEntry {
        header: genesis.header,
        height: 0,
        chainwork: genesis
            .header
            .target()
            .map(|t| t.work())
            .unwrap_or_default(),
        status: crate::store::Status::Valid,
        chain_tx: genesis.txdata.len() as u64,
    }
}
