//! `idflow gen ad`: writes a synthetic Active Directory export (LDIF) of `contoso.com`.
//!
//! The same arguments give the same text (see `crate::r#gen`). Exit 0 with the LDIF on stdout or
//! in `-o FILE` (replaced atomically); exit 2 for usage and I/O errors (a count above
//! `gen::MAX_COUNT` is a usage error).

use super::{OK, USAGE};
use std::io::Write as _;
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(subcommand)]
    what: What,
}

#[derive(clap::Subcommand, Debug)]
enum What {
    /// A synthetic Active Directory export: users with managers, groups with nested members,
    /// contacts, built-in accounts and replication conflicts.
    Ad(AdArgs),
}

#[derive(clap::Args, Debug)]
struct AdArgs {
    /// The number of ordinary users (at most 1,000,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=crate::r#gen::MAX_COUNT))]
    users: u64,
    /// The number of groups (at most 1,000,000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(..=crate::r#gen::MAX_COUNT))]
    groups: u64,
    /// The seed: the same seed gives the same export.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// The file to write (default: stdout).
    #[arg(short, long)]
    output: Option<PathBuf>,
}

pub fn run(args: Args) -> u8 {
    let What::Ad(a) = args.what;
    // Both counts are at most MAX_COUNT, so they fit a usize.
    let (Ok(users), Ok(groups)) = (usize::try_from(a.users), usize::try_from(a.groups)) else {
        eprintln!(
            "error: --users and --groups must be at most {}",
            crate::r#gen::MAX_COUNT
        );
        return USAGE;
    };
    let text = crate::r#gen::generate(users, groups, a.seed);
    match a.output {
        Some(path) => match crate::connector::ldif::write_atomic(&path, text.as_bytes()) {
            Ok(()) => OK,
            Err(e) => {
                eprintln!("error: {e}");
                USAGE
            }
        },
        None => {
            let mut out = super::Stdout;
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            OK
        }
    }
}
