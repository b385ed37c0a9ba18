//! The indexer: a thread that builds the tx index and the address index from connected blocks
//! (their stored bytes and undo data), each index with its own best block (Bitcoin Core's
//! `BaseIndex`). Block connect never writes them.
//!
//! After every snapshot the writer publishes, the indexer brings each enabled index to that
//! snapshot's tip: it first takes out the blocks it holds that are no longer on the active
//! chain (a reorg, or an index enabled again after the chain moved), then takes in the active
//! blocks above its best block, in write transactions of at most [`BATCH_TXS`] transactions,
//! each moving the index's best block with its rows. So a crash at any instant leaves each
//! index consistent with its own best block, and the next start catches up from there; an
//! index enabled late catches up from where it stopped (or from genesis). Its commits do not
//! wait for the disk: the writer's next durable commit, or the indexer's own at shutdown,
//! makes them durable.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Instant;

use chaincore::validation::Coin;
use chaincore::{Block, BlockHash, Txid};
use tokio::sync::watch;

use crate::chain::BlockIndex;
use crate::node::Node;
use crate::store::connect::block_and_undo;
use crate::store::indexes::{self, IndexBest, IndexKind};
use crate::store::tables::{BLOCKS, META, UNDO};
use crate::store::{Store, StoreError};

/// Most transactions taken in or out in one write transaction (the writer waits for the
/// write lock at most this long).
pub const BATCH_TXS: usize = 10_000;

/// How long after its last commit the indexer, caught up, makes its commits durable itself;
/// snapshots that bring no block (every mempool change) do not put that off. Until then they
/// ride on the writer's next durable commit; after it, that commit writes only its own block
/// (a block that waited for the index pages of the one before took milliseconds longer).
const IDLE_FLUSH: std::time::Duration = std::time::Duration::from_millis(100);

/// Where one enabled index stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexState {
    /// Which index.
    pub kind: IndexKind,
    /// Its best block (`None`: nothing taken in yet, as at genesis).
    pub best: Option<IndexBest>,
    /// It has reached the chain's tip once since the node started (Bitcoin Core's
    /// `m_synced`): from then on readers wait for it to take in a new tip.
    pub caught_up: bool,
}

impl IndexState {
    /// Height of its best block (0 before it took in any).
    pub fn height(&self) -> u32 {
        self.best.map_or(0, |b| b.height)
    }

    /// True if it has taken in exactly the chain ending at `tip` (`height`).
    pub fn at(&self, tip: &BlockHash, height: u32) -> bool {
        match self.best {
            Some(b) => b.hash == *tip,
            None => height == 0,
        }
    }
}

/// The handle to the indexer thread.
pub struct Indexer {
    wake: Mutex<Option<SyncSender<()>>>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Indexer {
    /// The state of each of `kinds` as stored, before the thread starts.
    pub fn load(store: &Store, kinds: &[IndexKind]) -> Result<Vec<IndexState>, StoreError> {
        let rtx = store.begin_read()?;
        let meta = rtx.open_table(META)?;
        kinds
            .iter()
            .map(|&kind| {
                Ok(IndexState {
                    kind,
                    best: indexes::best(&meta, kind)?,
                    caught_up: false,
                })
            })
            .collect()
    }

    /// A handle with no thread (no index enabled).
    pub fn none() -> Indexer {
        Indexer {
            wake: Mutex::new(None),
            stop: Arc::new(AtomicBool::new(false)),
            thread: Mutex::new(None),
        }
    }

    /// Starts the thread for the indexes in `node`'s progress (held weakly, like the writer).
    pub fn start(&self, store: Arc<Store>, node: &Arc<Node>) -> std::io::Result<()> {
        if node.index_progress.borrow().is_empty() {
            return Ok(());
        }
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        let weak = Arc::downgrade(node);
        let stop = self.stop.clone();
        let thread = std::thread::Builder::new()
            .name("indexer".into())
            .spawn(move || {
                // Background work: block relay and connect go first.
                crate::priority::idle();
                run(&store, &weak, &woken, &stop)
            })?;
        *lock(&self.wake) = Some(wake);
        *lock(&self.thread) = Some(thread);
        Ok(())
    }

    /// Tells the thread a new snapshot is out (never waits).
    pub fn wake(&self) {
        if let Some(w) = lock(&self.wake).as_ref() {
            let _ = w.try_send(());
        }
    }

    /// Stops the thread after its current batch and waits for it; its last commit is made
    /// durable.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        drop(lock(&self.wake).take());
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the indexer thread panicked");
            }
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn run(store: &Store, node: &Weak<Node>, woken: &Receiver<()>, stop: &AtomicBool) {
    let mut logged_behind = false;
    // When index commits not yet durable are to be made so: [`IDLE_FLUSH`] after the last
    // one, however many snapshots (mempool changes) wake the indexer meanwhile.
    let mut flush_at: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let Some(n) = node.upgrade() else {
            break;
        };
        let snap = n.snapshot();
        let mut states = n.index_progress.borrow().clone();
        let before = states.clone();
        let result = batch(store, &snap.index, &mut states, BATCH_TXS);
        if states != before {
            flush_at = Some(Instant::now() + IDLE_FLUSH);
        }
        let tip = snap.tip();
        for s in &mut states {
            s.caught_up |= s.at(&tip.hash, tip.height);
        }
        let all_there = states.iter().all(|s| s.at(&tip.hash, tip.height));
        publish(&n.index_progress, &states);
        match result {
            Ok(()) if all_there => {
                if logged_behind {
                    tracing::info!(height = tip.height, "indexes caught up with the chain");
                    logged_behind = false;
                }
                drop((n, snap));
                // Wait for the next snapshot (or the end); if none comes soon, make what
                // was indexed durable first.
                if let Some(at) = flush_at {
                    match woken.recv_timeout(at.saturating_duration_since(Instant::now())) {
                        Ok(()) => continue,
                        Err(RecvTimeoutError::Disconnected) => break,
                        Err(RecvTimeoutError::Timeout) => {}
                    }
                    if let Err(e) = store.flush() {
                        if let Some(n) = node.upgrade() {
                            n.store_failed(&e);
                        }
                        return;
                    }
                    flush_at = None;
                }
                match woken.recv() {
                    Ok(()) => {}
                    Err(_) => break,
                }
            }
            Ok(()) => {
                if !logged_behind
                    && states
                        .iter()
                        .any(|s| tip.height - s.height().min(tip.height) > 1)
                {
                    for s in &states {
                        tracing::info!(
                            index = s.kind.name(),
                            height = s.height(),
                            tip = tip.height,
                            "index catching up with the chain"
                        );
                    }
                    logged_behind = true;
                }
                if let Err(TryRecvError::Disconnected) = woken.try_recv() {
                    break;
                }
            }
            Err(e) => {
                n.store_failed(&e);
                return;
            }
        }
    }
    if let Err(e) = store.flush() {
        tracing::error!("index commits not made durable at shutdown: {e}");
    }
}

fn publish(progress: &watch::Sender<Vec<IndexState>>, states: &[IndexState]) {
    progress.send_if_modified(|p| {
        let moved = p.as_slice() != states;
        if moved {
            *p = states.to_vec();
        }
        moved
    });
}

/// A block, its txids and its undo data, read once per batch.
type Loaded = Arc<(Block, Vec<Txid>, Vec<Coin>)>;

/// Runs [`batch`] until every index in `states` has taken in the tip of `chain`.
#[cfg(test)]
pub fn catch_up(
    store: &Store,
    chain: &BlockIndex,
    states: &mut [IndexState],
) -> Result<(), StoreError> {
    let (tip, height) = (chain.tip_hash(), chain.tip_height());
    while !states.iter().all(|s| s.at(&tip, height)) {
        batch(store, chain, states, BATCH_TXS)?;
    }
    Ok(())
}

/// One write transaction moving each index in `states` towards the tip of `chain` (about
/// `budget` transactions each: whole blocks, at least one); updates `states` once it
/// committed.
pub(crate) fn batch(
    store: &Store,
    chain: &BlockIndex,
    states: &mut [IndexState],
    budget: usize,
) -> Result<(), StoreError> {
    let (tip, tip_height) = (chain.tip_hash(), chain.tip_height());
    if states.iter().all(|s| s.at(&tip, tip_height)) {
        return Ok(());
    }
    let wtx = store.begin_write_with(false)?;
    let mut loaded: HashMap<BlockHash, Loaded> = HashMap::new();
    let mut moved = Vec::with_capacity(states.len());
    {
        let blocks = wtx.open_table(BLOCKS)?;
        let undo = wtx.open_table(UNDO)?;
        let mut load = |hash: &BlockHash| -> Result<Loaded, StoreError> {
            if let Some(l) = loaded.get(hash) {
                return Ok(l.clone());
            }
            let (block, spent) = block_and_undo(&blocks, &undo, hash)?;
            let txids = block.compute_txids();
            let l = Arc::new((block, txids, spent));
            loaded.insert(*hash, l.clone());
            Ok(l)
        };
        for state in states.iter() {
            let kind = state.kind;
            let mut best = state.best;
            let mut budget = budget.max(1);
            // Out with what is no longer on the active chain.
            while let Some(b) = best {
                if chain.active_hash(b.height) == Some(b.hash) || budget == 0 {
                    break;
                }
                let l = load(&b.hash)?;
                let (block, txids, spent) = &*l;
                indexes::disconnect(&wtx, kind, block, &b.hash, txids, b.height, spent)?;
                budget = budget.saturating_sub(txids.len());
                best = (b.height > 1).then(|| IndexBest {
                    hash: block.header.prev_blockhash,
                    height: b.height - 1,
                });
            }
            let on_chain = best.is_none_or(|b| chain.active_hash(b.height) == Some(b.hash));
            // In with the active blocks above it.
            while on_chain && budget > 0 {
                let height = best.map_or(0, |b| b.height) + 1;
                let Some(hash) = chain.active_hash(height) else {
                    break;
                };
                let l = load(&hash)?;
                let (block, txids, spent) = &*l;
                indexes::connect(&wtx, kind, block, &hash, txids, height, spent)?;
                budget = budget.saturating_sub(txids.len());
                best = Some(IndexBest { hash, height });
            }
            if best != state.best {
                match best {
                    Some(b) => indexes::set_best(&wtx, kind, &b)?,
                    None => indexes::clear_best(&wtx, kind)?,
                }
            }
            moved.push(best);
        }
    }
    wtx.commit()?;
    for (state, best) in states.iter_mut().zip(moved) {
        state.best = best;
    }
    Ok(())
}
