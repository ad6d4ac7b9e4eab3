//! `idflow explain CODE`: what a diagnostic code means, with a triggering example.

use super::{OK, USAGE};
use crate::diag::codes;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// A diagnostic code such as E0201; without one, every code is listed.
    code: Option<String>,
}

pub fn run(args: Args) -> u8 {
    match args.code {
        None => {
            for c in codes::CODES {
                outln!("{}  {:7}  {}", c.code, c.severity.as_str(), c.summary);
            }
            OK
        }
        Some(code) => match codes::find(&code.to_ascii_uppercase()) {
            Some(c) => {
                outln!("{} ({}): {}", c.code, c.severity.as_str(), c.summary);
                outln!();
                outln!("Example that triggers it:");
                outln!("    {}", c.example);
                OK
            }
            None => {
                eprintln!("error: unknown diagnostic code `{code}`");
                USAGE
            }
        },
    }
}
