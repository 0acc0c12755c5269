//! Character classes and small scanners from the RFC 3261 §25.1 grammar.
//!
//! Everything here works on already-unfolded header values (the parser replaces each
//! `CRLF 1*WSP` fold by a single space, RFC 3261 §7.3.1), so linear white space is just
//! spaces and tabs.

/// Character classes of RFC 3261 §25.1 as bit flags in one 256-entry table, so that
/// each test on the hot parsing path is a single load.
pub(crate) mod class {
    pub const TOKEN: u8 = 1;
    pub const UNRESERVED: u8 = 2;
    pub const WORD: u8 = 4;
    /// `paramchar` of a URI parameter, `%` included (escapes are checked separately).
    pub const URI_PARAM: u8 = 8;
    /// `user` characters, `%` included; `#` is accepted because equipment sends it
    /// unescaped in dialled digits.
    pub const USER: u8 = 16;
    /// Host name characters: alphanumerics, `-`, `.`, and `_` (seen in SRV-style names).
    pub const HOST: u8 = 32;
}

const fn build_classes() -> [u8; 256] {
    let mut t = [0u8; 256];
    let mut b = 0usize;
    while b < 256 {
        let c = b as u8;
        let alnum = c.is_ascii_alphanumeric();
        let mark = matches!(
            c,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        );
        let mut v = 0u8;
        if alnum
            || matches!(
                c,
                b'-' | b'.' | b'!' | b'%' | b'*' | b'_' | b'+' | b'`' | b'\'' | b'~'
            )
        {
            v |= class::TOKEN;
        }
        if alnum || mark {
            v |= class::UNRESERVED;
        }
        if v & class::TOKEN != 0
            || matches!(
                c,
                b'(' | b')'
                    | b'<'
                    | b'>'
                    | b':'
                    | b'\\'
                    | b'"'
                    | b'/'
                    | b'['
                    | b']'
                    | b'?'
                    | b'{'
                    | b'}'
            )
        {
            v |= class::WORD;
        }
        if alnum || mark || matches!(c, b'[' | b']' | b'/' | b':' | b'&' | b'+' | b'$' | b'%') {
            v |= class::URI_PARAM;
        }
        if alnum
            || mark
            || matches!(
                c,
                b'%' | b'&' | b'=' | b'+' | b'$' | b',' | b';' | b'?' | b'/' | b'#'
            )
        {
            v |= class::USER;
        }
        if alnum || matches!(c, b'-' | b'.' | b'_') {
            v |= class::HOST;
        }
        t[b] = v;
        b += 1;
    }
    t
}

static CLASSES: [u8; 256] = build_classes();

/// True when `b` is in every class of `mask`.
#[inline]
pub(crate) fn is(b: u8, mask: u8) -> bool {
    CLASSES[b as usize] & mask != 0
}

/// `token` characters (RFC 3261 §25.1): alphanum and `-.!%*_+`'~`.
#[inline]
pub(crate) fn is_token_char(b: u8) -> bool {
    is(b, class::TOKEN)
}

/// `unreserved` = alphanum / mark (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_unreserved(b: u8) -> bool {
    is(b, class::UNRESERVED)
}

/// `word` characters used by Call-ID (RFC 3261 §25.1).
#[inline]
pub(crate) fn is_word_char(b: u8) -> bool {
    is(b, class::WORD)
}

/// Space or horizontal tab.
#[inline]
pub(crate) fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// True when `s` is a non-empty token.
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_token_char)
}

/// Given `s[start] == '"'`, returns the index just past the closing quote, honouring
/// `quoted-pair` escapes (RFC 3261 §25.1). `None` when the string is unterminated.
pub(crate) fn quoted_string_end(s: &[u8], start: usize) -> Option<usize> {
    debug_assert_eq!(s.get(start), Some(&b'"'));
    let mut i = start + 1;
    while i < s.len() {
        match s[i] {
            b'\\' => {
                // quoted-pair = "\" (%x00-09 / %x0B-0C / %x0E-7F)
                if i + 1 >= s.len() || s[i + 1] == b'\r' || s[i + 1] == b'\n' {
                    return None;
                }
                i += 2;
            }
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// Removes the surrounding quotes and resolves `quoted-pair` escapes.
pub fn unquote(s: &str) -> String {
    let inner = s
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(s);
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Quotes `s` as a `quoted-string`, escaping `"` and `\`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Splits a header value at top-level commas: commas inside quoted strings or `<...>`
/// do not separate values (RFC 3261 §7.3.1). Each piece is trimmed of white space.
pub fn split_list(value: &str) -> ListIter<'_> {
    ListIter { rest: value }
}

/// Iterator returned by [`split_list`].
#[derive(Debug, Clone)]
pub struct ListIter<'a> {
    rest: &'a str,
}

impl<'a> Iterator for ListIter<'a> {
    type Item = &'a str;

    fn next(&mut self) -> Option<&'a str> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest.as_bytes();
        if memchr::memchr(b',', b).is_none() {
            // The common single-value case: no separator at all.
            let item = self.rest.trim_matches(|c| c == ' ' || c == '\t');
            self.rest = "";
            return Some(item);
        }
        let mut i = 0;
        let mut in_angle = false;
        while i < b.len() {
            match b[i] {
                b'"' => match quoted_string_end(b, i) {
                    Some(end) => {
                        i = end;
                        continue;
                    }
                    None => {
                        i = b.len();
                        break;
                    }
                },
                b'<' => in_angle = true,
                b'>' => in_angle = false,
                b',' if !in_angle => break,
                _ => {}
            }
            i += 1;
        }
        let item = self.rest[..i].trim_matches(|c| c == ' ' || c == '\t');
        self.rest = if i < b.len() { &self.rest[i + 1..] } else { "" };
        Some(item)
    }
}

/// Decodes `%HH` escapes (RFC 3261 §19.1.2). Invalid escapes are kept as written.
pub fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex_val(b[i + 1]), hex_val(b[i + 2])) {
                out.push(h << 4 | l);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

pub(crate) fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Checks `%HH` escapes in `s` are complete; returns the offset of a broken one.
pub(crate) fn check_escapes(s: &[u8]) -> Result<(), usize> {
    let mut i = 0;
    while i < s.len() {
        if s[i] == b'%' {
            if i + 2 >= s.len() {
                return Err(i);
            }
            if hex_val(s[i + 1]).is_none() || hex_val(s[i + 2]).is_none() {
                return Err(i);
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_split_ignores_commas_in_quotes_and_angles() {
        let v: Vec<_> =
            split_list(r#""Doe, John" <sip:a@b;x=1,2>;q=1 , <sip:c@d>,sip:e@f"#).collect();
        assert_eq!(
            v,
            vec![r#""Doe, John" <sip:a@b;x=1,2>;q=1"#, "<sip:c@d>", "sip:e@f"]
        );
    }

    #[test]
    fn quoted_string_honours_escaped_quote() {
        let s = br#""a \"b\" c" rest"#;
        assert_eq!(quoted_string_end(s, 0), Some(11));
        assert_eq!(quoted_string_end(br#""open"#, 0), None);
        assert_eq!(unquote(r#""J Rosenberg \\\"""#), r#"J Rosenberg \""#);
    }

    #[test]
    fn percent_decoding_keeps_invalid_escapes() {
        assert_eq!(percent_decode("%75se%72"), b"user");
        assert_eq!(percent_decode("%Z%45"), b"%ZE");
        assert_eq!(percent_decode("a%4"), b"a%4");
        assert_eq!(check_escapes(b"a%4"), Err(1));
        assert_eq!(check_escapes(b"a%41"), Ok(()));
    }
}
