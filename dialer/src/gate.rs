//! Who may send the dialer SIP requests, decided per datagram before it is parsed: the
//! trunks, the peers the dialer itself sent requests to, and sources inside some agent's
//! `allow` network; and, for the sources it admits only for their network, a per-address
//! request rate. Trunks and the peers it called (a carrier's other edges found by DNS, the
//! contacts of its calls) are never rate limited: a carrier at 1000 calls a second sends
//! as many BYEs.
//!
//! A dialer takes no inbound calls, so a request from anywhere else is a scanner's
//! (sipvicious `svmap`, "friendly-scanner") or a spoofed one: it is dropped unanswered, which
//! tells a scanner nothing and reflects nothing towards a spoofed source. Responses are always
//! let through: they only ever match a transaction the dialer started, and a multi-homed
//! carrier may answer from another address than the one it was sent to (RFC 3261 §18.2.2).
//!
//! Sans-IO: time comes in as an argument. Every table is bounded, so a flood from many
//! addresses cannot grow memory without bound.

use ipnet::IpNet;
use sip_core::time::Time;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::time::Duration;

/// How long a peer the dialer sent a request to keeps being trusted after the last one.
pub const PEER_TRUST: Duration = Duration::from_secs(3600);

/// Most peers remembered as contacted; beyond, the stalest are forgotten.
pub const MAX_PEERS: usize = 65_536;

/// Most sources with a rate bucket at once; when all are busy a new source is limited.
pub const MAX_BUCKETS: usize = 65_536;

/// How often a full bucket table is swept of what it need not keep.
pub const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// What to do with one received datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Parse it and act on it.
    Admit,
    /// A request from a source the dialer has no business with: dropped unanswered.
    UnknownSource,
    /// A request over the source's rate: dropped unanswered.
    RateLimited {
        /// True for the first request dropped since the source was last within its rate
        /// (one log line per episode, not per packet).
        first: bool,
    },
}

/// Counts of what was dropped, for `GET /metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Dropped {
    /// Requests from unknown sources.
    pub unknown_source: u64,
    /// Requests over a source's rate.
    pub rate_limited: u64,
}

/// A token bucket: `tokens` at `at`, refilled at the gate's rate up to its burst.
#[derive(Clone, Copy, Debug)]
struct Bucket {
    tokens: f64,
    at: Time,
    limited: bool,
}

/// The gate in front of the SIP endpoint.
#[derive(Debug)]
pub struct Gate {
    /// The agents' `allow` networks.
    networks: Vec<IpNet>,
    /// Trunk addresses: always admitted, never rate limited.
    trunks: HashSet<IpAddr>,
    /// Peers the dialer sent a request to, and when it last did.
    peers: HashMap<IpAddr, Time>,
    buckets: HashMap<IpAddr, Bucket>,
    /// When the full bucket table was last swept: at most once a [`SWEEP_EVERY`], so a
    /// flood from ever new addresses costs no more than a lookup per packet.
    swept: Option<Time>,
    rate: f64,
    burst: f64,
    dropped: Dropped,
}

/// An IPv4-mapped IPv6 address as the IPv4 address it carries, so that a dual-stack socket's
/// view of a source matches the configuration's.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

impl Gate {
    /// A gate admitting requests from inside `networks`, at most `rate` a second from any
    /// one source that is not a trunk (twice that in a burst).
    pub fn new(networks: Vec<IpNet>, rate: u32) -> Gate {
        let rate = f64::from(rate.max(1));
        Gate {
            networks,
            trunks: HashSet::new(),
            peers: HashMap::new(),
            buckets: HashMap::new(),
            swept: None,
            rate,
            burst: 2.0 * rate,
            dropped: Dropped::default(),
        }
    }

    /// Trusts a trunk's address for good: always admitted, never rate limited.
    pub fn trust_trunk(&mut self, ip: IpAddr) {
        self.trunks.insert(canonical(ip));
    }

    /// The dialer sent a request to `ip`: its requests are admitted for [`PEER_TRUST`]
    /// from now (a carrier's edge the trunk's DNS pointed at, an agent's contact).
    pub fn contacted(&mut self, now: Time, ip: IpAddr) {
        let ip = canonical(ip);
        if self.trunks.contains(&ip) {
            return;
        }
        if self.peers.len() >= MAX_PEERS && !self.peers.contains_key(&ip) {
            // Peers come only from the dialer's own requests (trunk edges, the contacts of
            // its calls), never from what a stranger sends: a full table is rare, and its
            // stalest entry makes room.
            self.peers.retain(|_, at| now.since(*at) < PEER_TRUST);
            if self.peers.len() >= MAX_PEERS {
                if let Some(stalest) = self
                    .peers
                    .iter()
                    .min_by_key(|(_, at)| **at)
                    .map(|(ip, _)| *ip)
                {
                    self.peers.remove(&stalest);
                }
            }
        }
        self.peers.insert(ip, now);
    }

    /// Whether requests from `ip` are taken at all (before any rate).
    pub fn is_known(&self, now: Time, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.trusted(now, ip) || self.in_networks(ip)
    }

    /// A trunk, or a peer called within [`PEER_TRUST`]: never rate limited.
    fn trusted(&self, now: Time, ip: IpAddr) -> bool {
        self.trunks.contains(&ip)
            || self
                .peers
                .get(&ip)
                .is_some_and(|at| now.since(*at) < PEER_TRUST)
    }

    fn in_networks(&self, ip: IpAddr) -> bool {
        self.networks.iter().any(|n| n.contains(&ip))
    }

    /// Decides on one datagram from `ip`; `request` is false for a response (and for a
    /// keep-alive), which is always admitted.
    pub fn admit(&mut self, now: Time, ip: IpAddr, request: bool) -> Verdict {
        if !request {
            return Verdict::Admit;
        }
        let ip = canonical(ip);
        if self.trusted(now, ip) {
            return Verdict::Admit;
        }
        if !self.in_networks(ip) {
            self.dropped.unknown_source += 1;
            return Verdict::UnknownSource;
        }
        match self.take(now, ip) {
            Verdict::Admit => Verdict::Admit,
            limited => {
                self.dropped.rate_limited += 1;
                limited
            }
        }
    }

    /// Takes one token from `ip`'s bucket.
    fn take(&mut self, now: Time, ip: IpAddr) -> Verdict {
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&ip) {
            if self.swept.is_none_or(|at| now.since(at) >= SWEEP_EVERY) {
                // A full bucket holds nothing a new one would not: forget those.
                self.swept = Some(now);
                let (rate, burst) = (self.rate, self.burst);
                self.buckets
                    .retain(|_, b| b.tokens + rate * now.since(b.at).as_secs_f64() < burst);
            }
            if self.buckets.len() >= MAX_BUCKETS {
                return Verdict::RateLimited { first: false };
            }
        }
        let bucket = self.buckets.entry(ip).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            limited: false,
        });
        let refill = self.rate * now.since(bucket.at).as_secs_f64();
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.at = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.limited = false;
            Verdict::Admit
        } else {
            let first = !bucket.limited;
            bucket.limited = true;
            Verdict::RateLimited { first }
        }
    }

    /// What was dropped so far.
    pub fn dropped(&self) -> Dropped {
        self.dropped
    }
}

/// Whether a datagram (or a message from a stream) is a request: anything but a response
/// (`SIP/2.0 ...`) or a keep-alive of blank bytes.
pub fn is_request(bytes: &[u8]) -> bool {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b'\r' | b'\n' | b' ' | b'\t' | 0));
    match start {
        None => false,
        Some(i) => {
            let rest = &bytes[i..];
            !(rest.len() >= 4 && rest[..4].eq_ignore_ascii_case(b"SIP/"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn at(ms: u64) -> Time {
        Time::from_millis(ms)
    }

    fn gate(rate: u32) -> Gate {
        Gate::new(vec!["192.168.1.0/24".parse().unwrap()], rate)
    }

    #[test]
    fn requests_from_outside_every_network_are_dropped_and_counted() {
        let mut g = gate(50);
        g.trust_trunk(ip("203.0.113.5"));
        assert_eq!(
            g.admit(at(0), ip("198.51.100.66"), true),
            Verdict::UnknownSource
        );
        assert_eq!(
            g.admit(at(0), ip("::ffff:198.51.100.66"), true),
            Verdict::UnknownSource
        );
        assert_eq!(g.admit(at(0), ip("192.168.1.20"), true), Verdict::Admit);
        assert_eq!(g.admit(at(0), ip("203.0.113.5"), true), Verdict::Admit);
        assert_eq!(
            g.admit(at(0), ip("::ffff:203.0.113.5"), true),
            Verdict::Admit
        );
        // A response from anywhere goes on to the transaction layer.
        assert_eq!(g.admit(at(0), ip("198.51.100.66"), false), Verdict::Admit);
        assert_eq!(g.dropped().unknown_source, 2);
    }

    #[test]
    fn a_peer_the_dialer_called_is_trusted_for_an_hour_after_the_last_request() {
        let mut g = gate(50);
        let edge = ip("198.51.100.10");
        g.contacted(at(0), edge);
        assert_eq!(g.admit(at(1_000), edge, true), Verdict::Admit);
        g.contacted(at(1_800_000), edge);
        assert_eq!(g.admit(at(3_500_000), edge, true), Verdict::Admit);
        let gone = 1_800_000 + PEER_TRUST.as_millis() as u64;
        assert_eq!(g.admit(at(gone), edge, true), Verdict::UnknownSource);
    }

    #[test]
    fn a_source_over_its_rate_is_limited_after_its_burst_and_recovers_with_time() {
        let mut g = gate(10);
        let phone = ip("192.168.1.20");
        // The burst: twice the rate at once.
        for _ in 0..20 {
            assert_eq!(g.admit(at(0), phone, true), Verdict::Admit);
        }
        assert_eq!(
            g.admit(at(0), phone, true),
            Verdict::RateLimited { first: true }
        );
        assert_eq!(
            g.admit(at(0), phone, true),
            Verdict::RateLimited { first: false }
        );
        // Another source is not affected.
        assert_eq!(g.admit(at(0), ip("192.168.1.21"), true), Verdict::Admit);
        // 100 ms later one more token (10 a second).
        assert_eq!(g.admit(at(100), phone, true), Verdict::Admit);
        assert_eq!(
            g.admit(at(100), phone, true),
            Verdict::RateLimited { first: true }
        );
        assert_eq!(g.dropped().rate_limited, 3);
        // At its rate, it is never limited.
        for n in 1..=100 {
            assert_eq!(
                g.admit(at(100 + n * 100), phone, true),
                Verdict::Admit,
                "{n}"
            );
        }
    }

    #[test]
    fn a_peer_the_dialer_called_is_never_rate_limited() {
        let mut g = gate(1);
        let edge = ip("198.51.100.10");
        g.contacted(at(0), edge);
        for _ in 0..10_000 {
            assert_eq!(g.admit(at(1), edge, true), Verdict::Admit);
        }
        // Inside an agent network but never called: limited.
        let phone = ip("192.168.1.20");
        g.contacted(at(0), ip("192.168.1.21"));
        let limited = (0..10)
            .filter(|_| g.admit(at(1), phone, true) != Verdict::Admit)
            .count();
        assert_eq!(limited, 8, "a burst of 2 at 1 a second");
    }

    #[test]
    fn a_trunk_is_never_rate_limited() {
        let mut g = gate(1);
        let trunk = ip("203.0.113.5");
        g.trust_trunk(trunk);
        g.contacted(at(0), trunk);
        for _ in 0..10_000 {
            assert_eq!(g.admit(at(0), trunk, true), Verdict::Admit);
        }
        assert_eq!(g.dropped(), Dropped::default());
    }

    #[test]
    fn the_tables_stay_bounded_under_a_flood_of_sources() {
        let mut g = Gate::new(vec!["10.0.0.0/8".parse().unwrap()], 1);
        for n in 0..(MAX_BUCKETS as u32 + 1000) {
            let source = IpAddr::V4(std::net::Ipv4Addr::from(
                u32::from_be_bytes([10, 0, 0, 0]) + n,
            ));
            g.admit(at(0), source, true);
        }
        assert_eq!(g.buckets.len(), MAX_BUCKETS);
        assert_eq!(
            g.dropped().rate_limited,
            1000,
            "the sources beyond are limited"
        );
        // Two seconds later every bucket is full again, holds nothing a new one would not,
        // and makes room.
        assert_eq!(g.admit(at(2_000), ip("10.255.0.1"), true), Verdict::Admit);
    }

    #[test]
    fn requests_are_told_from_responses_and_keepalives() {
        assert!(is_request(b"INVITE sip:a@b SIP/2.0\r\n"));
        assert!(is_request(b"\r\nOPTIONS sip:a@b SIP/2.0\r\n"));
        assert!(!is_request(b"SIP/2.0 200 OK\r\n"));
        assert!(!is_request(b"sip/2.0 200 OK\r\n"));
        assert!(!is_request(b"\r\n\r\n"));
        assert!(!is_request(b""));
        // Garbage is a request: the endpoint answers it 400 or drops it, once admitted.
        assert!(is_request(b"\x16\x03\x01"));
    }
}
