//! Chain state: the block index in memory, block acceptance in any order, most-work chain
//! selection, and connecting / disconnecting blocks against the store's UTXO set.
//!
//! Only one thread mutates a [`Chain`] (it sits behind the node's state lock); readers use
//! store snapshots. Each connect or disconnect is one redb write transaction.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chaincore::encode::{deserialize, serialize};
use chaincore::pow::block_subsidy;
use chaincore::validation::{self, Coin, RuleError, ScriptFailure};
use chaincore::{Block, BlockHash, Network, OutPoint, Script, Transaction, Txid};
use redb::WriteTransaction;

use crate::mempool::Mempool;
use crate::store::tables::{ADDR_TXS, ADDR_UTXOS, TX_INDEX, UTXOS};
use crate::store::{
    self, addr_tx_key, addr_utxo_key, outpoint_key, IndexEntry, Status, Store, StoreError,
};

/// Most blocks kept while waiting for their parent.
pub const MAX_ORPHAN_BLOCKS: usize = 100;

/// Why a block or chain operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a consensus rule.
    #[error("{0}")]
    Rule(#[from] RuleError),
    /// The block was seen before.
    #[error("duplicate")]
    Duplicate,
    /// The block was seen before and is invalid.
    #[error("duplicate-invalid")]
    DuplicateInvalid,
    /// The store failed; the node must stop.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// Unknown block hash.
    #[error("block not found")]
    UnknownBlock,
}

impl From<redb::Error> for ChainError {
    fn from(e: redb::Error) -> Self {
        ChainError::Store(e.into())
    }
}

macro_rules! chain_db_err {
    ($($ty:ty),*) => {$(
        impl From<$ty> for ChainError {
            fn from(e: $ty) -> Self {
                ChainError::Store(e.into())
            }
        }
    )*};
}
chain_db_err!(redb::TableError, redb::StorageError);

/// What happened to an accepted block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accepted {
    /// It is the new tip (or on the new best chain).
    BestChain,
    /// Stored on a side branch with less work than the tip.
    SideChain,
}

/// The chain state.
pub struct Chain {
    network: Network,
    store: Arc<Store>,
    index: HashMap<BlockHash, IndexEntry>,
    /// Active chain, by height.
    active: Vec<BlockHash>,
    /// Blocks waiting for their parent, keyed by their hash.
    orphans: HashMap<BlockHash, Block>,
    /// The last block that failed to connect, and why (reported by `finish_stored`).
    last_failure: Option<(BlockHash, RuleError)>,
}

impl Chain {
    /// Loads the chain from `store`, writing the genesis block into an empty store.
    pub fn open(store: Store, network: Network) -> Result<Chain, ChainError> {
        let mut chain = Chain {
            network,
            index: store.load_index()?.into_iter().collect(),
            store: Arc::new(store),
            active: Vec::new(),
            orphans: HashMap::new(),
            last_failure: None,
        };
        match chain.store.tip()? {
            Some(tip) => {
                let mut hash = tip;
                let mut back = Vec::new();
                loop {
                    let entry = chain.index.get(&hash).ok_or(ChainError::UnknownBlock)?;
                    back.push(hash);
                    if entry.height == 0 {
                        break;
                    }
                    hash = entry.header.prev_blockhash;
                }
                back.reverse();
                chain.active = back;
            }
            None => chain.write_genesis()?,
        }
        if chain.active.first() != Some(&network.genesis_hash()) {
            return Err(ChainError::Rule(RuleError::BadPrevBlock));
        }
        Ok(chain)
    }

    fn write_genesis(&mut self) -> Result<(), ChainError> {
        let genesis = self.network.genesis_block();
        let hash = genesis.block_hash();
        let entry = IndexEntry {
            header: genesis.header,
            height: 0,
            chainwork: genesis
                .header
                .target()
                .map(|t| t.work())
                .unwrap_or_default(),
            status: Status::Valid,
        };
        let wtx = self.store.begin_write()?;
        store::write::block(&wtx, &hash, genesis)?;
        store::write::index(&wtx, &hash, &entry)?;
        store::write::active(&wtx, 0, Some(&hash))?;
        store::write::tip(&wtx, &hash)?;
        wtx.commit().map_err(StoreError::from)?;
        self.index.insert(hash, entry);
        self.active = vec![hash];
        Ok(())
    }

    /// The store (for read snapshots).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, shared: for work done without holding the chain.
    pub fn shared_store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Best block hash.
    pub fn tip_hash(&self) -> BlockHash {
        *self
            .active
            .last()
            .expect("the active chain always holds genesis")
    }

    /// Best block height.
    pub fn tip_height(&self) -> u32 {
        (self.active.len() - 1) as u32
    }

    /// Index entry of the tip.
    pub fn tip(&self) -> &IndexEntry {
        &self.index[&self.tip_hash()]
    }

    /// Index entry of any known block.
    pub fn entry(&self, hash: &BlockHash) -> Option<&IndexEntry> {
        self.index.get(hash)
    }

    /// The active-chain hash at `height`.
    pub fn active_hash(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// True if `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.index
            .get(hash)
            .is_some_and(|e| self.active.get(e.height as usize) == Some(hash))
    }

    /// All index entries.
    pub fn entries(&self) -> impl Iterator<Item = (&BlockHash, &IndexEntry)> {
        self.index.iter()
    }

    /// Median of the times of `hash` and its 10 predecessors.
    pub fn median_time_past(&self, hash: &BlockHash) -> i64 {
        let mut times = Vec::with_capacity(validation::MEDIAN_TIME_SPAN);
        let mut cur = self.index.get(hash);
        while let Some(e) = cur {
            times.push(e.header.time);
            if times.len() == validation::MEDIAN_TIME_SPAN || e.height == 0 {
                break;
            }
            cur = self.index.get(&e.header.prev_blockhash);
        }
        validation::median_time(&times)
    }

    /// The `bits` the block after `prev` must carry.
    pub fn next_bits(&self, prev: &IndexEntry) -> u32 {
        validation::next_work_required(self.network, prev.height, prev.header.time)
    }

    /// First step of accepting a block: checks it. One that extends the tip comes back to be
    /// connected ([`TipExtension::connect`], which needs no `&mut Chain`, so the node runs it
    /// without its lock) and then [`Chain::finish_tip_extension`]; any other is stored, for
    /// [`Chain::finish_stored`], which processes orphans waiting for it (blocks are accepted in
    /// any order, orphans kept in a bounded pool) and moves to the most-work valid chain.
    pub fn begin_submit(&mut self, block: &Block, now: i64) -> Result<Submission, ChainError> {
        let hash = block.block_hash();
        let (entry, txids) = self.check_new_block(block, hash, now)?;
        if block.header.prev_blockhash == self.tip_hash() && !self.has_orphan_children(&hash) {
            return Ok(Submission::ExtendsTip(TipExtension { hash, entry, txids }));
        }
        self.store_block(block, &hash, entry)?;
        Ok(Submission::Stored(hash))
    }

    /// Commits a connected tip extension and removes what it confirms from the mempool; a block
    /// that broke a rule is stored as invalid instead.
    pub fn finish_tip_extension(
        &mut self,
        block: &Block,
        next: TipExtension,
        connected: Result<WriteTransaction, ChainError>,
        mempool: &mut Mempool,
    ) -> Result<Accepted, ChainError> {
        let TipExtension { hash, entry, txids } = next;
        // The node's writer lock keeps the tip still from begin_submit to here.
        debug_assert_eq!(block.header.prev_blockhash, self.tip_hash());
        debug_assert_eq!(block.block_hash(), hash);
        match connected {
            Ok(wtx) => {
                wtx.commit().map_err(StoreError::from)?;
                self.active.push(hash);
                self.index.insert(hash, entry);
                mempool.remove_for_block(&block.txdata, &txids);
                Ok(Accepted::BestChain)
            }
            Err(ChainError::Rule(reason)) => {
                tracing::warn!(%hash, %reason, "block failed to connect");
                let invalid = IndexEntry {
                    status: Status::Invalid,
                    ..entry
                };
                self.store_block(block, &hash, invalid)?;
                Err(reason.into())
            }
            Err(e) => Err(e),
        }
    }

    /// Last step for a stored block: processes orphans that waited for it and moves to the
    /// most-work chain; says where the block ended up.
    pub fn finish_stored(
        &mut self,
        hash: BlockHash,
        mempool: &mut Mempool,
        now: i64,
        verified: &HashSet<Txid>,
    ) -> Result<Accepted, ChainError> {
        // Orphans that were waiting for this block (and theirs, in turn).
        let mut ready = vec![hash];
        while let Some(parent) = ready.pop() {
            let children: Vec<BlockHash> = self
                .orphans
                .iter()
                .filter(|(_, b)| b.header.prev_blockhash == parent)
                .map(|(h, _)| *h)
                .collect();
            for child in children {
                let Some(b) = self.orphans.remove(&child) else {
                    continue;
                };
                if let Ok((entry, _)) = self.check_new_block(&b, child, now) {
                    self.store_block(&b, &child, entry)?;
                    ready.push(child);
                }
            }
        }
        self.activate_best_chain(mempool, verified)?;
        if self.is_active(&hash) {
            return Ok(Accepted::BestChain);
        }
        match self.index.get(&hash).map(|e| e.status) {
            Some(Status::Invalid) => Err(self
                .failure_reason(&hash)
                .unwrap_or(ChainError::DuplicateInvalid)),
            _ => Ok(Accepted::SideChain),
        }
    }

    /// Reason a just-submitted block failed to connect, if remembered.
    fn failure_reason(&mut self, hash: &BlockHash) -> Option<ChainError> {
        self.last_failure
            .take()
            .filter(|(h, _)| h == hash)
            .map(|(_, e)| ChainError::Rule(e))
    }

    /// True if an orphan waits for `hash` as its parent.
    fn has_orphan_children(&self, hash: &BlockHash) -> bool {
        self.orphans
            .values()
            .any(|b| b.header.prev_blockhash == *hash)
    }

    /// Writes a block and its index entry, and adds the entry to the in-memory index.
    fn store_block(
        &mut self,
        block: &Block,
        hash: &BlockHash,
        entry: IndexEntry,
    ) -> Result<(), ChainError> {
        let wtx = self.store.begin_write()?;
        store::write::block(&wtx, hash, block)?;
        store::write::index(&wtx, hash, &entry)?;
        wtx.commit().map_err(StoreError::from)?;
        self.index.insert(*hash, entry);
        Ok(())
    }

    /// Context-free and header checks of a new block; returns its index entry and txids. A
    /// block whose parent is unknown goes to the orphan pool (`prev-blk-not-found`).
    fn check_new_block(
        &mut self,
        block: &Block,
        hash: BlockHash,
        now: i64,
    ) -> Result<(IndexEntry, Vec<Txid>), ChainError> {
        if let Some(e) = self.index.get(&hash) {
            return Err(match e.status {
                Status::Valid => ChainError::Duplicate,
                Status::Invalid => ChainError::DuplicateInvalid,
            });
        }
        let txids = validation::check_block(block, self.network)?;
        let Some(prev) = self.index.get(&block.header.prev_blockhash).copied() else {
            if self.orphans.len() >= MAX_ORPHAN_BLOCKS {
                // Drop an arbitrary orphan: the pool is a convenience, not a promise.
                if let Some(k) = self.orphans.keys().next().copied() {
                    self.orphans.remove(&k);
                }
            }
            self.orphans.insert(hash, block.clone());
            return Err(RuleError::PrevBlockNotFound.into());
        };
        if prev.status == Status::Invalid {
            return Err(RuleError::BadPrevBlock.into());
        }
        let height = prev.height + 1;
        validation::check_difficulty(&block.header, self.next_bits(&prev))?;
        let mtp = self.median_time_past(&block.header.prev_blockhash);
        validation::check_block_time(&block.header, mtp, now)?;
        validation::check_coinbase_height(block, height)?;
        validation::check_finality(block, height, mtp)?;
        let work = block
            .header
            .target()
            .map(|t| t.work())
            .ok_or(RuleError::HighHash)?;
        let entry = IndexEntry {
            header: block.header,
            height,
            chainwork: prev.chainwork + work,
            status: Status::Valid,
        };
        Ok((entry, txids))
    }

    /// The valid block with the most work; the current tip wins ties (first seen).
    fn best_candidate(&self) -> BlockHash {
        let tip = self.tip_hash();
        let tip_work = self.index[&tip].chainwork;
        self.index
            .iter()
            .filter(|(_, e)| e.status == Status::Valid && e.chainwork > tip_work)
            .max_by_key(|(h, e)| (e.chainwork, std::cmp::Reverse(**h)))
            .map_or(tip, |(h, _)| *h)
    }

    /// Reorganizes onto the most-work valid chain, one write transaction per block. A block that
    /// fails to connect is marked invalid with its descendants, and selection runs again.
    /// Transactions of disconnected blocks go back to the mempool.
    pub fn activate_best_chain(
        &mut self,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let mut disconnected: Vec<Vec<Transaction>> = Vec::new();
        loop {
            let best = self.best_candidate();
            if best == self.tip_hash() {
                break;
            }
            // Path from the fork point up to `best`.
            let mut path = Vec::new();
            let mut cur = best;
            while !self.is_active(&cur) {
                path.push(cur);
                cur = self.index[&cur].header.prev_blockhash;
            }
            path.reverse();
            let fork_height = self.index[&cur].height;
            while self.tip_height() > fork_height {
                let block = self.disconnect_tip()?;
                disconnected.push(block.txdata.into_iter().skip(1).collect());
            }
            for hash in path {
                let block = {
                    let rtx = self.store.begin_read()?;
                    store::read::block(&rtx, &hash)?.ok_or(ChainError::UnknownBlock)?
                };
                let txids = block.compute_txids();
                match self.connect_block(&block, &txids, &hash, verified) {
                    Ok(()) => mempool.remove_for_block(&block.txdata, &txids),
                    Err(ChainError::Rule(reason)) => {
                        tracing::warn!(%hash, %reason, "block failed to connect; marking it invalid");
                        self.last_failure = Some((hash, reason));
                        self.mark_invalid(&hash)?;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if !disconnected.is_empty() {
            // Oldest block first, so parents re-enter the pool before their children; then the
            // old pool, re-checked too: some of it may now spend coins that no longer exist.
            disconnected.reverse();
            let mut txs = disconnected.concat();
            txs.extend(mempool.drain_in_order());
            self.return_to_mempool(txs, mempool, verified);
        }
        Ok(())
    }

    /// Re-validates transactions from disconnected blocks into the mempool; those now confirmed
    /// or invalid are dropped.
    fn return_to_mempool(
        &self,
        txs: Vec<Transaction>,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) {
        if txs.is_empty() {
            return;
        }
        let Ok(rtx) = self.store.begin_read() else {
            return;
        };
        let coin = |o: &OutPoint| store::read::coin(&rtx, o).ok().flatten();
        let view = crate::mempool::ChainView {
            coin: &coin,
            next_height: self.tip_height() + 1,
            median_time_past: self.median_time_past(&self.tip_hash()),
        };
        let now = unix_now();
        for tx in txs {
            if let Ok(entry) = mempool.check(tx, &view, now, &|t| verified.contains(t)) {
                let _ = mempool.insert(entry);
            }
        }
    }

    /// Marks `hash` and every known descendant invalid (in memory and in the store).
    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let Some(root) = self.index.get(hash).copied() else {
            return Err(ChainError::UnknownBlock);
        };
        let doomed: Vec<BlockHash> = self
            .index
            .iter()
            .filter(|(h, e)| {
                *h == hash || (e.height > root.height && self.descends_from(h, hash, root.height))
            })
            .map(|(h, _)| *h)
            .collect();
        let wtx = self.store.begin_write()?;
        for h in &doomed {
            if let Some(e) = self.index.get_mut(h) {
                e.status = Status::Invalid;
                store::write::index(&wtx, h, e)?;
            }
        }
        wtx.commit().map_err(StoreError::from)?;
        Ok(())
    }

    fn descends_from(&self, hash: &BlockHash, ancestor: &BlockHash, ancestor_height: u32) -> bool {
        let mut cur = *hash;
        while let Some(e) = self.index.get(&cur) {
            if e.height == ancestor_height {
                return cur == *ancestor;
            }
            if e.height < ancestor_height {
                return false;
            }
            cur = e.header.prev_blockhash;
        }
        false
    }

    /// Operator action: treat `hash` (and descendants) as invalid and move off it.
    pub fn invalidate_block(
        &mut self,
        hash: &BlockHash,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let entry = *self.index.get(hash).ok_or(ChainError::UnknownBlock)?;
        if entry.height == 0 {
            return Err(RuleError::BadPrevBlock.into());
        }
        let mut disconnected: Vec<Vec<Transaction>> = Vec::new();
        if self.is_active(hash) {
            while self.tip_height() >= entry.height {
                let block = self.disconnect_tip()?;
                disconnected.push(block.txdata.into_iter().skip(1).collect());
            }
        }
        self.mark_invalid(hash)?;
        // Disconnected transactions first (oldest block first), then the old pool, then any
        // better chain.
        disconnected.reverse();
        let mut txs = disconnected.concat();
        txs.extend(mempool.drain_in_order());
        self.return_to_mempool(txs, mempool, verified);
        self.activate_best_chain(mempool, verified)
    }

    /// Operator action: clear the invalid mark from `hash`, its ancestors and descendants, and
    /// move to the most-work chain again.
    pub fn reconsider_block(
        &mut self,
        hash: &BlockHash,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let root = *self.index.get(hash).ok_or(ChainError::UnknownBlock)?;
        let mut cleared: Vec<BlockHash> = self
            .index
            .iter()
            .filter(|(h, e)| e.height >= root.height && self.descends_from(h, hash, root.height))
            .map(|(h, _)| *h)
            .collect();
        let mut cur = root.header.prev_blockhash;
        while let Some(e) = self.index.get(&cur) {
            cleared.push(cur);
            if e.height == 0 {
                break;
            }
            cur = e.header.prev_blockhash;
        }
        let wtx = self.store.begin_write()?;
        for h in &cleared {
            if let Some(e) = self.index.get_mut(h) {
                if e.status == Status::Invalid {
                    e.status = Status::Valid;
                    store::write::index(&wtx, h, e)?;
                }
            }
        }
        wtx.commit().map_err(StoreError::from)?;
        self.activate_best_chain(mempool, verified)
    }

    /// Connects `block` (stored before, read back from the store) on top of the tip.
    fn connect_block(
        &mut self,
        block: &Block,
        txids: &[Txid],
        hash: &BlockHash,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let height = self.tip_height() + 1;
        let wtx = self.store.begin_write()?;
        let wtx = connect_uncommitted(wtx, block, txids, hash, height, verified, None)?;
        wtx.commit().map_err(StoreError::from)?;
        self.active.push(*hash);
        Ok(())
    }

    /// Disconnects the tip in one write transaction using its undo data; returns the block.
    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let hash = self.tip_hash();
        let height = self.tip_height();
        let wtx = self.store.begin_write()?;
        let block = store::write::read_block(&wtx, &hash)?.ok_or(ChainError::UnknownBlock)?;
        let undo = store::write::read_undo(&wtx, &hash)?.ok_or(ChainError::UnknownBlock)?;
        let txids: Vec<Txid> = block.compute_txids();
        let in_block: HashSet<Txid> = txids.iter().copied().collect();
        {
            let mut utxos = wtx.open_table(UTXOS)?;
            let mut addr_utxos = wtx.open_table(ADDR_UTXOS)?;
            let mut addr_txs = wtx.open_table(ADDR_TXS)?;
            let mut tx_index = wtx.open_table(TX_INDEX)?;
            let mut undo_iter = undo.iter();
            for (tx, txid) in block.txdata.iter().zip(&txids) {
                for (vout, output) in tx.output.iter().enumerate() {
                    let key = outpoint_key(&OutPoint {
                        txid: *txid,
                        vout: vout as u32,
                    });
                    utxos.remove(key)?;
                    if let Some(pkh) = output.script_pubkey.p2pkh_hash() {
                        addr_utxos.remove(addr_utxo_key(&pkh, height, &key))?;
                        addr_txs.remove(addr_tx_key(&pkh, height, txid))?;
                    }
                }
                if !tx.is_coinbase() {
                    for input in &tx.input {
                        let coin = undo_iter.next().ok_or(ChainError::UnknownBlock)?;
                        let key = outpoint_key(&input.previous_output);
                        let pkh = coin.output.script_pubkey.p2pkh_hash();
                        if let Some(pkh) = pkh {
                            addr_txs.remove(addr_tx_key(&pkh, height, txid))?;
                        }
                        if in_block.contains(&input.previous_output.txid) {
                            continue; // created and spent inside this block
                        }
                        utxos.insert(key, serialize(coin).as_slice())?;
                        if let Some(pkh) = pkh {
                            addr_utxos.insert(addr_utxo_key(&pkh, coin.height, &key), ())?;
                        }
                    }
                }
                tx_index.remove(txid.to_byte_array())?;
            }
        }
        store::write::undo(&wtx, &hash, None)?;
        store::write::active(&wtx, height, None)?;
        store::write::tip(&wtx, &block.header.prev_blockhash)?;
        wtx.commit().map_err(StoreError::from)?;
        self.active.pop();
        Ok(block)
    }
}

/// A checked block that extends the tip, on its way to being connected.
pub struct TipExtension {
    hash: BlockHash,
    entry: IndexEntry,
    txids: Vec<Txid>,
}

impl TipExtension {
    /// Does the work of connecting the block (coin pass, signatures, indexes) in a write
    /// transaction on `store`, returned uncommitted for [`Chain::finish_tip_extension`]; its
    /// commit waits for the disk if `durable`. Needs no `&mut Chain`: the node runs it without
    /// its lock, so reads go on meanwhile.
    pub fn connect(
        &self,
        store: &Store,
        block: &Block,
        verified: &HashSet<Txid>,
        durable: bool,
    ) -> Result<WriteTransaction, ChainError> {
        connect_uncommitted(
            store.begin_write_with(durable)?,
            block,
            &self.txids,
            &self.hash,
            self.entry.height,
            verified,
            Some(&self.entry),
        )
    }
}

/// How a submitted block goes on after [`Chain::begin_submit`].
pub enum Submission {
    /// It extends the tip and is to be connected.
    ExtendsTip(TipExtension),
    /// It was stored (side branch, or orphans wait for it); its hash.
    Stored(BlockHash),
}

/// Connects `block` at `height` on top of the tip in the write transaction `wtx`, returned
/// uncommitted: spends and creates coins, checks inputs, fees, the coinbase amount and
/// signatures, writes undo data, the tx index and the address index. A `new` block is stored with its index entry in the same
/// transaction. Signatures are checked on the rayon pool while the coin pass goes on, and
/// a large block's address index is written on a second thread as the coin pass hands over
/// each transaction's spent addresses.
fn connect_uncommitted(
    wtx: WriteTransaction,
    block: &Block,
    txids: &[Txid],
    hash: &BlockHash,
    height: u32,
    verified: &HashSet<Txid>,
    new: Option<&IndexEntry>,
) -> Result<WriteTransaction, ChainError> {
    if let Some(entry) = new {
        store::write::block(&wtx, hash, block)?;
        store::write::index(&wtx, hash, entry)?;
    }
    let (send, spent_addrs) = std::sync::mpsc::channel();
    let spent = if block.txdata.len() < PARALLEL_INDEX_MIN_TXS {
        let spent = connect_coins(&wtx, block, hash, txids, height, verified, send)?;
        store::write::connect_address_index(&wtx, height, block, txids, spent_addrs)?;
        spent
    } else {
        std::thread::scope(|s| {
            let indexer = s.spawn(|| {
                store::write::connect_address_index(&wtx, height, block, txids, spent_addrs)
            });
            let spent = connect_coins(&wtx, block, hash, txids, height, verified, send);
            let indexed = indexer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
            let spent = spent?;
            indexed?;
            Ok::<_, ChainError>(spent)
        })?
    };
    store::write::undo(&wtx, hash, Some(&spent))?;
    store::write::active(&wtx, height, Some(hash))?;
    store::write::tip(&wtx, hash)?;
    Ok(wtx)
}

/// Blocks with at least this many transactions write their address index on a second thread.
const PARALLEL_INDEX_MIN_TXS: usize = 64;

/// The coin pass of a block connect: removes the coins the block spends and adds the ones it
/// creates, checking inputs, fees and the coinbase amount, and writes the tx index. Signatures
/// of transactions not in `verified` are checked on the rayon pool meanwhile. Sends each
/// transaction's spent P2PKH coins to the address index writer, in block order. Returns every
/// spent coin in spending order (the undo data).
fn connect_coins(
    wtx: &WriteTransaction,
    block: &Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    verified: &HashSet<Txid>,
    spent_addrs: std::sync::mpsc::Sender<store::write::SpentAddrs>,
) -> Result<Vec<Coin>, ChainError> {
    let checks = SignatureChecks::default();
    let spent = rayon::scope(|scope| {
        let result = (|| {
            let mut utxos = wtx.open_table(UTXOS)?;
            let mut tx_index = wtx.open_table(TX_INDEX)?;
            let mut spent: Vec<Coin> = Vec::new();
            let mut fees = chaincore::Amount::ZERO;
            for (pos, (tx, txid)) in block.txdata.iter().zip(txids).enumerate() {
                let mut addrs = Vec::new();
                if !tx.is_coinbase() {
                    let first = spent.len();
                    for input in &tx.input {
                        let key = outpoint_key(&input.previous_output);
                        let coin: Coin = match utxos.remove(key)? {
                            Some(v) => {
                                deserialize(v.value()).map_err(|source| StoreError::Corrupt {
                                    table: "utxos",
                                    source,
                                })?
                            }
                            None => return Err(RuleError::InputsMissingOrSpent.into()),
                        };
                        if let Some(pkh) = coin.output.script_pubkey.p2pkh_hash() {
                            addrs.push((pkh, coin.height, key));
                        }
                        spent.push(coin);
                    }
                    let coins: Vec<&Coin> = spent[first..].iter().collect();
                    let fee = validation::check_tx_inputs(tx, &coins, height)?;
                    fees = fees
                        .checked_add(fee)
                        .ok_or(RuleError::InputValuesOutOfRange)?;
                    if !verified.contains(txid) {
                        let scripts = spent[first..]
                            .iter()
                            .map(|c| c.output.script_pubkey.clone())
                            .collect();
                        checks.spawn(scope, tx, scripts);
                    }
                }
                for (vout, output) in tx.output.iter().enumerate() {
                    if output.script_pubkey.op_return_data().is_some() {
                        continue; // provably unspendable: never enters the UTXO set
                    }
                    let key = outpoint_key(&OutPoint {
                        txid: *txid,
                        vout: vout as u32,
                    });
                    let coin = Coin {
                        output: output.clone(),
                        height,
                        is_coinbase: pos == 0,
                    };
                    if utxos.insert(key, serialize(&coin).as_slice())?.is_some() {
                        return Err(RuleError::DuplicateTx.into());
                    }
                }
                let mut location = [0u8; 36];
                location[..32].copy_from_slice(hash.as_bytes());
                location[32..].copy_from_slice(&(pos as u32).to_le_bytes());
                tx_index.insert(txid.to_byte_array(), location)?;
                // The index writer stops early only on its own error, which the caller reports.
                let _ = spent_addrs.send(addrs);
            }
            validation::check_coinbase_amount(block, block_subsidy(height), fees)?;
            Ok::<_, ChainError>(spent)
        })();
        if result.is_err() {
            checks.give_up.store(true, Ordering::Relaxed);
        }
        result
    })?;
    checks.outcome()?;
    Ok(spent)
}

/// Signature checks of one block running on the rayon pool.
#[derive(Default)]
struct SignatureChecks {
    /// The first failure found.
    failure: Mutex<Option<ScriptFailure>>,
    /// Set on a failure or when the coin pass fails: checks not yet run are skipped.
    give_up: AtomicBool,
}

impl SignatureChecks {
    /// Checks the inputs of `tx` against the scripts of the coins they spend, on `scope`.
    fn spawn<'s>(&'s self, scope: &rayon::Scope<'s>, tx: &'s Transaction, scripts: Vec<Script>) {
        scope.spawn(move |_| {
            for (input, script) in scripts.iter().enumerate() {
                if self.give_up.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = validation::verify_input(tx, input, script) {
                    self.give_up.store(true, Ordering::Relaxed);
                    if let Ok(mut first) = self.failure.lock() {
                        first.get_or_insert(e);
                    }
                    return;
                }
            }
        });
    }

    /// The first failure, once every spawned check has ended.
    fn outcome(self) -> Result<(), RuleError> {
        match self.failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(e) => Err(RuleError::Script(e)),
            None => Ok(()),
        }
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
