//! Parameter lists (`;name=value;flag`) for URIs and header values.
//!
//! Parameters are kept as the text that was received, so a message writes back with the
//! peer's spelling, order and quoting (`+sip.instance="<urn:uuid:...>"`), and lookups parse
//! that text on demand. The lists are short (a handful of entries), so a scan per lookup is
//! cheaper than building a map for every header of every message.

use super::scan::{class, is, is_token_char, is_wsp, quoted_string_end};
use std::fmt;

/// A parameter list, stored as its text: empty, or starting with `;`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Params {
    raw: String,
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// Which grammar a parameter list follows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ParamSyntax {
    /// `uri-parameter` (RFC 3261 §19.1.1): paramchar with `%HH` escapes.
    Uri,
    /// `generic-param` (RFC 3261 §25.1): token [ "=" ( token / host / quoted-string ) ].
    Header,
}

impl Params {
    /// An empty list.
    pub fn new() -> Self {
        Self::default()
    }

    /// Validates `raw` (empty or starting with `;`, white space allowed around `;` and `=`
    /// in header syntax) and keeps it as written. The error is the byte offset of the fault
    /// and what was expected there.
    pub(crate) fn parse(raw: &str, syntax: ParamSyntax) -> Result<Self, (usize, &'static str)> {
        Self::check(raw, syntax)?;
        Ok(Self {
            raw: raw.to_owned(),
        })
    }

    /// Wraps text already validated by [`Params::check`].
    pub(crate) fn from_validated(raw: &str) -> Self {
        Self {
            raw: raw.to_owned(),
        }
    }

    /// Validates `raw` as [`Params::parse`] does, without keeping it.
    pub(crate) fn check(raw: &str, syntax: ParamSyntax) -> Result<(), (usize, &'static str)> {
        // One specialised loop per grammar: the per-character tests lose their branch on it.
        match syntax {
            ParamSyntax::Uri => Self::check_as::<true>(raw),
            ParamSyntax::Header => Self::check_as::<false>(raw),
        }
    }

    fn check_as<const URI: bool>(raw: &str) -> Result<(), (usize, &'static str)> {
        let syntax = if URI {
            ParamSyntax::Uri
        } else {
            ParamSyntax::Header
        };
        let b = raw.as_bytes();
        let mut i = 0;
        let lws = syntax == ParamSyntax::Header;
        while i < b.len() {
            if lws {
                while i < b.len() && is_wsp(b[i]) {
                    i += 1;
                }
                if i == b.len() {
                    break;
                }
            }
            if b[i] != b';' {
                return Err((i, "';' before a parameter"));
            }
            i += 1;
            if lws {
                while i < b.len() && is_wsp(b[i]) {
                    i += 1;
                }
            }
            let name_start = i;
            while i < b.len() && param_char(b[i], syntax, true) {
                i += 1;
            }
            if i == name_start {
                return Err((i, "a parameter name"));
            }
            let mut j = i;
            if lws {
                while j < b.len() && is_wsp(b[j]) {
                    j += 1;
                }
            }
            if j < b.len() && b[j] == b'=' {
                i = j + 1;
                if lws {
                    while i < b.len() && is_wsp(b[i]) {
                        i += 1;
                    }
                }
                if i < b.len() && b[i] == b'"' && syntax == ParamSyntax::Header {
                    i = quoted_string_end(b, i).ok_or((i, "a closing '\"'"))?;
                } else if i < b.len() && b[i] == b'[' {
                    let close = raw[i..].find(']').ok_or((i, "a closing ']'"))?;
                    i += close + 1;
                } else {
                    let vstart = i;
                    while i < b.len() && param_char(b[i], syntax, false) {
                        if b[i] == b'%' && syntax == ParamSyntax::Uri {
                            if i + 2 >= b.len()
                                || !b[i + 1].is_ascii_hexdigit()
                                || !b[i + 2].is_ascii_hexdigit()
                            {
                                return Err((i, "'%' followed by two hex digits"));
                            }
                            i += 2;
                        }
                        i += 1;
                    }
                    if i == vstart {
                        return Err((i, "a parameter value after '='"));
                    }
                }
            }
        }
        Ok(())
    }

    /// The list as text (empty, or starting with `;`).
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// True when the list has no parameters.
    pub fn is_empty(&self) -> bool {
        self.raw.trim().is_empty()
    }

    /// Each parameter as `(name, value)`; the value is raw (quotes kept) and `None` for a flag.
    pub fn iter(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        split_params(&self.raw).filter_map(|p| {
            let p = p.trim_matches(|c| c == ' ' || c == '\t');
            if p.is_empty() {
                return None;
            }
            match p.find('=') {
                Some(eq) => Some((p[..eq].trim_end(), Some(p[eq + 1..].trim_start()))),
                None => Some((p, None)),
            }
        })
    }

    /// Looks a parameter up by name, case-insensitively (RFC 3261 §7.3.1, §19.1.4).
    /// `Some(None)` is a flag parameter without a value.
    pub fn get(&self, name: &str) -> Option<Option<&str>> {
        self.iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// The value of a parameter, with quotes removed; `None` when absent or a flag.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).flatten().map(|v| {
            v.strip_prefix('"')
                .and_then(|x| x.strip_suffix('"'))
                .unwrap_or(v)
        })
    }

    /// True when the parameter is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Sets a parameter, replacing an existing one of the same name in place.
    pub fn set(&mut self, name: &str, value: Option<&str>) {
        let mut out = String::with_capacity(self.raw.len() + name.len() + 8);
        let mut replaced = false;
        for (n, v) in self.iter() {
            out.push(';');
            if !replaced && n.eq_ignore_ascii_case(name) {
                replaced = true;
                push_param(&mut out, name, value);
            } else {
                push_param(&mut out, n, v);
            }
        }
        if !replaced {
            out.push(';');
            push_param(&mut out, name, value);
        }
        self.raw = out;
    }

    /// Removes every parameter of that name.
    pub fn remove(&mut self, name: &str) {
        if !self.contains(name) {
            return;
        }
        let mut out = String::with_capacity(self.raw.len());
        for (n, v) in self.iter() {
            if !n.eq_ignore_ascii_case(name) {
                out.push(';');
                push_param(&mut out, n, v);
            }
        }
        self.raw = out;
    }
}

fn push_param(out: &mut String, name: &str, value: Option<&str>) {
    out.push_str(name);
    if let Some(v) = value {
        out.push('=');
        out.push_str(v);
    }
}

#[inline]
fn param_char(b: u8, syntax: ParamSyntax, name: bool) -> bool {
    match syntax {
        // paramchar = param-unreserved / unreserved / escaped (RFC 3261 §25.1)
        ParamSyntax::Uri => is(b, class::URI_PARAM),
        // generic-param: token, or host for values (IPv6 references handled by the caller).
        ParamSyntax::Header => is_token_char(b) || (!name && b == b':'),
    }
}

/// Splits at `;` outside quoted strings; the piece before the first `;` is empty.
fn split_params(raw: &str) -> impl Iterator<Item = &str> {
    let mut rest = raw;
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        let b = rest.as_bytes();
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                b'"' => {
                    i = quoted_string_end(b, i).unwrap_or(b.len());
                    continue;
                }
                b';' => break,
                _ => i += 1,
            }
        }
        let piece = &rest[..i];
        if i < b.len() {
            rest = &rest[i + 1..];
        } else {
            done = true;
        }
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_is_case_insensitive_and_keeps_quotes() {
        let p = Params::parse(
            r#";Tag=ab;lr;+sip.instance="<urn:uuid:1;2>";q=0.5"#,
            ParamSyntax::Header,
        )
        .unwrap();
        assert_eq!(p.get("tag"), Some(Some("ab")));
        assert_eq!(p.get("LR"), Some(None));
        assert_eq!(p.value("+sip.instance"), Some("<urn:uuid:1;2>"));
        assert_eq!(p.iter().count(), 4);
        assert_eq!(p.get("missing"), None);
    }

    #[test]
    fn header_params_allow_white_space_around_separators() {
        let p = Params::parse(
            " ; newparam = newvalue ; secondparam ; q = 0.33",
            ParamSyntax::Header,
        )
        .unwrap();
        assert_eq!(p.value("newparam"), Some("newvalue"));
        assert_eq!(p.get("secondparam"), Some(None));
        assert_eq!(p.value("q"), Some("0.33"));
    }

    #[test]
    fn empty_parameters_are_rejected() {
        assert!(Params::parse(";;", ParamSyntax::Header).is_err());
        assert!(Params::parse(";a=", ParamSyntax::Header).is_err());
        assert!(Params::parse(";a=%4", ParamSyntax::Uri).is_err());
    }

    #[test]
    fn set_replaces_in_place_and_remove_drops() {
        let mut p = Params::parse(";branch=z9hG4bK1;rport", ParamSyntax::Header).unwrap();
        p.set("rport", Some("5062"));
        p.set("received", Some("192.0.2.1"));
        assert_eq!(p.as_str(), ";branch=z9hG4bK1;rport=5062;received=192.0.2.1");
        p.remove("branch");
        assert_eq!(p.as_str(), ";rport=5062;received=192.0.2.1");
    }
}
