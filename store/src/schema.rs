//! The schema, as the ordered list of migration steps that builds it.
//!
//! `PRAGMA user_version` holds how many steps a file has had. Opening applies the missing ones
//! in order, in one transaction, and refuses a file that has more than this list knows (it was
//! written by a newer dialer, whose columns this one would misread or drop).
//!
//! A step, once released, is never edited: a change is a new step appended at the end.

/// The migration steps, oldest first; step `i` brings a file from version `i` to `i + 1`.
pub(crate) const MIGRATIONS: &[&str] = &[V1, V2];

/// The first schema.
///
/// Indexes, by the query each one serves:
/// - `leads_due`: the claim walks one `(campaign, zones, region, state)` range per open group
///   and state in `next_at` order (rowid breaks ties, so new leads, all due at 0, come out in
///   id order) and stops after `count` rows; `lead_groups` skips from group to group on it.
/// - `leads_pending` (retry and callback only, so new and finished leads cost nothing there):
///   the earliest pending due time for `counts`. Its condition is written with `OR`, which
///   SQLite sees implied by `state = 'retry'`; with `IN` it is not.
/// - `attempts_open` (open attempts only, a handful): "does this number have a call under
///   way in any campaign" for the claim, and the open attempts after a restart.
/// - `attempts_number`: the 24 h cap counts one number's attempts in a time range.
/// - `attempts_call`, `attempts_lead`: lookups by call id and the export's attempts per lead;
///   `attempts_lead` and `attempts_campaign` also serve the foreign keys' cascading deletes.
/// - `journal_open` (open calls only): the calls a restart reports as interrupted.
///
/// `lead_counts` and `attempt_counts` are kept by triggers in the transaction that changes the
/// rows, so `counts` reads a few rows instead of walking a million-entry index, and can never
/// disagree with the tables.
const V1: &str = r#"
CREATE TABLE campaigns (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    definition TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'created',
    created INTEGER NOT NULL
);

CREATE TABLE leads (
    id INTEGER PRIMARY KEY,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    zones TEXT NOT NULL,
    region TEXT,
    fields TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'new',
    claimed_from TEXT,
    next_at INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_outcome TEXT,
    callback_agent TEXT,
    updated INTEGER,
    UNIQUE (campaign_id, number)
);
CREATE INDEX leads_due ON leads (campaign_id, zones, region, state, next_at);
CREATE INDEX leads_pending ON leads (campaign_id, state, next_at)
    WHERE state = 'retry' OR state = 'callback';

CREATE TABLE attempts (
    id INTEGER PRIMARY KEY,
    lead_id INTEGER NOT NULL REFERENCES leads(id) ON DELETE CASCADE,
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    number TEXT NOT NULL,
    attempt_no INTEGER NOT NULL,
    started INTEGER NOT NULL,
    ended INTEGER,
    call TEXT,
    outcome TEXT,
    call_outcome TEXT,
    answered INTEGER NOT NULL DEFAULT 0,
    agent TEXT,
    disposition TEXT,
    note TEXT
);
CREATE INDEX attempts_lead ON attempts (lead_id);
CREATE INDEX attempts_campaign ON attempts (campaign_id);
CREATE INDEX attempts_number ON attempts (number, started);
CREATE INDEX attempts_open ON attempts (number) WHERE ended IS NULL;
CREATE INDEX attempts_call ON attempts (call) WHERE call IS NOT NULL;

CREATE TABLE dnc (
    list TEXT NOT NULL,
    number TEXT NOT NULL,
    added INTEGER NOT NULL,
    PRIMARY KEY (list, number)
) WITHOUT ROWID;

CREATE TABLE journal (
    call TEXT PRIMARY KEY,
    info TEXT,
    created INTEGER,
    ended INTEGER,
    cdr TEXT,
    -- An open row is what a restart reports as interrupted: it needs both.
    CHECK (ended IS NOT NULL OR (info IS NOT NULL AND created IS NOT NULL))
);
CREATE INDEX journal_open ON journal (created) WHERE ended IS NULL;

CREATE TABLE lead_counts (
    campaign_id INTEGER NOT NULL REFERENCES campaigns(id) ON DELETE CASCADE,
    state TEXT NOT NULL,
    n INTEGER NOT NULL,
    PRIMARY KEY (campaign_id, state)
) WITHOUT ROWID;

CREATE TABLE attempt_counts (
    campaign_id INTEGER PRIMARY KEY REFERENCES campaigns(id) ON DELETE CASCADE,
    dialled INTEGER NOT NULL DEFAULT 0,
    answered INTEGER NOT NULL DEFAULT 0,
    bridged INTEGER NOT NULL DEFAULT 0,
    abandoned INTEGER NOT NULL DEFAULT 0
);

CREATE TRIGGER campaigns_counted AFTER INSERT ON campaigns BEGIN
    INSERT INTO attempt_counts (campaign_id) VALUES (new.id);
END;

CREATE TRIGGER leads_counted_insert AFTER INSERT ON leads BEGIN
    INSERT INTO lead_counts (campaign_id, state, n) VALUES (new.campaign_id, new.state, 1)
        ON CONFLICT (campaign_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER leads_counted_update AFTER UPDATE OF state ON leads
    WHEN old.state IS NOT new.state BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE campaign_id = old.campaign_id AND state = old.state;
    INSERT INTO lead_counts (campaign_id, state, n) VALUES (new.campaign_id, new.state, 1)
        ON CONFLICT (campaign_id, state) DO UPDATE SET n = n + 1;
END;
CREATE TRIGGER leads_counted_delete AFTER DELETE ON leads BEGIN
    UPDATE lead_counts SET n = n - 1 WHERE campaign_id = old.campaign_id AND state = old.state;
END;

CREATE TRIGGER attempts_counted_insert AFTER INSERT ON attempts BEGIN
    UPDATE attempt_counts SET
        dialled = dialled + 1,
        answered = answered + new.answered,
        bridged = bridged + (new.outcome IS 'bridged'),
        abandoned = abandoned + (new.outcome IS 'abandoned')
    WHERE campaign_id = new.campaign_id;
END;
CREATE TRIGGER attempts_counted_update AFTER UPDATE OF answered, outcome ON attempts BEGIN
    UPDATE attempt_counts SET
        answered = answered + new.answered - old.answered,
        bridged = bridged + (new.outcome IS 'bridged') - (old.outcome IS 'bridged'),
        abandoned = abandoned + (new.outcome IS 'abandoned') - (old.outcome IS 'abandoned')
    WHERE campaign_id = new.campaign_id;
END;
CREATE TRIGGER attempts_counted_delete AFTER DELETE ON attempts BEGIN
    UPDATE attempt_counts SET
        dialled = dialled - 1,
        answered = answered - old.answered,
        bridged = bridged - (old.outcome IS 'bridged'),
        abandoned = abandoned - (old.outcome IS 'abandoned')
    WHERE campaign_id = old.campaign_id;
END;
"#;

/// Values of the dialer's own, by name: `call_id_floor`, the first call id no running dialer
/// may have handed out yet (the call journal keeps it ahead of the ids in use, so call ids
/// stay unique across a crash and a restart).
const V2: &str = r#"
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
"#;
