//! `dialer demo`: a whole call on loopback with no outside trunk. A simulated carrier (a
//! registrar and a UAS playing a 440 Hz tone) and a simulated agent (a softphone that
//! registers with digest, auto-answers and plays 1000 Hz) talk to the real dialer runtime
//! over UDP. The dialer prints its SIP ladder; the demo leaves the call's recording
//! (`demo.wav`), a capture of every datagram the peers exchanged with the dialer
//! (`demo.pcap`, registrations included) and the dialer's own capture of the call
//! (`demo-call.pcap`, what `dialer call --pcap` writes).
//!
//! The peers are built from the same sans-IO cores as the dialer (`sip-core` endpoints,
//! digest client and server, `media` codecs), driven by a small loop here.

use super::clock::Clock;
use super::server::{start, RunOptions};
use crate::control::{ApiEvent, Cdr, ControlRequest, OriginateRequest};
use media::codec::g711::{self, Law};
use media::rtp::{write_packet, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::{answer_offer, Codec, LocalEndpoint, MediaConfig, SessionDescription};
use rand::rngs::StdRng;
use rand::SeedableRng;
use sip_core::auth::{
    AuthOutcome, ChallengedResponse, ClientAuthState, Credentials, DigestRequest, DigestServer,
    Secret, ServerConfig, Verification,
};
use sip_core::dialog::Dialog;
use sip_core::endpoint::{make_response, Endpoint, EndpointConfig, Event, Output, Target};
use sip_core::message::{HeaderKind, HeaderName, Method, Request, Response, SipMessage, Uri};
use sip_core::time::Time;
use sip_core::transaction::{TransactionId, Transport};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

const TRUNK_PASSWORD: &str = "demo-trunk-secret";
const AGENT_PASSWORD: &str = "demo-agent-secret";

/// What the demo produced.
#[derive(Debug)]
pub struct DemoReport {
    /// The call's record.
    pub cdr: Cdr,
    /// The stereo recording (customer left, agent right).
    pub recording: PathBuf,
    /// The capture of the peers' side.
    pub pcap: PathBuf,
    /// The dialer's own capture of the call.
    pub call_pcap: PathBuf,
}

/// One captured datagram: when, from, to, payload.
type Captured = (Duration, SocketAddr, SocketAddr, Vec<u8>);

/// Every datagram the peers sent or received, for the capture.
#[derive(Clone, Default)]
struct Tap(Arc<Mutex<Vec<Captured>>>);

impl Tap {
    fn record(&self, from: SocketAddr, to: SocketAddr, bytes: &[u8]) {
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        if let Ok(mut v) = self.0.lock() {
            v.push((t, from, to, bytes.to_vec()));
        }
    }

    fn write_pcap(&self, path: &Path) -> Result<(), String> {
        use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
        use pcap_file::DataLink;
        let file = std::fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let header = PcapHeader {
            datalink: DataLink::IPV4,
            ..PcapHeader::default()
        };
        let mut w = PcapWriter::with_header(file, header).map_err(|e| e.to_string())?;
        let packets = self
            .0
            .lock()
            .map_err(|_| "capture lock poisoned".to_string())?;
        let mut sorted: Vec<_> = packets.iter().collect();
        sorted.sort_by_key(|p| p.0);
        for (t, from, to, bytes) in sorted {
            let (SocketAddr::V4(f), SocketAddr::V4(d)) = (from, to) else {
                continue;
            };
            let builder = etherparse::PacketBuilder::ipv4(f.ip().octets(), d.ip().octets(), 64)
                .udp(f.port(), d.port());
            let mut out = Vec::with_capacity(builder.size(bytes.len()));
            builder.write(&mut out, bytes).map_err(|e| e.to_string())?;
            let len = u32::try_from(out.len()).unwrap_or(u32::MAX);
            w.write_packet(&PcapPacket::new(*t, len, &out))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// A tone as 20 ms G.711 frames.
struct Tone {
    law: Law,
    freq: f64,
    phase: f64,
}

impl Tone {
    fn frame(&mut self) -> [u8; 160] {
        let mut pcm = [0i16; 160];
        for s in pcm.iter_mut() {
            *s = (self.phase.sin() * 8000.0) as i16;
            self.phase += 2.0 * std::f64::consts::PI * self.freq / 8000.0;
        }
        let mut out = [0u8; 160];
        g711::encode(self.law, &pcm, &mut out);
        out
    }
}

/// One RTP sender/receiver of a peer.
struct RtpLeg {
    sock: UdpSocket,
    local: SocketAddr,
    remote: Option<SocketAddr>,
    pt: PayloadType,
    tone: Tone,
    seq: u16,
    ts: u32,
    ssrc: Ssrc,
    received: u64,
}

impl RtpLeg {
    async fn bind(law: Law, freq: f64, ssrc: u32) -> std::io::Result<RtpLeg> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        Ok(RtpLeg {
            sock,
            local,
            remote: None,
            pt: PayloadType(if law == Law::A { 8 } else { 0 }),
            tone: Tone {
                law,
                freq,
                phase: 0.0,
            },
            seq: 1,
            ts: 0,
            ssrc: Ssrc(ssrc),
            received: 0,
        })
    }

    fn send(&mut self, tap: &Tap) {
        let Some(to) = self.remote else { return };
        let payload = self.tone.frame();
        let mut buf = [0u8; 200];
        let header = OutgoingHeader {
            marker: self.seq == 1,
            payload_type: self.pt,
            sequence: self.seq,
            timestamp: self.ts,
            ssrc: self.ssrc,
        };
        if let Ok(n) = write_packet(&mut buf, &header, &payload) {
            let _ = self.sock.try_send_to(&buf[..n], to);
            tap.record(self.local, to, &buf[..n]);
        }
        self.seq = self.seq.wrapping_add(1);
        self.ts = self.ts.wrapping_add(160);
    }

    fn drain(&mut self, tap: &Tap) {
        let mut buf = [0u8; 1500];
        while let Ok((n, from)) = self.sock.try_recv_from(&mut buf) {
            tap.record(from, self.local, &buf[..n]);
            if RtpHeader::parse(&buf[..n]).is_ok() {
                self.received += 1;
            }
        }
    }
}

/// A SIP peer: socket, endpoint, tap.
struct Peer {
    sock: UdpSocket,
    local: SocketAddr,
    endpoint: Endpoint,
}

impl Peer {
    async fn bind(seed: u64) -> std::io::Result<Peer> {
        let sock = UdpSocket::bind("127.0.0.1:0").await?;
        let local = sock.local_addr()?;
        let endpoint = Endpoint::new(
            EndpointConfig::new(local),
            Box::new(StdRng::seed_from_u64(seed)),
        );
        Ok(Peer {
            sock,
            local,
            endpoint,
        })
    }

    /// Sends what the endpoint queued; returns its events.
    fn flush(&mut self, tap: &Tap) -> Vec<Event> {
        let mut events = vec![];
        while let Some(o) = self.endpoint.poll_output() {
            match o {
                Output::Transmit(t) => {
                    let _ = self.sock.try_send_to(&t.bytes, t.to);
                    tap.record(self.local, t.to, &t.bytes);
                }
                Output::Event(e) => events.push(e),
            }
        }
        events
    }

    fn receive(&mut self, now: Time, tap: &Tap) {
        let mut buf = vec![0u8; 65_535];
        while let Ok((n, from)) = self.sock.try_recv_from(&mut buf) {
            tap.record(from, self.local, &buf[..n]);
            self.endpoint
                .handle_datagram(now, Transport::Udp, from, &buf[..n]);
        }
    }
}

fn sdp_answer(offer: &Request, codec: Codec, rtp: SocketAddr) -> Option<Vec<u8>> {
    let offer = SessionDescription::parse_bytes(&offer.body).ok()?;
    let config = MediaConfig {
        codecs: vec![codec],
        ..MediaConfig::default()
    };
    let local = LocalEndpoint {
        address: rtp.ip(),
        rtp_port: rtp.port(),
        session_id: 42,
        session_version: 1,
    };
    let (answer, negotiated) = answer_offer(&offer, &config, &local).ok()?;
    let _ = negotiated;
    Some(answer.to_sdp_string().into_bytes())
}

fn remote_rtp(sdp: &[u8]) -> Option<SocketAddr> {
    let s = SessionDescription::parse_bytes(sdp).ok()?;
    let m = s.media.first()?;
    let ip = s.connection_for(0)?.ip()?;
    Some(SocketAddr::new(ip, m.port))
}

/// The state of the two simulated peers.
struct Peers {
    clock: Clock,
    tap: Tap,
    carrier: Peer,
    carrier_rtp: RtpLeg,
    digest: DigestServer,
    carrier_call: Option<(Dialog, SocketAddr)>,
    carrier_answer_at: Option<(Time, TransactionId, Request)>,
    agent: Peer,
    agent_rtp: RtpLeg,
    agent_auth: ClientAuthState,
    agent_register: Option<Request>,
    agent_answer_at: Option<(Time, TransactionId, Request)>,
    dialer: Option<SocketAddr>,
    dialer_sip: Option<SocketAddr>,
    last_tick: u128,
    registered: bool,
    bye_at: Option<Time>,
    talk: Duration,
}

impl Peers {
    fn register_agent(&mut self, dialer: SocketAddr, auth: Vec<(String, String)>, cseq: u32) {
        let now = self.clock.now();
        let aor = format!("sip:1000@{}", dialer.ip());
        let mut r = Request::new(
            Method::Register,
            Uri::parse(&format!("sip:{}", dialer)).expect("a socket address makes a URI"),
        );
        r.headers
            .add(HeaderKind::From, format!("<{aor}>;tag=agent1"));
        r.headers.add(HeaderKind::To, format!("<{aor}>"));
        r.headers.add(HeaderKind::CallId, "demo-agent-register");
        r.headers.add(HeaderKind::CSeq, format!("{cseq} REGISTER"));
        r.headers.add(
            HeaderKind::Contact,
            format!("<sip:1000@{}>;expires=300", self.agent.local),
        );
        r.headers.add(HeaderKind::Expires, "300");
        r.headers.add(HeaderKind::UserAgent, "demo-softphone");
        for (n, v) in auth {
            r.headers.push(HeaderName::parse(&n), v);
        }
        self.agent_register = Some(r.clone());
        let _ = self.agent.endpoint.send_request(
            now,
            r,
            Target {
                addr: dialer,
                transport: Transport::Udp,
            },
        );
    }

    fn carrier_event(&mut self, e: Event) {
        let now = self.clock.now();
        match e {
            Event::Request {
                transaction,
                request,
                source,
                ..
            } => match request.method {
                Method::Register => {
                    self.dialer.get_or_insert(source);
                    let auth = request
                        .headers
                        .get(HeaderKind::Authorization)
                        .map(str::to_owned);
                    let verdict = auth.map(|a| {
                        self.digest.verify(
                            now.0,
                            &DigestRequest {
                                method: "REGISTER",
                                uri: &request.uri.to_string(),
                                body: &[],
                            },
                            &a,
                            |u| (u == "dialer").then(|| Secret::Password(TRUNK_PASSWORD.into())),
                        )
                    });
                    let resp = match verdict {
                        Some(Verification::Authenticated { .. }) => {
                            let mut r = make_response(&request, 200, Some("reg"));
                            if let Some(c) = request.headers.get(HeaderKind::Contact) {
                                r.headers.add(HeaderKind::Contact, c);
                            }
                            r
                        }
                        other => {
                            let mut r = make_response(&request, 401, Some("reg"));
                            let stale = matches!(other, Some(Verification::Stale));
                            for c in self.digest.challenges(now.0, stale) {
                                r.headers.add(HeaderKind::WwwAuthenticate, c);
                            }
                            r
                        }
                    };
                    let _ = self.carrier.endpoint.respond(now, transaction, resp);
                }
                Method::Invite => {
                    let ringing = make_response(&request, 180, Some("carrier"));
                    let _ = self.carrier.endpoint.respond(now, transaction, ringing);
                    self.carrier_answer_at =
                        Some((now + Duration::from_millis(800), transaction, request));
                }
                Method::Bye => {
                    let _ = self.carrier.endpoint.respond(
                        now,
                        transaction,
                        make_response(&request, 200, None),
                    );
                    self.carrier_rtp.remote = None;
                }
                _ => {
                    let _ = self.carrier.endpoint.respond(
                        now,
                        transaction,
                        make_response(&request, 200, None),
                    );
                }
            },
            Event::Ack { .. } => {}
            _ => {}
        }
    }

    fn agent_event(&mut self, e: Event) {
        let now = self.clock.now();
        match e {
            Event::Response { response, .. }
                if response.cseq().is_ok_and(|c| c.method == Method::Register) =>
            {
                self.on_register_response(&response);
            }
            Event::Request {
                transaction,
                request,
                ..
            } => match request.method {
                Method::Invite => {
                    let ringing = make_response(&request, 180, Some("agent"));
                    let _ = self.agent.endpoint.respond(now, transaction, ringing);
                    // Two seconds of ringing: the customer hears the ringback meanwhile.
                    self.agent_answer_at =
                        Some((now + Duration::from_secs(2), transaction, request));
                }
                Method::Bye => {
                    let _ = self.agent.endpoint.respond(
                        now,
                        transaction,
                        make_response(&request, 200, None),
                    );
                    self.agent_rtp.remote = None;
                }
                _ => {
                    let _ = self.agent.endpoint.respond(
                        now,
                        transaction,
                        make_response(&request, 200, None),
                    );
                }
            },
            _ => {}
        }
    }

    fn on_register_response(&mut self, response: &Response) {
        match response.status {
            200..=299 => self.registered = true,
            401 | 407 => {
                let Some(req) = self.agent_register.clone() else {
                    return;
                };
                let challenges: Vec<&str> = response
                    .headers
                    .get_all(HeaderKind::WwwAuthenticate)
                    .collect();
                let sent: Vec<&str> = req.headers.get_all(HeaderKind::Authorization).collect();
                let uri = req.uri.to_string();
                let mut rng = StdRng::seed_from_u64(5);
                let outcome = self.agent_auth.handle_challenge(
                    &ChallengedResponse {
                        status: response.status,
                        challenges: &challenges,
                        sent: &sent,
                    },
                    &Credentials::with_password("1000", AGENT_PASSWORD),
                    &DigestRequest {
                        method: "REGISTER",
                        uri: &uri,
                        body: &[],
                    },
                    &mut rng,
                );
                if let (Ok(AuthOutcome::Retry { headers }), Some(dialer)) =
                    (outcome, self.dialer_sip)
                {
                    let cseq = req.cseq().map(|c| c.seq + 1).unwrap_or(2);
                    let h = headers
                        .into_iter()
                        .map(|h| (h.name.as_str().to_owned(), h.value))
                        .collect();
                    self.register_agent(dialer, h, cseq);
                }
            }
            _ => {}
        }
    }

    /// The answers and the hang-up that are due.
    fn timers(&mut self) {
        let now = self.clock.now();
        if let Some((at, tx, invite)) = self.carrier_answer_at.take() {
            if at <= now {
                let mut ok = make_response(&invite, 200, Some("carrier"));
                ok.headers.add(
                    HeaderKind::Contact,
                    format!("<sip:gw@{}>", self.carrier.local),
                );
                ok.headers.add(
                    HeaderKind::RecordRoute,
                    format!("<sip:{};lr>", self.carrier.local),
                );
                if let Some(body) = sdp_answer(&invite, Codec::Pcma, self.carrier_rtp.local) {
                    ok.set_body("application/sdp", body);
                }
                self.carrier_rtp.remote = remote_rtp(&invite.body);
                if let Ok(d) = Dialog::uas(&invite, &ok) {
                    self.carrier_call = self.dialer.map(|a| (d, a));
                }
                let _ = self.carrier.endpoint.respond(now, tx, ok);
            } else {
                self.carrier_answer_at = Some((at, tx, invite));
            }
        }
        if let Some((at, tx, invite)) = self.agent_answer_at.take() {
            if at <= now {
                let mut ok = make_response(&invite, 200, Some("agent"));
                ok.headers.add(
                    HeaderKind::Contact,
                    format!("<sip:1000@{}>", self.agent.local),
                );
                if let Some(body) = sdp_answer(&invite, Codec::Pcmu, self.agent_rtp.local) {
                    ok.set_body("application/sdp", body);
                }
                self.agent_rtp.remote = remote_rtp(&invite.body);
                let _ = self.agent.endpoint.respond(now, tx, ok);
                self.bye_at = Some(now + self.talk);
            } else {
                self.agent_answer_at = Some((at, tx, invite));
            }
        }
        if self.bye_at.is_some_and(|t| t <= now) {
            self.bye_at = None;
            // The customer hangs up.
            if let Some((mut d, to)) = self.carrier_call.take() {
                let bye = d.request(Method::Bye);
                let _ = self.carrier.endpoint.send_request(
                    now,
                    bye,
                    Target {
                        addr: to,
                        transport: Transport::Udp,
                    },
                );
                self.carrier_rtp.remote = None;
            }
        }
    }
}

/// Runs the demo; files go to `out_dir`.
pub async fn demo(out_dir: &Path, talk: Duration) -> Result<DemoReport, String> {
    std::fs::create_dir_all(out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let work = std::env::temp_dir().join(format!("dialer-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let ringback = work.join("ringback.wav");
    write_ringback(&ringback)?;
    let recording = out_dir.join("demo.wav");
    let pcap = out_dir.join("demo.pcap");
    let call_pcap = out_dir.join("demo-call.pcap");
    // The dialer never overwrites a recording or a capture: the demo's own outputs of an
    // earlier run make way.
    for old in [&recording, &call_pcap] {
        let _ = std::fs::remove_file(old);
    }

    let tap = Tap::default();
    let carrier = Peer::bind(11).await.map_err(|e| e.to_string())?;
    let agent = Peer::bind(12).await.map_err(|e| e.to_string())?;
    let carrier_addr = carrier.local;
    // The configuration wants a fixed port: take a free one from the system.
    let sip_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map_err(|e| e.to_string())?
        .port();
    let config_text = format!(
        r#"[sip]
listen = "127.0.0.1:{sip_port}"

[[trunk]]
name = "demo-carrier"
proxy = "{carrier_addr}"
domain = "carrier.demo"
username = "dialer"
password = "{TRUNK_PASSWORD}"
expires = 300
codecs = ["PCMA", "PCMU"]
caller_id = "+15550100"

[[agent]]
extension = "1000"
password = "{AGENT_PASSWORD}"
allow = ["127.0.0.0/8"]

[media]
rtp_ports = "31000-31999"
ringback = "ringback.wav"

[api]
listen = "127.0.0.1:{api_port}"
"#,
        api_port = sip_port.wrapping_add(1)
    );
    let config =
        trunk_profiles::Config::from_str_in_dir(&config_text, "demo.toml", &work, &|_| None)
            .map_err(|e| format!("demo configuration: {e}"))?;
    let running = start(
        config,
        RunOptions {
            ladder: true,
            colour: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            cdr_file: None,
            no_api: true,
            campaigns: false,
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let dialer_sip = running.sip_addr;
    let mut events = running.control.events.subscribe();

    let mut peers = Peers {
        clock: Clock::start(),
        tap: tap.clone(),
        carrier,
        carrier_rtp: RtpLeg::bind(Law::A, 440.0, 0x4400)
            .await
            .map_err(|e| e.to_string())?,
        digest: DigestServer::new(ServerConfig::new("carrier.demo", b"demo".to_vec())),
        carrier_call: None,
        carrier_answer_at: None,
        agent,
        agent_rtp: RtpLeg::bind(Law::Mu, 1000.0, 0x1000)
            .await
            .map_err(|e| e.to_string())?,
        agent_auth: ClientAuthState::new(),
        agent_register: None,
        agent_answer_at: None,
        dialer: None,
        dialer_sip: Some(dialer_sip),
        last_tick: 0,
        registered: false,
        bye_at: None,
        talk,
    };
    peers.register_agent(dialer_sip, vec![], 1);

    let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
    let peers_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = peers.carrier.sock.readable() => {}
                _ = peers.agent.sock.readable() => {}
                _ = &mut stop_rx => break,
            }
            let now = peers.clock.now();
            let tap = peers.tap.clone();
            peers.carrier.receive(now, &tap);
            peers.agent.receive(now, &tap);
            peers.carrier.endpoint.handle_timeout(now);
            peers.agent.endpoint.handle_timeout(now);
            for e in peers.carrier.flush(&tap) {
                peers.carrier_event(e);
            }
            for e in peers.agent.flush(&tap) {
                peers.agent_event(e);
            }
            peers.timers();
            peers.carrier.flush(&tap);
            peers.agent.flush(&tap);
            peers.carrier_rtp.drain(&tap);
            peers.agent_rtp.drain(&tap);
            if tick_due(&mut peers) {
                peers.carrier_rtp.send(&tap);
                peers.agent_rtp.send(&tap);
            }
        }
        (peers.carrier_rtp.received, peers.agent_rtp.received)
    });

    // Wait for the agent and the trunk to be registered, then place the call.
    let ready = tokio::time::timeout(Duration::from_secs(10), async {
        let (mut agent, mut trunk) = (false, false);
        while !(agent && trunk) {
            match events.recv().await {
                Ok(ApiEvent::AgentRegistered { .. }) => agent = true,
                Ok(ApiEvent::TrunkRegistration { state, .. }) if state == "registered" => {
                    trunk = true
                }
                Ok(_) => {}
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return false,
            }
        }
        true
    })
    .await;
    if ready != Ok(true) {
        let _ = stop_tx.send(());
        running.shutdown().await;
        return Err("the simulated agent or trunk did not register within 10 s".into());
    }
    let (reply_tx, reply_rx) = oneshot::channel();
    let _ = running
        .control
        .requests
        .send(ControlRequest::Originate(
            OriginateRequest {
                number: "5551234567".into(),
                agent: Some("1000".into()),
                record: Some(recording.clone()),
                pcap: Some(call_pcap.clone()),
                ..OriginateRequest::default()
            },
            reply_tx,
        ))
        .await;
    match reply_rx.await {
        Ok(Ok(info)) => eprintln!("demo: call {} placed", info.id),
        Ok(Err(e)) => return Err(format!("originate refused: {e}")),
        Err(_) => return Err("the dialer stopped".into()),
    }
    let cdr = tokio::time::timeout(talk + Duration::from_secs(20), async {
        loop {
            match events.recv().await {
                Ok(ApiEvent::Hangup { cdr, .. }) => return Some(*cdr),
                Ok(ApiEvent::Sip(_)) => {}
                Ok(e) => eprintln!("demo: {}", serde_json::to_string(&e).unwrap_or_default()),
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(_) => return None,
            }
        }
    })
    .await
    .ok()
    .flatten();
    running.shutdown().await;
    let _ = stop_tx.send(());
    let _ = peers_task.await;
    tap.write_pcap(&pcap)?;
    let _ = std::fs::remove_dir_all(&work);
    let cdr = cdr.ok_or("the call did not end in time")?;
    Ok(DemoReport {
        cdr,
        recording,
        pcap,
        call_pcap,
    })
}

/// True every 20 ms of the peers' clock.
fn tick_due(peers: &mut Peers) -> bool {
    let now = peers.clock.now().0.as_millis();
    let due = now / 20 != peers.last_tick;
    peers.last_tick = now / 20;
    due
}

/// A US-style ringback (440 + 480 Hz, 2 s on, 4 s off), 8 kHz 16-bit mono.
fn write_ringback(path: &Path) -> Result<(), String> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w =
        hound::WavWriter::create(path, spec).map_err(|e| format!("{}: {e}", path.display()))?;
    for i in 0..(6 * 8000) {
        let t = f64::from(i) / 8000.0;
        let v = if t < 2.0 {
            ((2.0 * std::f64::consts::PI * 440.0 * t).sin()
                + (2.0 * std::f64::consts::PI * 480.0 * t).sin())
                * 4000.0
        } else {
            0.0
        };
        w.write_sample(v as i16).map_err(|e| e.to_string())?;
    }
    w.finalize().map_err(|e| e.to_string())
}
