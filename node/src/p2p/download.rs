//! One peer's block download state for headers-first sync: the blocks to fetch from it, the
//! ones in flight, a lighter fork it is still sending (held until it has more work than our
//! tip), blocks refused as too far in the future, and its `addr` allowance.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use chaincore::p2p::compact::PartialBlock;
use chaincore::pow::Work;
use chaincore::BlockHash;

use super::addrbook::AddrRate;
use super::message::MAX_HEADERS;
use super::MAX_IN_FLIGHT;

/// A block requested from one peer is asked of no other for this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Blocks one peer may have queued for download.
pub const MAX_QUEUED_BLOCKS: usize = 4 * MAX_HEADERS;

/// Per-peer block download state.
#[derive(Default)]
pub struct Download {
    /// Blocks to fetch, in order.
    pub queue: VecDeque<BlockHash>,
    /// Requested and not yet received, with when.
    pub in_flight: HashMap<BlockHash, Instant>,
    /// The pending fork ran past the cap: later headers were counted, not held.
    pub pending_overflow: bool,
    /// Blocks refused as `time-too-new`, and when they may be asked for again.
    pub future: HashMap<BlockHash, Instant>,
    /// When we last asked this peer for the chain leading to headers that connected to
    /// nothing we know, until a `headers` message connects or is empty.
    pub unconnecting_asked: Option<Instant>,
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
    /// A block being rebuilt from this peer's compact block, waiting for the `blocktxn` we
    /// asked for (its hash is in flight meanwhile, so a peer that never answers stalls).
    pub compact: Option<PartialBlock>,
    /// The peer's `mempool` request was answered (once per connection, as it can be large).
    pub mempool_served: bool,
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

    /// Drops queued blocks that `known` says we have.
    pub fn prune(&mut self, known: impl Fn(&BlockHash) -> bool) {
        self.queue.retain(|h| !known(h));
    }

    /// How many more blocks may be requested from this peer now (up to [`MAX_IN_FLIGHT`]).
    pub fn room(&self) -> usize {
        MAX_IN_FLIGHT.saturating_sub(self.in_flight.len())
    }

    /// The blocks in `claimed` were requested: they leave the queue and are in flight.
    pub fn requested(&mut self, claimed: &[BlockHash]) {
        let now = Instant::now();
        self.queue.retain(|h| !claimed.contains(h));
        for h in claimed {
            self.in_flight.insert(*h, now);
        }
    }

    /// True if a requested block is overdue.
    pub fn stalled(&self) -> bool {
        self.in_flight
            .values()
            .any(|t| t.elapsed() > REQUEST_TIMEOUT)
    }
}

/// Blocks requested from some peer, by whom and when, for all peers together (the manager
/// holds it): peers fetching the same chain split the work instead of downloading every block
/// from everyone. An entry goes when its block arrives or its peer disconnects.
#[derive(Default)]
pub struct Requested {
    by: HashMap<BlockHash, (u64, Instant)>,
}

impl Requested {
    /// Of `candidates`, in order, up to `room` that no other peer was asked for in the last
    /// [`REQUEST_TIMEOUT`] (an older request is up for grabs): recorded as requested from
    /// `peer`, and returned.
    pub fn claim(&mut self, peer: u64, candidates: &[BlockHash], room: usize) -> Vec<BlockHash> {
        let mut claimed = Vec::new();
        for h in candidates {
            if claimed.len() >= room {
                break;
            }
            let taken = self
                .by
                .get(h)
                .is_some_and(|(p, t)| *p != peer && t.elapsed() < REQUEST_TIMEOUT);
            if !taken {
                self.by.insert(*h, (peer, Instant::now()));
                claimed.push(*h);
            }
        }
        claimed
    }

    /// `hash` arrived, from whichever peer.
    pub fn arrived(&mut self, hash: &BlockHash) {
        self.by.remove(hash);
    }

    /// Forgets what `peer` was asked for (it disconnected): others may fetch it at once.
    pub fn release(&mut self, peer: u64) {
        self.by.retain(|_, (p, _)| *p != peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(n: u8) -> Vec<BlockHash> {
        (1..=n).map(|i| BlockHash([i; 32])).collect()
    }

    /// Two peers offered the same blocks split them; a block that arrived, or whose peer
    /// left, can be claimed again; a peer may claim again what it was asked for.
    #[test]
    fn peers_split_requested_blocks() {
        let mut requested = Requested::default();
        let all = hashes(6);
        assert_eq!(requested.claim(1, &all, 4), all[..4]);
        assert_eq!(requested.claim(2, &all, 4), all[4..]);
        assert_eq!(
            requested.claim(1, &all[..1], 4),
            all[..1],
            "its own request"
        );
        requested.arrived(&all[0]);
        assert_eq!(requested.claim(2, &all[..1], 4), all[..1]);
        requested.release(1);
        assert_eq!(requested.claim(2, &all, 16), all);
        assert!(requested.claim(1, &all, 16).is_empty());
        assert!(requested.claim(2, &all, 0).is_empty(), "no room");
    }

    #[test]
    fn requested_blocks_move_from_the_queue_to_in_flight() {
        let mut sync = Download::default();
        let all = hashes(3);
        for h in &all {
            assert!(sync.want(*h));
        }
        sync.prune(|h| *h == all[0]);
        assert_eq!(sync.queue, &all[1..]);
        sync.requested(&all[2..]);
        assert_eq!(sync.queue, &all[1..2]);
        assert!(sync.in_flight.contains_key(&all[2]));
        assert_eq!(sync.room(), MAX_IN_FLIGHT - 1);
        sync.received(&all[2]);
        assert_eq!(sync.room(), MAX_IN_FLIGHT);
    }
}
