//! The dialer's configuration: one TOML file (`dialer.toml`) describing its SIP endpoint, the
//! trunks it dials out through, the agents that register to it and the pools they form, media,
//! the control API and how failed authentications are banned.
//!
//! # Use
//! The dialer loads the file once at start-up and hands the typed parts to its cores:
//! ```
//! # use trunk_profiles::Config;
//! let text = r#"
//! [[trunk]]
//! name = "carrier"
//! proxy = "sip.example.net"
//! username = "dialer"
//! password_env = "CARRIER_PASSWORD"
//! "#;
//! let env = |name: &str| (name == "CARRIER_PASSWORD").then(|| "s3cret".to_string());
//! let config = Config::from_str_named(text, "dialer.toml", &env).unwrap();
//! let trunk = config.trunk("carrier").unwrap();
//! assert_eq!(trunk.proxy.to_string(), "sip.example.net:5060");
//! assert_eq!(trunk.credentials.as_ref().unwrap().password.expose(), "s3cret");
//! // Secrets never print.
//! assert!(!format!("{config:?}").contains("s3cret"));
//! assert!(!config.effective_settings().contains("s3cret"));
//! ```
//! There is no drive loop: [`Config::load`] (or [`Config::from_str_named`] for tests) runs
//! parse -> validate -> typed [`Config`] in one call, and `dialer config check` prints
//! [`Config::effective_settings`]. Every key, its default and its bounds: [`key_reference`] (the
//! crate's README.md).
//!
//! # What it does not do
//! - No IO beyond reading the file and checking that the WAV files it names (`media.ringback`,
//!   a pool's `abandon_message` and session sounds) and `media.ringback_dir` exist; no DNS (a
//!   trunk's proxy stays a name until the runtime resolves it), no directory creation for
//!   `record_dir` or `pcap_dir`.
//! - No hot reload and no writing of configuration files.
//! - No WAV parsing: the media crate reads the ringback and announcement files.
//! - No behaviour: pools, queues, latching and bans are settings here; the dialer's engine and
//!   media relay act on them.
//!
//! # Errors and panics
//! A bad file is bad input: [`ConfigError::Invalid`] lists every problem found, each with
//! file, line, column, key path and what was expected, in file order
//! (`dialer.toml:12:9: trunk[0].transport: unknown value "sctp", expected one of "udp", "tcp" or "tls"`).
//! Syntax and type errors stop at the first one (the TOML parser does); semantic checks collect
//! all. Secret values (passwords, A1 hashes, API tokens) are [`Secret`]s, which print as
//! `***`, and no error message echoes them. A panic is a bug; each `expect` says why it cannot
//! fail.
//!
//! # What is hand-written, and why
//! - `host[:port]` parsing: SIP writes IPv6 in brackets and defaults the port to 5060
//!   (RFC 3261 §19.1.2); `std::net::SocketAddr` rejects names and `url` needs a scheme, so the
//!   few lines are clearer than adapting either.
//! - Number rewriting: carriers want fixed prefix rules (strip, add, national -> E.164), not
//!   per-country numbering-plan validation, so a metadata-heavy phone-number crate buys nothing.
//! - The key path of a serde error (`trunk[1].foo`) is found by walking the `toml_edit`
//!   document the error's span falls in; `toml` reports the span but not the path.
#![warn(missing_docs)]

mod address;
mod effective;
mod error;
mod number;
mod profile;
mod raw;
mod secret;
mod validate;

/// The key reference (this crate's README.md).
#[doc = include_str!("../README.md")]
pub mod key_reference {}

use std::path::Path;

pub use address::{Host, HostPort, PortRange, StaticContact, DEFAULT_SIP_PORT};
pub use error::{ConfigError, Diagnostic, Diagnostics};
pub use number::{NumberError, NumberRewrite, E164_MAX_DIGITS};
pub use profile::{
    Agent, AgentMode, AgentSecret, Api, Calls, Codec, Credentials, DtmfMode, Keepalive, Media,
    Pool, PoolStrategy, Registrar, Security, SipSettings, SipTimers, SrtpMode, Store, TcpLimits,
    Transport, Trunk,
};
pub use secret::Secret;

use error::Source;

/// Looks up an environment variable by name; injected so tests do not touch the process
/// environment.
pub type EnvLookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Keys whose values are secrets: errors about them never quote the value.
const SECRET_KEYS: [&str; 3] = ["password", "a1_hash", "token"];

/// A loaded, validated configuration: every default filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    name: String,
    sip: SipSettings,
    trunks: Vec<Trunk>,
    agents: Vec<Agent>,
    pools: Vec<Pool>,
    registrar: Registrar,
    media: Media,
    api: Api,
    calls: Calls,
    security: Security,
    store: Store,
}

impl Config {
    /// Reads and validates `path`. `password_env`/`token_env` are resolved from the process
    /// environment; relative paths in the file are resolved against the file's directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let base = path.parent().unwrap_or(Path::new(""));
        let env = |name: &str| std::env::var(name).ok();
        Self::from_str_in_dir(&text, &path.display().to_string(), base, &env)
    }

    /// Validates `text` as if read from a file called `name_for_errors`; relative paths resolve
    /// against that name's directory. `env` resolves `password_env` and `token_env`.
    pub fn from_str_named(
        text: &str,
        name_for_errors: &str,
        env: &EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let base = Path::new(name_for_errors).parent().unwrap_or(Path::new(""));
        Self::from_str_in_dir(text, name_for_errors, base, env)
    }

    /// Like [`Config::from_str_named`] with an explicit directory for relative paths.
    pub fn from_str_in_dir(
        text: &str,
        name_for_errors: &str,
        base_dir: &Path,
        env: &EnvLookup<'_>,
    ) -> Result<Config, ConfigError> {
        let src = Source {
            name: name_for_errors,
            text,
        };
        let raw: raw::RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                return Err(ConfigError::Invalid(Diagnostics(vec![serde_error(
                    &src, &e,
                )])))
            }
        };
        validate::build(raw, &src, base_dir, env).map_err(|mut errors| {
            errors.sort_by_key(|d| (d.line, d.column));
            ConfigError::Invalid(Diagnostics(errors))
        })
    }

    /// The file name errors and listings use.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `[sip]`.
    pub fn sip(&self) -> &SipSettings {
        &self.sip
    }

    /// Every `[[trunk]]`, in file order.
    pub fn trunks(&self) -> &[Trunk] {
        &self.trunks
    }

    /// The trunk called `name` (names are unique, compared case-insensitively).
    pub fn trunk(&self, name: &str) -> Option<&Trunk> {
        self.trunks
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    /// Every `[[agent]]`, in file order.
    pub fn agents(&self) -> &[Agent] {
        &self.agents
    }

    /// The agent with this extension.
    pub fn agent(&self, extension: &str) -> Option<&Agent> {
        self.agents.iter().find(|a| a.extension == extension)
    }

    /// Every `[[pool]]`, in file order.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// The pool called `name` (names are unique, compared case-sensitively).
    pub fn pool(&self, name: &str) -> Option<&Pool> {
        self.pools.iter().find(|p| p.name == name)
    }

    /// `[registrar]`.
    pub fn registrar(&self) -> &Registrar {
        &self.registrar
    }

    /// `[media]`.
    pub fn media(&self) -> &Media {
        &self.media
    }

    /// `[api]`.
    pub fn api(&self) -> &Api {
        &self.api
    }

    /// `[calls]`.
    pub fn calls(&self) -> &Calls {
        &self.calls
    }

    /// `[security]`.
    pub fn security(&self) -> &Security {
        &self.security
    }

    /// `[store]`.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Every effective setting, defaults included, secrets masked, one `key = value` per line
    /// grouped by table: what `dialer config check` prints.
    pub fn effective_settings(&self) -> String {
        effective::render(self)
    }
}

/// Turns a parse or type error into a located diagnostic with its key path.
fn serde_error(src: &Source<'_>, e: &toml::de::Error) -> Diagnostic {
    let span = e.span().unwrap_or(0..0);
    let mut key = toml_edit::ImDocument::parse(src.text)
        .ok()
        .and_then(|doc| key_path_at(doc.as_table(), span.start, ""))
        .unwrap_or_default();
    let mut message = e.message().trim().to_string();
    if let Some(field) = message
        .strip_prefix("missing field `")
        .and_then(|m| m.strip_suffix('`'))
    {
        key = if key.is_empty() {
            field.to_string()
        } else {
            format!("{key}.{field}")
        };
        message = "missing required key".to_string();
    } else if let Some(rest) = message.strip_prefix("unknown field") {
        message = format!("unknown key{rest}");
    }
    let last = key.rsplit('.').next().unwrap_or("");
    if SECRET_KEYS.contains(&last) {
        // Type errors quote the value ("invalid type: integer `123`"); a secret must not be.
        let expected = message.split_once(", expected").map_or("", |(_, e)| e);
        message = format!("invalid value (hidden, it is a secret), expected{expected}");
    }
    src.diagnostic(span, key, message)
}

/// The key path (`trunk[1].codecs[2]`) of the deepest key or value of the TOML `text` that
/// covers byte `offset`; empty outside any key or when the text does not parse. For loaders
/// of other TOML files (campaign definitions) that locate their errors like this crate.
pub fn toml_key_path(text: &str, offset: usize) -> String {
    toml_edit::ImDocument::parse(text)
        .ok()
        .and_then(|doc| key_path_at(doc.as_table(), offset, ""))
        .unwrap_or_default()
}

fn contains(span: Option<std::ops::Range<usize>>, offset: usize) -> bool {
    span.is_some_and(|s| s.contains(&offset) || s.start == offset)
}

fn join(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key.to_string()
    } else {
        format!("{prefix}.{key}")
    }
}

/// The deepest key path whose key or value covers `offset`.
fn key_path_at(table: &toml_edit::Table, offset: usize, prefix: &str) -> Option<String> {
    for (k, item) in table.iter() {
        let path = join(prefix, k);
        if contains(table.key(k).and_then(|k| k.span()), offset) {
            return Some(path);
        }
        let found = match item {
            toml_edit::Item::Table(t) => key_path_at(t, offset, &path)
                .or_else(|| contains(t.span(), offset).then(|| path.clone())),
            toml_edit::Item::ArrayOfTables(a) => a.iter().enumerate().find_map(|(i, t)| {
                let p = format!("{path}[{i}]");
                key_path_at(t, offset, &p).or_else(|| contains(t.span(), offset).then_some(p))
            }),
            toml_edit::Item::Value(v) => value_path_at(v, offset, &path),
            toml_edit::Item::None => None,
        };
        if found.is_some() {
            return found;
        }
    }
    None
}

fn value_path_at(v: &toml_edit::Value, offset: usize, path: &str) -> Option<String> {
    let inner = match v {
        toml_edit::Value::Array(a) => a
            .iter()
            .enumerate()
            .find_map(|(i, v)| value_path_at(v, offset, &format!("{path}[{i}]"))),
        toml_edit::Value::InlineTable(t) => t.iter().find_map(|(k, v)| {
            let p = join(path, k);
            if contains(t.key(k).and_then(|k| k.span()), offset) {
                Some(p)
            } else {
                value_path_at(v, offset, &p)
            }
        }),
        _ => None,
    };
    inner.or_else(|| contains(v.span(), offset).then(|| path.to_string()))
}
