//! Reads a Synchronization Rules Editor PowerShell script into a [`Config`].
//!
//! Consumes: the script text (`New-ADSyncRule`, `New-Object` scope and join conditions,
//! `Add-ADSyncScopeConditionGroup`, `Add-ADSyncJoinConditionGroup`,
//! `Add-ADSyncAttributeFlowMapping`, `Add-ADSyncRule`, `Remove-ADSyncRule`,
//! `Get-ADSyncConnector`) and the values of run-time variables ([`Options::vars`]).
//! Produces: [`Config`] holding the rules (no connectors, no metaverse: a script does not define
//! them), with each rule's connector as the script gives it ([`ConnectorRef`]: an identifier, a
//! name, or an expression that cannot be evaluated); every construct that is not understood is
//! listed in `Config::unmapped`, every guess in `Config::notes`, never dropped silently.
//!
//! The script is read in three steps: a hand-written tokenizer (`lex`), a parser of statements
//! and expressions (`parse`) and an evaluator that runs the script against a model of the rule
//! objects and of the connectors (`interp`, with the ADSync commands in `adsync`). Nothing is
//! executed outside that model: no command runs, no file is read, no server is asked.
//!
//! What is evaluated (docs/IMPORT.md lists it for users):
//! - variables: assignments (`=`, `+=`, `-=`, `*=`, `/=`, `++`, `--`), typed assignments
//!   (`[int] $x = 88`), script and function `param` blocks with defaults, `-OutVariable`
//!   (also `+name`), hashtables and splatting (`New-ADSyncRule @params`);
//! - expressions: strings (double-quoted ones expand `$x`, `${x}` and `$(...)`), numbers,
//!   arrays (`@(...)`, `a, b`), ranges, member access, indexing, casts, the arithmetic,
//!   comparison, logical, `-f`, `-join`, `-split`, `-replace` (literal patterns) operators
//!   and common string methods;
//! - control flow: `if`/`elseif`/`else`, `switch`, `foreach`, `for`, `while`, `do`,
//!   `try`/`catch`/`finally`, `break`, `continue`, `return`, `exit`, `throw`; functions with
//!   named, positional and switch parameters (a function the script never calls is read once,
//!   with a note, when it builds rules); pipelines with `Where-Object`, `ForEach-Object`,
//!   `Select-Object`, `Out-Null` and redirections;
//! - connectors: `Get-ADSyncConnector` by `-Name` or `-Identifier`, filtered with
//!   `Where-Object` on the name, identifier or type, and `.Identifier`, `.Identifier.Guid`.
//!
//! A value the script only gets at run time (`Read-Host`, `$env:NAME`, a script parameter
//! without default, a variable never assigned) comes from `--var NAME=VALUE`; when a rule,
//! a condition or a loop needs one that is not given, reading fails with an error naming the
//! variable and the flag. A value that cannot be evaluated for another reason (the output of
//! a command the reader does not model, a condition on the server's state) is reported where
//! a rule needs it; a condition that cannot be evaluated reads every branch, with a note.
//!
//! Recognised but ignored (they do not change the configuration): comments, bare values
//! (the editor's `'Connector: contoso.com'` header line), `Get-*` and other read-only commands,
//! `Write-*`, `Out-*`, `Format-*`, `Import-Module`, `Start-Sleep`, transcripts; run-time
//! actions (`Start-ADSyncSyncCycle`, `Set-ADSyncScheduler`, ...) are ignored with a note;
//! `Remove-ADSyncRule` of a rule the script adds again afterwards (a replacement); the common
//! parameters (`-Verbose`, `-ErrorAction`, ...); `-PrecedenceAfter`/`-PrecedenceBefore` when
//! they are the empty GUID and `-SoftDeleteExpiryInterval` when it is zero; `-Source` of
//! Expression flows (it only lists the attributes the expression reads).

mod adsync;
mod interp;
mod lex;
mod parse;

use super::model::Config;
use std::collections::BTreeMap;
use std::path::Path;

/// How a script is read.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Values of variables the script gets at run time (`--var NAME=VALUE`), by name as
    /// written without `$` (`tenant`, `env:COMPUTERNAME`); names compare case-insensitively.
    pub vars: BTreeMap<String, String>,
}

/// Reads a script with no run-time variables. `path` is used for error locations and as the
/// rules' source.
pub fn read(path: &Path, text: &str) -> Result<Config, String> {
    read_with(path, text, &Options::default())
}

/// Reads a script.
///
/// Errors (`"path:line:col: message"`, one per line): unterminated strings or comments,
/// unbalanced brackets, brackets or operators nested more than 256 levels (`E0215: ...`), a
/// run-time value the script needs and `--var` does not give, a rule or condition variable
/// used before it is assigned, an index past a list of rules or conditions, a parameter given
/// twice to one command, a script that runs away (too many statements or nested calls).
pub fn read_with(path: &Path, text: &str, options: &Options) -> Result<Config, String> {
    // Parsing and evaluation recurse once per nesting level (bounded: 256 brackets in the
    // text, `interp::MAX_NESTING` when run): a thread of its own gives them a known stack.
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("powershell-reader".into())
            .stack_size(STACK)
            .spawn_scoped(s, || read_here(path, text, options))
            .map_err(|e| format!("{}: cannot start the reader: {e}", path.display()))?
            .join()
            .unwrap_or_else(|_| Err(format!("{}: the reader failed", path.display())))
    })
}

/// The reader thread's stack.
const STACK: usize = 64 << 20;

fn read_here(path: &Path, text: &str, options: &Options) -> Result<Config, String> {
    let render = |e: &LocErr| format!("{}:{}:{}: {}", path.display(), e.pos.line, e.pos.col, e.msg);
    // Line endings are a property of the file, not of the strings in it.
    let text = text.replace("\r\n", "\n");
    let tokens = lex::lex(&text).map_err(|e| render(&e))?;
    let script = parse::parse(&text, &tokens).map_err(|e| render(&e))?;
    interp::Interp::new(path, options)
        .run(&script)
        .map_err(|errors| errors.iter().map(render).collect::<Vec<_>>().join("\n"))
}

/// A 1-based line and column (in characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pos {
    line: usize,
    col: usize,
}

#[derive(Debug, Clone)]
struct LocErr {
    pos: Pos,
    msg: String,
}

fn err<T>(pos: Pos, msg: impl Into<String>) -> Result<T, LocErr> {
    Err(LocErr {
        pos,
        msg: msg.into(),
    })
}

/// `{lower-case}` form of a GUID, as in the XML export.
fn normalize_guid(id: &str) -> String {
    let inner = id.trim().trim_start_matches('{').trim_end_matches('}');
    format!("{{{}}}", inner.to_ascii_lowercase())
}

#[cfg(test)]
mod tests;
