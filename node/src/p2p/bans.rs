//! Banned peer IPs, each until a moment (Bitcoin Core's `BanMan`, by IP only). Expired bans
//! are forgotten whenever the list is read.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// How long a misbehaving peer's IP stays banned by default.
pub const BAN_TIME: Duration = Duration::from_secs(24 * 3600);

/// Banned IPs and until when.
#[derive(Default)]
pub struct Bans {
    until: HashMap<IpAddr, Instant>,
}

impl Bans {
    /// True if `ip` is banned now.
    pub fn is_banned(&mut self, ip: IpAddr) -> bool {
        self.expire();
        self.until.contains_key(&ip)
    }

    /// Bans `ip` for `time` (capped at ten years, so any request has an end).
    pub fn ban(&mut self, ip: IpAddr, time: Duration) {
        let cap = Duration::from_secs(10 * 365 * 24 * 3600);
        self.until.insert(ip, Instant::now() + time.min(cap));
    }

    /// Lifts the ban on `ip`, if any.
    pub fn unban(&mut self, ip: IpAddr) {
        self.until.remove(&ip);
    }

    /// Lifts every ban.
    pub fn clear(&mut self) {
        self.until.clear();
    }

    /// Current bans as (ip, seconds left).
    pub fn list(&mut self) -> Vec<(IpAddr, u64)> {
        self.expire();
        let now = Instant::now();
        self.until
            .iter()
            .map(|(ip, until)| (*ip, until.saturating_duration_since(now).as_secs()))
            .collect()
    }

    fn expire(&mut self) {
        let now = Instant::now();
        self.until.retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_last_their_time_and_can_be_lifted() {
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let other: IpAddr = "10.0.0.2".parse().unwrap();
        let mut bans = Bans::default();
        bans.ban(ip, BAN_TIME);
        bans.ban(other, Duration::ZERO);
        assert!(bans.is_banned(ip));
        assert!(!bans.is_banned(other), "a zero-length ban is over at once");
        let listed = bans.list();
        assert_eq!(listed.len(), 1);
        assert!(listed[0].1 > 24 * 3600 - 5);
        bans.ban(other, Duration::MAX);
        assert!(
            bans.is_banned(other),
            "an endless request is capped, not an overflow"
        );
        bans.unban(ip);
        assert!(!bans.is_banned(ip));
        bans.clear();
        assert!(bans.list().is_empty());
    }
}
