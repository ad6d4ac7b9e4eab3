//! The command line: argument parsing and dispatch to one module per subcommand.
//!
//! Consumes: the process arguments. Produces: output on stdout/stderr and the exit code —
//! 0 success, 1 findings (errors, or warnings with `--deny-warnings`; files that need
//! formatting), 2 usage or I/O errors. This is the only module that prints.

/// Prints to stdout, like `print!`, but quietly stops printing when stdout is closed
/// ([`write_stdout`]).
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*), false)
    };
}

/// Prints a line to stdout, like `println!`, but quietly stops printing when stdout is closed
/// ([`write_stdout`]).
macro_rules! outln {
    () => {
        $crate::cli::write_stdout(format_args!(""), true)
    };
    ($($arg:tt)*) => {
        $crate::cli::write_stdout(format_args!($($arg)*), true)
    };
}

mod check;
mod eval;
mod explain;
mod fmt;
mod functions;
mod r#gen;
mod import;
mod init;
mod lsp;
mod parse;
mod preview;
mod run;
mod schema;
mod serve;
mod state;
mod test;
mod token;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "idflow", version, about = "Rules-as-code identity synchronization", long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Check rule files or bundles: syntax, types against the schemas, rule structure.
    Check(check::Args),
    /// Evaluate one expression and print its result as JSON.
    Eval(eval::Args),
    /// Format rule files canonically (prints to stdout unless --write or --check).
    Fmt(fmt::Args),
    /// List the expression functions, or show one with its signatures, doc and examples.
    Functions(functions::Args),
    /// Generate synthetic directory data (`gen ad`: an Active Directory export as LDIF).
    Gen(r#gen::Args),
    /// Import a configuration from another system into a bundle.
    Import(import::Args),
    /// Write a new deployment (`init ad`: one Active Directory forest with the Entra Connect
    /// default rules, Entra Connect's express settings).
    Init(init::Args),
    /// Explain a diagnostic code.
    Explain(explain::Args),
    /// Run the language server (for editors) on stdin and stdout.
    Lsp(lsp::Args),
    /// Run a sync cycle or one run profile against the deployment in idflow.toml.
    Run(run::Args),
    /// Read a directory connector's schema from its server (`schema pull`) into the bundle.
    Schema(schema::Args),
    /// Run the sync cycle on a schedule as a service, with health, Prometheus metrics and a
    /// dashboard over HTTP.
    Serve(serve::Args),
    /// Look into the stored state: pending exports, objects, errors, run history.
    State(state::Args),
    /// Show how one object goes through the rules: scope, join, flows, result.
    Preview(preview::Args),
    /// Run the test blocks of a bundle with the sync engine, in memory.
    Test(test::Args),
    /// Create, list and revoke the access tokens of `idflow serve`'s HTTP side.
    Token(token::Args),
    /// Print the syntax tree of rule files (for debugging the grammar).
    #[command(hide = true)]
    Parse(parse::Args),
}

/// The `--engine` option of every command that evaluates rules.
#[derive(clap::Args, Debug, Clone, Copy)]
pub struct EngineArg {
    /// The expression evaluator: `jit` (native code; the default where available) or `interp`
    /// (the reference interpreter).
    #[arg(long, value_enum)]
    engine: Option<crate::eval::EngineKind>,
}

impl EngineArg {
    /// The chosen evaluator; asking for the JIT where it cannot run is a usage error.
    pub(crate) fn kind(self) -> Result<crate::eval::EngineKind, u8> {
        use crate::eval::{EngineKind, jit_available};
        match self.engine {
            None => Ok(EngineKind::preferred()),
            Some(EngineKind::Jit) if !jit_available() => {
                eprintln!(
                    "error: --engine jit: the JIT is not available in this build or on this \
                     machine; use --engine interp"
                );
                Err(USAGE)
            }
            Some(k) => Ok(k),
        }
    }
}

/// Set once stdout is found closed: later output is dropped.
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Writes to stdout. When the reader has gone (`idflow ... | head`), the output that follows is
/// dropped without a message and the command finishes as it would (a `run` completes its
/// steps) with its own exit code; any other write error is reported and exits with 2.
pub(crate) fn write_stdout(args: std::fmt::Arguments<'_>, newline: bool) {
    use std::io::Write;
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    let mut out = std::io::stdout().lock();
    let r = out.write_fmt(args).and_then(|()| {
        if newline {
            out.write_all(b"\n")
        } else {
            Ok(())
        }
    });
    if let Err(e) = r {
        stdout_failed(e);
    }
}

/// After a failed write to stdout: a closed stdout is remembered, anything else ends the
/// process with 2.
/// The most detailed log level written to stderr: `IDFLOW_LOG` (`error`, `warn`, `info`,
/// `debug`, `trace`; `info` when unset or not a level).
pub(crate) fn log_level() -> tracing::level_filters::LevelFilter {
    std::env::var("IDFLOW_LOG")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(tracing::level_filters::LevelFilter::INFO)
}

fn stdout_failed(e: std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
        return;
    }
    eprintln!("error: writing to stdout: {e}");
    std::process::exit(USAGE as i32);
}

/// Stdout as an `io::Write` (for CSV and bulk output), with the handling of [`write_stdout`].
pub(crate) struct Stdout;

impl std::io::Write for Stdout {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(buf.len());
        }
        match std::io::stdout().lock().write(buf) {
            Ok(n) => Ok(n),
            Err(e) => {
                stdout_failed(e);
                Ok(buf.len())
            }
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(());
        }
        if let Err(e) = std::io::stdout().lock().flush() {
            stdout_failed(e);
        }
        Ok(())
    }
}

/// Exit codes shared by every subcommand.
pub(crate) const OK: u8 = 0;
pub(crate) const FINDINGS: u8 = 1;
pub(crate) const USAGE: u8 = 2;

pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { USAGE } else { OK });
        }
    };
    let code = match cli.command {
        Command::Check(a) => check::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Fmt(a) => fmt::run(a),
        Command::Functions(a) => functions::run(a),
        Command::Gen(a) => r#gen::run(a),
        Command::Explain(a) => explain::run(a),
        Command::Import(a) => import::run(a),
        Command::Init(a) => init::run(a),
        Command::Schema(a) => schema::run(a),
        Command::Lsp(a) => lsp::run(a),
        Command::Parse(a) => parse::run(a),
        Command::Preview(a) => preview::run(a),
        Command::Run(a) => run::run(a),
        Command::Serve(a) => serve::run(a),
        Command::State(a) => state::run(a),
        Command::Test(a) => test::run(a),
        Command::Token(a) => token::run(a),
    };
    ExitCode::from(code)
}

/// How diagnostics are printed for humans on stderr.
pub(crate) fn human_style() -> crate::diag::render::Style {
    use std::io::IsTerminal;
    if std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none() {
        crate::diag::render::Style::Fancy
    } else {
        crate::diag::render::Style::Plain
    }
}

/// Loads the `.idf` files under `paths` (the current directory when empty).
pub(crate) fn load_sources(paths: &[std::path::PathBuf]) -> Result<crate::source::SourceMap, u8> {
    let paths = if paths.is_empty() {
        vec![std::path::PathBuf::from(".")]
    } else {
        paths.to_vec()
    };
    let files = crate::source::collect_idf_files(&paths).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })?;
    if files.is_empty() {
        let shown: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
        eprintln!("error: no .idf files found in {}", shown.join(", "));
        return Err(USAGE);
    }
    crate::source::load(&files).map_err(|e| {
        eprintln!("error: {e}");
        USAGE
    })
}

/// Loads and checks a bundle for a command that runs it: on check errors, prints them with
/// `what` ("no test was run") and returns the exit code.
pub(crate) fn load_checked(
    paths: &[std::path::PathBuf],
    what: &str,
) -> Result<(crate::source::SourceMap, crate::frontend::Checked), u8> {
    let map = load_sources(paths)?;
    let checked = crate::frontend::check(&map);
    if checked.has_errors() {
        let style = human_style();
        for d in checked.diagnostics.iter().filter(|d| d.is_error()) {
            eprint!("{}", crate::diag::render::human(&map, d, style));
        }
        eprintln!("the bundle has errors: {what}");
        return Err(FINDINGS);
    }
    Ok((map, checked))
}
