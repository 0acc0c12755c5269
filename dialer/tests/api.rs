//! The control API over real loopback HTTP, against a fake dialer task that answers
//! `ControlRequest`s and publishes `ApiEvent`s; and the real `dialer` binary's `call`, `calls`,
//! `agents` and `hangup` against it.
//!
//! Every wait is bounded: HTTP exchanges by the client's global timeout, the binary by a
//! channel `recv_timeout`; synchronisation is by causality (an event stream's response headers
//! arrive after the server subscribed), never by sleeping.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use dialer::api::{self, ApiError, FeedLine};
use dialer::b2bua::{AgentState, CallOutcome};
use dialer::control::{
    AgentInfo, ApiEvent, CallId, CallInfo, CallState, Cdr, ControlError, ControlHandle,
    ControlRequest, HungUpBy, LadderLine, OriginateRequest, TrunkInfo,
};
use dialer::metrics::{self, Metrics};
use dialer::paths::MediaDirs;
use tokio::sync::{broadcast, mpsc, oneshot};

const TIMEOUT: Duration = Duration::from_secs(15);
const TOKEN: &str = "s3cret-token";

/// The call id the fake dialer gives events of a call nobody asked for.
const OTHER_CALL: CallId = CallId(999);

struct Setup {
    token: Option<&'static str>,
    capacity: usize,
    dialer: bool,
    /// `[api] allowed_hosts`.
    allowed_hosts: Vec<String>,
    /// `[media] record_dir`, `ringback_dir`, `pcap_dir`.
    dirs: MediaDirs,
    /// The counters of `GET /metrics`, as the signalling task shares them.
    metrics: Option<Arc<Metrics>>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            token: None,
            capacity: 64,
            dialer: true,
            allowed_hosts: Vec::new(),
            dirs: MediaDirs::default(),
            metrics: None,
        }
    }
}

/// A fresh directory for one test.
fn scratch(test: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("dialer-api-{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Every request path confined to `dir`.
fn dirs_in(dir: &std::path::Path) -> MediaDirs {
    MediaDirs {
        record: Some(dir.to_owned()),
        ringback: Some(dir.to_owned()),
        pcap: Some(dir.to_owned()),
    }
}

/// The API on a free loopback port, on its own runtime thread, with a fake dialer.
struct Harness {
    base: String,
    bursts: mpsc::UnboundedSender<Vec<ApiEvent>>,
    originated: Arc<Mutex<Vec<OriginateRequest>>>,
    /// The reasons of the pause requests the fake dialer got.
    paused: Arc<Mutex<Vec<String>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), ApiError>>>,
}

impl Harness {
    fn start(setup: Setup) -> Harness {
        let (addr_tx, addr_rx) = std::sync::mpsc::channel::<SocketAddr>();
        let (bursts, bursts_rx) = mpsc::unbounded_channel();
        let (stop, stop_rx) = oneshot::channel::<()>();
        let originated = Arc::new(Mutex::new(Vec::new()));
        let seen = originated.clone();
        let paused = Arc::new(Mutex::new(Vec::new()));
        let paused_seen = paused.clone();
        let thread = std::thread::spawn(move || {
            // One thread: a burst published by the fake dialer runs without the event streams
            // being polled in between, which is what makes the lag test exact.
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a current-thread runtime builds");
            runtime.block_on(async move {
                let (requests, requests_rx) = mpsc::channel(16);
                let (events, _) = broadcast::channel(setup.capacity);
                let handle = ControlHandle {
                    requests,
                    events: events.clone(),
                };
                let api = api::bind(
                    "127.0.0.1:0".parse().unwrap(),
                    setup.token.map(String::from),
                )
                .await?
                .allow_hosts(setup.allowed_hosts)
                .confine_paths(setup.dirs);
                let api = match setup.metrics {
                    Some(metrics) => api.metrics(metrics),
                    None => api,
                };
                addr_tx.send(api.local_addr()?).unwrap();
                if setup.dialer {
                    tokio::spawn(fake_dialer(
                        requests_rx,
                        bursts_rx,
                        events,
                        seen,
                        paused_seen,
                    ));
                } else {
                    drop(requests_rx);
                }
                api.run(handle, async move {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let addr = addr_rx.recv_timeout(TIMEOUT).expect("the API binds");
        Harness {
            base: format!("http://{addr}"),
            bursts,
            originated,
            paused,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Has the fake dialer publish these events back to back.
    fn publish(&self, events: Vec<ApiEvent>) {
        self.bursts.send(events).unwrap();
    }

    /// Stops the API and returns what `run` returned.
    fn shut_down(mut self) -> Result<(), ApiError> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn call_info(id: CallId, number: &str, agent: &str) -> CallInfo {
    CallInfo {
        id,
        number: number.into(),
        agent: Some(agent.into()),
        pool: None,
        tag: None,
        trunk: "carrier".into(),
        state: CallState::Dialing,
        age_s: 0.0,
    }
}

fn agents() -> Vec<AgentInfo> {
    vec![
        AgentInfo {
            extension: "1001".into(),
            contact: Some("<sip:1001@192.168.1.20:5062;ob>;+sip.instance=\"<urn:uuid:1>\"".into()),
            source: Some("203.0.113.9:40112".parse().unwrap()),
            nat: true,
            expires_in_s: Some(290),
            user_agent: Some("baresip".into()),
            busy: false,
            state: AgentState::Ready,
            reason: None,
            state_since: 1000.0,
            state_for_s: 12.0,
            calls_taken: 0,
            call: None,
            pools: vec!["sales".into()],
        },
        AgentInfo {
            extension: "1002".into(),
            contact: Some("sip:1002@198.51.100.4".into()),
            source: None,
            nat: false,
            expires_in_s: None,
            user_agent: None,
            busy: true,
            state: AgentState::Talking,
            reason: None,
            state_since: 1000.0,
            state_for_s: 95.0,
            calls_taken: 3,
            call: Some(CallId(2)),
            pools: vec![],
        },
    ]
}

fn trunks() -> Vec<TrunkInfo> {
    vec![
        TrunkInfo {
            name: "carrier".into(),
            proxy: "198.51.100.1:5060".parse().unwrap(),
            transport: "udp".into(),
            state: "registered".into(),
            expires_in_s: Some(540),
            contact: Some("sip:dialer@203.0.113.10:5060".into()),
            attempts: None,
            retry_in_s: None,
            error: None,
            calls: 2,
            queued: 0,
            max_channels: Some(30),
            max_cps: None,
        },
        TrunkInfo {
            name: "backup".into(),
            proxy: "198.51.100.2:5060".parse().unwrap(),
            transport: "tcp".into(),
            state: "retrying".into(),
            expires_in_s: None,
            contact: None,
            attempts: Some(3),
            retry_in_s: Some(7.5),
            error: Some("503 Service Unavailable".into()),
            calls: 0,
            queued: 0,
            max_channels: None,
            max_cps: None,
        },
    ]
}

fn sip(call: CallId, t: f64, dir: &str, what: &str, cseq: &str) -> ApiEvent {
    ApiEvent::Sip(LadderLine {
        t,
        dir: dir.into(),
        peer: "198.51.100.1:5060".parse().unwrap(),
        transport: "udp".into(),
        what: what.into(),
        cseq: cseq.into(),
        call: Some(call),
    })
}

fn cdr(call: CallId, bridged: bool) -> Box<Cdr> {
    Box::new(Cdr {
        id: call,
        customer_call_id: "c1@dialer".into(),
        agent_call_id: bridged.then(|| "a1@dialer".into()),
        number: "5551234".into(),
        dialled: "+15551234".into(),
        agent: Some("1001".into()),
        pool: None,
        tag: None,
        agent_attempts: 1,
        connect_ms: bridged.then_some(2500),
        trunk: "carrier".into(),
        created: 1000.0,
        progress: Some(1000.4),
        answered: bridged.then_some(1003.0),
        bridged: bridged.then_some(1005.5),
        ended: if bridged { 1065.5 } else { 1001.0 },
        outcome: if bridged {
            CallOutcome::Bridged
        } else {
            CallOutcome::Busy
        },
        sip_status: if bridged { 200 } else { 486 },
        q850_cause: if bridged { 16 } else { 17 },
        hung_up_by: if bridged {
            HungUpBy::Agent
        } else {
            HungUpBy::Customer
        },
        customer_codec: bridged.then(|| "PCMA".into()),
        agent_codec: bridged.then(|| "opus".into()),
        packets_to_agent: if bridged { 3000 } else { 0 },
        packets_to_customer: if bridged { 2997 } else { 0 },
        lost_from_customer: 0,
        lost_from_agent: if bridged { 3 } else { 0 },
    })
}

/// What the fake dialer publishes after originating: number `486` is busy, others bridge.
/// Events of another call and of agents are interleaved, as on a busy dialer.
fn script(call: CallId, number: &str) -> Vec<ApiEvent> {
    let created = ApiEvent::CallCreated {
        call,
        number: number.into(),
        agent: Some("1001".into()),
        trunk: "carrier".into(),
        pool: None,
        tag: None,
    };
    if number == "486" {
        return vec![
            created,
            sip(call, 0.001, "out", "INVITE", "1 INVITE"),
            ApiEvent::Progress {
                call,
                status: 180,
                tag: None,
            },
            ApiEvent::Progress {
                call: OTHER_CALL,
                status: 183,
                tag: None,
            },
            sip(call, 0.9, "in", "486 Busy Here", "1 INVITE"),
            ApiEvent::Hangup {
                call,
                cdr: cdr(call, false),
                tag: None,
            },
        ];
    }
    vec![
        created,
        sip(call, 0.001, "out", "INVITE", "1 INVITE"),
        sip(
            call,
            0.030,
            "in",
            "407 Proxy Authentication Required",
            "1 INVITE",
        ),
        sip(call, 0.031, "out", "INVITE", "2 INVITE"),
        ApiEvent::Progress {
            call,
            status: 183,
            tag: None,
        },
        ApiEvent::Hangup {
            call: OTHER_CALL,
            cdr: cdr(OTHER_CALL, false),
            tag: None,
        },
        ApiEvent::EarlyMedia { call, tag: None },
        sip(call, 3.0, "in", "200 OK", "2 INVITE"),
        ApiEvent::Answered {
            call,
            codec: "PCMA".into(),
            tag: None,
        },
        ApiEvent::RingbackStarted { call, tag: None },
        ApiEvent::AgentRinging {
            call,
            agent: "1001".into(),
            tag: None,
        },
        ApiEvent::AgentRegistered {
            extension: "1003".into(),
            contact: "sip:1003@10.0.0.3".into(),
            source: "203.0.113.7:5060".parse().unwrap(),
            nat: true,
        },
        ApiEvent::Bridged {
            call,
            agent_codec: "opus".into(),
            transcoding: true,
            agent: "1001".into(),
            tag: None,
        },
        sip(call, 65.5, "in", "BYE", "1 BYE"),
        ApiEvent::Hangup {
            call,
            cdr: cdr(call, true),
            tag: None,
        },
    ]
}

async fn fake_dialer(
    mut requests: mpsc::Receiver<ControlRequest>,
    mut bursts: mpsc::UnboundedReceiver<Vec<ApiEvent>>,
    events: broadcast::Sender<ApiEvent>,
    originated: Arc<Mutex<Vec<OriginateRequest>>>,
    paused: Arc<Mutex<Vec<String>>>,
) {
    let mut next = 1;
    loop {
        tokio::select! {
            Some(request) = requests.recv() => match request {
                ControlRequest::Originate(request, reply) => {
                    originated.lock().unwrap().push(request.clone());
                    if request.agent.as_deref() == Some("1002") {
                        let _ = reply.send(Err(ControlError::AgentBusy("1002".into())));
                        continue;
                    }
                    if let Some(trunk) = request.trunk.filter(|t| t != "carrier") {
                        let _ = reply.send(Err(ControlError::NoSuchTrunk(trunk)));
                        continue;
                    }
                    let call = CallId(next);
                    next += 1;
                    let _ = reply.send(Ok(call_info(call, &request.number, request.agent.as_deref().unwrap_or(""))));
                    for event in script(call, &request.number) {
                        let _ = events.send(event);
                    }
                }
                ControlRequest::ListCalls(reply) => {
                    let _ = reply.send(vec![
                        call_info(CallId(1), "5551234", "1001"),
                        call_info(CallId(2), "5559876", "1003"),
                    ]);
                }
                ControlRequest::Hangup(call, reply) => {
                    let answer = if call == CallId(1) {
                        Ok(())
                    } else {
                        Err(ControlError::NoSuchCall(call.0))
                    };
                    let _ = reply.send(answer);
                }
                ControlRequest::ListAgents(reply) => {
                    let _ = reply.send(agents());
                }
                ControlRequest::ListTrunks(reply) => {
                    let _ = reply.send(trunks());
                }
                ControlRequest::ListBans(reply) => {
                    let _ = reply.send(Vec::new());
                }
                ControlRequest::LiftBan(_, reply) => {
                    let _ = reply.send(false);
                }
                ControlRequest::PauseAgent(extension, reason, reply) => {
                    let answer = match extension.as_str() {
                        "1001" => Ok(()),
                        "1002" => Err(ControlError::AgentLoggedOut(extension)),
                        _ => Err(ControlError::NoSuchAgent(extension)),
                    };
                    paused.lock().unwrap().push(reason);
                    let _ = reply.send(answer);
                }
                ControlRequest::LoginAgent(extension, reply)
                | ControlRequest::LogoutAgent(extension, reply) => {
                    let answer = match extension.as_str() {
                        "1001" => Ok(()),
                        _ => Err(ControlError::NoSuchAgent(extension)),
                    };
                    let _ = reply.send(answer);
                }
                ControlRequest::ReadyAgent(extension, reply) => {
                    let answer = match extension.as_str() {
                        "1001" => Ok(()),
                        _ => Err(ControlError::NoSuchAgent(extension)),
                    };
                    let _ = reply.send(answer);
                }
            },
            Some(burst) = bursts.recv() => {
                for event in burst {
                    let _ = events.send(event);
                }
            }
            else => break,
        }
    }
}

fn http() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(TIMEOUT))
        .build()
        .into()
}

struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("{e}: not JSON: {:?}", self.body))
    }
}

fn send(method: &str, url: &str, token: Option<&str>, body: Option<&str>) -> Answer {
    let mut request = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        request = request.header("Authorization", format!("Bearer {token}"));
    }
    let response = match body {
        Some(body) => http().run(
            request
                .header("Content-Type", "application/json")
                .body(body.to_owned())
                .unwrap(),
        ),
        // Every POST is JSON, an empty one too: anything else is 415.
        None if method == "POST" => http().run(
            request
                .header("Content-Type", "application/json")
                .body(())
                .unwrap(),
        ),
        None => http().run(request.body(()).unwrap()),
    };
    let mut response = response.unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body: response.body_mut().read_to_string().unwrap(),
    }
}

/// Opens `GET path`; returns once the headers arrived, so the server has subscribed.
fn open_events(h: &Harness, path: &str) -> (ureq::http::HeaderMap, impl BufRead) {
    let response = http()
        .get(h.url(path))
        .call()
        .unwrap_or_else(|e| panic!("GET {path}: {e}"));
    assert_eq!(response.status().as_u16(), 200, "GET {path}");
    let headers = response.headers().clone();
    (headers, BufReader::new(response.into_body().into_reader()))
}

fn next_line(stream: &mut impl BufRead) -> FeedLine {
    let mut line = String::new();
    let read = stream
        .read_line(&mut line)
        .expect("a line within the timeout");
    assert!(read > 0, "the stream ended early");
    assert!(line.ends_with('\n'), "one event per line: {line:?}");
    FeedLine::parse(line.trim_end()).unwrap_or_else(|e| panic!("{e}: {line:?}"))
}

#[test]
fn health_answers_ok() {
    let h = Harness::start(Setup::default());
    let answer = send("GET", &h.url("/health"), None, None);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.json()["status"], "ok");
}

#[test]
fn health_is_503_when_the_dialer_task_is_gone_and_requests_get_unavailable() {
    let h = Harness::start(Setup {
        dialer: false,
        ..Setup::default()
    });
    let health = send("GET", &h.url("/health"), None, None);
    assert_eq!(health.status, 503);
    assert_eq!(health.json()["status"], "dialer_stopped");
    let calls = send("GET", &h.url("/calls"), None, None);
    assert_eq!(calls.status, 503);
    assert_eq!(calls.json()["error"], "unavailable");
}

#[test]
fn every_route_wants_the_bearer_token_when_one_is_set() {
    let h = Harness::start(Setup {
        token: Some(TOKEN),
        ..Setup::default()
    });
    let originate = r#"{"number":"5551234","agent":"1001"}"#;
    let routes: [(&str, &str, Option<&str>, u16); 8] = [
        ("GET", "/health", None, 200),
        ("GET", "/calls", None, 200),
        ("POST", "/calls", Some(originate), 201),
        ("DELETE", "/calls/1", None, 204),
        ("GET", "/agents", None, 200),
        ("GET", "/events", None, 200),
        ("GET", "/metrics", None, 200),
        ("GET", "/no-such-route", None, 404),
    ];
    for (method, path, body, ok) in routes {
        let missing = send(method, &h.url(path), None, body);
        assert_eq!(missing.status, 401, "{method} {path} without a token");
        assert_eq!(
            missing.headers["www-authenticate"], r#"Bearer realm="dialer""#,
            "{method} {path}"
        );
        assert_eq!(missing.json()["error"], "unauthorized");

        let wrong = send(method, &h.url(path), Some("s3cret-tokem"), body);
        assert_eq!(wrong.status, 401, "{method} {path} with a wrong token");
        let challenge = wrong.headers["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains(r#"error="invalid_token""#),
            "{challenge}"
        );

        let longer = send(method, &h.url(path), Some("s3cret-token-and-more"), body);
        assert_eq!(longer.status, 401, "{method} {path} with a longer token");

        if path == "/events" {
            // A stream never ends by itself: the status and headers are the answer.
            let response = http()
                .get(h.url(path))
                .header("Authorization", format!("Bearer {TOKEN}"))
                .call()
                .unwrap();
            assert_eq!(response.status().as_u16(), ok);
            continue;
        }
        let right = send(method, &h.url(path), Some(TOKEN), body);
        assert_eq!(
            right.status, ok,
            "{method} {path} with the token: {}",
            right.body
        );
    }
}

#[test]
fn non_loopback_listen_without_a_token_is_refused() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for listen in ["0.0.0.0:8021", "[::]:8021", "192.0.2.10:8021"] {
        let (requests, _requests_rx) = mpsc::channel(1);
        let (events, _) = broadcast::channel(1);
        let handle = ControlHandle { requests, events };
        let listen: SocketAddr = listen.parse().unwrap();
        let result = runtime.block_on(async {
            tokio::time::timeout(
                TIMEOUT,
                api::serve(listen, None, handle, std::future::pending()),
            )
            .await
        });
        let error = result.expect("refused at once").unwrap_err();
        assert!(
            matches!(error, ApiError::InsecureListen(a) if a == listen),
            "{error:?}"
        );
        assert!(error.to_string().contains("without a token"), "{error}");
    }
    let error = runtime
        .block_on(api::bind(
            "127.0.0.1:0".parse().unwrap(),
            Some(String::new()),
        ))
        .unwrap_err();
    assert!(matches!(error, ApiError::EmptyToken), "{error:?}");
}

#[test]
fn originate_returns_201_with_the_call_and_hands_the_request_to_the_dialer() {
    let dir = scratch("originate");
    std::fs::write(dir.join("wait.wav"), b"RIFF").unwrap();
    let h = Harness::start(Setup {
        dirs: dirs_in(&dir),
        ..Setup::default()
    });
    let body = r#"{"number":"5551234","agent":"1001","trunk":"carrier",
                  "ringback":"wait.wav","record":"call.wav"}"#;
    let answer = send("POST", &h.url("/calls"), None, Some(body));
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.headers["location"], "/calls/1");
    let info: CallInfo = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(info, call_info(CallId(1), "5551234", "1001"));
    assert_eq!(
        h.originated.lock().unwrap().as_slice(),
        &[OriginateRequest {
            number: "5551234".into(),
            agent: Some("1001".into()),
            trunk: Some("carrier".into()),
            ringback: Some(dir.join("wait.wav")),
            record: Some(dir.join("call.wav")),
            pcap: None,
            ..OriginateRequest::default()
        }]
    );
}

#[test]
fn refused_originates_are_4xx_with_the_control_error_as_body() {
    let h = Harness::start(Setup::default());
    let busy = send(
        "POST",
        &h.url("/calls"),
        None,
        Some(r#"{"number":"5551234","agent":"1002"}"#),
    );
    assert_eq!(busy.status, 409);
    assert_eq!(
        busy.json(),
        serde_json::json!({"error": "agent_busy", "detail": "1002"})
    );
    let trunk = send(
        "POST",
        &h.url("/calls"),
        None,
        Some(r#"{"number":"5551234","agent":"1001","trunk":"elsewhere"}"#),
    );
    assert_eq!(trunk.status, 422);
    assert_eq!(
        trunk.json(),
        serde_json::json!({"error": "no_such_trunk", "detail": "elsewhere"})
    );
}

#[test]
fn malformed_originate_is_400_naming_the_problem() {
    let h = Harness::start(Setup::default());
    let cases = [
        (
            r#"{"number": 5551234, "agent": "1001"}"#,
            "`number`: invalid type",
        ),
        (
            r#"{"number": "5551234"}"#,
            "exactly one of \"agent\" and \"pool\"",
        ),
        (
            r#"{"number": "1", "agent": "1001", "pool": "sales"}"#,
            "exactly one of \"agent\" and \"pool\"",
        ),
        (r#"{"number":"1","pool":""}"#, "`pool` must not be empty"),
        (
            r#"{"number":"1","pool":"sales","agent_headers":{"Via":"x"}}"#,
            "not an X- header name",
        ),
        (
            r#"{"number":"1","pool":"sales","agent_headers":{"X-Lead":"a\r\nVia: x"}}"#,
            "control characters",
        ),
        (
            r#"{"number":"1","agent":"2","ringbak":"x.wav"}"#,
            "unknown field `ringbak`",
        ),
        (r#"{"number":"1","agent":""}"#, "`agent` must not be empty"),
        (
            r#"{"number":"1","agent":"2","record":7}"#,
            "`record`: invalid type",
        ),
        ("not json", "expected"),
        ("", "the body is empty"),
    ];
    for (body, expected) in cases {
        let answer = send("POST", &h.url("/calls"), None, Some(body));
        assert_eq!(answer.status, 400, "{body}");
        let json = answer.json();
        assert_eq!(json["error"], "bad_request", "{body}");
        let detail = json["detail"].as_str().unwrap();
        assert!(detail.contains(expected), "{body}: {detail}");
    }
    assert!(h.originated.lock().unwrap().is_empty());
}

#[test]
fn a_pool_originate_with_tag_and_agent_headers_reaches_the_dialer() {
    let h = Harness::start(Setup::default());
    let body =
        r#"{"number":"5551234","pool":"sales","tag":"lead-42/1","agent_headers":{"X-Lead":"42"}}"#;
    let answer = send("POST", &h.url("/calls"), None, Some(body));
    assert_eq!(answer.status, 201, "{}", answer.body);
    let sent = h.originated.lock().unwrap().clone();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].pool.as_deref(), Some("sales"));
    assert_eq!(sent[0].agent, None);
    assert_eq!(sent[0].tag.as_deref(), Some("lead-42/1"));
    assert_eq!(
        sent[0].agent_headers.get("X-Lead").map(String::as_str),
        Some("42")
    );
}

#[test]
fn pause_and_ready_answer_204_and_name_unknown_or_logged_out_agents() {
    let h = Harness::start(Setup::default());
    let pause = send(
        "POST",
        &h.url("/agents/1001/pause"),
        None,
        Some(r#"{"reason": "lunch"}"#),
    );
    assert_eq!(pause.status, 204, "{}", pause.body);
    let pause = send("POST", &h.url("/agents/1001/pause"), None, Some(""));
    assert_eq!(pause.status, 204, "{}", pause.body);
    assert_eq!(*h.paused.lock().unwrap(), ["lunch", "paused"]);
    let ready = send("POST", &h.url("/agents/1001/ready"), None, Some("{}"));
    assert_eq!(ready.status, 204);
    let ready = send("POST", &h.url("/agents/1001/ready"), None, None);
    assert_eq!(ready.status, 204);
    let out = send("POST", &h.url("/agents/1002/pause"), None, Some("{}"));
    assert_eq!(out.status, 409);
    assert_eq!(out.json()["error"], "agent_logged_out");
    let unknown = send("POST", &h.url("/agents/9999/ready"), None, None);
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"], "no_such_agent");
    let bad = send(
        "POST",
        &h.url("/agents/1001/pause"),
        None,
        Some(r#"{"why":"x"}"#),
    );
    assert_eq!(bad.status, 400);
    let bad = send(
        "POST",
        &h.url("/agents/1001/ready"),
        None,
        Some(r#"{"x":1}"#),
    );
    assert_eq!(bad.status, 400);
}

#[test]
fn dialer_agent_pause_and_ready_report_what_the_dialer_said() {
    let h = Harness::start(Setup::default());
    let out = dialer_bin(
        &[
            "agent", "pause", "1001", "--reason", "lunch", "--api", &h.base,
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "agent 1001: paused (lunch)\n");
    let out = dialer_bin(&["agent", "ready", "1001", "--api", &h.base], &[]);
    assert_eq!(text(&out.stdout), "agent 1001: ready\n");
    let out = dialer_bin(&["agent", "ready", "4242", "--api", &h.base], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("no agent 4242"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn calls_and_agents_list_what_the_dialer_says() {
    let h = Harness::start(Setup::default());
    let calls = send("GET", &h.url("/calls"), None, None);
    assert_eq!(calls.status, 200);
    let calls: Vec<CallInfo> = serde_json::from_str(&calls.body).unwrap();
    assert_eq!(calls.iter().map(|c| c.id.0).collect::<Vec<_>>(), [1, 2]);
    let answer = send("GET", &h.url("/agents"), None, None);
    assert_eq!(answer.status, 200);
    let listed: Vec<AgentInfo> = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(listed, agents());
    assert_eq!(answer.json()[0]["source"], "203.0.113.9:40112");
    let answer = send("GET", &h.url("/trunks"), None, None);
    assert_eq!(answer.status, 200);
    let listed: Vec<TrunkInfo> = serde_json::from_str(&answer.body).unwrap();
    assert_eq!(listed, trunks());
    assert_eq!(answer.json()[1]["state"], "retrying");
}

#[test]
fn dialer_trunks_prints_each_trunks_state_and_load() {
    let h = Harness::start(Setup::default());
    let out = dialer_bin(&["trunks", "--api", &h.base], &[]);
    assert_eq!(out.status.code(), Some(0));
    let table = text(&out.stdout);
    let rows: Vec<&str> = table.lines().collect();
    assert!(rows[0].starts_with("TRUNK    PROXY"), "{table}");
    assert!(
        rows[1].contains("198.51.100.1:5060/udp  registered  540")
            && rows[1].contains("2/30")
            && rows[1].ends_with("sip:dialer@203.0.113.10:5060"),
        "{table}"
    );
    assert!(
        rows[2].contains("retrying")
            && rows[2].ends_with("attempt 3 in 7.5 s after 503 Service Unavailable"),
        "{table}"
    );
    let json = dialer_bin(&["trunks", "--json", "--api", &h.base], &[]);
    let listed: Vec<TrunkInfo> = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(listed, trunks());
}

#[test]
fn hangup_is_204_for_a_live_call_404_for_an_unknown_one_and_400_for_a_bad_id() {
    let h = Harness::start(Setup::default());
    let live = send("DELETE", &h.url("/calls/1"), None, None);
    assert_eq!(live.status, 204);
    assert!(live.body.is_empty());
    let unknown = send("DELETE", &h.url("/calls/42"), None, None);
    assert_eq!(unknown.status, 404);
    assert_eq!(
        unknown.json(),
        serde_json::json!({"error": "no_such_call", "detail": 42})
    );
    let bad = send("DELETE", &h.url("/calls/forty-two"), None, None);
    assert_eq!(bad.status, 400);
    assert!(bad.json()["detail"].as_str().unwrap().contains("forty-two"));
}

#[test]
fn event_stream_is_chunked_ndjson_in_publication_order_and_filters_by_call() {
    let h = Harness::start(Setup::default());
    let (headers, mut all) = open_events(&h, "/events");
    assert_eq!(headers["content-type"], "application/x-ndjson");
    assert_eq!(headers["transfer-encoding"], "chunked");
    let (_, mut two) = open_events(&h, "/events?call=2");
    let burst = vec![
        ApiEvent::CallCreated {
            call: CallId(1),
            number: "5551234".into(),
            agent: Some("1001".into()),
            trunk: "carrier".into(),
            pool: None,
            tag: None,
        },
        ApiEvent::Progress {
            call: CallId(2),
            status: 180,
            tag: None,
        },
        ApiEvent::AgentUnregistered {
            extension: "1003".into(),
            reason: "expired".into(),
        },
        sip(CallId(2), 1.5, "in", "200 OK", "1 INVITE"),
        ApiEvent::RingbackStarted {
            call: CallId(1),
            tag: None,
        },
        ApiEvent::Answered {
            call: CallId(2),
            codec: "PCMU".into(),
            tag: None,
        },
    ];
    h.publish(burst.clone());
    for expected in &burst {
        assert_eq!(next_line(&mut all), FeedLine::Event(expected.clone()));
    }
    for expected in burst.iter().filter(|e| e.call() == Some(CallId(2))) {
        assert_eq!(next_line(&mut two), FeedLine::Event(expected.clone()));
    }
}

#[test]
fn a_lagging_follower_gets_a_lagged_line_then_the_newest_events() {
    let h = Harness::start(Setup {
        capacity: 4,
        ..Setup::default()
    });
    let (_, mut stream) = open_events(&h, "/events");
    let burst: Vec<ApiEvent> = (0..10)
        .map(|status| ApiEvent::Progress {
            call: CallId(5),
            status: 180 + status,
            tag: None,
        })
        .collect();
    h.publish(burst.clone());
    assert_eq!(next_line(&mut stream), FeedLine::Lagged { missed: 6 });
    for expected in &burst[6..] {
        assert_eq!(next_line(&mut stream), FeedLine::Event(expected.clone()));
    }
}

#[test]
fn bad_events_query_is_400() {
    let h = Harness::start(Setup::default());
    for query in ["/events?call=abc", "/events?cal=1"] {
        let answer = send("GET", &h.url(query), None, None);
        assert_eq!(answer.status, 400, "{query}");
        assert_eq!(answer.json()["error"], "bad_request");
    }
}

#[test]
fn shutdown_ends_open_event_streams_and_serve_returns_ok() {
    let h = Harness::start(Setup::default());
    let (_, mut stream) = open_events(&h, "/events");
    h.publish(vec![ApiEvent::EarlyMedia {
        call: CallId(3),
        tag: None,
    }]);
    assert_eq!(
        next_line(&mut stream),
        FeedLine::Event(ApiEvent::EarlyMedia {
            call: CallId(3),
            tag: None
        })
    );
    h.shut_down().expect("serve returns Ok after shutdown");
    let mut rest = String::new();
    assert_eq!(stream.read_line(&mut rest).expect("a clean end"), 0);
}

#[test]
fn client_lists_calls_and_reports_control_errors() {
    let h = Harness::start(Setup {
        token: Some(TOKEN),
        ..Setup::default()
    });
    let client = dialer::client::Client::new(&h.base, Some(TOKEN.into())).unwrap();
    assert_eq!(client.calls().unwrap().len(), 2);
    assert_eq!(client.agents().unwrap(), agents());
    client.hangup(CallId(1)).unwrap();
    match client.hangup(CallId(7)) {
        Err(dialer::client::ClientError::Control(ControlError::NoSuchCall(7))) => {}
        other => panic!("{other:?}"),
    }
    let wrong = dialer::client::Client::new(&h.base, Some("nope".into())).unwrap();
    assert!(matches!(
        wrong.calls(),
        Err(dialer::client::ClientError::Unauthorized(_))
    ));
}

#[test]
fn metrics_are_prometheus_text_with_the_counters_and_the_dialers_calls_agents_and_trunks() {
    let counters = Arc::new(Metrics::new());
    counters.on_cdr(&cdr(CallId(5), false));
    counters.on_cdr(&cdr(CallId(6), true));
    counters.on_sip(
        metrics::Direction::Out,
        b"INVITE sip:+15551234@carrier.test SIP/2.0\r\n\r\n",
    );
    counters.on_sip(metrics::Direction::In, b"SIP/2.0 486 Busy Here\r\n\r\n");
    let h = Harness::start(Setup {
        token: Some(TOKEN),
        metrics: Some(counters.clone()),
        ..Setup::default()
    });
    let answer = send("GET", &h.url("/metrics"), Some(TOKEN), None);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let samples: Vec<&str> = answer
        .body
        .lines()
        .filter(|l| !l.starts_with('#'))
        .collect();
    for sample in [
        r#"dialer_calls_total{outcome="busy"} 1"#,
        r#"dialer_calls_total{outcome="bridged"} 1"#,
        r#"dialer_calls_total{outcome="no_answer"} 0"#,
        r#"dialer_rtp_packets_relayed_total{to="agent"} 3000"#,
        r#"dialer_rtp_packets_lost_total{from="agent"} 3"#,
        r#"dialer_sip_requests_total{direction="out",method="INVITE"} 1"#,
        r#"dialer_sip_responses_total{direction="in",status_class="4xx"} 1"#,
        // What the fake dialer lists: two calls, 1001 ready and 1002 talking, the carrier
        // registered and the backup retrying.
        "dialer_calls_in_progress 2",
        r#"dialer_agents{state="ready"} 1"#,
        r#"dialer_agents{state="talking"} 1"#,
        r#"dialer_agents{state="paused"} 0"#,
        r#"dialer_trunk_registered{trunk="carrier"} 1"#,
        r#"dialer_trunk_registered{trunk="backup"} 0"#,
    ] {
        assert!(
            samples.contains(&sample),
            "{sample} missing from\n{}",
            answer.body
        );
    }
    // No campaign runner: no campaign series.
    assert!(!answer.body.contains("dialer_campaign"), "{}", answer.body);

    // A counter moves between scrapes; the client reads the same text.
    counters.on_cdr(&cdr(CallId(7), false));
    let client = dialer::client::Client::new(&h.base, Some(TOKEN.into())).unwrap();
    let text = client.get_text("/metrics").unwrap();
    assert!(
        text.lines()
            .any(|l| l == r#"dialer_calls_total{outcome="busy"} 2"#),
        "{text}"
    );
}

#[test]
fn metrics_are_503_when_the_dialer_task_is_gone() {
    let h = Harness::start(Setup {
        dialer: false,
        ..Setup::default()
    });
    let answer = send("GET", &h.url("/metrics"), None, None);
    assert_eq!(answer.status, 503, "{}", answer.body);
    assert_eq!(answer.json()["error"], "unavailable");
}

/// Runs the real binary; bounded by [`TIMEOUT`].
fn dialer_bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dialer"));
    command.args(args).env_remove("NO_COLOR");
    for (key, value) in env {
        command.env(key, value);
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(command.output()));
    rx.recv_timeout(TIMEOUT)
        .expect("dialer exits in time")
        .expect("dialer runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).unwrap()
}

#[test]
fn dialer_call_prints_the_events_and_the_summary_and_exits_0_when_bridged() {
    let h = Harness::start(Setup::default());
    let out = dialer_bin(
        &["call", "5551234", "--agent", "1001", "--api", &h.base],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(
        lines,
        [
            "call 1: 5551234 via carrier for agent 1001",
            "[1] created: 5551234 via carrier, agent 1001",
            "[1] progress: 183 Session Progress",
            "[1] early media from the carrier",
            "[1] customer answered (PCMA)",
            "[1] ringback playing to the customer",
            "[1] agent 1001 ringing",
            "[1] bridged with agent 1001 (opus, transcoding)",
            "[1] hung up by the agent: bridged, SIP 200, Q.850 16",
            "bridged: SIP 200, Q.850 16 (normal call clearing), hung up by the agent; \
             setup 3.00 s, agent wait 2.50 s, talk 60.00 s; codecs customer PCMA / agent opus; \
             relayed 3000 to the agent, 2997 to the customer; \
             lost 0 (0.0%) from the customer, 3 (0.1%) from the agent",
        ]
    );
    assert!(!stdout.contains('\x1b'), "no colour when piped");
}

#[test]
fn dialer_call_prints_the_ladder_only_with_the_flag_and_passes_the_options_through() {
    let dir = scratch("call-options");
    std::fs::write(dir.join("wait.wav"), b"RIFF").unwrap();
    let h = Harness::start(Setup {
        dirs: dirs_in(&dir),
        ..Setup::default()
    });
    let out = dialer_bin(
        &[
            "call",
            "5551234",
            "--agent",
            "1001",
            "--trunk",
            "carrier",
            "--ringback",
            "wait.wav",
            "--record",
            "call.wav",
            "--pcap",
            "call.pcap",
            "--ladder",
            "--api",
            &h.base,
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let ladder: Vec<&str> = stdout.lines().filter(|l| l.contains("(CSeq ")).collect();
    assert_eq!(
        ladder,
        [
            "        0.001 --> 198.51.100.1:5060     INVITE  (CSeq 1 INVITE)",
            "        0.030 <-- 198.51.100.1:5060     407 Proxy Authentication Required  (CSeq 1 INVITE)",
            "        0.031 --> 198.51.100.1:5060     INVITE  (CSeq 2 INVITE)",
            "        3.000 <-- 198.51.100.1:5060     200 OK  (CSeq 2 INVITE)",
            "       65.500 <-- 198.51.100.1:5060     BYE  (CSeq 1 BYE)",
        ]
    );
    assert_eq!(
        h.originated.lock().unwrap().as_slice(),
        &[OriginateRequest {
            number: "5551234".into(),
            agent: Some("1001".into()),
            trunk: Some("carrier".into()),
            // The names given, joined to their configured directories by the API.
            ringback: Some(dir.join("wait.wav")),
            record: Some(dir.join("call.wav")),
            pcap: Some(dir.join("call.pcap")),
            ..OriginateRequest::default()
        }]
    );
}

#[test]
fn dialer_call_exits_1_on_a_busy_customer_with_the_cause_in_the_summary() {
    let h = Harness::start(Setup::default());
    let out = dialer_bin(&["call", "486", "--agent", "1001", "--api", &h.base], &[]);
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    let last = stdout.lines().last().unwrap();
    assert_eq!(
        last,
        "busy: SIP 486, Q.850 17 (user busy), hung up by the customer; unanswered after 1.00 s; \
         codecs customer - / agent -; relayed 0 to the agent, 0 to the customer; \
         lost 0 from the customer, 0 from the agent"
    );
    assert!(stdout.contains("[1] progress: 180 Ringing"), "{stdout}");
    assert!(!stdout.contains("[999]"), "another call's events: {stdout}");
}

#[test]
fn dialer_call_refused_by_the_dialer_exits_1_with_the_reason() {
    let h = Harness::start(Setup::default());
    let out = dialer_bin(
        &["call", "5551234", "--agent", "1002", "--api", &h.base],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(text(&out.stderr), "dialer: agent 1002 is busy\n");
}

#[test]
fn dialer_call_with_a_token_from_the_environment() {
    let h = Harness::start(Setup {
        token: Some(TOKEN),
        ..Setup::default()
    });
    let base = h.base.clone();
    let args = ["call", "5551234", "--agent", "1001", "--api", &base];
    let refused = dialer_bin(&args, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        text(&refused.stderr).contains("refused the token"),
        "{}",
        text(&refused.stderr)
    );
    let mut with_env = args.to_vec();
    with_env.extend(["--token-env", "DIALER_TEST_TOKEN"]);
    let out = dialer_bin(&with_env, &[("DIALER_TEST_TOKEN", TOKEN)]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn dialer_call_reports_an_unreachable_api() {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let api = format!("http://127.0.0.1:{port}");
    let out = dialer_bin(&["call", "5551234", "--agent", "1001", "--api", &api], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("cannot reach the dialer API"), "{stderr}");
    assert!(stderr.contains("is `dialer run` running?"), "{stderr}");
}

#[test]
fn dialer_call_standalone_gives_up_when_the_agent_does_not_register_in_time() {
    let sip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("dialer-api-standalone-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dialer.toml");
    // No registration and no call leaves the machine: the trunk is never used.
    std::fs::write(
        &config,
        format!(
            "[sip]\nlisten = \"127.0.0.1:{sip_port}\"\n\
             [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:9\"\nusername = \"dialer\"\n\
             password = \"x\"\nregister = false\n\
             [[agent]]\nextension = \"1001\"\npassword = \"agent-password\"\n"
        ),
    )
    .unwrap();
    let out = dialer_bin(
        &[
            "call",
            "5551234",
            "--agent",
            "1001",
            "--standalone",
            "--config",
            config.to_str().unwrap(),
            "--agent-wait",
            "0.3",
        ],
        &[],
    );
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "dialer: waiting up to 0.3 s for agent 1001 to register\n\
         dialer: agent 1001 did not register within 0.3 s\n"
    );
    assert!(
        out.stdout.is_empty(),
        "no call was placed: {}",
        text(&out.stdout)
    );
}

#[test]
fn dialer_call_standalone_reports_an_unreadable_config() {
    let out = dialer_bin(
        &[
            "call",
            "5551234",
            "--agent",
            "1001",
            "--standalone",
            "--config",
            "/nonexistent/dialer.toml",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("/nonexistent/dialer.toml: cannot read"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn dialer_calls_agents_and_hangup_print_tables_json_and_errors() {
    let h = Harness::start(Setup::default());
    let calls = dialer_bin(&["calls", "--api", &h.base], &[]);
    assert_eq!(calls.status.code(), Some(0));
    assert_eq!(
        text(&calls.stdout),
        "ID  NUMBER   AGENT  TRUNK    STATE    AGE_S\n\
         1   5551234  1001   carrier  dialing  0\n\
         2   5559876  1003   carrier  dialing  0\n"
    );
    let agents_out = dialer_bin(&["agents", "--json", "--api", &h.base], &[]);
    assert_eq!(agents_out.status.code(), Some(0));
    let listed: Vec<AgentInfo> = serde_json::from_slice(&agents_out.stdout).unwrap();
    assert_eq!(listed, agents());
    let table = dialer_bin(&["agents", "--api", &h.base], &[]);
    let table = text(&table.stdout);
    let rows: Vec<&str> = table.lines().collect();
    let cells = |row: &str| -> Vec<String> { row.split_whitespace().map(str::to_owned).collect() };
    assert_eq!(
        cells(rows[0])[..9],
        [
            "EXTENSION",
            "STATE",
            "FOR_S",
            "CALLS",
            "POOLS",
            "SOURCE",
            "NAT",
            "EXPIRES_S",
            "CONTACT"
        ],
        "{table}"
    );
    let first = cells(rows[1]);
    assert_eq!(
        [&first[..2], &first[3..8]].concat(),
        [
            "1001",
            "ready",
            "0",
            "sales",
            "203.0.113.9:40112",
            "yes",
            "290"
        ],
        "{table}"
    );
    let second = cells(rows[2]);
    assert_eq!(
        [&second[..2], &second[3..8]].concat(),
        ["1002", "talking", "3", "-", "-", "no", "static"],
        "{table}"
    );

    let hangup = dialer_bin(&["hangup", "1", "--api", &h.base], &[]);
    assert_eq!(hangup.status.code(), Some(0));
    assert_eq!(text(&hangup.stdout), "call 1: hanging up\n");
    let unknown = dialer_bin(&["hangup", "42", "--api", &h.base], &[]);
    assert_eq!(unknown.status.code(), Some(1));
    assert_eq!(text(&unknown.stderr), "dialer: no call 42\n");
}

#[test]
fn dialer_call_colours_events_and_the_ladder_when_asked() {
    let h = Harness::start(Setup::default());
    let out = dialer_bin(
        &[
            "call", "5551234", "--agent", "1001", "--ladder", "--color", "always", "--api", &h.base,
        ],
        &[],
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(
        stdout.contains("\x1b[32m[1] bridged with agent 1001 (opus, transcoding)\x1b[0m"),
        "{stdout}"
    );
    assert!(
        stdout.contains("\x1b[31m        0.030 <-- 198.51.100.1:5060     407 "),
        "{stdout}"
    );
    assert!(stdout.contains("\x1b[36m        0.001 --> "), "{stdout}");
}

/// One request written by hand over TCP, so `Host`, `Origin` and `Content-Type` are exactly
/// these; returns the status and the body.
fn raw(h: &Harness, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    use std::io::{Read, Write};
    let addr = h.base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {answer:?}"));
    // Bodies are small: a chunked one is a single chunk, or Content-Length.
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body.split("\r\n").nth(1).unwrap_or("").to_owned()
    } else {
        body.to_owned()
    };
    Answer {
        status,
        headers: ureq::http::HeaderMap::new(),
        body,
    }
}

const ORIGINATE: &str = r#"{"number":"5551234","agent":"1001"}"#;

#[test]
fn a_post_a_browser_sends_without_preflight_is_415_and_places_no_call() {
    let h = Harness::start(Setup::default());
    let host = h.base.trim_start_matches("http://").to_owned();
    for content_type in [
        Some("text/plain"),
        Some("text/plain;charset=UTF-8"),
        Some("application/x-www-form-urlencoded"),
        Some("multipart/form-data; boundary=x"),
        None,
    ] {
        let mut headers = vec![("Host", host.as_str())];
        if let Some(t) = content_type {
            headers.push(("Content-Type", t));
        }
        let answer = raw(&h, "POST", "/calls", &headers, ORIGINATE);
        assert_eq!(answer.status, 415, "{content_type:?}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["error"], "unsupported_media_type");
        let detail = json["detail"].as_str().unwrap();
        assert!(detail.contains("application/json"), "{detail}");
    }
    // Pause and ready too, whatever their body.
    let answer = raw(&h, "POST", "/agents/1001/ready", &[("Host", &host)], "");
    assert_eq!(answer.status, 415, "{}", answer.body);
    let answer = raw(
        &h,
        "POST",
        "/agents/1001/pause",
        &[("Host", &host), ("Content-Type", "text/plain")],
        r#"{"reason":"lunch"}"#,
    );
    assert_eq!(answer.status, 415, "{}", answer.body);
    assert!(h.originated.lock().unwrap().is_empty());
    assert!(h.paused.lock().unwrap().is_empty());
    // JSON with parameters is JSON.
    let answer = raw(
        &h,
        "POST",
        "/calls",
        &[
            ("Host", &host),
            ("Content-Type", "Application/JSON; charset=utf-8"),
        ],
        ORIGINATE,
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(h.originated.lock().unwrap().len(), 1);
}

#[test]
fn a_foreign_origin_is_403_and_places_no_call_and_the_own_origin_passes() {
    let h = Harness::start(Setup::default());
    let host = h.base.trim_start_matches("http://").to_owned();
    let port = host.rsplit(':').next().unwrap().to_owned();
    for origin in [
        "http://evil.example".to_owned(),
        format!("http://evil.example:{port}"),
        format!("https://{host}"),
        format!("http://127.0.0.2:{port}"),
        "null".to_owned(),
    ] {
        let answer = raw(
            &h,
            "POST",
            "/calls",
            &[
                ("Host", &host),
                ("Origin", &origin),
                ("Content-Type", "application/json"),
            ],
            ORIGINATE,
        );
        assert_eq!(answer.status, 403, "{origin}: {}", answer.body);
        assert_eq!(answer.json()["error"], "forbidden");
        assert!(answer.json()["detail"].as_str().unwrap().contains("Origin"));
        // A GET with a foreign origin is refused too (the body would not be readable, but
        // it must not run either).
        let get = raw(
            &h,
            "GET",
            "/calls",
            &[("Host", &host), ("Origin", &origin)],
            "",
        );
        assert_eq!(get.status, 403, "{origin}");
    }
    assert!(h.originated.lock().unwrap().is_empty());
    for origin in [format!("http://{host}"), format!("http://localhost:{port}")] {
        let answer = raw(
            &h,
            "POST",
            "/calls",
            &[
                ("Host", &host),
                ("Origin", &origin),
                ("Content-Type", "application/json"),
            ],
            ORIGINATE,
        );
        assert_eq!(answer.status, 201, "{origin}: {}", answer.body);
    }
    assert_eq!(h.originated.lock().unwrap().len(), 2);
}

#[test]
fn a_foreign_host_is_403_and_the_listen_address_localhost_and_allowed_hosts_pass() {
    let h = Harness::start(Setup {
        allowed_hosts: vec!["Dialer.Example.com".into(), "proxy.example.com:8443".into()],
        ..Setup::default()
    });
    let host = h.base.trim_start_matches("http://").to_owned();
    let port = host.rsplit(':').next().unwrap().to_owned();
    let json = ("Content-Type", "application/json");
    for foreign in [
        format!("evil.example:{port}"),
        "evil.example".to_owned(),
        format!("127.0.0.1:{}", port.parse::<u16>().unwrap().wrapping_add(1)),
        format!("localhost.evil.example:{port}"),
        "proxy.example.com:9999".to_owned(),
        "proxy.example.com".to_owned(),
        "".to_owned(),
    ] {
        let answer = raw(&h, "GET", "/health", &[("Host", &foreign)], "");
        assert_eq!(answer.status, 403, "{foreign:?}: {}", answer.body);
        assert_eq!(answer.json()["error"], "forbidden");
        let detail = answer.json()["detail"].as_str().unwrap().to_owned();
        assert!(
            detail.contains("Host") && detail.contains(&host),
            "{detail}"
        );
        let post = raw(&h, "POST", "/calls", &[("Host", &foreign), json], ORIGINATE);
        assert_eq!(post.status, 403, "{foreign:?}");
    }
    assert!(h.originated.lock().unwrap().is_empty());
    for own in [
        host.clone(),
        format!("localhost:{port}"),
        format!("LOCALHOST:{port}"),
        "dialer.example.com".to_owned(),
        "dialer.example.com:443".to_owned(),
        "proxy.example.com:8443".to_owned(),
    ] {
        let answer = raw(&h, "GET", "/health", &[("Host", &own)], "");
        assert_eq!(answer.status, 200, "{own}: {}", answer.body);
    }
    // Behind a TLS proxy the browser's origin is https and the allowed name.
    let answer = raw(
        &h,
        "POST",
        "/calls",
        &[
            ("Host", "dialer.example.com"),
            ("Origin", "https://dialer.example.com"),
            json,
        ],
        ORIGINATE,
    );
    assert_eq!(answer.status, 201, "{}", answer.body);
    // The CLI client connects to the URL it is given: its Host passes.
    let client = dialer::client::Client::new(&h.base, None).unwrap();
    client.pause_agent("1001", "lunch").unwrap();
    client.ready_agent("1001").unwrap();
    assert_eq!(h.paused.lock().unwrap().as_slice(), ["lunch"]);
}

#[test]
fn request_paths_outside_their_directories_are_422_naming_the_field() {
    let dir = scratch("paths");
    std::fs::write(dir.join("old.wav"), b"an earlier recording").unwrap();
    std::fs::write(dir.join("tone.wav"), b"RIFF").unwrap();
    let h = Harness::start(Setup {
        dirs: dirs_in(&dir),
        ..Setup::default()
    });
    for (field, name, problem) in [
        ("record", "../escape.wav", "`..`"),
        ("record", "/tmp/escape.wav", "absolute"),
        ("pcap", "sub/../../escape.pcap", "`..`"),
        ("pcap", "/etc/passwd", "absolute"),
        ("ringback", "../../etc/passwd", "`..`"),
        ("ringback", "/etc/passwd", "absolute"),
        ("ringback", "missing.wav", "no such file"),
        ("record", "old.wav", "already exists"),
        ("record", "a\u{0}b.wav", "NUL"),
    ] {
        let body = serde_json::json!({"number": "5551234", "agent": "1001", field: name});
        let answer = send("POST", &h.url("/calls"), None, Some(&body.to_string()));
        assert_eq!(answer.status, 422, "{field} {name:?}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["error"], "bad_path", "{json}");
        assert_eq!(json["detail"]["field"], field, "{json}");
        let said = json["detail"]["problem"].as_str().unwrap();
        assert!(said.contains(problem), "{field} {name:?}: {said}");
        // The server's own directory is not described to the client.
        assert!(!said.contains(dir.to_str().unwrap()), "{said}");
    }
    assert!(h.originated.lock().unwrap().is_empty(), "no call placed");
    assert_eq!(
        std::fs::read(dir.join("old.wav")).unwrap(),
        b"an earlier recording"
    );
    let body = r#"{"number":"5551234","agent":"1001","record":"new.wav","ringback":"tone.wav"}"#;
    let answer = send("POST", &h.url("/calls"), None, Some(body));
    assert_eq!(answer.status, 201, "{}", answer.body);
    let seen = h.originated.lock().unwrap()[0].clone();
    assert_eq!(seen.record, Some(dir.join("new.wav")));
    assert_eq!(seen.ringback, Some(dir.join("tone.wav")));
    assert_eq!(seen.pcap, None);
}

#[test]
fn a_path_whose_directory_is_not_configured_is_refused() {
    let h = Harness::start(Setup::default());
    for field in ["record", "pcap", "ringback"] {
        let body = serde_json::json!({"number": "5551234", "agent": "1001", field: "x.wav"});
        let answer = send("POST", &h.url("/calls"), None, Some(&body.to_string()));
        assert_eq!(answer.status, 422, "{field}: {}", answer.body);
        let json = answer.json();
        assert_eq!(json["detail"]["field"], field);
        let problem = json["detail"]["problem"].as_str().unwrap();
        assert!(
            problem.contains(&format!("[media] {field}_dir is not configured")),
            "{problem}"
        );
    }
    assert!(h.originated.lock().unwrap().is_empty());
}

/// `dialer run` with this configuration text (`{sip}` and `{api}` replaced by free ports);
/// returns its standard error lines until `until` matches one, or what came in 10 s.
fn run_log(
    args: &[&str],
    rust_log: &str,
    config_text: &str,
    until: impl Fn(&str) -> bool,
) -> Vec<String> {
    use std::io::BufRead as _;
    let sip = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let api = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = std::env::temp_dir().join(format!("dialer-run-log-{}-{sip}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dialer.toml");
    let text = config_text
        .replace("{sip}", &sip.to_string())
        .replace("{api}", &api.to_string());
    std::fs::write(&config, text).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_dialer"));
    command
        .arg("run")
        .arg("--config")
        .arg(&config)
        .args(args)
        .env("RUST_LOG", rust_log)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let mut child = command.spawn().expect("dialer run starts");
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    while let Ok(line) = rx.recv_timeout(TIMEOUT) {
        let done = until(&line);
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    std::fs::remove_dir_all(&dir).unwrap();
    lines
}

const QUIET_CONFIG: &str =
    "[sip]\nlisten = \"127.0.0.1:{sip}\"\n[api]\nlisten = \"127.0.0.1:{api}\"\n\
     [[trunk]]\nname = \"carrier\"\nproxy = \"127.0.0.1:9\"\nusername = \"dialer\"\n\
     password = \"x\"\nregister = false\n";

#[test]
fn dialer_run_logs_json_lines_with_level_target_and_message() {
    let lines = run_log(&["--log-format", "json"], "info", QUIET_CONFIG, |l| {
        l.contains("SIP on")
    });
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?} is not JSON: {e}")))
        .collect();
    let sip = parsed
        .iter()
        .find(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("SIP on"))
        })
        .unwrap_or_else(|| panic!("a SIP on line in {lines:?}"));
    assert_eq!(sip["level"], "INFO");
    assert_eq!(sip["target"], "dialer");
    let warning = parsed
        .iter()
        .find(|v| v["level"] == "WARN")
        .unwrap_or_else(|| panic!("the no-token warning in {lines:?}"));
    assert!(
        warning["fields"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("no [api] token")),
        "{warning}"
    );
}

#[test]
fn dialer_run_logs_text_lines_that_rust_log_filters() {
    let lines = run_log(&[], "info", QUIET_CONFIG, |l| l.contains("SIP on"));
    let sip = lines
        .iter()
        .find(|l| l.contains("SIP on"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    let (time, rest) = sip.split_once(' ').unwrap();
    assert!(time.ends_with('Z'), "{sip}");
    assert!(rest.starts_with("INFO dialer: SIP on 127.0.0.1:"), "{sip}");
    // RUST_LOG=warn keeps the warning and leaves the information out.
    let lines = run_log(&[], "warn", QUIET_CONFIG, |l| l.contains("no [api] token"));
    assert!(
        lines.iter().any(|l| l.contains(" WARN dialer: ")),
        "{lines:?}"
    );
    assert!(lines.iter().all(|l| !l.contains(" INFO ")), "{lines:?}");
}
