//! Connectors: the only code that reads from and writes to connected systems.
//!
//! Consumes: a connector's settings (from `idflow.toml`) and the engine's [`ExportDelta`]s
//! (value-level attribute changes). Produces: [`ImportChange`]s for the engine, handed page by
//! page to an [`ImportSink`] (a full or a delta read), and one [`ExportResult`] per delta.
//!
//! The contract ([`Connector`], ARCHITECTURE.md "The connector contract"):
//! - **import** streams: the connector hands its changes to the sink in pages as it reads them
//!   (never the whole source at once) and its unreadable records to [`ImportSink::reject`],
//!   then says what it did ([`ImportEnd`]): a complete read ([`ImportKind::Full`]: what it did
//!   not show is gone) or the changes since the watermark it was given ([`ImportKind::Delta`]),
//!   and the watermark to resume from. A connector without change tracking answers a delta
//!   request with a full read. An upsert may carry only the attributes that changed
//!   ([`ImportChange::Partial`]); a delete names the anchor, the DN or both.
//! - **export** answers one [`ExportResult`] per delta, in order: applied (with the anchor the
//!   system assigned to a new object), retry later, or failed with an [`ExportErrorCategory`].
//!   [`Connector::confirms_by_reimport`] tells whether the runner confirms applied changes
//!   by importing again (file targets) or records them as confirmed (a server's answer).
//! - a connector that reads records it can recognise from one read to the next (an LDIF
//!   file's entries, a CSV file's rows) is handed, before each import, the digests of the
//!   records the connector space's objects were read from ([`KnownRecords`]): a record it
//!   recognises is passed on as [`ImportChange::Unchanged`] without being parsed, so a read of
//!   a large file with a few changed entries parses those entries only.
//! - one connector instance serves a whole run; it is `Send`, so the runner may run its import
//!   on a thread of its own while the engine classifies the pages.
//!
//! [`Pager`] collects a connector's changes into pages of [`PAGE_SIZE`]; [`collect`] keeps a
//! whole read, for tests and tools (the runner never does).
//!
//! Every connector reports bad input with its location (file, line) and never panics; a read
//! that fails or is cut short is an error, never a partial full read (which would turn the
//! missing objects into deletes).

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod csv;
pub mod graph;
pub mod http;
pub mod jsonl;
pub mod ldap;
pub mod ldif;
pub mod scim;
mod streamed;

pub use crate::engine::export::{ExportErrorCategory, ExportResult};

use crate::engine::export::ExportDelta;
use crate::engine::import::{ImportChange, KnownRecords};
use crate::value::Value;
use sha2::Digest;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

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

/// The records a file connector hands to its sink at a time.
pub const PAGE_SIZE: usize = 1000;

/// What an import is asked to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportMode<'a> {
    /// Every object in scope.
    Full,
    /// The changes since `watermark` (from the [`ImportEnd`] of an earlier read of this
    /// connector); without one, everything.
    Delta { watermark: Option<&'a str> },
}

/// What a read was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ImportKind {
    /// Every object in scope: an object imported before that the read did not show is gone.
    #[default]
    Full,
    /// Only changes: objects the read did not show are as they were.
    Delta,
}

/// How an import ended.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ImportEnd {
    /// What the connector actually read (a connector without change tracking answers a delta
    /// request with a full read).
    pub kind: ImportKind,
    /// Where the next delta read resumes, when the connector tracks changes.
    pub watermark: Option<String>,
}

impl ImportEnd {
    /// A complete read, without a watermark.
    pub fn full() -> ImportEnd {
        ImportEnd::default()
    }
}

/// Where a connector's import goes, page by page.
pub trait ImportSink {
    /// Takes the next page of changes, in the order read. An error stops the read: the
    /// connector returns it as it is.
    fn page(&mut self, changes: Vec<ImportChange>) -> Result<(), ConnectorError>;
    /// Takes a record the connector could not read (the read goes on; a read with a rejected
    /// record is incomplete and deletes nothing).
    fn reject(&mut self, rejected: Rejected);
}

/// Collects changes into pages of [`PAGE_SIZE`] for a sink.
pub struct Pager<'s> {
    sink: &'s mut dyn ImportSink,
    page: Vec<ImportChange>,
}

impl<'s> Pager<'s> {
    pub fn new(sink: &'s mut dyn ImportSink) -> Pager<'s> {
        Pager {
            sink,
            page: Vec::new(),
        }
    }

    /// Adds a change; hands the page over when it is full.
    pub fn push(&mut self, change: ImportChange) -> Result<(), ConnectorError> {
        if self.page.capacity() == 0 {
            self.page.reserve_exact(PAGE_SIZE);
        }
        self.page.push(change);
        if self.page.len() >= PAGE_SIZE {
            self.flush()?;
        }
        Ok(())
    }

    /// Passes a rejected record on.
    pub fn reject(&mut self, rejected: Rejected) {
        self.sink.reject(rejected);
    }

    /// Hands over what is collected.
    pub fn flush(&mut self) -> Result<(), ConnectorError> {
        if self.page.is_empty() {
            return Ok(());
        }
        self.sink.page(std::mem::take(&mut self.page))
    }
}

/// A read held whole: for tests and tools (the runner streams).
#[derive(Debug, Clone, Default)]
pub struct Imported {
    pub changes: Vec<ImportChange>,
    /// Records skipped because they were malformed (reported, never half-imported).
    pub rejected: Vec<Rejected>,
    /// The size of each page the connector handed over.
    pub pages: Vec<usize>,
    pub end: ImportEnd,
}

impl ImportSink for Imported {
    fn page(&mut self, changes: Vec<ImportChange>) -> Result<(), ConnectorError> {
        self.pages.push(changes.len());
        self.changes.extend(changes);
        Ok(())
    }

    fn reject(&mut self, rejected: Rejected) {
        self.rejected.push(rejected);
    }
}

/// Reads the next line of a file connector's input into `buf`: its bytes without the line end
/// (`\n` or `\r\n`), or None at the end. `no` counts the lines read and names the failing
/// one in a read error of `source`.
pub(crate) fn next_line<'b, R: std::io::BufRead>(
    input: &mut R,
    buf: &'b mut Vec<u8>,
    no: &mut usize,
    source: &str,
) -> Result<Option<&'b [u8]>, ConnectorError> {
    buf.clear();
    let n = input.read_until(b'\n', buf).map_err(|e| ConnectorError {
        source: source.to_string(),
        line: Some(*no + 1),
        message: format!("cannot read: {e}"),
    })?;
    if n == 0 {
        return Ok(None);
    }
    *no += 1;
    let line = buf.strip_suffix(b"\n").unwrap_or(buf);
    Ok(Some(line.strip_suffix(b"\r").unwrap_or(line)))
}

/// Runs an import of `conn` and keeps the whole read.
pub fn collect<C: Connector + ?Sized>(
    conn: &mut C,
    mode: ImportMode<'_>,
) -> Result<Imported, ConnectorError> {
    let mut out = Imported::default();
    out.end = conn.import(mode, &mut out)?;
    Ok(out)
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
            Some((t.name.to_lowercase(), t.names.get(a)?.to_string()))
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

/// A connected system. One instance serves a whole run (imports, exports, the confirming
/// imports); it is `Send`, so the runner can run it on a thread of its own.
pub trait Connector: Send {
    /// Reads the objects in scope (`Full`) or the changes since a watermark (`Delta`) and
    /// hands them to `sink` in pages as they are read, the rejected records to
    /// [`ImportSink::reject`]. An error means the read failed: the engine stages nothing of
    /// it.
    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError>;
    /// Applies export deltas (the engine's, unchanged) and answers one result per delta, in
    /// order. A connector that cannot apply any change (an unwritable target) returns an error
    /// and changes nothing.
    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError>;
    /// Whether applied changes are confirmed by importing again (file targets: reading the
    /// file back is the confirmation) rather than recorded as confirmed from the results.
    fn confirms_by_reimport(&self) -> bool;
    /// Whether the objects an import hands over are already only those in the configured
    /// partitions (a directory searched under them); otherwise the runner leaves out the
    /// others.
    fn reads_partitions_only(&self) -> bool {
        false
    }
    /// The file a file connector reads, so that a delta import of an unchanged file can be
    /// skipped ([`fingerprint`]); `None` for connectors that are not files.
    fn source_file(&self) -> Option<&std::path::Path> {
        None
    }
    /// What the last export changed in what this connector reads, as a read would now show
    /// it: each object it wrote, read back from its written form, and each object it deleted,
    /// with the fingerprint of the file it wrote; taken once. `None` when the connector does
    /// not know (it reads something other than what it writes, or the export renamed an
    /// object): the runner then reads it all again.
    /// The runner confirms an export with these changes alone only when the state held all
    /// of what the connector read before the export (the file unchanged since the last
    /// complete import): then they are exactly the difference a whole read would find.
    fn take_written(&mut self) -> Option<Written> {
        None
    }
    /// Whether this connector recognises the records it reads from one read to the next (the
    /// entries of a file): the runner then hands it, before each import, the records the
    /// connector space's objects were read from ([`Connector::recognise`]).
    fn recognises_records(&self) -> bool {
        false
    }
    /// The records the connector space's objects were read from, for the next import only: a
    /// record whose digest is among them is handed over as [`ImportChange::Unchanged`]
    /// without being read any further, every other record as [`ImportChange::Record`], with
    /// its digest.
    fn recognise(&mut self, _known: Arc<KnownRecords>) {}
}

/// What an export to a file wrote ([`Connector::take_written`]).
#[derive(Debug, Clone)]
pub struct Written {
    /// Each object written, read back from its written form, and each object deleted.
    pub changes: Vec<ImportChange>,
    /// The [`fingerprint`] of the file as the export wrote it (the digest of the bytes
    /// written): what the state holds once the changes are confirmed, whatever happens to the
    /// file afterwards.
    pub fingerprint: Vec<u8>,
}

/// Where a file connector reads or writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSettings {
    pub path: PathBuf,
}

/// A file connector that reads one file and writes exports to another (the confirming import
/// reads the source file).
struct SplitFile {
    source: Box<dyn Connector>,
    target: Box<dyn Connector>,
}

impl Connector for SplitFile {
    fn source_file(&self) -> Option<&std::path::Path> {
        self.source.source_file()
    }

    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        self.source.import(mode, sink)
    }

    fn recognises_records(&self) -> bool {
        self.source.recognises_records()
    }

    fn recognise(&mut self, known: Arc<KnownRecords>) {
        self.source.recognise(known);
    }

    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        self.target.export(deltas)
    }

    fn confirms_by_reimport(&self) -> bool {
        self.target.confirms_by_reimport()
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
        "ldap" | "ad" => Ok(Box::new(ldap::LdapConnector::new(cfg, plan)?)),
        "scim" => Ok(Box::new(scim::ScimConnector::new(cfg, plan)?)),
        "graph" => Ok(Box::new(graph::GraphConnector::new(cfg, plan)?)),
        other => Err(ConnectorError {
            source: cfg.name.clone(),
            line: None,
            message: format!(
                "connector kind `{other}` is not available yet: use scim, graph, ldap (or ad), or an ldif, csv or jsonl file"
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
    // Streamed through the hash: the file is not held in memory.
    let Some(mut input) = ldif::open_file(path)? else {
        return Ok(Some(Vec::new()));
    };
    let mut hash = sha2::Sha256::new();
    let mut hashing = Hashing {
        out: &mut std::io::sink(),
        hash: &mut hash,
    };
    std::io::copy(&mut input, &mut hashing).map_err(|e| ConnectorError {
        source: path.display().to_string(),
        line: None,
        message: format!("cannot read: {e}"),
    })?;
    Ok(Some(hash.finalize().to_vec()))
}

/// A writer that hashes what it passes on to `out`: the [`fingerprint`] of a file as it is
/// read or written.
pub(crate) struct Hashing<'a> {
    pub out: &'a mut dyn std::io::Write,
    pub hash: &'a mut sha2::Sha256,
}

impl std::io::Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use sha2::Digest;
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}
