//! [`Store`](crate::Store) on an embedded SQLite file.

use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use campaign::{
    AttemptOutcome, LeadGroup, LeadNext, LeadRow, LeadState, OpenGroup, RejectReason, RejectedRow,
};
use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use crate::schema::MIGRATIONS;
use crate::{
    AnsweredAttempt, AttemptEnd, AttemptRecord, CampaignCounts, CampaignRecord, ClaimedLead,
    ImportReport, JournalWrite, LeadRecord, OpenAttempt, Store, StoreError,
};

/// How long a write waits for another connection's write transaction to end.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Page cache per connection, in KiB: a million-lead import touches the number index at
/// random, and with SQLite's default 2 MiB most of those touches go to the OS.
const CACHE_KIB: i64 = 32 * 1024;

/// After a checkpoint the WAL is cut back to this size, so a big import does not leave a
/// WAL file as large as the database behind it.
const WAL_SIZE_LIMIT: i64 = 64 * 1024 * 1024;

/// Enough for every statement the store prepares, so none is compiled twice.
const STATEMENT_CACHE: usize = 64;

/// The SQLite store: one connection to one file (or to memory).
///
/// # Durability
/// The file is in WAL mode with `synchronous=FULL` on every transaction: each commit is on
/// the disk before the method returns. `synchronous=NORMAL` (the usual WAL setting) syncs
/// only at checkpoints, so a power cut can take back the last commits, among them a claim
/// whose INVITE already left: after the restart the lead would be claimable again and the
/// customer rung twice, past any 24 h cap. A commit under `FULL` costs one `fsync` of the
/// WAL (0.2 to 0.3 ms against about 0.01 ms under `NORMAL` on the machine `import_bench` was
/// measured on). The store commits a few times per call from one thread, so `FULL`
/// everywhere costs little and leaves no method whose durability a later change could get
/// wrong.
///
/// # Several connections
/// Every write transaction is `BEGIN IMMEDIATE`: it takes the file's write lock before it
/// reads anything, so two stores on one file (two threads, two processes) claim one after
/// the other, and the second sees the first one's open attempts. A writer that finds the
/// lock taken waits up to 5 s, then fails with `SQLITE_BUSY`. Readers never wait (WAL), and
/// each method reads one snapshot.
///
/// Foreign keys are on: deleting a campaign deletes its leads and attempts.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Connection,
}

impl SqliteStore {
    /// The schema version this store writes (`PRAGMA user_version`).
    pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

    /// Opens (creating it if needed) the store file at `path` and brings its schema up to
    /// date. Fails with [`StoreError::TooNew`] for a file written by a newer dialer.
    pub fn open(path: &Path) -> Result<SqliteStore, StoreError> {
        Self::set_up(Connection::open(path)?)
    }

    /// A store in memory, gone when dropped (tests, simulations). Each one is separate.
    pub fn open_in_memory() -> Result<SqliteStore, StoreError> {
        Self::set_up(Connection::open_in_memory()?)
    }

    /// The schema version of the open file.
    pub fn schema_version(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |row| row.get(0))?)
    }

    fn set_up(mut conn: Connection) -> Result<SqliteStore, StoreError> {
        conn.busy_timeout(BUSY_TIMEOUT)?;
        // An in-memory database answers "memory": it has no WAL, and nothing to make durable.
        let _mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "cache_size", -CACHE_KIB)?;
        conn.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        migrate(&mut conn)?;
        Ok(SqliteStore { conn })
    }

    /// Runs `f` in a write transaction (taken at once, see [`SqliteStore`]) and commits.
    fn write<T>(
        &mut self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Runs `f` on one snapshot of the file.
    fn read<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }
}

/// Applies the migration steps the file has not had, in one transaction.
fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let supported = SqliteStore::SCHEMA_VERSION;
    // Immediate, so two processes opening a new file do not both run the steps: the second
    // waits, then reads the version the first one wrote.
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let found: i64 = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if found > supported {
        return Err(StoreError::TooNew { found, supported });
    }
    if found == supported {
        return Ok(());
    }
    let done = usize::try_from(found).unwrap_or(0);
    for step in &MIGRATIONS[done..] {
        tx.execute_batch(step)?;
    }
    tx.pragma_update(None, "user_version", supported)?;
    tx.commit()?;
    Ok(())
}

/// A value in the file this dialer has no spelling for.
#[derive(Debug, thiserror::Error)]
#[error("unknown {what} {value:?}")]
struct UnknownValue {
    what: &'static str,
    value: String,
}

fn unknown(column: usize, what: &'static str, value: String) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(
        column,
        Type::Text,
        Box::new(UnknownValue { what, value }),
    )
}

fn lead_state(row: &Row<'_>, column: usize) -> rusqlite::Result<LeadState> {
    let text: String = row.get(column)?;
    LeadState::parse(&text).ok_or_else(|| unknown(column, "lead state", text))
}

fn outcome(row: &Row<'_>, column: usize) -> rusqlite::Result<Option<AttemptOutcome>> {
    match row.get::<_, Option<String>>(column)? {
        None => Ok(None),
        Some(text) => AttemptOutcome::parse(&text)
            .map(Some)
            .ok_or_else(|| unknown(column, "attempt outcome", text)),
    }
}

fn fields(row: &Row<'_>, column: usize) -> rusqlite::Result<Vec<(String, String)>> {
    let text: String = row.get(column)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Text, Box::new(e)))
}

fn count_u32(row: &Row<'_>, column: usize) -> rusqlite::Result<u32> {
    let n: i64 = row.get(column)?;
    u32::try_from(n)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(column, Type::Integer, Box::new(e)))
}

fn count_u64(n: i64) -> u64 {
    // Counters are sums of +1/-1 kept by triggers; they cannot go below zero.
    u64::try_from(n).unwrap_or(0)
}

fn campaign_id(conn: &Connection, name: &str) -> Result<i64, StoreError> {
    conn.prepare_cached("SELECT id FROM campaigns WHERE name = ?1")?
        .query_row([name], |row| row.get(0))
        .optional()?
        .ok_or_else(|| StoreError::NoSuchCampaign(name.to_owned()))
}

/// Moves a lead to `next`; `outcome` replaces its last outcome when given.
fn move_lead(
    conn: &Connection,
    lead: i64,
    number: &str,
    next: &LeadNext,
    outcome: Option<AttemptOutcome>,
    dnc_list: Option<&str>,
    now: i64,
) -> Result<(), StoreError> {
    let agent = match next {
        LeadNext::Callback { agent, .. } => agent.as_deref(),
        _ => None,
    };
    conn.prepare_cached(
        "UPDATE leads SET state = ?2, next_at = ?3, last_outcome = coalesce(?4, last_outcome),
             callback_agent = ?5, updated = ?6
         WHERE id = ?1",
    )?
    .execute(params![
        lead,
        next.state().as_str(),
        next.due(),
        outcome.map(AttemptOutcome::as_str),
        agent,
        now
    ])?;
    if let (LeadNext::Dnc, Some(list)) = (next, dnc_list) {
        conn.prepare_cached(
            "INSERT INTO dnc (list, number, added) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        )?
        .execute(params![list, number, now])?;
    }
    Ok(())
}

/// One arm of the claim: the first `?3` eligible leads in state `$state` of each open group
/// (`?4`, a JSON array of `[zones, region, cap]`), as `(id, rank, next_at)`.
///
/// SQLite has no `LATERAL`; the per-group `LIMIT` rides on a correlated `IN` subquery, which
/// the planner runs once per group as a range walk of `leads_due` that stops at `?3` rows.
/// The `NOT EXISTS` keeps a number out while it has a call under way in any campaign; the
/// cap subquery runs only for groups that have a cap.
macro_rules! claim_arm {
    ($rank:literal, $state:literal) => {
        concat!(
            "SELECT c.id AS id, ",
            $rank,
            " AS rank, c.next_at AS next_at
             FROM json_each(?4) AS g CROSS JOIN leads AS c
             WHERE c.id IN (
                 SELECT l.id FROM leads AS l
                 WHERE l.campaign_id = ?1 AND l.zones = g.value ->> 0
                     AND l.region IS g.value ->> 1 AND l.state = '",
            $state,
            "' AND l.next_at <= ?2
                     AND NOT EXISTS (SELECT 1 FROM attempts AS a
                                     WHERE a.number = l.number AND a.ended IS NULL)
                     AND (g.value ->> 2 IS NULL
                          OR (SELECT count(*) FROM attempts AS a
                              WHERE a.number = l.number
                                  AND a.started > ?2 - 86400 AND a.started <= ?2)
                             < g.value ->> 2)
                 ORDER BY l.next_at, l.id
                 LIMIT ?3)"
        )
    };
}

/// The claim: one statement that picks the best `?3` due leads across every open group and
/// state and marks them dialling. `claimed_from = state` keeps the state they left (the
/// `SET` reads the old row), which `RETURNING` (which sees the new one) hands back.
const CLAIM: &str = concat!(
    "UPDATE leads SET state = 'dialing', claimed_from = state, attempts = attempts + 1,
         updated = ?2
     WHERE id IN (
         SELECT id FROM (",
    claim_arm!("0", "callback"),
    " UNION ALL ",
    claim_arm!("1", "retry"),
    " UNION ALL ",
    claim_arm!("2", "new"),
    ") ORDER BY rank, next_at, id LIMIT ?3)
     RETURNING id, number, attempts, fields, last_outcome, callback_agent, claimed_from,
         next_at"
);

/// Claim order of the state a lead was claimed from, as in [`CLAIM`]'s `rank`.
fn claim_rank(state: LeadState) -> u8 {
    match state {
        LeadState::Callback => 0,
        LeadState::Retry => 1,
        _ => 2,
    }
}

/// The columns [`open_attempt`] reads, followed by `$rest`.
macro_rules! select_open_attempt {
    ($rest:literal) => {
        concat!(
            "SELECT a.id, a.lead_id, c.name, a.number, a.attempt_no, a.started, a.call
             FROM attempts AS a JOIN campaigns AS c ON c.id = a.campaign_id ",
            $rest
        )
    };
}

fn open_attempt(row: &Row<'_>) -> rusqlite::Result<OpenAttempt> {
    Ok(OpenAttempt {
        attempt: row.get(0)?,
        lead: row.get(1)?,
        campaign: row.get(2)?,
        number: row.get(3)?,
        attempt_no: count_u32(row, 4)?,
        started: row.get(5)?,
        call: row.get(6)?,
    })
}

fn campaign_record(row: &Row<'_>) -> rusqlite::Result<CampaignRecord> {
    Ok(CampaignRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        definition: row.get(2)?,
        state: row.get(3)?,
        created: row.get(4)?,
    })
}

/// The first group of a campaign in `leads_due` order (zones, then region, NULL first).
const FIRST_GROUP: &str = "SELECT zones, region FROM leads WHERE campaign_id = ?1
     ORDER BY zones, region LIMIT 1";
/// The first region of zones `?2` after none.
const FIRST_REGION: &str = "SELECT zones, region FROM leads
     WHERE campaign_id = ?1 AND zones = ?2 AND region IS NOT NULL ORDER BY region LIMIT 1";
/// The region of zones `?2` after region `?3`.
const NEXT_REGION: &str = "SELECT zones, region FROM leads
     WHERE campaign_id = ?1 AND zones = ?2 AND region > ?3 ORDER BY region LIMIT 1";
/// The first group of the zones after `?2`.
const NEXT_ZONES: &str = "SELECT zones, region FROM leads WHERE campaign_id = ?1 AND zones > ?2
     ORDER BY zones, region LIMIT 1";
/// Whether group `(?2, ?3)` has a lead that may still be dialled.
const GROUP_DIALABLE: &str = "SELECT 1 FROM leads
     WHERE campaign_id = ?1 AND zones = ?2 AND region IS ?3
         AND state IN ('new', 'retry', 'callback')";
/// The earliest retry or callback due time: one seek per state on `leads_pending`.
const NEXT_RETRY: &str = "SELECT min(due) FROM (
         SELECT (SELECT next_at FROM leads WHERE campaign_id = ?1 AND state = 'retry'
                 ORDER BY next_at LIMIT 1) AS due
         UNION ALL
         SELECT (SELECT next_at FROM leads WHERE campaign_id = ?1 AND state = 'callback'
                 ORDER BY next_at LIMIT 1))";

/// The group after `after` in `leads_due` order, or the first one; one index seek each.
fn next_group(
    conn: &Connection,
    campaign: i64,
    after: Option<&LeadGroup>,
) -> Result<Option<LeadGroup>, StoreError> {
    let group = |row: &Row<'_>| {
        Ok(LeadGroup {
            zones: row.get(0)?,
            region: row.get(1)?,
        })
    };
    let Some(after) = after else {
        return Ok(conn
            .prepare_cached(FIRST_GROUP)?
            .query_row([campaign], group)
            .optional()?);
    };
    let same_zones = match &after.region {
        None => conn
            .prepare_cached(FIRST_REGION)?
            .query_row(params![campaign, after.zones], group)
            .optional()?,
        Some(region) => conn
            .prepare_cached(NEXT_REGION)?
            .query_row(params![campaign, after.zones, region], group)
            .optional()?,
    };
    if same_zones.is_some() {
        return Ok(same_zones);
    }
    Ok(conn
        .prepare_cached(NEXT_ZONES)?
        .query_row(params![campaign, after.zones], group)
        .optional()?)
}

impl Store for SqliteStore {
    fn create_campaign(
        &mut self,
        name: &str,
        definition: &str,
        now: i64,
    ) -> Result<CampaignRecord, StoreError> {
        self.write(|conn| {
            conn.prepare_cached(
                "INSERT INTO campaigns (name, definition, created) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO NOTHING
                 RETURNING id, name, definition, state, created",
            )?
            .query_row(params![name, definition, now], campaign_record)
            .optional()?
            .ok_or_else(|| StoreError::CampaignExists(name.to_owned()))
        })
    }

    fn campaigns(&self) -> Result<Vec<CampaignRecord>, StoreError> {
        self.read(|conn| {
            let mut stmt = conn.prepare_cached(
                "SELECT id, name, definition, state, created FROM campaigns ORDER BY name",
            )?;
            let rows = stmt.query_map([], campaign_record)?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    fn campaign(&self, name: &str) -> Result<CampaignRecord, StoreError> {
        self.conn
            .prepare_cached(
                "SELECT id, name, definition, state, created FROM campaigns WHERE name = ?1",
            )?
            .query_row([name], campaign_record)
            .optional()?
            .ok_or_else(|| StoreError::NoSuchCampaign(name.to_owned()))
    }

    fn set_campaign_state(&mut self, name: &str, state: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            let changed = conn
                .prepare_cached("UPDATE campaigns SET state = ?2 WHERE name = ?1")?
                .execute([name, state])?;
            if changed == 0 {
                return Err(StoreError::NoSuchCampaign(name.to_owned()));
            }
            Ok(())
        })
    }

    fn delete_campaign(&mut self, name: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            let changed = conn
                .prepare_cached("DELETE FROM campaigns WHERE name = ?1")?
                .execute([name])?;
            if changed == 0 {
                return Err(StoreError::NoSuchCampaign(name.to_owned()));
            }
            Ok(())
        })
    }

    /// One transaction for the whole file: an import that fails (a full disk) leaves no half
    /// list behind, and the report always describes what is in the store. Rows are read from
    /// the iterator one at a time, so memory does not grow with the file.
    fn import_leads(
        &mut self,
        campaign: &str,
        rows: &mut dyn Iterator<Item = Result<LeadRow, RejectedRow>>,
        dnc_lists: &[String],
    ) -> Result<ImportReport, StoreError> {
        self.write(|conn| {
            let campaign = campaign_id(conn, campaign)?;
            // New leads are due at 0, so the claim's `next_at` order is import order for them.
            let mut insert = conn.prepare_cached(
                "INSERT INTO leads (campaign_id, number, zones, region, fields, next_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, 0)
                 ON CONFLICT (campaign_id, number) DO NOTHING",
            )?;
            let mut listed =
                conn.prepare_cached("SELECT 1 FROM dnc WHERE list = ?1 AND number = ?2")?;
            let mut report = ImportReport::default();
            for row in rows {
                let row = match row {
                    Ok(row) => row,
                    Err(rejected) => {
                        report.rejected.push(rejected);
                        continue;
                    }
                };
                let mut on_list = None;
                for list in dnc_lists {
                    if listed.exists(params![list, row.number])? {
                        on_list = Some(list);
                        break;
                    }
                }
                if let Some(list) = on_list {
                    report.rejected.push(RejectedRow {
                        line: row.line,
                        number: Some(row.number),
                        reason: RejectReason::Dnc(list.clone()),
                    });
                    continue;
                }
                let fields = serde_json::to_string(&row.fields)
                    .expect("a list of string pairs always serialises");
                let added = insert.execute(params![
                    campaign,
                    row.number,
                    row.group.zones,
                    row.group.region,
                    fields
                ])?;
                if added == 0 {
                    report.rejected.push(RejectedRow {
                        line: row.line,
                        number: Some(row.number),
                        reason: RejectReason::Duplicate,
                    });
                } else {
                    report.imported += 1;
                }
            }
            Ok(report)
        })
    }

    /// Skips from group to group on `leads_due` (a few seeks per group), instead of reading
    /// every lead of the campaign.
    fn lead_groups(&self, campaign: &str) -> Result<Vec<LeadGroup>, StoreError> {
        self.read(|conn| {
            let campaign = campaign_id(conn, campaign)?;
            let mut dialable = conn.prepare_cached(GROUP_DIALABLE)?;
            let mut groups = Vec::new();
            let mut at = next_group(conn, campaign, None)?;
            while let Some(group) = at {
                if dialable.exists(params![campaign, group.zones, group.region])? {
                    groups.push(group.clone());
                }
                at = next_group(conn, campaign, Some(&group))?;
            }
            Ok(groups)
        })
    }

    fn claim(
        &mut self,
        campaign: &str,
        now: i64,
        open: &[OpenGroup],
        count: u32,
    ) -> Result<Vec<ClaimedLead>, StoreError> {
        self.write(|conn| {
            let campaign = campaign_id(conn, campaign)?;
            if count == 0 || open.is_empty() {
                return Ok(Vec::new());
            }
            // A group listed twice would offer its leads twice and fill the limit with
            // repeats.
            let mut groups: Vec<(&str, Option<&str>, Option<u32>)> = Vec::new();
            for g in open {
                let key = (g.group.zones.as_str(), g.group.region.as_deref());
                if !groups.iter().any(|(z, r, _)| (*z, *r) == key) {
                    groups.push((key.0, key.1, g.max_calls_per_24h));
                }
            }
            let groups =
                serde_json::to_string(&groups).expect("strings and numbers always serialise");
            let mut claimed = conn
                .prepare_cached(CLAIM)?
                .query_map(params![campaign, now, count, groups], |row| {
                    let next_at: i64 = row.get(7)?;
                    Ok((
                        next_at,
                        ClaimedLead {
                            lead: row.get(0)?,
                            attempt: 0,
                            number: row.get(1)?,
                            attempt_no: count_u32(row, 2)?,
                            fields: fields(row, 3)?,
                            last_outcome: outcome(row, 4)?,
                            callback_agent: row.get(5)?,
                            state: lead_state(row, 6)?,
                        },
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()?;
            // RETURNING comes in no set order.
            claimed.sort_by_key(|(next_at, lead)| (claim_rank(lead.state), *next_at, lead.lead));
            let mut insert = conn.prepare_cached(
                "INSERT INTO attempts (lead_id, campaign_id, number, attempt_no, started)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            let mut leads = Vec::with_capacity(claimed.len());
            for (_, mut lead) in claimed {
                insert.execute(params![
                    lead.lead,
                    campaign,
                    lead.number,
                    lead.attempt_no,
                    now
                ])?;
                lead.attempt = conn.last_insert_rowid();
                leads.push(lead);
            }
            Ok(leads)
        })
    }

    fn attempt_placed(&mut self, attempt: i64, call: &str) -> Result<(), StoreError> {
        self.write(|conn| {
            let changed = conn
                .prepare_cached("UPDATE attempts SET call = ?2 WHERE id = ?1 AND ended IS NULL")?
                .execute(params![attempt, call])?;
            if changed == 0 {
                return Err(StoreError::NoSuchAttempt(attempt));
            }
            Ok(())
        })
    }

    fn attempt_answered(&mut self, attempt: i64) -> Result<(), StoreError> {
        self.write(|conn| {
            let changed = conn
                .prepare_cached("UPDATE attempts SET answered = 1 WHERE id = ?1 AND ended IS NULL")?
                .execute([attempt])?;
            if changed == 0 {
                return Err(StoreError::NoSuchAttempt(attempt));
            }
            Ok(())
        })
    }

    fn finish_attempt(
        &mut self,
        attempt: i64,
        end: &AttemptEnd,
        dnc_list: Option<&str>,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let (lead, number): (i64, String) = conn
                .prepare_cached(
                    "UPDATE attempts SET ended = ?2, outcome = ?3, call_outcome = ?4,
                         answered = (answered OR ?5), agent = coalesce(?6, agent)
                     WHERE id = ?1 AND ended IS NULL
                     RETURNING lead_id, number",
                )?
                .query_row(
                    params![
                        attempt,
                        end.ended,
                        end.outcome.as_str(),
                        end.call_outcome,
                        end.answered,
                        end.agent
                    ],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?
                .ok_or(StoreError::NoSuchAttempt(attempt))?;
            move_lead(
                conn,
                lead,
                &number,
                &end.next,
                Some(end.outcome),
                dnc_list,
                end.ended,
            )
        })
    }

    fn set_disposition(
        &mut self,
        attempt: i64,
        code: &str,
        note: Option<&str>,
        next: Option<&LeadNext>,
        dnc_list: Option<&str>,
        now: i64,
    ) -> Result<(), StoreError> {
        self.write(|conn| {
            let (lead, number): (i64, String) = conn
                .prepare_cached(
                    "UPDATE attempts SET disposition = ?2, note = ?3 WHERE id = ?1
                     RETURNING lead_id, number",
                )?
                .query_row(params![attempt, code, note], |row| {
                    Ok((row.get(0)?, row.get(1)?))
                })
                .optional()?
                .ok_or(StoreError::NoSuchAttempt(attempt))?;
            match next {
                Some(next) => move_lead(conn, lead, &number, next, None, dnc_list, now),
                None => Ok(()),
            }
        })
    }

    fn attempt_for_call(&self, call: &str) -> Result<Option<OpenAttempt>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(select_open_attempt!(
                "WHERE a.call = ?1 ORDER BY a.id DESC LIMIT 1"
            ))?
            .query_row([call], open_attempt)
            .optional()?)
    }

    fn open_attempts(&self) -> Result<Vec<OpenAttempt>, StoreError> {
        let mut stmt = self.conn.prepare_cached(select_open_attempt!(
            "WHERE a.ended IS NULL ORDER BY a.started, a.id"
        ))?;
        let rows = stmt.query_map([], open_attempt)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn answered_since(
        &self,
        campaign: &str,
        since: i64,
    ) -> Result<Vec<AnsweredAttempt>, StoreError> {
        self.read(|conn| {
            let campaign = campaign_id(conn, campaign)?;
            let mut stmt = conn.prepare_cached(
                "SELECT ended, outcome = 'bridged', disposition FROM attempts
                 WHERE campaign_id = ?1 AND answered = 1 AND ended >= ?2 ORDER BY ended",
            )?;
            let rows = stmt.query_map(rusqlite::params![campaign, since], |row| {
                Ok(AnsweredAttempt {
                    ended: row.get(0)?,
                    bridged: row.get(1)?,
                    disposition: row.get(2)?,
                })
            })?;
            Ok(rows.collect::<rusqlite::Result<_>>()?)
        })
    }

    /// Reads the trigger-kept counters (a few rows whatever the campaign's size) and the
    /// earliest pending due time (one seek per state on `leads_pending`).
    fn counts(&self, campaign: &str) -> Result<CampaignCounts, StoreError> {
        self.read(|conn| {
            let campaign = campaign_id(conn, campaign)?;
            let mut leads: Vec<(LeadState, u64)> =
                LeadState::ALL.iter().map(|state| (*state, 0)).collect();
            let mut stmt =
                conn.prepare_cached("SELECT state, n FROM lead_counts WHERE campaign_id = ?1")?;
            let mut rows = stmt.query([campaign])?;
            while let Some(row) = rows.next()? {
                let state = lead_state(row, 0)?;
                let n: i64 = row.get(1)?;
                if let Some(slot) = leads.iter_mut().find(|(s, _)| *s == state) {
                    slot.1 = count_u64(n);
                }
            }
            let (dialled, answered, bridged, abandoned): (i64, i64, i64, i64) = conn
                .prepare_cached(
                    "SELECT dialled, answered, bridged, abandoned FROM attempt_counts
                     WHERE campaign_id = ?1",
                )?
                .query_row([campaign], |row| {
                    Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
                })
                .optional()?
                .unwrap_or_default();
            let next_retry: Option<i64> = conn
                .prepare_cached(NEXT_RETRY)?
                .query_row([campaign], |row| row.get(0))?;
            Ok(CampaignCounts {
                leads,
                dialled: count_u64(dialled),
                answered: count_u64(answered),
                bridged: count_u64(bridged),
                abandoned: count_u64(abandoned),
                next_retry,
            })
        })
    }

    /// Walks the leads table in id order (one pass, no sort, whatever the campaign's size)
    /// and reads each lead's attempts by `attempts_lead`.
    fn export_each(
        &self,
        campaign: &str,
        state: Option<LeadState>,
        each: &mut dyn FnMut(LeadRecord) -> ControlFlow<()>,
    ) -> Result<(), StoreError> {
        self.read(|conn| {
            let campaign = campaign_id(conn, campaign)?;
            // `+campaign_id` keeps the planner off the campaign's indexes, whose order would
            // need a sort of the whole campaign by id.
            let mut leads = conn.prepare_cached(
                "SELECT id, number, state, zones, region, fields, next_at, last_outcome,
                     callback_agent
                 FROM leads WHERE +campaign_id = ?1 AND (?2 IS NULL OR state = ?2)
                 ORDER BY id",
            )?;
            let mut attempts = conn.prepare_cached(
                "SELECT id, attempt_no, started, ended, call, outcome, call_outcome, answered,
                     agent, disposition, note
                 FROM attempts WHERE lead_id = ?1 ORDER BY id",
            )?;
            let mut rows = leads.query(params![campaign, state.map(LeadState::as_str)])?;
            while let Some(row) = rows.next()? {
                let lead: i64 = row.get(0)?;
                let attempts = attempts
                    .query_map([lead], |a| {
                        Ok(AttemptRecord {
                            attempt: a.get(0)?,
                            attempt_no: count_u32(a, 1)?,
                            started: a.get(2)?,
                            ended: a.get(3)?,
                            call: a.get(4)?,
                            outcome: outcome(a, 5)?,
                            call_outcome: a.get(6)?,
                            answered: a.get(7)?,
                            agent: a.get(8)?,
                            disposition: a.get(9)?,
                            note: a.get(10)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let record = LeadRecord {
                    lead,
                    number: row.get(1)?,
                    state: lead_state(row, 2)?,
                    group: LeadGroup {
                        zones: row.get(3)?,
                        region: row.get(4)?,
                    },
                    fields: fields(row, 5)?,
                    next_at: row.get(6)?,
                    last_outcome: outcome(row, 7)?,
                    callback_agent: row.get(8)?,
                    attempts,
                };
                if each(record).is_break() {
                    break;
                }
            }
            Ok(())
        })
    }

    fn dnc_add(&mut self, list: &str, numbers: &[String], now: i64) -> Result<u64, StoreError> {
        self.write(|conn| {
            let mut insert = conn.prepare_cached(
                "INSERT INTO dnc (list, number, added) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
            )?;
            let mut added = 0;
            for number in numbers {
                added += insert.execute(params![list, number, now])? as u64;
            }
            Ok(added)
        })
    }

    fn dnc_remove(&mut self, list: &str, numbers: &[String]) -> Result<u64, StoreError> {
        self.write(|conn| {
            let mut delete =
                conn.prepare_cached("DELETE FROM dnc WHERE list = ?1 AND number = ?2")?;
            let mut removed = 0;
            for number in numbers {
                removed += delete.execute(params![list, number])? as u64;
            }
            Ok(removed)
        })
    }

    fn dnc_list(&self, list: &str) -> Result<Vec<String>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT number FROM dnc WHERE list = ?1 ORDER BY number")?;
        let rows = stmt.query_map([list], |row| row.get(0))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn dnc_find(&self, lists: &[String], number: &str) -> Result<Option<String>, StoreError> {
        self.read(|conn| {
            let mut listed =
                conn.prepare_cached("SELECT 1 FROM dnc WHERE list = ?1 AND number = ?2")?;
            for list in lists {
                if listed.exists(params![list, number])? {
                    return Ok(Some(list.clone()));
                }
            }
            Ok(None)
        })
    }

    /// Also writes a row for a call that was never journalled open.
    fn journal_cdr(&mut self, call: &str, cdr_json: &str, ended: i64) -> Result<(), StoreError> {
        self.journal_write(&[JournalWrite::Close {
            call,
            cdr: cdr_json,
            ended,
        }])
    }

    /// Journalling a call open again replaces its info while it is still open, so a
    /// repeated order after a retry is harmless; an ended call stays ended.
    fn journal_open(
        &mut self,
        call: &str,
        info_json: &str,
        created: i64,
    ) -> Result<(), StoreError> {
        self.journal_write(&[JournalWrite::Open {
            call,
            info: info_json,
            created,
        }])
    }

    fn journal_write(&mut self, writes: &[JournalWrite<'_>]) -> Result<(), StoreError> {
        self.write(|conn| {
            for w in writes {
                match *w {
                    JournalWrite::Open {
                        call,
                        info,
                        created,
                    } => {
                        conn.prepare_cached(
                            "INSERT INTO journal (call, info, created) VALUES (?1, ?2, ?3)
                             ON CONFLICT (call) DO UPDATE
                                 SET info = excluded.info, created = excluded.created
                                 WHERE ended IS NULL",
                        )?
                        .execute(params![call, info, created])?;
                    }
                    JournalWrite::Close { call, cdr, ended } => {
                        conn.prepare_cached(
                            "INSERT INTO journal (call, ended, cdr) VALUES (?1, ?3, ?2)
                             ON CONFLICT (call) DO UPDATE
                                 SET ended = excluded.ended, cdr = excluded.cdr",
                        )?
                        .execute(params![call, cdr, ended])?;
                    }
                    JournalWrite::CallIdFloor(floor) => {
                        conn.prepare_cached(
                            "INSERT INTO meta (key, value) VALUES ('call_id_floor', ?1)
                             ON CONFLICT (key) DO UPDATE SET value = max(value, excluded.value)",
                        )?
                        .execute(params![i64::try_from(floor).unwrap_or(i64::MAX)])?;
                    }
                }
            }
            Ok(())
        })
    }

    fn call_id_floor(&self) -> Result<u64, StoreError> {
        self.read(|conn| {
            let floor: Option<i64> = conn
                .query_row(
                    "SELECT value FROM meta WHERE key = 'call_id_floor'",
                    [],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(floor.map_or(0, |f| f.max(0) as u64))
        })
    }

    fn journal_unfinished(&self) -> Result<Vec<(String, String, i64)>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT call, info, created FROM journal WHERE ended IS NULL
             ORDER BY created, rowid",
        )?;
        let rows = stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    fn journal_close(&mut self, call: &str, cdr_json: &str, ended: i64) -> Result<(), StoreError> {
        self.journal_cdr(call, cdr_json, ended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The plan's detail lines, with the tables each one reads.
    fn plan(conn: &Connection, sql: &str) -> Vec<String> {
        let mut stmt = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("the statement compiles");
        let count = stmt.parameter_count();
        let params: Vec<rusqlite::types::Value> =
            (0..count).map(|_| rusqlite::types::Value::Null).collect();
        let rows = stmt
            .query_map(rusqlite::params_from_iter(params), |row| {
                row.get::<_, String>(3)
            })
            .expect("the plan runs");
        rows.collect::<rusqlite::Result<_>>().expect("plan rows")
    }

    /// A plan that reads every row of a table grows with the table: the claim, the counts and
    /// the group walk must stay index seeks as the lead list grows.
    fn assert_no_scan(conn: &Connection, sql: &str) {
        let plan = plan(conn, sql);
        for line in &plan {
            let scans_table = line.starts_with("SCAN ")
                && !line.starts_with("SCAN g ")
                && !line.starts_with("SCAN CONSTANT ROW")
                && !line.starts_with("SCAN (subquery");
            assert!(!scans_table, "{line} in {plan:#?}\nfor {sql}");
        }
    }

    #[test]
    fn the_claim_counts_and_group_walk_use_indexes() {
        let store = SqliteStore::open_in_memory().expect("an in-memory store");
        let conn = &store.conn;
        assert_no_scan(conn, CLAIM);
        let claim = plan(conn, CLAIM).join("\n");
        assert!(claim.contains("USING INDEX leads_due"), "{claim}");
        assert!(claim.contains("USING INDEX attempts_open"), "{claim}");
        assert!(claim.contains("attempts_number"), "{claim}");
        // Each arm comes out of the index in order; only the merge of at most
        // 3 x groups x count rows is sorted.
        assert_eq!(claim.matches("TEMP B-TREE").count(), 1, "{claim}");
        for sql in [
            FIRST_GROUP,
            FIRST_REGION,
            NEXT_REGION,
            NEXT_ZONES,
            GROUP_DIALABLE,
            NEXT_RETRY,
        ] {
            assert_no_scan(conn, sql);
        }
        let pending = plan(conn, NEXT_RETRY).join("\n");
        assert_eq!(pending.matches("leads_pending").count(), 2, "{pending}");
        assert!(!pending.contains("TEMP B-TREE"), "{pending}");
    }
}
