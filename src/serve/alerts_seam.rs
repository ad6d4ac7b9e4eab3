//! The place the alert engine takes: the HTTP side lists alerts and acknowledges one through
//! these two functions, and the overview and the alerts page show what [`list`] returns.
//!
//! Until the alert engine (`serve::alerts`, alerts kept in the state) is part of the service,
//! there are no alerts: [`list`] says so and [`acknowledge`] refuses. Merging the engine
//! replaces the bodies of these functions (and only them).

use serde::Serialize;

/// One alert as the pages and `/api/alerts` show it.
#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: String,
    /// `error` or `warning`.
    pub severity: String,
    pub title: String,
    pub description: String,
    pub raised: String,
    pub resolved: Option<String>,
    pub acknowledged_by: Option<String>,
}

/// The alerts, active ones first.
#[derive(Debug, Clone, Serialize)]
pub struct Alerts {
    /// An alert engine evaluates alerts in this service.
    pub engine: bool,
    pub alerts: Vec<Alert>,
}

/// The active alerts and their history.
pub fn list() -> Alerts {
    Alerts {
        engine: false,
        alerts: Vec::new(),
    }
}

/// Acknowledges the alert `id` on behalf of `who`.
pub fn acknowledge(id: &str, who: &str) -> Result<(), String> {
    let _ = (id, who);
    Err("no alert engine in this service".into())
}
