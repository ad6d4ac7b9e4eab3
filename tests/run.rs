//! `idflow run` and `idflow state` end to end, through the real binary.
//!
//! Every test works in its own temporary directory (removed afterwards): a copy of the
//! quickstart (`examples/quickstart/ad.ldif` and `idflow.toml`, the bundle pointed at the
//! absolute path of `rules/entra-default`; the example folder itself is never touched), or the
//! small HR deployment of `tests/fixtures/run/hr/` (a CSV source with bad rows and a JSON-lines
//! target). The tests parse the step summary lines `idflow run` prints:
//! `<step>[ <connector>]: A adds, U updates, D deletes, R renames, E errors, T ms [<status>]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

mod common;
use common::{Dir, Out, idflow};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// The quickstart's connectors.
const AD: &str = "contoso.com";
const ENTRA: &str = "contoso.onmicrosoft.com";

// ---------------------------------------------------------------------------------------------
// Harness

/// One step summary line of `idflow run` with its notes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    step: String,
    connector: String,
    adds: usize,
    updates: usize,
    deletes: usize,
    renames: usize,
    errors: usize,
    status: String,
    notes: Vec<String>,
}

fn parse_steps(stdout: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in stdout.lines() {
        if let Some(note) = line.strip_prefix("    ") {
            steps
                .last_mut()
                .unwrap_or_else(|| panic!("a note before any step: {line}"))
                .notes
                .push(note.to_string());
            continue;
        }
        let (head, rest) = line
            .split_once(": ")
            .unwrap_or_else(|| panic!("not a step line: {line}"));
        let (step, connector) = match head.split_once(' ') {
            Some((s, c)) => (s.to_string(), c.to_string()),
            None => (head.to_string(), String::new()),
        };
        let (counts, status) = rest
            .rsplit_once(" [")
            .unwrap_or_else(|| panic!("no status: {line}"));
        let status = status.trim_end_matches(']').to_string();
        let mut n = BTreeMap::new();
        for part in counts.split(", ") {
            let (v, what) = part.split_once(' ').unwrap();
            n.insert(what.to_string(), v.parse::<usize>().unwrap());
        }
        let get = |k: &str| *n.get(k).unwrap_or_else(|| panic!("no `{k}` in: {line}"));
        steps.push(Step {
            step,
            connector,
            adds: get("adds"),
            updates: get("updates"),
            deletes: get("deletes"),
            renames: get("renames"),
            errors: get("errors"),
            status,
            notes: Vec::new(),
        });
    }
    steps
}

struct Run {
    out: Out,
    steps: Vec<Step>,
}

impl Run {
    /// The step `step` (prefix match: "import" finds delta-import and full-import) of
    /// `connector`.
    fn step(&self, step: &str, connector: &str) -> &Step {
        self.steps
            .iter()
            .find(|s| s.step.ends_with(step) && s.connector == connector)
            .unwrap_or_else(|| panic!("no {step} {connector} step:\n{}", self.out.all()))
    }

    fn export(&self, connector: &str) -> &Step {
        self.step("export", connector)
    }

    fn sync(&self) -> &Step {
        self.steps
            .iter()
            .find(|s| s.step.ends_with("sync"))
            .unwrap_or_else(|| panic!("no sync step:\n{}", self.out.all()))
    }

    fn assert_no_changes(&self) {
        assert_eq!(self.out.code, 0, "{}", self.out.all());
        for s in &self.steps {
            assert_eq!(
                (s.adds, s.updates, s.deletes, s.renames, s.errors),
                (0, 0, 0, 0, 0),
                "{s:?}\n{}",
                self.out.all()
            );
            assert_eq!(s.status, "success", "{s:?}");
        }
    }
}

fn run(dir: &Dir, extra: &[&str]) -> Run {
    let config = dir.config();
    let mut args = vec!["run", "--config", config.as_str()];
    args.extend_from_slice(extra);
    let out = idflow(&dir.0, &args);
    let steps = parse_steps(&out.stdout);
    Run { out, steps }
}

fn state(dir: &Dir, args: &[&str]) -> Out {
    let config = dir.config();
    let mut all = vec!["state", "--config", config.as_str()];
    all.extend_from_slice(args);
    idflow(&dir.0, &all)
}

/// A copy of the quickstart, with its bundle given by absolute path.
fn quickstart(name: &str) -> Dir {
    let d = Dir::new(name);
    let src = Path::new(ROOT).join("examples/quickstart");
    std::fs::copy(src.join("ad.ldif"), d.path("ad.ldif")).unwrap();
    let toml = std::fs::read_to_string(src.join("idflow.toml")).unwrap();
    d.write("idflow.toml", &toml);
    let bundle = Path::new(ROOT).join("rules/entra-default");
    d.set("bundle", &format!("{:?}", bundle.display().to_string()));
    d
}

/// The HR deployment: `tests/fixtures/run/hr/bundle`, an HR CSV (`csv`, default: the fixture
/// with bad rows) and a JSON-lines directory (`directory.jsonl`, or `target`).
fn hr(name: &str, csv: Option<&str>, target: &str) -> Dir {
    let d = Dir::new(name);
    let fixture = Path::new(ROOT).join("tests/fixtures/run/hr");
    match csv {
        Some(text) => d.write("hr.csv", text),
        None => {
            std::fs::copy(fixture.join("hr.csv"), d.path("hr.csv")).unwrap();
        }
    }
    d.write(
        "idflow.toml",
        &format!(
            r#"bundle = {:?}
state = "idflow.db"
delete_threshold = 500

[connectors.hr]
kind = "csv"
path = "hr.csv"
object_type = "worker"
anchor = "id"
dn = "CN={{id}},OU=HR"

[connectors.directory]
kind = "jsonl"
path = {target:?}
"#,
            fixture.join("bundle").display().to_string()
        ),
    );
    d
}

const CLEAN_HR: &str = "id,name,department,grade\n\
1001,Alice Smith,Finance,3\n\
1002,Bob Jones,Sales,2\n\
1004,Dan Brown,IT,4\n\
1006, Frank Moore ,HR,1\n";

// ---------------------------------------------------------------------------------------------
// Files

/// LDIF records (blank-line separated), the `version: 1` header being the first.
fn records(text: &str) -> Vec<String> {
    text.split("\n\n").map(str::to_string).collect()
}

fn unrecords(records: &[String]) -> String {
    records.join("\n\n")
}

/// The logical lines of a record (folded lines joined).
fn logical_lines(record: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in record.lines() {
        match (l.strip_prefix(' '), out.last_mut()) {
            (Some(cont), Some(last)) => last.push_str(cont),
            _ => out.push(l.to_string()),
        }
    }
    out
}

/// The plain-text value of `name` in a record.
fn value_of(record: &str, name: &str) -> Option<String> {
    logical_lines(record)
        .into_iter()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")).map(str::to_string))
}

/// The record with its (single, unfolded) `name: ...` line replaced by `line`.
fn with_line(record: &str, name: &str, line: &str) -> String {
    let prefix = format!("{name}: ");
    let mut n = 0;
    let out: Vec<&str> = record
        .split('\n')
        .map(|l| {
            if l.starts_with(&prefix) {
                n += 1;
                line
            } else {
                l
            }
        })
        .collect();
    assert_eq!(n, 1, "no single `{name}` line in:\n{record}");
    out.join("\n")
}

fn is_user(record: &str) -> bool {
    logical_lines(record)
        .iter()
        .any(|l| l.eq_ignore_ascii_case("objectClass: user"))
}

/// The target file: DN → line. Panics on a duplicated DN.
fn target_lines(dir: &Dir, file: &str) -> BTreeMap<String, String> {
    parse_target(&dir.read(file))
}

/// JSON lines: lower-cased DN → line. Panics on a duplicated DN.
fn parse_target(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let j: serde_json::Value = serde_json::from_str(line).unwrap();
        let dn = j["dn"].as_str().unwrap().to_string();
        assert!(
            out.insert(dn.to_lowercase(), line.to_string()).is_none(),
            "duplicated DN {dn}"
        );
    }
    out
}

/// The Entra users of the quickstart target: onPremisesSamAccountName → target DN.
fn entra_users(dir: &Dir) -> BTreeMap<String, String> {
    dir.read("entra.jsonl")
        .lines()
        .filter_map(|line| {
            let j: serde_json::Value = serde_json::from_str(line).unwrap();
            let sam = j["attrs"]["onPremisesSamAccountName"].as_str()?;
            Some((sam.to_lowercase(), j["dn"].as_str().unwrap().to_string()))
        })
        .collect()
}

/// Synchronized AD users of the quickstart (record index, DN, sAMAccountName), in file
/// order: users with a plain-text DN and a department whose account is in the target.
fn synced_users(dir: &Dir, recs: &[String]) -> Vec<(usize, String, String)> {
    let users = entra_users(dir);
    recs.iter()
        .enumerate()
        .filter(|(_, r)| r.starts_with("dn: ") && is_user(r))
        .filter_map(|(i, r)| {
            let sam = value_of(r, "sAMAccountName")?;
            value_of(r, "department")?;
            users
                .contains_key(&sam.to_lowercase())
                .then(|| (i, value_of(r, "dn").unwrap(), sam))
        })
        .collect()
}

/// Removes the records of `dns` and every value referring to them (as AD does when an object
/// is deleted: group members, managers, ...).
fn remove_objects(recs: &[String], dns: &BTreeSet<String>) -> Vec<String> {
    recs.iter()
        .filter(|r| value_of(r, "dn").is_none_or(|dn| !dns.contains(&dn.to_lowercase())))
        .map(|r| {
            let lines = logical_lines(r);
            let kept: Vec<&String> = lines
                .iter()
                .filter(|l| {
                    l.split_once(": ")
                        .is_none_or(|(name, v)| name == "dn" || !dns.contains(&v.to_lowercase()))
                })
                .collect();
            if kept.len() == lines.len() {
                r.clone()
            } else {
                kept.iter()
                    .map(|l| l.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        })
        .collect()
}

/// The rows of `state pending-exports --format json`: one per attribute change (or per object
/// without one), with typed values.
fn pending_json(dir: &Dir, extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec!["pending-exports", "--format", "json"];
    args.extend_from_slice(extra);
    let out = state(dir, &args);
    assert_eq!(out.code, 0, "{}", out.all());
    serde_json::from_str::<Vec<serde_json::Value>>(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", out.all()))
}

/// The (connector, operation, dn) of the pending exports, from the JSON format.
fn pending_objects(rows: &[serde_json::Value]) -> BTreeSet<(String, String, String)> {
    rows.iter()
        .map(|r| {
            (
                r["connector"].as_str().unwrap().to_string(),
                r["operation"].as_str().unwrap().to_string(),
                r["dn"].as_str().unwrap().to_lowercase(),
            )
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 1. Configuration errors

#[test]
fn config_missing_file() {
    let d = Dir::new("missing");
    let path = d.path("nope.toml").display().to_string();
    let out = idflow(&d.0, &["run", "--config", &path]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains(&path), "{}", out.all());
    // The default file name is named too.
    let out = idflow(&d.0, &["run"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("idflow.toml"), "{}", out.all());
    let out = idflow(&d.0, &["state", "runs"]);
    assert_eq!(out.code, 2, "{}", out.all());
    assert!(out.stderr.contains("idflow.toml"), "{}", out.all());
}

#[test]
fn config_invalid_toml_is_located() {
    let d = quickstart("badtoml");
    let text = d.read("idflow.toml");
    // Line 5 of the file (the `state = ...` line) loses its value.
    let broken = text.replacen("state = \"idflow.db\"", "state = ", 1);
    let line = broken.lines().position(|l| l == "state = ").unwrap() + 1;
    d.write("idflow.toml", &broken);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 2, "{}", r.out.all());
    assert!(r.out.stderr.contains(&d.config()), "{}", r.out.all());
    assert!(
        r.out.stderr.contains(&format!("line {line}, column 9")),
        "{}",
        r.out.all()
    );
    assert!(!d.path("idflow.db").exists(), "nothing may be written");
}

#[test]
fn config_unknown_keys_are_named() {
    let d = quickstart("unknownkey");
    let text = d.read("idflow.toml");
    d.write(
        "idflow.toml",
        &text.replace("staging = false", "staging_mode = false"),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 2, "{}", r.out.all());
    assert!(
        r.out.stderr.contains("unknown field `staging_mode`"),
        "{}",
        r.out.all()
    );
    // In a connector table.
    d.write(
        "idflow.toml",
        &text.replace(
            "path = \"entra.jsonl\"",
            "path = \"entra.jsonl\"\nfilename = \"x\"",
        ),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 2, "{}", r.out.all());
    assert!(
        r.out.stderr.contains("unknown field `filename`"),
        "{}",
        r.out.all()
    );
    assert!(!d.path("idflow.db").exists());
}

#[test]
fn config_unknown_kind() {
    let d = quickstart("kind");
    let text = d.read("idflow.toml");
    d.write(
        "idflow.toml",
        &text.replace("kind = \"jsonl\"", "kind = \"ftp\""),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 2, "{}", r.out.all());
    assert!(
        r.out
            .stderr
            .contains("connectors.\"contoso.onmicrosoft.com\".kind: unknown connector kind `ftp`"),
        "{}",
        r.out.all()
    );
    assert!(!d.path("idflow.db").exists());
}

#[test]
fn inline_password_run_refuses_check_warns() {
    let d = quickstart("password");
    let text = d.read("idflow.toml");
    d.write(
        "idflow.toml",
        &text.replace(
            "kind = \"jsonl\"",
            "kind = \"jsonl\"\npassword = \"hunter2\"",
        ),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 2, "{}", r.out.all());
    assert!(
        r.out
            .stderr
            .contains("connectors.\"contoso.onmicrosoft.com\".password"),
        "{}",
        r.out.all()
    );
    assert!(!r.out.stderr.contains("hunter2"), "the secret is echoed");
    assert!(!d.path("idflow.db").exists());
    let bundle = Path::new(ROOT).join("rules/entra-default");
    let config = d.config();
    let out = idflow(
        &d.0,
        &["check", bundle.to_str().unwrap(), "--config", &config],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stderr.contains("warning:")
            && out
                .stderr
                .contains("connectors.\"contoso.onmicrosoft.com\".password"),
        "{}",
        out.all()
    );
    // With --deny-warnings the warning fails the check.
    let out = idflow(
        &d.0,
        &[
            "check",
            bundle.to_str().unwrap(),
            "--config",
            &config,
            "--deny-warnings",
        ],
    );
    assert_eq!(out.code, 1, "{}", out.all());
}

#[test]
fn connector_not_declared_in_the_bundle() {
    let d = quickstart("undeclared");
    let text = d.read("idflow.toml");
    d.write(
        "idflow.toml",
        &format!(
            "{text}\n[connectors.\"fabrikam.com\"]\nkind = \"ldif\"\npath = \"fabrikam.ldif\"\n"
        ),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 2, "{}", r.out.all());
    assert!(
        r.out
            .stderr
            .contains("connector \"fabrikam.com\" is not declared in the bundle"),
        "{}",
        r.out.all()
    );
    assert!(!d.path("idflow.db").exists());
    assert!(!d.path("entra.jsonl").exists());
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let p = e.path();
        if p.is_dir() {
            copy_dir(&p, &to.join(e.file_name()));
        } else {
            std::fs::copy(&p, to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn bundle_with_check_errors_runs_nothing() {
    // The default bundle with one broken rule, fresh state.
    let d = quickstart("badbundle");
    copy_dir(
        &Path::new(ROOT).join("rules/entra-default"),
        &d.path("rules"),
    );
    std::fs::write(
        d.path("rules/inbound/broken.idf"),
        "inbound rule \"Broken\" {\n  connector \"contoso.com\"\n  source user\n  target person\n  link join\n  precedence 9999\n  flow department <- Left([noSuchAttribute], 3)\n}\n",
    )
    .unwrap();
    d.set("bundle", "\"rules\"");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    assert!(r.out.stderr.contains("broken.idf"), "{}", r.out.all());
    assert!(r.out.stderr.contains("noSuchAttribute"), "{}", r.out.all());
    assert!(r.out.stderr.contains("nothing was run"), "{}", r.out.all());
    assert!(r.steps.is_empty(), "{}", r.out.all());
    assert!(!d.path("entra.jsonl").exists());
    let runs = state(&d, &["runs"]);
    assert!(
        !d.path("idflow.db").exists() || runs.stdout.trim().is_empty(),
        "the state has runs:\n{}",
        runs.all()
    );

    // The HR deployment with state: a broken bundle adds no run and changes nothing.
    let h = hr("badbundle-hr", Some(CLEAN_HR), "directory.jsonl");
    let r = run(&h, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let runs_before = state(&h, &["runs", "--limit", "1000"]).stdout;
    let target_before = h.read("directory.jsonl");
    copy_dir(
        &Path::new(ROOT).join("tests/fixtures/run/hr/bundle"),
        &h.path("bundle"),
    );
    let rules = h.read("bundle/hr.idf");
    h.write(
        "bundle/hr.idf",
        &rules.replace(
            "flow department  <- [department]\n  flow grade",
            "flow department  <- [departmnet]\n  flow grade",
        ),
    );
    h.set("bundle", "\"bundle\"");
    h.write("hr.csv", &CLEAN_HR.replace("Finance", "Treasury"));
    let r = run(&h, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    assert!(r.out.stderr.contains("departmnet"), "{}", r.out.all());
    assert!(r.steps.is_empty());
    assert_eq!(state(&h, &["runs", "--limit", "1000"]).stdout, runs_before);
    assert_eq!(h.read("directory.jsonl"), target_before);
}

// ---------------------------------------------------------------------------------------------
// 2. The quickstart

#[test]
fn quickstart_first_run_second_run_and_one_change() {
    let d = quickstart("qs");
    let first = run(&d, &[]);
    assert_eq!(first.out.code, 0, "{}", first.out.all());
    assert_eq!(first.steps.len(), 5, "{}", first.out.all());
    assert_eq!(first.steps[0].step, "delta-import");
    assert_eq!(first.sync().step, "full-sync");
    for s in &first.steps {
        assert_eq!(s.status, "success", "{s:?}");
        assert_eq!(s.errors, 0, "{s:?}");
    }
    let import = first.step("import", AD);
    assert!((1900..2100).contains(&import.adds), "{import:?}");
    let export = first.export(ENTRA);
    assert!(
        (1900..=2100).contains(&export.adds),
        "~1,986 adds expected: {export:?}"
    );
    assert_eq!((export.updates, export.deletes), (0, 0));
    // The AD file already holds the written-back anchors.
    let ad_export = first.export(AD);
    assert_eq!(
        (ad_export.adds, ad_export.updates, ad_export.deletes),
        (0, 0, 0)
    );
    let lines = target_lines(&d, "entra.jsonl");
    assert_eq!(lines.len(), export.adds);
    let types: BTreeSet<String> = lines
        .values()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["type"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        types,
        ["contact", "group", "user"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    );
    let ad_before = d.read("ad.ldif");
    let target_before = d.read("entra.jsonl");

    let second = run(&d, &[]);
    second.assert_no_changes();
    assert_eq!(second.sync().step, "delta-sync");
    assert_eq!(d.read("entra.jsonl"), target_before);
    assert_eq!(d.read("ad.ldif"), ad_before);

    // One user's department changes.
    let mut recs = records(&ad_before);
    let (i, _, sam) = synced_users(&d, &recs)[3].clone();
    let old = value_of(&recs[i], "department").unwrap();
    let new = format!("{old} and Research");
    recs[i] = with_line(&recs[i], "department", &format!("department: {new}"));
    d.write("ad.ldif", &unrecords(&recs));
    let third = run(&d, &[]);
    assert_eq!(third.out.code, 0, "{}", third.out.all());
    let imp = third.step("import", AD);
    assert_eq!((imp.adds, imp.updates, imp.deletes), (0, 1, 0), "{imp:?}");
    let exp = third.export(ENTRA);
    assert_eq!(
        (exp.adds, exp.updates, exp.deletes, exp.status.as_str()),
        (0, 1, 0, "success"),
        "{}",
        third.out.all()
    );
    let ad_exp = third.export(AD);
    assert_eq!((ad_exp.adds, ad_exp.updates, ad_exp.deletes), (0, 0, 0));
    let after = d.read("entra.jsonl");
    let before_lines: Vec<&str> = target_before.lines().collect();
    let after_lines: Vec<&str> = after.lines().collect();
    assert_eq!(before_lines.len(), after_lines.len());
    let differ: Vec<usize> = (0..before_lines.len())
        .filter(|&k| before_lines[k] != after_lines[k])
        .collect();
    assert_eq!(differ.len(), 1, "exactly one target line changes");
    let b: serde_json::Value = serde_json::from_str(before_lines[differ[0]]).unwrap();
    let mut a: serde_json::Value = serde_json::from_str(after_lines[differ[0]]).unwrap();
    assert_eq!(
        a["attrs"]["onPremisesSamAccountName"].as_str(),
        Some(sam.as_str())
    );
    assert_eq!(b["attrs"]["department"].as_str(), Some(old.as_str()));
    assert_eq!(a["attrs"]["department"].as_str(), Some(new.as_str()));
    a["attrs"]["department"] = b["attrs"]["department"].clone();
    assert_eq!(a, b, "only the department changed");

    run(&d, &[]).assert_no_changes();
}

/// The confirming imports of a deployment's run history that read back only what an export
/// wrote, by connector.
fn confirmed_by_writes(d: &Dir) -> Vec<String> {
    let mut r = common::runner(d);
    let mut runs = r.store().runs(1000).unwrap();
    runs.reverse();
    runs.into_iter()
        .filter(|r| r.detail.contains("confirmed by what the export wrote"))
        .map(|r| r.connector)
        .collect()
}

/// The step of `run` for `step` (`full-import`, `full-sync`) changed nothing.
fn unchanged(run: &Run, step: &str) {
    assert_eq!(run.out.code, 0, "{}", run.out.all());
    let s = run
        .steps
        .iter()
        .find(|s| s.step == step)
        .unwrap_or_else(|| panic!("no {step}:\n{}", run.out.all()));
    assert_eq!(
        (s.adds, s.updates, s.deletes, s.renames),
        (0, 0, 0, 0),
        "{step} found what the state did not hold:\n{}",
        run.out.all()
    );
}

/// An export to a file target is confirmed by reading back only the objects it wrote when the
/// state held the whole file before the export (its fingerprint that of the last complete
/// import) and the export touched at most a quarter of the file: adds, updates and deletes
/// alike. Reading the whole files again afterwards finds
/// nothing the state does not hold, and a full sync changes nothing. When the file changes
/// behind the state's back before the export, the confirmation reads the whole file.
#[test]
fn a_file_export_is_confirmed_by_what_it_wrote() {
    let d = quickstart("qs-written");
    // Five users without their consistency GUIDs: the first cycle writes them back to the AD
    // file, and those five are read back. Every Entra object is new: that file is read whole
    // (an export that touched more than a quarter of its file).
    let mut stripped = 0;
    let ad: String = d
        .read("ad.ldif")
        .lines()
        .filter(|l| {
            let strip = l.starts_with("mS-DS-ConsistencyGuid:") && stripped < 5;
            stripped += usize::from(strip);
            !strip
        })
        .map(|l| format!("{l}\n"))
        .collect();
    d.write("ad.ldif", &ad);
    let first = run(&d, &[]);
    assert_eq!(first.out.code, 0, "{}", first.out.all());
    assert_eq!(first.export(AD).updates, 5, "{}", first.out.all());
    assert!(first.export(ENTRA).adds > 1900);
    assert_eq!(confirmed_by_writes(&d), [AD]);
    let check = |d: &Dir| {
        unchanged(
            &run(d, &["--profile", "full-import", "--connector", ENTRA]),
            "full-import",
        );
        unchanged(
            &run(d, &["--profile", "full-import", "--connector", AD]),
            "full-import",
        );
        unchanged(&run(d, &["--profile", "full-sync"]), "full-sync");
    };
    check(&d);

    // One user's department changes and another user goes: an update and deletes.
    let mut recs = records(&d.read("ad.ldif"));
    let users = synced_users(&d, &recs);
    let (i, _, _) = users[3].clone();
    let old = value_of(&recs[i], "department").unwrap();
    recs[i] = with_line(
        &recs[i],
        "department",
        &format!("department: {old} and Research"),
    );
    let gone: BTreeSet<String> = [users[5].1.to_lowercase()].into();
    let recs = remove_objects(&recs, &gone);
    d.write("ad.ldif", &unrecords(&recs));
    let second = run(&d, &[]);
    assert_eq!(second.out.code, 0, "{}", second.out.all());
    let exp = second.export(ENTRA);
    assert!(exp.updates >= 1 && exp.deletes == 1, "{exp:?}");
    assert_eq!(confirmed_by_writes(&d), [AD, ENTRA]);
    check(&d);

    // The target file is edited after the cycle's imports, before its export: the state no
    // longer holds the whole file, so the confirmation reads all of it.
    let mut recs = records(&d.read("ad.ldif"));
    let (i, _, _) = synced_users(&d, &recs)[7].clone();
    recs[i] = with_line(&recs[i], "department", "department: Moved Elsewhere");
    d.write("ad.ldif", &unrecords(&recs));
    let mut r = common::runner(&d);
    let mut between = 0;
    let target = d.path("entra.jsonl");
    let reports = r
        .cycle_until(idflow::runner::CycleOptions::default(), &mut |_| {
            between += 1;
            if between == 5 {
                // Before the export to Entra: another writer adds a line.
                let mut text = std::fs::read_to_string(&target).unwrap();
                text.push_str("{\"dn\": \"CN=Outside\", \"type\": \"contact\", \"attrs\": {\"cloudAnchor\": \"Contact_outside\", \"displayName\": \"Outside\"}}\n");
                std::fs::write(&target, text).unwrap();
            }
            false
        })
        .unwrap();
    drop(r);
    assert_eq!(between, 5, "{reports:?}");
    assert!(
        reports
            .iter()
            .any(|s| s.step == "export" && s.connector == ENTRA && s.updates >= 1),
        "{reports:?}"
    );
    assert_eq!(
        confirmed_by_writes(&d),
        [AD, ENTRA],
        "the edited file was read whole"
    );
    check(&d);
}

/// A target connector whose file another writer edits right after each export, before the
/// export is confirmed.
struct EditedAfterExport {
    inner: Box<dyn idflow::connector::Connector>,
    path: std::path::PathBuf,
}

impl idflow::connector::Connector for EditedAfterExport {
    fn import(
        &mut self,
        mode: idflow::connector::ImportMode<'_>,
        sink: &mut dyn idflow::connector::ImportSink,
    ) -> Result<idflow::connector::ImportEnd, idflow::connector::ConnectorError> {
        self.inner.import(mode, sink)
    }

    fn export(
        &mut self,
        deltas: &[idflow::engine::export::ExportDelta],
    ) -> Result<Vec<idflow::connector::ExportResult>, idflow::connector::ConnectorError> {
        let results = self.inner.export(deltas)?;
        let mut text = std::fs::read_to_string(&self.path).unwrap();
        text.push_str("{\"dn\": \"CN=Outside\", \"type\": \"contact\", \"attrs\": {\"cloudAnchor\": \"Contact_outside\", \"displayName\": \"Outside\"}}\n");
        std::fs::write(&self.path, text).unwrap();
        Ok(results)
    }

    fn confirms_by_reimport(&self) -> bool {
        self.inner.confirms_by_reimport()
    }

    fn source_file(&self) -> Option<&std::path::Path> {
        self.inner.source_file()
    }

    fn take_written(&mut self) -> Option<idflow::connector::Written> {
        self.inner.take_written()
    }
}

/// A file confirmed by what its export wrote is remembered as written: a line another writer
/// adds between the export and its confirmation is read by the next import, not taken for part
/// of what the state holds.
#[test]
fn a_file_edited_between_its_export_and_the_confirmation_is_read_again() {
    let d = quickstart("qs-written-race");
    let first = run(&d, &[]);
    assert_eq!(first.out.code, 0, "{}", first.out.all());
    let mut recs = records(&d.read("ad.ldif"));
    let (i, _, _) = synced_users(&d, &recs)[2].clone();
    recs[i] = with_line(&recs[i], "department", "department: Somewhere Else");
    d.write("ad.ldif", &unrecords(&recs));
    let mut r = common::runner(&d);
    let c = r.engine.plan.connector_index(ENTRA).unwrap();
    let cfg = r.deployment.connector(ENTRA).unwrap().clone();
    let inner = idflow::connector::open(&cfg, &r.engine.plan.connectors[c]).unwrap();
    let path = d.path("entra.jsonl");
    r.set_connector(ENTRA, Box::new(EditedAfterExport { inner, path }));
    let reports = r.cycle(idflow::runner::CycleOptions::default()).unwrap();
    drop(r);
    assert_eq!(
        reports
            .iter()
            .find(|s| s.step == "export" && s.connector == ENTRA)
            .map(|s| s.updates),
        Some(1),
        "{reports:?}"
    );
    assert_eq!(confirmed_by_writes(&d), [ENTRA], "{reports:?}");
    let next = run(&d, &["--profile", "delta-import", "--connector", ENTRA]);
    assert_eq!(next.out.code, 0, "{}", next.out.all());
    assert_eq!(
        next.step("import", ENTRA).adds,
        1,
        "the line added after the export was not read:\n{}",
        next.out.all()
    );
}

/// A connector that reads as the one it wraps does, but recognises no record: every record
/// of every import is parsed.
struct ReadsEverything(Box<dyn idflow::connector::Connector>);

impl idflow::connector::Connector for ReadsEverything {
    fn import(
        &mut self,
        mode: idflow::connector::ImportMode<'_>,
        sink: &mut dyn idflow::connector::ImportSink,
    ) -> Result<idflow::connector::ImportEnd, idflow::connector::ConnectorError> {
        self.0.import(mode, sink)
    }

    fn export(
        &mut self,
        deltas: &[idflow::engine::export::ExportDelta],
    ) -> Result<Vec<idflow::connector::ExportResult>, idflow::connector::ConnectorError> {
        self.0.export(deltas)
    }

    fn confirms_by_reimport(&self) -> bool {
        self.0.confirms_by_reimport()
    }

    fn source_file(&self) -> Option<&Path> {
        self.0.source_file()
    }

    fn take_written(&mut self) -> Option<idflow::connector::Written> {
        self.0.take_written()
    }
}

/// One cycle of the deployment in `d`, the file of `source` read whole or recognising the
/// records it read before: what each step did (notes aside) and the canonical dump of the
/// state.
fn cycle_reading(d: &Dir, source: &str, recognise: bool) -> (Vec<String>, Vec<String>, String) {
    let mut r = common::runner(d);
    if !recognise {
        let c = r.engine.plan.connector_index(source).unwrap();
        let cfg = r.deployment.connector(source).unwrap().clone();
        let inner = idflow::connector::open(&cfg, &r.engine.plan.connectors[c]).unwrap();
        r.set_connector(source, Box::new(ReadsEverything(inner)));
    }
    let reports = r.cycle(idflow::runner::CycleOptions::default()).unwrap();
    let steps = reports
        .iter()
        .map(|s| {
            let rejects: Vec<String> = s
                .rejects
                .iter()
                .map(|r| {
                    let file = Path::new(&r.source).file_name().unwrap_or_default();
                    format!("{}:{:?}: {}", file.display(), r.line, r.message)
                })
                .collect();
            format!(
                "{} {} {} +{} ~{} -{} >{} !{} {rejects:?}",
                s.step, s.connector, s.status, s.adds, s.updates, s.deletes, s.renames, s.errors
            )
        })
        .collect();
    let notes = reports.iter().flat_map(|s| s.notes.clone()).collect();
    let dump = idflow::engine::dump::state(&r.engine.plan, &r.engine.state);
    (steps, notes, dump)
}

#[test]
fn records_recognised_by_their_digest_stage_what_reading_them_stages() {
    // Two copies of one deployment: `a` recognises the AD records it read before, `b` reads
    // every record. Every cycle must do the same in both and leave the same state.
    let a = quickstart("recognise-a");
    let b = quickstart("recognise-b");
    let same = |what: &str| {
        let (sa, na, da) = cycle_reading(&a, AD, true);
        let (sb, nb, db) = cycle_reading(&b, AD, false);
        assert_eq!(sa, sb, "{what}: the steps differ");
        if da != db {
            let line = da.lines().zip(db.lines()).find(|(x, y)| x != y);
            panic!("{what}: the states differ, first at {line:?}");
        }
        assert_eq!(a.read("ad.ldif"), b.read("ad.ldif"), "{what}");
        assert_eq!(a.read("entra.jsonl"), b.read("entra.jsonl"), "{what}");
        assert!(!nb.iter().any(|n| n.contains("recognised")), "{nb:?}");
        na
    };
    // Edits both AD files alike, given their records and their synchronized users.
    type Users = [(usize, String, String)];
    let edit = |f: &dyn Fn(&mut Vec<String>, &Users)| {
        for d in [&a, &b] {
            let mut recs = records(&d.read("ad.ldif"));
            let users = synced_users(d, &recs);
            assert!(users.len() > 20);
            f(&mut recs, &users);
            d.write("ad.ldif", &unrecords(&recs));
        }
    };
    let notes = same("first cycle");
    assert!(!notes.iter().any(|n| n.contains("recognised")), "{notes:?}");

    // A changed value, a deleted user, a new user, a renamed user, a comment that changes no
    // value, and a record moved to the end of the file.
    edit(&|recs, users| {
        let (i, _, _) = users[3].clone();
        let dept = value_of(&recs[i], "department").unwrap();
        recs[i] = with_line(
            &recs[i],
            "department",
            &format!("department: {dept} and Research"),
        );
        let (i, _, _) = users[5].clone();
        let mut new = recs[i].replace("CN=", "CN=Copy of ");
        new = new
            .lines()
            .filter(|l| !l.starts_with("objectGUID") && !l.starts_with("sAMAccountName"))
            .chain([
                "objectGUID:: AAECAwQFBgcICQoLDA0ODw==",
                "sAMAccountName: copy5",
            ])
            .collect::<Vec<_>>()
            .join("\n");
        recs.push(new);
        let (i, dn, _) = users[7].clone();
        let renamed = dn.replacen("CN=", "CN=Renamed ", 1);
        recs[i] = recs[i].replacen(&format!("dn: {dn}"), &format!("dn: {renamed}"), 1);
        let (i, _, _) = users[9].clone();
        recs[i] = format!("# reviewed\n{}", recs[i]);
        // (The later record first: removing it moves no earlier one.)
        recs.remove(users[13].0);
        let moved = recs.remove(users[11].0);
        recs.push(moved);
    });
    let notes = same("a changed file");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("unchanged record(s) recognised")),
        "{notes:?}"
    );

    // A record given twice: the second is rejected as a duplicate DN (the read deletes
    // nothing), whichever of the two is recognised.
    edit(&|recs, users| {
        let (i, _, _) = users[15].clone();
        let twice = recs[i].clone();
        recs.push(twice);
        let (i, _, _) = users[17].clone();
        let changed = recs[i].replace("\ndepartment: ", "\ndepartment: Twice ");
        recs.push(changed);
    });
    same("records given twice");
    // The duplicates removed again; nothing left to do.
    edit(&|recs, _| {
        recs.truncate(recs.len() - 2);
    });
    same("the duplicates removed");
    same("nothing changed");
}

#[test]
fn csv_rows_recognised_by_their_digest_stage_what_reading_them_stages() {
    let a = hr("recognise-csv-a", None, "directory.jsonl");
    let b = hr("recognise-csv-b", None, "directory.jsonl");
    let same = |what: &str| {
        let (sa, na, da) = cycle_reading(&a, "hr", true);
        let (sb, nb, db) = cycle_reading(&b, "hr", false);
        assert_eq!(sa, sb, "{what}: the steps differ");
        assert_eq!(da, db, "{what}: the states differ");
        assert_eq!(
            a.read("directory.jsonl"),
            b.read("directory.jsonl"),
            "{what}"
        );
        assert!(!nb.iter().any(|n| n.contains("recognised")), "{nb:?}");
        na
    };
    let edit = |f: &dyn Fn(&str) -> String| {
        for d in [&a, &b] {
            let text = f(&d.read("hr.csv"));
            d.write("hr.csv", &text);
        }
    };
    same("first cycle");
    // A changed grade, a new row, a row moved to the end, and a row whose anchor is given
    // again (rejected, whichever of the two is recognised).
    edit(&|text| {
        let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
        lines[1] = lines[1].replacen(",3", ",5", 1);
        lines.push("1099,Zoe New,Finance,1".into());
        let moved = lines.remove(2);
        lines.push(moved);
        let again = lines[4].clone();
        lines.push(again);
        lines.join("\n") + "\n"
    });
    let notes = same("a changed file");
    assert!(
        notes
            .iter()
            .any(|n| n.contains("unchanged record(s) recognised")),
        "{notes:?}"
    );
    // The header's columns in another order: every row reads differently, none is recognised.
    edit(&|text| {
        let lines: Vec<String> = text
            .lines()
            .map(|l| {
                let mut f: Vec<&str> = l.split(',').collect();
                if f.len() > 2 {
                    f.swap(1, 2);
                }
                f.join(",")
            })
            .collect();
        lines.join("\n") + "\n"
    });
    let notes = same("columns reordered");
    assert!(!notes.iter().any(|n| n.contains("recognised")), "{notes:?}");
    same("nothing changed");
}

// ---------------------------------------------------------------------------------------------
// 3. Staging mode

#[test]
fn staging_mode_stages_and_exports_when_turned_off() {
    let d = quickstart("staging");
    d.set("staging", "true");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let imp = r.step("import", AD);
    assert!(imp.adds > 1900, "{imp:?}");
    assert!(r.sync().adds > 0);
    let exp = r.export(ENTRA);
    assert_eq!(exp.status, "staged", "{}", r.out.all());
    assert_eq!(r.export(AD).status, "staged");
    let n = exp.adds;
    assert!((1900..=2100).contains(&n), "{exp:?}");
    assert!(!d.path("entra.jsonl").exists(), "staging mode exported");

    // JSON: one row per attribute; exactly the staged adds.
    let rows = pending_json(&d, &[]);
    let objects = pending_objects(&rows);
    assert_eq!(objects.len(), n);
    assert!(
        objects.iter().all(|(c, op, _)| c == ENTRA && op == "add"),
        "{objects:?}"
    );
    assert_eq!(
        pending_objects(&pending_json(&d, &["--connector", ENTRA])),
        objects
    );
    assert!(pending_json(&d, &["--connector", AD]).is_empty());
    // CSV: a header and as many rows.
    let csv = state(&d, &["pending-exports", "--format", "csv"]);
    assert_eq!(csv.code, 0, "{}", csv.all());
    let mut reader = csv::Reader::from_reader(csv.stdout.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_string)
        .collect();
    assert_eq!(
        header,
        [
            "connector",
            "operation",
            "type",
            "dn",
            "new_dn",
            "attribute",
            "change",
            "values",
            "old"
        ]
    );
    let csv_rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(csv_rows.len(), rows.len());
    let csv_objects: BTreeSet<String> = csv_rows.iter().map(|r| r[3].to_lowercase()).collect();
    assert_eq!(csv_objects.len(), n);
    // Text.
    let text = state(&d, &["pending-exports"]);
    assert_eq!(text.code, 0, "{}", text.all());
    assert_eq!(
        text.stdout.lines().last(),
        Some(format!("{n} object(s) with pending exports").as_str())
    );

    // Staging off: the run exports them.
    d.set("staging", "false");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.adds, exp.status.as_str()),
        (n, "success"),
        "{}",
        r.out.all()
    );
    assert_eq!(target_lines(&d, "entra.jsonl").len(), n);
    let text = state(&d, &["pending-exports"]);
    assert_eq!(text.stdout.trim(), "0 object(s) with pending exports");
    run(&d, &[]).assert_no_changes();

    // A staged update survives the next cycles' imports of the target until it is exported.
    d.set("staging", "true");
    let mut recs = records(&d.read("ad.ldif"));
    let (i, _, sam) = synced_users(&d, &recs)[0].clone();
    let target_dn = entra_users(&d)[&sam.to_lowercase()].clone();
    let old = value_of(&recs[i], "department").unwrap();
    recs[i] = with_line(&recs[i], "department", "department: Staged Department");
    d.write("ad.ldif", &unrecords(&recs));
    let target_before = d.read("entra.jsonl");
    for _ in 0..2 {
        let r = run(&d, &[]);
        assert_eq!(r.out.code, 0, "{}", r.out.all());
        let exp = r.export(ENTRA);
        assert_eq!(
            (exp.updates, exp.status.as_str()),
            (1, "staged"),
            "the staged update was lost:\n{}",
            r.out.all()
        );
        let rows = pending_json(&d, &[]);
        assert_eq!(rows.len(), 1, "{rows:?}");
        assert_eq!(rows[0]["operation"], "update");
        assert_eq!(rows[0]["dn"].as_str().unwrap(), target_dn);
        assert_eq!(rows[0]["attribute"], "department");
        assert_eq!(rows[0]["change"], "replace");
        assert_eq!(rows[0]["old"].as_str(), Some(old.as_str()));
        assert_eq!(rows[0]["values"], "Staged Department");
        assert_eq!(d.read("entra.jsonl"), target_before);
    }
    d.set("staging", "false");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.export(ENTRA).updates, 1, "{}", r.out.all());
    let line = &target_lines(&d, "entra.jsonl")[&target_dn.to_lowercase()];
    assert!(
        line.contains("\"department\":\"Staged Department\""),
        "{line}"
    );
    run(&d, &[]).assert_no_changes();
}

// ---------------------------------------------------------------------------------------------
// 4. Delete threshold

/// The AD import alone, its deletes allowed up to `n` (the export's threshold still holds).
fn import_ad_allowing(d: &Dir, n: usize) -> Run {
    run(
        d,
        &[
            "--profile",
            "delta-import",
            "--connector",
            AD,
            "--allow-deletes",
            &n.to_string(),
        ],
    )
}

/// A synchronized quickstart with `delete_threshold = 10`, then `n` users removed from AD
/// (with the references to them). Returns the directory, the target before, and the target
/// DNs of the removed users.
fn remove_users(name: &str, n: usize) -> (Dir, String, BTreeSet<String>) {
    let d = quickstart(name);
    d.set("delete_threshold", "10");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let target_before = d.read("entra.jsonl");
    let recs = records(&d.read("ad.ldif"));
    let users = entra_users(&d);
    let chosen: Vec<(usize, String, String)> = synced_users(&d, &recs)
        .into_iter()
        .step_by(7)
        .take(n)
        .collect();
    assert_eq!(chosen.len(), n);
    let dns: BTreeSet<String> = chosen.iter().map(|(_, dn, _)| dn.to_lowercase()).collect();
    let target_dns: BTreeSet<String> = chosen
        .iter()
        .map(|(_, _, sam)| users[&sam.to_lowercase()].to_lowercase())
        .collect();
    let kept = remove_objects(&recs, &dns);
    assert_eq!(kept.len(), recs.len() - n);
    d.write("ad.ldif", &unrecords(&kept));
    (d, target_before, target_dns)
}

#[test]
fn delete_threshold_blocks_more_than_the_threshold() {
    let (d, target_before, gone) = remove_users("threshold11", 11);
    // The import's own guard (a read that drops more objects than the threshold) stops first.
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", AD);
    assert_eq!(
        (imp.status.as_str(), imp.deletes),
        ("stopped-deletion-threshold-exceeded", 11),
        "{}",
        r.out.all()
    );
    assert_eq!(r.export(ENTRA).deletes, 0, "{}", r.out.all());
    // Let through at the import only: the export's threshold holds them.
    let r = import_ad_allowing(&d, 11);
    assert_eq!(r.step("import", AD).deletes, 11, "{}", r.out.all());
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!(
        exp.status,
        "stopped-deletion-threshold-exceeded",
        "{}",
        r.out.all()
    );
    assert_eq!(exp.deletes, 11);
    assert!(
        exp.notes.iter().any(|n| n.contains("--allow-deletes 11")),
        "{exp:?}"
    );
    assert_eq!(d.read("entra.jsonl"), target_before, "the target changed");
    let staged_updates = exp.updates;

    // The deletes (and the updates of the objects that referred to them) stay pending.
    let pending = pending_objects(&pending_json(&d, &[]));
    let deletes: BTreeSet<String> = pending
        .iter()
        .filter(|(c, op, _)| c == ENTRA && op == "delete")
        .map(|(_, _, dn)| dn.clone())
        .collect();
    assert_eq!(deletes, gone);
    let updates = pending.iter().filter(|(_, op, _)| op == "update").count();
    assert_eq!(updates, staged_updates);

    // Still blocked on the next run, pending exports intact.
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!(exp.status, "stopped-deletion-threshold-exceeded");
    assert_eq!(
        (exp.deletes, exp.updates),
        (11, staged_updates),
        "{}",
        r.out.all()
    );
    assert_eq!(d.read("entra.jsonl"), target_before);

    // A smaller allowance does not let them through.
    let r = run(&d, &["--allow-deletes", "10"]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    assert_eq!(
        r.export(ENTRA).status,
        "stopped-deletion-threshold-exceeded"
    );

    let r = run(&d, &["--allow-deletes", "11"]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.deletes, exp.updates, exp.status.as_str()),
        (11, staged_updates, "success"),
        "{}",
        r.out.all()
    );
    let before = parse_target(&target_before);
    let after = target_lines(&d, "entra.jsonl");
    let lost: BTreeSet<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(lost, gone, "the target must lose exactly the removed users");
    assert!(after.keys().all(|k| before.contains_key(k)));
    // No reference to a deleted object is left behind.
    let text = d.read("entra.jsonl").to_lowercase();
    for dn in &gone {
        assert!(!text.contains(dn.as_str()), "{dn} is still referred to");
    }
    run(&d, &[]).assert_no_changes();
}

#[test]
fn delete_threshold_lets_exactly_the_threshold_through() {
    let (d, target_before, gone) = remove_users("threshold10", 10);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.deletes, exp.status.as_str()),
        (10, "success"),
        "{}",
        r.out.all()
    );
    let before = parse_target(&target_before);
    let after = target_lines(&d, "entra.jsonl");
    let lost: BTreeSet<String> = before
        .keys()
        .filter(|k| !after.contains_key(*k))
        .cloned()
        .collect();
    assert_eq!(lost, gone);
    assert_eq!(after.len(), before.len() - 10);
    run(&d, &[]).assert_no_changes();
}

// ---------------------------------------------------------------------------------------------
// 5. Bad input

#[test]
fn malformed_ldif_records_are_skipped_and_never_deleted() {
    let d = quickstart("badldif");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let target_before = d.read("entra.jsonl");
    let before = target_lines(&d, "entra.jsonl");
    let clean = d.read("ad.ldif");
    let recs = records(&clean);
    let users = synced_users(&d, &recs);
    let ids = entra_users(&d);
    // x: a line without a colon; y: bad base64; z: a good change; w: removed.
    let (x, _, x_sam) = users[10].clone();
    let (y, _, y_sam) = users[20].clone();
    let (z, _, z_sam) = users[30].clone();
    // w: a user nothing refers to (its removal changes no other object).
    let (_, w_dn, w_sam) = users[40..]
        .iter()
        .find(|(_, dn, _)| {
            !recs.iter().flat_map(|r| logical_lines(r)).any(|l| {
                l.split_once(": ")
                    .is_some_and(|(name, v)| name != "dn" && v.eq_ignore_ascii_case(dn))
            })
        })
        .unwrap()
        .clone();
    let mut bad = recs.clone();
    bad[x] = with_line(&bad[x], "department", "department Broken");
    bad[y] = with_line(&bad[y], "department", "department:: !!not base64!!");
    bad[z] = with_line(&bad[z], "department", "department: Good Change");
    let bad = remove_objects(&bad, &BTreeSet::from([w_dn.to_lowercase()]));
    let text = unrecords(&bad);
    let line_of = |needle: &str| text.lines().position(|l| l == needle).unwrap() + 1;
    let (x_line, y_line) = (
        line_of("department Broken"),
        line_of("department:: !!not base64!!"),
    );
    d.write("ad.ldif", &text);

    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", AD);
    assert_eq!(imp.status, "completed-warnings", "{imp:?}");
    assert_eq!((imp.errors, imp.deletes, imp.updates), (2, 0, 1), "{imp:?}");
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains(&format!("ad.ldif:{x_line}: ")) && n.contains("colon")),
        "{imp:?}"
    );
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains(&format!("ad.ldif:{y_line}: ")) && n.contains("base64")),
        "{imp:?}"
    );
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("deletions are not staged")),
        "{imp:?}"
    );
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.adds, exp.updates, exp.deletes),
        (0, 1, 0),
        "{}",
        r.out.all()
    );
    let after = target_lines(&d, "entra.jsonl");
    assert_eq!(after.len(), before.len(), "an object was deleted");
    for sam in [&x_sam, &y_sam, &w_sam] {
        let k = ids[&sam.to_lowercase()].to_lowercase();
        assert_eq!(after[&k], before[&k], "{sam} changed");
    }
    let zk = ids[&z_sam.to_lowercase()].to_lowercase();
    assert!(after[&zk].contains("\"department\":\"Good Change\""));
    assert_eq!(
        state(&d, &["pending-exports"]).stdout.trim(),
        "0 object(s) with pending exports"
    );

    // The same file again: still nothing deleted.
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1);
    assert_eq!(r.step("import", AD).deletes, 0);
    assert_eq!(target_lines(&d, "entra.jsonl"), after);

    // Repaired: x and y are unchanged, w is deleted now.
    let mut fixed = records(&clean);
    fixed[z] = with_line(&fixed[z], "department", "department: Good Change");
    let fixed = remove_objects(&fixed, &BTreeSet::from([w_dn.to_lowercase()]));
    d.write("ad.ldif", &unrecords(&fixed));
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.adds, exp.updates, exp.deletes),
        (0, 0, 1),
        "{}",
        r.out.all()
    );
    let last = target_lines(&d, "entra.jsonl");
    assert_eq!(last.len(), before.len() - 1);
    assert!(!last.contains_key(&ids[&w_sam.to_lowercase()].to_lowercase()));
    for sam in [&x_sam, &y_sam] {
        let k = ids[&sam.to_lowercase()].to_lowercase();
        assert_eq!(last[&k], before[&k]);
    }
    let _ = target_before;
}

#[test]
fn textual_guids_are_the_same_anchors_as_ldifde_base64() {
    // ldbsearch and Samba's tools write objectGUID as text, ldifde as base64 bytes: the same
    // objects either way, so reading the text form changes nothing.
    use base64::Engine as _;
    let d = quickstart("guidtext");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    run(&d, &[]).assert_no_changes();
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut converted = 0;
    let text: Vec<String> = d
        .read("ad.ldif")
        .lines()
        .map(|l| match l.strip_prefix("objectGUID:: ") {
            Some(v) => {
                let bytes: [u8; 16] = b64.decode(v).unwrap().try_into().unwrap();
                converted += 1;
                format!("objectGUID: {}", uuid::Uuid::from_bytes_le(bytes))
            }
            None => l.to_string(),
        })
        .collect();
    assert!(converted > 1900, "{converted}");
    d.write("ad.ldif", &(text.join("\n") + "\n"));
    let again = run(&d, &[]);
    again.assert_no_changes();
    assert_eq!(again.step("import", AD).step, "delta-import");
}

#[test]
fn several_values_of_a_single_valued_attribute_are_a_data_validation_error() {
    let d = quickstart("overfull");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let before = target_lines(&d, "entra.jsonl");
    let ids = entra_users(&d);
    let recs = records(&d.read("ad.ldif"));
    let users = synced_users(&d, &recs);
    // x: moves to another department and gets a second displayName (single-valued in the
    // schema); y: only moves.
    let (x, x_dn, x_sam) = users[5].clone();
    let (y, _, y_sam) = users[6].clone();
    assert!(value_of(&recs[x], "displayName").is_some());
    let mut bad = recs.clone();
    bad[x] = with_line(
        &bad[x],
        "department",
        "department: Moved\ndisplayName: A Second Name",
    );
    bad[y] = with_line(&bad[y], "department", "department: Elsewhere");
    d.write("ad.ldif", &unrecords(&bad));

    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", AD);
    assert_eq!(
        (imp.errors, imp.updates, imp.deletes, imp.status.as_str()),
        (1, 1, 0, "completed-warnings"),
        "{}",
        r.out.all()
    );
    let why = "`displayName` is single-valued in the schema but has 2 values: the object is not imported until it has one";
    assert!(
        imp.notes.contains(&format!(
            "Data Validation Failure: {x_dn}: {why} (object not staged)"
        )),
        "{imp:?}"
    );
    // Nothing of x was taken (no value picked, its move held back), nothing deleted; y moved.
    let after = target_lines(&d, "entra.jsonl");
    assert_eq!(after.len(), before.len());
    let key = |sam: &str| ids[&sam.to_lowercase()].to_lowercase();
    assert_eq!(after[&key(&x_sam)], before[&key(&x_sam)]);
    assert!(after[&key(&y_sam)].contains("\"department\":\"Elsewhere\""));
    let out = state(&d, &["errors"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert_eq!(
        out.stdout,
        format!("Data Validation Failure: 1\n    {AD} \"{x_dn}\": {why}\n"),
        "{}",
        out.all()
    );
    // Read again, the error stays in view.
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    assert_eq!(r.step("import", AD).errors, 1, "{}", r.out.all());

    // Repaired: x's move comes through and the error is gone.
    let mut fixed = recs.clone();
    fixed[x] = with_line(&fixed[x], "department", "department: Moved");
    fixed[y] = bad[y].clone();
    d.write("ad.ldif", &unrecords(&fixed));
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.export(ENTRA).updates, 1, "{}", r.out.all());
    assert!(target_lines(&d, "entra.jsonl")[&key(&x_sam)].contains("\"department\":\"Moved\""));
    assert_eq!(state(&d, &["errors"]).stdout, "no sync errors\n");
}

#[test]
fn csv_bad_rows_are_reported_with_lines_and_good_rows_import() {
    let d = hr("csv", None, "directory.jsonl");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", "hr");
    assert_eq!(
        (imp.adds, imp.errors, imp.status.as_str()),
        (4, 4, "completed-warnings"),
        "{imp:?}"
    );
    for (line, what) in [
        (4, "expected 4 fields"),
        (6, "the anchor `id` is empty"),
        (7, "`five` is not an integer"),
        (8, "duplicate anchor `1002`"),
    ] {
        assert!(
            imp.notes
                .iter()
                .any(|n| n.contains(&format!("hr.csv:{line}: ")) && n.contains(what)),
            "line {line}: {imp:?}"
        );
    }
    let exp = r.export("directory");
    assert_eq!(
        (exp.adds, exp.status.as_str()),
        (4, "success"),
        "{}",
        r.out.all()
    );
    let lines = target_lines(&d, "directory.jsonl");
    let ids: BTreeSet<String> = lines
        .values()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["attrs"]["employeeId"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        ids,
        BTreeSet::from(["1001", "1002", "1004", "1006"].map(String::from))
    );
    let frank = &lines["cn=1006,ou=people,dc=example,dc=com"];
    assert!(frank.contains("\"displayName\":\"Frank Moore\""), "{frank}");
    let bob = &lines["cn=1002,ou=people,dc=example,dc=com"];
    assert!(
        bob.contains("\"displayName\":\"Bob Jones\""),
        "the duplicate row won: {bob}"
    );

    // A good row turned bad and another row removed: nothing is deleted.
    let before = target_lines(&d, "directory.jsonl");
    d.write(
        "hr.csv",
        "id,name,department,grade\n1001,Alice Smith,Finance,three\n1002,Bob Jones,Sales,2\n1006, Frank Moore ,HR,1\n",
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", "hr");
    assert_eq!((imp.errors, imp.deletes), (1, 0), "{imp:?}");
    assert!(
        imp.notes.iter().any(|n| n.contains("hr.csv:2: ")),
        "{imp:?}"
    );
    assert_eq!(r.export("directory").deletes, 0);
    assert_eq!(target_lines(&d, "directory.jsonl"), before);

    // Clean again: the removed row is deleted, the repaired one kept.
    d.write("hr.csv", &CLEAN_HR.replace("1004,Dan Brown,IT,4\n", ""));
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.step("import", "hr").deletes, 1);
    assert_eq!(r.export("directory").deletes, 1, "{}", r.out.all());
    let after = target_lines(&d, "directory.jsonl");
    assert_eq!(
        after.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from(
            [
                "cn=1001,ou=people,dc=example,dc=com",
                "cn=1002,ou=people,dc=example,dc=com",
                "cn=1006,ou=people,dc=example,dc=com"
            ]
            .map(String::from)
        )
    );
    assert_eq!(
        after["cn=1001,ou=people,dc=example,dc=com"],
        before["cn=1001,ou=people,dc=example,dc=com"]
    );
    run(&d, &[]).assert_no_changes();
}

// ---------------------------------------------------------------------------------------------
// 6. An unwritable target

#[test]
fn unwritable_target_stops_the_export_and_recovers() {
    let d = hr("unwritable", Some(CLEAN_HR), "blocker.file/directory.jsonl");
    d.write("blocker.file", "a regular file\n");
    let bad_path = d.path("blocker.file/directory.jsonl").display().to_string();
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let exp = r.export("directory");
    assert_eq!(
        (exp.adds, exp.status.as_str()),
        (4, "stopped-connectivity"),
        "{}",
        r.out.all()
    );
    assert!(exp.notes.iter().any(|n| n.contains(&bad_path)), "{exp:?}");
    // The state is intact and the failure is in the history.
    let runs = state(&d, &["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.all());
    assert!(
        runs.stdout
            .lines()
            .any(|l| l.contains("export directory: stopped-connectivity [4 adds")),
        "{}",
        runs.all()
    );
    let pending = pending_objects(&pending_json(&d, &[]));
    assert_eq!(pending.len(), 4);

    d.replace("\"blocker.file/directory.jsonl\"", "\"directory.jsonl\"");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.export("directory").adds, 4, "{}", r.out.all());
    assert_eq!(target_lines(&d, "directory.jsonl").len(), 4);
    run(&d, &[]).assert_no_changes();

    // A change whose export fails is exported once the target is back.
    d.write("hr.csv", &CLEAN_HR.replace("Finance", "Treasury"));
    d.replace("\"directory.jsonl\"", "\"blocker.file/directory.jsonl\"");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1);
    let exp = r.export("directory");
    assert_eq!(
        (exp.updates, exp.status.as_str()),
        (1, "stopped-connectivity")
    );
    d.replace("\"blocker.file/directory.jsonl\"", "\"directory.jsonl\"");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(
        r.export("directory").updates,
        1,
        "the failed update was lost:\n{}",
        r.out.all()
    );
    let alice = &target_lines(&d, "directory.jsonl")["cn=1001,ou=people,dc=example,dc=com"];
    assert!(alice.contains("\"department\":\"Treasury\""), "{alice}");
    run(&d, &[]).assert_no_changes();
}

#[test]
fn read_only_target_directory() {
    let d = hr("readonly", Some(CLEAN_HR), "ro/directory.jsonl");
    std::fs::create_dir(d.path("ro")).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path("ro"), std::fs::Permissions::from_mode(0o555)).unwrap();
    }
    if std::fs::write(d.path("ro/probe"), "x").is_ok() {
        println!(
            "note: read_only_target_directory skipped: permissions are not enforced here (running as root?)"
        );
        return;
    }
    let path = d.path("ro/directory.jsonl").display().to_string();
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let exp = r.export("directory");
    assert_eq!(exp.status, "stopped-connectivity", "{}", r.out.all());
    assert!(
        exp.notes
            .iter()
            .any(|n| n.contains(&path) && n.contains("cannot write")),
        "{exp:?}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(d.path("ro"), std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.export("directory").adds, 4);
}

// ---------------------------------------------------------------------------------------------
// 7. idflow state

#[test]
fn state_commands_on_the_quickstart() {
    let d = quickstart("state");
    let runs = state(&d, &["runs"]);
    assert_eq!(runs.code, 2, "{}", runs.all());
    assert!(runs.stderr.contains("no state yet"), "{}", runs.all());
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());

    // runs: newest first, every step of the cycle (with the confirming import and sync).
    let runs = state(&d, &["runs"]);
    assert_eq!(runs.code, 0, "{}", runs.all());
    let lines: Vec<&str> = runs.stdout.lines().collect();
    assert_eq!(lines.len(), 7, "{}", runs.stdout);
    let ids: Vec<i64> = lines
        .iter()
        .map(|l| {
            l.strip_prefix('#')
                .unwrap()
                .split(' ')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "{ids:?}");
    let export = r.export(ENTRA);
    assert!(
        runs.stdout.contains(&format!(
            "export {ENTRA}: success [{} adds, 0 updates, 0 deletes",
            export.adds
        )),
        "{}",
        runs.stdout
    );
    assert!(runs.stdout.contains(" full-sync: success ["));
    assert_eq!(
        state(&d, &["runs", "--limit", "2"]).stdout.lines().count(),
        2
    );

    // search
    let recs = records(&d.read("ad.ldif"));
    let (i, dn, sam) = synced_users(&d, &recs)[5].clone();
    let cn = value_of(&recs[i], "cn").unwrap();
    let out = state(&d, &["search", "--dn", &format!("CN={cn},")]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .contains(&format!("{AD} user \"{dn}\" -> metaverse ")),
        "{}",
        out.all()
    );
    assert!(out.stdout.ends_with("1 object(s)\n"), "{}", out.all());
    let target_dn = entra_users(&d)[&sam.to_lowercase()].clone();
    let out = state(
        &d,
        &[
            "search",
            "--connector",
            ENTRA,
            "--attr",
            &format!("onPremisesSamAccountName={sam}"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .starts_with(&format!("{ENTRA} user \"{target_dn}\" -> metaverse ")),
        "{}",
        out.all()
    );
    let out = state(
        &d,
        &[
            "search",
            "--metaverse",
            "--attr",
            &format!("accountName={sam}"),
        ],
    );
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(out.stdout.starts_with("metaverse person "), "{}", out.all());
    assert!(out.stdout.contains("(2 link(s))"), "{}", out.all());
    let out = state(&d, &["search", "--dn", "CN=Nobody Here"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (1, "0 object(s)\n"),
        "{}",
        out.all()
    );
    // The metaverse has no DNs: a usage error, not a silent "0 object(s)".
    let out = state(&d, &["search", "--metaverse", "--dn", "CN="]);
    assert_eq!(out.code, 2, "{}", out.all());
    let out = state(&d, &["search", "--attr", "department"]);
    assert_eq!(out.code, 2, "{}", out.all());

    // show
    let out = state(&d, &["show", "--dn", &dn]);
    assert_eq!(out.code, 0, "{}", out.all());
    let mut lines = out.stdout.lines();
    assert_eq!(lines.next(), Some(format!("{AD} user \"{dn}\"").as_str()));
    assert!(
        lines.next().unwrap().starts_with("  anchor: {\"$binary\":"),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout.contains("  linked to metaverse object "),
        "{}",
        out.stdout
    );
    assert!(
        out.stdout
            .contains(&format!("  sAMAccountName = \"{sam}\"")),
        "{}",
        out.stdout
    );
    assert!(out.stdout.contains("\nlineage:\n"), "{}", out.stdout);
    let out = state(&d, &["show", "--dn", &target_dn]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout
            .starts_with(&format!("{ENTRA} user \"{target_dn}\""))
    );
    let out = state(&d, &["show", "--dn", "CN=Nobody,DC=contoso,DC=com"]);
    assert_eq!(out.code, 1, "{}", out.all());
    assert!(
        out.stderr.contains("no connector-space object"),
        "{}",
        out.all()
    );

    // errors and pending exports
    let out = state(&d, &["errors"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "no sync errors\n"),
        "{}",
        out.all()
    );
    let out = state(&d, &["pending-exports"]);
    assert_eq!(
        (out.code, out.stdout.as_str()),
        (0, "0 object(s) with pending exports\n")
    );
}

#[test]
fn state_errors_lists_the_sync_errors_of_the_cycle() {
    let d = hr(
        "errors",
        Some(&format!("{CLEAN_HR}1007,Ivan Big,Ops,12\n")),
        "directory.jsonl",
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let sync = r.sync();
    assert_eq!(
        (sync.errors, sync.status.as_str()),
        (1, "completed-sync-errors"),
        "{sync:?}"
    );
    assert!(
        sync.notes
            .iter()
            .any(|n| n.contains("grade 12 is out of range")),
        "{sync:?}"
    );
    // The export (and the sync confirming it) ran after the failing sync: its errors are
    // still the ones `state errors` shows.
    assert_eq!(r.export("directory").adds, 4, "{}", r.out.all());
    let out = state(&d, &["errors"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.starts_with("Function Error: 1\n"),
        "{}",
        out.all()
    );
    assert!(
        out.stdout.contains("hr \"CN=1007,OU=HR\" [In from HR]: ")
            && out.stdout.contains("grade 12 is out of range"),
        "{}",
        out.all()
    );

    // An error on a joined object, in a run that also exports a change.
    d.write(
        "hr.csv",
        &CLEAN_HR
            .replace("1001,Alice Smith,Finance,3", "1001,Alice Smith,Finance,13")
            .replace("Sales", "Marketing"),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let sync = r.sync();
    assert_eq!(sync.errors, 1, "{}", r.out.all());
    assert_eq!(r.export("directory").updates, 1, "{}", r.out.all());
    let out = state(&d, &["errors"]);
    assert_eq!(out.code, 0, "{}", out.all());
    assert!(
        out.stdout.starts_with("Function Error: 1\n")
            && out.stdout.contains("hr \"CN=1001,OU=HR\" [In from HR]: ")
            && out.stdout.contains("grade 13 is out of range"),
        "the sync error is not listed:\n{}",
        out.all()
    );
}

/// An object whose sync failed is synchronized again by the next cycle's delta sync (nothing
/// changed in its source), so `idflow state errors` ("the errors of the latest sync") keeps
/// listing it while it is still in error, as Entra retries objects in error on every sync.
#[test]
fn an_object_in_error_is_retried_by_the_next_cycle() {
    let d = hr("errors-retry", Some(CLEAN_HR), "directory.jsonl");
    assert_eq!(run(&d, &[]).out.code, 0);
    d.write(
        "hr.csv",
        &CLEAN_HR.replace("1001,Alice Smith,Finance,3", "1001,Alice Smith,Finance,13"),
    );
    let r = run(&d, &[]);
    assert_eq!(r.sync().errors, 1, "{}", r.out.all());
    let r = run(&d, &[]);
    assert_eq!(
        r.sync().errors,
        1,
        "the object in error was not synchronized again:\n{}",
        r.out.all()
    );
    let out = state(&d, &["errors"]);
    assert!(
        out.stdout.contains("grade 13 is out of range"),
        "{}",
        out.all()
    );
}

#[test]
fn json_summaries_match_the_text_ones() {
    let d = hr("json", Some(CLEAN_HR), "directory.jsonl");
    let config = d.config();
    let out = idflow(&d.0, &["run", "--config", &config, "--json"]);
    assert_eq!(out.code, 0, "{}", out.all());
    let steps: Vec<serde_json::Value> = out
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(steps.len(), 5);
    let export = steps
        .iter()
        .find(|s| s["step"] == "export" && s["connector"] == "directory")
        .unwrap();
    assert_eq!(export["adds"], 4);
    assert_eq!(export["status"], "success");
}

// ---------------------------------------------------------------------------------------------
// A delta sync stages the same exports as a full sync (found here before commit 5703f12 fixed
// them in the engine).

/// A value changed in the target behind idflow's back is imported (1 update); the delta sync
/// stages the export that puts the metaverse value back.
#[test]
fn delta_sync_restores_a_value_changed_in_the_target() {
    let d = quickstart("drift");
    assert_eq!(run(&d, &[]).out.code, 0);
    let text = d.read("entra.jsonl");
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let k = lines
        .iter()
        .position(|l| l.contains("\"type\":\"user\"") && l.contains("\"department\":\""))
        .unwrap();
    let j: serde_json::Value = serde_json::from_str(&lines[k]).unwrap();
    let old = j["attrs"]["department"].as_str().unwrap().to_string();
    lines[k] = lines[k].replace(
        &format!("\"department\":\"{old}\""),
        "\"department\":\"Drifted\"",
    );
    d.write("entra.jsonl", &(lines.join("\n") + "\n"));
    let r = run(&d, &[]);
    assert_eq!(r.step("import", ENTRA).updates, 1, "{}", r.out.all());
    assert_eq!(
        r.export(ENTRA).updates,
        1,
        "the delta sync did not restore the department:\n{}",
        r.out.all()
    );
    assert_eq!(d.read("entra.jsonl"), text);
    run(&d, &["--full-sync"]).assert_no_changes();
}

/// AD objects deleted while other AD objects still refer to them (dangling `member` and
/// `manager` values): the delta sync deletes them in the target and drops the references to
/// them, as a full sync does.
#[test]
fn delta_sync_drops_references_to_deleted_objects() {
    let d = quickstart("dangling");
    assert_eq!(run(&d, &[]).out.code, 0);
    let recs = records(&d.read("ad.ldif"));
    let users = entra_users(&d);
    let chosen: Vec<(usize, String, String)> =
        synced_users(&d, &recs).into_iter().take(11).collect();
    let gone: BTreeSet<usize> = chosen.iter().map(|(i, _, _)| *i).collect();
    let kept: Vec<String> = recs
        .iter()
        .enumerate()
        .filter(|(i, _)| !gone.contains(i))
        .map(|(_, r)| r.clone())
        .collect();
    d.write("ad.ldif", &unrecords(&kept));
    let r = run(&d, &[]);
    assert_eq!(r.export(ENTRA).deletes, 11, "{}", r.out.all());
    assert!(r.export(ENTRA).updates > 0, "{}", r.out.all());
    let text = d.read("entra.jsonl").to_lowercase();
    let dangling: Vec<&String> = chosen
        .iter()
        .map(|(_, _, sam)| &users[&sam.to_lowercase()])
        .filter(|dn| text.contains(&dn.to_lowercase()))
        .collect();
    assert!(
        dangling.is_empty(),
        "the target still refers to deleted objects: {dangling:?}"
    );
    // A full sync finds nothing more to do.
    let r = run(&d, &["--full-sync"]);
    r.assert_no_changes();
}

// ---------------------------------------------------------------------------------------------
// 8. Complete reads: never delete what should stay (docs/DECISIONS.md item 25)

/// The records of `class` (the most specific `objectClass`) in a quickstart export.
fn of_class<'a>(recs: &'a [String], class: &str) -> impl Iterator<Item = &'a String> {
    let line = format!("objectClass: {class}");
    recs.iter().filter(move |r| {
        r.starts_with("dn: ")
            && logical_lines(r)
                .iter()
                .rfind(|l| l.starts_with("objectClass: "))
                .is_some_and(|l| l.eq_ignore_ascii_case(&line))
    })
}

/// A copy of the quickstart after its first cycle: the directory, the AD export and the target
/// as that cycle wrote them.
fn synced_quickstart(name: &str) -> (Dir, String, String) {
    let d = quickstart(name);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let ad = d.read("ad.ldif");
    let target = d.read("entra.jsonl");
    (d, ad, target)
}

/// A cycle `r` after the source came back as it was: nothing was added to or deleted from the
/// target, which holds what it held before, and a further cycle changes nothing.
fn assert_recovered(d: &Dir, r: &Run, target_before: &str) {
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let exp = r.export(ENTRA);
    assert_eq!((exp.adds, exp.deletes), (0, 0), "{}", r.out.all());
    assert_eq!(target_lines(d, "entra.jsonl"), parse_target(target_before));
    run(d, &[]).assert_no_changes();
}

/// Checks a cycle that read nothing usable from AD: the import stopped, nothing was staged or
/// exported, the target is as it was.
fn assert_failed_read(d: &Dir, target_before: &str, status: &str) -> Run {
    let r = run(d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", AD);
    assert_eq!(imp.status, status, "{}", r.out.all());
    let sync = r.sync();
    assert_eq!(
        (sync.adds, sync.updates, sync.deletes),
        (0, 0, 0),
        "{}",
        r.out.all()
    );
    for s in r.steps.iter().filter(|s| s.step == "export") {
        assert_eq!((s.adds, s.updates, s.deletes), (0, 0, 0), "{s:?}");
    }
    assert_eq!(d.read("entra.jsonl"), target_before, "the target changed");
    assert!(
        pending_json(d, &[]).is_empty(),
        "exports were staged from a failed read"
    );
    r
}

#[test]
fn a_missing_empty_or_header_only_source_is_a_failed_read() {
    let (d, original, target_before) = synced_quickstart("emptysrc");
    let restore = |d: &Dir| {
        let _ = std::fs::remove_file(d.path("ad.ldif"));
        d.write("ad.ldif", &original);
    };

    // Removed.
    std::fs::remove_file(d.path("ad.ldif")).unwrap();
    let r = assert_failed_read(&d, &target_before, "stopped-incomplete-read");
    let imp = r.step("import", AD);
    assert_eq!(imp.deletes, 1991, "{imp:?}");
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("1991 object(s) were imported")
                && n.contains("--allow-deletes 1991")),
        "{imp:?}"
    );
    // Empty, a header alone, a link to /dev/null.
    for text in ["", "version: 1\n", "version: 1\n\n\n"] {
        d.write("ad.ldif", text);
        assert_failed_read(&d, &target_before, "stopped-incomplete-read");
    }
    #[cfg(unix)]
    {
        std::fs::remove_file(d.path("ad.ldif")).unwrap();
        std::os::unix::fs::symlink("/dev/null", d.path("ad.ldif")).unwrap();
        assert_failed_read(&d, &target_before, "stopped-incomplete-read");
    }
    // Cut short at a record boundary: 1,200 of 1,991 objects gone, more than the threshold.
    let recs = records(&original);
    let cut = &recs[..recs.len() - 1200];
    restore(&d);
    d.write("ad.ldif", &(unrecords(cut) + "\n"));
    let r = assert_failed_read(&d, &target_before, "stopped-deletion-threshold-exceeded");
    let imp = r.step("import", AD);
    assert_eq!(imp.deletes, 1200, "{imp:?}");
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("threshold of 500") && n.contains("--allow-deletes 1200")),
        "{imp:?}"
    );
    // The source recovers: nothing happened in between.
    restore(&d);
    run(&d, &[]).assert_no_changes();
    assert_eq!(d.read("entra.jsonl"), target_before);
}

#[test]
fn a_header_only_hr_feed_deletes_nothing_unless_allowed() {
    let d = hr("hdronly", Some(CLEAN_HR), "directory.jsonl");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let target_before = d.read("directory.jsonl");
    assert_eq!(target_before.lines().count(), 4);

    d.write("hr.csv", "id,name,department,grade\n");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", "hr");
    assert_eq!(
        (imp.status.as_str(), imp.deletes),
        ("stopped-incomplete-read", 4),
        "{}",
        r.out.all()
    );
    assert_eq!(r.export("directory").deletes, 0, "{}", r.out.all());
    assert_eq!(d.read("directory.jsonl"), target_before);

    // A smaller allowance is not enough; the whole count is.
    let r = run(&d, &["--allow-deletes", "3"]);
    assert_eq!(r.step("import", "hr").status, "stopped-incomplete-read");
    assert_eq!(d.read("directory.jsonl"), target_before);
    let r = run(&d, &["--allow-deletes", "4"]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.step("import", "hr").deletes, 4, "{}", r.out.all());
    assert_eq!(r.export("directory").deletes, 4, "{}", r.out.all());
    assert_eq!(d.read("directory.jsonl").lines().count(), 0);
    run(&d, &[]).assert_no_changes();
}

#[test]
fn held_back_deletes_are_cancelled_when_their_objects_come_back() {
    let (d, original, target_before) = synced_quickstart("heldback");
    d.set("delete_threshold", "10");
    let recs = records(&original);
    let gone: BTreeSet<String> = of_class(&recs, "group")
        .take(8)
        .chain(of_class(&recs, "contact").take(4))
        .map(|r| value_of(r, "dn").unwrap().to_lowercase())
        .collect();
    assert_eq!(gone.len(), 12);
    d.write("ad.ldif", &unrecords(&remove_objects(&recs, &gone)));
    // The import is let through once; the export is held back by the threshold.
    let r = import_ad_allowing(&d, 12);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.step("import", AD).deletes, 12, "{}", r.out.all());
    let r = run(&d, &[]);
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.status.as_str(), exp.deletes),
        ("stopped-deletion-threshold-exceeded", 12),
        "{}",
        r.out.all()
    );
    assert_eq!(d.read("entra.jsonl"), target_before);

    // The source recovers: the objects rejoin their target objects and no delete goes out.
    d.write("ad.ldif", &original);
    let r = run(&d, &[]);
    assert!(
        pending_objects(&pending_json(&d, &[]))
            .iter()
            .all(|(_, op, _)| op != "delete"),
        "a delete is still pending"
    );
    assert_recovered(&d, &r, &target_before);
}

#[test]
fn a_delete_staged_in_staging_mode_is_cancelled_when_the_object_comes_back() {
    let (d, original, target_before) = synced_quickstart("stagedel");
    let recs = records(&original);
    let group = value_of(of_class(&recs, "group").nth(3).unwrap(), "dn")
        .unwrap()
        .to_lowercase();
    d.write(
        "ad.ldif",
        &unrecords(&remove_objects(&recs, &BTreeSet::from([group]))),
    );
    d.set("staging", "true");
    let r = run(&d, &[]);
    let exp = r.export(ENTRA);
    assert_eq!(
        (exp.status.as_str(), exp.deletes),
        ("staged", 1),
        "{}",
        r.out.all()
    );

    d.write("ad.ldif", &original);
    d.set("staging", "false");
    let r = run(&d, &[]);
    assert_recovered(&d, &r, &target_before);
}

#[test]
fn objects_the_engine_skips_are_never_deleted() {
    let (d, original, target_before) = synced_quickstart("skipped");
    let recs = records(&original);
    let users = synced_users(&d, &recs);
    let (a, a_dn, _) = users[5].clone();
    let (b, b_dn, _) = users[15].clone();
    let (_, c_dn, _) = users[25].clone();
    // a: its anchor is gone; b: its object class is unknown; c: removed for real.
    let mut bad = recs.clone();
    let lines = logical_lines(&bad[a]);
    assert!(lines.iter().any(|l| l.starts_with("objectGUID:")));
    bad[a] = lines
        .into_iter()
        .filter(|l| !l.starts_with("objectGUID:"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(bad[b].contains("\nobjectClass: user\n"));
    bad[b] = bad[b].replace("\nobjectClass: user\n", "\nobjectClass: auxThing\n");
    let bad = remove_objects(&bad, &BTreeSet::from([c_dn.to_lowercase()]));
    d.write("ad.ldif", &unrecords(&bad));

    let r = run(&d, &[]);
    assert_eq!(r.out.code, 1, "{}", r.out.all());
    let imp = r.step("import", AD);
    assert_eq!(
        (imp.status.as_str(), imp.errors, imp.deletes),
        ("completed-warnings", 2, 0),
        "{}",
        r.out.all()
    );
    for (dn, why) in [(&a_dn, "anchor"), (&b_dn, "auxThing")] {
        assert!(
            imp.notes
                .iter()
                .any(|n| n.starts_with(dn.as_str()) && n.contains(why) && n.contains("skipped")),
            "{dn}: {imp:?}"
        );
    }
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("deletions are not staged")),
        "{imp:?}"
    );
    assert_eq!(r.export(ENTRA).deletes, 0, "{}", r.out.all());
    assert_eq!(
        target_lines(&d, "entra.jsonl").len(),
        parse_target(&target_before).len(),
        "an object was deleted"
    );
}

// ---------------------------------------------------------------------------------------------
// 9. DNs are compared parsed

/// A small AD-to-directory deployment: an LDIF source filtered to `OU=CORP` and a JSON-lines
/// target whose DNs the `dn` flow builds from the employee id.
fn corp(name: &str, ldif: &str) -> Dir {
    let d = Dir::new(name);
    std::fs::create_dir_all(d.path("bundle")).unwrap();
    d.write(
        "bundle/corp.idf",
        r#"bundle "corp-run"

metaverse {
  object person {
    employeeId  string
    displayName string
  }
}

connector "contoso.com" ad {
  object user anchor objectGUID {
    objectGUID  binary
    employeeID  string
    displayName string
  }
}

connector "directory" jsonl {
  object account anchor accountId {
    accountId   string
    employeeId  string
    displayName string
  }
}

inbound rule "In from AD" {
  connector "contoso.com"
  source user
  target person
  link provision
  precedence 1
  join {
    employeeID = employeeId
  }
  flow employeeId  <- [employeeID]
  flow displayName <- [displayName]
}

inbound rule "In from directory - Join" {
  connector "directory"
  source account
  target person
  link join
  precedence 2
  join {
    employeeId = employeeId
  }
}

outbound rule "Out to directory" {
  connector "directory"
  source person
  target account
  link provision
  precedence 10
  join {
    employeeId = employeeId
  }
  flow employeeId  <- [employeeId]
  flow displayName <- [displayName]
  flow dn          <- "CN=" & [employeeId] & ",OU=People,DC=example,DC=com"
}
"#,
    );
    d.write("ad.ldif", ldif);
    d.write(
        "idflow.toml",
        r#"bundle = "bundle"
state = "idflow.db"
delete_threshold = 500

[connectors."contoso.com"]
kind = "ldif"
path = "ad.ldif"

[[connectors."contoso.com".partitions]]
name = "DC=contoso,DC=com"
include = ["OU=CORP,DC=contoso,DC=com"]

[connectors.directory]
kind = "jsonl"
path = "directory.jsonl"
"#,
    );
    d
}

/// An LDIF user record.
fn ldif_user(dn: &str, guid: &str, id: &str, name: &str) -> String {
    format!(
        "dn: {dn}\nobjectClass: top\nobjectClass: user\nobjectGUID:: {guid}\nemployeeID: {id}\ndisplayName: {name}\n"
    )
}

#[test]
fn partitions_and_import_matching_compare_parsed_dns() {
    let aisha = |dn: &str| ldif_user(dn, "m9WceCvjEkG0J7YiSHXn6Q==", "1", "Aisha Allen");
    // Directly under the domain root: the escaped comma is part of the CN.
    let sneaky = ldif_user(
        r"CN=Sneaky\,OU=CORP,DC=contoso,DC=com",
        "jYuZYjvdGUCmtFgtzDntUg==",
        "2",
        "Sneaky",
    );
    let first = format!(
        "version: 1\n\n{}\n{sneaky}",
        aisha("CN=Aisha Allen,OU=Users,OU=CORP,DC=contoso,DC=com")
    );
    let d = corp("dns", &first);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.step("import", "contoso.com").adds, 1, "{}", r.out.all());
    let target = target_lines(&d, "directory.jsonl");
    assert_eq!(
        target.keys().cloned().collect::<Vec<_>>(),
        ["cn=1,ou=people,dc=example,dc=com"],
        "only Aisha is in scope:\n{}",
        r.out.all()
    );

    // The same DN spelled with spaces and another case: the same object, in scope, nothing
    // deleted or renamed.
    let second = format!(
        "version: 1\n\n{}\n{sneaky}",
        aisha("cn=Aisha Allen, OU=Users, ou=corp, DC=Contoso, DC=com")
    );
    d.write("ad.ldif", &second);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let imp = r.step("import", "contoso.com");
    assert_eq!(
        (imp.deletes, imp.renames, imp.adds),
        (0, 0, 0),
        "{}",
        r.out.all()
    );
    let exp = r.export("directory");
    assert_eq!((exp.adds, exp.deletes), (0, 0), "{}", r.out.all());
    assert_eq!(target_lines(&d, "directory.jsonl"), target);
    run(&d, &[]).assert_no_changes();

    // An object whose DN does not parse is rejected with the place of the error.
    let bad = ldif_user(
        r"CN=Bad\q,OU=CORP,DC=contoso,DC=com",
        "AQUAAAAAAAUVAAAAx/f+1w==",
        "3",
        "Bad",
    );
    d.write("ad.ldif", &format!("{second}\n{bad}"));
    let r = run(&d, &[]);
    let imp = r.step("import", "contoso.com");
    assert_eq!((imp.adds, imp.errors), (0, 1), "{}", r.out.all());
    assert!(
        imp.notes
            .iter()
            .any(|n| n.contains("the DN does not parse: at byte 6")),
        "{imp:?}"
    );
    assert_eq!(target_lines(&d, "directory.jsonl"), target);
}

// ---------------------------------------------------------------------------------------------
// 11. Removing a plain attribute; a withheld value released

/// A department removed in the source (an empty CSV cell) is exported as the removal of the
/// attribute: one update, the attribute is gone from the target object and nothing else
/// changes there, and a second run finds nothing to do (the confirming import shows the
/// attribute absent, as exported).
#[test]
fn removing_an_attribute_in_the_source_removes_it_in_the_target() {
    let d = hr("remove-attr", Some(CLEAN_HR), "directory.jsonl");
    let first = run(&d, &[]);
    assert_eq!(first.out.code, 0, "{}", first.out.all());
    run(&d, &[]).assert_no_changes();
    let before = target_lines(&d, "directory.jsonl");
    let bob = "cn=1002,ou=people,dc=example,dc=com";
    let line: serde_json::Value = serde_json::from_str(&before[bob]).unwrap();
    assert_eq!(line["attrs"]["department"].as_str(), Some("Sales"));

    d.write(
        "hr.csv",
        &CLEAN_HR.replace("1002,Bob Jones,Sales,2", "1002,Bob Jones,,2"),
    );
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let imp = r.step("import", "hr");
    assert_eq!((imp.adds, imp.updates, imp.deletes), (0, 1, 0), "{imp:?}");
    let exp = r.export("directory");
    assert_eq!(
        (exp.adds, exp.updates, exp.deletes, exp.renames, exp.errors),
        (0, 1, 0, 0, 0),
        "exactly one update:\n{}",
        r.out.all()
    );
    assert_eq!(exp.status, "success", "{exp:?}");
    let after = target_lines(&d, "directory.jsonl");
    assert_eq!(
        after.keys().collect::<Vec<_>>(),
        before.keys().collect::<Vec<_>>()
    );
    for (dn, text) in &after {
        if dn != bob {
            assert_eq!(text, &before[dn], "{dn} is unchanged");
        }
    }
    let mut want: serde_json::Value = serde_json::from_str(&before[bob]).unwrap();
    want["attrs"].as_object_mut().unwrap().remove("department");
    let got: serde_json::Value = serde_json::from_str(&after[bob]).unwrap();
    assert_eq!(got, want, "only the department is gone");

    let again = run(&d, &[]);
    again.assert_no_changes();
    assert_eq!(target_lines(&d, "directory.jsonl"), after);
}

// ---------------------------------------------------------------------------------------------
// Duplicate attribute resiliency across runs

/// A deployment whose target's `mail` is unique: an HR CSV provisions accounts into a JSON-lines
/// directory.
fn unique_mail(name: &str, csv: &str) -> Dir {
    let d = Dir::new(name);
    d.write(
        "unique.idf",
        r#"bundle "unique-run"

metaverse {
  object person {
    employeeId string
    mail       string
  }
}

connector "hr" csv {
  object worker anchor id {
    id   string
    mail string
  }
}

connector "directory" jsonl {
  object account anchor accountId {
    accountId  string
    employeeId string
    mail       string unique
  }
}

inbound rule "In from HR" {
  connector "hr"
  source worker
  target person
  link provision
  precedence 1
  flow employeeId <- [id]
  flow mail       <- [mail]
}

outbound rule "Out to directory" {
  connector "directory"
  source person
  target account
  link provision
  precedence 10
  flow dn         <- "CN=" & [employeeId] & ",OU=People"
  flow employeeId <- [employeeId]
  flow mail       <- [mail]
}
"#,
    );
    d.write("hr.csv", csv);
    d.write(
        "idflow.toml",
        r#"bundle = "unique.idf"
state = "idflow.db"

[connectors.hr]
kind = "csv"
path = "hr.csv"
object_type = "worker"
anchor = "id"
dn = "CN={id},OU=HR"

[connectors.directory]
kind = "jsonl"
path = "directory.jsonl"
"#,
    );
    d
}

/// The `mail` of each account of the directory file: DN (lower case) → mail.
fn mails(d: &Dir) -> BTreeMap<String, Option<String>> {
    target_lines(d, "directory.jsonl")
        .into_iter()
        .map(|(dn, line)| {
            let j: serde_json::Value = serde_json::from_str(&line).unwrap();
            (dn, j["attrs"]["mail"].as_str().map(str::to_string))
        })
        .collect()
}

/// Two workers claim the same unique mail: the second one's value is withheld (a Duplicate
/// Attribute error, the account is created without it), and stays withheld, run after run,
/// while the holder's account holds it. The holder leaves: its account is deleted, and once
/// the delete is confirmed the next run exports the released value to the other account.
/// Between runs the withheld set lives only in the store.
#[test]
fn a_withheld_duplicate_is_exported_when_its_holder_leaves() {
    let both = "id,mail\n1,shared@contoso.com\n2,Shared@contoso.com\n";
    let d = unique_mail("withheld", both);
    // A run with sync errors exits with 1.
    let first = run(&d, &[]);
    assert_eq!(first.out.code, 1, "{}", first.out.all());
    assert_eq!(first.sync().errors, 1, "{}", first.out.all());
    assert_eq!(first.export("directory").adds, 2, "{}", first.out.all());
    let (one, two) = ("cn=1,ou=people", "cn=2,ou=people");
    let want: BTreeMap<String, Option<String>> = [
        (one.to_string(), Some("shared@contoso.com".to_string())),
        (two.to_string(), None),
    ]
    .into();
    assert_eq!(mails(&d), want, "the second mail is withheld");
    let errors = state(&d, &["errors"]);
    assert!(
        errors.stdout.contains("Duplicate Attribute"),
        "{}",
        errors.all()
    );

    // Still held: nothing to export.
    let second = run(&d, &[]);
    assert_eq!(second.out.code, 1, "{}", second.out.all());
    assert_eq!(second.sync().errors, 1, "{}", second.out.all());
    let exp = second.export("directory");
    assert_eq!((exp.adds, exp.updates, exp.deletes), (0, 0, 0), "{exp:?}");

    // The holder leaves: its account is deleted; the value is released once the target
    // confirms the delete.
    d.write("hr.csv", "id,mail\n2,Shared@contoso.com\n");
    let third = run(&d, &[]);
    assert_eq!(third.sync().errors, 1, "{}", third.out.all());
    let exp = third.export("directory");
    assert_eq!((exp.adds, exp.updates, exp.deletes), (0, 0, 1), "{exp:?}");
    let fourth = run(&d, &[]);
    assert_eq!(fourth.out.code, 0, "{}", fourth.out.all());
    assert_eq!(fourth.sync().errors, 0, "{}", fourth.out.all());
    let exp = fourth.export("directory");
    assert_eq!(
        (exp.adds, exp.updates, exp.deletes),
        (0, 1, 0),
        "the released value is exported:\n{}",
        fourth.out.all()
    );
    let want: BTreeMap<String, Option<String>> =
        [(two.to_string(), Some("Shared@contoso.com".to_string()))].into();
    assert_eq!(mails(&d), want);
    run(&d, &[]).assert_no_changes();
}

// ---------------------------------------------------------------------------------------------
// 10. An unchanged file is not read again (docs/DECISIONS.md item 28)

#[test]
fn a_delta_import_of_an_unchanged_file_reads_nothing() {
    let unchanged = |s: &Step| {
        s.notes
            .iter()
            .any(|n| n.contains("unchanged since the last import"))
    };
    let d = hr("unchanged", Some(CLEAN_HR), "directory.jsonl");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert!(!unchanged(r.step("import", "hr")), "{}", r.out.all());

    // Nothing changed: both imports are skipped, and the cycle changes nothing.
    let r = run(&d, &[]);
    r.assert_no_changes();
    assert!(unchanged(r.step("import", "hr")), "{}", r.out.all());
    assert!(unchanged(r.step("import", "directory")), "{}", r.out.all());

    // A full import always reads.
    let r = run(&d, &["--profile", "full-import"]);
    assert!(!unchanged(r.step("import", "hr")), "{}", r.out.all());

    // A changed file is read.
    d.write("hr.csv", &CLEAN_HR.replace("Finance", "Treasury"));
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let imp = r.step("import", "hr");
    assert!(!unchanged(imp), "{}", r.out.all());
    assert_eq!(imp.updates, 1, "{}", r.out.all());
    assert_eq!(r.export("directory").updates, 1, "{}", r.out.all());

    // A file with rejected records is read again every time: its errors stay in view.
    d.write(
        "hr.csv",
        &format!("{CLEAN_HR}1007,too,many,fields,here\n").replace("Treasury", "Finance"),
    );
    let r = run(&d, &[]);
    assert_eq!(r.step("import", "hr").errors, 1, "{}", r.out.all());
    let r = run(&d, &[]);
    let imp = r.step("import", "hr");
    assert!(!unchanged(imp), "{}", r.out.all());
    assert_eq!(imp.errors, 1, "{}", r.out.all());
}

/// A changed file is read page by page and diffed entry by entry against the connector space:
/// the import reports the entries that changed and nothing else, in a file of several pages.
#[test]
fn a_delta_import_of_a_changed_file_reports_exactly_the_changed_entries() {
    let unchanged = |s: &Step| {
        s.notes
            .iter()
            .any(|n| n.contains("unchanged since the last import"))
    };
    let header = "id,name,department,grade\n";
    let row = |i: usize, department: &str| format!("{i},Person {i},{department},{}\n", i % 5 + 1);
    let mut csv = String::from(header);
    for i in 1000..3500 {
        csv.push_str(&row(i, "Finance"));
    }
    let d = hr("changed-entries", Some(&csv), "directory.jsonl");
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.step("import", "hr").adds, 2500, "{}", r.out.all());
    assert_eq!(r.export("directory").adds, 2500, "{}", r.out.all());

    // Nothing changed: the delta imports of both files are skipped.
    let r = run(&d, &["--profile", "delta-import"]);
    r.assert_no_changes();
    assert!(unchanged(r.step("import", "hr")), "{}", r.out.all());
    assert!(unchanged(r.step("import", "directory")), "{}", r.out.all());

    // Three rows changed (in three pages), one removed, one added.
    let mut changed = String::from(header);
    for i in 1000..3500 {
        if i == 1001 {
            continue;
        }
        let department = if matches!(i, 1500 | 2500 | 3499) {
            "Sales"
        } else {
            "Finance"
        };
        changed.push_str(&row(i, department));
    }
    changed.push_str(&row(9000, "IT"));
    d.write("hr.csv", &changed);
    let r = run(&d, &["--profile", "delta-import"]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let imp = r.step("import", "hr");
    assert!(!unchanged(imp), "{}", r.out.all());
    assert_eq!(
        (imp.adds, imp.updates, imp.deletes, imp.renames, imp.errors),
        (1, 3, 1, 0, 0),
        "{}",
        r.out.all()
    );
    assert!(unchanged(r.step("import", "directory")), "{}", r.out.all());

    // The cycle carries exactly those changes to the directory.
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert!(unchanged(r.step("import", "hr")), "{}", r.out.all());
    let exp = r.export("directory");
    assert_eq!(
        (exp.adds, exp.updates, exp.deletes, exp.errors),
        (1, 3, 1, 0),
        "{}",
        r.out.all()
    );
    run(&d, &[]).assert_no_changes();
}

// ---------------------------------------------------------------------------------------------
// 12. Export deltas: typed pending exports, value-level multi-valued changes

const TYPED_BUNDLE: &str = r#"bundle "typed"

metaverse {
  object person {
    employeeId string
    grade      integer
    active     boolean
    photo      binary
    mails      string multi
  }
}

connector "src" jsonl {
  object worker anchor id {
    id     string
    grade  integer
    active boolean
    photo  binary
    mails  string multi
  }
}

connector "dst" jsonl {
  object account anchor accountId {
    accountId  string
    employeeId string
    grade      integer
    active     boolean
    photo      binary
    mails      string multi
  }
}

inbound rule "In from src" {
  connector "src"  source worker  target person  link provision  precedence 1
  join { id = employeeId }
  flow employeeId <- [id]
  flow grade      <- [grade]
  flow active     <- [active]
  flow photo      <- [photo]
  flow mails      <- [mails]
}

outbound rule "Out to dst" {
  connector "dst"  source person  target account  link provision  precedence 10
  join { employeeId = employeeId }
  flow employeeId <- [employeeId]
  flow grade      <- [grade]
  flow active     <- [active]
  flow photo      <- [photo]
  flow mails      <- [mails]
  flow dn         <- "CN=" & [employeeId] & ",OU=People,DC=example,DC=com"
}
"#;

/// A deployment of [`TYPED_BUNDLE`]: one worker in `src.jsonl` with these mails, provisioned
/// into `dst.jsonl`; staging mode on.
fn typed(name: &str, mails: &[&str]) -> Dir {
    let d = Dir::new(name);
    std::fs::create_dir_all(d.path("bundle")).unwrap();
    d.write("bundle/typed.idf", TYPED_BUNDLE);
    d.write(
        "idflow.toml",
        "bundle = \"bundle\"\nstate = \"idflow.db\"\nstaging = true\n\n\
         [connectors.src]\nkind = \"jsonl\"\npath = \"src.jsonl\"\n\n\
         [connectors.dst]\nkind = \"jsonl\"\npath = \"dst.jsonl\"\n",
    );
    typed_source(&d, mails);
    d
}

fn typed_source(d: &Dir, mails: &[&str]) {
    let line = serde_json::json!({
        "dn": "CN=1,OU=Src",
        "type": "worker",
        "attrs": {"id": "1", "grade": 3, "active": true, "photo": {"$binary": "AAEC"}, "mails": mails},
    });
    d.write("src.jsonl", &format!("{line}\n"));
}

/// The mails the target file holds for the one account.
fn target_mails(d: &Dir) -> serde_json::Value {
    let text = d.read("dst.jsonl");
    let line = text.lines().next().expect("one account");
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    v["attrs"]["mails"].clone()
}

#[test]
fn pending_exports_carry_typed_values_and_value_level_changes() {
    use serde_json::json;
    let d = typed("typed", &["a@x", "b@x"]);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    assert_eq!(r.export("dst").adds, 1, "{}", r.out.all());

    // An add: one replace row per attribute, each value in its JSON type.
    let rows = pending_json(&d, &["--connector", "dst"]);
    let of = |attr: &str| -> serde_json::Value {
        let row = rows
            .iter()
            .find(|r| r["attribute"] == attr)
            .unwrap_or_else(|| panic!("no row for {attr}: {rows:?}"));
        assert_eq!(row["operation"], "add", "{row}");
        assert_eq!(row["change"], "replace", "{row}");
        row["values"].clone()
    };
    assert_eq!(of("grade"), json!(3));
    assert_eq!(of("active"), json!(true));
    assert_eq!(of("photo"), json!({"$binary": "AAEC"}));
    assert_eq!(of("mails"), json!(["a@x", "b@x"]));
    assert_eq!(of("employeeId"), json!("1"));

    d.set("staging", "false");
    let r = run(&d, &[]);
    assert_eq!(r.export("dst").adds, 1, "{}", r.out.all());
    assert_eq!(target_mails(&d), json!(["a@x", "b@x"]));
    assert!(pending_json(&d, &[]).is_empty());

    // One value more, in the middle: one value add of that value.
    d.set("staging", "true");
    typed_source(&d, &["a@x", "c@x", "b@x"]);
    let r = run(&d, &[]);
    assert_eq!(r.out.code, 0, "{}", r.out.all());
    let rows = pending_json(&d, &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["operation"], "update");
    assert_eq!(rows[0]["attribute"], "mails");
    assert_eq!(rows[0]["change"], "add");
    assert_eq!(rows[0]["values"], json!(["c@x"]));
    assert!(rows[0].get("old").is_none(), "{rows:?}");
    let text = state(&d, &["pending-exports"]);
    assert!(
        text.stdout.contains("    add mails: [\"c@x\"]\n"),
        "{}",
        text.all()
    );

    // The file target applies the value add; the order of values is no change afterwards.
    d.set("staging", "false");
    let r = run(&d, &[]);
    assert_eq!(r.export("dst").updates, 1, "{}", r.out.all());
    assert_eq!(target_mails(&d), json!(["a@x", "b@x", "c@x"]));
    run(&d, &[]).assert_no_changes();

    // One value fewer: one value remove.
    d.set("staging", "true");
    typed_source(&d, &["c@x", "b@x"]);
    run(&d, &[]);
    let rows = pending_json(&d, &[]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (&rows[0]["change"], &rows[0]["values"]),
        (&json!("remove"), &json!(["a@x"]))
    );
    d.set("staging", "false");
    run(&d, &[]);
    assert_eq!(target_mails(&d), json!(["b@x", "c@x"]));
    run(&d, &[]).assert_no_changes();
}
