//! The engine's scenario suite: literate Markdown files under
//! `tests/conformance/scenarios/<area>/<name>.md`, each explaining one behaviour of the sync
//! engine and proving it with `test` blocks, run on every evaluation engine (the interpreter
//! and, where available, the JIT).
//!
//! Format of a scenario file:
//! - front matter between two `---` lines at the top: `title: ...` (required), `covers: ...`
//!   (the spec points it covers) and `known-failure: <reason>` (the engine does not do what the
//!   scenario documents yet: the scenario must fail, and is reported; when it starts passing
//!   the harness fails so the marker gets removed);
//! - prose, then fenced code blocks. Blocks with the info string `idf` are concatenated in
//!   order into one bundle (schema, rules and `test` blocks). Every other line of the file is
//!   blanked, so line numbers in diagnostics and test failures are the Markdown file's own;
//! - an optional block with the info string `state`: the canonical state
//!   (`idflow::engine::dump::state`) after the steps of the file's LAST test block. Run with
//!   `UPDATE_SCENARIOS=1` to rewrite it in place from the engine's actual state (for authoring;
//!   review the diff). Only scenarios whose tests pass and that are not known failures are
//!   rewritten.
//!
//! A scenario fails when the bundle has an error diagnostic, when a test fails, or when the
//! state differs. All failures across files are collected into one panic message.

use idflow::diag::render::{self, Style};
use idflow::engine::compile::Plan;
use idflow::engine::dump;
use idflow::eval::EngineKind;
use idflow::source::SourceMap;
use idflow::testrun;
use std::path::{Path, PathBuf};

/// The evaluation engines every scenario runs on.
const ENGINES: &[&str] = &["interp", "jit"];

fn kind(engine: &str) -> EngineKind {
    if engine == "jit" {
        EngineKind::preferred()
    } else {
        EngineKind::Interp
    }
}

/// How a state mismatch starts (update mode drops these failures after rewriting).
const STATE_DIFFERS: &str = "the state after test";

/// Front-matter keys a scenario may use (`README.md` files are not scenarios).
const KEYS: &[&str] = &["title", "covers", "known-failure"];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance/scenarios")
}

fn files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut dirs = vec![root()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "md")
                && p.file_name().is_some_and(|n| n != "README.md")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// A scenario file taken apart.
#[derive(Debug, Default)]
struct Scenario {
    /// Front-matter entries.
    meta: Vec<(String, String)>,
    /// The `idf` blocks, every other line blanked (same line numbers as the file).
    bundle: String,
    /// The `state` block: its text and the range of its content lines (0-based, end exclusive).
    state: Option<(String, std::ops::Range<usize>)>,
    /// Problems with the file's structure.
    problems: Vec<String>,
}

impl Scenario {
    fn known_failure(&self) -> Option<&str> {
        self.meta
            .iter()
            .find(|(k, _)| k == "known-failure")
            .map(|(_, v)| v.as_str())
    }
}

fn parse(text: &str) -> Scenario {
    let mut s = Scenario::default();
    let lines: Vec<&str> = text.lines().collect();
    let mut bundle = vec![""; lines.len()];
    let mut i = 0;
    if lines.first().is_some_and(|l| l.trim_end() == "---") {
        i = 1;
        loop {
            let Some(line) = lines.get(i) else {
                s.problems
                    .push("the front matter has no closing `---`".into());
                break;
            };
            i += 1;
            if line.trim_end() == "---" {
                break;
            }
            if line.trim().is_empty() {
                continue;
            }
            match line.split_once(':') {
                Some((k, v)) if KEYS.contains(&k.trim()) => {
                    s.meta.push((k.trim().to_string(), v.trim().to_string()));
                }
                _ => s.problems.push(format!(
                    "line {}: front matter `{line}`: expected one of {}",
                    i,
                    KEYS.join(", ")
                )),
            }
        }
    }
    // (info string, fence, first content line)
    let mut open: Option<(String, String, usize)> = None;
    let mut states = 0;
    while i < lines.len() {
        let line = lines[i];
        let trimmed = line.trim_start();
        match &open {
            None => {
                if trimmed.starts_with("```") {
                    let fence: String = trimmed.chars().take_while(|&c| c == '`').collect();
                    let info = trimmed[fence.len()..].trim().to_string();
                    open = Some((info, fence, i + 1));
                }
            }
            Some((info, fence, start)) => {
                if trimmed.trim_end() == fence.as_str() {
                    if info == "state" {
                        states += 1;
                        let body: String =
                            lines[*start..i].iter().map(|l| format!("{l}\n")).collect();
                        s.state = Some((body, *start..i));
                    }
                    open = None;
                } else if info == "idf" {
                    bundle[i] = line;
                }
            }
        }
        i += 1;
    }
    if !s.meta.iter().any(|(k, _)| k == "title") {
        s.problems
            .push("the front matter needs a `title:` line".into());
    }
    if open.is_some() {
        s.problems.push("a code block is not closed".into());
    }
    if states > 1 {
        s.problems.push("more than one `state` block".into());
    }
    s.bundle = bundle.join("\n");
    s.bundle.push('\n');
    s
}

/// What running a scenario gave.
#[derive(Debug, Default)]
struct Outcome {
    failures: Vec<String>,
    /// The actual state when the scenario has a `state` block.
    actual_state: Option<String>,
    tests: usize,
}

/// Checks and runs one scenario text on one engine.
fn run(name: &str, scenario: &Scenario, engine: &str) -> Outcome {
    let mut out = Outcome::default();
    let mut map = SourceMap::new();
    map.add(name, scenario.bundle.clone());
    let checked = idflow::frontend::check(&map);
    if checked.has_errors() {
        for d in checked.diagnostics.iter().filter(|d| d.is_error()) {
            out.failures.push(render::human(&map, d, Style::Plain));
        }
        return out;
    }
    let bundle = &checked.bundle;
    if bundle.tests.is_empty() {
        out.failures.push("the scenario has no `test` block".into());
        return out;
    }
    let outcomes = testrun::run_all(bundle, &map, kind(engine));
    out.tests = outcomes.len();
    for o in outcomes.iter().filter(|o| !o.passed()) {
        let mut msg = format!("test \"{}\" ({}) failed:", o.name, o.location);
        for f in &o.failures {
            msg.push_str("\n      ");
            msg.push_str(f);
        }
        out.failures.push(msg);
    }
    if let Some((expected, _)) = &scenario.state {
        let (file, last) = bundle.tests.last().expect("tests were checked to exist");
        let plan = Plan::with_engine(bundle, kind(engine));
        let (_, final_engine) = testrun::run_test(&plan, &map, *file, last);
        {
            let actual = dump::state(&final_engine.plan, &final_engine.state);
            {
                if &actual != expected {
                    out.failures.push(format!(
                        "{STATE_DIFFERS} \"{}\" differs (UPDATE_SCENARIOS=1 rewrites \
                         it)\n--- expected\n{expected}--- actual\n{actual}---",
                        last.name.value
                    ));
                }
                out.actual_state = Some(actual);
            }
        }
    }
    out
}

/// Replaces the content of the `state` block with `actual`.
fn rewrite_state(path: &Path, text: &str, lines: std::ops::Range<usize>, actual: &str) {
    let all: Vec<&str> = text.lines().collect();
    let mut new = String::new();
    for l in &all[..lines.start] {
        new.push_str(l);
        new.push('\n');
    }
    new.push_str(actual);
    for l in &all[lines.end..] {
        new.push_str(l);
        new.push('\n');
    }
    std::fs::write(path, new).unwrap();
}

/// The verdict on one scenario: None when it behaves as its front matter says, else why not.
fn verdict(name: &str, scenario: &Scenario, outcome: &Outcome) -> Option<String> {
    // A malformed file fails whatever its front matter says.
    if !scenario.problems.is_empty() {
        return Some(format!("{name}:\n  {}", scenario.problems.join("\n  ")));
    }
    match (scenario.known_failure(), outcome.failures.is_empty()) {
        (None, true) => None,
        (None, false) => Some(format!("{name}:\n  {}", outcome.failures.join("\n  "))),
        (Some(_), false) => None,
        (Some(why), true) => Some(format!(
            "{name}: marked `known-failure: {why}` but it now passes: remove the marker"
        )),
    }
}

#[test]
fn scenarios() {
    let update = std::env::var_os("UPDATE_SCENARIOS").is_some_and(|v| v == "1");
    let paths = files();
    assert!(!paths.is_empty(), "no scenario under {}", root().display());
    let base = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut failures = Vec::new();
    let mut known = Vec::new();
    let mut tests = 0;
    for path in &paths {
        let name = path.strip_prefix(base).unwrap().display().to_string();
        let text = std::fs::read_to_string(path).unwrap();
        let scenario = parse(&text);
        for engine in ENGINES {
            let mut outcome = run(&name, &scenario, engine);
            tests += outcome.tests;
            // Rewrite only where the state block is the one thing that differs: the state of a
            // known failure, or of a scenario whose tests fail, is not the correct one.
            if update
                && scenario.known_failure().is_none()
                && outcome
                    .failures
                    .iter()
                    .all(|f| f.starts_with(STATE_DIFFERS))
                && let (Some((expected, lines)), Some(actual)) =
                    (&scenario.state, &outcome.actual_state)
                && expected != actual
            {
                rewrite_state(path, &text, lines.clone(), actual);
                eprintln!("rewrote the state block of {name}");
                outcome.failures.retain(|f| !f.starts_with(STATE_DIFFERS));
            }
            if let Some(why) = scenario.known_failure()
                && !outcome.failures.is_empty()
            {
                known.push(format!(
                    "{name} [{engine}]: {why}\n  {}",
                    outcome.failures.join("\n  ")
                ));
            }
            if let Some(v) = verdict(&name, &scenario, &outcome) {
                failures.push(format!("[{engine}] {v}"));
            }
        }
    }
    if !known.is_empty() {
        eprintln!(
            "{} known failure(s) (engine bugs documented by scenarios):\n{}",
            known.len(),
            known.join("\n")
        );
    }
    eprintln!("{} scenario file(s), {tests} test(s)", paths.len());
    assert!(
        failures.is_empty(),
        "{} scenario failure(s):\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

/// A small scenario used by the guard tests; `EXPECTED` is replaced by the expectation.
const GUARD: &str = r#"---
title: guard
---
A person is projected from HR with its name.

```idf
metaverse { object person { employeeId string  displayName string } }
connector "hr" csv { object worker anchor id { id string  name string } }
inbound rule "In from HR" {
  connector "hr"  source worker  target person  link provision  precedence 10
  join { id = employeeId }
  flow employeeId  <- [id]
  flow displayName <- [name]
}
test "guard" {
  given "hr" worker "id=1" { id = "1"  name = "Ann" }
  sync
  expect metaverse person where employeeId = "1" { displayName = EXPECTED }
}
```
"#;

fn guard(expected: &str) -> (Scenario, Outcome) {
    let text = GUARD.replace("EXPECTED", expected);
    let s = parse(&text);
    let o = run("guard.md", &s, ENGINES[0]);
    (s, o)
}

#[test]
fn guard_a_correct_scenario_passes() {
    let (s, o) = guard("\"Ann\"");
    assert!(o.failures.is_empty(), "{:?}", o.failures);
    assert_eq!(o.tests, 1);
    assert!(verdict("guard.md", &s, &o).is_none());
}

#[test]
fn guard_a_wrong_expectation_is_reported() {
    let (s, o) = guard("\"Bob\"");
    let v = verdict("guard.md", &s, &o).expect("a wrong expectation must fail the scenario");
    assert!(v.contains("displayName"), "{v}");
    // Failures carry the Markdown file's own line numbers.
    assert!(v.contains("guard.md:"), "{v}");
}

#[test]
fn guard_a_check_error_is_reported() {
    let (s, o) = guard("[nope]");
    assert!(verdict("guard.md", &s, &o).is_some());
}

#[test]
fn guard_a_wrong_state_is_reported() {
    let text = format!(
        "{}\n```state\nmetaverse person [hr:id=2]\n```\n",
        GUARD.replace("EXPECTED", "\"Ann\"")
    );
    let s = parse(&text);
    let o = run("guard.md", &s, ENGINES[0]);
    let v = verdict("guard.md", &s, &o).expect("a wrong state must fail the scenario");
    assert!(v.contains("differs"), "{v}");
    let actual = o.actual_state.unwrap();
    assert!(actual.contains("metaverse person [hr:id=1]"), "{actual}");
    // ... and the right one passes.
    let text = format!(
        "{}\n```state\n{actual}```\n",
        GUARD.replace("EXPECTED", "\"Ann\"")
    );
    let s = parse(&text);
    let o = run("guard.md", &s, ENGINES[0]);
    assert!(verdict("guard.md", &s, &o).is_none(), "{:?}", o.failures);
}

#[test]
fn guard_a_known_failure_that_passes_is_reported() {
    let text = GUARD
        .replace("EXPECTED", "\"Ann\"")
        .replace("title: guard", "title: guard\nknown-failure: pretend");
    let s = parse(&text);
    let o = run("guard.md", &s, ENGINES[0]);
    let v = verdict("guard.md", &s, &o).expect("a passing known failure must be reported");
    assert!(v.contains("now passes"), "{v}");
    // A known failure that fails is accepted.
    let text = GUARD
        .replace("EXPECTED", "\"Bob\"")
        .replace("title: guard", "title: guard\nknown-failure: pretend");
    let s = parse(&text);
    let o = run("guard.md", &s, ENGINES[0]);
    assert!(verdict("guard.md", &s, &o).is_none());
}

#[test]
fn guard_unknown_front_matter_is_reported() {
    let text = GUARD
        .replace("EXPECTED", "\"Ann\"")
        .replace("title: guard", "title: guard\nknown_failure: typo");
    let s = parse(&text);
    let o = run("guard.md", &s, ENGINES[0]);
    assert!(verdict("guard.md", &s, &o).is_some());
}
