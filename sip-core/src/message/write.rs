//! Writing messages: the start line, every header as stored, the empty line, the body.

use super::{Message, Request, Response};
use std::fmt::Write as _;

fn write_headers(h: &super::Headers, out: &mut Vec<u8>) {
    for header in h {
        out.extend_from_slice(header.name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(header.value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

impl Request {
    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(96);
        // Writing to a String cannot fail.
        let _ = write!(line, "{} {} SIP/2.0\r\n", self.method, self.uri);
        out.extend_from_slice(line.as_bytes());
        write_headers(&self.headers, out);
        out.extend_from_slice(&self.body);
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        out
    }
}

impl Response {
    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        let mut line = String::with_capacity(48);
        let _ = write!(line, "SIP/2.0 {} {}\r\n", self.status, self.reason);
        out.extend_from_slice(line.as_bytes());
        write_headers(&self.headers, out);
        out.extend_from_slice(&self.body);
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(512 + self.body.len());
        self.write_to(&mut out);
        out
    }
}

impl Message {
    /// Appends the wire form to `out`.
    pub fn write_to(&self, out: &mut Vec<u8>) {
        match self {
            Message::Request(r) => r.write_to(out),
            Message::Response(r) => r.write_to(out),
        }
    }

    /// The wire form.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Message::Request(r) => r.to_bytes(),
            Message::Response(r) => r.to_bytes(),
        }
    }
}
