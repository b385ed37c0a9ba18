//! Prometheus metrics (`prometheus-client`), served as OpenMetrics text at `GET /metrics`.
//!
//! Events are counted where they happen through the process-wide [`get`] (one node per
//! process, as the binary runs it): block connects, reorgs, mempool evictions, template
//! builds, P2P bytes by message type, bans and disconnects by reason, RPC calls by method.
//! Levels (height, headers, tip age, mempool, orphans, peers, memory) are read from the node
//! when a scrape comes, by [`Metrics::render`]. `docs/REST.md` lists every name.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// `message="<command>"`: a P2P message type (from a fixed set; never peer text).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MessageLabel {
    /// The command.
    pub message: &'static str,
}

/// `method="<name>"`: a known RPC method, or `unknown`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabel {
    /// The method.
    pub method: &'static str,
}

/// `reason="<why>"`: why a peer session ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    /// The reason.
    pub reason: &'static str,
}

/// `direction="inbound"` or `"outbound"`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Direction {
    /// `inbound` or `outbound`.
    pub direction: &'static str,
}

type Timings = Family<MethodLabel, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 50 µs … ~26 s.
    Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
}

/// Every metric the node exports.
pub struct Metrics {
    registry: Registry,
    height: Gauge,
    headers: Gauge,
    tip_age: Gauge,
    block_connect: Histogram,
    reorgs: Counter,
    reorg_depth: Histogram,
    mempool_txs: Gauge,
    mempool_bytes: Gauge,
    mempool_evictions: Counter,
    orphans: Gauge,
    peers: Family<Direction, Gauge>,
    bytes_sent: Family<MessageLabel, Counter>,
    bytes_received: Family<MessageLabel, Counter>,
    bans: Family<ReasonLabel, Counter>,
    disconnects: Family<ReasonLabel, Counter>,
    rpc_requests: Family<MethodLabel, Counter>,
    rpc_seconds: Timings,
    template_build: Histogram,
    memory: Gauge,
}

/// The process's metrics.
pub fn get() -> &'static Metrics {
    static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);
    &METRICS
}

/// A message command as a label: ours are a fixed set, a peer's unknown command is `other`.
pub fn message_label(msg: &chaincore::p2p::Message) -> &'static str {
    msg.known_command().unwrap_or("other")
}

impl Metrics {
    fn new() -> Metrics {
        let m = Metrics {
            registry: Registry::default(),
            height: Gauge::default(),
            headers: Gauge::default(),
            tip_age: Gauge::default(),
            block_connect: latency_histogram(),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new(exponential_buckets(1.0, 2.0, 12)),
            mempool_txs: Gauge::default(),
            mempool_bytes: Gauge::default(),
            mempool_evictions: Counter::default(),
            orphans: Gauge::default(),
            peers: Family::default(),
            bytes_sent: Family::default(),
            bytes_received: Family::default(),
            bans: Family::default(),
            disconnects: Family::default(),
            rpc_requests: Family::default(),
            rpc_seconds: Timings::new_with_constructor(latency_histogram),
            template_build: latency_histogram(),
            memory: Gauge::default(),
        };
        let mut r = m.registry;
        let c = &mut r;
        c.register(
            "chaincore_chain_height",
            "Height of the active chain's tip",
            m.height.clone(),
        );
        c.register(
            "chaincore_chain_headers",
            "Best header height any peer showed (at least the tip's)",
            m.headers.clone(),
        );
        c.register(
            "chaincore_chain_tip_age_seconds",
            "Seconds since the tip's header time (0 if it is in the future)",
            m.tip_age.clone(),
        );
        c.register(
            "chaincore_block_connect_seconds",
            "Time to connect one block to the active chain (checks, UTXO update, index)",
            m.block_connect.clone(),
        );
        c.register(
            "chaincore_chain_reorgs",
            "Reorganizations: the active chain lost blocks to a heavier one",
            m.reorgs.clone(),
        );
        c.register(
            "chaincore_chain_reorg_depth",
            "Blocks disconnected per reorganization",
            m.reorg_depth.clone(),
        );
        c.register(
            "chaincore_mempool_transactions",
            "Transactions in the mempool",
            m.mempool_txs.clone(),
        );
        c.register(
            "chaincore_mempool_bytes",
            "Serialized bytes of the mempool's transactions",
            m.mempool_bytes.clone(),
        );
        c.register(
            "chaincore_mempool_evictions",
            "Transactions evicted from a full mempool (lowest fee rate first)",
            m.mempool_evictions.clone(),
        );
        c.register(
            "chaincore_mempool_orphans",
            "Relayed transactions held while their parents are missing",
            m.orphans.clone(),
        );
        c.register(
            "chaincore_peers",
            "Connected peers by direction",
            m.peers.clone(),
        );
        c.register(
            "chaincore_p2p_sent_bytes",
            "Bytes queued to peers, by message type",
            m.bytes_sent.clone(),
        );
        c.register(
            "chaincore_p2p_received_bytes",
            "Bytes read from peers, by message type",
            m.bytes_received.clone(),
        );
        c.register(
            "chaincore_p2p_bans",
            "Peers banned for misbehaviour, by reason",
            m.bans.clone(),
        );
        c.register(
            "chaincore_p2p_disconnects",
            "Peer sessions ended, by reason",
            m.disconnects.clone(),
        );
        c.register(
            "chaincore_rpc_requests",
            "JSON-RPC calls, by method (unknown methods as `unknown`)",
            m.rpc_requests.clone(),
        );
        c.register(
            "chaincore_rpc_request_seconds",
            "JSON-RPC call latency, by method",
            m.rpc_seconds.clone(),
        );
        c.register(
            "chaincore_template_build_seconds",
            "Time the writer took to build a block template",
            m.template_build.clone(),
        );
        c.register(
            "process_resident_memory_bytes",
            "Resident memory of the node process",
            m.memory.clone(),
        );
        Metrics { registry: r, ..m }
    }

    /// One block connected in `took`.
    pub fn block_connected(&self, took: Duration) {
        self.block_connect.observe(took.as_secs_f64());
    }

    /// A reorganization that disconnected `depth` blocks.
    pub fn reorg(&self, depth: usize) {
        self.reorgs.inc();
        self.reorg_depth.observe(depth as f64);
    }

    /// `n` transactions evicted from the mempool.
    pub fn evicted(&self, n: usize) {
        self.mempool_evictions.inc_by(n as u64);
    }

    /// A template built in `took`.
    pub fn template_built(&self, took: Duration) {
        self.template_build.observe(took.as_secs_f64());
    }

    /// `bytes` of a `message` queued to a peer.
    pub fn sent(&self, message: &'static str, bytes: usize) {
        self.bytes_sent
            .get_or_create(&MessageLabel { message })
            .inc_by(bytes as u64);
    }

    /// `bytes` of a `message` read from a peer.
    pub fn received(&self, message: &'static str, bytes: usize) {
        self.bytes_received
            .get_or_create(&MessageLabel { message })
            .inc_by(bytes as u64);
    }

    /// A peer session ended for `reason`; `banned` if its IP was banned for it.
    pub fn disconnected(&self, reason: &'static str, banned: bool) {
        let label = ReasonLabel { reason };
        self.disconnects.get_or_create(&label).inc();
        if banned {
            self.bans.get_or_create(&label).inc();
        }
    }

    /// One RPC call to `method` (a known method's name, or `unknown`) that took `took`.
    pub fn rpc_call(&self, method: &'static str, took: Duration) {
        let label = MethodLabel { method };
        self.rpc_requests.get_or_create(&label).inc();
        self.rpc_seconds
            .get_or_create(&label)
            .observe(took.as_secs_f64());
    }

    /// Reads the levels from `node` and `p2p` and encodes every metric as OpenMetrics text.
    pub async fn render(
        &self,
        node: &crate::node::Node,
        p2p: &crate::p2p::P2pHandle,
    ) -> Result<String, std::fmt::Error> {
        let snap = node.snapshot();
        let tip = snap.index.tip();
        self.height.set(i64::from(tip.height));
        self.headers.set(
            i64::try_from(p2p.best_seen_height().max(u64::from(tip.height))).unwrap_or(i64::MAX),
        );
        let now = i64::try_from(crate::chain::unix_now()).unwrap_or(i64::MAX);
        self.tip_age.set((now - i64::from(tip.header.time)).max(0));
        self.mempool_txs.set(snap.mempool.len() as i64);
        self.mempool_bytes.set(snap.mempool.bytes() as i64);
        self.orphans.set(node.orphan_count() as i64);
        drop(snap);
        // A stopping P2P side has no peers.
        let peers = p2p.peer_info().await.unwrap_or_default();
        let inbound = peers.iter().filter(|p| p.inbound).count();
        for (direction, n) in [("inbound", inbound), ("outbound", peers.len() - inbound)] {
            self.peers
                .get_or_create(&Direction { direction })
                .set(n as i64);
        }
        self.memory.set(resident_bytes().unwrap_or(0));
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// Resident set size from `/proc/self/statm` (Linux), in bytes.
fn resident_bytes() -> Option<i64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: i64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    Some(pages * 4096)
}
