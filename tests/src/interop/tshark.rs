//! A tshark tap on the loopback interface: writes a pcap in the test dir, prints one line per
//! packet (`-P -l`) so a test can wait for "N packets seen", and decodes the RTP it caught.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use regex::Regex;

use super::audio::{Law, Pcm};
use super::process::Peer;
use super::HarnessError;

/// A running capture.
#[derive(Debug)]
pub struct Tap {
    peer: Peer,
    pcap: PathBuf,
}

impl Tap {
    /// Starts `tshark -i lo -f FILTER -w DIR/NAME.pcap -P -l` and waits until it is capturing.
    pub fn start(name: &str, filter: &str, dir: &Path) -> Result<Tap, HarnessError> {
        let pcap = dir.join(format!("{name}.pcap"));
        let mut cmd = Command::new("tshark");
        cmd.args(["-i", "lo", "-n", "-f", filter, "-P", "-l", "-w"])
            .arg(&pcap);
        let peer = Peer::spawn(name, cmd, dir)?;
        peer.wait_for_line(
            &Regex::new("Capturing on").expect("literal regex"),
            Duration::from_secs(10),
        )?;
        Ok(Tap { peer, pcap })
    }

    /// The pcap file it writes.
    pub fn pcap(&self) -> &Path {
        &self.pcap
    }

    /// Waits until it has printed `count` packet lines.
    pub fn wait_packets(&self, count: usize, timeout: Duration) -> Result<(), HarnessError> {
        self.peer
            .wait_for_lines(
                &Regex::new(r"^\s*\d+\s+\d+\.\d+\s").expect("literal regex"),
                count,
                timeout,
            )
            .map(|_| ())
    }

    /// Stops the capture (SIGINT, so the pcap is complete) and returns the file.
    pub fn stop(&self) -> Result<PathBuf, HarnessError> {
        self.peer.stop("INT", Duration::from_secs(5))?;
        Ok(self.pcap.clone())
    }
}

/// One RTP packet from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RtpPacket {
    /// Seconds since the first packet of the capture.
    pub time: String,
    /// Source address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// Payload type.
    pub payload_type: u8,
    /// Sequence number.
    pub seq: u16,
    /// The payload bytes.
    pub payload: Vec<u8>,
}

impl RtpPacket {
    /// [`RtpPacket::time`] as seconds.
    pub fn seconds(&self) -> f64 {
        self.time.parse().unwrap_or(0.0)
    }
}

/// The RTP packets in `pcap` sent to UDP port `port` (decoded as RTP with `-d udp.port==PORT,rtp`).
pub fn rtp_to_port(pcap: &Path, port: u16) -> Result<Vec<RtpPacket>, HarnessError> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args(["-n", "-d", &format!("udp.port=={port},rtp")])
        .args(["-Y", &format!("rtp && udp.dstport=={port}")])
        .args(["-T", "fields", "-E", "separator=/t"])
        .args([
            "-e",
            "frame.time_relative",
            "-e",
            "ip.src",
            "-e",
            "udp.srcport",
        ])
        .args([
            "-e",
            "ip.dst",
            "-e",
            "udp.dstport",
            "-e",
            "rtp.p_type",
            "-e",
            "rtp.seq",
        ])
        .args(["-e", "rtp.payload"])
        .output()
        .map_err(|e| HarnessError::Setup(format!("running tshark -r: {e}")))?;
    if !out.status.success() {
        return Err(HarnessError::Peer(format!(
            "tshark -r {}: {}",
            pcap.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let bad = |line: &str| HarnessError::Peer(format!("tshark RTP line not understood: {line:?}"));
    let mut packets = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 8 {
            return Err(bad(line));
        }
        let addr =
            |ip: &str, port: &str| -> Option<SocketAddr> { format!("{ip}:{port}").parse().ok() };
        let hex: String = f[7].chars().filter(|c| c.is_ascii_hexdigit()).collect();
        let payload = (0..hex.len() / 2)
            .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16))
            .collect::<Result<Vec<u8>, _>>()
            .map_err(|_| bad(line))?;
        packets.push(RtpPacket {
            time: f[0].to_owned(),
            src: addr(f[1], f[2]).ok_or_else(|| bad(line))?,
            dst: addr(f[3], f[4]).ok_or_else(|| bad(line))?,
            payload_type: f[5].parse().map_err(|_| bad(line))?,
            seq: f[6].parse().map_err(|_| bad(line))?,
            payload,
        });
    }
    Ok(packets)
}

/// Runs `tshark -r PCAP ARGS -T fields` with tab-separated `fields` and returns the lines.
fn fields(pcap: &Path, args: &[String], fields: &[&str]) -> Result<Vec<Vec<String>>, HarnessError> {
    let mut cmd = Command::new("tshark");
    // Heuristic dissectors first: a free port picked for RTP may be one tshark has a port
    // dissector for (41170 is MANOLITO), which would otherwise win over the RTP heuristic.
    cmd.arg("-r")
        .arg(pcap)
        .arg("-n")
        .args(["-o", "udp.try_heuristic_first:TRUE"])
        .args(args);
    cmd.args(["-T", "fields", "-E", "separator=/t", "-E", "occurrence=f"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = cmd
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
        .filter(|l| !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect())
}

/// One SIP message from a capture, as tshark dissects it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipPacket {
    /// Source address.
    pub src: SocketAddr,
    /// Destination address.
    pub dst: SocketAddr,
    /// The method of a request.
    pub method: Option<String>,
    /// The status code of a response.
    pub status: Option<u16>,
    /// Call-ID.
    pub call_id: String,
    /// The CSeq header value (`1 INVITE`).
    pub cseq: String,
    /// The top Via's branch.
    pub branch: String,
}

impl SipPacket {
    /// `INVITE` for requests, `487 INVITE` for responses.
    pub fn label(&self) -> String {
        match (&self.method, self.status) {
            (Some(m), _) => m.clone(),
            (None, Some(s)) => {
                format!("{s} {}", self.cseq.split_whitespace().nth(1).unwrap_or("?"))
            }
            (None, None) => "?".into(),
        }
    }
}

/// The SIP messages in `pcap` to or from UDP port `port` (dissected as SIP on that port).
pub fn sip_messages(pcap: &Path, port: u16) -> Result<Vec<SipPacket>, HarnessError> {
    let args = [
        "-d".to_owned(),
        format!("udp.port=={port},sip"),
        "-Y".to_owned(),
        format!("sip && udp.port=={port}"),
    ];
    let rows = fields(
        pcap,
        &args,
        &[
            "ip.src",
            "udp.srcport",
            "ip.dst",
            "udp.dstport",
            "sip.Method",
            "sip.Status-Code",
            "sip.Call-ID",
            "sip.CSeq",
            "sip.Via.branch",
        ],
    )?;
    rows.into_iter()
        .map(|f| {
            let bad = || HarnessError::Peer(format!("tshark SIP line not understood: {f:?}"));
            let get = |i: usize| f.get(i).map(String::as_str).unwrap_or_default();
            let addr = |ip: &str, port: &str| format!("{ip}:{port}").parse().map_err(|_| bad());
            Ok(SipPacket {
                src: addr(get(0), get(1))?,
                dst: addr(get(2), get(3))?,
                method: Some(get(4).to_owned()).filter(|m| !m.is_empty()),
                status: get(5).parse().ok(),
                call_id: get(6).to_owned(),
                cseq: get(7).to_owned(),
                branch: get(8).to_owned(),
            })
        })
        .collect()
}

/// One RFC 4733 telephone-event packet from a capture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventPacket {
    /// Destination address.
    pub dst: SocketAddr,
    /// Payload type it was sent with.
    pub payload_type: u8,
    /// RTP timestamp (the event's start, RFC 4733 §2.3.1).
    pub timestamp: u32,
    /// Event code (0-9 digits, 10 `*`, 11 `#`, RFC 4733 §3.2).
    pub event: u8,
    /// The E bit.
    pub end: bool,
    /// Duration in timestamp units.
    pub duration: u32,
}

/// The RTP packets in `pcap` that tshark's RTP heuristic finds, with payload type `event_pt`
/// dissected as telephone-event (`-d rtp.pt==PT,rtpevent`): the events, in capture order.
pub fn rtp_events(pcap: &Path, event_pt: u8) -> Result<Vec<EventPacket>, HarnessError> {
    let args = [
        "--enable-heuristic".to_owned(),
        "rtp_udp".to_owned(),
        "-d".to_owned(),
        format!("rtp.pt=={event_pt},rtpevent"),
        "-Y".to_owned(),
        "rtpevent".to_owned(),
    ];
    let rows = fields(
        pcap,
        &args,
        &[
            "ip.dst",
            "udp.dstport",
            "rtp.p_type",
            "rtp.timestamp",
            "rtpevent.event_id",
            "rtpevent.end_of_event",
            "rtpevent.duration",
        ],
    )?;
    rows.into_iter()
        .map(|f| {
            let bad = || HarnessError::Peer(format!("tshark rtpevent line not understood: {f:?}"));
            let get = |i: usize| f.get(i).map(String::as_str).unwrap_or_default();
            Ok(EventPacket {
                dst: format!("{}:{}", get(0), get(1))
                    .parse()
                    .map_err(|_| bad())?,
                payload_type: get(2).parse().map_err(|_| bad())?,
                timestamp: get(3).parse().map_err(|_| bad())?,
                event: get(4).parse().map_err(|_| bad())?,
                end: matches!(get(5), "1" | "True" | "true"),
                duration: get(6).parse().map_err(|_| bad())?,
            })
        })
        .collect()
}

/// The payload types of every RTP packet in `pcap` sent to `dst_port` (decoded as RTP).
pub fn rtp_payload_types(pcap: &Path, dst_port: u16) -> Result<Vec<u8>, HarnessError> {
    let args = [
        "-d".to_owned(),
        format!("udp.port=={dst_port},rtp"),
        "-Y".to_owned(),
        format!("rtp && udp.dstport=={dst_port}"),
    ];
    fields(pcap, &args, &["rtp.p_type"])?
        .into_iter()
        .map(|f| {
            f.first().and_then(|v| v.parse().ok()).ok_or_else(|| {
                HarnessError::Peer(format!("tshark payload type not understood: {f:?}"))
            })
        })
        .collect()
}

/// Decodes G.711 packets onto an 8 kHz timeline in sequence-number order, so "what was heard
/// when" survives a change of SSRC or timestamp base at the switch from ringback to the agent.
/// Packets of other payload types (telephone-event, comfort noise) are left out.
pub fn g711_timeline(packets: &[RtpPacket]) -> Pcm {
    // Packets are laid end to end in sequence-number order (as a receiver's playout does),
    // not at their arrival times: arrival jitter would otherwise cut a click into the tone
    // every packet. Lost packets leave a packet of silence; the time scale stays 8 kHz.
    let Some(first) = packets.first() else {
        return Pcm {
            rate: 8000,
            samples: Vec::new(),
        };
    };
    let mut samples: Vec<f32> = Vec::new();
    let mut index: i64 = 0;
    let mut last_seq = first.seq;
    for (n, packet) in packets.iter().enumerate() {
        let law = match packet.payload_type {
            0 => Law::Mu,
            8 => Law::A,
            _ => continue,
        };
        if n > 0 {
            // Sequence numbers wrap at 2^16 (RFC 3550 §5.1).
            index += i64::from(packet.seq.wrapping_sub(last_seq) as i16);
        }
        last_seq = packet.seq;
        let Ok(slot) = usize::try_from(index) else {
            continue;
        };
        let at = slot * packet.payload.len();
        if samples.len() < at + packet.payload.len() {
            samples.resize(at + packet.payload.len(), 0.0);
        }
        for (i, &code) in packet.payload.iter().enumerate() {
            samples[at + i] = f32::from(decode_g711(law, code)) / 32768.0;
        }
    }
    Pcm {
        rate: 8000,
        samples,
    }
}

/// ITU-T G.711 expansion of one code, written from the standard's segment/mantissa layout so
/// the oracle does not share code with the dialer's codec.
fn decode_g711(law: Law, code: u8) -> i16 {
    match law {
        Law::A => {
            let a = code ^ 0x55;
            let segment = (a >> 4) & 0x07;
            let mantissa = i32::from(a & 0x0f);
            let magnitude = if segment == 0 {
                (mantissa << 4) + 8
            } else {
                ((mantissa << 4) + 0x108) << (segment - 1)
            };
            let value = if a & 0x80 != 0 { magnitude } else { -magnitude };
            value as i16
        }
        Law::Mu => {
            let u = !code;
            let segment = (u >> 4) & 0x07;
            let mantissa = i32::from(u & 0x0f);
            let magnitude = (((mantissa << 3) + 0x84) << segment) - 0x84;
            let value = if u & 0x80 != 0 { -magnitude } else { magnitude };
            value as i16
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn g711_expansion_matches_the_standard_end_points() {
        // ITU-T G.711 Tables 1a/2a: A-law 0xD5 is +8, 0x55 is -8, 0xAA is +32256;
        // µ-law 0xFF is 0, 0x80 is +32124, 0x00 is -32124.
        assert_eq!(decode_g711(Law::A, 0xd5), 8);
        assert_eq!(decode_g711(Law::A, 0x55), -8);
        assert_eq!(decode_g711(Law::A, 0xaa), 32256);
        assert_eq!(decode_g711(Law::Mu, 0xff), 0);
        assert_eq!(decode_g711(Law::Mu, 0x80), 32124);
        assert_eq!(decode_g711(Law::Mu, 0x00), -32124);
    }

    #[test]
    fn timeline_places_packets_by_sequence_number() {
        let packet = |seq: u16, pt: u8, byte: u8| RtpPacket {
            time: "0.000".into(),
            src: "127.0.0.1:1".parse().unwrap(),
            dst: "127.0.0.1:2".parse().unwrap(),
            payload_type: pt,
            seq,
            payload: vec![byte; 160],
        };
        // Sequence 1 was lost; the event packet (PT 101) is left out of the audio.
        let pcm = g711_timeline(&[packet(0, 8, 0xaa), packet(2, 8, 0xaa), packet(3, 101, 0x00)]);
        assert_eq!(pcm.samples.len(), 320 + 160);
        assert!(pcm.samples[..160].iter().all(|&s| s > 0.9));
        assert!(
            pcm.samples[160..320].iter().all(|&s| s == 0.0),
            "gap stays silent"
        );
    }
}
