//! The call engine's interface as plain data: what to originate ([`OriginateSpec`]), how a
//! call ended ([`CallOutcome`]), and why an originate was refused ([`OriginateError`]). A
//! campaign drives the engine with these from sans-IO code; the HTTP API maps onto them.

use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Longest `tag` a caller may attach to a call (a campaign puts its lead and attempt there).
pub const MAX_TAG_LEN: usize = 128;
/// Most `agent_headers` on one call.
pub const MAX_AGENT_HEADERS: usize = 16;
/// Longest value of one agent header.
pub const MAX_AGENT_HEADER_LEN: usize = 256;

/// Who takes the customer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AgentChoice {
    /// This agent, named before the customer is dialled and reserved for the call at once.
    Extension(String),
    /// The best ready agent of this pool, chosen when the customer answers.
    Pool(String),
}

/// One call to place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginateSpec {
    /// The number as given; the trunk's number rules rewrite it.
    pub number: String,
    /// The trunk's name; the first trunk when `None`.
    pub trunk: Option<String>,
    /// The agent or pool.
    pub agent: AgentChoice,
    /// A WAV played to the customer while no agent is connected; the default when `None`.
    pub ringback: Option<PathBuf>,
    /// Record both legs to this stereo WAV.
    pub record: Option<PathBuf>,
    /// Write the call's SIP and RTP to this pcap (the runtime does; the core only carries it).
    pub pcap: Option<PathBuf>,
    /// The caller's own id for the call, carried in every event and in the CDR.
    pub tag: Option<String>,
    /// `X-` headers added to the agent's INVITE (who is calling, the lead ...).
    pub agent_headers: Vec<(String, String)>,
    /// The caller id presented to the customer (From user part); the trunk's when `None`.
    pub caller_id: Option<String>,
    /// How long the customer's phone may ring; `[calls] originate_timeout_s` when `None`.
    pub ring_timeout: Option<std::time::Duration>,
}

impl OriginateSpec {
    /// A call to `number` for `agent`, everything else default.
    pub fn new(number: impl Into<String>, agent: AgentChoice) -> Self {
        OriginateSpec {
            number: number.into(),
            trunk: None,
            agent,
            ringback: None,
            record: None,
            pcap: None,
            tag: None,
            agent_headers: Vec::new(),
            caller_id: None,
            ring_timeout: None,
        }
    }

    /// Checks what does not depend on the engine's state: the tag's length and the agent
    /// headers' names and values.
    pub fn check(&self) -> Result<(), OriginateError> {
        if let Some(tag) = &self.tag {
            if tag.len() > MAX_TAG_LEN || tag.chars().any(char::is_control) {
                return Err(OriginateError::BadRequest(format!(
                    "tag: at most {MAX_TAG_LEN} characters, no control characters"
                )));
            }
        }
        if let Some(id) = &self.caller_id {
            // RFC 3261 §25.1 user part; a caller id is a number, so digits with an optional
            // leading `+` keep it both valid and honest.
            let digits = id.strip_prefix('+').unwrap_or(id);
            if digits.is_empty() || digits.len() > 32 || !digits.bytes().all(|b| b.is_ascii_digit())
            {
                return Err(OriginateError::BadRequest(
                    "caller_id: digits with an optional leading +, at most 32".into(),
                ));
            }
        }
        if self.agent_headers.len() > MAX_AGENT_HEADERS {
            return Err(OriginateError::BadRequest(format!(
                "agent_headers: at most {MAX_AGENT_HEADERS} headers"
            )));
        }
        for (name, value) in &self.agent_headers {
            // RFC 3261 §25.1: a header name is a token; only X- extension headers may be
            // added, so that nobody rewrites the dialog's own headers.
            let token = name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b));
            if !(token && name.len() > 2 && name[..2].eq_ignore_ascii_case("x-")) {
                return Err(OriginateError::BadRequest(format!(
                    "agent_headers: {name:?} is not an X- header name"
                )));
            }
            if value.len() > MAX_AGENT_HEADER_LEN || value.chars().any(char::is_control) {
                return Err(OriginateError::BadRequest(format!(
                    "agent_headers: the value of {name} must be at most \
                     {MAX_AGENT_HEADER_LEN} characters without control characters"
                )));
            }
        }
        Ok(())
    }
}

/// How a call ended, as CDRs and events spell it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CallOutcome {
    /// Customer and agent talked.
    Bridged,
    /// The customer's line was busy (486, 600).
    Busy,
    /// The customer did not answer (408, 480, or our originate timeout).
    NoAnswer,
    /// The customer's side refused (403, 603, or a challenge we cannot answer).
    Rejected,
    /// The call failed (any other final response, a timeout, an unusable answer).
    Failed,
    /// The customer's INVITE was cancelled (487 not asked for by us).
    Cancelled,
    /// The customer hung up after answering, before an agent was connected.
    Abandoned,
    /// The customer answered and no agent was connected within the pool's
    /// `abandon_after_ms`: the abandon message was played and the dialer hung up.
    AbandonedNoAgent,
    /// The agent's phone was busy.
    AgentBusy,
    /// The agent did not answer.
    AgentNoAnswer,
    /// The agent declined.
    AgentRejected,
    /// The agent leg failed otherwise (or the agent hung up before the bridge).
    AgentFailed,
    /// No RTP from a leg for `media_timeout_s`.
    MediaTimeout,
    /// Hung up through the API before the bridge.
    Hangup,
    /// A session timer ran out (RFC 4028 §10).
    SessionTimerExpired,
    /// A session refresh failed (RFC 4028 §10).
    SessionRefreshFailed,
    /// A re-INVITE was answered 408/481 or never (RFC 3261 §14.1).
    ReinviteFailed,
    /// The dialer stopped (a crash, kill -9) while the call was under way; written by the
    /// dialer when it starts again, from the call journal.
    Interrupted,
}

impl CallOutcome {
    /// The CDR spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Bridged => "bridged",
            CallOutcome::Busy => "busy",
            CallOutcome::NoAnswer => "no_answer",
            CallOutcome::Rejected => "rejected",
            CallOutcome::Failed => "failed",
            CallOutcome::Cancelled => "cancelled",
            CallOutcome::Abandoned => "abandoned",
            CallOutcome::AbandonedNoAgent => "abandoned_no_agent",
            CallOutcome::AgentBusy => "agent_busy",
            CallOutcome::AgentNoAnswer => "agent_no_answer",
            CallOutcome::AgentRejected => "agent_rejected",
            CallOutcome::AgentFailed => "agent_failed",
            CallOutcome::MediaTimeout => "media_timeout",
            CallOutcome::Hangup => "hangup",
            CallOutcome::SessionTimerExpired => "session_timer_expired",
            CallOutcome::SessionRefreshFailed => "session_refresh_failed",
            CallOutcome::ReinviteFailed => "reinvite_failed",
            CallOutcome::Interrupted => "interrupted",
        }
    }

    /// The agent-side outcome of a failure the customer side would call `self`.
    pub fn on_agent_leg(self) -> CallOutcome {
        match self {
            CallOutcome::Busy => CallOutcome::AgentBusy,
            CallOutcome::NoAnswer => CallOutcome::AgentNoAnswer,
            CallOutcome::Rejected => CallOutcome::AgentRejected,
            _ => CallOutcome::AgentFailed,
        }
    }
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for CallOutcome {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for CallOutcome {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Why the engine refused an originate or an agent request.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OriginateError {
    /// No such trunk.
    #[error("no trunk named {0}")]
    NoSuchTrunk(String),
    /// No such pool.
    #[error("no pool named {0}")]
    NoSuchPool(String),
    /// No agent of the pool is logged in: every answered customer would be abandoned.
    #[error("no agent of pool {0} is logged in")]
    PoolEmpty(String),
    /// No such agent, or it is not registered.
    #[error("agent {0} is not registered")]
    AgentUnavailable(String),
    /// The agent is on another call.
    #[error("agent {0} is busy")]
    AgentBusy(String),
    /// The number cannot be dialled (number rules).
    #[error("bad number: {0}")]
    BadNumber(String),
    /// The trunk's queue is full (`max_queue` calls already wait for `max_channels` or
    /// `max_cps`).
    #[error(
        "trunk {trunk} is at its limit and {queued} calls already wait (max_queue {max_queue})"
    )]
    QueueFull {
        /// Trunk name.
        trunk: String,
        /// Calls waiting.
        queued: usize,
        /// The trunk's `max_queue`.
        max_queue: u32,
    },
    /// A field of the request is unusable.
    #[error("{0}")]
    BadRequest(String),
    /// The engine is shutting down.
    #[error("the dialer is shutting down")]
    ShuttingDown,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_serialise_as_the_cdr_strings() {
        for o in [
            CallOutcome::AbandonedNoAgent,
            CallOutcome::AgentNoAnswer,
            CallOutcome::SessionRefreshFailed,
        ] {
            assert_eq!(serde_json::to_string(&o).unwrap(), format!("\"{o}\""));
        }
    }

    #[test]
    fn only_x_headers_with_clean_values_reach_the_agent() {
        let mut spec = OriginateSpec::new("1", AgentChoice::Pool("sales".into()));
        spec.agent_headers = vec![("X-Lead".into(), "42".into())];
        assert!(spec.check().is_ok());
        for (n, v) in [
            ("From", "x"),
            ("X-", "x"),
            ("X-A B", "x"),
            ("X-Lead", "a\r\nVia: evil"),
        ] {
            spec.agent_headers = vec![(n.into(), v.into())];
            assert!(spec.check().is_err(), "{n}: {v:?}");
        }
        spec.agent_headers.clear();
        spec.tag = Some("t".repeat(MAX_TAG_LEN + 1));
        assert!(spec.check().is_err());
    }
}
