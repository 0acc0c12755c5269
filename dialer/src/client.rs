//! A small blocking client for the control API ([`crate::api`]), used by `dialer call`,
//! `dialer calls`, `dialer agents`, `dialer hangup`, `dialer bans` and `dialer unban`.
//!
//! # Why ureq
//! The commands make one request at a time and then read one stream line by line, so a blocking
//! client fits and the CLI needs no async runtime of its own. `ureq` (3.x, maintained by the
//! author of str0m) is pure Rust, forbids `unsafe`, and with its default features off pulls in
//! no TLS stack and a handful of small crates; `hyper-util`'s client would share hyper with the
//! server but needs a runtime and several times the code for the same four calls.
//!
//! # Drive loop
//! Each method is one HTTP exchange, bounded by [`REQUEST_TIMEOUT`]. [`Client::events`] returns
//! once the response headers arrived (the server has subscribed by then), and its
//! [`EventStream`] blocks on each line with no time limit: a quiet dialer is not an error.
//!
//! # What it deliberately does not do
//! Plain `http://` only (the API is served on loopback; see [`crate::api`]); no retries, no
//! reconnecting the event stream (a reconnect would silently miss events).
//!
//! # Errors
//! Every failure is a [`ClientError`] saying what went wrong: the API unreachable, the token
//! refused, the dialer refusing the request (its [`ControlError`]), or an answer that is not
//! the API's.

use std::io::{self, BufRead, BufReader};
use std::time::Duration;

use ureq::http::{Response, StatusCode};
use ureq::{Agent, Body, BodyReader};

use crate::api::{ErrorBody, FeedLine};
use crate::control::{AgentInfo, CallId, CallInfo, ControlError, OriginateRequest, TrunkInfo};

/// Where the CLI looks for the API unless told otherwise (see [`crate::api::DEFAULT_LISTEN`]).
pub const DEFAULT_URL: &str = "http://127.0.0.1:8021";

/// The longest a request (not the event stream) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest connecting to the API may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a request to the API failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The base URL is not an `http://` URL.
    #[error("{url:?} is not a control API URL: {problem}")]
    BadUrl {
        /// The URL given.
        url: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// No connection, or the connection broke before an answer.
    #[error("cannot reach the dialer API at {url}: {source}")]
    Unreachable {
        /// The URL of the request.
        url: String,
        /// The transport error.
        #[source]
        source: ureq::Error,
    },
    /// 401: the token is missing or wrong.
    #[error("the dialer API refused the token: {0}")]
    Unauthorized(String),
    /// The dialer refused the request.
    #[error(transparent)]
    Control(ControlError),
    /// Another error answer from the API.
    #[error("the dialer API answered {status}: {error}: {detail}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The error's name (`bad_request`, `unavailable` ...).
        error: String,
        /// Its detail.
        detail: String,
    },
    /// An answer that is not the API's (wrong service on the port, or a broken body).
    #[error("unexpected answer from {url} ({status}): {problem}")]
    BadResponse {
        /// The URL of the request.
        url: String,
        /// The HTTP status.
        status: u16,
        /// What is wrong with it.
        problem: String,
    },
    /// Reading the event stream failed.
    #[error("the event stream broke: {0}")]
    Stream(#[source] io::Error),
}

/// A client of one dialer's control API.
#[derive(Debug, Clone)]
pub struct Client {
    base: String,
    token: Option<String>,
    requests: Agent,
    streams: Agent,
}

impl Client {
    /// A client for the API at `base_url` (`http://host:port`, optionally with a path prefix).
    pub fn new(base_url: &str, token: Option<String>) -> Result<Client, ClientError> {
        let bad = |problem| ClientError::BadUrl {
            url: base_url.to_owned(),
            problem,
        };
        let rest = if let Some(rest) = base_url.strip_prefix("http://") {
            rest
        } else if base_url.starts_with("https://") {
            return Err(bad(
                "https is not supported: the API is served on loopback (use an SSH tunnel)",
            ));
        } else {
            return Err(bad("expected http://HOST:PORT"));
        };
        if rest.is_empty() || rest.starts_with('/') {
            return Err(bad("the host is missing"));
        }
        let config = |body_timeout: Option<Duration>| {
            Agent::config_builder()
                // Error answers carry a JSON body this client reads.
                .http_status_as_error(false)
                .timeout_connect(Some(CONNECT_TIMEOUT))
                .timeout_recv_response(Some(REQUEST_TIMEOUT))
                .timeout_recv_body(body_timeout)
                .build()
        };
        Ok(Client {
            base: base_url.trim_end_matches('/').to_owned(),
            token,
            requests: config(Some(REQUEST_TIMEOUT)).into(),
            streams: config(None).into(),
        })
    }

    /// The base URL, without a trailing `/`.
    pub fn base_url(&self) -> &str {
        &self.base
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorization(&self) -> Option<String> {
        self.token.as_ref().map(|t| format!("Bearer {t}"))
    }

    fn get(&self, agent: &Agent, path: &str) -> Result<Response<Body>, ClientError> {
        let url = self.url(path);
        let mut request = agent.get(&url).header("Accept", "application/json");
        if let Some(auth) = self.authorization() {
            request = request.header("Authorization", auth);
        }
        request
            .call()
            .map_err(|source| ClientError::Unreachable { url, source })
    }

    /// Places a call: `POST /calls`.
    pub fn originate(&self, request: &OriginateRequest) -> Result<CallInfo, ClientError> {
        let body = serde_json::to_vec(request).expect("an OriginateRequest serialises");
        let (url, response) = self.post("/calls", "application/json", &body)?;
        read_json(&url, expect(&url, response, StatusCode::CREATED)?)
    }

    /// The live calls: `GET /calls`.
    pub fn calls(&self) -> Result<Vec<CallInfo>, ClientError> {
        let url = self.url("/calls");
        let response = self.get(&self.requests, "/calls")?;
        read_json(&url, expect(&url, response, StatusCode::OK)?)
    }

    /// The agents: `GET /agents`.
    pub fn agents(&self) -> Result<Vec<AgentInfo>, ClientError> {
        let url = self.url("/agents");
        let response = self.get(&self.requests, "/agents")?;
        read_json(&url, expect(&url, response, StatusCode::OK)?)
    }

    /// The trunks and their registration state: `GET /trunks`.
    pub fn trunks(&self) -> Result<Vec<TrunkInfo>, ClientError> {
        let url = self.url("/trunks");
        let response = self.get(&self.requests, "/trunks")?;
        read_json(&url, expect(&url, response, StatusCode::OK)?)
    }

    /// Pauses an agent: `POST /agents/{ext}/pause`.
    pub fn pause_agent(&self, extension: &str, reason: &str) -> Result<(), ClientError> {
        let body = serde_json::json!({ "reason": reason }).to_string();
        self.post_empty(&format!("/agents/{extension}/pause"), body.as_bytes())
    }

    /// Makes an agent ready: `POST /agents/{ext}/ready`.
    pub fn ready_agent(&self, extension: &str) -> Result<(), ClientError> {
        self.post_empty(&format!("/agents/{extension}/ready"), b"{}")
    }

    /// Logs an agent in (session mode): `POST /agents/{ext}/login`.
    pub fn login_agent(&self, extension: &str) -> Result<(), ClientError> {
        self.post_empty(&format!("/agents/{extension}/login"), b"{}")
    }

    /// Ends an agent's session: `POST /agents/{ext}/logout`.
    pub fn logout_agent(&self, extension: &str) -> Result<(), ClientError> {
        self.post_empty(&format!("/agents/{extension}/logout"), b"{}")
    }

    fn post_empty(&self, path: &str, body: &[u8]) -> Result<(), ClientError> {
        let (url, response) = self.post(path, "application/json", body)?;
        expect(&url, response, StatusCode::NO_CONTENT).map(drop)
    }

    /// `POST path` with `body` of `content_type`: the URL and the answer, whatever its status.
    fn post(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
    ) -> Result<(String, Response<Body>), ClientError> {
        let url = self.url(path);
        let mut builder = self
            .requests
            .post(&url)
            .header("Content-Type", content_type);
        if let Some(auth) = self.authorization() {
            builder = builder.header("Authorization", auth);
        }
        let response = builder
            .send(body)
            .map_err(|source| ClientError::Unreachable {
                url: url.clone(),
                source,
            })?;
        Ok((url, response))
    }

    /// The sources banned for failing authentication: `GET /bans`.
    pub fn bans(&self) -> Result<Vec<crate::control::BanInfo>, ClientError> {
        let url = self.url("/bans");
        let response = self.get(&self.requests, "/bans")?;
        read_json(&url, expect(&url, response, StatusCode::OK)?)
    }

    /// Lifts the ban of `address`: `DELETE /bans/{ip}`; `Ok(false)` when it was not banned.
    pub fn unban(&self, address: std::net::IpAddr) -> Result<bool, ClientError> {
        let url = self.url(&format!("/bans/{address}"));
        let mut builder = self.requests.delete(&url);
        if let Some(auth) = self.authorization() {
            builder = builder.header("Authorization", auth);
        }
        let response = builder.call().map_err(|source| ClientError::Unreachable {
            url: url.clone(),
            source,
        })?;
        match expect(&url, response, StatusCode::NO_CONTENT) {
            Ok(_) => Ok(true),
            Err(ClientError::Api { error, .. }) if error == "not_banned" => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Hangs a call up: `DELETE /calls/{id}`.
    pub fn hangup(&self, call: CallId) -> Result<(), ClientError> {
        let url = self.url(&format!("/calls/{call}"));
        let mut builder = self.requests.delete(&url);
        if let Some(auth) = self.authorization() {
            builder = builder.header("Authorization", auth);
        }
        let response = builder.call().map_err(|source| ClientError::Unreachable {
            url: url.clone(),
            source,
        })?;
        expect(&url, response, StatusCode::NO_CONTENT).map(drop)
    }

    /// `GET path`, the answer as JSON (the campaign routes).
    pub fn get_json(&self, path: &str) -> Result<serde_json::Value, ClientError> {
        let url = self.url(path);
        let response = self.get(&self.requests, path)?;
        read_json(&url, expect(&url, response, StatusCode::OK)?)
    }

    /// `GET path`, the answer as text (`/metrics`).
    pub fn get_text(&self, path: &str) -> Result<String, ClientError> {
        let url = self.url(path);
        let mut request = self.requests.get(&url).header("Accept", "text/plain");
        if let Some(auth) = self.authorization() {
            request = request.header("Authorization", auth);
        }
        let response = request.call().map_err(|source| ClientError::Unreachable {
            url: url.clone(),
            source,
        })?;
        let mut response = expect(&url, response, StatusCode::OK)?;
        response
            .body_mut()
            .read_to_string()
            .map_err(|e| ClientError::BadResponse {
                url,
                status: 200,
                problem: format!("cannot read the body: {e}"),
            })
    }

    /// `POST path` with `body` of `content_type`, expecting `expected`; the answer as JSON.
    pub fn post_json(
        &self,
        path: &str,
        content_type: &str,
        body: &[u8],
        expected: StatusCode,
    ) -> Result<serde_json::Value, ClientError> {
        let (url, response) = self.post(path, content_type, body)?;
        read_json(&url, expect(&url, response, expected)?)
    }

    /// Follows the event stream, `GET /events[?call=ID]`; returns once the dialer has subscribed.
    pub fn events(&self, call: Option<CallId>) -> Result<EventStream, ClientError> {
        let path = match call {
            Some(call) => format!("/events?call={call}"),
            None => "/events".to_owned(),
        };
        let url = self.url(&path);
        let response = expect(&url, self.get(&self.streams, &path)?, StatusCode::OK)?;
        Ok(EventStream {
            url,
            lines: BufReader::new(response.into_body().into_reader()),
            buffer: String::new(),
        })
    }
}

/// The answer when it has the expected status, else the error it carries.
fn expect(
    url: &str,
    mut response: Response<Body>,
    expected: StatusCode,
) -> Result<Response<Body>, ClientError> {
    let status = response.status();
    if status == expected {
        return Ok(response);
    }
    let text = response.body_mut().read_to_string().unwrap_or_default();
    if let Ok(control) = serde_json::from_str::<ControlError>(&text) {
        return Err(ClientError::Control(control));
    }
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => {
            let detail = match body.detail {
                serde_json::Value::String(s) => s,
                other => other.to_string(),
            };
            if status == StatusCode::UNAUTHORIZED {
                Err(ClientError::Unauthorized(detail))
            } else {
                Err(ClientError::Api {
                    status: status.as_u16(),
                    error: body.error,
                    detail,
                })
            }
        }
        Err(_) => Err(ClientError::BadResponse {
            url: url.to_owned(),
            status: status.as_u16(),
            problem: format!("expected {expected}, and the body is not an API error"),
        }),
    }
}

fn read_json<T: serde::de::DeserializeOwned>(
    url: &str,
    mut response: Response<Body>,
) -> Result<T, ClientError> {
    let status = response.status().as_u16();
    let bad = |problem: String| ClientError::BadResponse {
        url: url.to_owned(),
        status,
        problem,
    };
    let text = response
        .body_mut()
        .read_to_string()
        .map_err(|e| bad(format!("cannot read the body: {e}")))?;
    serde_json::from_str(&text).map_err(|e| bad(format!("not the expected JSON: {e}")))
}

/// The lines of `GET /events`, parsed; ends when the server closes the stream.
pub struct EventStream {
    url: String,
    lines: BufReader<BodyReader<'static>>,
    buffer: String,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("url", &self.url)
            .finish()
    }
}

impl Iterator for EventStream {
    type Item = Result<FeedLine, ClientError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            self.buffer.clear();
            match self.lines.read_line(&mut self.buffer) {
                Ok(0) => return None,
                Ok(_) => {}
                Err(e) => return Some(Err(ClientError::Stream(e))),
            }
            let line = self.buffer.trim();
            if line.is_empty() {
                continue;
            }
            return Some(FeedLine::parse(line).map_err(|e| ClientError::BadResponse {
                url: self.url.clone(),
                status: 200,
                problem: format!("an event line is not JSON: {e}"),
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_http_urls_with_a_host_are_accepted() {
        assert!(Client::new("http://127.0.0.1:8021/", None).is_ok());
        assert_eq!(
            Client::new("http://127.0.0.1:8021/", None)
                .unwrap()
                .base_url(),
            "http://127.0.0.1:8021"
        );
        for url in [
            "https://127.0.0.1:8021",
            "127.0.0.1:8021",
            "http://",
            "http:///x",
        ] {
            assert!(
                matches!(Client::new(url, None), Err(ClientError::BadUrl { .. })),
                "{url}"
            );
        }
    }
}
