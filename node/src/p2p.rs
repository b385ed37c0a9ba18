//! Peer-to-peer networking: Bitcoin's framing and message set over TCP.
//!
//! A task per peer reads framed messages and answers them; a writer task per peer drains a
//! bounded queue. Sync is headers-first: after the handshake each side asks for headers from its
//! block locator, then fetches the blocks it lacks, at most [`MAX_IN_FLIGHT`] at a time per
//! peer. New tips and mempool transactions are announced by `inv`, never to a peer known to
//! have them. A peer that breaks the protocol or sends an invalid block is disconnected and,
//! unless it is on loopback or named by the operator, its IP is banned for 24 hours.
//!
//! The network's shared state (peer table, bans, address book, blocks in flight, our nonces
//! and addresses) belongs to one task, the [`manager`]. Peer sessions, the loops below, RPC and
//! `main` reach it through a [`P2pHandle`], which is cheap to clone (a channel sender and an
//! `Arc`) and sends it commands on a bounded channel, as Zebra's and reth's network managers
//! are reached.
//!
//! Here: the handle and the tasks it starts (listening, outbound connections, discovery,
//! relay, saving the address book) and shutdown. By topic: [`manager`] (the state and the
//! commands), `peer` (one connection: handshake, session, every message's answer),
//! [`addrbook`] (known addresses), [`bans`] (banned IPs), [`download`] (one peer's block
//! download state, and the blocks requested from all), [`outbox`] (one peer's send queue),
//! [`traffic`] (byte counters), and the codec in `chaincore::p2p` ([`message`]).
//!
//! # Shutdown
//!
//! Every task P2P spawns is tracked. [`P2pHandle::shutdown`] works in two steps: it cancels
//! every task but the manager (each ends at its next await point; a session's socket closes)
//! and waits for them; then it tells the manager to finish, which serves the commands already
//! queued (what the last sessions reported), saves the address book and ends. Once the
//! manager has ended, handle methods that need it return [`P2pStopped`].

pub mod addrbook;
pub mod bans;
pub mod download;
pub mod manager;
pub use chaincore::p2p as message;
pub mod outbox;
mod peer;
pub mod traffic;

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaincore::rpc::network::PeerInfo;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::node::Node;
use addrbook::AddrBook;
use chaincore::BlockHash;
use manager::{BookChange, Command, Manager};
use message::compact::CompactBlock;
use message::{Inv, INV_BLOCK, INV_TX, MAX_HEADERS};
use traffic::Traffic;

/// Blocks requested from one peer at a time.
pub const MAX_IN_FLIGHT: usize = 16;
/// Headers of a lighter fork kept per peer while it may still outgrow our chain.
pub const MAX_PENDING_HEADERS: usize = 10 * MAX_HEADERS;
/// Outbound connections kept from discovered addresses (without `--connect`).
const OUTBOUND_TARGET: usize = 8;
/// Commands queued for the manager at most; past it a sender waits until there is room.
const COMMAND_QUEUE: usize = 1_024;
/// How often discovery looks for an address to dial.
const DISCOVERY_INTERVAL: Duration = Duration::from_secs(5);
/// How often address book changes are written to the store.
const SAVE_BOOK_INTERVAL: Duration = Duration::from_secs(5);
/// Time allowed for dialling a discovered address.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);

/// P2P settings.
#[derive(Debug, Clone)]
pub struct P2pConfig {
    /// Where to listen, if at all.
    pub listen: Option<SocketAddr>,
    /// Peers to keep connections to (`--connect` and `--addnode`).
    pub peers: Vec<SocketAddr>,
    /// With `--connect`: only those peers, no discovered ones.
    pub connect_only: bool,
    /// Localhost addresses to probe for peers (`--discover-local`).
    pub discover_local: Vec<SocketAddr>,
    /// Most connections in and out.
    pub max_connections: usize,
    /// Headers of a lighter fork kept per peer ([`MAX_PENDING_HEADERS`] but in tests).
    pub max_pending_headers: usize,
}

/// P2P has shut down (its manager has ended): the request was not carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("P2P networking has stopped")]
pub struct P2pStopped;

/// A handle to the P2P network, shared by peer tasks, RPC and `main`; clones are cheap and
/// all reach the same manager. Methods that ask the manager wait for its answer and return
/// [`P2pStopped`] once it has ended (after [`P2pHandle::shutdown`]), never panic.
#[derive(Clone)]
pub struct P2pHandle {
    commands: mpsc::Sender<Command>,
    shared: Arc<Shared>,
}

/// What every handle shares without asking the manager: settings, two counters too hot for a
/// round trip, and the shutdown machinery.
struct Shared {
    node: Arc<Node>,
    config: P2pConfig,
    magic: [u8; 4],
    /// Highest block height of valid headers any peer has sent us. An atomic: every
    /// `getblockchaininfo` reads it, and it only ever grows.
    best_seen_height: AtomicU64,
    /// Bytes to and from peers. Atomics: every read and write on every socket adds to them.
    traffic: Arc<Traffic>,
    /// The last block pushed to high-bandwidth peers before validation (Core's
    /// `m_most_recent_block`): their `getblocktxn` and `getdata` for it are served from here,
    /// since it may not be stored yet. A lock held only to swap or clone the `Arc`.
    recent_block: std::sync::Mutex<Option<Arc<chaincore::Block>>>,
    /// Every task P2P spawned but the manager (loops, peer sessions, connection attempts).
    tasks: TaskTracker,
    /// Fires at shutdown: every task in `tasks` ends.
    stop: CancellationToken,
    /// The manager task.
    manager: TaskTracker,
    /// Fires once `tasks` have ended (or shutdown ran out of patience): the manager serves
    /// what is queued, saves the address book, and ends.
    finish: CancellationToken,
}

/// Why a peer was dropped.
#[derive(Debug, thiserror::Error)]
enum PeerError {
    #[error("protocol violation: {0}")]
    Protocol(#[from] message::ProtocolError),
    #[error("misbehaved: {0}")]
    Misbehaved(String),
    #[error("{0}")]
    Disconnect(String),
    #[error(transparent)]
    Stopped(#[from] P2pStopped),
}

impl P2pHandle {
    /// Starts the manager, then listening and connecting as `config` says.
    pub async fn start(node: Arc<Node>, config: P2pConfig) -> anyhow::Result<P2pHandle> {
        // Saved and configured addresses vouch for themselves (their own network group).
        let mut book = AddrBook::new();
        let saved = node.saved_peers()?;
        for a in saved.iter().chain(&config.discover_local) {
            book.add(*a, a.ip());
        }
        for a in &config.peers {
            book.good(*a);
        }
        let listener = match config.listen {
            Some(addr) => {
                let listener = TcpListener::bind(addr).await.map_err(|e| match e.kind() {
                    std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                        "cannot listen for peers on {addr}: the port is in use (another chaincore-node?); choose another with --port"
                    ),
                    _ => anyhow::anyhow!("cannot listen for peers on {addr}: {e}"),
                })?;
                tracing::info!("P2P listening on {}", listener.local_addr()?);
                Some(listener)
            }
            None => None,
        };
        let (commands, queue) = mpsc::channel(COMMAND_QUEUE);
        let p2p = P2pHandle {
            commands,
            shared: Arc::new(Shared {
                magic: node.network.params().magic,
                node: node.clone(),
                config: config.clone(),
                best_seen_height: AtomicU64::new(0),
                traffic: Arc::default(),
                recent_block: std::sync::Mutex::new(None),
                tasks: TaskTracker::new(),
                stop: CancellationToken::new(),
                manager: TaskTracker::new(),
                finish: CancellationToken::new(),
            }),
        };
        let manager = Manager::new(config, book);
        let finish = p2p.shared.finish.clone();
        p2p.shared.manager.spawn(async move {
            let unsaved = manager.run(queue, finish).await;
            save_book(node, unsaved).await;
        });
        if let Some(listener) = listener {
            p2p.spawn(p2p.clone().accept_loop(listener));
        }
        for addr in p2p.shared.config.peers.clone() {
            p2p.spawn(p2p.clone().keep_connected(addr, true));
        }
        p2p.spawn(p2p.clone().relay_loop());
        p2p.spawn(p2p.clone().save_book_loop());
        if !p2p.shared.config.connect_only {
            p2p.spawn(p2p.clone().discovery_loop());
        }
        Ok(p2p)
    }

    /// Queues `command` for the manager, waiting while its queue is full.
    async fn send(&self, command: Command) -> Result<(), P2pStopped> {
        self.commands.send(command).await.map_err(|_| P2pStopped)
    }

    /// Asks the manager `query` and waits for the answer.
    async fn ask<T>(
        &self,
        query: impl FnOnce(oneshot::Sender<T>) -> Command,
    ) -> Result<T, P2pStopped> {
        let (reply, answer) = oneshot::channel();
        self.send(query(reply)).await?;
        answer.await.map_err(|_| P2pStopped)
    }

    /// Keeps up to [`OUTBOUND_TARGET`] outbound connections using addresses from the book.
    async fn discovery_loop(self) {
        loop {
            tokio::time::sleep(DISCOVERY_INTERVAL).await;
            let Ok(candidate) = self.ask(Command::DialCandidate).await else {
                return;
            };
            let Some(addr) = candidate else {
                continue;
            };
            let me = self.clone();
            self.spawn(async move {
                match tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(addr)).await {
                    Ok(Ok(stream)) => me.run_peer(stream, addr, false, false).await,
                    _ => {
                        let _ = me.send(Command::Forget(addr)).await;
                    }
                }
            });
        }
    }

    /// Writes address book changes to the store every few seconds, in one transaction.
    async fn save_book_loop(self) {
        loop {
            tokio::time::sleep(SAVE_BOOK_INTERVAL).await;
            let Ok(changes) = self.ask(Command::TakeBookChanges).await else {
                return;
            };
            save_book(self.shared.node.clone(), changes).await;
        }
    }

    async fn accept_loop(self, listener: TcpListener) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("P2P accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            match self
                .ask(|reply| Command::AdmitInbound { addr, reply })
                .await
            {
                Ok(true) => self.spawn(self.clone().run_peer(stream, addr, true, false)),
                Ok(false) => {} // the manager says why
                Err(P2pStopped) => return,
            }
        }
    }

    /// Keeps a connection to an operator-named peer, reconnecting with backoff.
    async fn keep_connected(self, addr: SocketAddr, operator: bool) {
        let mut backoff = Duration::from_millis(250);
        loop {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let started = Instant::now();
                    self.clone().run_peer(stream, addr, false, operator).await;
                    if started.elapsed() > Duration::from_secs(60) {
                        backoff = Duration::from_millis(250);
                    }
                }
                Err(e) => tracing::debug!(%addr, "connect failed: {e}"),
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(60));
        }
    }

    /// Announces new tips and new mempool transactions to peers that lack them.
    async fn relay_loop(self) {
        let mut tips = self.shared.node.tip.subscribe();
        let mut txs = self.shared.node.new_tx.subscribe();
        loop {
            let inv = tokio::select! {
                changed = tips.changed() => {
                    if changed.is_err() { return; }
                    let tip = *tips.borrow_and_update();
                    Inv { kind: INV_BLOCK, hash: tip.hash.to_byte_array() }
                }
                tx = txs.recv() => match tx {
                    Ok(txid) => Inv { kind: INV_TX, hash: txid.to_byte_array() },
                    Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(_) => return,
                },
            };
            let compact = match inv.kind {
                INV_BLOCK => match self.compact_for_announce(BlockHash(inv.hash)).await {
                    Ok(c) => c,
                    Err(P2pStopped) => return,
                },
                _ => None,
            };
            if self.send(Command::Announce { inv, compact }).await.is_err() {
                return;
            }
        }
    }

    /// The compact form of block `hash` (read from the store) if a peer in high-bandwidth
    /// mode still lacks it: a block we mined, or one whose relay before validation did not
    /// reach everyone.
    async fn compact_for_announce(
        &self,
        hash: BlockHash,
    ) -> Result<Option<Arc<CompactBlock>>, P2pStopped> {
        if !self
            .ask(|reply| Command::WantsCompact { hash, reply })
            .await?
        {
            return Ok(None);
        }
        let node = self.shared.node.clone();
        let read = tokio::task::spawn_blocking(move || {
            crate::store::read::block(&node.snapshot().rtx, &hash)
        })
        .await;
        Ok(match read {
            Ok(Ok(Some(block))) => Some(Arc::new(CompactBlock::from_block(&block, random_nonce()))),
            _ => None,
        })
    }

    /// Keeps `block` as the one most recently relayed before validation.
    fn set_recent_block(&self, block: Arc<chaincore::Block>) {
        *self
            .shared
            .recent_block
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(block);
    }

    /// The block most recently relayed before validation, if it is `hash`.
    fn recent_block(&self, hash: &BlockHash) -> Option<Arc<chaincore::Block>> {
        self.shared
            .recent_block
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|b| b.block_hash() == *hash)
            .cloned()
    }

    /// Bitcoin Core's `getpeerinfo` shape.
    pub async fn peer_info(&self) -> Result<Vec<PeerInfo>, P2pStopped> {
        self.ask(Command::PeerInfo).await
    }

    /// Number of connected peers (counted from the moment a connection opens).
    pub async fn connection_count(&self) -> Result<usize, P2pStopped> {
        self.ask(Command::ConnectionCount).await
    }

    /// Records the height of a valid, heavier header chain a peer sent; logs sync progress.
    fn note_best_height(&self, best: u64) {
        if best
            > self
                .shared
                .best_seen_height
                .fetch_max(best, Ordering::Relaxed)
        {
            let ours = u64::from(self.shared.node.tip.borrow().height);
            if best > ours + 100 {
                tracing::info!(
                    "syncing: {ours} of {best} blocks ({:.1}%)",
                    100.0 * ours as f64 / best as f64
                );
            }
        }
    }

    /// Highest block height seen from any peer (a shared counter: works after shutdown too).
    pub fn best_seen_height(&self) -> u64 {
        self.shared.best_seen_height.load(Ordering::Relaxed)
    }

    /// `disconnectnode`: ends the sessions of the peers at `addr`; `Ok(false)` if none is
    /// connected.
    pub async fn disconnect(&self, addr: SocketAddr) -> Result<bool, P2pStopped> {
        self.ask(|reply| Command::Disconnect { addr, reply }).await
    }

    /// Sends a ping to every peer.
    pub async fn ping_all(&self) -> Result<(), P2pStopped> {
        self.send(Command::PingAll).await
    }

    /// Known peer addresses, up to `count`, tried ones first.
    pub async fn known_addresses(&self, count: usize) -> Result<Vec<SocketAddr>, P2pStopped> {
        self.ask(|reply| Command::Sample {
            count,
            seed: 0,
            reply,
        })
        .await
    }

    /// `setban <ip> add|remove [seconds]`: `Some(time)` bans `ip` and ends its peers'
    /// sessions, `None` lifts its ban. Queued for the manager: any later request sees it.
    pub async fn set_ban(&self, ip: IpAddr, ban: Option<Duration>) -> Result<(), P2pStopped> {
        match ban {
            Some(time) => {
                self.send(Command::Ban {
                    ip,
                    time,
                    disconnect: true,
                })
                .await
            }
            None => self.send(Command::Unban(ip)).await,
        }
    }

    /// Current bans as (ip, seconds left).
    pub async fn list_banned(&self) -> Result<Vec<(IpAddr, u64)>, P2pStopped> {
        self.ask(Command::ListBans).await
    }

    /// Lifts every ban.
    pub async fn clear_banned(&self) -> Result<(), P2pStopped> {
        self.send(Command::ClearBans).await
    }

    /// Bytes received from and sent to peers since the node started (shared counters: works
    /// after shutdown too).
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.shared.traffic.received.load(Ordering::Relaxed),
            self.shared.traffic.sent.load(Ordering::Relaxed),
        )
    }

    /// Runs `task` until it ends or P2P shuts down, tracked so that shutdown can wait for it.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.shared.stop.clone();
        self.shared.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Stops every P2P task (listening, connecting, relaying, every peer session, whose
    /// sockets close) and waits up to `patience` for them to end; then lets the manager serve
    /// what was queued, save the address book and end, waiting up to `patience` again.
    /// Returns how many tasks are still running (0 unless one is stuck outside an await
    /// point).
    pub async fn shutdown(&self, patience: Duration) -> usize {
        let shared = &self.shared;
        shared.stop.cancel();
        shared.tasks.close();
        let _ = tokio::time::timeout(patience, shared.tasks.wait()).await;
        shared.finish.cancel();
        shared.manager.close();
        let _ = tokio::time::timeout(patience, shared.manager.wait()).await;
        shared.tasks.len() + shared.manager.len()
    }

    /// `addnode <addr> add|onetry`: connect to a peer (kept, or once). After shutdown, does
    /// nothing and returns [`P2pStopped`].
    pub fn add_node(&self, addr: SocketAddr, keep: bool) -> Result<(), P2pStopped> {
        if self.shared.stop.is_cancelled() {
            return Err(P2pStopped);
        }
        if keep {
            self.spawn(self.clone().keep_connected(addr, true));
        } else {
            let me = self.clone();
            self.spawn(async move {
                if let Ok(stream) = TcpStream::connect(addr).await {
                    me.run_peer(stream, addr, false, true).await;
                }
            });
        }
        Ok(())
    }
}

/// A random nonce (a `version` nonce, a compact block's short ID salt).
fn random_nonce() -> u64 {
    use rand_core::RngCore;
    rand_core::OsRng.next_u64()
}

/// Writes address book changes to the store in one transaction, off the async executor.
async fn save_book(node: Arc<Node>, changes: Vec<BookChange>) {
    if changes.is_empty() {
        return;
    }
    let saved = tokio::task::spawn_blocking(move || node.save_peers(&changes)).await;
    if let Ok(Err(e)) = saved {
        tracing::warn!("cannot save the address book: {e}");
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// `shutdown` ends every task P2P started: the listener, the loops, a peer's session,
    /// whose socket closes, and last the manager, which first saves what it was told; after
    /// it, the handle answers [`P2pStopped`].
    #[test]
    fn no_task_outlives_shutdown() {
        let dir = std::env::temp_dir().join(format!("cc-p2p-stop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let node = Node::open(chaincore::Network::Regtest, &dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let listen: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let config = P2pConfig {
            listen: Some(listen),
            peers: Vec::new(),
            connect_only: false,
            discover_local: Vec::new(),
            max_connections: 125,
            max_pending_headers: MAX_PENDING_HEADERS,
        };
        let rt = tokio::runtime::Runtime::new().unwrap();
        let p2p = rt.block_on(P2pHandle::start(node.clone(), config)).unwrap();
        let mut peer = std::net::TcpStream::connect(listen).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while rt.block_on(p2p.connection_count()) == Ok(0) {
            assert!(Instant::now() < deadline, "the peer was never registered");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            p2p.shared.tasks.len() >= 4,
            "listener, relay, book, discovery, the peer"
        );
        assert_eq!(p2p.shared.manager.len(), 1, "the manager");
        // Told to the manager just before shutdown: in the store afterwards.
        let learned: SocketAddr = "10.7.7.7:18744".parse().unwrap();
        rt.block_on(p2p.send(Command::Good(learned))).unwrap();
        let running = rt.block_on(p2p.shutdown(Duration::from_secs(60)));
        assert_eq!(running, 0);
        assert!(p2p.shared.tasks.is_empty());
        assert!(p2p.shared.manager.is_empty(), "the manager ended too");
        // The session ended: its socket is closed (whatever it had sent before).
        let mut rest = Vec::new();
        assert!(peer.read_to_end(&mut rest).is_ok(), "closed, not timed out");
        assert!(node.saved_peers().unwrap().contains(&learned));
        // A stopped manager is an error, not a panic or a hang.
        assert_eq!(rt.block_on(p2p.connection_count()), Err(P2pStopped));
        assert_eq!(rt.block_on(p2p.ping_all()), Err(P2pStopped));
        assert_eq!(p2p.add_node(listen, false), Err(P2pStopped));
        assert!(p2p.shared.tasks.is_empty());
        node.stop_writer();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
