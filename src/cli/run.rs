//! `idflow run`: runs a sync cycle or one run profile against the deployment in `idflow.toml`.
//!
//! A cycle imports every connector, synchronizes (a full sync when the bundle changed), and
//! exports every connector unless staging mode is on. Each step prints a summary line: adds,
//! updates, deletes, renames, errors and duration. On a terminal a spinner shows the running
//! step; otherwise each step is logged (tracing). Exit 0 when every step succeeded, 1 when a
//! step stopped or had errors, 2 for configuration and usage errors and when another run holds
//! the state's run lock. At the end the run history is pruned to `keep_runs` entries.

use super::{FINDINGS, OK, USAGE};
use crate::diag::render;
use crate::engine::sync::Mode;
use crate::runner::{CycleOptions, RunError, Runner, StepReport};
use std::io::IsTerminal;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The deployment file.
    #[arg(long, default_value = "idflow.toml")]
    config: PathBuf,
    /// One step instead of the whole cycle.
    #[arg(long, value_enum, default_value_t = Profile::Cycle)]
    profile: Profile,
    /// The connector of an import or export step (default: every connector).
    #[arg(long)]
    connector: Option<String>,
    /// Let an import or export with up to N deletes through the delete threshold (and an
    /// import of an empty source of up to N objects), for this run only.
    #[arg(long, value_name = "N", default_value_t = 0)]
    allow_deletes: usize,
    /// Make the cycle's sync a full sync.
    #[arg(long)]
    full_sync: bool,
    /// Threads a sync computes on (default: one per core). The result is the same whatever
    /// the number.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    sync_threads: Option<u16>,
    #[command(flatten)]
    engine: super::EngineArg,
    /// Print the step summaries as JSON lines.
    #[arg(long)]
    json: bool,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum Profile {
    Cycle,
    FullImport,
    DeltaImport,
    FullSync,
    DeltaSync,
    Export,
}

/// Opens the deployment for a run (taking the run lock) or, `read_only`, for looking at its
/// state; reports why it cannot be opened and returns the exit code.
pub fn open(
    config: &std::path::Path,
    engine: crate::eval::EngineKind,
    read_only: bool,
) -> Result<Runner, u8> {
    let opened = if read_only {
        Runner::open_read_only(config, engine)
    } else {
        Runner::open(config, engine)
    };
    opened.map_err(report_open_error)
}

/// Reports why a deployment could not be opened and returns the exit code: 1 for a bundle
/// with errors (its diagnostics printed), 2 otherwise.
pub fn report_open_error(e: RunError) -> u8 {
    {
        match e {
            RunError::Bundle(map, diags) => {
                let style = super::human_style();
                for d in &diags {
                    eprint!("{}", render::human(&map, d, style));
                }
                eprintln!("the bundle has errors: nothing was run");
                return FINDINGS;
            }
            RunError::Config(errs) => {
                for e in errs {
                    eprintln!("error: {e}");
                }
            }
            other => eprintln!("error: {other}"),
        }
        USAGE
    }
}

fn summary(r: &StepReport) -> String {
    let who = if r.connector.is_empty() {
        String::new()
    } else {
        format!(" {}", r.connector)
    };
    format!(
        "{}{who}: {} adds, {} updates, {} deletes, {} renames, {} errors, {} ms [{}]",
        r.step, r.adds, r.updates, r.deletes, r.renames, r.errors, r.duration_ms, r.status
    )
}

/// A rejected record as a note: `source:line: message (record skipped)`, or `DN: message
/// (object skipped)` for an object the engine rejected.
pub fn reject_note(r: &crate::store::RejectRecord) -> String {
    match r.line {
        Some(l) => format!("{}:{l}: {} (record skipped)", r.source, r.message),
        None => format!("{}: {} (object skipped)", r.source, r.message),
    }
}

fn print(r: &StepReport, json: bool) {
    if json {
        let rejects: Vec<serde_json::Value> = r
            .rejects
            .iter()
            .map(|x| serde_json::json!({"source": x.source, "line": x.line, "message": x.message}))
            .collect();
        let v = serde_json::json!({
            "step": r.step, "connector": r.connector, "status": r.status.as_str(), "adds": r.adds,
            "updates": r.updates, "deletes": r.deletes, "renames": r.renames, "errors": r.errors,
            "duration_ms": r.duration_ms as u64, "notes": r.notes, "rejects": rejects,
        });
        outln!("{v}");
        return;
    }
    outln!("{}", summary(r));
    const SHOWN: usize = 20;
    let all = r.notes.len() + r.rejects.len();
    let lines = r
        .notes
        .iter()
        .cloned()
        .chain(r.rejects.iter().map(reject_note))
        .take(SHOWN);
    for n in lines {
        outln!("    {}", super::state::escape_controls(&n));
    }
    if all > SHOWN {
        // Sync errors and import rejects are in the state; other notes only in --json.
        let see = if r.step.ends_with("import") || r.step.ends_with("sync") {
            "see `idflow state errors`"
        } else {
            "`--json` prints them all"
        };
        outln!("    ... {} more ({see})", all - SHOWN);
    }
}

pub fn run(args: Args) -> u8 {
    let engine = match args.engine.kind() {
        Ok(k) => k,
        Err(code) => return code,
    };
    let terminal = std::io::stderr().is_terminal();
    if !terminal {
        let _ = tracing_subscriber::fmt()
            .with_writer(std::io::stderr)
            .with_ansi(false)
            .with_target(false)
            .with_max_level(super::log_level())
            .try_init();
    }
    let mut runner = match open(&args.config, engine, false) {
        Ok(r) => r,
        Err(code) => return code,
    };
    for w in &runner.warnings {
        eprintln!("warning: {w}");
    }
    if let Some(n) = args.sync_threads {
        runner.engine.threads = usize::from(n);
    }
    let spinner = terminal.then(|| {
        let s = indicatif::ProgressBar::new_spinner();
        s.enable_steady_tick(std::time::Duration::from_millis(120));
        s
    });
    let names: Vec<String> = match &args.connector {
        Some(n) => vec![n.clone()],
        None => runner
            .deployment
            .connectors
            .iter()
            .map(|c| c.name.clone())
            .collect(),
    };
    if let Some(n) = &args.connector
        && runner.deployment.connector(n).is_none()
    {
        eprintln!(
            "error: connector \"{n}\" is not in {}",
            args.config.display()
        );
        return USAGE;
    }
    let announce = |what: &str| match &spinner {
        Some(s) => s.set_message(what.to_string()),
        None => tracing::info!("{what}"),
    };
    let result: Result<Vec<StepReport>, RunError> = (|| {
        let mut out = Vec::new();
        match args.profile {
            Profile::Cycle => {
                announce("sync cycle");
                out = runner.cycle(CycleOptions {
                    allow_deletes: args.allow_deletes,
                    full_sync: args.full_sync,
                })?;
            }
            Profile::FullImport | Profile::DeltaImport => {
                for n in &names {
                    announce(&format!("import {n}"));
                    out.push(runner.import(
                        n,
                        args.profile == Profile::FullImport,
                        args.allow_deletes,
                    )?);
                }
            }
            Profile::FullSync => {
                announce("full sync");
                out.push(runner.sync(Mode::Full)?);
            }
            Profile::DeltaSync => {
                if runner.needs_full_sync {
                    eprintln!(
                        "note: the bundle changed since the last full sync: running a full sync"
                    );
                }
                announce("sync");
                let mode = if runner.needs_full_sync {
                    Mode::Full
                } else {
                    Mode::Delta
                };
                out.push(runner.sync(mode)?);
            }
            Profile::Export => {
                for n in &names {
                    announce(&format!("export {n}"));
                    out.push(runner.export(n, args.allow_deletes)?);
                }
            }
        }
        Ok(out)
    })();
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if let Err(e) = runner.prune_history() {
        eprintln!("warning: pruning the run history: {e}");
    }
    match runner.compact_store() {
        Ok(Some((before, after))) => {
            tracing::info!(before, after, "state database compacted");
        }
        Ok(None) => {}
        Err(e) => eprintln!("warning: compacting the state database: {e}"),
    }
    // Everything is saved; the process exits next, and the operating system takes its memory
    // back at once, where freeing the state value by value would take seconds.
    runner.release_state();
    match result {
        Ok(reports) => {
            for r in &reports {
                if !terminal {
                    tracing::info!(step = %r.step, connector = %r.connector, status = %r.status, adds = r.adds, updates = r.updates, deletes = r.deletes, errors = r.errors, "step finished");
                }
                print(r, args.json);
            }
            let failed = reports
                .iter()
                .any(|r| r.status.is_stopped() || r.errors > 0);
            if failed { FINDINGS } else { OK }
        }
        Err(e) => {
            eprintln!("error: {e}");
            USAGE
        }
    }
}
