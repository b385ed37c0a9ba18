//! The manager: one task that owns the network's shared state — the peer table, bans, the
//! address book and its unsaved changes, the blocks requested from each peer, our own
//! `version` nonces and our reachable addresses — and changes it only as [`Command`]s say.
//!
//! Peer sessions, the connection loops and RPC reach it through a [`super::P2pHandle`], which
//! sends commands on a bounded channel; a query carries a oneshot sender for its answer.
//! Commands are served one at a time, in the order they were sent, so a session that records
//! something and then asks sees its own change, and nobody waits on a lock. Serving a command
//! never waits ([`Manager::handle`] is not async): what the manager sends a peer (an `inv`,
//! a relayed `addr`, a `ping`) is queued on its [`Outbox`] without waiting, and dropped if
//! that queue is full, so a slow peer cannot hold the manager up.
//!
//! Compact blocks (BIP152): the manager records which peers speak them and which asked for
//! high-bandwidth relay (`sendcmpct` with announce set), pushes `cmpctblock` to those, and
//! picks up to [`MAX_HIGH_BANDWIDTH`] peers to ask for high-bandwidth relay ourselves: the
//! ones that most recently gave us a new block first, as Bitcoin Core does.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaincore::rpc::network::{ConnectionType, PeerInfo};
use chaincore::BlockHash;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use super::addrbook::{self, AddrBook};
use super::bans::Bans;
use super::download::Requested;
use super::message::compact::{CompactBlock, SendCmpct, COMPACT_VERSION};
use super::message::{Inv, Message, Version, INV_BLOCK};
use super::outbox::Outbox;
use super::{P2pConfig, OUTBOUND_TARGET};
use crate::chain::unix_now;

/// Own addresses remembered, as peers we dialled reported them.
const MAX_LOCAL_ADDRS: usize = 16;
/// Peers a fresh address is relayed to.
const ADDR_RELAY_PEERS: usize = 2;
/// Inventory hashes remembered per peer (older ones are forgotten).
const KNOWN_INVENTORY: usize = 50_000;
/// Addresses looked at when picking one to dial.
const DIAL_SAMPLE: usize = 64;
/// Peers we ask to push new blocks to us as compact blocks (BIP152 high bandwidth), at most.
pub const MAX_HIGH_BANDWIDTH: usize = 3;

/// An address book change not yet written to the store: the address, and whether it is
/// saved (`true`) or deleted.
pub type BookChange = (SocketAddr, bool);

/// What the manager is asked to do. A variant with a `reply` is a query, answered once the
/// command is served; the others only record or send.
pub enum Command {
    /// A connection opened: record the peer (no handshake yet); replies with its id.
    Register {
        /// Where it is.
        addr: SocketAddr,
        /// It dialled us.
        inbound: bool,
        /// The operator named it (`--connect`, `--addnode`, `addnode`).
        operator: bool,
        /// Its send queue.
        send: Outbox,
        /// Notified to end its session.
        kick: Arc<Notify>,
        /// The new peer id.
        reply: oneshot::Sender<u64>,
    },
    /// The session ended: forget the peer and what it was asked for. A discovered address we
    /// dialled that never completed a handshake leaves the address book.
    Unregister(u64),
    /// Peer `id` sent its `version`: recorded, unless its nonce is one of ours; replies
    /// `false` in that case (we dialled ourselves).
    Version {
        /// The peer.
        id: u64,
        /// Its `version`.
        version: Box<Version>,
        /// `true` if recorded.
        reply: oneshot::Sender<bool>,
    },
    /// A nonce we sent in a `version`, to recognise it if it comes back.
    OurNonce(u64),
    /// That handshake is over: the nonce is no longer ours.
    NonceDone(u64),
    /// Whether to serve a connection from `addr`: its IP not banned, and inbound slots left.
    AdmitInbound {
        /// The peer's address.
        addr: SocketAddr,
        /// `true` to serve it.
        reply: oneshot::Sender<bool>,
    },
    /// An address worth dialling for discovery, if we have fewer than [`OUTBOUND_TARGET`]
    /// outbound peers and room for more: not connected, not ours, not banned.
    DialCandidate(oneshot::Sender<Option<SocketAddr>>),
    /// Up to `count` known addresses, tried ones first, from a point that moves with `seed`.
    Sample {
        /// How many at most.
        count: usize,
        /// Where in the book to start.
        seed: u64,
        /// The addresses.
        reply: oneshot::Sender<Vec<SocketAddr>>,
    },
    /// Peer `from` at `source` sent `addrs` (already within its allowance): new ones go to the
    /// book, and if the message was `gossip` the ones new to us (and not ours) are relayed to
    /// two other peers. `listen` is where the peer says it listens itself.
    Addrs {
        /// The peer.
        from: u64,
        /// Its IP.
        source: IpAddr,
        /// The addresses it sent.
        addrs: Vec<SocketAddr>,
        /// A small `addr` (at most 10 entries), worth relaying.
        gossip: bool,
        /// Its own address, if the message was only that.
        listen: Option<SocketAddr>,
    },
    /// We completed a handshake with a peer we dialled there: the tried table.
    Good(SocketAddr),
    /// An address that did not answer or turned out to be ourselves (unless the operator
    /// named it).
    Forget(SocketAddr),
    /// One of our reachable addresses, as a peer we dialled sees us (at most 16 kept).
    LocalAddr(SocketAddr),
    /// Peer `id` is known to have these blocks or transactions: never announced to it.
    Known {
        /// The peer.
        id: u64,
        /// Block hashes and txids.
        hashes: Vec<[u8; 32]>,
    },
    /// Tell every handshaken peer that lacks it about `inv`; for a block with its `compact`
    /// form, peers in high-bandwidth mode get that `cmpctblock` instead of the `inv`.
    Announce {
        /// The block or transaction.
        inv: Inv,
        /// The block as a compact block, if one was built (see [`Command::WantsCompact`]).
        compact: Option<Arc<CompactBlock>>,
    },
    /// Push `compact` to every handshaken peer in high-bandwidth mode that lacks it: a block
    /// whose header and proof of work checked out, before its full validation (BIP152).
    RelayCompact(Arc<CompactBlock>),
    /// Whether some handshaken peer in high-bandwidth mode lacks block `hash` (so building
    /// its compact form is worth it).
    WantsCompact {
        /// The block.
        hash: BlockHash,
        /// The answer.
        reply: oneshot::Sender<bool>,
    },
    /// Peer `id` sent `sendcmpct`: a version-1 one records whether it wants high-bandwidth
    /// relay; other versions are ignored (as Core ignores them).
    SendCmpct {
        /// The peer.
        id: u64,
        /// Its message.
        msg: SendCmpct,
    },
    /// Peer `id` gave us a new best block first: it becomes one of the
    /// [`MAX_HIGH_BANDWIDTH`] peers we ask for high-bandwidth relay (`sendcmpct` 1), the one
    /// picked longest ago dropping back to low bandwidth (`sendcmpct` 0). Ignored for a peer
    /// that does not speak compact blocks.
    DeliveredBlock(u64),
    /// Of `candidates`, in order, up to `room` blocks no other peer is fetching: recorded as
    /// requested from `peer`, and returned.
    Claim {
        /// The peer that would request them.
        peer: u64,
        /// Blocks it has queued.
        candidates: Vec<BlockHash>,
        /// How many it may request now.
        room: usize,
        /// The ones to request.
        reply: oneshot::Sender<Vec<BlockHash>>,
    },
    /// A requested block arrived: no longer in flight from anyone.
    Arrived(BlockHash),
    /// Ban `ip` for `time`; with `disconnect`, also end the sessions of its peers.
    Ban {
        /// The IP.
        ip: IpAddr,
        /// For how long.
        time: Duration,
        /// End its sessions too (`setban`).
        disconnect: bool,
    },
    /// Lift the ban on `ip`.
    Unban(IpAddr),
    /// Lift every ban.
    ClearBans,
    /// Current bans as (ip, seconds left).
    ListBans(oneshot::Sender<Vec<(IpAddr, u64)>>),
    /// End the sessions of the peers at `addr`; replies `false` if none is connected.
    Disconnect {
        /// The peer's address.
        addr: SocketAddr,
        /// Whether one was.
        reply: oneshot::Sender<bool>,
    },
    /// Send a `ping` to every peer.
    PingAll,
    /// Peer `id` answered one of our pings after `millis` milliseconds.
    PingTime {
        /// The peer.
        id: u64,
        /// The round trip.
        millis: u64,
    },
    /// Peers in Bitcoin Core's `getpeerinfo` shape, by id.
    PeerInfo(oneshot::Sender<Vec<PeerInfo>>),
    /// Number of connected peers (handshaken or not).
    ConnectionCount(oneshot::Sender<usize>),
    /// The address book changes not yet saved (they are handed over, not kept).
    TakeBookChanges(oneshot::Sender<Vec<BookChange>>),
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
    kick: Arc<Notify>,
    /// It sent a version-1 `sendcmpct`: it understands compact blocks.
    compact: bool,
    /// It asked for new blocks as `cmpctblock` before validation (Core's
    /// `m_bip152_highbandwidth_from`).
    high_bandwidth_from: bool,
    /// Round trip of its last `pong` to our ping, in milliseconds.
    ping_millis: Option<u64>,
}

/// The manager's state; [`Manager::run`] serves commands on it.
pub struct Manager {
    config: P2pConfig,
    peers: HashMap<u64, Peer>,
    next_id: u64,
    /// Nonces of our own outgoing version messages, to detect connecting to ourselves.
    our_nonces: HashSet<u64>,
    bans: Bans,
    /// Addresses heard of through `addr` or connections.
    book: AddrBook,
    /// Address book changes not yet written to the store (saved in batches).
    book_changes: Vec<BookChange>,
    /// Our own reachable addresses, as peers told us in `version` (`addr_recv`).
    local_addrs: HashSet<SocketAddr>,
    /// Blocks requested from some peer, by whom and when.
    requested: Requested,
    /// Peers we asked for high-bandwidth compact block relay, the longest-ago first.
    high_bandwidth_to: VecDeque<u64>,
}

impl Manager {
    /// A manager with no peers, whose address book starts as `book`.
    pub fn new(config: P2pConfig, book: AddrBook) -> Manager {
        Manager {
            config,
            peers: HashMap::new(),
            next_id: 1,
            our_nonces: HashSet::new(),
            bans: Bans::default(),
            book,
            book_changes: Vec::new(),
            local_addrs: HashSet::new(),
            requested: Requested::default(),
            high_bandwidth_to: VecDeque::new(),
        }
    }

    /// Serves `commands` until `finish` fires or every sender is gone; then refuses new
    /// commands (senders get an error) and serves the ones already queued, so what the last
    /// sessions reported is kept. Returns the address book changes not yet saved.
    pub async fn run(
        mut self,
        mut commands: mpsc::Receiver<Command>,
        finish: CancellationToken,
    ) -> Vec<BookChange> {
        loop {
            tokio::select! {
                biased;
                _ = finish.cancelled() => break,
                command = commands.recv() => match command {
                    Some(c) => self.handle(c),
                    None => break,
                },
            }
        }
        commands.close();
        while let Ok(c) = commands.try_recv() {
            self.handle(c);
        }
        self.book_changes
    }

    /// Serves one command.
    pub fn handle(&mut self, command: Command) {
        match command {
            Command::Register {
                addr,
                inbound,
                operator,
                send,
                kick,
                reply,
            } => {
                let id = self.next_id;
                self.next_id += 1;
                self.peers.insert(
                    id,
                    Peer {
                        addr,
                        inbound,
                        operator,
                        version: None,
                        connected: Instant::now(),
                        send,
                        listen: None,
                        known: HashSet::new(),
                        kick,
                        compact: false,
                        high_bandwidth_from: false,
                        ping_millis: None,
                    },
                );
                let _ = reply.send(id);
            }
            Command::Unregister(id) => self.unregister(id),
            Command::Version { id, version, reply } => {
                let ours = self.our_nonces.contains(&version.nonce);
                if !ours {
                    if let Some(p) = self.peers.get_mut(&id) {
                        p.version = Some(*version);
                    }
                }
                let _ = reply.send(!ours);
            }
            Command::OurNonce(n) => {
                self.our_nonces.insert(n);
            }
            Command::NonceDone(n) => {
                self.our_nonces.remove(&n);
            }
            Command::AdmitInbound { addr, reply } => {
                let _ = reply.send(self.admit_inbound(addr));
            }
            Command::DialCandidate(reply) => {
                let _ = reply.send(self.dial_candidate());
            }
            Command::Sample { count, seed, reply } => {
                let _ = reply.send(self.book.sample(count, seed));
            }
            Command::Addrs {
                from,
                source,
                addrs,
                gossip,
                listen,
            } => self.addrs(from, source, addrs, gossip, listen),
            Command::Good(addr) => self.learn_good(addr),
            Command::Forget(addr) => self.forget(&addr),
            Command::LocalAddr(ours) => {
                if self.local_addrs.len() < MAX_LOCAL_ADDRS || self.local_addrs.contains(&ours) {
                    self.local_addrs.insert(ours);
                }
            }
            Command::Known { id, hashes } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    for h in hashes {
                        remember(&mut p.known, h);
                    }
                }
            }
            Command::Announce { inv, compact } => {
                for peer in self.peers.values_mut().filter(|p| p.version.is_some()) {
                    if remember(&mut peer.known, inv.hash) {
                        let msg = match &compact {
                            Some(c) if inv.kind == INV_BLOCK && peer.high_bandwidth_from => {
                                Message::CmpctBlock(Box::new(CompactBlock::clone(c)))
                            }
                            _ => Message::Inv(vec![inv]),
                        };
                        let _ = peer.send.push(msg);
                    }
                }
            }
            Command::RelayCompact(compact) => {
                let hash = compact.block_hash().to_byte_array();
                for peer in self.peers.values_mut().filter(|p| p.version.is_some()) {
                    if peer.high_bandwidth_from && remember(&mut peer.known, hash) {
                        let _ = peer
                            .send
                            .push(Message::CmpctBlock(Box::new(CompactBlock::clone(&compact))));
                    }
                }
            }
            Command::WantsCompact { hash, reply } => {
                let wanted = self.peers.values().any(|p| {
                    p.version.is_some()
                        && p.high_bandwidth_from
                        && !p.known.contains(&hash.to_byte_array())
                });
                let _ = reply.send(wanted);
            }
            Command::SendCmpct { id, msg } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    if msg.version == COMPACT_VERSION {
                        p.compact = true;
                        p.high_bandwidth_from = msg.high_bandwidth;
                    }
                }
            }
            Command::DeliveredBlock(id) => self.select_high_bandwidth(id),
            Command::Claim {
                peer,
                candidates,
                room,
                reply,
            } => {
                let _ = reply.send(self.requested.claim(peer, &candidates, room));
            }
            Command::Arrived(hash) => self.requested.arrived(&hash),
            Command::Ban {
                ip,
                time,
                disconnect,
            } => {
                self.bans.ban(ip, time);
                tracing::info!(%ip, seconds = time.as_secs(), "banned");
                if disconnect {
                    for p in self.peers.values().filter(|p| p.addr.ip() == ip) {
                        p.kick.notify_one();
                    }
                }
            }
            Command::Unban(ip) => {
                self.bans.unban(ip);
                tracing::info!(%ip, "unbanned");
            }
            Command::ClearBans => {
                self.bans.clear();
                tracing::info!("every ban lifted");
            }
            Command::ListBans(reply) => {
                let _ = reply.send(self.bans.list());
            }
            Command::Disconnect { addr, reply } => {
                let mut any = false;
                for p in self.peers.values().filter(|p| p.addr == addr) {
                    p.kick.notify_one();
                    any = true;
                }
                let _ = reply.send(any);
            }
            Command::PingAll => {
                for p in self.peers.values() {
                    let _ = p.send.push(Message::Ping(super::peer::ping_nonce()));
                }
            }
            Command::PingTime { id, millis } => {
                if let Some(p) = self.peers.get_mut(&id) {
                    p.ping_millis = Some(millis);
                }
            }
            Command::PeerInfo(reply) => {
                let _ = reply.send(self.peer_info());
            }
            Command::ConnectionCount(reply) => {
                let _ = reply.send(self.peers.len());
            }
            Command::TakeBookChanges(reply) => {
                let _ = reply.send(std::mem::take(&mut self.book_changes));
            }
        }
    }

    /// Makes `id` the newest of our high-bandwidth compact block peers (see
    /// [`Command::DeliveredBlock`]).
    fn select_high_bandwidth(&mut self, id: u64) {
        if !self.peers.get(&id).is_some_and(|p| p.compact) {
            return;
        }
        if let Some(at) = self.high_bandwidth_to.iter().position(|p| *p == id) {
            self.high_bandwidth_to.remove(at);
            self.high_bandwidth_to.push_back(id);
            return;
        }
        let mode = |high_bandwidth| {
            Message::SendCmpct(SendCmpct {
                high_bandwidth,
                version: COMPACT_VERSION,
            })
        };
        if self.high_bandwidth_to.len() >= MAX_HIGH_BANDWIDTH {
            if let Some(oldest) = self.high_bandwidth_to.pop_front() {
                if let Some(p) = self.peers.get(&oldest) {
                    let _ = p.send.push(mode(false));
                }
            }
        }
        if let Some(p) = self.peers.get(&id) {
            let _ = p.send.push(mode(true));
        }
        self.high_bandwidth_to.push_back(id);
    }

    fn unregister(&mut self, id: u64) {
        self.high_bandwidth_to.retain(|p| *p != id);
        if let Some(p) = self.peers.remove(&id) {
            if !p.inbound && !p.operator && p.version.is_none() {
                // A discovered address that does not complete a handshake is not worth retrying.
                self.forget(&p.addr);
            }
        }
        self.requested.release(id);
    }

    fn admit_inbound(&mut self, addr: SocketAddr) -> bool {
        if self.bans.is_banned(addr.ip()) {
            tracing::debug!(%addr, "refused: banned");
            return false;
        }
        // Inbound peers never take the slots kept for our own outbound connections.
        let inbound = self.peers.values().filter(|p| p.inbound).count();
        if inbound >= self.config.max_connections.saturating_sub(OUTBOUND_TARGET) {
            tracing::debug!(%addr, "refused: inbound connection limit");
            return false;
        }
        true
    }

    fn dial_candidate(&mut self) -> Option<SocketAddr> {
        let outbound = self.peers.values().filter(|p| !p.inbound).count();
        if outbound >= OUTBOUND_TARGET || self.peers.len() >= self.config.max_connections {
            return None;
        }
        let connected: HashSet<SocketAddr> = self
            .peers
            .values()
            .flat_map(|p| std::iter::once(p.addr).chain(p.listen))
            .collect();
        let sample = self.book.sample(DIAL_SAMPLE, self.next_id);
        sample.into_iter().find(|a| {
            !connected.contains(a)
                && Some(*a) != self.config.listen
                && !self.local_addrs.contains(a)
                && !self.bans.is_banned(a.ip())
        })
    }

    fn addrs(
        &mut self,
        from: u64,
        source: IpAddr,
        addrs: Vec<SocketAddr>,
        gossip: bool,
        listen: Option<SocketAddr>,
    ) {
        if let (Some(own), Some(p)) = (listen, self.peers.get_mut(&from)) {
            p.listen.get_or_insert(own);
        }
        let mut fresh = Vec::new();
        for a in addrs {
            if self.learn(a, source) && gossip && !self.local_addrs.contains(&a) {
                fresh.push(a);
            }
        }
        self.relay_addrs(from, &fresh);
    }

    /// Records an address a peer at `source` told us about (saved to the store with the next
    /// batch); true if it is new to the book.
    fn learn(&mut self, addr: SocketAddr, source: IpAddr) -> bool {
        let new = self.book.add(addr, source);
        if new {
            self.book_changes.push((addr, true));
        }
        new
    }

    /// Records an address we completed a handshake with (the tried table).
    fn learn_good(&mut self, addr: SocketAddr) {
        let known = self.book.contains(&addr);
        self.book.good(addr);
        if !known {
            self.book_changes.push((addr, true));
        }
    }

    /// Drops an address that did not answer or turned out to be ourselves.
    fn forget(&mut self, addr: &SocketAddr) {
        if self.config.peers.contains(addr) {
            return;
        }
        if self.book.remove(addr) {
            self.book_changes.push((*addr, false));
        }
    }

    /// Sends fresh addresses to up to [`ADDR_RELAY_PEERS`] handshaken peers other than `from`.
    fn relay_addrs(&self, from: u64, addrs: &[SocketAddr]) {
        if addrs.is_empty() {
            return;
        }
        let mut others: Vec<(&u64, &Peer)> = self
            .peers
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

    /// Bitcoin Core's `getpeerinfo` shape, by connection id.
    fn peer_info(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(id, p)| PeerInfo {
                id: *id,
                addr: p.addr.to_string(),
                inbound: p.inbound,
                addnode: p.operator,
                conntime: unix_now().saturating_sub(p.connected.elapsed().as_secs()),
                version: p.version.as_ref().map(|v| v.version),
                subver: p.version.as_ref().map(|v| v.user_agent.clone()),
                startingheight: p.version.as_ref().map(|v| v.start_height),
                pingtime: p.ping_millis.map(|ms| ms as f64 / 1000.0),
                bip152_hb_to: self.high_bandwidth_to.contains(id),
                bip152_hb_from: p.high_bandwidth_from,
                connection_type: if p.inbound {
                    ConnectionType::Inbound
                } else if p.operator {
                    ConnectionType::Manual
                } else {
                    ConnectionType::OutboundFullRelay
                },
            })
            .collect();
        out.sort_by_key(|p| p.id);
        out
    }
}

/// Our reachable address as a peer at `peer` says it sees us (`seen`, its `addr_recv`), with
/// our listening port; `None` unless we listen and the peer would keep the address from us.
pub fn local_address(
    listen: Option<SocketAddr>,
    seen: Option<SocketAddr>,
    peer: IpAddr,
) -> Option<SocketAddr> {
    let ours = SocketAddr::new(seen?.ip(), listen?.port());
    addrbook::acceptable(&ours, peer).then_some(ours)
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
    use bytes::Bytes;
    use tokio_util::codec::Decoder;

    use super::super::message::{Codec, INV_BLOCK};
    use super::super::MAX_PENDING_HEADERS;
    use super::*;

    fn config() -> P2pConfig {
        P2pConfig {
            listen: Some("127.0.0.1:18744".parse().unwrap()),
            peers: vec!["127.0.0.1:9".parse().unwrap()],
            connect_only: false,
            discover_local: Vec::new(),
            max_connections: 11,
            max_pending_headers: MAX_PENDING_HEADERS,
        }
    }

    fn version(nonce: u64) -> Box<Version> {
        Box::new(Version {
            version: 70016,
            services: 0,
            timestamp: 0,
            nonce,
            user_agent: "/test/".into(),
            start_height: 0,
            addr_recv: None,
            relay: true,
            genesis: None,
        })
    }

    /// Serves a query and returns its answer.
    fn ask<T>(m: &mut Manager, query: impl FnOnce(oneshot::Sender<T>) -> Command) -> T {
        let (tx, mut rx) = oneshot::channel();
        m.handle(query(tx));
        rx.try_recv().expect("answered at once")
    }

    /// A registered peer, the frames queued for it, and its kick.
    struct TestPeer {
        id: u64,
        frames: mpsc::Receiver<Bytes>,
        kick: Arc<Notify>,
    }

    impl TestPeer {
        /// The messages queued for this peer so far.
        fn sent(&mut self) -> Vec<Message> {
            let mut out = Vec::new();
            while let Ok(frame) = self.frames.try_recv() {
                let mut buf = bytes::BytesMut::from(&frame[..]);
                let mut codec = Codec::new(chaincore::Network::Regtest.params().magic);
                codec.handshake_done = true;
                out.push(codec.decode(&mut buf).unwrap().unwrap());
            }
            out
        }

        /// True if the peer's session was told to end.
        fn kicked(&self) -> bool {
            let notified = self.kick.notified();
            tokio::pin!(notified);
            // A stored permit completes the future at its first poll.
            notified.as_mut().enable()
        }
    }

    /// `n` addresses from `source` added to `book`, each to a slot of its own (two may hash
    /// to the same slot; the second is then not added).
    fn slotted(book: &mut AddrBook, source: IpAddr, n: usize) -> Vec<SocketAddr> {
        let addrs: Vec<SocketAddr> = (1..=4 * n as u8)
            .map(|i| SocketAddr::new(IpAddr::from([10, i, 0, 1]), 1000))
            .filter(|a| book.add(*a, source))
            .take(n)
            .collect();
        assert_eq!(addrs.len(), n);
        addrs
    }

    fn register(m: &mut Manager, addr: &str, inbound: bool, operator: bool) -> TestPeer {
        let (send, frames) = Outbox::for_test(chaincore::Network::Regtest.params().magic);
        let kick = Arc::new(Notify::new());
        let id = ask(m, |reply| Command::Register {
            addr: addr.parse().unwrap(),
            inbound,
            operator,
            send,
            kick: kick.clone(),
            reply,
        });
        TestPeer { id, frames, kick }
    }

    fn handshake(m: &mut Manager, peer: &TestPeer) {
        let id = peer.id;
        assert!(ask(m, |reply| Command::Version {
            id,
            version: version(id),
            reply
        }));
    }

    #[test]
    fn peers_are_counted_listed_and_forgotten() {
        let mut m = Manager::new(config(), AddrBook::new());
        let a = register(&mut m, "10.0.0.1:1000", false, false);
        let b = register(&mut m, "10.0.0.2:1000", true, false);
        assert_ne!(a.id, b.id);
        assert_eq!(ask(&mut m, Command::ConnectionCount), 2);
        handshake(&mut m, &b);
        let info = ask(&mut m, Command::PeerInfo);
        assert_eq!(info[0].addr, "10.0.0.1:1000");
        assert_eq!(info[0].connection_type, ConnectionType::OutboundFullRelay);
        assert_eq!(info[0].version, None);
        assert_eq!(info[1].connection_type, ConnectionType::Inbound);
        assert_eq!(info[1].subver.as_deref(), Some("/test/"));
        assert_eq!(info[1].pingtime, None, "no pong yet");
        m.handle(Command::PingTime {
            id: b.id,
            millis: 250,
        });
        assert_eq!(ask(&mut m, Command::PeerInfo)[1].pingtime, Some(0.25));
        m.handle(Command::Unregister(a.id));
        m.handle(Command::Unregister(a.id));
        assert_eq!(ask(&mut m, Command::ConnectionCount), 1);
    }

    /// A `version` carrying one of our own nonces is ourselves; once the handshake is over the
    /// nonce is no longer recognised.
    #[test]
    fn our_own_nonce_is_recognised_while_the_handshake_lasts() {
        let mut m = Manager::new(config(), AddrBook::new());
        let p = register(&mut m, "127.0.0.1:2000", true, false);
        m.handle(Command::OurNonce(7));
        let id = p.id;
        assert!(!ask(&mut m, |reply| Command::Version {
            id,
            version: version(7),
            reply
        }));
        assert_eq!(ask(&mut m, Command::PeerInfo)[0].version, None);
        m.handle(Command::NonceDone(7));
        assert!(ask(&mut m, |reply| Command::Version {
            id,
            version: version(7),
            reply
        }));
    }

    /// A discovered address that never completes a handshake leaves the book when its session
    /// ends; one that did, and one the operator named, stay.
    #[test]
    fn only_discovered_addresses_without_a_handshake_are_forgotten() {
        let mut book = AddrBook::new();
        let addrs = slotted(&mut book, "10.0.0.9".parse().unwrap(), 3);
        let (silent, talked, named) = (addrs[0], addrs[1], addrs[2]);
        let mut m = Manager::new(config(), book);
        let a = register(&mut m, &silent.to_string(), false, false);
        let b = register(&mut m, &talked.to_string(), false, false);
        let c = register(&mut m, &named.to_string(), false, true);
        handshake(&mut m, &b);
        m.handle(Command::Good(talked));
        for p in [&a, &b, &c] {
            m.handle(Command::Unregister(p.id));
        }
        assert_eq!(
            ask(&mut m, Command::TakeBookChanges),
            vec![(silent, false)],
            "talked was known already: moving it to tried is not a change"
        );
        let known = ask(&mut m, |reply| Command::Sample {
            count: 10,
            seed: 0,
            reply,
        });
        assert!(!known.contains(&silent) && known.contains(&talked) && known.contains(&named));
        // The operator's own peers are never forgotten.
        let operator = config().peers[0];
        m.handle(Command::Good(operator));
        m.handle(Command::Forget(operator));
        assert_eq!(
            ask(&mut m, Command::TakeBookChanges),
            vec![(operator, true)]
        );
    }

    /// Small `addr` gossip goes to two handshaken peers other than its source, only the
    /// addresses new to the book, never our own; a large one is only stored.
    #[test]
    fn fresh_addresses_are_relayed_to_two_other_peers() {
        let mut m = Manager::new(config(), AddrBook::new());
        let mut peers: Vec<TestPeer> = (1..=4)
            .map(|i| register(&mut m, &format!("10.0.0.{i}:1000"), true, false))
            .collect();
        for p in &peers[..3] {
            handshake(&mut m, p);
        }
        let ours: SocketAddr = "10.9.9.9:18744".parse().unwrap();
        m.handle(Command::LocalAddr(ours));
        let fresh: SocketAddr = "10.5.5.5:1000".parse().unwrap();
        let from = peers[0].id;
        m.handle(Command::Addrs {
            from,
            source: "10.0.0.1".parse().unwrap(),
            addrs: vec![fresh, ours],
            gossip: true,
            listen: None,
        });
        let sent: Vec<Vec<Message>> = peers.iter_mut().map(TestPeer::sent).collect();
        assert!(sent[0].is_empty(), "not back to its source");
        assert!(sent[3].is_empty(), "not to a peer without a handshake");
        for s in &sent[1..3] {
            assert!(matches!(&s[..], [Message::Addr(a)] if a == &vec![fresh]));
        }
        // The same address again is not news; a large `addr` is not gossip.
        m.handle(Command::Addrs {
            from,
            source: "10.0.0.1".parse().unwrap(),
            addrs: vec![fresh, "10.5.5.6:1000".parse().unwrap()],
            gossip: false,
            listen: None,
        });
        assert!(peers.iter_mut().all(|p| p.sent().is_empty()));
    }

    /// An inventory is announced once to each handshaken peer, never to one known to have it.
    #[test]
    fn announcements_skip_peers_that_know() {
        let mut m = Manager::new(config(), AddrBook::new());
        let mut a = register(&mut m, "10.0.0.1:1000", true, false);
        let mut b = register(&mut m, "10.0.0.2:1000", true, false);
        let mut c = register(&mut m, "10.0.0.3:1000", true, false);
        handshake(&mut m, &a);
        handshake(&mut m, &b);
        let inv = Inv {
            kind: INV_BLOCK,
            hash: [5; 32],
        };
        m.handle(Command::Known {
            id: a.id,
            hashes: vec![inv.hash],
        });
        m.handle(Command::Announce { inv, compact: None });
        m.handle(Command::Announce { inv, compact: None });
        assert!(a.sent().is_empty(), "a sent it to us");
        assert!(matches!(&b.sent()[..], [Message::Inv(i)] if i == &vec![inv]));
        assert!(c.sent().is_empty(), "no handshake yet");
        m.handle(Command::PingAll);
        assert_eq!(c.sent().len(), 1, "pings go to everyone");
    }

    /// The last three compact-block peers to deliver a new block first are asked for
    /// high-bandwidth relay, the oldest of them dropped back when a fourth delivers; a peer
    /// without compact blocks is never asked. Peers that asked us get a `cmpctblock` instead
    /// of the block's `inv`.
    #[test]
    fn high_bandwidth_peers_are_the_last_three_to_deliver() {
        let mut m = Manager::new(config(), AddrBook::new());
        let mut peers: Vec<TestPeer> = (1..=5)
            .map(|i| register(&mut m, &format!("10.0.0.{i}:1000"), true, false))
            .collect();
        let low = SendCmpct {
            high_bandwidth: false,
            version: COMPACT_VERSION,
        };
        for p in &peers[..4] {
            handshake(&mut m, p);
            m.handle(Command::SendCmpct { id: p.id, msg: low });
        }
        handshake(&mut m, &peers[4]);
        let mode = |m: &Message| match m {
            Message::SendCmpct(s) => Some(s.high_bandwidth),
            _ => None,
        };
        for p in &peers {
            m.handle(Command::DeliveredBlock(p.id));
        }
        m.handle(Command::DeliveredBlock(peers[1].id)); // already chosen: nothing sent
        let sent: Vec<Vec<Option<bool>>> = peers
            .iter_mut()
            .map(|p| p.sent().iter().map(mode).collect())
            .collect();
        assert_eq!(sent[0], [Some(true), Some(false)], "dropped for the fourth");
        assert_eq!(sent[1], [Some(true)]);
        assert_eq!(sent[3], [Some(true)]);
        assert!(sent[4].is_empty(), "no compact blocks: never asked");
        let info = ask(&mut m, Command::PeerInfo);
        let chosen: Vec<bool> = info.iter().map(|p| p.bip152_hb_to).collect();
        assert_eq!(chosen, [false, true, true, true, false]);

        // Peer 3 asks for high-bandwidth relay from us.
        let high = SendCmpct {
            high_bandwidth: true,
            ..low
        };
        m.handle(Command::SendCmpct {
            id: peers[2].id,
            msg: high,
        });
        let block = chaincore::Network::Regtest.genesis_block();
        let hash = block.block_hash();
        assert!(ask(&mut m, |reply| Command::WantsCompact { hash, reply }));
        let compact = Arc::new(CompactBlock::from_block(block, 1));
        let inv = Inv {
            kind: INV_BLOCK,
            hash: hash.to_byte_array(),
        };
        m.handle(Command::Announce {
            inv,
            compact: Some(compact.clone()),
        });
        assert!(!ask(&mut m, |reply| Command::WantsCompact { hash, reply }));
        assert!(matches!(&peers[2].sent()[..], [Message::CmpctBlock(c)] if **c == *compact));
        assert!(matches!(&peers[1].sent()[..], [Message::Inv(i)] if i == &vec![inv]));
    }

    /// Bans refuse inbound connections; `setban` also ends the banned IP's sessions, a ban
    /// for misbehaviour does not; a lifted ban admits again.
    #[test]
    fn bans_refuse_and_disconnect() {
        let mut m = Manager::new(config(), AddrBook::new());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let p = register(&mut m, "10.0.0.1:1000", true, false);
        let q = register(&mut m, "10.0.0.2:1000", true, false);
        let admit = |m: &mut Manager, ip| {
            let addr = SocketAddr::new(ip, 5000);
            ask(m, |reply| Command::AdmitInbound { addr, reply })
        };
        assert!(admit(&mut m, ip));
        m.handle(Command::Ban {
            ip,
            time: Duration::from_secs(600),
            disconnect: false,
        });
        assert!(!admit(&mut m, ip));
        assert!(!p.kicked());
        m.handle(Command::Ban {
            ip,
            time: Duration::from_secs(600),
            disconnect: true,
        });
        assert!(p.kicked() && !q.kicked());
        assert_eq!(ask(&mut m, Command::ListBans)[0].0, ip);
        m.handle(Command::Unban(ip));
        assert!(admit(&mut m, ip));
        m.handle(Command::Ban {
            ip,
            time: Duration::from_secs(600),
            disconnect: false,
        });
        m.handle(Command::ClearBans);
        assert!(ask(&mut m, Command::ListBans).is_empty());
        let addr = "10.0.0.2:1000".parse().unwrap();
        assert!(ask(&mut m, |reply| Command::Disconnect { addr, reply }));
        assert!(q.kicked());
        let addr = "10.0.0.2:1001".parse().unwrap();
        assert!(!ask(&mut m, |reply| Command::Disconnect { addr, reply }));
        // max_connections 11, 8 kept for outbound: a fourth inbound peer is refused.
        let _r = register(&mut m, "10.0.0.3:1000", true, false);
        assert!(!admit(&mut m, "10.0.0.4".parse().unwrap()));
    }

    /// Discovery dials an address that is not connected, not ours, not our listener and not
    /// banned, and none once the outbound target is reached.
    #[test]
    fn dial_candidates_skip_connected_local_and_banned_addresses() {
        let mut book = AddrBook::new();
        let source: IpAddr = "10.0.0.9".parse().unwrap();
        let addrs = slotted(&mut book, source, 4);
        let mut m = Manager::new(config(), book);
        let _connected = register(&mut m, &addrs[0].to_string(), false, false);
        m.handle(Command::LocalAddr(addrs[1]));
        m.handle(Command::Ban {
            ip: addrs[2].ip(),
            time: Duration::from_secs(600),
            disconnect: false,
        });
        assert_eq!(ask(&mut m, Command::DialCandidate), Some(addrs[3]));
        let _more: Vec<TestPeer> = (0..7)
            .map(|i| register(&mut m, &format!("10.9.0.{i}:1"), false, false))
            .collect();
        assert_eq!(ask(&mut m, Command::DialCandidate), None, "8 outbound");
    }

    #[test]
    fn blocks_in_flight_are_released_when_their_peer_leaves() {
        let mut m = Manager::new(config(), AddrBook::new());
        let a = register(&mut m, "10.0.0.1:1000", false, false);
        let b = register(&mut m, "10.0.0.2:1000", false, false);
        let blocks = vec![BlockHash([1; 32]), BlockHash([2; 32])];
        let claim = |m: &mut Manager, peer| {
            let candidates = blocks.clone();
            ask(m, |reply| Command::Claim {
                peer,
                candidates,
                room: 16,
                reply,
            })
        };
        assert_eq!(claim(&mut m, a.id), blocks);
        assert!(claim(&mut m, b.id).is_empty());
        m.handle(Command::Arrived(blocks[0]));
        assert_eq!(claim(&mut m, b.id), blocks[..1]);
        m.handle(Command::Unregister(a.id));
        assert_eq!(claim(&mut m, b.id), blocks);
    }

    /// `run` serves commands in order until told to finish, then serves what was already
    /// queued and refuses more; it hands back the unsaved book changes.
    #[test]
    fn run_drains_queued_commands_and_then_refuses() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let (tx, rx) = mpsc::channel(8);
            let finish = CancellationToken::new();
            let task =
                tokio::spawn(Manager::new(config(), AddrBook::new()).run(rx, finish.clone()));
            let good: SocketAddr = "10.0.0.1:1000".parse().unwrap();
            let (count, answer) = oneshot::channel();
            tx.send(Command::ConnectionCount(count)).await.unwrap();
            assert_eq!(answer.await.unwrap(), 0);
            // Queued before `finish` fires and served after: nothing is lost.
            finish.cancel();
            tx.send(Command::Good(good)).await.unwrap();
            let changes = task.await.unwrap();
            assert_eq!(changes, vec![(good, true)]);
            assert!(tx.send(Command::PingAll).await.is_err(), "closed");
        });
    }

    #[test]
    fn local_addresses_use_our_port_and_suit_the_peer() {
        let listen = Some("0.0.0.0:18744".parse().unwrap());
        let seen = Some("203.0.113.5:5555".parse().unwrap());
        let public: IpAddr = "198.51.100.1".parse().unwrap();
        assert_eq!(
            local_address(listen, seen, public),
            Some("203.0.113.5:18744".parse().unwrap())
        );
        assert_eq!(local_address(None, seen, public), None, "not listening");
        let private = Some("10.0.0.5:5555".parse().unwrap());
        assert_eq!(local_address(listen, private, public), None);
        assert_eq!(local_address(listen, None, public), None);
    }
}
