//! relay-bench: the CPU cost per packet operation (one receive or one send) of the dialer's
//! media task, against a bare relay that only moves bytes with the same batched system calls,
//! under the same load on loopback. `bench/relay_cpu.sh` runs it; see there for the figures.
//!
//! Three roles, each its own process so that the relay's CPU time is its own:
//! - `serve bare|media STREAMS RELAY_BASE PEER_BASE THREADS`: binds STREAMS calls (customer
//!   port `RELAY_BASE + 4i`, agent port `RELAY_BASE + 4i + 2`), prints `ready` and its
//!   resident memory, measures from then until a line arrives on standard input, and prints
//!   user and system CPU time and memory. `bare` forwards each datagram unchanged to the other
//!   leg's peer; `media` runs `dialer::runtime::media::MediaSession`s in pass-through.
//! - `load STREAMS RELAY_BASE PEER_BASE SECONDS`: the two peers of every call (customer at
//!   `PEER_BASE + 4i`, agent at `PEER_BASE + 4i + 2`), each sending 20 ms PCMU packets to the
//!   relay, spread evenly over each 20 ms; prints packets sent and received.
#![allow(clippy::disallowed_methods)] // a benchmark reads the clock and sleeps by design

#[path = "../../../dialer/src/runtime"]
#[allow(dead_code, unused_imports)]
mod runtime {
    //! The dialer's runtime media module, compiled here on its own.
    pub mod media;
}

use std::io::BufRead;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use media::relay::{RelayConfig, Side};
use media::rtp::{self, OutgoingHeader, PayloadType, Ssrc};
use media::sdp::{answer_offer, LocalEndpoint, MediaConfig, Negotiated, SessionDescription};
use nix::sys::resource::{getrusage, UsageWho};
use runtime::media::udp::{self, Buffer, Outgoing, BATCH};
use runtime::media::{MediaCommand, MediaSession, PortPool};
use tokio::io::Interest;
use tokio::net::UdpSocket;

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize| -> u64 {
        args.get(i)
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| usage())
    };
    match args.get(1).map(String::as_str) {
        Some("serve") => {
            let mode = args.get(2).cloned().unwrap_or_else(|| usage());
            serve(
                &mode,
                number(3) as u16,
                number(4) as u16,
                number(5) as u16,
                number(6) as usize,
            )
        }
        Some("load") => load(
            number(2) as u16,
            number(3) as u16,
            number(4) as u16,
            number(5),
        ),
        _ => usage(),
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: relay-bench serve bare|media STREAMS RELAY_BASE PEER_BASE THREADS\n       \
         relay-bench load STREAMS RELAY_BASE PEER_BASE SECONDS"
    );
    std::process::exit(2)
}

fn cpu() -> Duration {
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage of this process");
    let tv = |t: nix::sys::time::TimeVal| {
        Duration::from_secs(t.tv_sec() as u64) + Duration::from_micros(t.tv_usec() as u64)
    };
    tv(usage.user_time()) + tv(usage.system_time())
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn leg(peer_port: u16, local_port: u16) -> Negotiated {
    let body = format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {peer_port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
    );
    let offer = SessionDescription::parse(&body).expect("bench SDP parses");
    let local = LocalEndpoint {
        address: LOOPBACK,
        rtp_port: local_port,
        session_id: 1,
        session_version: 1,
    };
    answer_offer(&offer, &MediaConfig::default(), &local)
        .expect("acceptable")
        .1
}

fn serve(mode: &str, streams: u16, relay_base: u16, peer_base: u16, threads: usize) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime");
    let before = rss_kib();
    let _keep = rt.block_on(async {
        match mode {
            "bare" => {
                let mut tasks = Vec::new();
                for i in 0..streams {
                    let c =
                        std::net::UdpSocket::bind((LOOPBACK, relay_base + 4 * i)).expect("bind");
                    let a = std::net::UdpSocket::bind((LOOPBACK, relay_base + 4 * i + 2))
                        .expect("bind");
                    c.set_nonblocking(true).expect("nonblocking");
                    a.set_nonblocking(true).expect("nonblocking");
                    let c = UdpSocket::from_std(c).expect("tokio socket");
                    let a = UdpSocket::from_std(a).expect("tokio socket");
                    let to_customer = SocketAddr::new(LOOPBACK, peer_base + 4 * i);
                    let to_agent = SocketAddr::new(LOOPBACK, peer_base + 4 * i + 2);
                    tasks.push(tokio::spawn(bare_call(c, a, to_customer, to_agent)));
                }
                (Vec::new(), tasks)
            }
            "media" => {
                let pool = PortPool::new(relay_base, relay_base + 4 * streams - 1).expect("range");
                let (events, mut drain) = tokio::sync::mpsc::unbounded_channel();
                tokio::spawn(async move { while drain.recv().await.is_some() {} });
                let mut sessions = Vec::new();
                for i in 0..streams {
                    let (session, ports) =
                        MediaSession::open(LOOPBACK, &pool, events.clone(), RelayConfig::default())
                            .await
                            .expect("session binds");
                    assert_eq!(ports.customer.port(), relay_base + 4 * i, "ports in order");
                    session.send(MediaCommand::SetLeg {
                        side: Side::Customer,
                        negotiated: leg(peer_base + 4 * i, ports.customer.port()),
                    });
                    session.send(MediaCommand::SetLeg {
                        side: Side::Agent,
                        negotiated: leg(peer_base + 4 * i + 2, ports.agent.port()),
                    });
                    sessions.push(session);
                }
                (sessions, Vec::new())
            }
            _ => usage(),
        }
    });
    let set_up = rss_kib();
    println!("ready rss_before_kib={before} rss_set_up_kib={set_up}");
    let start = cpu();
    let started = Instant::now();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
    let used = cpu() - start;
    let wall = started.elapsed();
    let after = rss_kib();
    println!(
        "cpu_us={} wall_ms={} rss_after_kib={after} per_call_bytes={}",
        used.as_micros(),
        wall.as_millis(),
        (after.saturating_sub(before)) * 1024 / u64::from(streams.max(1))
    );
}

/// The bare relay: two sockets, the same batched calls and readiness handling as the media
/// task, and nothing else — each datagram goes unchanged to the other leg's peer.
async fn bare_call(c: UdpSocket, a: UdpSocket, to_customer: SocketAddr, to_agent: SocketAddr) {
    let fds = [c.as_raw_fd(), a.as_raw_fd()];
    loop {
        tokio::select! {
            Ok(()) = c.readable() => bare_batch(&c, 1, to_agent, &fds),
            Ok(()) = a.readable() => bare_batch(&a, 0, to_customer, &fds),
        }
    }
}

fn bare_batch(socket: &UdpSocket, out: u8, to: SocketAddr, fds: &[RawFd; 2]) {
    let fd = socket.as_raw_fd();
    let _ = socket.try_io(Interest::READABLE, || {
        udp::with_scratch(|scratch| {
            let count = scratch.receive(fd)?;
            for i in 0..count {
                scratch.queue(Outgoing {
                    buffer: Buffer::Rx(i as u8),
                    len: scratch.rx_len[i] as u16,
                    to,
                    socket: out,
                    tag: 0,
                });
            }
            scratch.flush(fds, |_| {});
            if count < BATCH {
                Err(std::io::ErrorKind::WouldBlock.into())
            } else {
                Ok(())
            }
        })
    });
}

fn load(streams: u16, relay_base: u16, peer_base: u16, seconds: u64) {
    let mut peers = Vec::new();
    for i in 0..streams {
        for (k, offset) in [0u16, 2].into_iter().enumerate() {
            let socket = std::net::UdpSocket::bind((LOOPBACK, peer_base + 4 * i + offset))
                .expect("bind peer");
            socket.set_nonblocking(true).expect("nonblocking");
            let target = SocketAddr::new(LOOPBACK, relay_base + 4 * i + offset);
            peers.push((socket, target, 0x1000_0000 + u32::from(i) * 2 + k as u32));
        }
    }
    let mut packet = [0u8; 172];
    let mut buf = [0u8; 1500];
    let (mut sent, mut received) = (0u64, 0u64);
    let groups = 10u32;
    let step = Duration::from_millis(2);
    let start = Instant::now();
    let ticks = (seconds * 1000 / 2) as u32;
    for tick in 0..ticks {
        let group = tick % groups;
        let frame = tick / groups;
        for (index, (socket, target, ssrc)) in peers.iter().enumerate() {
            if (index / 2) as u32 % groups != group {
                continue;
            }
            let header = OutgoingHeader {
                marker: frame == 0,
                payload_type: PayloadType(0),
                sequence: frame as u16,
                timestamp: frame * 160,
                ssrc: Ssrc(*ssrc),
            };
            let len = rtp::write_packet(&mut packet, &header, &[0xd5; 160]).expect("fits");
            if socket.send_to(&packet[..len], target).is_ok() {
                sent += 1;
            }
        }
        for (socket, _, _) in &peers {
            while socket.recv_from(&mut buf).is_ok() {
                received += 1;
            }
        }
        let due = start + step * (tick + 1);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    // Packets still in flight.
    std::thread::sleep(Duration::from_millis(100));
    for (socket, _, _) in &peers {
        while socket.recv_from(&mut buf).is_ok() {
            received += 1;
        }
    }
    println!("sent={sent} received={received}");
}
