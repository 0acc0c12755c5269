//! What went over the wire, on one clock: SIP messages read whole out of a capture (with the
//! capture's own timestamps, the ones [`super::tshark::rtp_to_port`] gives RTP packets), so a
//! test can ask "what RTP reached the carrier after its unhold re-INVITE was answered", and a
//! tshark capture on any interface (a veth end, not only `lo`).
//!
//! SIP is read from the UDP payload bytes and split into start line, headers and body here
//! (RFC 3261 §7: header lines up to the empty line, folded lines joined), into the same
//! [`TracedMessage`] the SIPp trace reader gives, so the same accessors work on both. The
//! dialer's own parser is deliberately not used: this is the oracle.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;

use super::process::Peer;
use super::trace::{Direction, TracedMessage};
use super::tshark::RtpPacket;
use super::HarnessError;

/// One SIP datagram from a capture.
#[derive(Debug, Clone)]
pub struct WireSip {
    /// Seconds since the capture's first packet (`frame.time_relative`).
    pub time: f64,
    /// Where it came from.
    pub src: SocketAddr,
    /// Where it went.
    pub dst: SocketAddr,
    /// The message; [`TracedMessage::direction`] is from the point of view of the port the
    /// messages were selected by (`Received` when sent to it).
    pub message: TracedMessage,
}

impl WireSip {
    /// `INVITE` or `200 INVITE`.
    pub fn label(&self) -> String {
        self.message.label()
    }

    /// The To header's tag parameter.
    pub fn to_tag(&self) -> Option<String> {
        tag_of(
            self.message
                .header("To")
                .or_else(|| self.message.header("t"))?,
        )
    }

    /// Every Route value in order, whether sent as one header or several (RFC 3261 §7.3.1).
    pub fn routes(&self) -> Vec<String> {
        split_header_list(&self.message, "Route")
    }

    /// Every Via value in order, top first.
    pub fn vias(&self) -> Vec<String> {
        let mut vias = split_header_list(&self.message, "Via");
        vias.extend(split_header_list(&self.message, "v"));
        vias
    }

    /// The top Via's branch.
    pub fn branch(&self) -> String {
        self.vias()
            .first()
            .and_then(|v| {
                v.split(';')
                    .find_map(|p| p.trim().strip_prefix("branch="))
                    .map(str::to_owned)
            })
            .unwrap_or_default()
    }
}

/// The `tag` parameter of a From or To value.
pub fn tag_of(value: &str) -> Option<String> {
    // After the closing '>' when there is a name-addr, else anywhere in the parameters.
    let params = value.rsplit_once('>').map_or(value, |(_, p)| p);
    params
        .split(';')
        .find_map(|p| p.trim().strip_prefix("tag="))
        .map(|t| t.trim().to_owned())
}

/// The comma-separated values of every header named `name`, in order (commas inside `<>` or
/// quotes do not split).
pub fn split_header_list(message: &TracedMessage, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    for value in message.headers_named(name) {
        let (mut depth, mut quoted, mut start) = (0i32, false, 0usize);
        for (i, ch) in value.char_indices() {
            match ch {
                '"' => quoted = !quoted,
                '<' if !quoted => depth += 1,
                '>' if !quoted => depth -= 1,
                ',' if !quoted && depth == 0 => {
                    out.push(value[start..i].trim().to_owned());
                    start = i + 1;
                }
                _ => {}
            }
        }
        out.push(value[start..].trim().to_owned());
    }
    out.retain(|v| !v.is_empty());
    out
}

/// Splits one SIP message's text (RFC 3261 §7) into a [`TracedMessage`].
pub fn parse_sip(text: &str, direction: Direction, time: &str) -> Option<TracedMessage> {
    let text = text.replace("\r\n", "\n");
    let (head, body) = text.split_once("\n\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let start_line = lines.next()?.trim().to_owned();
    if !start_line.contains("SIP/2.0") {
        return None;
    }
    let mut headers: Vec<(String, String)> = Vec::new();
    for line in lines {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = headers.last_mut() {
                last.1.push(' ');
                last.1.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    Some(TracedMessage {
        direction,
        time: time.to_owned(),
        start_line,
        headers,
        body: body.trim_end().to_owned(),
    })
}

/// The SIP messages in `pcap` sent to or from UDP port `port`, in capture order.
pub fn sip_messages(pcap: &Path, port: u16) -> Result<Vec<WireSip>, HarnessError> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-Y", &format!("udp.port=={port} && udp.length > 8")])
        .args(["-T", "fields", "-E", "separator=/t"])
        .args([
            "-e",
            "frame.time_relative",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
        ])
        .args(["-e", "ip.dst", "-e", "udp.dstport", "-e", "udp.payload"])
        .output()
        .map_err(|e| HarnessError::Setup(format!("running tshark -r: {e}")))?;
    if !out.status.success() {
        return Err(HarnessError::Peer(format!(
            "tshark -r {}: {}",
            pcap.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let mut messages = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 6 {
            continue;
        }
        let (Ok(src), Ok(dst)) = (
            format!("{}:{}", f[1], f[2]).parse::<SocketAddr>(),
            format!("{}:{}", f[3], f[4]).parse::<SocketAddr>(),
        ) else {
            continue;
        };
        let hex: String = f[5].chars().filter(|c| c.is_ascii_hexdigit()).collect();
        let Ok(bytes) = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
        else {
            continue;
        };
        let direction = if dst.port() == port {
            Direction::Received
        } else {
            Direction::Sent
        };
        let text = String::from_utf8_lossy(&bytes);
        if let Some(message) = parse_sip(&text, direction, f[0]) {
            messages.push(WireSip {
                time: f[0].parse().unwrap_or(0.0),
                src,
                dst,
                message,
            });
        }
    }
    Ok(messages)
}

/// Every UDP datagram in `pcap` sent to address `ip`: its capture time, source and
/// destination.
pub fn udp_to_host(
    pcap: &Path,
    ip: std::net::IpAddr,
) -> Result<Vec<(f64, SocketAddr, SocketAddr)>, HarnessError> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-Y", &format!("udp && ip.dst=={ip}")])
        .args(["-T", "fields", "-E", "separator=/t"])
        .args([
            "-e",
            "frame.time_relative",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
        ])
        .args(["-e", "ip.dst", "-e", "udp.dstport"])
        .output()
        .map_err(|e| HarnessError::Setup(format!("running tshark -r: {e}")))?;
    if !out.status.success() {
        return Err(HarnessError::Peer(format!(
            "tshark -r {}: {}",
            pcap.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split('\t').collect();
            let time = f.first()?.parse().ok()?;
            let src = format!("{}:{}", f.get(1)?, f.get(2)?).parse().ok()?;
            let dst = format!("{}:{}", f.get(3)?, f.get(4)?).parse().ok()?;
            Some((time, src, dst))
        })
        .collect())
}

/// The packets of `packets` captured in `[from, to)` seconds.
pub fn rtp_between(packets: &[RtpPacket], from: f64, to: f64) -> Vec<RtpPacket> {
    packets
        .iter()
        .filter(|p| (from..to).contains(&p.seconds()))
        .cloned()
        .collect()
}

/// A tshark capture on any interface (`tshark -i IFACE -f FILTER -P -l -w DIR/NAME.pcap`).
///
/// The kernel hands packets to the capture in blocks, so the last ones before a stop may not
/// have reached tshark yet, and tshark writes only what it read: a plain SIGINT loses the
/// tail of the call (its BYE). So the filter also takes datagrams to a `marker` address
/// (a port nothing listens on, reached through the captured interface), and [`Capture::stop`]
/// sends marker datagrams until tshark prints one: every packet before it has been written.
#[derive(Debug)]
pub struct Capture {
    peer: Peer,
    pcap: PathBuf,
    marker: SocketAddr,
}

impl Capture {
    /// Starts the capture and waits until tshark says it is capturing.
    pub fn start(
        name: &str,
        interface: &str,
        filter: &str,
        marker: SocketAddr,
        dir: &Path,
    ) -> Result<Capture, HarnessError> {
        let pcap = dir.join(format!("{name}.pcap"));
        let mut cmd = Command::new("tshark");
        let filter = format!(
            "({filter}) or (udp and dst host {} and dst port {})",
            marker.ip(),
            marker.port()
        );
        // The marker's port decoded as plain data, so its line always reads `UDP ... Len=`:
        // tshark has port dissectors for many free ports (12220 reads as Ethernet in UDP).
        let marker_as_data = format!("udp.port=={},data", marker.port());
        cmd.args(["-i", interface, "-n", "-d", &marker_as_data])
            .args(["-f", &filter, "-P", "-l", "-w"])
            .arg(&pcap);
        let peer = Peer::spawn(name, cmd, dir)?;
        peer.wait_for_line(
            &Regex::new("Capturing on").expect("literal regex"),
            Duration::from_secs(10),
        )?;
        Ok(Capture { peer, pcap, marker })
    }

    /// The pcap file.
    pub fn pcap(&self) -> &Path {
        &self.pcap
    }

    /// The capture time (seconds since its first packet) of the latest packet tshark has
    /// printed so far (one line each, `-P -l`), 0 before any.
    pub fn latest_time(&self) -> f64 {
        let line = Regex::new(r"^\s*\d+\s+(\d+\.\d+)\s").expect("literal regex");
        self.peer
            .output(super::process::Stream::Stdout)
            .lines()
            .filter_map(|l| line.captures(l)?.get(1)?.as_str().parse::<f64>().ok())
            .fold(0.0, f64::max)
    }

    /// Waits until the capture holds a packet `seconds` later than the latest one printed
    /// now: a clock made of captured traffic (the kernel hands packets over in blocks, so
    /// counting lines would not be one), for a call whose peers play nothing to look at.
    pub fn wait_capture_time(&self, seconds: f64, timeout: Duration) -> Result<(), HarnessError> {
        let target = self.latest_time() + seconds;
        super::process::poll_until(
            &format!("{} capturing {seconds} s more", self.peer.name()),
            timeout,
            Duration::from_millis(50),
            || (self.latest_time() >= target).then_some(()),
        )
    }

    /// Sends marker datagrams until tshark has printed one (at most 10 s), then stops the
    /// capture with SIGINT and returns the file.
    pub fn stop(&self) -> Result<PathBuf, HarnessError> {
        let socket = std::net::UdpSocket::bind(match self.marker {
            SocketAddr::V4(_) => "0.0.0.0:0",
            SocketAddr::V6(_) => "[::]:0",
        })
        .map_err(|e| HarnessError::Setup(format!("marker socket: {e}")))?;
        let seen = Regex::new(&format!(r"\b{}\b.*Len=", self.marker.port()))
            .expect("a port number makes a valid regex");
        let mut found = false;
        for _ in 0..50 {
            let _ = socket.send_to(b"capture marker", self.marker);
            if self
                .peer
                .wait_for_line(&seen, Duration::from_millis(200))
                .is_ok()
            {
                found = true;
                break;
            }
        }
        self.peer.stop("INT", Duration::from_secs(5))?;
        if found {
            Ok(self.pcap.clone())
        } else {
            Err(HarnessError::Peer(format!(
                "{}: the marker datagrams to {} never showed in the capture",
                self.peer.name(),
                self.marker
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sip_datagram_splits_into_headers_and_body() {
        let text = "ACK sip:carrier@127.0.0.3:5060 SIP/2.0\r\n\
                    Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bKk1, SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bKd1\r\n\
                    Route: <sip:127.0.0.1:5070;lr>\r\nRoute: <sip:127.0.0.1:5060;lr>,\r\n <sip:x;lr>\r\n\
                    To: <sip:+1555@carrier.test>;tag=b-1\r\nContent-Length: 3\r\n\r\nv=0";
        let m = parse_sip(text, Direction::Received, "1.5").expect("a request");
        let wire = WireSip {
            time: 1.5,
            src: "127.0.0.1:5080".parse().unwrap(),
            dst: "127.0.0.1:5070".parse().unwrap(),
            message: m,
        };
        assert_eq!(wire.label(), "ACK");
        assert_eq!(
            wire.routes(),
            [
                "<sip:127.0.0.1:5070;lr>",
                "<sip:127.0.0.1:5060;lr>",
                "<sip:x;lr>"
            ]
        );
        assert_eq!(wire.vias().len(), 2);
        assert_eq!(wire.branch(), "z9hG4bKk1");
        assert_eq!(wire.to_tag().as_deref(), Some("b-1"));
        assert_eq!(wire.message.body, "v=0");
    }

    #[test]
    fn a_tag_inside_the_uri_is_not_the_header_tag() {
        assert_eq!(tag_of("<sip:a@b;tag=uri>;tag=hdr").as_deref(), Some("hdr"));
        assert_eq!(tag_of("<sip:a@b>"), None);
        assert_eq!(tag_of("sip:a@b;tag=bare").as_deref(), Some("bare"));
    }

    #[test]
    fn rtp_is_not_taken_for_sip() {
        assert!(parse_sip("\u{80}\u{8}garbage", Direction::Sent, "0").is_none());
    }
}
