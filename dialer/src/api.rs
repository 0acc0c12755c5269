//! The control API of a running dialer: HTTP/1.1 and JSON on a loopback port, what ESL and ARI
//! give FreeSWITCH and Asterisk users.
//!
//! # Routes
//! | route | answer |
//! | --- | --- |
//! | `POST /calls` | body: an [`OriginateRequest`]; `201 Created` with the [`CallInfo`] and a `Location` |
//! | `GET /calls` | `200` with the live calls, `[CallInfo]` |
//! | `DELETE /calls/{id}` | `204` when the call is being hung up, `404` when there is no such call |
//! | `GET /agents` | `200` with the registrations, `[AgentInfo]` (source address and NAT flag) |
//! | `GET /trunks` | `200` with the trunks and their registration state, `[TrunkInfo]` |
//! | `GET /bans` | `200` with the sources banned for failing authentication, `[BanInfo]` |
//! | `DELETE /bans/{ip}` | `204` when the ban is lifted, `404` (`not_banned`) when the address is not banned |
//! | `GET /events[?call=ID]` | `200`, `application/x-ndjson`, chunked: one [`ApiEvent`] per line, forever |
//! | `GET /health` | `200 {"status":"ok"}`, or `503 {"status":"dialer_stopped"}` |
//! | `GET /metrics` | `200`, `text/plain; version=0.0.4`: the Prometheus text format ([`crate::metrics`]) |
//!
//! Every error has a JSON body `{"error": NAME, "detail": ...}`. A [`ControlError`] is that
//! error itself (`{"error":"agent_busy","detail":"1001"}`) with the status of [`status_for`];
//! the API's own errors are `bad_request` (400: malformed JSON, naming the field), `unauthorized`
//! (401), `forbidden` (403: a foreign `Host` or `Origin`), `not_found` (404),
//! `payload_too_large` (413), `unsupported_media_type` (415), `unavailable` (503: the dialer
//! task is gone) and `timeout` (504: the dialer did not answer within [`REPLY_TIMEOUT`]).
//!
//! # Security
//! With a token set, every route (unknown ones too, so routes are not probed) wants
//! `Authorization: Bearer TOKEN` (RFC 6750 §2.1); a missing or wrong one gets `401` with
//! `WWW-Authenticate: Bearer` (RFC 6750 §3). The comparison is of the SHA-256 digests of the two
//! tokens with [`subtle`], so its time depends on neither the token's content nor its length.
//! Without a token the API only serves a loopback address: [`bind`] refuses anything else,
//! because whoever reaches the port can place calls on the trunk's account.
//!
//! What a web page could make a browser send is refused before any route runs, so a browser on
//! the same machine is no way in: a `Host` that is not the listen address (`ip:port`, any IP
//! literal with the port when listening on `0.0.0.0`/`[::]`, `localhost:port` on loopback) or
//! a name of [`Api::allow_hosts`] gets `403 forbidden` (DNS rebinding); so does an `Origin`
//! that is present and is not the API's own (`http://` one of those, or `https://` an allowed
//! name); a POST whose `Content-Type` is not `application/json` (the types a page can send
//! cross-site without a CORS preflight, or none) gets `415 unsupported_media_type`, its detail
//! naming the type expected. The file names of `POST /calls` (`record`, `pcap`, `ringback`)
//! are confined to the directories of [`Api::confine_paths`] ([`crate::paths`]); a refused
//! one is `422 bad_path` with `{"field": ..., "problem": ...}` as detail.
//!
//! # The event stream
//! Each `GET /events` subscribes to [`ControlHandle::events`] before the response headers are
//! sent, so a client that has read the headers receives every event published afterwards, in
//! publication order (`dialer call` opens the stream first, then originates, for that reason).
//! A follower that falls more than the broadcast channel's capacity behind gets
//! `{"event":"lagged","missed":N}` ([`FeedLine::Lagged`]) in place of the events it missed, N
//! counting all events, before the filter. The stream ends when the API shuts down or the dialer
//! drops its event sender; a follower that disconnects is noticed at the next event written.
//!
//! # Drive loop
//! [`serve`] (or [`bind`] then [`Api::run`]) runs on the caller's tokio runtime until the
//! `shutdown` future completes: then it stops accepting, ends every event stream and waits for the
//! requests in flight. Each request becomes one [`ControlRequest`] on
//! [`ControlHandle::requests`]; the dialer answers on the request's oneshot channel.
//!
//! # What it deliberately does not do
//! No TLS (reach a remote dialer through an SSH tunnel or a TLS-terminating proxy), no
//! WebSocket or SSE framing (NDJSON reads with `curl -N` and any line reader), no replay of
//! past events, no state of its own: every answer comes from the dialer.
//!
//! # Errors and panics
//! Bad input from a client is answered with a 4xx and a message, never a panic and never a
//! dropped connection. Serialising an event or a reply cannot fail (plain structs, no maps with
//! non-string keys), which is the one `expect`.

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::rejection::{BytesRejection, PathRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::{broadcast, oneshot, watch};

use crate::control::{
    AgentInfo, ApiEvent, CallId, CallInfo, ControlError, ControlHandle, ControlRequest,
    OriginateRequest, TrunkInfo,
};
use crate::metrics::{Metrics, Snapshot};
use crate::paths::MediaDirs;
use crate::runtime::campaigns::RunnerHandle;

mod campaigns;

/// Where `dialer run` serves the API unless configured otherwise.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 8021);

/// How long a request waits for the dialer's answer before `504`.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request body accepted (an originate request is a few hundred bytes).
pub const MAX_BODY: usize = 64 * 1024;

/// Why the API could not start or stopped.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ApiError {
    /// A non-loopback listen address without a token.
    #[error(
        "refusing to serve the control API on {0} without a token: anyone who reaches a \
         non-loopback address could place calls; set a token or listen on 127.0.0.1"
    )]
    InsecureListen(SocketAddr),
    /// The token is empty, which would make `Authorization: Bearer ` a valid credential.
    #[error("the control API token is empty")]
    EmptyToken,
    /// The listen address could not be bound.
    #[error("cannot listen on {addr} for the control API: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// Accepting connections failed.
    #[error("the control API stopped: {0}")]
    Serve(#[source] io::Error),
}

/// The body of every error answer: `{"error": NAME, "detail": ...}`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// A snake_case name (`bad_request`, `unauthorized`, a [`ControlError`] variant ...).
    pub error: String,
    /// What exactly: a message, or the variant's value.
    #[serde(default)]
    pub detail: serde_json::Value,
}

/// One line of `GET /events`.
#[derive(Clone, Debug, PartialEq)]
pub enum FeedLine {
    /// An event from the dialer.
    Event(ApiEvent),
    /// The follower fell behind and `missed` events were dropped for it.
    Lagged {
        /// How many events were dropped (all calls, before the `?call` filter).
        missed: u64,
    },
    /// An event this build does not know (a newer dialer), kept as JSON.
    Other(serde_json::Value),
}

impl FeedLine {
    /// The line as sent: compact JSON and `\n`.
    pub fn to_line(&self) -> Vec<u8> {
        let mut line = match self {
            FeedLine::Event(event) => serde_json::to_vec(event),
            FeedLine::Lagged { missed } => {
                serde_json::to_vec(&serde_json::json!({"event": "lagged", "missed": missed}))
            }
            FeedLine::Other(value) => serde_json::to_vec(value),
        }
        .expect("events serialise: plain structs with string keys only");
        line.push(b'\n');
        line
    }

    /// Reads one line of the stream (without its `\n`).
    pub fn parse(line: &str) -> Result<FeedLine, serde_json::Error> {
        let value: serde_json::Value = serde_json::from_str(line)?;
        match value.get("event").and_then(|e| e.as_str()) {
            Some("lagged") => {
                let missed = value.get("missed").and_then(|m| m.as_u64()).unwrap_or(0);
                Ok(FeedLine::Lagged { missed })
            }
            _ => match serde_json::from_value::<ApiEvent>(value.clone()) {
                Ok(event) => Ok(FeedLine::Event(event)),
                // An object with an `event` name this build lacks: a newer dialer.
                Err(_) if value.get("event").is_some_and(|e| e.is_string()) => {
                    Ok(FeedLine::Other(value))
                }
                Err(e) => Err(e),
            },
        }
    }
}

/// The HTTP status for a refused control request.
pub fn status_for(error: &ControlError) -> StatusCode {
    match error {
        ControlError::NoSuchCall(_) => StatusCode::NOT_FOUND,
        // The request is fine; the agent's state forbids it now.
        ControlError::AgentUnavailable(_)
        | ControlError::AgentBusy(_)
        | ControlError::AgentLoggedOut(_)
        | ControlError::PoolEmpty(_) => StatusCode::CONFLICT,
        ControlError::NoSuchAgent(_) => StatusCode::NOT_FOUND,
        // The trunk's queue for max_channels and max_cps is full: try again later.
        ControlError::QueueFull { .. } | ControlError::ShuttingDown => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        ControlError::BadRequest(_) => StatusCode::BAD_REQUEST,
        // Well-formed, but names something that cannot be used.
        ControlError::NoSuchTrunk(_)
        | ControlError::NoSuchPool(_)
        | ControlError::BadNumber(_)
        | ControlError::BadPath { .. }
        | ControlError::Other(_) => StatusCode::UNPROCESSABLE_ENTITY,
    }
}

/// A bound, not yet serving, control API.
#[derive(Debug)]
pub struct Api {
    listener: TcpListener,
    token: Option<String>,
    /// `[api] allowed_hosts`, lowercase.
    allowed_hosts: Vec<String>,
    /// Where request paths may point.
    dirs: MediaDirs,
    /// The campaign runner, when the dialer runs campaigns.
    campaigns: Option<RunnerHandle>,
    /// The counters `GET /metrics` reports.
    metrics: Arc<Metrics>,
}

/// Checks the address against the token rule and binds it.
pub async fn bind(listen: SocketAddr, token: Option<String>) -> Result<Api, ApiError> {
    match &token {
        Some(t) if t.is_empty() => return Err(ApiError::EmptyToken),
        None if !listen.ip().to_canonical().is_loopback() => {
            return Err(ApiError::InsecureListen(listen))
        }
        _ => {}
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: listen,
            source,
        })?;
    Ok(Api {
        listener,
        token,
        allowed_hosts: Vec::new(),
        dirs: MediaDirs::default(),
        campaigns: None,
        metrics: Arc::new(Metrics::new()),
    })
}

/// Binds `listen` and serves the API until `shutdown` completes.
pub async fn serve(
    listen: SocketAddr,
    token: Option<String>,
    handle: ControlHandle,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ApiError> {
    bind(listen, token).await?.run(handle, shutdown).await
}

impl Api {
    /// The address actually bound (the port, when asked for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr, ApiError> {
        self.listener.local_addr().map_err(ApiError::Serve)
    }

    /// Also accepts these names (`host` or `host:port`, `[api] allowed_hosts`) in `Host` and
    /// `Origin`, besides the listen address: what a reverse proxy in front of the API sends.
    pub fn allow_hosts(mut self, hosts: impl IntoIterator<Item = String>) -> Api {
        self.allowed_hosts = hosts.into_iter().map(|h| h.to_ascii_lowercase()).collect();
        self
    }

    /// Confines the `record`, `pcap` and `ringback` of `POST /calls` to these directories
    /// (see [`crate::paths`]); without them, a request naming any of the three is refused.
    pub fn confine_paths(mut self, dirs: MediaDirs) -> Api {
        self.dirs = dirs;
        self
    }

    /// Serves `/campaigns`, `/dnc` and `/calls/{id}/disposition` through this runner;
    /// without one they answer `503 unavailable`.
    pub fn campaigns(mut self, runner: Option<RunnerHandle>) -> Api {
        self.campaigns = runner;
        self
    }

    /// Reports these counters on `GET /metrics` (the ones the dialer's signalling task
    /// updates); without them the counters stay at 0 and only the gauges move.
    pub fn metrics(mut self, metrics: Arc<Metrics>) -> Api {
        self.metrics = metrics;
        self
    }

    /// Serves until `shutdown` completes, then ends the event streams and drains.
    pub async fn run(
        self,
        handle: ControlHandle,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ApiError> {
        let (stop_tx, stop_rx) = watch::channel(false);
        let listen = self.local_addr()?;
        let state = AppState {
            handle,
            token_digest: self.token.as_deref().map(|t| Arc::new(digest(t))),
            stop: stop_rx,
            own: Arc::new(OwnAddress {
                listen,
                allowed_hosts: self.allowed_hosts,
            }),
            dirs: Arc::new(self.dirs),
            campaigns: self.campaigns,
            metrics: self.metrics,
        };
        axum::serve(self.listener, router(state))
            .with_graceful_shutdown(async move {
                shutdown.await;
                // Event streams never end by themselves; graceful shutdown waits for them.
                let _ = stop_tx.send(true);
            })
            .await
            .map_err(ApiError::Serve)
    }
}

#[derive(Clone)]
struct AppState {
    handle: ControlHandle,
    token_digest: Option<Arc<[u8; 32]>>,
    stop: watch::Receiver<bool>,
    own: Arc<OwnAddress>,
    dirs: Arc<MediaDirs>,
    campaigns: Option<RunnerHandle>,
    metrics: Arc<Metrics>,
}

fn router(state: AppState) -> Router {
    Router::new()
        .route("/health", get(health))
        .route("/calls", post(originate).get(list_calls))
        .route("/calls/:id", delete(hangup))
        .route("/agents", get(list_agents))
        .route("/agents/:ext/pause", post(pause_agent))
        .route("/agents/:ext/ready", post(ready_agent))
        .route("/agents/:ext/login", post(login_agent))
        .route("/agents/:ext/logout", post(logout_agent))
        .route("/trunks", get(list_trunks))
        .route("/bans", get(list_bans))
        .route("/bans/:ip", delete(lift_ban))
        .route("/events", get(events))
        .route("/metrics", get(metrics))
        .merge(campaigns::routes())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        // Outermost: a cross-site or rebound request is refused before anything else runs.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            refuse_cross_site,
        ))
        .with_state(state)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn error(status: StatusCode, name: &str, detail: impl Into<serde_json::Value>) -> Response {
    let body = ErrorBody {
        error: name.to_owned(),
        detail: detail.into(),
    };
    (status, Json(body)).into_response()
}

fn bad_request(detail: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "bad_request", detail.into())
}

fn control_error(e: ControlError) -> Response {
    (status_for(&e), Json(e)).into_response()
}

/// The token from `Authorization: Bearer TOKEN`; the scheme is case-insensitive (RFC 7235 §2.1).
fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

async fn require_token(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(expected) = &state.token_digest else {
        return next.run(request).await;
    };
    let (challenge, detail) = match bearer(request.headers()) {
        Some(given) if bool::from(digest(given).ct_eq(&expected[..])) => {
            return next.run(request).await
        }
        // RFC 6750 §3.1: no error code when the request had no credentials.
        None => (r#"Bearer realm="dialer""#, "a bearer token is required"),
        Some(_) => (
            r#"Bearer realm="dialer", error="invalid_token""#,
            "the bearer token is wrong",
        ),
    };
    let mut response = error(StatusCode::UNAUTHORIZED, "unauthorized", detail);
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static(challenge),
    );
    response
}

/// Sends a request to the dialer and waits for its answer.
async fn ask<T>(
    state: &AppState,
    request: impl FnOnce(oneshot::Sender<T>) -> ControlRequest,
) -> Result<T, Response> {
    let unavailable = || {
        error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the dialer is not running",
        )
    };
    let (tx, rx) = oneshot::channel();
    let exchange = async {
        state
            .handle
            .requests
            .send(request(tx))
            .await
            .map_err(|_| unavailable())?;
        rx.await.map_err(|_| unavailable())
    };
    match tokio::time::timeout(REPLY_TIMEOUT, exchange).await {
        Ok(answer) => answer,
        Err(_) => Err(error(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            format!(
                "the dialer did not answer within {} s",
                REPLY_TIMEOUT.as_secs()
            ),
        )),
    }
}

async fn health(State(state): State<AppState>) -> Response {
    if state.handle.requests.is_closed() {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "dialer_stopped"})),
        )
            .into_response()
    } else {
        Json(serde_json::json!({"status": "ok", "version": env!("CARGO_PKG_VERSION")}))
            .into_response()
    }
}

/// `GET /metrics`: the counters, and gauges of the calls, agents, trunks and campaigns asked
/// of the dialer now. Without the dialer the answer is `503` like any route's, so a scrape
/// fails visibly instead of reporting a dialer that is gone as idle.
async fn metrics(State(state): State<AppState>) -> Response {
    let (calls, agents, trunks) = tokio::join!(
        ask(&state, ControlRequest::ListCalls),
        ask(&state, ControlRequest::ListAgents),
        ask(&state, ControlRequest::ListTrunks),
    );
    let snapshot = match (calls, agents, trunks) {
        (Ok(calls), Ok(agents), Ok(trunks)) => Snapshot {
            calls,
            agents,
            trunks,
            campaigns: campaign_statuses(&state).await,
        },
        (Err(response), _, _) | (_, Err(response), _) | (_, _, Err(response)) => return response,
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        state.metrics.render(&snapshot),
    )
        .into_response()
}

/// Every campaign's status, for the campaign gauges; none when the dialer runs no campaigns.
/// A runner that does not answer leaves the campaign gauges out (with a warning) rather than
/// failing the scrape: the call and SIP metrics do not depend on the store.
async fn campaign_statuses(state: &AppState) -> Vec<crate::campaigns::CampaignStatus> {
    let Some(runner) = &state.campaigns else {
        return Vec::new();
    };
    let reply = tokio::time::timeout(
        REPLY_TIMEOUT,
        runner.ask(crate::campaigns::CampaignRequest::List),
    )
    .await;
    let problem = match reply {
        Ok(Ok(Ok(value))) => match serde_json::from_value(value) {
            Ok(statuses) => return statuses,
            Err(e) => format!("the campaign list is not a list of statuses: {e}"),
        },
        Ok(Ok(Err(e))) => e.to_string(),
        Ok(Err(_)) => "the campaign runner stopped".to_owned(),
        Err(_) => format!("no answer within {} s", REPLY_TIMEOUT.as_secs()),
    };
    tracing::warn!(target: "dialer", "GET /metrics without campaign gauges: {problem}");
    Vec::new()
}

/// Reads an [`OriginateRequest`], naming the offending field in the error.
pub fn parse_originate(body: &[u8]) -> Result<OriginateRequest, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(
            "the body is empty: expected a JSON object with `number` and `agent` or `pool`".into(),
        );
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let request: OriginateRequest =
        serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
            let path = e.path().to_string();
            if path == "." {
                e.into_inner().to_string()
            } else {
                format!("`{path}`: {}", e.into_inner())
            }
        })?;
    deserializer
        .end()
        .map_err(|e| format!("trailing characters after the JSON object: {e}"))?;
    let named = [
        ("number", Some(&request.number)),
        ("agent", request.agent.as_ref()),
        ("pool", request.pool.as_ref()),
    ];
    for (name, value) in named {
        let Some(value) = value else { continue };
        if value.trim().is_empty() {
            return Err(format!("`{name}` must not be empty"));
        }
        // The values go into SIP URIs and headers; a control character there is an injection.
        if value.chars().any(char::is_control) {
            return Err(format!("`{name}` must not contain control characters"));
        }
    }
    if let Some(trunk) = &request.trunk {
        if trunk.trim().is_empty() {
            return Err("`trunk` must not be empty when given".into());
        }
    }
    let spec = request.to_spec().map_err(|e| e.to_string())?;
    spec.check().map_err(|e| e.to_string())?;
    Ok(request)
}

async fn originate(State(state): State<AppState>, body: Result<Bytes, BytesRejection>) -> Response {
    let body = match body {
        Ok(body) => body,
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            return error(
                e.status(),
                "payload_too_large",
                format!("the body is larger than {MAX_BODY} bytes"),
            )
        }
        Err(e) => return bad_request(e.body_text()),
    };
    let mut request = match parse_originate(&body) {
        Ok(request) => request,
        Err(message) => return bad_request(message),
    };
    if let Err(e) = crate::paths::confine_request(&mut request, &state.dirs) {
        return control_error(e.into());
    }
    match ask(&state, |tx| ControlRequest::Originate(request, tx)).await {
        Ok(Ok(info)) => {
            let location = format!("/calls/{}", info.id);
            (
                StatusCode::CREATED,
                [(header::LOCATION, location)],
                Json::<CallInfo>(info),
            )
                .into_response()
        }
        Ok(Err(e)) => control_error(e),
        Err(response) => response,
    }
}

async fn list_calls(State(state): State<AppState>) -> Response {
    match ask(&state, ControlRequest::ListCalls).await {
        Ok(calls) => Json::<Vec<CallInfo>>(calls).into_response(),
        Err(response) => response,
    }
}

async fn list_agents(State(state): State<AppState>) -> Response {
    match ask(&state, ControlRequest::ListAgents).await {
        Ok(agents) => Json::<Vec<AgentInfo>>(agents).into_response(),
        Err(response) => response,
    }
}

/// `POST /agents/{ext}/pause` with `{"reason": "lunch"}` (an empty body or `{}` pauses with
/// reason `paused`).
async fn pause_agent(
    State(state): State<AppState>,
    ext: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let (extension, body) = match (ext, body) {
        (Ok(Path(e)), Ok(b)) => (e, b),
        (Err(e), _) => return bad_request(e.body_text()),
        (_, Err(e)) => return bad_request(e.body_text()),
    };
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Pause {
        #[serde(default)]
        reason: Option<String>,
    }
    let pause: Pause = if body.iter().all(u8::is_ascii_whitespace) {
        Pause { reason: None }
    } else {
        match serde_json::from_slice(&body) {
            Ok(p) => p,
            Err(e) => return bad_request(format!("expected {{\"reason\": \"...\"}}: {e}")),
        }
    };
    let reason = pause.reason.unwrap_or_else(|| "paused".to_owned());
    if reason.is_empty() || reason.len() > 64 || reason.chars().any(char::is_control) {
        return bad_request("`reason`: 1 to 64 characters, no control characters");
    }
    match ask(&state, |tx| {
        ControlRequest::PauseAgent(extension, reason, tx)
    })
    .await
    {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => control_error(e),
        Err(response) => response,
    }
}

/// `POST /agents/{ext}/login` (an empty body or `{}`): the agent's phone is called for its
/// session (session-mode pools).
async fn login_agent(
    State(state): State<AppState>,
    ext: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    agent_action(state, ext, body, ControlRequest::LoginAgent).await
}

/// `POST /agents/{ext}/logout` (an empty body or `{}`): the agent's session ends.
async fn logout_agent(
    State(state): State<AppState>,
    ext: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    agent_action(state, ext, body, ControlRequest::LogoutAgent).await
}

/// An agent request without parameters: the body must be empty or `{}`.
async fn agent_action(
    state: AppState,
    ext: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
    request: fn(String, oneshot::Sender<Result<(), ControlError>>) -> ControlRequest,
) -> Response {
    let (extension, body) = match (ext, body) {
        (Ok(Path(e)), Ok(b)) => (e, b),
        (Err(e), _) => return bad_request(e.body_text()),
        (_, Err(e)) => return bad_request(e.body_text()),
    };
    let empty = body.iter().all(u8::is_ascii_whitespace)
        || serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&body)
            .is_ok_and(|m| m.is_empty());
    if !empty {
        return bad_request("expected an empty body or {}");
    }
    match ask(&state, |tx| request(extension, tx)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => control_error(e),
        Err(response) => response,
    }
}

/// `POST /agents/{ext}/ready` (an empty body or `{}`).
async fn ready_agent(
    State(state): State<AppState>,
    ext: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    agent_action(state, ext, body, ControlRequest::ReadyAgent).await
}

/// `GET /bans`.
async fn list_bans(State(state): State<AppState>) -> Response {
    match ask(&state, ControlRequest::ListBans).await {
        Ok(bans) => Json::<Vec<crate::control::BanInfo>>(bans).into_response(),
        Err(response) => response,
    }
}

/// `DELETE /bans/{ip}`: an IPv4 or IPv6 address.
async fn lift_ban(
    State(state): State<AppState>,
    ip: Result<Path<String>, PathRejection>,
) -> Response {
    let ip = match ip {
        Ok(Path(ip)) => ip,
        Err(e) => return bad_request(e.body_text()),
    };
    let Ok(address) = ip.parse::<std::net::IpAddr>() else {
        return bad_request(format!("{ip:?} is not an IP address"));
    };
    match ask(&state, |tx| ControlRequest::LiftBan(address, tx)).await {
        Ok(true) => StatusCode::NO_CONTENT.into_response(),
        Ok(false) => error(
            StatusCode::NOT_FOUND,
            "not_banned",
            format!("{address} is not banned"),
        ),
        Err(response) => response,
    }
}

async fn list_trunks(State(state): State<AppState>) -> Response {
    match ask(&state, ControlRequest::ListTrunks).await {
        Ok(trunks) => Json::<Vec<TrunkInfo>>(trunks).into_response(),
        Err(response) => response,
    }
}

async fn hangup(
    State(state): State<AppState>,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(e) => return bad_request(e.body_text()),
    };
    let Ok(id) = id.parse::<u64>() else {
        return bad_request(format!("call id {id:?} is not a number"));
    };
    match ask(&state, |tx| ControlRequest::Hangup(CallId(id), tx)).await {
        Ok(Ok(())) => StatusCode::NO_CONTENT.into_response(),
        Ok(Err(e)) => control_error(e),
        Err(response) => response,
    }
}

/// `GET /events` query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Only this call's events.
    call: Option<u64>,
}

async fn events(
    State(state): State<AppState>,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Response {
    let filter = match query {
        Ok(Query(q)) => q.call.map(CallId),
        Err(e) => return bad_request(e.body_text()),
    };
    // Subscribed before the headers go out: the client may act as soon as it has them.
    let receiver = state.handle.events.subscribe();
    let stream = feed(receiver, filter, state.stop.clone());
    (
        [
            (header::CONTENT_TYPE, "application/x-ndjson"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(stream),
    )
        .into_response()
}

/// The lines of one follower: events (filtered), lag notices, until shutdown or the dialer goes.
fn feed(
    receiver: broadcast::Receiver<ApiEvent>,
    filter: Option<CallId>,
    stop: watch::Receiver<bool>,
) -> impl futures_util::Stream<Item = Result<Bytes, Infallible>> {
    futures_util::stream::unfold(
        (receiver, stop),
        move |(mut receiver, mut stop)| async move {
            loop {
                let received = tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopping| *stopping) => return None,
                    received = receiver.recv() => received,
                };
                let line = match received {
                    Ok(event) if filter.is_none() || event.call() == filter => {
                        FeedLine::Event(event)
                    }
                    Ok(_) => continue,
                    Err(broadcast::error::RecvError::Lagged(missed)) => FeedLine::Lagged { missed },
                    Err(broadcast::error::RecvError::Closed) => return None,
                };
                return Some((Ok(Bytes::from(line.to_line())), (receiver, stop)));
            }
        },
    )
}

/// The API's own address: the socket it listens on and `[api] allowed_hosts`.
#[derive(Debug)]
struct OwnAddress {
    listen: SocketAddr,
    allowed_hosts: Vec<String>,
}

/// The media types a POST body may have. A browser sends `text/plain`,
/// `application/x-www-form-urlencoded` and `multipart/form-data` cross-site without a CORS
/// preflight, so none of them is accepted (a route that takes CSV would add `text/csv`).
/// None of these is a type a page may send cross-site without a CORS preflight (Fetch
/// standard, CORS-safelisted request headers), so a browser cannot be used to post them.
const POST_TYPES: &[&str] = &["application/json", "text/csv", "application/toml"];

/// `host[:port]` split, lowercase; an IPv6 host keeps its brackets. `None` when malformed.
fn split_authority(authority: &str) -> Option<(String, Option<u16>)> {
    let authority = authority.to_ascii_lowercase();
    let (host, port) = if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        match rest {
            "" => (host.to_owned(), None),
            _ => (host.to_owned(), Some(rest.strip_prefix(':')?)),
        }
    } else {
        match authority.split_once(':') {
            Some((_, port)) if port.contains(':') => return None,
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (authority.clone(), None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse::<u16>().ok()?),
        None => None,
    };
    Some((host, port))
}

impl OwnAddress {
    /// `authority` (a `Host`, or an `Origin`'s host and port) names this API. `default_port`
    /// is the port a missing one means (80 for `Host` and `http:`, 443 for `https:`);
    /// `listener` is false for an `https:` origin, which only a proxy can serve.
    fn accepts(&self, authority: &str, default_port: u16, listener: bool) -> bool {
        let Some((host, port)) = split_authority(authority) else {
            return false;
        };
        if listener && port.unwrap_or(default_port) == self.listen.port() {
            let ip = host.trim_start_matches('[').trim_end_matches(']');
            let listen_ip = self.listen.ip().to_canonical();
            match ip.parse::<std::net::IpAddr>() {
                // An IP literal is never a rebound name; on 0.0.0.0 or [::] any address of
                // the machine can be the one the client connected to.
                Ok(ip) if listen_ip.is_unspecified() || ip.to_canonical() == listen_ip => {
                    return true
                }
                Ok(_) => {}
                Err(_) if host == "localhost" && listen_ip.is_loopback() => return true,
                Err(_) => {}
            }
        }
        self.allowed_hosts
            .iter()
            .any(|entry| match split_authority(entry) {
                Some((h, None)) => h == host,
                Some((h, Some(p))) => h == host && port.unwrap_or(default_port) == p,
                None => false,
            })
    }
}

/// Refuses what a browser could be made to send from another site: a `Host` that is not the
/// API's (DNS rebinding: a page whose name now resolves to this address), an `Origin` that is
/// not the API's own (403), and a POST whose body is not `application/json` (415).
async fn refuse_cross_site(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    let own = &state.own;
    let host = match request.headers().get(header::HOST) {
        Some(value) => value.to_str().ok().map(str::to_owned),
        // HTTP/2 carries it in the URI (`:authority`).
        None => request.uri().authority().map(|a| a.as_str().to_owned()),
    };
    if !host.is_some_and(|h| own.accepts(&h, 80, true)) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "the Host header is not this API's address: expected {}{} or a name of \
                 [api] allowed_hosts",
                own.listen,
                if own.listen.ip().is_loopback() {
                    format!(", localhost:{}", own.listen.port())
                } else {
                    String::new()
                }
            ),
        );
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .ok()
            .is_some_and(|o| match o.split_once("://") {
                Some((scheme, authority)) if scheme.eq_ignore_ascii_case("http") => {
                    own.accepts(authority, 80, true)
                }
                Some((scheme, authority)) if scheme.eq_ignore_ascii_case("https") => {
                    own.accepts(authority, 443, false)
                }
                _ => false,
            });
        if !ok {
            return error(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "the Origin header is not this API's own origin: expected none, \
                     http://{} or an [api] allowed_hosts name",
                    own.listen
                ),
            );
        }
    }
    if request.method() == axum::http::Method::POST {
        let media_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
        if !media_type.is_some_and(|t| POST_TYPES.contains(&t.as_str())) {
            return error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!(
                    "expected Content-Type: {} (an empty body too)",
                    POST_TYPES.join(" or ")
                ),
            );
        }
    }
    next.run(request).await
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "not_found", "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn feed_lines_round_trip_including_lagged_and_unknown_events() {
        let event = FeedLine::Event(ApiEvent::EarlyMedia {
            call: CallId(3),
            tag: None,
        });
        let lagged = FeedLine::Lagged { missed: 7 };
        let newer = FeedLine::Other(serde_json::json!({"event": "from_the_future", "x": 1}));
        for line in [event, lagged, newer] {
            let bytes = line.to_line();
            assert_eq!(bytes.last(), Some(&b'\n'));
            let text = std::str::from_utf8(&bytes[..bytes.len() - 1]).unwrap();
            assert_eq!(FeedLine::parse(text).unwrap(), line);
        }
        assert_eq!(
            FeedLine::Lagged { missed: 7 }.to_line(),
            b"{\"event\":\"lagged\",\"missed\":7}\n"
        );
        assert!(FeedLine::parse("{\"no_event\":1}").is_err());
    }

    #[test]
    fn originate_errors_name_the_field() {
        let type_error = parse_originate(br#"{"number": 5, "agent": "1001"}"#).unwrap_err();
        assert!(
            type_error.starts_with("`number`: invalid type"),
            "{type_error}"
        );
        let missing = parse_originate(br#"{"number": "5551234"}"#).unwrap_err();
        assert!(
            missing.contains("exactly one of \"agent\" and \"pool\""),
            "{missing}"
        );
        let unknown = parse_originate(br#"{"number":"1","agent":"2","ringbak":"x"}"#).unwrap_err();
        assert!(unknown.contains("unknown field `ringbak`"), "{unknown}");
        let empty = parse_originate(br#"{"number":" ","agent":"2"}"#).unwrap_err();
        assert_eq!(empty, "`number` must not be empty");
        let injected =
            parse_originate(b"{\"number\":\"1\\r\\nVia: x\",\"agent\":\"2\"}").unwrap_err();
        assert_eq!(injected, "`number` must not contain control characters");
        let trailing = parse_originate(br#"{"number":"1","agent":"2"} {}"#).unwrap_err();
        assert!(trailing.starts_with("trailing characters"), "{trailing}");
        assert!(parse_originate(b"  ")
            .unwrap_err()
            .starts_with("the body is empty"));
    }

    #[test]
    fn control_errors_map_to_client_error_statuses() {
        assert_eq!(
            status_for(&ControlError::NoSuchCall(1)),
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            status_for(&ControlError::AgentBusy("1".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            status_for(&ControlError::QueueFull {
                trunk: "t".into(),
                queued: 1000,
                max_queue: 1000
            }),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            status_for(&ControlError::NoSuchTrunk("t".into())),
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }

    #[test]
    fn bearer_scheme_is_case_insensitive_and_empty_tokens_are_none() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("bEaReR  s3cret "),
        );
        assert_eq!(bearer(&headers), Some("s3cret"));
        headers.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic czNjcmV0"),
        );
        assert_eq!(bearer(&headers), None);
        headers.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer "));
        assert_eq!(bearer(&headers), None);
    }
}
