//! The alerts as the HTTP side shows and acknowledges them.
//!
//! Consumes: the state database's path (the alerts `serve::alerts` raises and resolves are kept
//! there). Produces: the active alerts and the latest ones of the history for the overview,
//! the alerts page and `/api/alerts` ([`list`], read on a read-only connection of its own, so
//! a page never waits for a cycle), and an operator's acknowledgement recorded on a connection
//! of its own ([`acknowledge`]). Acknowledging does not resolve an alert: only its success
//! condition does.

use super::alerts;
use crate::store::Store;
use crate::store::sqlite::SqliteStore;
use serde::Serialize;
use std::path::Path;

/// The resolved alerts shown after the active ones.
const HISTORY: usize = 200;

/// One alert as the pages and `/api/alerts` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: String,
    /// Stable: the kind, then the connector where there is one (`import_failed:HR`).
    pub key: String,
    pub kind: String,
    pub connector: Option<String>,
    /// `error` or `warning`.
    pub severity: String,
    pub title: String,
    pub description: String,
    pub remediation: Vec<String>,
    /// The alert's section of docs/ALERTS.md.
    pub docs: String,
    /// What was seen: the connector's error, the counts, the diagnostics.
    pub detail: String,
    pub raised: String,
    pub resolved: Option<String>,
    pub acknowledged_by: Option<String>,
    pub acknowledged_at: Option<String>,
}

impl From<alerts::Alert> for Alert {
    fn from(a: alerts::Alert) -> Alert {
        Alert {
            id: a.id.to_string(),
            connector: a.connector().map(str::to_string),
            key: a.key,
            kind: a.kind.as_str().to_string(),
            severity: a.severity.as_str().to_string(),
            title: a.title,
            description: a.description,
            remediation: a.remediation,
            docs: a.docs,
            detail: a.detail,
            raised: a.raised_at,
            resolved: a.resolved_at,
            acknowledged_by: a.acknowledged_by,
            acknowledged_at: a.acknowledged_at,
        }
    }
}

/// The alerts, active ones first.
#[derive(Debug, Clone, Serialize)]
pub struct Alerts {
    /// This service evaluates the alerts (it runs the cycles; false with `--no-schedule`,
    /// which shows what the cycling process recorded).
    pub engine: bool,
    pub alerts: Vec<Alert>,
    /// Why the alerts could not be read (the list is empty then).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
}

/// The active alerts (newest first), then the latest resolved ones.
pub fn list(state: &Path, scheduled: bool) -> Alerts {
    let read = || -> Result<Vec<Alert>, String> {
        let mut store = SqliteStore::open_read_only(state).map_err(|e| e.to_string())?;
        let store: &mut dyn Store = &mut store;
        let mut out: Vec<Alert> = alerts::active(store)
            .map_err(|e| e.to_string())?
            .into_iter()
            .map(Alert::from)
            .collect();
        out.extend(
            alerts::history(store, HISTORY)
                .map_err(|e| e.to_string())?
                .into_iter()
                .filter(|a| !a.is_active())
                .map(Alert::from),
        );
        Ok(out)
    };
    match read() {
        Ok(alerts) => Alerts {
            engine: scheduled,
            alerts,
            problem: None,
        },
        Err(e) => Alerts {
            engine: scheduled,
            alerts: Vec::new(),
            problem: Some(format!("reading the alerts: {e}")),
        },
    }
}

/// Records that `who` acknowledged the alert `id`.
pub fn acknowledge(state: &Path, id: &str, who: &str) -> Result<(), String> {
    let n: i64 = id
        .parse()
        .map_err(|_| format!("`{id}` is not an alert id"))?;
    let mut store = SqliteStore::open(state).map_err(|e| e.to_string())?;
    match alerts::acknowledge(&mut store, n, who) {
        Ok(Some(_)) => Ok(()),
        Ok(None) => Err(format!("no alert {id}")),
        Err(e) => Err(e.to_string()),
    }
}
