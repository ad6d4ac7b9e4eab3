//! Connectors: the only code that reads from and writes to connected systems.
//!
//! Consumes: a connector's settings (from `idflow.toml`) and staged exports. Produces:
//! [`ImportChange`]s for the engine (full or delta import) and [`ExportOutcome`]s. Every
//! connector reports bad input with its location (file, line) and never panics; a read that
//! fails or is cut short is an error, never a partial full import (which would turn the
//! missing objects into deletes).

pub mod csv;
pub mod jsonl;
pub mod ldif;

use crate::engine::import::ImportChange;
use crate::value::Value;
use std::path::PathBuf;

/// An error of a connector: where, and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectorError {
    /// The file or endpoint.
    pub source: String,
    /// 1-based line, when the error is in a file.
    pub line: Option<usize>,
    pub message: String,
}

impl std::fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(l) => write!(f, "{}:{l}: {}", self.source, self.message),
            None => write!(f, "{}: {}", self.source, self.message),
        }
    }
}

impl std::error::Error for ConnectorError {}

/// A record that could not be read and was skipped (the rest of the read goes on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    pub source: String,
    pub line: usize,
    pub message: String,
}

/// The result of an import.
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub changes: Vec<ImportChange>,
    /// Records skipped because they were malformed (reported, never half-imported).
    pub rejected: Vec<Rejected>,
    /// The watermark to resume a delta import from, when the connector has one.
    pub watermark: Option<String>,
}

/// What to do to one object of the connected system.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportKind {
    Add,
    Update,
    Delete,
}

/// One staged export, as a connector applies it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportChange {
    pub kind: ExportKind,
    pub object_type: String,
    /// The object's DN before the change.
    pub dn: String,
    /// A new DN (rename), for updates.
    pub new_dn: Option<String>,
    /// The attribute values to set: every value for an add; the changed ones for an update
    /// (`Value::Null` removes the attribute).
    pub attrs: Vec<(String, Value)>,
}

/// The result of an export.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExportOutcome {
    pub applied: usize,
    /// Changes the connected system refused, with the reason (the rest were applied).
    pub failed: Vec<(String, String)>,
}

/// A connected system.
pub trait Connector {
    /// Reads every object in scope.
    fn full_import(&mut self) -> Result<Imported, ConnectorError>;
    /// Reads the changes since `watermark` (connectors without change tracking read everything
    /// and the engine computes the differences).
    fn delta_import(&mut self, watermark: Option<&str>) -> Result<Imported, ConnectorError> {
        let _ = watermark;
        self.full_import()
    }
    /// Applies changes. A connector that cannot apply any change (an unwritable target) returns
    /// an error and changes nothing.
    fn export(&mut self, changes: &[ExportChange]) -> Result<ExportOutcome, ConnectorError>;
}

/// Where a file connector reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub path: PathBuf,
}
