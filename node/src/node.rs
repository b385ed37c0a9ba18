//! The running node: the writer thread that owns chain and mempool, the snapshots it publishes,
//! and the operations RPC and P2P call. Transaction acceptance is async (it waits for the
//! signature pool and the writer without holding a thread); the other operations block
//! (callers in async code use `spawn_blocking`). Reads take the latest [`Snapshot`] and never
//! wait for the writer.
//!
//! A transaction is checked in two steps: all of it, signatures included, on the signature
//! pool against a snapshot (`crate::signatures`); then, in the writer, everything but the
//! signatures again against the live pool and chain, which is cheap, before it is added.

use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chaincore::merkle::MerkleTxids;
use chaincore::validation::RuleError;
use chaincore::{Block, BlockHash, Network, Script, Transaction, Txid};
use tokio::sync::{broadcast, watch};

use crate::chain::{unix_now, Accepted, Chain, ChainError};
use crate::indexer::{IndexState, Indexer};
use crate::mempool::orphans::Orphans;
use crate::mempool::persist;
use crate::mempool::rejects::Rejects;
use crate::mempool::{Mempool, MempoolError};
use crate::mining::{self, Template};
pub use crate::snapshot::{Snapshot, Tip};
use crate::store::indexes::IndexKind;
use crate::store::{self, Store, StoreError};
use crate::writer::{Admission, Command, State, Stopped, Writer};

/// In a batch of mined blocks, every this many blocks is committed durably.
pub const DURABLE_EVERY: u32 = 100;

/// Times a transaction goes back to the signature pool when its parents keep changing.
const SIGNATURE_RETRIES: usize = 3;

/// Default coins cache (`--dbcache`), in MiB: Bitcoin Core's default, plenty for a machine of
/// a few GiB and more (a UTXO of ours takes about [`store::coins::ENTRY_BYTES`] in it).
pub const DEFAULT_DBCACHE_MB: u64 = 450;

/// How the node keeps its chain state: the coins cache and the indexes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeOptions {
    /// Coins cache size in bytes; 0 flushes the UTXO changes with every block.
    pub dbcache: usize,
    /// Keep the tx index (`--txindex`).
    pub txindex: bool,
    /// Keep the address index (`--addressindex`).
    pub addressindex: bool,
}

impl Default for NodeOptions {
    fn default() -> Self {
        NodeOptions {
            dbcache: (DEFAULT_DBCACHE_MB << 20) as usize,
            txindex: true,
            addressindex: true,
        }
    }
}

impl NodeOptions {
    /// The enabled indexes.
    pub fn indexes(&self) -> Vec<IndexKind> {
        IndexKind::ALL
            .into_iter()
            .filter(|k| match k {
                IndexKind::Tx => self.txindex,
                IndexKind::Address => self.addressindex,
            })
            .collect()
    }
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
    /// Refused on this tip before: dropped without another check.
    RecentlyRejected,
}

/// The node shared by every task.
pub struct Node {
    /// The network.
    pub network: Network,
    writer: Writer,
    /// The chain's store (its size on disk; every write goes through the writer).
    store: Arc<Store>,
    /// The latest snapshot of chain and mempool.
    pub snapshot: watch::Sender<Arc<Snapshot>>,
    /// The best tip; changes wake long polls.
    pub tip: watch::Sender<Tip>,
    /// Bumped on every mempool change.
    pub mempool_seq: watch::Sender<u64>,
    /// Txids accepted into the mempool, for subscribers (lagging ones miss some).
    pub new_tx: broadcast::Sender<Txid>,
    /// Relayed transactions waiting for their parents.
    orphans: Mutex<Orphans>,
    /// Relayed transactions refused on the current tip.
    rejects: Mutex<Rejects>,
    /// When the node started.
    pub started: Instant,
    /// Where the mempool is saved (`mempool.dat`).
    mempool_file: std::path::PathBuf,
    /// Set to stop in-process mining and the node.
    pub stopping: AtomicBool,
    /// Fires when the node must shut down (the `stop` RPC).
    pub shutdown: watch::Sender<bool>,
    /// The indexer thread.
    indexer: Indexer,
    /// Where each enabled index stands; changes wake readers waiting for an index.
    pub index_progress: watch::Sender<Vec<IndexState>>,
}

impl Node {
    /// [`Node::open_with`] the default options.
    pub fn open(network: Network, data_dir: &std::path::Path) -> Result<Arc<Node>, ChainError> {
        Node::open_with(network, data_dir, &NodeOptions::default())
    }

    /// Opens the store and chain in `data_dir` (replaying the UTXO set to the tip), moves to
    /// the most-work chain and starts the writer and the indexer. The saved mempool is loaded
    /// by [`Node::load_mempool`].
    pub fn open_with(
        network: Network,
        data_dir: &std::path::Path,
        options: &NodeOptions,
    ) -> Result<Arc<Node>, ChainError> {
        let store = Store::open(&data_dir.join("chain.redb"))?;
        let mut chain = Chain::open(store, network, options.dbcache)?;
        let mut mempool = Mempool::new(crate::mempool::DEFAULT_MAX_BYTES);
        // A crash may have cut a reorg or an invalidation short, or left a stored block with
        // more work than the tip: move to the most-work valid chain before serving anyone.
        let before = chain.tip_hash();
        chain.activate_best_chain(&mut mempool, &|_| false)?;
        if chain.tip_hash() != before {
            tracing::info!(
                height = chain.tip_height(),
                tip = %chain.tip_hash(),
                "moved to the most-work chain on start"
            );
        }
        let snapshot = Arc::new(Snapshot {
            index: chain.index().clone(),
            mempool: mempool.clone(),
            rtx: chain.store().begin_read()?,
            coins: chain.coins().map().clone(),
            mempool_seq: 0,
            template: Default::default(),
        });
        let tip = snapshot.tip();
        let store = chain.shared_store();
        let progress = Indexer::load(&store, &options.indexes())?;
        let (writer, commands) = Writer::new();
        let node = Arc::new(Node {
            network,
            writer,
            store,
            snapshot: watch::Sender::new(snapshot),
            tip: watch::Sender::new(tip),
            mempool_seq: watch::Sender::new(0),
            new_tx: broadcast::Sender::new(1024),
            orphans: Mutex::new(Orphans::default()),
            rejects: Mutex::new(Rejects::default()),
            started: Instant::now(),
            mempool_file: data_dir.join(persist::FILE_NAME),
            stopping: AtomicBool::new(false),
            shutdown: watch::Sender::new(false),
            indexer: Indexer::none(),
            index_progress: watch::Sender::new(progress),
        });
        node.writer
            .start(State { chain, mempool }, commands, Arc::downgrade(&node))
            .map_err(|e| ChainError::Store(StoreError::Io(e)))?;
        node.indexer
            .start(node.store.clone(), &node)
            .map_err(|e| ChainError::Store(StoreError::Io(e)))?;
        Ok(node)
    }

    /// Tests only: waits (polling, up to a minute) until every enabled index has taken in the
    /// latest snapshot's tip.
    #[cfg(test)]
    pub fn wait_for_indexes_for_tests(&self) {
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        loop {
            let tip = self.snapshot().tip();
            if self
                .index_progress
                .borrow()
                .iter()
                .all(|s| s.at(&tip.hash, tip.height))
            {
                return;
            }
            assert!(Instant::now() < deadline, "the indexes did not catch up");
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
    }

    /// Tells the indexer a new snapshot is out.
    pub(crate) fn wake_indexer(&self) {
        self.indexer.wake();
    }

    /// A read transaction begun now: it sees the indexes as far as they have got, which may
    /// be past the latest snapshot's.
    pub fn begin_read(&self) -> Result<redb::ReadTransaction, StoreError> {
        self.store.begin_read()
    }

    /// Where index `kind` stands, if it is enabled, once it has taken in the tip of the latest
    /// snapshot — waiting up to `patience` for that if it had caught up with the chain since
    /// the node started (Bitcoin Core's `BlockUntilSyncedToCurrentChain`); an index still
    /// catching up is answered at once.
    pub async fn index_state(
        &self,
        kind: IndexKind,
        patience: std::time::Duration,
    ) -> Option<IndexState> {
        let deadline = tokio::time::Instant::now() + patience;
        let mut progress = self.index_progress.subscribe();
        loop {
            // The index first, then the tip as it is now (it may have moved, even down, since
            // the last look): whatever the index does after this look wakes the wait below.
            let state = progress
                .borrow_and_update()
                .iter()
                .find(|s| s.kind == kind)
                .copied()?;
            let tip = self.snapshot().tip();
            if !state.caught_up || state.at(&tip.hash, tip.height) {
                return Some(state);
            }
            match tokio::time::timeout_at(deadline, progress.changed()).await {
                Ok(Ok(())) => {}
                _ => return Some(state),
            }
        }
    }

    /// The latest snapshot of chain and mempool.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.borrow().clone()
    }

    /// The peer addresses saved in the store.
    pub fn saved_peers(&self) -> Result<Vec<std::net::SocketAddr>, StoreError> {
        self.store.load_peers()
    }

    /// The store, for tests that damage it behind the writer's back.
    #[cfg(test)]
    pub fn store_for_tests(&self) -> &Store {
        &self.store
    }

    /// Size of the store's file.
    pub fn size_on_disk(&self) -> u64 {
        self.store.size_on_disk()
    }

    /// Sends a command to the writer and waits for its answer.
    fn call<T>(
        &self,
        make: impl FnOnce(tokio::sync::oneshot::Sender<T>) -> Command,
    ) -> Result<T, Stopped> {
        self.writer.call(make)
    }

    /// Validates and stores a block; moves to the best chain. A shared block (`Arc`) is not
    /// copied.
    pub fn submit_block(&self, block: impl Into<Arc<Block>>) -> Result<Accepted, ChainError> {
        self.submit(block.into(), None, true)
    }

    /// [`Node::submit_block`] for a block whose `txids` the caller computed from its very
    /// transactions (rebuilt from a compact block and the mempool's entries, or checked
    /// before relay), with their merkle root: neither is computed again.
    pub fn submit_block_with_txids(
        &self,
        block: Arc<Block>,
        txids: MerkleTxids,
    ) -> Result<Accepted, ChainError> {
        self.submit(block, Some(txids), true)
    }

    /// [`Node::submit_block`], with the block's txids if known, and the commit of a block
    /// extending the tip waiting for the disk only if `durable`.
    fn submit(
        &self,
        block: Arc<Block>,
        txids: Option<MerkleTxids>,
        durable: bool,
    ) -> Result<Accepted, ChainError> {
        self.call(|reply| Command::SubmitBlock {
            block,
            txids,
            durable,
            reply,
        })
        .map_err(stopped)?
    }

    /// Logs a store failure and starts a clean shutdown: for every path where the store
    /// failed, including reads made outside the node's own methods.
    pub fn store_failed(&self, e: &dyn std::fmt::Display) {
        tracing::error!("store failure, shutting down: {e}");
        self.shutdown.send_replace(true);
    }

    /// Lets the writer finish what it was sent and stops it (it flushes the coins cache on
    /// its way out), then stops the indexer after its current batch (at shutdown, before the
    /// store closes).
    pub fn stop_writer(&self) {
        self.writer.stop();
        self.indexer.stop();
    }

    /// [`crate::fees::estimate`] for `target` blocks from the mempool and the last
    /// [`crate::fees::RECENT_BLOCKS`] active blocks (their fees from the undo data).
    pub fn estimate_fee(&self, target: u32) -> Result<Option<f64>, StoreError> {
        use crate::fees::{Paid, RecentBlock, RECENT_BLOCKS};
        let snap = self.snapshot();
        let pool: Vec<Paid> = snap
            .mempool
            .entries()
            .map(|e| Paid {
                fee: e.fee.to_units(),
                size: e.size,
            })
            .collect();
        let tip = snap.index.tip_height();
        let mut recent = Vec::new();
        for height in (tip.saturating_sub(RECENT_BLOCKS - 1).max(1)..=tip).rev() {
            let Some(hash) = snap.index.active_hash(height) else {
                continue;
            };
            let missing = |what| StoreError::Missing {
                what,
                key: hash.to_string(),
            };
            let block = store::read::block(&snap.rtx, &hash)?.ok_or_else(|| missing("block"))?;
            let undo =
                store::read::undo(&snap.rtx, &hash)?.ok_or_else(|| missing("undo data of"))?;
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
        let txs = self.snapshot().mempool.in_order();
        persist::save(&self.mempool_file, &txs)?;
        tracing::debug!(transactions = txs.len(), "mempool saved");
        Ok(self.mempool_file.clone())
    }

    /// Reads the saved mempool and admits each transaction that is still valid against the
    /// chain (confirmed, conflicting or otherwise invalid ones are dropped); logs how many.
    pub async fn load_mempool(&self) {
        let file = self.mempool_file.clone();
        let loaded = tokio::task::spawn_blocking(move || persist::load(&file)).await;
        let txs = match loaded
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
        {
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
        let mut loaded = 0;
        for tx in txs {
            if self.accept_transaction(tx, false).await.is_ok() {
                loaded += 1;
            }
        }
        tracing::info!(loaded, dropped = saved - loaded, "saved mempool loaded");
    }

    /// Accepts a transaction peer `peer` relayed. One refused on this tip before is dropped at
    /// once. One whose inputs are missing is kept as an orphan (its missing parents come
    /// back, to be asked for); one that enters the pool brings in the orphans that were
    /// waiting for it, in turn.
    pub async fn accept_relayed(&self, tx: Transaction, peer: u64) -> Relayed {
        let txid = tx.compute_txid();
        let tip = self.tip.borrow().hash;
        if self.rejects().contains(&tip, &txid) {
            return Relayed::RecentlyRejected;
        }
        match self.admit(tx.clone(), false).await {
            Ok(Admission::Valid(_)) => Relayed::Accepted(self.admit_orphans(txid).await),
            Ok(Admission::Missing(missing)) => {
                self.orphans().add(tx, txid, peer, Instant::now());
                // A parent may have entered the pool since the writer looked, its orphans
                // taken before this one was added: take them again.
                let snap = self.snapshot();
                for parent in missing.iter().filter(|p| snap.mempool.contains(p)) {
                    let admitted = self.admit_orphans(*parent).await;
                    if admitted.contains(&txid) {
                        return Relayed::Accepted(admitted);
                    }
                }
                Relayed::Orphan(missing)
            }
            // Its parents kept changing under the checks: dropped, not remembered.
            Ok(Admission::NeedsSignatures) => {
                Relayed::Rejected(RuleError::InputsMissingOrSpent.into())
            }
            Err(
                e @ (MempoolError::AlreadyInMempool
                | MempoolError::Store(_)
                | MempoolError::Stopping
                | MempoolError::Rule(RuleError::InputsMissingOrSpent)),
            ) => Relayed::Rejected(e),
            Err(e) => {
                // Remembered for the tip it was refused on only.
                if self.tip.borrow().hash == tip {
                    self.rejects().insert(&tip, txid);
                }
                Relayed::Rejected(e)
            }
        }
    }

    fn rejects(&self) -> std::sync::MutexGuard<'_, Rejects> {
        self.rejects.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn orphans(&self) -> std::sync::MutexGuard<'_, Orphans> {
        self.orphans.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True if `txid` is in the pool, waits as an orphan, or was refused on the current tip
    /// (Bitcoin Core's `AlreadyHaveTx`): not worth downloading.
    pub fn has_transaction(&self, txid: &Txid) -> bool {
        let tip = self.tip.borrow().hash;
        self.snapshot().mempool.contains(txid)
            || self.orphans().contains(txid)
            || self.rejects().contains(&tip, txid)
    }

    /// Admits the orphans that spend `txid` (just added to the pool), and theirs in turn;
    /// returns their txids.
    async fn admit_orphans(&self, txid: Txid) -> Vec<Txid> {
        let mut admitted = Vec::new();
        let mut parents = vec![txid];
        while let Some(parent) = parents.pop() {
            let children = self.orphans().take_children(&parent);
            for (child, child_tx, from) in children {
                match self.admit(child_tx.clone(), false).await {
                    Ok(Admission::Valid(_)) => {
                        admitted.push(child);
                        parents.push(child);
                    }
                    // Still waiting for another parent.
                    Ok(Admission::Missing(_) | Admission::NeedsSignatures) => {
                        self.orphans().add(child_tx, child, from, Instant::now());
                    }
                    Err(e) => tracing::debug!(%child, "orphan refused: {e}"),
                }
            }
        }
        admitted
    }

    /// Drops the orphans peer `peer` sent (it disconnected).
    pub fn forget_orphans_from(&self, peer: u64) {
        self.orphans().remove_peer(peer);
    }

    /// Copies of the orphan transactions waiting (at most 100, each small), with their txids.
    pub fn orphan_transactions(&self) -> Vec<(Txid, Transaction)> {
        self.orphans()
            .transactions()
            .map(|(txid, tx)| (*txid, tx.clone()))
            .collect()
    }

    /// Number of orphan transactions waiting.
    pub fn orphan_count(&self) -> usize {
        self.orphans().len()
    }

    /// Validates a transaction against the tip and the pool; adds it unless `test_only`.
    /// Orphans relayed earlier that waited for it follow it in.
    pub async fn accept_transaction(
        &self,
        tx: Transaction,
        test_only: bool,
    ) -> Result<Txid, MempoolError> {
        match self.admit(tx, test_only).await? {
            Admission::Valid(txid) => {
                if !test_only {
                    self.admit_orphans(txid).await;
                }
                Ok(txid)
            }
            Admission::Missing(_) | Admission::NeedsSignatures => {
                Err(RuleError::InputsMissingOrSpent.into())
            }
        }
    }

    /// Checks `tx` on the signature pool against the latest snapshot, then has the writer
    /// check the rest against the live state and add it (see the module docs). Answers
    /// [`Admission::NeedsSignatures`] only when the parents changed under every try.
    async fn admit(&self, tx: Transaction, test_only: bool) -> Result<Admission, MempoolError> {
        let result = self.admit_checked(tx, test_only).await;
        if let Err(e) = &result {
            if e.is_fatal() {
                self.store_failed(e);
            }
        }
        result
    }

    async fn admit_checked(
        &self,
        tx: Transaction,
        test_only: bool,
    ) -> Result<Admission, MempoolError> {
        for _ in 0..SIGNATURE_RETRIES {
            let verified = match check_on_pool(self.snapshot(), tx.clone()).await {
                Ok(()) => true,
                // The writer may know the parents; it says so without checking signatures.
                Err(MempoolError::Rule(RuleError::InputsMissingOrSpent)) => false,
                Err(e) => return Err(e),
            };
            let admission = self
                .writer
                .request(|reply| Command::AcceptTx {
                    tx: Box::new(tx.clone()),
                    verified,
                    test_only,
                    reply,
                })
                .await
                .map_err(|_| MempoolError::Stopping)??;
            if admission != Admission::NeedsSignatures {
                return Ok(admission);
            }
        }
        // Its parents came and went each time we looked.
        Ok(Admission::NeedsSignatures)
    }

    /// Invalidates or reconsiders a block.
    pub fn set_block_validity(&self, hash: &BlockHash, valid: bool) -> Result<(), ChainError> {
        self.call(|reply| Command::SetValidity {
            hash: *hash,
            valid,
            reply,
        })
        .map_err(stopped)?
    }

    /// Saves (`true`) or deletes (`false`) peer addresses.
    pub fn save_peers(&self, changes: &[(std::net::SocketAddr, bool)]) -> Result<(), ChainError> {
        self.call(|reply| Command::SavePeers {
            changes: changes.to_vec(),
            reply,
        })
        .map_err(stopped)?
        .map_err(ChainError::from)
    }

    /// A template on the latest snapshot's tip and pool, built on the calling thread by the
    /// first request after a change (others asking meanwhile wait for it) and kept with the
    /// snapshot; the writer is not involved.
    pub fn template(&self) -> Arc<Template> {
        let snap = self.snapshot();
        snap.template
            .get_or_init(|| {
                let started = std::time::Instant::now();
                let built = Template::new(&snap.index, &snap.mempool, snap.mempool_seq, unix_now());
                crate::metrics::get().template_built(started.elapsed());
                Arc::new(built)
            })
            .clone()
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
            self.call(|reply| Command::Flush { reply })
                .map_err(stopped)??;
        }
        result.map(|()| hashes)
    }

    /// Mines one block paying `script_pubkey` on all cores (outside the writer) and submits it
    /// (committed durably if `durable`). Returns its hash, or `None` if mining was stopped.
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
            let (mut block, txids) = template.block(script_pubkey, extranonce);
            extranonce += 1;
            let Some(header) = mining::solve(block.header, threads, &self.stopping) else {
                if self.stopping.load(std::sync::atomic::Ordering::Acquire) {
                    return Ok(None);
                }
                continue; // nonces exhausted: next extranonce
            };
            block.header = header;
            let hash = block.block_hash();
            match self.submit(Arc::new(block), Some(txids), durable) {
                Ok(_) => return Ok(Some(hash)),
                // The tip moved while we mined: build on the new one.
                Err(e) if e.rule() == Some(&RuleError::BadPrevBlock) => continue,
                Err(e) => return Err(e),
            }
        }
    }
}

/// Checks all of `tx`, signatures included, against `snap` on the transaction pool.
async fn check_on_pool(snap: Arc<Snapshot>, tx: Transaction) -> Result<(), MempoolError> {
    let (send, checked) = tokio::sync::oneshot::channel();
    crate::signatures::transaction_pool().spawn(move || {
        let result = snap.with_view(|view| snap.mempool.check(tx, view, unix_now(), &|_| false));
        let _ = send.send(result.map(drop));
    });
    checked.await.map_err(|_| MempoolError::Stopping)?
}

#[cfg(test)]
mod tests;

/// The writer is gone only while the node stops.
fn stopped(_: Stopped) -> ChainError {
    ChainError::Stopping
}
