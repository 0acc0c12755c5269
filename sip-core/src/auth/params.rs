//! The shared syntax of challenge and credentials header values: a comma-separated list of
//! `scheme 1*SP (auth-param *("," auth-param) / token68)` items (RFC 7235 §2.1, RFC 3261 §25.1
//! `challenge` and `credentials`).
//!
//! Hand-written because no maintained crate parses this grammar with the leniency SIP needs:
//! unquoted values that are not tokens (`nonce=abc/def`), LWS around `=` and `,`, empty list
//! elements, and several challenges in one value.

use super::ParseError;

/// One `auth-param`, with its value unquoted and unescaped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Param {
    /// The name as received; compare with `eq_ignore_ascii_case`.
    pub name: String,
    /// The value, without quotes and with `\x` quoted-pairs resolved.
    pub value: String,
    /// Byte offset of the value in the header value, for error positions.
    pub position: usize,
}

/// One challenge or credentials item: a scheme and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Item {
    /// The auth-scheme as received (`Digest`, `Basic`, ...).
    pub scheme: String,
    /// Byte offset of the scheme in the header value.
    pub position: usize,
    /// The parameters in order, duplicates included.
    pub params: Vec<Param>,
    /// A token68 (`Negotiate YII=`), for schemes other than Digest.
    pub token68: Option<String>,
}

/// RFC 3261 §25.1 `token` characters.
fn is_token_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&c)
}

/// RFC 7235 §2.1 `token68` characters (before the trailing `=` padding).
fn is_token68_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || b"-._~+/".contains(&c)
}

/// Linear white space; CR and LF count too so that a folded line (RFC 3261 §7.3.1) that a
/// message parser left unfolded still parses.
fn is_lws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

struct Cursor<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn skip_lws(&mut self) {
        while self.peek().is_some_and(is_lws) {
            self.pos += 1;
        }
    }

    fn skip_lws_and_commas(&mut self) {
        while self.peek().is_some_and(|c| is_lws(c) || c == b',') {
            self.pos += 1;
        }
    }

    /// Length of the token starting at `from` (0 when none).
    fn token_len_at(&self, from: usize) -> usize {
        self.bytes[from..]
            .iter()
            .take_while(|&&c| is_token_char(c))
            .count()
    }

    fn error(&self, position: usize, reason: &'static str) -> ParseError {
        ParseError::Malformed { position, reason }
    }

    /// Whether `name ws* "=" ws* value` starts at the cursor: an auth-param, rather than a new
    /// scheme or a token68 with `=` padding (`YII=`).
    fn param_starts_here(&self) -> bool {
        let len = self.token_len_at(self.pos);
        if len == 0 {
            return false;
        }
        let mut at = self.pos + len;
        while self.bytes.get(at).copied().is_some_and(is_lws) {
            at += 1;
        }
        if self.bytes.get(at) != Some(&b'=') {
            return false;
        }
        at += 1;
        while self.bytes.get(at).copied().is_some_and(is_lws) {
            at += 1;
        }
        !matches!(self.bytes.get(at), None | Some(b',') | Some(b'='))
    }

    /// Parses `name ws* "=" ws* (token / quoted-string)`; the cursor is on the name.
    fn param(&mut self) -> Result<Param, ParseError> {
        let start = self.pos;
        let len = self.token_len_at(start);
        let name = self.text[start..start + len].to_owned();
        self.pos += len;
        self.skip_lws();
        // param_starts_here guaranteed the "=".
        self.pos += 1;
        self.skip_lws();
        let position = self.pos;
        let value = match self.peek() {
            Some(b'"') => self.quoted_string()?,
            _ => {
                // Lenient: any run of visible characters up to LWS or a comma. Real nonces are
                // sent unquoted with '/', '=' and ':' in them, which a strict token refuses.
                let end = self.bytes[position..]
                    .iter()
                    .position(|&c| is_lws(c) || c == b',' || c == b'"')
                    .map_or(self.bytes.len(), |offset| position + offset);
                if end == position {
                    return Err(self.error(position, "parameter has no value"));
                }
                self.pos = end;
                self.text[position..end].to_owned()
            }
        };
        Ok(Param {
            name,
            value,
            position,
        })
    }

    /// Parses a quoted-string with quoted-pairs (RFC 3261 §25.1); the cursor is on the quote.
    fn quoted_string(&mut self) -> Result<String, ParseError> {
        let open = self.pos;
        self.pos += 1;
        let mut value = String::new();
        let mut run_start = self.pos;
        loop {
            match self.peek() {
                None => return Err(self.error(open, "unterminated quoted string")),
                Some(b'"') => {
                    value.push_str(&self.text[run_start..self.pos]);
                    self.pos += 1;
                    return Ok(value);
                }
                Some(b'\\') => {
                    value.push_str(&self.text[run_start..self.pos]);
                    let escaped = self.pos + 1;
                    // The escaped character may be multi-byte UTF-8: take the whole char.
                    let Some(c) = self.text[escaped..].chars().next() else {
                        return Err(self.error(self.pos, "backslash at end of quoted string"));
                    };
                    if c == '\r' || c == '\n' {
                        return Err(self.error(escaped, "line break escaped in quoted string"));
                    }
                    value.push(c);
                    self.pos = escaped + c.len_utf8();
                    run_start = self.pos;
                }
                Some(_) => {
                    // Advance by whole chars so that slicing stays on char boundaries.
                    let c_len = self.text[self.pos..]
                        .chars()
                        .next()
                        .map_or(1, char::len_utf8);
                    self.pos += c_len;
                }
            }
        }
    }

    /// Tries a token68 at the cursor; returns it only if it ends the item.
    fn token68(&mut self) -> Option<String> {
        let start = self.pos;
        let mut at = start;
        while self.bytes.get(at).copied().is_some_and(is_token68_char) {
            at += 1;
        }
        if at == start {
            return None;
        }
        while self.bytes.get(at) == Some(&b'=') {
            at += 1;
        }
        let mut after = at;
        while self.bytes.get(after).copied().is_some_and(is_lws) {
            after += 1;
        }
        match self.bytes.get(after) {
            None | Some(b',') => {
                self.pos = at;
                Some(self.text[start..at].to_owned())
            }
            Some(_) => None,
        }
    }
}

/// Parses a whole challenge or credentials header value into its items.
pub(crate) fn parse_items(text: &str) -> Result<Vec<Item>, ParseError> {
    let mut cursor = Cursor {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let mut items: Vec<Item> = Vec::new();
    cursor.skip_lws_and_commas();
    while cursor.peek().is_some() {
        let position = cursor.pos;
        let len = cursor.token_len_at(position);
        if len == 0 {
            return Err(cursor.error(position, "expected an auth scheme"));
        }
        cursor.pos += len;
        let mut item = Item {
            scheme: text[position..position + len].to_owned(),
            position,
            params: Vec::new(),
            token68: None,
        };
        match cursor.peek() {
            None | Some(b',') => {}
            Some(c) if is_lws(c) => {}
            Some(_) => {
                return Err(cursor.error(cursor.pos, "auth scheme must be followed by a space"))
            }
        }
        cursor.skip_lws();
        // The first element after the scheme: an auth-param, a token68, or nothing.
        if cursor.param_starts_here() {
            let param = cursor.param()?;
            item.params.push(param);
        } else if cursor.peek().is_some_and(|c| c != b',') {
            match cursor.token68() {
                Some(token68) => item.token68 = Some(token68),
                None => return Err(cursor.error(cursor.pos, "expected an auth parameter")),
            }
        }
        // Further elements: "," then another auth-param, or the next challenge's scheme.
        loop {
            cursor.skip_lws();
            match cursor.peek() {
                None => break,
                Some(b',') => {}
                Some(_) => {
                    return Err(cursor.error(cursor.pos, "expected a comma between parameters"))
                }
            }
            cursor.skip_lws_and_commas();
            if cursor.peek().is_none() || !cursor.param_starts_here() {
                break;
            }
            if item.token68.is_some() {
                return Err(cursor.error(cursor.pos, "parameters after a token68"));
            }
            let param = cursor.param()?;
            item.params.push(param);
        }
        items.push(item);
    }
    Ok(items)
}

/// Writes `value` as a quoted-string, escaping `"` and `\` (RFC 3261 §25.1 quoted-pair).
pub(crate) fn push_quoted(out: &mut String, value: &str) {
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_and_values(item: &Item) -> Vec<(&str, &str)> {
        item.params
            .iter()
            .map(|p| (p.name.as_str(), p.value.as_str()))
            .collect()
    }

    #[test]
    fn quoted_values_keep_commas_and_resolve_escapes() {
        let items = parse_items(r#"Digest realm="a, \"b\" \\ c", nonce=xyz"#).unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(
            names_and_values(&items[0]),
            vec![("realm", r#"a, "b" \ c"#), ("nonce", "xyz")]
        );
    }

    #[test]
    fn lws_around_equals_and_commas_and_empty_elements_are_accepted() {
        let items = parse_items("Digest  realm = \"r\" ,, \r\n\t nonce\t=\"n\" , ").unwrap();
        assert_eq!(
            names_and_values(&items[0]),
            vec![("realm", "r"), ("nonce", "n")]
        );
    }

    #[test]
    fn a_scheme_after_a_comma_starts_a_new_challenge() {
        let items = parse_items(
            r#"Digest realm="a", nonce="1", Basic realm="b", Negotiate YII=, Digest realm="c""#,
        )
        .unwrap();
        let schemes: Vec<_> = items.iter().map(|i| i.scheme.as_str()).collect();
        assert_eq!(schemes, ["Digest", "Basic", "Negotiate", "Digest"]);
        assert_eq!(items[2].token68.as_deref(), Some("YII="));
        assert_eq!(names_and_values(&items[3]), vec![("realm", "c")]);
    }

    #[test]
    fn unterminated_quote_reports_the_opening_position() {
        assert_eq!(
            parse_items(r#"Digest realm="abc"#),
            Err(ParseError::Malformed {
                position: 13,
                reason: "unterminated quoted string"
            })
        );
    }

    #[test]
    fn missing_comma_between_parameters_is_malformed() {
        let err = parse_items(r#"Digest realm="a" nonce="b""#).unwrap_err();
        assert!(
            matches!(err, ParseError::Malformed { position: 17, .. }),
            "{err:?}"
        );
    }

    #[test]
    fn non_ascii_inside_quotes_is_kept_whole() {
        let items = parse_items("Digest username=\"J\u{e4}s\u{f8}n \\\u{e4}\"").unwrap();
        assert_eq!(items[0].params[0].value, "J\u{e4}s\u{f8}n \u{e4}");
    }

    #[test]
    fn quoting_escapes_quote_and_backslash() {
        let mut out = String::new();
        push_quoted(&mut out, r#"a"b\c"#);
        assert_eq!(out, r#""a\"b\\c""#);
    }
}
