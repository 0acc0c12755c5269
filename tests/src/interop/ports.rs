//! Free ports on loopback addresses, found by binding port 0 and releasing it.
//!
//! A port found free can be taken by another process before the peer binds it; every port is
//! checked for both UDP and TCP (SIP listens on both) and the window is a few milliseconds, so
//! tests accept that race instead of serialising on fixed ports.

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

/// A port free for UDP and TCP on `ip`.
pub fn free_port(ip: IpAddr) -> Result<u16, HarnessError> {
    for _ in 0..50 {
        let udp = UdpSocket::bind(SocketAddr::new(ip, 0))
            .map_err(|e| HarnessError::Setup(format!("binding UDP {ip}:0: {e}")))?;
        let port = udp
            .local_addr()
            .map_err(|e| HarnessError::Setup(format!("UDP local address: {e}")))?
            .port();
        if !taken(port) && TcpListener::bind(SocketAddr::new(ip, port)).is_ok() {
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
    for _ in 0..50 {
        let port = free_port(ip)?;
        let Some(tls) = port.checked_add(1) else {
            continue;
        };
        if !taken(tls) && TcpListener::bind(SocketAddr::new(ip, tls)).is_ok() {
            hand_out([tls]);
            return Ok(port);
        }
    }
    Err(HarnessError::Setup(format!(
        "no port free for UDP and TCP with the next one free for TCP on {ip}"
    )))
}

/// A port free for UDP only on `ip`.
pub fn free_udp_port(ip: IpAddr) -> Result<u16, HarnessError> {
    let udp = UdpSocket::bind(SocketAddr::new(ip, 0))
        .map_err(|e| HarnessError::Setup(format!("binding UDP {ip}:0: {e}")))?;
    Ok(udp
        .local_addr()
        .map_err(|e| HarnessError::Setup(format!("UDP local address: {e}")))?
        .port())
}

/// The first port of `len` consecutive UDP ports, all free on `ip`, the first even: an RTP port
/// range (RTP even, RTCP odd, RFC 3550 §11), or SIPp's media port and the `+2` video port it also
/// binds.
pub fn free_udp_range(ip: IpAddr, len: u16) -> Result<u16, HarnessError> {
    'search: for _ in 0..200 {
        let base = free_udp_port(ip)? & !1;
        if base < 1024 || base.checked_add(len).is_none() || (base..base + len).any(taken) {
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
