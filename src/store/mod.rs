//! Durable state: connector spaces, metaverse, links, watermarks, run history, sync errors.
//!
//! Consumes: the engine's [`State`] (with the [`Plan`] naming its connectors, types, slots and
//! rules) and run records. Produces: the same state on the next run. Everything is stored by
//! name (connector, object type, attribute, rule), never by index, so a changed bundle never
//! misreads stored data. The [`Store`] trait keeps the engine independent of the database;
//! [`sqlite::SqliteStore`] is the embedded default.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod sqlite;

use crate::engine::compile::Plan;
use crate::engine::model::State;

/// A failure of the store, with what it was doing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreError(pub String);

impl std::fmt::Display for StoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
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
    pub detail: String,
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

/// The operations idflow needs from a database.
pub trait Store {
    /// Loads the state for a plan. Objects of connectors or types the plan no longer has are
    /// skipped and described in the returned warnings.
    fn load(&mut self, plan: &Plan) -> Result<(State, Vec<String>), StoreError>;
    /// Saves the whole state in one transaction.
    fn save(&mut self, plan: &Plan, state: &State) -> Result<(), StoreError>;
    fn get_meta(&mut self, key: &str) -> Result<Option<String>, StoreError>;
    fn set_meta(&mut self, key: &str, value: &str) -> Result<(), StoreError>;
    /// Records a run step with its errors; returns its id.
    fn record_run(&mut self, run: &RunRecord, errors: &[ErrorRecord]) -> Result<i64, StoreError>;
    /// The latest run steps, newest first.
    fn runs(&mut self, limit: usize) -> Result<Vec<RunRecord>, StoreError>;
    /// The errors of the latest sync step.
    fn latest_errors(&mut self) -> Result<Vec<ErrorRecord>, StoreError>;
}
