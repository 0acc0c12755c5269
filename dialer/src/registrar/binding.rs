//! One registered (or configured) contact of an agent, and the comparisons RFC 3261 §10.3
//! needs: which stored binding a Contact refers to, and whether it names its own source.

use std::net::SocketAddr;
use std::time::Duration;

use sip_core::message::{Host, NameAddr, SipUri, Uri};
use sip_core::time::Time;
use sip_core::transaction::Transport;

/// Where an agent can be reached: the Contact to put in the Request-URI and the address to
/// send the request to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The agent's extension.
    pub extension: String,
    /// The Contact exactly as the agent registered it: URI parameters (`rinstance`, `ob`,
    /// `transport`) and header parameters (`+sip.instance`, `reg-id`, `expires`) as sent.
    /// Requests to the agent use [`Binding::request_uri`] unchanged.
    pub contact: NameAddr,
    /// The address the REGISTER really came from, where requests to the agent go: behind NAT
    /// this is the NAT's public mapping, not the Contact's host (FreeSWITCH's
    /// NDLB-connectile-dysfunction, Asterisk's `rewrite_contact`). For a static contact, the
    /// configured target.
    pub source: SocketAddr,
    /// The transport the REGISTER came over; a TCP binding is reached through the same
    /// connection (RFC 5626 §3.4 in spirit: the flow the agent opened).
    pub transport: Transport,
    /// When the binding lapses; `None` for a static contact, which never does.
    pub expires_at: Option<Time>,
    /// The Contact does not name the address the REGISTER came from: a private address, a
    /// port rewritten by a NAT, or a host name the registrar cannot check.
    pub nat: bool,
    /// The agent's `User-Agent` header, if it sent one.
    pub user_agent: Option<String>,
    /// The `+sip.instance` value (RFC 5626 §4.1), quotes removed: `<urn:uuid:...>`.
    pub instance: Option<String>,
    /// The `reg-id` value (RFC 5626 §4.2).
    pub reg_id: Option<u32>,
    /// The `q` value in thousandths (RFC 3261 §20.10); an absent `q` ranks as 1.
    pub q: u16,
    /// When the binding was first created.
    pub registered_at: Time,
    /// When a REGISTER last created or refreshed it.
    pub refreshed_at: Time,
    /// The Call-ID of the REGISTER that last wrote it (§10.3 step 7); empty for static.
    pub(crate) call_id: String,
    /// The CSeq of that REGISTER.
    pub(crate) cseq: u32,
}

impl Binding {
    /// The Request-URI for a request to the agent: the registered Contact URI, unchanged
    /// (RFC 3261 §12.1.2 and §16.5; softphones match their instance ids against it).
    pub fn request_uri(&self) -> &Uri {
        &self.contact.uri
    }

    /// True for a contact from the configuration rather than a REGISTER.
    pub fn is_static(&self) -> bool {
        self.expires_at.is_none()
    }

    /// Time left at `now`, rounded up to whole seconds so that a live binding never reports
    /// `expires=0` (which reads as "removed" to the agent); `None` for a static contact.
    pub fn remaining(&self, now: Time) -> Option<Duration> {
        self.expires_at.map(|at| {
            let left = at.since(now);
            let secs = left.as_secs() + u64::from(left.subsec_nanos() > 0);
            Duration::from_secs(secs)
        })
    }

    /// Live at `now`: static, or not yet expired.
    pub fn is_live(&self, now: Time) -> bool {
        match self.expires_at {
            Some(at) => at > now,
            None => true,
        }
    }

    /// The Contact as listed in a 200 to REGISTER: as registered, with `expires` set to the
    /// time left (RFC 3261 §10.3 step 8).
    pub(crate) fn listed(&self, now: Time) -> NameAddr {
        let mut contact = self.contact.clone();
        let left = self
            .remaining(now)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        contact.params.set("expires", Some(&left));
        contact
    }

    /// Whether this binding is the one `contact` names: the same instance and reg-id when
    /// both carry `+sip.instance` (RFC 5626 §6: an instance replaces its own binding, so a
    /// softphone that moved does not leave its old address ringing), else URI equivalence
    /// (RFC 3261 §10.3 step 7, §19.1.4).
    pub(crate) fn matches(
        &self,
        contact: &NameAddr,
        instance: Option<&str>,
        reg_id: Option<u32>,
    ) -> bool {
        match (self.instance.as_deref(), instance) {
            (Some(ours), Some(theirs)) if ours == theirs && self.reg_id == reg_id => true,
            _ => uri_equivalent(&self.contact.uri, &contact.uri),
        }
    }
}

/// The `+sip.instance` value with its quotes removed (`"<urn:uuid:...>"` -> `<urn:uuid:...>`).
pub(crate) fn instance_of(contact: &NameAddr) -> Option<String> {
    contact.params.value("+sip.instance").map(str::to_owned)
}

/// A `q` value in thousandths: `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )`
/// (RFC 3261 §25.1). `None` when malformed.
pub(crate) fn parse_q(text: &str) -> Option<u16> {
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if fraction.len() > 3 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut thousandths = 0u16;
    for (i, b) in fraction.bytes().enumerate() {
        thousandths += u16::from(b - b'0') * [100, 10, 1][i];
    }
    match whole {
        "0" => Some(thousandths),
        "1" if thousandths == 0 => Some(1000),
        _ => None,
    }
}

/// True when the Contact does not name `source`: its host is not the source IP (a private
/// address behind NAT, or a name that cannot be compared without DNS), or its port (5060 or
/// 5061 when absent, RFC 3261 §19.1.2) is not the source port.
pub(crate) fn behind_nat(contact: &Uri, source: SocketAddr) -> bool {
    let Some(sip) = contact.as_sip() else {
        return true;
    };
    let same_ip = match sip.host.ip() {
        Some(ip) => canonical(ip) == canonical(source.ip()),
        None => false,
    };
    !(same_ip && sip.port_or_default() == source.port())
}

fn canonical(ip: std::net::IpAddr) -> std::net::IpAddr {
    match ip {
        std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
        v4 => v4,
    }
}

/// URI equivalence for bindings (RFC 3261 §19.1.4): scheme, user (case-sensitive), password,
/// host (case-insensitive), port (an absent port differs from an explicit 5060); `transport`,
/// `user`, `ttl`, `method` and `maddr` must agree when either side has them, other parameters
/// only when both have them; headers must agree.
pub(crate) fn uri_equivalent(a: &Uri, b: &Uri) -> bool {
    match (a, b) {
        (Uri::Sip(a), Uri::Sip(b)) => sip_equivalent(a, b),
        // Non-SIP contacts (tel:, mailto:) are compared as written.
        _ => a.to_string() == b.to_string(),
    }
}

fn sip_equivalent(a: &SipUri, b: &SipUri) -> bool {
    if a.secure != b.secure || a.user != b.user || a.password != b.password || a.port != b.port {
        return false;
    }
    let hosts_equal = match (&a.host, &b.host) {
        (Host::Domain(x), Host::Domain(y)) => x.eq_ignore_ascii_case(y),
        (x, y) => x == y,
    };
    if !hosts_equal {
        return false;
    }
    const MUST_MATCH: [&str; 5] = ["transport", "user", "ttl", "method", "maddr"];
    for name in MUST_MATCH {
        let (x, y) = (a.params.value(name), b.params.value(name));
        if !x
            .map(str::to_ascii_lowercase)
            .eq(&y.map(str::to_ascii_lowercase))
        {
            return false;
        }
    }
    for (name, value) in a.params.iter() {
        if MUST_MATCH.iter().any(|m| m.eq_ignore_ascii_case(name)) {
            continue;
        }
        if let Some(other) = b.params.get(name) {
            let equal = match (value, other) {
                (Some(x), Some(y)) => x.eq_ignore_ascii_case(y),
                (None, None) => true,
                _ => false,
            };
            if !equal {
                return false;
            }
        }
    }
    a.headers == b.headers
}

#[cfg(test)]
mod tests {
    use super::*;

    fn uri(s: &str) -> Uri {
        Uri::parse(s).unwrap()
    }

    #[test]
    fn q_values_follow_the_rfc_grammar() {
        assert_eq!(parse_q("0"), Some(0));
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("0.125"), Some(125));
        assert_eq!(parse_q("1"), Some(1000));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_q("2"), None);
        assert_eq!(parse_q("0.x"), None);
        assert_eq!(parse_q(""), None);
    }

    #[test]
    fn uri_equivalence_folds_host_case_but_not_user_or_port() {
        assert!(uri_equivalent(
            &uri("sip:1000@PC.example.com;transport=UDP"),
            &uri("sip:1000@pc.example.com;transport=udp")
        ));
        assert!(!uri_equivalent(&uri("sip:1000@h"), &uri("sip:1000@h:5060")));
        assert!(!uri_equivalent(&uri("sip:1000@h"), &uri("sip:ABC@h")));
        assert!(!uri_equivalent(
            &uri("sip:1000@h;transport=tcp"),
            &uri("sip:1000@h")
        ));
        // A parameter only one side has is ignored unless it is one of the five named ones.
        assert!(uri_equivalent(
            &uri("sip:1000@h;rinstance=1"),
            &uri("sip:1000@h")
        ));
        assert!(!uri_equivalent(
            &uri("sip:1000@h;rinstance=1"),
            &uri("sip:1000@h;rinstance=2")
        ));
    }

    #[test]
    fn nat_is_flagged_when_the_contact_does_not_name_the_source() {
        let source: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        assert!(behind_nat(&uri("sip:1000@10.0.0.5:5060"), source));
        assert!(
            behind_nat(&uri("sip:1000@203.0.113.7"), source),
            "port 5060 assumed"
        );
        assert!(behind_nat(&uri("sip:1000@pc.example.com:40000"), source));
        assert!(!behind_nat(&uri("sip:1000@203.0.113.7:40000"), source));
        let mapped: SocketAddr = "[::ffff:203.0.113.7]:40000".parse().unwrap();
        assert!(!behind_nat(&uri("sip:1000@203.0.113.7:40000"), mapped));
    }
}
