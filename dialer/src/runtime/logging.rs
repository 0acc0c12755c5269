//! The dialer's log: `tracing` events on standard error, filtered by `RUST_LOG` (default
//! `info`), as text or JSON (`dialer run --log-format text|json`), written by a thread of its
//! own so that a slow or stuck standard error never holds up signalling (lines beyond its
//! buffer are dropped).
//!
//! Text lines read `2026-12-07T12:00:00Z WARN dialer::registrar: authentication failed
//! source=203.0.113.9 extension=1000 reason=wrong_password`: the time in UTC to the second,
//! the level, the target, the message. That is the shape `contrib/fail2ban/dialer.conf`
//! matches, and what [`crate::registrar::failure_line`] reproduces for its tests.

use std::fmt;
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// `TIME LEVEL target: message`.
    #[default]
    Text,
    /// One JSON object a line (`timestamp`, `level`, `target`, `fields.message`).
    Json,
}

/// Keeps the log's writer thread; dropping it flushes what is queued.
#[must_use = "the log is flushed when this is dropped"]
pub struct LogGuard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

impl fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogGuard")
    }
}

/// Text lines: `TIME LEVEL target: message fields`.
#[derive(Debug, Clone, Copy)]
pub struct TextLine;

impl<S, N> FormatEvent<S, N> for TextLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let now = super::clock::unix_now() as u64;
        write!(
            writer,
            "{} {} {}: ",
            crate::registrar::utc_timestamp(now),
            meta.level(),
            meta.target()
        )?;
        ctx.field_format().format_fields(writer.by_ref(), event)?;
        writeln!(writer)
    }
}

/// Installs the log for this process (once; later calls keep the first).
pub fn init(format: LogFormat) -> LogGuard {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let (writer, guard) = tracing_appender::non_blocking(std::io::stderr());
    let installed = match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .event_format(TextLine)
            .try_init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(writer)
            .json()
            .try_init(),
    };
    LogGuard(installed.ok().map(|()| guard))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Buffer {
        type Writer = Buffer;
        fn make_writer(&'a self) -> Buffer {
            self.clone()
        }
    }

    #[test]
    fn a_text_line_is_time_level_target_and_message() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .event_format(TextLine)
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(
                target: "dialer::registrar",
                "authentication failed source=203.0.113.9 extension=1000 reason=wrong_password"
            );
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let (time, rest) = text.split_once(' ').expect("time first");
        assert_eq!(time.len(), "2026-12-07T12:00:00Z".len(), "{text}");
        assert!(time.ends_with('Z') && time.as_bytes()[10] == b'T', "{text}");
        assert_eq!(
            rest,
            "WARN dialer::registrar: authentication failed source=203.0.113.9 extension=1000 \
             reason=wrong_password\n"
        );
    }

    #[test]
    fn a_json_line_carries_level_target_and_message() {
        let buffer = Buffer::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(buffer.clone())
            .json()
            .finish();
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!(target: "dialer", "trunk carrier: registered");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim()).expect("one JSON line");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["target"], "dialer");
        assert_eq!(v["fields"]["message"], "trunk carrier: registered");
    }
}
