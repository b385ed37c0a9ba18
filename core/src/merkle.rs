//! The transaction merkle tree committed to in a block header.

use crate::hash::{sha256d, TxMerkleNode, Txid};

/// Computes Bitcoin's merkle root of `txids` and whether the tree is *mutated*.
///
/// An odd node at any level is paired with itself. That lets two different transaction lists
/// share a root (CVE-2012-2459): a list whose last transactions repeat the ones before them at
/// some level. Such a pairing of two identical nodes is reported as `mutated = true`, exactly as
/// Bitcoin Core's `ComputeMerkleRoot` does; a block with a mutated tree must be rejected
/// (`bad-txns-duplicate`) without marking its hash invalid. Returns the zero hash for no txids.
pub fn compute_merkle_root(txids: &[Txid]) -> (TxMerkleNode, bool) {
    let mut level: Vec<[u8; 32]> = txids.iter().map(|t| t.0).collect();
    if level.is_empty() {
        return (TxMerkleNode::ZERO, false);
    }
    let mut mutated = false;
    while level.len() > 1 {
        for pair in level.chunks_exact(2) {
            mutated |= pair[0] == pair[1];
        }
        if level.len() % 2 == 1 {
            let last = level[level.len() - 1];
            level.push(last);
        }
        level = level
            .chunks_exact(2)
            .map(|pair| {
                let mut buf = [0u8; 64];
                buf[..32].copy_from_slice(&pair[0]);
                buf[32..].copy_from_slice(&pair[1]);
                sha256d(&buf)
            })
            .collect();
    }
    (TxMerkleNode(level[0]), mutated)
}

/// Txids with the merkle root computed from them once, and whether their tree is mutated (see
/// [`compute_merkle_root`]). Made only from the txids themselves, so a holder that finds
/// [`MerkleTxids::root`] in a header knows the txids hash to it without hashing them again: a
/// block rebuilt from a compact block, or checked before it is relayed, is checked once on its
/// way to the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MerkleTxids {
    txids: Vec<Txid>,
    root: TxMerkleNode,
    mutated: bool,
}

impl MerkleTxids {
    /// Computes the merkle root of `txids`.
    pub fn new(txids: Vec<Txid>) -> MerkleTxids {
        let (root, mutated) = compute_merkle_root(&txids);
        MerkleTxids {
            txids,
            root,
            mutated,
        }
    }

    /// The merkle root of the txids.
    pub fn root(&self) -> TxMerkleNode {
        self.root
    }

    /// Whether their tree pairs two identical nodes (CVE-2012-2459).
    pub fn mutated(&self) -> bool {
        self.mutated
    }

    /// The txids, in block order.
    pub fn txids(&self) -> &[Txid] {
        &self.txids
    }

    /// The txids, in block order.
    pub fn into_txids(self) -> Vec<Txid> {
        self.txids
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: u8) -> Vec<Txid> {
        (0..n).map(|i| Txid(sha256d(&[i]))).collect()
    }

    #[test]
    fn merkle_txids_carry_the_root_and_mutation_of_their_txids() {
        for n in [1, 2, 3, 7] {
            let t = ids(n);
            let m = MerkleTxids::new(t.clone());
            assert_eq!((m.root(), m.mutated()), compute_merkle_root(&t));
            assert_eq!(m.into_txids(), t);
        }
        let mut doubled = ids(3);
        doubled.push(doubled[2]);
        assert!(MerkleTxids::new(doubled).mutated());
    }

    #[test]
    fn single_transaction_root_is_its_txid() {
        let t = ids(1);
        assert_eq!(compute_merkle_root(&t), (TxMerkleNode(t[0].0), false));
    }

    #[test]
    fn duplicated_tail_gives_same_root_and_is_flagged() {
        // [a b c] and [a b c c] share a root; only the second is flagged as mutated.
        let three = ids(3);
        let mut four = three.clone();
        four.push(three[2]);
        let (root3, m3) = compute_merkle_root(&three);
        let (root4, m4) = compute_merkle_root(&four);
        assert_eq!(root3, root4);
        assert!(!m3);
        assert!(m4);
        // [a b c d e f] vs [a b c d e f e f]: the duplication is one level up.
        let six = ids(6);
        let mut eight = six.clone();
        eight.extend_from_slice(&six[4..6]);
        assert_eq!(compute_merkle_root(&six).0, compute_merkle_root(&eight).0);
        assert!(compute_merkle_root(&eight).1);
        assert!(!compute_merkle_root(&six).1);
    }
}
