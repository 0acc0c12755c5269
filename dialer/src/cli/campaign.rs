//! `dialer campaign ...`, `dialer dnc ...` and `dialer disposition`: the campaign commands,
//! each one exchange with the running dialer's API (the store belongs to `dialer run`).

use super::control::ApiArgs;
use super::{Exit, Streams};
use crate::campaigns::CampaignStatus;
use crate::client::{Client, ClientError};
use clap::{Args, Subcommand};
use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;
use ureq::http::StatusCode;

/// `dialer campaign ...`
#[derive(Debug, Clone, Subcommand)]
pub enum CampaignCommand {
    /// Create a campaign from its definition file (TOML); errors name the file, line and key.
    Create {
        /// The definition file.
        file: PathBuf,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Import a CSV lead list (header row, a `number` column; optional `time_zone`, `region`;
    /// other columns are kept and sent to the agent as X-Lead-* headers).
    Import {
        /// The campaign.
        name: String,
        /// The CSV file.
        file: PathBuf,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Start dialling (also after a stop).
    Start(NameArgs),
    /// No new calls; calls under way finish.
    Pause(NameArgs),
    /// Dial again after a pause.
    Resume(NameArgs),
    /// Stop the campaign; calls under way finish.
    Stop(NameArgs),
    /// Progress: a live bar on a terminal until the campaign finishes or stops; one summary
    /// otherwise, or JSON with --json.
    Status {
        /// The campaign.
        name: String,
        /// Print the status once as JSON.
        #[arg(long)]
        json: bool,
        /// Follow the campaign until it finishes or stops, even when not on a terminal (a
        /// line per change).
        #[arg(long, conflicts_with = "json")]
        wait: bool,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// List the campaigns.
    List(super::control::ListArgs),
    /// Export every lead with its attempts, outcomes and dispositions.
    Leads {
        /// The campaign.
        name: String,
        /// Only leads in this state (new, dialing, retry, callback, done, dnc, failed).
        #[arg(long, value_name = "S")]
        state: Option<String>,
        /// CSV, one row per attempt (a lead never dialled has one row with empty attempt
        /// columns).
        #[arg(long, conflicts_with = "json")]
        csv: bool,
        /// JSON, one array of leads with their attempts.
        #[arg(long)]
        json: bool,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Simulate the campaign in virtual time, once per pacing mode (progressive, ratio, a
    /// VICIdial-style adaptive dial level, predictive) on the same seeded traffic: the real
    /// campaign engine against a statistical model of customers and agents. Needs no running
    /// dialer.
    Simulate(SimulateArgs),
}

/// `dialer campaign simulate`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// The campaign definition file.
    pub file: PathBuf,
    /// Agents logged in all the run.
    #[arg(long, value_name = "N", default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub agents: u32,
    /// Virtual hours to run.
    #[arg(long, value_name = "H", default_value_t = 8.0)]
    pub hours: f64,
    /// The seed of the traffic.
    #[arg(long, value_name = "S", default_value_t = 1)]
    pub seed: u64,
    /// The traffic model (TOML); default: the shipped one (25 % live answers ...).
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Print one JSON object: {"model": {...}, "runs": [...]}.
    #[arg(long)]
    pub json: bool,
}

/// A campaign's name and the API.
#[derive(Debug, Clone, Args)]
pub struct NameArgs {
    /// The campaign.
    pub name: String,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `dialer dnc ...`
#[derive(Debug, Clone, Subcommand)]
pub enum DncCommand {
    /// Add numbers to a do-not-call list.
    Add(DncArgs),
    /// Remove numbers from a list.
    Remove(DncArgs),
    /// Add every number of a file (one per line, or a CSV with a `number` column).
    Import {
        /// The file.
        file: PathBuf,
        /// The list.
        #[arg(long, value_name = "NAME", default_value = "global")]
        list: String,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Print a list's numbers.
    List {
        /// The list.
        #[arg(long, value_name = "NAME", default_value = "global")]
        list: String,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// Numbers and a list.
#[derive(Debug, Clone, Args)]
pub struct DncArgs {
    /// Numbers, as the campaigns dial them (E.164 when the trunk normalises).
    #[arg(required = true)]
    pub numbers: Vec<String>,
    /// The list.
    #[arg(long, value_name = "NAME", default_value = "global")]
    pub list: String,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `dialer disposition CALL CODE`.
#[derive(Debug, Clone, Args)]
pub struct DispositionArgs {
    /// The call (its id in `dialer calls` and the events).
    pub call: String,
    /// One of the campaign's disposition codes.
    pub code: String,
    /// For a callback: when (RFC 3339, `2026-12-08T15:00:00-05:00`).
    #[arg(long, value_name = "TIME")]
    pub callback_at: Option<String>,
    /// A note kept with the attempt.
    #[arg(long, value_name = "TEXT")]
    pub note: Option<String>,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// The longest simulated run: 31 days.
const MAX_SIMULATED_HOURS: f64 = 31.0 * 24.0;

fn simulate(args: &SimulateArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    use campaign::sim::{self, model::Model};
    if !(args.hours > 0.0 && args.hours <= MAX_SIMULATED_HOURS) {
        let msg = format!(
            "--hours {}: expected more than 0 and at most {MAX_SIMULATED_HOURS}",
            args.hours
        );
        return fail(streams, msg);
    }
    let read = |path: &PathBuf| {
        std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read: {e}", path.display()))
    };
    let text = match read(&args.file) {
        Ok(t) => t,
        Err(m) => return fail(streams, m),
    };
    let def =
        match campaign::definition::CampaignDef::parse(&args.file.display().to_string(), &text) {
            Ok(d) => d,
            Err(problems) => {
                writeln!(streams.stderr, "{problems}")?;
                return Ok(Exit::Rejected);
            }
        };
    let model = match &args.model {
        None => Model::default_model(),
        Some(path) => {
            let text = match read(path) {
                Ok(t) => t,
                Err(m) => return fail(streams, m),
            };
            match Model::parse(&path.display().to_string(), &text) {
                Ok(m) => m,
                Err(problems) => {
                    writeln!(streams.stderr, "{problems}")?;
                    return Ok(Exit::Rejected);
                }
            }
        }
    };
    let runs = sim::run_all(&def, &model, args.agents, args.hours, args.seed);
    if args.json {
        writeln!(streams.stdout, "{}", sim::report_json(&model, &runs))?;
    } else {
        write!(streams.stdout, "{}", sim::report_table(&runs))?;
    }
    Ok(Exit::Success)
}

fn fail(streams: &mut Streams<'_>, message: impl std::fmt::Display) -> io::Result<Exit> {
    writeln!(streams.stderr, "dialer: {message}")?;
    Ok(Exit::Rejected)
}

fn client_fail(streams: &mut Streams<'_>, e: ClientError) -> io::Result<Exit> {
    match &e {
        ClientError::Unreachable { .. } => fail(streams, format!("{e} (is `dialer run` running?)")),
        ClientError::Api { error, detail, .. } if error == "invalid_definition" => {
            // One located problem per line, like `dialer config check`.
            match serde_json::from_str::<Vec<String>>(detail) {
                Ok(lines) => {
                    for l in lines {
                        writeln!(streams.stderr, "{l}")?;
                    }
                    Ok(Exit::Rejected)
                }
                Err(_) => fail(streams, detail),
            }
        }
        ClientError::Api { detail, .. } => fail(streams, detail),
        _ => fail(streams, e),
    }
}

fn connect(api: &ApiArgs, streams: &mut Streams<'_>) -> io::Result<Result<Client, Exit>> {
    match api.client() {
        Ok(c) => Ok(Ok(c)),
        Err(m) => fail(streams, m).map(Err),
    }
}

fn read_file(path: &PathBuf, streams: &mut Streams<'_>) -> io::Result<Result<Vec<u8>, Exit>> {
    match std::fs::read(path) {
        Ok(b) => Ok(Ok(b)),
        Err(e) => fail(streams, format!("{}: cannot read: {e}", path.display())).map(Err),
    }
}

/// Runs one `dialer campaign` command.
pub fn campaign_command(command: &CampaignCommand, streams: &mut Streams<'_>) -> io::Result<Exit> {
    match command {
        CampaignCommand::Create { file, api } => {
            let client = match connect(api, streams)? {
                Ok(c) => c,
                Err(e) => return Ok(e),
            };
            let text = match read_file(file, streams)? {
                Ok(t) => t,
                Err(e) => return Ok(e),
            };
            let name = file.display().to_string();
            let path = format!("/campaigns?file={}", query_escape(&name));
            match client.post_json(&path, "application/toml", &text, StatusCode::CREATED) {
                Ok(v) => {
                    let status: CampaignStatus = serde_json::from_value(v).unwrap_or_default();
                    writeln!(
                        streams.stdout,
                        "campaign {} created (pool {}, {})",
                        status.name, status.pool, status.pacing
                    )?;
                    Ok(Exit::Success)
                }
                Err(e) => client_fail(streams, e),
            }
        }
        CampaignCommand::Import { name, file, api } => {
            let client = match connect(api, streams)? {
                Ok(c) => c,
                Err(e) => return Ok(e),
            };
            let csv = match read_file(file, streams)? {
                Ok(t) => t,
                Err(e) => return Ok(e),
            };
            let path = format!("/campaigns/{name}/leads");
            match client.post_json(&path, "text/csv", &csv, StatusCode::OK) {
                Ok(v) => {
                    let imported = v["imported"].as_u64().unwrap_or(0);
                    let rejected = v["rejected"].as_array().cloned().unwrap_or_default();
                    for r in &rejected {
                        writeln!(
                            streams.stderr,
                            "{}:{}: {}{}",
                            file.display(),
                            r["line"],
                            r["number"]
                                .as_str()
                                .map(|n| format!("{n}: "))
                                .unwrap_or_default(),
                            r["reason"].as_str().unwrap_or("")
                        )?;
                    }
                    writeln!(
                        streams.stdout,
                        "{imported} leads imported, {} rejected",
                        rejected.len()
                    )?;
                    Ok(Exit::Success)
                }
                Err(e) => client_fail(streams, e),
            }
        }
        CampaignCommand::Simulate(args) => simulate(args, streams),
        CampaignCommand::Start(a) => verb(a, "start", streams),
        CampaignCommand::Pause(a) => verb(a, "pause", streams),
        CampaignCommand::Resume(a) => verb(a, "resume", streams),
        CampaignCommand::Stop(a) => verb(a, "stop", streams),
        CampaignCommand::Status {
            name,
            json,
            wait,
            api,
        } => {
            let client = match connect(api, streams)? {
                Ok(c) => c,
                Err(e) => return Ok(e),
            };
            if *json {
                return match client.get_json(&format!("/campaigns/{name}")) {
                    Ok(v) => {
                        writeln!(streams.stdout, "{v}")?;
                        Ok(Exit::Success)
                    }
                    Err(e) => client_fail(streams, e),
                };
            }
            if *wait || io::stdout().is_terminal() {
                return follow(&client, name, io::stdout().is_terminal() && !*wait, streams);
            }
            match status_of(&client, name) {
                Ok(s) => {
                    writeln!(streams.stdout, "{}", summary(&s))?;
                    Ok(Exit::Success)
                }
                Err(e) => client_fail(streams, e),
            }
        }
        CampaignCommand::List(args) => {
            let client = match connect(&args.api, streams)? {
                Ok(c) => c,
                Err(e) => return Ok(e),
            };
            match client.get_json("/campaigns") {
                Ok(v) if args.json => {
                    writeln!(streams.stdout, "{v}")?;
                    Ok(Exit::Success)
                }
                Ok(v) => {
                    let all: Vec<CampaignStatus> = serde_json::from_value(v).unwrap_or_default();
                    writeln!(
                        streams.stdout,
                        "{:<20} {:<10} {:<12} {:>8} {:>8} {:>8} {:>9}",
                        "NAME", "STATE", "POOL", "LEADS", "FINISHED", "DIALLED", "ABANDON%"
                    )?;
                    for s in all {
                        writeln!(
                            streams.stdout,
                            "{:<20} {:<10} {:<12} {:>8} {:>8} {:>8} {:>9.1}",
                            s.name, s.state, s.pool, s.total, s.finished, s.dialled, s.abandon_rate
                        )?;
                    }
                    Ok(Exit::Success)
                }
                Err(e) => client_fail(streams, e),
            }
        }
        CampaignCommand::Leads {
            name,
            state,
            csv,
            json,
            api,
        } => {
            let client = match connect(api, streams)? {
                Ok(c) => c,
                Err(e) => return Ok(e),
            };
            let path = match state {
                Some(s) => format!("/campaigns/{name}/leads?state={}", query_escape(s)),
                None => format!("/campaigns/{name}/leads"),
            };
            match client.get_json(&path) {
                Ok(v) if *json || !*csv => {
                    writeln!(streams.stdout, "{v}")?;
                    Ok(Exit::Success)
                }
                Ok(v) => {
                    write_leads_csv(&v, streams.stdout)?;
                    Ok(Exit::Success)
                }
                Err(e) => client_fail(streams, e),
            }
        }
    }
}

fn verb(args: &NameArgs, verb: &str, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let client = match connect(&args.api, streams)? {
        Ok(c) => c,
        Err(e) => return Ok(e),
    };
    let path = format!("/campaigns/{}/{verb}", args.name);
    match client.post_json(&path, "application/json", b"{}", StatusCode::OK) {
        Ok(v) => {
            writeln!(
                streams.stdout,
                "campaign {}: {}",
                args.name,
                v["state"].as_str().unwrap_or("?")
            )?;
            Ok(Exit::Success)
        }
        Err(e) => client_fail(streams, e),
    }
}

fn status_of(client: &Client, name: &str) -> Result<CampaignStatus, ClientError> {
    let v = client.get_json(&format!("/campaigns/{name}"))?;
    serde_json::from_value(v).map_err(|e| ClientError::BadResponse {
        url: format!("/campaigns/{name}"),
        status: 200,
        problem: e.to_string(),
    })
}

/// One line: what `campaign status` shows beside the bar.
pub fn summary(s: &CampaignStatus) -> String {
    let n = |k: &str| s.leads.get(k).copied().unwrap_or(0);
    format!(
        "{} {}: {}/{} leads finished (done {}, failed {}, dnc {}), dialled {}, answered {}, \
         bridged {}, abandoned {:.1}% ({:.1}% over {}), lines {} ({} waiting), agents ready {} \
         talking {} wrap-up {}{}{}",
        s.name,
        s.state,
        s.finished,
        s.total,
        n("done"),
        n("failed"),
        n("dnc"),
        s.dialled,
        s.answered,
        s.bridged,
        s.abandon_rate,
        s.window_abandon_rate,
        s.abandon_window,
        s.lines_in_use,
        s.lines_waiting,
        s.agents.ready,
        s.agents.talking,
        s.agents.wrap_up,
        match (&s.drop_group, s.group_window_abandon_rate) {
            (Some(g), Some(rate)) =>
                format!(", drop group {g} {rate:.1}% over {}", s.abandon_window),
            _ => String::new(),
        },
        s.next_retry
            .as_ref()
            .map(|t| format!(", next retry {t}"))
            .unwrap_or_default()
    )
}

/// Follows a campaign until it is finished or stopped: a progress bar on a terminal, a line
/// per change otherwise.
pub fn follow(
    client: &Client,
    name: &str,
    bar: bool,
    streams: &mut Streams<'_>,
) -> io::Result<Exit> {
    let progress = bar.then(|| {
        let p = indicatif::ProgressBar::new(0);
        p.set_style(
            indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} leads {msg}")
                .expect("the template is valid")
                .progress_chars("=> "),
        );
        p.set_prefix(name.to_string());
        p
    });
    let mut last = String::new();
    loop {
        let s = match status_of(client, name) {
            Ok(s) => s,
            Err(e) => return client_fail(streams, e),
        };
        let line = summary(&s);
        match &progress {
            Some(p) => {
                p.set_length(s.total);
                p.set_position(s.finished);
                p.set_message(format!(
                    "| {} | dialled {} answered {} bridged {} abandoned {:.1}% ({:.1}% over {}) \
                     | lines {} | agents ready {} talking {} wrap-up {}",
                    s.state,
                    s.dialled,
                    s.answered,
                    s.bridged,
                    s.abandon_rate,
                    s.window_abandon_rate,
                    s.abandon_window,
                    s.lines_in_use,
                    s.agents.ready,
                    s.agents.talking,
                    s.agents.wrap_up
                ));
            }
            None if line != last => writeln!(streams.stdout, "{line}")?,
            None => {}
        }
        last = line;
        if s.state == "finished" || s.state == "stopped" || s.state == "created" {
            if let Some(p) = progress {
                p.finish();
                writeln!(streams.stdout, "{last}")?;
            }
            return Ok(Exit::Success);
        }
        // The CLI is a client: it polls the status like a person refreshing it.
        crate::runtime::clock::wait(Duration::from_millis(500));
    }
}

/// The export as CSV: one row per attempt.
pub fn write_leads_csv(leads: &serde_json::Value, out: &mut dyn Write) -> io::Result<()> {
    let mut w = csv::Writer::from_writer(out);
    let header = [
        "lead",
        "number",
        "state",
        "zones",
        "region",
        "next_at",
        "fields",
        "attempt",
        "attempt_no",
        "started",
        "ended",
        "call",
        "outcome",
        "call_outcome",
        "agent",
        "disposition",
        "note",
    ];
    w.write_record(header).map_err(io::Error::other)?;
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::Null => String::new(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    for lead in leads.as_array().map(Vec::as_slice).unwrap_or(&[]) {
        let fields = lead["fields"]
            .as_array()
            .map(|f| {
                f.iter()
                    .map(|kv| format!("{}={}", text(&kv[0]), text(&kv[1])))
                    .collect::<Vec<_>>()
                    .join(";")
            })
            .unwrap_or_default();
        let base = [
            text(&lead["lead"]),
            text(&lead["number"]),
            text(&lead["state"]),
            text(&lead["group"]["zones"]),
            text(&lead["group"]["region"]),
            text(&lead["next_at"]),
            fields,
        ];
        let attempts = lead["attempts"].as_array().cloned().unwrap_or_default();
        if attempts.is_empty() {
            let mut row: Vec<String> = base.to_vec();
            row.extend(std::iter::repeat_n(String::new(), 10));
            w.write_record(&row).map_err(io::Error::other)?;
        }
        for a in attempts {
            let mut row: Vec<String> = base.to_vec();
            for k in [
                "attempt",
                "attempt_no",
                "started",
                "ended",
                "call",
                "outcome",
                "call_outcome",
                "agent",
                "disposition",
                "note",
            ] {
                row.push(text(&a[k]));
            }
            w.write_record(&row).map_err(io::Error::other)?;
        }
    }
    w.flush()
}

/// Runs one `dialer dnc` command.
pub fn dnc_command(command: &DncCommand, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let (api, list, numbers, remove) = match command {
        DncCommand::Add(a) => (&a.api, &a.list, a.numbers.clone(), false),
        DncCommand::Remove(a) => (&a.api, &a.list, a.numbers.clone(), true),
        DncCommand::Import { file, list, api } => {
            let bytes = match read_file(file, streams)? {
                Ok(t) => t,
                Err(e) => return Ok(e),
            };
            match numbers_of(&bytes) {
                Ok(n) => (api, list, n, false),
                Err(m) => return fail(streams, format!("{}: {m}", file.display())),
            }
        }
        DncCommand::List { list, api } => {
            let client = match connect(api, streams)? {
                Ok(c) => c,
                Err(e) => return Ok(e),
            };
            return match client.get_json(&format!("/dnc/{list}")) {
                Ok(v) => {
                    for n in v["numbers"].as_array().cloned().unwrap_or_default() {
                        writeln!(streams.stdout, "{}", n.as_str().unwrap_or(""))?;
                    }
                    Ok(Exit::Success)
                }
                Err(e) => client_fail(streams, e),
            };
        }
    };
    let client = match connect(api, streams)? {
        Ok(c) => c,
        Err(e) => return Ok(e),
    };
    let body = serde_json::json!({ "numbers": numbers }).to_string();
    let path = if remove {
        format!("/dnc/{list}/remove")
    } else {
        format!("/dnc/{list}")
    };
    match client.post_json(&path, "application/json", body.as_bytes(), StatusCode::OK) {
        Ok(v) => {
            let (key, verb) = if remove {
                ("removed", "removed from")
            } else {
                ("added", "added to")
            };
            writeln!(
                streams.stdout,
                "{} numbers {verb} {list}",
                v[key].as_u64().unwrap_or(0)
            )?;
            Ok(Exit::Success)
        }
        Err(e) => client_fail(streams, e),
    }
}

/// The numbers of a DNC file: a CSV with a `number` column, or one number per line.
fn numbers_of(bytes: &[u8]) -> Result<Vec<String>, String> {
    let text = std::str::from_utf8(bytes).map_err(|_| "not UTF-8".to_string())?;
    let first = text.lines().next().unwrap_or("");
    if first.split(',').any(|h| h.trim() == "number") {
        let mut r = csv::Reader::from_reader(bytes);
        let col = r
            .headers()
            .map_err(|e| e.to_string())?
            .iter()
            .position(|h| h.trim() == "number")
            .expect("checked above");
        let mut out = Vec::new();
        for (i, rec) in r.records().enumerate() {
            let rec = rec.map_err(|e| format!("line {}: {e}", i + 2))?;
            if let Some(n) = rec.get(col).map(str::trim).filter(|n| !n.is_empty()) {
                out.push(n.to_string());
            }
        }
        Ok(out)
    } else {
        Ok(text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_string)
            .collect())
    }
}

/// `dialer disposition CALL CODE`.
pub fn disposition_command(args: &DispositionArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let client = match connect(&args.api, streams)? {
        Ok(c) => c,
        Err(e) => return Ok(e),
    };
    let body = crate::campaigns::DispositionRequest {
        code: args.code.clone(),
        callback_at: args.callback_at.clone(),
        note: args.note.clone(),
    };
    let body = serde_json::to_vec(&body).expect("a disposition serialises");
    match client.post_json(
        &format!("/calls/{}/disposition", args.call),
        "application/json",
        &body,
        StatusCode::OK,
    ) {
        Ok(_) => {
            writeln!(streams.stdout, "call {}: {}", args.call, args.code)?;
            Ok(Exit::Success)
        }
        Err(e) => client_fail(streams, e),
    }
}

/// Percent-encodes a query value (RFC 3986 §2.1: everything but unreserved characters).
fn query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_names_the_drop_group_and_its_rate_only_when_there_is_one() {
        let mut s = CampaignStatus {
            name: "spring".into(),
            state: "running".into(),
            abandon_window: "30d".into(),
            ..CampaignStatus::default()
        };
        assert!(!summary(&s).contains("drop group"), "{}", summary(&s));
        s.drop_group = Some("floor".into());
        s.group_window_abandon_rate = Some(1.25);
        assert!(
            summary(&s).ends_with(", drop group floor 1.2% over 30d"),
            "{}",
            summary(&s)
        );
    }
}
