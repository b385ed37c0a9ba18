//! Orphan transactions: relayed transactions whose parents we do not have yet, kept a little
//! while so they enter the pool once the parents arrive (Bitcoin Core's orphanage).
//!
//! At most [`MAX_ORPHANS`], each at most [`MAX_ORPHAN_SIZE`] bytes; one older than
//! [`ORPHAN_EXPIRY`] is dropped; all of a peer's orphans go when it disconnects; when full, an
//! arbitrary one makes room (Core evicts at random).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chaincore::{Transaction, Txid};

/// Most orphans kept.
pub const MAX_ORPHANS: usize = 100;
/// How long an orphan is kept.
pub const ORPHAN_EXPIRY: Duration = Duration::from_secs(5 * 60);
/// Largest orphan kept (Core's standard size).
pub const MAX_ORPHAN_SIZE: usize = 100_000;

struct Orphan {
    tx: Transaction,
    peer: u64,
    expires: Instant,
}

/// The orphan pool.
#[derive(Default)]
pub struct Orphans {
    by_txid: HashMap<Txid, Orphan>,
    /// Parent txid → orphans spending one of its outputs.
    by_parent: HashMap<Txid, HashSet<Txid>>,
}

impl Orphans {
    /// Keeps `tx` (`txid`), sent by peer `peer`, at `now`. False if it is too large or known.
    pub fn add(&mut self, tx: Transaction, txid: Txid, peer: u64, now: Instant) -> bool {
        if self.by_txid.contains_key(&txid) || tx.size() > MAX_ORPHAN_SIZE {
            return false;
        }
        self.expire(now);
        if self.by_txid.len() >= MAX_ORPHANS {
            if let Some(victim) = self.by_txid.keys().next().copied() {
                self.remove(&victim);
            }
        }
        for input in &tx.input {
            self.by_parent
                .entry(input.previous_output.txid)
                .or_default()
                .insert(txid);
        }
        self.by_txid.insert(
            txid,
            Orphan {
                tx,
                peer,
                expires: now + ORPHAN_EXPIRY,
            },
        );
        true
    }

    /// Takes out the orphans that spend outputs of `parent`, with the peer that sent each.
    pub fn take_children(&mut self, parent: &Txid) -> Vec<(Txid, Transaction, u64)> {
        let kids = self.by_parent.remove(parent).unwrap_or_default();
        kids.into_iter()
            .filter_map(|txid| {
                let o = self.remove(&txid)?;
                Some((txid, o.tx, o.peer))
            })
            .collect()
    }

    /// Drops every orphan peer `peer` sent.
    pub fn remove_peer(&mut self, peer: u64) {
        let theirs: Vec<Txid> = self
            .by_txid
            .iter()
            .filter(|(_, o)| o.peer == peer)
            .map(|(t, _)| *t)
            .collect();
        for txid in theirs {
            self.remove(&txid);
        }
    }

    /// Drops orphans that expired by `now`.
    pub fn expire(&mut self, now: Instant) {
        let old: Vec<Txid> = self
            .by_txid
            .iter()
            .filter(|(_, o)| o.expires <= now)
            .map(|(t, _)| *t)
            .collect();
        for txid in old {
            self.remove(&txid);
        }
    }

    /// Every orphan with its txid (compact blocks are rebuilt from these too).
    pub fn transactions(&self) -> impl Iterator<Item = (&Txid, &Transaction)> {
        self.by_txid.iter().map(|(txid, o)| (txid, &o.tx))
    }

    /// True if `txid` is kept as an orphan.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.by_txid.contains_key(txid)
    }

    /// Orphans kept.
    pub fn len(&self) -> usize {
        self.by_txid.len()
    }

    fn remove(&mut self, txid: &Txid) -> Option<Orphan> {
        let o = self.by_txid.remove(txid)?;
        for input in &o.tx.input {
            if let Some(kids) = self.by_parent.get_mut(&input.previous_output.txid) {
                kids.remove(txid);
                if kids.is_empty() {
                    self.by_parent.remove(&input.previous_output.txid);
                }
            }
        }
        Some(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincore::{Amount, OutPoint, Script, TxIn, TxOut};

    fn orphan(parent: u8, n: u32) -> (Transaction, Txid) {
        let tx = Transaction {
            version: 1,
            input: vec![TxIn {
                previous_output: OutPoint {
                    txid: Txid([parent; 32]),
                    vout: n,
                },
                script_sig: Script::new(),
                sequence: u32::MAX,
            }],
            output: vec![TxOut {
                value: Amount::from_units(1),
                script_pubkey: Script::new_p2pkh(&[1; 20]),
            }],
            lock_time: 0,
        };
        let txid = tx.compute_txid();
        (tx, txid)
    }

    #[test]
    fn bounded_expiring_and_gone_with_their_peer() {
        let now = Instant::now();
        let mut pool = Orphans::default();
        for n in 0..150 {
            let (tx, txid) = orphan(1, n);
            assert!(pool.add(tx, txid, 7, now));
        }
        assert_eq!(pool.len(), MAX_ORPHANS);
        let (tx, txid) = orphan(2, 0);
        pool.add(tx, txid, 8, now);
        pool.remove_peer(7);
        assert_eq!(pool.len(), 1);
        assert!(pool.contains(&txid));
        // Five minutes later it is gone.
        pool.expire(now + ORPHAN_EXPIRY);
        assert_eq!(pool.len(), 0);
    }

    #[test]
    fn children_come_out_when_their_parent_arrives() {
        let now = Instant::now();
        let mut pool = Orphans::default();
        let (a, a_id) = orphan(3, 0);
        let (b, b_id) = orphan(3, 1);
        let (c, c_id) = orphan(4, 0);
        pool.add(a, a_id, 1, now);
        pool.add(b, b_id, 2, now);
        pool.add(c, c_id, 1, now);
        let mut kids: Vec<Txid> = pool
            .take_children(&Txid([3; 32]))
            .into_iter()
            .map(|(t, _, _)| t)
            .collect();
        kids.sort();
        let mut want = vec![a_id, b_id];
        want.sort();
        assert_eq!(kids, want);
        assert_eq!(pool.len(), 1);
        assert!(pool.contains(&c_id));
    }
}
