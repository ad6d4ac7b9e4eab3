//! CLI tests: each case runs the real binary and snapshots its exit code, stdout and stderr.
//! Exit codes: 0 ok, 1 findings, 2 usage or I/O errors.

use std::path::Path;
use std::process::Command;

fn run(args: &[&str]) -> String {
    run_in(Path::new(env!("CARGO_MANIFEST_DIR")), args, None)
}

fn run_in(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    use std::io::Write;
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idflow"));
    cmd.args(args).current_dir(dir).env("NO_COLOR", "1");
    cmd.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().expect("binary runs");
    if let Some(input) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
    } else {
        drop(child.stdin.take());
    }
    let out = child.wait_with_output().unwrap();
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn check_clean_bundle_is_silent() {
    insta::assert_snapshot!(run(&["check", "rules/entra-default"]));
}

#[test]
fn check_reports_errors_with_locations() {
    insta::assert_snapshot!(run(&[
        "check",
        "tests/fixtures/common.idf",
        "tests/fixtures/check/rules-settings.idf"
    ]));
}

#[test]
fn check_json() {
    insta::assert_snapshot!(run(&[
        "check",
        "--format",
        "json",
        "tests/fixtures/common.idf",
        "tests/fixtures/check/allow.idf"
    ]));
}

#[test]
fn check_sarif() {
    insta::assert_snapshot!(run(&[
        "check",
        "--format",
        "sarif",
        "tests/fixtures/common.idf",
        "tests/fixtures/check/allow.idf"
    ]));
}

#[test]
fn check_warnings_pass_unless_denied() {
    let file = "tests/fixtures/cli/warning-only.idf";
    insta::assert_snapshot!(
        "warnings_allowed",
        run(&["check", "tests/fixtures/common.idf", file])
    );
    insta::assert_snapshot!(
        "warnings_denied",
        run(&[
            "check",
            "--deny-warnings",
            "tests/fixtures/common.idf",
            file
        ])
    );
}

#[test]
fn check_max_errors_limits_output() {
    insta::assert_snapshot!(run(&[
        "check",
        "--format",
        "json",
        "--max-errors",
        "1",
        "tests/fixtures/common.idf",
        "tests/fixtures/check/tests.idf"
    ]));
}

/// A file with `n` lines of one invalid character each: `n` diagnostics.
fn many_diagnostics(name: &str, n: usize) -> std::path::PathBuf {
    let dir = tempdir(name);
    std::fs::write(dir.join("many.idf"), "~\n".repeat(n)).unwrap();
    dir
}

#[test]
fn check_human_output_is_capped_by_default() {
    // 53 diagnostics: human output shows 50 and says how many more there are.
    let dir = many_diagnostics("capped", 53);
    insta::assert_snapshot!(run_in(&dir, &["check", "many.idf"], None));
    let explicit = run_in(&dir, &["check", "--max-errors", "52", "many.idf"], None);
    assert_eq!(explicit.matches("E0001").count(), 52, "{explicit}");
    assert!(explicit.contains("\n1 more diagnostic not shown (use --max-errors N to show more)\n"));
    // JSON and SARIF stay complete.
    let json = run_in(&dir, &["check", "--format", "json", "many.idf"], None);
    assert_eq!(json.matches("\"E0001\"").count(), 53);
    let sarif = run_in(&dir, &["check", "--format", "sarif", "many.idf"], None);
    assert_eq!(sarif.matches("\"ruleId\": \"E0001\"").count(), 53);
}

#[test]
fn check_missing_path_is_a_usage_error() {
    insta::assert_snapshot!(run(&["check", "no/such/bundle"]));
}

#[test]
fn check_directory_without_rules() {
    insta::assert_snapshot!(run(&["check", "src/cli"]));
}

#[test]
fn check_binary_garbage_is_diagnosed() {
    let dir = tempdir("garbage");
    std::fs::write(dir.join("bad.idf"), [0xffu8, 0xfe, b'{', 0x00, b'"', 0x80]).unwrap();
    insta::assert_snapshot!(run_in(&dir, &["check", "bad.idf"], None));
}

#[test]
fn fmt_check_lists_unformatted_files() {
    insta::assert_snapshot!(run(&[
        "fmt",
        "--check",
        "tests/fixtures/fmt/messy.idf",
        "rules/entra-default/bundle.idf"
    ]));
}

#[test]
fn fmt_prints_to_stdout() {
    insta::assert_snapshot!(run(&["fmt", "tests/fixtures/syntax/ok/rules.idf"]));
}

#[test]
fn fmt_stdin() {
    insta::assert_snapshot!(run_in(
        Path::new(env!("CARGO_MANIFEST_DIR")),
        &["fmt", "-"],
        Some("inbound rule \"r\" { flow a<-[b]&\"c\" }")
    ));
}

#[test]
fn fmt_refuses_syntax_errors() {
    insta::assert_snapshot!(run(&["fmt", "tests/fixtures/syntax/err/recovery.idf"]));
}

#[test]
fn fmt_write_rewrites_in_place_and_keeps_broken_files() {
    let dir = tempdir("fmt-write");
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fmt/messy.idf"),
        dir.join("messy.idf"),
    )
    .unwrap();
    let broken = "inbound rule \"r\" {\n  flow a <- IIF(,)\n}\n";
    std::fs::write(dir.join("broken.idf"), broken).unwrap();
    let out = run_in(&dir, &["fmt", "--write", "."], None);
    insta::assert_snapshot!(out);
    let golden = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fmt/messy.idf.formatted"),
    )
    .unwrap();
    assert_eq!(
        std::fs::read_to_string(dir.join("messy.idf")).unwrap(),
        golden
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("broken.idf")).unwrap(),
        broken
    );
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        2,
        "temporary files left behind: {leftovers:?}"
    );
    // A second run changes nothing.
    insta::assert_snapshot!(
        "fmt_write_second_run",
        run_in(&dir, &["fmt", "--check", "."], None)
    );
}

#[test]
fn functions_list_and_show() {
    let list = run(&["functions"]);
    assert!(list.starts_with("exit: 0"));
    for f in [
        "Trim",
        "IIF",
        "CertThumbprint",
        "DNComponentRev",
        "ImportedValue",
    ] {
        assert!(list.contains(f), "{f} missing from the list");
    }
    insta::assert_snapshot!(run(&["functions", "Trim"]));
}

#[test]
fn functions_unknown_name_suggests() {
    insta::assert_snapshot!(run(&["functions", "Trm"]));
}

#[test]
fn explain_a_code() {
    insta::assert_snapshot!(run(&["explain", "E0201"]));
    insta::assert_snapshot!("explain_unknown", run(&["explain", "E9999"]));
}

#[test]
fn usage_errors_exit_2() {
    insta::assert_snapshot!(run(&["check", "--format", "xml"]));
}

fn tempdir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("idflow-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn eval_prints_json() {
    insta::assert_snapshot!(
        "eval_concat",
        run(&["eval", "[a] & \"x\"", "--attr", "a=hello"])
    );
    insta::assert_snapshot!(
        "eval_multi",
        run(&["eval", "[xs]", "--attr", "xs=1", "--attr", "xs=2"])
    );
    insta::assert_snapshot!(
        "eval_special",
        run(&["eval", "IIF(IsNull([u]), IgnoreThisFlow, [u])"])
    );
    insta::assert_snapshot!(
        "eval_input_file",
        run(&[
            "eval",
            "IIF([userAccountControl] = 514, [objectGUID], [whenCreated])",
            "--input",
            "tests/fixtures/eval/input.json"
        ])
    );
    insta::assert_snapshot!(
        "eval_input_datetime",
        run(&[
            "eval",
            "[whenCreated]",
            "--input",
            "tests/fixtures/eval/input.json"
        ])
    );
    insta::assert_snapshot!(
        "eval_param",
        run(&[
            "eval",
            "[sAMAccountName] & \"@\" & %Domain.FQDN%",
            "--attr",
            "sAMAccountName=alice",
            "--param",
            "Domain.FQDN=contoso.com"
        ])
    );
}

#[test]
fn eval_errors() {
    insta::assert_snapshot!(
        "eval_error_function",
        run(&["eval", "IIF(IsNull([mail]), Error(\"no mail\"), [mail])"])
    );
    insta::assert_snapshot!(
        "eval_type_error",
        run(&["eval", "[a] + 1", "--attr", "a=\"x\""])
    );
    insta::assert_snapshot!(
        "eval_runtime_error",
        run(&["eval", "[n] / 0", "--attr", "n=4"])
    );
    // Each value within the size limit, together beyond the evaluation's byte budget: fails
    // fast with E0513 instead of building 2.5 GB.
    insta::assert_snapshot!(
        "eval_budget_error",
        run(&[
            "eval",
            r#"Count(Select($x, Split(PadLeft("",2499,","),","), PadLeft("",1000000,"a")))"#
        ])
    );
    insta::assert_snapshot!("eval_syntax_error", run(&["eval", "IIF(True, 1"]));
    insta::assert_snapshot!(
        "eval_missing_input",
        run(&["eval", "[a]", "--input", "no/such.json"])
    );
    insta::assert_snapshot!("eval_bad_attr", run(&["eval", "[a]", "--attr", "novalue"]));
}

#[test]
fn test_command_runs_the_bundle_tests() {
    insta::assert_snapshot!("test_default_bundle", run(&["test", "rules/entra-default"]));
    insta::assert_snapshot!(
        "test_failing",
        run(&["test", "tests/fixtures/testblocks/failing.idf"])
    );
    insta::assert_snapshot!(
        "test_bundle_with_errors",
        run(&[
            "test",
            "tests/fixtures/common.idf",
            "tests/fixtures/check/allow.idf"
        ])
    );
}

#[test]
fn preview_shows_the_lineage_of_one_object() {
    insta::assert_snapshot!(run(&[
        "preview",
        "rules/entra-default",
        "--objects",
        "tests/fixtures/preview/objects.json",
        "--dn",
        "CN=Bob Brown,OU=Users,OU=CORP,DC=contoso,DC=com"
    ]));
    insta::assert_snapshot!(
        "preview_unknown_dn",
        run(&[
            "preview",
            "rules/entra-default",
            "--objects",
            "tests/fixtures/preview/objects.json",
            "--dn",
            "CN=Nobody"
        ])
    );
}

/// Both engines print the same result and the same located error; `--dump-jit` shows the
/// generated code.
#[test]
fn eval_engines_agree_and_the_jit_can_be_inspected() {
    insta::assert_snapshot!("eval_bad_engine", run(&["eval", "[a]", "--engine", "fast"]));
    if !idflow::eval::jit_available() {
        return;
    }
    for args in [
        &["eval", "[a] & \"x\"", "--attr", "a=hello"][..],
        &[
            "eval",
            "IIF(BitAnd([u], 2) = 2, \"off\", \"on\")",
            "--attr",
            "u=514",
        ],
        &["eval", "[n] / 0", "--attr", "n=4"],
        &["eval", "IIF(IsNull([mail]), Error(\"no mail\"), [mail])"],
    ] {
        let interp = run(&[args, &["--engine", "interp"]].concat());
        let jit = run(&[args, &["--engine", "jit"]].concat());
        assert_eq!(interp, jit, "{args:?}");
    }
    let out = run(&["eval", "--dump-jit", "BitAnd([u], 2)", "--attr", "u=514"]);
    assert!(out.starts_with("exit: 0\n--- stdout\n2\n"), "{out}");
    assert!(out.contains("; expression 0: Cranelift IR"), "{out}");
    assert!(out.contains("; expression 0: machine code"), "{out}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// A temporary folder with a copy of the shipped bundle (`bundle/`) and a script from
/// `tests/fixtures/import`, so that outputs name both by relative paths.
fn import_setup(name: &str, script: &str) -> std::path::PathBuf {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = tempdir(name);
    copy_dir(&root.join("rules/entra-default"), &dir.join("bundle"));
    std::fs::copy(
        root.join("tests/fixtures/import").join(script),
        dir.join(script),
    )
    .unwrap();
    dir
}

#[test]
fn import_resolves_script_connectors_against_the_bundle() {
    let dir = import_setup("import-connectors", "connectors.ps1");
    let args = ["import", "entra", "connectors.ps1", "-o", "bundle"];
    insta::assert_snapshot!("import_connectors_resolved", run_in(&dir, &args, None));
    let user = std::fs::read_to_string(dir.join("bundle/inbound/contoso-com-user.idf")).unwrap();
    for rule in [
        "Custom - In from AD - User Office",
        "Custom - In from AD - User Info",
        "Custom - In from AD - User Phone",
    ] {
        let at = user.find(rule).unwrap_or_else(|| panic!("{rule} missing"));
        assert!(
            user[at..]
                .lines()
                .nth(1)
                .unwrap()
                .contains("connector \"contoso.com\""),
            "{rule}"
        );
    }
    let out = std::fs::read_to_string(dir.join("bundle/outbound/contoso-onmicrosoft-com-user.idf"))
        .unwrap();
    assert!(out.contains("Custom - Out to AAD - User Office"));
    assert!(out.contains("connector \"contoso.onmicrosoft.com\""));
}

#[test]
fn import_asks_for_connector_when_the_bundle_has_several_ad_connectors() {
    let dir = import_setup("import-two-ad", "connectors.ps1");
    std::fs::write(
        dir.join("bundle/schema/fabrikam-com.idf"),
        "connector \"fabrikam.com\" ad {\n  object user anchor objectGUID {\n    objectGUID binary\n    telephoneNumber string\n  }\n  object contact anchor objectGUID {\n    objectGUID binary\n    telephoneNumber string\n  }\n}\n",
    )
    .unwrap();
    let args = ["import", "entra", "connectors.ps1", "-o", "bundle"];
    insta::assert_snapshot!("import_connectors_ambiguous", run_in(&dir, &args, None));
    // Named on the command line (by the expression as the message shows it); a choice for
    // a connector the script never uses is a warning.
    let named = [
        &args[..],
        &[
            "--connector",
            "$connectors[1].Identifier=fabrikam.com",
            "--connector",
            "Get-ADSyncConnector | Where-Object { $_.Type -eq 'AD' }=contoso.com",
            "--connector",
            "0f0f0f0f-0000-0000-0000-000000000000=contoso.com",
        ],
    ]
    .concat();
    insta::assert_snapshot!("import_connectors_named", run_in(&dir, &named, None));
    let contact =
        std::fs::read_to_string(dir.join("bundle/inbound/fabrikam-com-contact.idf")).unwrap();
    assert!(
        contact.contains("Custom - In from AD - Contact Phone"),
        "{contact}"
    );
}

#[test]
fn import_reports_connector_identifiers_nobody_names() {
    let dir = import_setup("import-unnamed", "two-rules.ps1");
    std::fs::write(
        dir.join("one-rule.ps1"),
        "New-ADSyncRule -Name 'Custom - In from AD - User Office' -Direction 'Inbound' -Precedence 40 `\n  \
         -SourceObjectType 'user' -TargetObjectType 'person' -Connector '1F2E3D4C-0000-4000-8000-00000000AA01' `\n  \
         -LinkType 'Join' -OutVariable r | Out-Null\n\
         Add-ADSyncAttributeFlowMapping -SynchronizationRule $r[0] -Source 'info' -Destination 'info' -FlowType 'Direct' -OutVariable r | Out-Null\n\
         Add-ADSyncRule -SynchronizationRule $r[0] | Out-Null\n",
    )
    .unwrap();
    let args = ["import", "entra", "one-rule.ps1", "-o", "bundle"];
    insta::assert_snapshot!("import_connector_unnamed", run_in(&dir, &args, None));
    let named = [
        &args[..],
        &[
            "--connector",
            "1f2e3d4c-0000-4000-8000-00000000aa01=contoso.com",
            "--connector",
            "{00000000-0000-4000-8000-0000000000ff}=contoso.com",
        ],
    ]
    .concat();
    insta::assert_snapshot!("import_connector_named_unused", run_in(&dir, &named, None));
}

#[test]
fn import_exits_0_only_when_everything_came_through_and_checks_clean() {
    let dir = import_setup("import-exit", "connectors.ps1");
    // A rule that cannot be imported: written with --allow-partial (nothing here), still 1.
    std::fs::write(
        dir.join("no-connector.ps1"),
        "New-ADSyncRule -Name 'Custom - In from AD - User Office' -Direction 'Inbound' -Precedence 40 `\n  \
         -SourceObjectType 'user' -TargetObjectType 'person' -LinkType 'Join' -OutVariable r | Out-Null\n\
         Add-ADSyncRule -SynchronizationRule $r[0] | Out-Null\n",
    )
    .unwrap();
    std::fs::write(dir.join("no-rule.ps1"), "Write-Host 'nothing to do'\n").unwrap();
    let partial = run_in(
        &dir,
        &[
            "import",
            "entra",
            "no-connector.ps1",
            "-o",
            "bundle",
            "--allow-partial",
        ],
        None,
    );
    let empty = run_in(
        &dir,
        &["import", "entra", "no-rule.ps1", "-o", "bundle"],
        None,
    );
    let clean = run_in(
        &dir,
        &["import", "entra", "connectors.ps1", "-o", "bundle"],
        None,
    );
    insta::assert_snapshot!(
        "import_exit_codes",
        format!("{partial}=== no rule\n{empty}=== clean\n{clean}")
    );
}

#[test]
fn reimporting_replaces_same_named_rules_and_keeps_customizations() {
    let dir = import_setup("import-again", "connectors.ps1");
    let args = ["import", "entra", "connectors.ps1", "-o", "bundle"];
    let first = run_in(&dir, &args, None);
    assert!(first.starts_with("exit: 0\n"), "{first}");
    // A customization elsewhere in a file the import writes to.
    let user = dir.join("bundle/inbound/contoso-com-user.idf");
    let customized = std::fs::read_to_string(&user).unwrap().replacen(
        "inbound rule \"In from AD - User Common\" {",
        "# Our own note.\ninbound rule \"In from AD - User Common\" {",
        1,
    );
    std::fs::write(&user, &customized).unwrap();
    let snapshot_files = || {
        let mut out = Vec::new();
        for f in idflow::source::collect_idf_files(&[dir.join("bundle")]).unwrap() {
            out.push((f.clone(), std::fs::read_to_string(f).unwrap()));
        }
        out
    };
    // The same script again: every rule unchanged, nothing doubled.
    let before = snapshot_files();
    let again = run_in(&dir, &args, None);
    assert_eq!(snapshot_files(), before);
    // A newer release of the script: one precedence, a scope and a flow changed.
    let script = std::fs::read_to_string(dir.join("connectors.ps1")).unwrap();
    let newer = script
        .replace("'Custom - In from AD - User Info' 41", "'Custom - In from AD - User Info' 45")
        .replace(
            "    -Destination 'physicalDeliveryOfficeName' -FlowType 'Direct' -ValueMergeType 'Update' -OutVariable rule | Out-Null\n",
            "    -Destination 'physicalDeliveryOfficeName' -FlowType 'Direct' -ValueMergeType 'Update' -OutVariable rule | Out-Null\n\
             Add-ADSyncAttributeFlowMapping -SynchronizationRule $rule[0] -Source @('telephoneNumber') -Destination 'telephoneNumber' -FlowType 'Direct' -OutVariable rule | Out-Null\n\
             New-Object -TypeName 'Microsoft.IdentityManagement.PowerShell.ObjectModel.ScopeCondition' -ArgumentList 'cloudFiltered','true','NOTEQUAL' -OutVariable c | Out-Null\n\
             Add-ADSyncScopeConditionGroup -SynchronizationRule $rule[0] -ScopeConditions @($c[0]) -OutVariable rule | Out-Null\n",
        );
    std::fs::write(dir.join("newer.ps1"), newer).unwrap();
    let newer_args = ["import", "entra", "newer.ps1", "-o", "bundle"];
    // Without --force: the changes are shown and nothing is written; --dry-run is the same
    // without asking for --force.
    let refused = run_in(&dir, &newer_args, None);
    assert_eq!(snapshot_files(), before);
    let dry = run_in(&dir, &[&newer_args[..], &["--dry-run"]].concat(), None);
    assert_eq!(snapshot_files(), before);
    let forced = run_in(&dir, &[&newer_args[..], &["--force"]].concat(), None);
    insta::assert_snapshot!(
        "import_again",
        format!("{again}=== newer\n{refused}=== dry run\n{dry}=== forced\n{forced}")
    );
    let text = std::fs::read_to_string(&user).unwrap();
    assert!(text.contains("# Our own note.\ninbound rule \"In from AD - User Common\""));
    assert_eq!(
        text.matches("\"Custom - In from AD - User Info\"").count(),
        1
    );
    assert!(text.contains("precedence 45"), "{text}");
    // The same release once more: nothing to do.
    let after = snapshot_files();
    let last = run_in(&dir, &newer_args, None);
    assert!(last.starts_with("exit: 0\n"), "{last}");
    assert_eq!(snapshot_files(), after);
}

#[test]
fn import_adds_to_the_schemas_what_the_rules_use() {
    let dir = import_setup("import-schema", "schema-extension.ps1");
    let files = || {
        let mut out = Vec::new();
        for f in idflow::source::collect_idf_files(&[dir.join("bundle")]).unwrap() {
            out.push((f.clone(), std::fs::read_to_string(f).unwrap()));
        }
        out
    };
    let args = ["import", "entra", "schema-extension.ps1", "-o", "bundle"];
    let before = files();
    let dry = run_in(&dir, &[&args[..], &["--dry-run"]].concat(), None);
    assert_eq!(files(), before, "a dry run writes nothing");
    let import = run_in(&dir, &args, None);
    let check = run_in(&dir, &["check", "bundle"], None);
    let again = run_in(&dir, &args, None);
    insta::assert_snapshot!(
        "import_schema_extension",
        format!("{dry}=== import\n{import}=== check\n{check}=== again\n{again}")
    );
    assert!(import.starts_with("exit: 0\n"), "{import}");
    assert_eq!(check, "exit: 0\n--- stdout\n--- stderr\n");
    let ad = std::fs::read_to_string(dir.join("bundle/schema/contoso-com.idf")).unwrap();
    assert!(
        ad.contains("  object msExchDynamicDistributionList anchor objectGUID {\n"),
        "{ad}"
    );

    // What nothing types is left to the check, which reports it: nothing is written.
    std::fs::write(
        dir.join("unknown.ps1"),
        "New-ADSyncRule -Name 'Custom - In from AD - User Unknown' -Direction 'Inbound' -Precedence 310 `\n  \
         -SourceObjectType 'user' -TargetObjectType 'person' -Connector (Get-ADSyncConnector -Name 'contoso.com').Identifier `\n  \
         -LinkType 'Join' -OutVariable r | Out-Null\n\
         Add-ADSyncAttributeFlowMapping -SynchronizationRule $r[0] -Destination 'customNote' -FlowType 'Expression' `\n  \
         -Expression 'Trim([notAnAdAttribute])' -OutVariable r | Out-Null\n\
         Add-ADSyncAttributeFlowMapping -SynchronizationRule $r[0] -Source @('employeeNumber') -Destination 'employeeNumber' `\n  \
         -FlowType 'Direct' -OutVariable r | Out-Null\n\
         Add-ADSyncRule -SynchronizationRule $r[0] | Out-Null\n",
    )
    .unwrap();
    let before = files();
    let unknown = run_in(
        &dir,
        &["import", "entra", "unknown.ps1", "-o", "bundle"],
        None,
    );
    assert_eq!(files(), before);
    insta::assert_snapshot!("import_schema_extension_unknown", unknown);
}

#[test]
fn check_reports_duplicate_rule_names_without_a_schema() {
    let dir = tempdir("dup-no-schema");
    let rule = "inbound rule \"A\" {\n  connector \"c\"\n  source user\n  target person\n  link join\n  precedence 1\n}\n";
    std::fs::write(dir.join("a.idf"), rule).unwrap();
    std::fs::write(dir.join("b.idf"), rule).unwrap();
    let out = run_in(&dir, &["check", "."], None);
    assert!(out.contains("E0301"), "{out}");
    assert!(out.contains("duplicate rule name \"A\""), "{out}");
}
