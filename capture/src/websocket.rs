//! RFC 6455 WebSocket framing: frames in, complete data messages out.

/// A message larger than this is refused (a guard against garbage lengths, not a protocol limit).
const MAX_MESSAGE: usize = 16 * 1024 * 1024;

/// Frame opcodes, RFC 6455 §5.2.
mod opcode {
    pub const CONTINUATION: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
}

/// Decodes one direction of a WebSocket connection.
#[derive(Debug, Default)]
pub(crate) struct WsDecoder {
    buffer: Vec<u8>,
    /// Payload of a fragmented message whose final frame has not arrived (RFC 6455 §5.4).
    message: Option<Vec<u8>>,
}

/// What one call to [`WsDecoder::push`] produced.
#[derive(Debug, Default)]
pub(crate) struct Decoded {
    /// Complete data messages, unmasked.
    pub messages: Vec<Vec<u8>>,
    /// Compressed messages (RSV1, RFC 7692) that were skipped.
    pub skipped_compressed: usize,
}

impl WsDecoder {
    /// Adds stream bytes and returns the messages they complete, or why the stream is not
    /// WebSocket framing.
    pub(crate) fn push(&mut self, bytes: &[u8]) -> Result<Decoded, String> {
        self.buffer.extend_from_slice(bytes);
        let mut out = Decoded::default();
        let mut pos = 0;
        let result = loop {
            match self.frame_at(pos, &mut out) {
                Ok(Some(used)) => pos += used,
                Ok(None) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        self.buffer.drain(..pos);
        result.map(|()| out)
    }

    /// Parses the frame starting at `pos`; `Ok(None)` if it is not complete yet.
    fn frame_at(&mut self, pos: usize, out: &mut Decoded) -> Result<Option<usize>, String> {
        let buf = &self.buffer[pos..];
        if buf.len() < 2 {
            return Ok(None);
        }
        let fin = buf[0] & 0x80 != 0;
        let rsv = buf[0] & 0x70;
        let op = buf[0] & 0x0F;
        let masked = buf[1] & 0x80 != 0;
        let mut header = 2;
        let len = match buf[1] & 0x7F {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                header += 2;
                u64::from(u16::from_be_bytes([buf[2], buf[3]]))
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                header += 8;
                let l = u64::from_be_bytes(buf[2..10].try_into().expect("8-byte slice"));
                if l >> 63 != 0 {
                    return Err("frame length has its most significant bit set".into());
                }
                l
            }
            l => u64::from(l),
        };
        if len > MAX_MESSAGE as u64 {
            return Err(format!("frame of {len} bytes is implausibly large"));
        }
        let len = len as usize;
        let key_at = header;
        if masked {
            header += 4;
        }
        if buf.len() < header + len {
            return Ok(None);
        }
        let mut payload = buf[header..header + len].to_vec();
        if masked {
            // RFC 6455 §5.3: octet i XOR masking-key octet i mod 4.
            let key: [u8; 4] = buf[key_at..key_at + 4].try_into().expect("4-byte slice");
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        let used = header + len;
        match op {
            // Control frames (close, ping, pong) may come between fragments (§5.5); skipped.
            0x8..=0xA => {
                if !fin || len > 125 {
                    return Err(format!(
                        "control frame (opcode {op}) fragmented or too long"
                    ));
                }
            }
            opcode::TEXT | opcode::BINARY => {
                if self.message.is_some() {
                    return Err("new data frame inside a fragmented message".into());
                }
                if rsv & 0x40 != 0 {
                    // permessage-deflate (RFC 7692): the payload is compressed.
                    if fin {
                        out.skipped_compressed += 1;
                    } else {
                        self.message = Some(Vec::new());
                    }
                    return Ok(Some(used));
                }
                if fin {
                    out.messages.push(payload);
                } else {
                    self.message = Some(payload);
                }
            }
            opcode::CONTINUATION => {
                let Some(message) = self.message.as_mut() else {
                    return Err("continuation frame without a message to continue".into());
                };
                if message.len() + payload.len() > MAX_MESSAGE {
                    return Err("fragmented message is implausibly large".into());
                }
                message.extend_from_slice(&payload);
                if fin {
                    let message = self.message.take().expect("checked above");
                    out.messages.push(message);
                }
            }
            other => return Err(format!("reserved opcode {other}")),
        }
        Ok(Some(used))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(fin: bool, op: u8, mask: Option<[u8; 4]>, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![(u8::from(fin) << 7) | op];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            l if l < 126 => f.push(m | l as u8),
            l if l < 65536 => {
                f.push(m | 126);
                f.extend_from_slice(&(l as u16).to_be_bytes());
            }
            l => {
                f.push(m | 127);
                f.extend_from_slice(&(l as u64).to_be_bytes());
            }
        }
        match mask {
            Some(k) => {
                f.extend_from_slice(&k);
                f.extend(payload.iter().enumerate().map(|(i, b)| b ^ k[i % 4]));
            }
            None => f.extend_from_slice(payload),
        }
        f
    }

    #[test]
    fn masked_fragmented_message_with_ping_between_is_one_message() {
        let mut bytes = frame(false, 1, Some([1, 2, 3, 4]), b"INVITE sip:");
        bytes.extend(frame(true, 9, Some([9, 9, 9, 9]), b"ping"));
        bytes.extend(frame(true, 0, Some([5, 6, 7, 8]), b"bob@x SIP/2.0"));
        let mut d = WsDecoder::default();
        // Byte by byte: frames split across TCP chunks still decode.
        let mut messages = Vec::new();
        for b in &bytes {
            messages.extend(d.push(std::slice::from_ref(b)).unwrap().messages);
        }
        assert_eq!(messages, vec![b"INVITE sip:bob@x SIP/2.0".to_vec()]);
    }

    #[test]
    fn sixteen_bit_length_binary_frame_decodes() {
        let payload = vec![0xAB; 300];
        let mut d = WsDecoder::default();
        let out = d.push(&frame(true, 2, None, &payload)).unwrap();
        assert_eq!(out.messages, vec![payload]);
    }

    #[test]
    fn continuation_without_start_is_an_error() {
        let mut d = WsDecoder::default();
        assert!(d.push(&frame(true, 0, None, b"x")).is_err());
    }
}
