//! Chain state: the block index in memory, block acceptance in any order, most-work chain
//! selection, and connecting / disconnecting blocks against the store's UTXO set.
//!
//! Only one thread mutates a [`Chain`] (it sits behind the node's state lock); readers use
//! store snapshots. Each connect or disconnect is one redb write transaction. On open, and
//! whenever a stored block with more work than the tip is known, [`Chain::activate_best_chain`]
//! moves to the most-work valid chain; the steps of one such move skip waiting for the disk and
//! a last durable commit ends it, so a crash anywhere reopens to a consistent tip from which
//! the move is simply made again.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use chaincore::encode::{deserialize, serialize};
use chaincore::pow::{block_subsidy, Work};
use chaincore::validation::{self, Coin, RuleError};
use chaincore::{Block, BlockHash, Network, OutPoint, Script, Transaction, Txid};
use redb::WriteTransaction;

use crate::mempool::Mempool;
use crate::store::tables::{ADDR_TXS, ADDR_UTXOS, TX_INDEX, UTXOS};
use crate::store::{
    self, addr_tx_key, addr_utxo_key, outpoint_key, IndexEntry, Status, Store, StoreError,
};

/// Most blocks kept while waiting for their parent.
pub const MAX_ORPHAN_BLOCKS: usize = 100;

/// A consensus rule a block broke, and where. Displays as Bitcoin Core's reject reason (what
/// `submitblock` answers); [`Rejection::detail`] adds the block, height, transaction, input
/// and outpoint for logs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// The rule.
    pub reason: RuleError,
    /// The block that broke it, when known.
    pub block: Option<BlockHash>,
    /// That block's height, when known.
    pub height: Option<u32>,
    /// The transaction that broke it, if the rule is about one.
    pub txid: Option<Txid>,
    /// The input that broke it, with the outpoint it spends.
    pub input: Option<(usize, OutPoint)>,
}

impl Rejection {
    /// The reason with every piece of context known, e.g. `bad-txns-inputs-missingorspent
    /// (block 3f…, height 12, tx 9a…, input 0 spending 77…:1)`.
    pub fn detail(&self) -> String {
        let mut parts = Vec::new();
        if let Some(b) = self.block {
            parts.push(format!("block {b}"));
        }
        if let Some(h) = self.height {
            parts.push(format!("height {h}"));
        }
        if let Some(t) = self.txid {
            parts.push(format!("tx {t}"));
        }
        if let Some((i, o)) = self.input {
            parts.push(format!("input {i} spending {}:{}", o.txid, o.vout));
        }
        if parts.is_empty() {
            self.reason.to_string()
        } else {
            format!("{} ({})", self.reason, parts.join(", "))
        }
    }

    /// This rejection, said to be about transaction `txid`.
    fn in_tx(mut self, txid: Txid) -> Rejection {
        self.txid.get_or_insert(txid);
        self
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for Rejection {}

impl From<RuleError> for Rejection {
    fn from(reason: RuleError) -> Self {
        Rejection {
            reason,
            block: None,
            height: None,
            txid: None,
            input: None,
        }
    }
}

/// Why a block or chain operation failed. Only [`ChainError::is_fatal`] errors stop the node;
/// the rest are answers to the caller.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The block breaks a consensus rule (boxed: the context makes it the largest variant).
    #[error("{0}")]
    Rule(Box<Rejection>),
    /// The block was seen before.
    #[error("duplicate")]
    Duplicate,
    /// The block was seen before and is invalid.
    #[error("duplicate-invalid")]
    DuplicateInvalid,
    /// The store failed or is damaged; the node must stop.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// The caller named a block this node does not know.
    #[error("Block not found")]
    BlockNotFound(BlockHash),
}

impl ChainError {
    /// True for failures that leave nothing trustworthy (the store failed or is damaged): the
    /// node logs them and shuts down. A caller's mistake or a broken rule is never fatal.
    pub fn is_fatal(&self) -> bool {
        matches!(self, ChainError::Store(_))
    }

    /// The rule broken, if this is a rule failure.
    pub fn rule(&self) -> Option<&RuleError> {
        match self {
            ChainError::Rule(r) => Some(&r.reason),
            _ => None,
        }
    }

    /// This error with `hash` and `height` filled in, if it is a rule failure without them.
    fn in_block(self, hash: BlockHash, height: u32) -> ChainError {
        match self {
            ChainError::Rule(mut r) => {
                r.block.get_or_insert(hash);
                r.height.get_or_insert(height);
                ChainError::Rule(r)
            }
            other => other,
        }
    }
}

impl From<RuleError> for ChainError {
    fn from(e: RuleError) -> Self {
        ChainError::Rule(Box::new(e.into()))
    }
}

impl From<Rejection> for ChainError {
    fn from(e: Rejection) -> Self {
        ChainError::Rule(Box::new(e))
    }
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

/// A row that must be in the store and is not: the store is damaged.
fn missing(what: &'static str, hash: &BlockHash) -> ChainError {
    ChainError::Store(StoreError::Missing {
        what,
        key: hash.to_string(),
    })
}

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
    /// Known children of each block, so invalidation walks only what it affects.
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// Every valid block by chain work; the last is the best candidate for the tip.
    candidates: BTreeSet<(Work, Reverse<BlockHash>)>,
    /// Active chain, by height.
    active: Vec<BlockHash>,
    /// Blocks waiting for their parent, keyed by their hash.
    orphans: HashMap<BlockHash, Block>,
    /// The last block that failed to connect, and why (reported by `finish_stored`).
    last_failure: Option<(BlockHash, Rejection)>,
}

impl Chain {
    /// Loads the chain from `store`, writing the genesis block into an empty store. Refuses a
    /// store of another network, naming both. Does not move the tip: the caller runs
    /// [`Chain::activate_best_chain`] next, which finishes a reorg a crash interrupted.
    pub fn open(store: Store, network: Network) -> Result<Chain, ChainError> {
        let entries = store.load_index()?;
        let mut chain = Chain {
            network,
            store: Arc::new(store),
            index: HashMap::with_capacity(entries.len()),
            children: HashMap::new(),
            candidates: BTreeSet::new(),
            active: Vec::new(),
            orphans: HashMap::new(),
            last_failure: None,
        };
        for (hash, entry) in entries {
            chain.add_entry(hash, entry);
        }
        match chain.store.tip()? {
            Some(tip) => {
                let mut hash = tip;
                let mut back = Vec::new();
                loop {
                    let entry = chain
                        .index
                        .get(&hash)
                        .ok_or_else(|| missing("the block index entry of", &hash))?;
                    back.push(hash);
                    if entry.height == 0 {
                        break;
                    }
                    hash = entry.header.prev_blockhash;
                }
                back.reverse();
                chain.active = back;
            }
            None if chain.index.is_empty() => chain.write_genesis()?,
            None => return Err(missing("the tip row (meta) over", &network.genesis_hash())),
        }
        let genesis = chain.active[0];
        if genesis != network.genesis_hash() {
            let found = Network::ALL
                .into_iter()
                .find(|n| n.genesis_hash() == genesis)
                .map_or_else(|| "an unknown network".to_string(), |n| n.to_string());
            return Err(StoreError::WrongNetwork {
                path: chain.store.path().display().to_string(),
                found,
                expected: network,
            }
            .into());
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
        self.add_entry(hash, entry);
        self.active = vec![hash];
        Ok(())
    }

    /// Adds an entry to the in-memory index, its parent's children and, if valid, the
    /// candidates.
    fn add_entry(&mut self, hash: BlockHash, entry: IndexEntry) {
        match self.index.insert(hash, entry) {
            Some(old) if old.status == Status::Valid => {
                self.candidates.remove(&(old.chainwork, Reverse(hash)));
            }
            Some(_) => {}
            None if entry.height > 0 => self
                .children
                .entry(entry.header.prev_blockhash)
                .or_default()
                .push(hash),
            None => {}
        }
        if entry.status == Status::Valid {
            self.candidates.insert((entry.chainwork, Reverse(hash)));
        }
    }

    /// Sets the status of a known block in memory, keeping the candidates in step.
    fn set_status(&mut self, hash: &BlockHash, status: Status) {
        if let Some(e) = self.index.get_mut(hash) {
            e.status = status;
            match status {
                Status::Valid => self.candidates.insert((e.chainwork, Reverse(*hash))),
                Status::Invalid => self.candidates.remove(&(e.chainwork, Reverse(*hash))),
            };
        }
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
    /// any order, orphans kept in a bounded pool) and moves to the most-work valid chain. A
    /// block stored before that is valid but not active comes back as [`Submission::Known`],
    /// to run the same step (as Bitcoin Core's `submitblock` runs `ActivateBestChain` for a
    /// block it already has).
    pub fn begin_submit(&mut self, block: &Block, now: i64) -> Result<Submission, ChainError> {
        let hash = block.block_hash();
        if self
            .index
            .get(&hash)
            .is_some_and(|e| e.status == Status::Valid && !self.is_active(&hash))
        {
            return Ok(Submission::Known(hash));
        }
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
                self.add_entry(hash, entry);
                mempool.remove_for_block(&block.txdata, &txids);
                Ok(Accepted::BestChain)
            }
            Err(ChainError::Rule(reason)) => {
                tracing::warn!(reason = reason.detail(), "block failed to connect");
                let invalid = IndexEntry {
                    status: Status::Invalid,
                    ..entry
                };
                self.store_block(block, &hash, invalid)?;
                Err(ChainError::Rule(reason))
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
                match self.check_new_block(&b, child, now) {
                    Ok((entry, _)) => {
                        self.store_block(&b, &child, entry)?;
                        ready.push(child);
                    }
                    Err(e) if e.is_fatal() => return Err(e),
                    Err(e) => tracing::debug!(%child, "orphan block dropped: {e}"),
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
            .map(|(_, e)| e.into())
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
        self.add_entry(*hash, entry);
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
        let no_context = |e: RuleError| {
            ChainError::from(Rejection {
                block: Some(hash),
                ..e.into()
            })
        };
        let txids = validation::check_block(block, self.network).map_err(no_context)?;
        let Some(prev) = self.index.get(&block.header.prev_blockhash).copied() else {
            if self.orphans.len() >= MAX_ORPHAN_BLOCKS {
                // Drop an arbitrary orphan: the pool is a convenience, not a promise.
                if let Some(k) = self.orphans.keys().next().copied() {
                    self.orphans.remove(&k);
                }
            }
            self.orphans.insert(hash, block.clone());
            return Err(no_context(RuleError::PrevBlockNotFound));
        };
        let height = prev.height + 1;
        let checks = || -> Result<Work, RuleError> {
            if prev.status == Status::Invalid {
                return Err(RuleError::BadPrevBlock);
            }
            validation::check_difficulty(&block.header, self.next_bits(&prev))?;
            let mtp = self.median_time_past(&block.header.prev_blockhash);
            validation::check_block_time(&block.header, mtp, now)?;
            validation::check_coinbase_height(block, height)?;
            validation::check_finality(block, height, mtp)?;
            block
                .header
                .target()
                .map(|t| t.work())
                .ok_or(RuleError::HighHash)
        };
        let work = checks().map_err(|e| ChainError::from(e).in_block(hash, height))?;
        let entry = IndexEntry {
            header: block.header,
            height,
            chainwork: prev.chainwork + work,
            status: Status::Valid,
        };
        Ok((entry, txids))
    }

    /// The block the tip should be: the valid block with the most work, where the current tip
    /// wins ties (first seen). If the tip itself is invalid (an invalidation a crash cut
    /// short), the most-work valid block whatever its work.
    fn best_candidate(&self) -> BlockHash {
        let tip = self.tip_hash();
        let tip_entry = &self.index[&tip];
        match self.candidates.last() {
            Some((work, Reverse(best)))
                if tip_entry.status == Status::Invalid || *work > tip_entry.chainwork =>
            {
                *best
            }
            _ => tip,
        }
    }

    /// Reorganizes onto the most-work valid chain, one write transaction per block (each
    /// skipping the disk wait; a last durable commit makes the whole move durable). A block
    /// that fails to connect is marked invalid with its descendants, and selection runs again.
    /// Transactions of disconnected blocks go back to the mempool. Work is linear in the
    /// blocks disconnected and connected.
    pub fn activate_best_chain(
        &mut self,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let mut disconnected: Vec<Vec<Transaction>> = Vec::new();
        let mut moved = false;
        loop {
            let best = self.best_candidate();
            if best == self.tip_hash() {
                break;
            }
            moved = true;
            // Path from the fork point up to `best`.
            let mut path = Vec::new();
            let mut cur = best;
            while !self.is_active(&cur) {
                path.push(cur);
                cur = self
                    .index
                    .get(&cur)
                    .ok_or_else(|| missing("the block index entry of", &cur))?
                    .header
                    .prev_blockhash;
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
                    store::read::block(&rtx, &hash)?.ok_or_else(|| missing("block", &hash))?
                };
                let txids = block.compute_txids();
                match self.connect_block(&block, &txids, &hash, verified) {
                    Ok(()) => mempool.remove_for_block(&block.txdata, &txids),
                    Err(ChainError::Rule(reason)) => {
                        tracing::warn!(
                            reason = reason.detail(),
                            "block failed to connect; marking it invalid"
                        );
                        self.last_failure = Some((hash, *reason));
                        self.mark_invalid(&hash)?;
                        break;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
        if moved {
            self.store.flush()?;
        }
        if !disconnected.is_empty() {
            // Oldest block first, so parents re-enter the pool before their children; then the
            // old pool, re-checked too: some of it may now spend coins that no longer exist.
            disconnected.reverse();
            let mut txs = disconnected.concat();
            txs.extend(mempool.drain_in_order());
            self.return_to_mempool(txs, mempool, verified)?;
        }
        Ok(())
    }

    /// Re-validates transactions from disconnected blocks into the mempool; those now confirmed
    /// or invalid are dropped. Only a store failure is an error.
    fn return_to_mempool(
        &self,
        txs: Vec<Transaction>,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        if txs.is_empty() {
            return Ok(());
        }
        let rtx = self.store.begin_read()?;
        let coin = |o: &OutPoint| store::read::coin(&rtx, o);
        let view = crate::mempool::ChainView {
            coin: &coin,
            next_height: self.tip_height() + 1,
            median_time_past: self.median_time_past(&self.tip_hash()),
        };
        let now = unix_now();
        for tx in txs {
            match mempool.check(tx, &view, now, &|t| verified.contains(t)) {
                Ok(entry) => {
                    let _ = mempool.insert(entry);
                }
                Err(crate::mempool::MempoolError::Store(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(())
    }

    /// Marks `hash` and every known descendant invalid, in memory and in one durable write
    /// transaction. Walks only those blocks: a block already invalid has invalid descendants.
    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let mut doomed = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if self
                .index
                .get(&h)
                .is_some_and(|e| e.status == Status::Valid)
            {
                doomed.push(h);
                stack.extend(self.children.get(&h).into_iter().flatten().copied());
            }
        }
        self.write_status(&doomed, Status::Invalid)
    }

    /// Sets the status of `hashes`, in the store (one durable transaction) and in memory.
    fn write_status(&mut self, hashes: &[BlockHash], status: Status) -> Result<(), ChainError> {
        if hashes.is_empty() {
            return Ok(());
        }
        let wtx = self.store.begin_write()?;
        for h in hashes {
            if let Some(e) = self.index.get(h) {
                store::write::index(&wtx, h, &IndexEntry { status, ..*e })?;
            }
        }
        wtx.commit().map_err(StoreError::from)?;
        for h in hashes {
            self.set_status(h, status);
        }
        Ok(())
    }

    /// Operator action: treat `hash` (and descendants) as invalid and move off it to the
    /// most-work valid chain. The marks are durable before the first block is disconnected, so
    /// a crash part-way reopens on a chain that still has to move off them, and does. Genesis
    /// cannot be invalidated: as in Bitcoin Core, asking does nothing.
    pub fn invalidate_block(
        &mut self,
        hash: &BlockHash,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let entry = *self
            .index
            .get(hash)
            .ok_or(ChainError::BlockNotFound(*hash))?;
        if entry.height == 0 {
            return Ok(());
        }
        self.mark_invalid(hash)?;
        self.activate_best_chain(mempool, verified)
    }

    /// Operator action: clear the invalid mark from `hash`, its descendants and its invalid
    /// ancestors, and move to the most-work chain again.
    pub fn reconsider_block(
        &mut self,
        hash: &BlockHash,
        mempool: &mut Mempool,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let root = *self
            .index
            .get(hash)
            .ok_or(ChainError::BlockNotFound(*hash))?;
        let mut cleared = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if self
                .index
                .get(&h)
                .is_some_and(|e| e.status == Status::Invalid)
            {
                cleared.push(h);
            }
            stack.extend(self.children.get(&h).into_iter().flatten().copied());
        }
        // Ancestors: a valid block has only valid ancestors, so stop at the first one.
        let mut cur = root;
        while cur.height > 0 {
            let parent = cur.header.prev_blockhash;
            let Some(e) = self.index.get(&parent).copied() else {
                break;
            };
            if e.status == Status::Valid {
                break;
            }
            cleared.push(parent);
            cur = e;
        }
        self.write_status(&cleared, Status::Valid)?;
        self.activate_best_chain(mempool, verified)
    }

    /// Connects `block` (stored before, read back from the store) on top of the tip, in a
    /// write transaction that does not wait for the disk (see [`Chain::activate_best_chain`]).
    fn connect_block(
        &mut self,
        block: &Block,
        txids: &[Txid],
        hash: &BlockHash,
        verified: &HashSet<Txid>,
    ) -> Result<(), ChainError> {
        let height = self.tip_height() + 1;
        let wtx = self.store.begin_write_with(false)?;
        let wtx = connect_uncommitted(wtx, block, txids, hash, height, verified, None)?;
        wtx.commit().map_err(StoreError::from)?;
        self.active.push(*hash);
        Ok(())
    }

    /// Disconnects the tip in one write transaction using its undo data (not waiting for the
    /// disk, see [`Chain::activate_best_chain`]); returns the block.
    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let hash = self.tip_hash();
        let height = self.tip_height();
        let wtx = self.store.begin_write_with(false)?;
        let block =
            store::write::read_block(&wtx, &hash)?.ok_or_else(|| missing("block", &hash))?;
        let undo =
            store::write::read_undo(&wtx, &hash)?.ok_or_else(|| missing("undo data of", &hash))?;
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
                        let coin = undo_iter
                            .next()
                            .ok_or_else(|| missing("a spent coin in the undo data of", &hash))?;
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
    /// It was stored before, is valid and not active: [`Chain::finish_stored`] runs chain
    /// selection again, and the answer is `duplicate`.
    Known(BlockHash),
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
    let spent = (if block.txdata.len() < PARALLEL_INDEX_MIN_TXS {
        connect_coins(&wtx, block, hash, txids, height, verified, send).and_then(|spent| {
            store::write::connect_address_index(&wtx, height, block, txids, spent_addrs)?;
            Ok(spent)
        })
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
        })
    })
    .map_err(|e| e.in_block(*hash, height))?;
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
                    for (i, input) in tx.input.iter().enumerate() {
                        let key = outpoint_key(&input.previous_output);
                        let coin: Coin = match utxos.remove(key)? {
                            Some(v) => {
                                deserialize(v.value()).map_err(|source| StoreError::Corrupt {
                                    table: "utxos",
                                    source,
                                })?
                            }
                            None => {
                                return Err(Rejection {
                                    txid: Some(*txid),
                                    input: Some((i, input.previous_output)),
                                    ..RuleError::InputsMissingOrSpent.into()
                                }
                                .into())
                            }
                        };
                        if let Some(pkh) = coin.output.script_pubkey.p2pkh_hash() {
                            addrs.push((pkh, coin.height, key));
                        }
                        spent.push(coin);
                    }
                    let coins: Vec<&Coin> = spent[first..].iter().collect();
                    let fee = validation::check_tx_inputs(tx, &coins, height)
                        .map_err(|e| Rejection::from(e).in_tx(*txid))?;
                    fees = fees
                        .checked_add(fee)
                        .ok_or_else(|| Rejection::from(RuleError::InputValuesOutOfRange))?;
                    if !verified.contains(txid) {
                        let scripts = spent[first..]
                            .iter()
                            .map(|c| c.output.script_pubkey.clone())
                            .collect();
                        checks.spawn(scope, tx, *txid, scripts);
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
                        return Err(Rejection::from(RuleError::DuplicateTx).in_tx(*txid).into());
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
    /// The first failure found, with its transaction and input.
    failure: Mutex<Option<Rejection>>,
    /// Set on a failure or when the coin pass fails: checks not yet run are skipped.
    give_up: AtomicBool,
}

impl SignatureChecks {
    /// Checks the inputs of `tx` (`txid`) against the scripts of the coins they spend, on
    /// `scope`.
    fn spawn<'s>(
        &'s self,
        scope: &rayon::Scope<'s>,
        tx: &'s Transaction,
        txid: Txid,
        scripts: Vec<Script>,
    ) {
        scope.spawn(move |_| {
            for (input, script) in scripts.iter().enumerate() {
                if self.give_up.load(Ordering::Relaxed) {
                    return;
                }
                if let Err(e) = validation::verify_input(tx, input, script) {
                    self.give_up.store(true, Ordering::Relaxed);
                    if let Ok(mut first) = self.failure.lock() {
                        first.get_or_insert_with(|| Rejection {
                            txid: Some(txid),
                            input: tx.input.get(input).map(|i| (input, i.previous_output)),
                            ..RuleError::Script(e).into()
                        });
                    }
                    return;
                }
            }
        });
    }

    /// The first failure, once every spawned check has ended.
    fn outcome(self) -> Result<(), ChainError> {
        match self.failure.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(rejection) => Err(rejection.into()),
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
