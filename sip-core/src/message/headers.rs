//! Header names (with RFC 3261 §7.3.3 compact forms) and the ordered header list.
//!
//! Headers keep their order and the name as the peer spelled it; values are stored
//! unfolded. Typed views (Via, From, CSeq ...) are parsed from the stored text on demand
//! by the accessors in [`super::values`].

use std::borrow::Cow;
use std::fmt;

macro_rules! header_kinds {
    ($( $variant:ident => $canonical:literal $(, $compact:literal)? ;)*) => {
        /// The headers this stack knows by name. Everything else is [`HeaderKind::Other`].
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum HeaderKind {
            $(
                #[doc = concat!("`", $canonical, "`")]
                $variant,
            )*
            /// A header this stack does not interpret; kept as text.
            Other,
        }

        #[cfg(test)]
        const ALL_KINDS: &[HeaderKind] = &[$( HeaderKind::$variant, )*];

        impl HeaderKind {
            /// The canonical spelling; `None` for [`HeaderKind::Other`].
            pub fn canonical(self) -> Option<&'static str> {
                match self {
                    $( HeaderKind::$variant => Some($canonical), )*
                    HeaderKind::Other => None,
                }
            }

            /// The compact form (RFC 3261 §7.3.3 and its extensions), if it has one.
            pub fn compact(self) -> Option<char> {
                match self {
                    $( $( HeaderKind::$variant => Some($compact), )? )*
                    _ => None,
                }
            }

            /// Looks a header name up, case-insensitively, full or compact.
            pub fn from_name(name: &str) -> HeaderKind {
                if name.is_empty() {
                    return HeaderKind::Other;
                }
                if name.len() == 1 {
                    let c = name.as_bytes()[0].to_ascii_lowercase() as char;
                    $( $( if c == $compact { return HeaderKind::$variant; } )? )*
                    return HeaderKind::Other;
                }
                // One bucket of candidates per name length: a header line costs a few
                // comparisons instead of one per known name.
                static BY_LENGTH: std::sync::LazyLock<Vec<Vec<(&'static str, HeaderKind)>>> =
                    std::sync::LazyLock::new(|| {
                        let mut buckets: Vec<Vec<(&'static str, HeaderKind)>> = Vec::new();
                        $(
                            if buckets.len() <= $canonical.len() {
                                buckets.resize($canonical.len() + 1, Vec::new());
                            }
                            buckets[$canonical.len()].push(($canonical, HeaderKind::$variant));
                        )*
                        buckets
                    });
                if let Some(bucket) = BY_LENGTH.get(name.len()) {
                    for (canonical, kind) in bucket {
                        if same_name(name.as_bytes(), canonical.as_bytes()) {
                            return *kind;
                        }
                    }
                }
                HeaderKind::Other
            }
        }
    };
}

header_kinds! {
    Via => "Via", 'v';
    From => "From", 'f';
    To => "To", 't';
    CallId => "Call-ID", 'i';
    CSeq => "CSeq";
    Contact => "Contact", 'm';
    MaxForwards => "Max-Forwards";
    Route => "Route";
    RecordRoute => "Record-Route";
    ContentLength => "Content-Length", 'l';
    ContentType => "Content-Type", 'c';
    ContentEncoding => "Content-Encoding", 'e';
    Subject => "Subject", 's';
    Supported => "Supported", 'k';
    Event => "Event", 'o';
    ReferTo => "Refer-To", 'r';
    ReferredBy => "Referred-By", 'b';
    AllowEvents => "Allow-Events", 'u';
    SessionExpires => "Session-Expires", 'x';
    Identity => "Identity", 'y';
    Expires => "Expires";
    MinExpires => "Min-Expires";
    MinSe => "Min-SE";
    Authorization => "Authorization";
    ProxyAuthorization => "Proxy-Authorization";
    WwwAuthenticate => "WWW-Authenticate";
    ProxyAuthenticate => "Proxy-Authenticate";
    AuthenticationInfo => "Authentication-Info";
    Allow => "Allow";
    Accept => "Accept";
    Require => "Require";
    ProxyRequire => "Proxy-Require";
    Unsupported => "Unsupported";
    UserAgent => "User-Agent";
    Server => "Server";
    Date => "Date";
    RetryAfter => "Retry-After";
    Warning => "Warning";
    RSeq => "RSeq";
    RAck => "RAck";
    Reason => "Reason";
    PAssertedIdentity => "P-Asserted-Identity";
    PPreferredIdentity => "P-Preferred-Identity";
    Privacy => "Privacy";
    ReplyTo => "Reply-To";
    Timestamp => "Timestamp";
}

/// Case-insensitive equality of a received name with a canonical one of the same length.
/// Canonical names hold only letters and `-`, so folding both with `| 0x20` is exact: a
/// letter matches either case, `-` only itself (its other preimage, CR, never occurs in a
/// name). Eight bytes are compared at a time.
fn same_name(received: &[u8], canonical: &[u8]) -> bool {
    const FOLD: u64 = 0x2020_2020_2020_2020;
    let mut a = received.chunks_exact(8);
    let mut b = canonical.chunks_exact(8);
    for (x, y) in (&mut a).zip(&mut b) {
        let x = u64::from_le_bytes(x.try_into().expect("chunks_exact yields 8 bytes"));
        let y = u64::from_le_bytes(y.try_into().expect("chunks_exact yields 8 bytes"));
        if x | FOLD != y | FOLD {
            return false;
        }
    }
    a.remainder()
        .iter()
        .zip(b.remainder())
        .all(|(x, y)| x | 0x20 == y | 0x20)
}

/// A header name: what kind it is and how it was spelled.
#[derive(Clone, PartialEq, Eq)]
pub struct HeaderName {
    kind: HeaderKind,
    spelling: Cow<'static, str>,
}

impl HeaderName {
    /// The name of a known header in its canonical spelling.
    ///
    /// # Panics
    /// On [`HeaderKind::Other`], which has no canonical spelling; use [`HeaderName::parse`].
    pub fn known(kind: HeaderKind) -> Self {
        let canonical = kind
            .canonical()
            .expect("HeaderName::known takes a named kind; Other needs HeaderName::parse");
        HeaderName {
            kind,
            spelling: Cow::Borrowed(canonical),
        }
    }

    /// A header name as it appeared on the wire (already validated as a token).
    pub fn parse(name: &str) -> Self {
        let kind = HeaderKind::from_name(name);
        let spelling = match kind.canonical() {
            Some(c) if c == name => Cow::Borrowed(c),
            _ => Cow::Owned(name.to_owned()),
        };
        HeaderName { kind, spelling }
    }

    /// What kind of header this is.
    pub fn kind(&self) -> HeaderKind {
        self.kind
    }

    /// The name as spelled.
    pub fn as_str(&self) -> &str {
        &self.spelling
    }

    /// True when this names the same header as `name` (compact forms and case folded).
    pub fn is(&self, name: &str) -> bool {
        match self.kind {
            HeaderKind::Other => self.spelling.eq_ignore_ascii_case(name),
            k => HeaderKind::from_name(name) == k,
        }
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelling)
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.spelling)
    }
}

/// One header line, as [`Headers::iter`] yields it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header<'a> {
    /// Its name.
    pub name: &'a HeaderName,
    /// Its value, unfolded and trimmed.
    pub value: &'a str,
}

#[derive(Clone)]
struct Entry {
    name: HeaderName,
    start: u32,
    len: u32,
}

/// The headers of a message, in order.
///
/// Every value lives in one text buffer, each line being a name and a range of it: parsing a
/// message costs one allocation for all its header values instead of one per line. A value
/// replaced by [`Headers::set`] is appended and the old text left unused until the message
/// is dropped.
#[derive(Clone, Default)]
pub struct Headers {
    text: String,
    entries: Vec<Entry>,
}

impl PartialEq for Headers {
    fn eq(&self, other: &Headers) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Headers {}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.iter().map(|h| (h.name, h.value)))
            .finish()
    }
}

/// Iterator over [`Headers`].
#[derive(Clone, Debug)]
pub struct HeaderIter<'a> {
    text: &'a str,
    entries: std::slice::Iter<'a, Entry>,
}

impl<'a> Iterator for HeaderIter<'a> {
    type Item = Header<'a>;

    fn next(&mut self) -> Option<Header<'a>> {
        let e = self.entries.next()?;
        Some(Header {
            name: &e.name,
            value: value_of(self.text, e),
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.entries.size_hint()
    }
}

impl ExactSizeIterator for HeaderIter<'_> {}

fn value_of<'a>(text: &'a str, e: &Entry) -> &'a str {
    // Ranges are only ever made from `text`'s own pushes, on char boundaries.
    &text[e.start as usize..(e.start + e.len) as usize]
}

impl fmt::Debug for Entry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}+{}", self.name, self.start, self.len)
    }
}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Headers::default()
    }

    /// With room for `n` headers.
    pub fn with_capacity(n: usize) -> Self {
        Headers {
            text: String::new(),
            entries: Vec::with_capacity(n),
        }
    }

    /// With room for `n` headers of `bytes` bytes of values in all.
    pub(crate) fn with_capacities(n: usize, bytes: usize) -> Self {
        Headers {
            text: String::with_capacity(bytes),
            entries: Vec::with_capacity(n),
        }
    }

    /// All headers in order.
    pub fn iter(&self) -> HeaderIter<'_> {
        HeaderIter {
            text: &self.text,
            entries: self.entries.iter(),
        }
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first value of a known header.
    pub fn get(&self, kind: HeaderKind) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name.kind == kind)
            .map(|e| value_of(&self.text, e))
    }

    /// Every value of a known header, in order (one per header line).
    pub fn get_all(&self, kind: HeaderKind) -> impl Iterator<Item = &str> {
        let text = &self.text;
        self.entries
            .iter()
            .filter(move |e| e.name.kind == kind)
            .map(move |e| value_of(text, e))
    }

    /// The first value of a header looked up by name (for headers without a kind).
    pub fn get_named(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|e| e.name.is(name))
            .map(|e| value_of(&self.text, e))
    }

    /// How many header lines of this kind there are.
    pub fn count(&self, kind: HeaderKind) -> usize {
        self.entries.iter().filter(|e| e.name.kind == kind).count()
    }

    fn store(&mut self, value: &str) -> (u32, u32) {
        let start = self.text.len();
        self.text.push_str(value);
        // A message is bounded far below 4 GiB by the parser's limits and by what code builds.
        (start as u32, value.len() as u32)
    }

    /// Appends a header line.
    pub fn push(&mut self, name: HeaderName, value: impl AsRef<str>) {
        let (start, len) = self.store(value.as_ref());
        self.entries.push(Entry { name, start, len });
    }

    /// Appends a known header in canonical spelling.
    pub fn add(&mut self, kind: HeaderKind, value: impl AsRef<str>) {
        self.push(HeaderName::known(kind), value);
    }

    /// Inserts a known header before all others of its kind (or at the top if none).
    pub fn add_first(&mut self, kind: HeaderKind, value: impl AsRef<str>) {
        let pos = self
            .entries
            .iter()
            .position(|e| e.name.kind == kind)
            .unwrap_or(0);
        let (start, len) = self.store(value.as_ref());
        self.entries.insert(
            pos,
            Entry {
                name: HeaderName::known(kind),
                start,
                len,
            },
        );
    }

    /// Replaces every line of this kind by one line with `value`, at the place of the first.
    pub fn set(&mut self, kind: HeaderKind, value: impl AsRef<str>) {
        if self.replace_first(kind, value.as_ref()) {
            let mut seen = false;
            self.entries.retain(|e| {
                if e.name.kind != kind {
                    return true;
                }
                let keep = !seen;
                seen = true;
                keep
            });
        } else {
            self.add(kind, value);
        }
    }

    /// Replaces the value of the first line of this kind, keeping its name and place;
    /// false when there is none.
    pub fn replace_first(&mut self, kind: HeaderKind, value: &str) -> bool {
        let Some(pos) = self.entries.iter().position(|e| e.name.kind == kind) else {
            return false;
        };
        let (start, len) = self.store(value);
        self.entries[pos].start = start;
        self.entries[pos].len = len;
        true
    }

    /// Removes every line of this kind; returns how many were removed.
    pub fn remove(&mut self, kind: HeaderKind) -> usize {
        let before = self.entries.len();
        self.entries.retain(|e| e.name.kind != kind);
        before - self.entries.len()
    }

    /// Starts a header line being parsed; its value grows with [`Headers::extend_last`].
    pub(crate) fn push_parsed(&mut self, name: HeaderName, value: &str) {
        self.push(name, value);
    }

    /// Appends a folded continuation to the last line: one space, then `more`
    /// (RFC 3261 §7.3.1).
    pub(crate) fn extend_last(&mut self, more: &str) {
        let Some(last) = self.entries.last_mut() else {
            return;
        };
        // The last line's value is the tail of the buffer while it is being parsed.
        if last.len > 0 {
            self.text.push(' ');
            last.len += 1;
        }
        self.text.push_str(more);
        last.len += more.len() as u32;
    }

    /// The last line, while it is being parsed.
    pub(crate) fn last(&self) -> Option<Header<'_>> {
        self.entries.last().map(|e| Header {
            name: &e.name,
            value: value_of(&self.text, e),
        })
    }
}

impl<'a> IntoIterator for &'a Headers {
    type Item = Header<'a>;
    type IntoIter = HeaderIter<'a>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_and_odd_case_names_map_to_their_kind() {
        for (n, k) in [
            ("v", HeaderKind::Via),
            ("ViA", HeaderKind::Via),
            ("i", HeaderKind::CallId),
            ("m", HeaderKind::Contact),
            ("l", HeaderKind::ContentLength),
            ("MaX-fOrWaRdS", HeaderKind::MaxForwards),
            ("x", HeaderKind::SessionExpires),
            ("y", HeaderKind::Identity),
            ("k", HeaderKind::Supported),
            ("C%6Fntact", HeaderKind::Other),
        ] {
            assert_eq!(HeaderKind::from_name(n), k, "{n}");
        }
    }

    #[test]
    fn every_known_name_is_found_in_any_case() {
        for kind in ALL_KINDS {
            let name = kind.canonical().unwrap();
            assert_eq!(HeaderKind::from_name(name), *kind, "{name}");
            assert_eq!(
                HeaderKind::from_name(&name.to_ascii_uppercase()),
                *kind,
                "{name}"
            );
            assert_eq!(
                HeaderKind::from_name(&name.to_ascii_lowercase()),
                *kind,
                "{name}"
            );
        }
        assert_eq!(HeaderKind::from_name("X-Unknown-Header"), HeaderKind::Other);
        // Same length as "Via" and "To", differing only outside letters.
        assert_eq!(HeaderKind::from_name("V_a"), HeaderKind::Other);
        assert_eq!(HeaderKind::from_name("Call_ID"), HeaderKind::Other);
        assert_eq!(HeaderKind::from_name(""), HeaderKind::Other);
    }

    #[test]
    fn spelling_is_kept_and_set_collapses_duplicates() {
        let mut h = Headers::new();
        h.push(HeaderName::parse("v"), "SIP/2.0/UDP a");
        h.add(HeaderKind::Expires, "60");
        h.push(HeaderName::parse("EXPIRES"), "70");
        assert_eq!(h.iter().next().unwrap().name.as_str(), "v");
        h.set(HeaderKind::Expires, "0");
        assert_eq!(
            h.get_all(HeaderKind::Expires).collect::<Vec<_>>(),
            vec!["0"]
        );
        h.add_first(HeaderKind::Via, "SIP/2.0/UDP b");
        assert_eq!(h.get(HeaderKind::Via), Some("SIP/2.0/UDP b"));
    }
}
