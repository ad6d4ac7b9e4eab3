//! What the web side shows, as one consistent snapshot of the state.
//!
//! Consumes: the runner after each cycle (the scheduler holds it, with the run lock) or a
//! runner opened read-only (`--no-schedule`), and the reports of the cycles this process ran.
//! Produces: a [`Snapshot`] (the deployment's settings, per-connector objects and pending
//! exports, the latest errors by category, the run history, the last cycle) that the HTTP side
//! reads without ever touching the state or its lock; the scheduler replaces it whole after
//! each cycle, so a page never mixes two cycles. Everything in it is also its JSON.

use crate::runner::{RunError, Runner, StepReport, StepStatus};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

/// The run-history steps a snapshot keeps (the insight charts and the history page).
pub const RUNS_KEPT: usize = 500;

/// The error categories of the sync error report, in its order (Entra Connect Health's).
/// The engine's other categories (joins, functions) are shown under their own names after
/// these.
pub const CATEGORIES: [&str; 6] = [
    "Duplicate Attribute",
    "Data Mismatch",
    "Data Validation Failure",
    "Federated Domain Change",
    "Large Attribute",
    "Other",
];

#[derive(Debug, Clone, Serialize, Default)]
pub struct Pending {
    pub add: usize,
    pub update: usize,
    pub delete: usize,
    pub rename: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConnectorStatus {
    pub name: String,
    /// Objects in its connector space (not deleted, not placeholders).
    pub objects: usize,
    pub pending: Pending,
    /// Its latest import and export steps in the run history.
    pub last_import: Option<Step>,
    pub last_export: Option<Step>,
}

/// One step of the run history or of a cycle.
#[derive(Debug, Clone, Serialize)]
pub struct Step {
    pub id: Option<i64>,
    pub started: String,
    pub step: String,
    pub connector: String,
    pub status: String,
    pub adds: i64,
    pub updates: i64,
    pub deletes: i64,
    pub renames: i64,
    pub errors: i64,
    pub duration_ms: i64,
    pub detail: String,
}

impl Step {
    /// A step that stopped on the delete threshold.
    pub fn over_threshold(&self) -> bool {
        StepStatus::parse(&self.status) == Some(StepStatus::StoppedDeletionThresholdExceeded)
    }

    fn from_report(r: &StepReport, started: &str) -> Step {
        Step {
            id: None,
            started: started.to_string(),
            step: r.step.clone(),
            connector: r.connector.clone(),
            status: r.status.as_str().to_string(),
            adds: r.adds as i64,
            updates: r.updates as i64,
            deletes: r.deletes as i64,
            renames: r.renames as i64,
            errors: r.errors as i64,
            duration_ms: r.duration_ms as i64,
            detail: r.notes.join("\n"),
        }
    }
}

/// The last cycle this process ran.
#[derive(Debug, Clone, Serialize)]
pub struct Cycle {
    pub started: String,
    pub seconds: f64,
    /// A step stopped (delete threshold, error limit, connectivity) or the cycle failed.
    pub ok: bool,
    pub error: Option<String>,
    pub steps: Vec<Step>,
}

/// One object in error.
#[derive(Debug, Clone, Serialize)]
pub struct ErrorItem {
    pub category: String,
    pub connector: String,
    pub dn: String,
    /// The attribute and value the error names, when it names them.
    pub attribute: String,
    pub value: String,
    pub rule: String,
    /// For a duplicate: the object that holds the value.
    pub conflicting: String,
    pub code: String,
    pub message: String,
    pub run: i64,
}

/// Reads the attribute, the value and the holder out of a Duplicate Attribute message
/// (`NAME VALUE of DN is already held by HOLDER; ...`, or `cannot provision DN: the DN is
/// already held by metaverse object N`).
fn duplicate_parts(message: &str) -> (String, String, String) {
    if let Some(rest) = message.strip_prefix("cannot provision ")
        && let Some((dn, tail)) = rest.split_once(": the DN is already held")
    {
        let holder = tail.trim_start_matches(" by ").trim().to_string();
        return ("dn".into(), dn.to_string(), holder);
    }
    if let Some((head, rest)) = message.split_once(" is already held by ") {
        let holder = rest.split(';').next().unwrap_or("").trim().to_string();
        let head = head.rsplit_once(" of ").map(|(h, _)| h).unwrap_or(head);
        let (attr, value) = head.split_once(' ').unwrap_or((head, ""));
        return (attr.to_string(), value.to_string(), holder);
    }
    (String::new(), String::new(), String::new())
}

/// Everything the pages and the API show.
#[derive(Debug, Clone, Serialize, Default)]
pub struct Snapshot {
    /// When it was taken (RFC 3339).
    pub taken: String,
    pub staging: bool,
    pub delete_threshold: usize,
    pub error_limit: usize,
    pub interval_seconds: u64,
    /// Cycles run on the schedule (false with `--no-schedule`).
    pub scheduled: bool,
    pub last_successful_cycle: Option<String>,
    pub connectors: Vec<ConnectorStatus>,
    pub last_sync: Option<Step>,
    pub last_cycle: Option<Cycle>,
    pub errors: Vec<ErrorItem>,
    /// Newest first.
    pub runs: Vec<Step>,
    /// Why the state could not be read, if it could not.
    pub problem: Option<String>,
}

/// The snapshot the HTTP side reads; replaced whole.
pub type Shared = Arc<RwLock<Arc<Snapshot>>>;

/// The current snapshot.
pub fn current(shared: &Shared) -> Arc<Snapshot> {
    Arc::clone(&shared.read().unwrap_or_else(|e| e.into_inner()))
}

/// Replaces the snapshot.
pub fn publish(shared: &Shared, s: Snapshot) {
    *shared.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(s);
}

fn step_of(r: &crate::store::RunRecord) -> Step {
    Step {
        id: Some(r.id),
        started: r.started.clone(),
        step: r.step.clone(),
        connector: r.connector.clone(),
        status: r.status.clone(),
        adds: r.adds,
        updates: r.updates,
        deletes: r.deletes,
        renames: r.renames,
        errors: r.errors,
        duration_ms: r.duration_ms,
        detail: r.detail.clone(),
    }
}

/// A snapshot of the runner's state; `last_cycle` is carried over from the previous one
/// unless given.
pub fn take(
    runner: &mut Runner,
    scheduled: bool,
    last_cycle: Option<Cycle>,
) -> Result<Snapshot, RunError> {
    let runs: Vec<Step> = runner.runs(RUNS_KEPT)?.iter().map(step_of).collect();
    let plan = &runner.engine.plan;
    let mut objects = vec![0usize; plan.connectors.len()];
    for o in runner.engine.state.cs().iter() {
        if !o.gone
            && !o.placeholder
            && let Some(n) = objects.get_mut(o.connector)
        {
            *n += 1;
        }
    }
    let names: Vec<String> = plan.connectors.iter().map(|c| c.name.clone()).collect();
    let mut connectors = Vec::new();
    for (c, name) in names.iter().enumerate() {
        let mut pending = Pending::default();
        for d in runner.export_changes(c) {
            match (d.new_dn.is_some(), d.kind.as_str()) {
                (true, _) => pending.rename += 1,
                (_, "add") => pending.add += 1,
                (_, "delete") => pending.delete += 1,
                _ => pending.update += 1,
            }
        }
        let latest = |kind: &str| {
            runs.iter()
                .find(|r| &r.connector == name && r.step.contains(kind))
                .cloned()
        };
        connectors.push(ConnectorStatus {
            name: name.clone(),
            objects: objects[c],
            pending,
            last_import: latest("import"),
            last_export: latest("export"),
        });
    }
    let errors = runner
        .latest_errors()?
        .into_iter()
        .map(|e| {
            let (attribute, value, conflicting) = if e.category == "Duplicate Attribute" {
                duplicate_parts(&e.message)
            } else {
                Default::default()
            };
            ErrorItem {
                category: e.category,
                connector: e.connector,
                dn: e.dn,
                attribute,
                value,
                rule: e.rule,
                conflicting,
                code: e.code,
                message: e.message,
                run: e.run,
            }
        })
        .collect();
    let last_successful_cycle = runner
        .meta(super::metrics::LAST_SUCCESS_KEY)?
        .and_then(|t| t.parse::<f64>().ok())
        .and_then(|t| jiff::Timestamp::from_millisecond((t * 1000.0) as i64).ok())
        .map(|t| t.to_string());
    let d = &runner.deployment;
    Ok(Snapshot {
        taken: jiff::Timestamp::now().to_string(),
        staging: d.staging,
        delete_threshold: d.delete_threshold,
        error_limit: d.error_limit,
        interval_seconds: d.interval.as_secs(),
        scheduled,
        last_successful_cycle,
        connectors,
        last_sync: runs.iter().find(|r| r.step.contains("sync")).cloned(),
        last_cycle,
        errors,
        runs,
        problem: None,
    })
}

/// The last cycle, from its reports.
pub fn cycle_of(started: &str, seconds: f64, result: &Result<Vec<StepReport>, RunError>) -> Cycle {
    match result {
        Ok(reports) => Cycle {
            started: started.to_string(),
            seconds,
            ok: !reports.iter().any(|r| r.status.is_stopped()),
            error: None,
            steps: reports
                .iter()
                .map(|r| Step::from_report(r, started))
                .collect(),
        },
        Err(e) => Cycle {
            started: started.to_string(),
            seconds,
            ok: false,
            error: Some(e.to_string()),
            steps: Vec::new(),
        },
    }
}

/// The errors by category: the report's six first (with zero counts), then any other.
pub fn by_category(errors: &[ErrorItem]) -> Vec<(String, Vec<&ErrorItem>)> {
    let mut by: BTreeMap<&str, Vec<&ErrorItem>> = BTreeMap::new();
    for e in errors {
        by.entry(e.category.as_str()).or_default().push(e);
    }
    let mut out: Vec<(String, Vec<&ErrorItem>)> = CATEGORIES
        .iter()
        .map(|c| (c.to_string(), by.remove(c).unwrap_or_default()))
        .collect();
    out.extend(by.into_iter().map(|(c, l)| (c.to_string(), l)));
    out
}

/// The sync insight series: per step kind and connector, (start, duration ms), oldest first;
/// and per run-history step, (start, objects changed).
#[derive(Debug, Clone, Serialize, Default)]
pub struct Insight {
    pub latency: Vec<Series>,
    pub changes: Vec<ChangePoint>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Series {
    pub step: String,
    pub connector: String,
    /// (start, duration in ms), oldest first.
    pub points: Vec<(String, i64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ChangePoint {
    pub started: String,
    pub step: String,
    pub connector: String,
    pub adds: i64,
    pub updates: i64,
    pub deletes: i64,
    pub renames: i64,
}

pub fn insight(s: &Snapshot) -> Insight {
    let mut by: BTreeMap<(String, String), Vec<(String, i64)>> = BTreeMap::new();
    let mut changes = Vec::new();
    for r in s.runs.iter().rev() {
        let kind = if r.step.contains("import") {
            "import"
        } else if r.step.contains("sync") {
            "sync"
        } else {
            "export"
        };
        by.entry((kind.to_string(), r.connector.clone()))
            .or_default()
            .push((r.started.clone(), r.duration_ms));
        changes.push(ChangePoint {
            started: r.started.clone(),
            step: r.step.clone(),
            connector: r.connector.clone(),
            adds: r.adds,
            updates: r.updates,
            deletes: r.deletes,
            renames: r.renames,
        });
    }
    Insight {
        latency: by
            .into_iter()
            .map(|((step, connector), points)| Series {
                step,
                connector,
                points,
            })
            .collect(),
        changes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_messages_are_split() {
        assert_eq!(
            duplicate_parts(
                "mail \"a@b\" of CN=2,OU=People is already held by CN=1,OU=People; the value is withheld"
            ),
            ("mail".into(), "\"a@b\"".into(), "CN=1,OU=People".into())
        );
        assert_eq!(
            duplicate_parts("cannot provision CN=x: the DN is already held by metaverse object 4"),
            ("dn".into(), "CN=x".into(), "metaverse object 4".into())
        );
    }
}
