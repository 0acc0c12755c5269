//! Capture containers: pcap, pcapng and NetMon 2.x, turned into a sequence of link-layer frames.

use std::time::Duration;

use pcap_file::pcap::PcapParser;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionOption;
use pcap_file::pcapng::{Block, PcapNgParser};
use pcap_file::{Endianness, PcapError, TsResolution};

use crate::{FormatError, Warning, WarningKind};

/// One link-layer frame of the capture.
#[derive(Debug)]
pub(crate) struct Frame<'a> {
    /// 1-based frame number.
    pub index: usize,
    /// Capture time since the Unix epoch.
    pub time: Duration,
    /// LINKTYPE_ value of the frame's interface.
    pub link_type: u32,
    /// Captured bytes, starting at the link-layer header.
    pub data: &'a [u8],
}

/// What the container walk hands to its consumer.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// A frame to decode.
    Frame(Frame<'a>),
    /// A problem in the container itself.
    Warning(Warning),
}

const PCAPNG_SHB: u32 = 0x0A0D_0D0A;
const NETMON_MAGIC: &[u8; 4] = b"GMBU";

/// Walks every frame of a capture in file order.
pub(crate) fn for_each_frame<'a>(
    bytes: &'a [u8],
    sink: &mut dyn FnMut(Event<'a>),
) -> Result<(), FormatError> {
    if bytes.len() < 4 {
        return Err(FormatError::TooShort(bytes.len()));
    }
    let magic: [u8; 4] = bytes[..4].try_into().expect("length checked above");
    match u32::from_be_bytes(magic) {
        0xA1B2_C3D4 | 0xD4C3_B2A1 | 0xA1B2_3C4D | 0x4D3C_B2A1 => pcap(bytes, sink),
        PCAPNG_SHB => pcapng(bytes, sink),
        _ if &magic == NETMON_MAGIC => netmon(bytes, sink),
        _ => Err(FormatError::UnknownMagic(magic)),
    }
}

fn truncated(index: usize, what: &str) -> Event<'static> {
    Event::Warning(Warning {
        packet: index,
        kind: WarningKind::Truncated,
        message: format!("file is cut short in {what}; later frames are missing"),
    })
}

fn pcap<'a>(bytes: &'a [u8], sink: &mut dyn FnMut(Event<'a>)) -> Result<(), FormatError> {
    let (mut rest, parser) = PcapParser::new(bytes).map_err(|e| FormatError::BadHeader {
        format: "pcap",
        detail: e.to_string(),
    })?;
    let header = parser.header();
    let link_type = u32::from(header.datalink);
    let nanos = header.ts_resolution == TsResolution::NanoSecond;
    let mut index = 0;
    while !rest.is_empty() {
        index += 1;
        let (next, record) = match parser.next_raw_packet(rest) {
            Ok(v) => v,
            Err(_) => {
                // The only error of the raw record parser is a record longer than the file.
                sink(truncated(index, "a pcap record"));
                return Ok(());
            }
        };
        rest = next;
        let frac = if nanos {
            u64::from(record.ts_frac)
        } else {
            u64::from(record.ts_frac) * 1000
        };
        // A fraction of a second >= 1 s is malformed; carrying it over keeps time monotonic
        // instead of rejecting the frame (tshark shows such frames too).
        let time = Duration::from_secs(u64::from(record.ts_sec)) + Duration::from_nanos(frac);
        let data: &'a [u8] = match record.data {
            std::borrow::Cow::Borrowed(d) => d,
            std::borrow::Cow::Owned(_) => unreachable_owned(),
        };
        sink(Event::Frame(Frame {
            index,
            time,
            link_type,
            data,
        }));
    }
    Ok(())
}

/// `RawPcapPacket::from_slice` and `RawBlock::from_slice` always borrow from the input slice.
fn unreachable_owned() -> ! {
    unreachable!("pcap-file's slice parsers borrow from the input and never allocate")
}

#[derive(Debug, Clone, Copy)]
struct Interface {
    link_type: u32,
    /// Timestamp units per second.
    units_per_sec: u64,
    /// Seconds added to every timestamp (`if_tsoffset`).
    offset_secs: u64,
}

impl Interface {
    fn time(&self, raw: u64) -> Duration {
        let secs = raw / self.units_per_sec;
        let frac = raw % self.units_per_sec;
        // frac < units_per_sec <= 10^19; scale in u128 to avoid overflow.
        let nanos = (u128::from(frac) * 1_000_000_000 / u128::from(self.units_per_sec)) as u64;
        Duration::from_secs(secs.saturating_add(self.offset_secs)) + Duration::from_nanos(nanos)
    }
}

/// pcapng `if_tsresol`: high bit clear = 10^-n, set = 2^-n seconds (default 10^-6).
fn units_per_sec(tsresol: u8) -> u64 {
    let n = u32::from(tsresol & 0x7F);
    let units = if tsresol & 0x80 == 0 {
        10u64.checked_pow(n)
    } else {
        1u64.checked_shl(n)
    };
    units.filter(|u| *u > 0).unwrap_or(1_000_000)
}

fn pcapng<'a>(bytes: &'a [u8], sink: &mut dyn FnMut(Event<'a>)) -> Result<(), FormatError> {
    let (mut rest, mut parser) = PcapNgParser::new(bytes).map_err(|e| FormatError::BadHeader {
        format: "pcapng",
        detail: e.to_string(),
    })?;
    let mut interfaces: Vec<Interface> = Vec::new();
    let mut index = 0;
    let mut warned_interface = false;
    while !rest.is_empty() {
        let (next, block) = match parser.next_block(rest) {
            Ok(v) => v,
            Err(PcapError::IncompleteBuffer) => {
                sink(truncated(index + 1, "a pcapng block"));
                return Ok(());
            }
            Err(e) => {
                // Skip the block by its own length field (pcapng §3.1) and go on.
                let order = parser.section().endianness;
                let Some((block_type, len, body)) = block_frame(rest, order) else {
                    sink(Event::Warning(Warning {
                        packet: index + 1,
                        kind: WarningKind::MalformedRecord,
                        message: format!(
                            "malformed pcapng block ({e}); the rest of the file is unreadable"
                        ),
                    }));
                    return Ok(());
                };
                rest = &rest[len..];
                if block_type == 1 {
                    // An IDB whose options pcap-file rejects: keep the interface numbering by
                    // reading the link type from its fixed part (pcapng §4.2).
                    let lt = match order {
                        Endianness::Big => u16::from_be_bytes([body[0], body[1]]),
                        Endianness::Little => u16::from_le_bytes([body[0], body[1]]),
                    };
                    interfaces.push(Interface {
                        link_type: u32::from(lt),
                        units_per_sec: 1_000_000,
                        offset_secs: 0,
                    });
                    if !warned_interface {
                        warned_interface = true;
                        sink(Event::Warning(Warning {
                            packet: index + 1,
                            kind: WarningKind::MalformedRecord,
                            message: format!(
                                "interface description with unreadable options ({e}); \
                                 using its link type with microsecond timestamps"
                            ),
                        }));
                    }
                } else if matches!(block_type, 2 | 3 | 6) {
                    index += 1;
                    sink(Event::Warning(Warning {
                        packet: index,
                        kind: WarningKind::MalformedRecord,
                        message: format!("malformed pcapng packet block: {e}"),
                    }));
                }
                continue;
            }
        };
        rest = next;
        match block {
            Block::SectionHeader(_) => interfaces.clear(),
            Block::InterfaceDescription(idb) => {
                let mut iface = Interface {
                    link_type: u32::from(idb.linktype),
                    units_per_sec: 1_000_000,
                    offset_secs: 0,
                };
                for opt in &idb.options {
                    match opt {
                        InterfaceDescriptionOption::IfTsResol(r) => {
                            iface.units_per_sec = units_per_sec(*r)
                        }
                        InterfaceDescriptionOption::IfTsOffset(o) => iface.offset_secs = *o,
                        _ => {}
                    }
                }
                interfaces.push(iface);
            }
            Block::EnhancedPacket(epb) => {
                index += 1;
                // pcap-file builds the Duration as if the units were nanoseconds; undo that.
                let raw_ts = u64::try_from(epb.timestamp.as_nanos()).unwrap_or(u64::MAX);
                let data = borrowed(epb.data);
                match interfaces.get(epb.interface_id as usize) {
                    Some(iface) => sink(Event::Frame(Frame {
                        index,
                        time: iface.time(raw_ts),
                        link_type: iface.link_type,
                        data,
                    })),
                    None => sink(no_interface(index, epb.interface_id)),
                }
            }
            Block::SimplePacket(spb) => {
                index += 1;
                // pcapng §4.4: an SPB belongs to the first interface and has no timestamp;
                // its data is padded to 32 bits, the original length bounds it.
                let data = borrowed(spb.data);
                let len = data.len().min(spb.original_len as usize);
                match interfaces.first() {
                    Some(iface) => sink(Event::Frame(Frame {
                        index,
                        time: Duration::ZERO,
                        link_type: iface.link_type,
                        data: &data[..len],
                    })),
                    None => sink(no_interface(index, 0)),
                }
            }
            Block::Packet(pb) => {
                index += 1;
                let data = borrowed(pb.data);
                match interfaces.get(usize::from(pb.interface_id)) {
                    Some(iface) => sink(Event::Frame(Frame {
                        index,
                        time: iface.time(pb.timestamp),
                        link_type: iface.link_type,
                        data,
                    })),
                    None => sink(no_interface(index, u32::from(pb.interface_id))),
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// Type, total length and body of the block at the start of `bytes`, if its length is usable.
fn block_frame(bytes: &[u8], order: Endianness) -> Option<(u32, usize, &[u8])> {
    let word = |o: usize| -> Option<u32> {
        let b: [u8; 4] = bytes.get(o..o + 4)?.try_into().ok()?;
        Some(match order {
            Endianness::Big => u32::from_be_bytes(b),
            Endianness::Little => u32::from_le_bytes(b),
        })
    };
    let block_type = word(0)?;
    let len = word(4)? as usize;
    if len < 12 || len & 3 != 0 || len > bytes.len() {
        return None;
    }
    Some((block_type, len, &bytes[8..len - 4]))
}

fn borrowed(data: std::borrow::Cow<'_, [u8]>) -> &'_ [u8] {
    match data {
        std::borrow::Cow::Borrowed(d) => d,
        std::borrow::Cow::Owned(_) => unreachable_owned(),
    }
}

fn no_interface(index: usize, id: u32) -> Event<'static> {
    Event::Warning(Warning {
        packet: index,
        kind: WarningKind::MalformedRecord,
        message: format!("packet block names interface {id}, which is not described"),
    })
}

/// NetMon 2.x: a 128-byte header with the start time and the offset of a frame table; the
/// table lists the file offset of every frame record (layout as in Wireshark's wiretap/netmon.c).
fn netmon<'a>(bytes: &'a [u8], sink: &mut dyn FnMut(Event<'a>)) -> Result<(), FormatError> {
    let bad = |detail: &str| FormatError::BadHeader {
        format: "NetMon",
        detail: detail.to_string(),
    };
    if bytes.len() < 128 {
        return Err(bad("shorter than the 128-byte file header"));
    }
    let u16_at = |o: usize| u16::from_le_bytes([bytes[o], bytes[o + 1]]);
    let u32_at =
        |o: usize| u32::from_le_bytes(bytes[o..o + 4].try_into().expect("4-byte slice")) as usize;
    let version_minor = bytes[4];
    let version_major = bytes[5];
    if version_major != 2 {
        return Err(bad(&format!(
            "version {version_major}.{version_minor}; only 2.x is supported"
        )));
    }
    // NetMon media types: 1 Ethernet, 2 Token Ring, 3 FDDI, 4 ATM, 5 IEEE 1394, 6 802.11 ...
    let link_type = match u16_at(6) {
        1 => 1u32,
        0xE000 | 0xFFE0 => 101,
        other => 0x1_0000 + u32::from(other),
    };
    let start = system_time(
        u16_at(8),
        u16_at(10),
        u16_at(14),
        u16_at(16),
        u16_at(18),
        u16_at(20),
        u16_at(22),
    );
    let table_offset = u32_at(24);
    let table_len = u32_at(28);
    let table = bytes
        .get(table_offset..table_offset.saturating_add(table_len))
        .ok_or_else(|| bad("frame table lies outside the file"))?;
    // Version 2.1 and later append a per-frame trailer (media type etc.) after the data.
    for (i, entry) in table.chunks_exact(4).enumerate() {
        let index = i + 1;
        let offset = u32::from_le_bytes(entry.try_into().expect("chunks_exact(4)")) as usize;
        let Some(head) = bytes.get(offset..offset.saturating_add(16)) else {
            sink(truncated(index, "a NetMon frame header"));
            return Ok(());
        };
        let delta_us = u64::from_le_bytes(head[..8].try_into().expect("8-byte slice"));
        let incl_len = u32::from_le_bytes(head[12..16].try_into().expect("4-byte slice")) as usize;
        let Some(data) = bytes.get(offset + 16..(offset + 16).saturating_add(incl_len)) else {
            sink(truncated(index, "a NetMon frame"));
            return Ok(());
        };
        sink(Event::Frame(Frame {
            index,
            time: start + Duration::from_micros(delta_us),
            link_type,
            data,
        }));
    }
    Ok(())
}

/// A Windows SYSTEMTIME (UTC) as time since the Unix epoch.
fn system_time(
    year: u16,
    month: u16,
    day: u16,
    hour: u16,
    min: u16,
    sec: u16,
    ms: u16,
) -> Duration {
    // Days from civil date (proleptic Gregorian), H. Hinnant's algorithm.
    let y = i64::from(year) - i64::from(month <= 2);
    let m = i64::from(month.clamp(1, 12));
    let d = i64::from(day.clamp(1, 31));
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + i64::from(hour) * 3600 + i64::from(min) * 60 + i64::from(sec);
    Duration::from_secs(u64::try_from(secs).unwrap_or(0)) + Duration::from_millis(u64::from(ms))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_time_matches_known_epoch_seconds() {
        // 2005-07-17 15:39:20.502 UTC, the start of the corpus NetMon capture.
        let t = system_time(2005, 7, 17, 15, 39, 20, 502);
        assert_eq!(t, Duration::from_millis(1_121_614_760_502));
    }

    #[test]
    fn tsresol_power_of_two_and_ten() {
        assert_eq!(units_per_sec(6), 1_000_000);
        assert_eq!(units_per_sec(9), 1_000_000_000);
        assert_eq!(units_per_sec(0x80 | 10), 1024);
    }
}
