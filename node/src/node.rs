//! The running node: chain and mempool behind one lock (the single writer), the tip and
//! mempool changes published on `watch` channels, and the blocking operations RPC calls.

use std::collections::HashSet;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use chaincore::{Block, BlockHash, Network, Script, Transaction, Txid};
use tokio::sync::{broadcast, watch};

use crate::chain::{unix_now, Accepted, Chain, ChainError, Submission};
use crate::mempool::orphans::Orphans;
use crate::mempool::persist;
use crate::mempool::{ChainView, Mempool, MempoolError};
use crate::mining::{self, Template};
use crate::store::{self, Store, StoreError};

/// In a batch of mined blocks, every this many blocks is committed durably.
pub const DURABLE_EVERY: u32 = 100;

/// Chain and mempool, always changed together.
pub struct State {
    /// The chain.
    pub chain: Chain,
    /// The mempool.
    pub mempool: Mempool,
    /// Relayed transactions waiting for their parents.
    pub orphans: Orphans,
}

/// What became of a transaction a peer relayed ([`Node::accept_relayed`]).
#[derive(Debug)]
pub enum Relayed {
    /// In the pool, with these orphans that were waiting for it (and for each other).
    Accepted(Vec<Txid>),
    /// Kept as an orphan; these parents are neither in the pool nor in the UTXO set (ask the
    /// peer for them).
    Orphan(Vec<Txid>),
    /// Refused.
    Rejected(MempoolError),
}

/// The best tip as published to waiters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tip {
    /// Best block hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
}

/// The node shared by every task.
pub struct Node {
    /// The network.
    pub network: Network,
    state: Mutex<State>,
    /// Held by everything that writes the store (redb has one write transaction at a time),
    /// always taken before `state`. Lets a block connect run without `state`.
    writer: Mutex<()>,
    /// The chain's store, for work done without the state lock.
    store: Arc<Store>,
    /// The best tip; changes wake long polls.
    pub tip: watch::Sender<Tip>,
    /// Bumped on every mempool change.
    pub mempool_seq: watch::Sender<u64>,
    /// Txids accepted into the mempool, for subscribers (lagging ones miss some).
    pub new_tx: broadcast::Sender<Txid>,
    /// When the node started.
    pub started: Instant,
    /// Where the mempool is saved (`mempool.dat`).
    mempool_file: std::path::PathBuf,
    /// Set to stop in-process mining and the node.
    pub stopping: AtomicBool,
    /// Fires when the node must shut down (the `stop` RPC).
    pub shutdown: watch::Sender<bool>,
}

impl Node {
    /// Opens the store and chain in `data_dir`, and (if `persist_mempool`) loads the saved
    /// mempool.
    pub fn open(
        network: Network,
        data_dir: &std::path::Path,
        persist_mempool: bool,
    ) -> Result<Arc<Node>, ChainError> {
        let store = Store::open(&data_dir.join("chain.redb"))?;
        let mut chain = Chain::open(store, network)?;
        let mut mempool = Mempool::new(crate::mempool::DEFAULT_MAX_BYTES);
        // A crash may have cut a reorg or an invalidation short, or left a stored block with
        // more work than the tip: move to the most-work valid chain before serving anyone.
        let before = chain.tip_hash();
        chain.activate_best_chain(&mut mempool, &HashSet::new())?;
        if chain.tip_hash() != before {
            tracing::info!(
                height = chain.tip_height(),
                tip = %chain.tip_hash(),
                "moved to the most-work chain on start"
            );
        }
        let store = chain.shared_store();
        let tip = Tip {
            hash: chain.tip_hash(),
            height: chain.tip_height(),
        };
        let node = Arc::new(Node {
            network,
            store,
            writer: Mutex::new(()),
            state: Mutex::new(State {
                chain,
                mempool,
                orphans: Orphans::default(),
            }),
            tip: watch::Sender::new(tip),
            mempool_seq: watch::Sender::new(0),
            new_tx: broadcast::Sender::new(1024),
            started: Instant::now(),
            mempool_file: data_dir.join(persist::FILE_NAME),
            stopping: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
        });
        if persist_mempool {
            node.load_mempool();
        }
        Ok(node)
    }

    /// Locks the state. A poisoned lock means a panic mid-update: nothing is trustworthy, so we
    /// keep going with what the store committed (every update is one transaction).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the writer lock (before the state lock, never after).
    fn writer(&self) -> MutexGuard<'_, ()> {
        self.writer.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn publish(&self, state: &State) {
        let tip = Tip {
            hash: state.chain.tip_hash(),
            height: state.chain.tip_height(),
        };
        self.tip.send_if_modified(|t| {
            let changed = *t != tip;
            *t = tip;
            changed
        });
    }

    /// Validates and stores a block; moves to the best chain.
    pub fn submit_block(&self, block: Block) -> Result<Accepted, ChainError> {
        self.submit(block, true)
    }

    /// [`Node::submit_block`], with the commit of a block extending the tip waiting for the
    /// disk only if `durable`. Such a block is connected without the state lock (reads and
    /// transaction acceptance go on against the old tip meanwhile); only its commit and the
    /// in-memory update take the lock. A store failure shuts the node down.
    fn submit(&self, block: Block, durable: bool) -> Result<Accepted, ChainError> {
        let _writer = self.writer();
        let now = unix_now() as i64;
        let (begun, verified) = {
            let mut state = self.lock();
            let verified: HashSet<Txid> = state.mempool.entries().map(|e| e.txid).collect();
            (state.chain.begin_submit(&block, now), verified)
        };
        // Whether the pool may have changed: a block was connected or others were (a reorg).
        let (result, changed) = match begun {
            Ok(Submission::ExtendsTip(next)) => {
                let connected = next.connect(&self.store, &block, &verified, durable);
                let mut guard = self.lock();
                let state = &mut *guard;
                let result =
                    state
                        .chain
                        .finish_tip_extension(&block, next, connected, &mut state.mempool);
                self.publish(state);
                let connected = result.is_ok();
                (result, connected)
            }
            Ok(Submission::Stored(hash)) => (self.finish_stored(hash, now, &verified), true),
            // Stored before and not active: select again (a crash may have cut its
            // activation short), and answer `duplicate` as Bitcoin Core does.
            Ok(Submission::Known(hash)) => {
                let result = self.finish_stored(hash, now, &verified);
                (result.and(Err(ChainError::Duplicate)), true)
            }
            Err(e) => (Err(e), false),
        };
        if changed {
            self.mempool_seq.send_modify(|s| *s += 1);
        }
        self.fatal_on_store_failure(result)
    }

    /// Runs [`Chain::finish_stored`] for a stored block under the state lock and publishes
    /// what changed.
    fn finish_stored(
        &self,
        hash: BlockHash,
        now: i64,
        verified: &HashSet<Txid>,
    ) -> Result<Accepted, ChainError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        let result = state
            .chain
            .finish_stored(hash, &mut state.mempool, now, verified);
        self.publish(state);
        // Reorgs return transactions to the pool.
        self.announce_returned(state, verified);
        result
    }

    /// A store failure (a failed commit, I/O, corruption) leaves nothing trustworthy: log it
    /// and shut the node down cleanly. Passes `result` on.
    fn fatal_on_store_failure<T>(&self, result: Result<T, ChainError>) -> Result<T, ChainError> {
        if let Err(e) = &result {
            if e.is_fatal() {
                self.store_failed(e);
            }
        }
        result
    }

    /// Logs a store failure and starts a clean shutdown: for every path where the store
    /// failed, including reads made outside the node's own methods.
    pub fn store_failed(&self, e: &dyn std::fmt::Display) {
        tracing::error!("store failure, shutting down: {e}");
        self.shutdown.send_replace(true);
    }

    /// Waits until no store write is in progress (at shutdown, before the store closes).
    pub fn wait_for_writes(&self) {
        let _writer = self.writer();
        drop(self.lock());
    }

    /// Announces transactions that entered the pool other than through `accept_transaction`
    /// (returned from disconnected blocks), so peers relay them again.
    fn announce_returned(&self, state: &State, before: &HashSet<Txid>) {
        for e in state
            .mempool
            .entries()
            .filter(|e| !before.contains(&e.txid))
        {
            let _ = self.new_tx.send(e.txid);
        }
    }

    /// [`crate::fees::estimate`] for `target` blocks from the mempool and the last
    /// [`crate::fees::RECENT_BLOCKS`] active blocks (their fees from the undo data).
    pub fn estimate_fee(&self, target: u32) -> Result<Option<f64>, StoreError> {
        use crate::fees::{Paid, RecentBlock, RECENT_BLOCKS};
        let (pool, hashes, rtx) = {
            let state = self.lock();
            let pool: Vec<Paid> = state
                .mempool
                .entries()
                .map(|e| Paid {
                    fee: e.fee.to_units(),
                    size: e.size,
                })
                .collect();
            let tip = state.chain.tip_height();
            let hashes: Vec<BlockHash> = (tip.saturating_sub(RECENT_BLOCKS - 1).max(1)..=tip)
                .rev()
                .filter_map(|h| state.chain.active_hash(h))
                .collect();
            (pool, hashes, state.chain.store().begin_read()?)
        };
        let mut recent = Vec::new();
        for hash in hashes {
            let missing = |what| StoreError::Missing {
                what,
                key: hash.to_string(),
            };
            let block = store::read::block(&rtx, &hash)?.ok_or_else(|| missing("block"))?;
            let undo = store::read::undo(&rtx, &hash)?.ok_or_else(|| missing("undo data of"))?;
            let mut spent = undo.iter();
            let mut txs = Vec::new();
            for tx in block.txdata.iter().skip(1) {
                let inputs: i64 = spent
                    .by_ref()
                    .take(tx.input.len())
                    .map(|c| c.output.value.to_units())
                    .sum();
                let outputs: i64 = tx.output.iter().map(|o| o.value.to_units()).sum();
                txs.push(Paid {
                    fee: inputs - outputs,
                    size: tx.size(),
                });
            }
            recent.push(RecentBlock {
                size: block.size(),
                txs,
            });
        }
        Ok(crate::fees::estimate(target, &pool, &recent))
    }

    /// Writes the mempool to its file (transactions in pool order); returns the path.
    pub fn save_mempool(&self) -> Result<std::path::PathBuf, persist::PersistError> {
        let txs = self.lock().mempool.in_order();
        persist::save(&self.mempool_file, &txs)?;
        tracing::debug!(transactions = txs.len(), "mempool saved");
        Ok(self.mempool_file.clone())
    }

    /// Reads the saved mempool and admits each transaction that is still valid against the
    /// chain (confirmed, conflicting or otherwise invalid ones are dropped); logs how many.
    pub fn load_mempool(&self) {
        let txs = match persist::load(&self.mempool_file) {
            Ok(txs) => txs,
            Err(e) => {
                tracing::warn!("saved mempool not loaded: {e}");
                return;
            }
        };
        if txs.is_empty() {
            return;
        }
        let saved = txs.len();
        let loaded = txs
            .into_iter()
            .filter(|tx| self.accept_transaction(tx.clone(), false).is_ok())
            .count();
        tracing::info!(loaded, dropped = saved - loaded, "saved mempool loaded");
    }

    /// Accepts a transaction peer `peer` relayed. One whose inputs are missing is kept as an
    /// orphan (its missing parents come back, to be asked for); one that enters the pool
    /// brings in the orphans that were waiting for it, in turn.
    pub fn accept_relayed(&self, tx: Transaction, peer: u64) -> Relayed {
        let mut guard = self.lock();
        let state = &mut *guard;
        let txid = tx.compute_txid();
        match self.accept_locked(state, tx.clone(), false) {
            Ok(_) => {}
            Err(MempoolError::Rule(chaincore::validation::RuleError::InputsMissingOrSpent)) => {
                let missing = self.missing_parents(state, &tx);
                if missing.is_empty() {
                    // Every parent is there: an input is spent, not missing.
                    return Relayed::Rejected(
                        chaincore::validation::RuleError::InputsMissingOrSpent.into(),
                    );
                }
                state.orphans.add(tx, txid, peer, Instant::now());
                return Relayed::Orphan(missing);
            }
            Err(e) => return Relayed::Rejected(e),
        }
        Relayed::Accepted(self.admit_orphans(state, txid))
    }

    /// Admits the orphans that spend `txid` (just added to the pool), and theirs in turn;
    /// returns their txids.
    fn admit_orphans(&self, state: &mut State, txid: Txid) -> Vec<Txid> {
        let mut admitted = Vec::new();
        let mut parents = vec![txid];
        while let Some(parent) = parents.pop() {
            for (child, child_tx, from) in state.orphans.take_children(&parent) {
                match self.accept_locked(state, child_tx.clone(), false) {
                    Ok(_) => {
                        admitted.push(child);
                        parents.push(child);
                    }
                    // Still waiting for another parent.
                    Err(MempoolError::Rule(
                        chaincore::validation::RuleError::InputsMissingOrSpent,
                    )) => {
                        state.orphans.add(child_tx, child, from, Instant::now());
                    }
                    Err(e) => tracing::debug!(%child, "orphan refused: {e}"),
                }
            }
        }
        admitted
    }

    /// Parents of `tx` neither in the pool nor (by one of their outputs `tx` spends) in the
    /// UTXO set.
    fn missing_parents(&self, state: &State, tx: &Transaction) -> Vec<Txid> {
        let rtx = match state.chain.store().begin_read() {
            Ok(rtx) => rtx,
            Err(e) => {
                self.store_failed(&e);
                return Vec::new();
            }
        };
        let mut missing = Vec::new();
        for input in &tx.input {
            let parent = input.previous_output.txid;
            if state.mempool.get(&parent).is_some() {
                continue;
            }
            match store::read::coin(&rtx, &input.previous_output) {
                Ok(None) => missing.push(parent),
                Ok(Some(_)) => {}
                Err(e) => {
                    self.store_failed(&e);
                    return Vec::new();
                }
            }
        }
        missing.sort();
        missing.dedup();
        missing
    }

    /// Drops the orphans peer `peer` sent (it disconnected).
    pub fn forget_orphans_from(&self, peer: u64) {
        self.lock().orphans.remove_peer(peer);
    }

    /// Validates a transaction against the tip and the pool; adds it unless `test_only`.
    pub fn accept_transaction(
        &self,
        tx: Transaction,
        test_only: bool,
    ) -> Result<Txid, MempoolError> {
        let mut guard = self.lock();
        let txid = self.accept_locked(&mut guard, tx, test_only)?;
        if !test_only {
            // Orphans relayed earlier may have waited for this one.
            self.admit_orphans(&mut guard, txid);
        }
        Ok(txid)
    }

    /// [`Node::accept_transaction`] with the state already locked.
    fn accept_locked(
        &self,
        state: &mut State,
        tx: Transaction,
        test_only: bool,
    ) -> Result<Txid, MempoolError> {
        let chain = &state.chain;
        let result = (|| -> Result<Txid, MempoolError> {
            let rtx = chain.store().begin_read()?;
            let coin = |o: &chaincore::OutPoint| store::read::coin(&rtx, o);
            let view = ChainView {
                coin: &coin,
                next_height: chain.tip_height() + 1,
                median_time_past: chain.median_time_past(&chain.tip_hash()),
            };
            let entry = state.mempool.check(tx, &view, unix_now(), &|_| false)?;
            let txid = entry.txid;
            if !test_only {
                state.mempool.insert(entry)?;
                self.mempool_seq.send_modify(|s| *s += 1);
                let _ = self.new_tx.send(txid);
            }
            Ok(txid)
        })();
        if let Err(e) = &result {
            if e.is_fatal() {
                self.store_failed(e);
            }
        }
        result
    }

    /// Invalidates or reconsiders a block.
    pub fn set_block_validity(&self, hash: &BlockHash, valid: bool) -> Result<(), ChainError> {
        let _writer = self.writer();
        let mut guard = self.lock();
        let state = &mut *guard;
        let verified: HashSet<Txid> = state.mempool.entries().map(|e| e.txid).collect();
        let result = if valid {
            state
                .chain
                .reconsider_block(hash, &mut state.mempool, &verified)
        } else {
            state
                .chain
                .invalidate_block(hash, &mut state.mempool, &verified)
        };
        self.publish(state);
        self.mempool_seq.send_modify(|s| *s += 1);
        self.announce_returned(state, &verified);
        drop(guard);
        self.fatal_on_store_failure(result)
    }

    /// Saves (`true`) or deletes (`false`) peer addresses.
    pub fn save_peers(&self, changes: &[(std::net::SocketAddr, bool)]) -> Result<(), ChainError> {
        let _writer = self.writer();
        let saved = self.store.save_peers(changes).map_err(ChainError::from);
        self.fatal_on_store_failure(saved)
    }

    /// Builds a template on the current tip.
    pub fn template(&self) -> Template {
        let state = self.lock();
        Template::new(&state.chain, &state.mempool, unix_now())
    }

    /// Mines up to `n` blocks paying `script_pubkey` (fewer if the node is stopping) and returns
    /// their hashes. Commits between durable ones skip waiting for the disk: the last block, or
    /// the flush when mining ends early, and every [`DURABLE_EVERY`]th block make all before
    /// them durable, so a crash mid-call reopens to a consistent, slightly shorter chain.
    pub fn generate_blocks(
        &self,
        n: u32,
        script_pubkey: &Script,
    ) -> Result<Vec<BlockHash>, ChainError> {
        let mut hashes = Vec::new();
        let mut result = Ok(());
        for i in 1..=n {
            let durable = i == n || i % DURABLE_EVERY == 0;
            match self.generate_block(script_pubkey, durable) {
                Ok(Some(hash)) => hashes.push(hash),
                Ok(None) => break,
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if hashes.len() as u32 != n {
            let _writer = self.writer();
            let flushed = self.store.flush().map_err(ChainError::from);
            self.fatal_on_store_failure(flushed)?;
        }
        result.map(|()| hashes)
    }

    /// Mines one block paying `script_pubkey` on all cores and submits it (committed durably
    /// if `durable`). Returns its hash, or `None` if mining was stopped.
    fn generate_block(
        &self,
        script_pubkey: &Script,
        durable: bool,
    ) -> Result<Option<BlockHash>, ChainError> {
        let threads = num_cpus::get();
        let mut extranonce = 0u64;
        loop {
            let template = self.template();
            // Blocks mined faster than one per ~6 per second push the earliest allowed time
            // (median time past + 1) ahead of the clock; wait rather than mine a block that
            // would be `time-too-new`.
            let limit = unix_now() as i64 + chaincore::validation::MAX_FUTURE_BLOCK_TIME;
            if i64::from(template.mintime) > limit {
                if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
                    return Ok(None);
                }
                std::thread::sleep(std::time::Duration::from_millis(200));
                continue;
            }
            let mut block = template.block(script_pubkey, extranonce);
            extranonce += 1;
            let Some(header) = mining::solve(block.header, threads, &self.stopping) else {
                if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
                    return Ok(None);
                }
                continue; // nonces exhausted: next extranonce
            };
            block.header = header;
            let hash = block.block_hash();
            match self.submit(block, durable) {
                Ok(_) => return Ok(Some(hash)),
                // The tip moved while we mined: build on the new one.
                Err(e) if e.rule() == Some(&chaincore::validation::RuleError::BadPrevBlock) => {
                    continue
                }
                Err(e) => return Err(e),
            }
        }
    }
}
