//! The scheduler of `idflow serve`: a cycle every `[schedule] interval`.
//!
//! Consumes: an open [`Runner`] (holding the state's run lock for as long as the service runs,
//! so a hand-started `idflow run` is refused rather than racing it), the interval, and the
//! [`Stop`] flag. Produces: one cycle at start and then one every interval (start to start; a
//! cycle that overruns the interval is followed by the next at once, never by two at once, as
//! the cycles run one after the other on this thread), each step logged, the run history
//! pruned and the database compacted after each cycle as `idflow run` does, and the
//! [`Metrics`] updated. The runner (the compiled bundle and the state) is kept between cycles.
//! A stop request ends the cycle between two steps: each finished step is saved, so the state
//! stays consistent and the next cycle takes up what is left.
//!
//! Before each cycle and every minute (every interval when it is shorter) it looks at the
//! bundle's files and takes up a change (`serve::reload`); after each step, each cycle and
//! every minute it evaluates the alerts (`serve::alerts`) and hands their events to the notifier's thread
//! (`serve::notify`), which never holds up a cycle.
//!
//! Without a schedule (`--no-schedule`) it only reopens the state read-only every interval to
//! refresh the metrics, taking no lock (and evaluating no alert: the process that cycles does).

use super::alerts::{self, Event};
use super::metrics::{LAST_SUCCESS_KEY, Metrics};
use super::reload::Watcher;
use super::shutdown::Stop;
use crate::runner::{CycleOptions, Runner};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// The longest time between two looks at the alerts and the bundle's files.
pub const TICK: Duration = Duration::from_secs(60);

/// What the scheduler does besides the cycles: the bundle reload, the alerts and their
/// notifications.
pub struct Duties {
    pub watcher: Watcher,
    pub alerts: alerts::Context,
    /// The notifier's thread (None: no channel configured).
    pub notify: Option<Sender<Event>>,
}

impl Duties {
    /// Looks at the bundle's files and takes up a change.
    fn reload(&mut self, runner: &mut Runner) {
        match self.watcher.check(runner) {
            Ok((_, events)) => self.send(events),
            Err(e) => tracing::error!("recording the bundle reload's alert: {e}"),
        }
    }

    /// Evaluates the alerts.
    fn evaluate(&mut self, runner: &mut Runner, metrics: &Metrics) {
        match alerts::evaluate(runner, &self.alerts) {
            Ok(events) => self.send(events),
            Err(e) => tracing::error!("evaluating the alerts: {e}"),
        }
        if let Err(e) = metrics.refresh_alerts(runner.store()) {
            tracing::error!("reading the alerts for the metrics: {e}");
        }
    }

    fn send(&mut self, events: Vec<Event>) {
        if let Some(tx) = &self.notify {
            for e in events {
                if tx.send(e).is_err() {
                    tracing::error!("the notifier has stopped: notifications are not sent");
                    self.notify = None;
                    break;
                }
            }
        }
    }
}

/// What the scheduler does each interval.
pub enum Work {
    /// Run a cycle with this runner (opened with the run lock), and its duties.
    Cycle(Box<Runner>, Box<Duties>),
    /// Refresh the metrics by reopening the state read-only from this deployment file.
    Watch {
        config: std::path::PathBuf,
        engine: crate::eval::EngineKind,
    },
}

/// Runs until `stop` is set.
pub fn run(mut work: Work, interval: Duration, metrics: &Metrics, stop: &Stop) {
    let mut next = Instant::now();
    let tick = TICK.min(interval);
    let mut next_tick = Instant::now() + tick;
    while !stop.is_set() {
        let now = Instant::now();
        if now >= next_tick && now < next {
            next_tick = now + tick;
            if let Work::Cycle(runner, duties) = &mut work {
                duties.reload(runner);
                duties.evaluate(runner, metrics);
            }
            continue;
        }
        if now < next {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        next = now + interval;
        match &mut work {
            Work::Cycle(runner, duties) => {
                duties.reload(runner);
                cycle(runner, duties, metrics, stop);
                duties.evaluate(runner, metrics);
                next_tick = Instant::now() + tick;
            }
            Work::Watch { config, engine } => match Runner::open_read_only(config, *engine) {
                Ok(mut r) => {
                    if let Err(e) = metrics.refresh(&mut r) {
                        tracing::error!("reading the state: {e}");
                    }
                }
                Err(e) => tracing::error!("reading the state: {e}"),
            },
        }
    }
}

/// One scheduled cycle.
fn cycle(runner: &mut Runner, duties: &mut Duties, metrics: &Metrics, stop: &Stop) {
    runner.renew();
    tracing::info!("sync cycle started");
    let start = Instant::now();
    // The alerts are evaluated between the steps too: a failed import is alerted at once.
    let result = runner.cycle_until(CycleOptions::default(), &mut |r| {
        duties.evaluate(r, metrics);
        stop.is_set()
    });
    let seconds = start.elapsed().as_secs_f64();
    match result {
        Ok(reports) => {
            for r in &reports {
                tracing::info!(step = %r.step, connector = %r.connector, status = %r.status, adds = r.adds, updates = r.updates, deletes = r.deletes, renames = r.renames, errors = r.errors, duration_ms = r.duration_ms as u64, "step finished");
            }
            metrics.observe_cycle(&reports, seconds);
            let stopped = reports.iter().any(|r| r.status.is_stopped());
            if stop.is_set() {
                tracing::info!(
                    "sync cycle interrupted by the shutdown after {} step(s)",
                    reports.len()
                );
            } else if stopped {
                tracing::warn!(seconds, "sync cycle finished with a stopped step");
            } else {
                tracing::info!(seconds, "sync cycle finished");
                let t = jiff::Timestamp::now().as_millisecond() as f64 / 1000.0;
                metrics.set_last_success(t);
                if let Err(e) = runner.set_meta(LAST_SUCCESS_KEY, &t.to_string()) {
                    tracing::error!("recording the cycle: {e}");
                }
            }
        }
        Err(e) => tracing::error!("sync cycle failed: {e}"),
    }
    if let Err(e) = runner.prune_history() {
        tracing::warn!("pruning the run history: {e}");
    }
    match runner.compact_store() {
        Ok(Some((before, after))) => tracing::info!(before, after, "state database compacted"),
        Ok(None) => {}
        Err(e) => tracing::warn!("compacting the state database: {e}"),
    }
    if let Err(e) = metrics.refresh(runner) {
        tracing::error!("reading the state for the metrics: {e}");
    }
}
