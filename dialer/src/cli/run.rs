//! `dialer run` and `dialer register`: the commands that start the runtime.

use super::{Exit, Streams};
use crate::runtime::register::{register, RegisterOutcome};
use crate::runtime::server::{run, RunOptions};
use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

/// `dialer run` options.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The configuration file.
    #[arg(long, default_value = "dialer.toml")]
    pub config: PathBuf,
    /// Print the SIP ladder on standard error.
    #[arg(long)]
    pub ladder: bool,
    /// Append each call's CDR (one JSON line) to this file.
    #[arg(long, value_name = "FILE")]
    pub cdr: Option<PathBuf>,
    /// How log lines on standard error are written (levels from RUST_LOG, default info).
    #[arg(long, value_enum, default_value_t = crate::runtime::logging::LogFormat::Text)]
    pub log_format: crate::runtime::logging::LogFormat,
}

/// `dialer register` options.
#[derive(Debug, clap::Args)]
pub struct RegisterArgs {
    /// The configuration file.
    #[arg(long, default_value = "dialer.toml")]
    pub config: PathBuf,
    /// The trunk to register.
    #[arg(long)]
    pub trunk: String,
    /// Exit once the outcome is known: 0 when registered (after un-registering again).
    #[arg(long)]
    pub once: bool,
    /// With --once, give up after this many seconds without an outcome.
    #[arg(long, default_value_t = 40)]
    pub timeout: u64,
}

fn load(
    path: &std::path::Path,
    streams: &mut Streams<'_>,
) -> io::Result<Option<trunk_profiles::Config>> {
    match trunk_profiles::Config::load(path) {
        Ok(c) => Ok(Some(c)),
        Err(e) => {
            writeln!(streams.stderr, "{e}")?;
            Ok(None)
        }
    }
}

fn runtime() -> io::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
}

/// `dialer run --config F`.
pub fn run_command(args: &RunArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let Some(config) = load(&args.config, streams)? else {
        return Ok(Exit::Rejected);
    };
    let _log = crate::runtime::logging::init(args.log_format);
    let options = RunOptions {
        ladder: args.ladder,
        colour: io::stderr().is_terminal(),
        cdr_file: args.cdr.clone(),
        no_api: false,
        campaigns: true,
    };
    match runtime()?.block_on(run(config, options)) {
        Ok(()) => Ok(Exit::Success),
        Err(e) => {
            writeln!(streams.stderr, "dialer: {e}")?;
            Ok(Exit::Rejected)
        }
    }
}

/// `dialer register --config F --trunk NAME [--once]`.
pub fn register_command(args: &RegisterArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let Some(config) = load(&args.config, streams)? else {
        return Ok(Exit::Rejected);
    };
    let colour = io::stderr().is_terminal();
    let outcome = runtime()?.block_on(register(
        &config,
        &args.trunk,
        args.once,
        colour,
        Duration::from_secs(args.timeout),
    ));
    match outcome {
        Ok(RegisterOutcome::Registered) => {
            writeln!(streams.stdout, "registered")?;
            Ok(Exit::Success)
        }
        Ok(RegisterOutcome::Failed(status, reason)) => {
            writeln!(
                streams.stderr,
                "dialer: registration refused ({status}): {reason}"
            )?;
            Ok(Exit::Rejected)
        }
        Ok(RegisterOutcome::Timeout) => {
            writeln!(
                streams.stderr,
                "dialer: no answer from the registrar (timeout)"
            )?;
            Ok(Exit::Rejected)
        }
        Ok(RegisterOutcome::Unreachable(why)) => {
            writeln!(
                streams.stderr,
                "dialer: registrar unreachable or failing: {why}"
            )?;
            Ok(Exit::Rejected)
        }
        Err(e) => {
            writeln!(streams.stderr, "dialer: {e}")?;
            Ok(Exit::Rejected)
        }
    }
}

/// `dialer demo` options.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where to leave demo.wav, demo.pcap and demo-call.pcap.
    #[arg(long, default_value = ".")]
    pub out_dir: PathBuf,
    /// Seconds the customer and the agent talk before the customer hangs up.
    #[arg(long, default_value_t = 4)]
    pub talk: u64,
}

/// `dialer demo`: a whole call on loopback against simulated peers.
pub fn demo_command(args: &DemoArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let report = runtime()?.block_on(crate::runtime::demo::demo(
        &args.out_dir,
        Duration::from_secs(args.talk),
    ));
    match report {
        Ok(r) => {
            let c = &r.cdr;
            writeln!(
                streams.stdout,
                "call {}: {}",
                c.id,
                super::control::summary(c)
            )?;
            writeln!(streams.stdout, "recording: {}", r.recording.display())?;
            writeln!(
                streams.stdout,
                "capture:   {} (the peers' side)",
                r.pcap.display()
            )?;
            writeln!(
                streams.stdout,
                "           {} (the dialer's own, as --pcap writes it)",
                r.call_pcap.display()
            )?;
            Ok(if c.outcome == "bridged" {
                Exit::Success
            } else {
                Exit::Rejected
            })
        }
        Err(e) => {
            writeln!(streams.stderr, "dialer demo: {e}")?;
            Ok(Exit::Rejected)
        }
    }
}
