#!/usr/bin/env python3
"""Writes a ~100 MB pcap built from corpus captures, for timing `dialer pcap ladder`.

The records of a few corpus captures (SIP over UDP with RTP, SIP-only UDP, SIP over TCP, SIP
over WebSocket) are repeated with timestamps shifted by one minute per repetition. So that each
repetition holds new calls rather than retransmissions of the first ones:
- the first six characters of each Call-ID value in a UDP or TCP payload are overwritten with
  the repetition number in hex (same length, so no length field changes; checksums are not
  verified by tshark or the capture crate); masked WebSocket client frames keep theirs;
- TCP client ports (those >= 10000) are shifted by the repetition number, so each repetition
  is a new connection to reassemble; server ports (5060, 8080) stay, so that tshark still
  dissects the streams as SIP and WebSocket.

usage: make_capture.py CORPUS_PCAPS_DIR OUTPUT [MEGABYTES]
"""
import re
import struct
import sys

SOURCES = [
    "Asterisk_ZFONE_XLITE.pcap",
    "wireshark.pcap",
    "sip_ipv4_tcp.pcap",
    "sip_tcp_websocket.pcap",
]
CALL_ID = re.compile(rb"(?im)^(?:call-id|i)[ \t]*:[ \t]*")
TOKEN = re.compile(rb"^[A-Za-z0-9.!%*_+`'~@:-]{6}")


def records(path):
    data = open(path, "rb").read()
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    else:
        raise SystemExit(f"{path}: not a classic pcap")
    nanos = magic in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    link = struct.unpack(endian + "I", data[20:24])[0]
    if link != 1:
        raise SystemExit(f"{path}: link type {link}, the builder handles Ethernet only")
    off, out = 24, []
    while off + 16 <= len(data):
        sec, frac, incl, _ = struct.unpack(endian + "IIII", data[off : off + 16])
        usec = frac // 1000 if nanos else frac
        out.append((sec * 1_000_000 + usec, data[off + 16 : off + 16 + incl]))
        off += 16 + incl
    return out


def rewrite(frame, rep):
    """Per-repetition Call-IDs (UDP, TCP) and TCP ports (Ethernet + IPv4 only)."""
    if len(frame) < 34 or frame[12:14] != b"\x08\x00":
        return frame
    frame = bytearray(frame)
    ihl = (frame[14] & 0x0F) * 4
    proto = frame[23]
    l4 = 14 + ihl
    if proto == 6 and len(frame) >= l4 + 20:
        for at in (l4, l4 + 2):
            port = struct.unpack(">H", frame[at : at + 2])[0]
            if port >= 10000:
                port = 10000 + (port - 10000 + rep) % 55000
                frame[at : at + 2] = struct.pack(">H", port)
        payload_at = l4 + (frame[l4 + 12] >> 4) * 4
    elif proto == 17:
        payload_at = l4 + 8
    else:
        return bytes(frame)
    tag = b"%06x" % (rep % 0x1000000)
    payload = bytes(frame[payload_at:])
    for m in CALL_ID.finditer(payload):
        start = m.end()
        if TOKEN.match(payload[start : start + 6]):
            frame[payload_at + start : payload_at + start + 6] = tag
    return bytes(frame)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    corpus, output = sys.argv[1], sys.argv[2]
    target = int(float(sys.argv[3]) * 1024 * 1024) if len(sys.argv) > 3 else 100 * 1024 * 1024
    sources = [records(f"{corpus}/{name}") for name in SOURCES]
    base = sources[0][0][0]
    written = 24
    with open(output, "wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        rep = 0
        while written < target:
            offset = rep * 60_000_000
            for recs in sources:
                first = recs[0][0]
                for ts, frame in recs:
                    t = base + offset + (ts - first)
                    frame = rewrite(frame, rep)
                    out.write(struct.pack("<IIII", t // 1_000_000, t % 1_000_000, len(frame), len(frame)))
                    out.write(frame)
                    written += 16 + len(frame)
            rep += 1
    print(f"{output}: {written / 1048576:.1f} MB, {rep} repetitions of {', '.join(SOURCES)}")


if __name__ == "__main__":
    main()
