//! End-to-end tests of `idflow import entra` on the real Contoso export in
//! `../shared/data/entra-contoso-2016` (read in place, never copied into the repository).

use std::path::{Path, PathBuf};
use std::process::Command;

fn contoso() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/entra-contoso-2016")
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("idflow-import-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

fn idflow(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_idflow"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Counts elements in the rule XML files directly, independently of the importer.
fn xml_counts() -> (usize, usize, usize, usize) {
    let dir = contoso().join("SynchronizationRules");
    let (mut rules, mut scopes, mut joins, mut flows) = (0, 0, 0, 0);
    for e in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(e.unwrap().path()).unwrap();
        rules += 1;
        scopes += text.matches("<scope>").count();
        joins += text.matches("<condition>").count();
        flows += text.matches("<mapping>").count() + text.matches("<mapping ").count();
    }
    (rules, scopes, joins, flows)
}

#[test]
fn contoso_imports_completely_and_checks_clean() {
    let out = tempdir("contoso");
    let src = contoso();
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "import failed:\n{stderr}");
    assert!(
        stderr.contains("0 unmapped constructs, 0 errors"),
        "{stderr}"
    );

    // Every rule and flow came through: compare the XML with the checked bundle.
    let (rules, scopes, joins, flows) = xml_counts();
    assert_eq!(rules, 62);
    let files = idflow::source::collect_idf_files(std::slice::from_ref(&out)).unwrap();
    let map = idflow::source::load(&files).unwrap();
    let checked = idflow::frontend::check(&map);
    assert!(!checked.has_errors());
    let b = &checked.bundle;
    assert_eq!(b.rules.len(), rules);
    let scope_clauses: usize = b
        .rules
        .iter()
        .map(|r| r.scope.iter().map(Vec::len).sum::<usize>())
        .sum();
    let join_conditions: usize = b
        .rules
        .iter()
        .map(|r| r.joins.iter().map(Vec::len).sum::<usize>())
        .sum();
    let bundle_flows: usize = b.rules.iter().map(|r| r.flows.len()).sum();
    assert_eq!(
        (scope_clauses, join_conditions, bundle_flows),
        (scopes, joins, flows)
    );

    // Files a person would choose: by direction, connector and object type.
    for f in [
        "bundle.idf",
        "idflow.toml",
        "inbound/contoso-com-user.idf",
        "outbound/contoso-onmicrosoft-com-user.idf",
    ] {
        assert!(out.join(f).is_file(), "{f} missing");
    }
    // The output is canonical.
    let (code, stdout, _) = idflow(&["fmt", "--check", out.to_str().unwrap()]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    // A second import into the same folder refuses to overwrite.
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        src.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--force"));
}

#[test]
fn a_missing_source_is_a_usage_error() {
    let (code, _, stderr) = idflow(&["import", "entra", "no/such/export", "-o", "/tmp/x"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("no/such/export"), "{stderr}");
}

#[test]
fn unmapped_constructs_fail_the_import_unless_partial_is_allowed() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/unknown.ps1");
    let out = tempdir("partial");
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        script.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("unmapped:") && stderr.contains("nothing written"),
        "{stderr}"
    );
    assert!(!out.exists(), "files were written without --allow-partial");
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        script.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--allow-partial",
    ]);
    // Written, but not everything came through: still exit 1.
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("wrote 1 files"), "{stderr}");
    assert!(out.join("inbound").is_dir() || out.join("outbound").is_dir());
}

#[test]
fn script_rules_are_checked_against_an_existing_bundle() {
    let out = tempdir("script-into-bundle");
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        contoso().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/two-rules.ps1");
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        script.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--connector",
        "ae4db4cc-b16b-4eb2-acf5-837ca84e4d7d=contoso.com",
        "--connector",
        "4a85c66f-18fc-4937-bad3-b282fbff6b2c=contoso.com",
    ]);
    // The script's outbound rule uses stickyjoin, which only inbound rules may use: the check
    // against the bundle finds it.
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("E0110") && stderr.contains("nothing written"),
        "{stderr}"
    );
    let contacts = std::fs::read_to_string(out.join("inbound/contoso-com-contact.idf")).unwrap();
    assert!(
        !contacts.contains("Custom - In from AD"),
        "the bundle was changed although the check failed"
    );
    // Forced through, the rules join the existing file of their group after its own rules.
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        script.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
        "--connector",
        "ae4db4cc-b16b-4eb2-acf5-837ca84e4d7d=contoso.com",
        "--connector",
        "4a85c66f-18fc-4937-bad3-b282fbff6b2c=contoso.com",
        "--allow-partial",
    ]);
    assert_eq!(code, 1, "{stderr}");
    let contacts = std::fs::read_to_string(out.join("inbound/contoso-com-contact.idf")).unwrap();
    assert!(
        contacts.contains("In from AD - Contact Join"),
        "existing rules were lost"
    );
    assert!(contacts.matches("inbound rule").count() > 3, "{contacts}");
}

/// The shipped `rules/entra-default` is the Contoso import plus exactly the changes its README
/// documents: a re-import is compared rule by rule and the differences must be those.
#[test]
fn the_default_bundle_is_the_import_plus_its_documented_changes() {
    use idflow::sema::rules::RuleDef;
    use std::collections::BTreeMap;
    let out = tempdir("default-bundle");
    let (code, _, stderr) = idflow(&[
        "import",
        "entra",
        contoso().to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let load = |dir: &Path| {
        let files = idflow::source::collect_idf_files(&[dir.to_path_buf()]).unwrap();
        let map = idflow::source::load(&files).unwrap();
        idflow::frontend::check(&map).bundle
    };
    let imported = load(&out);
    let shipped = load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default"));
    let by_name = |rules: &[RuleDef]| -> BTreeMap<String, RuleDef> {
        rules.iter().map(|r| (r.name.clone(), r.clone())).collect()
    };
    let (a, b) = (by_name(&imported.rules), by_name(&shipped.rules));
    let flows = |r: &RuleDef| -> BTreeMap<String, String> {
        r.flows
            .iter()
            .map(|f| (f.target.clone(), idflow::syntax::printer::expr(&f.expr)))
            .collect()
    };
    let joins = |r: &RuleDef| -> Vec<String> {
        r.joins
            .iter()
            .flatten()
            .map(|j| format!("{}={}", j.source, j.target))
            .collect()
    };
    let mut diffs = Vec::new();
    for (name, rb) in &b {
        let Some(ra) = a.get(name) else {
            diffs.push(format!("{name}: added"));
            continue;
        };
        if joins(ra) != joins(rb) {
            diffs.push(format!("{name}: joins"));
        }
        if format!("{:?}", ra.scope) != format!("{:?}", rb.scope) {
            diffs.push(format!("{name}: scope"));
        }
        let (fa, fb) = (flows(ra), flows(rb));
        for (t, e) in &fb {
            match fa.get(t) {
                None => diffs.push(format!("{name}: flow {t} added")),
                Some(x) if x != e => diffs.push(format!("{name}: flow {t} changed")),
                Some(_) => {}
            }
        }
        for t in fa.keys().filter(|t| !fb.contains_key(*t)) {
            diffs.push(format!("{name}: flow {t} removed"));
        }
        if (ra.precedence, ra.link, &ra.source, &ra.target)
            != (rb.precedence, rb.link, &rb.source, &rb.target)
        {
            diffs.push(format!("{name}: settings"));
        }
    }
    for name in a.keys().filter(|n| !b.contains_key(*n)) {
        diffs.push(format!("{name}: removed"));
    }
    let expected = [
        "In from AD - InetOrgPerson AccountEnabled: flow sourceAnchor changed",
        "In from AD - InetOrgPerson AccountEnabled: flow sourceAnchorBinary added",
        "In from AD - InetOrgPerson Common: flow sourceAnchor changed",
        "In from AD - InetOrgPerson Common: flow sourceAnchorBinary added",
        "In from AD - InetOrgPerson Join: joins",
        "In from AD - InetOrgPerson Join: flow sourceAnchorBinary added",
        "In from AD - User AccountEnabled: flow sourceAnchor changed",
        "In from AD - User AccountEnabled: flow sourceAnchorBinary added",
        "In from AD - User Common: flow sourceAnchor changed",
        "In from AD - User Common: flow sourceAnchorBinary added",
        "In from AD - User Join: joins",
        "In from AD - User Join: flow sourceAnchorBinary added",
        "Out to AAD - Group Join: scope",
        "Out to AAD - Group Join: flow member changed",
        "Out to AD - User ImmutableId: added",
    ];
    let mut got = diffs.clone();
    got.sort();
    let mut want: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
    want.sort();
    assert_eq!(got, want);
}

#[test]
fn a_script_nested_too_deeply_is_reported_not_a_crash() {
    let dir = tempdir("deep-script");
    std::fs::create_dir_all(&dir).unwrap();
    let script = dir.join("deep.ps1");
    // 15,000 nested `@(` in a 45 KB script used to overflow the stack (SIGABRT).
    let depth = 15_000;
    std::fs::write(
        &script,
        format!(
            "Write-Host {}'x'{}\n",
            "@(".repeat(depth),
            ")".repeat(depth)
        ),
    )
    .unwrap();
    let out = dir.join("bundle");
    let (code, stdout, stderr) = idflow(&[
        "import",
        "entra",
        script.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stderr.contains("deep.ps1:1:524: E0215: brackets nested too deeply"),
        "{stderr}"
    );
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The schema data the importer ships (`schemas/`) types every attribute of the shipped default
/// bundle's connectors as the bundle does: what an import adds next to them matches them.
#[test]
fn shipped_schema_data_agrees_with_the_default_bundle() {
    use idflow::import::schemas;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let mut map = idflow::source::SourceMap::new();
    for f in idflow::source::collect_idf_files(&[root]).unwrap() {
        let text = std::fs::read_to_string(&f).unwrap();
        map.add(f.display().to_string(), text);
    }
    let checked = idflow::frontend::check(&map);
    let mut compared = 0;
    for c in checked.bundle.schema.connectors.values() {
        let data = schemas::for_kind(&c.kind).expect("ad and entra data");
        for o in c.objects.values() {
            assert!(data.class(&o.name).is_some(), "{} {}", c.name, o.name);
            for a in o.attrs.values().filter(|a| a.name != "dn") {
                let d = data
                    .attr(&a.name)
                    .unwrap_or_else(|| panic!("{}: {} not in the data", c.name, a.name));
                assert_eq!(
                    (d.ty.keyword(), d.multi),
                    (a.base.schema_name(), a.multi),
                    "{}: {}.{}",
                    c.name,
                    o.name,
                    a.name
                );
                compared += 1;
            }
        }
    }
    assert!(compared > 800, "{compared}");
}
