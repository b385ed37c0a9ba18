//! One peer connection: the handshake, the session loop, and the answer to every message
//! (headers-first sync through [`super::download::Download`], block and transaction relay,
//! `getdata` within the send budget, `addr` gossip, compact blocks). What the network shares (the peer
//! table, known inventory, addresses, bans, blocks in flight) is the manager's: a session
//! tells it and asks it through its [`P2pHandle`], and keeps only its own peer's state.
//!
//! Compact blocks (BIP152): every peer is told `sendcmpct` (low bandwidth) after the
//! handshake; the manager asks the peers that deliver new blocks first to switch to high
//! bandwidth. A `cmpctblock` for the block after our tip is rebuilt from the mempool and the
//! orphan pool; missing transactions are asked for with `getblocktxn`; a block that cannot be
//! rebuilt (duplicate short IDs, a short ID collision caught by the merkle root) is fetched
//! whole. A block about to extend our tip, whose header and proof of work check out, is
//! pushed as a `cmpctblock` to high-bandwidth peers before it is fully validated, as BIP152
//! allows; so a block that reached us as a compact block and turns out invalid costs its
//! sender no ban (it may have relayed it unvalidated, as we do), as in Bitcoin Core.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chaincore::block::Block;
use chaincore::merkle::MerkleTxids;
use chaincore::pow::Work;
use chaincore::validation::{self, RuleError};
use chaincore::{BlockHash, Txid};
use futures_util::StreamExt;
use tokio::net::TcpStream;
use tokio_util::codec::FramedRead;

use super::bans::BAN_TIME;
use super::download::{Download, MAX_QUEUED_BLOCKS};
use super::manager::{self, Command};
use super::message::compact::{
    BlockTxn, CompactBlock, CompactError, GetBlockTxn, SendCmpct, COMPACT_VERSION,
    SHORT_IDS_BLOCKS_VERSION,
};
use super::message::{
    self, Codec, Inv, Message, Version, INV_BLOCK, INV_CMPCT_BLOCK, INV_TX, MAX_HEADERS,
    PROTOCOL_VERSION,
};
use super::outbox::{self, Outbox};
use super::traffic::Counted;
use super::{P2pHandle, P2pStopped, PeerError, MAX_IN_FLIGHT};
use crate::chain::{unix_now, Accepted, ChainError};
use crate::node::Relayed;

/// Time allowed for the version handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);

/// Ping interval.
const PING_INTERVAL: Duration = Duration::from_secs(30);

/// Longest round trip a `pong` is believed for (older nonces are not ours, or too stale).
const MAX_PING: Duration = Duration::from_secs(600);

/// The nonce of our pings: the Unix time in milliseconds, so a `pong` echoing it tells its
/// round trip without a table of pings in flight (a peer can only lie about its own ping).
pub fn ping_nonce() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The round trip in milliseconds a `pong` of `nonce` shows, if the nonce is one of ours.
fn ping_millis(nonce: u64, now: u64) -> Option<u64> {
    now.checked_sub(nonce)
        .filter(|rtt| *rtt <= MAX_PING.as_millis() as u64)
}

/// A peer silent for this long is disconnected.
const INACTIVITY_TIMEOUT: Duration = Duration::from_secs(180);

/// How long a `getheaders` sent for headers that did not connect waits for an answer that
/// connects before another may be sent (Core's `HEADERS_RESPONSE_TIME`).
const HEADERS_RESPONSE_TIME: Duration = Duration::from_secs(120);

/// How often a node tells each peer its own reachable address again (Core: about daily).
const ADVERTISE_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Blocks from the future remembered per peer, not fetched again before their time.
const MAX_FUTURE_BLOCKS: usize = 16;

/// An `addr` message with at most this many entries is gossip worth relaying (Core: 10).
const ADDR_RELAY_MAX: usize = 10;

/// Most blocks served for one `getdata` (a peer asks for more in later messages).
const MAX_BLOCKS_PER_GETDATA: usize = 2 * MAX_IN_FLIGHT;

/// Queued blocks offered to the manager per [`Command::Claim`] (most are free: one round
/// trip usually fills the peer's room).
const CLAIM_CHUNK: usize = 4 * MAX_IN_FLIGHT;

/// A block asked for as a compact block is sent whole if it is deeper than this below our
/// tip (Core's `MAX_CMPCTBLOCK_DEPTH`).
const MAX_CMPCTBLOCK_DEPTH: u32 = 5;

/// `getblocktxn` for a block deeper than this below our tip is answered with the whole block
/// (Core's `MAX_BLOCKTXN_DEPTH`).
const MAX_BLOCKTXN_DEPTH: u32 = 10;

/// How a block reached us.
enum Source {
    /// A `block` message.
    Full,
    /// Rebuilt from a `cmpctblock` (and a `blocktxn`), or submitted over RPC: its txids,
    /// which match its merkle root.
    Compact(MerkleTxids),
}

/// The socket a session reads from.
type Reader = FramedRead<Counted<tokio::net::tcp::OwnedReadHalf>, Codec>;

impl P2pHandle {
    /// Runs one connection from start to end: registers it with the manager, runs the
    /// session until it fails, the operator ends it, or the peer stops reading, then
    /// unregisters it and, for misbehaviour, bans its IP (not on loopback or named by the
    /// operator).
    pub(super) async fn run_peer(
        self,
        stream: TcpStream,
        addr: SocketAddr,
        inbound: bool,
        operator: bool,
    ) {
        let _ = stream.set_nodelay(true);
        let (read, write) = stream.into_split();
        let kick = Arc::new(tokio::sync::Notify::new());
        let stopped_reading = Arc::new(tokio::sync::Notify::new());
        let (send, writer_task) = Outbox::spawn(
            write,
            self.shared.magic,
            stopped_reading.clone(),
            self.shared.traffic.clone(),
        );
        // Ends with the session, also when shutdown cancels it.
        let writer_task = tokio_util::task::AbortOnDropHandle::new(writer_task);
        let registered = self
            .ask(|reply| Command::Register {
                addr,
                inbound,
                operator,
                send: send.clone(),
                kick: kick.clone(),
                reply,
            })
            .await;
        let Ok(id) = registered else {
            return; // P2P is shutting down
        };
        let mut reader = FramedRead::new(
            Counted::new(read, self.shared.traffic.clone()),
            Codec::new(self.shared.magic),
        );
        let result = tokio::select! {
            r = self.session(id, addr, inbound, &mut reader, &send) => r,
            _ = kick.notified() => Err(PeerError::Disconnect("disconnected by the operator".into())),
            _ = stopped_reading.notified() => Err(PeerError::Disconnect(format!(
                "peer stopped reading: nothing written for {} s",
                outbox::WRITE_TIMEOUT.as_secs()
            ))),
        };
        // Fails only if the manager has ended, and then the peer table is gone anyway.
        let _ = self.send(Command::Unregister(id)).await;
        self.shared.node.forget_orphans_from(id);
        drop(writer_task);
        let metrics = crate::metrics::get();
        match result {
            Err(PeerError::Disconnect(why)) => {
                metrics.disconnected("disconnect", false);
                tracing::info!(%addr, "peer disconnected: {why}")
            }
            Err(PeerError::Stopped(e)) => {
                metrics.disconnected("shutdown", false);
                tracing::info!(%addr, "peer disconnected: {e}")
            }
            Err(e @ (PeerError::Protocol(_) | PeerError::Misbehaved(_))) => {
                let reason = match &e {
                    PeerError::Misbehaved(_) => "misbehaved",
                    _ => "protocol",
                };
                if matches!(&e, PeerError::Protocol(message::ProtocolError::Io(_))) {
                    metrics.disconnected("io", false);
                    tracing::debug!(%addr, "peer connection closed: {e}");
                } else if addr.ip().is_loopback() || operator {
                    metrics.disconnected(reason, false);
                    tracing::warn!(%addr, "disconnecting peer: {e}");
                } else {
                    metrics.disconnected(reason, true);
                    tracing::warn!(%addr, "banning peer for 24 h: {e}");
                    let ban = Command::Ban {
                        ip: addr.ip(),
                        time: BAN_TIME,
                        disconnect: false,
                    };
                    let _ = self.send(ban).await;
                }
            }
            Ok(()) => metrics.disconnected("ended", false),
        }
    }

    /// The handshake, then the peer's messages and our timers until something ends it.
    async fn session(
        &self,
        id: u64,
        addr: SocketAddr,
        inbound: bool,
        reader: &mut Reader,
        send: &Outbox,
    ) -> Result<(), PeerError> {
        // Handshake. Our nonce is known to the manager before our `version` leaves, so if
        // this connection loops back to us the other side recognises it.
        let nonce = super::random_nonce();
        self.send(Command::OurNonce(nonce)).await?;
        let height = self.shared.node.tip.borrow().height;
        let version = Version {
            version: PROTOCOL_VERSION,
            services: 0,
            timestamp: unix_now() as i64,
            nonce,
            user_agent: format!("/chaincore:{}/", env!("CARGO_PKG_VERSION")),
            start_height: height as i32,
            addr_recv: Some(addr),
            relay: true,
            genesis: Some(self.shared.node.network.genesis_hash()),
        };
        self.queue(send, Message::Version(version))?;
        let handshake = async {
            let mut seen_as = None;
            loop {
                match next(reader).await? {
                    Message::Version(v) if seen_as.is_none() => {
                        if v.genesis
                            .is_some_and(|g| g != self.shared.node.network.genesis_hash())
                        {
                            return Err(PeerError::Misbehaved(
                                "peer is on another chain (genesis differs)".into(),
                            ));
                        }
                        let theirs = (v.addr_recv, v.start_height, v.version);
                        let recorded = self
                            .ask(|reply| Command::Version {
                                id,
                                version: Box::new(v),
                                reply,
                            })
                            .await?;
                        if !recorded {
                            return Err(PeerError::Disconnect("connected to ourselves".into()));
                        }
                        seen_as = Some(theirs);
                        self.queue(send, Message::Verack)?;
                    }
                    Message::Verack if seen_as.is_some() => return Ok(seen_as),
                    Message::Unknown(c)
                        if seen_as.is_some()
                            && message::HANDSHAKE_FEATURES.contains(&c.as_str()) => {}
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
        self.send(Command::NonceDone(nonce)).await?;
        let (seen_as, their_height, their_version) = done
            .map_err(|_| PeerError::Disconnect("handshake timed out".into()))??
            .unwrap_or_default();
        reader.decoder_mut().handshake_done = true;
        tracing::info!(peer = %addr, "peer connected");
        // We speak compact blocks to peers whose protocol has them; high bandwidth is asked
        // for later, of the peers that deliver new blocks first.
        if their_version >= SHORT_IDS_BLOCKS_VERSION {
            self.queue(
                send,
                Message::SendCmpct(SendCmpct {
                    high_bandwidth: false,
                    version: COMPACT_VERSION,
                }),
            )?;
        }
        let mut sync = Download::default();
        if !inbound {
            // Reachable: remember it, and ask it for more addresses.
            self.send(Command::Good(addr)).await?;
            sync.addr_rate.asked();
            self.queue(send, Message::GetAddr)?;
        }
        // Tell the peer where we can be reached, as a peer we dialled sees us (Core's
        // AdvertiseLocal). Inbound peers could claim anything, so they teach us nothing.
        let local = if inbound {
            None
        } else {
            manager::local_address(self.shared.config.listen, seen_as, addr.ip())
        };
        if let Some(ours) = local {
            self.send(Command::LocalAddr(ours)).await?;
            self.queue(send, Message::Addr(vec![ours]))?;
        }
        let mut advertised = Instant::now();
        self.queue(send, self.get_headers())?;
        // BIP35: a node that joins or reconnects asks for the transactions it missed once it
        // has the blocks the peer had (before, their inputs would be unknown to it).
        let mut mempool_asked = false;
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
                    self.request_blocks(id, send, &mut sync).await?;
                    // Blocks from the future whose time has come: ask again.
                    if sync.future_due() {
                        self.queue(send, self.get_headers())?;
                    }
                    self.queue(send, Message::Ping(ping_nonce()))?;
                    if let Some(ours) = local.filter(|_| advertised.elapsed() > ADVERTISE_INTERVAL) {
                        advertised = Instant::now();
                        self.queue(send, Message::Addr(vec![ours]))?;
                    }
                    continue;
                }
            };
            last_heard = Instant::now();
            self.handle(id, addr, msg, send, &mut sync).await?;
            let height = i64::from(self.shared.node.tip.borrow().height);
            if !mempool_asked && height >= i64::from(their_height) {
                mempool_asked = true;
                self.queue(send, Message::MemPool)?;
            }
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
                        .shared
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
                INV_BLOCK | INV_CMPCT_BLOCK if blocks < MAX_BLOCKS_PER_GETDATA => {
                    blocks += 1;
                    send.below_budget().await;
                    match self.read_block(BlockHash(inv.hash)).await? {
                        Some((b, depth))
                            if inv.kind == INV_CMPCT_BLOCK && depth <= MAX_CMPCTBLOCK_DEPTH =>
                        {
                            let compact = CompactBlock::from_block(&b, super::random_nonce());
                            self.queue(send, Message::CmpctBlock(Box::new(compact)))?
                        }
                        Some((b, _)) => self.queue(send, Message::Block(b))?,
                        None => missing.push(inv),
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

    /// A stored block, or the one just relayed before validation, and how deep it is below our tip (0: the tip; a block off the active
    /// chain counts from its height); `None` if we do not have it. A store failure stops the
    /// node (it is not the peer's business).
    async fn read_block(&self, hash: BlockHash) -> Result<Option<(Block, u32)>, PeerError> {
        if let Some(recent) = self.recent_block(&hash) {
            return Ok(Some((Block::clone(&recent), 0)));
        }
        let node = self.shared.node.clone();
        let read = tokio::task::spawn_blocking(move || {
            let snap = node.snapshot();
            let depth = snap.index.entry(&hash).map_or(u32::MAX, |e| {
                snap.index.tip_height().saturating_sub(e.height)
            });
            crate::store::read::block(&snap.rtx, &hash).map(|b| b.map(|b| (b, depth)))
        })
        .await
        .map_err(|e| PeerError::Disconnect(e.to_string()))?;
        read.map_err(|e| {
            self.shared.node.store_failed(&e);
            PeerError::Disconnect(format!("store failure: {e}"))
        })
    }

    /// Answers a `getblocktxn` with the transactions asked for, or with the whole block if
    /// it is deeper than [`MAX_BLOCKTXN_DEPTH`]; an index past the block's end is
    /// misbehaviour (Core: "getblocktxn with out-of-bounds tx indices"); a block we do not
    /// have is ignored.
    async fn serve_block_txn(&self, req: GetBlockTxn, send: &Outbox) -> Result<(), PeerError> {
        send.below_budget().await;
        let found = match self.recent_block(&req.block_hash) {
            Some(recent) => Some((recent, 0)),
            None => self
                .read_block(req.block_hash)
                .await?
                .map(|(b, depth)| (Arc::new(b), depth)),
        };
        let Some((block, depth)) = found else {
            tracing::debug!(hash = %req.block_hash, "getblocktxn for a block we lack");
            return Ok(());
        };
        if depth > MAX_BLOCKTXN_DEPTH {
            return self.queue(send, Message::Block(Block::clone(&block)));
        }
        let mut txs = Vec::with_capacity(req.indexes.len().min(block.txdata.len()));
        for i in req.indexes {
            let tx = block.txdata.get(i).ok_or_else(|| {
                PeerError::Misbehaved(format!(
                    "getblocktxn index {i} past the end of block {}",
                    req.block_hash
                ))
            })?;
            txs.push(tx.clone());
        }
        self.queue(
            send,
            Message::BlockTxn(BlockTxn {
                block_hash: req.block_hash,
                txs,
            }),
        )
    }

    /// Answers a `mempool` request (BIP35): every pool transaction by `inv`, parents first,
    /// in messages of at most [`message::MAX_INV`]; they count as known to the peer so they
    /// are not announced to it again.
    async fn serve_mempool(&self, id: u64, send: &Outbox) -> Result<(), PeerError> {
        let txids: Vec<[u8; 32]> = self
            .shared
            .node
            .snapshot()
            .mempool
            .in_order()
            .iter()
            .map(|tx| tx.compute_txid().to_byte_array())
            .collect();
        for chunk in txids.chunks(message::MAX_INV) {
            send.below_budget().await;
            self.mark_known(id, chunk.to_vec()).await?;
            let items = chunk
                .iter()
                .map(|&hash| Inv { kind: INV_TX, hash })
                .collect();
            self.queue(send, Message::Inv(items))?;
        }
        Ok(())
    }

    fn queue(&self, send: &Outbox, msg: Message) -> Result<(), PeerError> {
        send.push(msg)
            .map_err(|e| PeerError::Disconnect(e.to_string()))
    }

    /// `getheaders` from our block locator.
    fn get_headers(&self) -> Message {
        let snap = self.shared.node.snapshot();
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
        locator.push(self.shared.node.network.genesis_hash());
        Message::GetHeaders {
            version: PROTOCOL_VERSION as u32,
            locator,
            stop: BlockHash::ZERO,
        }
    }

    /// Tells the manager that peer `id` has these blocks or transactions, so they are never
    /// announced to it.
    async fn mark_known(&self, id: u64, hashes: Vec<[u8; 32]>) -> Result<(), PeerError> {
        Ok(self.send(Command::Known { id, hashes }).await?)
    }

    /// Answers one message from peer `id` at `addr`.
    async fn handle(
        &self,
        id: u64,
        addr: SocketAddr,
        msg: Message,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        match msg {
            Message::Ping(n) => self.queue(send, Message::Pong(n))?,
            Message::SendCmpct(msg) => self.send(Command::SendCmpct { id, msg }).await?,
            Message::CmpctBlock(compact) => self.on_compact_block(id, *compact, send, sync).await?,
            Message::GetBlockTxn(req) => self.serve_block_txn(req, send).await?,
            Message::BlockTxn(txn) => self.on_block_txn(id, txn, send, sync).await?,
            Message::Pong(nonce) => {
                if let Some(millis) = ping_millis(nonce, ping_nonce()) {
                    self.send(Command::PingTime { id, millis }).await?;
                }
            }
            Message::SendHeaders | Message::Unknown(_) | Message::NotFound(_) => {}
            Message::Version(_) | Message::Verack => {
                return Err(PeerError::Misbehaved("repeated handshake message".into()))
            }
            Message::GetAddr => {
                let addrs = self
                    .ask(|reply| Command::Sample {
                        count: message::MAX_ADDR,
                        seed: id,
                        reply,
                    })
                    .await?;
                self.queue(send, Message::Addr(addrs))?;
            }
            Message::Addr(mut addrs) => {
                let source = addr.ip();
                let gossip = addrs.len() <= ADDR_RELAY_MAX;
                let listen = match addrs[..] {
                    [own] if own.ip() == source => Some(own),
                    _ => None,
                };
                // Past the peer's allowance the rest is dropped: not stored, not relayed.
                let allowed = addrs.iter().take_while(|_| sync.addr_rate.take()).count();
                addrs.truncate(allowed);
                self.send(Command::Addrs {
                    from: id,
                    source,
                    addrs,
                    gossip,
                    listen,
                })
                .await?;
            }
            Message::GetHeaders { locator, .. } => {
                let headers = {
                    let snap = self.shared.node.snapshot();
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
            Message::Headers(headers) => self.on_headers(id, headers, send, sync).await?,
            Message::Inv(items) => {
                self.mark_known(id, items.iter().map(|i| i.hash).collect())
                    .await?;
                let mut want_headers = false;
                let mut want_txs = Vec::new();
                for inv in items {
                    match inv.kind {
                        INV_BLOCK
                            if self
                                .shared
                                .node
                                .snapshot()
                                .index
                                .entry(&BlockHash(inv.hash))
                                .is_none() =>
                        {
                            want_headers = true
                        }
                        INV_TX if !self.shared.node.has_transaction(&Txid(inv.hash)) => {
                            want_txs.push(inv)
                        }
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
            Message::Block(block) => self.on_block(id, block, Source::Full, send, sync).await?,
            Message::MemPool if !sync.mempool_served => {
                sync.mempool_served = true;
                self.serve_mempool(id, send).await?;
            }
            Message::MemPool => {}
            Message::Tx(tx) => {
                let txid = tx.compute_txid();
                self.mark_known(id, vec![txid.to_byte_array()]).await?;
                // As Bitcoin Core: a consensus-invalid transaction is misbehaviour; policy
                // rejects, missing inputs and resends of one refused before are not.
                let relayed = self.shared.node.accept_relayed(tx, id).await;
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

    /// Takes a block from peer `id`, whole or rebuilt from a compact block (`source`): a
    /// block about to extend our tip is pushed to high-bandwidth peers first (see
    /// [`P2pHandle::relay_before_validation`]), then it is submitted; a peer that gave us a
    /// new best block first becomes a high-bandwidth candidate. An invalid block is
    /// misbehaviour if it came whole, and only logged if it came as a compact block (BIP152
    /// lets its sender relay it before validating it; Core's `via_compact_block`).
    async fn on_block(
        &self,
        id: u64,
        block: Block,
        source: Source,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        let hash = block.block_hash();
        let header_time = block.header.time;
        self.mark_known(id, vec![hash.to_byte_array()]).await?;
        let requested = sync.in_flight.contains_key(&hash);
        let extends_tip = block.header.prev_blockhash == self.shared.node.tip.borrow().hash;
        if !requested && !extends_tip {
            // Unsolicited and not extending our tip: ignored, so a peer cannot make
            // us store blocks of a chain lighter than ours.
            return Ok(());
        }
        sync.received(&hash);
        if sync
            .compact
            .as_ref()
            .is_some_and(|p| p.block_hash() == hash)
        {
            sync.compact = None;
        }
        self.send(Command::Arrived(hash)).await?;
        let block = Arc::new(block);
        if extends_tip {
            let known = match &source {
                Source::Compact(txids) => Some(txids),
                Source::Full => None,
            };
            self.relay_before_validation(&block, known).await?;
        }
        let node = self.shared.node.clone();
        let via_compact = matches!(source, Source::Compact(_));
        let result = tokio::task::spawn_blocking(move || match source {
            // Rebuilt from our mempool's entries and a checked merkle root: their txids.
            Source::Compact(txids) => node.submit_block_with_txids(block, txids),
            Source::Full => node.submit_block(block),
        })
        .await
        .map_err(|e| PeerError::Disconnect(e.to_string()))?;
        match result {
            Ok(Accepted::BestChain) => self.send(Command::DeliveredBlock(id)).await?,
            Ok(Accepted::SideChain) | Err(ChainError::Duplicate) => {}
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
            Err(ChainError::Rule(r)) if via_compact => {
                tracing::warn!(%hash, "compact block from a peer is invalid (not held against it): {}", r.detail());
                return Ok(());
            }
            Err(ChainError::DuplicateInvalid) if via_compact => return Ok(()),
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
        self.request_blocks(id, send, sync).await?;
        if sync.queue.is_empty() && sync.in_flight.is_empty() {
            // Caught up with what we queued: ask whether the peer has more.
            self.queue(send, self.get_headers())?;
        }
        Ok(())
    }

    /// [`P2pHandle::relay_before_validation`] for a block submitted over RPC that extends our
    /// tip, with its `txids` (which match its merkle root): Core announces every such block
    /// this way (`NewPoWValidBlock`), whoever gave it.
    pub(crate) async fn relay_submitted(
        &self,
        block: &Arc<Block>,
        txids: &MerkleTxids,
    ) -> Result<(), P2pStopped> {
        if block.header.prev_blockhash != self.shared.node.tip.borrow().hash {
            return Ok(());
        }
        self.relay_before_validation(block, Some(txids)).await
    }

    /// BIP152 high-bandwidth relay: `block`, which extends our tip, goes to the peers in
    /// high-bandwidth mode that lack it as a `cmpctblock` as soon as its header is valid
    /// (proof of work, difficulty, time) and its transactions match its merkle root, before
    /// they are validated. (The txids of a block rebuilt from a compact block, or submitted
    /// over RPC, are `known`, with their merkle root.)
    async fn relay_before_validation(
        &self,
        block: &Arc<Block>,
        known: Option<&MerkleTxids>,
    ) -> Result<(), P2pStopped> {
        let hash = block.block_hash();
        let header_ok = {
            let snap = self.shared.node.snapshot();
            let header = &block.header;
            snap.index
                .entry(&header.prev_blockhash)
                .is_some_and(|prev| {
                    let mtp = snap.index.median_time_past(&header.prev_blockhash);
                    validation::check_proof_of_work(header, self.shared.node.network).is_ok()
                        && validation::check_difficulty(header, snap.index.next_bits(prev)).is_ok()
                        && validation::check_block_time(header, mtp, unix_now() as i64).is_ok()
                })
        };
        if !header_ok
            || !self
                .ask(|reply| Command::WantsCompact { hash, reply })
                .await?
        {
            return Ok(());
        }
        let computed;
        let txids = match known {
            Some(txids) => txids,
            None => match validation::txids_matching_merkle_root(block) {
                Some(txids) => {
                    computed = txids;
                    &computed
                }
                None => return Ok(()), // not relayed: validation will refuse it
            },
        };
        let compact = CompactBlock::with_txids(block, txids.txids(), super::random_nonce());
        // Their `getblocktxn` may come before the block is stored.
        self.set_recent_block(block.clone());
        self.send(Command::RelayCompact(Arc::new(compact))).await
    }

    /// A `cmpctblock`: its header must carry valid proof of work (misbehaviour otherwise). A
    /// block we have is done; one not on our tip is taken as an announcement of its header;
    /// one on our tip is rebuilt from the mempool and the orphan pool, its missing
    /// transactions asked for with `getblocktxn`, or fetched whole if it cannot be rebuilt.
    async fn on_compact_block(
        &self,
        id: u64,
        compact: CompactBlock,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        let hash = compact.block_hash();
        self.mark_known(id, vec![hash.to_byte_array()]).await?;
        validation::check_proof_of_work(&compact.header, self.shared.node.network)
            .map_err(|e| PeerError::Misbehaved(format!("compact block {hash}: {e}")))?;
        let (have, on_tip) = {
            let snap = self.shared.node.snapshot();
            (
                snap.index.entry(&hash).is_some(),
                compact.header.prev_blockhash == snap.index.tip_hash(),
            )
        };
        let requested = sync.in_flight.contains_key(&hash);
        if have {
            if requested {
                sync.received(&hash);
                self.send(Command::Arrived(hash)).await?;
            }
            return Ok(());
        }
        if !on_tip {
            if requested {
                // Asked for as a compact block, but our tip has moved since: take it whole.
                return self.fetch_whole(hash, send, sync);
            }
            return self.on_headers(id, vec![compact.header], send, sync).await;
        }
        let rebuilt = {
            let snap = self.shared.node.snapshot();
            let orphans = self.shared.node.orphan_transactions();
            compact.reconstruct(
                snap.mempool
                    .entries()
                    .map(|e| (e.txid, &e.tx))
                    .chain(orphans.iter().map(|(txid, tx)| (*txid, tx))),
            )
        };
        let partial = match rebuilt {
            Ok(p) => p,
            Err(e) => {
                tracing::debug!(%hash, "compact block not rebuilt, fetching it whole: {e}");
                return self.fetch_whole(hash, send, sync);
            }
        };
        let indexes = partial.missing();
        if indexes.is_empty() {
            return match partial.fill(Vec::new()) {
                Ok((block, txids)) => {
                    tracing::debug!(%hash, txs = txids.txids().len(), "block rebuilt from a compact block");
                    self.on_block(id, block, Source::Compact(txids), send, sync)
                        .await
                }
                Err(e) => {
                    tracing::debug!(%hash, "compact block not rebuilt, fetching it whole: {e}");
                    self.fetch_whole(hash, send, sync)
                }
            };
        }
        tracing::info!(
            %hash,
            missing = indexes.len(),
            txs = partial.tx_count(),
            "compact block: asking the peer for the transactions we lack (getblocktxn)"
        );
        sync.compact = Some(partial);
        sync.requested(&[hash]);
        self.queue(
            send,
            Message::GetBlockTxn(GetBlockTxn {
                block_hash: hash,
                indexes,
            }),
        )
    }

    /// A `blocktxn`: completes the compact block we asked it for (one for another block is
    /// ignored, as Core ignores it). Transactions more or fewer than asked for are
    /// misbehaviour; a rebuilt block that fails its merkle root is fetched whole.
    async fn on_block_txn(
        &self,
        id: u64,
        txn: BlockTxn,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        let hash = txn.block_hash;
        let Some(partial) = sync.compact.take_if(|p| p.block_hash() == hash) else {
            tracing::debug!(%hash, "unrequested blocktxn ignored");
            return Ok(());
        };
        match partial.fill(txn.txs) {
            Ok((block, txids)) => {
                self.on_block(id, block, Source::Compact(txids), send, sync)
                    .await
            }
            Err(CompactError::WrongBlockTxn) => Err(PeerError::Misbehaved(format!(
                "blocktxn for {hash} does not answer our getblocktxn"
            ))),
            Err(e) => {
                tracing::debug!(%hash, "compact block not rebuilt, fetching it whole: {e}");
                self.fetch_whole(hash, send, sync)
            }
        }
    }

    /// Falls back to the whole block (BIP152): asks this peer for it, and counts it in
    /// flight, so the answer is taken and a peer that never sends it stalls.
    fn fetch_whole(
        &self,
        hash: BlockHash,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        sync.requested(&[hash]);
        self.queue(
            send,
            Message::GetData(vec![Inv {
                kind: INV_BLOCK,
                hash: hash.to_byte_array(),
            }]),
        )
    }

    /// Checks a `headers` message and decides what to fetch: held back while the chain it
    /// extends has no more work than ours, requested once it has.
    async fn on_headers(
        &self,
        id: u64,
        headers: Vec<chaincore::block::Header>,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        let Some(first) = headers.first() else {
            sync.unconnecting_asked = None;
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
            validation::check_proof_of_work(h, self.shared.node.network).map_err(|e| {
                PeerError::Misbehaved(format!("header {}: {e}", h.compute_block_hash()))
            })?;
        }
        // Where these headers attach: a block we have, a block already queued (its chain had
        // more work than our tip), or the end of a lighter fork this peer is still sending.
        let (parent, tip_work) = {
            let snap = self.shared.node.snapshot();
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
            // Headers that attach to nothing we know: ask for the chain that leads to them. Not
            // misbehaviour (Bitcoin Core dropped that penalty in PR #29575): an honest peer that
            // mines or relays faster than our writer connects blocks announces children of
            // blocks we received but have not connected yet, many in a row under load. As in
            // Core, one such `getheaders` at a time until an answer connects (or two minutes
            // pass), so a peer on another chain cannot keep us in a loop.
            if sync
                .unconnecting_asked
                .is_some_and(|at| at.elapsed() < HEADERS_RESPONSE_TIME)
            {
                return Ok(());
            }
            sync.unconnecting_asked = Some(Instant::now());
            return self.queue(send, self.get_headers());
        };
        sync.unconnecting_asked = None;
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
                    .shared
                    .config
                    .max_pending_headers
                    .saturating_sub(sync.pending.len());
                let lacking: Vec<BlockHash> = {
                    let snap = self.shared.node.snapshot();
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
            self.request_blocks(id, send, sync).await?;
            return Ok(());
        }
        let hashes: Vec<BlockHash> = headers.iter().map(|h| h.compute_block_hash()).collect();
        self.mark_known(id, hashes.iter().map(|h| h.to_byte_array()).collect())
            .await?;
        let unknown: Vec<BlockHash> = {
            let snap = self.shared.node.snapshot();
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
        self.request_blocks(id, send, sync).await?;
        if headers.len() == MAX_HEADERS && sync.queue.len() < MAX_QUEUED_BLOCKS {
            // More may follow: continue from the last one.
            self.queue(send, headers_after(&headers))?;
        }
        Ok(())
    }

    /// Requests the next blocks from peer `id`: queued ones we lack and no other peer is
    /// fetching (the manager decides), up to [`MAX_IN_FLIGHT`] in flight.
    async fn request_blocks(
        &self,
        id: u64,
        send: &Outbox,
        sync: &mut Download,
    ) -> Result<(), PeerError> {
        {
            let snap = self.shared.node.snapshot();
            sync.prune(|h| snap.index.entry(h).is_some());
        }
        let mut batch = Vec::new();
        // Queued blocks, from the front, that other peers are fetching: skipped.
        let mut taken = 0;
        while sync.room() > 0 && taken < sync.queue.len() {
            let candidates: Vec<BlockHash> = sync
                .queue
                .iter()
                .skip(taken)
                .take(CLAIM_CHUNK)
                .copied()
                .collect();
            let offered = candidates.len();
            let room = sync.room();
            let claimed = self
                .ask(|reply| Command::Claim {
                    peer: id,
                    candidates,
                    room,
                    reply,
                })
                .await?;
            sync.requested(&claimed);
            if claimed.len() < room {
                // Every candidate was looked at: the ones not claimed stay queued.
                taken += offered - claimed.len();
            }
            batch.extend(claimed);
        }
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

/// The next message from the peer; its end is an error too.
async fn next(reader: &mut Reader) -> Result<Message, PeerError> {
    // Bytes read minus bytes still buffered: what the decoder took for this message.
    let taken = |r: &Reader| r.get_ref().total() - r.read_buffer().len() as u64;
    let before = taken(reader);
    match reader.next().await {
        Some(Ok(m)) => {
            let bytes = taken(reader) - before;
            crate::metrics::get().received(crate::metrics::message_label(&m), bytes as usize);
            Ok(m)
        }
        Some(Err(e)) => Err(e.into()),
        None => Err(PeerError::Disconnect("connection closed".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pongs_tell_the_round_trip_of_our_pings_only() {
        let now = ping_nonce();
        assert_eq!(ping_millis(now - 42, now), Some(42));
        assert_eq!(ping_millis(now + 1, now), None, "from the future");
        // A ping of the Unix seconds that older nodes sent, or any stale nonce.
        assert_eq!(ping_millis(now / 1000, now), None);
    }
}
