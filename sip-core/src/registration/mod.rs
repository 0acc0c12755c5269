//! Registration to a trunk (RFC 3261 §10.2): one sans-IO state machine per trunk that keeps
//! a binding alive at the registrar, driven by the runtime.
//!
//! # What it does
//! - Sends REGISTER through an [`Endpoint`] it does not own: one Call-ID and From tag for the
//!   life of the registration, CSeq increasing by one per request (RFC 3261 §10.2.4), our
//!   Contact and an Expires header. The endpoint adds the top Via with `;rport`
//!   (RFC 3581 §3).
//! - Answers 401/407 with digest credentials through [`ClientAuthState`] (every algorithm
//!   [`crate::auth`] supports), once per nonce: a second challenge for an answer is a wrong
//!   password and ends in [`Failure::AuthRejected`]; a `stale=true` challenge is answered
//!   again. Later REGISTERs reuse the nonce with the nonce count incremented.
//! - Takes the granted expiry from the 200: the `expires` parameter of the Contact that
//!   matches ours, else the Expires header, else what we asked (RFC 3261 §10.2.4); refreshes
//!   at [`refresh_delay`] after sending (half the expiry by default).
//! - 423 Interval Too Brief: asks again with the Min-Expires value (RFC 3261 §10.2.8).
//! - 403 and other final errors: [`RegistrationState::Failed`], no retry, status and reason
//!   kept. Timeouts, 408, 480 and 5xx: retry after [`backoff_delay`] (bounded exponential
//!   with jitter), or after Retry-After when the registrar asks for longer.
//! - NAT (RFC 3581): when the 200's top Via shows a `received`/`rport` address other than
//!   our Contact and no external address is configured, re-registers with that public
//!   address in Contact. The old binding is removed **in the same REGISTER**: it lists the
//!   public Contact and the old one with `;expires=0` (RFC 3261 §10.2.2 allows several
//!   Contacts, each with its own expiry); the old one is listed again in every REGISTER until
//!   one gets a 2xx. Over TCP only the IP is compared and rewritten: the source port of an
//!   outgoing connection is ephemeral and says nothing about NAT.
//! - Keepalives at a fixed interval while registered: a `\r\n\r\n` datagram handed to the
//!   runtime as [`Action::SendKeepaliveCrlf`] (RFC 5626 §3.5.1), or an OPTIONS sent through
//!   the endpoint (its own Call-ID). A timed-out OPTIONS triggers a re-REGISTER.
//! - Un-registers with `Expires: 0` and `;expires=0` on the Contact.
//! - Failover (RFC 3263 §4.3): a REGISTER that times out (Timer F) or gets a 503 is sent at
//!   once to the next target of [`RegistrationConfig::failover`], as a new transaction with
//!   the same Call-ID and the next CSeq (RFC 3261 §10.2.4 numbers every REGISTER of a
//!   Call-ID); the registration stays on the target that answered. When every target has
//!   failed, the usual backoff applies and the next attempt starts over from the first.
//!   [`Registration::set_targets`] takes a new list when the runtime looked the name up
//!   again.
//!
//! # Drive loop
//! ```text
//! reg.start(now, &mut endpoint);
//! loop {
//!     // the runtime feeds the endpoint (handle_datagram / handle_timeout), then:
//!     while let Some(out) = endpoint.poll_output() {
//!         match out {
//!             Output::Transmit(t) => send t.bytes to t.to,
//!             Output::Event(e) => if !reg.handle_event(now, &e, &mut endpoint) { other logic },
//!         }
//!     }
//!     if reg.next_timeout() <= now { reg.handle_timeout(now, &mut endpoint) }
//!     while let Some(a) = reg.poll_action() { Action::SendKeepaliveCrlf(t) => send "\r\n\r\n" }
//!     while let Some(ev) = reg.poll_event() { print the outcome }
//!     sleep until min(endpoint.next_timeout(), reg.next_timeout()) or the next datagram
//! }
//! reg.unregister(now, &mut endpoint); // then run the loop until Unregistered, bounded in time
//! ```
//! `handle_event` and `handle_timeout` may queue new requests in the endpoint, so the
//! endpoint's output is drained again after them (the `while let` above does that).
//!
//! # What it does not do
//! No DNS (the runtime resolves the proxy and passes [`std::net::SocketAddr`]s), no
//! sockets, no clock: time is an argument. No RFC 5626 outbound (`+sip.instance`, `reg-id`,
//! flow tokens), no GRUU, no Service-Route or Path handling, no 3xx redirect following (a 3xx
//! fails the registration). Responses to a request the registration has given up on (a
//! REGISTER in flight when `unregister` is called) are not claimed.
//!
//! # Errors and panics
//! A bad configuration is a [`ConfigError`] from [`Registration::new`]. Everything the
//! registrar does is an outcome, never an error: [`RegistrationState::Failed`] with a
//! [`Failure`], or a retry with a [`RetryReason`]. Nothing here panics on any response.

mod config;
mod timing;

#[cfg(test)]
mod tests;

pub use config::{ConfigError, Keepalive, RegistrationConfig};
pub use timing::{backoff_delay, refresh_delay, MAX_RETRY_AFTER, REFRESH_MARGIN};

use crate::auth::{
    select_challenge, AuthOutcome, AuthorizationHeader, ChallengedResponse, ClientAuthState,
    DigestRequest, HeaderName,
};
use crate::endpoint::{Endpoint, Event, Target};
use crate::message::{
    parse_u32, Contact, HeaderKind, Host, Method, NameAddr, Request, Response, SipMessage,
};
use crate::time::Time;
use crate::transaction::{TransactionId, Transport};
use rand::RngCore;
use std::collections::VecDeque;
use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

/// How many challenges in a row (without any other final response between them) are
/// answered before giving up; [`ClientAuthState`] already stops wrong-password loops, this
/// bounds a registrar that keeps issuing fresh stale nonces.
const MAX_CHALLENGES_IN_A_ROW: u32 = 4;

/// An address in our Contact: `sip:user@host:port`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ContactAddress {
    /// The host (an IP address, or a name when configured so).
    pub host: Host,
    /// The port.
    pub port: u16,
}

impl fmt::Display for ContactAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// Why a registration stopped for good. Retrying would not help: the configuration or
/// the account must change.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// The registrar challenged the credentials we answered its challenge with: wrong
    /// username or password (the SIP status is the repeated 401/407).
    AuthRejected {
        /// 401 or 407.
        status: u16,
        /// The realm that refused.
        realm: String,
    },
    /// A final response that is not retried (403 Forbidden, 404, 3xx, 6xx ...).
    Rejected {
        /// The status code.
        status: u16,
        /// The reason phrase as received.
        reason: String,
    },
    /// A challenge we cannot answer (no supported algorithm, an HA1 for another hash,
    /// too many challenges in a row).
    AuthUnusable {
        /// 401 or 407.
        status: u16,
        /// What was wrong.
        detail: String,
    },
    /// The challenge is for another realm than the configured one.
    RealmMismatch {
        /// 401 or 407.
        status: u16,
        /// The realm challenged.
        offered: String,
        /// The realm configured.
        expected: String,
    },
    /// The endpoint refused to send the request (a bug or an unusable configuration).
    Send {
        /// The endpoint's error.
        detail: String,
    },
}

impl Failure {
    /// The SIP status that ended the registration, if a response did.
    pub fn status(&self) -> Option<u16> {
        match self {
            Failure::AuthRejected { status, .. }
            | Failure::Rejected { status, .. }
            | Failure::AuthUnusable { status, .. }
            | Failure::RealmMismatch { status, .. } => Some(*status),
            Failure::Send { .. } => None,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::AuthRejected { status, realm } => write!(
                f,
                "authentication rejected ({status} for our answer in realm {realm:?}): wrong username or password"
            ),
            Failure::Rejected { status, reason } => write!(f, "registrar refused: {status} {reason}"),
            Failure::AuthUnusable { status, detail } => {
                write!(f, "cannot answer the {status} challenge: {detail}")
            }
            Failure::RealmMismatch {
                status,
                offered,
                expected,
            } => write!(
                f,
                "{status} challenge for realm {offered:?}, configured realm is {expected:?}"
            ),
            Failure::Send { detail } => write!(f, "request not sent: {detail}"),
        }
    }
}

/// Why a REGISTER is being retried.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RetryReason {
    /// No final response before Timer F (RFC 3261 §17.1.2.2).
    Timeout,
    /// A 408, 480 or 5xx.
    Status {
        /// The status code.
        status: u16,
        /// The reason phrase as received.
        reason: String,
        /// The Retry-After value, if any.
        retry_after: Option<Duration>,
    },
    /// A 2xx granting zero seconds for our Contact: the binding is not there.
    ZeroExpiry,
}

impl fmt::Display for RetryReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryReason::Timeout => f.write_str("no response (timeout)"),
            RetryReason::Status {
                status,
                reason,
                retry_after,
            } => {
                write!(f, "{status} {reason}")?;
                if let Some(r) = retry_after {
                    write!(f, " (Retry-After {} s)", r.as_secs())?;
                }
                Ok(())
            }
            RetryReason::ZeroExpiry => f.write_str("registrar granted 0 s"),
        }
    }
}

/// Where the registration stands.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RegistrationState {
    /// Not started.
    Idle,
    /// A REGISTER is on its way (first one, after a retry, after a challenge or 423, or
    /// with a rewritten Contact); no binding is known to be in place.
    Registering,
    /// The binding is in place. Refreshes happen in this state.
    Registered {
        /// When the binding runs out unless refreshed (counted from the REGISTER's send time).
        expires_at: Time,
        /// The Contact registered.
        contact: ContactAddress,
    },
    /// Waiting to retry. A refresh that failed lands here too, although the binding may
    /// still hold until the `expires_at` it last had.
    Backoff {
        /// When the next REGISTER goes out.
        until: Time,
        /// Retries so far, this one included.
        attempts: u32,
        /// What went wrong last.
        last_error: RetryReason,
    },
    /// Stopped for good; [`Registration::start`] tries again from scratch.
    Failed(Failure),
    /// The un-REGISTER is on its way.
    Unregistering,
    /// Un-registered (or never registered when `unregister` was called).
    Unregistered,
}

/// What happened, for the ladder and the CLI.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrationEvent {
    /// Registered (first time, or again after a retry or a Contact rewrite).
    Registered {
        /// The granted expiry.
        expires: Duration,
        /// The Contact registered.
        contact: ContactAddress,
    },
    /// A refresh succeeded.
    Refreshed {
        /// The granted expiry.
        expires: Duration,
    },
    /// Stopped for good.
    Failed(Failure),
    /// A retry is scheduled.
    RetryScheduled {
        /// When the REGISTER goes out.
        at: Time,
        /// Retries so far, this one included.
        attempt: u32,
        /// Why.
        reason: RetryReason,
    },
    /// The registrar saw us at another address; re-registering with it.
    ContactRewritten {
        /// The Contact registered so far.
        from: ContactAddress,
        /// The public address from `received`/`rport`.
        to: ContactAddress,
    },
    /// The keepalive OPTIONS got no response; a re-REGISTER was sent.
    KeepaliveTimeout,
    /// A REGISTER failed at one target and was sent to the next (RFC 3263 §4.3).
    FailedOver {
        /// The target that failed.
        from: std::net::SocketAddr,
        /// The target now used.
        to: std::net::SocketAddr,
        /// Why.
        reason: RetryReason,
    },
    /// Un-registered (the un-REGISTER got a final response or timed out, or there was
    /// nothing to remove).
    Unregistered,
}

/// Something the runtime must do that does not go through the endpoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Action {
    /// Send `\r\n\r\n` to this target (RFC 5626 §3.5.1 keepalive ping).
    SendKeepaliveCrlf(Target),
}

/// What the REGISTER in flight is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Purpose {
    Register,
    Unregister,
}

/// The REGISTER we wait for.
#[derive(Clone, Debug)]
struct InFlight {
    id: TransactionId,
    purpose: Purpose,
    sent_at: Time,
    /// The credentials headers it carried (to tell a refusal from a new challenge).
    authorization: Vec<AuthorizationHeader>,
    /// The old binding it removed, if any.
    removing: Option<ContactAddress>,
}

/// Keepalive OPTIONS bookkeeping.
#[derive(Debug)]
struct OptionsKeepalive {
    call_id: String,
    from_tag: String,
    cseq: u32,
    in_flight: Option<TransactionId>,
}

/// The registration of one trunk. See the [module docs](self) for the drive loop.
pub struct Registration {
    config: RegistrationConfig,
    rng: Box<dyn RngCore + Send>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    auth: ClientAuthState,
    state: RegistrationState,
    contact: ContactAddress,
    /// A binding to remove (`;expires=0`) in the next REGISTER, until one gets a 2xx.
    stale_binding: Option<ContactAddress>,
    /// The expiry asked for (raised by a 423).
    requested_expires: u32,
    in_flight: Option<InFlight>,
    /// Refresh or retry.
    register_at: Option<Time>,
    keepalive_at: Option<Time>,
    options: OptionsKeepalive,
    attempts: u32,
    challenges_in_a_row: u32,
    /// Which target requests go to: 0 is [`RegistrationConfig::proxy`], `i` is
    /// `failover[i - 1]`.
    target_index: usize,
    /// Targets failed in a row since one last answered: at most every target once before
    /// backing off.
    failed_over: usize,
    events: VecDeque<RegistrationEvent>,
    actions: VecDeque<Action>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("aor", &self.config.aor.to_string())
            .field("state", &self.state)
            .field("contact", &self.contact)
            .field("cseq", &self.cseq)
            .finish_non_exhaustive()
    }
}

fn random_hex(rng: &mut dyn RngCore, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl Registration {
    /// A registration in [`RegistrationState::Idle`]. The random source gives the Call-ID,
    /// the tags, the cnonces and the retry jitter.
    pub fn new(
        config: RegistrationConfig,
        mut rng: Box<dyn RngCore + Send>,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        // RFC 3261 §8.1.1.4 / §19.3: Call-ID and tags globally unique, from random bits.
        let call_id = random_hex(rng.as_mut(), 12);
        let from_tag = random_hex(rng.as_mut(), 6);
        let options = OptionsKeepalive {
            call_id: random_hex(rng.as_mut(), 12),
            from_tag: random_hex(rng.as_mut(), 6),
            cseq: 0,
            in_flight: None,
        };
        let (host, port) = config
            .external_address
            .clone()
            .unwrap_or((config.contact_host.clone(), config.contact_port));
        Ok(Registration {
            requested_expires: config.expires,
            config,
            rng,
            call_id,
            from_tag,
            cseq: 0,
            auth: ClientAuthState::new(),
            state: RegistrationState::Idle,
            contact: ContactAddress { host, port },
            stale_binding: None,
            in_flight: None,
            register_at: None,
            keepalive_at: None,
            options,
            attempts: 0,
            challenges_in_a_row: 0,
            target_index: 0,
            failed_over: 0,
            events: VecDeque::new(),
            actions: VecDeque::new(),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrationConfig {
        &self.config
    }

    /// The current state.
    pub fn state(&self) -> &RegistrationState {
        &self.state
    }

    /// The Contact address registered (or being registered).
    pub fn contact(&self) -> &ContactAddress {
        &self.contact
    }

    /// The Call-ID of every REGISTER of this registration.
    pub fn call_id(&self) -> &str {
        &self.call_id
    }

    /// The expiry asked for: the configured one, or the Min-Expires of a 423.
    pub fn requested_expires(&self) -> u32 {
        self.requested_expires
    }

    /// True while the binding is in place.
    pub fn is_registered(&self) -> bool {
        matches!(self.state, RegistrationState::Registered { .. })
    }

    /// Sends the first REGISTER (or starts over from any state).
    pub fn start(&mut self, now: Time, endpoint: &mut Endpoint) {
        self.attempts = 0;
        self.failed_over = 0;
        self.challenges_in_a_row = 0;
        self.register_at = None;
        self.keepalive_at = None;
        self.in_flight = None;
        self.state = RegistrationState::Registering;
        self.send_register(now, endpoint, Purpose::Register, None);
    }

    /// Sends the un-REGISTER (`Expires: 0`). From Idle, Failed or Unregistered there is
    /// nothing to remove: the state becomes Unregistered at once. The runtime bounds the
    /// wait for the final response in time.
    pub fn unregister(&mut self, now: Time, endpoint: &mut Endpoint) {
        self.register_at = None;
        self.keepalive_at = None;
        match self.state {
            RegistrationState::Unregistering => {}
            RegistrationState::Idle
            | RegistrationState::Failed(_)
            | RegistrationState::Unregistered => self.unregistered(),
            _ => {
                self.in_flight = None;
                self.challenges_in_a_row = 0;
                self.state = RegistrationState::Unregistering;
                self.send_register(now, endpoint, Purpose::Unregister, None);
            }
        }
    }

    /// The runtime opened a new connection to the registrar (after the last one dropped):
    /// register over it now. A registrar reaches us over the connection a binding came on
    /// (RFC 5626 §4.4.1: the flow is recovered by registering again on a new one), so a
    /// binding made over the old connection is dead even though it has not expired. Nothing
    /// happens while a REGISTER is in flight or the registration is not running.
    pub fn flow_recovered(&mut self, now: Time, endpoint: &mut Endpoint) {
        let running = matches!(
            self.state,
            RegistrationState::Registered { .. } | RegistrationState::Backoff { .. }
        );
        if !running || self.in_flight.is_some() {
            return;
        }
        if matches!(self.state, RegistrationState::Backoff { .. }) {
            self.state = RegistrationState::Registering;
        }
        self.register_at = None;
        self.send_register(now, endpoint, Purpose::Register, None);
    }

    /// When [`Registration::handle_timeout`] must next be called.
    pub fn next_timeout(&self) -> Option<Time> {
        match (self.register_at, self.keepalive_at) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Runs the refresh, retry and keepalive timers due at `now`.
    pub fn handle_timeout(&mut self, now: Time, endpoint: &mut Endpoint) {
        if self.register_at.is_some_and(|at| at <= now) {
            self.register_at = None;
            let due = matches!(
                self.state,
                RegistrationState::Registered { .. } | RegistrationState::Backoff { .. }
            );
            if due && self.in_flight.is_none() {
                if matches!(self.state, RegistrationState::Backoff { .. }) {
                    self.state = RegistrationState::Registering;
                }
                self.send_register(now, endpoint, Purpose::Register, None);
            }
        }
        if let Some(at) = self.keepalive_at.filter(|at| *at <= now) {
            match (self.config.keepalive.interval(), self.is_registered()) {
                (Some(interval), true) => {
                    let next = at + interval;
                    self.keepalive_at = Some(if next > now { next } else { now + interval });
                    self.send_keepalive(now, endpoint);
                }
                _ => self.keepalive_at = None,
            }
        }
    }

    /// Offers an endpoint event. Returns true when it was for this registration (a response
    /// to or the timeout of one of its requests); false means another part of the
    /// application should look at it.
    pub fn handle_event(&mut self, now: Time, event: &Event, endpoint: &mut Endpoint) -> bool {
        match event {
            Event::Response {
                transaction,
                response,
            } => {
                if self.options.in_flight == Some(*transaction) {
                    // Any response, even 404 or 405, proves the path and the NAT binding.
                    if response.status >= 200 {
                        self.options.in_flight = None;
                    }
                    return true;
                }
                if self.in_flight.as_ref().map(|f| f.id) != Some(*transaction) {
                    return false;
                }
                if response.status < 200 {
                    return true;
                }
                if let Some(sent) = self.in_flight.take() {
                    self.on_final(now, sent, response, endpoint);
                }
                true
            }
            Event::Timeout { transaction, .. } => {
                if self.options.in_flight == Some(*transaction) {
                    self.options.in_flight = None;
                    self.on_keepalive_timeout(now, endpoint);
                    return true;
                }
                if self.in_flight.as_ref().map(|f| f.id) != Some(*transaction) {
                    return false;
                }
                if let Some(sent) = self.in_flight.take() {
                    match sent.purpose {
                        Purpose::Unregister => self.unregistered(),
                        Purpose::Register => {
                            if !self.fail_over(now, RetryReason::Timeout, endpoint) {
                                self.retry(now, RetryReason::Timeout, None)
                            }
                        }
                    }
                }
                true
            }
            _ => false,
        }
    }

    /// Next event for the ladder/CLI.
    pub fn poll_event(&mut self) -> Option<RegistrationEvent> {
        self.events.pop_front()
    }

    /// Next action for the runtime.
    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// Where requests go now: the proxy, or the failover target a failure moved to.
    pub fn target(&self) -> Target {
        let addr = match self.target_index {
            0 => self.config.proxy,
            i => self
                .config
                .failover
                .get(i - 1)
                .copied()
                .unwrap_or(self.config.proxy),
        };
        Target {
            addr,
            transport: self.config.transport,
        }
    }

    /// Every target in order: the proxy, then the failover ones.
    fn target_count(&self) -> usize {
        1 + self.config.failover.len()
    }

    /// A new list of targets for the proxy's name (looked up again when its TTL ran out).
    /// The registration stays on its current target if the new list still has it, and
    /// otherwise starts over from the new first one with its next REGISTER.
    pub fn set_targets(
        &mut self,
        proxy: std::net::SocketAddr,
        failover: Vec<std::net::SocketAddr>,
    ) {
        let current = self.target().addr;
        self.config.proxy = proxy;
        self.config.failover = failover;
        self.target_index = std::iter::once(proxy)
            .chain(self.config.failover.iter().copied())
            .position(|a| a == current)
            .unwrap_or(0);
    }

    /// After a timeout or a 503 on a REGISTER: the next target, if one is left untried
    /// (RFC 3263 §4.3). Returns false when every target has failed.
    fn fail_over(&mut self, now: Time, reason: RetryReason, endpoint: &mut Endpoint) -> bool {
        if self.failed_over + 1 >= self.target_count() {
            return false;
        }
        let from = self.target().addr;
        self.failed_over += 1;
        self.target_index = (self.target_index + 1) % self.target_count();
        let to = self.target().addr;
        self.events
            .push_back(RegistrationEvent::FailedOver { from, to, reason });
        if !self.is_registered() {
            self.state = RegistrationState::Registering;
        }
        self.send_register(now, endpoint, Purpose::Register, None);
        true
    }

    fn contact_uri(&self, address: &ContactAddress) -> String {
        let user = self
            .config
            .contact_user
            .as_deref()
            .or_else(|| self.config.aor.user())
            .unwrap_or("");
        let transport = match self.config.transport.uri_param() {
            None => String::new(),
            Some(t) => format!(";transport={t}"),
        };
        if user.is_empty() {
            format!("<sip:{address}{transport}>")
        } else {
            format!("<sip:{user}@{address}{transport}>")
        }
    }

    fn digest_request_uri(&self) -> String {
        self.config.registrar_uri.to_string()
    }

    fn send_register(
        &mut self,
        now: Time,
        endpoint: &mut Endpoint,
        purpose: Purpose,
        authorization: Option<Vec<AuthorizationHeader>>,
    ) {
        let uri = self.digest_request_uri();
        let digest = DigestRequest {
            method: Method::Register.as_str(),
            uri: &uri,
            body: &[],
        };
        let authorization = match authorization {
            Some(headers) => headers,
            // Pre-emptive credentials with the cached nonce (RFC 7616 §3.4); a nonce whose
            // count ran out is dropped so that the registrar challenges afresh.
            None => self
                .auth
                .authorization_headers(&self.config.credentials, &digest, self.rng.as_mut())
                .unwrap_or_else(|_| {
                    self.auth.clear();
                    Vec::new()
                }),
        };
        self.cseq = self.cseq.wrapping_add(1).max(1);
        let mut request = Request::new(Method::Register, self.config.registrar_uri.clone());
        let h = &mut request.headers;
        // RFC 3261 §10.2: To and From carry the AOR; To has no tag.
        h.add(
            HeaderKind::From,
            format!("<{}>;tag={}", self.config.aor, self.from_tag),
        );
        h.add(HeaderKind::To, format!("<{}>", self.config.aor));
        h.add(HeaderKind::CallId, self.call_id.clone());
        h.add(HeaderKind::CSeq, format!("{} REGISTER", self.cseq));
        let removing = self.stale_binding.clone();
        match purpose {
            Purpose::Register => {
                h.add(HeaderKind::Contact, self.contact_uri(&self.contact));
                h.add(HeaderKind::Expires, self.requested_expires.to_string());
            }
            Purpose::Unregister => {
                // RFC 3261 §10.2.2: expires=0 on the Contact and Expires: 0.
                h.add(
                    HeaderKind::Contact,
                    format!("{};expires=0", self.contact_uri(&self.contact)),
                );
                h.add(HeaderKind::Expires, "0");
            }
        }
        if let Some(old) = &removing {
            h.add(
                HeaderKind::Contact,
                format!("{};expires=0", self.contact_uri(old)),
            );
        }
        for header in &authorization {
            let kind = match header.name {
                HeaderName::Authorization => HeaderKind::Authorization,
                HeaderName::ProxyAuthorization => HeaderKind::ProxyAuthorization,
            };
            h.add(kind, header.value.clone());
        }
        match endpoint.send_request(now, request, self.target()) {
            Ok(id) => {
                self.in_flight = Some(InFlight {
                    id,
                    purpose,
                    sent_at: now,
                    authorization,
                    removing,
                });
            }
            Err(e) => {
                let failure = Failure::Send {
                    detail: e.to_string(),
                };
                match purpose {
                    Purpose::Unregister => self.unregistered(),
                    Purpose::Register => self.fail(failure),
                }
            }
        }
    }

    fn send_keepalive(&mut self, now: Time, endpoint: &mut Endpoint) {
        match self.config.keepalive {
            Keepalive::None => {}
            Keepalive::Crlf { .. } => self
                .actions
                .push_back(Action::SendKeepaliveCrlf(self.target())),
            Keepalive::Options { .. } => {
                if self.options.in_flight.is_some() {
                    return;
                }
                self.options.cseq = self.options.cseq.wrapping_add(1).max(1);
                let mut request = Request::new(Method::Options, self.config.registrar_uri.clone());
                let h = &mut request.headers;
                h.add(
                    HeaderKind::From,
                    format!("<{}>;tag={}", self.config.aor, self.options.from_tag),
                );
                h.add(HeaderKind::To, format!("<{}>", self.config.registrar_uri));
                h.add(HeaderKind::CallId, self.options.call_id.clone());
                h.add(HeaderKind::CSeq, format!("{} OPTIONS", self.options.cseq));
                h.add(HeaderKind::Contact, self.contact_uri(&self.contact));
                if let Ok(id) = endpoint.send_request(now, request, self.target()) {
                    self.options.in_flight = Some(id);
                }
            }
        }
    }

    fn on_keepalive_timeout(&mut self, now: Time, endpoint: &mut Endpoint) {
        self.events.push_back(RegistrationEvent::KeepaliveTimeout);
        // The path or the NAT binding is gone: re-REGISTER now rather than at the refresh;
        // if that times out too, the usual backoff applies.
        if self.is_registered() && self.in_flight.is_none() {
            self.register_at = None;
            self.send_register(now, endpoint, Purpose::Register, None);
        }
    }

    fn on_final(
        &mut self,
        now: Time,
        sent: InFlight,
        response: &Response,
        endpoint: &mut Endpoint,
    ) {
        let status = response.status;
        match status {
            200..=299 => {
                self.challenges_in_a_row = 0;
                if sent.removing.is_some() {
                    self.stale_binding = None;
                }
                match sent.purpose {
                    Purpose::Unregister => self.unregistered(),
                    Purpose::Register => self.on_success(now, sent, response, endpoint),
                }
            }
            401 | 407 => self.on_challenge(now, sent, response, endpoint),
            423 if sent.purpose == Purpose::Register => {
                self.challenges_in_a_row = 0;
                // RFC 3261 §10.2.8: retry with at least Min-Expires. A 423 without a usable
                // Min-Expires above what was asked cannot be satisfied.
                let min = response
                    .headers
                    .get(HeaderKind::MinExpires)
                    .and_then(|v| parse_u32("Min-Expires", v).ok());
                match min {
                    Some(min) if min > self.requested_expires => {
                        self.requested_expires = min;
                        self.send_register(now, endpoint, Purpose::Register, None);
                    }
                    _ => self.fail(Failure::Rejected {
                        status,
                        reason: response.reason.clone(),
                    }),
                }
            }
            408 | 480 | 500..=599 if sent.purpose == Purpose::Register => {
                self.challenges_in_a_row = 0;
                let retry_after = response
                    .headers
                    .get(HeaderKind::RetryAfter)
                    .and_then(retry_after_seconds)
                    .map(|s| Duration::from_secs(u64::from(s)));
                let reason = RetryReason::Status {
                    status,
                    reason: response.reason.clone(),
                    retry_after,
                };
                if !(crate::locate::fails_over(status)
                    && self.fail_over(now, reason.clone(), endpoint))
                {
                    self.retry(now, reason, retry_after);
                }
            }
            _ => match sent.purpose {
                Purpose::Unregister => self.unregistered(),
                Purpose::Register => self.fail(Failure::Rejected {
                    status,
                    reason: response.reason.clone(),
                }),
            },
        }
    }

    fn on_challenge(
        &mut self,
        now: Time,
        sent: InFlight,
        response: &Response,
        endpoint: &mut Endpoint,
    ) {
        let status = response.status;
        let give_up = |this: &mut Self, failure: Failure| match sent.purpose {
            Purpose::Unregister => this.unregistered(),
            Purpose::Register => this.fail(failure),
        };
        self.challenges_in_a_row += 1;
        if self.challenges_in_a_row > MAX_CHALLENGES_IN_A_ROW {
            give_up(
                self,
                Failure::AuthUnusable {
                    status,
                    detail: format!("{MAX_CHALLENGES_IN_A_ROW} challenges in a row"),
                },
            );
            return;
        }
        let (challenge_kind, name) = if status == 401 {
            (HeaderKind::WwwAuthenticate, HeaderName::Authorization)
        } else {
            (
                HeaderKind::ProxyAuthenticate,
                HeaderName::ProxyAuthorization,
            )
        };
        let challenges: Vec<&str> = response.headers.get_all(challenge_kind).collect();
        if let (Some(expected), Ok(chosen)) = (
            self.config.realm.as_deref(),
            select_challenge(challenges.iter().copied()),
        ) {
            if chosen.realm != expected {
                let failure = Failure::RealmMismatch {
                    status,
                    offered: chosen.realm,
                    expected: expected.to_owned(),
                };
                give_up(self, failure);
                return;
            }
        }
        let sent_values: Vec<&str> = sent
            .authorization
            .iter()
            .filter(|h| h.name == name)
            .map(|h| h.value.as_str())
            .collect();
        let uri = self.digest_request_uri();
        let outcome = self.auth.handle_challenge(
            &ChallengedResponse {
                status,
                challenges: &challenges,
                sent: &sent_values,
            },
            &self.config.credentials,
            &DigestRequest {
                method: Method::Register.as_str(),
                uri: &uri,
                body: &[],
            },
            self.rng.as_mut(),
        );
        match outcome {
            Ok(AuthOutcome::Retry { headers }) => {
                self.send_register(now, endpoint, sent.purpose, Some(headers))
            }
            Ok(AuthOutcome::Rejected { realm }) => {
                give_up(self, Failure::AuthRejected { status, realm })
            }
            Err(e) => give_up(
                self,
                Failure::AuthUnusable {
                    status,
                    detail: e.to_string(),
                },
            ),
        }
    }

    fn on_success(
        &mut self,
        now: Time,
        sent: InFlight,
        response: &Response,
        endpoint: &mut Endpoint,
    ) {
        let granted = granted_expiry(
            response,
            &self.contact,
            self.contact_user(),
            self.requested_expires,
        );
        if granted == 0 {
            self.retry(now, RetryReason::ZeroExpiry, None);
            return;
        }
        // RFC 3581 §4 / §9: the registrar saw our request come from `received`:`rport`.
        // The REGISTER that carried a rewrite is not rewritten again, so a registrar that
        // reports a different address each time cannot make this loop.
        if self.config.external_address.is_none() && sent.removing.is_none() {
            if let Some(public) = observed_address(response, self.config.transport, &self.contact) {
                if public != self.contact {
                    let old = std::mem::replace(&mut self.contact, public.clone());
                    self.events.push_back(RegistrationEvent::ContactRewritten {
                        from: old.clone(),
                        to: public,
                    });
                    self.stale_binding = Some(old);
                    self.keepalive_at = None;
                    self.state = RegistrationState::Registering;
                    self.send_register(now, endpoint, Purpose::Register, None);
                    return;
                }
            }
        }
        let expires = Duration::from_secs(u64::from(granted));
        self.failed_over = 0;
        let was_registered = self.is_registered();
        self.state = RegistrationState::Registered {
            expires_at: sent.sent_at + expires,
            contact: self.contact.clone(),
        };
        self.attempts = 0;
        self.register_at =
            Some(sent.sent_at + refresh_delay(expires, self.config.refresh_fraction));
        if self.keepalive_at.is_none() {
            self.keepalive_at = self.config.keepalive.interval().map(|i| now + i);
        }
        self.events.push_back(if was_registered {
            RegistrationEvent::Refreshed { expires }
        } else {
            RegistrationEvent::Registered {
                expires,
                contact: self.contact.clone(),
            }
        });
    }

    fn contact_user(&self) -> Option<&str> {
        self.config
            .contact_user
            .as_deref()
            .or_else(|| self.config.aor.user())
    }

    fn retry(&mut self, now: Time, reason: RetryReason, retry_after: Option<Duration>) {
        self.attempts = self.attempts.saturating_add(1);
        // Every target failed (or the one there is): the next attempt starts over from the
        // first (RFC 3263 §4.3 orders them best first).
        self.failed_over = 0;
        self.target_index = 0;
        let mut delay = backoff_delay(
            self.attempts,
            self.config.retry_min,
            self.config.retry_max,
            self.rng.as_mut(),
        );
        if let Some(asked) = retry_after {
            // RFC 3261 §21.5.4: do not retry before Retry-After.
            delay = delay.max(asked.min(MAX_RETRY_AFTER));
        }
        let until = now + delay;
        self.register_at = Some(until);
        self.keepalive_at = None;
        self.state = RegistrationState::Backoff {
            until,
            attempts: self.attempts,
            last_error: reason.clone(),
        };
        self.events.push_back(RegistrationEvent::RetryScheduled {
            at: until,
            attempt: self.attempts,
            reason,
        });
    }

    fn fail(&mut self, failure: Failure) {
        self.register_at = None;
        self.keepalive_at = None;
        self.in_flight = None;
        self.state = RegistrationState::Failed(failure.clone());
        self.events.push_back(RegistrationEvent::Failed(failure));
    }

    fn unregistered(&mut self) {
        self.register_at = None;
        self.keepalive_at = None;
        self.in_flight = None;
        self.state = RegistrationState::Unregistered;
        self.events.push_back(RegistrationEvent::Unregistered);
    }
}

/// True when a Contact from the registrar names our binding: same host (case-insensitive),
/// same port (5060 when absent), same user when it has one (RFC 3261 §19.1.4 compares the
/// user part case-sensitively). URI parameters the registrar adds are ignored.
fn contact_matches(address: &NameAddr, ours: &ContactAddress, user: Option<&str>) -> bool {
    let Some(sip) = address.uri.as_sip() else {
        return false;
    };
    let host_matches = match (&sip.host, &ours.host) {
        (Host::Domain(a), Host::Domain(b)) => a.eq_ignore_ascii_case(b),
        (a, b) => a == b,
    };
    let user_matches = match (sip.user.as_deref(), user) {
        (Some(a), Some(b)) => a == b,
        _ => true,
    };
    host_matches && sip.port.unwrap_or(5060) == ours.port && user_matches
}

/// The expiry the registrar granted our Contact (RFC 3261 §10.2.4): its `expires`
/// parameter in the 200, else the Expires header, else what we asked.
fn granted_expiry(
    response: &Response,
    ours: &ContactAddress,
    user: Option<&str>,
    requested: u32,
) -> u32 {
    let contacts = response.contacts().unwrap_or_default();
    let from_contact = contacts
        .iter()
        .filter_map(Contact::address)
        .find(|a| contact_matches(a, ours, user))
        .and_then(|a| a.params.value("expires"))
        .and_then(|v| parse_u32("Contact", v).ok());
    from_contact
        .or_else(|| response.expires().ok().flatten())
        .unwrap_or(requested)
}

/// Our address as the registrar saw it, from the top Via of its response (RFC 3581 §4):
/// `received` (else the sent-by host) and `rport` (else the sent-by port). `None` when the
/// registrar stamped neither, so nothing was learned. Over TCP the port is ours: only the
/// IP is taken.
fn observed_address(
    response: &Response,
    transport: Transport,
    ours: &ContactAddress,
) -> Option<ContactAddress> {
    let via = response.top_via().ok()?;
    let received: Option<IpAddr> = via.received().and_then(|r| r.parse().ok());
    let rport = via.rport().flatten();
    if received.is_none() && rport.is_none() {
        return None;
    }
    let host = match received {
        Some(ip) => Host::from(ip),
        None => via.host.clone(),
    };
    let port = match transport {
        // On a connection the source port is ephemeral: our listening port stays.
        Transport::Tcp | Transport::Tls => ours.port,
        Transport::Udp => rport.or(via.port).unwrap_or(5060),
    };
    Some(ContactAddress { host, port })
}

/// The delta-seconds of a Retry-After value: `delta-seconds [ comment ] *( SEMI retry-param )`
/// (RFC 3261 §20.33). `None` when it does not start with a number.
fn retry_after_seconds(value: &str) -> Option<u32> {
    let value = value.trim_start();
    let end = value
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(value.len());
    value[..end].parse().ok()
}
