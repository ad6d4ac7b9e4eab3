//! Durable state: connector spaces, metaverse, links, watermarks, run history, sync errors,
//! alerts.
//!
//! Consumes: the engine's [`State`] and its change log (with the [`Plan`] naming its
//! connectors, types, slots and rules) and run records. Produces: the same state on the next
//! run. A save writes only what changed. Connectors, object types, attributes and rules are
//! stored by name (attributes through a stored layout of slot names), never by the bundle's
//! indexes, so a changed bundle never misreads stored data. The [`Store`] trait keeps the engine independent of the database;
//! [`sqlite::SqliteStore`] is the embedded default.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod audit;
pub mod codec;
mod legacy;
pub mod lock;
pub mod sqlite;

use crate::engine::compile::Plan;
use crate::engine::model::State;
use std::path::PathBuf;

/// A failure of the store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreError {
    /// A database call failed while the store was `doing` something.
    Database { doing: String, message: String },
    /// The database file could not be created or opened.
    File { path: PathBuf, message: String },
    /// `idflow state` on a deployment that has not run yet.
    NoState(PathBuf),
    /// The file is an SQLite database, but not idflow's.
    NotAState(PathBuf),
    /// Written by an earlier idflow whose schema a read-only opening cannot upgrade.
    NeedsUpgrade { path: PathBuf, version: i64 },
    /// A stored row that cannot be read back: which one, and why.
    Corrupt { row: String, message: String },
}

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreError::Database { doing, message } => write!(f, "{doing}: {message}"),
            StoreError::File { path, message } => write!(f, "{}: {message}", path.display()),
            StoreError::NoState(p) => {
                write!(f, "{}: no state yet (run `idflow run` first)", p.display())
            }
            StoreError::NotAState(p) => {
                write!(f, "{}: not an idflow state database", p.display())
            }
            StoreError::NeedsUpgrade { path, version } => write!(
                f,
                "{}: written by an earlier idflow (schema version {version}); run `idflow run` once to upgrade it",
                path.display()
            ),
            StoreError::Corrupt { row, message } => write!(f, "{row}: {message}"),
        }
    }
}

impl std::error::Error for StoreError {}

/// One step of a run, as kept in the run history.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RunRecord {
    pub id: i64,
    pub started: String,
    /// full-import, delta-import, full-sync, delta-sync, export.
    pub step: String,
    pub connector: String,
    /// success, completed-sync-errors, stopped-error-limit,
    /// stopped-deletion-threshold-exceeded, stopped-connectivity, ...
    pub status: String,
    pub adds: i64,
    pub updates: i64,
    pub deletes: i64,
    pub renames: i64,
    pub errors: i64,
    pub duration_ms: i64,
    /// A summary of the step's notes (at most [`NOTES_KEPT`] of them, then a count).
    pub detail: String,
    /// Records an import rejected (all of them; at most [`REJECTS_KEPT`] are stored as
    /// [`RejectRecord`]s).
    pub rejected: i64,
}

/// The notes of a step kept in its run-history `detail`.
pub const NOTES_KEPT: usize = 100;
/// The rejected records of one import step stored with it (the rest are only counted).
pub const REJECTS_KEPT: usize = 1000;
/// The run-history entries (steps) kept by default (`keep_runs` in `idflow.toml`).
pub const DEFAULT_KEEP_RUNS: usize = 10_000;

/// A record an import rejected (malformed, or an object the engine could not take).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RejectRecord {
    /// The run-history entry of the import (0 before it is recorded).
    pub run: i64,
    /// The file (or endpoint) read, or the DN of an object the engine rejected.
    pub source: String,
    /// The 1-based line in `source`, when it is a file.
    pub line: Option<u64>,
    pub message: String,
}

/// A stored sync error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorRecord {
    pub run: i64,
    pub category: String,
    pub connector: String,
    pub dn: String,
    pub rule: String,
    pub code: String,
    pub message: String,
}

/// An alert as kept in the state (`serve::alerts` raises, resolves and describes them).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct AlertRecord {
    pub id: i64,
    /// Stable: the kind, then the connector where there is one (`import_failed:HR`). At most
    /// one alert of a key is active at a time.
    pub key: String,
    pub kind: String,
    pub title: String,
    /// error or warning.
    pub severity: String,
    pub description: String,
    pub remediation: Vec<String>,
    pub docs: String,
    /// What was seen: the step's note, the counts, the diagnostics.
    pub detail: String,
    /// RFC 3339 times.
    pub raised_at: String,
    pub resolved_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

/// What a save wrote.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SaveStats {
    /// Connector-space and metaverse objects saved (written or deleted).
    pub objects: usize,
    /// Rows written or deleted in all (objects, references, withheld values, errors).
    pub rows: usize,
}

/// The operations idflow needs from a database.
pub trait Store {
    /// Loads the state for a plan. Objects of connectors or types the plan no longer has are
    /// skipped and described in the returned warnings.
    fn load(&mut self, plan: &Plan) -> Result<(State, Vec<String>), StoreError>;
    /// Saves what changed in the state since the last save ([`State::changes`]) in one
    /// transaction, together with the metadata `meta` (a connector's new watermark or
    /// fingerprint), then clears the state's change log. A failed save changes nothing and
    /// keeps the change log.
    fn save_changes(
        &mut self,
        plan: &Plan,
        state: &mut State,
        meta: &[(&str, &str)],
    ) -> Result<SaveStats, StoreError>;
    /// Writes what changed in the state so far into a step's transaction, opening it, and
    /// clears the state's change log, without committing: the step's [`Store::save_changes`]
    /// writes the rest and commits all of it together. Until then nothing of it is in the
    /// saved state (a process killed meanwhile leaves the state as it was before the step).
    /// A failed part rolls the transaction back.
    fn save_part(&mut self, plan: &Plan, state: &mut State) -> Result<(), StoreError>;
    /// Rolls back a step's transaction opened by [`Store::save_part`] (none: nothing to do).
    /// The state in memory then holds changes the store does not: load it again.
    fn discard_part(&mut self) -> Result<(), StoreError>;
    fn get_meta(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Records a run step with its errors and (at most [`REJECTS_KEPT`] of) its rejected
    /// records; returns its id.
    fn record_run(
        &mut self,
        run: &RunRecord,
        errors: &[ErrorRecord],
        rejects: &[RejectRecord],
    ) -> Result<i64, StoreError>;
    /// The latest run steps, newest first.
    fn runs(&mut self, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    /// The errors of the latest sync step, of the latest import step of each connector
    /// (objects held with data validation errors) and of the latest export step of each
    /// (changes the connected system refused).
    fn latest_errors(&mut self) -> Result<Vec<ErrorRecord>, StoreError>;
    /// The latest import step of each connector that rejected records, with the rejected
    /// records stored, by connector name.
    fn latest_rejects(&mut self) -> Result<Vec<(RunRecord, Vec<RejectRecord>)>, StoreError>;
    /// Deletes the run-history entries older than the newest `keep`, with their errors and
    /// rejected records, but never the latest sync step nor the latest import and export
    /// steps of a connector (what `idflow state errors` shows and the alerts look at). Returns the number of entries deleted.
    fn prune_runs(&mut self, keep: usize) -> Result<usize, StoreError>;
    /// Compacts the database once it has written as many rows as the state has objects
    /// (`objects`, at least [`COMPACT_AFTER_ROWS`]) since it was last compacted: rows
    /// rewritten as objects grow leave pages part-filled (a first cycle leaves a third of the
    /// connector-space table unused). Returns the database's size before and after, in bytes,
    /// when it compacted.
    fn compact_if_due(&mut self, objects: usize) -> Result<Option<(u64, u64)>, StoreError>;
    /// The latest run step of each step name and connector (what the alerts look at).
    fn latest_steps(&mut self) -> Result<Vec<RunRecord>, StoreError>;
    /// Raises `alert` (its `id`, `resolved_at` and acknowledgement are ignored) unless an
    /// alert of its key is active, whose title, description, remediation and detail are then
    /// brought up to date. Returns the alert's id and whether it was raised now.
    fn raise_alert(&mut self, alert: &AlertRecord) -> Result<(i64, bool), StoreError>;
    /// Resolves the active alert of `key` at `at`; returns its id, or None when none was.
    fn resolve_alert(&mut self, key: &str, at: &str) -> Result<Option<i64>, StoreError>;
    /// Records that `who` acknowledged the alert `id` at `at`; false when there is no such
    /// alert.
    fn acknowledge_alert(&mut self, id: i64, who: &str, at: &str) -> Result<bool, StoreError>;
    /// Alerts, newest first: the active ones only, or all (at most `limit`).
    fn alerts(&mut self, active_only: bool, limit: usize) -> Result<Vec<AlertRecord>, StoreError>;
    /// One alert by id.
    fn alert(&mut self, id: i64) -> Result<Option<AlertRecord>, StoreError>;
}

/// The fewest rows written since the last compaction that make one due (a small state is
/// not compacted after every run).
pub const COMPACT_AFTER_ROWS: usize = 10_000;
