//! The campaign definition file (`dialer campaign create FILE`): its schema, defaults and
//! validation, reported like `dialer config check` (file:line:column, key, expected what).

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use trunk_profiles::Diagnostics;

/// Shortest ring timeout a campaign may set: US TSR 16 CFR 310.4(b)(1)(v) and Ofcom's
/// persistent-misuse policy want at least 15 s before a no-answer is declared.
pub const MIN_RING_TIMEOUT_S: u32 = 15;
/// Ofcom: a number whose call was abandoned is not called again within 72 h unless an agent
/// is guaranteed.
pub const ABANDONED_REDIAL_MIN_S: u64 = 72 * 3600;

/// A validated campaign.
#[derive(Clone, Debug, PartialEq)]
pub struct CampaignDef {
    /// Unique name (`[A-Za-z0-9_-]`, 1 to 64 characters).
    pub name: String,
    /// The agent pool that takes its answered calls.
    pub pool: String,
    /// The trunk to dial through; the dialer's first when `None`.
    pub trunk: Option<String>,
    /// The caller id presented (From user part), when it differs from the trunk's.
    pub caller_id: Option<String>,
    /// How many lines to dial.
    pub pacing: Pacing,
    /// Never more lines in use than this (default 50).
    pub max_lines: u32,
    /// Seconds before an unanswered customer call is given up (default 25, at least 15).
    pub ring_timeout_s: u32,
    /// Zone of leads whose number and row give none (default `UTC`).
    pub time_zone: Tz,
    /// Attempts per lead over all retry rules (default 3).
    pub max_attempts: u32,
    /// DNC lists checked at import and at claim; a `dnc` disposition adds to the first.
    pub dnc: Vec<String>,
    /// Calling hours in the lead's local time.
    pub hours: WeekHours,
    /// Overrides by region (first match wins).
    pub regions: Vec<RegionRule>,
    /// Dates (in the lead's local time) with no calls.
    pub holidays: Vec<NaiveDate>,
    /// Delay before the next attempt by the last outcome.
    pub retry: RetryRules,
    /// Codes agents may set, and what each does.
    pub dispositions: Vec<Disposition>,
    /// Code applied to a bridged call that got none by the end of wrap-up; `None`: the lead
    /// is done.
    pub default_disposition: Option<String>,
    /// A callback goes to the agent who set it.
    pub callback_to_agent: bool,
    /// How long a callback waits for that agent to be ready before any agent may take it.
    pub callback_wait_s: u64,
    /// Redials of abandoned leads before 72 h reserve a ready agent first (Ofcom lets an
    /// abandoned number be called again early only when an agent is guaranteed).
    pub abandoned_redial_with_agent: bool,
}

/// How the number of lines follows the agents.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Pacing {
    /// One line per ready agent.
    Progressive,
    /// `lines_per_agent` lines per ready agent, rounded down.
    Ratio {
        /// At least 1.0.
        lines_per_agent: f64,
    },
}

/// A window of the day, `start` inclusive, `end` exclusive, in local time.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// First callable minute.
    pub start: NaiveTime,
    /// First minute no longer callable (after `start`).
    pub end: NaiveTime,
}

/// A window per weekday, Monday first; `None`: no calls that day.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WeekHours(pub [Option<Window>; 7]);

/// Rules for leads of one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RegionRule {
    /// The region it applies to (`US-FL`); `US-*` style prefixes are not accepted.
    pub region: String,
    /// Hours for every day that has hours in `[hours]`, replacing them; `None`: keep those.
    pub hours: Option<Window>,
    /// Attempts per number in any 24 h.
    pub max_calls_per_24h: Option<u32>,
}

/// Seconds before the next attempt, by the outcome of the last; `None`: no retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct RetryRules {
    /// Busy line.
    pub busy_s: Option<u64>,
    /// No answer.
    pub no_answer_s: Option<u64>,
    /// Network failure.
    pub failed_s: Option<u64>,
    /// Answered and not connected.
    pub abandoned_s: Option<u64>,
    /// Cut by a dialer restart.
    pub interrupted_s: Option<u64>,
}

/// One disposition code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Disposition {
    /// What the agent sends (`sale`).
    pub code: String,
    /// What it does to the lead.
    pub action: DispositionAction,
    /// For `retry`: seconds until the next attempt (default: the campaign's `no_answer_s`,
    /// else one hour).
    pub retry_s: Option<u64>,
}

/// What a disposition does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DispositionAction {
    /// The lead is done.
    Final,
    /// The lead is dialled again (counts against `max_attempts`).
    Retry,
    /// The number goes on the campaign's DNC list.
    Dnc,
    /// Dial again at the `callback_at` the agent gave.
    Callback,
}

impl CampaignDef {
    /// Parses and validates a definition; `file` names it in the errors.
    pub fn parse(file: &str, text: &str) -> Result<CampaignDef, Diagnostics> {
        let _ = (file, text);
        unimplemented!("filled in by the definition parser")
    }

    /// The disposition spelled `code`.
    pub fn disposition(&self, code: &str) -> Option<&Disposition> {
        self.dispositions.iter().find(|d| d.code == code)
    }

    /// The region rule for `region`.
    pub fn region(&self, region: Option<&str>) -> Option<&RegionRule> {
        let region = region?;
        self.regions.iter().find(|r| r.region == region)
    }
}
