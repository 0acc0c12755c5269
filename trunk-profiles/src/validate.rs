//! From [`RawConfig`] to [`Config`]: defaults, bounds, cross-field rules. Every problem is
//! collected with its span and key path, so one run reports all of them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ipnet::IpNet;
use toml::Spanned;

use crate::address::{
    parse_cidr, parse_host, parse_host_port, parse_port_range, parse_static_contact,
};
use crate::error::{Diagnostic, Source};
use crate::number::NumberRewrite;
use crate::profile::*;
use crate::raw::*;
use crate::secret::Secret;
use crate::{Config, EnvLookup};

/// Where a key that is absent would have gone: its table's header, or the file's start.
type Anchor = Range<usize>;

pub(crate) struct Checker<'a> {
    src: &'a Source<'a>,
    pub(crate) errors: Vec<Diagnostic>,
}

/// The names `choice` accepts, in the order they are listed in errors.
type Choices<T> = &'static [(&'static str, T)];

const TRANSPORTS: Choices<Transport> = &[
    ("udp", Transport::Udp),
    ("tcp", Transport::Tcp),
    ("tls", Transport::Tls),
];
const CODECS: Choices<Codec> = &[
    ("PCMU", Codec::Pcmu),
    ("PCMA", Codec::Pcma),
    ("opus", Codec::Opus),
];
const DTMF: Choices<DtmfMode> = &[
    ("rfc4733", DtmfMode::Rfc4733),
    ("info", DtmfMode::Info),
    ("inband", DtmfMode::Inband),
];
const SRTP: Choices<SrtpMode> = &[
    ("off", SrtpMode::Off),
    ("optional", SrtpMode::Optional),
    ("required", SrtpMode::Required),
];
const KEEPALIVES: Choices<Keepalive> = &[
    ("options", Keepalive::Options),
    ("crlf", Keepalive::Crlf),
    ("none", Keepalive::Disabled),
];

const POOL_STRATEGIES: Choices<PoolStrategy> = &[
    ("longest_idle", PoolStrategy::LongestIdle),
    ("fewest_calls", PoolStrategy::FewestCalls),
];
const AGENT_MODES: Choices<AgentMode> =
    &[("ring", AgentMode::Ring), ("session", AgentMode::Session)];

/// Whether `agent_mode = "session"` is accepted. The dialer does not implement session mode
/// yet, so the mode and its keys are refused rather than silently ignored; everything else
/// (parsing, the typed fields, value checks) is in place, and enabling it is this line.
const SESSION_MODE_AVAILABLE: bool = true;
/// Registrar bans (`[security]`) are enforced by the dialer's registrar, so the keys are
/// accepted (turning this off again refuses every key rather than ignoring it).
const SECURITY_AVAILABLE: bool = true;

/// DTMF keys (RFC 4733 §3.2 events 0-15) a `hangup_key` may be.
const DTMF_KEYS: &str = "0123456789*#ABCD";

/// Codecs offered when a trunk or agent lists none: G.711 is what every carrier and phone speaks.
const DEFAULT_CODECS: [Codec; 2] = [Codec::Pcmu, Codec::Pcma];

/// Who may register as an agent when `allow` is absent: this host only. Agents on a LAN must
/// list their network, so a dialer on a public address is not open to the world by default.
pub(crate) const DEFAULT_ALLOW: [&str; 2] = ["127.0.0.0/8", "::1/128"];

/// Longest registration or interval anyone needs: one day.
const DAY: u32 = 86_400;

fn expected_list(choices: &[(&str, impl Copy)]) -> String {
    let names: Vec<String> = choices.iter().map(|(n, _)| format!("{n:?}")).collect();
    match names.len() {
        0 | 1 => names.concat(),
        2 => format!("{} or {}", names[0], names[1]),
        n => format!("one of {} or {}", names[..n - 1].join(", "), names[n - 1]),
    }
}

/// RFC 3261 §25.1 `user`: unreserved / escaped / user-unreserved characters.
fn is_sip_user(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c))
}

/// Safe inside a quoted-string (RFC 3261 §25.1) without escaping.
fn is_quotable(s: &str) -> bool {
    !s.chars().any(|c| c.is_control() || c == '"' || c == '\\')
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl<'a> Checker<'a> {
    pub(crate) fn new(src: &'a Source<'a>) -> Self {
        Checker {
            src,
            errors: Vec::new(),
        }
    }

    fn err(&mut self, span: Range<usize>, key: impl Into<String>, message: impl Into<String>) {
        let d = self.src.diagnostic(span, key.into(), message.into());
        self.errors.push(d);
    }

    /// A case-insensitive keyword.
    fn choice<T: Copy>(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        choices: Choices<T>,
    ) -> Option<T> {
        let found = choices
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(v.get_ref()));
        if found.is_none() {
            let msg = format!(
                "unknown value {:?}, expected {}",
                v.get_ref(),
                expected_list(choices)
            );
            self.err(v.span(), key, msg);
        }
        found.map(|(_, t)| *t)
    }

    fn choice_or<T: Copy>(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        choices: Choices<T>,
        default: T,
    ) -> T {
        v.as_ref()
            .and_then(|v| self.choice(v, key, choices))
            .unwrap_or(default)
    }

    /// An integer within `min..=max`; on error the default stands in so checking goes on.
    fn bounded(
        &mut self,
        v: &Option<Spanned<u32>>,
        key: &str,
        default: u32,
        (min, max): (u32, u32),
        unit: &str,
    ) -> u32 {
        match v {
            None => default,
            Some(v) if (min..=max).contains(v.get_ref()) => *v.get_ref(),
            Some(v) => {
                let msg = format!(
                    "{} is out of range, expected {min} to {max} {unit}",
                    v.get_ref()
                );
                self.err(v.span(), key, msg);
                default
            }
        }
    }

    fn codecs(&mut self, v: &Option<Spanned<Vec<Spanned<String>>>>, key: &str) -> Vec<Codec> {
        let Some(list) = v else {
            return DEFAULT_CODECS.to_vec();
        };
        if list.get_ref().is_empty() {
            self.err(
                list.span(),
                key,
                format!(
                    "empty list, expected at least one of {}",
                    expected_list(CODECS).trim_start_matches("one of ")
                ),
            );
            return DEFAULT_CODECS.to_vec();
        }
        let mut out: Vec<Codec> = Vec::new();
        for (i, item) in list.get_ref().iter().enumerate() {
            let k = format!("{key}[{i}]");
            if let Some(c) = self.choice(item, &k, CODECS) {
                if let Some(first) = out.iter().position(|x| *x == c) {
                    self.err(
                        item.span(),
                        k,
                        format!("duplicate codec {:?} (already {key}[{first}])", c.name()),
                    );
                } else {
                    out.push(c);
                }
            }
        }
        if out.is_empty() {
            DEFAULT_CODECS.to_vec()
        } else {
            out
        }
    }

    /// A string that must satisfy `ok`, else `expected` is reported.
    fn text(
        &mut self,
        v: &Spanned<String>,
        key: &str,
        ok: impl Fn(&str) -> bool,
        expected: &str,
    ) -> Option<String> {
        if ok(v.get_ref()) {
            Some(v.get_ref().clone())
        } else {
            self.err(
                v.span(),
                key,
                format!("invalid value {:?}, expected {expected}", v.get_ref()),
            );
            None
        }
    }

    fn opt_text(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        ok: impl Fn(&str) -> bool,
        expected: &str,
    ) -> Option<String> {
        v.as_ref().and_then(|v| self.text(v, key, ok, expected))
    }

    fn socket_addr(&mut self, v: &Spanned<String>, key: &str) -> Option<SocketAddr> {
        match v.get_ref().parse::<SocketAddr>() {
            Ok(a) if a.port() != 0 => Some(a),
            Ok(_) => {
                self.err(
                    v.span(),
                    key,
                    format!("port 0 in {:?}, expected a fixed port 1-65535", v.get_ref()),
                );
                None
            }
            Err(_) => {
                let msg = format!(
                    "invalid address {:?}, expected IP:port like \"0.0.0.0:5060\" or \"[::]:5060\"",
                    v.get_ref()
                );
                self.err(v.span(), key, msg);
                None
            }
        }
    }

    /// A WAV file named relative to the config file's directory; it must exist.
    fn wav(&mut self, v: &Spanned<String>, key: &str, base_dir: &Path) -> Option<PathBuf> {
        let path = base_dir.join(v.get_ref());
        if path.is_file() {
            Some(path)
        } else {
            let msg = format!("file {:?} not found (relative paths are resolved against the config file's directory), expected an existing WAV file", path.display().to_string());
            self.err(v.span(), key, msg);
            None
        }
    }

    /// A directory named relative to the config file's directory. One the dialer only reads
    /// from (`must_exist`) must be an existing directory; one it writes into is checked when
    /// a file is created there.
    fn directory(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        base_dir: &Path,
        must_exist: bool,
    ) -> Option<PathBuf> {
        let v = v.as_ref()?;
        let name = self.text(
            v,
            key,
            |s| !s.is_empty() && !s.chars().any(char::is_control),
            "a directory path without control characters",
        )?;
        let path = base_dir.join(name);
        if must_exist && !path.is_dir() {
            let msg = format!("directory {:?} not found (relative paths are resolved against the config file's directory), expected an existing directory", path.display().to_string());
            self.err(v.span(), key, msg);
            return None;
        }
        Some(path)
    }

    fn opt_wav(
        &mut self,
        v: &Option<Spanned<String>>,
        key: &str,
        base_dir: &Path,
    ) -> Option<PathBuf> {
        v.as_ref().and_then(|v| self.wav(v, key, base_dir))
    }

    /// A list of CIDR networks, each error naming its element.
    fn networks(&mut self, list: &Spanned<Vec<Spanned<String>>>, key: &str) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for (i, item) in list.get_ref().iter().enumerate() {
            match parse_cidr(item.get_ref()) {
                Ok(n) => nets.push(n),
                Err(e) => self.err(item.span(), format!("{key}[{i}]"), e),
            }
        }
        nets
    }

    /// A secret given inline or through an environment variable, but not both.
    #[allow(clippy::too_many_arguments)]
    fn secret(
        &mut self,
        inline: &Option<Spanned<Secret>>,
        env_name: &Option<Spanned<String>>,
        key: &str,
        env_key: &str,
        env: &EnvLookup<'_>,
    ) -> Option<(Secret, Option<String>)> {
        match (inline, env_name) {
            (Some(_), Some(e)) => {
                self.err(
                    e.span(),
                    env_key,
                    format!("both {key} and {env_key} are set, expected only one"),
                );
                None
            }
            (Some(s), None) => {
                if s.get_ref().expose().is_empty() {
                    self.err(s.span(), key, "empty secret, expected a non-empty string");
                    return None;
                }
                Some((s.get_ref().clone(), None))
            }
            (None, Some(e)) => {
                let name = e.get_ref();
                if !is_env_name(name) {
                    self.err(
                        e.span(),
                        env_key,
                        format!("invalid variable name {name:?}, expected letters, digits and _"),
                    );
                    return None;
                }
                match env(name) {
                    Some(v) if !v.is_empty() => Some((Secret::new(v), Some(name.clone()))),
                    Some(_) => {
                        self.err(
                            e.span(),
                            env_key,
                            format!("environment variable {name} is empty, expected the secret"),
                        );
                        None
                    }
                    None => {
                        self.err(e.span(), env_key, format!("environment variable {name} is not set, expected it to hold the secret"));
                        None
                    }
                }
            }
            (None, None) => None,
        }
    }

    /// A PEM file named relative to the config file's directory; it must exist.
    fn pem(&mut self, v: &Option<Spanned<String>>, key: &str, base_dir: &Path) -> Option<PathBuf> {
        let v = v.as_ref()?;
        let path = base_dir.join(v.get_ref());
        if path.is_file() {
            return Some(path);
        }
        let msg = format!("file {:?} not found (relative paths are resolved against the config file's directory), expected an existing PEM file", path.display().to_string());
        self.err(v.span(), key, msg);
        None
    }

    fn tls(&mut self, raw: &RawSip, base_dir: &Path, listen: SocketAddr) -> TlsSettings {
        let tls_listen = raw
            .tls_listen
            .as_ref()
            .and_then(|v| self.socket_addr(v, "sip.tls_listen"));
        let cert = self.pem(&raw.tls_cert, "sip.tls_cert", base_dir);
        let key = self.pem(&raw.tls_key, "sip.tls_key", base_dir);
        let ca = self.pem(&raw.tls_ca, "sip.tls_ca", base_dir);
        let verify = raw.tls_verify.as_ref().is_none_or(|v| *v.get_ref());
        if let Some(v) = &raw.tls_listen {
            if raw.tls_cert.is_none() || raw.tls_key.is_none() {
                self.err(
                    v.span(),
                    "sip.tls_listen",
                    "no tls_cert and tls_key, expected both (PEM files) to accept TLS connections",
                );
            }
            let port = tls_listen.map(|a| a.port());
            if port == Some(listen.port())
                && tls_listen.is_some_and(|a| overlaps(a.ip(), listen.ip()))
            {
                self.err(v.span(), "sip.tls_listen", format!("shares TCP port {} with sip.listen, expected another port (5061 by convention)", listen.port()));
            }
        }
        for (v, name) in [
            (&raw.tls_cert, "sip.tls_cert"),
            (&raw.tls_key, "sip.tls_key"),
        ] {
            if let (Some(v), None) = (v, &raw.tls_listen) {
                self.err(v.span(), name, "without tls_listen, expected tls_listen too: the certificate is only presented to TLS connections the dialer accepts");
            }
        }
        TlsSettings {
            listen: tls_listen,
            cert,
            key,
            ca,
            verify,
        }
    }

    /// `[sip] dns_servers`: `IP:port` of each server, in order.
    fn dns_servers(&mut self, raw: &RawSip) -> Vec<SocketAddr> {
        const KEY: &str = "sip.dns_servers";
        let Some(list) = &raw.dns_servers else {
            return Vec::new();
        };
        if list.get_ref().is_empty() {
            self.err(list.span(), KEY, "empty list, expected at least one DNS server as IP:port, like [\"127.0.0.1:53\"] (leave the key out for the system's resolvers)");
            return Vec::new();
        }
        let mut servers = Vec::new();
        for v in list.get_ref() {
            match v.get_ref().parse::<SocketAddr>() {
                Ok(a) if a.port() != 0 && !a.ip().is_unspecified() && !a.ip().is_multicast() => {
                    servers.push(a)
                }
                _ => {
                    let msg = format!("invalid DNS server {:?}, expected IP:port like \"127.0.0.1:53\" or \"[2001:db8::53]:53\"", v.get_ref());
                    self.err(v.span(), KEY, msg);
                }
            }
        }
        servers
    }

    fn sip(&mut self, raw: &RawSip, base_dir: &Path) -> SipSettings {
        let listen = raw
            .listen
            .as_ref()
            .and_then(|v| self.socket_addr(v, "sip.listen"))
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 5060)));
        let external_ip = raw.external_ip.as_ref().and_then(|v| match v.get_ref().parse::<IpAddr>() {
            Ok(ip) if !ip.is_unspecified() && !ip.is_multicast() && !ip.is_loopback() => Some(ip),
            _ => {
                self.err(v.span(), "sip.external_ip", format!("invalid address {:?}, expected the public unicast IP address, like \"203.0.113.10\"", v.get_ref()));
                None
            }
        });
        let user_agent = self
            .opt_text(
                &raw.user_agent,
                "sip.user_agent",
                |s| !s.is_empty() && !s.chars().any(char::is_control),
                "a non-empty line of text",
            )
            .unwrap_or_else(|| format!("dialer/{}", env!("CARGO_PKG_VERSION")));
        let t1 = self.bounded(&raw.t1_ms, "sip.t1_ms", 500, (50, 10_000), "milliseconds");
        let t2 = self.bounded(
            &raw.t2_ms,
            "sip.t2_ms",
            4_000,
            (100, 60_000),
            "milliseconds",
        );
        let t4 = self.bounded(
            &raw.t4_ms,
            "sip.t4_ms",
            5_000,
            (100, 60_000),
            "milliseconds",
        );
        if t2 < t1 {
            // RFC 3261 §17.1.2.2: retransmit intervals double from T1 up to T2, so T2 >= T1.
            let (span, key) = match (&raw.t2_ms, &raw.t1_ms) {
                (Some(v), _) => (v.span(), "sip.t2_ms"),
                (None, Some(v)) => (v.span(), "sip.t1_ms"),
                (None, None) => (0..0, "sip.t2_ms"),
            };
            self.err(span, key, format!("t2_ms ({t2}) is below t1_ms ({t1}), expected t2_ms >= t1_ms (RFC 3261 §17.1.2.2)"));
        }
        let max_message_bytes = self.bounded(
            &raw.max_message_bytes,
            "sip.max_message_bytes",
            65_535,
            (1_500, 1_048_576),
            "bytes",
        );
        let per_source = self.bounded(
            &raw.tcp_connections_per_source,
            "sip.tcp_connections_per_source",
            16,
            (1, 10_000),
            "connections",
        );
        let idle = self.bounded(
            &raw.tcp_idle_timeout_s,
            "sip.tcp_idle_timeout_s",
            600,
            (0, 86_400),
            "seconds (0 = off)",
        );
        let keepalive = self.bounded(
            &raw.tcp_keepalive_s,
            "sip.tcp_keepalive_s",
            90,
            (0, 3_600),
            "seconds (0 = off)",
        );
        let secs = |s: u32| (s > 0).then(|| Duration::from_secs(s.into()));
        let tls = self.tls(raw, base_dir, listen);
        let dns_servers = self.dns_servers(raw);
        SipSettings {
            tls,
            dns_servers,
            listen,
            external_ip,
            user_agent,
            max_message_bytes,
            tcp: TcpLimits {
                connections_per_source: per_source,
                idle_timeout: secs(idle),
                keepalive: secs(keepalive),
            },
            timers: SipTimers {
                t1: Duration::from_millis(t1.into()),
                t2: Duration::from_millis(t2.into()),
                t4: Duration::from_millis(t4.into()),
            },
        }
    }

    fn trunk(&mut self, raw: &RawTrunk, at: Anchor, p: &str, env: &EnvLookup<'_>) -> Option<Trunk> {
        let k = |f: &str| format!("{p}.{f}");
        let name = self.text(
            &raw.name,
            &k("name"),
            |s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
            },
            "1-64 letters, digits, '.', '_' or '-'",
        );
        let proxy = match parse_host_port(raw.proxy.get_ref()) {
            Ok(hp) => Some(hp),
            Err(e) => {
                self.err(raw.proxy.span(), k("proxy"), e);
                None
            }
        };
        let domain = match &raw.domain {
            Some(d) => match parse_host(d.get_ref()) {
                Ok(h) => Some(h),
                Err(e) => {
                    self.err(d.span(), k("domain"), e);
                    None
                }
            },
            None => proxy.as_ref().map(|hp| hp.host.clone()),
        };
        let user_expected = "a SIP user part (letters, digits and -_.!~*'()&=+$,;?/)";
        let username = self.opt_text(&raw.username, &k("username"), is_sip_user, user_expected);
        let auth_username = self.opt_text(
            &raw.auth_username,
            &k("auth_username"),
            |s| !s.is_empty() && is_quotable(s),
            "a non-empty name without quotes, backslashes or control characters",
        );
        let realm = self.opt_text(
            &raw.realm,
            &k("realm"),
            |s| !s.is_empty() && is_quotable(s),
            "a non-empty realm without quotes, backslashes or control characters",
        );
        let password = self.secret(
            &raw.password,
            &raw.password_env,
            &k("password"),
            &k("password_env"),
            env,
        );
        let password_given = raw.password.is_some() || raw.password_env.is_some();
        let register = raw.register.unwrap_or(true);

        if register && raw.username.is_none() {
            self.err(
                at.clone(),
                k("username"),
                "missing key, expected username for a trunk with register = true",
            );
        }
        if register && !password_given {
            self.err(
                at.clone(),
                k("password"),
                "missing key, expected password or password_env for a trunk with register = true",
            );
        }
        if password_given && raw.username.is_none() && raw.auth_username.is_none() {
            self.err(
                at.clone(),
                k("auth_username"),
                "missing key, expected username or auth_username to go with the password",
            );
        }
        let credentials = password.map(|(password, password_env)| Credentials {
            auth_username: auth_username
                .clone()
                .or_else(|| username.clone())
                .unwrap_or_default(),
            password,
            password_env,
            realm: realm.clone(),
        });
        if raw.realm.is_some() && !password_given {
            let span = raw.realm.as_ref().map_or(at.clone(), |r| r.span());
            self.err(
                span,
                k("realm"),
                "realm without password, expected password or password_env too",
            );
        }

        let expires = self.bounded(&raw.expires, &k("expires"), 600, (60, DAY), "seconds");
        let transport = self.choice_or(&raw.transport, &k("transport"), TRANSPORTS, Transport::Udp);
        let codecs = self.codecs(&raw.codecs, &k("codecs"));
        let caller_id = self.opt_text(
            &raw.caller_id,
            &k("caller_id"),
            is_sip_user,
            "a number like \"+15550100\" or a SIP user part",
        );
        let caller_name = self.opt_text(
            &raw.caller_name,
            &k("caller_name"),
            |s| !s.is_empty() && is_quotable(s),
            "a display name without quotes, backslashes or control characters",
        );
        let pai = raw.pai.unwrap_or(false);
        if pai && raw.caller_id.is_none() {
            self.err(
                at.clone(),
                k("caller_id"),
                "missing key, expected caller_id when pai = true (P-Asserted-Identity carries it)",
            );
        }
        let max_channels = raw
            .max_channels
            .as_ref()
            .map(|_| {
                self.bounded(
                    &raw.max_channels,
                    &k("max_channels"),
                    1,
                    (1, 100_000),
                    "calls",
                )
            })
            .and_then(NonZeroU32::new);
        let max_cps = raw
            .max_cps
            .as_ref()
            .map(|_| {
                self.bounded(
                    &raw.max_cps,
                    &k("max_cps"),
                    1,
                    (1, 10_000),
                    "calls per second",
                )
            })
            .and_then(NonZeroU32::new);
        let max_queue = self.bounded(
            &raw.max_queue,
            &k("max_queue"),
            DEFAULT_MAX_QUEUE,
            (0, 100_000),
            "calls",
        );
        if let (Some(v), None, None) = (&raw.max_queue, &raw.max_channels, &raw.max_cps) {
            self.err(
                v.span(),
                k("max_queue"),
                "max_queue has no effect without a limit to wait for, expected max_channels or max_cps too",
            );
        }

        let digits = |s: &str| s.chars().all(|c| c.is_ascii_digit());
        let numbering = NumberRewrite {
            strip_prefix: self
                .opt_text(&raw.strip_prefix, &k("strip_prefix"), digits, "digits")
                .unwrap_or_default(),
            e164: raw.e164.unwrap_or(false),
            country_code: self.opt_text(
                &raw.country_code,
                &k("country_code"),
                |s| (1..=3).contains(&s.len()) && digits(s) && !s.starts_with('0'),
                "a country calling code of 1-3 digits without '+', like \"1\" or \"44\"",
            ),
            national_prefix: self
                .opt_text(
                    &raw.national_prefix,
                    &k("national_prefix"),
                    digits,
                    "digits",
                )
                .unwrap_or_else(|| "0".into()),
            international_prefix: self
                .opt_text(
                    &raw.international_prefix,
                    &k("international_prefix"),
                    digits,
                    "digits",
                )
                .unwrap_or_else(|| "00".into()),
            strip_plus: raw.strip_plus.unwrap_or(false),
            dial_prefix: self
                .opt_text(
                    &raw.dial_prefix,
                    &k("dial_prefix"),
                    |s| s.chars().all(|c| c.is_ascii_digit() || "*#+".contains(c)),
                    "digits, '*', '#' or '+'",
                )
                .unwrap_or_default(),
        };
        if raw.country_code.is_some() && !numbering.e164 {
            let span = raw.country_code.as_ref().map_or(at.clone(), |c| c.span());
            self.err(
                span,
                k("country_code"),
                "country_code has no effect without e164 = true, expected e164 = true too",
            );
        }

        let keepalive = self.choice_or(
            &raw.keepalive,
            &k("keepalive"),
            KEEPALIVES,
            Keepalive::Options,
        );
        let keepalive_interval = self.bounded(
            &raw.keepalive_interval_s,
            &k("keepalive_interval_s"),
            30,
            (5, 3_600),
            "seconds",
        );
        let retry_min = self.bounded(
            &raw.register_retry_min_s,
            &k("register_retry_min_s"),
            5,
            (1, 3_600),
            "seconds",
        );
        let retry_max = self.bounded(
            &raw.register_retry_max_s,
            &k("register_retry_max_s"),
            300.max(retry_min),
            (1, DAY),
            "seconds",
        );
        if retry_max < retry_min {
            let span = raw
                .register_retry_max_s
                .as_ref()
                .map_or(at.clone(), |v| v.span());
            self.err(
                span,
                k("register_retry_max_s"),
                format!(
                    "{retry_max} is below register_retry_min_s ({retry_min}), expected max >= min"
                ),
            );
        }
        let dtmf = self.choice_or(&raw.dtmf, &k("dtmf"), DTMF, DtmfMode::Rfc4733);
        let srtp = self.choice_or(&raw.srtp, &k("srtp"), SRTP, SrtpMode::Off);
        // RFC 4028 §4: Min-SE MUST NOT be less than 90 seconds.
        let min_se = self.bounded(&raw.min_se_s, &k("min_se_s"), 90, (90, DAY), "seconds");
        let session_expires = match &raw.session_expires_s {
            Some(v) if *v.get_ref() == 0 => None,
            Some(v) if *v.get_ref() < min_se || *v.get_ref() > DAY => {
                self.err(v.span(), k("session_expires_s"), format!("{} is out of range, expected 0 (off) or {min_se} (min_se_s) to {DAY} seconds (RFC 4028 §4)", v.get_ref()));
                None
            }
            Some(v) => Some(*v.get_ref()),
            None => Some(1_800.max(min_se)),
        };
        let redirect_hosts = self.redirect_hosts(raw, p, proxy.as_ref());

        Some(Trunk {
            name: name?,
            proxy: proxy?,
            proxy_port_given: crate::address::names_port(raw.proxy.get_ref()),
            domain: domain?,
            username,
            credentials,
            register,
            expires: secs(expires),
            transport,
            codecs,
            caller_id,
            caller_name,
            pai,
            max_channels,
            max_cps,
            max_queue,
            numbering,
            keepalive,
            keepalive_interval: secs(keepalive_interval),
            register_retry_min: secs(retry_min),
            register_retry_max: secs(retry_max),
            dtmf,
            srtp,
            session_expires: session_expires.map(secs),
            min_se: secs(min_se),
            redirect_hosts,
        })
    }

    /// `redirect_hosts`: DNS names or IP literals (IPv6 in brackets), no ports, each once;
    /// absent, the proxy's host only; `[]` follows no redirect at all.
    fn redirect_hosts(
        &mut self,
        raw: &RawTrunk,
        p: &str,
        proxy: Option<&crate::address::HostPort>,
    ) -> Vec<crate::address::Host> {
        let Some(list) = &raw.redirect_hosts else {
            return proxy.map(|hp| vec![hp.host.clone()]).unwrap_or_default();
        };
        let mut hosts = Vec::new();
        for (i, item) in list.get_ref().iter().enumerate() {
            let key = format!("{p}.redirect_hosts[{i}]");
            match parse_host(item.get_ref()) {
                Ok(host) if hosts.contains(&host) => {
                    let msg = format!("duplicate host \"{host}\", expected each host once");
                    self.err(item.span(), key, msg);
                }
                Ok(host) => hosts.push(host),
                Err(why) => self.err(item.span(), key, why),
            }
        }
        hosts
    }

    fn registrar(&mut self, raw: &RawRegistrar) -> Registrar {
        let domain = raw
            .domain
            .as_ref()
            .and_then(|d| match parse_host(d.get_ref()) {
                Ok(h) => Some(h.to_string()),
                Err(e) => {
                    self.err(d.span(), "registrar.domain", e);
                    None
                }
            });
        let realm = self
            .opt_text(
                &raw.realm,
                "registrar.realm",
                |s| !s.is_empty() && is_quotable(s),
                "a non-empty realm without quotes, backslashes or control characters",
            )
            .or_else(|| domain.clone())
            .unwrap_or_else(|| "dialer".to_string());
        let min = self.bounded(
            &raw.min_expires,
            "registrar.min_expires",
            60,
            (1, DAY),
            "seconds",
        );
        let max = self.bounded(
            &raw.max_expires,
            "registrar.max_expires",
            3_600.max(min),
            (1, DAY),
            "seconds",
        );
        if max < min {
            let span = raw.max_expires.as_ref().map_or(0..0, |v| v.span());
            self.err(
                span,
                "registrar.max_expires",
                format!("{max} is below min_expires ({min}), expected max_expires >= min_expires"),
            );
        }
        let nonce_ttl = self.bounded(
            &raw.nonce_ttl_s,
            "registrar.nonce_ttl_s",
            300,
            (10, DAY),
            "seconds",
        );
        Registrar {
            domain,
            realm,
            min_expires: secs(min),
            max_expires: secs(max.max(min)),
            nonce_ttl: secs(nonce_ttl),
        }
    }

    fn agent(
        &mut self,
        raw: &RawAgent,
        at: Anchor,
        p: &str,
        registrar: &Registrar,
        tls_listen: bool,
    ) -> Option<Agent> {
        let k = |f: &str| format!("{p}.{f}");
        let extension = self.text(
            &raw.extension,
            &k("extension"),
            |s| {
                !s.is_empty()
                    && s.len() <= 64
                    && s.chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._+-".contains(c))
            },
            "1-64 letters, digits, '.', '_', '+' or '-'",
        );
        let secret = match (&raw.password, &raw.a1_hash) {
            (Some(_), Some(h)) => {
                self.err(
                    h.span(),
                    k("a1_hash"),
                    "both password and a1_hash are set, expected only one",
                );
                None
            }
            (Some(pw), None) if pw.get_ref().expose().is_empty() => {
                self.err(
                    pw.span(),
                    k("password"),
                    "empty secret, expected a non-empty string",
                );
                None
            }
            (Some(pw), None) => Some(AgentSecret::Password(pw.get_ref().clone())),
            (None, Some(h)) => {
                let v = h.get_ref().expose();
                if v.len() == 32
                    && v.bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                {
                    Some(AgentSecret::A1Hash(h.get_ref().clone()))
                } else {
                    // The value is a secret: describe it, never echo it.
                    self.err(h.span(), k("a1_hash"), format!("invalid value (hidden, {} characters), expected 32 lowercase hex digits: md5(\"EXTENSION:{}:PASSWORD\")", v.chars().count(), registrar.realm));
                    None
                }
            }
            (None, None) => {
                self.err(
                    at.clone(),
                    k("password"),
                    "missing key, expected password or a1_hash",
                );
                None
            }
        };
        let allow = match &raw.allow {
            None => DEFAULT_ALLOW
                .iter()
                .map(|c| c.parse().expect("DEFAULT_ALLOW holds valid CIDR literals"))
                .collect(),
            Some(list) => {
                if list.get_ref().is_empty() {
                    self.err(
                        list.span(),
                        k("allow"),
                        "empty list, expected at least one CIDR like \"192.168.1.0/24\"",
                    );
                }
                self.networks(list, &k("allow"))
            }
        };
        let codecs = self.codecs(&raw.codecs, &k("codecs"));
        let dtmf = self.choice_or(&raw.dtmf, &k("dtmf"), DTMF, DtmfMode::Rfc4733);
        let srtp = self.choice_or(&raw.srtp, &k("srtp"), SRTP, SrtpMode::Off);
        let transport = raw
            .transport
            .as_ref()
            .and_then(|v| self.choice(v, &k("transport"), TRANSPORTS));
        if let Some(v) = &raw.transport {
            if raw.contact.is_some() {
                self.err(
                    v.span(),
                    k("transport"),
                    "with a static contact, expected no transport key: the contact names its \
                     transport (;transport=tcp, or a sips: URI for TLS)",
                );
            } else if transport == Some(Transport::Tls) && !tls_listen {
                self.err(
                    v.span(),
                    k("transport"),
                    "\"tls\" without sip.tls_listen, expected sip.tls_listen (with tls_cert and \
                     tls_key) for the agent to register over",
                );
            }
        }
        let contact = raw
            .contact
            .as_ref()
            .and_then(|c| match parse_static_contact(c.get_ref()) {
                Ok(sc) => Some(sc),
                Err(e) => {
                    self.err(c.span(), k("contact"), e);
                    None
                }
            });
        let min = registrar.min_expires.as_secs() as u32;
        let max_expires = self.bounded(
            &raw.max_expires,
            &k("max_expires"),
            registrar.max_expires.as_secs() as u32,
            (min, DAY),
            "seconds (registrar.min_expires to one day)",
        );
        Some(Agent {
            extension: extension?,
            secret: secret?,
            allow,
            codecs,
            dtmf,
            srtp,
            transport,
            contact,
            max_expires: secs(max_expires),
        })
    }

    fn media(&mut self, raw: &RawMedia, base_dir: &Path) -> Media {
        let rtp_ports = raw
            .rtp_ports
            .as_ref()
            .and_then(|v| match parse_port_range(v.get_ref()) {
                Ok(r) => Some(r),
                Err(e) => {
                    self.err(v.span(), "media.rtp_ports", e);
                    None
                }
            })
            .unwrap_or(crate::address::PortRange {
                first: 20_000,
                last: 29_999,
            });
        let ringback = self.opt_wav(&raw.ringback, "media.ringback", base_dir);
        let media_timeout = match &raw.media_timeout_s {
            Some(v) if *v.get_ref() == 0 => None,
            other => Some(secs(self.bounded(
                other,
                "media.media_timeout_s",
                30,
                (0, 3_600),
                "seconds (0 disables)",
            ))),
        };
        let latch_window = self.bounded(
            &raw.latch_window_ms,
            "media.latch_window_ms",
            DEFAULT_LATCH_WINDOW_MS,
            (0, 60_000),
            "milliseconds (0 never latches)",
        );
        let record_dir = self.directory(&raw.record_dir, "media.record_dir", base_dir, false);
        let ringback_dir = self.directory(&raw.ringback_dir, "media.ringback_dir", base_dir, true);
        let pcap_dir = self.directory(&raw.pcap_dir, "media.pcap_dir", base_dir, false);
        Media {
            rtp_ports,
            ringback,
            media_timeout,
            latch_window: Duration::from_millis(latch_window.into()),
            record_dir,
            ringback_dir,
            pcap_dir,
        }
    }

    fn pool(
        &mut self,
        raw: &RawPool,
        p: &str,
        extensions: &HashMap<&str, usize>,
        base_dir: &Path,
    ) -> Option<Pool> {
        let k = |f: &str| format!("{p}.{f}");
        let name = self.text(
            &raw.name,
            &k("name"),
            |s| !s.is_empty() && !s.chars().any(char::is_control),
            "a non-empty name without control characters",
        );

        let list = raw.agents.get_ref();
        if list.is_empty() {
            self.err(
                raw.agents.span(),
                k("agents"),
                "empty list, expected at least one [[agent]] extension",
            );
        }
        let mut agents: Vec<String> = Vec::new();
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, item) in list.iter().enumerate() {
            let key = format!("{}[{i}]", k("agents"));
            let ext = item.get_ref().as_str();
            if let Some(first) = seen.get(ext) {
                let msg = format!(
                    "duplicate agent {ext:?} (already {}[{first}]), expected each extension once",
                    k("agents")
                );
                self.err(item.span(), key, msg);
                continue;
            }
            seen.insert(ext, i);
            if extensions.contains_key(ext) {
                agents.push(ext.to_string());
            } else {
                let msg = format!(
                    "unknown agent {ext:?}, expected the extension of an [[agent]] in this file"
                );
                self.err(item.span(), key, msg);
            }
        }

        let strategy = self.choice_or(
            &raw.strategy,
            &k("strategy"),
            POOL_STRATEGIES,
            PoolStrategy::LongestIdle,
        );
        let wrap_up = self.bounded(&raw.wrap_up_s, &k("wrap_up_s"), 0, (0, 3_600), "seconds");
        let max_no_answer = self.bounded(
            &raw.max_no_answer,
            &k("max_no_answer"),
            3,
            (1, 100),
            "unanswered offers in a row",
        );
        let agent_attempts = self.bounded(
            &raw.agent_attempts,
            &k("agent_attempts"),
            2,
            (1, 10),
            "agents per answered customer",
        );
        let agent_mode = self.choice_or(
            &raw.agent_mode,
            &k("agent_mode"),
            AGENT_MODES,
            AgentMode::Ring,
        );
        if agent_mode == AgentMode::Session && !SESSION_MODE_AVAILABLE {
            let span = raw.agent_mode.as_ref().map_or(0..0, |v| v.span());
            self.err(
                span,
                k("agent_mode"),
                "\"session\" is not available yet, expected \"ring\"",
            );
        }
        let abandon_after = raw
            .abandon_after_ms
            .as_ref()
            .map(|_| {
                self.bounded(
                    &raw.abandon_after_ms,
                    &k("abandon_after_ms"),
                    1,
                    (1, 60_000),
                    "milliseconds",
                )
            })
            .map(|ms| Duration::from_millis(ms.into()));
        let abandon_message = self.opt_wav(&raw.abandon_message, &k("abandon_message"), base_dir);

        // Session mode's keys: their values are checked whatever the mode, so enabling the
        // mode needs no new checks.
        let login_extension = self.opt_text(
            &raw.login_extension,
            &k("login_extension"),
            is_sip_user,
            "an extension to dial, like \"*55\" (letters, digits and -_.!~*'()&=+$,;?/)",
        );
        if agent_mode == AgentMode::Session {
            // The dialer takes no INVITE from agents yet: a session starts with
            // POST /agents/{ext}/login.
            if let Some(v) = &raw.login_extension {
                self.err(
                    v.span(),
                    k("login_extension"),
                    "logging in by dialling an extension is not available yet, expected no \
                     login_extension (log agents in with POST /agents/{ext}/login)",
                );
            }
        }
        let hangup_key = raw.hangup_key.as_ref().and_then(|v| {
            let mut chars = v.get_ref().chars().map(|c| c.to_ascii_uppercase());
            match (chars.next(), chars.next()) {
                (Some(c), None) if DTMF_KEYS.contains(c) => Some(c),
                _ => {
                    let msg = format!(
                        "invalid value {:?}, expected one DTMF key: 0-9, *, # or A-D",
                        v.get_ref()
                    );
                    self.err(v.span(), k("hangup_key"), msg);
                    None
                }
            }
        });
        let connect_tone = self.opt_wav(&raw.connect_tone, &k("connect_tone"), base_dir);
        let idle_audio = self.opt_wav(&raw.idle_audio, &k("idle_audio"), base_dir);
        if agent_mode != AgentMode::Session {
            let session_keys = [
                ("login_extension", &raw.login_extension),
                ("hangup_key", &raw.hangup_key),
                ("connect_tone", &raw.connect_tone),
                ("idle_audio", &raw.idle_audio),
            ];
            for (key, v) in session_keys {
                if let Some(v) = v {
                    let msg = if SESSION_MODE_AVAILABLE {
                        format!("only with agent_mode = \"session\", expected agent_mode = \"session\" or no {key}")
                    } else {
                        format!("only with agent_mode = \"session\", which is not available yet, expected no {key}")
                    };
                    self.err(v.span(), k(key), msg);
                }
            }
        }

        Some(Pool {
            name: name?,
            agents,
            strategy,
            wrap_up: secs(wrap_up),
            max_no_answer,
            agent_attempts,
            agent_mode,
            abandon_after,
            abandon_message,
            login_paused: raw.login_paused.unwrap_or(false),
            login_extension,
            hangup_key,
            connect_tone,
            idle_audio,
        })
    }

    fn security(&mut self, raw: &RawSecurity) -> Security {
        if !SECURITY_AVAILABLE {
            let spans = [
                (
                    "max_auth_failures",
                    raw.max_auth_failures.as_ref().map(|v| v.span()),
                ),
                ("ban_window_s", raw.ban_window_s.as_ref().map(|v| v.span())),
                ("ban_s", raw.ban_s.as_ref().map(|v| v.span())),
                ("ban_exempt", raw.ban_exempt.as_ref().map(|v| v.span())),
            ];
            for (key, span) in spans {
                if let Some(span) = span {
                    self.err(
                        span,
                        format!("security.{key}"),
                        "registrar bans are not available yet, expected no [security] keys",
                    );
                }
            }
        }
        let max_auth_failures = self.bounded(
            &raw.max_auth_failures,
            "security.max_auth_failures",
            DEFAULT_MAX_AUTH_FAILURES,
            (1, 1_000),
            "failures",
        );
        let ban_window = self.bounded(
            &raw.ban_window_s,
            "security.ban_window_s",
            DEFAULT_BAN_WINDOW_S,
            (1, DAY),
            "seconds",
        );
        let ban = self.bounded(
            &raw.ban_s,
            "security.ban_s",
            DEFAULT_BAN_S,
            (0, 30 * DAY),
            "seconds (0 logs failures and bans nobody)",
        );
        let ban_exempt = raw
            .ban_exempt
            .as_ref()
            .map(|list| self.networks(list, "security.ban_exempt"))
            .unwrap_or_default();
        let max_requests_per_s = self.bounded(
            &raw.max_requests_per_s,
            "security.max_requests_per_s",
            DEFAULT_MAX_REQUESTS_PER_S,
            (1, 100_000),
            "requests per second",
        );
        let max_server_transactions = self.bounded(
            &raw.max_server_transactions,
            "security.max_server_transactions",
            DEFAULT_MAX_SERVER_TRANSACTIONS,
            (100, 1_000_000),
            "transactions",
        );
        Security {
            max_auth_failures,
            ban_window: secs(ban_window),
            ban: secs(ban),
            ban_exempt,
            max_requests_per_s,
            max_server_transactions,
        }
    }

    fn calls(&mut self, raw: &RawCalls) -> Calls {
        // Ten minutes is beyond any carrier's own ring timeout (commonly 60-180 s); a longer
        // bound would only hold a channel that will never be answered.
        let originate = self.bounded(
            &raw.originate_timeout_s,
            "calls.originate_timeout_s",
            DEFAULT_ORIGINATE_TIMEOUT_S,
            (1, 600),
            "seconds",
        );
        let agent_ring = self.bounded(
            &raw.agent_ring_timeout_s,
            "calls.agent_ring_timeout_s",
            DEFAULT_AGENT_RING_TIMEOUT_S,
            (1, 600),
            "seconds",
        );
        Calls {
            originate_timeout: secs(originate),
            agent_ring_timeout: secs(agent_ring),
        }
    }

    fn api(&mut self, raw: &RawApi, env: &EnvLookup<'_>) -> Api {
        let listen = raw
            .listen
            .as_ref()
            .and_then(|v| self.socket_addr(v, "api.listen"))
            .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 8021)));
        let token = self.secret(
            &raw.token,
            &raw.token_env,
            "api.token",
            "api.token_env",
            env,
        );
        let token = token.and_then(|(t, var)| {
            if t.expose().chars().count() < 16 {
                let (span, key) = match (&raw.token, &raw.token_env) {
                    (Some(v), _) => (v.span(), "api.token"),
                    (None, Some(v)) => (v.span(), "api.token_env"),
                    (None, None) => (0..0, "api.token"),
                };
                self.err(
                    span,
                    key,
                    "token is too short (hidden), expected at least 16 characters",
                );
                None
            } else {
                Some((t, var))
            }
        });
        let given = raw.token.is_some() || raw.token_env.is_some();
        if !listen.ip().is_loopback() && !given {
            let span = raw.listen.as_ref().map_or(0..0, |v| v.span());
            self.err(span, "api.listen", format!("{listen} is not a loopback address, expected api.token or api.token_env to protect it (or a 127.0.0.1 / [::1] address)"));
        }
        let (token, token_env) = match token {
            Some((t, var)) => (Some(t), var),
            None => (None, None),
        };
        let mut allowed_hosts: Vec<String> = Vec::new();
        if let Some(list) = &raw.allowed_hosts {
            for (i, item) in list.get_ref().iter().enumerate() {
                let key = format!("api.allowed_hosts[{i}]");
                match allowed_host(item.get_ref()) {
                    Ok(host) if allowed_hosts.contains(&host) => {
                        let msg = format!("duplicate host {host:?}, expected each host once");
                        self.err(item.span(), key, msg);
                    }
                    Ok(host) => allowed_hosts.push(host),
                    Err(why) => {
                        let msg = format!("invalid value {:?}: {why}, expected a host name like \"dialer.example.com\" or host:port like \"dialer.example.com:8443\"", item.get_ref());
                        self.err(item.span(), key, msg);
                    }
                }
            }
        }
        Api {
            listen,
            token,
            token_env,
            allowed_hosts,
        }
    }
}

/// One `[api] allowed_hosts` entry, lowercased: a DNS name or an IP literal (IPv6 in brackets),
/// with an optional port; never a scheme, path, user or wildcard.
fn allowed_host(entry: &str) -> Result<String, String> {
    if entry.is_empty() {
        return Err("empty".into());
    }
    if entry
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "/@*?#\\".contains(c))
    {
        return Err("a host, not a URL or pattern (no scheme, path, user or wildcard)".into());
    }
    let (host, port) = if let Some(rest) = entry.strip_prefix('[') {
        let (ip, after) = rest
            .split_once(']')
            .ok_or("an IPv6 address without its closing ']'")?;
        ip.parse::<std::net::Ipv6Addr>()
            .map_err(|_| format!("{ip:?} is not an IPv6 address"))?;
        match after {
            "" => (&entry[..ip.len() + 2], None),
            _ => match after.strip_prefix(':') {
                Some(port) => (&entry[..ip.len() + 2], Some(port)),
                None => return Err("only :port may follow ']'".into()),
            },
        }
    } else {
        match entry.split_once(':') {
            Some((_, port)) if port.contains(':') => {
                return Err("an IPv6 address needs brackets, as in \"[::1]:8021\"".into())
            }
            Some((host, port)) => (host, Some(port)),
            None => (entry, None),
        }
    };
    if let Some(port) = port {
        match port.parse::<u16>() {
            Ok(p) if p != 0 && !port.starts_with('0') => {}
            _ => return Err(format!("port {port:?} is not 1-65535")),
        }
    }
    if !host.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err() {
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        };
        if host.len() > 253 || !host.split('.').all(label_ok) {
            return Err(format!("{host:?} is not a DNS name"));
        }
        if host
            .split('.')
            .all(|l| l.chars().all(|c| c.is_ascii_digit()))
        {
            return Err(format!("{host:?} is not an IPv4 address"));
        }
    }
    Ok(entry.to_ascii_lowercase())
}

fn secs(s: u32) -> Duration {
    Duration::from_secs(s.into())
}

/// Whether two listen addresses can collide on one port number.
fn overlaps(a: IpAddr, b: IpAddr) -> bool {
    a == b || a.is_unspecified() || b.is_unspecified()
}

pub(crate) fn build(
    raw: RawConfig,
    src: &Source<'_>,
    base_dir: &Path,
    env: &EnvLookup<'_>,
) -> Result<Config, Vec<Diagnostic>> {
    let mut c = Checker::new(src);
    let sip = c.sip(&raw.sip, base_dir);
    let registrar = c.registrar(&raw.registrar);

    if raw.trunk.is_empty() {
        c.err(
            0..0,
            "trunk",
            "no [[trunk]] table, expected at least one trunk to dial out through",
        );
    }
    let mut trunks = Vec::new();
    let mut names: HashMap<String, usize> = HashMap::new();
    for (i, t) in raw.trunk.iter().enumerate() {
        let p = format!("trunk[{i}]");
        let lower = t.get_ref().name.get_ref().to_ascii_lowercase();
        if let Some(first) = names.get(&lower) {
            let msg = format!(
                "duplicate trunk name {:?} (already trunk[{first}].name), expected unique names",
                t.get_ref().name.get_ref()
            );
            c.err(t.get_ref().name.span(), format!("{p}.name"), msg);
        } else {
            names.insert(lower, i);
        }
        if let Some(trunk) = c.trunk(t.get_ref(), t.span(), &p, env) {
            trunks.push(trunk);
        }
    }

    let mut agents = Vec::new();
    let mut extensions: HashMap<&str, usize> = HashMap::new();
    for (i, a) in raw.agent.iter().enumerate() {
        let p = format!("agent[{i}]");
        let ext = a.get_ref().extension.get_ref().as_str();
        if let Some(first) = extensions.get(ext) {
            let msg = format!("duplicate extension {ext:?} (already agent[{first}].extension), expected unique extensions");
            c.err(a.get_ref().extension.span(), format!("{p}.extension"), msg);
        } else {
            extensions.insert(ext, i);
        }
        let tls = sip.tls.listen.is_some();
        if let Some(agent) = c.agent(a.get_ref(), a.span(), &p, &registrar, tls) {
            agents.push(agent);
        }
    }

    let mut pools = Vec::new();
    let mut pool_names: HashMap<&str, usize> = HashMap::new();
    for (i, pl) in raw.pool.iter().enumerate() {
        let p = format!("pool[{i}]");
        let name = pl.get_ref().name.get_ref().as_str();
        if let Some(first) = pool_names.get(name) {
            let msg = format!(
                "duplicate pool name {name:?} (already pool[{first}].name), expected unique names"
            );
            c.err(pl.get_ref().name.span(), format!("{p}.name"), msg);
        } else {
            pool_names.insert(name, i);
        }
        if let Some(pool) = c.pool(pl.get_ref(), &p, &extensions, base_dir) {
            pools.push(pool);
        }
    }

    let media = c.media(&raw.media, base_dir);
    if media.rtp_ports.contains(sip.listen.port()) {
        let span = raw.media.rtp_ports.as_ref().map_or(0..0, |v| v.span());
        c.err(
            span,
            "media.rtp_ports",
            format!(
                "range {} contains the SIP port {}, expected a range that leaves it out",
                media.rtp_ports,
                sip.listen.port()
            ),
        );
    }
    let calls = c.calls(&raw.calls);
    let security = c.security(&raw.security);
    let api = c.api(&raw.api, env);
    let store = Store {
        path: c
            .directory(&raw.store.path, "store.path", base_dir, false)
            .unwrap_or_else(|| base_dir.join("dialer.db")),
    };
    if api.listen.port() == sip.listen.port() && overlaps(api.listen.ip(), sip.listen.ip()) {
        let span = raw
            .api
            .listen
            .as_ref()
            .or(raw.sip.listen.as_ref())
            .map_or(0..0, |v| v.span());
        c.err(
            span,
            "api.listen",
            format!(
                "{} shares TCP port {} with sip.listen, expected another port",
                api.listen,
                api.listen.port()
            ),
        );
    }

    if c.errors.is_empty() {
        Ok(Config {
            name: src.name.to_string(),
            sip,
            trunks,
            agents,
            pools,
            registrar,
            media,
            api,
            calls,
            security,
            store,
        })
    } else {
        Err(c.errors)
    }
}
