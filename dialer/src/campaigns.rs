//! The campaign interface of a running dialer: requests to its campaign runner (the API's
//! `/campaigns`, `/dnc` and `/calls/{id}/disposition` routes and the `dialer campaign`,
//! `dialer dnc` and `dialer disposition` commands) with their replies, as plain data.

use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

/// What a request to the campaign runner answers: the reply as JSON, or why not.
pub type CampaignReply = Result<serde_json::Value, CampaignError>;

/// A request to the campaign runner.
#[derive(Debug)]
pub enum CampaignRequest {
    /// `POST /campaigns`: a definition file's text, named `file` in errors.
    Create {
        /// The TOML text.
        text: String,
        /// The name errors use (the file name the CLI read).
        file: String,
    },
    /// `GET /campaigns`.
    List,
    /// `GET /campaigns/{name}`.
    Status {
        /// Campaign.
        name: String,
    },
    /// `POST /campaigns/{name}/leads` with a CSV body.
    Import {
        /// Campaign.
        name: String,
        /// The CSV file.
        csv: Vec<u8>,
    },
    /// `POST /campaigns/{name}/start|pause|resume|stop`.
    Control {
        /// Campaign.
        name: String,
        /// `start`, `pause`, `resume` or `stop`.
        verb: String,
    },
    /// `GET /campaigns/{name}/leads[?state=S]`.
    Leads {
        /// Campaign.
        name: String,
        /// Only leads in this state.
        state: Option<String>,
    },
    /// `POST /calls/{id}/disposition`.
    Disposition {
        /// The call.
        call: String,
        /// The body.
        body: DispositionRequest,
    },
    /// `POST /dnc/{list}` (add), `POST /dnc/{list}/remove` with `{"numbers": [...]}`.
    Dnc {
        /// List name.
        list: String,
        /// Numbers.
        numbers: Vec<String>,
        /// Remove instead of add.
        remove: bool,
    },
    /// `GET /dnc/{list}`.
    DncList {
        /// List name.
        list: String,
    },
}

/// A request with its reply channel.
#[derive(Debug)]
pub struct CampaignMessage {
    /// What is asked.
    pub request: CampaignRequest,
    /// Where the answer goes.
    pub reply: oneshot::Sender<CampaignReply>,
}

/// `POST /calls/{id}/disposition`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DispositionRequest {
    /// One of the campaign's `[[disposition]]` codes.
    pub code: String,
    /// For a callback: when, RFC 3339 (`2026-12-08T15:00:00-05:00`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub callback_at: Option<String>,
    /// The agent's note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// `POST /dnc/{list}` and `POST /dnc/{list}/remove`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DncRequest {
    /// Numbers, normalised as written (use the form the campaigns dial: E.164).
    pub numbers: Vec<String>,
}

/// Agents of a campaign's pool, by state.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentCounts {
    /// Logged in (any state but logged out).
    pub logged_in: u32,
    /// Ready.
    pub ready: u32,
    /// Reserved, ringing or talking.
    pub talking: u32,
    /// In wrap-up.
    pub wrap_up: u32,
    /// Paused.
    pub paused: u32,
}

/// `GET /campaigns/{name}`, `dialer campaign status NAME --json`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct CampaignStatus {
    /// Name.
    pub name: String,
    /// `created`, `running`, `paused`, `stopped`, `finished`.
    pub state: String,
    /// The pool.
    pub pool: String,
    /// Pacing (`progressive`, `ratio 1.5`, `predictive 3% over 30d`).
    pub pacing: String,
    /// Leads by state (`new`, `dialing`, `retry`, `callback`, `done`, `dnc`, `failed`).
    pub leads: std::collections::BTreeMap<String, u64>,
    /// All leads.
    pub total: u64,
    /// Leads in a final state (done, dnc, failed).
    pub finished: u64,
    /// Attempts started.
    pub dialled: u64,
    /// Attempts answered.
    pub answered: u64,
    /// Attempts bridged to an agent.
    pub bridged: u64,
    /// Attempts abandoned (answered, not connected).
    pub abandoned: u64,
    /// Attempts answered by a person (every answer: the dialer detects no machines).
    pub live_answers: u64,
    /// Abandoned over live answers, in percent, over the campaign's life.
    pub abandon_rate: f64,
    /// Abandoned over live answers, in percent, over the abandon window (US TSR and FCC:
    /// at most 3 % over 30 days; Ofcom: per 24 h), as the pacing counts it, with Ofcom's
    /// adjusted drops when agents mark machines.
    pub window_abandon_rate: f64,
    /// The window `window_abandon_rate` is counted over (`30d`, `24h`, `calendar_day`).
    pub abandon_window: String,
    /// The drop-rate group whose abandon budget the campaign shares (`drop_group`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drop_group: Option<String>,
    /// The group's abandoned over its live answers, in percent, over the window: every
    /// member's calls counted, as the group's budget is paced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_window_abandon_rate: Option<f64>,
    /// Calls of the campaign in flight.
    pub lines_in_use: u32,
    /// Of those, waiting for an agent (not yet bridged).
    pub lines_waiting: u32,
    /// The pool's agents.
    pub agents: AgentCounts,
    /// Earliest retry or callback due (RFC 3339), when any.
    pub next_retry: Option<String>,
}

/// Why the campaign runner refused a request; serialised as the API's error body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", content = "detail", rename_all = "snake_case")]
pub enum CampaignError {
    /// No such campaign, call or list.
    #[error("{0}")]
    NotFound(String),
    /// The campaign's state forbids it, or the name is taken.
    #[error("{0}")]
    Conflict(String),
    /// A definition with problems: one `file:line:column: key: message` per entry.
    #[error("{}", .0.join("\n"))]
    InvalidDefinition(Vec<String>),
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// The store failed.
    #[error("{0}")]
    Store(String),
    /// The runner is not there (no store, or it stopped).
    #[error("{0}")]
    Unavailable(String),
}
