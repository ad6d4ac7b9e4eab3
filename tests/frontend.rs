//! Data-driven tests of the front end: syntax fixtures (AST dumps and diagnostics as snapshots),
//! checker fixtures with `# expect: CODE` annotations on the offending lines, and coverage of
//! every diagnostic code.
//!
//! Annotations: `# expect: E0201 W0601` at the end of a line expects exactly those codes on that
//! line; a line `# expect-below: E0002` expects them on the next line. Every diagnostic must be
//! expected and every expectation met. Snapshots: `INSTA_UPDATE=always cargo test` rewrites them.

use idflow::diag::render::{self, Style};
use idflow::diag::{Diagnostic, codes};
use idflow::frontend;
use idflow::source::SourceMap;
use idflow::syntax;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn fixtures(dir: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "idf"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", root.display());
    files
}

fn rel(p: &Path) -> String {
    p.strip_prefix(env!("CARGO_MANIFEST_DIR"))
        .unwrap_or(p)
        .display()
        .to_string()
}

/// (line, code) pairs from the annotations of a fixture.
fn expectations(text: &str) -> BTreeSet<(usize, String)> {
    let mut out = BTreeSet::new();
    for (i, line) in text.lines().enumerate() {
        for (marker, offset) in [("# expect:", 1), ("# expect-below:", 2)] {
            if let Some(pos) = line.find(marker) {
                let rest = &line[pos + marker.len()..];
                let rest = rest.split('#').next().unwrap_or("");
                for code in rest.split_whitespace() {
                    out.insert((i + offset, code.to_string()));
                }
            }
        }
    }
    out
}

fn found(map: &SourceMap, diags: &[Diagnostic], file: usize) -> BTreeSet<(usize, String)> {
    diags
        .iter()
        .filter(|d| d.file.0 as usize == file)
        .map(|d| (map.get(d.file).line_of(d.span.start), d.code.to_string()))
        .collect()
}

fn assert_annotations(path: &Path, map: &SourceMap, diags: &[Diagnostic], file: usize) {
    let text = &map.files()[file].text;
    let want = expectations(text);
    let got = found(map, diags, file);
    let missing: Vec<_> = want.difference(&got).collect();
    let unexpected: Vec<_> = got.difference(&want).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "{}: missing {missing:?}, unexpected {unexpected:?}\n{}",
        rel(path),
        rendered(map, diags)
    );
}

fn rendered(map: &SourceMap, diags: &[Diagnostic]) -> String {
    diags
        .iter()
        .map(|d| render::human(map, d, Style::Plain))
        .collect()
}

fn snapshot_name(p: &Path) -> String {
    p.file_stem().unwrap().to_string_lossy().into_owned()
}

#[test]
fn syntax_ok_fixtures_parse_cleanly() {
    for path in fixtures("syntax/ok") {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut map = SourceMap::new();
        let id = map.add(rel(&path), text.clone());
        let (parsed, diags) = syntax::parse(id, &text);
        assert!(
            diags.is_empty(),
            "{}:\n{}",
            rel(&path),
            rendered(&map, &diags)
        );
        insta::assert_snapshot!(
            format!("syntax_ok__{}", snapshot_name(&path)),
            syntax::dump::file(&parsed.file)
        );
    }
}

#[test]
fn syntax_err_fixtures_report_every_error() {
    for path in fixtures("syntax/err") {
        let text = std::fs::read_to_string(&path).unwrap();
        let mut map = SourceMap::new();
        let id = map.add(rel(&path), text.clone());
        let (_, diags) = syntax::parse(id, &text);
        assert_annotations(&path, &map, &diags, 0);
        insta::assert_snapshot!(
            format!("syntax_err__{}", snapshot_name(&path)),
            rendered(&map, &diags)
        );
    }
}

/// Checks a fixture together with `tests/fixtures/common.idf` unless its first line says
/// `standalone`.
fn check_fixture(path: &Path) -> (SourceMap, Vec<Diagnostic>, usize) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut map = SourceMap::new();
    let mut index = 0;
    if !text.lines().next().unwrap_or("").contains("standalone") {
        let common = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/common.idf");
        map.add(rel(&common), std::fs::read_to_string(&common).unwrap());
        index = 1;
    }
    map.add(rel(path), text);
    let checked = frontend::check(&map);
    (map, checked.diagnostics, index)
}

#[test]
fn check_fixtures_report_exactly_the_annotated_diagnostics() {
    for path in fixtures("check") {
        let (map, diags, index) = check_fixture(&path);
        assert!(
            diags.iter().all(|d| d.file.0 as usize == index),
            "common.idf must stay clean:\n{}",
            rendered(&map, &diags)
        );
        assert_annotations(&path, &map, &diags, index);
        insta::assert_snapshot!(
            format!("check__{}", snapshot_name(&path)),
            rendered(&map, &diags)
        );
    }
}

#[test]
fn every_diagnostic_code_is_exercised_by_a_fixture() {
    let mut seen = BTreeSet::new();
    for dir in ["check", "syntax/err"] {
        for path in fixtures(dir) {
            let text = std::fs::read_to_string(&path).unwrap();
            seen.extend(expectations(&text).into_iter().map(|(_, c)| c));
        }
    }
    // Runtime codes (E05xx) are exercised by the conformance suite (tests/conformance.rs).
    let missing: Vec<&str> = codes::CODES
        .iter()
        .map(|c| c.code)
        .filter(|c| !c.starts_with("E05") && !seen.contains(*c))
        .collect();
    assert!(missing.is_empty(), "codes without a fixture: {missing:?}");
    let unknown: Vec<&String> = seen.iter().filter(|c| codes::find(c).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "fixtures expect unregistered codes: {unknown:?}"
    );
}

#[test]
fn codes_are_unique_and_documented() {
    let mut set = BTreeSet::new();
    for c in codes::CODES {
        assert!(set.insert(c.code), "duplicate code {}", c.code);
        assert!(
            !c.summary.is_empty() && !c.example.is_empty(),
            "{} lacks docs",
            c.code
        );
        let warning = c.code.starts_with('W');
        assert_eq!(
            warning,
            c.severity == idflow::diag::Severity::Warning,
            "{}: prefix and severity disagree",
            c.code
        );
    }
}

#[test]
fn shipped_bundles_check_clean() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for entry in std::fs::read_dir(&root).unwrap() {
        let dir = entry.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        let files = idflow::source::collect_idf_files(std::slice::from_ref(&dir)).unwrap();
        let map = idflow::source::load(&files).unwrap();
        let checked = frontend::check(&map);
        assert!(
            checked.diagnostics.is_empty(),
            "{}:\n{}",
            rel(&dir),
            rendered(&map, &checked.diagnostics)
        );
        assert!(!checked.bundle.rules.is_empty());
    }
}
