//! One peer's block download state for headers-first sync: the blocks to fetch from it, the
//! ones in flight, a lighter fork it is still sending (held until it has more work than our
//! tip), blocks refused as too far in the future, and its `addr` allowance.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chaincore::pow::Work;
use chaincore::BlockHash;

use super::addrbook::AddrRate;
use super::message::MAX_HEADERS;
use super::MAX_IN_FLIGHT;

/// Blocks one peer may have queued for download.
pub const MAX_QUEUED_BLOCKS: usize = 4 * MAX_HEADERS;

/// Per-peer block download state.
#[derive(Default)]
pub struct Download {
    /// The peer this state belongs to.
    pub peer: u64,
    /// Blocks to fetch, in order.
    pub queue: VecDeque<BlockHash>,
    /// Requested and not yet received, with when.
    pub in_flight: HashMap<BlockHash, Instant>,
    /// The pending fork ran past the cap: later headers were counted, not held.
    pub pending_overflow: bool,
    /// Blocks refused as `time-too-new`, and when they may be asked for again.
    pub future: HashMap<BlockHash, Instant>,
    /// `headers` messages in a row that connected to nothing we know.
    pub unconnecting: u32,
    /// The peer's allowance of `addr` entries.
    pub addr_rate: AddrRate,
    /// Hashes of a fork this peer is sending that does not (yet) have more work than ours.
    pub pending: Vec<BlockHash>,
    /// Last of `pending`, where the next headers must attach.
    pub pending_tip: Option<BlockHash>,
    /// Total work at `pending_tip`.
    pub pending_work: Work,
    /// Height of `pending_tip`.
    pub pending_height: u32,
}

impl Download {
    /// True if `hash` was refused as `time-too-new` and its time has not come yet.
    pub fn waiting_for_time(&self, hash: &BlockHash) -> bool {
        self.future.get(hash).is_some_and(|at| *at > Instant::now())
    }

    /// Forgets the blocks from the future whose time has come; true if there were any.
    pub fn future_due(&mut self) -> bool {
        let before = self.future.len();
        let now = Instant::now();
        self.future.retain(|_, at| *at > now);
        self.future.len() < before
    }

    /// Queues a block to fetch; false if the queue is full (the peer is far ahead, or lying:
    /// later `getheaders` rounds pick up where this one stopped).
    pub fn want(&mut self, hash: BlockHash) -> bool {
        if self.queue.len() >= MAX_QUEUED_BLOCKS {
            return false;
        }
        if !self.in_flight.contains_key(&hash) && !self.queue.contains(&hash) {
            self.queue.push_back(hash);
        }
        true
    }

    /// True if `hash` is queued or in flight from this peer.
    pub fn queued(&self, hash: &BlockHash) -> bool {
        self.in_flight.contains_key(hash) || self.queue.contains(hash)
    }

    /// `hash` arrived.
    pub fn received(&mut self, hash: &BlockHash) {
        self.in_flight.remove(hash);
    }

    /// Blocks to request now: queued ones that are not known yet and not being fetched from
    /// another peer (a request older than 60 s is up for grabs), up to [`MAX_IN_FLIGHT`].
    pub fn next_batch(
        &mut self,
        requested: &mut HashMap<BlockHash, (u64, Instant)>,
        known: impl Fn(&BlockHash) -> bool,
    ) -> Vec<BlockHash> {
        self.queue.retain(|h| !known(h));
        let mut batch = Vec::new();
        let mut i = 0;
        while self.in_flight.len() < MAX_IN_FLIGHT && i < self.queue.len() {
            let h = self.queue[i];
            let taken = requested
                .get(&h)
                .is_some_and(|(p, t)| *p != self.peer && t.elapsed() < Duration::from_secs(60));
            if taken {
                i += 1;
                continue;
            }
            self.queue.remove(i);
            self.in_flight.insert(h, Instant::now());
            requested.insert(h, (self.peer, Instant::now()));
            batch.push(h);
        }
        batch
    }

    /// True if a requested block is overdue.
    pub fn stalled(&self) -> bool {
        self.in_flight
            .values()
            .any(|t| t.elapsed() > Duration::from_secs(60))
    }
}
