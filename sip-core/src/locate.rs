//! Locating a SIP server by DNS (RFC 3263), without doing the lookups: which records to ask
//! for, how the answers become an ordered list of targets, which target a request moves to
//! when one fails, and when the list must be looked up again.
//!
//! # What it does
//! - [`first_lookup`]: an IP literal is used as it is; a name with an explicit port is
//!   looked up with A/AAAA only (RFC 3263 §4.2); a name without a port starts with NAPTR
//!   (RFC 3263 §4.1).
//! - [`srv_names`]: the NAPTR records of the transport (`SIP+D2U`, `SIP+D2T`, `SIPS+D2T`,
//!   flag `s`) in order and preference; without any, the SRV name of the transport
//!   (`_sip._udp`, `_sip._tcp`, `_sips._tcp`, RFC 3263 §4.1).
//! - [`order_srv`]: SRV records in priority order, with the weighted random choice of
//!   RFC 2782 within a priority; [`weighted_index`] is that choice for a given random number.
//! - [`Resolved`]: the targets in order, deduplicated, at most [`MAX_TARGETS`], with the
//!   smallest TTL of the records that made them (clamped to [`MIN_TTL`]..=[`MAX_TTL`]).
//! - [`TargetCache`]: the list of one server kept until its TTL runs out, then looked up
//!   again; a failed lookup keeps the old list and tries again after [`RETRY_FAILED_LOOKUP`].
//! - [`Failover`]: the targets a request has left. On a transaction timeout or a 503
//!   ([`fails_over`]) the request is sent again to the next one as a new transaction
//!   (RFC 3263 §4.3).
//!
//! # Drive loop
//! ```text
//! match first_lookup(host, port, transport) {
//!     FirstLookup::Literal(addr) => Resolved::literal(Target { addr, transport }),
//!     FirstLookup::Addresses { name, port } => A/AAAA of name, each pushed with port,
//!     FirstLookup::Naptr { domain } => NAPTR of domain; for name in srv_names(..) { SRV of
//!         name, order_srv(..), A/AAAA of each SRV target, pushed with its port }; no SRV at
//!         all: A/AAAA of domain with default_port(transport),
//! }
//! cache.refreshed(now, resolved) ... when cache.refresh_due(now): look up again.
//! ```
//!
//! # What it does not do
//! No lookups, no sockets, no clock: the runtime asks the DNS and gives the answers and the
//! time. NAPTR regexp rewriting (a SIP NAPTR has none, RFC 3263 §4.1) and the `a` and `u`
//! flags are not followed. SCTP services (`SIP+D2S`) are never chosen.
//!
//! # Errors and panics
//! None: records that cannot be used are skipped, an empty answer is an empty list.

use crate::endpoint::Target;
use crate::time::Time;
use crate::transaction::Transport;
use rand::RngCore;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// At most this many targets are kept for one server: a request is tried on each at most
/// once, so its total time is bounded by this many Timer B (64*T1) periods.
pub const MAX_TARGETS: usize = 5;

/// A list is kept at least this long whatever the TTL, so that a TTL of zero does not look
/// the server up again for every request.
pub const MIN_TTL: Duration = Duration::from_secs(5);

/// A list is looked up again at least this often, whatever the TTL.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 3600);

/// After a failed lookup the old list is kept and the lookup tried again this much later.
pub const RETRY_FAILED_LOOKUP: Duration = Duration::from_secs(30);

/// The NAPTR service of a transport (RFC 3263 §4.1).
pub fn naptr_service(transport: Transport) -> &'static str {
    match transport {
        Transport::Udp => "SIP+D2U",
        Transport::Tcp => "SIP+D2T",
        Transport::Tls => "SIPS+D2T",
    }
}

/// The SRV name of a transport for `domain` (RFC 3263 §4.1, RFC 2782 `_Service._Proto.Name`).
pub fn srv_name(transport: Transport, domain: &str) -> String {
    let prefix = match transport {
        Transport::Udp => "_sip._udp",
        Transport::Tcp => "_sip._tcp",
        Transport::Tls => "_sips._tcp",
    };
    format!("{prefix}.{}", domain.trim_end_matches('.'))
}

/// The port of a target found without SRV: 5061 for TLS, 5060 otherwise
/// (RFC 3263 §4.2, RFC 3261 §19.1.2).
pub fn default_port(transport: Transport) -> u16 {
    match transport {
        Transport::Tls => 5061,
        Transport::Udp | Transport::Tcp => 5060,
    }
}

/// What to ask the DNS first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FirstLookup {
    /// An IP literal: no lookup.
    Literal(SocketAddr),
    /// A name with an explicit port: A/AAAA only (RFC 3263 §4.2).
    Addresses {
        /// The name.
        name: String,
        /// The port given.
        port: u16,
    },
    /// A name without a port: NAPTR, then SRV, then A/AAAA (RFC 3263 §4.1).
    Naptr {
        /// The domain.
        domain: String,
    },
}

/// The first lookup for `host` (a name, an IPv4 address or a bracketed IPv6 address) and
/// `port` (`None` when the configuration gave none).
pub fn first_lookup(host: &str, port: Option<u16>, transport: Transport) -> FirstLookup {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        let port = port.unwrap_or_else(|| default_port(transport));
        return FirstLookup::Literal(SocketAddr::new(ip, port));
    }
    let name = host.trim_end_matches('.').to_ascii_lowercase();
    match port {
        Some(port) => FirstLookup::Addresses { name, port },
        None => FirstLookup::Naptr { domain: name },
    }
}

/// A NAPTR record (RFC 3403 §4.1), as far as RFC 3263 uses it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Naptr {
    /// Lower first.
    pub order: u16,
    /// Lower first among records of one order.
    pub preference: u16,
    /// `s` for a record whose replacement is an SRV name.
    pub flags: String,
    /// `SIP+D2U` and the like.
    pub service: String,
    /// The SRV name.
    pub replacement: String,
}

/// The SRV names to look up for `transport`, best first: the replacements of the NAPTR
/// records with flag `s` and the transport's service, by order then preference
/// (RFC 3263 §4.1, RFC 3403 §4.1). Without any such record (no NAPTR, or only other
/// transports), the transport's own SRV name for `domain`: RFC 3263 §4.1 looks SRV up
/// directly when there is no NAPTR, and a carrier whose NAPTR set is incomplete is still
/// reached.
pub fn srv_names(records: &[Naptr], transport: Transport, domain: &str) -> Vec<String> {
    let service = naptr_service(transport);
    let mut usable: Vec<&Naptr> = records
        .iter()
        .filter(|r| r.flags.eq_ignore_ascii_case("s") && r.service.eq_ignore_ascii_case(service))
        .filter(|r| !r.replacement.trim_end_matches('.').is_empty())
        .collect();
    usable.sort_by_key(|r| (r.order, r.preference));
    let mut names: Vec<String> = Vec::new();
    for r in usable {
        let name = r.replacement.trim_end_matches('.').to_ascii_lowercase();
        if !names.contains(&name) {
            names.push(name);
        }
    }
    if names.is_empty() {
        names.push(srv_name(transport, domain));
    }
    names
}

/// An SRV record (RFC 2782).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Srv {
    /// Lower first.
    pub priority: u16,
    /// Relative chance among records of one priority.
    pub weight: u16,
    /// The port.
    pub port: u16,
    /// The host; `.` says the service is not offered at this domain.
    pub target: String,
}

/// RFC 2782's choice within one priority, for the random number `random` in
/// `0..=sum(weights)`: the first record whose running sum of weights is at least `random`.
/// The caller lists records of weight 0 first, as RFC 2782 asks, so that they are chosen
/// only for `random == 0` (or when every weight is 0). `weights` must not be empty.
pub fn weighted_index(weights: &[u16], random: u32) -> usize {
    let mut sum = 0u32;
    for (i, w) in weights.iter().enumerate() {
        sum += u32::from(*w);
        if sum >= random {
            return i;
        }
    }
    weights.len().saturating_sub(1)
}

/// SRV records in the order they are tried (RFC 2782): lower priority first; within a
/// priority, repeatedly a weighted random choice among those not yet ordered, weight-0
/// records first in the list so that they are seldom picked first. A single record whose
/// target is `.` means the service is decidedly not available: no targets.
pub fn order_srv(records: &[Srv], rng: &mut dyn RngCore) -> Vec<Srv> {
    if records.len() == 1 && records[0].target.trim_end_matches('.').is_empty() {
        return Vec::new();
    }
    let mut by_priority: Vec<Srv> = records
        .iter()
        .filter(|r| !r.target.trim_end_matches('.').is_empty())
        .cloned()
        .collect();
    by_priority.sort_by_key(|r| (r.priority, r.weight != 0));
    let mut ordered = Vec::with_capacity(by_priority.len());
    let mut rest = by_priority.as_slice();
    while let Some(first) = rest.first() {
        let same = rest
            .iter()
            .take_while(|r| r.priority == first.priority)
            .count();
        let mut group: Vec<Srv> = rest[..same].to_vec();
        rest = &rest[same..];
        while !group.is_empty() {
            let weights: Vec<u16> = group.iter().map(|r| r.weight).collect();
            let sum: u32 = weights.iter().map(|w| u32::from(*w)).sum();
            // A uniform number in 0..=sum (the modulo bias is at most sum / 2^32).
            let random = rng.next_u32() % (sum + 1);
            let i = weighted_index(&weights, random);
            ordered.push(group.remove(i));
        }
    }
    ordered
}

/// The ordered targets of one server and how long they may be used.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    targets: Vec<Target>,
    /// `None` for an IP literal, which never expires.
    ttl: Option<Duration>,
}

impl Resolved {
    /// The one target of an IP literal, kept for ever.
    pub fn literal(target: Target) -> Resolved {
        Resolved {
            targets: vec![target],
            ttl: None,
        }
    }

    /// An empty list, to which [`Resolved::push`] adds.
    pub fn empty() -> Resolved {
        Resolved {
            targets: Vec::new(),
            ttl: None,
        }
    }

    /// Adds `target` after the others unless it is there already or the list holds
    /// [`MAX_TARGETS`]; `ttl` is the smallest TTL of the records it came from (NAPTR, SRV,
    /// A/AAAA), and the list lasts no longer than its shortest-lived target.
    pub fn push(&mut self, target: Target, ttl: Duration) {
        self.note_ttl(ttl);
        if self.targets.len() < MAX_TARGETS && !self.targets.contains(&target) {
            self.targets.push(target);
        }
    }

    /// Counts a TTL of a record that made the list (a NAPTR or SRV record) in its lifetime.
    pub fn note_ttl(&mut self, ttl: Duration) {
        self.ttl = Some(self.ttl.map_or(ttl, |t| t.min(ttl)));
    }

    /// The targets, best first.
    pub fn targets(&self) -> &[Target] {
        &self.targets
    }

    /// How long the list may be used: the smallest TTL clamped to
    /// [`MIN_TTL`]..=[`MAX_TTL`]; `None` for a literal.
    pub fn lifetime(&self) -> Option<Duration> {
        self.ttl.map(|t| t.clamp(MIN_TTL, MAX_TTL))
    }

    /// True when no target was found.
    pub fn is_empty(&self) -> bool {
        self.targets.is_empty()
    }
}

/// The targets of one server, kept until their TTL runs out.
#[derive(Clone, Debug)]
pub struct TargetCache {
    resolved: Resolved,
    /// When to look up again; `None` for a literal.
    refresh_at: Option<Time>,
    /// A lookup is under way: no other is started.
    refreshing: bool,
}

impl TargetCache {
    /// The cache of a list looked up at `now`.
    pub fn new(now: Time, resolved: Resolved) -> TargetCache {
        TargetCache {
            refresh_at: resolved.lifetime().map(|l| now + l),
            resolved,
            refreshing: false,
        }
    }

    /// The targets, best first.
    pub fn targets(&self) -> &[Target] {
        self.resolved.targets()
    }

    /// When the list must be looked up again (`None`: never, or a lookup is under way).
    pub fn next_refresh(&self) -> Option<Time> {
        self.refresh_at.filter(|_| !self.refreshing)
    }

    /// True when the TTL ran out at `now` and no lookup is under way; the caller starts one
    /// and reports it with [`TargetCache::refreshed`] or [`TargetCache::refresh_failed`].
    pub fn refresh_due(&self, now: Time) -> bool {
        self.next_refresh().is_some_and(|at| at <= now)
    }

    /// A lookup was started.
    pub fn start_refresh(&mut self) {
        self.refreshing = true;
    }

    /// The lookup started at [`TargetCache::start_refresh`] answered at `now`. An empty
    /// answer keeps the old list, as a failed lookup does. Returns true when the targets
    /// changed.
    pub fn refreshed(&mut self, now: Time, resolved: Resolved) -> bool {
        if resolved.is_empty() {
            self.refresh_failed(now);
            return false;
        }
        self.refreshing = false;
        self.refresh_at = resolved.lifetime().map(|l| now + l);
        let changed = resolved.targets != self.resolved.targets;
        self.resolved = resolved;
        changed
    }

    /// The lookup failed at `now`: the old list stays in use and the lookup is tried again
    /// after [`RETRY_FAILED_LOOKUP`].
    pub fn refresh_failed(&mut self, now: Time) {
        self.refreshing = false;
        self.refresh_at = Some(now + RETRY_FAILED_LOOKUP);
    }
}

/// True for a final status that moves a request to the next target: 503 Service
/// Unavailable (RFC 3263 §4.3). A transaction timeout (Timer B or F) does too.
pub fn fails_over(status: u16) -> bool {
    status == 503
}

/// The targets a request has not tried yet, in order.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Failover {
    remaining: VecDeque<Target>,
}

impl Failover {
    /// The targets after the first of `targets`: the request goes to the first.
    pub fn after_first(targets: &[Target]) -> Failover {
        Failover {
            remaining: targets.iter().skip(1).copied().collect(),
        }
    }

    /// The next target to try, taken off the list; `None` once every target was tried.
    pub fn next_target(&mut self) -> Option<Target> {
        self.remaining.pop_front()
    }

    /// Forgets the remaining targets (the request went elsewhere, a redirect).
    pub fn clear(&mut self) {
        self.remaining.clear();
    }

    /// How many targets are left.
    pub fn remaining(&self) -> usize {
        self.remaining.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    fn srv(priority: u16, weight: u16, port: u16, target: &str) -> Srv {
        Srv {
            priority,
            weight,
            port,
            target: target.into(),
        }
    }

    fn naptr(order: u16, preference: u16, service: &str, replacement: &str) -> Naptr {
        Naptr {
            order,
            preference,
            flags: "s".into(),
            service: service.into(),
            replacement: replacement.into(),
        }
    }

    fn target(s: &str) -> Target {
        Target {
            addr: s.parse().unwrap(),
            transport: Transport::Udp,
        }
    }

    #[test]
    fn an_explicit_port_skips_naptr_and_srv() {
        assert_eq!(
            first_lookup("Sip.Example.NET", Some(5080), Transport::Udp),
            FirstLookup::Addresses {
                name: "sip.example.net".into(),
                port: 5080
            }
        );
        assert_eq!(
            first_lookup("sip.example.net.", None, Transport::Tls),
            FirstLookup::Naptr {
                domain: "sip.example.net".into()
            }
        );
    }

    #[test]
    fn an_ip_literal_needs_no_lookup_and_takes_the_transport_default_port() {
        assert_eq!(
            first_lookup("192.0.2.1", None, Transport::Tls),
            FirstLookup::Literal("192.0.2.1:5061".parse().unwrap())
        );
        assert_eq!(
            first_lookup("[2001:db8::1]", Some(5070), Transport::Udp),
            FirstLookup::Literal("[2001:db8::1]:5070".parse().unwrap())
        );
    }

    #[test]
    fn naptr_records_of_the_transport_give_srv_names_by_order_then_preference() {
        let records = [
            naptr(20, 10, "SIP+D2U", "_sip._udp.late.example.net."),
            naptr(10, 50, "SIP+D2U", "_sip._udp.second.example.net."),
            naptr(10, 10, "SIP+D2U", "_sip._udp.first.example.net."),
            naptr(5, 10, "SIP+D2T", "_sip._tcp.example.net."),
            Naptr {
                flags: "a".into(),
                ..naptr(1, 1, "SIP+D2U", "other.example.net.")
            },
        ];
        assert_eq!(
            srv_names(&records, Transport::Udp, "example.net"),
            [
                "_sip._udp.first.example.net",
                "_sip._udp.second.example.net",
                "_sip._udp.late.example.net"
            ]
        );
        assert_eq!(
            srv_names(&records, Transport::Tcp, "example.net"),
            ["_sip._tcp.example.net"]
        );
    }

    #[test]
    fn without_naptr_of_the_transport_the_srv_name_is_built_from_the_domain() {
        assert_eq!(
            srv_names(&[], Transport::Tls, "example.net"),
            ["_sips._tcp.example.net"]
        );
        let only_udp = [naptr(10, 10, "SIP+D2U", "_sip._udp.example.net.")];
        assert_eq!(
            srv_names(&only_udp, Transport::Tcp, "example.net."),
            ["_sip._tcp.example.net"]
        );
    }

    #[test]
    fn weighted_choice_takes_the_first_running_sum_at_or_above_the_random_number() {
        // Weights 0, 10, 30: running sums 0, 10, 40 (RFC 2782's running-sum selection).
        let w = [0, 10, 30];
        assert_eq!(weighted_index(&w, 0), 0);
        assert_eq!(weighted_index(&w, 1), 1);
        assert_eq!(weighted_index(&w, 10), 1);
        assert_eq!(weighted_index(&w, 11), 2);
        assert_eq!(weighted_index(&w, 40), 2);
        assert_eq!(weighted_index(&[0, 0], 0), 0);
    }

    #[test]
    fn srv_records_are_tried_in_priority_order() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let records = [
            srv(20, 100, 5060, "backup.example.net."),
            srv(10, 0, 5070, "primary.example.net."),
        ];
        let ordered = order_srv(&records, &mut rng);
        let names: Vec<&str> = ordered.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(names, ["primary.example.net.", "backup.example.net."]);
    }

    #[test]
    fn within_a_priority_records_come_first_in_proportion_to_their_weight() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let records = [
            srv(10, 60, 5060, "a.example.net"),
            srv(10, 20, 5060, "b.example.net"),
            srv(10, 20, 5060, "c.example.net"),
            srv(10, 0, 5060, "zero.example.net"),
        ];
        let mut first = std::collections::HashMap::new();
        let runs = 10_000;
        for _ in 0..runs {
            let ordered = order_srv(&records, &mut rng);
            assert_eq!(ordered.len(), 4, "every record is tried once");
            *first.entry(ordered[0].target.clone()).or_insert(0u32) += 1;
        }
        let share = |name: &str| f64::from(*first.get(name).unwrap_or(&0)) / f64::from(runs);
        assert!((share("a.example.net") - 0.6).abs() < 0.03, "{first:?}");
        assert!((share("b.example.net") - 0.2).abs() < 0.03, "{first:?}");
        assert!((share("c.example.net") - 0.2).abs() < 0.03, "{first:?}");
        // Weight 0 is chosen first only for the random number 0: 1 in 101.
        assert!(share("zero.example.net") < 0.02, "{first:?}");
    }

    #[test]
    fn a_lone_dot_target_means_the_service_is_not_offered() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        assert!(order_srv(&[srv(0, 0, 0, ".")], &mut rng).is_empty());
    }

    #[test]
    fn resolved_targets_are_deduplicated_bounded_and_live_as_long_as_the_shortest_ttl() {
        let mut r = Resolved::empty();
        r.note_ttl(Duration::from_secs(3600));
        r.push(target("192.0.2.1:5060"), Duration::from_secs(300));
        r.push(target("192.0.2.1:5060"), Duration::from_secs(600));
        for i in 2..10 {
            r.push(
                target(&format!("192.0.2.{i}:5060")),
                Duration::from_secs(60),
            );
        }
        assert_eq!(r.targets().len(), MAX_TARGETS);
        assert_eq!(r.targets()[0], target("192.0.2.1:5060"));
        assert_eq!(r.lifetime(), Some(Duration::from_secs(60)));
        let mut tiny = Resolved::empty();
        tiny.push(target("192.0.2.1:5060"), Duration::ZERO);
        assert_eq!(tiny.lifetime(), Some(MIN_TTL));
        assert_eq!(Resolved::literal(target("192.0.2.1:5060")).lifetime(), None);
    }

    #[test]
    fn the_cache_is_refreshed_when_the_ttl_runs_out_in_virtual_time() {
        let t0 = Time::from_millis(1_000);
        let mut first = Resolved::empty();
        first.push(target("192.0.2.1:5060"), Duration::from_secs(30));
        let mut cache = TargetCache::new(t0, first.clone());
        assert!(!cache.refresh_due(t0 + Duration::from_millis(29_999)));
        assert!(cache.refresh_due(t0 + Duration::from_secs(30)));
        cache.start_refresh();
        assert!(
            !cache.refresh_due(t0 + Duration::from_secs(31)),
            "one lookup at a time"
        );
        assert_eq!(cache.next_refresh(), None);
        let t1 = t0 + Duration::from_secs(31);
        let mut second = Resolved::empty();
        second.push(target("192.0.2.2:5060"), Duration::from_secs(120));
        assert!(cache.refreshed(t1, second));
        assert_eq!(cache.targets(), [target("192.0.2.2:5060")]);
        assert_eq!(cache.next_refresh(), Some(t1 + Duration::from_secs(120)));
    }

    #[test]
    fn a_failed_or_empty_lookup_keeps_the_old_targets_and_tries_again_later() {
        let t0 = Time::ZERO;
        let mut first = Resolved::empty();
        first.push(target("192.0.2.1:5060"), Duration::from_secs(10));
        let mut cache = TargetCache::new(t0, first);
        let t1 = t0 + Duration::from_secs(10);
        cache.start_refresh();
        cache.refresh_failed(t1);
        assert_eq!(cache.targets(), [target("192.0.2.1:5060")]);
        assert_eq!(cache.next_refresh(), Some(t1 + RETRY_FAILED_LOOKUP));
        let t2 = t1 + RETRY_FAILED_LOOKUP;
        cache.start_refresh();
        assert!(!cache.refreshed(t2, Resolved::empty()));
        assert_eq!(cache.targets(), [target("192.0.2.1:5060")]);
        assert_eq!(cache.next_refresh(), Some(t2 + RETRY_FAILED_LOOKUP));
    }

    #[test]
    fn a_literal_is_never_looked_up_again() {
        let cache = TargetCache::new(Time::ZERO, Resolved::literal(target("192.0.2.1:5060")));
        assert_eq!(cache.next_refresh(), None);
        assert!(!cache.refresh_due(Time(Duration::from_secs(1 << 40))));
    }

    #[test]
    fn failover_walks_the_targets_after_the_first_once_each() {
        let all = [
            target("192.0.2.1:5060"),
            target("192.0.2.2:5060"),
            target("192.0.2.3:5060"),
        ];
        let mut f = Failover::after_first(&all);
        assert_eq!(f.remaining(), 2);
        assert_eq!(f.next_target(), Some(all[1]));
        assert_eq!(f.next_target(), Some(all[2]));
        assert_eq!(f.next_target(), None);
        assert!(fails_over(503));
        assert!(!fails_over(500) && !fails_over(486));
    }
}
