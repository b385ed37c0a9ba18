//! The coins cache (Bitcoin Core's `CCoinsViewCache` behind `-dbcache`): the UTXO changes of
//! many blocks held in memory over the UTXO table, which holds the set as of the block
//! recorded under `coins_tip` in the meta table. Reads go cache → table; a flush writes every
//! change and the new `coins_tip` in one write transaction (atomic, like every redb commit).
//!
//! The cache is a persistent map, so a snapshot's copy costs a few reference counts and stays
//! valid, with the read transaction taken with it, whatever the writer does next. Changes of
//! one block are gathered in [`Changes`] first and enter the cache only once the block's write
//! transaction has committed, so the cache never holds what the store does not.
//!
//! A coin created while the cache has no entry for its outpoint is *fresh*: the table cannot
//! hold that outpoint unspent (txids of a valid chain never repeat: every coinbase commits to
//! its height, and every other transaction spends coins of earlier ones; Bitcoin Core relies
//! on the same BIP34 argument), so spending it again drops the entry instead of leaving a
//! deletion for the flush.

use std::sync::Arc;

use chaincore::encode::serialize;
use chaincore::validation::Coin;
use chaincore::{Amount, BlockHash, OutPoint, Script, TxOut};
use redb::{ReadableTable, WriteTransaction};

use super::tables::{META, UTXOS};
use super::{decode, outpoint_key, StoreError};

/// The maps' hasher: a fast keyed hash, seeded per process as std's SipHash is (outpoints
/// are hashes already, and an attacker does not know the seed); cheaper than SipHash in a
/// block's coin pass, which hashes every input and output several times.
type Hasher = foldhash::fast::RandomState;

/// A hash map keyed by outpoint.
type HashMap<K, V> = std::collections::HashMap<K, V, Hasher>;

/// Bytes one cached entry is counted as: the outpoint, the packed coin and the persistent
/// map's share of node overhead (its leaves are 32-slot arrays, not all full).
pub const ENTRY_BYTES: usize = 160;

/// A coin as the cache keeps it: every UTXO of a valid chain pays P2PKH (consensus allows
/// only P2PKH and `OP_RETURN` outputs, and `OP_RETURN` ones never enter the set), so it packs
/// into a few bytes without a heap allocation; any other script is kept whole.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Packed {
    P2pkh {
        value: i64,
        pkh: [u8; 20],
        height: u32,
        is_coinbase: bool,
    },
    Other(Arc<Coin>),
}

impl Packed {
    fn new(coin: &Coin) -> Packed {
        match coin.output.script_pubkey.p2pkh_hash() {
            Some(pkh) => Packed::P2pkh {
                value: coin.output.value.to_units(),
                pkh,
                height: coin.height,
                is_coinbase: coin.is_coinbase,
            },
            None => Packed::Other(Arc::new(coin.clone())),
        }
    }

    fn unpack(&self) -> Coin {
        match self {
            Packed::P2pkh {
                value,
                pkh,
                height,
                is_coinbase,
            } => Coin {
                output: TxOut {
                    value: Amount::from_units(*value),
                    script_pubkey: Script::new_p2pkh(pkh),
                },
                height: *height,
                is_coinbase: *is_coinbase,
            },
            Packed::Other(coin) => (**coin).clone(),
        }
    }
}

/// What the cache says of an outpoint it has an entry for.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot {
    /// The coin, or `None` once spent (the flush deletes the row).
    coin: Option<Packed>,
    /// The table does not hold this outpoint (see the module docs): spending drops the entry.
    fresh: bool,
}

/// What the cache knows of each outpoint it has an entry for, as one version a snapshot can
/// keep: a persistent map, and over it the changes of the last block, not yet merged into it
/// ([`CoinsCache::settle`]). Taking a block's changes in is then a pointer move, and the merge
/// (milliseconds for a few thousand coins) runs once the block's caller has its answer.
#[derive(Clone, Debug, Default)]
pub struct Entries {
    map: imbl::GenericHashMap<OutPoint, SlotRef, Hasher, imbl::shared_ptr::DefaultSharedPtr>,
    top: Option<Arc<HashMap<OutPoint, Slot>>>,
}

/// A cache entry as the persistent map holds it (opaque to readers; see [`CoinsView`]).
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotRef(Slot);

impl Entries {
    /// The entry for `outpoint`: the last block's word if it has one, else the map's.
    fn get(&self, outpoint: &OutPoint) -> Option<&Slot> {
        if let Some(slot) = self.top.as_ref().and_then(|top| top.get(outpoint)) {
            return Some(slot);
        }
        self.map.get(outpoint).map(|s| &s.0)
    }

    /// Entries, counting an outpoint in both layers twice (an estimate for the size limit).
    fn len(&self) -> usize {
        self.map.len() + self.top.as_ref().map_or(0, |top| top.len())
    }

    fn is_empty(&self) -> bool {
        self.map.is_empty() && self.top.as_ref().is_none_or(|top| top.is_empty())
    }

    /// Every entry once, the last block's over the map's, in no order.
    fn iter(&self) -> impl Iterator<Item = (&OutPoint, &Slot)> {
        let top = self.top.as_deref();
        self.map
            .iter()
            .filter(move |(o, _)| top.is_none_or(|t| !t.contains_key(o)))
            .map(|(o, s)| (o, &s.0))
            .chain(top.into_iter().flatten())
    }

    /// Merges the last block's changes into the map; `yielding` (on the settler thread) gives
    /// the core up every [`YIELD_EVERY`] changes to any thread waiting for it (at its lower
    /// priority, the settler would otherwise keep the core for a whole scheduler tick while a
    /// block is relayed).
    fn settle(&mut self, yielding: bool) {
        let Some(top) = self.top.take() else {
            return;
        };
        for (n, (outpoint, slot)) in top.iter().enumerate() {
            if yielding && n % YIELD_EVERY == YIELD_EVERY - 1 {
                std::thread::yield_now();
            }
            match (&slot.coin, self.map.get(outpoint).map(|s| s.0.fresh)) {
                // Spent, and the table never had it: nothing left to do.
                (None, Some(true)) => {
                    self.map.remove(outpoint);
                }
                (None, _) => {
                    self.map.insert(
                        *outpoint,
                        SlotRef(Slot {
                            coin: None,
                            fresh: false,
                        }),
                    );
                }
                (Some(coin), cached) => {
                    // Fresh only if the table cannot hold it: no entry (a deletion pending
                    // or an older value) is in the way, and the block said so.
                    let fresh = match cached {
                        None => slot.fresh,
                        Some(was_fresh) => was_fresh && slot.fresh,
                    };
                    self.map.insert(
                        *outpoint,
                        SlotRef(Slot {
                            coin: Some(coin.clone()),
                            fresh,
                        }),
                    );
                }
            }
        }
    }
}

/// The coins cache the writer owns.
pub struct CoinsCache {
    entries: Entries,
    limit_bytes: usize,
    last_flush: std::time::Instant,
    /// The thread merges run on (`None`: none could start; they run in place).
    settler: Option<Settler>,
    /// A merge of `entries` is out on the settler: nothing changes `entries` before
    /// [`CoinsCache::collect`] has taken it back.
    settling: bool,
}

/// The thread that merges a block's changes into the map ([`CoinsCache::settle`]) at a lower
/// priority. It ends when the cache is dropped.
struct Settler {
    jobs: std::sync::mpsc::Sender<Entries>,
    done: std::sync::mpsc::Receiver<Entries>,
}

impl Settler {
    fn start() -> Option<Settler> {
        let (jobs, inbox) = std::sync::mpsc::channel::<Entries>();
        let (outbox, done) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("coins-settle".into())
            .spawn(move || {
                crate::priority::lower();
                for mut entries in inbox {
                    entries.settle(true);
                    if outbox.send(entries).is_err() {
                        return;
                    }
                }
            })
            .ok()?;
        Some(Settler { jobs, done })
    }
}

/// Changes the settler thread merges between two yields (about a quarter of a millisecond).
const YIELD_EVERY: usize = 256;

/// Changes from which a merge goes to the settler thread: below, merging in place (about a
/// microsecond per change) costs less than handing it over and waiting for it later, as a
/// run of small blocks (`generatetoaddress` of empty ones, a reorg) would.
pub const SETTLE_ELSEWHERE: usize = 1_000;

/// Most time between two flushes while blocks connect (a crash replays at most the blocks of
/// this long).
pub const FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10 * 60);

impl CoinsCache {
    /// An empty cache that asks for a flush once it holds more than `limit_bytes` (0: after
    /// every block).
    pub fn new(limit_bytes: usize) -> CoinsCache {
        CoinsCache {
            entries: Entries::default(),
            limit_bytes,
            last_flush: std::time::Instant::now(),
            settler: Settler::start(),
            settling: false,
        }
    }

    /// Estimated bytes the cache holds ([`ENTRY_BYTES`] per entry).
    pub fn usage(&self) -> usize {
        self.entries.len() * ENTRY_BYTES
    }

    /// True if nothing changed since the last flush.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// True if the cache, with `pending` more entries, should be flushed now: over its limit,
    /// or [`FLUSH_INTERVAL`] since the last flush.
    pub fn wants_flush(&self, pending: usize) -> bool {
        (self.entries.len() + pending) * ENTRY_BYTES > self.limit_bytes
            || self.last_flush.elapsed() >= FLUSH_INTERVAL
    }

    /// The entries; a snapshot's clone costs a few reference counts.
    pub fn map(&self) -> &Entries {
        &self.entries
    }

    /// The coin at `outpoint` as the cache and then `table` see it.
    pub fn coin(
        &self,
        table: &impl ReadableTable<[u8; 36], &'static [u8]>,
        outpoint: &OutPoint,
    ) -> Result<Option<Coin>, StoreError> {
        lookup(&self.entries, table, outpoint)
    }

    /// Takes one committed block's (or disconnect's) changes in, over the entries (merging
    /// the previous block's first, or taking [`CoinsCache::settle`]'s merge, waiting for it
    /// if it still runs).
    pub fn apply(&mut self, changes: Changes) {
        self.collect();
        self.entries.settle(false);
        if !changes.is_empty() {
            self.entries.top = Some(Arc::new(changes.slots));
        }
    }

    /// Starts merging the last block's changes into the persistent map on the settler thread,
    /// at a lower priority, so the next block's go on top at once and the caller that waits
    /// for this block's answer does not share a core with the merge. Fewer than
    /// [`SETTLE_ELSEWHERE`] changes are merged here and now. The writer calls it once
    /// that caller has its answer; the next change takes the merge in.
    pub fn settle(&mut self) {
        let Some(top) = &self.entries.top else {
            return;
        };
        if self.settling {
            return;
        }
        if top.len() < SETTLE_ELSEWHERE {
            self.entries.settle(false);
            return;
        }
        match &self.settler {
            Some(s) if s.jobs.send(self.entries.clone()).is_ok() => self.settling = true,
            _ => self.entries.settle(false),
        }
    }

    /// [`CoinsCache::settle`], and its merge taken in.
    #[cfg(test)]
    fn settle_now(&mut self) {
        self.settle();
        self.collect();
    }

    /// Takes the settler's merge in, if one is out (waiting for it); merges in place if the
    /// settler is gone.
    fn collect(&mut self) {
        if !std::mem::take(&mut self.settling) {
            return;
        }
        match self.settler.as_ref().map(|s| s.done.recv()) {
            Some(Ok(merged)) => self.entries = merged,
            _ => self.entries.settle(false),
        }
    }

    /// Writes every change (and `pending`, not yet applied, over them) into the UTXO table of
    /// `wtx`, in key order, and records `tip` as the block the table now belongs to. Call
    /// [`CoinsCache::flushed`] once `wtx` has committed.
    pub fn write(
        &self,
        wtx: &WriteTransaction,
        pending: Option<&Changes>,
        tip: &BlockHash,
    ) -> Result<usize, StoreError> {
        let mut rows: Vec<([u8; 36], Option<Vec<u8>>)> = self
            .entries
            .iter()
            .map(|(o, s)| {
                (
                    outpoint_key(o),
                    s.coin.as_ref().map(|c| serialize(&c.unpack())),
                )
            })
            .collect();
        rows.sort_unstable_by_key(|r| r.0);
        let mut table = wtx.open_table(UTXOS)?;
        let mut write = |key: [u8; 36], row: Option<Vec<u8>>| -> Result<(), StoreError> {
            match row {
                Some(bytes) => table.insert(key, bytes.as_slice())?,
                None => table.remove(key)?,
            };
            Ok(())
        };
        let written = rows.len();
        for (key, row) in rows {
            write(key, row)?;
        }
        if let Some(changes) = pending {
            let mut rows: Vec<_> = changes
                .slots
                .iter()
                .map(|(o, s)| {
                    (
                        outpoint_key(o),
                        s.coin.as_ref().map(|c| serialize(&c.unpack())),
                    )
                })
                .collect();
            rows.sort_unstable_by_key(|r| r.0);
            for (key, row) in rows {
                write(key, row)?;
            }
        }
        drop(table);
        wtx.open_table(META)?
            .insert(COINS_TIP, tip.as_bytes().as_slice())?;
        Ok(written)
    }

    /// Empties the cache after the transaction [`CoinsCache::write`] wrote into committed.
    pub fn flushed(&mut self) {
        self.collect();
        self.entries = Entries::default();
        self.last_flush = std::time::Instant::now();
    }
}

/// The meta row naming the block the UTXO table's set belongs to.
pub const COINS_TIP: &str = "coins_tip";

fn lookup(
    entries: &Entries,
    table: &impl ReadableTable<[u8; 36], &'static [u8]>,
    outpoint: &OutPoint,
) -> Result<Option<Coin>, StoreError> {
    if let Some(slot) = entries.get(outpoint) {
        return Ok(slot.coin.as_ref().map(Packed::unpack));
    }
    let row = table.get(outpoint_key(outpoint))?;
    row.map(|v| decode("utxos", v.value())).transpose()
}

/// The UTXO changes of one block being connected or disconnected, over the cache and the
/// table: reads see them first.
#[derive(Default)]
pub struct Changes {
    slots: HashMap<OutPoint, Slot>,
}

impl Changes {
    /// Changed outpoints.
    pub fn len(&self) -> usize {
        self.slots.len()
    }

    /// True if nothing changed.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Spends the coin at `outpoint` as these changes, `cache` and `table` see it; `None` if
    /// it is not unspent.
    pub fn spend(
        &mut self,
        cache: &CoinsCache,
        table: &impl ReadableTable<[u8; 36], &'static [u8]>,
        outpoint: &OutPoint,
    ) -> Result<Option<Coin>, StoreError> {
        if let Some(slot) = self.slots.get_mut(outpoint) {
            let coin = slot.coin.take().map(|c| c.unpack());
            if slot.fresh {
                self.slots.remove(outpoint);
            }
            return Ok(coin);
        }
        let coin = cache.coin(table, outpoint)?;
        if coin.is_some() {
            self.slots.insert(
                *outpoint,
                Slot {
                    coin: None,
                    fresh: false,
                },
            );
        }
        Ok(coin)
    }

    /// Creates `coin` at `outpoint`; `false` (and no change) if an unspent coin is there
    /// already, as these changes or the cache see it (the table is not read: see the module
    /// docs).
    pub fn create(&mut self, cache: &CoinsCache, outpoint: OutPoint, coin: &Coin) -> bool {
        let packed = Packed::new(coin);
        match self.slots.get_mut(&outpoint) {
            Some(Slot { coin: Some(_), .. }) => false,
            Some(slot) => {
                slot.coin = Some(packed);
                true
            }
            None => match cache.entries.get(&outpoint) {
                Some(Slot { coin: Some(_), .. }) => false,
                cached => {
                    let fresh = cached.is_none();
                    self.slots.insert(
                        outpoint,
                        Slot {
                            coin: Some(packed),
                            fresh,
                        },
                    );
                    true
                }
            },
        }
    }

    /// Makes `outpoint` spent whatever it was (disconnecting the block that created it).
    pub fn remove(&mut self, outpoint: OutPoint) {
        match self.slots.get(&outpoint) {
            Some(Slot { fresh: true, .. }) => {
                self.slots.remove(&outpoint);
            }
            _ => {
                self.slots.insert(
                    outpoint,
                    Slot {
                        coin: None,
                        fresh: false,
                    },
                );
            }
        }
    }

    /// Makes `coin` unspent at `outpoint` again (disconnecting the block that spent it). The
    /// table may hold it (it may be behind), so it is never fresh.
    pub fn restore(&mut self, outpoint: OutPoint, coin: &Coin) {
        self.slots.insert(
            outpoint,
            Slot {
                coin: Some(Packed::new(coin)),
                fresh: false,
            },
        );
    }
}

/// The UTXO table as a read transaction opens it.
pub type UtxoTable = redb::ReadOnlyTable<[u8; 36], &'static [u8]>;

/// What readers see of the UTXO set: a snapshot's copy of the cache over the read
/// transaction taken with it.
pub struct CoinsView<'a, T> {
    /// The cache as of the snapshot.
    pub entries: &'a Entries,
    /// The UTXO table as of the same moment.
    pub table: T,
}

impl<T: ReadableTable<[u8; 36], &'static [u8]>> CoinsView<'_, T> {
    /// An unspent coin.
    pub fn coin(&self, outpoint: &OutPoint) -> Result<Option<Coin>, StoreError> {
        lookup(self.entries, &self.table, outpoint)
    }

    /// Walks the whole set (the table merged with the cache) in key order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8; 36], &[u8], Coin)) -> Result<u64, StoreError> {
        let mut cached: Vec<([u8; 36], Option<Coin>)> = self
            .entries
            .iter()
            .map(|(o, s)| (outpoint_key(o), s.coin.as_ref().map(Packed::unpack)))
            .collect();
        cached.sort_unstable_by_key(|r| r.0);
        let mut cached = cached.into_iter().peekable();
        let mut count = 0u64;
        let mut emit = |key: &[u8; 36], coin: Coin, count: &mut u64| {
            let bytes = serialize(&coin);
            f(key, &bytes, coin);
            *count += 1;
        };
        for row in self.table.iter()? {
            let (k, v) = row?;
            let key = k.value();
            // The cache's word on an outpoint replaces the table's row.
            let mut shadowed = false;
            while let Some((ck, _)) = cached.peek() {
                if *ck > key {
                    break;
                }
                let Some((ck, coin)) = cached.next() else {
                    break;
                };
                if let Some(coin) = coin {
                    emit(&ck, coin, &mut count);
                }
                shadowed |= ck == key;
            }
            if shadowed {
                continue;
            }
            emit(&key, decode("utxos", v.value())?, &mut count);
        }
        for (ck, coin) in cached {
            if let Some(coin) = coin {
                emit(&ck, coin, &mut count);
            }
        }
        Ok(count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chaincore::Txid;

    fn coin(height: u32) -> Coin {
        Coin {
            output: TxOut {
                value: Amount::from_units(1_000 + i64::from(height)),
                script_pubkey: Script::new_p2pkh(&[height as u8; 20]),
            },
            height,
            is_coinbase: false,
        }
    }

    /// A read transaction on an in-memory store whose UTXO table is empty.
    fn empty_utxo_table() -> redb::ReadTransaction {
        let db = redb::Database::builder()
            .create_with_backend(redb::backends::InMemoryBackend::new())
            .unwrap();
        let wtx = db.begin_write().unwrap();
        wtx.open_table(UTXOS).unwrap();
        wtx.commit().unwrap();
        redb::ReadableDatabase::begin_read(&db).unwrap()
    }

    fn op(n: u8) -> OutPoint {
        OutPoint {
            txid: Txid([n; 32]),
            vout: 0,
        }
    }

    #[test]
    fn packing_keeps_every_field() {
        let c = coin(7);
        assert_eq!(Packed::new(&c).unpack(), c);
        let other = Coin {
            output: TxOut {
                value: Amount::ZERO,
                script_pubkey: {
                    let mut s = Script::new();
                    s.push_opcode(0x51);
                    s
                },
            },
            height: 3,
            is_coinbase: true,
        };
        assert_eq!(Packed::new(&other).unpack(), other);
    }

    #[test]
    fn a_fresh_coin_spent_later_leaves_no_entry_and_a_stale_one_a_deletion() {
        let mut cache = CoinsCache::new(1 << 20);
        let mut created = Changes::default();
        assert!(created.create(&cache, op(1), &coin(1)));
        cache.apply(created);
        assert_eq!(cache.map().len(), 1);
        let mut spent = Changes::default();
        spent.slots.insert(
            op(1),
            Slot {
                coin: None,
                fresh: false,
            },
        );
        cache.apply(spent);
        cache.settle_now();
        assert!(cache.is_empty(), "a fresh coin spent is gone");

        // Restored by a disconnect: the table may hold it, so spending it leaves a deletion.
        let mut restored = Changes::default();
        restored.restore(op(2), &coin(2));
        cache.apply(restored);
        let mut spent = Changes::default();
        spent.remove(op(2));
        cache.apply(spent);
        cache.settle_now();
        assert_eq!(cache.map().len(), 1);
        assert_eq!(
            cache.entries.get(&op(2)).map(|s| s.coin.is_none()),
            Some(true)
        );
    }

    #[test]
    fn the_last_block_reads_over_the_map_and_a_copy_taken_before_the_merge_keeps_its_view() {
        let mut cache = CoinsCache::new(1 << 20);
        let mut first = Changes::default();
        assert!(first.create(&cache, op(1), &coin(1)));
        assert!(first.create(&cache, op(2), &coin(2)));
        cache.apply(first);
        cache.settle_now();
        // The next block spends op(1) and creates op(3): it sits on top, unmerged.
        let mut second = Changes::default();
        let rtx = empty_utxo_table();
        let table = rtx.open_table(UTXOS).unwrap();
        assert_eq!(second.spend(&cache, &table, &op(1)).unwrap(), Some(coin(1)));
        assert!(second.create(&cache, op(3), &coin(3)));
        cache.apply(second);
        assert!(cache.entries.top.is_some());
        let before_merge = cache.map().clone();
        let seen = |entries: &Entries| {
            let mut v: Vec<(OutPoint, Option<Coin>)> = entries
                .iter()
                .map(|(o, s)| (*o, s.coin.as_ref().map(Packed::unpack)))
                .collect();
            v.sort_by_key(|(o, _)| outpoint_key(o));
            v
        };
        // Every outpoint once, the top's word over the map's: op(1) gone with the first
        // block's fresh coin, op(2) kept, op(3) new.
        let expected = vec![(op(2), Some(coin(2))), (op(3), Some(coin(3)))];
        let unspent = |entries: &Entries| {
            seen(entries)
                .into_iter()
                .filter(|(_, c)| c.is_some())
                .collect::<Vec<_>>()
        };
        assert_eq!(unspent(&before_merge), expected);
        assert_eq!(cache.coin(&table, &op(1)).unwrap(), None);
        cache.settle_now();
        assert!(cache.entries.top.is_none());
        assert_eq!(unspent(cache.map()), expected);
        assert_eq!(
            seen(cache.map()),
            expected,
            "the fresh spent coin left no entry"
        );
        // The copy a snapshot took still reads as it did.
        assert_eq!(unspent(&before_merge), expected);
        assert_eq!(
            lookup(&before_merge, &table, &op(3)).unwrap(),
            Some(coin(3))
        );
    }

    #[test]
    fn a_large_block_merged_on_the_settler_thread_reads_the_same_before_during_and_after() {
        let rtx = empty_utxo_table();
        let table = rtx.open_table(UTXOS).unwrap();
        let op_n = |n: u32| OutPoint {
            txid: Txid([9; 32]),
            vout: n,
        };
        let count = SETTLE_ELSEWHERE as u32 + 10;
        let mut cache = CoinsCache::new(1 << 30);
        let mut big = Changes::default();
        for n in 0..count {
            assert!(big.create(&cache, op_n(n), &coin(n)));
        }
        cache.apply(big);
        cache.settle();
        assert!(
            cache.settling,
            "a block this large is merged on the settler thread"
        );
        // While the merge runs, the next block reads the cache as it was.
        let mut next = Changes::default();
        assert_eq!(next.spend(&cache, &table, &op_n(3)).unwrap(), Some(coin(3)));
        assert!(
            !next.create(&cache, op_n(4), &coin(4)),
            "op 4 is unspent already"
        );
        cache.apply(next);
        assert!(!cache.settling);
        cache.settle_now();
        assert_eq!(
            cache.map().len(),
            count as usize - 1,
            "the fresh coin spent left none"
        );
        for n in 0..count {
            let want = (n != 3).then(|| coin(n));
            assert_eq!(cache.coin(&table, &op_n(n)).unwrap(), want, "coin {n}");
        }
    }

    #[test]
    fn creating_over_an_unspent_cached_coin_is_refused() {
        let mut cache = CoinsCache::new(1 << 20);
        let mut c = Changes::default();
        assert!(c.create(&cache, op(1), &coin(1)));
        assert!(!c.create(&cache, op(1), &coin(1)));
        cache.apply(c);
        let mut c = Changes::default();
        assert!(!c.create(&cache, op(1), &coin(1)));
    }
}
