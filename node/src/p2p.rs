//! Peer-to-peer networking: Bitcoin's framing and message set over TCP.
//!
//! A task per peer reads framed messages and answers them; a writer task per peer drains a
//! bounded queue. Sync is headers-first: after the handshake each side asks for headers from its
//! block locator, then fetches the blocks it lacks, at most [`MAX_IN_FLIGHT`] at a time per
//! peer. New tips and mempool transactions are announced by `inv`, never to a peer known to
//! have them. A peer that breaks the protocol or sends an invalid block is disconnected and,
//! unless it is on loopback or named by the operator, its IP is banned for 24 hours.
//!
//! Here: the manager and the peer sessions. By topic: [`addrbook`] (known addresses),
//! [`bans`] (banned IPs), [`download`] (one peer's block download state), [`outbox`] (one
//! peer's send queue), and the codec in `chaincore::p2p` ([`message`]).

pub mod addrbook;
pub mod bans;
pub mod download;
pub use chaincore::p2p as message;
pub mod outbox;

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chaincore::pow::Work;
use chaincore::validation::{self, RuleError};
use chaincore::{BlockHash, Txid};
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::FramedRead;

use crate::chain::{unix_now, ChainError};
use crate::node::{Node, Relayed};
use addrbook::AddrBook;
use bans::{Bans, BAN_TIME};
use download::{Download, MAX_QUEUED_BLOCKS};
use message::{Codec, Inv, Message, Version, INV_BLOCK, INV_TX, MAX_HEADERS, PROTOCOL_VERSION};
use outbox::Outbox;

/// Blocks requested from one peer at a time.
pub const MAX_IN_FLIGHT: usize = 16;
/// Time allowed for the version handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// Ping interval.
const PING_INTERVAL: Duration = Duration::from_secs(30);
/// A peer silent for this long is disconnected.
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(180);
/// Non-connecting `headers` messages in a row (none connecting between) before a peer is
/// treated as misbehaving.
const MAX_UNCONNECTING_HEADERS: u32 = 8;
/// Headers of a lighter fork kept per peer while it may still outgrow our chain.
pub const MAX_PENDING_HEADERS: usize = 10 * MAX_HEADERS;
/// Outbound connections kept from discovered addresses (without `--connect`).
const OUTBOUND_TARGET: usize = 8;
/// How often a node tells each peer its own reachable address again (Core: about daily).
const ADVERTISE_INTERVAL: Duration = Duration::from_secs(24 * 3600);
/// Own addresses remembered, as peers we dialled reported them.
const MAX_LOCAL_ADDRS: usize = 16;
/// Blocks from the future remembered per peer, not fetched again before their time.
const MAX_FUTURE_BLOCKS: usize = 16;
/// Peers a fresh address is relayed to.
const ADDR_RELAY_PEERS: usize = 2;
/// An `addr` message with at most this many entries is gossip worth relaying (Core: 10).
const ADDR_RELAY_MAX: usize = 10;
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
    /// Address book changes not yet written to the store (saved in batches).
    book_changes: Mutex<Vec<(SocketAddr, bool)>>,
    /// Blocks requested from some peer, by whom and when: peers fetching the same chain
    /// split the work instead of downloading every block from everyone.
    requested: Mutex<HashMap<BlockHash, (u64, Instant)>>,
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
            requested: Mutex::new(HashMap::new()),
            book_changes: Mutex::new(Vec::new()),
            config,
        });
        if let Some(addr) = p2p.config.listen {
            let listener = TcpListener::bind(addr)
                .await
                .map_err(|e| anyhow::anyhow!("cannot listen for peers on {addr}: {e}"))?;
            tracing::info!("P2P listening on {}", listener.local_addr()?);
            tokio::spawn(p2p.clone().accept_loop(listener));
        }
        for addr in p2p.config.peers.clone() {
            tokio::spawn(p2p.clone().keep_connected(addr, true));
        }
        tokio::spawn(p2p.clone().relay_loop());
        tokio::spawn(p2p.clone().save_book_loop());
        if !p2p.config.connect_only {
            tokio::spawn(p2p.clone().discovery_loop());
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
            tokio::spawn(async move {
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
            tokio::spawn(self.clone().run_peer(stream, addr, true, false));
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

    async fn run_peer(
        self: Arc<Self>,
        stream: TcpStream,
        addr: SocketAddr,
        inbound: bool,
        operator: bool,
    ) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let kick = Arc::new(tokio::sync::Notify::new());
        let stopped_reading = Arc::new(tokio::sync::Notify::new());
        let (send, writer_task) = Outbox::spawn(write, self.magic, stopped_reading.clone());
        self.lock_peers().insert(
            id,
            Peer {
                addr,
                inbound,
                operator,
                version: None,
                connected: Instant::now(),
                send: send.clone(),
                listen: None,
                known: HashSet::new(),
                kick: kick.clone(),
            },
        );
        let mut reader = FramedRead::new(read, Codec::new(self.magic));
        let result = tokio::select! {
            r = self.session(id, &mut reader, &send) => r,
            _ = kick.notified() => Err(PeerError::Disconnect("disconnected by the operator".into())),
            _ = stopped_reading.notified() => Err(PeerError::Disconnect(format!(
                "peer stopped reading: nothing written for {} s",
                outbox::WRITE_TIMEOUT.as_secs()
            ))),
        };
        let handshaken = self
            .lock_peers()
            .get(&id)
            .is_some_and(|p| p.version.is_some());
        if !inbound && !operator && !handshaken {
            // A discovered address that does not complete a handshake is not worth retrying.
            self.forget(&addr);
        }
        self.lock_peers().remove(&id);
        self.node.forget_orphans_from(id);
        self.requested
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (peer, _)| *peer != id);
        writer_task.abort();
        match result {
            Err(PeerError::Disconnect(why)) => tracing::info!(%addr, "peer disconnected: {why}"),
            Err(e @ (PeerError::Protocol(_) | PeerError::Misbehaved(_))) => {
                if matches!(&e, PeerError::Protocol(message::ProtocolError::Io(_))) {
                    tracing::debug!(%addr, "peer connection closed: {e}");
                } else if addr.ip().is_loopback() || operator {
                    tracing::warn!(%addr, "disconnecting peer: {e}");
                } else {
                    tracing::warn!(%addr, "banning peer for 24 h: {e}");
                    self.bans().ban(addr.ip(), BAN_TIME);
                }
            }
            Ok(()) => {}
        }
    }

    async fn session(
        &self,
        id: u64,
        reader: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, Codec>,
        send: &Outbox,
    ) -> Result<(), PeerError> {
        // Handshake.
        let nonce: u64 = {
            use rand_core::RngCore;
            rand_core::OsRng.next_u64()
        };
        self.our_nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(nonce);
        let height = self.node.tip.borrow().height;
        let version = Version {
            version: PROTOCOL_VERSION,
            services: 0,
            timestamp: unix_now() as i64,
            nonce,
            user_agent: format!("/chaincore:{}/", env!("CARGO_PKG_VERSION")),
            start_height: height as i32,
            addr_recv: Some(self.peer_socket(id)),
            relay: true,
            genesis: Some(self.node.network.genesis_hash()),
        };
        self.queue(send, Message::Version(version))?;
        let handshake = async {
            let mut got_version = false;
            loop {
                match next(reader).await? {
                    Message::Version(v) if !got_version => {
                        if v.genesis
                            .is_some_and(|g| g != self.node.network.genesis_hash())
                        {
                            return Err(PeerError::Misbehaved(
                                "peer is on another chain (genesis differs)".into(),
                            ));
                        }
                        if self
                            .our_nonces
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .contains(&v.nonce)
                        {
                            return Err(PeerError::Disconnect("connected to ourselves".into()));
                        }
                        if let Some(p) = self.lock_peers().get_mut(&id) {
                            p.version = Some(v);
                        }
                        got_version = true;
                        self.queue(send, Message::Verack)?;
                    }
                    Message::Verack if got_version => return Ok(()),
                    Message::Unknown(c)
                        if got_version && message::HANDSHAKE_FEATURES.contains(&c.as_str()) => {}
                    other => {
                        return Err(PeerError::Misbehaved(format!(
                            "{} before the handshake",
                            other.command()
                        )))
                    }
                }
            }
        };
        let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await;
        self.our_nonces
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&nonce);
        done.map_err(|_| PeerError::Disconnect("handshake timed out".into()))??;
        reader.decoder_mut().handshake_done = true;
        tracing::info!(peer = %self.peer_addr(id), "peer connected");
        let mut sync = Download {
            peer: id,
            ..Download::default()
        };
        let (outbound, peer_ip, seen_as) = {
            let peers = self.lock_peers();
            let p = peers.get(&id);
            (
                p.filter(|p| !p.inbound).map(|p| p.addr),
                p.map(|p| p.addr.ip()),
                p.and_then(|p| p.version.as_ref()).and_then(|v| v.addr_recv),
            )
        };
        if let Some(addr) = outbound {
            // Reachable: remember it, and ask it for more addresses.
            self.learn_good(addr);
            sync.addr_rate.asked();
            self.queue(send, Message::GetAddr)?;
        }
        // Tell the peer where we can be reached, as a peer we dialled sees us (Core's
        // AdvertiseLocal). Inbound peers could claim anything, so they teach us nothing.
        let local = match (outbound, peer_ip) {
            (Some(_), Some(ip)) => self.local_address(seen_as, ip),
            _ => None,
        };
        if let Some(ours) = local {
            self.queue(send, Message::Addr(vec![ours]))?;
        }
        let mut advertised = Instant::now();
        self.queue(send, self.get_headers())?;
        let mut ping = tokio::time::interval(PING_INTERVAL);
        ping.tick().await;
        let mut last_heard = Instant::now();
        loop {
            // Over the send budget: read nothing more from this peer until it catches up.
            send.below_budget().await;
            let msg = tokio::select! {
                m = next(reader) => m?,
                _ = ping.tick() => {
                    if last_heard.elapsed() > INACTIVITY_TIMEOUT {
                        return Err(PeerError::Disconnect("inactive".into()));
                    }
                    if sync.stalled() {
                        return Err(PeerError::Disconnect("block download stalled".into()));
                    }
                    // Blocks another peer was fetching may be free again.
                    self.request_blocks(send, &mut sync)?;
                    // Blocks from the future whose time has come: ask again.
                    if sync.future_due() {
                        self.queue(send, self.get_headers())?;
                    }
                    self.queue(send, Message::Ping(unix_now()))?;
                    if let Some(ours) = local.filter(|_| advertised.elapsed() > ADVERTISE_INTERVAL) {
                        advertised = Instant::now();
                        self.queue(send, Message::Addr(vec![ours]))?;
                    }
                    continue;
                }
            };
            last_heard = Instant::now();
            self.handle(id, msg, send, &mut sync).await?;
        }
    }

    /// Answers a `getdata` from the mempool and the store: duplicates ignored, at most
    /// [`MAX_BLOCKS_PER_GETDATA`] blocks, each read and queued only once the peer's queue is
    /// within its send budget (the rest of the request waits; nothing is dropped).
    async fn serve_getdata(&self, items: Vec<Inv>, send: &Outbox) -> Result<(), PeerError> {
        let mut seen = HashSet::new();
        let mut missing = Vec::new();
        let mut blocks = 0;
        for inv in items.into_iter().filter(|i| seen.insert(*i)) {
            match inv.kind {
                INV_TX => {
                    send.below_budget().await;
                    let tx = self
                        .node
                        .snapshot()
                        .mempool
                        .get(&Txid(inv.hash))
                        .map(|e| e.tx.clone());
                    match tx {
                        Some(tx) => self.queue(send, Message::Tx(tx))?,
                        None => missing.push(inv),
                    }
                }
                INV_BLOCK if blocks < MAX_BLOCKS_PER_GETDATA => {
                    blocks += 1;
                    send.below_budget().await;
                    let node = self.node.clone();
                    let read = tokio::task::spawn_blocking(move || {
                        let snap = node.snapshot();
                        crate::store::read::block(&snap.rtx, &BlockHash(inv.hash))
                    })
                    .await
                    .map_err(|e| PeerError::Disconnect(e.to_string()))?;
                    match read {
                        Ok(Some(b)) => self.queue(send, Message::Block(b))?,
                        Ok(None) => missing.push(inv),
                        // Not the peer's business: the node stops.
                        Err(e) => {
                            self.node.store_failed(&e);
                            return Err(PeerError::Disconnect(format!("store failure: {e}")));
                        }
                    }
                }
                _ => missing.push(inv),
            }
        }
        if !missing.is_empty() {
            self.queue(send, Message::NotFound(missing))?;
        }
        Ok(())
    }

    /// The address we are connected to peer `id` at (unspecified if it is gone).
    fn peer_socket(&self, id: u64) -> SocketAddr {
        self.lock_peers().get(&id).map_or(
            SocketAddr::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0),
            |p| p.addr,
        )
    }

    fn peer_addr(&self, id: u64) -> String {
        self.lock_peers()
            .get(&id)
            .map_or_else(String::new, |p| p.addr.to_string())
    }

    fn queue(&self, send: &Outbox, msg: Message) -> Result<(), PeerError> {
        send.push(msg)
            .map_err(|e| PeerError::Disconnect(e.to_string()))
    }

    /// `getheaders` from our block locator.
    fn get_headers(&self) -> Message {
        let snap = self.node.snapshot();
        let chain = &snap.index;
        let mut locator = Vec::new();
        let mut height = i64::from(chain.tip_height());
        let mut step = 1;
        while height > 0 && locator.len() < message::MAX_LOCATOR - 1 {
            if let Some(h) = chain.active_hash(height as u32) {
                locator.push(h);
            }
            if locator.len() >= 10 {
                step *= 2;
            }
            height -= step;
        }
        locator.push(self.node.network.genesis_hash());
        Message::GetHeaders {
            version: PROTOCOL_VERSION as u32,
            locator,
            stop: BlockHash::ZERO,
        }
    }

    fn mark_known(&self, id: u64, hash: [u8; 32]) {
        if let Some(p) = self.lock_peers().get_mut(&id) {
            remember(&mut p.known, hash);
        }
    }

    async fn handle(
        &self,
        id: u64,
        msg: Message,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        match msg {
            Message::Ping(n) => self.queue(send, Message::Pong(n))?,
            Message::Pong(_)
            | Message::SendHeaders
            | Message::Unknown(_)
            | Message::NotFound(_) => {}
            Message::Version(_) | Message::Verack => {
                return Err(PeerError::Misbehaved("repeated handshake message".into()))
            }
            Message::GetAddr => {
                let addrs = self
                    .addresses
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .sample(message::MAX_ADDR, id);
                self.queue(send, Message::Addr(addrs))?;
            }
            Message::Addr(addrs) => {
                let source = self.peer_socket(id).ip();
                let gossip = addrs.len() <= ADDR_RELAY_MAX;
                if let [own] = addrs[..] {
                    if own.ip() == source {
                        if let Some(p) = self.lock_peers().get_mut(&id) {
                            p.listen.get_or_insert(own);
                        }
                    }
                }
                let mut fresh = Vec::new();
                for a in addrs {
                    // Past the peer's allowance the rest is dropped: not stored, not relayed.
                    if !sync.addr_rate.take() {
                        break;
                    }
                    if self.learn(a, source) && gossip && !self.is_local(&a) {
                        fresh.push(a);
                    }
                }
                self.relay_addrs(id, &fresh);
            }
            Message::GetHeaders { locator, .. } => {
                let headers = {
                    let snap = self.node.snapshot();
                    let chain = &snap.index;
                    let start = locator
                        .iter()
                        .find(|h| chain.is_active(h))
                        .and_then(|h| chain.entry(h))
                        .map_or(0, |e| e.height);
                    (start + 1..=chain.tip_height())
                        .take(MAX_HEADERS)
                        .filter_map(|h| {
                            chain
                                .active_hash(h)
                                .and_then(|hash| chain.entry(&hash))
                                .map(|e| e.header)
                        })
                        .collect::<Vec<_>>()
                };
                self.queue(send, Message::Headers(headers))?;
            }
            Message::Headers(headers) => self.on_headers(id, headers, send, sync)?,
            Message::Inv(items) => {
                let mut want_headers = false;
                let mut want_txs = Vec::new();
                for inv in items {
                    self.mark_known(id, inv.hash);
                    match inv.kind {
                        INV_BLOCK
                            if self
                                .node
                                .snapshot()
                                .index
                                .entry(&BlockHash(inv.hash))
                                .is_none() =>
                        {
                            want_headers = true
                        }
                        INV_TX if !self.node.has_transaction(&Txid(inv.hash)) => want_txs.push(inv),
                        _ => {}
                    }
                }
                if want_headers {
                    self.queue(send, self.get_headers())?;
                }
                if !want_txs.is_empty() {
                    self.queue(send, Message::GetData(want_txs))?;
                }
            }
            Message::GetData(items) => self.serve_getdata(items, send).await?,
            Message::Block(block) => {
                let hash = block.block_hash();
                let header_time = block.header.time;
                self.mark_known(id, hash.to_byte_array());
                let requested = sync.in_flight.contains_key(&hash);
                if !requested && block.header.prev_blockhash != self.node.tip.borrow().hash {
                    // Unsolicited and not extending our tip: ignored, so a peer cannot make
                    // us store blocks of a chain lighter than ours.
                    return Ok(());
                }
                sync.received(&hash);
                self.requested
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&hash);
                let node = self.node.clone();
                let result = tokio::task::spawn_blocking(move || node.submit_block(block))
                    .await
                    .map_err(|e| PeerError::Disconnect(e.to_string()))?;
                match result {
                    Ok(_) | Err(ChainError::Duplicate) => {}
                    Err(ChainError::Rule(r)) if r.reason == RuleError::PrevBlockNotFound => {
                        self.queue(send, self.get_headers())?
                    }
                    // Our clock may be the slow one (Core's BLOCK_TIME_FUTURE): no penalty, and
                    // nothing recorded, so the block is fetched again when announced later.
                    Err(ChainError::Rule(r)) if r.reason == RuleError::TimeTooNew => {
                        let wait = u64::from(header_time)
                            .saturating_sub(unix_now() + validation::MAX_FUTURE_BLOCK_TIME as u64);
                        if sync.future.len() >= MAX_FUTURE_BLOCKS {
                            sync.future.clear();
                        }
                        sync.future
                            .insert(hash, Instant::now() + Duration::from_secs(wait + 1));
                        tracing::info!(%hash, wait_s = wait + 1, "block from the future dropped; asked for again once its time is valid");
                        // Not at once: the peer would send the same header straight back.
                        return Ok(());
                    }
                    Err(ChainError::Rule(r)) => {
                        return Err(PeerError::Misbehaved(format!(
                            "invalid block: {}",
                            r.detail()
                        )))
                    }
                    Err(ChainError::DuplicateInvalid) => {
                        return Err(PeerError::Misbehaved(format!(
                            "sent known-invalid block {hash}"
                        )))
                    }
                    Err(e) => return Err(PeerError::Disconnect(format!("store failure: {e}"))),
                }
                self.request_blocks(send, sync)?;
                if sync.queue.is_empty() && sync.in_flight.is_empty() {
                    // Caught up with what we queued: ask whether the peer has more.
                    self.queue(send, self.get_headers())?;
                }
            }
            Message::Tx(tx) => {
                let txid = tx.compute_txid();
                self.mark_known(id, txid.to_byte_array());
                // As Bitcoin Core: a consensus-invalid transaction is misbehaviour; policy
                // rejects, missing inputs and resends of one refused before are not.
                let relayed = self.node.accept_relayed(tx, id).await;
                match relayed {
                    Relayed::Orphan(parents) => {
                        // Ask the peer that sent the child for its parents.
                        let want: Vec<Inv> = parents
                            .into_iter()
                            .map(|p| Inv {
                                kind: INV_TX,
                                hash: p.to_byte_array(),
                            })
                            .collect();
                        self.queue(send, Message::GetData(want))?;
                    }
                    Relayed::Accepted(orphans) if !orphans.is_empty() => {
                        tracing::debug!(%txid, orphans = orphans.len(), "orphans admitted")
                    }
                    Relayed::Accepted(_) => {}
                    Relayed::Rejected(e) if e.is_consensus() => {
                        return Err(PeerError::Misbehaved(format!(
                            "relayed invalid transaction {txid}: {e}"
                        )))
                    }
                    Relayed::Rejected(e) => tracing::debug!(%txid, "transaction refused: {e}"),
                    Relayed::RecentlyRejected => {
                        tracing::debug!(%txid, "transaction refused before, dropped")
                    }
                }
            }
        }
        Ok(())
    }

    fn on_headers(
        &self,
        id: u64,
        headers: Vec<chaincore::block::Header>,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        let Some(first) = headers.first() else {
            return Ok(()); // nothing newer: in sync with this peer
        };
        // Headers must link to each other and carry valid proof of work.
        for pair in headers.windows(2) {
            if pair[1].prev_blockhash != pair[0].compute_block_hash() {
                return Err(PeerError::Misbehaved(
                    "headers do not connect to each other".into(),
                ));
            }
        }
        for h in &headers {
            validation::check_proof_of_work(h, self.node.network).map_err(|e| {
                PeerError::Misbehaved(format!("header {}: {e}", h.compute_block_hash()))
            })?;
        }
        // Where these headers attach: a block we have, a block already queued (its chain had
        // more work than our tip), or the end of a lighter fork this peer is still sending.
        let (parent, tip_work) = {
            let snap = self.node.snapshot();
            let parent = snap
                .index
                .entry(&first.prev_blockhash)
                .map(|e| (e.chainwork, e.height));
            (parent, snap.index.tip().chainwork)
        };
        let base = if let Some(p) = parent {
            Some(p)
        } else if sync.queued(&first.prev_blockhash) {
            None // continues a chain already judged heavier than ours
        } else if sync.pending_tip == Some(first.prev_blockhash) {
            Some((sync.pending_work, sync.pending_height))
        } else {
            sync.unconnecting += 1;
            if sync.unconnecting > MAX_UNCONNECTING_HEADERS {
                return Err(PeerError::Misbehaved(
                    "keeps sending headers that do not connect".into(),
                ));
            }
            return self.queue(send, self.get_headers());
        };
        // These connect: only a run of non-connecting messages counts against the peer (Core).
        sync.unconnecting = 0;
        let batch_work = headers
            .iter()
            .filter_map(|h| h.target())
            .fold(Work::ZERO, |w, t| w + t.work());
        if let Some((work, height)) = base {
            let end_work = work + batch_work;
            let end_height = u64::from(height) + headers.len() as u64;
            if end_work <= tip_work {
                // Not (yet) more work than our chain: keep the hashes, download nothing. A
                // lighter fork costs us no blocks, however many a peer mines.
                if parent.is_some() {
                    sync.pending.clear();
                    sync.pending_overflow = false;
                }
                // Hold the hashes of blocks we lack, up to the cap; past it only count the
                // fork's work, so memory stays bounded and a deep fork is still followed:
                // once it is heavier the held part is fetched, and the rest asked for again.
                let room = self
                    .config
                    .max_pending_headers
                    .saturating_sub(sync.pending.len());
                let lacking: Vec<BlockHash> = {
                    let snap = self.node.snapshot();
                    headers
                        .iter()
                        .map(|h| h.compute_block_hash())
                        .filter(|h| snap.index.entry(h).is_none())
                        .collect()
                };
                if lacking.len() > room {
                    sync.pending_overflow = true;
                }
                sync.pending.extend(lacking.into_iter().take(room));
                sync.pending_tip = headers.last().map(|h| h.compute_block_hash());
                sync.pending_work = end_work;
                sync.pending_height = u32::try_from(end_height).unwrap_or(u32::MAX);
                if headers.len() == MAX_HEADERS {
                    self.queue(send, headers_after(&headers))?;
                }
                return Ok(());
            }
            self.note_best_height(end_height);
        }
        // More work than ours: fetch the lighter prefix we held back too, then these.
        let held_back: Vec<BlockHash> = if parent.is_none() {
            std::mem::take(&mut sync.pending)
        } else {
            Vec::new()
        };
        let gap = parent.is_none() && std::mem::take(&mut sync.pending_overflow);
        sync.pending.clear();
        sync.pending_tip = None;
        for hash in held_back {
            if !sync.want(hash) {
                break;
            }
        }
        if gap {
            // Headers between the held part and these were only counted: fetch the held part,
            // then (once the queue drains) ask again from what we then have.
            self.request_blocks(send, sync)?;
            return Ok(());
        }
        let hashes: Vec<BlockHash> = headers.iter().map(|h| h.compute_block_hash()).collect();
        for hash in &hashes {
            self.mark_known(id, hash.to_byte_array());
        }
        let unknown: Vec<BlockHash> = {
            let snap = self.node.snapshot();
            hashes
                .into_iter()
                .filter(|h| snap.index.entry(h).is_none() && !sync.waiting_for_time(h))
                .collect()
        };
        for hash in unknown {
            if !sync.want(hash) {
                break;
            }
        }
        self.request_blocks(send, sync)?;
        if headers.len() == MAX_HEADERS && sync.queue.len() < MAX_QUEUED_BLOCKS {
            // More may follow: continue from the last one.
            self.queue(send, headers_after(&headers))?;
        }
        Ok(())
    }

    fn request_blocks(&self, send: &Outbox, sync: &mut Download) -> Result<(), PeerError> {
        let batch = {
            let snap = self.node.snapshot();
            let mut requested = self.requested.lock().unwrap_or_else(|p| p.into_inner());
            sync.next_batch(&mut requested, |h| snap.index.entry(h).is_some())
        };
        if !batch.is_empty() {
            self.queue(
                send,
                Message::GetData(
                    batch
                        .into_iter()
                        .map(|h| Inv {
                            kind: INV_BLOCK,
                            hash: h.to_byte_array(),
                        })
                        .collect(),
                ),
            )?;
        }
        Ok(())
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

    /// `addnode <addr> add|onetry`: connect to a peer (kept, or once).
    pub fn add_node(self: &Arc<Self>, addr: SocketAddr, keep: bool) {
        if keep {
            tokio::spawn(self.clone().keep_connected(addr, true));
        } else {
            let me = self.clone();
            tokio::spawn(async move {
                if let Ok(stream) = TcpStream::connect(addr).await {
                    me.run_peer(stream, addr, false, true).await;
                }
            });
        }
    }
}

/// `getheaders` continuing after the last of a full `headers` batch.
fn headers_after(headers: &[chaincore::block::Header]) -> Message {
    Message::GetHeaders {
        version: PROTOCOL_VERSION as u32,
        locator: headers
            .last()
            .map(|h| h.compute_block_hash())
            .into_iter()
            .collect(),
        stop: BlockHash::ZERO,
    }
}

/// Remembers `hash` as known to a peer; false if it already was.
fn remember(known: &mut HashSet<[u8; 32]>, hash: [u8; 32]) -> bool {
    if known.len() >= KNOWN_INVENTORY {
        known.clear();
    }
    known.insert(hash)
}

async fn next(
    reader: &mut FramedRead<tokio::net::tcp::OwnedReadHalf, Codec>,
) -> Result<Message, PeerError> {
    match reader.next().await {
        Some(Ok(m)) => Ok(m),
        Some(Err(e)) => Err(e.into()),
        None => Err(PeerError::Disconnect("connection closed".into())),
    }
}

/// Most blocks served for one `getdata` (a peer asks for more in later messages).
const MAX_BLOCKS_PER_GETDATA: usize = 2 * MAX_IN_FLIGHT;
