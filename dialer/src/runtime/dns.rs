//! The DNS lookups of RFC 3263 for trunks whose `proxy` is a name: NAPTR, SRV and A/AAAA
//! through hickory-resolver, asked of `[sip] dns_servers` or the system's resolvers. What
//! to ask, the order of the answers, their lifetime and the failover list are sans-IO
//! ([`sip_core::locate`]); this module only asks and hands the records over.

use hickory_resolver::config::{NameServerConfig, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use hickory_resolver::proto::xfer::Protocol;
use hickory_resolver::{ResolveError, TokioResolver};
use rand::RngCore;
use sip_core::endpoint::Target;
use sip_core::locate::{self, FirstLookup, Naptr, Resolved, Srv};
use sip_core::transaction::Transport;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

/// How long one query waits for a server before the next attempt.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);
/// Attempts per query.
const QUERY_ATTEMPTS: usize = 2;

/// A resolver for the trunks' names.
#[derive(Clone)]
pub struct Dns {
    resolver: TokioResolver,
}

impl std::fmt::Debug for Dns {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dns")
            .field("servers", &self.resolver.config().name_servers().len())
            .finish()
    }
}

impl Dns {
    /// Asks `servers` in order (UDP, then TCP for a truncated answer); with none, the
    /// system's (`/etc/resolv.conf`).
    pub fn new(servers: &[SocketAddr]) -> Result<Dns, String> {
        let mut builder = if servers.is_empty() {
            TokioResolver::builder_tokio()
                .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?
        } else {
            let mut group = Vec::new();
            for s in servers {
                group.push(NameServerConfig::new(*s, Protocol::Udp));
                group.push(NameServerConfig::new(*s, Protocol::Tcp));
            }
            let config = ResolverConfig::from_parts(None, Vec::new(), group);
            let mut b =
                TokioResolver::builder_with_config(config, TokioConnectionProvider::default());
            *b.options_mut() = ResolverOpts::default();
            b
        };
        let options = builder.options_mut();
        options.timeout = QUERY_TIMEOUT;
        options.attempts = QUERY_ATTEMPTS;
        Ok(Dns {
            resolver: builder.build(),
        })
    }

    /// The targets of `host` (a name or an IP literal) for `transport`, as RFC 3263 §4
    /// orders them: NAPTR, SRV, then A/AAAA when `port` is `None`, A/AAAA only when a port
    /// is given (§4.2). Addresses `usable` refuses (a family the SIP socket cannot reach)
    /// are left out. An error when nothing answered at all; an empty list when the name
    /// has no usable record.
    pub async fn locate(
        &self,
        host: &str,
        port: Option<u16>,
        transport: Transport,
        usable: &(dyn Fn(IpAddr) -> bool + Sync),
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Resolved, String> {
        match locate::first_lookup(host, port, transport) {
            FirstLookup::Literal(addr) => Ok(Resolved::literal(Target { addr, transport })),
            FirstLookup::Addresses { name, port } => {
                let mut resolved = Resolved::empty();
                for (ip, ttl) in self.addresses(&name).await? {
                    if usable(ip) {
                        let addr = SocketAddr::new(ip, port);
                        resolved.push(Target { addr, transport }, ttl);
                    }
                }
                Ok(resolved)
            }
            FirstLookup::Naptr { domain } => self.by_naptr(&domain, transport, usable, rng).await,
        }
    }

    /// RFC 3263 §4.1: NAPTR, then SRV, then A/AAAA of the SRV targets, or of the domain
    /// when there is no SRV. A server that fails one query (some refuse NAPTR) does not stop
    /// the next step; the lookup fails only when nothing usable was found and a query
    /// failed.
    async fn by_naptr(
        &self,
        domain: &str,
        transport: Transport,
        usable: &(dyn Fn(IpAddr) -> bool + Sync),
        rng: &mut (dyn RngCore + Send),
    ) -> Result<Resolved, String> {
        let mut resolved = Resolved::empty();
        let mut failure = None;
        let naptr = match self.naptr(domain).await {
            Ok((records, ttl)) => {
                if let Some(ttl) = ttl {
                    resolved.note_ttl(ttl);
                }
                records
            }
            Err(e) => {
                failure = Some(e);
                Vec::new()
            }
        };
        let mut found_srv = false;
        for name in locate::srv_names(&naptr, transport, domain) {
            let records = match self.srv(&name).await {
                Ok((records, ttl)) if !records.is_empty() => {
                    if let Some(ttl) = ttl {
                        resolved.note_ttl(ttl);
                    }
                    records
                }
                Ok(_) => continue,
                Err(e) => {
                    failure = Some(e);
                    continue;
                }
            };
            found_srv = true;
            for record in locate::order_srv(&records, rng) {
                match self.addresses(&record.target).await {
                    Ok(addresses) => {
                        for (ip, ttl) in addresses.into_iter().filter(|(ip, _)| usable(*ip)) {
                            let addr = SocketAddr::new(ip, record.port);
                            resolved.push(Target { addr, transport }, ttl);
                        }
                    }
                    Err(e) => failure = Some(e),
                }
            }
            break;
        }
        if !found_srv {
            // RFC 3263 §4.2: no SRV records, the name's own addresses at the default port.
            let port = locate::default_port(transport);
            match self.addresses(domain).await {
                Ok(addresses) => {
                    for (ip, ttl) in addresses.into_iter().filter(|(ip, _)| usable(*ip)) {
                        let addr = SocketAddr::new(ip, port);
                        resolved.push(Target { addr, transport }, ttl);
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) if resolved.is_empty() => Err(e),
            _ => Ok(resolved),
        }
    }

    async fn query(&self, name: &str, kind: RecordType) -> Result<Vec<(RData, Duration)>, String> {
        let fqdn = format!("{}.", name.trim_end_matches('.'));
        match self.resolver.lookup(fqdn.as_str(), kind).await {
            Ok(lookup) => Ok(lookup
                .record_iter()
                .map(|r| (r.data().clone(), Duration::from_secs(r.ttl().into())))
                .collect()),
            Err(e) if no_records(&e) => Ok(Vec::new()),
            Err(e) => Err(format!("{kind} {name}: {e}")),
        }
    }

    async fn naptr(&self, domain: &str) -> Result<(Vec<Naptr>, Option<Duration>), String> {
        let mut ttl: Option<Duration> = None;
        let mut out = Vec::new();
        for (data, t) in self.query(domain, RecordType::NAPTR).await? {
            if let RData::NAPTR(n) = data {
                ttl = Some(ttl.map_or(t, |m| m.min(t)));
                out.push(Naptr {
                    order: n.order(),
                    preference: n.preference(),
                    flags: String::from_utf8_lossy(n.flags()).into_owned(),
                    service: String::from_utf8_lossy(n.services()).into_owned(),
                    replacement: n.replacement().to_ascii(),
                });
            }
        }
        Ok((out, ttl))
    }

    async fn srv(&self, name: &str) -> Result<(Vec<Srv>, Option<Duration>), String> {
        let mut ttl: Option<Duration> = None;
        let mut out = Vec::new();
        for (data, t) in self.query(name, RecordType::SRV).await? {
            if let RData::SRV(s) = data {
                ttl = Some(ttl.map_or(t, |m| m.min(t)));
                out.push(Srv {
                    priority: s.priority(),
                    weight: s.weight(),
                    port: s.port(),
                    target: s.target().to_ascii(),
                });
            }
        }
        Ok((out, ttl))
    }

    /// A then AAAA records of `name`, with their TTLs; one of the two failing is not a
    /// failure when the other answered.
    async fn addresses(&self, name: &str) -> Result<Vec<(IpAddr, Duration)>, String> {
        let mut out = Vec::new();
        let mut failure = None;
        for kind in [RecordType::A, RecordType::AAAA] {
            match self.query(name, kind).await {
                Ok(records) => {
                    for (data, ttl) in records {
                        match data {
                            RData::A(a) => out.push((IpAddr::V4(a.0), ttl)),
                            RData::AAAA(a) => out.push((IpAddr::V6(a.0), ttl)),
                            _ => {}
                        }
                    }
                }
                Err(e) => failure = Some(e),
            }
        }
        match failure {
            Some(e) if out.is_empty() => Err(e),
            _ => Ok(out),
        }
    }
}

/// NXDOMAIN or an empty answer: the name has no such record, which is an answer.
fn no_records(e: &ResolveError) -> bool {
    e.is_no_records_found() || e.is_nx_domain()
}
