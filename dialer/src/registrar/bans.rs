//! Bans: source addresses that failed authentication too often (`[security]`, the
//! fail2ban-like part of the registrar).
//!
//! Sans-IO like the rest of the registrar: every call takes the time, nothing reads a clock.
//! [`Bans::record_failure`] counts a failure of one source address; `max_failures` of them
//! within `window` ban the address for `ban` (zero: never, the failures are only reported).
//! The runtime asks [`Bans::is_banned`] for every datagram and drops those of banned
//! sources before parsing them. Exempt networks are never counted nor banned.
//!
//! Both tables are bounded ([`MAX_TRACKED_SOURCES`], [`MAX_BANS`]): a flood of failures from
//! many (possibly spoofed) addresses forgets the sources that failed least recently and, for
//! bans, the ones that would lift soonest, instead of growing without bound. Addresses are
//! compared as IP addresses only (every port of a banned host is banned); an IPv4-mapped
//! IPv6 address counts as the IPv4 address it carries.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use sip_core::time::Time;

/// At most this many source addresses have failures counted at once.
pub const MAX_TRACKED_SOURCES: usize = 4096;
/// At most this many addresses are banned at once.
pub const MAX_BANS: usize = 4096;

/// When a source is banned, and for how long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanConfig {
    /// Failures within `window` that ban a source (at least 1).
    pub max_failures: u32,
    /// The window failures are counted in.
    pub window: Duration,
    /// How long a ban lasts; zero bans nobody (failures are still reported).
    pub ban: Duration,
    /// Networks never banned.
    pub exempt: Vec<IpNet>,
}

impl Default for BanConfig {
    /// The defaults of `dialer.toml`: 5 failures in 600 s ban for 3600 s, nobody exempt.
    fn default() -> Self {
        BanConfig {
            max_failures: 5,
            window: Duration::from_secs(600),
            ban: Duration::from_secs(3600),
            exempt: Vec::new(),
        }
    }
}

impl BanConfig {
    /// The `[security]` table of a `dialer.toml`.
    pub fn from_profiles(security: &trunk_profiles::Security) -> Self {
        BanConfig {
            max_failures: security.max_auth_failures,
            window: security.ban_window,
            ban: security.ban,
            exempt: security.ban_exempt.clone(),
        }
    }

    /// Whether `ip` is in an exempt network.
    pub fn is_exempt(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.exempt.iter().any(|n| n.contains(&ip))
    }
}

/// One banned address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ban {
    /// The address (IPv4-mapped IPv6 addresses as IPv4).
    pub address: IpAddr,
    /// When the ban started.
    pub since: Time,
    /// When it lifts.
    pub until: Time,
    /// The failures counted within the window when it started.
    pub failures: u32,
}

/// The failure counts and the bans.
#[derive(Debug, Clone)]
pub struct Bans {
    config: BanConfig,
    /// The times of each source's last failures within the window (at most `max_failures`).
    failures: HashMap<IpAddr, VecDeque<Time>>,
    banned: HashMap<IpAddr, Ban>,
}

/// What [`Bans::record_failure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counted {
    /// Failures of this source within the window, this one included (0 for an exempt one).
    pub failures: u32,
    /// The ban this failure started, if it did.
    pub banned: Option<Ban>,
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Bans {
    /// Empty tables for `config`.
    pub fn new(config: BanConfig) -> Self {
        Bans {
            config,
            failures: HashMap::new(),
            banned: HashMap::new(),
        }
    }

    /// The settings.
    pub fn config(&self) -> &BanConfig {
        &self.config
    }

    /// Counts one failed authentication of `ip` at `now`, banning it when that makes
    /// `max_failures` within the window (unless `ban` is zero or `ip` is exempt).
    pub fn record_failure(&mut self, now: Time, ip: IpAddr) -> Counted {
        let ip = canonical(ip);
        if self.config.is_exempt(ip) {
            return Counted {
                failures: 0,
                banned: None,
            };
        }
        let window = self.config.window;
        let max = self.config.max_failures.max(1) as usize;
        if !self.failures.contains_key(&ip) && self.failures.len() >= MAX_TRACKED_SOURCES {
            self.failures
                .retain(|_, times| times.back().is_some_and(|t| now.since(*t) < window));
            if self.failures.len() >= MAX_TRACKED_SOURCES {
                let stalest = self
                    .failures
                    .iter()
                    .min_by_key(|(_, times)| times.back().copied())
                    .map(|(ip, _)| *ip);
                if let Some(stalest) = stalest {
                    self.failures.remove(&stalest);
                }
            }
        }
        let times = self.failures.entry(ip).or_default();
        while times.front().is_some_and(|t| now.since(*t) >= window) {
            times.pop_front();
        }
        times.push_back(now);
        while times.len() > max {
            times.pop_front();
        }
        let failures = u32::try_from(times.len()).unwrap_or(u32::MAX);
        if times.len() < max || self.config.ban.is_zero() {
            return Counted {
                failures,
                banned: None,
            };
        }
        self.failures.remove(&ip);
        if !self.banned.contains_key(&ip) && self.banned.len() >= MAX_BANS {
            self.banned.retain(|_, b| now < b.until);
            if self.banned.len() >= MAX_BANS {
                let soonest = self
                    .banned
                    .values()
                    .min_by_key(|b| b.until)
                    .map(|b| b.address);
                if let Some(soonest) = soonest {
                    self.banned.remove(&soonest);
                }
            }
        }
        let ban = Ban {
            address: ip,
            since: now,
            until: now + self.config.ban,
            failures,
        };
        self.banned.insert(ip, ban);
        Counted {
            failures,
            banned: Some(ban),
        }
    }

    /// Whether datagrams from `ip` are to be dropped at `now`.
    pub fn is_banned(&self, now: Time, ip: IpAddr) -> bool {
        if self.banned.is_empty() {
            return false;
        }
        self.banned
            .get(&canonical(ip))
            .is_some_and(|b| now < b.until)
    }

    /// The bans in force at `now`, the oldest first.
    pub fn list(&self, now: Time) -> Vec<Ban> {
        let mut out: Vec<Ban> = self
            .banned
            .values()
            .filter(|b| now < b.until)
            .copied()
            .collect();
        out.sort_by_key(|b| (b.since, b.address));
        out
    }

    /// Lifts the ban of `ip` at `now` and forgets its failures; `None` when it was not
    /// banned.
    pub fn lift(&mut self, now: Time, ip: IpAddr) -> Option<Ban> {
        let ip = canonical(ip);
        self.failures.remove(&ip);
        self.banned.remove(&ip).filter(|b| now < b.until)
    }

    /// Forgets bans that lifted and failures that left the window by `now`.
    pub fn expire(&mut self, now: Time) {
        let window = self.config.window;
        self.banned.retain(|_, b| now < b.until);
        self.failures
            .retain(|_, times| times.back().is_some_and(|t| now.since(*t) < window));
    }

    /// How many sources have failures counted (for tests of the bound).
    pub fn tracked_sources(&self) -> usize {
        self.failures.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: u64) -> Time {
        Time(Duration::from_secs(s))
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn v4(n: u32) -> IpAddr {
        IpAddr::V4(std::net::Ipv4Addr::from(n))
    }

    #[test]
    fn the_fifth_failure_within_the_window_bans_for_the_ban_time() {
        let mut bans = Bans::new(BanConfig::default());
        for i in 0..4 {
            let c = bans.record_failure(at(i), ip("203.0.113.9"));
            assert_eq!((c.failures, c.banned), (i as u32 + 1, None));
        }
        assert!(!bans.is_banned(at(4), ip("203.0.113.9")));
        let c = bans.record_failure(at(4), ip("203.0.113.9"));
        let ban = c.banned.unwrap();
        assert_eq!((ban.since, ban.until, ban.failures), (at(4), at(3604), 5));
        assert!(bans.is_banned(at(4), ip("203.0.113.9")));
        assert!(bans.is_banned(at(3603), ip("::ffff:203.0.113.9")));
        assert!(!bans.is_banned(at(3604), ip("203.0.113.9")));
        assert!(!bans.is_banned(at(5), ip("203.0.113.10")));
        assert_eq!(bans.list(at(10)), [ban]);
        assert!(bans.list(at(3604)).is_empty());
    }

    #[test]
    fn failures_older_than_the_window_do_not_count() {
        let mut bans = Bans::new(BanConfig::default());
        for t in [0, 200, 400, 599] {
            bans.record_failure(at(t), ip("198.51.100.1"));
        }
        // The failure at 0 left the window at 600.
        let c = bans.record_failure(at(600), ip("198.51.100.1"));
        assert_eq!((c.failures, c.banned), (4, None));
        assert!(bans
            .record_failure(at(601), ip("198.51.100.1"))
            .banned
            .is_some());
    }

    #[test]
    fn exempt_networks_and_ban_zero_ban_nobody() {
        let mut config = BanConfig {
            exempt: vec!["192.168.1.0/24".parse().unwrap()],
            ..BanConfig::default()
        };
        let mut bans = Bans::new(config.clone());
        for t in 0..20 {
            assert_eq!(bans.record_failure(at(t), ip("192.168.1.7")).failures, 0);
        }
        assert!(!bans.is_banned(at(20), ip("192.168.1.7")));
        config.ban = Duration::ZERO;
        let mut bans = Bans::new(config);
        for t in 0..20 {
            let c = bans.record_failure(at(t), ip("203.0.113.9"));
            assert!(c.banned.is_none());
            assert_eq!(c.failures, (t as u32 + 1).min(5));
        }
        assert!(!bans.is_banned(at(20), ip("203.0.113.9")));
    }

    #[test]
    fn lifting_a_ban_forgets_the_failures_and_says_whether_there_was_one() {
        let mut bans = Bans::new(BanConfig {
            max_failures: 2,
            ..BanConfig::default()
        });
        bans.record_failure(at(0), ip("203.0.113.9"));
        bans.record_failure(at(1), ip("203.0.113.9"));
        assert!(bans.is_banned(at(2), ip("203.0.113.9")));
        assert!(bans.lift(at(2), ip("203.0.113.9")).is_some());
        assert!(!bans.is_banned(at(2), ip("203.0.113.9")));
        assert!(bans.lift(at(2), ip("203.0.113.9")).is_none());
        // Counting starts again from zero.
        assert!(bans
            .record_failure(at(3), ip("203.0.113.9"))
            .banned
            .is_none());
    }

    #[test]
    fn the_tables_stay_bounded_under_a_flood_of_sources() {
        let mut bans = Bans::new(BanConfig {
            max_failures: 1,
            ..BanConfig::default()
        });
        for i in 0..(MAX_BANS as u32 + 100) {
            let a = v4(0x0a00_0000u32 + i);
            bans.record_failure(at(u64::from(i) / 100), a);
        }
        assert_eq!(bans.list(at(100)).len(), MAX_BANS);
        // The ones lifting last are kept.
        let newest = v4(0x0a00_0000u32 + MAX_BANS as u32 + 99);
        assert!(bans.is_banned(at(100), newest));
        assert!(!bans.is_banned(at(100), ip("10.0.0.0")));

        let mut bans = Bans::new(BanConfig::default());
        for i in 0..(MAX_TRACKED_SOURCES as u32 + 100) {
            bans.record_failure(at(1), v4(0x0a00_0000u32 + i));
        }
        assert_eq!(bans.tracked_sources(), MAX_TRACKED_SOURCES);
        bans.expire(at(601));
        assert_eq!(bans.tracked_sources(), 0);
    }
}
