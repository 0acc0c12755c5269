//! A scanner's INVITE flood: distinct out-of-dialog INVITEs (each its own Call-ID and
//! branch, as `sipvicious`'s `svmap` and "friendly-scanner" send them) from one address, at
//! a steady rate, counting what comes back.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use super::{process, HarnessError};

/// What one flood sent and got back.
#[derive(Debug, Default)]
pub struct FloodReport {
    /// INVITEs sent.
    pub sent: u64,
    /// Datagrams received back.
    pub received: u64,
    /// Final responses received, per Call-ID.
    pub finals_per_call: HashMap<String, u32>,
}

impl FloodReport {
    /// The most final responses any one INVITE got.
    pub fn most_finals_for_one_invite(&self) -> u32 {
        self.finals_per_call.values().copied().max().unwrap_or(0)
    }
}

/// Sends `count` INVITEs from `from` (port chosen by the system) to `to`, `per_second` of
/// them a second in 10 ms batches, and keeps reading answers until `linger` after the last.
pub fn invites(
    from: IpAddr,
    to: SocketAddr,
    count: u64,
    per_second: u64,
    linger: Duration,
) -> Result<FloodReport, HarnessError> {
    let sock = UdpSocket::bind(SocketAddr::new(from, 0))
        .map_err(|e| HarnessError::Setup(format!("flood source on {from}: {e}")))?;
    sock.set_nonblocking(true)
        .map_err(|e| HarnessError::Setup(format!("flood socket: {e}")))?;
    let local = sock
        .local_addr()
        .map_err(|e| HarnessError::Setup(format!("flood socket: {e}")))?;
    let mut report = FloodReport::default();
    let mut buf = vec![0u8; 65_535];
    let per_batch = (per_second / 100).max(1);
    let start = process::now();
    let mut n = 0u64;
    while n < count {
        let batch_due = start + Duration::from_millis(10 * (n / per_batch));
        pace_until(batch_due);
        for _ in 0..per_batch.min(count - n) {
            let invite = scanner_invite(local, to, n);
            if sock.send_to(invite.as_bytes(), to).is_ok() {
                report.sent += 1;
            }
            n += 1;
        }
        read_answers(&sock, &mut buf, &mut report);
    }
    let end = process::now() + linger;
    while process::now() < end {
        pace_until(process::now() + Duration::from_millis(20));
        read_answers(&sock, &mut buf, &mut report);
    }
    Ok(report)
}

fn read_answers(sock: &UdpSocket, buf: &mut [u8], report: &mut FloodReport) {
    while let Ok((len, _)) = sock.recv_from(buf) {
        report.received += 1;
        let text = String::from_utf8_lossy(&buf[..len]);
        let status = text
            .lines()
            .next()
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|c| c.parse::<u16>().ok());
        let call_id = text.lines().find_map(|l| {
            l.strip_prefix("Call-ID:")
                .or_else(|| l.strip_prefix("i:"))
                .map(|v| v.trim().to_owned())
        });
        if let (Some(200..), Some(call_id)) = (status, call_id) {
            *report.finals_per_call.entry(call_id).or_default() += 1;
        }
    }
}

/// One scanner INVITE, numbered `n`.
fn scanner_invite(local: SocketAddr, to: SocketAddr, n: u64) -> String {
    format!(
        "INVITE sip:{n}@{to} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {local};branch=z9hG4bK-flood-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: \"sipvicious\" <sip:100@1.1.1.1>;tag=fl{n}\r\n\
         To: <sip:{n}@{to}>\r\n\
         Call-ID: flood-{n}-{port}\r\n\
         CSeq: 1 INVITE\r\n\
         Contact: <sip:100@{local}>\r\n\
         User-Agent: friendly-scanner\r\n\
         Content-Length: 0\r\n\r\n",
        port = local.port(),
    )
}

/// The flood's own clock: the rate is what makes it a flood of a given size rather than a
/// burst; nothing waits on it for synchronisation.
#[allow(clippy::disallowed_methods)]
fn pace_until(at: std::time::Instant) {
    let now = process::now();
    if at > now {
        std::thread::sleep(at - now);
    }
}
