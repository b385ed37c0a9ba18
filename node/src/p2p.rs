//! Peer-to-peer networking: Bitcoin's framing and message set over TCP.
//!
//! A task per peer reads framed messages and answers them; a writer task per peer drains a
//! bounded queue. Sync is headers-first: after the handshake each side asks for headers from its
//! block locator, then fetches the blocks it lacks, at most [`MAX_IN_FLIGHT`] at a time per
//! peer. New tips and mempool transactions are announced by `inv`, never to a peer known to
//! have them. A peer that breaks the protocol or sends an invalid block is disconnected and,
//! unless it is on loopback or named by the operator, its IP is banned for 24 hours.
//!
//! Here: the manager (listening, outbound connections, discovery, relay, bans and peer
//! lists for RPC). By topic: `peer` (one connection: handshake, session, every message's
//! answer), [`addrbook`] (known addresses), [`bans`] (banned IPs), [`download`] (one peer's
//! block download state), [`outbox`] (one peer's send queue), and the codec in
//! `chaincore::p2p` ([`message`]).

pub mod addrbook;
pub mod bans;
pub mod download;
pub use chaincore::p2p as message;
pub mod outbox;
mod peer;
pub mod traffic;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaincore::BlockHash;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::chain::unix_now;
use crate::node::Node;
use addrbook::AddrBook;
use bans::Bans;
use message::{Codec, Inv, Message, Version, INV_BLOCK, INV_TX, MAX_HEADERS};
use outbox::Outbox;
use traffic::{Counted, Traffic};

/// Blocks requested from one peer at a time.
pub const MAX_IN_FLIGHT: usize = 16;
/// Headers of a lighter fork kept per peer while it may still outgrow our chain.
pub const MAX_PENDING_HEADERS: usize = 10 * MAX_HEADERS;
/// Outbound connections kept from discovered addresses (without `--connect`).
const OUTBOUND_TARGET: usize = 8;
/// Own addresses remembered, as peers we dialled reported them.
const MAX_LOCAL_ADDRS: usize = 16;
/// Peers a fresh address is relayed to.
const ADDR_RELAY_PEERS: usize = 2;
/// Inventory hashes remembered per peer (older ones are forgotten).
const KNOWN_INVENTORY: usize = 50_000;

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

/// What we know about a connected peer.
struct Peer {
    addr: SocketAddr,
    inbound: bool,
    operator: bool,
    version: Option<Version>,
    connected: Instant,
    send: Outbox,
    /// Where an inbound peer says it listens (its first `addr` naming its own IP), so we do
    /// not dial it a second time.
    listen: Option<SocketAddr>,
    known: HashSet<[u8; 32]>,
    /// Woken by `disconnectnode`/`setban` to end the session.
    kick: Arc<tokio::sync::Notify>,
}

/// The P2P network manager, shared by peer tasks and RPC.
pub struct P2p {
    node: Arc<Node>,
    config: P2pConfig,
    magic: [u8; 4],
    peers: Mutex<HashMap<u64, Peer>>,
    next_id: AtomicU64,
    /// Nonces of our own outgoing version messages, to detect connecting to ourselves.
    our_nonces: Mutex<HashSet<u64>>,
    banned: Mutex<Bans>,
    /// Addresses heard of through `addr` or connections.
    addresses: Mutex<AddrBook>,
    /// Our own reachable addresses, as peers told us in `version` (`addr_recv`).
    local_addrs: Mutex<HashSet<SocketAddr>>,
    /// Highest block height of valid headers any peer has sent us.
    best_seen_height: AtomicU64,
    /// Bytes to and from peers.
    traffic: Arc<Traffic>,
    /// Address book changes not yet written to the store (saved in batches).
    book_changes: Mutex<Vec<(SocketAddr, bool)>>,
    /// Blocks requested from some peer, by whom and when: peers fetching the same chain
    /// split the work instead of downloading every block from everyone.
    requested: Mutex<HashMap<BlockHash, (u64, Instant)>>,
    /// Every task P2P spawned (loops, peer sessions, connection attempts).
    tasks: TaskTracker,
    /// Fires at shutdown: every task in `tasks` ends.
    stop: CancellationToken,
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
}

impl P2p {
    /// Starts listening and connecting as `config` says.
    pub async fn start(node: Arc<Node>, config: P2pConfig) -> anyhow::Result<Arc<P2p>> {
        // Saved and configured addresses vouch for themselves (their own network group).
        let mut book = AddrBook::new();
        let saved = node.saved_peers()?;
        for a in saved.iter().chain(&config.discover_local) {
            book.add(*a, a.ip());
        }
        for a in &config.peers {
            book.good(*a);
        }
        let p2p = Arc::new(P2p {
            magic: node.network.params().magic,
            node,
            peers: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            our_nonces: Mutex::new(HashSet::new()),
            banned: Mutex::new(Bans::default()),
            addresses: Mutex::new(book),
            local_addrs: Mutex::new(HashSet::new()),
            best_seen_height: AtomicU64::new(0),
            traffic: Arc::default(),
            requested: Mutex::new(HashMap::new()),
            book_changes: Mutex::new(Vec::new()),
            config,
            tasks: TaskTracker::new(),
            stop: CancellationToken::new(),
        });
        if let Some(addr) = p2p.config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| match e.kind() {
                    std::io::ErrorKind::AddrInUse => anyhow::anyhow!(
                        "cannot listen for peers on {addr}: the port is in use (another chaincore-node?); choose another with --port"
                    ),
                    _ => anyhow::anyhow!("cannot listen for peers on {addr}: {e}"),
                })?;
            tracing::info!("P2P listening on {}", listener.local_addr()?);
            p2p.spawn(p2p.clone().accept_loop(listener));
        }
        for addr in p2p.config.peers.clone() {
            p2p.spawn(p2p.clone().keep_connected(addr, true));
        }
        p2p.spawn(p2p.clone().relay_loop());
        p2p.spawn(p2p.clone().save_book_loop());
        if !p2p.config.connect_only {
            p2p.spawn(p2p.clone().discovery_loop());
        }
        Ok(p2p)
    }

    /// Keeps up to [`OUTBOUND_TARGET`] outbound connections using addresses from the book.
    async fn discovery_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let (outbound, connected): (usize, HashSet<SocketAddr>) = {
                let peers = self.lock_peers();
                (
                    peers.values().filter(|p| !p.inbound).count(),
                    peers
                        .values()
                        .flat_map(|p| std::iter::once(p.addr).chain(p.listen))
                        .collect(),
                )
            };
            if outbound >= OUTBOUND_TARGET || self.lock_peers().len() >= self.config.max_connections
            {
                continue;
            }
            let seed = self.next_id.load(Ordering::Relaxed);
            let sample = self
                .addresses
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .sample(64, seed);
            let candidate = sample.into_iter().find(|a| {
                !connected.contains(a)
                    && Some(*a) != self.config.listen
                    && !self.is_local(a)
                    && !self.is_banned(a.ip())
            });
            let Some(addr) = candidate else {
                continue;
            };
            let me = self.clone();
            self.spawn(async move {
                match tokio::time::timeout(Duration::from_secs(10), TcpStream::connect(addr)).await
                {
                    Ok(Ok(stream)) => me.run_peer(stream, addr, false, false).await,
                    _ => me.forget(&addr),
                }
            });
        }
    }

    /// Writes address book changes to the store every few seconds, in one transaction.
    async fn save_book_loop(self: Arc<Self>) {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            let changes =
                std::mem::take(&mut *self.book_changes.lock().unwrap_or_else(|p| p.into_inner()));
            if changes.is_empty() {
                continue;
            }
            let node = self.node.clone();
            let saved = tokio::task::spawn_blocking(move || node.save_peers(&changes)).await;
            if let Ok(Err(e)) = saved {
                tracing::warn!("cannot save the address book: {e}");
            }
        }
    }

    /// Writes pending address book changes now (at shutdown).
    pub fn save_book(&self) {
        let changes =
            std::mem::take(&mut *self.book_changes.lock().unwrap_or_else(|p| p.into_inner()));
        if !changes.is_empty() {
            if let Err(e) = self.node.save_peers(&changes) {
                tracing::warn!("cannot save the address book: {e}");
            }
        }
    }

    /// Records an address a peer at `source` told us about (saved to the store with the next
    /// batch); true if it is new to the book.
    fn learn(&self, addr: SocketAddr, source: IpAddr) -> bool {
        let new = self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .add(addr, source);
        if new {
            self.book_changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((addr, true));
        }
        new
    }

    /// Records an address we completed a handshake with (the tried table).
    fn learn_good(&self, addr: SocketAddr) {
        let known = {
            let mut book = self.addresses.lock().unwrap_or_else(|p| p.into_inner());
            let known = book.contains(&addr);
            book.good(addr);
            known
        };
        if !known {
            self.book_changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((addr, true));
        }
    }

    /// True if `addr` is one of ours, as peers reported.
    fn is_local(&self, addr: &SocketAddr) -> bool {
        self.local_addrs
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(addr)
    }

    /// Our reachable address as the peer `version` says it sees us, with our listening port:
    /// recorded, and returned if worth advertising to that peer (we listen, and the address is
    /// one the peer would keep from us).
    fn local_address(&self, seen: Option<SocketAddr>, peer: IpAddr) -> Option<SocketAddr> {
        let port = self.config.listen?.port();
        let ours = SocketAddr::new(seen?.ip(), port);
        if !addrbook::acceptable(&ours, peer) {
            return None;
        }
        let mut locals = self.local_addrs.lock().unwrap_or_else(|p| p.into_inner());
        if locals.len() < MAX_LOCAL_ADDRS || locals.contains(&ours) {
            locals.insert(ours);
        }
        Some(ours)
    }

    /// Sends fresh addresses to up to [`ADDR_RELAY_PEERS`] handshaken peers other than `from`.
    fn relay_addrs(&self, from: u64, addrs: &[SocketAddr]) {
        if addrs.is_empty() {
            return;
        }
        let peers = self.lock_peers();
        let mut others: Vec<(&u64, &Peer)> = peers
            .iter()
            .filter(|(id, p)| **id != from && p.version.is_some())
            .collect();
        // A different pair each time, so gossip spreads through the whole network.
        let n = others.len();
        let start = std::hash::BuildHasher::hash_one(
            &std::collections::hash_map::RandomState::new(),
            addrs,
        ) as usize
            % n.max(1);
        others.rotate_left(start);
        for (_, p) in others.into_iter().take(ADDR_RELAY_PEERS) {
            let _ = p.send.push(Message::Addr(addrs.to_vec()));
        }
    }

    /// Drops an address that did not answer or turned out to be ourselves.
    fn forget(&self, addr: &SocketAddr) {
        if self.config.peers.contains(addr) {
            return;
        }
        if self
            .addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(addr)
        {
            self.book_changes
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((*addr, false));
        }
    }

    fn lock_peers(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Peer>> {
        self.peers.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bans(&self) -> std::sync::MutexGuard<'_, Bans> {
        self.banned.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn is_banned(&self, ip: IpAddr) -> bool {
        self.bans().is_banned(ip)
    }

    async fn accept_loop(self: Arc<Self>, listener: TcpListener) {
        loop {
            let (stream, addr) = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!("P2P accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            if self.is_banned(addr.ip()) {
                tracing::debug!(%addr, "refused: banned");
                continue;
            }
            // Inbound peers never take the slots kept for our own outbound connections.
            let inbound = self.lock_peers().values().filter(|p| p.inbound).count();
            if inbound >= self.config.max_connections.saturating_sub(OUTBOUND_TARGET) {
                tracing::debug!(%addr, "refused: inbound connection limit");
                continue;
            }
            self.spawn(self.clone().run_peer(stream, addr, true, false));
        }
    }

    /// Keeps a connection to an operator-named peer, reconnecting with backoff.
    async fn keep_connected(self: Arc<Self>, addr: SocketAddr, operator: bool) {
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
    async fn relay_loop(self: Arc<Self>) {
        let mut tips = self.node.tip.subscribe();
        let mut txs = self.node.new_tx.subscribe();
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
            let mut peers = self.lock_peers();
            for peer in peers.values_mut().filter(|p| p.version.is_some()) {
                if remember(&mut peer.known, inv.hash) {
                    let _ = peer.send.push(Message::Inv(vec![inv]));
                }
            }
        }
    }

    /// Bitcoin Core's `getpeerinfo` shape.
    pub fn peer_info(&self) -> Value {
        let peers = self.lock_peers();
        let mut out: Vec<(u64, Value)> = peers
            .iter()
            .map(|(id, p)| {
                (*id, json!({
                    "id": id,
                    "addr": p.addr.to_string(),
                    "inbound": p.inbound,
                    "addnode": p.operator,
                    "conntime": unix_now().saturating_sub(p.connected.elapsed().as_secs()),
                    "version": p.version.as_ref().map(|v| v.version),
                    "subver": p.version.as_ref().map(|v| v.user_agent.clone()),
                    "startingheight": p.version.as_ref().map(|v| v.start_height),
                    "connection_type": if p.inbound { "inbound" } else if p.operator { "manual" } else { "outbound-full-relay" },
                }))
            })
            .collect();
        out.sort_by_key(|(id, _)| *id);
        json!(out.into_iter().map(|(_, v)| v).collect::<Vec<_>>())
    }

    /// Number of connected peers.
    pub fn connection_count(&self) -> usize {
        self.lock_peers().len()
    }

    /// Records the height of a valid, heavier header chain a peer sent; logs sync progress.
    fn note_best_height(&self, best: u64) {
        if best > self.best_seen_height.fetch_max(best, Ordering::Relaxed) {
            let ours = u64::from(self.node.tip.borrow().height);
            if best > ours + 100 {
                tracing::info!(
                    "syncing: {ours} of {best} blocks ({:.1}%)",
                    100.0 * ours as f64 / best as f64
                );
            }
        }
    }

    /// Highest block height seen from any peer.
    pub fn best_seen_height(&self) -> u64 {
        self.best_seen_height.load(Ordering::Relaxed)
    }

    /// `disconnectnode`: drops the peers at `addr`; false if none is connected.
    pub fn disconnect(&self, addr: &SocketAddr) -> bool {
        let peers = self.lock_peers();
        let ids: Vec<u64> = peers
            .iter()
            .filter(|(_, p)| p.addr == *addr)
            .map(|(id, _)| *id)
            .collect();
        for id in &ids {
            if let Some(p) = peers.get(id) {
                p.kick.notify_one();
            }
        }
        !ids.is_empty()
    }

    /// Sends a ping to every peer.
    pub fn ping_all(&self) {
        for p in self.lock_peers().values() {
            let _ = p.send.push(Message::Ping(unix_now()));
        }
    }

    /// Known peer addresses, up to `count`, tried ones first.
    pub fn known_addresses(&self, count: usize) -> Vec<SocketAddr> {
        self.addresses
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .sample(count, 0)
    }

    /// `setban <ip> add|remove [seconds]`.
    pub fn set_ban(&self, ip: IpAddr, ban: Option<Duration>) {
        match ban {
            Some(d) => {
                self.bans().ban(ip, d);
                let addrs: Vec<SocketAddr> = self
                    .lock_peers()
                    .values()
                    .filter(|p| p.addr.ip() == ip)
                    .map(|p| p.addr)
                    .collect();
                for a in addrs {
                    self.disconnect(&a);
                }
            }
            None => self.bans().unban(ip),
        }
    }

    /// Current bans as (ip, seconds left).
    pub fn list_banned(&self) -> Vec<(IpAddr, u64)> {
        self.bans().list()
    }

    /// Lifts every ban.
    pub fn clear_banned(&self) {
        self.bans().clear();
    }

    /// Bytes received from and sent to peers since the node started.
    pub fn traffic(&self) -> (u64, u64) {
        (
            self.traffic.received.load(Ordering::Relaxed),
            self.traffic.sent.load(Ordering::Relaxed),
        )
    }

    /// Runs `task` until it ends or P2P shuts down, tracked so that shutdown can wait for it.
    fn spawn(&self, task: impl std::future::Future<Output = ()> + Send + 'static) {
        let stop = self.stop.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = stop.cancelled() => {}
                _ = task => {}
            }
        });
    }

    /// Stops every P2P task (listening, connecting, relaying, every peer session, whose
    /// sockets close) and waits up to `patience` for them to end; returns how many are still
    /// running (0 unless one is stuck outside an await point).
    pub async fn shutdown(&self, patience: Duration) -> usize {
        self.stop.cancel();
        self.tasks.close();
        let _ = tokio::time::timeout(patience, self.tasks.wait()).await;
        self.tasks.len()
    }

    /// `addnode <addr> add|onetry`: connect to a peer (kept, or once).
    pub fn add_node(self: &Arc<Self>, addr: SocketAddr, keep: bool) {
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
    }
}

async fn next(
    reader: &mut FramedRead<Counted<tokio::net::tcp::OwnedReadHalf>, Codec>,
) -> Result<Message, PeerError> {
    match reader.next().await {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(e.into()),
        None => Err(PeerError::Disconnect("connection closed".into())),
    }
}

/// Remembers `hash` as known to a peer; false if it already was.
fn remember(known: &mut HashSet<[u8; 32]>, hash: [u8; 32]) -> bool {
    if known.len() >= KNOWN_INVENTORY {
        known.clear();
    }
    known.insert(hash)
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    /// `shutdown` ends every task P2P started: the listener, the loops, and a peer's session,
    /// whose socket closes.
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
        let p2p = rt.block_on(P2p::start(node.clone(), config)).unwrap();
        let mut peer = std::net::TcpStream::connect(listen).unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        while p2p.connection_count() == 0 {
            assert!(Instant::now() < deadline, "the peer was never registered");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert!(
            p2p.tasks.len() >= 4,
            "listener, relay, book, discovery, the peer"
        );
        let running = rt.block_on(p2p.shutdown(Duration::from_secs(60)));
        assert_eq!(running, 0);
        assert!(p2p.tasks.is_empty());
        // The session ended: its socket is closed (whatever it had sent before).
        let mut rest = Vec::new();
        assert!(peer.read_to_end(&mut rest).is_ok(), "closed, not timed out");
        node.stop_writer();
        let _ = std::fs::remove_dir_all(&dir);
    }
}
