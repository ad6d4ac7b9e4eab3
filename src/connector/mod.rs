//! Connectors: the only code that reads from and writes to connected systems.
//!
//! Consumes: a connector's settings (from `idflow.toml`) and the engine's
//! [`ExportDelta`]s (value-level attribute changes). Produces:
//! [`ImportChange`]s for the engine (full or delta import) and [`ExportOutcome`]s. Every
//! connector reports bad input with its location (file, line) and never panics; a read that
//! fails or is cut short is an error, never a partial full import (which would turn the
//! missing objects into deletes).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod csv;
pub mod jsonl;
pub mod ldif;

use crate::engine::export::ExportDelta;
use crate::engine::import::ImportChange;
use crate::value::Value;
use sha2::Digest;
use std::collections::HashMap;
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

/// The attribute that holds each object type's anchor, for targets that assign anchors to the
/// objects they create (file targets, as a directory does): lower-cased type name → attribute.
pub type Anchors = HashMap<String, String>;

/// The [`Anchors`] of a connector's object types: the types whose anchor is an attribute of
/// its own (not the DN).
pub fn anchors(plan: &crate::engine::compile::ConnectorPlan) -> Anchors {
    plan.types
        .iter()
        .filter_map(|t| {
            let a = t.anchor.filter(|&a| Some(a) != t.dn)?;
            Some((t.name.to_lowercase(), t.names.get(a)?.clone()))
        })
        .collect()
}

/// The anchor a file target assigns to a new object: `<Type>_<uuid>`, derived from the DN so
/// it is reproducible (docs/DECISIONS.md 23).
pub fn generated_anchor(ty: &str, dn: &str) -> Value {
    let digest = sha2::Sha256::digest(dn.to_lowercase().as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = uuid::Builder::from_random_bytes(bytes).into_uuid();
    let mut t = ty.to_string();
    if let Some(first) = t.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    Value::from(format!("{t}_{id}"))
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
    /// The file a file connector reads, so that a delta import of an unchanged file can be
    /// skipped ([`fingerprint`]); `None` for connectors that are not files.
    fn source_file(&self) -> Option<&std::path::Path> {
        None
    }
    /// Applies export deltas (the engine's, unchanged). A connector that cannot apply any
    /// change (an unwritable target) returns an error and changes nothing.
    fn export(&mut self, changes: &[ExportDelta]) -> Result<ExportOutcome, ConnectorError>;
}

/// Where a file connector reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub path: PathBuf,
}

/// A file connector that reads one file and writes exports to another.
struct SplitFile {
    source: Box<dyn Connector>,
    target: Box<dyn Connector>,
}

impl Connector for SplitFile {
    fn source_file(&self) -> Option<&std::path::Path> {
        self.source.source_file()
    }

    fn full_import(&mut self) -> Result<Imported, ConnectorError> {
        self.source.full_import()
    }

    fn export(&mut self, changes: &[ExportDelta]) -> Result<ExportOutcome, ConnectorError> {
        self.target.export(changes)
    }
}

/// Opens the connector a deployment configures for a bundle connector. A file connector whose
/// `target` is its `path` (the default) is a directory kept in that file: it reads it and
/// writes exports back to it, so the next import confirms them.
pub fn open(
    cfg: &crate::config::ConnectorConfig,
    plan: &crate::engine::compile::ConnectorPlan,
) -> Result<Box<dyn Connector>, ConnectorError> {
    let types = ldif::attr_types(plan.types.iter().map(|t| &t.def));
    let anchors = anchors(plan);
    let missing = |what: &str| ConnectorError {
        source: cfg.name.clone(),
        line: None,
        message: format!("no {what} configured"),
    };
    let path = cfg.path.clone();
    let same_target = cfg.target.is_none() || cfg.target == cfg.path;
    match cfg.kind.as_str() {
        "ldif" => {
            let path = path.ok_or_else(|| missing("path"))?;
            if same_target {
                Ok(Box::new(
                    ldif::LdifTarget::new(path)
                        .with_types(types)
                        .with_anchors(anchors),
                ))
            } else {
                let target = cfg.target.clone().ok_or_else(|| missing("target"))?;
                Ok(Box::new(SplitFile {
                    source: Box::new(ldif::LdifSource::new(path).with_types(types.clone())),
                    target: Box::new(
                        ldif::LdifTarget::new(target)
                            .with_types(types)
                            .with_anchors(anchors),
                    ),
                }))
            }
        }
        "jsonl" => {
            let path = path.ok_or_else(|| missing("path"))?;
            if same_target {
                Ok(Box::new(
                    jsonl::JsonlTarget::new(path)
                        .with_types(types)
                        .with_anchors(anchors),
                ))
            } else {
                let target = cfg.target.clone().ok_or_else(|| missing("target"))?;
                Ok(Box::new(SplitFile {
                    source: Box::new(jsonl::JsonlSource::new(path).with_types(types.clone())),
                    target: Box::new(
                        jsonl::JsonlTarget::new(target)
                            .with_types(types)
                            .with_anchors(anchors),
                    ),
                }))
            }
        }
        "csv" => {
            let path = path.ok_or_else(|| missing("path"))?;
            let c = cfg.csv.as_ref().ok_or_else(|| missing("csv settings"))?;
            let mut src =
                csv::CsvSource::new(path, c.object_type.clone(), c.anchor.clone(), c.dn.clone());
            src.columns = c
                .columns
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            src.types = types;
            src.multi_value_separator = c.separator;
            Ok(Box::new(src))
        }
        other => Err(ConnectorError {
            source: cfg.name.clone(),
            line: None,
            message: format!(
                "connector kind `{other}` is not available yet: use an ldif, csv or jsonl file"
            ),
        }),
    }
}

/// The fingerprint of what a file connector reads: the SHA-256 of the file's bytes (empty for
/// a missing file); `None` for connectors that are not files. Equal fingerprints mean the same
/// content, so an import of it would change nothing that the last import did not.
pub fn fingerprint(conn: &dyn Connector) -> Result<Option<Vec<u8>>, ConnectorError> {
    use sha2::Digest;
    let Some(path) = conn.source_file() else {
        return Ok(None);
    };
    Ok(Some(match ldif::read_file(path)? {
        Some(bytes) => sha2::Sha256::digest(&bytes).to_vec(),
        None => Vec::new(),
    }))
}
