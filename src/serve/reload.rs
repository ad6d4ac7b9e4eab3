//! Bundle reload: `idflow serve` takes up a changed bundle without a restart.
//!
//! Consumes: the deployment's bundle files (their names, sizes and modification times, polled
//! before each cycle and every minute; nothing is read while they do not change) and the open
//! [`Runner`]. Produces: a changed bundle checked and compiled, then used from the next cycle
//! on (`Runner::reload_bundle`: the state is loaded again for it, and a bundle that differs
//! from the one the state was synchronized with makes the next sync a full one); or, when it
//! does not check, the change refused, the previous bundle kept, and the "bundle change
//! refused" alert raised with a summary of the diagnostics. The alert resolves when the
//! bundle's files check again.

use super::alerts::{self, Event, Kind, Raise};
use crate::diag::Diagnostic;
use crate::runner::{RunError, Runner, bundle_stamp};
use crate::source::SourceMap;
use crate::store::StoreError;

/// The diagnostics a refusal quotes (then a count of the rest).
const QUOTED: usize = 10;

/// Watches a runner's bundle files.
#[derive(Debug)]
pub struct Watcher {
    /// The stamp of the files last looked at (the running bundle's, or a refused one's).
    stamp: Option<String>,
}

/// What a look at the bundle's files found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The files have not changed.
    Unchanged,
    /// The changed bundle is used from the next cycle on.
    Reloaded,
    /// The changed bundle was refused (the summary of why); the previous one is kept.
    Refused(String),
}

impl Watcher {
    /// Watches the bundle the runner was opened with.
    pub fn new(runner: &Runner) -> Watcher {
        Watcher {
            stamp: bundle_stamp(&runner.deployment).ok(),
        }
    }

    /// Looks at the bundle's files and takes up a change. Returns what it found and the alert
    /// events (the refusal raised, or resolved by a bundle that checks).
    pub fn check(&mut self, runner: &mut Runner) -> Result<(Outcome, Vec<Event>), StoreError> {
        let stamp = bundle_stamp(&runner.deployment).ok();
        if stamp.is_some() && stamp == self.stamp {
            return Ok((Outcome::Unchanged, Vec::new()));
        }
        self.stamp = stamp;
        let key = Kind::BundleChangeRefused.as_str();
        match runner.reload_bundle() {
            Ok(warnings) => {
                for w in &warnings {
                    tracing::warn!("{w}");
                }
                tracing::info!(
                    full_sync = runner.needs_full_sync,
                    "bundle changed: reloaded, used from the next cycle on"
                );
                let events = alerts::resolve(runner.store(), key)?;
                Ok((Outcome::Reloaded, events.into_iter().collect()))
            }
            Err(e) => {
                let summary = summary(&e);
                tracing::error!("bundle change refused, the previous bundle is kept: {summary}");
                let bundle = runner.deployment.bundle.display().to_string();
                let raised = alerts::raise(
                    runner.store(),
                    Raise {
                        kind: Kind::BundleChangeRefused,
                        key: key.into(),
                        title: "Bundle change refused".into(),
                        description: format!(
                            "The rule bundle {bundle} changed and does not check: the service keeps running the previous bundle, so the change is not in effect."
                        ),
                        remediation: vec![
                            format!("See the diagnostics: `idflow check {bundle}`."),
                            "Fix the rules (or revert the change); the service takes up the bundle at its next look at the files, within a minute.".into(),
                            "Before a change is picked up, `idflow check` and `idflow test` tell whether it will be.".into(),
                            "The alert resolves when the bundle's files check again.".into(),
                        ],
                        detail: summary.clone(),
                    },
                )?;
                Ok((Outcome::Refused(summary), raised.into_iter().collect()))
            }
        }
    }
}

/// Why a bundle was refused, in a few lines: the first diagnostics as `file:line:col:
/// error[code]: message`.
pub fn summary(e: &RunError) -> String {
    match e {
        RunError::Bundle(map, diags) => {
            let mut lines: Vec<String> =
                diags.iter().take(QUOTED).map(|d| locate(map, d)).collect();
            lines.insert(0, format!("{} error(s)", diags.len()));
            if diags.len() > QUOTED {
                lines.push(format!("... and {} more", diags.len() - QUOTED));
            }
            lines.join("\n")
        }
        other => other.to_string().trim_end().to_string(),
    }
}

fn locate(map: &SourceMap, d: &Diagnostic) -> String {
    let f = map.get(d.file);
    let (line, col) = f.line_col(d.span.start);
    format!(
        "{}:{line}:{col}: {}[{}]: {}",
        f.name,
        d.severity.as_str(),
        d.code,
        d.message
    )
}
