//! [`Store`](crate::Store) on an embedded SQLite file.

/// The SQLite store.
#[derive(Debug)]
pub struct SqliteStore {
    _conn: rusqlite::Connection,
}
