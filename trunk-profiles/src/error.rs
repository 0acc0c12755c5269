//! Configuration errors: where in which file, which key, and what was expected.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// Why a configuration could not be loaded.
///
/// Every variant is the fault of the file or its environment (bad input), never of the caller.
/// Messages never contain a secret's value: keys holding secrets (`password`, `a1_hash`,
/// `token`) are reported by name only.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        /// The path as given to [`crate::Config::load`].
        path: PathBuf,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The file was read but is not a valid configuration; at least one diagnostic.
    #[error("{0}")]
    Invalid(Diagnostics),
}

impl ConfigError {
    /// The located problems, empty for [`ConfigError::Read`].
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid(d) => &d.0,
        }
    }
}

/// One or more located problems, in file order of discovery; displayed one per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostics(pub(crate) Vec<Diagnostic>);

impl Diagnostics {
    /// Wraps located problems found by another file's loader (a campaign definition); `None`
    /// when there are none.
    pub fn from_vec(problems: Vec<Diagnostic>) -> Option<Diagnostics> {
        (!problems.is_empty()).then_some(Diagnostics(problems))
    }

    /// The problems; never empty.
    pub fn as_slice(&self) -> &[Diagnostic] {
        &self.0
    }
}

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

/// One problem at one place: `dialer.toml:12:9: trunk[0].transport: unknown value "sctp", expected one of "udp", "tcp" or "tls"`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Diagnostic {
    /// The file name used for errors (the path given to `load`, or the name given to `from_str_named`).
    pub file: String,
    /// 1-based line.
    pub line: usize,
    /// 1-based column, counted in characters.
    pub column: usize,
    /// Key path such as `trunk[1].codecs[2]`; empty for a syntax error outside any key.
    pub key: String,
    /// What is wrong and what was expected.
    pub message: String,
}

impl Diagnostic {
    /// The problem at byte offset `offset` of `text`, a file named `file` (for loaders of
    /// other files that report like `dialer config check`: campaign definitions).
    pub fn at(
        file: &str,
        text: &str,
        offset: usize,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> Diagnostic {
        Source { name: file, text }.diagnostic(offset..offset, key.into(), message.into())
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: ", self.file, self.line, self.column)?;
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

/// The text being loaded, with what is needed to turn byte offsets into line and column.
pub(crate) struct Source<'a> {
    pub(crate) name: &'a str,
    pub(crate) text: &'a str,
}

impl Source<'_> {
    /// 1-based (line, column) of a byte offset; the column counts characters, as editors do.
    pub(crate) fn line_column(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.text.len());
        while !self.text.is_char_boundary(offset) {
            offset -= 1;
        }
        let before = &self.text[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = self.text[line_start..offset].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn diagnostic(
        &self,
        span: Range<usize>,
        key: String,
        message: String,
    ) -> Diagnostic {
        let (line, column) = self.line_column(span.start);
        Diagnostic {
            file: self.name.to_string(),
            line,
            column,
            key,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let s = Source {
            name: "x",
            text: "a = 1\nnäme = 2\n",
        };
        assert_eq!(s.line_column(0), (1, 1));
        assert_eq!(s.line_column(6), (2, 1));
        // "näme" has a two-byte character: byte 14 is the `2`, the 8th character of line 2.
        assert_eq!(s.line_column(14), (2, 8));
    }
}
