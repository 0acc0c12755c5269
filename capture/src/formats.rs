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
    /// `None` for an interface whose description block is too short to hold a link type: it
    /// keeps the numbering of the ones after it, and its frames are reported, not decoded.
    link_type: Option<u32>,
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
                let offset = bytes.len() - rest.len();
                let Some((block_type, len, body)) = block_frame(rest, order) else {
                    sink(Event::Warning(Warning {
                        packet: index + 1,
                        kind: WarningKind::MalformedRecord,
                        message: format!(
                            "malformed pcapng block at byte {offset} ({e}); the rest of the \
                             file is unreadable"
                        ),
                    }));
                    return Ok(());
                };
                rest = &rest[len..];
                if block_type == 1 {
                    // An IDB whose options pcap-file rejects: keep the interface numbering by
                    // reading the link type from its fixed part (pcapng §4.2), when the block
                    // is long enough to hold one.
                    let link_type = match (order, body.get(..2)) {
                        (Endianness::Big, Some(&[a, b])) => Some(u16::from_be_bytes([a, b])),
                        (Endianness::Little, Some(&[a, b])) => Some(u16::from_le_bytes([a, b])),
                        _ => None,
                    };
                    interfaces.push(Interface {
                        link_type: link_type.map(u32::from),
                        units_per_sec: 1_000_000,
                        offset_secs: 0,
                    });
                    if link_type.is_none() {
                        sink(Event::Warning(Warning {
                            packet: index + 1,
                            kind: WarningKind::MalformedRecord,
                            message: format!(
                                "interface description block {} at byte {offset} is {len} bytes \
                                 long, too short for its link type; its packets are skipped",
                                interfaces.len() - 1
                            ),
                        }));
                    } else if !warned_interface {
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
                    link_type: Some(u32::from(idb.linktype)),
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
                let id = epb.interface_id;
                sink(frame(&interfaces, id, index, |i| i.time(raw_ts), data));
            }
            Block::SimplePacket(spb) => {
                index += 1;
                // pcapng §4.4: an SPB belongs to the first interface and has no timestamp;
                // its data is padded to 32 bits, the original length bounds it.
                let data = borrowed(spb.data);
                let len = data.len().min(spb.original_len as usize);
                sink(frame(
                    &interfaces,
                    0,
                    index,
                    |_| Duration::ZERO,
                    &data[..len],
                ));
            }
            Block::Packet(pb) => {
                index += 1;
                let data = borrowed(pb.data);
                let id = u32::from(pb.interface_id);
                sink(frame(
                    &interfaces,
                    id,
                    index,
                    |i| i.time(pb.timestamp),
                    data,
                ));
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

/// Frame `index` on interface `id`, or the warning saying why it cannot be decoded.
fn frame<'a>(
    interfaces: &[Interface],
    id: u32,
    index: usize,
    time: impl FnOnce(&Interface) -> Duration,
    data: &'a [u8],
) -> Event<'a> {
    let warning = |message| {
        Event::Warning(Warning {
            packet: index,
            kind: WarningKind::MalformedRecord,
            message,
        })
    };
    match usize::try_from(id).ok().and_then(|i| interfaces.get(i)) {
        Some(iface) => match iface.link_type {
            Some(link_type) => Event::Frame(Frame {
                index,
                time: time(iface),
                link_type,
                data,
            }),
            None => warning(format!(
                "packet block names interface {id}, whose description block is unreadable"
            )),
        },
        None => warning(format!(
            "packet block names interface {id}, which is not described"
        )),
    }
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

    /// A little-endian pcapng block of `block_type` around `body` (padded to 32 bits).
    fn block(block_type: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        body.resize(body.len().next_multiple_of(4), 0);
        let len = (12 + body.len()) as u32;
        [
            &block_type.to_le_bytes()[..],
            &len.to_le_bytes(),
            &body,
            &len.to_le_bytes(),
        ]
        .concat()
    }

    /// A section header with no options.
    fn section_header() -> Vec<u8> {
        let body = [
            &0x1A2B_3C4Du32.to_le_bytes()[..],
            &1u16.to_le_bytes(),
            &0u16.to_le_bytes(),
            &u64::MAX.to_le_bytes(),
        ]
        .concat();
        block(PCAPNG_SHB, &body)
    }

    /// An interface description block with link type `link_type` and no options.
    fn interface(link_type: u16) -> Vec<u8> {
        let body = [
            &link_type.to_le_bytes()[..],
            &[0, 0],
            &65535u32.to_le_bytes(),
        ]
        .concat();
        block(1, &body)
    }

    /// An enhanced packet block on `interface` carrying `data`.
    fn enhanced_packet(interface: u32, data: &[u8]) -> Vec<u8> {
        let len = (data.len() as u32).to_le_bytes();
        let body = [
            &interface.to_le_bytes()[..],
            &0u32.to_le_bytes(),
            &1_000_000u32.to_le_bytes(),
            &len,
            &len,
            data,
        ]
        .concat();
        block(6, &body)
    }

    /// A frame as the tests compare it: number, link type, bytes.
    type Seen = (usize, u32, Vec<u8>);

    fn walk(bytes: &[u8]) -> (Vec<Seen>, Vec<Warning>) {
        let mut frames = Vec::new();
        let mut warnings = Vec::new();
        for_each_frame(bytes, &mut |event| match event {
            Event::Frame(f) => frames.push((f.index, f.link_type, f.data.to_vec())),
            Event::Warning(w) => warnings.push(w),
        })
        .expect("a pcapng section header");
        (frames, warnings)
    }

    #[test]
    fn a_twelve_byte_interface_description_is_a_warning_naming_it_not_a_panic() {
        // An IDB of length 12 has no body at all: no link type to read.
        let bytes = [
            section_header(),
            block(1, &[]),
            interface(1),
            enhanced_packet(0, b"on the unreadable interface"),
            enhanced_packet(1, b"on the Ethernet interface"),
        ]
        .concat();
        let (frames, warnings) = walk(&bytes);
        // The second IDB is still interface 1: the numbering is kept.
        assert_eq!(frames, [(2, 1, b"on the Ethernet interface".to_vec())]);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(warnings[0].kind, WarningKind::MalformedRecord);
        assert!(
            warnings[0]
                .message
                .contains("interface description block 0 at byte 28 is 12 bytes long"),
            "{}",
            warnings[0].message
        );
        assert_eq!(warnings[1].packet, 1);
        assert!(
            warnings[1]
                .message
                .contains("interface 0, whose description block is unreadable"),
            "{}",
            warnings[1].message
        );
    }

    #[test]
    fn a_short_interface_description_keeps_its_link_type() {
        // Four body bytes: the link type and the reserved field, no snap length.
        let bytes = [
            section_header(),
            block(1, &[101, 0, 0, 0]),
            enhanced_packet(0, b"raw IP"),
        ]
        .concat();
        let (frames, _) = walk(&bytes);
        assert_eq!(frames, [(1, 101, b"raw IP".to_vec())]);
    }

    #[test]
    fn a_block_with_an_unusable_length_names_its_offset() {
        // Length 8: shorter than any block (pcapng §3.1).
        let bad = [
            &1u32.to_le_bytes()[..],
            &8u32.to_le_bytes(),
            &8u32.to_le_bytes(),
        ]
        .concat();
        let bytes = [section_header(), bad].concat();
        let (frames, warnings) = walk(&bytes);
        assert!(frames.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        assert!(
            warnings[0].message.contains("at byte 28"),
            "{}",
            warnings[0].message
        );
    }

    #[test]
    fn every_short_block_of_every_known_type_is_read_without_panicking() {
        // Bodies from empty to 40 bytes, filled with zeros or ones, behind an interface, for
        // every block type pcapng defines (and pcap-file parses): errors or warnings only.
        let types = [1, 2, 3, 4, 5, 6, 7, 9, 10, 0x0A0D_0D0A, 0x8000_0001];
        for block_type in types {
            for fill in [0u8, 0xFF] {
                for len in (0..=40).step_by(4) {
                    let bytes = [
                        section_header(),
                        interface(1),
                        block(block_type, &vec![fill; len]),
                        enhanced_packet(0, b"after"),
                    ]
                    .concat();
                    let mut events = 0;
                    let _ = for_each_frame(&bytes, &mut |_| events += 1);
                }
            }
        }
    }

    #[test]
    fn tsresol_power_of_two_and_ten() {
        assert_eq!(units_per_sec(6), 1_000_000);
        assert_eq!(units_per_sec(9), 1_000_000_000);
        assert_eq!(units_per_sec(0x80 | 10), 1024);
    }
}
