//! Chain state: the block index in memory, block acceptance in any order, most-work chain
//! selection, and connecting / disconnecting blocks against the store's UTXO set.
//!
//! Only the writer thread (`crate::writer`) holds a [`Chain`]; readers get a copy of its
//! [`BlockIndex`] and of its coins cache in each snapshot. Each connect or disconnect is one
//! redb write transaction (the block, its undo data, the tip), made by `store::connect`; its
//! UTXO changes enter the coins cache once it commits, and the cache is flushed into the same
//! transaction when it is full or [`store::coins::FLUSH_INTERVAL`] after the last flush, and
//! on its own at shutdown ([`Chain::flush_coins`]). This module decides what to connect and
//! checks the rules. On open the UTXO set is brought from the block it was flushed at to the
//! tip (disconnecting with undo data back to the fork, connecting forward, as Bitcoin Core's
//! `ReplayBlocks`); then, and whenever a stored block with more work than the tip is known,
//! [`Chain::activate_best_chain`] moves to the most-work valid chain. The steps of one such
//! move skip waiting for the disk and a last durable commit ends it, so a crash anywhere
//! reopens to a consistent tip from which the move is simply made again.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;

use chaincore::merkle::MerkleTxids;
use chaincore::pow::{block_subsidy, Work};
use chaincore::validation::{self, Coin, RuleError};
use chaincore::{Block, BlockHash, Network, OutPoint, Transaction, Txid};
use redb::WriteTransaction;

use crate::mempool::Mempool;
use crate::signatures::{self, BlockChecks};
use crate::store::coins::{Changes, CoinsCache};
use crate::store::connect::{self, Fault};
use crate::store::{self, IndexEntry, Status, Store, StoreError};

pub mod index;

pub use index::BlockIndex;

/// Says whether a transaction's signatures were checked already (it is in the mempool), so a
/// block connect skips them.
pub type Verified<'a> = &'a dyn Fn(&Txid) -> bool;

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
    /// The node is shutting down and takes no more changes.
    #[error("the node is shutting down")]
    Stopping,
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

impl From<Fault> for ChainError {
    fn from(fault: Fault) -> Self {
        match fault {
            Fault::MissingInput {
                txid,
                input,
                outpoint,
            } => Rejection {
                txid: Some(txid),
                input: Some((input, outpoint)),
                ..RuleError::InputsMissingOrSpent.into()
            }
            .into(),
            Fault::DuplicateOutput { txid } => {
                Rejection::from(RuleError::DuplicateTx).in_tx(txid).into()
            }
        }
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
    store: Arc<Store>,
    index: BlockIndex,
    /// Known children of each block, so invalidation walks only what it affects.
    children: HashMap<BlockHash, Vec<BlockHash>>,
    /// Every valid block by chain work; the last is the best candidate for the tip.
    candidates: BTreeSet<(Work, Reverse<BlockHash>)>,
    /// Blocks waiting for their parent, keyed by their hash.
    orphans: HashMap<BlockHash, Block>,
    /// The last block that failed to connect, and why (reported by `finish_stored`).
    last_failure: Option<(BlockHash, Rejection)>,
    /// The UTXO changes since the last flush.
    coins: CoinsCache,
}

impl Chain {
    /// Loads the chain from `store`, writing the genesis block into an empty store, with a
    /// coins cache of `dbcache` bytes (0: flush with every block), and replays the blocks
    /// between the flushed UTXO set and the tip. Refuses a store of another network, naming
    /// both. Does not move the tip: the caller runs [`Chain::activate_best_chain`] next,
    /// which finishes a reorg a crash interrupted.
    pub fn open(store: Store, network: Network, dbcache: usize) -> Result<Chain, ChainError> {
        let entries = store.load_index()?;
        let mut chain = Chain {
            store: Arc::new(store),
            index: BlockIndex::new(network),
            children: HashMap::new(),
            candidates: BTreeSet::new(),
            orphans: HashMap::new(),
            last_failure: None,
            coins: CoinsCache::new(dbcache),
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
                        .entry(&hash)
                        .ok_or_else(|| missing("the block index entry of", &hash))?;
                    back.push(hash);
                    if entry.height == 0 {
                        break;
                    }
                    hash = entry.header.prev_blockhash;
                }
                back.reverse();
                chain.index.set_active(back);
            }
            None if chain.index.len() == 0 => chain.write_genesis()?,
            None => return Err(missing("the tip row (meta) over", &network.genesis_hash())),
        }
        let genesis = chain.index.active_hash(0).unwrap_or(BlockHash::ZERO);
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
        chain.replay()?;
        Ok(chain)
    }

    /// The blocks from `from` down to, not including, its first ancestor on the active chain
    /// (highest first; empty if `from` is active), and that ancestor's height.
    fn branch_above_active(&self, from: BlockHash) -> Result<(Vec<BlockHash>, u32), ChainError> {
        let mut branch = Vec::new();
        let mut cur = from;
        while !self.is_active(&cur) {
            branch.push(cur);
            cur = self
                .index
                .entry(&cur)
                .ok_or_else(|| missing("the block index entry of", &cur))?
                .header
                .prev_blockhash;
        }
        let fork = self
            .index
            .entry(&cur)
            .ok_or_else(|| missing("the block index entry of", &cur))?
            .height;
        Ok((branch, fork))
    }

    /// Brings the UTXO set from the block it was last flushed at to the tip: disconnects that
    /// block and its ancestors down to the active chain with their undo data, then connects
    /// the active blocks above the fork, all in the cache, and flushes. A crash part-way
    /// leaves the store as it was, and the next open replays again.
    fn replay(&mut self) -> Result<(), ChainError> {
        let tip = self.tip_hash();
        let from = self
            .store
            .coins_tip()?
            .ok_or_else(|| missing("the coins tip row (meta) under", &tip))?;
        if from == tip {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let (down, fork) = self.branch_above_active(from)?;
        let store = self.store.clone();
        let rtx = store.begin_read()?;
        let blocks = rtx.open_table(store::tables::BLOCKS)?;
        let undo = rtx.open_table(store::tables::UNDO)?;
        let utxos = rtx.open_table(store::tables::UTXOS)?;
        for hash in &down {
            let (block, spent) = connect::block_and_undo(&blocks, &undo, hash)?;
            let changes =
                connect::disconnect_changes(&block, &block.compute_txids(), &spent, hash)?;
            self.coins.apply(changes);
        }
        for height in fork + 1..=self.tip_height() {
            let Some(hash) = self.index.active_hash(height) else {
                break;
            };
            let block =
                store::read::block_in(&blocks, &hash)?.ok_or_else(|| missing("block", &hash))?;
            let txids = block.compute_txids();
            let (changes, _) = connect::spend_and_create(
                &utxos,
                &self.coins,
                &block,
                &txids,
                height,
                |_, _, _| Ok::<(), ChainError>(()),
            )
            .map_err(|e| match e {
                ChainError::Rule(r) => ChainError::Store(StoreError::Missing {
                    what: "the coins a replayed block spends (or room for those it creates) at",
                    key: format!("{hash} ({})", r.detail()),
                }),
                e => e,
            })?;
            self.coins.apply(changes);
        }
        drop((blocks, undo, utxos, rtx));
        let (disconnected, connected) = (down.len(), self.tip_height() - fork);
        self.flush_coins()?;
        tracing::info!(
            from = %from,
            disconnected,
            connected,
            ms = started.elapsed().as_millis() as u64,
            "UTXO set replayed from its last flush to the tip"
        );
        Ok(())
    }

    /// Writes the coins cache into the store in one durable transaction, recording the tip as
    /// the block the UTXO set belongs to (at shutdown, and after a replay).
    pub fn flush_coins(&mut self) -> Result<(), ChainError> {
        if self.coins.is_empty() {
            return Ok(());
        }
        let started = std::time::Instant::now();
        let bytes = self.coins.usage();
        let wtx = self.store.begin_write()?;
        let written = self.coins.write(&wtx, None, &self.tip_hash())?;
        wtx.commit().map_err(StoreError::from)?;
        self.coins.flushed();
        tracing::info!(
            changes = written,
            cache_mib = bytes >> 20,
            ms = started.elapsed().as_millis() as u64,
            "coins cache flushed"
        );
        Ok(())
    }

    /// The coins cache.
    pub fn coins(&self) -> &CoinsCache {
        &self.coins
    }

    /// Commits `wtx`, which moved the tip to `tip` with UTXO `changes`: flushes the cache
    /// into it first if the cache wants that, and takes the changes in once it committed.
    fn commit_with(
        &mut self,
        wtx: WriteTransaction,
        changes: Changes,
        tip: &BlockHash,
    ) -> Result<(), ChainError> {
        let flush = self.coins.wants_flush(changes.len());
        if flush {
            self.coins.write(&wtx, Some(&changes), tip)?;
            wtx.commit().map_err(StoreError::from)?;
            self.coins.flushed();
            tracing::debug!(tip = %tip, "coins cache flushed with the block");
            return Ok(());
        }
        wtx.commit().map_err(StoreError::from)?;
        self.coins.apply(changes);
        Ok(())
    }

    /// Starts merging the last block's UTXO changes into the coins cache's map on the
    /// cache's own thread (see [`CoinsCache::settle`]); the writer calls it once the block's
    /// caller has its answer.
    pub fn settle_coins(&mut self) {
        self.coins.settle();
    }

    fn write_genesis(&mut self) -> Result<(), ChainError> {
        let network = self.index.network();
        let genesis = network.genesis_block();
        let hash = genesis.block_hash();
        let entry = index::genesis_entry(network);
        let wtx = self.store.begin_write()?;
        store::write::block(&wtx, &hash, genesis)?;
        store::write::index(&wtx, &hash, &entry)?;
        store::write::active(&wtx, 0, Some(&hash))?;
        store::write::tip(&wtx, &hash)?;
        self.coins.write(&wtx, None, &hash)?;
        wtx.commit().map_err(StoreError::from)?;
        self.add_entry(hash, entry);
        self.index.set_active(vec![hash]);
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
        if let Some(e) = self.index.entry_mut(hash) {
            e.status = status;
            match status {
                Status::Valid => self.candidates.insert((e.chainwork, Reverse(*hash))),
                Status::Invalid => self.candidates.remove(&(e.chainwork, Reverse(*hash))),
            };
        }
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, shared.
    pub fn shared_store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// The block index (cheap to clone, for snapshots).
    pub fn index(&self) -> &BlockIndex {
        &self.index
    }

    /// Best block hash.
    pub fn tip_hash(&self) -> BlockHash {
        self.index.tip_hash()
    }

    /// Best block height.
    pub fn tip_height(&self) -> u32 {
        self.index.tip_height()
    }

    fn is_active(&self, hash: &BlockHash) -> bool {
        self.index.is_active(hash)
    }

    /// Accepts a block: checks it, stores it, and moves to the most-work valid chain. Blocks
    /// are accepted in any order (orphans wait in a bounded pool, and connect when their parent
    /// does). A block extending the tip is stored and connected in one write transaction,
    /// waiting for the disk only if `durable`; any other is stored durably first. A block
    /// stored before that is valid but not active runs chain selection again (as Bitcoin
    /// Core's `submitblock` runs `ActivateBestChain` for a block it already has) and is answered
    /// [`ChainError::Duplicate`]. Signatures of transactions in `mempool` are not checked again.
    /// `txids`, if given, are the block's txids computed by the caller from these very
    /// transactions (see [`validation::check_block_with_txids`]), not hashed again.
    pub fn accept_block(
        &mut self,
        block: &Block,
        txids: Option<MerkleTxids>,
        mempool: &mut Mempool,
        now: i64,
        durable: bool,
    ) -> Result<Accepted, ChainError> {
        // The pool as it was: what it verified (a copy costs a few reference counts).
        let before = mempool.clone();
        let verified = |t: &Txid| before.contains(t);
        let hash = block.block_hash();
        if self
            .index
            .entry(&hash)
            .is_some_and(|e| e.status == Status::Valid && !self.is_active(&hash))
        {
            self.finish_stored(hash, mempool, now, &verified)?;
            return Err(ChainError::Duplicate);
        }
        let (entry, txids) = self.check_new_block(block, hash, txids, now)?;
        if block.header.prev_blockhash == self.tip_hash() && !self.has_orphan_children(&hash) {
            return self.extend_tip(block, entry, &txids, mempool, &verified, durable);
        }
        self.store_block(block, &hash, entry)?;
        self.finish_stored(hash, mempool, now, &verified)
    }

    /// Stores and connects a checked block that extends the tip, in one write transaction, and
    /// removes what it confirms from the mempool; a block that breaks a rule is stored as
    /// invalid instead.
    fn extend_tip(
        &mut self,
        block: &Block,
        entry: IndexEntry,
        txids: &[Txid],
        mempool: &mut Mempool,
        verified: Verified<'_>,
        durable: bool,
    ) -> Result<Accepted, ChainError> {
        let hash = block.block_hash();
        let wtx = self.store.begin_write_with(durable)?;
        match connect_checked(
            &wtx,
            &self.coins,
            block,
            &hash,
            txids,
            entry.height,
            Some(&entry),
            verified,
        ) {
            Ok(changes) => {
                // What the block confirms leaves a copy of the pool on another core while the
                // commit runs; the copy replaces the pool once the block is in.
                let mut pool = mempool.clone();
                let (committed, pruned) = std::thread::scope(|s| {
                    let prune = || pool.remove_for_block(&block.txdata, txids);
                    let pruning = std::thread::Builder::new().spawn_scoped(s, prune);
                    let committed = self.commit_with(wtx, changes, &hash);
                    let pruned = pruning.map(|p| p.join());
                    if let Ok(Err(panic)) = pruned {
                        std::panic::resume_unwind(panic);
                    }
                    (committed, pruned.is_ok())
                });
                if !pruned {
                    // No thread to be had: prune here, after the commit.
                    pool.remove_for_block(&block.txdata, txids);
                }
                committed?;
                *mempool = pool;
                self.index.push_active(hash);
                self.add_entry(hash, entry);
                self.log_new_tip(block, &hash);
                Ok(Accepted::BestChain)
            }
            Err(ChainError::Rule(reason)) => {
                // Abort before the next write transaction can begin.
                drop(wtx);
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
    fn finish_stored(
        &mut self,
        hash: BlockHash,
        mempool: &mut Mempool,
        now: i64,
        verified: Verified<'_>,
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
                match self.check_new_block(&b, child, None, now) {
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
        match self.index.entry(&hash).map(|e| e.status) {
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

    /// Context-free and header checks of a new block (its txids hashed unless the caller
    /// knows them); returns its index entry and txids. A block whose parent is unknown goes
    /// to the orphan pool (`prev-blk-not-found`).
    fn check_new_block(
        &mut self,
        block: &Block,
        hash: BlockHash,
        txids: Option<MerkleTxids>,
        now: i64,
    ) -> Result<(IndexEntry, Vec<Txid>), ChainError> {
        if let Some(e) = self.index.entry(&hash) {
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
        let network = self.index.network();
        let txids = match txids {
            Some(txids) => validation::check_block_with_txids(block, network, txids),
            None => validation::check_block(block, network),
        }
        .map_err(no_context)?;
        let Some(prev) = self.index.entry(&block.header.prev_blockhash).copied() else {
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
            validation::check_difficulty(&block.header, self.index.next_bits(&prev))?;
            let mtp = self.index.median_time_past(&block.header.prev_blockhash);
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
            chain_tx: prev.chain_tx + block.txdata.len() as u64,
        };
        Ok((entry, txids))
    }

    /// The block the tip should be: the valid block with the most work, where the current tip
    /// wins ties (first seen). If the tip itself is invalid (an invalidation a crash cut
    /// short), the most-work valid block whatever its work.
    fn best_candidate(&self) -> BlockHash {
        let tip = self.tip_hash();
        let tip_entry = self.index.tip();
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
        verified: Verified<'_>,
    ) -> Result<(), ChainError> {
        let mut disconnected: Vec<Vec<Transaction>> = Vec::new();
        let mut moved = false;
        let old_tip = (self.tip_hash(), self.tip_height());
        loop {
            let best = self.best_candidate();
            if best == self.tip_hash() {
                break;
            }
            moved = true;
            // Path from the fork point up to `best`.
            let (mut path, fork_height) = self.branch_above_active(best)?;
            path.reverse();
            let depth = self.tip_height() - fork_height;
            while self.tip_height() > fork_height {
                let block = self.disconnect_tip()?;
                disconnected.push(block.txdata.into_iter().skip(1).collect());
            }
            if depth > 0 {
                crate::metrics::get().reorg(depth as usize);
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
            let depth = disconnected.len();
            let mut txs = disconnected.concat();
            let candidates = txs.len();
            txs.extend(mempool.drain_in_order());
            let returned = self.return_to_mempool(txs, candidates, mempool)?;
            tracing::info!(
                depth,
                old_tip = %old_tip.0,
                old_height = old_tip.1,
                new_tip = %self.tip_hash(),
                new_height = self.tip_height(),
                "reorg: {depth} blocks disconnected, {returned} of their {candidates} \
                 transactions back in the mempool (pool now {})",
                mempool.len()
            );
        }
        Ok(())
    }

    /// Re-validates transactions from disconnected blocks (and the old pool) into the mempool;
    /// those now confirmed or invalid are dropped. Returns how many of the first `from_blocks`
    /// (the disconnected blocks' own) were admitted. Their signatures are not checked again: each
    /// was verified when its block connected or when it entered the pool, and a txid commits
    /// to the signatures and the outpoints whose scripts they sign. Only a store failure is an
    /// error.
    fn return_to_mempool(
        &self,
        txs: Vec<Transaction>,
        from_blocks: usize,
        mempool: &mut Mempool,
    ) -> Result<usize, ChainError> {
        if txs.is_empty() {
            return Ok(0);
        }
        let rtx = self.store.begin_read()?;
        let utxos = store::read::coins(&rtx, self.coins.map())?;
        let coin = |o: &OutPoint| utxos.coin(o);
        let view = crate::mempool::ChainView {
            coin: &coin,
            next_height: self.tip_height() + 1,
            median_time_past: self.index.median_time_past(&self.tip_hash()),
        };
        let now = unix_now();
        let mut returned = 0;
        for (i, tx) in txs.into_iter().enumerate() {
            match mempool.check(tx, &view, now, &|_| true) {
                Ok(entry) => match mempool.insert(entry) {
                    Ok(evicted) => {
                        returned += usize::from(i < from_blocks);
                        if !evicted.is_empty() {
                            tracing::info!(
                                evicted = evicted.len(),
                                pool = mempool.len(),
                                "mempool full: evicted the lowest fee rates"
                            );
                        }
                    }
                    Err(e) => tracing::debug!("not returned to the mempool: {e}"),
                },
                Err(crate::mempool::MempoolError::Store(e)) => return Err(e.into()),
                Err(_) => {}
            }
        }
        Ok(returned)
    }

    /// Marks `hash` and every known descendant invalid, in memory and in one durable write
    /// transaction. Walks only those blocks: a block already invalid has invalid descendants.
    fn mark_invalid(&mut self, hash: &BlockHash) -> Result<(), ChainError> {
        let mut doomed = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if self
                .index
                .entry(&h)
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
            if let Some(e) = self.index.entry(h) {
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
    ) -> Result<(), ChainError> {
        let before = mempool.clone();
        let entry = *self
            .index
            .entry(hash)
            .ok_or(ChainError::BlockNotFound(*hash))?;
        if entry.height == 0 {
            return Ok(());
        }
        self.mark_invalid(hash)?;
        self.activate_best_chain(mempool, &|t| before.contains(t))
    }

    /// Operator action: clear the invalid mark from `hash`, its descendants and its invalid
    /// ancestors, and move to the most-work chain again.
    pub fn reconsider_block(
        &mut self,
        hash: &BlockHash,
        mempool: &mut Mempool,
    ) -> Result<(), ChainError> {
        let before = mempool.clone();
        let root = *self
            .index
            .entry(hash)
            .ok_or(ChainError::BlockNotFound(*hash))?;
        let mut cleared = Vec::new();
        let mut stack = vec![*hash];
        while let Some(h) = stack.pop() {
            if self
                .index
                .entry(&h)
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
            let Some(e) = self.index.entry(&parent).copied() else {
                break;
            };
            if e.status == Status::Valid {
                break;
            }
            cleared.push(parent);
            cur = e;
        }
        self.write_status(&cleared, Status::Valid)?;
        self.activate_best_chain(mempool, &|t| before.contains(t))
    }

    /// Connects `block` (stored before, read back from the store) on top of the tip, in a
    /// write transaction that does not wait for the disk (see [`Chain::activate_best_chain`]).
    fn connect_block(
        &mut self,
        block: &Block,
        txids: &[Txid],
        hash: &BlockHash,
        verified: Verified<'_>,
    ) -> Result<(), ChainError> {
        let height = self.tip_height() + 1;
        let wtx = self.store.begin_write_with(false)?;
        let changes = connect_checked(
            &wtx,
            &self.coins,
            block,
            hash,
            txids,
            height,
            None,
            verified,
        )?;
        self.commit_with(wtx, changes, hash)?;
        self.index.push_active(*hash);
        self.log_new_tip(block, hash);
        Ok(())
    }

    /// Core's `UpdateTip` line, at info: the new tip's height, hash, transactions, size, the
    /// seconds since its parent's time, the chain's transaction count, and sync progress as
    /// the share of time since genesis the chain covers (1.0 once the tip is recent).
    fn log_new_tip(&self, block: &Block, hash: &BlockHash) {
        let tip = self.index.tip();
        let parent_time = self
            .index
            .entry(&block.header.prev_blockhash)
            .map_or(block.header.time, |p| p.header.time);
        let genesis = f64::from(self.index.network().params().genesis_time);
        let span = (unix_now() as f64 - genesis).max(1.0);
        let progress = ((f64::from(block.header.time) - genesis) / span).clamp(0.0, 1.0);
        tracing::info!(
            height = tip.height,
            hash = %hash,
            txs = block.txdata.len(),
            size = block.size(),
            since_parent = i64::from(block.header.time) - i64::from(parent_time),
            chain_txs = tip.chain_tx,
            progress = format_args!("{progress:.6}"),
            "new tip"
        );
    }

    /// Disconnects the tip in one write transaction using its undo data (not waiting for the
    /// disk, see [`Chain::activate_best_chain`]); returns the block.
    fn disconnect_tip(&mut self) -> Result<Block, ChainError> {
        let wtx = self.store.begin_write_with(false)?;
        let (block, changes) =
            connect::disconnect_block(&wtx, &self.tip_hash(), self.tip_height())?;
        self.commit_with(wtx, changes, &block.header.prev_blockhash)?;
        self.index.pop_active();
        Ok(block)
    }
}

/// Connects `block` at `height` on top of the tip in `wtx` (left uncommitted) through
/// [`connect::connect_block`] over `coins`, checking what the store does not: each
/// transaction's inputs and fee, the coinbase amount, and the signatures of transactions not
/// `verified`, on the signature pool while the coin pass goes on. A `new` block is stored
/// with its index entry. Returns the UTXO changes.
#[allow(clippy::too_many_arguments)] // the block, its place, and what was verified
fn connect_checked(
    wtx: &WriteTransaction,
    coins: &CoinsCache,
    block: &Block,
    hash: &BlockHash,
    txids: &[Txid],
    height: u32,
    new: Option<&IndexEntry>,
    verified: Verified<'_>,
) -> Result<Changes, ChainError> {
    let started = std::time::Instant::now();
    let checks = BlockChecks::default();
    let result = signatures::block_pool().in_place_scope(|scope| {
        let mut fees = chaincore::Amount::ZERO;
        let connected = connect::connect_block(wtx, coins, block, hash, txids, height, new, {
            let checks = &checks;
            let fees = &mut fees;
            move |tx, txid, spent: &[Coin]| -> Result<(), ChainError> {
                let coins: Vec<&Coin> = spent.iter().collect();
                let fee = validation::check_tx_inputs(tx, &coins, height)
                    .map_err(|e| Rejection::from(e).in_tx(txid))?;
                *fees = fees
                    .checked_add(fee)
                    .ok_or_else(|| Rejection::from(RuleError::InputValuesOutOfRange))?;
                if !verified(&txid) {
                    let scripts = spent.iter().map(|c| c.output.script_pubkey.clone());
                    checks.spawn(scope, tx, txid, scripts.collect());
                }
                Ok(())
            }
        })
        .and_then(|changes| {
            validation::check_coinbase_amount(block, block_subsidy(height), fees)?;
            Ok(changes)
        });
        if connected.is_err() {
            checks.give_up();
        }
        connected
    });
    let changes = result
        .and_then(|changes| checks.outcome().map(|()| changes))
        .map_err(|e| e.in_block(*hash, height))?;
    crate::metrics::get().block_connected(started.elapsed());
    Ok(changes)
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests;
