//! The call journal's writer: every call is written to the store when it is created, again
//! when a leg's dialog is confirmed (customer answer, bridge), and with its CDR when it ends,
//! by a thread of its own so that SQLite's fsync never holds up signalling. Whatever arrived
//! while a commit ran goes into the next one (group commit), so a burst of set-ups costs a
//! few fsyncs, not one per write.
//!
//! Started before the signalling loop, it also reads back what a crash left: the calls never
//! ended (each gets its `interrupted` CDR and a BYE on each confirmed dialog) and the first
//! call id this run may use. The floor of call ids is kept [`ID_BLOCK`] ahead of the highest
//! id journalled, in the same commits, so an id handed out after the last commit before a
//! crash is still below it and never reused.
//!
//! A call created less than one commit before the process died is missing from the journal:
//! it gets no `interrupted` CDR. The window is the commit's own time (milliseconds).

use crate::b2bua::journal::JournalCall;
use crate::control::{CallId, Cdr};
use std::path::Path;
use std::sync::mpsc;
use store::{JournalWrite, SqliteStore, Store, StoreError};

/// How far the persisted call id floor runs ahead of the ids in use.
pub const ID_BLOCK: u64 = 10_000;
/// The floor is raised when the ids in use come this close to it.
const ID_MARGIN: u64 = 5_000;

/// What the writer thread is asked to write.
#[derive(Debug)]
enum Entry {
    /// The call is under way; `info` is its [`JournalCall`] as JSON.
    Open {
        call: u64,
        info: String,
        created: i64,
    },
    /// The call ended with this CDR (JSON).
    Close { call: u64, cdr: String, ended: i64 },
}

/// Where the signalling task sends journal writes; they never block it.
#[derive(Clone, Debug)]
pub struct Journal {
    tx: mpsc::Sender<Entry>,
}

/// What the previous run left in the journal.
#[derive(Debug)]
pub struct Recovered {
    /// Calls journalled open and never ended, oldest first.
    pub calls: Vec<JournalCall>,
    /// The first call id this run may hand out.
    pub first_call_id: u64,
}

/// Why the journal could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct JournalError {
    path: String,
    source: StoreError,
}

impl Journal {
    /// Opens the store at `path`, reads what a crash left, moves the call id floor past this
    /// run's first block, and starts the writer thread.
    pub fn start(
        path: &Path,
    ) -> Result<(Journal, Recovered, std::thread::JoinHandle<()>), JournalError> {
        let err = |source| JournalError {
            path: path.display().to_string(),
            source,
        };
        let mut store = SqliteStore::open(path).map_err(err)?;
        let mut calls = Vec::new();
        let mut highest = 0u64;
        for (call, info, _) in store.journal_unfinished().map_err(err)? {
            highest = highest.max(call.parse().unwrap_or(0));
            match serde_json::from_str::<JournalCall>(&info) {
                Ok(c) => calls.push(c),
                Err(e) => tracing::warn!(
                    target: "dialer",
                    "call {call}: the journal entry is unreadable ({e}); no interrupted CDR"
                ),
            }
        }
        let first_call_id = store.call_id_floor().map_err(err)?.max(highest + 1).max(1);
        let floor = first_call_id + ID_BLOCK;
        store
            .journal_write(&[JournalWrite::CallIdFloor(floor)])
            .map_err(err)?;
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("journal".into())
            .spawn(move || write_entries(store, rx, floor))
            .expect("spawning a thread only fails when the process is out of resources");
        let recovered = Recovered {
            calls,
            first_call_id,
        };
        Ok((Journal { tx }, recovered, thread))
    }

    /// Journals `call` as under way (again: the latest info replaces the earlier).
    pub fn open(&self, call: &JournalCall) {
        let Ok(info) = serde_json::to_string(call) else {
            return;
        };
        let _ = self.tx.send(Entry::Open {
            call: call.cdr.id.0,
            info,
            created: call.cdr.created as i64,
        });
    }

    /// Journals the end of `call` with its CDR.
    pub fn close(&self, call: CallId, cdr: &Cdr) {
        let Ok(json) = serde_json::to_string(cdr) else {
            return;
        };
        let _ = self.tx.send(Entry::Close {
            call: call.0,
            cdr: json,
            ended: cdr.ended as i64,
        });
    }
}

/// The writer thread: one transaction for everything queued, until every sender is gone.
fn write_entries(mut store: SqliteStore, rx: mpsc::Receiver<Entry>, mut floor: u64) {
    while let Ok(first) = rx.recv() {
        let mut entries = vec![first];
        entries.extend(rx.try_iter());
        let highest = entries
            .iter()
            .map(|e| match e {
                Entry::Open { call, .. } | Entry::Close { call, .. } => *call,
            })
            .max()
            .unwrap_or(0);
        let ids: Vec<String> = entries
            .iter()
            .map(|e| match e {
                Entry::Open { call, .. } | Entry::Close { call, .. } => call.to_string(),
            })
            .collect();
        let mut writes: Vec<JournalWrite<'_>> = entries
            .iter()
            .zip(&ids)
            .map(|(e, id)| match e {
                Entry::Open { info, created, .. } => JournalWrite::Open {
                    call: id,
                    info,
                    created: *created,
                },
                Entry::Close { cdr, ended, .. } => JournalWrite::Close {
                    call: id,
                    cdr,
                    ended: *ended,
                },
            })
            .collect();
        if highest + ID_MARGIN >= floor {
            floor = highest + ID_BLOCK;
            writes.push(JournalWrite::CallIdFloor(floor));
        }
        if let Err(e) = store.journal_write(&writes) {
            tracing::warn!(
                target: "dialer",
                "the call journal could not be written ({e}): {} entries lost",
                writes.len()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::b2bua::journal::JournalLeg;
    use crate::b2bua::CallOutcome;
    use crate::control::HungUpBy;

    fn call(id: u64) -> JournalCall {
        JournalCall {
            cdr: Cdr {
                id: CallId(id),
                customer_call_id: format!("c{id}"),
                agent_call_id: None,
                number: "+15550200".into(),
                dialled: "+15550200".into(),
                agent: None,
                pool: None,
                tag: None,
                agent_attempts: 0,
                connect_ms: None,
                trunk: "carrier".into(),
                created: 100.0 + id as f64,
                progress: None,
                answered: None,
                bridged: None,
                ended: 0.0,
                outcome: CallOutcome::Interrupted,
                sip_status: 0,
                q850_cause: 41,
                hung_up_by: HungUpBy::Dialer,
                customer_codec: None,
                agent_codec: None,
                packets_to_agent: 0,
                packets_to_customer: 0,
                lost_from_customer: 0,
                lost_from_agent: 0,
            },
            legs: vec![JournalLeg {
                call_id: format!("c{id}"),
                local_tag: "l".into(),
                remote_tag: "r".into(),
                local_seq: 1,
                local_uri: "<sip:a@b>".into(),
                remote_uri: "<sip:c@d>".into(),
                remote_target: "sip:c@127.0.0.1:5070".into(),
                route_set: vec![],
                addr: "127.0.0.1:5070".parse().unwrap(),
                transport: "udp".into(),
            }],
        }
    }

    #[test]
    fn calls_left_open_come_back_and_ids_are_never_reused() {
        let dir = std::env::temp_dir().join(format!("journal-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("dialer.db");
        let _ = std::fs::remove_file(&path);
        let (journal, recovered, thread) = Journal::start(&path).unwrap();
        assert!(recovered.calls.is_empty());
        assert_eq!(recovered.first_call_id, 1);
        for id in 1..=3 {
            journal.open(&call(id));
        }
        let mut ended = call(2).cdr;
        ended.outcome = CallOutcome::Bridged;
        journal.close(CallId(2), &ended);
        drop(journal);
        thread.join().unwrap();

        // As after kill -9: calls 1 and 3 never ended; ids start past the whole first block.
        let (journal, recovered, thread) = Journal::start(&path).unwrap();
        let open: Vec<u64> = recovered.calls.iter().map(|c| c.cdr.id.0).collect();
        assert_eq!(open, [1, 3]);
        assert_eq!(recovered.calls[0], call(1), "read back as written");
        assert_eq!(recovered.first_call_id, 1 + ID_BLOCK);
        drop(journal);
        thread.join().unwrap();
        let (_, recovered, _) = Journal::start(&path).unwrap();
        assert_eq!(
            recovered.first_call_id,
            1 + 2 * ID_BLOCK,
            "each run its own block"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
