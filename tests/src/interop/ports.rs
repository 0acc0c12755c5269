//! Free ports on loopback addresses, found by binding a candidate and releasing it.
//!
//! Candidates are drawn at random from 10000-19999, below the dialer's default RTP range and
//! the kernel's ephemeral range (`net.ipv4.ip_local_port_range`), never by binding port 0: the
//! kernel hands ephemeral ports to every outgoing TCP connection and every `bind(0)` of the
//! peers (an API request, SIPp's sockets), so a port picked from that range could be taken
//! between the pick and the peer's bind. Below it, only an explicit bind takes a port, and
//! within this process a port is handed out once. Every SIP port is checked for both UDP and
//! TCP (SIP listens on both).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use super::HarnessError;

/// Ports this test process has handed out: a later pick never returns one of them, so a
/// dialer's RTP range cannot swallow the SIP port chosen for it a moment before.
static HANDED_OUT: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());

fn taken(port: u16) -> bool {
    HANDED_OUT
        .lock()
        .map(|h| h.contains(&port))
        .unwrap_or(false)
}

fn hand_out(ports: impl IntoIterator<Item = u16>) {
    if let Ok(mut h) = HANDED_OUT.lock() {
        h.extend(ports);
    }
}

/// `127.0.0.1`.
pub const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1));

/// Another loopback address (`127.0.0.n`), for "the answer's Contact is on another host" cases;
/// Linux routes all of 127.0.0.0/8 to `lo`.
pub fn loopback(n: u8) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, n))
}

/// The lowest port a candidate is drawn from: above the registered ports peers default to
/// (5060, 8021, ...).
const FIRST_CANDIDATE: u16 = 10_000;

/// One past the highest candidate: the dialer's default RTP range (`media.rtp_ports`,
/// 20000-29999) starts here, and a dialer configured without one refuses a SIP port inside it.
const CANDIDATE_END: u16 = 20_000;

/// The first port of the kernel's ephemeral range; Linux's default when it cannot be read.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|r| r.split_whitespace().next()?.parse().ok())
        .unwrap_or(32_768)
}

/// A random candidate port with `len` ports from it below both [`CANDIDATE_END`] and the
/// ephemeral range, none of them handed out yet.
fn candidate(len: u16) -> Option<u16> {
    let end = CANDIDATE_END.min(ephemeral_start()).checked_sub(len)?;
    if end <= FIRST_CANDIDATE {
        return None;
    }
    let port = rand::Rng::gen_range(&mut rand::thread_rng(), FIRST_CANDIDATE..end);
    (!(port..port + len).any(taken)).then_some(port)
}

fn udp_free(ip: IpAddr, port: u16) -> bool {
    UdpSocket::bind(SocketAddr::new(ip, port)).is_ok()
}

fn tcp_free(ip: IpAddr, port: u16) -> bool {
    TcpListener::bind(SocketAddr::new(ip, port)).is_ok()
}

/// A port free for UDP and TCP on `ip`.
pub fn free_port(ip: IpAddr) -> Result<u16, HarnessError> {
    for _ in 0..200 {
        let Some(port) = candidate(1) else { continue };
        if udp_free(ip, port) && tcp_free(ip, port) {
            hand_out([port]);
            return Ok(port);
        }
    }
    Err(HarnessError::Setup(format!(
        "no port free for both UDP and TCP on {ip}"
    )))
}

/// A SIP port for baresip on `ip`: free for UDP and TCP, with the next port free for TCP too,
/// because baresip 1.0 always adds a SIP/TLS transport on the SIP port + 1 and has no setting
/// to leave it out; both are handed out.
pub fn free_baresip_port(ip: IpAddr) -> Result<u16, HarnessError> {
    for _ in 0..200 {
        let Some(port) = candidate(2) else { continue };
        if udp_free(ip, port) && tcp_free(ip, port) && tcp_free(ip, port + 1) {
            hand_out([port, port + 1]);
            return Ok(port);
        }
    }
    Err(HarnessError::Setup(format!(
        "no port free for UDP and TCP with the next one free for TCP on {ip}"
    )))
}

/// A port free for UDP on `ip`.
pub fn free_udp_port(ip: IpAddr) -> Result<u16, HarnessError> {
    for _ in 0..200 {
        let Some(port) = candidate(1) else { continue };
        if udp_free(ip, port) {
            hand_out([port]);
            return Ok(port);
        }
    }
    Err(HarnessError::Setup(format!("no UDP port free on {ip}")))
}

/// The first port of `len` consecutive UDP ports, all free on `ip`, the first even: an RTP port
/// range (RTP even, RTCP odd, RFC 3550 §11), or SIPp's media port and the `+2` video port it also
/// binds.
pub fn free_udp_range(ip: IpAddr, len: u16) -> Result<u16, HarnessError> {
    'search: for _ in 0..200 {
        let Some(base) = candidate(len + 1).map(|p| p & !1) else {
            continue;
        };
        if (base..base + len).any(taken) {
            continue;
        }
        let mut held = Vec::with_capacity(usize::from(len));
        for port in base..base + len {
            match UdpSocket::bind(SocketAddr::new(ip, port)) {
                Ok(socket) => held.push(socket),
                Err(_) => continue 'search,
            }
        }
        hand_out(base..base + len);
        return Ok(base);
    }
    Err(HarnessError::Setup(format!(
        "no {len} consecutive free UDP ports on {ip}"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_free_port_can_be_bound_for_udp_and_tcp() {
        let port = free_port(LOOPBACK).expect("free port");
        UdpSocket::bind((LOOPBACK, port)).expect("udp bind");
        TcpListener::bind((LOOPBACK, port)).expect("tcp bind");
    }

    #[test]
    fn a_baresip_port_leaves_the_next_port_free_for_its_tls_transport() {
        let port = free_baresip_port(LOOPBACK).expect("baresip port");
        TcpListener::bind((LOOPBACK, port + 1)).expect("tls port bind");
        let later = free_port(LOOPBACK).expect("later pick");
        assert_ne!(later, port + 1, "the TLS port is never handed out again");
    }

    #[test]
    fn picked_ports_lie_below_the_ephemeral_and_default_rtp_ranges() {
        let start = ephemeral_start().min(CANDIDATE_END);
        for _ in 0..20 {
            assert!(free_port(LOOPBACK).expect("port") < start);
            assert!(free_udp_port(LOOPBACK).expect("udp port") < start);
            assert!(free_udp_range(LOOPBACK, 10).expect("range") + 10 <= start);
        }
    }

    #[test]
    fn a_port_is_handed_out_once() {
        let ports: Vec<u16> = (0..200)
            .map(|_| free_port(LOOPBACK).expect("port"))
            .collect();
        let mut unique = ports.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), ports.len());
    }

    #[test]
    fn a_free_range_starts_even_and_is_bindable() {
        let base = free_udp_range(LOOPBACK, 6).expect("range");
        assert_eq!(base % 2, 0);
        let sockets: Vec<_> = (base..base + 6)
            .map(|p| UdpSocket::bind((LOOPBACK, p)).expect("bind in range"))
            .collect();
        assert_eq!(sockets.len(), 6);
    }

    #[test]
    fn other_loopback_addresses_are_usable() {
        let ip = loopback(3);
        let port = free_udp_port(ip).expect("127.0.0.3 is routed to lo");
        UdpSocket::bind((ip, port)).expect("bind 127.0.0.3");
    }
}
