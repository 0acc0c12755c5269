//! Safe on a public address, in virtual time: a 3xx on the customer leg is followed only to
//! the trunk's `redirect_hosts` (redirect fraud: a premium number elsewhere is never
//! called), a digest challenge is answered only for the trunk's `realm` when it is set, and
//! a customer's number as given reaches the agent's From escaped and quoted.

mod scenario_net;

use dialer::b2bua::{AgentChoice, Core, CoreConfig, OriginateSpec, TrunkSettings};
use scenario_net::*;
use sip_core::auth::{
    parse_credentials, Credentials, DigestRequest, DigestServer, Secret, ServerConfig, Verification,
};
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig};
use sip_core::message::{HeaderKind, Host, Message, Method, SipMessage, Uri};
use std::time::Duration;

/// Where a fraudulent redirect points: a premium-rate number at a host of no carrier.
const PREMIUM: &str = "sip:+19005550199@198.51.100.66:5060";

/// The scenario network, with its core on this trunk (as `Net::with_credentials` builds it).
fn net_on(trunk: TrunkSettings) -> Net {
    let mut net = Net::new();
    let config = CoreConfig {
        contact_host: Host::Ipv4("192.0.2.10".parse().unwrap()),
        contact_port: 5060,
        media_ip: "192.0.2.10".parse().unwrap(),
        trunks: vec![trunk],
        originate_timeout: Duration::from_secs(60),
        agent_ring_timeout: Duration::from_secs(20),
        max_redirects: 3,
    };
    let endpoint = Endpoint::new(EndpointConfig::new(addr(DIALER)), rng(1));
    net.core = Core::new(config, endpoint, rng(2), 1.7e9);
    net
}

/// The carrier answers the customer INVITE it has with a 3xx carrying these Contacts.
fn carrier_redirects(net: &mut Net, status: u16, contacts: &[&str]) {
    let (tx, invite) = net.carrier_invite();
    let mut redirect = make_response(&invite, status, Some("r1"));
    for c in contacts {
        redirect.headers.add(HeaderKind::Contact, format!("<{c}>"));
    }
    net.carrier.respond(net.now, tx, redirect);
    net.settle();
}

/// The customer INVITEs the dialer sent, where to and to which Request-URI.
fn customer_invites(net: &Net) -> Vec<(std::net::SocketAddr, String)> {
    net.sent_unique(Method::Invite)
        .into_iter()
        .filter(|(to, _)| *to != addr(AGENT_PUBLIC))
        .map(|(to, r)| (to, r.uri.to_string()))
        .collect()
}

#[test]
fn a_302_to_the_trunks_own_proxy_is_followed_by_default() {
    let mut net = Net::new();
    net.originate();
    carrier_redirects(&mut net, 302, &["sip:+15557654321@192.0.2.50:5060"]);
    let invites = customer_invites(&net);
    assert_eq!(invites.len(), 2, "{invites:?}");
    assert_eq!(
        invites[1],
        (addr(CARRIER), "sip:+15557654321@192.0.2.50:5060".into())
    );
    // The redirected call goes on: answered, the agent is called.
    let (tx, invite) = net.carrier_invite();
    let ok = carrier_ok(
        &invite,
        "c1",
        Some(answer(
            &invite,
            vec![media::sdp::Codec::Pcma],
            "192.0.2.51",
            30000,
        )),
    );
    net.carrier.respond(net.now, tx, ok);
    net.settle();
    assert!(net.agent.take_request(Method::Invite).is_some());
}

#[test]
fn a_302_to_a_host_in_redirect_hosts_is_followed_there() {
    let mut trunk = trunk();
    trunk.redirect_hosts = vec![
        Host::Ipv4("192.0.2.50".parse().unwrap()),
        Host::Ipv4("192.0.2.52".parse().unwrap()),
        Host::Domain("gw.carrier.example.net".into()),
    ];
    let mut net = net_on(trunk);
    net.originate();
    carrier_redirects(&mut net, 302, &["sip:+15557654321@192.0.2.52:5070"]);
    assert_eq!(
        customer_invites(&net)[1],
        (
            addr("192.0.2.52:5070"),
            "sip:+15557654321@192.0.2.52:5070".into()
        ),
        "an IP target is sent to directly"
    );
    // A name on the list, compared without case, goes through the proxy.
    carrier_redirects(&mut net, 301, &["sip:+15557654321@GW.Carrier.Example.NET"]);
    assert_eq!(
        customer_invites(&net)[2],
        (
            addr(CARRIER),
            "sip:+15557654321@GW.Carrier.Example.NET".into()
        )
    );
}

#[test]
fn a_302_to_a_premium_number_elsewhere_is_not_followed_and_the_call_fails_302() {
    let mut net = Net::new();
    net.originate();
    carrier_redirects(&mut net, 302, &[PREMIUM]);
    let invites = customer_invites(&net);
    assert_eq!(invites.len(), 1, "no INVITE after the 302: {invites:?}");
    assert!(
        !net.sent
            .iter()
            .any(|(to, _)| to.ip().to_string() == "198.51.100.66"),
        "nothing was sent to the redirect's host"
    );
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "failed");
    assert_eq!(cdr.sip_status, 302);
    assert!(net.agent.received.is_empty(), "the agent was never called");
    assert_eq!(net.core.call_count(), 0);
}

#[test]
fn a_redirect_to_a_name_not_listed_or_to_a_tel_uri_is_not_followed() {
    for contact in [
        "sip:+19005550199@premium.example.com",
        "sip:+19005550199@carrier.example.net",
        "tel:+19005550199",
    ] {
        let mut net = Net::new();
        net.originate();
        carrier_redirects(&mut net, 302, &[contact]);
        assert_eq!(customer_invites(&net).len(), 1, "{contact}");
        let cdr = net.cdr();
        assert_eq!(
            (cdr.outcome.to_string(), cdr.sip_status),
            ("failed".into(), 302),
            "{contact}"
        );
    }
}

#[test]
fn among_several_contacts_only_an_allowed_one_is_tried() {
    let mut net = Net::new();
    net.originate();
    carrier_redirects(
        &mut net,
        300,
        &[PREMIUM, "sip:+15557654321@192.0.2.50:5060"],
    );
    let invites = customer_invites(&net);
    assert_eq!(
        invites[1..],
        [(addr(CARRIER), "sip:+15557654321@192.0.2.50:5060".into())]
    );
}

#[test]
fn an_empty_redirect_hosts_follows_no_redirect() {
    let mut trunk = trunk();
    trunk.redirect_hosts = vec![];
    let mut net = net_on(trunk);
    net.originate();
    carrier_redirects(&mut net, 302, &["sip:+15557654321@192.0.2.50:5060"]);
    assert_eq!(customer_invites(&net).len(), 1);
    assert_eq!(net.cdr().sip_status, 302);
}

/// A trunk with the scenario credentials (`dialer`, `s3cret`) and this realm.
fn trunk_with_realm(realm: Option<&str>) -> TrunkSettings {
    let mut trunk = trunk();
    trunk.credentials = Some(Credentials::with_password("dialer", "s3cret"));
    trunk.realm = realm.map(str::to_owned);
    trunk
}

/// The carrier challenges the customer INVITE with 407 from each of these digest servers.
fn carrier_challenges(net: &mut Net, servers: &[&DigestServer]) {
    let (tx, invite) = net.carrier_invite();
    let mut challenge = make_response(&invite, 407, Some("c1"));
    for server in servers {
        for c in server.challenges(net.now.0, false) {
            challenge.headers.add(HeaderKind::ProxyAuthenticate, c);
        }
    }
    net.carrier.respond(net.now, tx, challenge);
    net.settle();
}

fn server(realm: &str) -> DigestServer {
    DigestServer::new(ServerConfig::new(realm, b"k".to_vec()))
}

#[test]
fn a_407_for_another_realm_is_not_answered_when_realm_is_set() {
    let mut net = net_on(trunk_with_realm(Some("carrier.example.net")));
    net.originate();
    carrier_challenges(&mut net, &[&server("attacker.example.org")]);
    let invites = net.sent_unique(Method::Invite);
    assert_eq!(invites.len(), 1, "the challenge was not answered");
    assert!(invites
        .iter()
        .all(|(_, r)| r.headers.get(HeaderKind::ProxyAuthorization).is_none()));
    let cdr = net.cdr();
    assert_eq!(cdr.outcome, "rejected");
    assert_eq!(cdr.sip_status, 407);
}

#[test]
fn a_407_for_the_trunks_realm_is_answered() {
    let mut net = net_on(trunk_with_realm(Some("carrier.example.net")));
    let mut carrier = server("carrier.example.net");
    net.originate();
    carrier_challenges(&mut net, &[&carrier]);
    let (_, invite) = net.carrier_invite();
    let auth = invite
        .headers
        .get(HeaderKind::ProxyAuthorization)
        .expect("retried with credentials");
    let verdict = carrier.verify(
        net.now.0,
        &DigestRequest {
            method: "INVITE",
            uri: &invite.uri.to_string(),
            body: &invite.body,
        },
        auth,
        |u| (u == "dialer").then(|| Secret::Password("s3cret".into())),
    );
    assert!(
        matches!(verdict, Verification::Authenticated { .. }),
        "{verdict:?}"
    );
}

#[test]
fn with_challenges_for_two_realms_only_the_trunks_is_answered() {
    let mut net = net_on(trunk_with_realm(Some("carrier.example.net")));
    net.originate();
    carrier_challenges(
        &mut net,
        &[
            &server("attacker.example.org"),
            &server("carrier.example.net"),
        ],
    );
    let (_, invite) = net.carrier_invite();
    let sent: Vec<String> = invite
        .headers
        .get_all(HeaderKind::ProxyAuthorization)
        .map(|v| parse_credentials(v).expect("our credentials parse").realm)
        .collect();
    assert_eq!(sent, ["carrier.example.net"]);
}

#[test]
fn without_realm_any_realm_is_answered_as_before() {
    let mut net = net_on(trunk_with_realm(None));
    net.originate();
    carrier_challenges(&mut net, &[&server("elsewhere.example.org")]);
    let (_, invite) = net.carrier_invite();
    assert!(invite.headers.get(HeaderKind::ProxyAuthorization).is_some());
}

/// The INVITE the agent got for a call to `number`, answered by the carrier.
fn agent_invite_for(number: &str) -> (String, sip_core::message::NameAddr) {
    let mut net = Net::new();
    net.agent_registers();
    net.originate_spec(OriginateSpec::new(
        number,
        AgentChoice::Extension("1000".into()),
    ))
    .expect("originate");
    net.carrier_answers_next("c1");
    let (_, invite) = net
        .agent
        .take_request(Method::Invite)
        .expect("INVITE reached the agent");
    // The From header exactly as it went on the wire.
    let raw = net
        .sent
        .iter()
        .find_map(|(to, m)| match m {
            Message::Request(r) if *to == addr(AGENT_PUBLIC) && r.method == Method::Invite => {
                r.headers.get(HeaderKind::From).map(str::to_owned)
            }
            _ => None,
        })
        .expect("the agent INVITE was sent");
    (raw, invite.from_header().expect("From parses"))
}

#[test]
fn a_number_with_spaces_reaches_the_agents_from_escaped_and_its_display_quoted() {
    let (raw, from) = agent_invite_for("(555) 123-4567");
    assert!(
        raw.starts_with("\"(555) 123-4567\" <sip:(555)%20123-4567@192.0.2.10:5060>;tag="),
        "{raw}"
    );
    assert_eq!(from.display.as_deref(), Some("\"(555) 123-4567\""));
    let Uri::Sip(uri) = &from.uri else {
        panic!("a SIP URI: {from:?}");
    };
    assert_eq!(uri.user.as_deref(), Some("(555)%20123-4567"));
    let (raw, _) = agent_invite_for("+1 555.123 4567");
    assert!(
        raw.starts_with("\"+1 555.123 4567\" <sip:+1%20555.123%204567@192.0.2.10:5060>;tag="),
        "{raw}"
    );
    // A number already clean is unchanged.
    let (raw, _) = agent_invite_for("+15551234567");
    assert!(
        raw.starts_with("\"+15551234567\" <sip:+15551234567@192.0.2.10:5060>;tag="),
        "{raw}"
    );
}

#[test]
fn the_files_redirect_hosts_and_realm_reach_the_core() {
    let text = r#"
[[trunk]]
name = "carrier"
proxy = "sip.carrier.example.net"
domain = "carrier.example.net"
username = "dialer"
password = "s3cret"
realm = "carrier.example.net"
"#;
    let no_env = |_: &str| None;
    let config = trunk_profiles::Config::from_str_named(text, "dialer.toml", &no_env).unwrap();
    let core = dialer::runtime::settings::core_config(
        &config,
        &[addr(CARRIER)],
        ("192.0.2.10".parse().unwrap(), 5060),
    );
    let t = &core.trunks[0];
    assert_eq!(t.realm.as_deref(), Some("carrier.example.net"));
    // The proxy's name, and the address it resolved to.
    assert_eq!(
        t.redirect_hosts,
        [
            Host::Domain("sip.carrier.example.net".into()),
            Host::Ipv4("192.0.2.50".parse().unwrap()),
        ]
    );
    let listed = format!("{text}redirect_hosts = [\"192.0.2.52\", \"[2001:db8::5]\"]\n");
    let config = trunk_profiles::Config::from_str_named(&listed, "dialer.toml", &no_env).unwrap();
    let core = dialer::runtime::settings::core_config(
        &config,
        &[addr(CARRIER)],
        ("192.0.2.10".parse().unwrap(), 5060),
    );
    assert_eq!(
        core.trunks[0].redirect_hosts,
        [
            Host::Ipv4("192.0.2.52".parse().unwrap()),
            Host::Ipv6("2001:db8::5".parse().unwrap()),
        ],
        "a list given replaces the default"
    );

    // The default trunk of the file, in a call: the proxy's address is followed, the
    // premium host is not.
    let config = trunk_profiles::Config::from_str_named(text, "dialer.toml", &no_env).unwrap();
    let core = dialer::runtime::settings::core_config(
        &config,
        &[addr(CARRIER)],
        ("192.0.2.10".parse().unwrap(), 5060),
    );
    let mut trunk = core.trunks[0].clone();
    trunk.credentials = None;
    let mut net = net_on(trunk.clone());
    net.originate();
    carrier_redirects(&mut net, 302, &["sip:+15557654321@192.0.2.50"]);
    assert_eq!(customer_invites(&net).len(), 2);
    let mut net = net_on(trunk);
    net.originate();
    carrier_redirects(&mut net, 302, &[PREMIUM]);
    assert_eq!(customer_invites(&net).len(), 1);
    assert_eq!(net.cdr().sip_status, 302);
}
