//! The commands that talk to a running dialer through its control API ([`crate::client`]):
//! `dialer call`, `dialer calls`, `dialer agents`, `dialer agent pause|ready`, `dialer hangup`.
//!
//! `dialer call` opens the event stream first and only then originates, so no event of the new
//! call can be published before the follower is subscribed; it then keeps the lines of its own
//! call (the server-side `?call=` filter cannot be used before the call's id is known). It prints
//! each event as a line (SIP ladder lines only with `--ladder`), coloured on a terminal, and ends
//! at the call's `hangup` with a one-line summary from its CDR. Interrupting it leaves the call
//! running (`dialer hangup ID` ends it), as a detached ESL `originate` does.
//!
//! `--standalone` runs the dialer in this process for one call ([`crate::runtime::server::start`]
//! without the HTTP API): it waits up to `--agent-wait` for the agent to register, originates on
//! the control handle and follows the call exactly as above, then shuts the dialer down
//! (un-registering its trunks).
//!
//! Exit codes: 0 when the call was bridged (or the listing or hang-up succeeded), 1 otherwise,
//! 2 for usage errors (clap).

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, ValueEnum};

use super::{Exit, Streams};
use crate::api::FeedLine;
use crate::client::{Client, ClientError, DEFAULT_URL};
use crate::control::{
    ApiEvent, CallId, CallInfo, Cdr, ControlHandle, ControlRequest, HungUpBy, LadderLine,
    OriginateRequest,
};
use crate::runtime::server::{start, RunOptions};
use tokio::sync::{broadcast, oneshot};

/// Where the API is and how to authenticate to it.
#[derive(Debug, Clone, Args)]
pub struct ApiArgs {
    /// The dialer's control API.
    #[arg(long, value_name = "URL", default_value = DEFAULT_URL)]
    pub api: String,
    /// The API's bearer token (visible to other local users in the process list; prefer --token-env).
    #[arg(long, value_name = "TOKEN", conflicts_with = "token_env")]
    pub token: Option<String>,
    /// Read the API's bearer token from this environment variable.
    #[arg(long, value_name = "VAR")]
    pub token_env: Option<String>,
}

impl ApiArgs {
    pub(crate) fn client(&self) -> Result<Client, String> {
        let token = match (&self.token, &self.token_env) {
            (Some(token), _) => Some(token.clone()),
            (None, Some(var)) => match std::env::var(var) {
                Ok(token) if !token.is_empty() => Some(token),
                Ok(_) => return Err(format!("the environment variable {var} is empty")),
                Err(_) => return Err(format!("the environment variable {var} is not set")),
            },
            (None, None) => None,
        };
        Client::new(&self.api, token).map_err(|e| e.to_string())
    }
}

/// When to colour the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Colour {
    /// On a terminal, unless `NO_COLOR` is set.
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

/// `dialer call NUMBER --agent EXT ...` or `dialer call NUMBER --pool NAME ...`
#[derive(Debug, Clone, Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["agent", "pool"])))]
pub struct CallArgs {
    /// The number to dial.
    pub number: String,
    /// The agent's extension (reserved for the call before the customer is dialled).
    #[arg(long, value_name = "EXT")]
    pub agent: Option<String>,
    /// A pool: the best ready agent when the customer answers.
    #[arg(long, value_name = "NAME")]
    pub pool: Option<String>,
    /// Your own id for the call (at most 128 characters), carried in its events and CDR.
    #[arg(long, value_name = "T")]
    pub tag: Option<String>,
    /// An X- header for the agent's INVITE, as NAME=VALUE (repeatable).
    #[arg(long = "agent-header", value_name = "NAME=VALUE", value_parser = parse_header)]
    pub agent_headers: Vec<(String, String)>,
    /// The trunk; the first configured one when absent.
    #[arg(long, value_name = "NAME")]
    pub trunk: Option<String>,
    /// The WAV played to the customer while the agent rings.
    #[arg(long, value_name = "WAV")]
    pub ringback: Option<PathBuf>,
    /// Record the call to this stereo WAV (customer left, agent right).
    #[arg(long, value_name = "WAV")]
    pub record: Option<PathBuf>,
    /// Write the call's SIP and RTP packets to this pcap file.
    #[arg(long, value_name = "FILE")]
    pub pcap: Option<PathBuf>,
    /// Print the SIP ladder (every message of the call) between the events.
    #[arg(long)]
    pub ladder: bool,
    /// Colour the output.
    #[arg(long, value_enum, default_value_t = Colour::Auto)]
    pub color: Colour,
    /// Run the dialer in this process for this one call, instead of asking a running one.
    #[arg(long, requires = "config", conflicts_with_all = ["api", "token", "token_env"])]
    pub standalone: bool,
    /// The configuration for --standalone.
    #[arg(long, value_name = "FILE", requires = "standalone")]
    pub config: Option<PathBuf>,
    /// With --standalone, how long to wait for the agent to register, in seconds.
    #[arg(long, value_name = "S", default_value = "30", value_parser = parse_seconds, requires = "standalone")]
    pub agent_wait: Duration,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `dialer calls` and `dialer agents`.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `dialer agent pause|ready EXT`.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AgentCommand {
    /// Pause an agent: it takes no calls (one on a call is paused when the call ends).
    Pause {
        /// The agent's extension.
        extension: String,
        /// Why (shown in `dialer agents` and the agent_state event).
        #[arg(long, value_name = "R", default_value = "paused")]
        reason: String,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Make an agent ready for calls.
    Ready {
        /// The agent's extension.
        extension: String,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// Log an agent of a session-mode pool in: its phone is called once, and customers are
    /// switched onto that call for the whole shift.
    Login {
        /// The agent's extension.
        extension: String,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
    /// End an agent's session (and the customer call on it, if any).
    Logout {
        /// The agent's extension.
        extension: String,
        /// The API to ask.
        #[command(flatten)]
        api: ApiArgs,
    },
}

/// `dialer hangup ID`.
#[derive(Debug, Clone, Args)]
pub struct HangupArgs {
    /// The call's id (from `dialer calls`).
    pub id: u64,
    /// Print JSON instead of text.
    #[arg(long)]
    pub json: bool,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

/// `dialer unban IP`.
#[derive(Debug, Clone, Args)]
pub struct UnbanArgs {
    /// The banned address (from `dialer bans`).
    pub address: std::net::IpAddr,
    /// The API to ask.
    #[command(flatten)]
    pub api: ApiArgs,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .filter(|(n, _)| !n.is_empty())
        .ok_or_else(|| format!("{s:?} is not NAME=VALUE"))
}

fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 86_400.0)
        .map(Duration::from_secs_f64)
        .ok_or_else(|| format!("{s:?} is not a number of seconds between 0 and 86400"))
}

fn fail(streams: &mut Streams<'_>, message: impl std::fmt::Display) -> io::Result<Exit> {
    writeln!(streams.stderr, "dialer: {message}")?;
    Ok(Exit::Rejected)
}

fn client_error(streams: &mut Streams<'_>, e: &ClientError) -> io::Result<Exit> {
    match e {
        ClientError::Unreachable { .. } => fail(streams, format!("{e} (is `dialer run` running?)")),
        _ => fail(streams, e),
    }
}

/// `dialer call`.
pub fn call_command(args: &CallArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let colour = match args.color {
        Colour::Always => true,
        Colour::Never => false,
        Colour::Auto => std::env::var_os("NO_COLOR").is_none() && io::stdout().is_terminal(),
    };
    let request = OriginateRequest {
        number: args.number.clone(),
        agent: args.agent.clone(),
        pool: args.pool.clone(),
        tag: args.tag.clone(),
        agent_headers: args.agent_headers.iter().cloned().collect(),
        trunk: args.trunk.clone(),
        ringback: args.ringback.clone(),
        record: args.record.clone(),
        pcap: args.pcap.clone(),
        caller_id: None,
        ring_timeout_s: None,
    };
    let mut follower = Follower {
        ladder: args.ladder,
        colour,
        cdr: None,
    };
    if args.standalone {
        let config = args
            .config
            .as_deref()
            .expect("clap: --standalone requires --config");
        return standalone(config, args.agent_wait, request, &mut follower, streams);
    }

    let client = match args.api.client() {
        Ok(client) => client,
        Err(message) => return fail(streams, message),
    };
    // Subscribed before originating: no event of the call can be missed.
    let events = match client.events(None) {
        Ok(events) => events,
        Err(e) => return client_error(streams, &e),
    };
    let info = match client.originate(&request) {
        Ok(info) => info,
        Err(e) => return client_error(streams, &e),
    };
    follower.header(&info, streams.stdout)?;
    for line in events {
        match line {
            Ok(FeedLine::Event(event)) => {
                if event.call() != Some(info.id) {
                    continue;
                }
                follower.print(&event, streams.stdout)?;
                if follower.cdr.is_some() {
                    return follower.finish(streams);
                }
            }
            Ok(FeedLine::Lagged { missed }) => {
                writeln!(
                    streams.stderr,
                    "dialer: warning: {missed} events were dropped because this follower fell behind"
                )?;
                // The hang-up may have been among them: then it will never come.
                match client.calls() {
                    Ok(calls) if !calls.iter().any(|c| c.id == info.id) => {
                        return fail(
                            streams,
                            format!(
                                "call {} ended while its events were dropped; no summary",
                                info.id
                            ),
                        )
                    }
                    Ok(_) => {}
                    Err(e) => return client_error(streams, &e),
                }
            }
            Ok(FeedLine::Other(_)) => {}
            Err(e) => return client_error(streams, &e),
        }
    }
    fail(
        streams,
        format!(
            "the dialer closed the event stream before call {} ended",
            info.id
        ),
    )
}

/// `dialer call --standalone`: the dialer in this process, for this one call.
fn standalone(
    config: &Path,
    agent_wait: Duration,
    request: OriginateRequest,
    follower: &mut Follower,
    streams: &mut Streams<'_>,
) -> io::Result<Exit> {
    let config = match trunk_profiles::Config::load(config) {
        Ok(config) => config,
        Err(e) => return fail(streams, e),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let options = RunOptions {
        ladder: false,
        colour: follower.colour,
        cdr_file: None,
        no_api: true,
        campaigns: false,
    };
    runtime.block_on(async {
        let running = match start(config, options).await {
            Ok(running) => running,
            Err(e) => return fail(streams, e),
        };
        let exit = standalone_call(&running.control, agent_wait, request, follower, streams).await;
        running.shutdown().await;
        exit
    })
}

/// Sends one request to the in-process dialer and waits for its answer; `None` once it stopped.
async fn ask<T>(
    control: &ControlHandle,
    request: impl FnOnce(oneshot::Sender<T>) -> ControlRequest,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    control.requests.send(request(tx)).await.ok()?;
    rx.await.ok()
}

async fn standalone_call(
    control: &ControlHandle,
    agent_wait: Duration,
    request: OriginateRequest,
    follower: &mut Follower,
    streams: &mut Streams<'_>,
) -> io::Result<Exit> {
    const STOPPED: &str = "the dialer stopped";
    // Subscribed before anything is asked: no registration or call event can slip past.
    let mut events = control.events.subscribe();
    let Some(agents) = ask(control, ControlRequest::ListAgents).await else {
        return fail(streams, STOPPED);
    };
    // The agent, or any member of the pool, must be logged in.
    let wanted = |extension: &str, pools: &[String]| match (&request.agent, &request.pool) {
        (Some(a), _) => a == extension,
        (None, Some(p)) => pools.contains(p),
        (None, None) => false,
    };
    let who = match (&request.agent, &request.pool) {
        (Some(a), _) => format!("agent {a}"),
        (None, Some(p)) => format!("an agent of pool {p}"),
        (None, None) => "an agent".to_owned(),
    };
    let members: Vec<(String, Vec<String>)> = agents
        .iter()
        .map(|a| (a.extension.clone(), a.pools.clone()))
        .collect();
    let logged_in = agents
        .iter()
        .any(|a| a.state != crate::b2bua::AgentState::LoggedOut && wanted(&a.extension, &a.pools));
    if !logged_in {
        writeln!(
            streams.stderr,
            "dialer: waiting up to {} s for {who} to register",
            agent_wait.as_secs_f64(),
        )?;
        let registered = async {
            loop {
                match events.recv().await {
                    Ok(ApiEvent::AgentRegistered { extension, .. })
                        if members
                            .iter()
                            .any(|(e, pools)| *e == extension && wanted(e, pools)) =>
                    {
                        return true
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => return false,
                }
            }
        };
        let in_time = tokio::time::timeout(agent_wait, registered).await;
        if !in_time.unwrap_or(false) {
            let message = format!(
                "{who} did not register within {} s",
                agent_wait.as_secs_f64()
            );
            return fail(streams, message);
        }
    }
    let info = match ask(control, |tx| ControlRequest::Originate(request, tx)).await {
        Some(Ok(info)) => info,
        Some(Err(e)) => return fail(streams, e),
        None => return fail(streams, STOPPED),
    };
    follower.header(&info, streams.stdout)?;
    loop {
        match events.recv().await {
            Ok(event) if event.call() == Some(info.id) => {
                follower.print(&event, streams.stdout)?;
                if follower.cdr.is_some() {
                    return follower.finish(streams);
                }
            }
            Ok(_) => {}
            Err(broadcast::error::RecvError::Lagged(missed)) => {
                writeln!(
                    streams.stderr,
                    "dialer: warning: {missed} events were dropped because this follower fell behind"
                )?;
                match ask(control, ControlRequest::ListCalls).await {
                    Some(calls) if calls.iter().any(|c| c.id == info.id) => {}
                    Some(_) => {
                        let message = format!(
                            "call {} ended while its events were dropped; no summary",
                            info.id
                        );
                        return fail(streams, message);
                    }
                    None => return fail(streams, STOPPED),
                }
            }
            Err(broadcast::error::RecvError::Closed) => return fail(streams, STOPPED),
        }
    }
}

const BOLD: &str = "1";
const RED: &str = "31";
const GREEN: &str = "32";
const YELLOW: &str = "33";
const CYAN: &str = "36";
const MAGENTA: &str = "35";

/// Prints one call's events and keeps its CDR.
struct Follower {
    ladder: bool,
    colour: bool,
    cdr: Option<Cdr>,
}

impl Follower {
    fn paint(&self, sgr: &str, text: &str) -> String {
        if self.colour {
            format!("\x1b[{sgr}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    fn header(&self, info: &CallInfo, out: &mut dyn Write) -> io::Result<()> {
        let who = match (&info.agent, &info.pool) {
            (Some(agent), _) => format!("agent {agent}"),
            (None, Some(pool)) => format!("pool {pool}"),
            (None, None) => "no agent".to_owned(),
        };
        let text = format!(
            "call {}: {} via {} for {who}",
            info.id, info.number, info.trunk
        );
        writeln!(out, "{}", self.paint(BOLD, &text))?;
        out.flush()
    }

    fn print(&mut self, event: &ApiEvent, out: &mut dyn Write) -> io::Result<()> {
        let line = match event {
            ApiEvent::Sip(line) if !self.ladder => return Ok(()),
            ApiEvent::Sip(line) => {
                let (text, colour) = ladder_line(line);
                self.paint(colour, &text)
            }
            ApiEvent::Hangup { cdr, .. } => {
                self.cdr = Some((**cdr).clone());
                let colour = if cdr.bridged.is_some() { GREEN } else { RED };
                self.paint(colour, &describe(event))
            }
            ApiEvent::Bridged { .. } => self.paint(GREEN, &describe(event)),
            _ => describe(event),
        };
        writeln!(out, "{line}")?;
        // Followed live: each line is shown as it happens, not when a buffer fills.
        out.flush()
    }

    fn finish(&self, streams: &mut Streams<'_>) -> io::Result<Exit> {
        let Some(cdr) = &self.cdr else {
            return fail(streams, "the call ended without a call record");
        };
        let colour = if cdr.bridged.is_some() { GREEN } else { RED };
        writeln!(streams.stdout, "{}", self.paint(colour, &summary(cdr)))?;
        Ok(if cdr.bridged.is_some() {
            Exit::Success
        } else {
            Exit::Rejected
        })
    }
}

/// One event as a line of text.
pub fn describe(event: &ApiEvent) -> String {
    match event {
        ApiEvent::CallCreated {
            call,
            number,
            agent,
            pool,
            trunk,
            ..
        } => match (agent, pool) {
            (Some(agent), _) => format!("[{call}] created: {number} via {trunk}, agent {agent}"),
            (None, Some(pool)) => format!("[{call}] created: {number} via {trunk}, pool {pool}"),
            (None, None) => format!("[{call}] created: {number} via {trunk}"),
        },
        ApiEvent::Queued { call, position, .. } => {
            format!("[{call}] queued at the trunk's limit (position {position})")
        }
        ApiEvent::Progress { call, status, .. } => format!(
            "[{call}] progress: {status} {}",
            sip_core::message::reason_phrase(*status)
        ),
        ApiEvent::EarlyMedia { call, .. } => format!("[{call}] early media from the carrier"),
        ApiEvent::Answered { call, codec, .. } => {
            format!("[{call}] customer answered ({codec})")
        }
        ApiEvent::RingbackStarted { call, .. } => {
            format!("[{call}] ringback playing to the customer")
        }
        ApiEvent::AgentRinging { call, agent, .. } => format!("[{call}] agent {agent} ringing"),
        ApiEvent::Bridged {
            call,
            agent,
            agent_codec,
            transcoding,
            ..
        } => format!(
            "[{call}] bridged with agent {agent} ({agent_codec}{})",
            if *transcoding { ", transcoding" } else { "" }
        ),
        ApiEvent::Hangup { call, cdr, .. } => format!(
            "[{call}] hung up by the {}: {}, SIP {}, Q.850 {}",
            hung_up_by(cdr.hung_up_by),
            cdr.outcome,
            cdr.sip_status,
            cdr.q850_cause
        ),
        ApiEvent::RecordingFailed { call, reason, .. } => {
            format!("[{call}] recording stopped: {reason}")
        }
        ApiEvent::AgentState {
            extension,
            state,
            reason,
            ..
        } => match reason {
            Some(reason) => format!("agent {extension}: {} ({reason})", state.as_str()),
            None => format!("agent {extension}: {}", state.as_str()),
        },
        ApiEvent::AgentRegistered {
            extension,
            contact,
            source,
            nat,
        } => format!(
            "agent {extension} registered from {source}{}: {contact}",
            if *nat { " (behind NAT)" } else { "" }
        ),
        ApiEvent::CampaignState { campaign, state } => format!("campaign {campaign}: {state}"),
        ApiEvent::AttemptStarted {
            campaign,
            number,
            attempt_no,
            ..
        } => format!("campaign {campaign}: dialling {number} (attempt {attempt_no})"),
        ApiEvent::AttemptEnded {
            campaign,
            number,
            outcome,
            lead_state,
            ..
        } => format!("campaign {campaign}: {number} {outcome}, lead {lead_state}"),
        ApiEvent::AgentUnregistered { extension, reason } => {
            format!("agent {extension} unregistered ({reason})")
        }
        ApiEvent::TrunkRegistration {
            trunk,
            state,
            detail,
        } => format!("trunk {trunk}: {state} ({detail})"),
        ApiEvent::Sip(line) => ladder_line(line).0,
    }
}

fn ladder_line(line: &LadderLine) -> (String, &'static str) {
    let arrow = if line.dir == "in" { "<--" } else { "-->" };
    // Responses start with their status: colour by class; requests by direction.
    let colour = match line.what.bytes().next() {
        Some(b'1') => YELLOW,
        Some(b'2') => GREEN,
        Some(b'3'..=b'6') => RED,
        _ if line.dir == "in" => MAGENTA,
        _ => CYAN,
    };
    (
        format!(
            "    {:>9.3} {arrow} {:<21} {}  (CSeq {})",
            line.t, line.peer, line.what, line.cseq
        ),
        colour,
    )
}

fn hung_up_by(who: HungUpBy) -> &'static str {
    match who {
        HungUpBy::Customer => "customer",
        HungUpBy::Agent => "agent",
        HungUpBy::Dialer => "dialer",
    }
}

/// The ITU-T Q.850 name of a cause value (Table 1), for the common ones.
pub fn q850_name(cause: u8) -> &'static str {
    match cause {
        1 => "unallocated number",
        3 => "no route to destination",
        16 => "normal call clearing",
        17 => "user busy",
        18 => "no user responding",
        19 => "no answer from user",
        20 => "subscriber absent",
        21 => "call rejected",
        22 => "number changed",
        25 => "exchange routing error",
        27 => "destination out of order",
        28 => "invalid number format",
        29 => "facility rejected",
        31 => "normal, unspecified",
        34 => "no circuit available",
        38 => "network out of order",
        41 => "temporary failure",
        42 => "switching equipment congestion",
        47 => "resource unavailable",
        55 => "incoming calls barred",
        57 => "bearer capability not authorized",
        58 => "bearer capability not available",
        63 => "service not available",
        65 => "bearer capability not implemented",
        79 => "service not implemented",
        88 => "incompatible destination",
        102 => "recovery on timer expiry",
        111 => "protocol error",
        127 => "interworking, unspecified",
        _ => "cause",
    }
}

fn seconds(from: f64, to: f64) -> String {
    format!("{:.2} s", (to - from).max(0.0))
}

fn loss(lost: u64, received: u64) -> String {
    let expected = lost + received;
    if expected == 0 {
        format!("{lost}")
    } else {
        format!("{lost} ({:.1}%)", lost as f64 * 100.0 / expected as f64)
    }
}

/// The one-line summary of a finished call.
pub fn summary(cdr: &Cdr) -> String {
    let setup = match cdr.answered {
        Some(answered) => format!("setup {}", seconds(cdr.created, answered)),
        None => format!("unanswered after {}", seconds(cdr.created, cdr.ended)),
    };
    let talk = match (cdr.answered, cdr.bridged) {
        (Some(answered), Some(bridged)) => format!(
            ", agent wait {}, talk {}",
            seconds(answered, bridged),
            seconds(bridged, cdr.ended)
        ),
        (Some(answered), None) => format!(", no agent after {}", seconds(answered, cdr.ended)),
        _ => String::new(),
    };
    let codec = |c: &Option<String>| c.clone().unwrap_or_else(|| "-".to_owned());
    format!(
        "{}: SIP {}, Q.850 {} ({}), hung up by the {}; {setup}{talk}; codecs customer {} / agent {}; \
         relayed {} to the agent, {} to the customer; lost {} from the customer, {} from the agent",
        cdr.outcome,
        cdr.sip_status,
        cdr.q850_cause,
        q850_name(cdr.q850_cause),
        hung_up_by(cdr.hung_up_by),
        codec(&cdr.customer_codec),
        codec(&cdr.agent_codec),
        cdr.packets_to_agent,
        cdr.packets_to_customer,
        loss(cdr.lost_from_customer, cdr.packets_to_agent),
        loss(cdr.lost_from_agent, cdr.packets_to_customer),
    )
}

/// Columns padded to their widest cell.
fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header_row).chain(rows) {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(cell, width)| format!("{cell:<width$}"))
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn print_json(streams: &mut Streams<'_>, value: &impl serde::Serialize) -> io::Result<()> {
    let text = serde_json::to_string_pretty(value).expect("API records serialise");
    writeln!(streams.stdout, "{text}")
}

/// `dialer calls`.
pub fn calls_command(args: &ListArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let calls = match args.api.client().map(|c| c.calls()) {
        Ok(Ok(calls)) => calls,
        Ok(Err(e)) => return client_error(streams, &e),
        Err(message) => return fail(streams, message),
    };
    if args.json {
        print_json(streams, &calls)?;
        return Ok(Exit::Success);
    }
    let rows: Vec<Vec<String>> = calls
        .iter()
        .map(|c| {
            vec![
                c.id.to_string(),
                c.number.clone(),
                match (&c.agent, &c.pool) {
                    (Some(agent), _) => agent.clone(),
                    (None, Some(pool)) => format!("({pool})"),
                    (None, None) => "-".to_owned(),
                },
                c.trunk.clone(),
                serde_json::to_value(c.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                format!("{:.0}", c.age_s),
            ]
        })
        .collect();
    write!(
        streams.stdout,
        "{}",
        table(&["ID", "NUMBER", "AGENT", "TRUNK", "STATE", "AGE_S"], &rows)
    )?;
    Ok(Exit::Success)
}

/// `dialer trunks`.
pub fn trunks_command(args: &ListArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let trunks = match args.api.client().map(|c| c.trunks()) {
        Ok(Ok(trunks)) => trunks,
        Ok(Err(e)) => return client_error(streams, &e),
        Err(message) => return fail(streams, message),
    };
    if args.json {
        print_json(streams, &trunks)?;
        return Ok(Exit::Success);
    }
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = trunks
        .iter()
        .map(|t| {
            let detail = match (&t.error, t.retry_in_s, t.attempts) {
                (Some(e), Some(s), Some(n)) => format!("attempt {n} in {s:.1} s after {e}"),
                (Some(e), _, _) => e.clone(),
                _ => t.contact.clone().unwrap_or_default(),
            };
            vec![
                t.name.clone(),
                format!("{}/{}", t.proxy, t.transport),
                t.state.clone(),
                t.expires_in_s.map_or_else(dash, |s| s.to_string()),
                match (t.max_channels, t.queued) {
                    (Some(max), 0) => format!("{}/{max}", t.calls),
                    (Some(max), q) => format!("{}/{max} +{q} queued", t.calls),
                    (None, 0) => t.calls.to_string(),
                    (None, q) => format!("{} +{q} queued", t.calls),
                },
                detail,
            ]
        })
        .collect();
    write!(
        streams.stdout,
        "{}",
        table(
            &["TRUNK", "PROXY", "STATE", "EXPIRES_S", "CALLS", "DETAIL"],
            &rows
        )
    )?;
    Ok(Exit::Success)
}

/// `dialer agents`.
pub fn agents_command(args: &ListArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let agents = match args.api.client().map(|c| c.agents()) {
        Ok(Ok(agents)) => agents,
        Ok(Err(e)) => return client_error(streams, &e),
        Err(message) => return fail(streams, message),
    };
    if args.json {
        print_json(streams, &agents)?;
        return Ok(Exit::Success);
    }
    let rows: Vec<Vec<String>> = agents
        .iter()
        .map(|a| {
            let state = match &a.reason {
                Some(reason) => format!("{} ({reason})", a.state.as_str()),
                None => a.state.as_str().to_owned(),
            };
            vec![
                a.extension.clone(),
                state,
                format!("{:.0}", a.state_for_s),
                a.calls_taken.to_string(),
                if a.pools.is_empty() {
                    "-".to_owned()
                } else {
                    a.pools.join(",")
                },
                a.source.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                if a.nat { "yes" } else { "no" }.to_owned(),
                match (a.expires_in_s, &a.contact) {
                    (Some(s), _) => s.to_string(),
                    (None, Some(_)) => "static".to_owned(),
                    (None, None) => "-".to_owned(),
                },
                a.contact.clone().unwrap_or_else(|| "-".to_owned()),
                a.user_agent.clone().unwrap_or_default(),
            ]
        })
        .collect();
    write!(
        streams.stdout,
        "{}",
        table(
            &[
                "EXTENSION",
                "STATE",
                "FOR_S",
                "CALLS",
                "POOLS",
                "SOURCE",
                "NAT",
                "EXPIRES_S",
                "CONTACT",
                "USER_AGENT"
            ],
            &rows
        )
    )?;
    Ok(Exit::Success)
}

/// `dialer agent pause|ready|login|logout`.
pub fn agent_command(command: &AgentCommand, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let (extension, result) = match command {
        AgentCommand::Pause {
            extension,
            reason,
            api,
        } => (
            extension,
            api.client().map(|c| c.pause_agent(extension, reason)),
        ),
        AgentCommand::Ready { extension, api } => {
            (extension, api.client().map(|c| c.ready_agent(extension)))
        }
        AgentCommand::Login { extension, api } => {
            (extension, api.client().map(|c| c.login_agent(extension)))
        }
        AgentCommand::Logout { extension, api } => {
            (extension, api.client().map(|c| c.logout_agent(extension)))
        }
    };
    match result {
        Ok(Ok(())) => {
            let what = match command {
                AgentCommand::Pause { reason, .. } => format!("paused ({reason})"),
                AgentCommand::Ready { .. } => "ready".to_owned(),
                AgentCommand::Login { .. } => "calling its phone for the session".to_owned(),
                AgentCommand::Logout { .. } => "session ending".to_owned(),
            };
            writeln!(streams.stdout, "agent {extension}: {what}")?;
            Ok(Exit::Success)
        }
        Ok(Err(e)) => client_error(streams, &e),
        Err(message) => fail(streams, message),
    }
}

/// `dialer bans`.
pub fn bans_command(args: &ListArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let bans = match args.api.client().map(|c| c.bans()) {
        Ok(Ok(bans)) => bans,
        Ok(Err(e)) => return client_error(streams, &e),
        Err(message) => return fail(streams, message),
    };
    if args.json {
        print_json(streams, &bans)?;
        return Ok(Exit::Success);
    }
    let now = crate::runtime::clock::unix_now() as u64;
    let rows: Vec<Vec<String>> = bans
        .iter()
        .map(|b| {
            vec![
                b.address.to_string(),
                crate::registrar::utc_timestamp(b.since),
                crate::registrar::utc_timestamp(b.until),
                b.until.saturating_sub(now).to_string(),
                b.failures.to_string(),
            ]
        })
        .collect();
    write!(
        streams.stdout,
        "{}",
        table(&["ADDRESS", "SINCE", "UNTIL", "LEFT_S", "FAILURES"], &rows)
    )?;
    Ok(Exit::Success)
}

/// `dialer unban`.
pub fn unban_command(args: &UnbanArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    match args.api.client().map(|c| c.unban(args.address)) {
        Ok(Ok(true)) => {
            writeln!(streams.stdout, "{}: ban lifted", args.address)?;
            Ok(Exit::Success)
        }
        Ok(Ok(false)) => fail(streams, format!("{} is not banned", args.address)),
        Ok(Err(e)) => client_error(streams, &e),
        Err(message) => fail(streams, message),
    }
}

/// `dialer hangup`.
pub fn hangup_command(args: &HangupArgs, streams: &mut Streams<'_>) -> io::Result<Exit> {
    let call = CallId(args.id);
    match args.api.client().map(|c| c.hangup(call)) {
        Ok(Ok(())) if args.json => {
            print_json(streams, &serde_json::json!({"call": call, "hangup": true}))?;
            Ok(Exit::Success)
        }
        Ok(Ok(())) => {
            writeln!(streams.stdout, "call {call}: hanging up")?;
            Ok(Exit::Success)
        }
        Ok(Err(e)) => client_error(streams, &e),
        Err(message) => fail(streams, message),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cdr(bridged: bool) -> Cdr {
        Cdr {
            id: CallId(7),
            customer_call_id: "c@x".into(),
            agent_call_id: bridged.then(|| "a@x".into()),
            number: "5551234".into(),
            dialled: "+15551234".into(),
            agent: Some("1001".into()),
            pool: None,
            tag: None,
            agent_attempts: 1,
            connect_ms: bridged.then_some(1500),
            trunk: "carrier".into(),
            created: 100.0,
            progress: Some(100.5),
            answered: bridged.then_some(102.0),
            bridged: bridged.then_some(103.5),
            ended: if bridged { 133.5 } else { 101.0 },
            outcome: if bridged {
                crate::b2bua::CallOutcome::Bridged
            } else {
                crate::b2bua::CallOutcome::Busy
            },
            sip_status: if bridged { 200 } else { 486 },
            q850_cause: if bridged { 16 } else { 17 },
            hung_up_by: if bridged {
                HungUpBy::Agent
            } else {
                HungUpBy::Customer
            },
            customer_codec: bridged.then(|| "PCMA".into()),
            agent_codec: bridged.then(|| "opus".into()),
            packets_to_agent: 1500,
            packets_to_customer: 1498,
            lost_from_customer: 0,
            lost_from_agent: 2,
        }
    }

    #[test]
    fn summary_of_a_bridged_call_has_durations_codecs_packets_and_loss() {
        assert_eq!(
            summary(&cdr(true)),
            "bridged: SIP 200, Q.850 16 (normal call clearing), hung up by the agent; \
             setup 2.00 s, agent wait 1.50 s, talk 30.00 s; codecs customer PCMA / agent opus; \
             relayed 1500 to the agent, 1498 to the customer; lost 0 (0.0%) from the customer, \
             2 (0.1%) from the agent"
        );
    }

    #[test]
    fn summary_of_a_busy_call_says_unanswered() {
        let text = summary(&cdr(false));
        assert!(
            text.starts_with("busy: SIP 486, Q.850 17 (user busy), hung up by the customer; unanswered after 1.00 s; codecs customer - / agent -"),
            "{text}"
        );
    }

    #[test]
    fn tables_pad_columns_to_the_widest_cell() {
        let rows = vec![vec!["1".to_owned(), "long-value".to_owned()]];
        assert_eq!(table(&["ID", "X"], &rows), "ID  X\n1   long-value\n");
    }

    #[test]
    fn agent_wait_takes_seconds_and_rejects_nonsense() {
        assert_eq!(parse_seconds("2.5"), Ok(Duration::from_millis(2500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("NaN").is_err());
        assert!(parse_seconds("soon").is_err());
    }
}
