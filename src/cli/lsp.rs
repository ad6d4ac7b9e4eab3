//! `idflow lsp`: the language server, on stdin and stdout.
//!
//! Editors start it and speak the Language Server Protocol to it (see docs/EDITORS.md). It
//! prints nothing of its own on stdout (the protocol owns it); a failure is reported on stderr
//! with exit code 2.

use super::{OK, USAGE};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Accepted for editors that pass it (the server always speaks over stdio).
    #[arg(long)]
    stdio: bool,
}

pub fn run(_args: Args) -> u8 {
    match crate::lsp::run_stdio() {
        Ok(()) => OK,
        Err(e) => {
            eprintln!("error: idflow lsp: {e}");
            USAGE
        }
    }
}
