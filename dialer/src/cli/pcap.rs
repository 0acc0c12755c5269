//! `dialer pcap ladder|rtp|audio`: text and JSON output of the capture analyses.

use std::io::{self, Write};
use std::path::Path;

use capture::Capture;
use serde_json::json;

use super::{Exit, Streams};
use crate::pcap::{audio, ladder, rtp};

/// Reads the capture; problems inside it go to the error stream as `FILE: packet N: ...`.
/// `None` when the file cannot be read at all (already reported).
fn read(file: &Path, streams: &mut Streams<'_>) -> io::Result<Option<Capture>> {
    match capture::read_file(file) {
        Ok(c) => {
            for w in &c.warnings {
                writeln!(streams.stderr, "{}: {w}", file.display())?;
            }
            Ok(Some(c))
        }
        Err(e) => {
            // The error names the path already.
            writeln!(streams.stderr, "{e}")?;
            Ok(None)
        }
    }
}

pub(super) fn ladder_command(
    file: &Path,
    call: Option<&str>,
    as_json: bool,
    streams: &mut Streams<'_>,
) -> io::Result<Exit> {
    let Some(capture) = read(file, streams)? else {
        return Ok(Exit::Rejected);
    };
    let result = ladder::analyse(&capture, call);
    for u in &result.unparsed {
        writeln!(
            streams.stderr,
            "{}: packet {}: SIP message from {} rejected: {}{}",
            file.display(),
            u.packet,
            u.src,
            location(u),
            u.error
        )?;
    }
    let out = &mut *streams.stdout;
    if as_json {
        let value = json!({
            "file": file.display().to_string(),
            "calls": result.calls,
            "unparsed": result.unparsed,
            "parsed_messages": result.parsed_messages,
            "sip_frames": result.sip_frames,
            "warnings": capture.warnings.iter().map(|w| json!({
                "packet": w.packet,
                "message": w.message,
            })).collect::<Vec<_>>(),
        });
        writeln!(out, "{value:#}")?;
    } else {
        write_ladder_text(out, file, &result)?;
    }
    if call.is_some() && result.calls.is_empty() {
        writeln!(
            streams.stderr,
            "{}: no call with Call-ID {:?}",
            file.display(),
            call.unwrap_or_default()
        )?;
        return Ok(Exit::Rejected);
    }
    Ok(Exit::Success)
}

fn location(u: &ladder::Unparsed) -> String {
    match (u.line, u.column) {
        (Some(l), Some(c)) => format!("line {l}, column {c}: "),
        _ => String::new(),
    }
}

fn write_ladder_text(out: &mut dyn Write, file: &Path, l: &ladder::Ladder) -> io::Result<()> {
    writeln!(
        out,
        "{}: {} SIP messages in {} frames, {} calls",
        file.display(),
        l.parsed_messages,
        l.sip_frames,
        l.calls.len()
    )?;
    for (n, call) in l.calls.iter().enumerate() {
        writeln!(out)?;
        writeln!(
            out,
            "Call {}: {} ({} messages)",
            n + 1,
            if call.call_id.is_empty() {
                "(no Call-ID)"
            } else {
                &call.call_id
            },
            call.messages.len()
        )?;
        for s in &call.messages {
            writeln!(
                out,
                "  {:>11.6}  #{:<6} {:>21} -> {:<21} {:<3}  {:<40}  CSeq {}{}",
                s.time,
                s.packet,
                s.src.to_string(),
                s.dst.to_string(),
                s.transport,
                s.label(),
                s.cseq,
                if s.retransmission {
                    "  (retransmission)"
                } else {
                    ""
                }
            )?;
        }
        for f in &call.flags {
            let kind = match f.kind {
                ladder::FlagKind::AckMisrouted => "ACK MISROUTED",
                ladder::FlagKind::Nat => "NAT",
                ladder::FlagKind::MissingAck => "MISSING ACK",
                ladder::FlagKind::Retransmission => "RETRANSMISSION",
            };
            writeln!(out, "  ! {kind} (packet {}): {}", f.packet, f.message)?;
        }
        writeln!(out, "  outcome: {}", call.outcome)?;
    }
    if !l.unparsed.is_empty() {
        writeln!(out)?;
        writeln!(out, "Rejected SIP messages:")?;
        for u in &l.unparsed {
            writeln!(
                out,
                "  packet {} ({} {} -> {}): {}{}",
                u.packet,
                u.transport,
                u.src,
                u.dst,
                location(u),
                u.error
            )?;
        }
    }
    Ok(())
}

pub(super) fn rtp_command(
    file: &Path,
    as_json: bool,
    streams: &mut Streams<'_>,
) -> io::Result<Exit> {
    let Some(capture) = read(file, streams)? else {
        return Ok(Exit::Rejected);
    };
    let report = rtp::report(&capture);
    let out = &mut *streams.stdout;
    if as_json {
        let value = json!({ "file": file.display().to_string(), "streams": report });
        writeln!(out, "{value:#}")?;
        return Ok(Exit::Success);
    }
    writeln!(
        out,
        "{:<10} {:>21} -> {:<21} {:<22} {:>7} {:>12} {:>7} {:>9} {:>9}  digits",
        "SSRC",
        "source",
        "destination",
        "payload",
        "packets",
        "lost",
        "seq err",
        "max jit",
        "max delta"
    )?;
    for s in &report {
        let payload: Vec<String> = s
            .payload_types
            .iter()
            .zip(&s.codecs)
            .map(|(pt, c)| format!("{pt} {c}"))
            .chain(s.srtp.then(|| "SRTP".to_owned()))
            .collect();
        writeln!(
            out,
            "{:<10} {:>21} -> {:<21} {:<22} {:>7} {:>5} ({:>4.1}%) {:>7} {:>7.3}ms {:>7.3}ms  {}",
            s.ssrc_hex,
            s.src.to_string(),
            s.dst.to_string(),
            payload.join(", "),
            s.packets,
            s.lost,
            s.lost_percent,
            s.sequence_errors,
            s.max_jitter_ms,
            s.max_delta_ms,
            s.digits
        )?;
    }
    writeln!(out, "{} streams", report.len())?;
    Ok(Exit::Success)
}

pub(super) fn audio_command(
    file: &Path,
    ssrc: u32,
    output: &Path,
    streams: &mut Streams<'_>,
) -> io::Result<Exit> {
    let Some(capture) = read(file, streams)? else {
        return Ok(Exit::Rejected);
    };
    let decoded = match audio::decode(&capture, ssrc) {
        Ok(d) => d,
        Err(e) => {
            writeln!(streams.stderr, "{}: {e}", file.display())?;
            return Ok(Exit::Rejected);
        }
    };
    if let Err(e) = audio::write_wav(output, decoded.sample_rate, &decoded.samples) {
        writeln!(streams.stderr, "{}: {e}", output.display())?;
        return Ok(Exit::Rejected);
    }
    if decoded.other_streams > 0 {
        writeln!(
            streams.stderr,
            "{}: {} more streams have SSRC 0x{ssrc:08X}; decoded the first ({} -> {})",
            file.display(),
            decoded.other_streams,
            decoded.stream.src,
            decoded.stream.dst
        )?;
    }
    writeln!(
        streams.stdout,
        "{}: SSRC 0x{ssrc:08X} {} -> {}, {}: {} packets decoded, {} duplicates, {} skipped, \
         {} undecodable; {:.3} s at {} Hz ({:.3} s filled) written to {}",
        file.display(),
        decoded.stream.src,
        decoded.stream.dst,
        decoded.codec.encoding_name(),
        decoded.decoded_packets,
        decoded.duplicates,
        decoded.skipped,
        decoded.undecodable,
        decoded.samples.len() as f64 / f64::from(decoded.sample_rate),
        decoded.sample_rate,
        decoded.filled_samples as f64 / f64::from(decoded.sample_rate),
        output.display()
    )?;
    Ok(Exit::Success)
}
