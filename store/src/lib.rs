//! The dialer's durable state: campaigns, leads, attempts, do-not-call lists and the call
//! journal (every CDR, and the calls open when the process stopped).
//!
//! [`Store`] is the interface the runtime uses; [`SqliteStore`] implements it on an embedded
//! SQLite file (WAL, versioned migrations). The lead claim is one atomic statement
//! (`UPDATE … RETURNING`) committed before the INVITE leaves, so a PostgreSQL store (`FOR
//! UPDATE SKIP LOCKED`) can serve several dialer nodes behind the same trait. The store is a
//! crate of its own so that the call engine never links SQLite and a second backend is a
//! second crate.
//!
//! # How the runtime drives it
//! The runtime's store thread owns one [`SqliteStore`] and applies the campaign engine's orders
//! in sequence: [`Store::lead_groups`] tells the engine which calling-hours groups exist, the
//! engine says which are open, [`Store::claim`] opens attempts for due leads of those groups,
//! the INVITE leaves only after `claim` returned, and [`Store::attempt_placed`],
//! [`Store::attempt_answered`] and [`Store::finish_attempt`] follow the call. After a crash,
//! [`Store::open_attempts`] lists the attempts that were under way, and the runtime finishes
//! each one as [`AttemptOutcome::Interrupted`].
//!
//! # What it does not do
//! It never reads a clock: every time (`now`, `ended`, `created`) is a parameter in Unix
//! seconds. It takes no decisions: retry times, caps and open groups come from the campaign
//! engine, and the store only applies them atomically. It does not check DNC lists at claim
//! time (the engine asks [`Store::dnc_find`] and finishes the attempt as
//! [`AttemptOutcome::Dnc`]); DNC lists are checked at import.
//!
//! # Errors and panics
//! Every failure is a [`StoreError`]: a bad name or id from the caller, a file from a newer
//! dialer, or the database's own error (I/O, a full disk, a value this dialer cannot read).
//! A failed method has changed nothing (each is one transaction). A panic is a bug.

use campaign::{AttemptOutcome, LeadGroup, LeadNext, LeadRow, LeadState, OpenGroup, RejectedRow};
use serde::Serialize;
use std::ops::ControlFlow;

mod schema;
mod sqlite;
pub use sqlite::SqliteStore;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database said no (I/O, corruption, a constraint).
    #[error("store: {0}")]
    Database(#[from] rusqlite::Error),
    /// No campaign has this name.
    #[error("no campaign named {0:?}")]
    NoSuchCampaign(String),
    /// A campaign with this name exists.
    #[error("a campaign named {0:?} exists")]
    CampaignExists(String),
    /// The database was written by a newer dialer.
    #[error("store schema version {found} is newer than this dialer's {supported}")]
    TooNew {
        /// In the file.
        found: i64,
        /// Known here.
        supported: i64,
    },
    /// No attempt has this id, or it is already closed.
    #[error("no open attempt {0}")]
    NoSuchAttempt(i64),
}

/// A stored campaign.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CampaignRecord {
    /// Row id.
    pub id: i64,
    /// Unique name.
    pub name: String,
    /// The definition file's text, as created (re-parsed at start).
    pub definition: String,
    /// `created`, `running`, `paused`, `stopped`, `finished`.
    pub state: String,
    /// Unix seconds.
    pub created: i64,
}

/// What an import did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImportReport {
    /// Leads added.
    pub imported: u64,
    /// Rows refused, with line and reason (bad number, duplicate, DNC ...).
    pub rejected: Vec<RejectedRow>,
}

/// A lead handed to the dialer by [`Store::claim`]: its attempt is already committed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClaimedLead {
    /// The lead.
    pub lead: i64,
    /// The attempt opened for it.
    pub attempt: i64,
    /// 1 for the first attempt.
    pub attempt_no: u32,
    /// The state it was claimed from: [`LeadState::New`], [`LeadState::Retry`] or
    /// [`LeadState::Callback`].
    pub state: LeadState,
    /// Normalised number.
    pub number: String,
    /// Extra columns.
    pub fields: Vec<(String, String)>,
    /// Outcome of the previous attempt, if any.
    pub last_outcome: Option<AttemptOutcome>,
    /// Set when the lead is a callback for this agent.
    pub callback_agent: Option<String>,
}

/// An answered attempt, as the abandon window counts it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct AnsweredAttempt {
    /// When it ended (Unix seconds).
    pub ended: i64,
    /// Bridged to an agent (else abandoned).
    pub bridged: bool,
    /// The agent's disposition code, when one was set.
    pub disposition: Option<String>,
}

/// An attempt that was open when the dialer last stopped.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenAttempt {
    /// The attempt.
    pub attempt: i64,
    /// Its lead.
    pub lead: i64,
    /// Its campaign's name.
    pub campaign: String,
    /// The lead's number.
    pub number: String,
    /// Attempts the lead has had, this one included.
    pub attempt_no: u32,
    /// Unix seconds when it was claimed.
    pub started: i64,
    /// The call engine's id, when the call was placed.
    pub call: Option<String>,
}

/// Counts for `campaign status`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CampaignCounts {
    /// Leads by state (every state present, zero included), in [`LeadState::ALL`] order.
    pub leads: Vec<(LeadState, u64)>,
    /// Attempts started.
    pub dialled: u64,
    /// Attempts whose customer answered.
    pub answered: u64,
    /// Attempts bridged to an agent.
    pub bridged: u64,
    /// Attempts abandoned (answered, not connected).
    pub abandoned: u64,
    /// Earliest retry or callback time pending (Unix seconds).
    pub next_retry: Option<i64>,
}

/// One attempt in an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AttemptRecord {
    /// Attempt id.
    pub attempt: i64,
    /// 1-based.
    pub attempt_no: u32,
    /// Unix seconds.
    pub started: i64,
    /// Unix seconds, when ended.
    pub ended: Option<i64>,
    /// The call engine's id.
    pub call: Option<String>,
    /// The class.
    pub outcome: Option<AttemptOutcome>,
    /// The call engine's outcome (`abandoned_no_agent` ...).
    pub call_outcome: Option<String>,
    /// The customer answered.
    pub answered: bool,
    /// Agent who talked.
    pub agent: Option<String>,
    /// Disposition code.
    pub disposition: Option<String>,
    /// Disposition note.
    pub note: Option<String>,
}

/// One lead in an export.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct LeadRecord {
    /// Lead id.
    pub lead: i64,
    /// Number.
    pub number: String,
    /// State.
    pub state: LeadState,
    /// Calling-hours group.
    pub group: LeadGroup,
    /// Extra columns.
    pub fields: Vec<(String, String)>,
    /// Next due time (Unix seconds): 0 for a new lead (due at once), the retry or callback
    /// time for a pending one, `None` once it is finished. A lead being dialled keeps the due
    /// time it was claimed at.
    pub next_at: Option<i64>,
    /// Outcome of its latest finished attempt.
    pub last_outcome: Option<AttemptOutcome>,
    /// The agent a callback goes to.
    pub callback_agent: Option<String>,
    /// Attempts, oldest first.
    pub attempts: Vec<AttemptRecord>,
}

/// How an attempt ended, written with the lead's next state in one transaction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AttemptEnd {
    /// Unix seconds.
    pub ended: i64,
    /// Class.
    pub outcome: AttemptOutcome,
    /// The call engine's outcome string.
    pub call_outcome: Option<String>,
    /// The customer answered.
    pub answered: bool,
    /// Agent who talked.
    pub agent: Option<String>,
    /// What becomes of the lead.
    pub next: LeadNext,
}

/// The dialer's durable state. Every method is one transaction.
pub trait Store {
    /// Adds a campaign (state `created`).
    fn create_campaign(
        &mut self,
        name: &str,
        definition: &str,
        now: i64,
    ) -> Result<CampaignRecord, StoreError>;
    /// Every campaign, by name.
    fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError>;
    /// One campaign.
    fn campaign(&self, name: &str) -> Result<CampaignRecord, StoreError>;
    /// Sets a campaign's state.
    fn set_campaign_state(&mut self, name: &str, state: &str) -> Result<(), StoreError>;
    /// Deletes a campaign with its leads and attempts (DNC lists and the journal stay).
    fn delete_campaign(&mut self, name: &str) -> Result<(), StoreError>;
    /// Adds leads; a number already in the campaign or on one of `dnc_lists` is rejected.
    fn import_leads(
        &mut self,
        campaign: &str,
        rows: &mut dyn Iterator<Item = Result<LeadRow, RejectedRow>>,
        dnc_lists: &[String],
    ) -> Result<ImportReport, StoreError>;
    /// The distinct calling-hours groups of the campaign's leads that may still be dialled.
    fn lead_groups(&self, campaign: &str) -> Result<Vec<LeadGroup>, StoreError>;
    /// Claims up to `count` leads due at `now` from the `open` groups, skipping numbers with an
    /// open attempt in any campaign and numbers with `max_calls_per_24h` attempts started in
    /// `(now - 86400, now]`; opens an attempt for each. Callbacks come first, then retries, each
    /// by due time, then new leads in import order; the result is in that order. One atomic
    /// statement per lead set, committed before returning.
    fn claim(
        &mut self,
        campaign: &str,
        now: i64,
        open: &[OpenGroup],
        count: u32,
    ) -> Result<Vec<ClaimedLead>, StoreError>;
    /// Records the call engine's id for an attempt once its call is created.
    fn attempt_placed(&mut self, attempt: i64, call: &str) -> Result<(), StoreError>;
    /// Records that the attempt's customer answered.
    fn attempt_answered(&mut self, attempt: i64) -> Result<(), StoreError>;
    /// Closes an attempt and moves its lead on; `dnc_list` receives the number for
    /// [`LeadNext::Dnc`].
    fn finish_attempt(
        &mut self,
        attempt: i64,
        end: &AttemptEnd,
        dnc_list: Option<&str>,
    ) -> Result<(), StoreError>;
    /// Sets the disposition of an attempt (closed or not), and, when given, the lead's next
    /// state; `now` stamps the lead's change and a DNC entry.
    fn set_disposition(
        &mut self,
        attempt: i64,
        code: &str,
        note: Option<&str>,
        next: Option<&LeadNext>,
        dnc_list: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError>;
    /// The attempt (and its lead and campaign) that a call engine call id belongs to.
    fn attempt_for_call(&self, call: &str) -> Result<Option<OpenAttempt>, StoreError>;
    /// Attempts never closed (the dialer stopped during them), oldest first.
    fn open_attempts(&self) -> Result<Vec<OpenAttempt>, StoreError>;
    /// Status counts.
    fn counts(&self, campaign: &str) -> Result<CampaignCounts, StoreError>;
    /// The answered attempts of `campaign` that ended at or after `since` (Unix seconds),
    /// oldest first. A restarted dialer counts its abandon window from them, machines its
    /// agents marked included, so a restart does not refill the abandon budget.
    fn answered_since(
        &self,
        campaign: &str,
        since: i64,
    ) -> Result<Vec<AnsweredAttempt>, StoreError>;
    /// Every lead with its attempts, optionally of one state, by lead id.
    fn export(
        &self,
        campaign: &str,
        state: Option<LeadState>,
    ) -> Result<Vec<LeadRecord>, StoreError> {
        let mut leads = Vec::new();
        self.export_each(campaign, state, &mut |lead| {
            leads.push(lead);
            ControlFlow::Continue(())
        })?;
        Ok(leads)
    }
    /// [`Store::export`] one lead at a time, so a million-lead campaign is written out without
    /// being held in memory; `each` stops the walk by returning [`ControlFlow::Break`].
    fn export_each(
        &self,
        campaign: &str,
        state: Option<LeadState>,
        each: &mut dyn FnMut(LeadRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError>;
    /// Adds numbers to a DNC list; returns how many were new.
    fn dnc_add(&mut self, list: &str, numbers: &[String], now: i64) -> Result<u64, StoreError>;
    /// Removes numbers from a list; returns how many were there.
    fn dnc_remove(&mut self, list: &str, numbers: &[String]) -> Result<u64, StoreError>;
    /// The numbers of a list, sorted.
    fn dnc_list(&self, list: &str) -> Result<Vec<String>, StoreError>;
    /// The first of `lists` that holds `number`.
    fn dnc_find(&self, lists: &[String], number: &str) -> Result<Option<String>, StoreError>;
    /// Journals a call's CDR (JSON) when it ends.
    fn journal_cdr(&mut self, call: &str, cdr_json: &str, ended: i64) -> Result<(), StoreError>;
    /// Journals a call as open (created, not ended): what a restart reports as interrupted.
    fn journal_open(&mut self, call: &str, info_json: &str, created: i64)
        -> Result<(), StoreError>;
    /// Calls journalled open and never ended, oldest first: `(call, info_json, created)`.
    fn journal_unfinished(&self) -> Result<Vec<(String, String, i64)>, StoreError>;
    /// Marks journalled open calls as ended (after a restart wrote their CDRs).
    fn journal_close(&mut self, call: &str, cdr_json: &str, ended: i64) -> Result<(), StoreError>;
    /// Applies `writes` in order in one transaction: one commit (one fsync) for everything
    /// the journal gathered while the previous commit ran.
    fn journal_write(&mut self, writes: &[JournalWrite<'_>]) -> Result<(), StoreError>;
    /// The first call id not handed out by any earlier run (0 on a new file).
    fn call_id_floor(&self) -> Result<u64, StoreError>;
}

/// One change to the call journal, for [`Store::journal_write`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalWrite<'a> {
    /// As [`Store::journal_open`]: the call is under way, `info` is what a restart needs.
    Open {
        /// The call id.
        call: &'a str,
        /// JSON the runtime reads back after a crash.
        info: &'a str,
        /// Unix seconds.
        created: i64,
    },
    /// As [`Store::journal_cdr`]: the call ended with this CDR.
    Close {
        /// The call id.
        call: &'a str,
        /// The CDR, JSON.
        cdr: &'a str,
        /// Unix seconds.
        ended: i64,
    },
    /// Raises the call id floor (never lowers it).
    CallIdFloor(u64),
}
