//! The alerts of `idflow serve`: what is wrong with the sync, and what to do about it.
//!
//! Consumes: the runner's state after each step, each cycle and every minute — the latest step
//! of each kind per connector in the run history, the objects in error, the time of the last
//! successful cycle — the size of the filesystem holding the state database, and the outcome
//! of a bundle reload (`serve::reload`). Produces: alerts kept in the state database's
//! `alerts` table (`Store::raise_alert` and the rest), each raised once with a timestamp and
//! resolved by itself when its success condition holds, and the [`Event`]s (raised, resolved)
//! that `serve::notify` sends. Every alert has a stable key (its kind, then the connector where
//! there is one: `import_failed:HR`), a title, a severity, a description, remediation steps and
//! a link to its section of docs/ALERTS.md.
//!
//! The web side reads and acknowledges alerts through [`active`], [`history`], [`get`] and
//! [`acknowledge`], which take any [`Store`] (a second connection to the state database works
//! while the scheduler writes: SQLite in WAL mode).

use super::metrics::LAST_SUCCESS_KEY;
use crate::runner::{Runner, StepStatus};
use crate::store::{AlertRecord, RunRecord, Store, StoreError};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How bad an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The sync does not do its work (or part of it).
    Error,
    /// The sync works, but something needs a look.
    Warning,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        }
    }

    fn parse(s: &str) -> Severity {
        if s == "warning" {
            Severity::Warning
        } else {
            Severity::Error
        }
    }
}

/// What an alert is about. Its name is the first part of the alert's key and the anchor of
/// its section in docs/ALERTS.md.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    NoSuccessfulCycle,
    ImportFailed,
    ConnectionFailed,
    DeleteThresholdExceeded,
    ObjectsInErrorIncreased,
    ErrorLimitReached,
    BundleChangeRefused,
    StateDiskUsage,
}

impl Kind {
    pub const ALL: [Kind; 8] = [
        Kind::NoSuccessfulCycle,
        Kind::ImportFailed,
        Kind::ConnectionFailed,
        Kind::DeleteThresholdExceeded,
        Kind::ObjectsInErrorIncreased,
        Kind::ErrorLimitReached,
        Kind::BundleChangeRefused,
        Kind::StateDiskUsage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::NoSuccessfulCycle => "no_successful_cycle",
            Kind::ImportFailed => "import_failed",
            Kind::ConnectionFailed => "connection_failed",
            Kind::DeleteThresholdExceeded => "delete_threshold_exceeded",
            Kind::ObjectsInErrorIncreased => "objects_in_error_increased",
            Kind::ErrorLimitReached => "error_limit_reached",
            Kind::BundleChangeRefused => "bundle_change_refused",
            Kind::StateDiskUsage => "state_disk_usage",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn severity(self) -> Severity {
        match self {
            Kind::ObjectsInErrorIncreased | Kind::StateDiskUsage => Severity::Warning,
            _ => Severity::Error,
        }
    }

    /// The alert's section of the documentation.
    pub fn docs(self) -> String {
        format!("{DOCS}#{}", self.as_str())
    }
}

/// The page documenting the alerts.
pub const DOCS: &str = "docs/ALERTS.md";

/// The state database's filesystem use above which [`Kind::StateDiskUsage`] is raised, in
/// percent.
pub const DISK_USAGE_PERCENT: f64 = 90.0;

/// The state metadata key of the objects-in-error count the increase is measured from.
pub const ERRORS_BASELINE_KEY: &str = "alerts.objects_in_error_baseline";

/// An alert, as the web side shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Alert {
    pub id: i64,
    /// Stable: the kind, then the connector where there is one (`import_failed:HR`).
    pub key: String,
    pub kind: Kind,
    pub title: String,
    pub severity: Severity,
    pub description: String,
    pub remediation: Vec<String>,
    /// The alert's section of docs/ALERTS.md (`docs/ALERTS.md#import_failed`).
    pub docs: String,
    /// RFC 3339.
    pub raised_at: String,
    pub resolved_at: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
    /// What was seen: the connector's error, the counts, the diagnostics.
    pub detail: String,
}

impl Alert {
    pub fn is_active(&self) -> bool {
        self.resolved_at.is_none()
    }

    /// The connector the alert is about, from its key (`import_failed:HR`,
    /// `delete_threshold_exceeded:export:HR`).
    pub fn connector(&self) -> Option<&str> {
        let rest = self
            .key
            .strip_prefix(self.kind.as_str())?
            .strip_prefix(':')?;
        match self.kind {
            Kind::DeleteThresholdExceeded => rest.split_once(':').map(|(_, c)| c),
            _ => Some(rest),
        }
    }

    /// The alert of a stored record (None for a kind this version does not know).
    fn of(r: AlertRecord) -> Option<Alert> {
        Some(Alert {
            kind: Kind::parse(&r.kind)?,
            severity: Severity::parse(&r.severity),
            id: r.id,
            key: r.key,
            title: r.title,
            description: r.description,
            remediation: r.remediation,
            docs: r.docs,
            raised_at: r.raised_at,
            resolved_at: r.resolved_at,
            acknowledged_by: r.acknowledged_by,
            acknowledged_at: r.acknowledged_at,
            detail: r.detail,
        })
    }
}

/// A change of an alert: what the notifications say.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Event {
    pub event: Change,
    pub alert: Alert,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Raised,
    Resolved,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Raised => "raised",
            Change::Resolved => "resolved",
        }
    }
}

/// The active alerts, newest first.
pub fn active(store: &mut dyn Store) -> Result<Vec<Alert>, StoreError> {
    Ok(store
        .alerts(true, usize::MAX)?
        .into_iter()
        .filter_map(Alert::of)
        .collect())
}

/// The latest `limit` alerts, active and resolved, newest first.
pub fn history(store: &mut dyn Store, limit: usize) -> Result<Vec<Alert>, StoreError> {
    Ok(store
        .alerts(false, limit)?
        .into_iter()
        .filter_map(Alert::of)
        .collect())
}

/// One alert by id.
pub fn get(store: &mut dyn Store, id: i64) -> Result<Option<Alert>, StoreError> {
    Ok(store.alert(id)?.and_then(Alert::of))
}

/// Records that `who` acknowledged the alert `id` now; returns the alert (None when there is
/// no such alert). Acknowledging does not resolve: only the success condition does.
pub fn acknowledge(store: &mut dyn Store, id: i64, who: &str) -> Result<Option<Alert>, StoreError> {
    if !store.acknowledge_alert(id, who, &now())? {
        return Ok(None);
    }
    get(store, id)
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

/// An alert to raise: its key, what it says, and what was seen.
#[derive(Debug, Clone)]
pub struct Raise {
    pub kind: Kind,
    pub key: String,
    pub title: String,
    pub description: String,
    pub remediation: Vec<String>,
    pub detail: String,
}

/// Raises `r` unless an alert of its key is active (whose text is then brought up to date);
/// returns the event of a new alert.
pub fn raise(store: &mut dyn Store, r: Raise) -> Result<Option<Event>, StoreError> {
    let record = AlertRecord {
        id: 0,
        key: r.key,
        kind: r.kind.as_str().into(),
        title: r.title,
        severity: r.kind.severity().as_str().into(),
        description: r.description,
        remediation: r.remediation,
        docs: r.kind.docs(),
        detail: r.detail,
        raised_at: now(),
        resolved_at: None,
        acknowledged_by: None,
        acknowledged_at: None,
    };
    let (id, new) = store.raise_alert(&record)?;
    if !new {
        return Ok(None);
    }
    tracing::warn!(key = %record.key, "alert raised: {}", record.title);
    Ok(get(store, id)?.map(|alert| Event {
        event: Change::Raised,
        alert,
    }))
}

/// Resolves the active alert of `key`, if any; returns its event.
pub fn resolve(store: &mut dyn Store, key: &str) -> Result<Option<Event>, StoreError> {
    let Some(id) = store.resolve_alert(key, &now())? else {
        return Ok(None);
    };
    let alert = get(store, id)?;
    if let Some(a) = &alert {
        tracing::info!(key, "alert resolved: {}", a.title);
    }
    Ok(alert.map(|alert| Event {
        event: Change::Resolved,
        alert,
    }))
}

/// What the evaluation needs besides the runner's state.
#[derive(Debug, Clone)]
pub struct Context {
    /// When the service started cycling (the "no successful cycle" alert counts from it when
    /// no cycle ever succeeded); None: that alert is not evaluated.
    pub started: Option<jiff::Timestamp>,
    /// The schedule's interval.
    pub interval: Duration,
    /// The deployment file, as the remediation commands name it.
    pub config: PathBuf,
    /// The state database's filesystem use above which the disk alert is raised (percent).
    pub disk_usage_percent: f64,
}

impl Context {
    /// The context of a service that started cycling now.
    pub fn new(config: &Path, interval: Duration) -> Context {
        Context {
            started: Some(jiff::Timestamp::now()),
            interval,
            config: std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf()),
            disk_usage_percent: DISK_USAGE_PERCENT,
        }
    }
}

/// What an alert condition found: raise this, or resolve the key.
enum Found {
    Raise(Raise),
    Resolve(String),
}

/// Evaluates every alert condition on the runner's state (all but the bundle's, which
/// `serve::reload` raises and resolves) and raises or resolves the alerts accordingly.
/// Returns the events, to notify.
pub fn evaluate(runner: &mut Runner, ctx: &Context) -> Result<Vec<Event>, StoreError> {
    let mut found = Vec::new();
    let steps = runner.store().latest_steps()?;
    let connectors: Vec<String> = runner
        .deployment
        .connectors
        .iter()
        .map(|c| c.name.clone())
        .collect();
    for c in &connectors {
        steps_of_connector(c, &steps, ctx, &mut found);
    }
    // The alerts of a connector idflow.toml no longer has: nothing will resolve them.
    for a in active(runner.store())? {
        if a.connector()
            .is_some_and(|c| !connectors.iter().any(|n| n == c))
        {
            found.push(Found::Resolve(a.key));
        }
    }
    let sync = steps
        .iter()
        .filter(|s| s.step.ends_with("sync"))
        .max_by_key(|s| s.id);
    found.push(error_limit(sync, runner.deployment.error_limit, ctx));
    let errors = runner.store().latest_errors()?.len() as i64;
    if let Some(f) = errors_increased(runner.store(), errors, ctx)? {
        found.push(f);
    }
    if let Some(started) = ctx.started {
        let last = runner
            .store()
            .get_meta(LAST_SUCCESS_KEY)?
            .and_then(|t| t.parse::<f64>().ok());
        found.push(no_successful_cycle(last, started, ctx));
    }
    if let Some(f) = disk_usage(&runner.deployment.state, ctx.disk_usage_percent) {
        found.push(f);
    }
    let mut events = Vec::new();
    for f in found {
        let e = match f {
            Found::Raise(r) => raise(runner.store(), r)?,
            Found::Resolve(key) => resolve(runner.store(), &key)?,
        };
        events.extend(e);
    }
    Ok(events)
}

/// Why a connection failed, from the connector's error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The system refused the credentials (or they could not be read).
    Authentication,
    /// The system could not be reached (refused, timed out, not found).
    Unreachable,
    /// Anything else the connector reports (a missing or malformed source, a server error).
    Other,
}

/// Classifies a connector's error message.
pub fn classify(message: &str) -> Failure {
    let m = message.to_ascii_lowercase();
    const AUTH: &[&str] = &[
        "invalidcredentials",
        "invalid credentials",
        "http 401",
        "http 403",
        "unauthorized",
        "forbidden",
        "authentication",
        "client credentials",
        "password_env",
        "password_file",
        "token_env",
        "token_file",
        "secret_env",
        "secret_file",
        "strongerauthrequired",
        "insufficientaccessrights",
    ];
    const UNREACHABLE: &[&str] = &[
        "cannot connect",
        "connection refused",
        "timed out",
        "unreachable",
        "no route to host",
        "failed to lookup",
        "dns error",
        "name or service not known",
        "connection reset",
        "serverdown",
        "server down",
    ];
    if AUTH.iter().any(|p| m.contains(p)) {
        Failure::Authentication
    } else if UNREACHABLE.iter().any(|p| m.contains(p)) {
        Failure::Unreachable
    } else {
        Failure::Other
    }
}

/// The first lines of a step's detail (its notes), for an alert.
fn first_note(r: &RunRecord) -> String {
    let d = r.detail.trim();
    if d.is_empty() {
        "(no message)".into()
    } else {
        d.to_string()
    }
}

/// The alerts of one connector from its latest import and export steps: import failed,
/// connection failed, delete threshold exceeded (import and export).
fn steps_of_connector(c: &str, steps: &[RunRecord], ctx: &Context, found: &mut Vec<Found>) {
    let of = |pred: &dyn Fn(&RunRecord) -> bool| {
        steps
            .iter()
            .filter(|s| s.connector == c && pred(s))
            .max_by_key(|s| s.id)
    };
    let import = of(&|s| s.step.ends_with("import"));
    let export = of(&|s| s.step == "export");
    let import_key = format!("{}:{c}", Kind::ImportFailed.as_str());
    let connection_key = format!("{}:{c}", Kind::ConnectionFailed.as_str());
    let config = ctx.config.display();
    // The connection: failed while the latest import or the latest export could not
    // connect (an export with nothing to send does not connect, so neither step alone
    // tells that the connection works).
    let connection = [import, export]
        .into_iter()
        .flatten()
        .filter(|s| StepStatus::parse(&s.status) == Some(StepStatus::StoppedConnectivity))
        .filter_map(|s| match classify(&s.detail) {
            Failure::Other => None,
            f => Some((s, f)),
        })
        .max_by_key(|(s, _)| s.id);
    match connection {
        Some((s, failure)) => {
            let (why, description, remediation) = match failure {
                Failure::Authentication => (
                    "authentication",
                    format!(
                        "The {} step of connector \"{c}\" could not sign in to the connected system: it refused the credentials, or they could not be read. Nothing was read or written.",
                        s.step
                    ),
                    vec![
                        format!(
                            "Check the connector's credentials in {config} (password_env or password_file, token_env, secret_env): the variable is set for the service, the file is readable by it, the secret has not expired."
                        ),
                        "Check that the account is not locked or disabled and still has its rights in the connected system.".into(),
                        "The next cycle connects again; the alert resolves when a step of the connector connects.".into(),
                    ],
                ),
                _ => (
                    "unreachable",
                    format!(
                        "The {} step of connector \"{c}\" could not reach the connected system (the connection was refused, timed out or the name did not resolve). Nothing was read or written.",
                        s.step
                    ),
                    vec![
                        format!("Check the connector's address (url, host, port) in {config}."),
                        "Check that the system is up and that the network (DNS, firewall, proxy) lets the service reach it.".into(),
                        "The next cycle connects again; the alert resolves when a step of the connector connects.".into(),
                    ],
                ),
            };
            found.push(Found::Raise(Raise {
                kind: Kind::ConnectionFailed,
                key: connection_key,
                title: format!("Connection to {c} failed ({why})"),
                description,
                remediation,
                detail: first_note(s),
            }));
        }
        None => {
            if import.is_some() || export.is_some() {
                found.push(Found::Resolve(connection_key));
            }
        }
    }

    // The import: the error the connector reported (a connection failure has its own alert).
    if let Some(s) = import {
        let failed = match StepStatus::parse(&s.status) {
            Some(StepStatus::StoppedIncompleteRead) => true,
            Some(StepStatus::StoppedConnectivity) => classify(&s.detail) == Failure::Other,
            _ => false,
        };
        if failed {
            found.push(Found::Raise(Raise {
                kind: Kind::ImportFailed,
                key: import_key,
                title: format!("Import from {c} failed"),
                description: format!(
                    "The latest {} of connector \"{c}\" stopped ({}): nothing it read was staged, so the changes of {c} are not synchronized.",
                    s.step, s.status
                ),
                remediation: vec![
                    "Read the connector's error in the detail: a missing, empty or malformed source file, or an error the connected system answered.".into(),
                    format!("Fix the source, or its settings in {config}."),
                    format!(
                        "If the source really is empty now (every object gone), allow the deletes once: stop the service, run `idflow run --config {config} --allow-deletes {}`, and start the service again.",
                        s.deletes.max(1)
                    ),
                    "The next cycle imports again; the alert resolves when an import succeeds.".into(),
                ],
                detail: first_note(s),
            }));
        } else {
            found.push(Found::Resolve(import_key));
        }
    }

    // The delete threshold, on import and on export.
    for (side, step) in [("import", import), ("export", export)] {
        let Some(s) = step else { continue };
        let key = format!("{}:{side}:{c}", Kind::DeleteThresholdExceeded.as_str());
        if StepStatus::parse(&s.status) != Some(StepStatus::StoppedDeletionThresholdExceeded) {
            found.push(Found::Resolve(key));
            continue;
        }
        let n = s.deletes;
        let command = format!("idflow run --config {config} --allow-deletes {n}");
        let (title, description) = if side == "export" {
            (
                format!("Export to {c} stopped: delete threshold exceeded ({n} deletes)"),
                format!(
                    "The export to \"{c}\" holds {n} deletes, more than the delete threshold of idflow.toml: nothing was exported to {c}, and nothing will be until the deletes are allowed or undone."
                ),
            )
        } else {
            (
                format!("Import from {c} stopped: delete threshold exceeded ({n} deletes)"),
                format!(
                    "The import from \"{c}\" would delete {n} objects imported before, more than the delete threshold of idflow.toml: nothing of it was staged."
                ),
            )
        };
        found.push(Found::Raise(Raise {
            kind: Kind::DeleteThresholdExceeded,
            key,
            title,
            description,
            remediation: vec![
                format!(
                    "Check that the deletes are intended: `idflow state pending-exports --config {config} --connector {c}` lists what the export would delete; the run history (`idflow state runs --config {config}`) shows the step."
                ),
                format!(
                    "If they are, allow them once: stop the service (it holds the run lock), run `{command}`, and start the service again."
                ),
                "If they are not, restore the objects in the source (or fix the rule that removes them); the next cycle sees them again.".into(),
                "The alert resolves when a step of this kind no longer stops on the threshold.".into(),
            ],
            detail: format!("{}\ncommand: {command}", first_note(s)),
        }));
    }
}

/// The error limit: raised while the latest sync stopped on it.
fn error_limit(sync: Option<&RunRecord>, limit: usize, ctx: &Context) -> Found {
    let config = ctx.config.display();
    let key = Kind::ErrorLimitReached.as_str().to_string();
    match sync {
        Some(s) if StepStatus::parse(&s.status) == Some(StepStatus::StoppedErrorLimit) => {
            Found::Raise(Raise {
            kind: Kind::ErrorLimitReached,
            key,
            title: format!("Sync stopped: error limit of {limit} reached"),
            description: format!(
                "The latest {} reached the error limit ({limit} errors) and stopped: its changes were not saved and nothing was exported.",
                s.step
            ),
            remediation: vec![
                format!("List the errors by category: `idflow state errors --config {config}`."),
                "Fix the data or the rule that produces most of them (a duplicate attribute, a missing value).".into(),
                "If the errors are expected for now, raise error_limit in idflow.toml.".into(),
                "The alert resolves when a sync finishes below the limit.".into(),
            ],
            detail: first_note(s),
            })
        }
        _ => Found::Resolve(key),
    }
}

/// Objects in error increased: measured from a baseline kept in the state (the count when no
/// such alert was active); raised while the count is above it, resolved when it is back to it
/// or below.
fn errors_increased(
    store: &mut dyn Store,
    errors: i64,
    ctx: &Context,
) -> Result<Option<Found>, StoreError> {
    let config = ctx.config.display();
    let key = Kind::ObjectsInErrorIncreased.as_str().to_string();
    let baseline = store
        .get_meta(ERRORS_BASELINE_KEY)?
        .and_then(|b| b.parse::<i64>().ok());
    let active = store.alerts(true, usize::MAX)?.iter().any(|a| a.key == key);
    let Some(baseline) = baseline else {
        store.set_meta(ERRORS_BASELINE_KEY, &errors.to_string())?;
        return Ok(None);
    };
    if errors > baseline {
        return Ok(Some(Found::Raise(Raise {
            kind: Kind::ObjectsInErrorIncreased,
            key,
            title: format!("Objects in error increased from {baseline} to {errors}"),
            description: format!(
                "The latest sync and imports hold {errors} objects in error, {} more than the {baseline} before.",
                errors - baseline
            ),
            remediation: vec![
                format!(
                    "List the errors by category: `idflow state errors --config {config}`: the new ones are usually of one category (a duplicate attribute, a data validation error)."
                ),
                "Fix the source data, or the rule that produces them.".into(),
                format!("The alert resolves when the count is back to {baseline} or below."),
            ],
            detail: format!("objects in error: {baseline} -> {errors}"),
        })));
    }
    if !active || errors < baseline {
        store.set_meta(ERRORS_BASELINE_KEY, &errors.to_string())?;
    }
    Ok(Some(Found::Resolve(key)))
}

/// No successful cycle in twice the interval.
fn no_successful_cycle(last: Option<f64>, started: jiff::Timestamp, ctx: &Context) -> Found {
    let interval = ctx.interval;
    let config = ctx.config.display();
    let key = Kind::NoSuccessfulCycle.as_str().to_string();
    let now = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
    let since_start = started.as_millisecond() as f64 / 1000.0;
    // Counted from the later of the last success and the service's start (a service that
    // just started has not had its chance yet).
    let from = last.unwrap_or(since_start).max(since_start);
    let window = 2.0 * interval.as_secs_f64();
    if now - from <= window {
        return Found::Resolve(key);
    }
    let last_text = match last {
        Some(t) => jiff::Timestamp::from_millisecond((t * 1000.0) as i64)
            .map(|t| t.to_string())
            .unwrap_or_else(|_| t.to_string()),
        None => "never".into(),
    };
    let every = humantime(interval);
    Found::Raise(Raise {
        kind: Kind::NoSuccessfulCycle,
        key,
        title: format!("No successful sync cycle in {}", humantime(interval * 2)),
        description: format!(
            "The service runs a cycle every {every}; none has finished without a stopped step for twice that. Last successful cycle: {last_text}."
        ),
        remediation: vec![
            "Look at the other active alerts: they name the step that stops.".into(),
            format!(
                "Read the service's log for failed cycles, and the run history (`idflow state runs --config {config}`)."
            ),
            "The alert resolves when a cycle succeeds.".into(),
        ],
        detail: format!("last successful cycle: {last_text}; interval: {every}"),
    })
}

/// A duration as a whole number and the largest unit that divides it (`1h`, `90s`).
fn humantime(d: Duration) -> String {
    let ms = d.as_millis();
    for (unit, n) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1000),
    ] {
        if ms >= n && ms.is_multiple_of(n) {
            return format!("{}{unit}", ms / n);
        }
    }
    format!("{ms}ms")
}

/// The used share of the filesystem holding `path`, in percent, as `df` computes it (the
/// blocks reserved for the superuser count as not available).
pub fn filesystem_use(path: &Path) -> Option<f64> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    statvfs_use(dir)
}

#[cfg(unix)]
fn statvfs_use(dir: &Path) -> Option<f64> {
    let s = rustix::fs::statvfs(dir).ok()?;
    let used = s.f_blocks.saturating_sub(s.f_bfree);
    let total = used + s.f_bavail;
    (total > 0).then(|| used as f64 * 100.0 / total as f64)
}

#[cfg(not(unix))]
fn statvfs_use(_: &Path) -> Option<f64> {
    None
}

fn disk_usage(state: &Path, threshold: f64) -> Option<Found> {
    let key = Kind::StateDiskUsage.as_str().to_string();
    let used = filesystem_use(state)?;
    if used <= threshold {
        return Some(Found::Resolve(key));
    }
    Some(Found::Raise(Raise {
        kind: Kind::StateDiskUsage,
        key,
        title: format!("State database disk usage above {threshold:.0}%"),
        description: format!(
            "The filesystem holding the state database {} is {used:.0}% full. A full disk stops every save: the steps fail and nothing is synchronized.",
            state.display()
        ),
        remediation: vec![
            "Free space on the filesystem, or move the state (`state` in idflow.toml) to a larger one while the service is stopped.".into(),
            "Lower keep_runs in idflow.toml to keep less run history.".into(),
            "The alert resolves when the use is back below the threshold.".into(),
        ],
        detail: format!("{used:.1}% used"),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sqlite::SqliteStore;

    #[test]
    fn classifies_connector_errors() {
        assert_eq!(
            classify("ldap://dc1:389: bind: invalidCredentials (49)"),
            Failure::Authentication
        );
        assert_eq!(
            classify("https://scim.example.com: HTTP 401 Unauthorized"),
            Failure::Authentication
        );
        assert_eq!(
            classify("password_env: the environment variable `X` is not set"),
            Failure::Authentication
        );
        assert_eq!(
            classify("https://scim.example.com/Users: cannot connect"),
            Failure::Unreachable
        );
        assert_eq!(
            classify("ldap://dc1:389: cannot connect: connection refused"),
            Failure::Unreachable
        );
        assert_eq!(
            classify("hr.csv: cannot read: the file does not exist"),
            Failure::Other
        );
    }

    fn raise_of(key: &str) -> Raise {
        Raise {
            kind: Kind::ImportFailed,
            key: key.into(),
            title: "t".into(),
            description: "d".into(),
            remediation: vec!["one".into(), "two".into()],
            detail: "x".into(),
        }
    }

    #[test]
    fn raise_resolve_acknowledge() {
        let mut s = SqliteStore::memory().unwrap();
        let e = raise(&mut s, raise_of("import_failed:HR"))
            .unwrap()
            .unwrap();
        assert_eq!(e.event, Change::Raised);
        assert_eq!(e.alert.remediation, ["one", "two"]);
        assert_eq!(e.alert.docs, "docs/ALERTS.md#import_failed");
        // Raised again while active: the same alert, no event.
        assert!(
            raise(&mut s, raise_of("import_failed:HR"))
                .unwrap()
                .is_none()
        );
        assert_eq!(active(&mut s).unwrap().len(), 1);
        let a = acknowledge(&mut s, e.alert.id, "alice").unwrap().unwrap();
        assert_eq!(a.acknowledged_by.as_deref(), Some("alice"));
        assert!(a.is_active());
        assert!(acknowledge(&mut s, 999, "alice").unwrap().is_none());
        let r = resolve(&mut s, "import_failed:HR").unwrap().unwrap();
        assert_eq!(r.event, Change::Resolved);
        assert!(r.alert.resolved_at.is_some());
        assert!(resolve(&mut s, "import_failed:HR").unwrap().is_none());
        assert!(active(&mut s).unwrap().is_empty());
        // A new occurrence is a new alert; the history keeps both.
        let again = raise(&mut s, raise_of("import_failed:HR"))
            .unwrap()
            .unwrap();
        assert_ne!(again.alert.id, e.alert.id);
        assert_eq!(history(&mut s, 10).unwrap().len(), 2);
        let json = serde_json::to_value(&again.alert).unwrap();
        assert_eq!(json["severity"], "error");
        assert_eq!(json["kind"], "import_failed");
    }

    #[test]
    fn the_connector_of_a_key() {
        let mut s = SqliteStore::memory().unwrap();
        let mut r = raise_of("delete_threshold_exceeded:export:contoso.com");
        r.kind = Kind::DeleteThresholdExceeded;
        let a = raise(&mut s, r).unwrap().unwrap().alert;
        assert_eq!(a.connector(), Some("contoso.com"));
        let a = raise(&mut s, raise_of("import_failed:HR:east"))
            .unwrap()
            .unwrap()
            .alert;
        assert_eq!(a.connector(), Some("HR:east"));
        let mut r = raise_of("error_limit_reached");
        r.kind = Kind::ErrorLimitReached;
        let a = raise(&mut s, r).unwrap().unwrap().alert;
        assert_eq!(a.connector(), None);
        assert_eq!(a.severity, Severity::Error);
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
        }
    }

    #[test]
    fn every_kind_has_its_section_in_the_docs() {
        let docs = include_str!("../../docs/ALERTS.md");
        for k in Kind::ALL {
            assert!(
                docs.contains(&format!("<a id=\"{}\"></a>", k.as_str())),
                "{}",
                k.as_str()
            );
        }
    }

    #[test]
    fn errors_increase_from_a_baseline() {
        let mut s = SqliteStore::memory().unwrap();
        // The first count is the baseline.
        let ctx = Context::new(Path::new("idflow.toml"), Duration::from_secs(60));
        assert!(errors_increased(&mut s, 3, &ctx).unwrap().is_none());
        assert!(matches!(
            errors_increased(&mut s, 5, &ctx).unwrap(),
            Some(Found::Raise(r)) if r.title == "Objects in error increased from 3 to 5"
        ));
        raise(&mut s, raise_of("objects_in_error_increased")).unwrap();
        assert!(matches!(
            errors_increased(&mut s, 4, &ctx).unwrap(),
            Some(Found::Raise(_))
        ));
        assert!(matches!(
            errors_increased(&mut s, 3, &ctx).unwrap(),
            Some(Found::Resolve(_))
        ));
        resolve(&mut s, "objects_in_error_increased").unwrap();
        // Falling below lowers the baseline.
        assert!(matches!(
            errors_increased(&mut s, 1, &ctx).unwrap(),
            Some(Found::Resolve(_))
        ));
        assert!(matches!(
            errors_increased(&mut s, 2, &ctx).unwrap(),
            Some(Found::Raise(_))
        ));
    }

    #[test]
    fn no_successful_cycle_counts_from_the_later_of_start_and_success() {
        let hour = Context::new(Path::new("idflow.toml"), Duration::from_secs(3600));
        let hour = &hour;
        let now = jiff::Timestamp::now();
        let long_ago = now - jiff::SignedDuration::from_hours(5);
        let now_s = now.as_millisecond() as f64 / 1000.0;
        assert!(matches!(
            no_successful_cycle(None, now, hour),
            Found::Resolve(_)
        ));
        assert!(matches!(
            no_successful_cycle(None, long_ago, hour),
            Found::Raise(r) if r.title == "No successful sync cycle in 2h"
        ));
        assert!(matches!(
            no_successful_cycle(Some(now_s - 60.0), long_ago, hour),
            Found::Resolve(_)
        ));
        assert!(matches!(
            no_successful_cycle(Some(now_s - 3.0 * 3600.0), long_ago, hour),
            Found::Raise(_)
        ));
    }

    #[test]
    fn disk_usage_against_the_threshold() {
        let dir = std::env::temp_dir();
        let used = filesystem_use(&dir.join("idflow.db")).unwrap();
        assert!((0.0..=100.0).contains(&used));
        assert!(matches!(
            disk_usage(&dir.join("idflow.db"), -1.0),
            Some(Found::Raise(r)) if r.kind == Kind::StateDiskUsage
        ));
        assert!(matches!(
            disk_usage(&dir.join("idflow.db"), 100.0),
            Some(Found::Resolve(_))
        ));
    }
}
