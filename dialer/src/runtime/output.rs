//! What `dialer run` writes (CDR lines on standard output and to `--cdr FILE`, the ladder and
//! notices on standard error) goes through a bounded queue to a thread of its own, so that a
//! slow or closed output never stops or slows signalling: a full queue drops the line and
//! counts it, a closed standard output (`dialer run | head -1`) is left alone from then on.
//! CDR file lines are flushed and fsynced one by one: a CDR that was written survives a crash.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::thread::JoinHandle;

/// Lines waiting to be written; beyond this they are dropped (and counted).
pub const QUEUE_LINES: usize = 16_384;

/// One line to write.
#[derive(Debug)]
enum Line {
    /// A CDR: standard output and the CDR file.
    Cdr(String),
    /// A notice or a ladder line: standard error.
    Err(String),
}

/// The writer's side of the queue.
#[derive(Debug, Clone)]
pub struct Output {
    queue: SyncSender<Line>,
    dropped: Arc<AtomicU64>,
}

/// The thread that writes; joining it flushes everything queued.
#[derive(Debug)]
pub struct OutputThread {
    thread: Option<JoinHandle<()>>,
}

impl Output {
    /// Starts the writer thread; CDR lines are also appended to `cdr_file`.
    pub fn start(cdr_file: Option<File>) -> (Output, OutputThread) {
        Self::start_with(
            cdr_file,
            Box::new(io::stdout()),
            Box::new(io::stderr()),
            QUEUE_LINES,
        )
    }

    /// Starts the writer thread on these streams (tests give their own).
    pub fn start_with(
        cdr_file: Option<File>,
        stdout: Box<dyn Write + Send>,
        stderr: Box<dyn Write + Send>,
        capacity: usize,
    ) -> (Output, OutputThread) {
        let (queue, lines) = sync_channel(capacity);
        let thread = std::thread::Builder::new()
            .name("dialer-output".into())
            .spawn(move || write_lines(lines, cdr_file, stdout, stderr))
            .expect("spawning a thread only fails when the process is out of resources");
        (
            Output {
                queue,
                dropped: Arc::new(AtomicU64::new(0)),
            },
            OutputThread {
                thread: Some(thread),
            },
        )
    }

    /// Queues a CDR line (standard output and the CDR file).
    pub fn cdr(&self, line: String) {
        self.send(Line::Cdr(line));
    }

    /// Queues a line for standard error.
    pub fn err(&self, line: String) {
        self.send(Line::Err(line));
    }

    fn send(&self, line: Line) {
        match self.queue.try_send(line) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Lines dropped because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

impl OutputThread {
    /// Waits until every queued line is written (all `Output`s must be dropped first).
    pub fn join(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn write_lines(
    lines: Receiver<Line>,
    mut cdr_file: Option<File>,
    mut stdout: Box<dyn Write + Send>,
    mut stderr: Box<dyn Write + Send>,
) {
    let mut stdout_open = true;
    let mut stderr_open = true;
    while let Ok(line) = lines.recv() {
        match line {
            Line::Cdr(mut text) => {
                // One write a line: the log's own writer shares standard error.
                text.push('\n');
                if stdout_open {
                    stdout_open = writeln!(stdout, "{text}")
                        .and_then(|()| stdout.flush())
                        .is_ok();
                }
                if let Some(file) = cdr_file.as_mut() {
                    // A CDR is a bill: on disk before the next one.
                    let written = file
                        .write_all(text.as_bytes())
                        .and_then(|()| file.flush())
                        .and_then(|()| file.sync_data());
                    if let Err(e) = written {
                        if stderr_open {
                            stderr_open =
                                writeln!(stderr, "dialer: writing the CDR file: {e}").is_ok();
                        }
                    }
                }
            }
            Line::Err(mut text) => {
                text.push('\n');
                if stderr_open {
                    stderr_open = stderr.write_all(text.as_bytes()).is_ok();
                }
            }
        }
    }
}

/// Opens the `--cdr` file for appending.
pub fn open_cdr_file(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A stream that fails like a closed pipe, counting the attempts.
    struct Closed(Arc<Mutex<u32>>);

    impl Write for Closed {
        fn write(&mut self, _: &[u8]) -> io::Result<usize> {
            *self.0.lock().unwrap() += 1;
            Err(io::ErrorKind::BrokenPipe.into())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[derive(Clone)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_closed_stdout_is_given_up_and_the_cdr_file_still_gets_every_line() {
        let dir = std::env::temp_dir().join(format!("dialer-output-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cdr.jsonl");
        let _ = std::fs::remove_file(&path);
        let attempts = Arc::new(Mutex::new(0));
        let err = Shared(Arc::new(Mutex::new(Vec::new())));
        let (out, thread) = Output::start_with(
            Some(open_cdr_file(&path).unwrap()),
            Box::new(Closed(attempts.clone())),
            Box::new(err.clone()),
            64,
        );
        for n in 0..10 {
            out.cdr(format!("{{\"id\":{n}}}"));
        }
        out.err("dialer: notice".into());
        drop(out);
        thread.join();
        assert_eq!(
            *attempts.lock().unwrap(),
            1,
            "one failed write, then stdout is left alone"
        );
        let written = std::fs::read_to_string(&path).unwrap();
        assert_eq!(written.lines().count(), 10);
        assert_eq!(
            String::from_utf8(err.0.lock().unwrap().clone()).unwrap(),
            "dialer: notice\n"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_full_queue_drops_lines_and_counts_them_without_blocking() {
        /// A stream that never returns until told to, like a pipe nobody reads.
        struct Stuck(Arc<Mutex<()>>);
        impl Write for Stuck {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                let _held = self.0.lock().unwrap();
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let gate = Arc::new(Mutex::new(()));
        let held = gate.lock().unwrap();
        let (out, thread) =
            Output::start_with(None, Box::new(Stuck(gate.clone())), Box::new(io::sink()), 4);
        // The writer takes one line and blocks in it; four more fill the queue; the rest drop.
        for n in 0..20 {
            out.cdr(format!("{n}"));
        }
        assert!(out.dropped() >= 15, "dropped {}", out.dropped());
        drop(held);
        drop(out);
        thread.join();
    }
}
