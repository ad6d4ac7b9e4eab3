//! The audit trail of `idflow serve`: who did what, and when, through the operator actions
//! of the HTTP side (run a cycle now, allow deletes once, acknowledge an alert).
//!
//! Consumes: the state database's path. Produces: rows of the `audit` table in that database,
//! written on a connection of their own (the service's runner keeps its own connection and the
//! run lock; SQLite's busy timeout orders the two writers), and the newest rows read back. The
//! table is created by the first action recorded; a state without it has an empty trail.

use super::StoreError;
use rusqlite::{Connection, OpenFlags, params};
use std::path::Path;

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, who TEXT NOT NULL,
    role TEXT NOT NULL, action TEXT NOT NULL, detail TEXT NOT NULL, outcome TEXT NOT NULL)";

/// One operator action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditRecord {
    pub id: i64,
    /// When (RFC 3339, UTC).
    pub at: String,
    /// The token's name.
    pub who: String,
    pub role: String,
    /// `cycle`, `allow-deletes`, `acknowledge-alert`.
    pub action: String,
    pub detail: String,
    /// `accepted`, or why it was not.
    pub outcome: String,
}

fn fail(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |e| StoreError::File {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Records an action in the state database at `path` (which must exist).
pub fn record(
    path: &Path,
    who: &str,
    role: &str,
    action: &str,
    detail: &str,
    outcome: &str,
) -> Result<(), StoreError> {
    if !path.exists() {
        return Err(StoreError::NoState(path.to_path_buf()));
    }
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).map_err(fail(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(fail(path))?;
    conn.execute_batch(SCHEMA).map_err(fail(path))?;
    conn.execute(
        "INSERT INTO audit (at, who, role, action, detail, outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            jiff::Timestamp::now().to_string(),
            who,
            role,
            action,
            detail,
            outcome
        ],
    )
    .map_err(fail(path))?;
    Ok(())
}

/// The newest `limit` actions, newest first (none when the state has no audit table yet).
pub fn recent(path: &Path, limit: usize) -> Result<Vec<AuditRecord>, StoreError> {
    if !path.exists() {
        return Err(StoreError::NoState(path.to_path_buf()));
    }
    let conn =
        Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY).map_err(fail(path))?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(fail(path))?;
    let exists: i64 = conn
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'audit'",
            [],
            |r| r.get(0),
        )
        .map_err(fail(path))?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let mut stmt = conn
        .prepare(
            "SELECT id, at, who, role, action, detail, outcome FROM audit ORDER BY id DESC LIMIT ?1",
        )
        .map_err(fail(path))?;
    let rows = stmt
        .query_map(params![limit as i64], |r| {
            Ok(AuditRecord {
                id: r.get(0)?,
                at: r.get(1)?,
                who: r.get(2)?,
                role: r.get(3)?,
                action: r.get(4)?,
                detail: r.get(5)?,
                outcome: r.get(6)?,
            })
        })
        .map_err(fail(path))?;
    rows.collect::<Result<_, _>>().map_err(fail(path))
}
