//! `idflow parse`: prints the syntax tree of files, for debugging the grammar.

use super::{FINDINGS, OK};
use crate::diag::render;
use crate::syntax;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    paths: Vec<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let map = match super::load_sources(&args.paths) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let mut code = OK;
    for f in map.files() {
        let (parsed, diags) = syntax::parse(f.id, &f.text);
        out!("{}", syntax::dump::file(&parsed.file));
        for d in &diags {
            eprint!("{}", render::human(&map, d, super::human_style()));
        }
        if !diags.is_empty() {
            code = FINDINGS;
        }
    }
    code
}
