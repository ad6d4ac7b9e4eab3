//! The function conformance suite: `tests/conformance/functions/<area>/<Function>.toml`, one
//! file per stdlib function, run on every evaluation engine (today: the interpreter). Also runs
//! the examples of `stdlib/` and checks coverage: every stdlib function has a conformance file
//! and every runtime error code (E05xx) is exercised.
//!
//! Case format: `note`, `expr`, optional `input` (attribute values), `params`, `now`, `limits`
//! (`max_bytes`, `max_values`, `max_steps`, `max_total_bytes`), and exactly one of `want` (the JSON `idflow eval`
//! prints) or `want_error = { code, stage = "check"|"eval" (default eval), contains }`.

use idflow::eval::interp::Object;
use idflow::eval::{Ctx, EngineKind, Limits, Program, adhoc, json};
use idflow::stdlib::Stdlib;
use idflow::value::Value;
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    /// The stdlib function a file under `functions/` covers.
    #[serde(default)]
    function: Option<String>,
    /// What a file under `language/` covers (operators, mapping, limits, ...).
    #[serde(default)]
    topic: Option<String>,
    #[serde(rename = "case")]
    cases: Vec<Case>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    note: String,
    expr: String,
    #[serde(default)]
    input: Option<toml::Table>,
    #[serde(default)]
    params: Option<toml::Table>,
    #[serde(default)]
    now: Option<String>,
    #[serde(default)]
    limits: Option<CaseLimits>,
    #[serde(default)]
    want: Option<String>,
    #[serde(default)]
    want_error: Option<WantError>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseLimits {
    max_bytes: Option<usize>,
    max_values: Option<usize>,
    max_steps: Option<u64>,
    max_total_bytes: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WantError {
    code: String,
    #[serde(default)]
    stage: Option<String>,
    #[serde(default)]
    contains: Option<String>,
}

/// The evaluation engines every case runs on: the reference first, then the JIT where this
/// build and machine have one. Every engine must also agree with the reference exactly (value,
/// or error code, message and location).
fn engines() -> Vec<&'static str> {
    if idflow::eval::jit_available() {
        vec!["interp", "jit"]
    } else {
        vec!["interp"]
    }
}

fn files() -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/conformance");
    let mut out = Vec::new();
    let mut dirs = vec![root.join("functions"), root.join("language")];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "toml") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

fn to_values(t: Option<&toml::Table>) -> Result<Vec<(String, Value)>, String> {
    let mut out = Vec::new();
    for (k, v) in t.into_iter().flatten() {
        let j = serde_json::to_value(v).map_err(|e| e.to_string())?;
        out.push((
            k.trim_matches('%').to_string(),
            json::from_json(&j).map_err(|e| format!("{k}: {e}"))?,
        ));
    }
    Ok(out)
}

/// What one engine made of a case: the JSON value, or the error's stage, code, message and
/// location.
type Outcome = Result<serde_json::Value, (&'static str, String, String, std::ops::Range<usize>)>;

fn kind(engine: &str) -> EngineKind {
    match engine {
        "jit" => EngineKind::Jit,
        _ => EngineKind::Interp,
    }
}

/// Evaluates one case on one engine.
fn evaluate(engine: &str, c: &Case, codes: &mut BTreeSet<String>) -> Result<Outcome, String> {
    let attrs = to_values(c.input.as_ref())?;
    let params = to_values(c.params.as_ref())?;
    let mut ctx = Ctx::fixed();
    if let Some(now) = &c.now {
        ctx.now = now.parse().map_err(|e| format!("now: {e}"))?;
    }
    if let Some(l) = &c.limits {
        let d = Limits::default();
        ctx.limits = Limits {
            max_bytes: l.max_bytes.unwrap_or(d.max_bytes),
            max_values: l.max_values.unwrap_or(d.max_values),
            max_steps: l.max_steps.unwrap_or(d.max_steps),
            max_total_bytes: l.max_total_bytes.unwrap_or(d.max_total_bytes),
        };
    }
    ctx.params = params.clone();
    Ok(match adhoc::prepare("case", &c.expr, &attrs, &params) {
        Err((_, diags)) => {
            let errors: Vec<_> = diags.iter().filter(|d| d.is_error()).collect();
            let first = errors.first().ok_or("prepare failed without an error")?;
            codes.insert(first.code.to_string());
            Err((
                "check",
                first.code.to_string(),
                first.message.clone(),
                first.span.clone(),
            ))
        }
        Ok(p) => {
            let program = Program::try_new(kind(engine), &[&p.expr])?;
            let obj = Object {
                attrs: &p.values,
                imported: &p.values,
            };
            match program.eval(&mut ctx, 0, &p.expr, obj) {
                Ok(v) => Ok(json::to_json(&v)),
                Err(e) => {
                    codes.insert(e.code.to_string());
                    Err(("eval", e.code.to_string(), e.message, e.span))
                }
            }
        }
    })
}

/// Runs one case on one engine; checks the outcome against the case.
fn run_case(engine: &str, c: &Case, codes: &mut BTreeSet<String>) -> Result<Outcome, String> {
    let got = evaluate(engine, c, codes)?;
    let outcome = got
        .clone()
        .map_err(|(stage, code, msg, _)| (stage, code, msg));
    check(c, outcome)?;
    Ok(got)
}

fn check(
    c: &Case,
    outcome: Result<serde_json::Value, (&str, String, String)>,
) -> Result<(), String> {
    match (&c.want, &c.want_error, outcome) {
        (Some(want), None, Ok(got)) => {
            let want: serde_json::Value =
                serde_json::from_str(want).map_err(|e| format!("want is not JSON: {e}"))?;
            if want == got {
                Ok(())
            } else {
                Err(format!("want {want}, got {got}"))
            }
        }
        (Some(want), None, Err((stage, code, msg))) => {
            Err(format!("want {want}, got {stage} error {code}: {msg}"))
        }
        (None, Some(w), Ok(got)) => Err(format!("want error {}, got {got}", w.code)),
        (None, Some(w), Err((stage, code, msg))) => {
            let want_stage = w.stage.as_deref().unwrap_or("eval");
            if code != w.code || stage != want_stage {
                return Err(format!(
                    "want {want_stage} error {}, got {stage} error {code}: {msg}",
                    w.code
                ));
            }
            match &w.contains {
                Some(text) if !msg.to_lowercase().contains(&text.to_lowercase()) => {
                    Err(format!("error message `{msg}` does not contain `{text}`"))
                }
                _ => Ok(()),
            }
        }
        _ => Err("a case needs exactly one of want and want_error".into()),
    }
}

#[test]
fn function_conformance() {
    let mut failures = Vec::new();
    let mut cases = 0;
    let mut codes = BTreeSet::new();
    for path in files() {
        let text = std::fs::read_to_string(&path).unwrap();
        let file: File = match toml::from_str(&text) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{}: {e}", path.display()));
                continue;
            }
        };
        let stem = path.file_stem().unwrap().to_string_lossy();
        let title = match (&file.function, &file.topic) {
            (Some(f), None) if stem == f.as_str() => f.clone(),
            (None, Some(t)) => t.clone(),
            _ => {
                failures.push(format!(
                    "{}: needs `function` (named like the file) or `topic`",
                    path.display()
                ));
                continue;
            }
        };
        let mut notes = BTreeSet::new();
        for c in &file.cases {
            if !notes.insert(c.note.as_str()) {
                failures.push(format!("{}: duplicate note `{}`", path.display(), c.note));
            }
            let mut reference = None;
            for engine in engines() {
                cases += 1;
                match run_case(engine, c, &mut codes) {
                    Err(msg) => failures.push(format!(
                        "{title} [{engine}] {}: `{}`: {msg}",
                        c.note, c.expr
                    )),
                    Ok(got) => match &reference {
                        None => reference = Some(got),
                        Some(want) if *want != got => failures.push(format!(
                            "{title} [{engine}] {}: `{}`: differs from the interpreter: \
                             {got:?} vs {want:?}",
                            c.note, c.expr
                        )),
                        Some(_) => {}
                    },
                }
            }
        }
    }
    eprintln!("{cases} conformance case runs");
    assert!(
        failures.is_empty(),
        "{} failing cases:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let runtime: Vec<&str> = idflow::diag::codes::CODES
        .iter()
        .map(|c| c.code)
        .filter(|c| c.starts_with("E05") && !codes.contains(*c))
        .collect();
    assert!(
        runtime.is_empty(),
        "runtime error codes no conformance case produces: {runtime:?}"
    );
}

#[test]
fn every_stdlib_function_has_a_conformance_file() {
    let mut have = BTreeMap::new();
    for path in files()
        .into_iter()
        .filter(|p| p.components().any(|c| c.as_os_str() == "functions"))
    {
        let stem = path.file_stem().unwrap().to_string_lossy().into_owned();
        let area = path
            .parent()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        have.insert(stem, area);
    }
    let mut missing = Vec::new();
    for f in &Stdlib::get().functions {
        match have.get(&f.name) {
            Some(area) if area == f.area => {}
            Some(area) => missing.push(format!("{} is in {area}/, expected {}/", f.name, f.area)),
            None => missing.push(format!("{}/{}.toml", f.area, f.name)),
        }
    }
    assert!(missing.is_empty(), "missing conformance files: {missing:?}");
}

/// The examples in `stdlib/*.toml` are executed too (they are what `idflow functions` shows).
#[test]
fn stdlib_examples_evaluate_as_documented() {
    let mut failures = Vec::new();
    for f in &Stdlib::get().functions {
        for ex in &f.examples {
            if ex.nondeterministic {
                continue;
            }
            let case = Case {
                note: ex.expr.clone(),
                expr: ex.expr.clone(),
                input: ex.input.clone(),
                params: ex.params.clone(),
                now: None,
                limits: None,
                want: ex.result.clone(),
                want_error: None,
            };
            if ex.error {
                let attrs = to_values(case.input.as_ref()).unwrap();
                let params = to_values(case.params.as_ref()).unwrap();
                let ok = match adhoc::prepare("example", &ex.expr, &attrs, &params) {
                    Ok(p) => {
                        let mut ctx = Ctx::fixed();
                        ctx.params = params;
                        p.eval(&mut ctx).is_err()
                    }
                    Err(_) => true,
                };
                if !ok {
                    failures.push(format!("{}: `{}` should fail", f.name, ex.expr));
                }
                continue;
            }
            let mut codes = BTreeSet::new();
            if let Err(msg) = run_case("interp", &case, &mut codes) {
                failures.push(format!("{}: `{}`: {msg}", f.name, ex.expr));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing examples:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
