//! The call's media task over real loopback sockets: two fake peers (the customer's carrier and
//! the agent's softphone) exchange RTP through a `MediaSession`. Every wait is on a packet or an
//! event, bounded by a timeout; nothing sleeps to let time pass.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dialer::runtime::media::{
    MediaCommand, MediaEvent, MediaPorts, MediaSession, MediaStats, PortPool,
};
use media::codec::g711::{self, Law};
use media::codec::Codec;
use media::playback::Ringback;
use media::relay::{RelayConfig, Side};
use media::rtp::{self, OutgoingHeader, PayloadType, RtpHeader, Ssrc};
use media::sdp::{
    answer_offer, build_offer, process_answer, LocalEndpoint, MediaConfig, Negotiated,
    SessionDescription,
};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;
use tokio::time::timeout;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const WAIT: Duration = Duration::from_secs(3);

/// A separate port range per session, so tests running in parallel never share a pool.
fn pool() -> PortPool {
    static NEXT: AtomicU16 = AtomicU16::new(42000);
    let first = NEXT.fetch_add(40, Ordering::Relaxed);
    PortPool::new(first, first + 39).expect("even ports in range")
}

fn local(port: u16) -> LocalEndpoint {
    LocalEndpoint {
        address: LOOPBACK,
        rtp_port: port,
        session_id: 1,
        session_version: 1,
    }
}

/// The carrier's offer (PCMU, telephone-event 101) for a customer at `peer`, answered by us.
fn customer_leg(peer: SocketAddr, ports: &MediaPorts) -> Negotiated {
    let body = format!(
        "v=0\r\no=carrier 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n",
        peer.port()
    );
    let offer = SessionDescription::parse(&body).expect("offer parses");
    answer_offer(
        &offer,
        &MediaConfig::default(),
        &local(ports.customer.port()),
    )
    .expect("acceptable")
    .1
}

/// Our offer to the agent answered by its softphone at `peer` (PCMU, telephone-event 96).
fn agent_leg(peer: SocketAddr, ports: &MediaPorts) -> Negotiated {
    let config = MediaConfig::default();
    let offer = build_offer(&config, &local(ports.agent.port()));
    let body = format!(
        "v=0\r\no=agent 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {} RTP/AVP 0 96\r\na=rtpmap:96 telephone-event/8000\r\n",
        peer.port()
    );
    let answer = SessionDescription::parse(&body).expect("answer parses");
    process_answer(&offer, &answer, &config).expect("acceptable")
}

fn packet(pt: u8, seq: u16, ts: u32, ssrc: u32, payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 1500];
    let header = OutgoingHeader {
        marker: false,
        payload_type: PayloadType(pt),
        sequence: seq,
        timestamp: ts,
        ssrc: Ssrc(ssrc),
    };
    let len = rtp::write_packet(&mut buf, &header, payload).expect("fits");
    buf.truncate(len);
    buf
}

/// 20 ms of a µ-law tone at `hz`, frame `n` of the stream.
fn tone_frame(hz: f64, n: u32) -> Vec<u8> {
    (0..160u32)
        .map(|i| {
            let t = f64::from(n * 160 + i) / 8000.0;
            let v = (8000.0 * (2.0 * std::f64::consts::PI * hz * t).sin()) as i16;
            g711::encode_sample(Law::Mu, v)
        })
        .collect()
}

fn ringback() -> Arc<Ringback> {
    // Half a second of 425 Hz, PCM 16-bit 8 kHz.
    let samples: Vec<u8> = (0..4000)
        .flat_map(|n| {
            let v = (8000.0 * (2.0 * std::f64::consts::PI * 425.0 * f64::from(n) / 8000.0).sin())
                as i16;
            v.to_le_bytes()
        })
        .collect();
    let mut wav = Vec::new();
    for part in [
        &b"RIFF"[..],
        &(36 + samples.len() as u32).to_le_bytes(),
        b"WAVEfmt ",
        &16u32.to_le_bytes(),
        &1u16.to_le_bytes(),
        &1u16.to_le_bytes(),
        &8000u32.to_le_bytes(),
        &16000u32.to_le_bytes(),
        &2u16.to_le_bytes(),
        &16u16.to_le_bytes(),
        b"data",
        &(samples.len() as u32).to_le_bytes(),
        &samples,
    ] {
        wav.extend_from_slice(part);
    }
    Arc::new(
        Ringback::from_wav_bytes(&wav, Path::new("ring.wav"), &[Codec::Pcmu])
            .expect("ringback loads"),
    )
}

struct Call {
    session: MediaSession,
    ports: MediaPorts,
    events: mpsc::UnboundedReceiver<MediaEvent>,
    customer: UdpSocket,
    agent: UdpSocket,
}

async fn call(config: RelayConfig) -> Call {
    let (tx, events) = mpsc::unbounded_channel();
    let (session, ports) = MediaSession::open(LOOPBACK, &pool(), tx, config)
        .await
        .expect("binds on loopback");
    assert_eq!(session.ports(), ports);
    let customer = UdpSocket::bind((LOOPBACK, 0)).await.expect("loopback");
    let agent = UdpSocket::bind((LOOPBACK, 0)).await.expect("loopback");
    Call {
        session,
        ports,
        events,
        customer,
        agent,
    }
}

impl Call {
    fn set_both_legs(&self) {
        let customer = customer_leg(self.customer.local_addr().expect("bound"), &self.ports);
        let agent = agent_leg(self.agent.local_addr().expect("bound"), &self.ports);
        self.session.send(MediaCommand::SetLeg {
            side: Side::Customer,
            negotiated: customer,
        });
        self.session.send(MediaCommand::SetLeg {
            side: Side::Agent,
            negotiated: agent,
        });
    }

    async fn event(&mut self) -> MediaEvent {
        timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("the task reports before it ends")
    }

    async fn close(mut self) -> MediaStats {
        self.session.send(MediaCommand::Close);
        loop {
            if let MediaEvent::Closed { stats } = self.event().await {
                return stats;
            }
        }
    }
}

async fn receive(socket: &UdpSocket) -> (Vec<u8>, SocketAddr) {
    let mut buf = [0u8; 1500];
    let (len, from) = timeout(WAIT, socket.recv_from(&mut buf))
        .await
        .expect("a packet in time")
        .expect("loopback receive");
    (buf[..len].to_vec(), from)
}

#[tokio::test]
async fn customer_hears_ringback_then_the_agent_with_continuous_numbering() {
    let call = call(RelayConfig::default()).await;
    let customer = customer_leg(call.customer.local_addr().expect("bound"), &call.ports);
    call.session.send(MediaCommand::SetLeg {
        side: Side::Customer,
        negotiated: customer,
    });
    call.session.send(MediaCommand::StartRingback {
        side: Side::Customer,
        ringback: ringback(),
    });
    let clip = ringback().clip(Codec::Pcmu).expect("PCMU clip");
    let mut heard = Vec::new();
    for i in 0..3 {
        let (pkt, from) = receive(&call.customer).await;
        assert_eq!(
            from, call.ports.customer,
            "sent from the customer leg's port"
        );
        let header = RtpHeader::parse(&pkt).expect("RTP");
        assert_eq!(header.payload(&pkt), clip.frame(i), "ringback frame {i}");
        heard.push(header);
    }
    // The agent answers.
    let agent = agent_leg(call.agent.local_addr().expect("bound"), &call.ports);
    call.session.send(MediaCommand::SetLeg {
        side: Side::Agent,
        negotiated: agent,
    });
    call.session.send(MediaCommand::StopRingback {
        side: Side::Customer,
    });
    let voice = [0x55u8; 160];
    let mut switched_at = None;
    for n in 0..40u16 {
        call.agent
            .send_to(
                &packet(0, 1000 + n, 80_000 + u32::from(n) * 160, 0xa6e7, &voice),
                call.ports.agent,
            )
            .await
            .expect("loopback send");
        // Ringback frames already on their way may come first; the agent's follow.
        loop {
            let (pkt, _) = receive(&call.customer).await;
            let header = RtpHeader::parse(&pkt).expect("RTP");
            let is_voice = header.payload(&pkt) == voice;
            heard.push(header);
            if is_voice {
                switched_at.get_or_insert(heard.len() - 1);
                break;
            }
        }
        if n == 4 {
            break;
        }
    }
    let switch = switched_at.expect("the agent's audio reached the customer");
    for (i, pair) in heard.windows(2).enumerate() {
        assert_eq!(pair[1].ssrc, pair[0].ssrc, "one SSRC");
        assert_eq!(
            pair[1].sequence,
            pair[0].sequence.wrapping_add(1),
            "sequence at {i}"
        );
        let step = pair[1].timestamp.wrapping_sub(pair[0].timestamp);
        assert!(
            step > 0 && step % 160 == 0 && step < 160 * 50,
            "timestamp runs on by whole packets at {i}: {step}"
        );
        assert_eq!(pair[1].marker, i + 1 == switch, "marker only at the switch");
    }
    let stats = call.close().await;
    assert_eq!(stats.packets_to_customer, heard.len() as u64);
}

#[tokio::test]
async fn telephone_event_reaches_the_agent_with_its_payload_type() {
    let call = call(RelayConfig::default()).await;
    call.set_both_legs();
    // RFC 4733 §2.3: digit 5, volume 10, duration 400.
    let event = [5u8, 10, 0x01, 0x90];
    call.customer
        .send_to(&packet(101, 7, 8000, 0xc0c0, &event), call.ports.customer)
        .await
        .expect("loopback send");
    let (pkt, from) = receive(&call.agent).await;
    assert_eq!(from, call.ports.agent);
    let header = RtpHeader::parse(&pkt).expect("RTP");
    assert_eq!(header.payload_type, PayloadType(96), "the agent's number");
    assert_eq!(header.payload(&pkt), event);
    call.close().await;
}

#[tokio::test]
async fn media_follows_the_customer_to_its_nat_rewritten_port() {
    let mut call = call(RelayConfig::default()).await;
    call.set_both_legs();
    // The carrier's SDP names `call.customer`'s port; its NAT sends from another one.
    let nat = UdpSocket::bind((LOOPBACK, 0)).await.expect("loopback");
    for n in 0..3u16 {
        nat.send_to(
            &packet(0, n, u32::from(n) * 160, 0xc0c0, &[0xff; 160]),
            call.ports.customer,
        )
        .await
        .expect("loopback send");
    }
    let nat_addr = nat.local_addr().expect("bound");
    assert_eq!(
        call.event().await,
        MediaEvent::Latched {
            side: Side::Customer,
            to: nat_addr
        }
    );
    let (pkt, _) = receive(&call.agent).await;
    assert_eq!(pkt.len(), 172, "the third packet was relayed");
    call.agent
        .send_to(&packet(0, 1, 160, 0xa6e7, &[0xd5; 160]), call.ports.agent)
        .await
        .expect("loopback send");
    let (pkt, from) = receive(&nat).await;
    assert_eq!(from, call.ports.customer);
    assert_eq!(
        RtpHeader::parse(&pkt).expect("RTP").payload(&pkt),
        [0xd5; 160]
    );
    call.close().await;
}

#[tokio::test]
async fn a_silent_customer_raises_a_media_timeout() {
    let mut call = call(RelayConfig {
        media_timeout: Some(Duration::from_millis(200)),
        ..RelayConfig::default()
    })
    .await;
    call.set_both_legs();
    // The agent talks once, so only the customer stays silent until the timeout; the agent's
    // own timeout follows 200 ms after its packet.
    call.agent
        .send_to(&packet(0, 1, 160, 0xa6e7, &[0xd5; 160]), call.ports.agent)
        .await
        .expect("loopback send");
    let mut timeouts = Vec::new();
    while timeouts.len() < 2 {
        if let MediaEvent::Timeout { side } = call.event().await {
            timeouts.push(side);
        }
    }
    assert!(timeouts.contains(&Side::Customer) && timeouts.contains(&Side::Agent));
    call.close().await;
}

fn temp_wav(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("dialer-{}-{name}.wav", std::process::id()))
}

fn rms(x: &[i16]) -> f64 {
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len().max(1) as f64).sqrt()
}

#[tokio::test]
async fn recording_is_a_stereo_wav_with_the_customer_left_and_the_agent_right() {
    let call = call(RelayConfig::default()).await;
    call.set_both_legs();
    let path = temp_wav("record");
    call.session
        .send(MediaCommand::Record { path: path.clone() });
    for n in 0..25u32 {
        call.customer
            .send_to(
                &packet(0, n as u16, n * 160, 0xc0c0, &tone_frame(440.0, n)),
                call.ports.customer,
            )
            .await
            .expect("loopback send");
        receive(&call.agent).await;
        call.agent
            .send_to(
                &packet(0, n as u16, n * 160, 0xa6e7, &tone_frame(1000.0, n)),
                call.ports.agent,
            )
            .await
            .expect("loopback send");
        receive(&call.customer).await;
    }
    call.close().await;
    let mut reader = hound::WavReader::open(&path).expect("a valid WAV");
    let spec = reader.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let samples: Vec<i16> = reader
        .samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    assert_eq!(samples.len(), 2 * 25 * 160, "every frame of both legs");
    let left: Vec<i16> = samples.iter().step_by(2).copied().collect();
    let right: Vec<i16> = samples.iter().skip(1).step_by(2).copied().collect();
    assert!(rms(&left) > 3000.0, "customer channel {}", rms(&left));
    assert!(rms(&right) > 3000.0, "agent channel {}", rms(&right));
    std::fs::remove_file(&path).expect("temp file");
}

#[tokio::test]
async fn a_recording_that_cannot_be_written_stops_with_an_event_and_the_call_goes_on() {
    let mut call = call(RelayConfig::default()).await;
    call.set_both_legs();
    let path = std::env::temp_dir()
        .join("no-such-directory-for-dialer")
        .join("x.wav");
    call.session.send(MediaCommand::Record { path });
    match call.event().await {
        MediaEvent::RecordingFailed { reason } => {
            assert!(reason.contains("recording"), "{reason}")
        }
        other => panic!("expected RecordingFailed, got {other:?}"),
    }
    // The media goes on: the customer's packets still reach the agent.
    for n in 0..5u32 {
        call.customer
            .send_to(
                &packet(0, n as u16, n * 160, 0xc0c0, &tone_frame(440.0, n)),
                call.ports.customer,
            )
            .await
            .expect("loopback send");
        receive(&call.agent).await;
    }
    let stats = call.close().await;
    assert_eq!(stats.packets_to_agent, 5);
}

#[tokio::test]
async fn close_reports_the_packets_relayed_each_way_and_the_loss() {
    let call = call(RelayConfig::default()).await;
    call.set_both_legs();
    // Ten packets from the customer with sequence 5 missing; seven from the agent.
    for n in (0..11u16).filter(|&n| n != 5) {
        call.customer
            .send_to(
                &packet(0, n, u32::from(n) * 160, 0xc0c0, &[0xff; 160]),
                call.ports.customer,
            )
            .await
            .expect("loopback send");
        receive(&call.agent).await;
    }
    for n in 0..7u16 {
        call.agent
            .send_to(
                &packet(0, n, u32::from(n) * 160, 0xa6e7, &[0xd5; 160]),
                call.ports.agent,
            )
            .await
            .expect("loopback send");
        receive(&call.customer).await;
    }
    let stats = call.close().await;
    assert_eq!(
        stats,
        MediaStats {
            packets_to_agent: 10,
            packets_to_customer: 7,
            lost_from_customer: 1,
            lost_from_agent: 0,
            customer_codec: Some("PCMU".into()),
            agent_codec: Some("PCMU".into()),
        }
    );
}

#[tokio::test]
async fn ports_go_back_to_the_pool_when_the_session_closes() {
    let pool = PortPool::new(43990, 43993).expect("two pairs");
    let (tx, mut events) = mpsc::unbounded_channel();
    let (session, _) = MediaSession::open(LOOPBACK, &pool, tx.clone(), RelayConfig::default())
        .await
        .expect("binds");
    assert_eq!(pool.free_pairs(), 0);
    let second = MediaSession::open(LOOPBACK, &pool, tx, RelayConfig::default()).await;
    assert_eq!(
        second.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::AddrNotAvailable)
    );
    session.send(MediaCommand::Close);
    let closed = timeout(WAIT, events.recv()).await.expect("in time");
    assert!(
        matches!(closed, Some(MediaEvent::Closed { .. })),
        "{closed:?}"
    );
    assert_eq!(pool.free_pairs(), 2, "returned before Closed is reported");
}
