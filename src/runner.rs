//! Run profiles: full and delta import, full and delta sync, export, and the sync cycle.
//!
//! Consumes: a [`Deployment`] (from `idflow.toml`), its bundle, the [`Store`] and the
//! connectors. Produces: the updated state (saved after every step, each save one
//! transaction), the engine's export deltas (`engine::export`) handed to the connectors as
//! they are, and a [`StepReport`] per step, also kept in the run history. A changed bundle is
//! detected (by the hash of its files) and makes the cycle's sync a full sync. An export with
//! more deletes than the threshold is blocked whole (`stopped-deletion-threshold-exceeded`)
//! unless allowed; staging mode runs imports and syncs but no export.
//!
//! Each connector is opened once per run, when a step first needs it. An import runs the
//! connector on a thread of its own and classifies its pages as they come through a bounded
//! channel (ARCHITECTURE.md, "The connector contract"); a delta import resumes from the
//! connector's stored watermark. An export takes one result per change: failures and retries
//! are reported per change; applied changes are confirmed by importing a file target again or,
//! for a connector whose answers can be trusted, recorded from the results.
//!
//! [`Runner::open`] takes the state's run lock (`store::lock`) before reading the state and
//! holds it until the runner is dropped, so two runs never work on one state;
//! [`Runner::open_read_only`] reads the state without the lock and without writing. The records
//! an import rejects are kept as rows (at most `store::REJECTS_KEPT` per step), not in the
//! step's notes; [`Runner::prune_history`] applies the run-history retention (`keep_runs`).
//! [`Runner::reload_bundle`] takes up a changed bundle in a runner kept open (`idflow serve`);
//! [`bundle_stamp`] tells cheaply whether the bundle's files changed.

use crate::config::{ConnectorConfig, Deployment};
use crate::connector::{
    self, Connector, ConnectorError, ExportErrorCategory, ExportResult, ImportEnd, ImportKind,
    ImportMode, ImportSink, Rejected,
};
use crate::diag::Diagnostic;
use crate::engine::Engine;
use crate::engine::export::{Confirmed, ExportDelta};
use crate::engine::import::{ImportChange, KnownRecords, Read};
use crate::engine::model::{ErrorCategory, ExportOp, SyncError};
use crate::engine::sync::{Mode, RunStatus};
use crate::frontend;
use crate::source::SourceMap;
use crate::store::lock::{LockError, StateLock};
use crate::store::sqlite::SqliteStore;
use crate::store::{ErrorRecord, NOTES_KEPT, RejectRecord, RunRecord, Store, StoreError};
use sha2::Digest;
use std::collections::HashMap;
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
    /// An import that skipped records: rejected ones (then it staged no deletes) or objects
    /// held with a data validation error.
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

    /// Every status.
    pub const ALL: [StepStatus; 9] = [
        StepStatus::Success,
        StepStatus::CompletedWarnings,
        StepStatus::CompletedSyncErrors,
        StepStatus::CompletedExportErrors,
        StepStatus::Staged,
        StepStatus::StoppedConnectivity,
        StepStatus::StoppedIncompleteRead,
        StepStatus::StoppedDeletionThresholdExceeded,
        StepStatus::StoppedErrorLimit,
    ];

    /// The status a run-history entry names ([`StepStatus::as_str`]); None for a name that
    /// is none of them.
    pub fn parse(name: &str) -> Option<StepStatus> {
        StepStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The step did its work but reports what it could not do (records skipped, objects in
    /// error, changes refused).
    pub fn is_warning(self) -> bool {
        matches!(
            self,
            StepStatus::CompletedWarnings
                | StepStatus::CompletedSyncErrors
                | StepStatus::CompletedExportErrors
        )
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

/// Why [`Runner::lineage`] has nothing to show.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lineage {
    /// No connector-space object has that DN.
    NotFound,
    /// The DN is in several connectors: name one.
    Ambiguous,
}

/// Options of a cycle.
#[derive(Debug, Clone, Copy, Default)]
pub struct CycleOptions {
    /// Let an export with up to this many deletes through the threshold once.
    pub allow_deletes: usize,
    /// Force a full sync.
    pub full_sync: bool,
}

/// Narrows the plan's connector types to the attributes their connected systems hold (the SCIM
/// mappings of the deployment): see [`crate::engine::compile::Plan::keep_flows`]. Returns the
/// flows left out as (connector, object type, rule, attribute).
pub fn narrow(
    plan: &mut crate::engine::compile::Plan,
    deployment: &Deployment,
) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for cfg in &deployment.connectors {
        let (Some(mapping), Some(c)) = (&cfg.mapping, plan.connector_index(&cfg.name)) else {
            continue;
        };
        let held = connector::scim::held_attributes(mapping, &plan.connectors[c]);
        for (ty, attrs) in held {
            let Some(t) = plan.connectors[c].type_index(&ty) else {
                continue;
            };
            for (rule, attr) in plan.keep_flows(c, t, &attrs) {
                out.push((cfg.name.clone(), ty.clone(), rule, attr));
            }
        }
    }
    out
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
    /// The expression engine the bundle is compiled for (kept for a reload).
    engine_kind: crate::eval::EngineKind,
    /// The connectors opened so far, by name: each is opened once, when a step first needs
    /// it, and serves the rest of the run.
    connectors: HashMap<String, Box<dyn Connector>>,
    /// The file connector whose last export began with the state holding all of its file (its
    /// fingerprint that of the last complete import): what that export wrote, read back,
    /// confirms it ([`Connector::take_written`]).
    held_before_export: Option<String>,
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

/// The names, sizes and modification times of the deployment's bundle files: differs when a
/// file of the bundle was added, removed or written (without reading them).
pub fn bundle_stamp(deployment: &Deployment) -> Result<String, RunError> {
    let files = crate::source::collect_idf_files(std::slice::from_ref(&deployment.bundle))
        .map_err(RunError::BundleFiles)?;
    let mut h = sha2::Sha256::new();
    for f in &files {
        h.update(f.as_os_str().as_encoded_bytes());
        if let Ok(m) = std::fs::metadata(f) {
            h.update(m.len().to_le_bytes());
            if let Ok(t) = m.modified()
                && let Ok(d) = t.duration_since(std::time::UNIX_EPOCH)
            {
                h.update(d.as_nanos().to_le_bytes());
            }
        }
        h.update([0]);
    }
    Ok(hex(h))
}

/// A checked and compiled bundle, ready for a state.
struct Compiled {
    engine: Engine,
    hash: String,
    warnings: Vec<String>,
}

/// Loads, checks and compiles the deployment's bundle (its connectors narrowed to the SCIM
/// mappings and given their parameters).
fn compile(
    deployment: &Deployment,
    engine_kind: crate::eval::EngineKind,
) -> Result<Compiled, RunError> {
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
    let mut hash = bundle_hash(&map);
    let mut engine = Engine::with_engine(&checked.bundle, jiff::Timestamp::now(), engine_kind);
    engine.error_limit = deployment.error_limit;
    // A connected system that holds only some of a type's attributes (a SCIM mapping):
    // the flows into the others are left out. What is left out is part of the bundle's
    // identity: a changed mapping makes the next sync a full one.
    let narrowed = narrow(&mut engine.plan, deployment);
    if !narrowed.is_empty() {
        let mut h = sha2::Sha256::new();
        h.update(hash.as_bytes());
        for (c, t, r, a) in &narrowed {
            h.update(format!("\0{c}\0{t}\0{r}\0{a}").as_bytes());
        }
        hash = hex(h);
    }
    for (i, cp) in engine.plan.connectors.clone().iter().enumerate() {
        let params = deployment
            .connector(&cp.name)
            .map(|c| c.parameters.clone())
            .unwrap_or_default();
        engine.set_params(i, params);
    }
    Ok(Compiled {
        engine,
        hash,
        warnings,
    })
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
        engine_kind: crate::eval::EngineKind,
        read_only: bool,
    ) -> Result<Runner, RunError> {
        let deployment = crate::config::load(config).map_err(RunError::Config)?;
        let Compiled {
            mut engine,
            hash,
            mut warnings,
        } = compile(&deployment, engine_kind)?;
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
            held_before_export: None,
            deployment,
            engine,
            engine_kind,
            store,
            bundle_hash: hash,
            warnings,
            connectors: HashMap::new(),
            _lock: lock,
        })
    }

    /// Takes up the bundle as its files now are (`idflow serve` when they change): checks and
    /// compiles it, then loads the state for it from the store (each step saved the state, so
    /// nothing is lost). A bundle that does not check (or does not declare the deployment's
    /// connectors) is an error and leaves the runner as it was. The next sync is a full one
    /// when the bundle differs from the one the state was last synchronized with. Returns the
    /// warnings of the new bundle and of loading the state.
    pub fn reload_bundle(&mut self) -> Result<Vec<String>, RunError> {
        let Compiled {
            mut engine,
            hash,
            mut warnings,
        } = compile(&self.deployment, self.engine_kind)?;
        let (state, w) = self.store.load(&engine.plan).map_err(RunError::Store)?;
        warnings.extend(w);
        engine.state = state;
        let stored = self
            .store
            .get_meta("bundle_hash")
            .map_err(RunError::Store)?;
        self.needs_full_sync = stored.as_deref() != Some(hash.as_str());
        self.engine = engine;
        self.bundle_hash = hash;
        self.connectors.clear();
        Ok(warnings)
    }

    /// The hash of the bundle the runner runs (its files, and the flows a SCIM mapping leaves
    /// out).
    pub fn bundle_hash(&self) -> &str {
        &self.bundle_hash
    }

    /// The state database.
    pub fn store(&mut self) -> &mut dyn Store {
        self.store.as_mut()
    }

    /// Gives up the in-memory state without freeing it value by value: for a process about to
    /// exit once every step is saved (the operating system reclaims the memory at once; freeing
    /// millions of values one by one takes seconds). The runner holds an empty state after.
    pub fn release_state(&mut self) {
        std::mem::forget(std::mem::take(&mut self.engine.state));
    }

    /// Prepares a runner kept open between cycles (`idflow serve`) for the next one: the
    /// run's `now` becomes the current time and the connectors are opened again when a step
    /// needs them (a connection does not outlive its cycle).
    pub fn renew(&mut self) {
        let now = jiff::Timestamp::now();
        for ctx in &mut self.engine.ctxs {
            ctx.now = now;
        }
        self.connectors.clear();
    }

    /// The errors of the latest sync step and of the latest import step of each connector
    /// (see [`Store::latest_errors`]).
    pub fn latest_errors(&mut self) -> Result<Vec<ErrorRecord>, RunError> {
        self.store.latest_errors().map_err(RunError::Store)
    }

    /// The run history, newest first (at most `limit` steps).
    pub fn runs(&mut self, limit: usize) -> Result<Vec<RunRecord>, RunError> {
        self.store.runs(limit).map_err(RunError::Store)
    }

    /// What `idflow state show` prints of the connector-space object `dn` (in `connector`,
    /// or in the only connector holding that DN): its connector, type and DN, anchor, link,
    /// imported attributes, and its lineage through the rules (metaverse values and the
    /// exports they make). The lines are as they are: the caller escapes them for its output.
    pub fn lineage(&self, dn: &str, connector: Option<&str>) -> Result<Vec<String>, Lineage> {
        use crate::eval::json;
        let plan = &self.engine.plan;
        let state = &self.engine.state;
        let ids: Vec<crate::engine::model::CsId> = (0..plan.connectors.len())
            .filter(|&c| connector.is_none_or(|n| plan.connectors[c].name == n))
            .filter_map(|c| state.cs_by_dn(c, dn))
            .collect();
        let id = match ids.as_slice() {
            [one] => *one,
            [] => return Err(Lineage::NotFound),
            _ => return Err(Lineage::Ambiguous),
        };
        let o = &state.cs()[id as usize];
        let cp = &plan.connectors[o.connector];
        let t = &cp.types[o.object_type];
        let mut out = vec![format!("{} {} \"{}\"", cp.name, t.name, o.dn)];
        out.push(format!(
            "  anchor: {}",
            o.anchor
                .as_ref()
                .map(|a| json::to_json(a).to_string())
                .unwrap_or_else(|| "(none: not exported yet)".into())
        ));
        out.push(match o.link {
            Some(l) => format!(
                "  linked to metaverse object {} by \"{}\"",
                l.mv,
                plan.rules[l.rule].name()
            ),
            None => "  disconnector".into(),
        });
        for (slot, v) in o.imported.iter().enumerate() {
            if !v.is_null() && Some(slot) != t.dn {
                out.push(format!("  {} = {}", t.names[slot], json::to_json(v)));
            }
        }
        let p = crate::engine::preview::preview(&self.engine, id);
        out.push("lineage:".into());
        for l in p
            .lines
            .iter()
            .map(String::as_str)
            .chain(p.metaverse.lines())
            .chain(p.exports.lines())
        {
            out.push(format!("  {l}"));
        }
        Ok(out)
    }

    /// A value of the state's metadata.
    pub fn meta(&mut self, key: &str) -> Result<Option<String>, RunError> {
        self.store.get_meta(key).map_err(RunError::Store)
    }

    /// Sets a value of the state's metadata.
    pub fn set_meta(&mut self, key: &str, value: &str) -> Result<(), RunError> {
        self.store.set_meta(key, value).map_err(RunError::Store)
    }

    /// Applies the run-history retention: keeps the newest `keep_runs` entries of
    /// `idflow.toml` (see [`Store::prune_runs`]). Returns the number of entries deleted.
    pub fn prune_history(&mut self) -> Result<usize, RunError> {
        self.store
            .prune_runs(self.deployment.keep_runs)
            .map_err(RunError::Store)
    }

    /// Compacts the state database when enough rows were rewritten since it last was (see
    /// [`Store::compact_if_due`]). Returns its size before and after, in bytes, when it did.
    pub fn compact_store(&mut self) -> Result<Option<(u64, u64)>, RunError> {
        let objects = self.engine.state.cs().len() + self.engine.state.mv().len();
        self.store.compact_if_due(objects).map_err(RunError::Store)
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

    /// Opens the connector `name` unless it is open already (one instance per run).
    fn open_connector(&mut self, name: &str) -> Result<(), String> {
        if self.connectors.contains_key(name) {
            return Ok(());
        }
        let cfg = self.connector_config(name).map_err(|e| e.to_string())?;
        let c = self
            .engine
            .plan
            .connector_index(name)
            .ok_or_else(|| RunError::UnknownConnector(name.to_string()).to_string())?;
        let conn =
            connector::open(&cfg, &self.engine.plan.connectors[c]).map_err(|e| e.to_string())?;
        self.connectors.insert(name.to_string(), conn);
        Ok(())
    }

    /// Uses `conn` as the connector `name` for the rest of the run, instead of the one its
    /// settings in idflow.toml would open (a program embedding idflow with a connector of its
    /// own; the settings still give the connector's container filter).
    pub fn set_connector(&mut self, name: &str, conn: Box<dyn Connector>) {
        self.connectors.insert(name.to_string(), conn);
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

    /// Whether the state holds all of what the file connector `name` reads: its file's
    /// fingerprint is that of the last complete import (false for other connectors).
    fn state_holds_file(&mut self, name: &str) -> bool {
        let Some(conn) = self.connectors.get(name) else {
            return false;
        };
        if !conn.confirms_by_reimport() {
            return false;
        }
        let Ok(cfg) = self.connector_config(name) else {
            return false;
        };
        let Some(file) = connector::fingerprint(conn.as_ref()).ok().flatten() else {
            return false;
        };
        let now = self.import_fingerprint(&cfg, &file);
        self.store
            .get_meta(&format!("import-fingerprint:{name}"))
            .ok()
            .flatten()
            .is_some_and(|stored| stored == now)
    }

    /// What a stored watermark is valid for: the connector's settings and the bundle (a
    /// watermark of other settings or another bundle would skip objects that are new to them).
    fn watermark_basis(&self, cfg: &ConnectorConfig) -> String {
        let mut h = sha2::Sha256::new();
        h.update(self.bundle_hash.as_bytes());
        h.update([0]);
        h.update(format!("{cfg:?}").as_bytes());
        hex(h)
    }

    /// What the digests of a connector's records are taken under
    /// ([`KnownRecords`]): what else decides what a record reads as (the connector's settings,
    /// the bundle) and this build's version.
    fn record_basis(&self, cfg: &ConnectorConfig) -> String {
        format!(
            "records 1; idflow {}; {}",
            env!("CARGO_PKG_VERSION"),
            self.watermark_basis(cfg)
        )
    }

    /// Runs the import of the open connector `name` on a thread of its own; its pages come
    /// through a bounded channel and the engine classifies each as it arrives, so the
    /// connector reads the next page while the engine works on this one (and at most
    /// [`PAGES_AHEAD`] pages wait). Returns the classified read, the records the connector
    /// rejected and how the read ended, or why it failed.
    /// What an export wrote, read back by its connector ([`Connector::take_written`]), as the
    /// delta read that confirms it.
    fn read_written(
        &self,
        cfg: &ConnectorConfig,
        c: usize,
        changes: Vec<ImportChange>,
    ) -> (Read, Vec<Rejected>, ImportEnd) {
        let mut read = self.engine.begin_read(c);
        self.engine.read_page(&mut read, in_scope(cfg, changes));
        let end = ImportEnd {
            kind: ImportKind::Delta,
            watermark: None,
        };
        (read, Vec::new(), end)
    }

    fn read_connector(
        &mut self,
        name: &str,
        c: usize,
        cfg: &ConnectorConfig,
        mode: ImportMode<'_>,
    ) -> Result<ReadOutcome, RunError> {
        let basis = self.record_basis(cfg);
        let Runner {
            engine,
            connectors,
            store,
            ..
        } = self;
        let conn = connectors
            .get_mut(name)
            .ok_or_else(|| RunError::UnknownConnector(name.to_string()))?;
        if conn.recognises_records() {
            let known = KnownRecords::new(&engine.state, &engine.plan, c, basis.as_bytes());
            tracing::debug!(
                connector = name,
                known = known.len(),
                "records the connector may recognise"
            );
            conn.recognise(std::sync::Arc::new(known));
        }
        let mut read = engine.begin_read(c);
        let mut rejected = Vec::new();
        let scoped = conn.reads_partitions_only();
        // A first read of a connector is staged and written as its pages arrive, in the
        // step's one transaction, while the connector reads on (`Read::may_stage_ahead`).
        let ahead = read.may_stage_ahead();
        let mut saved = Ok(());
        let ended = std::thread::scope(|s| {
            let (tx, rx) = std::sync::mpsc::sync_channel(PAGES_AHEAD);
            let worker = s.spawn(move || conn.import(mode, &mut ChannelSink { tx }));
            // Ends when the import returns (or panics) and drops its sender, or when a part
            // of the state cannot be written (the reader then stops at its next page).
            for message in rx {
                match message {
                    Message::Page(changes) => {
                        let changes = if scoped {
                            changes
                        } else {
                            in_scope(cfg, changes)
                        };
                        engine.read_page(&mut read, changes);
                        if ahead {
                            engine.stage_ahead(&mut read);
                            saved = store.save_part(&engine.plan, &mut engine.state);
                            if saved.is_err() {
                                break;
                            }
                        }
                    }
                    Message::Reject(r) => rejected.push(r),
                }
            }
            worker.join()
        });
        let why = match (ended, saved) {
            (_, Err(e)) => format!(
                "the state could not be written while reading \"{name}\": {e}; nothing was staged"
            ),
            (Ok(Ok(end)), Ok(())) => return Ok(Ok((read, rejected, end))),
            (Ok(Err(e)), Ok(())) => e.to_string(),
            (Err(_), Ok(())) => format!(
                "connector \"{name}\" failed unexpectedly while reading: nothing was staged"
            ),
        };
        if ahead {
            // Nothing of a failed read stays staged. The state in memory must not go on
            // without that: a failure here ends the run.
            roll_back_step(store.as_mut(), engine)?;
        }
        Ok(Err(why))
    }

    /// Records a step in the run history: its counts, a summary of its notes, its errors and
    /// (capped) rejected records.
    fn record(&mut self, report: &StepReport, errors: &[SyncError]) -> Result<(), RunError> {
        let records = self.error_records(errors);
        self.record_errors(report, &records)
    }

    /// Sync errors as the run history keeps them: with the connector and DN of their object.
    fn error_records(&self, errors: &[SyncError]) -> Vec<ErrorRecord> {
        errors
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
            .collect()
    }

    /// Records a step with its per-object errors.
    fn record_errors(
        &mut self,
        report: &StepReport,
        records: &[ErrorRecord],
    ) -> Result<(), RunError> {
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
            .record_run(&run, records, &report.rejects)
            .map_err(RunError::Store)?;
        Ok(())
    }

    /// Saves what the step changed, with `meta` (a connector's fingerprint or watermark) in
    /// the same transaction.
    fn save(&mut self, meta: &[(&str, &str)]) -> Result<(), RunError> {
        let start = Instant::now();
        let stats = self
            .store
            .save_changes(&self.engine.plan, &mut self.engine.state, meta)
            .map_err(RunError::Store)?;
        tracing::debug!(
            objects = stats.objects,
            rows = stats.rows,
            ms = start.elapsed().as_millis() as u64,
            "state saved"
        );
        Ok(())
    }

    /// Imports one connector: a full import (`full`) asks for every object, a delta import for
    /// the changes since the stored watermark. The connector says what it read: a complete
    /// read is staged as a full import (objects it did not show become deletes; a file
    /// connector's read always is one), a delta read as changes. The connector's pages are
    /// classified as they arrive; a read that fails stages nothing.
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
        self.import_with(name, full, allow_deletes, false)
    }

    /// An import; `confirming`: the one that confirms an export right after it, which reads
    /// only what the export wrote when the connector knows it and the state held all of the
    /// connector's file before the export.
    fn import_with(
        &mut self,
        name: &str,
        full: bool,
        allow_deletes: usize,
        confirming: bool,
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
        let stopped = |mut report: StepReport, why: String| {
            report.status = StepStatus::StoppedConnectivity;
            report.notes.push(why);
            report.duration_ms = start.elapsed().as_millis();
            report
        };
        if let Err(e) = self.open_connector(name) {
            let report = stopped(report, e);
            self.record(&report, &[])?;
            return Ok(report);
        }
        // The confirmation of an export by what it wrote (docs/DECISIONS.md 34), when the
        // state held all of the file before the export.
        let held = self.held_before_export.take().is_some_and(|n| n == name);
        let written = if confirming {
            self.connectors
                .get_mut(name)
                .and_then(|conn| conn.take_written())
                .filter(|_| held)
        } else {
            None
        };
        // A delta import of a file that has not changed since the last complete import would
        // change nothing: it is skipped (docs/DECISIONS.md 28). A file confirmed by what the
        // export wrote is remembered as written, so that a change made to it since is read by
        // the next import.
        let fingerprint_key = format!("import-fingerprint:{name}");
        let fingerprint = match &written {
            Some(w) => Some(self.import_fingerprint(&cfg, &w.fingerprint)),
            None => self
                .connectors
                .get(name)
                .and_then(|conn| connector::fingerprint(conn.as_ref()).ok().flatten())
                .map(|f| self.import_fingerprint(&cfg, &f)),
        };
        if !full
            && written.is_none()
            && let Some(f) = &fingerprint
            && self
                .store
                .get_meta(&fingerprint_key)
                .ok()
                .flatten()
                .as_ref()
                == Some(f)
        {
            report.status = StepStatus::Success;
            report
                .notes
                .push("unchanged since the last import: nothing to read".into());
            report.duration_ms = start.elapsed().as_millis();
            self.record(&report, &[])?;
            return Ok(report);
        }
        // A delta import resumes from the watermark of the last complete import made with these
        // settings and this bundle.
        let watermark_key = format!("import-watermark:{name}");
        let basis = self.watermark_basis(&cfg);
        let stored = self
            .store
            .get_meta(&watermark_key)
            .map_err(RunError::Store)?
            .unwrap_or_default();
        let watermark = stored
            .split_once(' ')
            .filter(|(b, _)| *b == basis)
            .map(|(_, w)| w.to_string());
        let mode = if full {
            ImportMode::Full
        } else {
            ImportMode::Delta {
                watermark: watermark.as_deref(),
            }
        };
        let read = match written.map(|w| w.changes) {
            Some(changes) => {
                report.notes.push(format!(
                    "confirmed by what the export wrote, read back ({} objects): the rest of the file was not read again",
                    changes.len()
                ));
                Ok(self.read_written(&cfg, c, changes))
            }
            None => self.read_connector(name, c, &cfg, mode)?,
        };
        let (read, reader_rejected, end) = match read {
            Ok(r) => r,
            Err(e) => {
                let report = stopped(report, e);
                self.record(&report, &[])?;
                return Ok(report);
            }
        };
        for r in &reader_rejected {
            report.rejects.push(RejectRecord {
                run: 0,
                source: r.source.clone(),
                line: Some(r.line as u64),
                message: r.message.clone(),
            });
        }
        // Only a complete full read deletes what it did not show; a read with rejected records
        // is incomplete: nothing is deleted on its account.
        let complete = reader_rejected.is_empty();
        let full_read = end.kind == ImportKind::Full;
        let preview = self.engine.preview_read(&read, full_read && complete);
        let stop = if full_read
            && preview.objects == 0
            && preview.known > 0
            && allow_deletes < preview.known
        {
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
                if full_read {
                    format!(
                        "{} of {} object(s) imported before are missing from the read, more than the delete threshold of {}: nothing was staged (allow them with --allow-deletes {})",
                        preview.deletes,
                        preview.known,
                        self.deployment.delete_threshold,
                        preview.deletes
                    )
                } else {
                    format!(
                        "the read deletes {} of {} object(s) imported before, more than the delete threshold of {}: nothing was staged (allow them with --allow-deletes {})",
                        preview.deletes,
                        preview.known,
                        self.deployment.delete_threshold,
                        preview.deletes
                    )
                },
            ))
        } else {
            None
        };
        if let Some((status, why)) = stop {
            // (A read staged ahead cannot be stopped: it deletes nothing. Should one be, what
            // it staged is rolled back all the same.)
            if read.may_stage_ahead() {
                roll_back_step(self.store.as_mut(), &mut self.engine)?;
            }
            report.status = status;
            report.notes.push(why);
            report.errors = reader_rejected.len();
            report.duration_ms = start.elapsed().as_millis();
            self.record(&report, &[])?;
            return Ok(report);
        }
        let r = self.engine.stage(read, full_read && complete);
        if r.recognised > 0 {
            report.notes.push(format!(
                "{} unchanged record(s) recognised by their digest and not read again",
                r.recognised
            ));
        }
        for (dn, why) in &r.rejected {
            report.rejects.push(RejectRecord {
                run: 0,
                source: dn.to_string(),
                line: None,
                message: why.clone(),
            });
        }
        let rejected = reader_rejected.len() + r.rejected.len();
        if rejected > 0 {
            report.notes.push(format!(
                "{rejected} record(s) rejected: deletions are not staged from this import"
            ));
        }
        // Objects held with a data validation error: per-object errors of the step, kept
        // with it in the run history (`idflow state errors`).
        let category = ErrorCategory::DataValidationFailure;
        let invalid: Vec<ErrorRecord> = r
            .invalid
            .iter()
            .map(|(dn, why)| ErrorRecord {
                run: 0,
                category: category.as_str().to_string(),
                connector: name.to_string(),
                dn: dn.clone(),
                rule: String::new(),
                code: String::new(),
                message: why.clone(),
            })
            .collect();
        for e in &invalid {
            report.notes.push(format!(
                "{}: {}: {} (object not staged)",
                e.category, e.dn, e.message
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
        report.errors = rejected + invalid.len();
        report.status = if report.errors == 0 {
            StepStatus::Success
        } else {
            StepStatus::CompletedWarnings
        };
        // Only a read without errors is remembered, in the transaction that saves what it
        // staged: a file with rejected records or objects in error is read again at every
        // import, so its errors stay in view. The watermark too: such a read is read again from
        // where it began (reading changes again changes nothing twice).
        let clean = report.errors == 0;
        let remembered = match &fingerprint {
            Some(f) if clean => f.as_str(),
            _ => "",
        };
        let next = end
            .watermark
            .map(|w| format!("{basis} {w}"))
            .unwrap_or_default();
        let mut meta = vec![(fingerprint_key.as_str(), remembered)];
        if clean && next != stored {
            meta.push((watermark_key.as_str(), next.as_str()));
        }
        self.save(&meta)?;
        report.duration_ms = start.elapsed().as_millis();
        self.record_errors(&report, &invalid)?;
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
    /// blocks them). Changes a server connector reports applied are recorded as confirmed
    /// (`engine::export::confirm`); those of a connector that confirms by re-import (a file
    /// target) are confirmed by the next import (the cycle runs one right away).
    pub fn export(&mut self, name: &str, allow_deletes: usize) -> Result<StepReport, RunError> {
        self.export_step(name, allow_deletes)
            .map(|(report, _)| report)
    }

    fn export_step(
        &mut self,
        name: &str,
        allow_deletes: usize,
    ) -> Result<(StepReport, Confirmation), RunError> {
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
        let mut confirmation = Confirmation::Nothing;
        // The changes the system refused: per-object errors of the step.
        let mut failed: Vec<ErrorRecord> = Vec::new();
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
            let opened = self.open_connector(name);
            self.held_before_export =
                (opened.is_ok() && self.state_holds_file(name)).then(|| name.to_string());
            let sent = opened.and_then(|()| {
                let conn = self
                    .connectors
                    .get_mut(name)
                    .ok_or_else(|| RunError::UnknownConnector(name.to_string()).to_string())?;
                let trusted = !conn.confirms_by_reimport();
                conn.export(&changes)
                    .map(|results| (results, trusted))
                    .map_err(|e| e.to_string())
            });
            match sent {
                Ok((results, _)) if results.len() != changes.len() => {
                    // Which change is which is unknown: nothing is recorded, the next import
                    // shows what the connected system holds.
                    report.status = StepStatus::CompletedExportErrors;
                    report.errors = changes.len();
                    report.notes.push(format!(
                        "the connector answered {} result(s) for {} change(s): none is recorded as confirmed (the next import confirms what was applied)",
                        results.len(),
                        changes.len()
                    ));
                    confirmation = Confirmation::ByImport;
                }
                Ok((results, trusted)) => {
                    let (applied, needs_import, gone) =
                        self.take_results(&changes, results, trusted, &mut report, &mut failed);
                    if trusted && (applied > needs_import || gone > 0) {
                        self.save(&[])?;
                    }
                    report.status = if report.errors == 0 {
                        StepStatus::Success
                    } else {
                        StepStatus::CompletedExportErrors
                    };
                    confirmation = if applied == 0 && gone > 0 {
                        // The objects gone from the system are synced (provisioned again).
                        Confirmation::Recorded
                    } else if applied == 0 {
                        Confirmation::Nothing
                    } else if !trusted {
                        // As before results existed: a file target is read back after an
                        // export without errors; otherwise the next import confirms it.
                        if report.errors == 0 {
                            Confirmation::ByImport
                        } else {
                            Confirmation::Nothing
                        }
                    } else if needs_import > 0 {
                        Confirmation::ByImport
                    } else {
                        Confirmation::Recorded
                    };
                }
                Err(e) => {
                    report.status = StepStatus::StoppedConnectivity;
                    report.notes.push(e);
                }
            }
        }
        report.duration_ms = start.elapsed().as_millis();
        self.record_errors(&report, &failed)?;
        Ok((report, confirmation))
    }

    /// Takes an export's results, one per change: a failed or retried change is an error with
    /// a note (it stays staged, so the next export sends it again), and a failed one is also
    /// added to `failed` (kept with the step, `idflow state errors` lists it under its
    /// sync-error category); an applied one of a `trusted` connector is recorded as
    /// confirmed. Returns the number of applied changes and of those that could not be
    /// recorded (an import must confirm them).
    fn take_results(
        &mut self,
        changes: &[ExportDelta],
        results: Vec<ExportResult>,
        trusted: bool,
        report: &mut StepReport,
        failed: &mut Vec<ErrorRecord>,
    ) -> (usize, usize, usize) {
        let (mut applied, mut needs_import, mut gone_objects) = (0, 0, 0);
        for (sent, result) in changes.iter().zip(results) {
            match result {
                ExportResult::Applied { anchor } => {
                    applied += 1;
                    if trusted
                        && self.engine.confirm_export(sent, anchor.as_ref())
                            == Confirmed::NeedsImport
                    {
                        needs_import += 1;
                    }
                }
                ExportResult::Retry { after, reason } => {
                    report.errors += 1;
                    let when = after
                        .map(|d| format!(" after {} s", d.as_secs().max(1)))
                        .unwrap_or_default();
                    report.notes.push(format!(
                        "{}: not applied, to retry{when}: {reason}",
                        sent.dn
                    ));
                }
                ExportResult::Failed { category, detail } => {
                    report.errors += 1;
                    // An update of an object the system no longer holds: it is gone, as
                    // an import would show, and the next sync provisions it again.
                    let gone = trusted
                        && category == ExportErrorCategory::NoSuchObject
                        && sent.kind == ExportOp::Update
                        && self.engine.object_gone(sent);
                    let then = if gone {
                        " (gone from the connected system: provisioned again)"
                    } else {
                        ""
                    };
                    if gone {
                        gone_objects += 1;
                    }
                    report
                        .notes
                        .push(format!("{}: {category}: {detail}{then}", sent.dn));
                    failed.push(ErrorRecord {
                        run: 0,
                        category: category.sync_category().as_str().to_string(),
                        connector: report.connector.clone(),
                        dn: sent.dn.to_string(),
                        rule: String::new(),
                        code: category.as_str().to_string(),
                        message: format!("export {category}: {detail}{then}"),
                    });
                }
            }
        }
        (applied, needs_import, gone_objects)
    }

    /// A sync cycle: import every connector, sync (full when the bundle changed), export every
    /// connector (confirming each export by re-importing), as Entra's scheduler does.
    pub fn cycle(&mut self, opts: CycleOptions) -> Result<Vec<StepReport>, RunError> {
        self.cycle_until(opts, &mut |_| false)
    }

    /// A [`Runner::cycle`] that calls `between` with the runner before each step (each step
    /// before it is saved and in the run history: `idflow serve` evaluates its alerts there)
    /// and, when it answers true, ends there with the reports of the steps done (each step's
    /// work is saved when it ends, so the state stays consistent; the next cycle takes up
    /// what is left).
    pub fn cycle_until(
        &mut self,
        opts: CycleOptions,
        between: &mut dyn FnMut(&mut Runner) -> bool,
    ) -> Result<Vec<StepReport>, RunError> {
        let mut reports = Vec::new();
        let names: Vec<String> = self
            .deployment
            .connectors
            .iter()
            .map(|c| c.name.clone())
            .collect();
        for n in &names {
            if between(self) {
                return Ok(reports);
            }
            reports.push(self.import(n, false, opts.allow_deletes)?);
        }
        if between(self) {
            return Ok(reports);
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
            if between(self) {
                return Ok(reports);
            }
            let (r, confirmation) = self.export_step(n, opts.allow_deletes)?;
            reports.push(r);
            // Confirm the export, by reading the target again or as the connector reported
            // it: the next sync sees the target as it now is.
            if confirmation == Confirmation::ByImport {
                let r = self.import_with(n, false, opts.allow_deletes, true)?;
                log_unreported(n, &r, "export confirmed by import");
            }
            if confirmation != Confirmation::Nothing {
                let (r, errors) = self.sync_keeping(Mode::Delta, &sync_errors)?;
                log_unreported(n, &r, "delta sync after the export's confirmation");
                sync_errors = errors;
            }
        }
        Ok(reports)
    }
}

/// Logs a step of a cycle that its reports leave out (an export's confirmation, the delta
/// sync after it): what it did and how long it took.
fn log_unreported(connector: &str, r: &StepReport, what: &str) {
    tracing::info!(
        connector,
        status = r.status.as_str(),
        updates = r.updates,
        ms = r.duration_ms as u64,
        "{what}"
    );
}

/// The changes of a read that the connector's container filters keep: objects outside the
/// partitions' scope are not imported (deletes always pass).
fn in_scope(cfg: &ConnectorConfig, changes: Vec<ImportChange>) -> Vec<ImportChange> {
    changes
        .into_iter()
        .filter(|ch| ch.object().is_none_or(|o| cfg.in_scope(&o.dn)))
        .collect()
}

/// How the changes an export applied are confirmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Confirmation {
    /// Nothing to confirm now (nothing applied, or the next run's import confirms it).
    Nothing,
    /// Recorded from the connector's results.
    Recorded,
    /// By importing the connector again.
    ByImport,
}

/// Rolls back what a step wrote ahead of its end (`Store::discard_part`) and loads the
/// state again as it was saved before the step.
fn roll_back_step(store: &mut dyn Store, engine: &mut Engine) -> Result<(), RunError> {
    store.discard_part().map_err(RunError::Store)?;
    let (state, _) = store.load(&engine.plan).map_err(RunError::Store)?;
    engine.state = state;
    Ok(())
}

/// A connector's read: its classified records, the records its reader rejected and how it
/// ended; or why it failed (the step stops, having staged nothing).
type ReadOutcome = Result<(Read, Vec<Rejected>, ImportEnd), String>;

/// The pages of an import that may wait for the engine while the connector reads on.
const PAGES_AHEAD: usize = 2;

/// What a connector's import thread sends to the engine.
enum Message {
    Page(Vec<ImportChange>),
    Reject(Rejected),
}

/// The sink of an import running on a thread of its own: a bounded channel to the engine.
struct ChannelSink {
    tx: std::sync::mpsc::SyncSender<Message>,
}

impl ImportSink for ChannelSink {
    fn page(&mut self, changes: Vec<ImportChange>) -> Result<(), ConnectorError> {
        self.tx
            .send(Message::Page(changes))
            .map_err(|_| ConnectorError {
                source: "import".into(),
                line: None,
                message: "the engine stopped taking the read".into(),
            })
    }

    fn reject(&mut self, rejected: Rejected) {
        // When the engine is gone, the next page reports it.
        let _ = self.tx.send(Message::Reject(rejected));
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

#[cfg(test)]
mod tests {
    use super::StepStatus;

    #[test]
    fn every_status_reads_back_from_its_name() {
        for s in StepStatus::ALL {
            assert_eq!(StepStatus::parse(s.as_str()), Some(s));
            assert!(!(s.is_stopped() && s.is_warning()), "{s}");
        }
        assert_eq!(StepStatus::parse("stopped"), None);
    }
}
