//! The evaluator of the PowerShell reader.
//!
//! Consumes: the parsed script ([`Block`]) and the run-time variables of [`Options`].
//! Produces: the rules the script builds (through the ADSync commands of `adsync`), the
//! constructs it could not evaluate (`Config::unmapped`), the guesses it made
//! (`Config::notes`) and the run-time values it needed but was not given (errors).
//!
//! Values are modelled ([`V`]): strings, numbers, booleans, arrays, hashtables, script blocks,
//! the rule objects under construction, conditions, connectors, and [`Unknown`] for anything
//! only known when the script runs (with where it comes from, so that a message can say which
//! `--var` gives it). Variables are looked up through the call stack (PowerShell's dynamic
//! scoping); assignments are local to the current function. A condition that cannot be
//! evaluated reads every branch from the same starting point, and a variable the branches set
//! differently is unknown afterwards. Work is bounded: statements run, loop iterations,
//! nested calls, string and array sizes.

use super::lex::{self, Part};
use super::parse::{self, Block, Command, Elem, Expr, ExprKind, Function, Stmt, StmtKind};
use super::{LocErr, Options, Pos};
use crate::import::model::{Config, JoinCondition, ScopeClause, Unmapped};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// At most this many statements run in one script (a loop that never ends is an error).
const MAX_STEPS: usize = 1_000_000;
/// At most this many iterations of one loop (then the loop is reported and left).
const MAX_ITERATIONS: usize = 10_000;
/// At most this many nested function calls.
const MAX_DEPTH: usize = 100;
/// At most this many statements and expressions nested in evaluation (nesting in the
/// script times nested calls); the reader's thread has the stack for it.
pub(super) const MAX_NESTING: usize = 2_000;
/// At most this many bytes of values are built or copied while a script is read (every
/// variable read copies its value): beyond it, values become unknown and the read stops at the
/// next statement.
const MAX_BYTES: usize = 64 << 20;
/// Strings and arrays longer than this become unknown.
const MAX_STRING: usize = 1 << 20;
const MAX_ARRAY: usize = 100_000;

/// A value of the script.
#[derive(Debug, Clone)]
pub(super) enum V {
    Null,
    Bool(bool),
    Int(i64),
    Str(String),
    Array(Vec<V>),
    /// Keys compare case-insensitively; insertion order is kept.
    Hash(Vec<(String, V)>),
    /// A rule built by the script (index into the rules under construction).
    Rule(usize),
    /// A rule read from the server by `Get-ADSyncRule`, with its identifier when known.
    ServerRule(Option<String>),
    Scope(ScopeClause),
    Join(JoinCondition),
    Conn(Conn),
    /// The connectors `Get-ADSyncConnector` lists (not known before the script runs): the
    /// expression as written and its line.
    Conns {
        written: String,
        line: usize,
    },
    Block(Rc<Block>),
    Type(String),
    Unknown(Rc<Unknown>),
}

/// A connector as the script denotes it.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Conn {
    /// By identifier (`{guid}`).
    Id(String),
    /// By name.
    Name(String),
    /// Not known before the script runs: the expression that gives it as written (the key
    /// `--connector` names it by), its line, and the kind the script implies (`ad`, `entra`).
    Unresolved {
        written: String,
        line: usize,
        kind: Option<&'static str>,
    },
}

/// A value only known when the script runs.
#[derive(Debug)]
pub(super) struct Unknown {
    /// The variable it was first assigned to (the one `--var` gives).
    pub var: Option<String>,
    /// What it is, to follow "`$x` is ...": "read at run time by Read-Host (line 3)".
    pub what: String,
    /// Only `--var` can give it (an input of the script): needing it without is an error.
    pub input: bool,
    /// A variable the script never assigns.
    pub unassigned: bool,
}

impl V {
    pub fn unknown(what: impl Into<String>) -> V {
        V::Unknown(Rc::new(Unknown {
            var: None,
            what: what.into(),
            input: false,
            unassigned: false,
        }))
    }

    /// What kind of object it is, for messages.
    pub fn kind(&self) -> &'static str {
        match self {
            V::Null => "$null",
            V::Bool(_) => "a boolean",
            V::Int(_) => "a number",
            V::Str(_) => "a string",
            V::Array(_) => "an array",
            V::Hash(_) => "a hashtable",
            V::Rule(_) => "a synchronization rule",
            V::ServerRule(_) => "a rule read from the server",
            V::Scope(_) => "a scope condition",
            V::Join(_) => "a join condition",
            V::Conn(_) | V::Conns { .. } => "a connector",
            V::Block(_) => "a script block",
            V::Type(_) => "a type",
            V::Unknown(_) => "a value not known before the script runs",
        }
    }
}

/// Why a statement stopped running.
#[derive(Debug)]
pub(super) enum Stop {
    Fatal(LocErr),
    Break,
    Continue,
    Return,
    /// `exit` or `throw`.
    Exit {
        pos: Pos,
        throw: bool,
    },
}

impl From<LocErr> for Stop {
    fn from(e: LocErr) -> Self {
        Stop::Fatal(e)
    }
}

pub(super) type R<T> = Result<T, Stop>;

/// Variables PowerShell sets itself.
const AUTOMATIC: &[&str] = &[
    "psscriptroot",
    "pscommandpath",
    "myinvocation",
    "pwd",
    "home",
    "host",
    "psversiontable",
    "error",
    "lastexitcode",
    "?",
    "^",
    "$",
    "executioncontext",
    "pid",
    "profile",
    "shellid",
    "psculture",
    "psuiculture",
    "pshome",
    "psedition",
    "iswindows",
    "islinux",
    "ismacos",
    "matches",
    "erroractionpreference",
    "verbosepreference",
    "warningpreference",
    "debugpreference",
    "informationpreference",
    "confirmpreference",
    "whatifpreference",
    "ofs",
    "pscmdlet",
    "psboundparameters",
    "stacktrace",
    "sender",
    "event",
    "eventargs",
];

/// Read-only or output-only command verbs: an unknown command with one of them changes no
/// configuration.
const READ_ONLY_VERBS: &[&str] = &[
    "get",
    "test",
    "read",
    "write",
    "out",
    "format",
    "select",
    "sort",
    "measure",
    "find",
    "search",
    "compare",
    "convertto",
    "convertfrom",
    "resolve",
    "show",
    "join",
    "split",
    "group",
    "trace",
    "wait",
];

/// Commands that change nothing the importer models and are skipped without a word.
const HARMLESS: &[&str] = &[
    "import-module",
    "start-sleep",
    "start-transcript",
    "stop-transcript",
    "set-strictmode",
    "clear-host",
    "cls",
    "set-location",
    "push-location",
    "pop-location",
    "cd",
    "add-type",
    "set-executionpolicy",
    "pause",
];

/// ADSync commands that act on the running server, not on the configuration: ignored with a
/// note.
const RUN_TIME_ACTIONS: &[&str] = &[
    "start-adsyncsynccycle",
    "stop-adsyncsynccycle",
    "set-adsyncscheduler",
    "invoke-adsyncrunprofile",
    "set-adsyncautoupgrade",
    "start-adsyncpurgerunhistory",
];

pub(super) struct Interp<'o> {
    pub path: PathBuf,
    opts: &'o Options,
    scopes: Vec<HashMap<String, V>>,
    functions: HashMap<String, Rc<Function>>,
    defined: Vec<Rc<Function>>,
    called: HashSet<String>,
    outputs: Vec<Vec<V>>,
    pub unmapped: Vec<Unmapped>,
    pub notes: Vec<Unmapped>,
    /// Run-time values needed and not given (the read fails with them).
    missing: Vec<LocErr>,
    missing_vars: HashSet<String>,
    /// `--var` names used, and those the script assigns a value of its own (where).
    used_vars: HashSet<String>,
    overridden: BTreeMap<String, Pos>,
    /// How many branches being read are not known to run.
    uncertain: usize,
    steps: usize,
    /// Bytes of values still allowed ([`MAX_BYTES`]).
    bytes_left: usize,
    depth: usize,
    /// Nested statements and expressions being evaluated (bounds the stack).
    nesting: usize,
    /// Counts changes to rules (to tell whether a branch read uncertainly built rules).
    pub changes: usize,
    pub rules: super::adsync::Rules,
}

fn lower(s: &str) -> String {
    s.to_ascii_lowercase()
}

/// PowerShell's enumeration of a value written to a pipeline.
pub(super) fn items(v: V) -> Vec<V> {
    match v {
        V::Array(a) => a,
        V::Null => Vec::new(),
        other => vec![other],
    }
}

/// A pipeline's output as one value: nothing is `$null`, one item is itself.
pub(super) fn collapse(mut out: Vec<V>) -> V {
    match out.len() {
        0 => V::Null,
        1 => out.pop().unwrap_or(V::Null),
        _ => V::Array(out),
    }
}

/// The bytes a value takes, roughly (strings by length, containers by their items).
fn size(v: &V) -> usize {
    match v {
        V::Str(s) => s.len() + 16,
        V::Array(a) => a.iter().map(size).sum::<usize>() + 16,
        V::Hash(h) => h.iter().map(|(k, v)| k.len() + size(v)).sum::<usize>() + 16,
        _ => 16,
    }
}

/// Structural equality (for merging the variables of branches).
fn same(a: &V, b: &V) -> bool {
    match (a, b) {
        (V::Null, V::Null) => true,
        (V::Bool(x), V::Bool(y)) => x == y,
        (V::Int(x), V::Int(y)) => x == y,
        (V::Str(x), V::Str(y)) => x == y,
        (V::Array(x), V::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (V::Hash(x), V::Hash(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka.eq_ignore_ascii_case(kb) && same(a, b))
        }
        (V::Rule(x), V::Rule(y)) => x == y,
        (V::ServerRule(x), V::ServerRule(y)) => x == y,
        (V::Scope(x), V::Scope(y)) => x == y,
        (V::Join(x), V::Join(y)) => x == y,
        (V::Conn(x), V::Conn(y)) => x == y,
        (V::Conns { written: x, .. }, V::Conns { written: y, .. }) => x == y,
        (V::Block(x), V::Block(y)) => Rc::ptr_eq(x, y),
        (V::Type(x), V::Type(y)) => x.eq_ignore_ascii_case(y),
        (V::Unknown(x), V::Unknown(y)) => Rc::ptr_eq(x, y),
        _ => false,
    }
}

/// PowerShell's truth of a value; `None` when it is not known.
pub(super) fn truthy(v: &V) -> Option<bool> {
    Some(match v {
        V::Null => false,
        V::Bool(b) => *b,
        V::Int(n) => *n != 0,
        V::Str(s) => !s.is_empty(),
        V::Array(a) => match a.as_slice() {
            [] => false,
            [one] => return truthy(one),
            _ => true,
        },
        // Whether the server has the rule, or which connectors it has, is not known.
        V::Unknown(_) | V::Conns { .. } | V::ServerRule(_) => return None,
        _ => true,
    })
}

/// A value as text, when it is known: `None` for unknowns and objects without a text form.
pub(super) fn text_of(v: &V) -> Option<String> {
    Some(match v {
        V::Null => String::new(),
        V::Bool(true) => "True".into(),
        V::Bool(false) => "False".into(),
        V::Int(n) => n.to_string(),
        V::Str(s) => s.clone(),
        V::Array(a) => {
            let mut parts = Vec::new();
            for x in a {
                parts.push(text_of(x)?);
            }
            parts.join(" ")
        }
        V::Conn(Conn::Id(g)) => g.trim_matches(['{', '}']).to_string(),
        V::ServerRule(Some(id)) => id.clone(),
        V::Type(t) => t.clone(),
        _ => return None,
    })
}

/// `*`, `?` wildcards, case-insensitive unless `case`.
fn like(text: &str, pattern: &str, case: bool) -> bool {
    let fold = |s: &str| {
        if case {
            s.chars().collect::<Vec<_>>()
        } else {
            s.to_lowercase().chars().collect()
        }
    };
    let (t, p) = (fold(text), fold(pattern));
    let (mut ti, mut pi) = (0usize, 0usize);
    let (mut star, mut mark) = (None, 0usize);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            ti += 1;
            pi += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

/// A regular expression of the subset the reader matches: literals, `\` escapes, `.`, `*`
/// after an atom, `^` and `$` anchors. `None` for anything else.
fn regex_match(text: &str, pattern: &str, case: bool) -> Option<bool> {
    #[derive(Clone, Copy, PartialEq)]
    enum Atom {
        Any,
        Ch(char),
    }
    let fold = |c: char| {
        if case {
            c
        } else {
            c.to_lowercase().next().unwrap_or(c)
        }
    };
    let mut chars = pattern.chars().peekable();
    let anchored_start = chars.peek() == Some(&'^');
    if anchored_start {
        chars.next();
    }
    let mut atoms: Vec<(Atom, bool)> = Vec::new();
    let mut anchored_end = false;
    while let Some(c) = chars.next() {
        let atom = match c {
            '\\' => Atom::Ch(fold(chars.next()?)),
            '.' => Atom::Any,
            '$' if chars.peek().is_none() => {
                anchored_end = true;
                break;
            }
            '*' => {
                let last = atoms.last_mut()?;
                if last.1 {
                    return None;
                }
                last.1 = true;
                continue;
            }
            '[' | ']' | '(' | ')' | '|' | '+' | '?' | '{' | '}' | '^' | '$' => return None,
            c => Atom::Ch(fold(c)),
        };
        atoms.push((atom, false));
    }
    let t: Vec<char> = text.chars().map(fold).collect();
    fn at(t: &[char], i: usize, atoms: &[(Atom, bool)], end: bool) -> bool {
        let Some(&(a, star)) = atoms.first() else {
            return !end || i == t.len();
        };
        let hit = |k: usize| k < t.len() && (a == Atom::Any || a == Atom::Ch(t[k]));
        if star {
            let mut k = i;
            loop {
                if at(t, k, &atoms[1..], end) {
                    return true;
                }
                if !hit(k) {
                    return false;
                }
                k += 1;
            }
        }
        hit(i) && at(t, i + 1, &atoms[1..], end)
    }
    // Backtracking over several `*` is polynomial in the text with the number of stars as
    // the exponent: more than a few are not evaluated.
    if atoms.len() > 64 || atoms.iter().filter(|(_, star)| *star).count() > 3 {
        return None;
    }
    let starts: Vec<usize> = if anchored_start {
        vec![0]
    } else {
        (0..=t.len()).collect()
    };
    Some(starts.into_iter().any(|s| at(&t, s, &atoms, anchored_end)))
}

/// Whether a pattern has characters a regular expression gives a meaning.
fn has_regex_chars(p: &str) -> bool {
    p.chars().any(|c| "\\^$.|?*+()[]{}".contains(c))
}

/// `-replace` of a literal pattern, case-insensitively unless `case`; `None` for a
/// case-insensitive replacement in text that is not ASCII (its case folding is not modelled).
fn replace_literal(text: &str, from: &str, to: &str, case: bool) -> Option<String> {
    if from.is_empty() {
        return Some(text.to_string());
    }
    if case {
        return Some(text.replace(from, to));
    }
    if !text.is_ascii() || !from.is_ascii() {
        return None;
    }
    let (lt, lf) = (text.to_ascii_lowercase(), from.to_ascii_lowercase());
    let mut out = String::new();
    let mut i = 0;
    while let Some(k) = lt[i..].find(&lf) {
        out.push_str(&text[i..i + k]);
        out.push_str(to);
        i += k + lf.len();
    }
    out.push_str(&text[i..]);
    Some(out)
}

/// PowerShell's `-f`: `{0}`, `{1:fmt}` (the format is ignored), `{{` and `}}`.
fn format_op(fmt: &str, args: &[V]) -> Option<String> {
    let mut out = String::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '{' if chars.peek() == Some(&'{') => {
                chars.next();
                out.push('{');
            }
            '}' if chars.peek() == Some(&'}') => {
                chars.next();
                out.push('}');
            }
            '{' => {
                let mut spec = String::new();
                for c in chars.by_ref() {
                    if c == '}' {
                        break;
                    }
                    spec.push(c);
                }
                let n: usize = spec.split([':', ',']).next()?.trim().parse().ok()?;
                out.push_str(&text_of(args.get(n).unwrap_or(&V::Null))?);
            }
            c => out.push(c),
        }
    }
    Some(out)
}

impl<'o> Interp<'o> {
    pub fn new(path: &Path, opts: &'o Options) -> Self {
        Interp {
            path: path.to_path_buf(),
            opts,
            scopes: vec![HashMap::new()],
            functions: HashMap::new(),
            defined: Vec::new(),
            called: HashSet::new(),
            outputs: vec![Vec::new()],
            unmapped: Vec::new(),
            notes: Vec::new(),
            missing: Vec::new(),
            missing_vars: HashSet::new(),
            used_vars: HashSet::new(),
            overridden: BTreeMap::new(),
            uncertain: 0,
            steps: 0,
            bytes_left: MAX_BYTES,
            depth: 0,
            nesting: 0,
            changes: 0,
            rules: Default::default(),
        }
    }

    pub fn locate(&self, pos: Pos, msg: impl Into<String>) -> LocErr {
        LocErr {
            pos,
            msg: msg.into(),
        }
    }

    pub fn unmapped(&mut self, context: &str, what: impl Into<String>) {
        self.unmapped.push(Unmapped {
            source: self.path.clone(),
            context: context.to_string(),
            what: what.into(),
        });
    }

    pub fn note(&mut self, context: &str, what: impl Into<String>) {
        self.notes.push(Unmapped {
            source: self.path.clone(),
            context: context.to_string(),
            what: what.into(),
        });
    }

    /// Runs the script; the errors are the run-time values it needs and was not given, or
    /// one fatal error.
    pub fn run(mut self, script: &Block) -> Result<Config, Vec<LocErr>> {
        let r = self.exec_block(script);
        self.stopped(r, script)?;
        let r = self.read_uncalled_functions();
        self.stopped(r, script)?;
        if !self.missing.is_empty() {
            return Err(self.missing);
        }
        self.unused_vars();
        self.finish().map_err(|e| vec![e])
    }

    /// Handles how the script (or a function read at the end) stopped.
    fn stopped(&mut self, r: R<()>, script: &Block) -> Result<(), Vec<LocErr>> {
        match r {
            Ok(()) | Err(Stop::Break | Stop::Continue | Stop::Return) => Ok(()),
            Err(Stop::Fatal(e)) => {
                let mut errors = std::mem::take(&mut self.missing);
                errors.push(e);
                Err(errors)
            }
            Err(Stop::Exit { pos, throw }) => {
                let after: Vec<String> = rule_commands(script)
                    .into_iter()
                    .filter(|(_, p)| p.line > pos.line)
                    .map(|(name, p)| format!("{name} at line {}", p.line))
                    .collect();
                if !after.is_empty() {
                    let what = if throw { "throw" } else { "exit" };
                    let shown = after.iter().take(5).cloned().collect::<Vec<_>>().join(", ");
                    let more = if after.len() > 5 { ", ..." } else { "" };
                    self.note(
                        "script",
                        format!(
                            "the script stops at line {} (`{what}`): the commands after it are not read ({shown}{more})",
                            pos.line
                        ),
                    );
                }
                Ok(())
            }
        }
    }

    /// Warns about `--var` values the script does not need.
    fn unused_vars(&mut self) {
        let names: Vec<String> = self.opts.vars.keys().cloned().collect();
        for name in names {
            let key = lower(&name);
            if self.used_vars.contains(&key) {
                continue;
            }
            let what = match self.overridden.get(&key) {
                Some(p) => format!(
                    "--var {name} is not used: the script sets `${name}` itself (line {})",
                    p.line
                ),
                None => format!("--var {name} is not used: the script does not need `${name}`"),
            };
            self.notes.push(Unmapped {
                source: self.path.clone(),
                context: "warning".into(),
                what,
            });
        }
    }

    fn tick(&mut self, pos: Pos) -> R<()> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(Stop::Fatal(self.locate(
                pos,
                format!("the script runs more than {MAX_STEPS} statements; not read"),
            )));
        }
        if self.bytes_left == 0 {
            return Err(Stop::Fatal(self.locate(
                pos,
                format!(
                    "the script builds or copies more than {} MiB of values; not read",
                    MAX_BYTES >> 20
                ),
            )));
        }
        Ok(())
    }

    /// Charges `n` bytes of values built or copied; `false` (and the budget spent) when they
    /// do not fit.
    pub fn charge(&mut self, n: usize) -> bool {
        match self.bytes_left.checked_sub(n) {
            Some(left) => {
                self.bytes_left = left;
                true
            }
            None => {
                self.bytes_left = 0;
                false
            }
        }
    }

    /// A value built, charged to the budget; unknown when it does not fit.
    fn built(&mut self, v: V, loc: &parse::Loc) -> V {
        if self.charge(size(&v)) {
            v
        } else {
            self.not_evaluated(loc)
        }
    }

    // --- variables ------------------------------------------------------------------------

    fn given(&mut self, name: &str) -> Option<String> {
        let key = lower(name);
        let v = self
            .opts
            .vars
            .iter()
            .find(|(k, _)| lower(k) == key)
            .map(|(_, v)| v.clone())?;
        self.used_vars.insert(key);
        Some(v)
    }

    pub fn get(&mut self, name: &str) -> V {
        let key = lower(name);
        match key.as_str() {
            "true" => return V::Bool(true),
            "false" => return V::Bool(false),
            "null" => return V::Null,
            _ => {}
        }
        let found = self.scopes.iter().rev().find_map(|s| s.get(&key)).map(size);
        if let Some(n) = found {
            if !self.charge(n) {
                return V::unknown("a value past the reader's size budget");
            }
            if let Some(v) = self.scopes.iter().rev().find_map(|s| s.get(&key)) {
                return v.clone();
            }
        }
        if let Some(v) = self.given(name) {
            return V::Str(v);
        }
        let (what, input, unassigned) = if key.starts_with("env:") {
            (
                "an environment variable of the machine the script runs on".to_string(),
                true,
                false,
            )
        } else if AUTOMATIC.contains(&key.as_str()) {
            ("a PowerShell automatic variable".to_string(), false, false)
        } else {
            ("never assigned in the script".to_string(), true, true)
        };
        V::Unknown(Rc::new(Unknown {
            var: Some(name.to_string()),
            what,
            input,
            unassigned,
        }))
    }

    pub fn set(&mut self, name: &str, v: V) {
        let key = lower(name);
        if key == "null" {
            return;
        }
        if let Some(top) = self.scopes.last_mut() {
            top.insert(key, v);
        }
    }

    /// A value assigned to `name`: `--var` gives it when the script cannot; an unknown value
    /// remembers the variable.
    fn assigned(&mut self, name: &str, v: V, pos: Pos) -> V {
        let key = lower(name);
        let given = self.opts.vars.keys().any(|k| lower(k) == key);
        match v {
            V::Unknown(_) if given => V::Str(self.given(name).unwrap_or_default()),
            V::Unknown(u) if u.var.is_none() => V::Unknown(Rc::new(Unknown {
                var: Some(name.to_string()),
                what: u.what.clone(),
                input: u.input,
                unassigned: false,
            })),
            v => {
                if given && !self.used_vars.contains(&key) {
                    self.overridden.entry(key).or_insert(pos);
                }
                v
            }
        }
    }

    /// Records that a run-time value is needed: an error naming the variable and `--var`.
    pub fn need(&mut self, u: &Unknown, pos: Pos) {
        let Some(var) = &u.var else { return };
        if !self.missing_vars.insert(lower(var)) {
            return;
        }
        let e = self.locate(
            pos,
            format!(
                "`${var}` is {}: give its value with --var {var}=VALUE",
                u.what
            ),
        );
        self.missing.push(e);
    }

    /// Reports an unknown value where the configuration needs one: `what` says where
    /// ("`-Precedence` of New-ADSyncRule"). An input is an error; anything else is unmapped.
    pub fn unknown_used(&mut self, u: &Unknown, pos: Pos, what: &str, written: &str, ctx: &str) {
        if u.input && u.var.is_some() {
            self.need(u, pos);
            return;
        }
        let msg = match &u.var {
            Some(var) => format!(
                "{what} comes from `${var}`, which is {}: give its value with --var {var}=VALUE",
                u.what
            ),
            None => format!("{what} is `{written}`: {}", u.what),
        };
        self.unmapped(ctx, msg);
    }

    // --- statements ---------------------------------------------------------------------

    fn emit(&mut self, v: V) {
        if let Some(top) = self.outputs.last_mut() {
            top.extend(items(v));
        }
    }

    pub fn exec_block(&mut self, b: &Block) -> R<()> {
        for s in &b.stmts {
            self.exec(s)?;
        }
        Ok(())
    }

    /// Runs a statement and returns what it outputs as one value.
    pub fn value_of(&mut self, s: &Stmt) -> R<V> {
        if let StmtKind::Pipeline {
            input: Some(e),
            commands,
        } = &s.kind
            && commands.is_empty()
        {
            return self.eval(e);
        }
        self.outputs.push(Vec::new());
        let r = self.exec(s);
        let out = self.outputs.pop().unwrap_or_default();
        r?;
        Ok(collapse(out))
    }

    /// Runs a block and returns its output items.
    pub fn output_of(&mut self, b: &Block) -> R<Vec<V>> {
        self.outputs.push(Vec::new());
        let r = self.exec_block(b);
        let out = self.outputs.pop().unwrap_or_default();
        r?;
        Ok(out)
    }

    fn exec(&mut self, s: &Stmt) -> R<()> {
        self.enter(s.loc.pos)?;
        let r = self.exec_inner(s);
        self.nesting -= 1;
        r
    }

    /// Counts one more level of nesting; too many is an error.
    fn enter(&mut self, pos: Pos) -> R<()> {
        if self.nesting >= MAX_NESTING {
            return Err(Stop::Fatal(self.locate(
                pos,
                format!(
                    "E0215: the script nests more than {MAX_NESTING} levels when run; not read"
                ),
            )));
        }
        self.nesting += 1;
        Ok(())
    }

    fn exec_inner(&mut self, s: &Stmt) -> R<()> {
        self.tick(s.loc.pos)?;
        self.rules.order += 1;
        match &s.kind {
            StmtKind::Pipeline { input, commands } => {
                let out = self.pipeline(input.as_ref(), commands)?;
                for v in out {
                    self.emit(v);
                }
            }
            StmtKind::Assign { target, op, value } => {
                let v = self.value_of(value)?;
                self.assign(target, op, v, s)?;
            }
            StmtKind::Step { target, delta } => {
                let v = V::Int(*delta);
                self.assign(target, "+=", v, s)?;
            }
            StmtKind::If { clauses, otherwise } => {
                self.if_statement(clauses, otherwise.as_ref(), s)?
            }
            StmtKind::Foreach {
                var,
                collection,
                body,
            } => self.foreach(var, collection, body, s)?,
            StmtKind::For {
                init,
                cond,
                step,
                body,
            } => {
                if let Some(i) = init {
                    self.exec(i)?;
                }
                self.for_loop(cond.as_deref(), step.as_deref(), body, false, false, s)?;
            }
            StmtKind::While {
                cond,
                body,
                post,
                until,
            } => self.for_loop(Some(cond), None, body, *post, *until, s)?,
            StmtKind::Try {
                body,
                catches,
                finally,
            } => {
                let r = self.exec_block(body);
                let r = match r {
                    Err(Stop::Exit { throw: true, .. }) if !catches.is_empty() => {
                        self.exec_block(&catches[0])
                    }
                    other => {
                        for c in catches {
                            self.unread(
                                c,
                                &format!(
                                    "the `catch` block of the `try` at line {} runs only when the `try` block fails",
                                    s.loc.pos.line
                                ),
                            );
                        }
                        other
                    }
                };
                if let Some(f) = finally {
                    self.exec_block(f)?;
                }
                r?;
            }
            StmtKind::Switch {
                subject,
                clauses,
                wildcard,
            } => self.switch_statement(subject, clauses, *wildcard, s)?,
            StmtKind::Function(f) => {
                self.functions.insert(lower(&f.name), f.clone());
                self.defined.push(f.clone());
            }
            StmtKind::Params(ps) => {
                for p in ps {
                    let v = match self.given(&p.name) {
                        Some(v) => V::Str(v),
                        None => match &p.default {
                            Some(d) => self.eval(d)?,
                            None if p.is_switch() => V::Bool(false),
                            None => V::Unknown(Rc::new(Unknown {
                                var: Some(p.name.clone()),
                                what: "a parameter of the script".into(),
                                input: true,
                                unassigned: false,
                            })),
                        },
                    };
                    let v = match &p.ty {
                        Some(t) => self.cast(t, v),
                        None => v,
                    };
                    self.set(&p.name, v);
                }
            }
            StmtKind::Block(b) => self.exec_block(b)?,
            StmtKind::Return(v) => {
                if let Some(v) = v {
                    let x = self.value_of(v)?;
                    self.emit(x);
                }
                return Err(Stop::Return);
            }
            StmtKind::Break => return Err(Stop::Break),
            StmtKind::Continue => return Err(Stop::Continue),
            StmtKind::Exit | StmtKind::Throw(_) => {
                let throw = matches!(s.kind, StmtKind::Throw(_));
                if self.uncertain > 0 {
                    return Ok(());
                }
                return Err(Stop::Exit {
                    pos: s.loc.pos,
                    throw,
                });
            }
            StmtKind::Unsupported { what } => {
                let ctx = self.context(None);
                self.unmapped(
                    &ctx,
                    format!(
                        "unsupported {what} at line {}: `{}`",
                        s.loc.pos.line,
                        first_line(s.loc.text())
                    ),
                );
            }
        }
        Ok(())
    }

    /// Notes a block the script does not run (a `catch` block when the `try` block
    /// succeeds) when it holds rule commands.
    fn unread(&mut self, b: &Block, why: &str) {
        let cmds = block_rule_commands(b);
        if cmds.is_empty() {
            return;
        }
        let list: Vec<String> = cmds
            .iter()
            .take(5)
            .map(|(n, p)| format!("{n} at line {}", p.line))
            .collect();
        let ctx = self.context(None);
        self.note(&ctx, format!("{why}; not read: {}", list.join(", ")));
    }

    fn assign(&mut self, target: &Expr, op: &str, v: V, s: &Stmt) -> R<()> {
        let (name, ty) = match &target.kind {
            ExprKind::Var(n) => (n.clone(), None),
            ExprKind::Cast(t, inner) => match &inner.kind {
                ExprKind::Var(n) => (n.clone(), Some(t.clone())),
                _ => return self.unsupported_assignment(target, s),
            },
            ExprKind::Member(obj, m) => return self.assign_member(obj, Some(m), None, op, v, s),
            ExprKind::Index(obj, i) => {
                let i = self.eval(i)?;
                return self.assign_member(obj, None, Some(i), op, v, s);
            }
            _ => return self.unsupported_assignment(target, s),
        };
        let v = if op == "=" {
            v
        } else {
            let old = self.get(&name);
            self.binary(&op[..op.len() - 1], old, v, &target.loc)
        };
        let v = self.assigned(&name, v, s.loc.pos);
        let v = match ty {
            Some(t) => self.cast(&t, v),
            None => v,
        };
        self.set(&name, v);
        Ok(())
    }

    fn unsupported_assignment(&mut self, target: &Expr, s: &Stmt) -> R<()> {
        let ctx = self.context(None);
        self.unmapped(
            &ctx,
            format!(
                "unsupported assignment at line {}: `{}`",
                s.loc.pos.line,
                first_line(target.loc.text())
            ),
        );
        Ok(())
    }

    /// `$h.key = v`, `$h['key'] = v`, `$a[1] = v` on a variable holding a hashtable or array.
    fn assign_member(
        &mut self,
        obj: &Expr,
        member: Option<&String>,
        index: Option<V>,
        op: &str,
        v: V,
        s: &Stmt,
    ) -> R<()> {
        let ExprKind::Var(name) = &obj.kind else {
            return self.unsupported_assignment(obj, s);
        };
        let mut current = self.get(name);
        let key = match (member, &index) {
            (Some(m), _) => Some(m.clone()),
            (None, Some(i)) => text_of(i),
            _ => None,
        };
        match (&mut current, key, index) {
            (V::Hash(entries), Some(k), _) => {
                let v = if op == "=" {
                    v
                } else {
                    let old = entries
                        .iter()
                        .find(|(x, _)| x.eq_ignore_ascii_case(&k))
                        .map(|(_, v)| v.clone())
                        .unwrap_or(V::Null);
                    self.binary(&op[..op.len() - 1], old, v, &obj.loc)
                };
                match entries.iter_mut().find(|(x, _)| x.eq_ignore_ascii_case(&k)) {
                    Some(e) => e.1 = v,
                    None => entries.push((k, v)),
                }
            }
            (V::Array(a), _, Some(V::Int(i))) if op == "=" => {
                let len = a.len() as i64;
                let i = if i < 0 { i + len } else { i };
                if (0..len).contains(&i) {
                    a[i as usize] = v;
                }
            }
            _ => {
                let target = match member {
                    Some(m) => format!("${name}.{m}"),
                    None => format!("${name}[...]"),
                };
                let ctx = self.context(None);
                self.unmapped(
                    &ctx,
                    format!(
                        "unsupported assignment at line {} to `{target}` ({}): not evaluated",
                        s.loc.pos.line,
                        current.kind()
                    ),
                );
                return Ok(());
            }
        }
        self.set(name, current);
        Ok(())
    }

    /// The truth of a condition; `None` when it cannot be known before the script runs (a
    /// run-time input it needs is recorded as missing).
    fn condition(&mut self, cond: &Stmt) -> R<Option<bool>> {
        let v = self.value_of(cond)?;
        let t = truthy(&v);
        if t.is_none()
            && let V::Unknown(u) = &v
            && u.input
        {
            self.need(u, cond.loc.pos);
        }
        Ok(t)
    }

    fn if_statement(
        &mut self,
        clauses: &[(Stmt, Block)],
        otherwise: Option<&Block>,
        s: &Stmt,
    ) -> R<()> {
        for (i, (cond, body)) in clauses.iter().enumerate() {
            match self.condition(cond)? {
                Some(true) => return self.exec_block(body),
                Some(false) => {}
                None => {
                    let mut bodies: Vec<&Block> = clauses[i..].iter().map(|(_, b)| b).collect();
                    bodies.extend(otherwise);
                    let why = format!(
                        "the condition of the `if` at line {} (`{}`) is not evaluated: every branch is read",
                        s.loc.pos.line,
                        first_line(cond.loc.text())
                    );
                    return self.uncertain_branches(&bodies, otherwise.is_some(), &why, s.loc.pos);
                }
            }
        }
        match otherwise {
            Some(b) => self.exec_block(b),
            None => Ok(()),
        }
    }

    /// Reads branches without knowing which runs: each from the same variables; afterwards a
    /// variable they leave different is unknown. `complete` when one of them always runs.
    fn uncertain_branches(
        &mut self,
        bodies: &[&Block],
        complete: bool,
        why: &str,
        pos: Pos,
    ) -> R<()> {
        // Each branch starts from a copy of the variables.
        let copies = bodies.len() + 2;
        let bytes: usize = self.scopes.iter().flat_map(|s| s.values()).map(size).sum();
        self.charge(bytes.saturating_mul(copies));
        let before = self.scopes.clone();
        let changes = self.changes;
        self.uncertain += 1;
        let mut ends = Vec::new();
        let mut result = Ok(());
        for b in bodies {
            self.scopes = before.clone();
            match self.exec_block(b) {
                Ok(()) | Err(Stop::Break | Stop::Continue | Stop::Return | Stop::Exit { .. }) => {}
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
            ends.push(std::mem::take(&mut self.scopes));
        }
        self.uncertain -= 1;
        result?;
        if !complete {
            ends.push(before.clone());
        }
        // Merge level by level (the branches never change the number of scopes).
        let mut merged = before;
        for (level, scope) in merged.iter_mut().enumerate() {
            let mut names: BTreeSet<String> = BTreeSet::new();
            for e in &ends {
                if let Some(s) = e.get(level) {
                    names.extend(s.keys().cloned());
                }
            }
            for name in names {
                let values: Vec<Option<&V>> = ends
                    .iter()
                    .map(|e| e.get(level).and_then(|s| s.get(&name)))
                    .collect();
                let first = values[0];
                let agree = values.iter().all(|v| match (v, first) {
                    (Some(a), Some(b)) => same(a, b),
                    (None, None) => true,
                    _ => false,
                });
                if agree {
                    match first {
                        Some(v) => {
                            scope.insert(name, v.clone());
                        }
                        None => {
                            scope.remove(&name);
                        }
                    }
                } else {
                    scope.insert(
                        name.clone(),
                        V::Unknown(Rc::new(Unknown {
                            var: Some(name),
                            what: format!(
                                "set differently by branches (line {}) whose condition is not evaluated",
                                pos.line
                            ),
                            input: false,
                            unassigned: false,
                        })),
                    );
                }
            }
        }
        self.scopes = merged;
        if self.changes != changes {
            let ctx = self.context(None);
            self.note(&ctx, why.to_string());
        }
        Ok(())
    }

    fn foreach(&mut self, var: &str, collection: &Stmt, body: &Block, s: &Stmt) -> R<()> {
        let coll = self.value_of(collection)?;
        let item = match &coll {
            V::Unknown(u) => {
                if u.input {
                    self.need(u, collection.loc.pos);
                }
                Some(V::unknown(format!(
                    "an item of `{}` (line {}), which is not evaluated",
                    first_line(collection.loc.text()),
                    s.loc.pos.line
                )))
            }
            V::Conns { .. } => Some(V::Conn(Conn::Unresolved {
                written: format!("${var}"),
                line: s.loc.pos.line,
                kind: None,
            })),
            _ => None,
        };
        if let Some(item) = item {
            let item = self.assigned(var, item, s.loc.pos);
            self.set(var, item);
            let why = format!(
                "the collection of the `foreach` at line {} (`{}`) is not evaluated: its body is read once",
                s.loc.pos.line,
                first_line(collection.loc.text())
            );
            return self.uncertain_branches(&[body], false, &why, s.loc.pos);
        }
        for (n, item) in items(coll).into_iter().enumerate() {
            if n >= MAX_ITERATIONS {
                self.too_many(s);
                break;
            }
            self.set(var, item);
            match self.exec_block(body) {
                Ok(()) | Err(Stop::Continue) => {}
                Err(Stop::Break) => break,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn too_many(&mut self, s: &Stmt) {
        let ctx = self.context(None);
        self.unmapped(
            &ctx,
            format!(
                "the loop at line {} runs more than {MAX_ITERATIONS} times: read up to there",
                s.loc.pos.line
            ),
        );
    }

    /// `for`, `while`, `do ... while`, `do ... until`.
    fn for_loop(
        &mut self,
        cond: Option<&Stmt>,
        step: Option<&Stmt>,
        body: &Block,
        post: bool,
        until: bool,
        s: &Stmt,
    ) -> R<()> {
        let mut n = 0usize;
        loop {
            if !(post && n == 0) {
                let go = match cond {
                    None => Some(true),
                    Some(c) => self.condition(c)?.map(|t| t != until),
                };
                match go {
                    Some(true) => {}
                    Some(false) => return Ok(()),
                    None => {
                        let c = cond.map_or("", |c| c.loc.text()).to_string();
                        let why = format!(
                            "the condition of the loop at line {} (`{}`) is not evaluated: its body is read once",
                            s.loc.pos.line,
                            first_line(&c)
                        );
                        return self.uncertain_branches(&[body], false, &why, s.loc.pos);
                    }
                }
            }
            if n >= MAX_ITERATIONS {
                self.too_many(s);
                return Ok(());
            }
            n += 1;
            match self.exec_block(body) {
                Ok(()) | Err(Stop::Continue) => {}
                Err(Stop::Break) => return Ok(()),
                Err(e) => return Err(e),
            }
            if let Some(st) = step {
                self.exec(st)?;
            }
        }
    }

    fn switch_statement(
        &mut self,
        subject: &Stmt,
        clauses: &[(Option<Expr>, Block)],
        wildcard: bool,
        s: &Stmt,
    ) -> R<()> {
        let v = self.value_of(subject)?;
        let why = format!(
            "the `switch` at line {} (`{}`) is not evaluated: every branch is read",
            s.loc.pos.line,
            first_line(subject.loc.text())
        );
        let all: Vec<&Block> = clauses.iter().map(|(_, b)| b).collect();
        let has_default = clauses.iter().any(|(l, _)| l.is_none());
        if let V::Unknown(u) = &v {
            if u.input {
                self.need(u, subject.loc.pos);
            }
            return self.uncertain_branches(&all, has_default, &why, s.loc.pos);
        }
        'items: for item in items(v) {
            let mut matched = false;
            for (label, body) in clauses {
                let Some(label) = label else { continue };
                let hit = match &label.kind {
                    ExprKind::ScriptBlock(b) => {
                        let b = b.clone();
                        let out = self.with_item(item.clone(), |me| me.output_of(&b))?;
                        truthy(&collapse(out))
                    }
                    _ => {
                        let l = self.eval(label)?;
                        match (text_of(&item), text_of(&l)) {
                            (Some(a), Some(b)) if wildcard => Some(like(&a, &b, false)),
                            (Some(a), Some(b)) => Some(a.eq_ignore_ascii_case(&b)),
                            _ => None,
                        }
                    }
                };
                match hit {
                    Some(true) => {
                        matched = true;
                        match self.with_item(item.clone(), |me| me.exec_block(body)) {
                            Ok(()) | Err(Stop::Continue) => {}
                            Err(Stop::Break) => break 'items,
                            Err(e) => return Err(e),
                        }
                    }
                    Some(false) => {}
                    None => return self.uncertain_branches(&all, has_default, &why, s.loc.pos),
                }
            }
            if !matched && let Some((_, body)) = clauses.iter().find(|(l, _)| l.is_none()) {
                match self.with_item(item.clone(), |me| me.exec_block(body)) {
                    Ok(()) | Err(Stop::Continue) => {}
                    Err(Stop::Break) => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Runs `f` with `$_` bound to `item`.
    pub fn with_item<T>(&mut self, item: V, f: impl FnOnce(&mut Self) -> R<T>) -> R<T> {
        let saved = (self.get("_"), self.get("PSItem"));
        self.set("_", item.clone());
        self.set("PSItem", item);
        let r = f(self);
        self.set("_", saved.0);
        self.set("PSItem", saved.1);
        r
    }

    // --- pipelines and commands -----------------------------------------------------------

    pub fn pipeline(&mut self, input: Option<&Expr>, commands: &[Command]) -> R<Vec<V>> {
        let mut flow = match input {
            Some(e) => Some(items(self.eval(e)?)),
            None => None,
        };
        if commands.is_empty() {
            return Ok(flow.unwrap_or_default());
        }
        for c in commands {
            flow = Some(self.command(c, flow)?);
        }
        Ok(flow.unwrap_or_default())
    }

    fn command(&mut self, cmd: &Command, input: Option<Vec<V>>) -> R<Vec<V>> {
        let name = lower(&cmd.name);
        if let Some(f) = self.functions.get(&name).cloned() {
            return self.call(&f, Some(cmd), input);
        }
        if let Some(out) = self.adsync(cmd, &name, input.clone())? {
            return Ok(out);
        }
        let pos = cmd.loc.pos;
        match name.as_str() {
            "where-object" | "where" | "?" => self.where_object(cmd, input.unwrap_or_default()),
            "foreach-object" | "foreach" | "%" => {
                self.foreach_object(cmd, input.unwrap_or_default())
            }
            "select-object" | "select" => self.select_object(cmd, input.unwrap_or_default()),
            "out-null" => Ok(Vec::new()),
            "write-output" | "echo" | "write" => {
                let mut out = input.unwrap_or_default();
                for e in &cmd.elems {
                    if let Elem::Arg(x) = e {
                        out.extend(items(self.eval(x)?));
                    }
                }
                Ok(out)
            }
            "sort-object" | "sort" | "tee-object" | "tee" => Ok(input.unwrap_or_default()),
            "read-host" => Ok(vec![V::Unknown(Rc::new(Unknown {
                var: None,
                what: format!("read at run time by Read-Host (line {})", pos.line),
                input: true,
                unassigned: false,
            }))]),
            "&" | "." => {
                let ctx = self.context(None);
                self.unmapped(
                    &ctx,
                    format!(
                        "`{}` at line {} runs a script block or another script, which is not read",
                        first_line(cmd.loc.text()),
                        pos.line
                    ),
                );
                Ok(vec![V::unknown(format!(
                    "the output of `{}` (line {}), which is not read",
                    first_line(cmd.loc.text()),
                    pos.line
                ))])
            }
            n if RUN_TIME_ACTIONS.contains(&n) => {
                let ctx = self.context(None);
                self.note(
                    &ctx,
                    format!(
                        "`{}` at line {} acts on the running server, not on the configuration; ignored",
                        cmd.name, pos.line
                    ),
                );
                Ok(Vec::new())
            }
            n if HARMLESS.contains(&n) => Ok(Vec::new()),
            n => {
                let verb = n.split('-').next().unwrap_or("");
                let read_only = n.contains('-') && READ_ONLY_VERBS.contains(&verb);
                if !read_only {
                    let ctx = self.context(None);
                    self.unmapped(&ctx, format!("unknown command `{}`", cmd.name));
                }
                if matches!(verb, "write" | "out" | "format") {
                    return Ok(Vec::new());
                }
                Ok(vec![V::unknown(format!(
                    "the output of `{}` (line {}), which is not evaluated",
                    cmd.name, pos.line
                ))])
            }
        }
    }

    /// The first script block argument of a command, or its `-FilterScript`/`-Process`.
    fn block_arg(&mut self, cmd: &Command, names: &[&str]) -> R<Option<(Rc<Block>, String)>> {
        for e in &cmd.elems {
            let x = match e {
                Elem::Arg(x) => x,
                Elem::Param {
                    name,
                    value: Some(x),
                    ..
                } if names.iter().any(|n| n.eq_ignore_ascii_case(name)) => x,
                _ => continue,
            };
            if let ExprKind::ScriptBlock(b) = &x.kind {
                return Ok(Some((b.clone(), x.loc.text().to_string())));
            }
        }
        // `-FilterScript { ... }` without colon: the block is the next argument.
        Ok(None)
    }

    fn where_object(&mut self, cmd: &Command, input: Vec<V>) -> R<Vec<V>> {
        // Connectors listed by Get-ADSyncConnector are narrowed by the filter's text.
        if let [V::Conns { written, .. }] = input.as_slice() {
            let written = written.clone();
            return Ok(vec![V::Conn(self.connector_filter(cmd, &written)?)]);
        }
        let block = self.block_arg(cmd, &["FilterScript"])?;
        let simple = self.simple_filter(cmd)?;
        let mut out = Vec::new();
        for item in input {
            let keep = match (&block, &simple) {
                (Some((b, _)), _) => {
                    let b = b.clone();
                    let o = self.with_item(item.clone(), |me| me.output_of(&b))?;
                    truthy(&collapse(o))
                }
                (None, Some((prop, op, value))) => {
                    let v = self.member_of(item.clone(), prop, &cmd.loc);
                    let r = self.binary(op, v, value.clone(), &cmd.loc);
                    truthy(&r)
                }
                (None, None) => Some(true),
            };
            match keep {
                Some(true) => out.push(item),
                Some(false) => {}
                None => {
                    return Ok(vec![V::unknown(format!(
                        "`{}` (line {}), which is not evaluated",
                        first_line(cmd.loc.text()),
                        cmd.loc.pos.line
                    ))]);
                }
            }
        }
        Ok(out)
    }

    /// `Where-Object Name -eq 'x'`: property, operator, value.
    fn simple_filter(&mut self, cmd: &Command) -> R<Option<(String, String, V)>> {
        let mut prop = None;
        let mut op = None;
        let mut i = 0;
        while i < cmd.elems.len() {
            match &cmd.elems[i] {
                Elem::Arg(x) if prop.is_none() => {
                    if let ExprKind::Word(w) | ExprKind::Str(w) = &x.kind {
                        prop = Some(w.clone());
                    }
                }
                Elem::Param { name, value, .. } => {
                    let n = lower(name);
                    if parse_dash_op(&n) {
                        let v = match value {
                            Some(v) => Some(self.eval(v)?),
                            None => match cmd.elems.get(i + 1) {
                                Some(Elem::Arg(x)) => {
                                    i += 1;
                                    Some(self.eval(x)?)
                                }
                                _ => None,
                            },
                        };
                        if let Some(v) = v {
                            op = Some((n, v));
                        }
                    }
                }
                _ => {}
            }
            i += 1;
        }
        Ok(match (prop, op) {
            (Some(p), Some((o, v))) => Some((p, o, v)),
            _ => None,
        })
    }

    fn foreach_object(&mut self, cmd: &Command, input: Vec<V>) -> R<Vec<V>> {
        let Some((b, _)) = self.block_arg(cmd, &["Process"])? else {
            // `ForEach-Object Name`: a member of each item.
            let member = cmd.elems.iter().find_map(|e| match e {
                Elem::Arg(Expr {
                    kind: ExprKind::Word(w) | ExprKind::Str(w),
                    ..
                }) => Some(w.clone()),
                _ => None,
            });
            return Ok(match member {
                Some(m) => input
                    .into_iter()
                    .map(|v| self.member_of(v, &m, &cmd.loc))
                    .collect(),
                None => input,
            });
        };
        let mut out = Vec::new();
        for (n, item) in input.into_iter().enumerate() {
            if n >= MAX_ITERATIONS {
                break;
            }
            let o = self.with_item(item, |me| match me.output_of(&b) {
                Err(Stop::Continue | Stop::Return) => Ok(Vec::new()),
                other => other,
            })?;
            out.extend(o);
        }
        Ok(out)
    }

    fn select_object(&mut self, cmd: &Command, input: Vec<V>) -> R<Vec<V>> {
        let mut out = input;
        let mut i = 0;
        while i < cmd.elems.len() {
            if let Elem::Param { name, value, .. } = &cmd.elems[i] {
                let v = match value {
                    Some(v) => Some(self.eval(v)?),
                    None => match cmd.elems.get(i + 1) {
                        Some(Elem::Arg(x)) => {
                            i += 1;
                            Some(self.eval(x)?)
                        }
                        _ => None,
                    },
                };
                let n = match &v {
                    Some(V::Int(n)) => Some((*n).max(0) as usize),
                    Some(V::Str(s)) => s.parse().ok(),
                    _ => None,
                };
                match (lower(name).as_str(), n, v) {
                    ("first", Some(n), _) => {
                        if let [V::Conns { written, .. }] = out.as_slice() {
                            out = vec![V::Conn(Conn::Unresolved {
                                written: format!("{written} | {}", first_line(cmd.loc.text())),
                                line: cmd.loc.pos.line,
                                kind: None,
                            })];
                        }
                        out.truncate(n);
                    }
                    ("last", Some(n), _) => {
                        let skip = out.len().saturating_sub(n);
                        out.drain(..skip);
                    }
                    ("expandproperty", _, Some(v)) => {
                        if let Some(p) = text_of(&v) {
                            out = out
                                .into_iter()
                                .flat_map(|x| items(self.member_of(x, &p, &cmd.loc)))
                                .collect();
                        }
                    }
                    ("unique", _, _) => {}
                    _ => {}
                }
            }
            i += 1;
        }
        Ok(out)
    }

    /// Calls a function; `cmd` is `None` when a function the script never calls is read once
    /// (its parameters without default are then unknown).
    pub fn call(
        &mut self,
        f: &Rc<Function>,
        cmd: Option<&Command>,
        input: Option<Vec<V>>,
    ) -> R<Vec<V>> {
        self.called.insert(lower(&f.name));
        let pos = cmd.map_or(f.pos, |c| c.loc.pos);
        if self.depth >= MAX_DEPTH {
            return Err(Stop::Fatal(self.locate(
                pos,
                format!(
                    "function calls nested more than {MAX_DEPTH} deep (does `{}` call itself?)",
                    f.name
                ),
            )));
        }
        let mut bound: Vec<Option<V>> = vec![None; f.params.len()];
        let mut positional = Vec::new();
        let ctx = self.context(None);
        if let Some(cmd) = cmd {
            let find = |name: &str| -> Option<usize> {
                let n = lower(name);
                if let Some(i) = f.params.iter().position(|p| lower(&p.name) == n) {
                    return Some(i);
                }
                let hits: Vec<usize> = f
                    .params
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| lower(&p.name).starts_with(&n))
                    .map(|(i, _)| i)
                    .collect();
                (hits.len() == 1).then(|| hits[0])
            };
            let mut i = 0;
            while i < cmd.elems.len() {
                match &cmd.elems[i] {
                    Elem::Param { name, value, .. } => match find(name) {
                        Some(k) => {
                            let v = match value {
                                Some(x) => Some(self.eval(x)?),
                                None if f.params[k].is_switch() => Some(V::Bool(true)),
                                None => match cmd.elems.get(i + 1) {
                                    Some(Elem::Arg(x)) => {
                                        i += 1;
                                        Some(self.eval(x)?)
                                    }
                                    _ => None,
                                },
                            };
                            bound[k] = v;
                        }
                        None if COMMON_PARAMS.iter().any(|c| c.eq_ignore_ascii_case(name)) => {}
                        None => {
                            self.unmapped(
                                &ctx,
                                format!("unknown parameter `-{name}` of function `{}`", f.name),
                            );
                        }
                    },
                    Elem::Arg(x) => positional.push(self.eval(x)?),
                    Elem::Splat(n, _) => match self.get(n) {
                        V::Hash(entries) => {
                            for (k, v) in entries {
                                match find(&k) {
                                    Some(p) => bound[p] = Some(v),
                                    None => self.unmapped(
                                        &ctx,
                                        format!("unknown parameter `{k}` of function `{}` (splatted from `@{n}`)", f.name),
                                    ),
                                }
                            }
                        }
                        V::Array(a) => positional.extend(a),
                        other => positional.push(other),
                    },
                }
                i += 1;
            }
        }
        let mut positional = positional.into_iter();
        for (k, p) in f.params.iter().enumerate() {
            if bound[k].is_none() && !p.is_switch() {
                bound[k] = positional.next();
            }
        }
        let rest: Vec<V> = positional.collect();
        self.scopes.push(HashMap::new());
        self.depth += 1;
        let r = (|| -> R<()> {
            for (k, p) in f.params.iter().enumerate() {
                let v = match bound[k].take() {
                    Some(v) => v,
                    None => match &p.default {
                        Some(d) => self.eval(d)?,
                        None if p.is_switch() => V::Bool(false),
                        None if cmd.is_none() => V::Unknown(Rc::new(Unknown {
                            var: Some(p.name.clone()),
                            what: format!(
                                "a parameter of function `{}`, which the script never calls",
                                f.name
                            ),
                            input: false,
                            unassigned: false,
                        })),
                        None => V::Null,
                    },
                };
                let v = match &p.ty {
                    Some(t) => self.cast(t, v),
                    None => v,
                };
                self.set(&p.name, v);
            }
            self.set("args", V::Array(rest));
            if let Some(input) = input {
                self.set("input", V::Array(input));
            }
            Ok(())
        })();
        let r = r.and_then(|()| {
            self.outputs.push(Vec::new());
            let r = self.exec_block(&f.body);
            let out = self.outputs.pop().unwrap_or_default();
            match r {
                Ok(()) | Err(Stop::Return | Stop::Break | Stop::Continue) => Ok(out),
                Err(e) => Err(e),
            }
        });
        self.depth -= 1;
        self.scopes.pop();
        r
    }
}

/// Common parameters every command and advanced function accepts.
pub(super) const COMMON_PARAMS: &[&str] = &[
    "Verbose",
    "Debug",
    "ErrorAction",
    "WarningAction",
    "InformationAction",
    "ErrorVariable",
    "WarningVariable",
    "InformationVariable",
    "OutBuffer",
    "PipelineVariable",
    "WhatIf",
    "Confirm",
];

/// The case sensitivity (`c` prefix) and base name of a comparison operator.
fn split_case(op: &str) -> (bool, &str) {
    const BASES: &[&str] = &[
        "eq",
        "ne",
        "gt",
        "ge",
        "lt",
        "le",
        "like",
        "notlike",
        "match",
        "notmatch",
        "contains",
        "notcontains",
        "in",
        "notin",
        "replace",
        "split",
    ];
    if BASES.contains(&op) {
        return (false, op);
    }
    if let Some(r) = op.strip_prefix('c')
        && BASES.contains(&r)
    {
        return (true, r);
    }
    if let Some(r) = op.strip_prefix('i')
        && BASES.contains(&r)
    {
        return (false, r);
    }
    (false, op)
}

/// Whether a lower-case parameter name is a comparison operator (`Where-Object Name -eq x`).
fn parse_dash_op(n: &str) -> bool {
    let base = n
        .strip_prefix('c')
        .or_else(|| n.strip_prefix('i'))
        .filter(|b| b.len() >= 2)
        .unwrap_or(n);
    matches!(
        base,
        "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "like" | "notlike" | "match" | "notmatch"
    )
}

pub(super) fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("").trim_end();
    if lines.next().is_some() {
        format!("{first} ...")
    } else {
        first.to_string()
    }
}

/// Whether a command name builds or changes rules.
fn is_rule_command(name: &str) -> bool {
    let n = lower(name);
    n.starts_with("new-adsync") || n.starts_with("add-adsync") || n.starts_with("remove-adsync")
}

/// The rule commands anywhere in a block (function bodies, branches, expressions), with
/// their positions, in script order.
pub(super) fn block_rule_commands(b: &Block) -> Vec<(String, Pos)> {
    let mut out = Vec::new();
    b.visit_commands(&mut |c: &Command| {
        if is_rule_command(&c.name) {
            out.push((c.name.clone(), c.loc.pos));
        }
    });
    out
}

fn rule_commands(b: &Block) -> Vec<(String, Pos)> {
    block_rule_commands(b)
}

impl Interp<'_> {
    // --- expressions --------------------------------------------------------------------

    fn not_evaluated(&self, loc: &parse::Loc) -> V {
        V::unknown(format!(
            "`{}` (line {}), which is not evaluated",
            first_line(loc.text()),
            loc.pos.line
        ))
    }

    pub fn eval(&mut self, e: &Expr) -> R<V> {
        self.enter(e.loc.pos)?;
        let r = self.eval_inner(e);
        self.nesting -= 1;
        r
    }

    fn eval_inner(&mut self, e: &Expr) -> R<V> {
        Ok(match &e.kind {
            ExprKind::Str(s) => V::Str(s.clone()),
            ExprKind::Interp(parts) => {
                let v = self.interpolate(parts, e)?;
                self.built(v, &e.loc)
            }
            ExprKind::Num(n) => V::Int(*n),
            ExprKind::Word(w) => V::Str(w.clone()),
            ExprKind::Var(n) => self.get(n),
            ExprKind::List(xs) => {
                let mut out = Vec::with_capacity(xs.len());
                for x in xs {
                    out.push(self.eval(x)?);
                }
                V::Array(out)
            }
            ExprKind::ArraySub(b) => V::Array(self.output_of(b)?),
            ExprKind::Sub(b) => {
                if let [s] = b.stmts.as_slice()
                    && let StmtKind::Pipeline {
                        input: Some(x),
                        commands,
                    } = &s.kind
                    && commands.is_empty()
                {
                    return self.eval(x);
                }
                collapse(self.output_of(b)?)
            }
            ExprKind::Hash(entries) => {
                let mut out: Vec<(String, V)> = Vec::new();
                for (k, v) in entries {
                    let key = match &k.kind {
                        ExprKind::Word(w) | ExprKind::Str(w) => w.clone(),
                        _ => {
                            let kv = self.eval(k)?;
                            text_of(&kv).unwrap_or_else(|| k.loc.text().to_string())
                        }
                    };
                    let v = self.value_of(v)?;
                    match out.iter_mut().find(|(x, _)| x.eq_ignore_ascii_case(&key)) {
                        Some(e) => e.1 = v,
                        None => out.push((key, v)),
                    }
                }
                V::Hash(out)
            }
            ExprKind::ScriptBlock(b) => V::Block(b.clone()),
            ExprKind::Type(t) => V::Type(t.clone()),
            ExprKind::Cast(t, x) => {
                let v = self.eval(x)?;
                self.cast(t, v)
            }
            ExprKind::Member(x, m) => {
                let v = self.eval(x)?;
                self.member_of(v, m, &e.loc)
            }
            ExprKind::Static(t, m) => {
                let t = lower(
                    t.trim_start_matches("System.")
                        .trim_start_matches("system."),
                );
                if t == "guid" && m.eq_ignore_ascii_case("Empty") {
                    V::Str("00000000-0000-0000-0000-000000000000".into())
                } else {
                    self.not_evaluated(&e.loc)
                }
            }
            ExprKind::Method(x, m, args) => self.method(x, m, args, e)?,
            ExprKind::Index(x, i) => self.index(x, i, e)?,
            ExprKind::Unary(op, x) => {
                let v = self.eval(x)?;
                self.unary(op, v, &e.loc)
            }
            ExprKind::Binary(op, l, r) if op == "and" || op == "or" => {
                let a = self.eval(l)?;
                match (op.as_str(), truthy(&a)) {
                    ("and", Some(false)) => V::Bool(false),
                    ("or", Some(true)) => V::Bool(true),
                    (_, ta) => {
                        let b = self.eval(r)?;
                        match (ta, truthy(&b)) {
                            (Some(_), Some(tb)) => V::Bool(tb),
                            (_, Some(false)) if op == "and" => V::Bool(false),
                            (_, Some(true)) if op == "or" => V::Bool(true),
                            _ => match (a, b) {
                                (u @ V::Unknown(_), _) | (_, u @ V::Unknown(_)) => u,
                                _ => self.not_evaluated(&e.loc),
                            },
                        }
                    }
                }
            }
            ExprKind::Binary(op, l, r) => {
                let a = self.eval(l)?;
                let b = self.eval(r)?;
                let v = self.binary(op, a, b, &e.loc);
                self.built(v, &e.loc)
            }
            ExprKind::Opaque => self.not_evaluated(&e.loc),
        })
    }

    fn interpolate(&mut self, parts: &[Part], e: &Expr) -> R<V> {
        let mut out = String::new();
        for p in parts {
            let v = match p {
                Part::Lit(s) => {
                    out.push_str(s);
                    continue;
                }
                Part::Var(n) => self.get(n),
                Part::Sub(src) => {
                    if self.depth >= MAX_DEPTH {
                        return Ok(self.not_evaluated(&e.loc));
                    }
                    let Ok(toks) = lex::lex(src) else {
                        return Ok(self.not_evaluated(&e.loc));
                    };
                    let Ok(block) = parse::parse(src, &toks) else {
                        return Ok(self.not_evaluated(&e.loc));
                    };
                    self.depth += 1;
                    let r = self.output_of(&block);
                    self.depth -= 1;
                    collapse(r?)
                }
            };
            match (text_of(&v), v) {
                (Some(t), _) => out.push_str(&t),
                (None, u @ V::Unknown(_)) => return Ok(u),
                (None, _) => return Ok(self.not_evaluated(&e.loc)),
            }
            if out.len() > MAX_STRING {
                return Ok(self.not_evaluated(&e.loc));
            }
        }
        Ok(V::Str(out))
    }

    pub fn cast(&mut self, t: &str, v: V) -> V {
        let t = lower(t.trim());
        let t = t.strip_prefix("system.").unwrap_or(&t);
        if let V::Unknown(_) = v {
            return v;
        }
        match t {
            "int" | "int32" | "int64" | "long" | "int16" | "uint32" | "uint64" | "byte" => match &v
            {
                V::Int(_) => v,
                V::Bool(b) => V::Int(*b as i64),
                V::Null => V::Int(0),
                V::Str(s) => match s.trim().parse::<i64>() {
                    Ok(n) => V::Int(n),
                    Err(_) => V::unknown(format!("`{s}` converted to [{t}], which fails")),
                },
                _ => V::unknown(format!("{} converted to [{t}]", v.kind())),
            },
            "string" => match text_of(&v) {
                Some(s) => V::Str(s),
                None => v,
            },
            // Text (a `--var` value) reads as written: `false` and `0` are false.
            "bool" | "boolean" | "switch" => match &v {
                V::Str(s) if matches!(lower(s.trim()).as_str(), "false" | "$false" | "0") => {
                    V::Bool(false)
                }
                _ => match truthy(&v) {
                    Some(b) => V::Bool(b),
                    None => v,
                },
            },
            "void" => V::Null,
            "array"
            | "object[]"
            | "string[]"
            | "int[]"
            | "collections.arraylist"
            | "collections.generic.list[string]" => {
                let elem = t.strip_suffix("[]").filter(|e| *e != "object");
                let xs = items(v);
                V::Array(match elem {
                    Some(e) => xs.into_iter().map(|x| self.cast(e, x)).collect(),
                    None => xs,
                })
            }
            _ => v,
        }
    }

    pub fn member_of(&mut self, v: V, m: &str, loc: &parse::Loc) -> V {
        let ml = lower(m);
        match v {
            V::Unknown(_) | V::Null => v,
            V::Hash(entries) => {
                if let Some((_, x)) = entries.iter().find(|(k, _)| k.eq_ignore_ascii_case(m)) {
                    return x.clone();
                }
                match ml.as_str() {
                    "count" => V::Int(entries.len() as i64),
                    "keys" => V::Array(entries.into_iter().map(|(k, _)| V::Str(k)).collect()),
                    "values" => V::Array(entries.into_iter().map(|(_, v)| v).collect()),
                    _ => V::Null,
                }
            }
            V::Array(a) => match ml.as_str() {
                "count" | "length" => V::Int(a.len() as i64),
                _ => V::Array(a.into_iter().map(|x| self.member_of(x, m, loc)).collect()),
            },
            V::Str(s) => match ml.as_str() {
                "length" => V::Int(s.chars().count() as i64),
                "guid" => V::Str(s),
                _ => self.not_evaluated(loc),
            },
            V::Conn(c) => match (ml.as_str(), &c) {
                ("identifier" | "guid" | "id", _) => V::Conn(c),
                ("name", Conn::Name(n)) => V::Str(n.clone()),
                _ => self.not_evaluated(loc),
            },
            V::Conns { written, line } => match ml.as_str() {
                "identifier" | "guid" => V::Conns { written, line },
                _ => self.not_evaluated(loc),
            },
            V::Rule(i) => match ml.as_str() {
                "identifier" => V::Str(self.rules.pending[i].id.clone()),
                "name" => match &self.rules.pending[i].name {
                    Some(n) => V::Str(n.clone()),
                    None => V::Null,
                },
                _ => self.not_evaluated(loc),
            },
            V::ServerRule(id) => match (ml.as_str(), id) {
                ("identifier", Some(id)) => V::Str(id),
                _ => self.not_evaluated(loc),
            },
            _ => self.not_evaluated(loc),
        }
    }

    fn method(&mut self, x: &Expr, m: &str, args: &[Expr], e: &Expr) -> R<V> {
        let ml = lower(m);
        let mut argv = Vec::with_capacity(args.len());
        for a in args {
            argv.push(self.eval(a)?);
        }
        // `$list.Add(x)` and `$hash.Add(k, v)` change the variable.
        if ml == "add"
            && let ExprKind::Var(name) = &x.kind
        {
            let current = self.get(name);
            match (current, argv.as_slice()) {
                (V::Array(mut a), [v]) => {
                    a.push(v.clone());
                    self.set(name, V::Array(a));
                    return Ok(V::Null);
                }
                (V::Hash(mut h), [k, v]) => {
                    if let Some(k) = text_of(k) {
                        h.push((k, v.clone()));
                        self.set(name, V::Hash(h));
                        return Ok(V::Null);
                    }
                }
                _ => {}
            }
        }
        let target = self.eval(x)?;
        if let V::Type(t) = &target {
            let tl = lower(t);
            let short = tl.rsplit('.').next().unwrap_or(&tl);
            return Ok(match (short, ml.as_str()) {
                ("guid", "newguid") => V::Str(String::new()),
                ("guid", "parse") => argv.into_iter().next().unwrap_or(V::Null),
                ("scopecondition" | "joincondition", "new") => {
                    let texts: Vec<String> =
                        args.iter().map(|a| a.loc.text().to_string()).collect();
                    let positions: Vec<Pos> = args.iter().map(|a| a.loc.pos).collect();
                    self.condition_object(
                        short == "joincondition",
                        argv,
                        &texts,
                        &positions,
                        e.loc.pos,
                    )?
                }
                _ => self.not_evaluated(&e.loc),
            });
        }
        let text = |i: usize| argv.get(i).and_then(text_of);
        Ok(match (&target, ml.as_str()) {
            (V::Unknown(_), _) => target,
            (V::Conn(_), "tostring") => target,
            (V::Str(s), _) => match ml.as_str() {
                "tostring" | "trimend" | "trimstart" | "trim" | "tolower" | "toupper"
                | "tolowerinvariant" | "toupperinvariant"
                    if argv.is_empty() =>
                {
                    V::Str(match ml.as_str() {
                        "trim" => s.trim().to_string(),
                        "trimstart" => s.trim_start().to_string(),
                        "trimend" => s.trim_end().to_string(),
                        "tolower" | "tolowerinvariant" => s.to_lowercase(),
                        "toupper" | "toupperinvariant" => s.to_uppercase(),
                        _ => s.clone(),
                    })
                }
                "replace" => match (text(0), text(1)) {
                    (Some(a), Some(b)) if !a.is_empty() => V::Str(s.replace(&a, &b)),
                    _ => self.not_evaluated(&e.loc),
                },
                "contains" => match text(0) {
                    Some(a) => V::Bool(s.contains(&a)),
                    None => self.not_evaluated(&e.loc),
                },
                "startswith" => match text(0) {
                    Some(a) => V::Bool(s.starts_with(&a)),
                    None => self.not_evaluated(&e.loc),
                },
                "endswith" => match text(0) {
                    Some(a) => V::Bool(s.ends_with(&a)),
                    None => self.not_evaluated(&e.loc),
                },
                "split" => match text(0) {
                    Some(a) if !a.is_empty() => V::Array(
                        s.split(|c| a.contains(c))
                            .map(|p| V::Str(p.to_string()))
                            .collect(),
                    ),
                    _ => self.not_evaluated(&e.loc),
                },
                "substring" => {
                    let chars: Vec<char> = s.chars().collect();
                    let n = |v: Option<&V>| match v {
                        Some(V::Int(n)) if *n >= 0 => Some(*n as usize),
                        _ => None,
                    };
                    match (n(argv.first()), argv.get(1)) {
                        (Some(a), None) if a <= chars.len() => V::Str(chars[a..].iter().collect()),
                        (Some(a), Some(b)) => match n(Some(b)) {
                            Some(b) if a + b <= chars.len() => {
                                V::Str(chars[a..a + b].iter().collect())
                            }
                            _ => self.not_evaluated(&e.loc),
                        },
                        _ => self.not_evaluated(&e.loc),
                    }
                }
                _ => self.not_evaluated(&e.loc),
            },
            (V::Int(n), "tostring") => V::Str(n.to_string()),
            (V::Bool(_), "tostring") => V::Str(text_of(&target).unwrap_or_default()),
            (V::Hash(h), "containskey") => match text(0) {
                Some(k) => V::Bool(h.iter().any(|(x, _)| x.eq_ignore_ascii_case(&k))),
                None => self.not_evaluated(&e.loc),
            },
            _ => self.not_evaluated(&e.loc),
        })
    }

    fn index(&mut self, x: &Expr, i: &Expr, e: &Expr) -> R<V> {
        let base = self.eval(x)?;
        let idx = self.eval(i)?;
        let name = match &x.kind {
            ExprKind::Var(n) => format!("${n}"),
            _ => first_line(x.loc.text()),
        };
        let objects = |v: &V| matches!(v, V::Rule(_) | V::Scope(_) | V::Join(_));
        Ok(match (base, idx) {
            (u @ V::Unknown(_), _) | (_, u @ V::Unknown(_)) => u,
            (V::Conns { .. }, _) => V::Conn(Conn::Unresolved {
                written: first_line(e.loc.text()),
                line: e.loc.pos.line,
                kind: None,
            }),
            (V::Array(a), V::Int(n)) => {
                let len = a.len() as i64;
                let k = if n < 0 { n + len } else { n };
                if (0..len).contains(&k) {
                    a[k as usize].clone()
                } else if a.iter().any(objects) {
                    let holds = if a.len() == 1 {
                        "one object".to_string()
                    } else {
                        format!("{} objects", a.len())
                    };
                    return Err(Stop::Fatal(self.locate(
                        e.loc.pos,
                        format!("index `[{n}]` is out of range: `{name}` holds {holds}"),
                    )));
                } else {
                    V::Null
                }
            }
            (V::Hash(h), k) => match text_of(&k) {
                Some(k) => h
                    .into_iter()
                    .find(|(x, _)| x.eq_ignore_ascii_case(&k))
                    .map_or(V::Null, |(_, v)| v),
                None => self.not_evaluated(&e.loc),
            },
            (V::Str(s), V::Int(n)) => {
                let chars: Vec<char> = s.chars().collect();
                let len = chars.len() as i64;
                let k = if n < 0 { n + len } else { n };
                if (0..len).contains(&k) {
                    V::Str(chars[k as usize].to_string())
                } else {
                    V::Null
                }
            }
            (V::Null, _) => V::Null,
            (v, V::Int(0)) => v,
            (v, V::Int(n)) if objects(&v) => {
                return Err(Stop::Fatal(self.locate(
                    e.loc.pos,
                    format!("index `[{n}]` is out of range: `{name}` holds one object"),
                )));
            }
            (V::Conn(_), _) | (V::Rule(_), _) | (V::Scope(_), _) | (V::Join(_), _) => V::Null,
            _ => self.not_evaluated(&e.loc),
        })
    }

    fn unary(&mut self, op: &str, v: V, loc: &parse::Loc) -> V {
        if let V::Unknown(_) = v {
            return v;
        }
        match op {
            "not" => match truthy(&v) {
                Some(t) => V::Bool(!t),
                None => self.not_evaluated(loc),
            },
            "neg" => match v {
                V::Int(n) => n
                    .checked_neg()
                    .map_or_else(|| self.not_evaluated(loc), V::Int),
                _ => self.not_evaluated(loc),
            },
            "plus" => v,
            "bnot" => match v {
                V::Int(n) => V::Int(!n),
                _ => self.not_evaluated(loc),
            },
            "join" => {
                let texts: Option<Vec<String>> = items(v).iter().map(text_of).collect();
                match texts {
                    Some(t) => V::Str(t.concat()),
                    None => self.not_evaluated(loc),
                }
            }
            "split" => match text_of(&v) {
                Some(s) => V::Array(
                    s.split_whitespace()
                        .map(|p| V::Str(p.to_string()))
                        .collect(),
                ),
                None => self.not_evaluated(loc),
            },
            _ => self.not_evaluated(loc),
        }
    }

    /// A number from a value, as PowerShell converts for arithmetic and comparisons.
    fn number(v: &V) -> Option<i64> {
        match v {
            V::Int(n) => Some(*n),
            V::Bool(b) => Some(*b as i64),
            V::Null => Some(0),
            V::Str(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    pub fn binary(&mut self, op: &str, a: V, b: V, loc: &parse::Loc) -> V {
        if let V::Unknown(_) = a {
            return a;
        }
        if let V::Unknown(_) = b {
            return b;
        }
        let unknown = |me: &Self| me.not_evaluated(loc);
        match op {
            "+" => match (a, b) {
                (V::Null, b) => b,
                (V::Int(x), b) => match Self::number(&b).and_then(|y| x.checked_add(y)) {
                    Some(n) => V::Int(n),
                    None => unknown(self),
                },
                (V::Str(x), b) => match text_of(&b) {
                    Some(y) if x.len() + y.len() <= MAX_STRING => V::Str(x + &y),
                    _ => unknown(self),
                },
                (V::Array(mut x), b) => {
                    x.extend(items(b));
                    if x.len() > MAX_ARRAY {
                        return unknown(self);
                    }
                    V::Array(x)
                }
                (V::Hash(mut x), V::Hash(y)) => {
                    x.extend(y);
                    V::Hash(x)
                }
                (V::Conn(Conn::Id(g)), b) => match text_of(&b) {
                    Some(y) => V::Str(g.trim_matches(['{', '}']).to_string() + &y),
                    None => unknown(self),
                },
                _ => unknown(self),
            },
            "-" | "*" | "/" | "%" => {
                if let (V::Str(s), "*") = (&a, op) {
                    return match Self::number(&b) {
                        Some(n) if n >= 0 && s.len().saturating_mul(n as usize) <= MAX_STRING => {
                            V::Str(s.repeat(n as usize))
                        }
                        _ => unknown(self),
                    };
                }
                match (Self::number(&a), Self::number(&b)) {
                    (Some(x), Some(y)) => {
                        let r = match op {
                            "-" => x.checked_sub(y),
                            "*" => x.checked_mul(y),
                            "/" if y != 0 && x % y == 0 => Some(x / y),
                            "%" if y != 0 => Some(x % y),
                            _ => None,
                        };
                        r.map_or_else(|| unknown(self), V::Int)
                    }
                    _ => unknown(self),
                }
            }
            "f" => {
                let args = items(b);
                match text_of(&a).and_then(|f| format_op(&f, &args)) {
                    Some(s) => V::Str(s),
                    None => unknown(self),
                }
            }
            ".." => match (Self::number(&a), Self::number(&b)) {
                (Some(x), Some(y)) if (y - x).unsigned_abs() < MAX_ITERATIONS as u64 => {
                    if x <= y {
                        V::Array((x..=y).map(V::Int).collect())
                    } else {
                        V::Array((y..=x).rev().map(V::Int).collect())
                    }
                }
                _ => unknown(self),
            },
            "join" => {
                let sep = text_of(&b);
                let parts: Option<Vec<String>> = items(a).iter().map(text_of).collect();
                match (sep, parts) {
                    (Some(s), Some(p)) => V::Str(p.join(&s)),
                    _ => unknown(self),
                }
            }
            "xor" => match (truthy(&a), truthy(&b)) {
                (Some(x), Some(y)) => V::Bool(x != y),
                _ => unknown(self),
            },
            "and" | "or" => match (truthy(&a), truthy(&b)) {
                (Some(x), Some(y)) => V::Bool(if op == "and" { x && y } else { x || y }),
                _ => unknown(self),
            },
            "band" | "bor" | "bxor" => match (Self::number(&a), Self::number(&b)) {
                (Some(x), Some(y)) => V::Int(match op {
                    "band" => x & y,
                    "bor" => x | y,
                    _ => x ^ y,
                }),
                _ => unknown(self),
            },
            _ => self.comparison(op, a, b, loc),
        }
    }

    /// The comparison operators and `-split`, `-replace`, with PowerShell's `c`/`i` prefixes.
    fn comparison(&mut self, op: &str, a: V, b: V, loc: &parse::Loc) -> V {
        let (case, base) = split_case(op);
        let unknown = |me: &Self| me.not_evaluated(loc);
        match base {
            "split" => match (text_of(&a), text_of(&b)) {
                (Some(s), Some(sep)) if !sep.is_empty() && !has_regex_chars(&sep) => {
                    let parts = if case {
                        s.split(sep.as_str())
                            .map(str::to_string)
                            .collect::<Vec<_>>()
                    } else {
                        if !s.is_ascii() || !sep.is_ascii() {
                            return unknown(self);
                        }
                        let lowered = s.to_ascii_lowercase();
                        let ls = sep.to_ascii_lowercase();
                        let mut out = Vec::new();
                        let mut i = 0;
                        while let Some(k) = lowered[i..].find(&ls) {
                            out.push(s[i..i + k].to_string());
                            i += k + ls.len();
                        }
                        out.push(s[i..].to_string());
                        out
                    };
                    V::Array(parts.into_iter().map(V::Str).collect())
                }
                _ => unknown(self),
            },
            "replace" => {
                let args = items(b);
                let from = args.first().and_then(text_of);
                let to = match args.get(1) {
                    Some(v) => text_of(v),
                    None => Some(String::new()),
                };
                match (text_of(&a), from, to) {
                    (Some(s), Some(f), Some(t)) if !has_regex_chars(&f) && !t.contains('$') => {
                        match replace_literal(&s, &f, &t, case) {
                            Some(r) => V::Str(r),
                            None => unknown(self),
                        }
                    }
                    _ => unknown(self),
                }
            }
            "contains" | "notcontains" => {
                let found = items(a)
                    .iter()
                    .map(|x| self.equal(x, &b, case))
                    .collect::<Option<Vec<bool>>>()
                    .map(|v| v.into_iter().any(|x| x));
                match found {
                    Some(f) => V::Bool(f == (base == "contains")),
                    None => unknown(self),
                }
            }
            "in" | "notin" => self.comparison(
                if base == "in" {
                    "contains"
                } else {
                    "notcontains"
                },
                b,
                a,
                loc,
            ),
            "eq" | "ne" | "gt" | "ge" | "lt" | "le" | "like" | "notlike" | "match" | "notmatch" => {
                // An array on the left filters it.
                if let V::Array(xs) = a {
                    let mut out = Vec::new();
                    for x in xs {
                        match truthy(&self.comparison(op, x.clone(), b.clone(), loc)) {
                            Some(true) => out.push(x),
                            Some(false) => {}
                            None => return unknown(self),
                        }
                    }
                    return V::Array(out);
                }
                let r = match base {
                    "eq" => self.equal(&a, &b, case),
                    "ne" => self.equal(&a, &b, case).map(|e| !e),
                    "like" | "notlike" => match (text_of(&a), text_of(&b)) {
                        (Some(x), Some(p)) => Some(like(&x, &p, case) == (base == "like")),
                        _ => None,
                    },
                    "match" | "notmatch" => match (text_of(&a), text_of(&b)) {
                        (Some(x), Some(p)) => {
                            regex_match(&x, &p, case).map(|m| m == (base == "match"))
                        }
                        _ => None,
                    },
                    _ => {
                        let ord = match (&a, Self::number(&a), Self::number(&b)) {
                            (V::Int(_), Some(x), Some(y)) => Some(x.cmp(&y)),
                            _ => match (text_of(&a), text_of(&b)) {
                                (Some(x), Some(y)) if case => Some(x.cmp(&y)),
                                (Some(x), Some(y)) => Some(x.to_lowercase().cmp(&y.to_lowercase())),
                                _ => None,
                            },
                        };
                        ord.map(|o| match base {
                            "gt" => o.is_gt(),
                            "ge" => o.is_ge(),
                            "lt" => o.is_lt(),
                            _ => o.is_le(),
                        })
                    }
                };
                r.map_or_else(|| unknown(self), V::Bool)
            }
            _ => unknown(self),
        }
    }

    /// `-eq` of two scalars: the right side is converted to the left side's type.
    fn equal(&self, a: &V, b: &V, case: bool) -> Option<bool> {
        match (a, b) {
            (V::Unknown(_), _) | (_, V::Unknown(_)) => None,
            (V::Null, V::Null) => Some(true),
            (V::Null, _) | (_, V::Null) => Some(false),
            (V::Int(x), _) => Self::number(b).map(|y| *x == y).or(Some(false)),
            (V::Bool(x), _) => truthy(b).map(|y| *x == y),
            (V::Rule(x), V::Rule(y)) => Some(x == y),
            _ => match (text_of(a), text_of(b)) {
                (Some(x), Some(y)) if case => Some(x == y),
                (Some(x), Some(y)) => Some(x.to_lowercase() == y.to_lowercase()),
                _ => None,
            },
        }
    }

    // --- functions never called -----------------------------------------------------------

    /// Functions the script defines and never calls are read once when they build rules
    /// (directly or through functions they call), outermost first, with a note.
    fn read_uncalled_functions(&mut self) -> R<()> {
        let uncalled: Vec<Rc<Function>> = self
            .defined
            .iter()
            .filter(|f| !self.called.contains(&lower(&f.name)))
            .cloned()
            .collect();
        // Which functions each one calls.
        let calls = |f: &Function| -> HashSet<String> {
            let mut out = HashSet::new();
            f.body.visit_commands(&mut |c: &Command| {
                out.insert(lower(&c.name));
            });
            out
        };
        let called_by_uncalled: HashSet<String> = uncalled
            .iter()
            .flat_map(|f| calls(f).into_iter().filter(move |n| *n != lower(&f.name)))
            .collect();
        let builds = |f: &Rc<Function>, me: &Self| -> bool {
            let mut seen = HashSet::new();
            let mut todo = vec![f.clone()];
            while let Some(g) = todo.pop() {
                if !seen.insert(lower(&g.name)) {
                    continue;
                }
                if !block_rule_commands(&g.body).is_empty() {
                    return true;
                }
                for n in calls(&g) {
                    if let Some(h) = me.functions.get(&n) {
                        todo.push(h.clone());
                    }
                }
            }
            false
        };
        let (roots, rest): (Vec<_>, Vec<_>) = uncalled
            .into_iter()
            .partition(|f| !called_by_uncalled.contains(&lower(&f.name)));
        for f in roots.into_iter().chain(rest) {
            if self.called.contains(&lower(&f.name)) || !builds(&f, self) {
                continue;
            }
            self.note(
                "script",
                format!(
                    "function `{}` (line {}) is never called by the script: its body is read once",
                    f.name, f.pos.line
                ),
            );
            self.uncertain += 1;
            let r = self.call(&f, None, None);
            self.uncertain -= 1;
            r?;
        }
        Ok(())
    }
}
