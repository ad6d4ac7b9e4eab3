//! `idflow serve`: the sync service.
//!
//! Consumes: a deployment (`idflow.toml`, with `[schedule] interval`, `[serve]` and
//! `[notify]`), a listening address and the process's termination signals. Produces: scheduled
//! sync cycles ([`scheduler`]), the bundle taken up when its files change ([`reload`]), alerts
//! raised and resolved in the state ([`alerts`]) and sent by webhook and e-mail ([`notify`]), a
//! snapshot of the state after each cycle ([`snapshot`]), an HTTP listener with `/healthz`,
//! `/metrics`, the dashboard and its JSON API ([`http`], [`pages`], [`metrics`]), access by
//! token and browser session ([`auth`]), and a clean exit on SIGTERM/SIGINT between two steps
//! ([`shutdown`]). It logs through `tracing` and prints
//! nothing itself; `cli::serve` reports. What the service does not do is listed in
//! docs/SERVE.md.

pub mod alert_view;
pub mod alerts;
pub mod auth;
pub mod http;
pub mod metrics;
pub mod notify;
pub mod pages;
pub mod reload;
pub mod scheduler;
pub mod shutdown;
pub mod snapshot;

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
    /// The listening address could not be bound, or the TLS files could not be read.
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

/// Opens the deployment, binds the listener, calls `ready` with the bound address (and whether
/// it serves HTTPS), and serves
/// until `stop` is set (see [`shutdown::Stop::on_signals`]). The runner's warnings are
/// logged.
pub fn run(
    opts: &Options,
    stop: shutdown::Stop,
    ready: impl FnOnce(SocketAddr, bool),
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
    let settings = runner.deployment.serve.clone();
    let metrics = Arc::new(metrics::Metrics::new());
    metrics.refresh(&mut runner).map_err(ServeError::Open)?;
    let shared: snapshot::Shared = Arc::default();
    scheduler::refresh(&mut runner, &shared, opts.schedule, None);
    let tls = match &settings.tls {
        Some((cert, key)) => Some(http::tls_config(cert, key).map_err(ServeError::Listen)?),
        None => None,
    };
    let listener = http::bind(&opts.listen, tls).map_err(ServeError::Listen)?;
    ready(listener.addr, settings.tls.is_some());
    let control = Arc::new(scheduler::Control::new(opts.schedule));
    let app = Arc::new(http::App {
        snapshot: Arc::clone(&shared),
        metrics: Arc::clone(&metrics),
        sessions: auth::Sessions::default(),
        control: Arc::clone(&control),
        tokens_file: settings.tokens_file.clone(),
        state_db: runner.deployment.state.clone(),
        config: opts.config.clone(),
        engine: crate::eval::EngineKind::Interp,
        tls: settings.tls.is_some(),
        metrics_public: settings.metrics_public,
        lineage_slot: tokio::sync::Semaphore::new(1),
    });
    let server = {
        let stop = stop.clone();
        std::thread::spawn(move || http::serve(listener, app, stop))
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
    scheduler::run(work, interval, &metrics, &shared, &control, &stop);
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
