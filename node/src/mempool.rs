//! The memory pool: validated transactions waiting for a block.
//!
//! Chains of unconfirmed transactions are allowed; a transaction that spends an outpoint some
//! pool transaction already spends is refused (first seen wins). The pool is capped in bytes and
//! evicts the lowest fee rate first, with descendants. Block templates take transactions by
//! ancestor fee rate, parents always before children.
//!
//! The pool is kept in persistent collections: a clone (what a snapshot holds) costs a few
//! reference counts and shares every entry with the writer's pool.

use std::collections::HashSet;
use std::sync::Arc;

use chaincore::validation::{self, Coin, RuleError};
use chaincore::{Amount, OutPoint, Transaction, TxOut, Txid};

use crate::store::StoreError;

pub mod orphans;
pub mod persist;
pub mod rejects;

/// Minimum fee rate to enter the pool, in units per byte.
pub const MIN_RELAY_FEE_RATE: i64 = 1;

/// Most unconfirmed ancestors a pool transaction may have (with itself: Bitcoin Core's 25).
pub const MAX_ANCESTORS: usize = 24;

/// Largest transaction relayed or accepted into the pool, in bytes (Bitcoin Core's standard
/// size, 400,000 weight units); blocks may hold larger ones.
pub const MAX_STANDARD_TX_SIZE: usize = 100_000;

/// Default pool cap in serialized bytes (100 MB).
pub const DEFAULT_MAX_BYTES: usize = 100_000_000;

/// Why a transaction was not accepted. Displayed as Bitcoin Core's reject reason.
#[derive(Debug, thiserror::Error)]
pub enum MempoolError {
    /// A consensus rule failed.
    #[error("{0}")]
    Rule(#[from] RuleError),
    /// Coinbase transactions only come in blocks.
    #[error("coinbase")]
    Coinbase,
    /// Larger than [`MAX_STANDARD_TX_SIZE`].
    #[error("tx-size")]
    TxSize,
    /// An output worth less than spending it would cost at the dust relay fee
    /// ([`chaincore::TxOut::is_dust`]; Bitcoin Core's reject reason).
    #[error("dust")]
    Dust,
    /// Already in the pool.
    #[error("txn-already-in-mempool")]
    AlreadyInMempool,
    /// Already confirmed (its outputs are in the UTXO set).
    #[error("txn-already-known")]
    AlreadyKnown,
    /// Spends an outpoint a pool transaction already spends.
    #[error("txn-mempool-conflict")]
    Conflict,
    /// Pays less than the minimum relay fee.
    #[error("min relay fee not met, {fee} < {required}")]
    FeeTooLow {
        /// Fee paid, units.
        fee: i64,
        /// Fee required, units.
        required: i64,
    },
    /// The pool is full of transactions paying at least as much per byte.
    #[error("mempool full")]
    Full,
    /// Too many unconfirmed ancestors.
    #[error("too-long-mempool-chain")]
    TooLongChain,
    /// The node is shutting down and takes no more transactions.
    #[error("the node is shutting down")]
    Stopping,
    /// The store failed while the transaction was checked: not the transaction's fault, and
    /// fatal for the node.
    #[error("{0}")]
    Store(#[from] StoreError),
}

impl MempoolError {
    /// True if the node must stop (the store failed), as [`crate::chain::ChainError::is_fatal`].
    pub fn is_fatal(&self) -> bool {
        matches!(self, MempoolError::Store(_))
    }

    /// True if the transaction breaks a consensus rule no block could make it pass (Bitcoin
    /// Core's `TX_CONSENSUS`): a peer relaying it misbehaves. Missing or not yet spendable
    /// inputs, lock times and every policy rule are not such failures.
    pub fn is_consensus(&self) -> bool {
        match self {
            MempoolError::Rule(r) => !matches!(
                r,
                RuleError::InputsMissingOrSpent
                    | RuleError::NonFinal
                    | RuleError::PrematureCoinbaseSpend
            ),
            MempoolError::Coinbase => true,
            _ => false,
        }
    }
}

/// One pool transaction and what we know about it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Txid,
    /// Inputs minus outputs.
    pub fee: Amount,
    /// Serialized size.
    pub size: usize,
    /// Unix time it entered.
    pub time: u64,
    /// Pool transactions whose outputs it spends.
    pub parents: HashSet<Txid>,
    /// The coins it spends (from the chain or from pool parents), in input order.
    pub spent: Vec<Coin>,
    /// Order of arrival in the pool (parents always before children).
    seq: u64,
}

impl Entry {
    /// Fee per byte as a float, for ordering.
    fn fee_rate(&self) -> f64 {
        self.fee.to_units() as f64 / self.size.max(1) as f64
    }
}

/// The pool maps' hasher: a fast keyed hash seeded per process, as std's SipHash is (txids
/// and outpoints are hashes already, and an attacker does not know the seed); a block's
/// connect looks up every one of its transactions in the pool.
type Hasher = foldhash::fast::RandomState;

/// A persistent hash map with [`Hasher`].
type PersistentMap<K, V> = imbl::GenericHashMap<K, V, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// A persistent hash set with [`Hasher`].
type PersistentSet<K> = imbl::GenericHashSet<K, Hasher, imbl::shared_ptr::DefaultSharedPtr>;

/// The pool. Cloning shares the structure (see the module docs).
#[derive(Debug, Clone)]
pub struct Mempool {
    entries: PersistentMap<Txid, Arc<Entry>>,
    /// Outpoint → the pool transaction spending it.
    spenders: PersistentMap<OutPoint, Txid>,
    /// Parent → children.
    children: PersistentMap<Txid, PersistentSet<Txid>>,
    bytes: usize,
    max_bytes: usize,
    next_seq: u64,
}

/// What the pool needs from the chain to validate a transaction.
pub struct ChainView<'a> {
    /// Looks up an unspent output in the chain's UTXO set.
    pub coin: &'a dyn Fn(&OutPoint) -> Result<Option<Coin>, StoreError>,
    /// Height of the block the transaction would go into (tip + 1).
    pub next_height: u32,
    /// Median time past of the tip (for lock times).
    pub median_time_past: i64,
}

impl Mempool {
    /// An empty pool holding at most `max_bytes` of transactions.
    pub fn new(max_bytes: usize) -> Mempool {
        Mempool {
            entries: PersistentMap::default(),
            spenders: PersistentMap::default(),
            children: PersistentMap::default(),
            bytes: 0,
            max_bytes,
            next_seq: 0,
        }
    }

    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Total serialized bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The cap in bytes.
    pub fn max_bytes(&self) -> usize {
        self.max_bytes
    }

    /// A pool transaction.
    pub fn get(&self, txid: &Txid) -> Option<&Entry> {
        self.entries.get(txid).map(|e| &**e)
    }

    /// True if `txid` is in the pool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// All entries, in no particular order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values().map(|e| &**e)
    }

    /// Txids of pool transactions spending `txid`'s outputs.
    pub fn children_of(&self, txid: &Txid) -> impl Iterator<Item = &Txid> {
        self.children.get(txid).into_iter().flatten()
    }

    /// The pool transaction spending `outpoint`, if any.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spenders.get(outpoint).copied()
    }

    /// An output created by a pool transaction, as a coin (height = `next_height`).
    pub fn coin(&self, outpoint: &OutPoint, next_height: u32) -> Option<Coin> {
        let entry = self.entries.get(&outpoint.txid)?;
        let output = entry.tx.output.get(outpoint.vout as usize)?.clone();
        Some(Coin {
            output,
            height: next_height,
            is_coinbase: false,
        })
    }

    /// Validates `tx` against the chain and the pool without adding it. Returns the entry that
    /// [`Mempool::insert`] would add. With `verified`, signatures known good are not checked again.
    pub fn check(
        &self,
        tx: Transaction,
        view: &ChainView<'_>,
        now: u64,
        verified: &dyn Fn(&Txid) -> bool,
    ) -> Result<Entry, MempoolError> {
        let txid = tx.compute_txid();
        if self.entries.contains_key(&txid) {
            return Err(MempoolError::AlreadyInMempool);
        }
        validation::check_transaction(&tx)?;
        if tx.is_coinbase() {
            return Err(MempoolError::Coinbase);
        }
        if tx.size() > MAX_STANDARD_TX_SIZE {
            return Err(MempoolError::TxSize);
        }
        if tx.output.iter().any(TxOut::is_dust) {
            return Err(MempoolError::Dust);
        }
        if !tx.is_final(view.next_height, view.median_time_past) {
            return Err(RuleError::NonFinal.into());
        }
        if tx
            .input
            .iter()
            .any(|i| self.spenders.contains_key(&i.previous_output))
        {
            return Err(MempoolError::Conflict);
        }
        let mut spent = Vec::with_capacity(tx.input.len());
        let mut parents = HashSet::new();
        for input in &tx.input {
            let prev = &input.previous_output;
            if let Some(coin) = self.coin(prev, view.next_height) {
                parents.insert(prev.txid);
                spent.push(coin);
            } else if let Some(coin) = (view.coin)(prev)? {
                spent.push(coin);
            } else {
                // Confirmed already? One lookup of one output that can be in the UTXO set
                // (Core's check), not one per output: a transaction with 100,000 outputs
                // costs no more to refuse than one with one.
                let already_confirmed = match tx
                    .output
                    .iter()
                    .position(|o| o.script_pubkey.op_return_data().is_none())
                {
                    Some(vout) => (view.coin)(&OutPoint {
                        txid,
                        vout: vout as u32,
                    })?
                    .is_some(),
                    None => false,
                };
                return Err(if already_confirmed {
                    MempoolError::AlreadyKnown
                } else {
                    RuleError::InputsMissingOrSpent.into()
                });
            }
        }
        if self.ancestor_count(&parents) > MAX_ANCESTORS {
            return Err(MempoolError::TooLongChain);
        }
        let refs: Vec<&Coin> = spent.iter().collect();
        let fee = validation::check_tx_inputs(&tx, &refs, view.next_height)?;
        let size = tx.size();
        let required = MIN_RELAY_FEE_RATE * size as i64;
        if fee.to_units() < required {
            return Err(MempoolError::FeeTooLow {
                fee: fee.to_units(),
                required,
            });
        }
        if !verified(&txid) {
            for (i, coin) in spent.iter().enumerate() {
                validation::verify_input(&tx, i, &coin.output.script_pubkey)
                    .map_err(RuleError::Script)?;
            }
        }
        Ok(Entry {
            tx,
            txid,
            fee,
            size,
            time: now,
            parents,
            spent,
            seq: 0,
        })
    }

    /// Adds a checked entry, then evicts the lowest fee rates while over the cap. Fails with
    /// [`MempoolError::Full`] if the new entry itself was evicted.
    pub fn insert(&mut self, mut entry: Entry) -> Result<Vec<Txid>, MempoolError> {
        entry.seq = self.next_seq;
        self.next_seq += 1;
        let txid = entry.txid;
        for input in &entry.tx.input {
            self.spenders.insert(input.previous_output, txid);
        }
        for parent in &entry.parents {
            self.children.entry(*parent).or_default().insert(txid);
        }
        self.bytes += entry.size;
        self.entries.insert(txid, Arc::new(entry));
        let evicted = self.trim();
        crate::metrics::get().evicted(evicted.len());
        if evicted.contains(&txid) {
            return Err(MempoolError::Full);
        }
        Ok(evicted)
    }

    /// The pool's transactions in arrival order (parents first), as saved to disk.
    pub fn in_order(&self) -> Vec<Transaction> {
        let mut entries: Vec<&Entry> = self.entries().collect();
        entries.sort_by_key(|e| e.seq);
        entries.into_iter().map(|e| e.tx.clone()).collect()
    }

    /// Empties the pool, returning its transactions in arrival order (parents first), to be
    /// validated again after a reorg.
    pub fn drain_in_order(&mut self) -> Vec<Transaction> {
        let txs = self.in_order();
        self.entries.clear();
        self.spenders.clear();
        self.children.clear();
        self.bytes = 0;
        txs
    }

    /// Evicts lowest-fee-rate transactions (with their descendants) until within the cap.
    fn trim(&mut self) -> Vec<Txid> {
        let mut evicted = Vec::new();
        while self.bytes > self.max_bytes {
            let Some(worst) = self
                .entries()
                .min_by(|a, b| a.fee_rate().total_cmp(&b.fee_rate()))
                .map(|e| e.txid)
            else {
                break;
            };
            evicted.extend(self.remove_with_descendants(&worst));
        }
        evicted
    }

    /// Removes `txid` and every pool transaction that depends on it; returns what was removed.
    pub fn remove_with_descendants(&mut self, txid: &Txid) -> Vec<Txid> {
        let mut removed = Vec::new();
        let mut stack = vec![*txid];
        while let Some(id) = stack.pop() {
            if let Some(kids) = self.children.get(&id) {
                stack.extend(kids.iter().copied());
            }
            if self.remove_one(&id) {
                removed.push(id);
            }
        }
        removed
    }

    fn remove_one(&mut self, txid: &Txid) -> bool {
        let Some(entry) = self.entries.remove(txid) else {
            return false;
        };
        self.bytes -= entry.size;
        for input in &entry.tx.input {
            if self.spenders.get(&input.previous_output) == Some(txid) {
                self.spenders.remove(&input.previous_output);
            }
        }
        for parent in &entry.parents {
            if let Some(kids) = self.children.get_mut(parent) {
                kids.remove(txid);
                if kids.is_empty() {
                    self.children.remove(parent);
                }
            }
        }
        // Children that stay (only during block connection) now spend confirmed coins.
        if let Some(kids) = self.children.remove(txid) {
            for kid in kids {
                if let Some(e) = self.entries.get_mut(&kid) {
                    Arc::make_mut(e).parents.remove(txid);
                }
            }
        }
        true
    }

    /// Removes what a newly connected block confirms (`txs` with their `txids`), and every pool
    /// transaction that conflicts with it (spends an outpoint the block spends), with
    /// descendants.
    pub fn remove_for_block(&mut self, txs: &[Transaction], txids: &[Txid]) {
        if txids.len() * 2 >= self.entries.len() {
            self.keep_after_block(txs, txids)
        } else {
            self.remove_each_for_block(txs, txids)
        }
    }

    /// [`Mempool::remove_for_block`], one transaction at a time (a block that confirms a
    /// small part of the pool).
    fn remove_each_for_block(&mut self, txs: &[Transaction], txids: &[Txid]) {
        for (tx, txid) in txs.iter().zip(txids) {
            self.remove_one(txid);
            for input in &tx.input {
                if let Some(spender) = self.spenders.get(&input.previous_output).copied() {
                    self.remove_with_descendants(&spender);
                }
            }
        }
    }

    /// [`Mempool::remove_for_block`] for a block that confirms at least half the pool: a new
    /// pool of the entries that stay. Taking thousands of entries out of maps a snapshot
    /// shares copies their nodes again and again; a block that empties the pool (the usual
    /// case) leaves next to nothing to insert.
    fn keep_after_block(&mut self, txs: &[Transaction], txids: &[Txid]) {
        let mut confirmed: HashSet<&Txid, Hasher> =
            HashSet::with_capacity_and_hasher(txids.len(), Hasher::default());
        confirmed.extend(txids);
        // Pool transactions that spend what the block spends, with their descendants.
        let mut gone: HashSet<Txid> = HashSet::new();
        let mut stack: Vec<Txid> = txs
            .iter()
            .flat_map(|tx| &tx.input)
            .filter_map(|input| self.spenders.get(&input.previous_output))
            .filter(|spender| !confirmed.contains(spender))
            .copied()
            .collect();
        while let Some(id) = stack.pop() {
            if gone.insert(id) {
                stack.extend(self.children_of(&id).copied());
            }
        }
        let mut kept = Mempool {
            entries: PersistentMap::default(),
            spenders: PersistentMap::default(),
            children: PersistentMap::default(),
            bytes: 0,
            max_bytes: self.max_bytes,
            next_seq: self.next_seq,
        };
        for (txid, entry) in &self.entries {
            if confirmed.contains(txid) || gone.contains(txid) {
                continue;
            }
            let mut entry = entry.clone();
            if entry.parents.iter().any(|p| confirmed.contains(p)) {
                // Its confirmed parents' outputs are coins of the chain now.
                Arc::make_mut(&mut entry)
                    .parents
                    .retain(|p| !confirmed.contains(p));
            }
            for input in &entry.tx.input {
                kept.spenders.insert(input.previous_output, *txid);
            }
            for parent in &entry.parents {
                kept.children.entry(*parent).or_default().insert(*txid);
            }
            kept.bytes += entry.size;
            kept.entries.insert(*txid, entry);
        }
        *self = kept;
    }

    /// Picks transactions for a block of at most `max_bytes` of transactions: by ancestor fee
    /// rate (a transaction's fee and size summed with its unconfirmed ancestors'), each
    /// transaction after its parents. The entries are the pool's own, shared.
    pub fn select_for_block(&self, max_bytes: usize) -> Vec<Arc<Entry>> {
        let mut scored: Vec<(f64, &Arc<Entry>)> = self
            .entries
            .values()
            .map(|e| {
                if e.parents.is_empty() {
                    // No unconfirmed ancestors: no walk (most of a pool, usually).
                    return (e.fee.to_units() as f64 / e.size.max(1) as f64, e);
                }
                let (fee, size) = self
                    .ancestors(&e.txid)
                    .iter()
                    .filter_map(|id| self.get(id))
                    .fold((e.fee.to_units(), e.size), |(f, s), a| {
                        (f + a.fee.to_units(), s + a.size)
                    });
                (fee as f64 / size.max(1) as f64, e)
            })
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.txid.cmp(&b.1.txid)));

        let mut chosen: Vec<Arc<Entry>> = Vec::with_capacity(scored.len());
        let mut included: HashSet<Txid> = HashSet::with_capacity(scored.len());
        let mut used = 0usize;
        for (_, entry) in scored {
            if included.contains(&entry.txid) {
                continue;
            }
            // The package: the entry and its ancestors not yet included, parents first.
            let mut package: Vec<&Arc<Entry>> = Vec::new();
            if !entry.parents.is_empty() {
                package.extend(
                    self.ancestors(&entry.txid)
                        .iter()
                        .filter(|id| !included.contains(id))
                        .filter_map(|id| self.entries.get(id)),
                );
            }
            package.push(entry);
            let size: usize = package.iter().map(|e| e.size).sum();
            if used + size > max_bytes {
                continue;
            }
            used += size;
            for e in package {
                included.insert(e.txid);
                chosen.push(e.clone());
            }
        }
        chosen
    }

    /// Number of distinct pool transactions among `parents` and their ancestors.
    fn ancestor_count(&self, parents: &HashSet<Txid>) -> usize {
        let mut seen: HashSet<Txid> = HashSet::new();
        let mut stack: Vec<Txid> = parents.iter().copied().collect();
        while let Some(id) = stack.pop() {
            if seen.insert(id) {
                if let Some(e) = self.entries.get(&id) {
                    stack.extend(e.parents.iter().copied());
                }
            }
        }
        seen.len()
    }

    /// Unconfirmed ancestors of `txid`, each after its own ancestors (topological order).
    fn ancestors(&self, txid: &Txid) -> Vec<Txid> {
        let mut order = Vec::new();
        let mut seen = HashSet::new();
        self.visit_ancestors(txid, &mut seen, &mut order);
        order
    }

    fn visit_ancestors(&self, txid: &Txid, seen: &mut HashSet<Txid>, order: &mut Vec<Txid>) {
        let Some(entry) = self.entries.get(txid) else {
            return;
        };
        for parent in &entry.parents {
            if seen.insert(*parent) {
                self.visit_ancestors(parent, seen, order);
                order.push(*parent);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincore::key::PrivateKey;
    use chaincore::validation::Coin;
    use chaincore::{Script, TxOut};

    fn key() -> PrivateKey {
        PrivateKey::from_bytes(&[5; 32]).unwrap()
    }

    fn lock() -> Script {
        Script::new_p2pkh(&key().public_key().pubkey_hash())
    }

    /// Confirmed coins: outpoints (txid [n;32], 0) worth 10 coins each.
    fn chain_coin(o: &OutPoint) -> Result<Option<Coin>, StoreError> {
        Ok(
            (o.vout == 0 && o.txid.0[1..] == [o.txid.0[0]; 31]).then(|| Coin {
                output: TxOut {
                    value: Amount::from_units(1_000_000_000),
                    script_pubkey: lock(),
                },
                height: 1,
                is_coinbase: false,
            }),
        )
    }

    fn view() -> ChainView<'static> {
        ChainView {
            coin: &chain_coin,
            next_height: 10,
            median_time_past: 0,
        }
    }

    fn spend(prev: OutPoint, value: i64) -> Transaction {
        let pay = TxOut {
            value: Amount::from_units(value),
            script_pubkey: lock(),
        };
        let mut tx = Transaction::new_unsigned(&[prev], vec![pay]);
        chaincore::sign_p2pkh_input(&mut tx, 0, &lock(), &key()).unwrap();
        tx
    }

    fn confirmed(n: u8) -> OutPoint {
        OutPoint {
            txid: Txid([n; 32]),
            vout: 0,
        }
    }

    fn add(pool: &mut Mempool, tx: Transaction) -> Result<Txid, MempoolError> {
        let entry = pool.check(tx, &view(), 0, &|_| false)?;
        let id = entry.txid;
        pool.insert(entry)?;
        Ok(id)
    }

    #[test]
    fn missing_inputs_cost_one_lookup_per_input_plus_one_whatever_the_outputs() {
        let lookups = std::cell::Cell::new(0u32);
        let counting = |o: &OutPoint| {
            lookups.set(lookups.get() + 1);
            chain_coin(o)
        };
        let view = ChainView {
            coin: &counting,
            next_height: 10,
            median_time_past: 0,
        };
        let missing = OutPoint {
            txid: Txid([9; 32]),
            vout: 1,
        };
        // 9,000 outputs (a ~90 kB transaction, under the standard size) and one input that
        // does not exist.
        let mut tx = spend(missing, 1);
        tx.output = vec![
            TxOut {
                value: Amount::ZERO,
                script_pubkey: Script::new_op_return(&[]).unwrap(),
            };
            8_999
        ];
        tx.output.push(TxOut {
            value: Amount::from_units(1_000),
            script_pubkey: lock(),
        });
        let pool = Mempool::new(DEFAULT_MAX_BYTES);
        let e = pool.check(tx, &view, 0, &|_| false).unwrap_err();
        assert_eq!(e.to_string(), "bad-txns-inputs-missingorspent");
        // The input, then one output to tell "already confirmed" from "missing".
        assert_eq!(lookups.get(), 2);
    }

    #[test]
    fn dust_outputs_are_refused_and_546_units_are_not() {
        let pool = Mempool::new(DEFAULT_MAX_BYTES);
        let mut tx = spend(confirmed(1), 999_000_000);
        tx.output.push(TxOut {
            value: Amount::from_units(545),
            script_pubkey: lock(),
        });
        let e = pool.check(tx, &view(), 0, &|_| false).unwrap_err();
        assert!(matches!(e, MempoolError::Dust), "{e}");
        assert_eq!(e.to_string(), "dust");
        let mut tx = spend(confirmed(1), 999_000_000);
        tx.output.push(TxOut {
            value: Amount::from_units(546),
            script_pubkey: lock(),
        });
        chaincore::sign_p2pkh_input(&mut tx, 0, &lock(), &key()).unwrap();
        pool.check(tx, &view(), 0, &|_| false).unwrap();
    }

    #[test]
    fn chains_conflicts_and_fees() {
        let mut pool = Mempool::new(DEFAULT_MAX_BYTES);
        let parent = add(&mut pool, spend(confirmed(1), 999_990_000)).unwrap();
        let child = add(
            &mut pool,
            spend(
                OutPoint {
                    txid: parent,
                    vout: 0,
                },
                999_980_000,
            ),
        )
        .unwrap();
        assert_eq!(pool.get(&child).unwrap().parents.len(), 1);
        assert!(matches!(
            add(&mut pool, spend(confirmed(1), 999_000_000)),
            Err(MempoolError::Conflict)
        ));
        assert!(matches!(
            add(&mut pool, spend(confirmed(2), 999_999_999)),
            Err(MempoolError::FeeTooLow { fee: 1, .. })
        ));
        assert_eq!(
            add(&mut pool, spend(confirmed(3), 1_000_000_001))
                .unwrap_err()
                .to_string(),
            "bad-txns-in-belowout"
        );
        assert_eq!(
            add(
                &mut pool,
                spend(
                    OutPoint {
                        txid: Txid([9; 32]),
                        vout: 1
                    },
                    1_000
                )
            )
            .unwrap_err()
            .to_string(),
            "bad-txns-inputs-missingorspent"
        );
        // A block confirming the parent keeps the child, now spending a confirmed coin.
        let parent_tx = pool.get(&parent).unwrap().tx.clone();
        pool.remove_for_block(
            std::slice::from_ref(&parent_tx),
            &[parent_tx.compute_txid()],
        );
        assert!(pool.get(&parent).is_none());
        assert!(pool.get(&child).unwrap().parents.is_empty());
    }

    #[test]
    fn chains_longer_than_25_are_refused() {
        let mut pool = Mempool::new(DEFAULT_MAX_BYTES);
        let mut prev = confirmed(1);
        let mut value = 1_000_000_000;
        for _ in 0..25 {
            value -= 1_000;
            prev = OutPoint {
                txid: add(&mut pool, spend(prev, value)).unwrap(),
                vout: 0,
            };
        }
        assert!(matches!(
            add(&mut pool, spend(prev, value - 1_000)),
            Err(MempoolError::TooLongChain)
        ));
    }

    #[test]
    fn block_conflicts_remove_descendants() {
        let mut pool = Mempool::new(DEFAULT_MAX_BYTES);
        let parent = add(&mut pool, spend(confirmed(1), 999_990_000)).unwrap();
        add(
            &mut pool,
            spend(
                OutPoint {
                    txid: parent,
                    vout: 0,
                },
                999_980_000,
            ),
        )
        .unwrap();
        // A block spends the same confirmed coin differently.
        let conflict = spend(confirmed(1), 5);
        pool.remove_for_block(std::slice::from_ref(&conflict), &[conflict.compute_txid()]);
        assert_eq!(pool.len(), 0);
        assert_eq!(pool.bytes(), 0);
    }

    /// Everything `pool` holds, in a comparable order.
    #[allow(clippy::type_complexity)]
    fn contents(
        pool: &Mempool,
    ) -> (
        Vec<(Txid, Vec<Txid>)>,
        Vec<(Txid, u32, Txid)>,
        Vec<(Txid, Vec<Txid>)>,
        usize,
    ) {
        let sorted = |ids: &mut dyn Iterator<Item = Txid>| {
            let mut v: Vec<Txid> = ids.collect();
            v.sort();
            v
        };
        let mut entries: Vec<_> = pool
            .entries()
            .map(|e| (e.txid, sorted(&mut e.parents.iter().copied())))
            .collect();
        entries.sort();
        let mut spenders: Vec<_> = pool
            .spenders
            .iter()
            .map(|(o, t)| (o.txid, o.vout, *t))
            .collect();
        spenders.sort();
        let mut children: Vec<_> = pool
            .children
            .iter()
            .map(|(p, kids)| (*p, sorted(&mut kids.iter().copied())))
            .collect();
        children.sort();
        (entries, spenders, children, pool.bytes())
    }

    #[test]
    fn a_block_that_confirms_most_of_the_pool_leaves_what_removing_one_by_one_leaves() {
        let mut pool = Mempool::new(DEFAULT_MAX_BYTES);
        let out = |txid| OutPoint { txid, vout: 0 };
        let chain = |pool: &mut Mempool, from: OutPoint, n: usize| -> Vec<Txid> {
            let mut ids = Vec::new();
            let mut prev = from;
            let mut value = 1_000_000_000;
            for _ in 0..n {
                value -= 1_000;
                let id = add(pool, spend(prev, value)).unwrap();
                ids.push(id);
                prev = out(id);
            }
            ids
        };
        let a = chain(&mut pool, confirmed(1), 3); // a0 confirmed: a1, a2 stay
        let d = chain(&mut pool, confirmed(2), 2); // d0 confirmed: d1 stays
        let f = chain(&mut pool, confirmed(3), 2); // conflicted: both go
        let h = chain(&mut pool, confirmed(4), 1); // untouched
        let block: Vec<Transaction> = [a[0], d[0]]
            .iter()
            .map(|id| pool.get(id).unwrap().tx.clone())
            .chain([spend(confirmed(3), 5), spend(confirmed(5), 5)])
            .collect();
        let txids: Vec<Txid> = block.iter().map(Transaction::compute_txid).collect();

        let mut rebuilt = pool.clone();
        rebuilt.keep_after_block(&block, &txids);
        let mut removed = pool.clone();
        removed.remove_each_for_block(&block, &txids);
        assert_eq!(contents(&rebuilt), contents(&removed));

        let mut stay = vec![a[1], a[2], d[1], h[0]];
        stay.sort();
        let left: Vec<Txid> = contents(&rebuilt).0.into_iter().map(|(t, _)| t).collect();
        assert_eq!(left, stay);
        assert!(rebuilt.get(&a[1]).unwrap().parents.is_empty());
        assert!(rebuilt.get(&d[1]).unwrap().parents.is_empty());
        assert_eq!(rebuilt.get(&a[2]).unwrap().parents, HashSet::from([a[1]]));
        assert!(f.iter().all(|id| rebuilt.get(id).is_none()));
        // The original, shared with both, is untouched.
        assert_eq!(pool.len(), 8);
    }

    #[test]
    fn eviction_takes_the_lowest_fee_rate_first() {
        let probe = spend(confirmed(1), 0).size();
        let mut pool = Mempool::new(probe * 2);
        let low = add(&mut pool, spend(confirmed(1), 1_000_000_000 - 1_000)).unwrap();
        let high = add(&mut pool, spend(confirmed(2), 1_000_000_000 - 100_000)).unwrap();
        let mid = add(&mut pool, spend(confirmed(3), 1_000_000_000 - 10_000)).unwrap();
        assert!(pool.get(&low).is_none(), "lowest fee rate evicted");
        assert!(pool.get(&high).is_some() && pool.get(&mid).is_some());
        assert!(matches!(
            add(&mut pool, spend(confirmed(4), 1_000_000_000 - 500)),
            Err(MempoolError::Full)
        ));
    }

    #[test]
    fn templates_pick_by_ancestor_fee_rate_parents_first() {
        let mut pool = Mempool::new(DEFAULT_MAX_BYTES);
        // A low-fee parent with a high-fee child outranks a medium-fee single transaction.
        let parent = add(&mut pool, spend(confirmed(1), 1_000_000_000 - 300)).unwrap();
        let child = add(
            &mut pool,
            spend(
                OutPoint {
                    txid: parent,
                    vout: 0,
                },
                1_000_000_000 - 300 - 100_000,
            ),
        )
        .unwrap();
        let single = add(&mut pool, spend(confirmed(2), 1_000_000_000 - 20_000)).unwrap();
        let order: Vec<Txid> = pool
            .select_for_block(1_000_000)
            .iter()
            .map(|e| e.txid)
            .collect();
        assert_eq!(order, vec![parent, child, single]);
        // Size limit: only what fits.
        let one = pool.get(&single).unwrap().size;
        let order: Vec<Txid> = pool.select_for_block(one).iter().map(|e| e.txid).collect();
        assert_eq!(order, vec![single]);
    }
}
