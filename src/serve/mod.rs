//! `idflow serve`: the sync service.
//!
//! Consumes: a deployment (`idflow.toml`, with `[schedule] interval` and `[notify]`), a
//! listening address and the process's termination signals. Produces: scheduled sync cycles
//! ([`scheduler`]), the bundle taken up when its files change ([`reload`]), alerts raised and
//! resolved in the state ([`alerts`]) and sent by webhook and e-mail ([`notify`]), an HTTP
//! listener with `/healthz` and `/metrics` ([`http`], [`metrics`]), and a clean exit on
//! SIGTERM/SIGINT between two steps ([`shutdown`]). It logs through `tracing` and prints
//! nothing itself; `cli::serve` reports. What of the service is still to come is listed in
//! docs/SERVE.md.

pub mod alerts;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod reload;
pub mod scheduler;
pub mod shutdown;

use crate::runner::{RunError, Runner};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

/// The listening address by default: the local machine only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:9464";

/// How to serve.
#[derive(Debug, Clone)]
pub struct Options {
    pub config: PathBuf,
    pub listen: String,
    /// Run cycles on the schedule (false: `--no-schedule`, the HTTP side only).
    pub schedule: bool,
    pub engine: crate::eval::EngineKind,
}

/// Why the service could not start.
#[derive(Debug)]
pub enum ServeError {
    /// The deployment could not be opened (configuration, bundle, state, run lock).
    Open(RunError),
    /// The listening address could not be bound.
    Listen(String),
    /// The signal handlers could not be installed.
    Signals(std::io::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Open(e) => write!(f, "{e}"),
            ServeError::Listen(m) => f.write_str(m),
            ServeError::Signals(e) => write!(f, "installing the signal handlers: {e}"),
        }
    }
}

/// Opens the deployment, binds the listener, calls `ready` with the bound address, and serves
/// until `stop` is set (see [`shutdown::Stop::on_signals`]). The runner's warnings are
/// logged.
pub fn run(
    opts: &Options,
    stop: shutdown::Stop,
    ready: impl FnOnce(SocketAddr),
) -> Result<(), ServeError> {
    let mut runner = if opts.schedule {
        Runner::open(&opts.config, opts.engine)
    } else {
        Runner::open_read_only(&opts.config, opts.engine)
    }
    .map_err(ServeError::Open)?;
    for w in &runner.warnings {
        tracing::warn!("{w}");
    }
    let interval = runner.deployment.interval;
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.refresh(&mut runner).map_err(ServeError::Open)?;
    let listener = http::bind(&opts.listen).map_err(ServeError::Listen)?;
    ready(listener.addr);
    let server = {
        let (metrics, stop) = (Arc::clone(&metrics), stop.clone());
        std::thread::spawn(move || http::serve(listener, metrics, stop))
    };
    let mut postman = None;
    let work = if opts.schedule {
        let notifier = notify::Notifier::new(&runner.deployment.notify);
        let notify = if notifier.is_empty() {
            None
        } else {
            let (tx, handle) = notify::spawn(notifier, scheduler::TICK.min(interval));
            postman = Some(handle);
            Some(tx)
        };
        let duties = scheduler::Duties {
            watcher: reload::Watcher::new(&runner),
            alerts: alerts::Context::new(&opts.config, interval),
            notify,
        };
        scheduler::Work::Cycle(Box::new(runner), Box::new(duties))
    } else {
        drop(runner);
        scheduler::Work::Watch {
            config: opts.config.clone(),
            engine: opts.engine,
        }
    };
    scheduler::run(work, interval, &metrics, &stop);
    stop.set();
    // The work (and with it the notifier's sender) is gone: the notifier makes its last
    // attempt and ends.
    if let Some(p) = postman
        && p.join().is_err()
    {
        tracing::error!("the notifier panicked");
    }
    if server.join().is_err() {
        tracing::error!("the HTTP listener panicked");
    }
    Ok(())
}
