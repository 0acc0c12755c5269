//! The campaign definition file (`dialer campaign create FILE`): its schema, defaults and
//! validation, reported like `dialer config check` (file:line:column, key, expected what).
//!
//! ```toml
//! name = "spring"                 # required: [A-Za-z0-9_-], 1 to 64 characters
//! pool = "sales"                  # required: the agent pool
//! trunk = "carrier"               # default: the dialer's first trunk
//! caller_id = "+15550100"         # default: the trunk's
//! pacing = "progressive"          # or "ratio" with lines_per_agent >= 1.0, or "predictive"
//! max_lines = 50                  # default 50
//! ring_timeout_s = 25             # default 25, at least 15
//! time_zone = "America/New_York"  # for leads whose number and row give none; default "UTC"
//! max_attempts = 3                # default 3
//! dnc = ["global"]                # default none
//! holidays = ["2026-12-25"]       # no calls on these local dates
//! default_disposition = "done"    # one of the [[disposition]] codes
//! callback_to_agent = false
//! callback_wait_s = 300
//! abandoned_redial_with_agent = false
//! record = false                  # record every call into the dialer's [media] record_dir
//!
//! [hours]                         # the lead's local time; a day not listed has no calls
//! mon-fri = "09:00-21:00"         # day names, ranges in week order, or "daily"
//! sat = "10:00-18:00"
//!
//! [[region]]
//! match = "US-FL"
//! hours = "08:00-20:00"           # replaces the window of every day that has one
//! max_calls_per_24h = 3
//!
//! [retry]                         # seconds; an outcome not listed is not retried
//! busy_s = 600
//! no_answer_s = 3600
//! failed_s = 1800
//! abandoned_s = 259200            # at least 72 h unless abandoned_redial_with_agent
//! interrupted_s = 600
//!
//! [[disposition]]
//! code = "sale"
//! action = "final"                # final | retry | dnc | callback
//! machine = false                 # true: an answering machine (left out of abandon rates)
//! ```
//!
//! Every key is checked: an unknown key is an error, never ignored. The value problems of a
//! file are reported together, in file order; a TOML syntax or type error is reported alone,
//! since the rest of the file cannot be read with certainty after it.
//!
//! Calling hours are the operator's to set; the parser only insists that each window is a
//! real one (start before end, within one day). Without `[hours]` a campaign calls
//! 09:00-21:00 every day, inside the US TSR's 08:00-21:00 (16 CFR 310.4(c)); narrower rules
//! such as Florida's 08:00-20:00 (Fla. Stat. 501.616(6)(a)) go in `[[region]]`. A window is
//! `HH:MM-HH:MM`, start inclusive, end exclusive; it cannot cross midnight, and `24:00` is
//! not accepted (the latest end is `23:59`), so that a window always lies inside one local
//! date, with one weekday and one holiday answer.
//!
//! `pacing = "predictive"` dials ahead of the agents from a model of the traffic learned as
//! the campaign runs (see [`crate::pacing`]), within an abandon budget:
//!
//! ```toml
//! pacing = "predictive"
//! max_abandon_pct = 3.0           # default 3.0, at most 3.0; 0: never knowingly risk one
//! abandon_window = "30d"          # "30d" (US TSR, FCC), "24h" or "calendar_day" (Ofcom)
//! min_agents = 1                  # fewer agents logged in: progressive
//! max_lines_per_agent = 3.0       # default 3.0, at least 1.0
//! drop_group = "floor-1"          # campaigns naming one group share one abandon budget
//! ```
//!
//! These keys are refused with any other pacing, so that a file never carries a setting that
//! does nothing. The pool's `abandon_after_ms` must be at most 2000 for a predictive
//! campaign; the dialer checks it when the campaign is created, since the pool is in
//! `dialer.toml`.

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::Deserialize;
use toml::Spanned;
use trunk_profiles::{Diagnostic, Diagnostics};

/// Shortest ring timeout a campaign may set: the US TSR's abandoned-call safe harbor (16 CFR
/// 310.4(b)(4)(ii): 15 s or four rings) and Ofcom's persistent-misuse policy want at least
/// 15 s before an unanswered call is given up.
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
    /// Overrides by region, at most one per region.
    pub regions: Vec<RegionRule>,
    /// Dates (in the lead's local time) with no calls; sorted, each once.
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
    /// Record every call (stereo WAV, customer left, agent right) into the dialer's
    /// `[media] record_dir` as `<campaign>-<lead>-<attempt>.wav`.
    pub record: bool,
}

/// How the number of lines follows the agents.
#[derive(Clone, Debug, PartialEq)]
pub enum Pacing {
    /// One line per ready agent.
    Progressive,
    /// `lines_per_agent` lines per ready agent, rounded down.
    Ratio {
        /// At least 1.0.
        lines_per_agent: f64,
    },
    /// Lines from the traffic model, the agents and the abandon budget.
    Predictive(PredictiveDef),
}

/// The settings of predictive pacing.
#[derive(Clone, Debug, PartialEq)]
pub struct PredictiveDef {
    /// Abandoned over live-answered calls, in percent, over `abandon_window` (0 to 3.0).
    pub max_abandon_pct: f64,
    /// Over what the abandon rate is counted.
    pub abandon_window: AbandonWindow,
    /// Fewer agents logged in than this: progressive.
    pub min_agents: u32,
    /// Never more lines than this many per logged-in agent.
    pub max_lines_per_agent: f64,
    /// The drop-rate group: the campaigns naming it share one abandon budget, each paced so
    /// that the group's abandoned over its live answers stays under the cap.
    pub drop_group: Option<String>,
}

impl Default for PredictiveDef {
    fn default() -> Self {
        PredictiveDef {
            max_abandon_pct: MAX_ABANDON_PCT,
            abandon_window: AbandonWindow::Days30,
            min_agents: 1,
            max_lines_per_agent: 3.0,
            drop_group: None,
        }
    }
}

/// The span an abandon rate is counted over.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AbandonWindow {
    /// The last 30 days (US TSR 16 CFR 310.4(b)(4)(i), FCC 47 CFR 64.1200(a)(7)(i)).
    Days30,
    /// The last 24 hours (Ofcom).
    Hours24,
    /// Since midnight in the campaign's `time_zone` (Ofcom, counted per day).
    CalendarDay,
}

impl AbandonWindow {
    /// The spelling in the definition and in status.
    pub fn as_str(self) -> &'static str {
        match self {
            AbandonWindow::Days30 => "30d",
            AbandonWindow::Hours24 => "24h",
            AbandonWindow::CalendarDay => "calendar_day",
        }
    }
}

/// The legal cap on abandoned calls, in percent of live-answered calls (US TSR, FCC,
/// Ofcom).
pub const MAX_ABANDON_PCT: f64 = 3.0;
/// Longest wait of an answered call for an agent before it is abandoned with the message:
/// the 2-second rule (16 CFR 310.4(b)(4)(i), Ofcom).
pub const PREDICTIVE_MAX_ABANDON_AFTER_MS: u32 = 2000;

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
    /// The agent found an answering machine: the abandon rate leaves it out by Ofcom's
    /// adjusted-drops formula ([`crate::pacing::ledger`]).
    pub machine: bool,
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

/// Calling hours when a definition has no `[hours]` table: 09:00-21:00 every day, inside the
/// US TSR window (16 CFR 310.4(c): not before 08:00 nor after 21:00 at the called person's
/// location).
pub const DEFAULT_HOURS: Window = Window {
    start: hm(9, 0),
    end: hm(21, 0),
};

/// Longest campaign or disposition name.
const MAX_NAME_LEN: usize = 64;

/// `HH:MM` as a constant.
const fn hm(hour: u32, minute: u32) -> NaiveTime {
    match NaiveTime::from_hms_opt(hour, minute, 0) {
        Some(t) => t,
        None => panic!("hour and minute out of range"),
    }
}

/// The day names of `[hours]`, Monday first (the index of [`WeekHours`]).
const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `[A-Za-z0-9_-]`, 1 to 64 characters: a campaign name or disposition code.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_NAME_LEN
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// RFC 3261 §25.1 `user`: unreserved / escaped / user-unreserved characters.
fn is_sip_user(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.!~*'()&=+$,;?/%".contains(c))
}

/// An ISO 3166-2 style subdivision code as region rules and lead lists spell it: two
/// capital letters, `-`, 1 to 3 capital letters or digits (`US-FL`, `CA-ON`, `GB-ENG`).
pub fn is_region_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() >= 4
        && b.len() <= 6
        && b[0].is_ascii_uppercase()
        && b[1].is_ascii_uppercase()
        && b[2] == b'-'
        && b[3..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// Parses `HH:MM-HH:MM` (hours may have one digit; spaces around `-` are allowed).
pub fn parse_window(s: &str) -> Result<Window, String> {
    const FORM: &str = "expected \"HH:MM-HH:MM\" such as \"09:00-21:00\"";
    let time = |t: &str| -> Result<NaiveTime, String> {
        let t = t.trim();
        let bad = || format!("{t:?} is not a time of day, {FORM}");
        let (h, m) = t.split_once(':').ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(h) || h.len() > 2 || !digits(m) || m.len() != 2 {
            return Err(bad());
        }
        let (h, m): (u32, u32) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        if h == 24 && m == 0 {
            return Err(
                "24:00 is not accepted (a window lies within one local date), \
                        expected an end of at most 23:59"
                    .to_string(),
            );
        }
        NaiveTime::from_hms_opt(h, m, 0).ok_or_else(bad)
    };
    let (start, end) = s.split_once('-').ok_or_else(|| format!("{s:?}: {FORM}"))?;
    let (start, end) = (time(start)?, time(end)?);
    if start >= end {
        return Err(format!(
            "start {} is not before end {} (a window cannot cross midnight), {FORM}",
            start.format("%H:%M"),
            end.format("%H:%M")
        ));
    }
    Ok(Window { start, end })
}

/// The weekdays (Monday = 0) a `[hours]` key names: `mon`, `mon-fri`, `daily`.
fn parse_days(key: &str) -> Result<Range<usize>, String> {
    const FORM: &str = "expected a day (mon, tue, wed, thu, fri, sat, sun), a range of days in \
                        week order (mon-fri, sat-sun) or \"daily\"";
    let day = |d: &str| {
        DAY_NAMES
            .iter()
            .position(|n| n.eq_ignore_ascii_case(d.trim()))
            .ok_or_else(|| format!("unknown day {:?}, {FORM}", d.trim()))
    };
    if key.eq_ignore_ascii_case("daily") {
        return Ok(0..7);
    }
    match key.split_once('-') {
        None => day(key).map(|d| d..d + 1),
        Some((first, last)) => {
            let (first, last) = (day(first)?, day(last)?);
            if first >= last {
                return Err(format!(
                    "{key:?} does not run forward from Monday to Sunday, {FORM}"
                ));
            }
            Ok(first..last + 1)
        }
    }
}

impl WeekHours {
    /// The window of `day`; `None`: no calls that day.
    pub fn on(&self, day: chrono::Weekday) -> Option<Window> {
        self.0[day.num_days_from_monday() as usize]
    }
}

impl Default for WeekHours {
    /// [`DEFAULT_HOURS`] every day.
    fn default() -> Self {
        WeekHours([Some(DEFAULT_HOURS); 7])
    }
}

impl Window {
    /// Is `time` inside (start inclusive, end exclusive)?
    pub fn contains(&self, time: NaiveTime) -> bool {
        self.start <= time && time < self.end
    }
}

impl CampaignDef {
    /// Parses and validates a definition; `file` names it in the errors.
    ///
    /// Every problem found is reported, sorted by line and column; a TOML syntax or type
    /// error stops the reading at the first one (the rest of the file cannot be trusted).
    pub fn parse(file: &str, text: &str) -> Result<CampaignDef, Diagnostics> {
        let mut check = Check {
            file,
            text,
            errors: Vec::new(),
        };
        let raw: RawDef = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                check.errors.push(serde_error(file, text, &e));
                return Err(check.into_diagnostics());
            }
        };
        let def = check.def(raw);
        if check.errors.is_empty() {
            Ok(def)
        } else {
            Err(check.into_diagnostics())
        }
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

type S<T> = Spanned<T>;

/// The file as serde reads it: keys optional so that a missing one is reported with the
/// rest, values with their spans so that a semantic error points at them.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDef {
    name: Option<S<String>>,
    pool: Option<S<String>>,
    trunk: Option<S<String>>,
    caller_id: Option<S<String>>,
    pacing: Option<S<String>>,
    lines_per_agent: Option<S<f64>>,
    max_abandon_pct: Option<S<f64>>,
    abandon_window: Option<S<String>>,
    min_agents: Option<S<i64>>,
    max_lines_per_agent: Option<S<f64>>,
    drop_group: Option<S<String>>,
    max_lines: Option<S<i64>>,
    ring_timeout_s: Option<S<i64>>,
    time_zone: Option<S<String>>,
    max_attempts: Option<S<i64>>,
    #[serde(default)]
    dnc: Vec<S<String>>,
    #[serde(default)]
    holidays: Vec<S<toml::Value>>,
    default_disposition: Option<S<String>>,
    callback_to_agent: Option<bool>,
    callback_wait_s: Option<S<i64>>,
    abandoned_redial_with_agent: Option<bool>,
    record: Option<bool>,
    hours: Option<S<BTreeMap<S<String>, S<String>>>>,
    #[serde(default)]
    region: Vec<S<RawRegion>>,
    #[serde(default)]
    retry: RawRetry,
    #[serde(default)]
    disposition: Vec<S<RawDisposition>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRegion {
    #[serde(rename = "match")]
    region: Option<S<String>>,
    hours: Option<S<String>>,
    max_calls_per_24h: Option<S<i64>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    busy_s: Option<S<i64>>,
    no_answer_s: Option<S<i64>>,
    failed_s: Option<S<i64>>,
    abandoned_s: Option<S<i64>>,
    interrupted_s: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDisposition {
    code: Option<S<String>>,
    action: Option<S<String>>,
    retry_s: Option<S<i64>>,
    machine: Option<bool>,
}

/// The problems found so far in one file.
struct Check<'a> {
    file: &'a str,
    text: &'a str,
    errors: Vec<Diagnostic>,
}

/// A lower bound and the rule that sets it, for messages such as
/// `10 is below 15 s (US TSR 16 CFR 310.4(b)(4)(ii), Ofcom), expected at least 15`.
struct Min {
    value: i64,
    /// ` s (rule)` or empty.
    why: &'static str,
}

/// The integer types of the definition, with their largest value for messages.
trait Bounded {
    const MAX: u64;
}

impl Bounded for u32 {
    const MAX: u64 = u32::MAX as u64;
}

impl Bounded for u64 {
    const MAX: u64 = i64::MAX as u64;
}

const AT_LEAST_ONE: Min = Min { value: 1, why: "" };
const NOT_NEGATIVE: Min = Min { value: 0, why: "" };

impl Check<'_> {
    fn err(&mut self, offset: usize, key: impl Into<String>, message: impl Into<String>) {
        let d = Diagnostic::at(self.file, self.text, offset, key, message);
        self.errors.push(d);
    }

    fn into_diagnostics(mut self) -> Diagnostics {
        self.errors.sort_by_key(|d| (d.line, d.column));
        Diagnostics::from_vec(self.errors).expect("called with at least one error")
    }

    /// 1-based line of a byte offset, for messages that point at another place.
    fn line_of(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// An integer at least `min`, that fits `T`; `None` (and an error) otherwise.
    fn int<T: TryFrom<i64> + Bounded>(&mut self, v: &S<i64>, key: &str, min: Min) -> Option<T> {
        let n = *v.get_ref();
        if n < min.value {
            let msg = format!(
                "{n} is below {}{}, expected at least {}",
                min.value, min.why, min.value
            );
            self.err(v.span().start, key, msg);
            return None;
        }
        match T::try_from(n) {
            Ok(x) => Some(x),
            Err(_) => {
                let msg = format!("{n} is too large, expected at most {}", T::MAX);
                self.err(v.span().start, key, msg);
                None
            }
        }
    }

    /// An optional integer at least `min`, else `default`.
    fn int_or<T: TryFrom<i64> + Bounded>(
        &mut self,
        v: &Option<S<i64>>,
        key: &str,
        min: Min,
        default: T,
    ) -> T {
        v.as_ref()
            .and_then(|v| self.int(v, key, min))
            .unwrap_or(default)
    }

    /// A non-empty string with no control characters.
    fn text(&mut self, v: &S<String>, key: &str) -> String {
        let s = v.get_ref();
        if s.trim().is_empty() {
            self.err(v.span().start, key, "empty, expected a name");
        } else if s.chars().any(char::is_control) {
            self.err(v.span().start, key, "contains a control character");
        }
        s.clone()
    }

    fn name(&mut self, v: &S<String>, key: &str) -> String {
        let s = v.get_ref();
        if !is_name(s) {
            let msg =
                format!("{s:?} is not a name, expected 1 to {MAX_NAME_LEN} of A-Z a-z 0-9 _ -");
            self.err(v.span().start, key, msg);
        }
        s.clone()
    }

    fn window(&mut self, v: &S<String>, key: &str) -> Option<Window> {
        match parse_window(v.get_ref()) {
            Ok(w) => Some(w),
            Err(msg) => {
                self.err(v.span().start, key, msg);
                None
            }
        }
    }

    fn def(&mut self, raw: RawDef) -> CampaignDef {
        let name = match &raw.name {
            Some(v) => self.name(v, "name"),
            None => {
                self.err(0, "name", "missing required key");
                String::new()
            }
        };
        let pool = match &raw.pool {
            Some(v) => self.text(v, "pool"),
            None => {
                self.err(0, "pool", "missing required key");
                String::new()
            }
        };
        let trunk = raw.trunk.as_ref().map(|v| self.text(v, "trunk"));
        let caller_id = raw.caller_id.as_ref().map(|v| {
            if !is_sip_user(v.get_ref()) {
                let msg = format!(
                    "{:?} is not a SIP user part (RFC 3261 §25.1), expected digits such as \
                     \"+15550100\"",
                    v.get_ref()
                );
                self.err(v.span().start, "caller_id", msg);
            }
            v.get_ref().clone()
        });
        let pacing = self.pacing(&raw);
        let max_lines = self.int_or(&raw.max_lines, "max_lines", AT_LEAST_ONE, 50);
        let ring_timeout_s = self.int_or(
            &raw.ring_timeout_s,
            "ring_timeout_s",
            Min {
                value: MIN_RING_TIMEOUT_S.into(),
                why: " s (US TSR 16 CFR 310.4(b)(4)(ii), Ofcom)",
            },
            25,
        );
        let time_zone = match &raw.time_zone {
            None => Tz::UTC,
            Some(v) => v.get_ref().parse().unwrap_or_else(|_| {
                let msg = format!(
                    "unknown time zone {:?}, expected an IANA name such as \
                     \"America/New_York\" or \"Europe/London\"",
                    v.get_ref()
                );
                self.err(v.span().start, "time_zone", msg);
                Tz::UTC
            }),
        };
        let max_attempts = self.int_or(&raw.max_attempts, "max_attempts", AT_LEAST_ONE, 3);
        let dnc = self.dnc(&raw.dnc);
        let holidays = self.holidays(&raw.holidays);
        let hours = self.hours(&raw.hours);
        let regions = self.regions(&raw.region);
        let abandoned_redial_with_agent = raw.abandoned_redial_with_agent.unwrap_or(false);
        let retry = self.retry(&raw.retry, abandoned_redial_with_agent);
        let dispositions = self.dispositions(&raw.disposition, !dnc.is_empty());
        let default_disposition = raw.default_disposition.as_ref().map(|v| {
            let code = v.get_ref();
            match dispositions.iter().find(|d| &d.code == code) {
                None => {
                    let codes: Vec<String> = dispositions
                        .iter()
                        .map(|d| format!("{:?}", d.code))
                        .collect();
                    let expected = if codes.is_empty() {
                        "there are no [[disposition]] codes".to_string()
                    } else {
                        format!(
                            "expected one of the [[disposition]] codes: {}",
                            codes.join(", ")
                        )
                    };
                    let msg = format!("unknown disposition {code:?}, {expected}");
                    self.err(v.span().start, "default_disposition", msg);
                }
                Some(d) if d.action == DispositionAction::Callback => {
                    let msg = format!(
                        "{code:?} is a callback, which needs the time an agent gives, expected \
                         a final, retry or dnc disposition"
                    );
                    self.err(v.span().start, "default_disposition", msg);
                }
                Some(_) => {}
            }
            code.clone()
        });
        let callback_wait_s =
            self.int_or(&raw.callback_wait_s, "callback_wait_s", NOT_NEGATIVE, 300);
        CampaignDef {
            name,
            pool,
            trunk,
            caller_id,
            pacing,
            max_lines,
            ring_timeout_s,
            time_zone,
            max_attempts,
            dnc,
            hours,
            regions,
            holidays,
            retry,
            dispositions,
            default_disposition,
            callback_to_agent: raw.callback_to_agent.unwrap_or(false),
            callback_wait_s,
            abandoned_redial_with_agent,
            record: raw.record.unwrap_or(false),
        }
    }

    fn pacing(&mut self, raw: &RawDef) -> Pacing {
        const EXPECTED: &str = "expected \"progressive\", \"ratio\" or \"predictive\"";
        let mode = match &raw.pacing {
            None => "progressive".to_string(),
            Some(v) => v.get_ref().to_ascii_lowercase(),
        };
        let (ratio, predictive) = match mode.as_str() {
            "progressive" => (false, false),
            "ratio" => (true, false),
            "predictive" => (false, true),
            other => {
                let at = raw.pacing.as_ref().map_or(0, |v| v.span().start);
                self.err(
                    at,
                    "pacing",
                    format!("unknown pacing {other:?}, {EXPECTED}"),
                );
                return Pacing::Progressive;
            }
        };
        let predictive_def = self.predictive(raw, predictive);
        match (&raw.lines_per_agent, ratio) {
            (None, false) => predictive_def.map_or(Pacing::Progressive, Pacing::Predictive),
            (Some(v), false) => {
                let msg = format!(
                    "only used with pacing = \"ratio\" (this campaign's pacing is {mode}), \
                     expected no lines_per_agent or pacing = \"ratio\""
                );
                self.err(v.span().start, "lines_per_agent", msg);
                Pacing::Progressive
            }
            (None, true) => {
                let at = raw.pacing.as_ref().map_or(0, |v| v.span().start);
                let msg = "missing: pacing = \"ratio\" needs lines_per_agent, expected a number \
                           of at least 1.0";
                self.err(at, "lines_per_agent", msg);
                Pacing::Progressive
            }
            (Some(v), true) => {
                let n = *v.get_ref();
                if !n.is_finite() || n < 1.0 {
                    let msg = format!("{n} is below 1.0, expected a number of at least 1.0");
                    self.err(v.span().start, "lines_per_agent", msg);
                    return Pacing::Progressive;
                }
                Pacing::Ratio { lines_per_agent: n }
            }
        }
    }

    /// The predictive keys: checked when `predictive`, refused otherwise.
    fn predictive(&mut self, raw: &RawDef, predictive: bool) -> Option<PredictiveDef> {
        if !predictive {
            let keys = [
                (
                    "max_abandon_pct",
                    raw.max_abandon_pct.as_ref().map(|v| v.span().start),
                ),
                (
                    "abandon_window",
                    raw.abandon_window.as_ref().map(|v| v.span().start),
                ),
                (
                    "min_agents",
                    raw.min_agents.as_ref().map(|v| v.span().start),
                ),
                (
                    "max_lines_per_agent",
                    raw.max_lines_per_agent.as_ref().map(|v| v.span().start),
                ),
                (
                    "drop_group",
                    raw.drop_group.as_ref().map(|v| v.span().start),
                ),
            ];
            for (key, at) in keys {
                if let Some(at) = at {
                    let msg = "only used with pacing = \"predictive\", expected no such key \
                               or pacing = \"predictive\"";
                    self.err(at, key, msg);
                }
            }
            return None;
        }
        let mut def = PredictiveDef::default();
        if let Some(v) = &raw.max_abandon_pct {
            let n = *v.get_ref();
            if !n.is_finite() || !(0.0..=MAX_ABANDON_PCT).contains(&n) {
                let msg = format!(
                    "{n} is outside 0 to {MAX_ABANDON_PCT} (the legal cap: US TSR 16 CFR \
                     310.4(b)(4)(i), FCC 47 CFR 64.1200(a)(7)(i), Ofcom), expected a percentage \
                     from 0 to {MAX_ABANDON_PCT}"
                );
                self.err(v.span().start, "max_abandon_pct", msg);
            } else {
                def.max_abandon_pct = n;
            }
        }
        if let Some(v) = &raw.abandon_window {
            def.abandon_window = match v.get_ref().as_str() {
                "30d" => AbandonWindow::Days30,
                "24h" => AbandonWindow::Hours24,
                "calendar_day" => AbandonWindow::CalendarDay,
                other => {
                    let msg = format!(
                        "unknown window {other:?}, expected \"30d\" (US TSR, FCC), \"24h\" or \
                         \"calendar_day\" (Ofcom)"
                    );
                    self.err(v.span().start, "abandon_window", msg);
                    AbandonWindow::Days30
                }
            };
        }
        def.min_agents = self.int_or(&raw.min_agents, "min_agents", AT_LEAST_ONE, 1);
        if let Some(v) = &raw.max_lines_per_agent {
            let n = *v.get_ref();
            if !n.is_finite() || n < 1.0 {
                let msg = format!("{n} is below 1.0, expected a number of at least 1.0");
                self.err(v.span().start, "max_lines_per_agent", msg);
            } else {
                def.max_lines_per_agent = n;
            }
        }
        def.drop_group = raw.drop_group.as_ref().map(|v| self.text(v, "drop_group"));
        Some(def)
    }

    fn dnc(&mut self, raw: &[S<String>]) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            let key = format!("dnc[{i}]");
            let list = self.text(v, &key);
            if out.contains(&list) {
                self.err(v.span().start, key, format!("{list:?} is listed twice"));
            }
            out.push(list);
        }
        out
    }

    fn holidays(&mut self, raw: &[S<toml::Value>]) -> Vec<NaiveDate> {
        let mut out = Vec::with_capacity(raw.len());
        for (i, v) in raw.iter().enumerate() {
            let date = match v.get_ref() {
                toml::Value::String(s) => parse_date(s),
                toml::Value::Datetime(d) if d.time.is_none() && d.offset.is_none() => {
                    d.date.and_then(|d| {
                        NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
                    })
                }
                _ => None,
            };
            match date {
                Some(d) => out.push(d),
                None => {
                    let msg = format!("{} is not a date, expected \"YYYY-MM-DD\"", v.get_ref());
                    self.err(v.span().start, format!("holidays[{i}]"), msg);
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    fn hours(&mut self, raw: &Option<S<BTreeMap<S<String>, S<String>>>>) -> WeekHours {
        let Some(table) = raw else {
            return WeekHours::default();
        };
        let mut entries: Vec<_> = table.get_ref().iter().collect();
        entries.sort_by_key(|(k, _)| k.span().start);
        let mut week = WeekHours([None; 7]);
        // The key that gave each day its hours, to name it when a day comes twice.
        let mut given_by: [Option<&S<String>>; 7] = [None; 7];
        for (k, v) in entries {
            let key = format!("hours.{}", k.get_ref());
            let days = match parse_days(k.get_ref()) {
                Ok(days) => days,
                Err(msg) => {
                    self.err(k.span().start, key, msg);
                    continue;
                }
            };
            if let Some((day, first)) = days
                .clone()
                .find_map(|d| given_by[d].map(|first| (d, first)))
            {
                let msg = format!(
                    "{} already has hours from {:?} at line {}, expected each day once",
                    DAY_NAMES[day],
                    first.get_ref(),
                    self.line_of(first.span().start)
                );
                self.err(k.span().start, key, msg);
                continue;
            }
            let window = self.window(v, &key);
            for d in days {
                given_by[d] = Some(k);
                week.0[d] = window;
            }
        }
        if table.get_ref().is_empty() {
            let msg = "no day has hours, so the campaign would never call; expected at least \
                       one day such as mon-fri = \"09:00-21:00\", or no [hours] table for \
                       09:00-21:00 every day";
            self.err(table.span().start, "hours", msg);
        }
        week
    }

    fn regions(&mut self, raw: &[S<RawRegion>]) -> Vec<RegionRule> {
        let mut out: Vec<RegionRule> = Vec::with_capacity(raw.len());
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, r) in raw.iter().enumerate() {
            let at = |k: &str| format!("region[{i}].{k}");
            let rule = r.get_ref();
            let region = match &rule.region {
                None => {
                    self.err(r.span().start, at("match"), "missing required key");
                    continue;
                }
                Some(v) => {
                    let code = v.get_ref().to_ascii_uppercase();
                    if !is_region_code(&code) {
                        let msg = format!(
                            "{:?} is not a region code, expected an ISO 3166-2 code such as \
                             \"US-FL\" (one region per rule, no wildcards)",
                            v.get_ref()
                        );
                        self.err(v.span().start, at("match"), msg);
                    } else if let Some((_, first)) = seen.iter().find(|(c, _)| *c == code) {
                        let msg = format!(
                            "{code} already has a rule at line {}, expected each region once",
                            self.line_of(*first)
                        );
                        self.err(v.span().start, at("match"), msg);
                    }
                    seen.push((code.clone(), v.span().start));
                    code
                }
            };
            let hours = rule
                .hours
                .as_ref()
                .and_then(|v| self.window(v, &at("hours")));
            let max_calls_per_24h = rule
                .max_calls_per_24h
                .as_ref()
                .and_then(|v| self.int(v, &at("max_calls_per_24h"), AT_LEAST_ONE));
            out.push(RegionRule {
                region,
                hours,
                max_calls_per_24h,
            });
        }
        out
    }

    fn retry(&mut self, raw: &RawRetry, abandoned_redial_with_agent: bool) -> RetryRules {
        let mut secs = |v: &Option<S<i64>>, key: &str| {
            v.as_ref()
                .and_then(|v| self.int::<u64>(v, &format!("retry.{key}"), NOT_NEGATIVE))
        };
        let rules = RetryRules {
            busy_s: secs(&raw.busy_s, "busy_s"),
            no_answer_s: secs(&raw.no_answer_s, "no_answer_s"),
            failed_s: secs(&raw.failed_s, "failed_s"),
            abandoned_s: secs(&raw.abandoned_s, "abandoned_s"),
            interrupted_s: secs(&raw.interrupted_s, "interrupted_s"),
        };
        if let (Some(v), Some(s)) = (&raw.abandoned_s, rules.abandoned_s) {
            if s < ABANDONED_REDIAL_MIN_S && !abandoned_redial_with_agent {
                let msg = format!(
                    "{s} is below {ABANDONED_REDIAL_MIN_S} s (Ofcom persistent misuse policy: \
                     an abandoned call is not repeated within 72 h unless a live agent is \
                     guaranteed), expected at least {ABANDONED_REDIAL_MIN_S}, or \
                     abandoned_redial_with_agent = true"
                );
                self.err(v.span().start, "retry.abandoned_s", msg);
            }
        }
        rules
    }

    fn dispositions(&mut self, raw: &[S<RawDisposition>], has_dnc: bool) -> Vec<Disposition> {
        const ACTIONS: &str = "expected \"final\", \"retry\", \"dnc\" or \"callback\"";
        let mut out: Vec<Disposition> = Vec::with_capacity(raw.len());
        let mut seen: Vec<(String, usize)> = Vec::new();
        for (i, d) in raw.iter().enumerate() {
            let at = |k: &str| format!("disposition[{i}].{k}");
            let rd = d.get_ref();
            let code = match &rd.code {
                None => {
                    self.err(d.span().start, at("code"), "missing required key");
                    continue;
                }
                Some(v) => {
                    let code = self.name(v, &at("code"));
                    if let Some((_, first)) = seen.iter().find(|(c, _)| *c == code) {
                        let msg = format!(
                            "{code:?} is already a disposition at line {}, expected each code once",
                            self.line_of(*first)
                        );
                        self.err(v.span().start, at("code"), msg);
                    }
                    seen.push((code.clone(), v.span().start));
                    code
                }
            };
            let action = match &rd.action {
                None => {
                    self.err(
                        d.span().start,
                        at("action"),
                        format!("missing required key, {ACTIONS}"),
                    );
                    continue;
                }
                Some(v) => match v.get_ref().to_ascii_lowercase().as_str() {
                    "final" => DispositionAction::Final,
                    "retry" => DispositionAction::Retry,
                    "callback" => DispositionAction::Callback,
                    "dnc" => {
                        if !has_dnc {
                            let msg = "a dnc disposition adds the number to the campaign's \
                                       first DNC list, and dnc lists none; expected dnc = \
                                       [\"list\"] at the top of the file";
                            self.err(v.span().start, at("action"), msg);
                        }
                        DispositionAction::Dnc
                    }
                    other => {
                        let msg = format!("unknown action {other:?}, {ACTIONS}");
                        self.err(v.span().start, at("action"), msg);
                        continue;
                    }
                },
            };
            let retry_s = rd.retry_s.as_ref().and_then(|v| {
                if action != DispositionAction::Retry {
                    let msg = "only used with action = \"retry\", expected no retry_s here";
                    self.err(v.span().start, at("retry_s"), msg);
                    return None;
                }
                self.int(v, &at("retry_s"), NOT_NEGATIVE)
            });
            out.push(Disposition {
                code,
                action,
                retry_s,
                machine: rd.machine.unwrap_or(false),
            });
        }
        out
    }
}

/// `YYYY-MM-DD`, strictly (four-digit year, two-digit month and day).
fn parse_date(s: &str) -> Option<NaiveDate> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()
}

/// A TOML syntax or type error, located, with the key path it is under.
fn serde_error(file: &str, text: &str, e: &toml::de::Error) -> Diagnostic {
    let offset = e.span().map_or(0, |s| s.start);
    let key = trunk_profiles::toml_key_path(text, offset);
    let mut message = e.message().trim().to_string();
    if let Some(rest) = message.strip_prefix("unknown field") {
        message = format!("unknown key{rest}");
    }
    Diagnostic::at(file, text, offset, key, message)
}
