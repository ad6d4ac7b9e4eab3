//! `idflow serve`: runs the sync cycle on the schedule of `idflow.toml` and serves `/healthz`,
//! `/metrics`, the dashboard and its API (see `crate::serve` and docs/SERVE.md).
//!
//! Prints `listening on http://ADDR` (`https://` with TLS) once the listener is bound (with `--listen ...:0`, the
//! port taken) and logs the cycles on stderr. Exit 0 after a clean shutdown (SIGTERM or
//! SIGINT), 1 when the bundle has errors, 2 for configuration and usage errors, when the
//! address cannot be bound and when another run holds the state's run lock.

use super::{OK, USAGE};
use crate::serve::{self, Options, ServeError, shutdown::Stop};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The deployment file.
    #[arg(long, default_value = "idflow.toml")]
    config: PathBuf,
    /// Serve the HTTP side only: run no cycle, take no run lock (the metrics are read from
    /// the state every interval).
    #[arg(long)]
    no_schedule: bool,
    /// The address and port to listen on (port 0: any free port).
    #[arg(long, value_name = "ADDR:PORT", default_value = serve::DEFAULT_LISTEN)]
    listen: String,
    #[command(flatten)]
    engine: super::EngineArg,
}

pub fn run(args: Args) -> u8 {
    let engine = match args.engine.kind() {
        Ok(k) => k,
        Err(code) => return code,
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .with_max_level(super::log_level())
        .try_init();
    let stop = match Stop::on_signals() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {}", ServeError::Signals(e));
            return USAGE;
        }
    };
    let opts = Options {
        config: args.config.clone(),
        listen: args.listen,
        schedule: !args.no_schedule,
        engine,
    };
    let ready = |addr: std::net::SocketAddr, tls: bool| {
        let scheme = if tls { "https" } else { "http" };
        outln!("listening on {scheme}://{addr}");
    };
    match serve::run(&opts, stop, ready) {
        Ok(()) => {
            tracing::info!("stopped");
            OK
        }
        Err(ServeError::Open(e)) => super::run::report_open_error(e),
        Err(e) => {
            eprintln!("error: {e}");
            USAGE
        }
    }
}
