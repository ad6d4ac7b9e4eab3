//! `idflow fmt`: canonical formatting of rule files.
//!
//! Without flags the formatted text goes to stdout. `--check` lists the files that would change
//! (exit 1). `--write` rewrites them atomically (a temporary file in the same folder, then a
//! rename), and only after the output has been proven to re-parse to the same tree.

use super::{FINDINGS, OK, USAGE};
use crate::diag::render;
use crate::source::SourceMap;
use crate::syntax::{self, FormatError};
use std::io::Read;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Files or directories to format; `-` reads stdin and writes stdout.
    #[arg(required = true)]
    paths: Vec<PathBuf>,
    /// Exit 1 and list the files that are not formatted; change nothing.
    #[arg(long, conflicts_with = "write")]
    check: bool,
    /// Rewrite the files in place.
    #[arg(long)]
    write: bool,
    /// Wrap expressions at this line width (in characters; at least 40).
    #[arg(long, default_value_t = syntax::printer::DEFAULT_WIDTH)]
    width: usize,
}

pub fn run(args: Args) -> u8 {
    if args.width < 40 {
        eprintln!("error: --width {}: the width is at least 40", args.width);
        return USAGE;
    }
    if args.paths.len() == 1 && args.paths[0].as_os_str() == "-" {
        return stdin(args.width);
    }
    let files = match crate::source::collect_idf_files(&args.paths) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return USAGE;
        }
    };
    let mut code = OK;
    for path in files {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {}: {e}", path.display());
                code = code.max(USAGE);
                continue;
            }
        };
        let Ok(text) = String::from_utf8(bytes) else {
            eprintln!("error: {}: not valid UTF-8; not formatted", path.display());
            code = code.max(FINDINGS);
            continue;
        };
        let mut map = SourceMap::new();
        let id = map.add(path.display().to_string(), text.clone());
        let out = match syntax::format_width(id, &text, args.width) {
            Ok(out) => out,
            Err(FormatError::Syntax(diags)) => {
                for d in &diags {
                    eprint!("{}", render::human(&map, d, super::human_style()));
                }
                eprintln!("{}: not formatted because of syntax errors", path.display());
                code = code.max(FINDINGS);
                continue;
            }
            Err(FormatError::Unstable(msg)) => {
                eprintln!(
                    "internal error: {}: {msg}; the file was left unchanged",
                    path.display()
                );
                code = code.max(USAGE);
                continue;
            }
        };
        if args.check {
            if out != text {
                outln!("{}", path.display());
                code = code.max(FINDINGS);
            }
        } else if args.write {
            if out != text
                && let Err(e) = crate::files::write_atomic(&path, out.as_bytes())
            {
                eprintln!("error: {e}; the file was left unchanged");
                code = code.max(USAGE);
            }
        } else {
            out!("{out}");
        }
    }
    code
}

fn stdin(width: usize) -> u8 {
    let mut text = String::new();
    if let Err(e) = std::io::stdin().read_to_string(&mut text) {
        eprintln!("error: stdin: {e}");
        return USAGE;
    }
    let mut map = SourceMap::new();
    let id = map.add("<stdin>", text.clone());
    match syntax::format_width(id, &text, width) {
        Ok(out) => {
            out!("{out}");
            OK
        }
        Err(FormatError::Syntax(diags)) => {
            for d in &diags {
                eprint!("{}", render::human(&map, d, super::human_style()));
            }
            FINDINGS
        }
        Err(FormatError::Unstable(msg)) => {
            eprintln!("internal error: <stdin>: {msg}");
            USAGE
        }
    }
}
