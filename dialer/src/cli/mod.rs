//! The `dialer` subcommands: argument definitions (clap derive), dispatch and exit codes.
//!
//! Every command writes its result to the given output stream and human-readable problems to
//! the error stream, and returns an [`Exit`]; [`run()`] binds them to the process's standard
//! streams. Tests call [`run_with`] with buffers or run the real binary.

pub mod campaign;
mod config;
pub mod control;
mod pcap;
pub mod run;
pub mod sip;

use std::io::{self, Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `dialer`: a SIP/RTP outbound dialer and its diagnostic tools.
#[derive(Debug, Parser)]
#[command(name = "dialer", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The top-level subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// SIP message tools.
    Sip {
        /// The SIP tool.
        #[command(subcommand)]
        command: SipCommand,
    },
    /// Configuration tools.
    Config {
        /// The configuration tool.
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Packet capture tools (pcap, pcapng, NetMon).
    Pcap {
        /// The capture tool.
        #[command(subcommand)]
        command: PcapCommand,
    },
    /// Run the dialer: register the trunks, serve agents and the control API, place calls.
    Run(run::RunArgs),
    /// Register one trunk, print the SIP ladder and the outcome.
    Register(run::RegisterArgs),
    /// A whole call on loopback against a simulated carrier and agent; leaves demo.wav and
    /// demo.pcap.
    Demo(run::DemoArgs),
    /// Place a call through the running dialer and follow it to the end; exit 0 when bridged.
    Call(Box<control::CallArgs>),
    /// List the running dialer's live calls.
    Calls(control::ListArgs),
    /// List the running dialer's agents: state (ready, talking, paused ...), calls taken,
    /// pools, registration.
    Agents(control::ListArgs),
    /// Pause an agent or make it ready.
    Agent {
        /// What to do.
        #[command(subcommand)]
        command: control::AgentCommand,
    },
    /// List the running dialer's trunks and their registration state.
    Trunks(control::ListArgs),
    /// Hang up one of the running dialer's calls.
    Hangup(control::HangupArgs),
    /// List the source addresses the running dialer bans for failing authentication.
    Bans(control::ListArgs),
    /// Lift the ban of a source address.
    Unban(control::UnbanArgs),
    /// Campaigns: create, import leads, start, pause, resume, stop, status, list, export.
    Campaign {
        /// What to do.
        #[command(subcommand)]
        command: campaign::CampaignCommand,
    },
    /// Do-not-call lists: add, remove, import, list.
    Dnc {
        /// What to do.
        #[command(subcommand)]
        command: campaign::DncCommand,
    },
    /// Set the disposition of a campaign call (what the agent concluded).
    Disposition(campaign::DispositionArgs),
}

/// `dialer sip ...`
#[derive(Debug, Subcommand)]
pub enum SipCommand {
    /// Parse one SIP message and print its structure as JSON; exit 1 when it is rejected.
    Parse {
        /// The file holding the message; `-` or nothing reads standard input.
        file: Option<PathBuf>,
    },
}

/// `dialer config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate a configuration file and print its effective settings (secrets masked).
    Check {
        /// The configuration file.
        #[arg(long, default_value = "dialer.toml")]
        config: PathBuf,
    },
}

/// `dialer pcap ...`
#[derive(Debug, Subcommand)]
pub enum PcapCommand {
    /// Every call's SIP ladder with the problems found in it.
    Ladder {
        /// The capture file.
        file: PathBuf,
        /// Only the call with this Call-ID.
        #[arg(long = "call", value_name = "CALL-ID")]
        call: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// The RTP streams: SSRC, addresses, codec, packets, loss, jitter, RFC 4733 digits.
    Rtp {
        /// The capture file.
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Decode one RTP stream (PCMU, PCMA, Opus) to a WAV file, gaps filled.
    Audio {
        /// The capture file.
        file: PathBuf,
        /// The stream's SSRC, decimal or 0x-prefixed hexadecimal.
        #[arg(long, value_parser = parse_ssrc)]
        ssrc: u32,
        /// The WAV file to write.
        #[arg(short = 'o', long = "output")]
        output: PathBuf,
    },
}

/// How a command ended; the process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// 0: done (a message parsed, a configuration valid, a capture read).
    Success,
    /// 1: the input was rejected or could not be read.
    Rejected,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        match exit {
            Exit::Success => ExitCode::SUCCESS,
            Exit::Rejected => ExitCode::from(1),
        }
    }
}

/// The streams a command reads and writes.
pub struct Streams<'a> {
    /// Where `-` input comes from.
    pub stdin: &'a mut dyn Read,
    /// Results.
    pub stdout: &'a mut dyn Write,
    /// Problems, for a human.
    pub stderr: &'a mut dyn Write,
}

impl std::fmt::Debug for Streams<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Streams")
    }
}

/// Runs a command on the process's standard streams.
pub fn run(cli: Cli) -> ExitCode {
    // Unlocked handles: the runtime's tasks print the ladder and CDRs from other threads
    // while a command runs, and a lock held here would block them for good.
    let mut input = io::stdin();
    let mut output = io::BufWriter::new(io::stdout());
    let mut errors = io::stderr();
    let exit = run_with(
        cli,
        &mut Streams {
            stdin: &mut input,
            stdout: &mut output,
            stderr: &mut errors,
        },
    );
    // A closed pipe (`dialer pcap ladder f | head`) is not the command's failure.
    let _ = output.flush();
    exit.into()
}

/// Runs a command on the given streams.
pub fn run_with(cli: Cli, streams: &mut Streams<'_>) -> Exit {
    let result = match cli.command {
        Command::Sip {
            command: SipCommand::Parse { file },
        } => sip::parse_command(file.as_deref(), streams),
        Command::Config {
            command: ConfigCommand::Check { config },
        } => config::check_command(&config, streams),
        Command::Pcap { command } => match command {
            PcapCommand::Ladder { file, call, json } => {
                pcap::ladder_command(&file, call.as_deref(), json, streams)
            }
            PcapCommand::Rtp { file, json } => pcap::rtp_command(&file, json, streams),
            PcapCommand::Audio { file, ssrc, output } => {
                pcap::audio_command(&file, ssrc, &output, streams)
            }
        },
        Command::Run(args) => run::run_command(&args, streams),
        Command::Register(args) => run::register_command(&args, streams),
        Command::Demo(args) => run::demo_command(&args, streams),
        Command::Call(args) => control::call_command(&args, streams),
        Command::Calls(args) => control::calls_command(&args, streams),
        Command::Agents(args) => control::agents_command(&args, streams),
        Command::Agent { command } => control::agent_command(&command, streams),
        Command::Trunks(args) => control::trunks_command(&args, streams),
        Command::Hangup(args) => control::hangup_command(&args, streams),
        Command::Bans(args) => control::bans_command(&args, streams),
        Command::Unban(args) => control::unban_command(&args, streams),
        Command::Campaign { command } => campaign::campaign_command(&command, streams),
        Command::Dnc { command } => campaign::dnc_command(&command, streams),
        Command::Disposition(args) => campaign::disposition_command(&args, streams),
    };
    match result {
        Ok(exit) => exit,
        // The reader went away (a closed pipe): nothing more to say to it.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Exit::Success,
        Err(e) => {
            let _ = writeln!(streams.stderr, "dialer: cannot write output: {e}");
            Exit::Rejected
        }
    }
}

/// `--ssrc` values: decimal or `0x` hexadecimal, as tshark prints them.
fn parse_ssrc(s: &str) -> Result<u32, String> {
    let parsed = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => s.parse(),
    };
    parsed.map_err(|_| format!("{s:?} is not an SSRC (decimal or 0x-prefixed hex, 32 bits)"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssrc_accepts_decimal_and_hex_and_rejects_overflow() {
        assert_eq!(parse_ssrc("0xDEE0EE8F"), Ok(0xDEE0_EE8F));
        assert_eq!(parse_ssrc("305419896"), Ok(0x1234_5678));
        assert!(parse_ssrc("0x1_0000_0000").is_err());
        assert!(parse_ssrc("4294967296").is_err());
    }

    #[test]
    fn cli_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
