//! Run profiles: full and delta import, full and delta sync, export, and the sync cycle.
//!
//! Consumes: a [`Deployment`] (from `idflow.toml`), its bundle, the [`Store`] and the
//! connectors. Produces: the updated state (saved after every step, each save one
//! transaction), the engine's export deltas (`engine::export`) handed to the connectors as
//! they are, and a [`StepReport`] per step, also kept in the run history. A changed bundle is detected (by the hash of its files) and makes
//! the cycle's sync a full sync. An export with more deletes than the threshold is blocked
//! whole (`stopped-deletion-threshold-exceeded`) unless allowed; staging mode runs imports and
//! syncs but no export.
//!
//! [`Runner::open`] takes the state's run lock (`store::lock`) before reading the state and
//! holds it until the runner is dropped, so two runs never work on one state;
//! [`Runner::open_read_only`] reads the state without the lock and without writing. The records
//! an import rejects are kept as rows (at most `store::REJECTS_KEPT` per step), not in the
//! step's notes; [`Runner::prune_history`] applies the run-history retention (`keep_runs`).

use crate::config::{ConnectorConfig, Deployment};
use crate::connector::{self, Connector};
use crate::diag::Diagnostic;
use crate::engine::Engine;
use crate::engine::export::ExportDelta;
use crate::engine::import::ImportChange;
use crate::engine::model::{ExportOp, SyncError};
use crate::engine::sync::{Mode, RunStatus};
use crate::frontend;
use crate::source::SourceMap;
use crate::store::lock::{LockError, StateLock};
use crate::store::sqlite::SqliteStore;
use crate::store::{ErrorRecord, NOTES_KEPT, RejectRecord, RunRecord, Store, StoreError};
use sha2::Digest;
use std::time::Instant;

/// Why a run could not start or a step could not run.
#[derive(Debug)]
pub enum RunError {
    /// The configuration is invalid.
    Config(Vec<crate::config::ConfigError>),
    /// The bundle has check errors.
    Bundle(SourceMap, Vec<Diagnostic>),
    Store(StoreError),
    /// Another process holds the state's run lock (or it cannot be taken).
    Locked(LockError),
    /// The bundle's files could not be read.
    BundleFiles(crate::source::LoadError),
    /// A connector of idflow.toml that the bundle does not declare.
    UndeclaredConnector {
        config: std::path::PathBuf,
        connector: String,
        bundle: std::path::PathBuf,
    },
    /// A connector name neither the bundle nor idflow.toml knows.
    UnknownConnector(String),
    /// A bundle connector asked for by name that has no settings in idflow.toml.
    NoSettings {
        connector: String,
        config: std::path::PathBuf,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Config(errs) => {
                for e in errs {
                    writeln!(f, "{e}")?;
                }
                Ok(())
            }
            RunError::Bundle(_, d) => write!(f, "the bundle has {} error(s)", d.len()),
            RunError::Store(e) => write!(f, "state database: {e}"),
            RunError::Locked(e) => write!(f, "{e}"),
            RunError::BundleFiles(e) => write!(f, "bundle: {e}"),
            RunError::UndeclaredConnector {
                config,
                connector,
                bundle,
            } => write!(
                f,
                "{}: connector \"{connector}\" is not declared in the bundle {}",
                config.display(),
                bundle.display()
            ),
            RunError::UnknownConnector(n) => write!(f, "unknown connector \"{n}\""),
            RunError::NoSettings { connector, config } => write!(
                f,
                "connector \"{connector}\" has no settings in {}",
                config.display()
            ),
        }
    }
}

/// How a step ended. The names are Entra's run-profile statuses where Entra has one; they are
/// what the CLI prints and the run history keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StepStatus {
    #[default]
    Success,
    /// An import that skipped rejected records (and so staged no deletes).
    CompletedWarnings,
    /// A sync with per-object sync errors.
    CompletedSyncErrors,
    /// An export of which the connected system refused some changes.
    CompletedExportErrors,
    /// Staging mode: the export was computed, nothing was sent.
    Staged,
    /// The connected system could not be read or written.
    StoppedConnectivity,
    /// A read that yields no objects where objects were imported before (docs/DECISIONS.md 25).
    StoppedIncompleteRead,
    /// More deletes than the delete threshold, on import or export.
    StoppedDeletionThresholdExceeded,
    /// A sync that reached the error limit.
    StoppedErrorLimit,
}

impl StepStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Success => "success",
            StepStatus::CompletedWarnings => "completed-warnings",
            StepStatus::CompletedSyncErrors => "completed-sync-errors",
            StepStatus::CompletedExportErrors => "completed-export-errors",
            StepStatus::Staged => "staged",
            StepStatus::StoppedConnectivity => "stopped-connectivity",
            StepStatus::StoppedIncompleteRead => "stopped-incomplete-read",
            StepStatus::StoppedDeletionThresholdExceeded => "stopped-deletion-threshold-exceeded",
            StepStatus::StoppedErrorLimit => "stopped-error-limit",
        }
    }

    /// The step did not do its work (nothing of it was staged or sent).
    pub fn is_stopped(self) -> bool {
        matches!(
            self,
            StepStatus::StoppedConnectivity
                | StepStatus::StoppedIncompleteRead
                | StepStatus::StoppedDeletionThresholdExceeded
                | StepStatus::StoppedErrorLimit
        )
    }
}

impl std::fmt::Display for StepStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<RunStatus> for StepStatus {
    fn from(s: RunStatus) -> StepStatus {
        match s {
            RunStatus::Success => StepStatus::Success,
            RunStatus::CompletedWithErrors => StepStatus::CompletedSyncErrors,
            RunStatus::StoppedErrorLimit => StepStatus::StoppedErrorLimit,
        }
    }
}

/// The outcome of one step.
#[derive(Debug, Clone, Default)]
pub struct StepReport {
    pub step: String,
    pub connector: String,
    pub status: StepStatus,
    pub adds: usize,
    pub updates: usize,
    pub deletes: usize,
    pub renames: usize,
    pub errors: usize,
    pub duration_ms: u128,
    /// Human-readable notes (errors, withheld exports, ...).
    pub notes: Vec<String>,
    /// The records an import rejected (skipped), in the order read.
    pub rejects: Vec<RejectRecord>,
}

/// Options of a cycle.
#[derive(Debug, Clone, Copy, Default)]
pub struct CycleOptions {
    /// Let an export with up to this many deletes through the threshold once.
    pub allow_deletes: usize,
    /// Force a full sync.
    pub full_sync: bool,
}

/// An opened deployment: engine, store and connectors.
pub struct Runner {
    pub deployment: Deployment,
    pub engine: Engine,
    /// The state database, through the [`Store`] trait.
    store: Box<dyn Store>,
    bundle_hash: String,
    /// The stored bundle hash differs (or there is none): the next sync must be full.
    pub needs_full_sync: bool,
    pub warnings: Vec<String>,
    /// The state's run lock (none when opened read-only), released on drop.
    _lock: Option<StateLock>,
}

fn now_text() -> String {
    jiff::Timestamp::now().to_string()
}

/// The hash of a bundle's files (names and contents, in path order).
fn bundle_hash(map: &SourceMap) -> String {
    let mut h = sha2::Sha256::new();
    for f in map.files() {
        h.update(f.name.as_bytes());
        h.update([0]);
        h.update(f.text.as_bytes());
        h.update([0]);
    }
    hex(h)
}

/// A finished SHA-256 in hexadecimal.
fn hex(h: sha2::Sha256) -> String {
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

impl Runner {
    /// Loads the configuration, checks the bundle, takes the state's run lock (a run holding
    /// it is [`RunError::Locked`]), removes temporary files killed exports left beside the
    /// connector files, and opens the state database. Expressions run on `engine`.
    pub fn open(
        config: &std::path::Path,
        engine: crate::eval::EngineKind,
    ) -> Result<Runner, RunError> {
        Self::open_with(config, engine, false)
    }

    /// Loads the configuration and the bundle and reads the state without taking the run lock
    /// and without writing anything (for `idflow state`): the state database must exist. Such
    /// a runner is for looking only; its steps would fail to save.
    pub fn open_read_only(
        config: &std::path::Path,
        engine: crate::eval::EngineKind,
    ) -> Result<Runner, RunError> {
        Self::open_with(config, engine, true)
    }

    fn open_with(
        config: &std::path::Path,
        engine: crate::eval::EngineKind,
        read_only: bool,
    ) -> Result<Runner, RunError> {
        let deployment = crate::config::load(config).map_err(RunError::Config)?;
        let files = crate::source::collect_idf_files(std::slice::from_ref(&deployment.bundle))
            .map_err(RunError::BundleFiles)?;
        let map = crate::source::load(&files).map_err(RunError::BundleFiles)?;
        let checked = frontend::check(&map);
        if checked.has_errors() {
            let errors = checked
                .diagnostics
                .into_iter()
                .filter(Diagnostic::is_error)
                .collect();
            return Err(RunError::Bundle(map, errors));
        }
        let mut warnings = Vec::new();
        for c in &deployment.connectors {
            if !checked.bundle.schema.connectors.contains_key(&c.name) {
                return Err(RunError::UndeclaredConnector {
                    config: deployment.file.clone(),
                    connector: c.name.clone(),
                    bundle: deployment.bundle.clone(),
                });
            }
        }
        for name in checked.bundle.schema.connectors.keys() {
            if deployment.connector(name).is_none() {
                warnings.push(format!(
                    "connector \"{name}\" of the bundle has no settings in {}: it is not imported or exported",
                    deployment.file.display()
                ));
            }
        }
        let hash = bundle_hash(&map);
        let mut engine = Engine::with_engine(&checked.bundle, jiff::Timestamp::now(), engine);
        engine.error_limit = deployment.error_limit;
        for (i, cp) in engine.plan.connectors.clone().iter().enumerate() {
            let params = deployment
                .connector(&cp.name)
                .map(|c| c.parameters.clone())
                .unwrap_or_default();
            engine.set_params(i, params);
        }
        let (lock, mut store) = if read_only {
            let store = SqliteStore::open_read_only(&deployment.state).map_err(RunError::Store)?;
            (None, Box::new(store) as Box<dyn Store>)
        } else {
            let lock = StateLock::acquire(&deployment.state).map_err(RunError::Locked)?;
            for c in &deployment.connectors {
                for file in c.path.iter().chain(c.target.iter()) {
                    for t in crate::files::remove_stale_temps(file) {
                        warnings.push(format!(
                            "removed {}, left by an interrupted write",
                            t.display()
                        ));
                    }
                }
            }
            let store = SqliteStore::open(&deployment.state).map_err(RunError::Store)?;
            (Some(lock), Box::new(store) as Box<dyn Store>)
        };
        let (state, w) = store.load(&engine.plan).map_err(RunError::Store)?;
        warnings.extend(w);
        engine.state = state;
        let stored = store.get_meta("bundle_hash").map_err(RunError::Store)?;
        Ok(Runner {
            needs_full_sync: stored.as_deref() != Some(hash.as_str()),
            deployment,
            engine,
            store,
            bundle_hash: hash,
            warnings,
            _lock: lock,
        })
    }

    /// Gives up the in-memory state without freeing it value by value: for a process about to
    /// exit once every step is saved (the operating system reclaims the memory at once; freeing
    /// millions of values one by one takes seconds). The runner holds an empty state after.
    pub fn release_state(&mut self) {
        std::mem::forget(std::mem::take(&mut self.engine.state));
    }

    /// Applies the run-history retention: keeps the newest `keep_runs` entries of
    /// `idflow.toml` (see [`Store::prune_runs`]). Returns the number of entries deleted.
    pub fn prune_history(&mut self) -> Result<usize, RunError> {
        self.store
            .prune_runs(self.deployment.keep_runs)
            .map_err(RunError::Store)
    }

    fn connector_config(&self, name: &str) -> Result<ConnectorConfig, RunError> {
        self.deployment
            .connector(name)
            .cloned()
            .ok_or_else(|| RunError::NoSettings {
                connector: name.to_string(),
                config: self.deployment.file.clone(),
            })
    }

    fn open_connector(&self, name: &str) -> Result<Box<dyn Connector>, String> {
        let cfg = self.connector_config(name).map_err(|e| e.to_string())?;
        let c = self
            .engine
            .plan
            .connector_index(name)
            .ok_or_else(|| RunError::UnknownConnector(name.to_string()).to_string())?;
        connector::open(&cfg, &self.engine.plan.connectors[c]).map_err(|e| e.to_string())
    }

    /// What makes a file connector's import repeatable: the file's content, the connector's
    /// settings (partitions, types) and the bundle.
    fn import_fingerprint(&self, cfg: &ConnectorConfig, file: &[u8]) -> String {
        let mut h = sha2::Sha256::new();
        h.update(file);
        h.update([0]);
        h.update(self.bundle_hash.as_bytes());
        h.update([0]);
        h.update(format!("{cfg:?}").as_bytes());
        hex(h)
    }

    /// Records a step in the run history: its counts, a summary of its notes, its errors and
    /// (capped) rejected records.
    fn record(&mut self, report: &StepReport, errors: &[SyncError]) -> Result<(), RunError> {
        let records: Vec<ErrorRecord> = errors
            .iter()
            .map(|e| {
                let (connector, dn) =
                    e.cs.and_then(|c| self.engine.state.cs().get(c as usize))
                        .map(|o| {
                            (
                                self.engine.plan.connectors[o.connector].name.clone(),
                                o.dn.to_string(),
                            )
                        })
                        .unwrap_or_default();
                ErrorRecord {
                    run: 0,
                    category: e.category.as_str().to_string(),
                    connector,
                    dn,
                    rule: e.rule.clone().unwrap_or_default(),
                    code: e.code.unwrap_or("").to_string(),
                    message: e.message.clone(),
                }
            })
            .collect();
        let run = RunRecord {
            started: now_text(),
            step: report.step.clone(),
            connector: report.connector.clone(),
            status: report.status.as_str().to_string(),
            adds: report.adds as i64,
            updates: report.updates as i64,
            deletes: report.deletes as i64,
            renames: report.renames as i64,
            errors: report.errors as i64,
            duration_ms: report.duration_ms as i64,
            detail: summary(&report.notes),
            rejected: report.rejects.len() as i64,
            ..Default::default()
        };
        self.store
            .record_run(&run, &records, &report.rejects)
            .map_err(RunError::Store)?;
        Ok(())
    }

    /// Saves what the step changed, with `meta` (a connector's fingerprint or watermark) in
    /// the same transaction.
    fn save(&mut self, meta: &[(&str, &str)]) -> Result<(), RunError> {
        self.store
            .save_changes(&self.engine.plan, &mut self.engine.state, meta)
            .map(|_| ())
            .map_err(RunError::Store)
    }

    /// Imports one connector. A file connector's import is always a complete read, so it is
    /// staged as a full import (objects no longer in the file become deletes); a read that
    /// fails stages nothing.
    ///
    /// The complete-read rule (docs/DECISIONS.md): a read that yields no objects where objects
    /// were imported before (a missing, empty or emptied source) is a failed read, and so is a
    /// read that would delete more objects than the delete threshold; both stop the step and
    /// stage nothing unless `allow_deletes` covers the deletes. A read in which the reader or
    /// the engine rejected any record stages no deletes.
    pub fn import(
        &mut self,
        name: &str,
        full: bool,
        allow_deletes: usize,
    ) -> Result<StepReport, RunError> {
        let start = Instant::now();
        let step = if full { "full-import" } else { "delta-import" };
        let mut report = StepReport {
            step: step.into(),
            connector: name.into(),
            ..Default::default()
        };
        let c = self
            .engine
            .plan
            .connector_index(name)
            .ok_or_else(|| RunError::UnknownConnector(name.to_string()))?;
        let cfg = self.connector_config(name)?;
        // A delta import of a file that has not changed since the last complete import would
        // change nothing: it is skipped (docs/DECISIONS.md 28).
        let fingerprint_key = format!("import-fingerprint:{name}");
        let mut fingerprint = None;
        let read = self.open_connector(name).and_then(|mut conn| {
            fingerprint = connector::fingerprint(conn.as_ref())
                .ok()
                .flatten()
                .map(|f| self.import_fingerprint(&cfg, &f));
            if !full
                && let Some(f) = &fingerprint
                && self
                    .store
                    .get_meta(&fingerprint_key)
                    .ok()
                    .flatten()
                    .as_ref()
                    == Some(f)
            {
                return Ok(None);
            }
            conn.full_import().map(Some).map_err(|e| e.to_string())
        });
        let imported = match read {
            Ok(Some(i)) => i,
            Ok(None) => {
                report.status = StepStatus::Success;
                report
                    .notes
                    .push("unchanged since the last import: nothing to read".into());
                report.duration_ms = start.elapsed().as_millis();
                self.record(&report, &[])?;
                return Ok(report);
            }
            Err(e) => {
                report.status = StepStatus::StoppedConnectivity;
                report.notes.push(e);
                report.duration_ms = start.elapsed().as_millis();
                self.record(&report, &[])?;
                return Ok(report);
            }
        };
        for r in &imported.rejected {
            report.rejects.push(RejectRecord {
                run: 0,
                source: r.source.clone(),
                line: Some(r.line as u64),
                message: r.message.clone(),
            });
        }
        // Container filters: objects outside the partitions' scope are not imported.
        let changes: Vec<ImportChange> = imported
            .changes
            .into_iter()
            .filter(|ch| match ch {
                ImportChange::Upsert(o) => cfg.in_scope(&o.dn),
                ImportChange::Delete { .. } => true,
            })
            .collect();
        // A read with rejected records is incomplete: nothing is deleted on its account.
        let complete = imported.rejected.is_empty();
        let read = self.engine.read(c, changes);
        let preview = self.engine.preview_read(&read, complete);
        let stop = if preview.objects == 0 && preview.known > 0 && allow_deletes < preview.known {
            report.deletes = preview.known;
            Some((
                StepStatus::StoppedIncompleteRead,
                format!(
                    "the read holds no object in scope, but {} object(s) were imported from \"{name}\" before: a missing, empty or unreadable source is not an empty directory, so nothing was staged (if every object really is gone, allow the deletes with --allow-deletes {})",
                    preview.known, preview.known
                ),
            ))
        } else if preview.deletes > self.deployment.delete_threshold
            && preview.deletes > allow_deletes
        {
            report.deletes = preview.deletes;
            Some((
                StepStatus::StoppedDeletionThresholdExceeded,
                format!(
                    "{} of {} object(s) imported before are missing from the read, more than the delete threshold of {}: nothing was staged (allow them with --allow-deletes {})",
                    preview.deletes,
                    preview.known,
                    self.deployment.delete_threshold,
                    preview.deletes
                ),
            ))
        } else {
            None
        };
        if let Some((status, why)) = stop {
            report.status = status;
            report.notes.push(why);
            report.errors = imported.rejected.len();
            report.duration_ms = start.elapsed().as_millis();
            self.record(&report, &[])?;
            return Ok(report);
        }
        let r = self.engine.stage(read, complete);
        for (dn, why) in &r.rejected {
            report.rejects.push(RejectRecord {
                run: 0,
                source: dn.to_string(),
                line: None,
                message: why.clone(),
            });
        }
        let rejected = imported.rejected.len() + r.rejected.len();
        if rejected > 0 {
            report.notes.push(format!(
                "{rejected} record(s) rejected: deletions are not staged from this import"
            ));
        }
        if !r.out_of_schema.is_empty() {
            let n: usize = r.out_of_schema.values().sum();
            let by_type: Vec<String> = r
                .out_of_schema
                .iter()
                .map(|(t, k)| format!("{t} {k}"))
                .collect();
            report.notes.push(format!(
                "{n} object(s) of types the connector schema does not declare left out ({})",
                by_type.join(", ")
            ));
        }
        report.adds = r.adds;
        report.updates = r.updates;
        report.deletes = r.deletes;
        report.renames = r.renames;
        report.errors = rejected;
        report.status = if report.errors == 0 {
            StepStatus::Success
        } else {
            StepStatus::CompletedWarnings
        };
        // Only a complete read is remembered, in the transaction that saves what it staged: a
        // file with rejected records is read again at every import, so its errors stay in view.
        let remembered = match &fingerprint {
            Some(f) if rejected == 0 => f.as_str(),
            _ => "",
        };
        self.save(&[(&fingerprint_key, remembered)])?;
        report.duration_ms = start.elapsed().as_millis();
        self.record(&report, &[])?;
        Ok(report)
    }

    /// Runs a full or delta sync.
    pub fn sync(&mut self, mode: Mode) -> Result<StepReport, RunError> {
        self.sync_keeping(mode, &[]).map(|(report, _)| report)
    }

    /// Runs a sync and records its errors together with `keep`: the errors of an earlier sync
    /// that this one did not look at again. The cycle's confirming delta syncs (after an
    /// export) only process the objects the confirming import changed; recorded alone, their
    /// errors hid the cycle's sync errors from `idflow state errors` ("the errors of the latest
    /// sync") after every run that exported anything. Returns the report and the recorded
    /// errors.
    fn sync_keeping(
        &mut self,
        mode: Mode,
        keep: &[SyncError],
    ) -> Result<(StepReport, Vec<SyncError>), RunError> {
        let start = Instant::now();
        let r = self.engine.sync(mode);
        let mut report = StepReport {
            step: if mode == Mode::Full {
                "full-sync"
            } else {
                "delta-sync"
            }
            .into(),
            connector: String::new(),
            status: r.status.into(),
            adds: r.projections + r.provisions,
            updates: r.mv_updates,
            deletes: r.mv_deletes + r.deprovisions,
            renames: 0,
            errors: r.errors.len(),
            duration_ms: 0,
            notes: r
                .unresolved_references
                .iter()
                .map(|u| format!("unresolved reference: {u}"))
                .collect(),
            rejects: Vec::new(),
        };
        for e in &r.errors {
            report
                .notes
                .push(format!("{}: {}", e.category.as_str(), e.message));
        }
        // The bundle is marked applied in the transaction that saves the full sync's state: a
        // run killed before it commits syncs fully again.
        if mode == Mode::Full && r.status != RunStatus::StoppedErrorLimit {
            let hash = self.bundle_hash.clone();
            self.save(&[("bundle_hash", &hash)])?;
            self.needs_full_sync = false;
        } else {
            self.save(&[])?;
        }
        report.duration_ms = start.elapsed().as_millis();
        let mut errors = r.errors;
        let own = errors.len();
        for e in keep {
            // An object this sync reported on again has its newer errors only.
            let again = errors[..own].iter().any(|x| match (x.cs, e.cs) {
                (Some(a), Some(b)) => a == b,
                _ => x.rule == e.rule && x.message == e.message,
            });
            if !again {
                errors.push(e.clone());
            }
        }
        if errors.len() > own {
            report.notes.push(format!(
                "{} error(s) of the cycle's sync kept (their objects were not synchronized again)",
                errors.len() - own
            ));
        }
        self.record(&report, &errors)?;
        Ok((report, errors))
    }

    /// The staged exports of a connector: the engine's export deltas, as the connector
    /// applies them.
    pub fn export_changes(&self, c: usize) -> Vec<ExportDelta> {
        crate::engine::export::deltas(&self.engine.plan, &self.engine.state, c).collect()
    }

    /// Exports one connector's staged changes (unless staging mode or the delete threshold
    /// blocks them), then re-imports it to confirm them.
    pub fn export(&mut self, name: &str, allow_deletes: usize) -> Result<StepReport, RunError> {
        let start = Instant::now();
        let c = self
            .engine
            .plan
            .connector_index(name)
            .ok_or_else(|| RunError::UnknownConnector(name.to_string()))?;
        let changes = self.export_changes(c);
        let mut report = StepReport {
            step: "export".into(),
            connector: name.into(),
            ..Default::default()
        };
        for ch in &changes {
            match ch.kind {
                ExportOp::Add => report.adds += 1,
                ExportOp::Update => report.updates += 1,
                ExportOp::Delete => report.deletes += 1,
            }
            if ch.new_dn.is_some() {
                report.renames += 1;
            }
        }
        if self.deployment.staging {
            report.status = StepStatus::Staged;
            report.notes.push("staging mode: nothing exported".into());
        } else if report.deletes > self.deployment.delete_threshold
            && report.deletes > allow_deletes
        {
            report.status = StepStatus::StoppedDeletionThresholdExceeded;
            report.notes.push(format!(
                "{} deletes staged, more than the threshold of {}: nothing exported (allow them with --allow-deletes {})",
                report.deletes, self.deployment.delete_threshold, report.deletes
            ));
        } else if changes.is_empty() {
            report.status = StepStatus::Success;
        } else {
            let outcome = self
                .open_connector(name)
                .and_then(|mut conn| conn.export(&changes).map_err(|e| e.to_string()));
            match outcome {
                Ok(o) => {
                    report.errors = o.failed.len();
                    for (dn, why) in &o.failed {
                        report.notes.push(format!("{dn}: {why}"));
                    }
                    report.status = if o.failed.is_empty() {
                        StepStatus::Success
                    } else {
                        StepStatus::CompletedExportErrors
                    };
                }
                Err(e) => {
                    report.status = StepStatus::StoppedConnectivity;
                    report.notes.push(e);
                }
            }
        }
        report.duration_ms = start.elapsed().as_millis();
        self.record(&report, &[])?;
        Ok(report)
    }

    /// A sync cycle: import every connector, sync (full when the bundle changed), export every
    /// connector (confirming each export by re-importing), as Entra's scheduler does.
    pub fn cycle(&mut self, opts: CycleOptions) -> Result<Vec<StepReport>, RunError> {
        let mut reports = Vec::new();
        let names: Vec<String> = self
            .deployment
            .connectors
            .iter()
            .map(|c| c.name.clone())
            .collect();
        for n in &names {
            reports.push(self.import(n, false, opts.allow_deletes)?);
        }
        let mode = if opts.full_sync || self.needs_full_sync {
            Mode::Full
        } else {
            Mode::Delta
        };
        let (sync, mut sync_errors) = self.sync_keeping(mode, &[])?;
        let stopped = sync.status == StepStatus::StoppedErrorLimit;
        reports.push(sync);
        if stopped {
            return Ok(reports);
        }
        for n in &names {
            let r = self.export(n, opts.allow_deletes)?;
            let exported = r.status == StepStatus::Success && r.adds + r.updates + r.deletes > 0;
            reports.push(r);
            if exported {
                // Confirm the export: the next sync sees the target as it now is.
                let confirm = self.import(n, false, opts.allow_deletes)?;
                let (sync, errors) = self.sync_keeping(Mode::Delta, &sync_errors)?;
                sync_errors = errors;
                let _ = (confirm, sync);
            }
        }
        Ok(reports)
    }
}

/// The notes of a step as kept in the run history: the first [`NOTES_KEPT`], then a count of
/// the rest (a step can have a note per object).
fn summary(notes: &[String]) -> String {
    let mut out = notes
        .iter()
        .take(NOTES_KEPT)
        .cloned()
        .collect::<Vec<_>>()
        .join("\n");
    if notes.len() > NOTES_KEPT {
        out.push_str(&format!("\n... {} more note(s)", notes.len() - NOTES_KEPT));
    }
    out
}
