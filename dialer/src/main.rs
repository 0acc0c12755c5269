//! The `dialer` command: argument parsing only; the work is in `dialer::cli`.
use clap::Parser;

fn main() -> std::process::ExitCode {
    let args = dialer::cli::Cli::parse();
    dialer::cli::run(args)
}
