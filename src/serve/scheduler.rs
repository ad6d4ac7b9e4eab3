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
//! After each cycle it publishes a new [`Snapshot`](super::snapshot::Snapshot) of the state for
//! the HTTP side. An operator's "run a cycle now" and "allow deletes once" reach it through
//! [`Control`]: the first starts the next cycle at once (never two at once), the second lets
//! the next cycle's exports through the delete threshold up to the count given.
//!
//! Before each cycle and every minute (every interval when it is shorter) it looks at the
//! bundle's files and takes up a change (`serve::reload`); after each step, each cycle and
//! every minute it evaluates the alerts (`serve::alerts`) and hands their events to the
//! notifier's thread (`serve::notify`), which never holds up a cycle.
//!
//! Without a schedule (`--no-schedule`) it only reopens the state read-only every interval to
//! refresh the metrics and the snapshot, taking no lock (and evaluating no alert: the process
//! that cycles does).

use super::alerts::{self, Event};
use super::metrics::{LAST_SUCCESS_KEY, Metrics};
use super::reload::Watcher;
use super::shutdown::Stop;
use super::snapshot::{self, Shared};
use crate::runner::{CycleOptions, Runner};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

/// What the HTTP side asks of the scheduler.
#[derive(Debug, Default)]
pub struct Control {
    /// Cycles run here (false with `--no-schedule`: the actions are refused).
    pub scheduled: bool,
    run_now: AtomicBool,
    allow_deletes: AtomicUsize,
}

impl Control {
    pub fn new(scheduled: bool) -> Control {
        Control {
            scheduled,
            ..Control::default()
        }
    }

    /// Starts the next cycle now (or right after the one running).
    pub fn request_cycle(&self) {
        self.run_now.store(true, Ordering::SeqCst);
    }

    /// Lets the next cycle's imports and exports through the delete threshold with up to
    /// `count` deletes, once.
    pub fn allow_deletes_once(&self, count: usize) {
        self.allow_deletes.store(count, Ordering::SeqCst);
    }

    /// The deletes allowed for the next cycle (taken: they are allowed once).
    fn take_allow_deletes(&self) -> usize {
        self.allow_deletes.swap(0, Ordering::SeqCst)
    }
}

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
pub fn run(
    mut work: Work,
    interval: Duration,
    metrics: &Metrics,
    shared: &Shared,
    control: &Control,
    stop: &Stop,
) {
    let mut next = Instant::now();
    let tick = TICK.min(interval);
    let mut next_tick = Instant::now() + tick;
    while !stop.is_set() {
        let now = Instant::now();
        let run_now = now < next && control.run_now.swap(false, Ordering::SeqCst);
        if now >= next_tick && now < next && !run_now {
            next_tick = now + tick;
            if let Work::Cycle(runner, duties) = &mut work {
                duties.reload(runner);
                duties.evaluate(runner, metrics);
            }
            continue;
        }
        if now < next && !run_now {
            std::thread::sleep((next - now).min(Duration::from_millis(100)));
            continue;
        }
        next = now + interval;
        match &mut work {
            Work::Cycle(runner, duties) => {
                duties.reload(runner);
                cycle(runner, duties, metrics, shared, control, stop);
                next_tick = Instant::now() + tick;
            }
            Work::Watch { config, engine } => match Runner::open_read_only(config, *engine) {
                Ok(mut r) => {
                    if let Err(e) = metrics.refresh(&mut r) {
                        tracing::error!("reading the state: {e}");
                    }
                    refresh(&mut r, shared, false, None);
                }
                Err(e) => tracing::error!("reading the state: {e}"),
            },
        }
    }
}

/// Publishes a new snapshot of the runner's state (keeping the last cycle unless given).
pub fn refresh(
    runner: &mut Runner,
    shared: &Shared,
    scheduled: bool,
    last_cycle: Option<snapshot::Cycle>,
) {
    let last_cycle = last_cycle.or_else(|| snapshot::current(shared).last_cycle.clone());
    match snapshot::take(runner, scheduled, last_cycle) {
        Ok(s) => snapshot::publish(shared, s),
        Err(e) => tracing::error!("reading the state for the dashboard: {e}"),
    }
}

/// One scheduled cycle.
fn cycle(
    runner: &mut Runner,
    duties: &mut Duties,
    metrics: &Metrics,
    shared: &Shared,
    control: &Control,
    stop: &Stop,
) {
    runner.renew();
    let allow_deletes = control.take_allow_deletes();
    if allow_deletes > 0 {
        tracing::info!(allow_deletes, "sync cycle started, deletes allowed once");
    } else {
        tracing::info!("sync cycle started");
    }
    let started = jiff::Timestamp::now().to_string();
    let start = Instant::now();
    let opts = CycleOptions {
        allow_deletes,
        ..CycleOptions::default()
    };
    // The alerts are evaluated between the steps too: a failed import is alerted at once.
    let result = runner.cycle_until(opts, &mut |r| {
        duties.evaluate(r, metrics);
        stop.is_set()
    });
    let seconds = start.elapsed().as_secs_f64();
    let last = snapshot::cycle_of(&started, seconds, &result);
    match &result {
        Ok(reports) => {
            for r in reports {
                tracing::info!(step = %r.step, connector = %r.connector, status = %r.status, adds = r.adds, updates = r.updates, deletes = r.deletes, renames = r.renames, errors = r.errors, duration_ms = r.duration_ms as u64, "step finished");
            }
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
    duties.evaluate(runner, metrics);
    if let Err(e) = metrics.refresh(runner) {
        tracing::error!("reading the state for the metrics: {e}");
    }
    refresh(runner, shared, true, Some(last));
    // Counted last: once the metrics show the cycle, the dashboard shows it too.
    if let Ok(reports) = &result {
        metrics.observe_cycle(reports, seconds);
    }
}
