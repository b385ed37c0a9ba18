//! Fee estimates for `estimatesmartfee`, from what the node sees: the mempool's backlog and
//! the fee rates that full recent blocks needed.
//!
//! For a target of `t` blocks the estimate is the highest of:
//! - the minimum relay fee rate;
//! - the backlog rate: walking the mempool from the highest fee rate down, the rate of the
//!   transaction at which `t` blocks' worth of bytes (1,000,000 each) is used up (none if the
//!   whole pool fits in `t` blocks);
//! - the full-block floor: over the last [`RECENT_BLOCKS`] blocks that were at least 90% full,
//!   the median of each one's lowest included fee rate (none if no recent block was full).
//!
//! With no transaction in the last [`RECENT_BLOCKS`] blocks and an empty mempool there is no
//! data, and the answer says so (as Bitcoin Core's does), with no rate.

use chaincore::validation::MAX_BLOCK_SIZE;

use crate::mempool::MIN_RELAY_FEE_RATE;

/// Blocks looked back at.
pub const RECENT_BLOCKS: u32 = 20;
/// Largest target accepted (Bitcoin Core's).
pub const MAX_TARGET: u32 = 1008;

/// One transaction's fee and size.
#[derive(Clone, Copy, Debug)]
pub struct Paid {
    /// Fee in units.
    pub fee: i64,
    /// Serialized size in bytes.
    pub size: usize,
}

impl Paid {
    fn rate(&self) -> f64 {
        self.fee as f64 / self.size.max(1) as f64
    }
}

/// A recent block as the estimator sees it.
#[derive(Clone, Debug)]
pub struct RecentBlock {
    /// Its size in bytes.
    pub size: usize,
    /// Its non-coinbase transactions.
    pub txs: Vec<Paid>,
}

/// The fee rate in units per byte to be confirmed within `target` blocks, or `None` without
/// data. `pool` is the mempool, `recent` the last blocks, newest first.
pub fn estimate(target: u32, pool: &[Paid], recent: &[RecentBlock]) -> Option<f64> {
    if pool.is_empty() && recent.iter().all(|b| b.txs.is_empty()) {
        return None;
    }
    let mut rate = MIN_RELAY_FEE_RATE as f64;
    if let Some(backlog) = backlog_rate(target, pool) {
        rate = rate.max(backlog);
    }
    if let Some(floor) = full_block_floor(recent) {
        rate = rate.max(floor);
    }
    Some(rate)
}

/// The rate at which `target` blocks of the highest-paying pool transactions are used up.
fn backlog_rate(target: u32, pool: &[Paid]) -> Option<f64> {
    let mut sorted: Vec<Paid> = pool.to_vec();
    sorted.sort_by(|a, b| b.rate().total_cmp(&a.rate()));
    let room = u64::from(target) * MAX_BLOCK_SIZE as u64;
    let mut used = 0u64;
    for p in sorted {
        used += p.size as u64;
        if used > room {
            return Some(p.rate());
        }
    }
    None
}

/// The median lowest rate of recent blocks at least 90% full.
fn full_block_floor(recent: &[RecentBlock]) -> Option<f64> {
    let mut floors: Vec<f64> = recent
        .iter()
        .filter(|b| b.size * 10 >= MAX_BLOCK_SIZE * 9)
        .filter_map(|b| b.txs.iter().map(Paid::rate).min_by(f64::total_cmp))
        .collect();
    if floors.is_empty() {
        return None;
    }
    floors.sort_by(f64::total_cmp);
    Some(floors[floors.len() / 2])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paid(rate: i64, size: usize) -> Paid {
        Paid {
            fee: rate * size as i64,
            size,
        }
    }

    #[test]
    fn no_data_without_transactions_anywhere() {
        let empty = RecentBlock {
            size: 300,
            txs: vec![],
        };
        assert_eq!(estimate(1, &[], &[empty.clone(), empty]), None);
    }

    #[test]
    fn a_pool_that_fits_needs_only_the_relay_fee() {
        let pool: Vec<Paid> = (1..=10).map(|r| paid(r * 2, 250)).collect();
        assert_eq!(estimate(1, &pool, &[]), Some(1.0));
    }

    #[test]
    fn a_backlog_of_three_blocks_prices_each_target() {
        // A ladder: 100 transactions of 10,000 bytes at each rate 1..=30 (3 MB in all).
        let pool: Vec<Paid> = (1..=30)
            .flat_map(|r| std::iter::repeat_n(paid(r, 10_000), 10))
            .collect();
        // One block holds the top 100 (rates 30..21); the 101st pays 20.
        assert_eq!(estimate(1, &pool, &[]), Some(20.0));
        assert_eq!(estimate(2, &pool, &[]), Some(10.0));
        // Three blocks take the whole pool: the relay fee is enough.
        assert_eq!(estimate(3, &pool, &[]), Some(1.0));
    }

    #[test]
    fn full_blocks_set_a_floor_and_sparse_ones_do_not() {
        let full = |low: i64| RecentBlock {
            size: 950_000,
            txs: vec![paid(low, 500), paid(low + 10, 500)],
        };
        let sparse = RecentBlock {
            size: 10_000,
            txs: vec![paid(50, 500)],
        };
        assert_eq!(
            estimate(6, &[], &[full(4), full(8), full(6), sparse.clone()]),
            Some(6.0)
        );
        assert_eq!(estimate(6, &[], &[sparse]), Some(1.0));
    }
}
