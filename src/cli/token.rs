//! `idflow token`: the access tokens of `idflow serve`'s HTTP side.
//!
//! `create --role reader|operator --name N` makes a token and prints it once, as the last line
//! of its output; the token file (`[serve] tokens_file`, `tokens` beside idflow.toml by
//! default, mode 0600, replaced atomically) keeps only its SHA-256. `list` prints the names,
//! roles and creation times; `revoke NAME` removes one (a running service refuses it at the
//! next request: the file is read on every request). Exit 0, 1 when `revoke` finds no such
//! token, 2 for configuration and usage errors.

use super::{FINDINGS, OK, USAGE};
use crate::serve::auth::{self, Role};
use std::path::PathBuf;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The deployment file.
    #[arg(long, default_value = "idflow.toml", global = true)]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
enum RoleArg {
    Reader,
    Operator,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Create a token: printed once, as the last line; only its hash is kept.
    Create {
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Its name (shown in the audit trail): letters, digits, '.', '_', '-', '@'.
        #[arg(long)]
        name: String,
    },
    /// The tokens: name, role, creation time.
    List,
    /// Remove the token NAME.
    Revoke { name: String },
}

pub fn run(args: Args) -> u8 {
    let deployment = match crate::config::load(&args.config) {
        Ok(d) => d,
        Err(errs) => {
            for e in errs {
                eprintln!("error: {e}");
            }
            return USAGE;
        }
    };
    let file = deployment.serve.tokens_file;
    match args.command {
        Command::Create { role, name } => {
            let role = match role {
                RoleArg::Reader => Role::Reader,
                RoleArg::Operator => Role::Operator,
            };
            match auth::create(&file, &name, role) {
                Ok(token) => {
                    outln!(
                        "created the {} token {name:?} in {} (only its hash is kept: this is the one time it is shown)",
                        role.as_str(),
                        file.display()
                    );
                    outln!("{token}");
                    OK
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    USAGE
                }
            }
        }
        Command::List => match auth::load(&file) {
            Ok(entries) => {
                for e in &entries {
                    outln!("{} {} {}", e.name, e.role.as_str(), e.created);
                }
                if entries.is_empty() {
                    outln!("no tokens in {}", file.display());
                }
                OK
            }
            Err(e) => {
                eprintln!("error: {e}");
                USAGE
            }
        },
        Command::Revoke { name } => match auth::revoke(&file, &name) {
            Ok(true) => {
                outln!("revoked the token {name:?}");
                OK
            }
            Ok(false) => {
                eprintln!("error: no token named {name:?} in {}", file.display());
                FINDINGS
            }
            Err(e) => {
                eprintln!("error: {e}");
                USAGE
            }
        },
    }
}
