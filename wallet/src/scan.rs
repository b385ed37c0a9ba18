//! The restore scan: walks each chain of an HD account through the node's address index and
//! finds the last used address, stopping after `gap limit` unused addresses in a row (BIP44's
//! address gap limit, 20 by default as in Electrum and Sparrow).

use crate::hd::{Account, Chain};
use crate::node::{NodeClient, MAX_BATCH};

/// What the scan found on one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainScan {
    /// Highest index with any transaction, if one has.
    pub last_used: Option<u32>,
    /// How many addresses have transactions.
    pub used: usize,
    /// How many addresses were asked about.
    pub scanned: u32,
}

impl ChainScan {
    /// How many addresses of the chain the restored wallet keeps: every one up to the last
    /// used.
    pub fn keep(&self) -> u32 {
        self.last_used.map_or(0, |i| i + 1)
    }
}

/// Scans `chain` of `account` from index 0 until `gap_limit` (at least 1) addresses in a row
/// after the last used one have no transaction, asking the node in batches.
pub async fn scan_chain(
    node: &NodeClient,
    account: &Account,
    chain: Chain,
    gap_limit: u32,
) -> anyhow::Result<ChainScan> {
    let mut scan = ChainScan {
        last_used: None,
        used: 0,
        scanned: 0,
    };
    loop {
        let stop = next_stop(scan.last_used, gap_limit);
        if scan.scanned >= stop {
            return Ok(scan);
        }
        let end = stop.min(scan.scanned.saturating_add(MAX_BATCH as u32));
        let addresses = (scan.scanned..end)
            .map(|i| account.address(chain, i))
            .collect::<Result<Vec<_>, _>>()?;
        for (i, used) in (scan.scanned..end).zip(node.used(&addresses).await?) {
            if used {
                scan.last_used = Some(i);
                scan.used += 1;
            }
        }
        scan.scanned = end;
    }
}

/// The index the scan must reach (exclusive) to have seen `gap_limit` unused addresses after
/// `last_used`.
fn next_stop(last_used: Option<u32>, gap_limit: u32) -> u32 {
    last_used
        .map_or(0, |i| i.saturating_add(1))
        .saturating_add(gap_limit.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scan_runs_a_full_gap_past_the_last_used_address() {
        assert_eq!(next_stop(None, 20), 20);
        assert_eq!(next_stop(Some(0), 20), 21);
        assert_eq!(next_stop(Some(19), 20), 40);
        assert_eq!(next_stop(Some(4), 1), 6);
        assert_eq!(
            next_stop(None, 0),
            1,
            "a gap limit of 0 still looks at index 0"
        );
        assert_eq!(next_stop(Some(u32::MAX - 1), 20), u32::MAX);
        let found = ChainScan {
            last_used: Some(4),
            used: 3,
            scanned: 25,
        };
        assert_eq!(found.keep(), 5);
        assert_eq!(
            ChainScan {
                last_used: None,
                used: 0,
                scanned: 20
            }
            .keep(),
            0
        );
    }
}
