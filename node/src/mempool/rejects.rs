//! Recently rejected transactions (Bitcoin Core's `m_recent_rejects`), so that a peer resending
//! an invalid transaction costs a lookup, not another round of signature checks. Forgotten when
//! the tip changes (a new block can make a rejected transaction valid, or its parents
//! available) and when full.

use std::collections::HashSet;

use chaincore::{BlockHash, Txid};

/// Most txids remembered before the cache starts over.
pub const MAX_REJECTS: usize = 50_000;

/// Txids rejected on the current tip.
#[derive(Default)]
pub struct Rejects {
    tip: BlockHash,
    txids: HashSet<Txid>,
}

impl Rejects {
    /// True if `txid` was rejected while `tip` was the tip.
    pub fn contains(&mut self, tip: &BlockHash, txid: &Txid) -> bool {
        self.follow(tip);
        self.txids.contains(txid)
    }

    /// Remembers that `txid` was rejected while `tip` was the tip.
    pub fn insert(&mut self, tip: &BlockHash, txid: Txid) {
        self.follow(tip);
        if self.txids.len() >= MAX_REJECTS {
            self.txids.clear();
        }
        self.txids.insert(txid);
    }

    /// Forgets everything if the tip moved.
    fn follow(&mut self, tip: &BlockHash) {
        if self.tip != *tip {
            self.tip = *tip;
            self.txids.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_tip_or_a_full_cache_forgets() {
        let (a, b) = (BlockHash([1; 32]), BlockHash([2; 32]));
        let mut r = Rejects::default();
        r.insert(&a, Txid([7; 32]));
        assert!(r.contains(&a, &Txid([7; 32])));
        assert!(!r.contains(&a, &Txid([8; 32])));
        assert!(!r.contains(&b, &Txid([7; 32])), "cleared on a new tip");
        for i in 0..MAX_REJECTS as u32 {
            let mut t = [0u8; 32];
            t[..4].copy_from_slice(&i.to_le_bytes());
            r.insert(&b, Txid(t));
        }
        r.insert(&b, Txid([9; 32]));
        assert!(r.contains(&b, &Txid([9; 32])));
        assert_eq!(r.txids.len(), 1, "started over when full");
    }
}
