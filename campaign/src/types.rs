//! Plain data shared by the engine, the store and the runtime: lead states, attempt
//! outcomes, what happens to a lead after an attempt.

use serde::{Deserialize, Serialize};

/// Where a lead is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeadState {
    /// Imported, never dialled.
    New,
    /// An attempt is under way (claimed; its INVITE may or may not have left).
    Dialing,
    /// Waits for its retry time.
    Retry,
    /// An agent asked to call back at a set time.
    Callback,
    /// Finished: reached, or a final disposition.
    Done,
    /// The number is on a do-not-call list.
    Dnc,
    /// `max_attempts` used up without a final result.
    Failed,
}

impl LeadState {
    /// The spelling in the store, exports and events.
    pub fn as_str(self) -> &'static str {
        match self {
            LeadState::New => "new",
            LeadState::Dialing => "dialing",
            LeadState::Retry => "retry",
            LeadState::Callback => "callback",
            LeadState::Done => "done",
            LeadState::Dnc => "dnc",
            LeadState::Failed => "failed",
        }
    }

    /// The state spelled `s`.
    pub fn parse(s: &str) -> Option<LeadState> {
        Some(match s {
            "new" => LeadState::New,
            "dialing" => LeadState::Dialing,
            "retry" => LeadState::Retry,
            "callback" => LeadState::Callback,
            "done" => LeadState::Done,
            "dnc" => LeadState::Dnc,
            "failed" => LeadState::Failed,
            _ => return None,
        })
    }

    /// Every state, in the order status tables show them.
    pub const ALL: [LeadState; 7] = [
        LeadState::New,
        LeadState::Dialing,
        LeadState::Retry,
        LeadState::Callback,
        LeadState::Done,
        LeadState::Dnc,
        LeadState::Failed,
    ];
}

/// How one attempt ended, in the classes the retry rules name (`[retry] busy_s` ...).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    /// Customer and agent talked.
    Bridged,
    /// The line was busy.
    Busy,
    /// Nobody answered within the ring timeout.
    NoAnswer,
    /// The call failed or was refused by the network.
    Failed,
    /// Answered, and the customer was not connected to an agent (hung up first, or the
    /// abandon message was played).
    Abandoned,
    /// The dialer stopped (crash, restart) with the attempt open.
    Interrupted,
    /// The number was found on a do-not-call list at claim time; nothing was dialled.
    Dnc,
}

impl AttemptOutcome {
    /// The spelling in the store, exports and events.
    pub fn as_str(self) -> &'static str {
        match self {
            AttemptOutcome::Bridged => "bridged",
            AttemptOutcome::Busy => "busy",
            AttemptOutcome::NoAnswer => "no_answer",
            AttemptOutcome::Failed => "failed",
            AttemptOutcome::Abandoned => "abandoned",
            AttemptOutcome::Interrupted => "interrupted",
            AttemptOutcome::Dnc => "dnc",
        }
    }

    /// The outcome spelled `s`.
    pub fn parse(s: &str) -> Option<AttemptOutcome> {
        Some(match s {
            "bridged" => AttemptOutcome::Bridged,
            "busy" => AttemptOutcome::Busy,
            "no_answer" => AttemptOutcome::NoAnswer,
            "failed" => AttemptOutcome::Failed,
            "abandoned" => AttemptOutcome::Abandoned,
            "interrupted" => AttemptOutcome::Interrupted,
            "dnc" => AttemptOutcome::Dnc,
            _ => return None,
        })
    }

    /// The class of a call engine outcome (its CDR spelling: `busy`, `agent_failed` ...).
    /// Agent-side failures after the customer answered count as abandoned: the customer was
    /// reached and not connected.
    pub fn from_call_outcome(outcome: &str, answered: bool) -> AttemptOutcome {
        match outcome {
            "bridged" => AttemptOutcome::Bridged,
            "busy" => AttemptOutcome::Busy,
            "no_answer" | "cancelled" => AttemptOutcome::NoAnswer,
            "abandoned" | "abandoned_no_agent" => AttemptOutcome::Abandoned,
            "interrupted" => AttemptOutcome::Interrupted,
            _ if answered => AttemptOutcome::Abandoned,
            _ => AttemptOutcome::Failed,
        }
    }
}

/// What becomes of a lead when an attempt ends (decided by [`crate::engine`]'s rules,
/// written by the store in the same transaction that closes the attempt).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum LeadNext {
    /// Finished.
    Done,
    /// Dial again, not before `at` (Unix seconds).
    Retry {
        /// Unix seconds.
        at: i64,
    },
    /// Dial at `at` (Unix seconds), to `agent` when set.
    Callback {
        /// Unix seconds.
        at: i64,
        /// The agent who asked for it, when the campaign sends callbacks to the same agent.
        agent: Option<String>,
    },
    /// Put on the campaign's first DNC list and never dialled again.
    Dnc,
    /// Attempts used up.
    Failed,
}

impl LeadNext {
    /// The lead state this leads to.
    pub fn state(&self) -> LeadState {
        match self {
            LeadNext::Done => LeadState::Done,
            LeadNext::Retry { .. } => LeadState::Retry,
            LeadNext::Callback { .. } => LeadState::Callback,
            LeadNext::Dnc => LeadState::Dnc,
            LeadNext::Failed => LeadState::Failed,
        }
    }

    /// When the lead may be dialled next (Unix seconds), for retry and callback.
    pub fn due(&self) -> Option<i64> {
        match self {
            LeadNext::Retry { at } | LeadNext::Callback { at, .. } => Some(*at),
            _ => None,
        }
    }
}

/// The calling-hours group of a lead: its time zones (several when its number spans a zone
/// boundary) and its region. Leads of one group open and close together, so the engine
/// works out which groups are callable and the store claims only from those.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct LeadGroup {
    /// IANA zone names joined by `,`, sorted (`America/Chicago,America/Denver`).
    pub zones: String,
    /// `US-FL` style region, when known.
    pub region: Option<String>,
}

/// A group open now, and the per-number cap its region sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenGroup {
    /// The group.
    pub group: LeadGroup,
    /// At most this many attempts per number in any 24 h (Florida 501.616).
    pub max_calls_per_24h: Option<u32>,
}

/// A lead as imported: normalised number, zones, region, extra columns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeadRow {
    /// 1-based line of the CSV file it came from.
    pub line: u64,
    /// The number, normalised by the trunk's rules (E.164 when the trunk says so).
    pub number: String,
    /// Its calling-hours group.
    pub group: LeadGroup,
    /// Any other columns, in file order (sent to the agent as `X-Lead-<name>`).
    pub fields: Vec<(String, String)>,
}

/// Why an imported row was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RejectReason {
    /// The number cannot be dialled (the trunk's rules refuse it).
    #[error("bad number: {0}")]
    BadNumber(String),
    /// The number is already in the campaign.
    #[error("duplicate number in the campaign")]
    Duplicate,
    /// The number is on this do-not-call list.
    #[error("on do-not-call list {0:?}")]
    Dnc(String),
    /// The `time_zone` column is not an IANA zone.
    #[error("unknown time zone {0:?}")]
    BadTimeZone(String),
    /// The row does not match the header (field count) or is not valid CSV.
    #[error("{0}")]
    Malformed(String),
}

/// A rejected row.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RejectedRow {
    /// 1-based line in the file.
    pub line: u64,
    /// The number as written, when the row had one.
    pub number: Option<String>,
    /// Why.
    pub reason: RejectReason,
}
