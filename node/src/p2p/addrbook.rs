//! The address book: peer addresses in Bitcoin Core's addrman shape, small.
//!
//! Addresses heard of go to a *new* table, addresses we completed a handshake with to a
//! *tried* table. Each table is fixed buckets of [`BUCKET_SIZE`] slots; a new address's bucket
//! is chosen by a keyed hash of the network group (IPv4 /16, IPv6 /32) of the peer that told
//! us about it, and each source group reaches only [`NEW_BUCKETS_PER_SOURCE_GROUP`] of the
//! [`NEW_BUCKETS`] buckets. A slot that is taken keeps its address. So one peer, however many
//! addresses it sends, fills at most 1/16 of the new table and evicts nothing (no eclipse by
//! flooding). The hash key is random per process, so where an address lands cannot be
//! predicted.
//!
//! A non-routable address (loopback, private ranges, link-local, unique-local) is kept only
//! when it came from a peer in the same kind of network: a loopback peer may tell us loopback
//! addresses, a private-range peer private ones, while a public peer cannot aim the node at
//! internal targets.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::net::{IpAddr, SocketAddr};

/// Buckets of the new table.
pub const NEW_BUCKETS: usize = 256;
/// Buckets of the tried table.
pub const TRIED_BUCKETS: usize = 64;
/// Slots per bucket.
pub const BUCKET_SIZE: usize = 64;
/// New buckets one source network group can reach.
pub const NEW_BUCKETS_PER_SOURCE_GROUP: u64 = 16;
/// Tried buckets one address network group can reach.
const TRIED_BUCKETS_PER_GROUP: u64 = 8;

/// What kind of network an address is in, for the same-kind rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NetKind {
    /// 127.0.0.0/8, ::1.
    Loopback,
    /// 10/8, 172.16/12, 192.168/16, 100.64/10, 169.254/16, fc00::/7, fe80::/10.
    Private,
    /// Anything else that can be dialled.
    Public,
}

/// The kind of network `ip` is in (IPv4-mapped IPv6 as IPv4).
pub fn net_kind(ip: IpAddr) -> NetKind {
    match canonical(ip) {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_loopback() {
                NetKind::Loopback
            } else if v4.is_private() || v4.is_link_local() || (o[0] == 100 && o[1] & 0xc0 == 64) {
                NetKind::Private
            } else {
                NetKind::Public
            }
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            if v6.is_loopback() {
                NetKind::Loopback
            } else if first & 0xfe00 == 0xfc00 || first & 0xffc0 == 0xfe80 {
                NetKind::Private
            } else {
                NetKind::Public
            }
        }
    }
}

/// True if we would keep `addr` when a peer at `source` tells us about it: dialable (not
/// unspecified, multicast or broadcast, port not 0) and either public or of the source's kind.
pub fn acceptable(addr: &SocketAddr, source: IpAddr) -> bool {
    let ip = canonical(addr.ip());
    let dialable = addr.port() != 0
        && !ip.is_unspecified()
        && !ip.is_multicast()
        && ip != IpAddr::V4(std::net::Ipv4Addr::BROADCAST);
    let kind = net_kind(ip);
    dialable && (kind == NetKind::Public || kind == net_kind(source))
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// The network group of `ip`: its /16 for IPv4, /32 for IPv6, one group for all loopback.
pub fn group(ip: IpAddr) -> [u8; 5] {
    match canonical(ip) {
        _ if net_kind(ip) == NetKind::Loopback => [0; 5],
        IpAddr::V4(v4) => {
            let o = v4.octets();
            [4, o[0], o[1], 0, 0]
        }
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [6, o[0], o[1], o[2], o[3]]
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Table {
    New,
    Tried,
}

/// The address book.
pub struct AddrBook {
    key: RandomState,
    new: Vec<Option<SocketAddr>>,
    tried: Vec<Option<SocketAddr>>,
    /// Where each address is.
    at: HashMap<SocketAddr, (Table, usize)>,
}

impl Default for AddrBook {
    fn default() -> Self {
        AddrBook::new()
    }
}

impl AddrBook {
    /// An empty book with a fresh random key.
    pub fn new() -> AddrBook {
        AddrBook {
            key: RandomState::new(),
            new: vec![None; NEW_BUCKETS * BUCKET_SIZE],
            tried: vec![None; TRIED_BUCKETS * BUCKET_SIZE],
            at: HashMap::new(),
        }
    }

    fn hash(&self, parts: impl std::hash::Hash) -> u64 {
        self.key.hash_one(parts)
    }

    fn new_slot(&self, addr: &SocketAddr, source: IpAddr) -> usize {
        let source_group = group(source);
        let within =
            self.hash((1u8, source_group, group(addr.ip()))) % NEW_BUCKETS_PER_SOURCE_GROUP;
        let bucket = self.hash((2u8, source_group, within)) as usize % NEW_BUCKETS;
        bucket * BUCKET_SIZE + self.hash((3u8, bucket, addr)) as usize % BUCKET_SIZE
    }

    fn tried_slot(&self, addr: &SocketAddr) -> usize {
        let within = self.hash((4u8, addr)) % TRIED_BUCKETS_PER_GROUP;
        let bucket = self.hash((5u8, group(addr.ip()), within)) as usize % TRIED_BUCKETS;
        bucket * BUCKET_SIZE + self.hash((6u8, bucket, addr)) as usize % BUCKET_SIZE
    }

    /// Adds `addr`, heard of from a peer at `source`, to the new table. False if it is
    /// already known, not [`acceptable`], or its slot is taken (the slot keeps what it has).
    pub fn add(&mut self, addr: SocketAddr, source: IpAddr) -> bool {
        if self.at.contains_key(&addr) || !acceptable(&addr, source) {
            return false;
        }
        let slot = self.new_slot(&addr, source);
        if self.new[slot].is_some() {
            return false;
        }
        self.new[slot] = Some(addr);
        self.at.insert(addr, (Table::New, slot));
        true
    }

    /// Marks `addr` as one we completed a handshake with: it moves to the tried table. The
    /// address in its tried slot, if any, goes back to the new table (or is dropped if its new
    /// slot is taken). Adds `addr` if it was unknown.
    pub fn good(&mut self, addr: SocketAddr) {
        if let Some((Table::Tried, _)) = self.at.get(&addr) {
            return;
        }
        self.remove(&addr);
        let slot = self.tried_slot(&addr);
        if let Some(old) = self.tried[slot].take() {
            self.at.remove(&old);
            let back = self.new_slot(&old, old.ip());
            if self.new[back].is_none() {
                self.new[back] = Some(old);
                self.at.insert(old, (Table::New, back));
            }
        }
        self.tried[slot] = Some(addr);
        self.at.insert(addr, (Table::Tried, slot));
    }

    /// Forgets `addr`; false if it was not there.
    pub fn remove(&mut self, addr: &SocketAddr) -> bool {
        match self.at.remove(addr) {
            Some((Table::New, slot)) => self.new[slot] = None,
            Some((Table::Tried, slot)) => self.tried[slot] = None,
            None => return false,
        }
        true
    }

    /// True if `addr` is in either table.
    pub fn contains(&self, addr: &SocketAddr) -> bool {
        self.at.contains_key(addr)
    }

    /// Addresses in the book.
    fn len(&self) -> usize {
        self.at.len()
    }

    /// Up to `n` addresses, tried ones first, starting at a point that moves with `seed` so
    /// successive calls spread over the book.
    pub fn sample(&self, n: usize, seed: u64) -> Vec<SocketAddr> {
        let mut out = Vec::with_capacity(n.min(self.len()));
        for table in [&self.tried, &self.new] {
            let start = (self.hash((7u8, seed)) as usize) % table.len();
            for i in 0..table.len() {
                if out.len() >= n {
                    return out;
                }
                if let Some(a) = table[(start + i) % table.len()] {
                    out.push(a);
                }
            }
        }
        out
    }
}

/// Unsolicited `addr` entries a peer may have processed per second (Core: 0.1).
pub const ADDR_RATE: f64 = 0.1;
/// Most tokens a peer can save up (Core: 1,000).
const ADDR_BURST: f64 = 1_000.0;

/// One peer's allowance of `addr` entries (Core's token bucket): starts at one, grows by
/// [`ADDR_RATE`] per second, and by a whole reply's worth when we send `getaddr`, so answers
/// to our own questions are never cut.
#[derive(Debug)]
pub struct AddrRate {
    tokens: f64,
    at: std::time::Instant,
}

impl Default for AddrRate {
    fn default() -> Self {
        AddrRate {
            tokens: 1.0,
            at: std::time::Instant::now(),
        }
    }
}

impl AddrRate {
    /// We asked this peer for addresses: its reply is allowed in full.
    pub fn asked(&mut self) {
        self.tokens = (self.tokens + super::message::MAX_ADDR as f64)
            .min(ADDR_BURST + super::message::MAX_ADDR as f64);
    }

    /// Takes one token if there is one; false means drop this entry.
    pub fn take(&mut self) -> bool {
        let now = std::time::Instant::now();
        let earned = now.duration_since(self.at).as_secs_f64() * ADDR_RATE;
        self.at = now;
        self.tokens = (self.tokens + earned).min(self.tokens.max(ADDR_BURST));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn non_routable_addresses_come_only_from_peers_of_the_same_kind() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let lan: IpAddr = "10.1.2.3".parse().unwrap();
        let public: IpAddr = "8.8.4.4".parse().unwrap();
        assert!(acceptable(&addr("127.0.0.1:18744"), lo));
        assert!(!acceptable(&addr("127.0.0.1:18744"), public));
        assert!(!acceptable(&addr("127.0.0.1:18744"), lan));
        assert!(acceptable(&addr("10.9.9.9:18744"), lan));
        assert!(acceptable(&addr("192.168.1.5:18744"), lan));
        assert!(!acceptable(&addr("10.9.9.9:18744"), public));
        assert!(!acceptable(&addr("[fd00::1]:18744"), public));
        assert!(acceptable(&addr("1.2.3.4:8733"), public));
        assert!(acceptable(&addr("1.2.3.4:8733"), lo));
        assert!(!acceptable(&addr("1.2.3.4:0"), public));
        assert!(!acceptable(&addr("0.0.0.0:8733"), public));
        assert!(!acceptable(&addr("224.0.0.1:8733"), public));
        // IPv4-mapped IPv6 is judged as IPv4.
        assert!(!acceptable(&addr("[::ffff:127.0.0.1]:1"), public));
    }

    #[test]
    fn a_flood_from_one_source_fills_a_sixteenth_and_evicts_nothing() {
        let mut book = AddrBook::new();
        // 2,000 honest addresses from 200 sources in different groups.
        for i in 0..2_000u32 {
            let a = addr(&format!(
                "{}.{}.7.{}:8733",
                20 + i % 200,
                i / 200,
                i % 250 + 1
            ));
            let source: IpAddr = format!("{}.{}.1.1", 20 + i % 200, 50).parse().unwrap();
            book.add(a, source);
        }
        let honest: Vec<SocketAddr> = book.at.keys().copied().collect();
        assert!(honest.len() > 1_500, "{}", honest.len());
        // 100,000 addresses from one peer.
        let attacker: IpAddr = "66.66.66.66".parse().unwrap();
        let mut stored = 0;
        for i in 0..100_000u32 {
            let b = i.to_be_bytes();
            if book.add(
                SocketAddr::new(IpAddr::from([77, b[1], b[2], b[3]]), 8733),
                attacker,
            ) {
                stored += 1;
            }
        }
        assert!(
            stored <= NEW_BUCKETS_PER_SOURCE_GROUP as usize * BUCKET_SIZE,
            "{stored}"
        );
        assert!(honest.iter().all(|a| book.contains(a)));
    }

    #[test]
    fn good_addresses_move_to_tried_and_sampling_sees_them_first() {
        let mut book = AddrBook::new();
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        let a = addr("127.0.0.1:1000");
        let b = addr("127.0.0.1:1001");
        assert!(book.add(a, lo));
        assert!(!book.add(a, lo), "added twice");
        book.add(b, lo);
        book.good(b);
        assert_eq!(book.sample(1, 0), vec![b]);
        assert_eq!(book.len(), 2);
        assert!(book.remove(&a) && !book.contains(&a));
        assert_eq!(book.sample(10, 3), vec![b]);
    }
}
