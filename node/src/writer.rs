//! The writer: the one thread that owns the chain and the mempool. Every change to either is
//! a [`Command`] sent over a bounded channel, answered on a oneshot channel once the change is
//! done and published.
//!
//! After each batch of commands that changed anything the writer publishes a new
//! [`Snapshot`]; readers (RPC, P2P) take the latest snapshot and never wait for the writer.
//! The writer does no heavy work a reader could be waiting on that it does not have to:
//! signatures of incoming transactions are checked on the signature pool before their command
//! is sent (`crate::node`), proof of work for `generatetoaddress` is solved by the caller, and a
//! block's signatures are checked on the signature pool while the writer runs its coin pass.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;

use chaincore::merkle::MerkleTxids;
use chaincore::{Block, BlockHash, Transaction, Txid};
use tokio::sync::{mpsc, oneshot};

use crate::chain::{unix_now, Accepted, Chain, ChainError};
use crate::mempool::{Mempool, MempoolError};
use crate::node::Node;
use crate::snapshot::Snapshot;
use crate::store::StoreError;

/// Commands waiting for the writer at most; senders wait when it is full.
const QUEUE: usize = 256;
/// Most commands handled between two publications.
const BATCH: usize = 64;

/// A change the writer makes, with where its answer goes.
pub enum Command {
    /// Accept a block; commit it durably if `durable`.
    SubmitBlock {
        /// The block (shared: a peer's task may be relaying it meanwhile).
        block: Arc<Block>,
        /// Its txids, if the sender computed them from these transactions already.
        txids: Option<MerkleTxids>,
        /// Whether its commit waits for the disk.
        durable: bool,
        /// The answer.
        reply: oneshot::Sender<Result<Accepted, ChainError>>,
    },
    /// Check a transaction against the pool and the chain and add it (unless `test_only`).
    AcceptTx {
        /// The transaction.
        tx: Box<Transaction>,
        /// Its signatures were checked on the signature pool against a snapshot.
        verified: bool,
        /// Only check.
        test_only: bool,
        /// The answer.
        reply: oneshot::Sender<Result<Admission, MempoolError>>,
    },
    /// Invalidate (`valid == false`) or reconsider a block.
    SetValidity {
        /// The block.
        hash: BlockHash,
        /// Reconsider rather than invalidate.
        valid: bool,
        /// The answer.
        reply: oneshot::Sender<Result<(), ChainError>>,
    },
    /// Save (`true`) or delete (`false`) peer addresses.
    SavePeers {
        /// The changes.
        changes: Vec<(SocketAddr, bool)>,
        /// The answer.
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Make every commit so far durable.
    Flush {
        /// The answer.
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    /// Tests only: says it has started on `entered`, then holds the writer until `resume`
    /// fires, so a test can queue commands behind it.
    #[cfg(test)]
    Pause {
        /// Told once the writer is in this command.
        entered: std::sync::mpsc::Sender<()>,
        /// The writer goes on once this fires (or its sender is dropped).
        resume: std::sync::mpsc::Receiver<()>,
        /// The answer.
        reply: oneshot::Sender<()>,
    },
}

/// What the writer made of a transaction whose command succeeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Added to the pool (or, for `test_only`, valid).
    Valid(Txid),
    /// Valid but for its signatures, which were not checked: its inputs were not all in the
    /// snapshot the caller checked against. The snapshot published before this answer has
    /// them; check again and resend.
    NeedsSignatures,
    /// Some inputs spend outputs of these transactions, which are neither in the pool nor (by
    /// those outputs) in the UTXO set: an orphan, as the live state says.
    Missing(Vec<Txid>),
}

/// The writer is gone: the node is stopping.
#[derive(Debug, thiserror::Error)]
#[error("the node is shutting down")]
pub struct Stopped;

/// The chain and the mempool, owned by the writer thread.
pub struct State {
    /// The chain.
    pub chain: Chain,
    /// The mempool.
    pub mempool: Mempool,
}

/// The handle to the writer thread.
pub struct Writer {
    commands: Mutex<Option<mpsc::Sender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The receiving end of a writer's commands, until [`Writer::start`] takes it.
pub struct Commands(mpsc::Receiver<Command>);

impl Writer {
    /// A writer handle and its command queue; nothing runs until [`Writer::start`].
    pub fn new() -> (Writer, Commands) {
        let (send, receive) = mpsc::channel(QUEUE);
        let writer = Writer {
            commands: Mutex::new(Some(send)),
            thread: Mutex::new(None),
        };
        (writer, Commands(receive))
    }

    /// Starts the writer thread on `state`, taking `commands` and publishing to `node` (held
    /// weakly: the writer ends when the node is dropped or [`Writer::stop`] is called).
    pub fn start(&self, state: State, commands: Commands, node: Weak<Node>) -> std::io::Result<()> {
        let thread = std::thread::Builder::new()
            .name("writer".into())
            .spawn(move || run(state, commands.0, node))?;
        *self.thread.lock().unwrap_or_else(|p| p.into_inner()) = Some(thread);
        Ok(())
    }

    fn sender(&self) -> Result<mpsc::Sender<Command>, Stopped> {
        self.commands
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
            .ok_or(Stopped)
    }

    /// Sends the command `make` builds around a reply channel and waits for the answer, from a
    /// thread outside the async runtime (callers in async code use `spawn_blocking`).
    pub fn call<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        self.sender()?
            .blocking_send(make(reply))
            .map_err(|_| Stopped)?;
        answer.blocking_recv().map_err(|_| Stopped)
    }

    /// [`Writer::call`] from async code: waits for room in the queue and for the answer
    /// without blocking a runtime thread.
    pub async fn request<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, Stopped> {
        let (reply, answer) = oneshot::channel();
        let sender = self.sender()?;
        sender.send(make(reply)).await.map_err(|_| Stopped)?;
        answer.await.map_err(|_| Stopped)
    }

    /// Commands waiting in the queue.
    #[cfg(test)]
    pub fn queued(&self) -> usize {
        self.sender().map_or(0, |s| QUEUE - s.capacity())
    }

    /// Lets the writer finish the commands already sent, then waits for its thread to end.
    pub fn stop(&self) {
        drop(
            self.commands
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take(),
        );
        let thread = self.thread.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(thread) = thread {
            if thread.join().is_err() {
                tracing::error!("the writer thread panicked");
            }
        }
    }
}

/// The writer's loop ([`serve`]), then, unless it ended in a panic, the coins cache's flush.
fn run(mut state: State, commands: mpsc::Receiver<Command>, node: Weak<Node>) {
    // Snapshots the writer replaces are dropped on their own thread: the last copy of a pool
    // version a block emptied frees thousands of transactions, milliseconds the next command
    // need not wait for (and, at a lower priority, the block's caller need not share a core
    // with). Without that thread the writer drops them itself.
    let (retire, retired) = std::sync::mpsc::channel::<Arc<Snapshot>>();
    let reaper = std::thread::Builder::new()
        .name("snapshot-drop".into())
        .spawn(move || {
            crate::priority::lower();
            retired.into_iter().for_each(drop)
        })
        .ok();
    let retire = Retire(reaper.is_some().then_some(retire));
    let served = serve(&mut state, commands, &node, &retire);
    drop(retire);
    if let Some(reaper) = reaper {
        let _ = reaper.join();
    }
    if served {
        if let Err(e) = state.chain.flush_coins() {
            tracing::error!("coins cache not flushed at shutdown (the next start replays): {e}");
        }
    }
}

/// Where replaced snapshots go to be dropped (see [`run`]).
struct Retire(Option<std::sync::mpsc::Sender<Arc<Snapshot>>>);

impl Retire {
    /// Drops `old` on the reaper thread, or here if there is none.
    fn send(&self, old: Arc<Snapshot>) {
        if let Some(Err(back)) = self.0.as_ref().map(|s| s.send(old)) {
            drop(back.0);
        }
    }
}

/// Takes a batch of commands, runs them, publishes once, then answers. A batch ends before a
/// block or an invalidation, so the commands before it are answered without waiting for it.
/// Returns `false` if a command panicked (nothing the writer holds can be trusted then).
fn serve(
    state: &mut State,
    mut commands: mpsc::Receiver<Command>,
    node: &Weak<Node>,
    retire: &Retire,
) -> bool {
    let mut mempool_seq = 0;
    // A heavy command taken while a batch was open: it starts the next batch.
    let mut held_over: Option<Command> = None;
    loop {
        let Some(first) = held_over.take().or_else(|| commands.blocking_recv()) else {
            return true;
        };
        let Some(node) = node.upgrade() else {
            return true;
        };
        let mut answers: Vec<Box<dyn FnOnce()>> = Vec::new();
        let mut new_txs = Vec::new();
        let mut changed = false;
        let mut next = Some(first);
        while let Some(command) = next.take() {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                handle(state, command, &node)
            }));
            let Ok(outcome) = outcome else {
                // Nothing the writer holds can be trusted now: stop the node cleanly.
                node.store_failed(&"the writer thread panicked");
                return false;
            };
            if outcome.changed {
                changed = true;
                mempool_seq += 1;
            }
            new_txs.extend(outcome.new_txs);
            answers.push(outcome.answer);
            if answers.len() < BATCH {
                next = commands.try_recv().ok();
            }
            // Cheap commands already done are answered before a block or a reorg runs.
            if next.as_ref().is_some_and(Command::is_heavy) {
                held_over = next.take();
            }
        }
        if changed {
            publish(&node, state, mempool_seq, retire);
        }
        // Announced once readers (and peers asking for them) can see them.
        for txid in new_txs {
            let _ = node.new_tx.send(txid);
        }
        for answer in answers {
            answer();
        }
        // After the answers: the indexer's work on the new snapshot, and merging the block's
        // UTXO changes into the coins cache's map, are no caller's wait.
        if changed {
            node.wake_indexer();
            state.chain.settle_coins();
        }
    }
}

impl Command {
    /// Blocks and invalidations can take long (a 1 MB block, a reorg).
    fn is_heavy(&self) -> bool {
        matches!(
            self,
            Command::SubmitBlock { .. } | Command::SetValidity { .. }
        )
    }
}

/// What handling one command did.
struct Outcome {
    /// Whether the chain or the mempool may have changed.
    changed: bool,
    /// Transactions new in the pool, to announce.
    new_txs: Vec<Txid>,
    /// Sends the answer (after the publication).
    answer: Box<dyn FnOnce()>,
}

fn handle(state: &mut State, command: Command, node: &Node) -> Outcome {
    fn answer<T: 'static>(reply: oneshot::Sender<T>, value: T) -> Box<dyn FnOnce()> {
        Box::new(move || {
            let _ = reply.send(value);
        })
    }
    match command {
        Command::SubmitBlock {
            block,
            txids,
            durable,
            reply,
        } => {
            let before = state.mempool.clone();
            let now = unix_now() as i64;
            let result = state
                .chain
                .accept_block(&block, txids, &mut state.mempool, now, durable);
            fatal(node, result.as_ref().err().filter(|e| e.is_fatal()));
            // A rejected block may still have moved the chain (orphans, activation).
            Outcome {
                changed: true,
                new_txs: returned(&before, &state.mempool),
                answer: answer(reply, result),
            }
        }
        Command::AcceptTx {
            tx,
            verified,
            test_only,
            reply,
        } => {
            let size = (state.mempool.len(), state.mempool.bytes());
            let result = accept_tx(state, *tx, verified, test_only);
            fatal(node, result.as_ref().err().filter(|e| e.is_fatal()));
            let new_txs = match result {
                Ok(Admission::Valid(txid)) if !test_only => vec![txid],
                _ => Vec::new(),
            };
            // An insert that evicted others and then itself (`Full`) changed the pool too.
            let moved = size != (state.mempool.len(), state.mempool.bytes());
            Outcome {
                changed: !new_txs.is_empty() || moved,
                new_txs,
                answer: answer(reply, result),
            }
        }
        Command::SetValidity { hash, valid, reply } => {
            let before = state.mempool.clone();
            let result = if valid {
                state.chain.reconsider_block(&hash, &mut state.mempool)
            } else {
                state.chain.invalidate_block(&hash, &mut state.mempool)
            };
            fatal(node, result.as_ref().err().filter(|e| e.is_fatal()));
            Outcome {
                changed: true,
                new_txs: returned(&before, &state.mempool),
                answer: answer(reply, result),
            }
        }
        Command::SavePeers { changes, reply } => {
            let result = state.chain.store().save_peers(&changes);
            fatal(node, result.as_ref().err());
            Outcome {
                changed: false,
                new_txs: Vec::new(),
                answer: answer(reply, result),
            }
        }
        #[cfg(test)]
        Command::Pause {
            entered,
            resume,
            reply,
        } => {
            let _ = entered.send(());
            let _ = resume.recv();
            Outcome {
                changed: false,
                new_txs: Vec::new(),
                answer: answer(reply, ()),
            }
        }
        Command::Flush { reply } => {
            let result = state.chain.store().flush();
            fatal(node, result.as_ref().err());
            Outcome {
                changed: false,
                new_txs: Vec::new(),
                answer: answer(reply, result),
            }
        }
    }
}

/// Checks `tx` against the live chain and pool, all but its signatures, and adds it if they
/// were `verified` (and it is not `test_only`).
fn accept_tx(
    state: &mut State,
    tx: Transaction,
    verified: bool,
    test_only: bool,
) -> Result<Admission, MempoolError> {
    let index = state.chain.index();
    let rtx = state.chain.store().begin_read()?;
    let utxos = crate::store::read::coins(&rtx, state.chain.coins().map())?;
    let coin = |o: &chaincore::OutPoint| utxos.coin(o);
    let view = crate::mempool::ChainView {
        coin: &coin,
        next_height: index.tip_height() + 1,
        median_time_past: index.median_time_past(&index.tip_hash()),
    };
    // Signatures are the caller's part (see `verified`).
    let entry = match state
        .mempool
        .check(tx.clone(), &view, unix_now(), &|_| true)
    {
        Err(MempoolError::Rule(chaincore::validation::RuleError::InputsMissingOrSpent)) => {
            let missing = missing_parents(&state.mempool, &coin, &tx)?;
            if missing.is_empty() {
                // Every parent is there: an input is spent, not missing.
                return Err(chaincore::validation::RuleError::InputsMissingOrSpent.into());
            }
            return Ok(Admission::Missing(missing));
        }
        checked => checked?,
    };
    if !verified {
        return Ok(Admission::NeedsSignatures);
    }
    let txid = entry.txid;
    if !test_only {
        let evicted = state.mempool.insert(entry)?;
        if !evicted.is_empty() {
            tracing::info!(
                evicted = evicted.len(),
                pool = state.mempool.len(),
                "mempool full: evicted the lowest fee rates"
            );
        }
    }
    Ok(Admission::Valid(txid))
}

/// Parents of `tx` neither in `pool` nor (by one of their outputs `tx` spends) in the UTXO
/// set `coin` reads.
fn missing_parents(
    pool: &Mempool,
    coin: &dyn Fn(&chaincore::OutPoint) -> Result<Option<chaincore::validation::Coin>, StoreError>,
    tx: &Transaction,
) -> Result<Vec<Txid>, StoreError> {
    let mut missing = Vec::new();
    for input in &tx.input {
        let parent = input.previous_output.txid;
        if !pool.contains(&parent) && coin(&input.previous_output)?.is_none() {
            missing.push(parent);
        }
    }
    missing.sort();
    missing.dedup();
    Ok(missing)
}

/// A store failure leaves nothing trustworthy: the node shuts down.
fn fatal(node: &Node, error: Option<&impl std::fmt::Display>) {
    if let Some(e) = error {
        node.store_failed(e);
    }
}

/// Transactions in `after` that were not in `before`: returned to the pool from disconnected
/// blocks, to be relayed again.
fn returned(before: &Mempool, after: &Mempool) -> Vec<Txid> {
    after
        .entries()
        .filter(|e| !before.contains(&e.txid))
        .map(|e| e.txid)
        .collect()
}

/// Publishes a snapshot of `state`, then the tip and the mempool sequence if they moved; the
/// snapshot it replaces goes to `retire`.
fn publish(node: &Node, state: &State, mempool_seq: u64, retire: &Retire) {
    let rtx = match state.chain.store().begin_read() {
        Ok(rtx) => rtx,
        Err(e) => {
            node.store_failed(&e);
            return;
        }
    };
    let snapshot = Arc::new(Snapshot {
        index: state.chain.index().clone(),
        mempool: state.mempool.clone(),
        rtx,
        coins: state.chain.coins().map().clone(),
        mempool_seq,
        template: Default::default(),
    });
    let tip = snapshot.tip();
    retire.send(node.snapshot.send_replace(snapshot));
    node.tip.send_if_modified(|t| {
        let moved = *t != tip;
        *t = tip;
        moved
    });
    node.mempool_seq.send_if_modified(|s| {
        let moved = *s != mempool_seq;
        *s = mempool_seq;
        moved
    });
}
