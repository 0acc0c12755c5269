//! The registrar for agents: softphones REGISTER to the dialer, and the B2BUA looks up where
//! to call them (RFC 3261 §10.3, with the NAT handling FreeSWITCH and Asterisk apply).
//!
//! # What it does
//! - [`Registrar::handle_register`] answers one REGISTER following RFC 3261 §10.3 in order:
//!   malformed headers get 400; `Require` naming any extension gets 420 with `Unsupported`
//!   (step 2); a To host outside the configured domain gets 404 (step 5); no usable
//!   credentials get 401 with a `WWW-Authenticate` per algorithm the agent's secret can answer
//!   (step 3, digest by [`sip_core::auth::DigestServer`]: SHA-256 and MD5 for a password, MD5
//!   only for an MD5 HA1), an expired nonce gets 401 with `stale=true`; then the Contacts are
//!   applied (steps 6 and 7) and a 200 lists every current binding with its `expires`
//!   (step 8).
//! - One answer for every failure (Asterisk's `alwaysauthreject`): an unknown extension, a
//!   wrong password, a source outside the agent's `allow` networks, credentials for another
//!   user (step 4), a spent or replayed nonce all get the same 401 as a first REGISTER, with a
//!   fresh nonce, so a scanner (sipvicious `svwar`) cannot tell which extensions exist. One
//!   digest server challenges everyone (its nonces show their issue time and serial number,
//!   one sequence for all), and an unknown extension is checked against a decoy whose
//!   password nobody knows. A nonce answered wrongly is spent: answering it again is a
//!   failure (`stale_nonce`) whatever the password. One difference remains by configuration:
//!   with SHA-256 in `algorithms`, an agent stored as an MD5 HA1 is challenged with MD5 only,
//!   an unknown extension with every algorithm.
//! - Failures ([`AuthFailure`], with a [`FailureReason`]) are returned in
//!   [`RegisterOutcome::failure`] and queued for [`Registrar::poll_failure`], and counted per
//!   source address in [`Bans`]: `max_failures` within the window ban the address
//!   ([`Registrar::is_banned`]; the runtime drops its datagrams unanswered). A REGISTER
//!   without credentials, with another realm's credentials, with a nonce this registrar did not
//!   issue (a previous run's) or with an expired nonce and the right password is challenged
//!   without counting: it tells nothing about the password. [`failure_line`] is the log line
//!   for each failure, the one `contrib/fail2ban/dialer.conf` matches.
//! - Bindings: each Contact's `expires` parameter, else the `Expires` header, else the
//!   default; a non-zero value under `min_expires` fails the request with 423 and
//!   `Min-Expires`; a value above the agent's maximum is shortened; 0 removes; `Contact: *`
//!   with `Expires: 0` removes all. A Contact matches a stored binding by `+sip.instance` and
//!   `reg-id` when both carry them (RFC 5626 §6, so a softphone that moved replaces its old
//!   address instead of leaving it ringing), else by URI equivalence (RFC 3261 §19.1.4). The
//!   Call-ID/CSeq rule of step 7 is applied per binding, and a request either applies all its
//!   Contacts or none.
//! - NAT: every binding records the address and transport the REGISTER really came from, and
//!   requests to the agent go there ([`Binding::source`]; FreeSWITCH's
//!   NDLB-connectile-dysfunction, Asterisk's `rewrite_contact`), while the Request-URI is the
//!   Contact exactly as registered ([`Binding::request_uri`]). [`Binding::nat`] says when the
//!   Contact does not name that source.
//! - [`Registrar::lookup`] gives the binding to call (highest `q`, then most recently
//!   refreshed), falling back to the agent's static contact; [`Registrar::bindings`] lists all
//!   of them for `GET /agents`; [`Registrar::handle_options`] answers agents' keepalives.
//!
//! # Drive loop
//! Sans-IO like the protocol cores: the runtime passes each REGISTER that the
//! [`sip_core::endpoint::Endpoint`] reports as `Event::Request` to
//! [`Registrar::handle_register`] with the time, source and transport, sends the returned
//! response with `Endpoint::respond`, and publishes the returned [`RegistrarEvent`]s. It calls
//! [`Registrar::expire`] when [`Registrar::next_expiry`] is reached. Before parsing a
//! datagram it asks [`Registrar::is_banned`] and drops those of banned sources; after a
//! REGISTER it logs each [`Registrar::poll_failure`] with [`failure_line`] (and
//! [`ban_line`] when the failure started a ban). Time is a
//! [`Time`] argument, nonces are bound to an injected secret and To tags come from an injected
//! [`RngCore`], so every answer is reproducible in tests.
//!
//! # What it deliberately does not do
//! - No `Date` header in the 200 (§10.3 step 8 says SHOULD): the registrar has no wall clock;
//!   the runtime may add one before sending.
//! - No RFC 5626 outbound (no `Require: outbound`, no flow-failure detection) and no GRUU
//!   (RFC 5627): `+sip.instance` and `reg-id` only decide which binding a Contact replaces.
//! - No `Path` or `Service-Route` (RFC 3327, RFC 3608): agents register directly.
//! - No forwarding of REGISTERs for other domains (§10.3 step 1): the dialer is not a proxy.
//! - No DNS: a static contact's host is resolved by the caller of
//!   [`RegistrarConfig::from_profiles`].
//! - No persistence: a restart forgets bindings, and agents re-register within their
//!   registration period.
//! - No lockout of an extension after failed attempts (that would let anyone lock agents
//!   out): sources are banned, extensions never.
//!
//! # Choices the RFC leaves open
//! - Unknown extension, disallowed network, credentials for another user: 401, not 404 or
//!   403, so the answers do not reveal which extensions exist or where they may register from.
//! - Same Call-ID with a CSeq not above the stored one: 500 (§10.3 step 7 says the request
//!   "fails" without a code; §12.2.2 answers out-of-order requests with 500).
//! - More Contacts than `max_bindings_per_agent`: the least recently refreshed bindings not
//!   named by the request make room ([`UnregisterReason::Replaced`]); a request naming more
//!   Contacts than the limit by itself gets 403.
//! - A new Call-ID on an existing binding is a new registration ([`RegistrarEvent::AgentRegistered`]):
//!   §10.2.4 has a UA keep one Call-ID per boot cycle, so a new one means the agent restarted.
//!
//! # Errors and panics
//! A bad REGISTER is answered (400, 401, 403, 420, 423, 500), never an error or a panic; a bad
//! configuration is a [`RegistrarConfigError`] from [`Registrar::new`]. A panic is a bug.

mod bans;
mod binding;
mod config;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

use rand::RngCore;
use sip_core::auth::{
    parse_credentials, Algorithm, DigestChallenge, DigestRequest, DigestServer, RejectReason,
    Secret, ServerConfig, Verification,
};
use sip_core::endpoint::make_response;
use sip_core::message::{
    scan, Contact, HeaderKind, Method, NameAddr, Request, Response, SipMessage,
};
use sip_core::time::Time;
use sip_core::transaction::Transport;

pub use bans::{canonical, Ban, BanConfig, Bans, Counted, MAX_BANS, MAX_TRACKED_SOURCES};
pub use binding::Binding;
pub use config::{
    ip_literal, AgentEntry, RegistrarConfig, RegistrarConfigError, StaticContact, DEFAULT_EXPIRES,
    DEFAULT_MAX_BINDINGS_PER_AGENT,
};

/// The answer to one REGISTER and what changed.
#[derive(Debug, Clone, PartialEq)]
pub struct RegisterOutcome {
    /// The response to send (through the server transaction).
    pub response: Response,
    /// Bindings created, refreshed or removed, in order; empty unless the REGISTER succeeded
    /// or found bindings that had lapsed.
    pub events: Vec<RegistrarEvent>,
    /// The failed authentication this REGISTER was, if it was one (also queued for
    /// [`Registrar::poll_failure`]).
    pub failure: Option<AuthFailure>,
}

/// Why an authentication failed: the `reason=` of [`failure_line`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum FailureReason {
    /// No agent has this extension.
    UnknownExtension,
    /// The digest response is wrong.
    WrongPassword,
    /// The source is outside the agent's `allow` networks.
    DisallowedNetwork,
    /// The REGISTER came over another transport than the agent's `transport`.
    WrongTransport,
    /// A nonce already spent by a wrong answer, or a nonce count already used (a replay).
    StaleNonce,
    /// The credentials name another user than the address-of-record (§10.3 step 4).
    UsernameMismatch,
    /// Credentials for our realm that do not parse or answer something not offered (an
    /// algorithm, a qop, an opaque, another Request-URI).
    BadCredentials,
}

impl FailureReason {
    /// The name in logs: `unknown_extension`, `wrong_password` ...
    pub fn as_str(self) -> &'static str {
        match self {
            FailureReason::UnknownExtension => "unknown_extension",
            FailureReason::WrongPassword => "wrong_password",
            FailureReason::DisallowedNetwork => "disallowed_network",
            FailureReason::WrongTransport => "wrong_transport",
            FailureReason::StaleNonce => "stale_nonce",
            FailureReason::UsernameMismatch => "username_mismatch",
            FailureReason::BadCredentials => "bad_credentials",
        }
    }
}

impl fmt::Display for FailureReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One failed authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// When.
    pub at: Time,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    /// The To user (the extension tried), as received.
    pub extension: String,
    /// Why it failed.
    pub reason: FailureReason,
    /// Failures of this source within the ban window, this one included (0 when exempt).
    pub failures: u32,
    /// The ban this failure started, if it did.
    pub banned: Option<Ban>,
}

/// How many failures wait for [`Registrar::poll_failure`] at most (the oldest go first).
pub const MAX_PENDING_FAILURES: usize = 1024;

/// `2026-12-07T12:00:00Z` for `unix_secs` seconds since the Unix epoch (UTC, RFC 3339).
pub fn utc_timestamp(unix_secs: u64) -> String {
    let days = unix_secs / 86_400;
    let rem = unix_secs % 86_400;
    // Howard Hinnant's civil_from_days, for days since 1970-01-01.
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// A value from the wire made safe for a one-line log: printable ASCII without spaces or
/// `=`, at most 64 characters, `-` when empty; anything else becomes `?`.
fn log_token(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(64)
        .map(|c| {
            if c.is_ascii_graphic() && c != '=' {
                c
            } else {
                '?'
            }
        })
        .collect();
    if out.is_empty() {
        out.push('-');
    }
    out
}

/// The log line of a failure at `unix_secs`, the one `contrib/fail2ban/dialer.conf` matches:
/// `2026-12-07T12:00:00Z WARN dialer::registrar: authentication failed source=203.0.113.9
/// extension=1000 reason=wrong_password` (one line). The source is the address alone; the
/// extension, which the sender chose, is reduced to `log_token` characters after it.
pub fn failure_line(unix_secs: u64, failure: &AuthFailure) -> String {
    format!(
        "{} WARN dialer::registrar: {}",
        utc_timestamp(unix_secs),
        failure_message(failure)
    )
}

/// The message of [`failure_line`]: what the dialer logs at `warn` for the failure.
pub fn failure_message(failure: &AuthFailure) -> String {
    format!(
        "authentication failed source={} extension={} reason={}",
        canonical(failure.source.ip()),
        log_token(&failure.extension),
        failure.reason
    )
}

/// The log line of a ban starting at `unix_secs` and lifting `ban_s` seconds later.
pub fn ban_line(unix_secs: u64, ban: &Ban) -> String {
    format!(
        "{} WARN dialer::registrar: {}",
        utc_timestamp(unix_secs),
        ban_message(unix_secs, ban)
    )
}

/// The message of [`ban_line`].
pub fn ban_message(unix_secs: u64, ban: &Ban) -> String {
    let length = ban.until.since(ban.since).as_secs();
    format!(
        "source banned source={} failures={} ban_s={length} until={}",
        ban.address,
        ban.failures,
        utc_timestamp(unix_secs + length)
    )
}

/// A change in where an agent can be reached.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RegistrarEvent {
    /// A new binding, or an existing one rewritten under a new Call-ID (the agent restarted).
    AgentRegistered {
        /// The agent.
        extension: String,
        /// The Contact as registered.
        contact: NameAddr,
        /// Where the REGISTER came from (where calls go).
        source: SocketAddr,
        /// How it came.
        transport: Transport,
        /// The Contact does not name the source.
        nat: bool,
        /// The registration period granted.
        expires: Duration,
    },
    /// A binding refreshed by the same Call-ID with a higher CSeq.
    AgentRefreshed {
        /// The agent.
        extension: String,
        /// The Contact as registered.
        contact: NameAddr,
        /// Where the REGISTER came from; it changes when a NAT rebinds the agent's port.
        source: SocketAddr,
        /// How it came.
        transport: Transport,
        /// The Contact does not name the source.
        nat: bool,
        /// The registration period granted.
        expires: Duration,
    },
    /// A binding is gone.
    AgentUnregistered {
        /// The agent.
        extension: String,
        /// The Contact that was bound.
        contact: NameAddr,
        /// Why.
        reason: UnregisterReason,
    },
}

/// Why a binding ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UnregisterReason {
    /// Its registration period ran out without a refresh.
    Expired,
    /// The agent removed it (`expires=0`, `Expires: 0`, or `Contact: *`).
    Removed,
    /// Another Contact took its place: the same `+sip.instance` from a new address, or
    /// eviction of the oldest binding to stay within `max_bindings_per_agent`.
    Replaced,
    /// It was registered over a connection (TCP) that closed.
    FlowClosed,
}

struct AgentState {
    entry: AgentEntry,
    /// Live registered bindings, in creation order.
    bindings: Vec<Binding>,
    /// The configured contact, if any.
    static_binding: Option<Binding>,
}

/// The one digest server of every agent (see [`Registrar::new`]) and the nonces spent.
struct Auth {
    digest: DigestServer,
    /// Nonces spent by a wrong answer, with when, oldest first (bounded by
    /// [`MAX_SPENT_NONCES`]; older than the nonce lifetime they are stale anyway).
    spent: VecDeque<(String, Time)>,
}

/// The registrar: agent table, bindings and the digest server.
pub struct Registrar {
    config: RegistrarConfig,
    agents: BTreeMap<String, AgentState>,
    auth: Auth,
    /// Who an unknown extension is checked against: nobody knows its password.
    decoy: AgentEntry,
    bans: Bans,
    pending: VecDeque<AuthFailure>,
    /// The earliest `expires_at` among the registered bindings, recomputed whenever bindings
    /// change (a REGISTER committed, [`Registrar::expire`]): [`Registrar::next_expiry`] is
    /// asked on every turn of the signalling loop and must not walk the agent table.
    earliest_expiry: Option<Time>,
    rng: Box<dyn RngCore + Send>,
}

impl fmt::Debug for Registrar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registrar")
            .field("realm", &self.config.realm)
            .field("agents", &self.agents.len())
            .field(
                "bindings",
                &self
                    .agents
                    .values()
                    .map(|a| a.bindings.len())
                    .sum::<usize>(),
            )
            .finish_non_exhaustive()
    }
}

/// Nonces remembered as spent.
const MAX_SPENT_NONCES: usize = 1024;

/// A refusal: the status and what to add to the response.
struct Refusal {
    status: u16,
    reason: Option<&'static str>,
    headers: Vec<(HeaderKind, String)>,
    /// The failed authentication it answers, with the extension tried.
    failure: Option<(FailureReason, String)>,
}

/// Why [`AgentState::authenticate`] did not authenticate.
enum AuthError {
    /// Challenged again without counting a failure: no credentials, an expired nonce with
    /// the right password, a nonce not issued by this registrar.
    Challenge(Refusal),
    /// A failed attempt, challenged again with a fresh nonce.
    Failed(FailureReason, Refusal),
}

impl Refusal {
    fn new(status: u16) -> Self {
        Refusal {
            status,
            reason: None,
            headers: Vec::new(),
            failure: None,
        }
    }

    fn because(status: u16, reason: &'static str) -> Self {
        Refusal {
            reason: Some(reason),
            ..Refusal::new(status)
        }
    }
}

/// One Contact of the request, read and bounded.
struct ContactUpdate {
    contact: NameAddr,
    expires: u32,
    instance: Option<String>,
    reg_id: Option<u32>,
    q: u16,
}

impl Registrar {
    /// A registrar for `config`, with `rng` for To tags.
    ///
    /// One [`DigestServer`] challenges every agent and every unknown extension: its nonces
    /// carry the issue time and a serial number in clear (each nonce is unique, so two phones
    /// challenged in the same second never share one), and a server per agent would number
    /// its own challenges, which would tell a scanner which extensions have a server of
    /// their own. The nonce counts it tracks are per nonce, whoever answers it.
    pub fn new(
        config: RegistrarConfig,
        rng: Box<dyn RngCore + Send>,
    ) -> Result<Registrar, RegistrarConfigError> {
        config.validate()?;
        let mut agents = BTreeMap::new();
        for entry in &config.agents {
            let static_binding = entry.static_contact.as_ref().map(|s| Binding {
                extension: entry.extension.clone(),
                contact: s.contact.clone(),
                source: s.target,
                transport: s.transport,
                expires_at: None,
                nat: false,
                user_agent: None,
                instance: None,
                reg_id: None,
                q: 1000,
                registered_at: Time::ZERO,
                refreshed_at: Time::ZERO,
                call_id: String::new(),
                cseq: 0,
            });
            agents.insert(
                entry.extension.clone(),
                AgentState {
                    entry: entry.clone(),
                    bindings: Vec::new(),
                    static_binding,
                },
            );
        }
        let mut server = ServerConfig::new(config.realm.clone(), config.nonce_secret.clone());
        server.nonce_lifetime = config.nonce_ttl;
        server.algorithms = config.algorithms.clone();
        let auth = Auth {
            digest: DigestServer::new(server),
            spent: VecDeque::new(),
        };
        // The decoy's password is derived from the nonce secret and told to nobody.
        let decoy_password: String = {
            use sha2::Digest;
            let mut hash = sha2::Sha256::new();
            hash.update(b"decoy\0");
            hash.update(&config.nonce_secret);
            hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
        };
        let decoy = AgentEntry::with_password("", decoy_password, Vec::new());
        let bans = Bans::new(config.security.clone());
        Ok(Registrar {
            config,
            agents,
            auth,
            decoy,
            bans,
            pending: VecDeque::new(),
            earliest_expiry: None,
            rng,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RegistrarConfig {
        &self.config
    }

    /// Answers a REGISTER that came from `source` over `transport` at `now`.
    pub fn handle_register(
        &mut self,
        now: Time,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
    ) -> RegisterOutcome {
        let mut events = self.expire(now);
        let mut failure = None;
        let response = match self.register(now, request, source, transport, &mut events) {
            Ok(response) => response,
            Err(mut refusal) => {
                if let Some((reason, extension)) = refusal.failure.take() {
                    failure = Some(self.fail(now, source, extension, reason));
                }
                let mut response = self.reply(request, refusal.status);
                if let Some(reason) = refusal.reason {
                    response.reason = reason.to_owned();
                }
                for (kind, value) in refusal.headers {
                    response.headers.add(kind, value);
                }
                response
            }
        };
        RegisterOutcome {
            response,
            events,
            failure,
        }
    }

    /// Counts a failure, queues it for [`Registrar::poll_failure`] and returns it.
    fn fail(
        &mut self,
        now: Time,
        source: SocketAddr,
        extension: String,
        reason: FailureReason,
    ) -> AuthFailure {
        self.bans.expire(now);
        let counted = self.bans.record_failure(now, source.ip());
        let failure = AuthFailure {
            at: now,
            source,
            extension,
            reason,
            failures: counted.failures,
            banned: counted.banned,
        };
        if self.pending.len() >= MAX_PENDING_FAILURES {
            self.pending.pop_front();
        }
        self.pending.push_back(failure.clone());
        failure
    }

    /// The next failed authentication not yet taken, oldest first: the runtime logs each
    /// (see [`failure_line`]).
    pub fn poll_failure(&mut self) -> Option<AuthFailure> {
        self.pending.pop_front()
    }

    /// Whether datagrams from `ip` are to be dropped unanswered at `now`.
    pub fn is_banned(&self, now: Time, ip: std::net::IpAddr) -> bool {
        self.bans.is_banned(now, ip)
    }

    /// The bans in force at `now`, the oldest first.
    pub fn bans(&self, now: Time) -> Vec<Ban> {
        self.bans.list(now)
    }

    /// Lifts the ban of `ip` (and forgets its failures); `None` when it was not banned.
    pub fn lift_ban(&mut self, now: Time, ip: std::net::IpAddr) -> Option<Ban> {
        self.bans.lift(now, ip)
    }

    fn register(
        &mut self,
        now: Time,
        request: &Request,
        source: SocketAddr,
        transport: Transport,
        events: &mut Vec<RegistrarEvent>,
    ) -> Result<Response, Refusal> {
        if request.method != Method::Register {
            let mut refusal = Refusal::new(405);
            refusal.headers.push((HeaderKind::Allow, "REGISTER".into()));
            return Err(refusal);
        }
        // Parsed messages have well-formed headers; these fail only when one is absent.
        let bad = |_| Refusal::new(400);
        let to = request.to_header().map_err(bad)?;
        request.from_header().map_err(bad)?;
        let call_id = request.call_id().map_err(bad)?.to_owned();
        let cseq = request.cseq().map_err(bad)?;
        if cseq.method != Method::Register {
            return Err(Refusal::because(400, "CSeq Method Mismatch"));
        }
        let contacts = request.contacts().map_err(bad)?;
        let expires_header = request.expires().map_err(bad)?;

        // §10.3 step 2: no extension is supported, so any Require fails.
        let required: Vec<&str> = request
            .headers
            .get_all(HeaderKind::Require)
            .flat_map(scan::split_list)
            .filter(|t| !t.is_empty())
            .collect();
        if !required.is_empty() {
            let mut refusal = Refusal::new(420);
            refusal
                .headers
                .push((HeaderKind::Unsupported, required.join(", ")));
            return Err(refusal);
        }

        // §10.3 step 5: the address-of-record must be in our domain.
        if let Some(domain) = &self.config.domain {
            let in_domain = to
                .uri
                .as_sip()
                .is_some_and(|u| u.host.to_string().eq_ignore_ascii_case(domain));
            if !in_domain {
                return Err(Refusal::new(404));
            }
        }
        // Unknown, disallowed and wrong look the same (see the module docs).
        let extension = to.uri.user().unwrap_or_default().to_owned();
        let (entry, known) = match self.agents.get(&extension) {
            Some(agent) => (&agent.entry, true),
            None => (&self.decoy, false),
        };
        let allowed = known && entry.allows(source.ip());
        let transported = known && entry.takes(transport);
        // §10.3 steps 3 and 4.
        let failed = match self.auth.authenticate(now, request, entry, !known) {
            Ok(()) if allowed && transported => None,
            // Right credentials from the wrong place or over the wrong transport (or the
            // decoy's, which nobody knows).
            Ok(()) => Some((
                FailureReason::DisallowedNetwork,
                self.auth.refuse(now, request, entry),
            )),
            Err(AuthError::Challenge(refusal)) => return Err(refusal),
            Err(AuthError::Failed(reason, refusal)) => Some((reason, refusal)),
        };
        if let Some((reason, mut refusal)) = failed {
            let reason = if !known {
                FailureReason::UnknownExtension
            } else if !allowed {
                FailureReason::DisallowedNetwork
            } else if !transported {
                FailureReason::WrongTransport
            } else {
                reason
            };
            refusal.failure = Some((reason, extension));
            return Err(refusal);
        }
        let agent = self
            .agents
            .get_mut(&extension)
            .expect("authenticated as a known extension");
        let max = agent.entry.max_expires.unwrap_or(self.config.max_expires);
        let updates = read_contacts(&self.config, &contacts, expires_header, max)?;
        let user_agent = request
            .headers
            .get(HeaderKind::UserAgent)
            .map(str::to_owned);
        let limit = self.config.max_bindings_per_agent;

        let mut next = agent.bindings.clone();
        let mut changes = Vec::new();
        match updates {
            None => {
                // §10.3 step 6, `Contact: *`: every binding goes, each subject to the
                // Call-ID/CSeq rule.
                for binding in &next {
                    if binding.call_id == call_id && cseq.seq <= binding.cseq {
                        return Err(Refusal::because(500, "Out Of Order CSeq"));
                    }
                }
                for binding in next.drain(..) {
                    changes.push(RegistrarEvent::AgentUnregistered {
                        extension: extension.clone(),
                        contact: binding.contact,
                        reason: UnregisterReason::Removed,
                    });
                }
            }
            Some(updates) => {
                // Bindings written by this request: exempt from the CSeq rule against itself
                // (a Contact listed twice) and from eviction.
                let mut touched: Vec<bool> = vec![false; next.len()];
                for update in updates {
                    let found = next.iter().position(|b| {
                        b.matches(&update.contact, update.instance.as_deref(), update.reg_id)
                    });
                    if let Some(index) = found {
                        let old = &next[index];
                        if !touched[index] && old.call_id == call_id && cseq.seq <= old.cseq {
                            // §10.3 step 7: the update is aborted and the request fails.
                            return Err(Refusal::because(500, "Out Of Order CSeq"));
                        }
                    }
                    if update.expires == 0 {
                        if let Some(index) = found {
                            let old = next.remove(index);
                            touched.remove(index);
                            changes.push(RegistrarEvent::AgentUnregistered {
                                extension: extension.clone(),
                                contact: old.contact,
                                reason: UnregisterReason::Removed,
                            });
                        }
                        continue;
                    }
                    let expires = Duration::from_secs(u64::from(update.expires));
                    let nat = binding::behind_nat(&update.contact.uri, source);
                    let fresh = Binding {
                        extension: extension.clone(),
                        contact: update.contact,
                        source,
                        transport,
                        expires_at: Some(now + expires),
                        nat,
                        user_agent: user_agent.clone(),
                        instance: update.instance,
                        reg_id: update.reg_id,
                        q: update.q,
                        registered_at: now,
                        refreshed_at: now,
                        call_id: call_id.clone(),
                        cseq: cseq.seq,
                    };
                    let registered = RegistrarEvent::AgentRegistered {
                        extension: extension.clone(),
                        contact: fresh.contact.clone(),
                        source,
                        transport,
                        nat,
                        expires,
                    };
                    match found {
                        None => {
                            next.push(fresh);
                            touched.push(true);
                            changes.push(registered);
                        }
                        Some(index) => {
                            let old = std::mem::replace(&mut next[index], fresh);
                            touched[index] = true;
                            let same_uri =
                                binding::uri_equivalent(&old.contact.uri, &next[index].contact.uri);
                            if !same_uri {
                                changes.push(RegistrarEvent::AgentUnregistered {
                                    extension: extension.clone(),
                                    contact: old.contact,
                                    reason: UnregisterReason::Replaced,
                                });
                                changes.push(registered);
                            } else if old.call_id != call_id {
                                changes.push(registered);
                            } else {
                                next[index].registered_at = old.registered_at;
                                changes.push(RegistrarEvent::AgentRefreshed {
                                    extension: extension.clone(),
                                    contact: next[index].contact.clone(),
                                    source,
                                    transport,
                                    nat,
                                    expires,
                                });
                            }
                        }
                    }
                }
                if touched.iter().filter(|t| **t).count() > limit {
                    return Err(Refusal::because(403, "Too Many Contacts"));
                }
                while next.len() > limit {
                    let oldest = (0..next.len())
                        .filter(|&i| !touched[i])
                        .min_by_key(|&i| next[i].refreshed_at)
                        .expect("more bindings than the limit, and at most the limit touched");
                    let evicted = next.remove(oldest);
                    touched.remove(oldest);
                    changes.push(RegistrarEvent::AgentUnregistered {
                        extension: extension.clone(),
                        contact: evicted.contact,
                        reason: UnregisterReason::Replaced,
                    });
                }
            }
        }
        // §10.3 step 7: commit only when every Contact was accepted.
        let listed: Vec<String> = next.iter().map(|b| b.listed(now).to_string()).collect();
        agent.bindings = next;
        self.earliest_expiry = self.scan_expiry();
        events.extend(changes);

        let mut response = self.reply(request, 200);
        for contact in listed {
            response.headers.add(HeaderKind::Contact, contact);
        }
        Ok(response)
    }

    /// Removes bindings whose registration period ran out by `now`.
    pub fn expire(&mut self, now: Time) -> Vec<RegistrarEvent> {
        let mut events = Vec::new();
        // Nothing lapses before the earliest expiry (`Binding::is_live`: live while
        // `expires_at > now`); the signalling loop calls this on every timer.
        if self.earliest_expiry.is_none_or(|at| now < at) {
            return events;
        }
        for agent in self.agents.values_mut() {
            agent.bindings.retain(|b| {
                let live = b.is_live(now);
                if !live {
                    events.push(RegistrarEvent::AgentUnregistered {
                        extension: b.extension.clone(),
                        contact: b.contact.clone(),
                        reason: UnregisterReason::Expired,
                    });
                }
                live
            });
        }
        self.earliest_expiry = self.scan_expiry();
        events
    }

    /// Removes the bindings registered over the connection from `source` on `transport`,
    /// which closed. An agent registered over a connection is reached only over it (RFC 5626
    /// §5.3: a request for a failed flow is not sent anywhere else), so its binding goes with
    /// the connection; the phone registers again over a new one.
    pub fn flow_closed(&mut self, source: SocketAddr, transport: Transport) -> Vec<RegistrarEvent> {
        let mut events = Vec::new();
        if !transport.is_reliable() {
            return events;
        }
        for agent in self.agents.values_mut() {
            agent.bindings.retain(|b| {
                let on_flow = b.source == source && b.transport == transport;
                if on_flow {
                    events.push(RegistrarEvent::AgentUnregistered {
                        extension: b.extension.clone(),
                        contact: b.contact.clone(),
                        reason: UnregisterReason::FlowClosed,
                    });
                }
                !on_flow
            });
        }
        self.earliest_expiry = self.scan_expiry();
        events
    }

    /// When the next binding lapses: call [`Registrar::expire`] then.
    pub fn next_expiry(&self) -> Option<Time> {
        self.earliest_expiry
    }

    fn scan_expiry(&self) -> Option<Time> {
        self.agents
            .values()
            .flat_map(|a| a.bindings.iter())
            .filter_map(|b| b.expires_at)
            .min()
    }

    /// The binding to call for `extension` at `now`: the live registration with the highest
    /// `q`, the most recently refreshed among equals; else the static contact, if configured.
    pub fn lookup(&self, extension: &str, now: Time) -> Option<&Binding> {
        self.contacts(extension, now).into_iter().next()
    }

    /// Every binding of `extension` live at `now`, best first (highest `q`, then most recently
    /// refreshed), the static contact last.
    pub fn contacts(&self, extension: &str, now: Time) -> Vec<&Binding> {
        let Some(agent) = self.agents.get(extension) else {
            return Vec::new();
        };
        let mut out: Vec<&Binding> = agent.bindings.iter().filter(|b| b.is_live(now)).collect();
        out.sort_by_key(|b| std::cmp::Reverse((b.q, b.refreshed_at)));
        out.extend(agent.static_binding.as_ref());
        out
    }

    /// Every binding live at `now`, static ones included, by extension (for `GET /agents`).
    pub fn bindings(&self, now: Time) -> Vec<&Binding> {
        self.agents
            .keys()
            .flat_map(|extension| self.contacts(extension, now))
            .collect()
    }

    /// Answers an OPTIONS (an agent's keepalive or capability query, RFC 3261 §11.2) with 200
    /// and `Allow`, `Accept` and `Supported`.
    pub fn handle_options(&mut self, request: &Request) -> Response {
        let mut response = self.reply(request, 200);
        let allow: Vec<&str> = self.config.allow.iter().map(Method::as_str).collect();
        response.headers.add(HeaderKind::Allow, allow.join(", "));
        response.headers.add(HeaderKind::Accept, "application/sdp");
        response
            .headers
            .add(HeaderKind::Supported, self.config.supported.join(", "));
        response
    }

    /// A response with a To tag of our own (RFC 3261 §8.2.6.2).
    fn reply(&mut self, request: &Request, status: u16) -> Response {
        let mut tag = [0u8; 8];
        self.rng.fill_bytes(&mut tag);
        let tag: String = tag.iter().map(|b| format!("{b:02x}")).collect();
        let response = make_response(request, status, Some(&tag));
        self.finish(response)
    }

    fn finish(&self, mut response: Response) -> Response {
        if let Some(server) = &self.config.server {
            response.headers.add(HeaderKind::Server, server.clone());
        }
        response
    }
}

/// Reads each Contact's expiry, q, instance and reg-id; `None` for `Contact: *`.
fn read_contacts(
    config: &RegistrarConfig,
    contacts: &[Contact],
    expires_header: Option<u32>,
    max: Duration,
) -> Result<Option<Vec<ContactUpdate>>, Refusal> {
    if contacts.contains(&Contact::Star) {
        // §10.3 step 6: `*` stands alone and only with Expires: 0.
        if contacts.len() != 1 || expires_header != Some(0) {
            return Err(Refusal::because(400, "Invalid Contact *"));
        }
        return Ok(None);
    }
    let default = u32::try_from(config.default_expires.as_secs()).unwrap_or(u32::MAX);
    let min = u32::try_from(config.min_expires.as_secs()).unwrap_or(u32::MAX);
    let max = u32::try_from(max.as_secs()).unwrap_or(u32::MAX);
    let mut updates = Vec::with_capacity(contacts.len());
    for contact in contacts {
        let Contact::Address(address) = contact else {
            continue;
        };
        let requested = match address.params.value("expires") {
            Some(text) => delta_seconds(text).unwrap_or(default),
            None => expires_header.unwrap_or(default),
        };
        if requested != 0 && requested < min {
            let mut refusal = Refusal::new(423);
            refusal
                .headers
                .push((HeaderKind::MinExpires, min.to_string()));
            return Err(refusal);
        }
        let q = match address.params.get("q") {
            None => 1000,
            Some(value) => value
                .and_then(binding::parse_q)
                .ok_or_else(|| Refusal::because(400, "Invalid q Value"))?,
        };
        // RFC 5626 §4.2: reg-id = 1 to 2^31-1.
        let reg_id = match address.params.get("reg-id") {
            None => None,
            Some(value) => Some(
                value
                    .and_then(|v| v.parse::<u32>().ok())
                    .filter(|n| (1..=0x7fff_ffff).contains(n))
                    .ok_or_else(|| Refusal::because(400, "Invalid reg-id"))?,
            ),
        };
        updates.push(ContactUpdate {
            contact: address.clone(),
            expires: requested.min(max),
            instance: binding::instance_of(address),
            reg_id,
            q,
        });
    }
    Ok(Some(updates))
}

impl Auth {
    /// §10.3 steps 3 and 4: the request carries valid digest credentials of `entry` (of any
    /// user for the decoy, `any_user`).
    fn authenticate(
        &mut self,
        now: Time,
        request: &Request,
        entry: &AgentEntry,
        any_user: bool,
    ) -> Result<(), AuthError> {
        let Some(authorization) = self.ours(request) else {
            return Err(AuthError::Challenge(self.challenge(now, false, entry)));
        };
        let nonce = parse_credentials(authorization)
            .map(|c| c.nonce)
            .unwrap_or_default();
        let ttl = self.digest.config().nonce_lifetime;
        while self
            .spent
            .front()
            .is_some_and(|(_, at)| now.since(*at) > ttl)
        {
            self.spent.pop_front();
        }
        if self.spent.iter().any(|(n, _)| *n == nonce) {
            return Err(AuthError::Failed(
                FailureReason::StaleNonce,
                self.challenge(now, false, entry),
            ));
        }
        let uri = request.uri.to_string();
        let digest_request = DigestRequest {
            method: request.method.as_str(),
            uri: &uri,
            body: &request.body,
        };
        let (extension, secret) = (&entry.extension, &entry.secret);
        let verification = self
            .digest
            .verify(now.0, &digest_request, authorization, |user| {
                (any_user || user == extension).then(|| secret.clone())
            });
        let reason = match verification {
            Verification::Authenticated { .. } => return Ok(()),
            Verification::Stale => {
                return Err(AuthError::Challenge(self.challenge(now, true, entry)));
            }
            // Not ours (a previous run's key): nothing about the password was tried.
            Verification::Rejected(RejectReason::InvalidNonce) => {
                return Err(AuthError::Challenge(self.challenge(now, false, entry)));
            }
            // §10.3 step 4: valid or not, these credentials name someone who may not
            // register this address-of-record.
            Verification::Rejected(RejectReason::UnknownUser) => FailureReason::UsernameMismatch,
            Verification::Rejected(
                RejectReason::WrongResponse | RejectReason::SecretUnusable(_),
            ) => FailureReason::WrongPassword,
            Verification::Rejected(RejectReason::NonceCountReplay { .. }) => {
                FailureReason::StaleNonce
            }
            Verification::Rejected(_) => FailureReason::BadCredentials,
        };
        // RFC 3261 §22.4: refused credentials are challenged again, with a fresh nonce.
        Err(AuthError::Failed(reason, self.refuse(now, request, entry)))
    }

    /// The Authorization value answering our realm, if any.
    fn ours<'r>(&self, request: &'r Request) -> Option<&'r str> {
        let realm = &self.digest.config().realm;
        request
            .headers
            .get_all(HeaderKind::Authorization)
            .find(|v| parse_credentials(v).is_ok_and(|c| &c.realm == realm))
    }

    /// A failed attempt: its nonce is spent, and a fresh challenge answers it.
    fn refuse(&mut self, now: Time, request: &Request, entry: &AgentEntry) -> Refusal {
        let nonce = self
            .ours(request)
            .and_then(|a| parse_credentials(a).ok())
            .map(|c| c.nonce);
        if let Some(nonce) = nonce {
            if !self.spent.iter().any(|(n, _)| *n == nonce) {
                if self.spent.len() >= MAX_SPENT_NONCES {
                    self.spent.pop_front();
                }
                self.spent.push_back((nonce, now));
            }
        }
        self.challenge(now, false, entry)
    }

    /// A 401 with one challenge per offered algorithm the secret can answer, all with one
    /// fresh nonce (RFC 8760 §2.4). An MD5 HA1 cannot answer SHA-256, so it gets MD5 only.
    fn challenge(&mut self, now: Time, stale: bool, entry: &AgentEntry) -> Refusal {
        let nonce = self.digest.nonce(now.0);
        let server = self.digest.config();
        let mut refusal = Refusal::new(401);
        let usable = |algorithm: &Algorithm| match &entry.secret {
            Secret::Password(_) => true,
            Secret::Ha1 { hash, .. } => algorithm.hash() == *hash && !algorithm.is_session(),
        };
        for &algorithm in server.algorithms.iter().filter(|a| usable(a)) {
            let mut challenge =
                DigestChallenge::new(server.realm.clone(), nonce.clone(), algorithm);
            challenge.qop = server.qop.clone();
            challenge.opaque = server.opaque.clone();
            challenge.stale = stale;
            refusal
                .headers
                .push((HeaderKind::WwwAuthenticate, challenge.to_header_value()));
        }
        refusal
    }
}

/// `delta-seconds` (RFC 3261 §25.1): digits; a value beyond 2^32-1 counts as 2^32-1
/// (§20.19 caps it, and the maximum shortens it anyway). `None` for anything else, which
/// §20.19 says to treat as the default.
fn delta_seconds(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(text.parse::<u32>().unwrap_or(u32::MAX))
}
