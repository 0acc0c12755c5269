//! Our cores wrapped as [`UnderTest`]s, each driven the way `dialer run` drives it: the B2BUA
//! [`Core`] (customer and agent legs), and a [`Pbx`] built from sip-core's endpoint and digest
//! server with the dialer's agent [`Registrar`] — the part of a PBX a softphone talks to.

use std::collections::HashMap;
use std::net::SocketAddr;

use dialer::b2bua::{Action, Core, MediaTotals};
use dialer::registrar::{Registrar, RegistrarEvent};
use media::sdp::{answer_offer, LocalEndpoint, MediaConfig, SessionDescription};
use sip_core::auth::{DigestRequest, DigestServer, Secret, ServerConfig, Verification};
use sip_core::endpoint::{make_response, Endpoint, Event, Output, Transmit};
use sip_core::message::{HeaderKind, Method, Request};
use sip_core::time::Time;
use sip_core::transaction::{TransactionId, Transport};

use super::UnderTest;

/// The B2BUA core, with the runtime's part played here: media sessions open at once on
/// fixed ports, and close with empty statistics.
pub struct B2bua {
    /// The core.
    pub core: Core,
    /// Every action the core asked for, in order.
    pub actions: Vec<Action>,
    /// Requests and responses the core left for the registrar and trunk registrations.
    pub others: Vec<Event>,
    /// Local RTP ports given to each call: customer, agent.
    pub media_ports: (u16, u16),
}

impl std::fmt::Debug for B2bua {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("B2bua")
            .field("calls", &self.core.call_count())
            .field("actions", &self.actions.len())
            .finish()
    }
}

impl B2bua {
    /// Wraps a core.
    pub fn new(core: Core) -> B2bua {
        B2bua {
            core,
            actions: Vec::new(),
            others: Vec::new(),
            media_ports: (20000, 20002),
        }
    }
}

impl UnderTest for B2bua {
    fn receive(&mut self, now: Time, transport: Transport, source: SocketAddr, bytes: &[u8]) {
        self.core.handle_datagram(now, transport, source, bytes);
    }

    fn timeout(&mut self, now: Time) {
        self.core.handle_timeout(now);
    }

    fn next_timeout(&mut self) -> Option<Time> {
        self.core.next_timeout()
    }

    fn transmit(&mut self, now: Time) -> Option<Transmit> {
        while let Some(action) = self.core.poll_action() {
            match &action {
                Action::OpenMedia { call } => {
                    let (customer, agent) = self.media_ports;
                    self.core.media_opened(now, *call, customer, agent);
                }
                Action::CloseMedia { call } => {
                    self.core.media_closed(now, *call, MediaTotals::default());
                }
                _ => {}
            }
            self.actions.push(action);
        }
        while let Some(e) = self.core.poll_other() {
            self.others.push(e);
        }
        self.core.poll_transmit()
    }
}

/// A PBX's front: REGISTER goes to the dialer's agent [`Registrar`]; INVITE is challenged
/// with 401 by a [`DigestServer`] in the registrar's realm (RFC 3261 §22.2) and answered 200
/// with an SDP answer once the credentials verify; BYE gets 200; other requests 405. A CANCEL
/// gets its 200 from the endpoint; the INVITE it cancels is answered when it is challenged,
/// at once, so there is never one pending to end with 487.
pub struct Pbx {
    /// The SIP endpoint.
    pub endpoint: Endpoint,
    /// The registrar.
    pub registrar: Registrar,
    /// What the registrar reported.
    pub registrar_events: Vec<RegistrarEvent>,
    /// Every INVITE verification, in order.
    pub verifications: Vec<Verification>,
    digest: DigestServer,
    passwords: HashMap<String, String>,
    media: LocalEndpoint,
}

impl std::fmt::Debug for Pbx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbx")
            .field("endpoint", &self.endpoint)
            .field("verifications", &self.verifications)
            .finish()
    }
}

impl Pbx {
    /// A PBX answering for `passwords` (extension → password) in the registrar's realm, with
    /// `media` as its SDP address.
    pub fn new(
        endpoint: Endpoint,
        registrar: Registrar,
        passwords: HashMap<String, String>,
        media: LocalEndpoint,
    ) -> Pbx {
        let realm = registrar.config().realm.clone();
        Pbx {
            endpoint,
            registrar,
            registrar_events: Vec::new(),
            verifications: Vec::new(),
            digest: DigestServer::new(ServerConfig::new(realm, b"replay-uas".to_vec())),
            passwords,
            media,
        }
    }

    fn on_request(
        &mut self,
        now: Time,
        transaction: TransactionId,
        request: Request,
        source: SocketAddr,
        transport: Transport,
    ) {
        let response = match request.method {
            Method::Register => {
                let outcome = self
                    .registrar
                    .handle_register(now, &request, source, transport);
                self.registrar_events.extend(outcome.events);
                outcome.response
            }
            Method::Options => self.registrar.handle_options(&request),
            Method::Invite => self.answer_invite(now, &request),
            Method::Bye => make_response(&request, 200, None),
            _ => {
                let mut r = make_response(&request, 405, None);
                r.headers.add(
                    HeaderKind::Allow,
                    "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER",
                );
                r
            }
        };
        // The transaction was just created by this request: it can take its final response.
        let _ = self.endpoint.respond(now, transaction, response);
    }

    fn answer_invite(&mut self, now: Time, request: &Request) -> sip_core::message::Response {
        let tag = self.endpoint.new_tag();
        let realm = self.digest.config().realm.clone();
        // RFC 3261 §22.1: the realm alone names the protection domain; credentials for another
        // realm are no credentials for ours (§22.2: challenge with 401).
        let ours = request
            .headers
            .get_all(HeaderKind::Authorization)
            .find(|v| sip_core::auth::parse_credentials(v).is_ok_and(|c| c.realm == realm))
            .map(str::to_owned);
        let verification = ours.map(|authorization| {
            let uri = request.uri.to_string();
            let passwords = &self.passwords;
            self.digest.verify(
                now.0,
                &DigestRequest {
                    method: "INVITE",
                    uri: &uri,
                    body: &request.body,
                },
                &authorization,
                |user| passwords.get(user).map(|p| Secret::Password(p.clone())),
            )
        });
        match verification {
            Some(Verification::Authenticated { username }) => {
                self.verifications
                    .push(Verification::Authenticated { username });
                let answer = SessionDescription::parse_bytes(&request.body)
                    .ok()
                    .and_then(|offer| {
                        answer_offer(&offer, &MediaConfig::default(), &self.media).ok()
                    });
                match answer {
                    Some((sdp, _)) => {
                        let mut r = make_response(request, 200, Some(&tag));
                        r.headers.add(
                            HeaderKind::Contact,
                            format!(
                                "<sip:{}:{}>",
                                self.endpoint.config().via_host,
                                self.endpoint.config().via_port
                            ),
                        );
                        r.set_body("application/sdp", sdp.to_sdp_string().into_bytes());
                        r
                    }
                    // RFC 3264 §6: an offer we cannot answer.
                    None => make_response(request, 488, Some(&tag)),
                }
            }
            other => {
                let stale = matches!(other, Some(Verification::Stale));
                if let Some(v) = other {
                    self.verifications.push(v);
                }
                let mut r = make_response(request, 401, Some(&tag));
                for c in self.digest.challenges(now.0, stale) {
                    r.headers.add(HeaderKind::WwwAuthenticate, c);
                }
                r
            }
        }
    }
}

impl UnderTest for Pbx {
    fn receive(&mut self, now: Time, transport: Transport, source: SocketAddr, bytes: &[u8]) {
        self.endpoint.handle_datagram(now, transport, source, bytes);
    }

    fn timeout(&mut self, now: Time) {
        self.endpoint.handle_timeout(now);
    }

    fn next_timeout(&mut self) -> Option<Time> {
        self.endpoint.next_timeout()
    }

    fn transmit(&mut self, now: Time) -> Option<Transmit> {
        loop {
            match self.endpoint.poll_output()? {
                Output::Transmit(t) => return Some(t),
                Output::Event(Event::Request {
                    transaction,
                    request,
                    source,
                    transport,
                }) => self.on_request(now, transaction, request, source, transport),
                Output::Event(_) => {}
            }
        }
    }
}
