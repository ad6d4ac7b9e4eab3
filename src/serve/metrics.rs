//! The Prometheus metrics of `/metrics`.
//!
//! Consumes: the step reports of the cycles the service runs, and the runner's state after
//! each (connector-space objects, pending exports, the latest errors by category, the time of
//! the last successful cycle kept in the state's metadata, the active alerts). Produces: the metrics in the text
//! exposition format (OpenMetrics text, which Prometheus scrapes), encoded by
//! `prometheus-client`. Durations and step counts are counted from the cycles this process
//! ran (counters start at zero when it starts, as Prometheus expects); the gauges are the
//! state's.

use super::alerts;
use crate::runner::{RunError, Runner, StepReport};
use crate::store::{Store, StoreError};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicU64;

/// The state metadata key of the end of the last successful cycle (Unix seconds).
pub const LAST_SUCCESS_KEY: &str = "serve.last_successful_cycle";

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;

fn step_histogram() -> Histogram {
    // 10 ms to about 45 minutes.
    Histogram::new(exponential_buckets(0.01, 4.0, 10))
}

/// The registry and the metrics in it.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    cycle_duration: Histogram,
    step_duration: Family<Labels, Histogram, fn() -> Histogram>,
    step_objects: Family<Labels, Counter>,
    last_success: Gauge<f64, AtomicU64>,
    connector_objects: Family<Labels, Gauge>,
    pending_exports: Family<Labels, Gauge>,
    objects_in_error: Family<Labels, Gauge>,
    alerts_active: Family<Labels, Gauge>,
    alert_active: Family<Labels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::default();
        // 100 ms to about 7 hours.
        let cycle_duration = Histogram::new(exponential_buckets(0.1, 4.0, 10));
        let step_duration: Family<Labels, Histogram, fn() -> Histogram> =
            Family::new_with_constructor(step_histogram);
        let step_objects = Family::<Labels, Counter>::default();
        let last_success = Gauge::<f64, AtomicU64>::default();
        let connector_objects = Family::<Labels, Gauge>::default();
        let pending_exports = Family::<Labels, Gauge>::default();
        let objects_in_error = Family::<Labels, Gauge>::default();
        let alerts_active = Family::<Labels, Gauge>::default();
        let alert_active = Family::<Labels, Gauge>::default();
        registry.register(
            "idflow_cycle_duration_seconds",
            "Duration of the sync cycles this process ran",
            cycle_duration.clone(),
        );
        registry.register(
            "idflow_step_duration_seconds",
            "Duration of each step (import, sync, export) by connector",
            step_duration.clone(),
        );
        registry.register(
            "idflow_step_objects",
            "Objects changed by the steps this process ran, by change (add, update, delete, rename)",
            step_objects.clone(),
        );
        registry.register(
            "idflow_last_successful_cycle_timestamp_seconds",
            "End of the last cycle in which no step stopped (Unix time)",
            last_success.clone(),
        );
        registry.register(
            "idflow_connector_objects",
            "Objects in each connector space",
            connector_objects.clone(),
        );
        registry.register(
            "idflow_pending_exports",
            "Changes waiting for export, by connector and change (add, update, delete, rename)",
            pending_exports.clone(),
        );
        registry.register(
            "idflow_objects_in_error",
            "Objects held with an error by the latest sync and imports, by error category",
            objects_in_error.clone(),
        );
        registry.register(
            "idflow_alerts_active",
            "Active alerts, by severity (error, warning)",
            alerts_active.clone(),
        );
        registry.register(
            "idflow_alert_active",
            "1 for each active alert, by kind, connector (empty when none) and severity",
            alert_active.clone(),
        );
        Metrics {
            registry,
            cycle_duration,
            step_duration,
            step_objects,
            last_success,
            connector_objects,
            pending_exports,
            objects_in_error,
            alerts_active,
            alert_active,
        }
    }

    /// Counts a cycle: its duration, each step's duration and changes.
    pub fn observe_cycle(&self, reports: &[StepReport], seconds: f64) {
        self.cycle_duration.observe(seconds);
        for r in reports {
            let key = labels(&[("step", &r.step), ("connector", &r.connector)]);
            self.step_duration
                .get_or_create(&key)
                .observe(r.duration_ms as f64 / 1000.0);
            for (change, n) in [
                ("add", r.adds),
                ("update", r.updates),
                ("delete", r.deletes),
                ("rename", r.renames),
            ] {
                let key = labels(&[
                    ("step", &r.step),
                    ("connector", &r.connector),
                    ("change", change),
                ]);
                self.step_objects.get_or_create(&key).inc_by(n as u64);
            }
        }
    }

    /// Sets the time of the last successful cycle (Unix seconds).
    pub fn set_last_success(&self, unix_seconds: f64) {
        self.last_success.set(unix_seconds);
    }

    /// Sets the gauges from the runner's state: objects per connector, pending exports,
    /// objects in error, and the last successful cycle kept in the state.
    pub fn refresh(&self, runner: &mut Runner) -> Result<(), RunError> {
        let plan = &runner.engine.plan;
        let mut objects = vec![0i64; plan.connectors.len()];
        for o in runner.engine.state.cs().iter() {
            if !o.gone
                && !o.placeholder
                && let Some(n) = objects.get_mut(o.connector)
            {
                *n += 1;
            }
        }
        self.connector_objects.clear();
        self.pending_exports.clear();
        for (c, cp) in plan.connectors.iter().enumerate() {
            self.connector_objects
                .get_or_create(&labels(&[("connector", &cp.name)]))
                .set(objects[c]);
            let mut by: BTreeMap<&str, i64> =
                ["add", "update", "delete", "rename"].map(|k| (k, 0)).into();
            for d in runner.export_changes(c) {
                let change = if d.new_dn.is_some() {
                    "rename"
                } else {
                    d.kind.as_str()
                };
                *by.entry(change).or_default() += 1;
            }
            for (change, n) in by {
                self.pending_exports
                    .get_or_create(&labels(&[("connector", &cp.name), ("change", change)]))
                    .set(n);
            }
        }
        let mut by: BTreeMap<String, i64> = BTreeMap::new();
        for e in runner.latest_errors()? {
            *by.entry(e.category).or_default() += 1;
        }
        self.objects_in_error.clear();
        for (category, n) in by {
            self.objects_in_error
                .get_or_create(&labels(&[("category", &category)]))
                .set(n);
        }
        self.refresh_alerts(runner.store())
            .map_err(RunError::Store)?;
        if let Some(t) = runner.meta(LAST_SUCCESS_KEY)?
            && let Ok(t) = t.parse::<f64>()
        {
            self.last_success.set(t);
        }
        Ok(())
    }

    /// Sets the active alerts by severity from the state.
    pub fn refresh_alerts(&self, store: &mut dyn Store) -> Result<(), StoreError> {
        let active = alerts::active(store)?;
        let mut by: BTreeMap<&str, i64> = [("error", 0), ("warning", 0)].into();
        self.alert_active.clear();
        for a in &active {
            *by.entry(a.severity.as_str()).or_default() += 1;
            self.alert_active
                .get_or_create(&labels(&[
                    ("kind", a.kind.as_str()),
                    ("connector", a.connector().unwrap_or("")),
                    ("severity", a.severity.as_str()),
                ]))
                .set(1);
        }
        for (severity, n) in by {
            self.alerts_active
                .get_or_create(&labels(&[("severity", severity)]))
                .set(n);
        }
        Ok(())
    }

    /// The metrics in the text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String does not fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
