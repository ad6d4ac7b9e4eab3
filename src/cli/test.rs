//! `idflow test`: runs the `test` blocks of a bundle in memory with the sync engine.
//!
//! Prints `ok` or `FAIL` per test with the differences, then `N passed, M failed`. Exit 0 when
//! every test passes, 1 when one fails or the bundle has check errors, 2 on usage errors.

use super::{FINDINGS, OK};
use crate::testrun;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The bundle directory (default: the current directory).
    paths: Vec<PathBuf>,
    #[command(flatten)]
    engine: super::EngineArg,
}

pub fn run(args: Args) -> u8 {
    let (map, checked) = match super::load_checked(&args.paths, "no test was run") {
        Ok(x) => x,
        Err(code) => return code,
    };
    let engine = match args.engine.kind() {
        Ok(k) => k,
        Err(code) => return code,
    };
    let outcomes = testrun::run_all(&checked.bundle, &map, engine);
    let mut failed = 0;
    for o in &outcomes {
        if o.passed() {
            outln!("ok   {} ({})", o.name, o.location);
        } else {
            failed += 1;
            outln!("FAIL {} ({})", o.name, o.location);
            for f in &o.failures {
                outln!("     {f}");
            }
        }
    }
    outln!("{} passed, {} failed", outcomes.len() - failed, failed);
    if failed > 0 { FINDINGS } else { OK }
}
