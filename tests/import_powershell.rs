//! Tests of the Synchronization Rules Editor script importer (`import::powershell`) against the
//! sample scripts in `tests/fixtures/import/`: every field read, unmapped constructs reported,
//! malformed scripts rejected with a location.

use idflow::import::model::{Config, Direction, Flow, FlowKind, JoinCondition, ScopeClause};
use idflow::import::powershell;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> (PathBuf, String) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    (path, text)
}

fn read_fixture(name: &str) -> (PathBuf, Config) {
    let (path, text) = fixture(name);
    let config = powershell::read(&path, &text).unwrap();
    (path, config)
}

fn read_str(text: &str) -> Result<Config, String> {
    powershell::read(Path::new("x.ps1"), text)
}

fn flow(target: &str, kind: FlowKind, source: &str, merge: &str, execute_once: bool) -> Flow {
    Flow {
        target: target.into(),
        kind,
        source: source.into(),
        merge: merge.into(),
        execute_once,
    }
}

fn scope(attribute: &str, operator: &str, value: Option<&str>) -> ScopeClause {
    ScopeClause {
        attribute: attribute.into(),
        operator: operator.into(),
        value: value.map(Into::into),
    }
}

fn join(cs: &str, mv: &str, case_sensitive: bool) -> JoinCondition {
    JoinCondition {
        cs_attribute: cs.into(),
        mv_attribute: mv.into(),
        case_sensitive,
    }
}

fn unmapped(c: &Config) -> Vec<(String, String)> {
    c.unmapped
        .iter()
        .map(|u| (u.context.clone(), u.what.clone()))
        .collect()
}

const SOURCE_ANCHOR_BINARY: &str = "
      IIF(IsPresent([msExchRecipientTypeDetails]),
          IIF([msExchRecipientTypeDetails]=2,NULL,
              IIF(\"mS-DS-ConsistencyGuid\"=\"mS-DS-ConsistencyGuid\",
                  IIF(IsPresent([mS-DS-ConsistencyGuid]),[mS-DS-ConsistencyGuid],[objectGUID]),
                  NULL)),
          IIF(\"mS-DS-ConsistencyGuid\"=\"mS-DS-ConsistencyGuid\",
              IIF(IsPresent([mS-DS-ConsistencyGuid]),[mS-DS-ConsistencyGuid],[objectGUID]),
              NULL))
      ";

#[test]
fn user_account_enabled_rule() {
    let (path, c) = read_fixture("user-accountenabled.ps1");
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert!(c.connectors.is_empty());
    assert!(c.metaverse.is_empty());
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.id, "{3cc98420-8d2c-4f99-9d00-188097882e2b}");
    assert_eq!(r.name, "In from AD - User AccountEnabled");
    assert_eq!(r.description, "");
    assert_eq!(
        r.immutable_tag.as_deref(),
        Some("Microsoft.InfromADUserAccountEnabled.007")
    );
    assert_eq!(r.direction, Direction::Inbound);
    assert!(!r.disabled);
    assert_eq!(r.connector, "{093c3526-55a5-4de9-9005-186fd0a6a849}");
    assert_eq!(r.source_type, "user");
    assert_eq!(r.target_type, "person");
    assert_eq!(r.link_type, "Join");
    assert_eq!(r.precedence, 102);
    assert!(r.password_sync);
    assert_eq!(
        r.scope,
        vec![vec![scope("userAccountControl", "ISBITNOTSET", Some("2"))]]
    );
    assert!(r.joins.is_empty());
    assert_eq!(r.source, path);
    let u = "Update";
    let expected = vec![
        flow("accountEnabled", FlowKind::Constant, "True", u, false),
        flow("cn", FlowKind::Direct, "cn", u, false),
        flow(
            "contributingConnectorUser",
            FlowKind::Expression,
            "%Connector.ID%",
            u,
            false,
        ),
        flow(
            "domainFQDN",
            FlowKind::Expression,
            "%Domain.FQDN%",
            u,
            false,
        ),
        flow("objectSid", FlowKind::Direct, "objectSid", u, false),
        flow(
            "objectSidString",
            FlowKind::Expression,
            "StringFromSid([objectSid])",
            u,
            false,
        ),
        flow(
            "pwdLastSet",
            FlowKind::Expression,
            r#"IIF(IsPresent([pwdLastSet]),CStr(FormatDateTime(DateFromNum([pwdLastSet]),"yyyyMMddHHmmss.0Z")),NULL)"#,
            u,
            false,
        ),
        flow(
            "sourceAnchorBinary",
            FlowKind::Expression,
            SOURCE_ANCHOR_BINARY,
            u,
            false,
        ),
        flow(
            "userPrincipalName",
            FlowKind::Expression,
            r#"IIF(IsPresent([userPrincipalName]),[userPrincipalName], IIF(IsPresent([sAMAccountName]),([sAMAccountName]&"@"&%Domain.FQDN%),Error("AccountName is not present")))"#,
            u,
            false,
        ),
        flow(
            "cloudFiltered",
            FlowKind::Expression,
            r#"IIF(CBool(InStr(DNComponent(CRef([dn]),1),"\\0ACNF:")>0) || Left([sAMAccountName], 1) = "'", True, NULL)"#,
            u,
            false,
        ),
    ];
    assert_eq!(r.flows, expected);
    let counts = c.counts();
    assert_eq!(
        (
            counts.rules,
            counts.scope_clauses,
            counts.join_conditions,
            counts.flows
        ),
        (1, 1, 0, 10)
    );
}

#[test]
fn windows_line_endings_read_the_same() {
    let (path, text) = fixture("user-accountenabled.ps1");
    let crlf = text.replace('\n', "\r\n");
    let a = powershell::read(&path, &text).unwrap();
    let b = powershell::read(&path, &crlf).unwrap();
    assert!(b.unmapped.is_empty(), "{:?}", b.unmapped);
    assert_eq!(a.rules[0].flows, b.rules[0].flows);
    assert_eq!(b.rules[0].flows[7].source, SOURCE_ANCHOR_BINARY);
}

#[test]
fn two_rules() {
    let (_, c) = read_fixture("two-rules.ps1");
    // The removal is followed by an Add-ADSyncRule of the same identifier: a replacement.
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert_eq!(c.rules.len(), 2);

    let r = &c.rules[0];
    assert_eq!(r.id, "{d5f0b3e1-1b7a-4c55-9e3a-2f1d07c0a0b1}");
    assert_eq!(r.name, "Custom - In from AD - Contact Join");
    assert_eq!(
        r.description,
        "Contacts from the \"partner\" OU\nsecond line"
    );
    assert_eq!(r.immutable_tag, None);
    assert_eq!(r.direction, Direction::Inbound);
    assert!(!r.disabled);
    assert_eq!(r.connector, "{ae4db4cc-b16b-4eb2-acf5-837ca84e4d7d}");
    assert_eq!(
        (r.source_type.as_str(), r.target_type.as_str()),
        ("contact", "person")
    );
    assert_eq!(r.link_type, "Provision");
    assert_eq!(r.precedence, 90);
    assert!(!r.password_sync);
    assert_eq!(
        r.scope,
        vec![
            vec![
                scope("isCriticalSystemObject", "NOTEQUAL", Some("TRUE")),
                scope("adminDescription", "NOTSTARTSWITH", Some("Contact_")),
            ],
            vec![scope("mail", "ISNOTNULL", None)],
        ]
    );
    assert_eq!(r.joins, vec![vec![join("mail", "mail", false)]]);
    assert_eq!(
        r.flows,
        vec![
            flow("mail", FlowKind::Direct, "mail", "Update", false),
            flow(
                "proxyAddresses",
                FlowKind::Expression,
                r#"RemoveDuplicates(Trim(ImportedValue("proxyAddresses")))"#,
                "MergeCaseInsensitive",
                false
            ),
        ]
    );

    let r = &c.rules[1];
    assert_eq!(r.id, "{7da2fd41-61d4-463e-9a0f-7b4457654bb2}");
    assert_eq!(r.name, "Custom - Out to AD - User ExternalId");
    assert_eq!(r.description, "Writes the cloud anchor back");
    assert_eq!(
        r.immutable_tag.as_deref(),
        Some("Custom.OuttoADUserExternalId.001")
    );
    assert_eq!(r.direction, Direction::Outbound);
    assert!(r.disabled);
    assert_eq!(r.connector, "{4a85c66f-18fc-4937-bad3-b282fbff6b2c}");
    assert_eq!(
        (r.source_type.as_str(), r.target_type.as_str()),
        ("person", "user")
    );
    assert_eq!(r.link_type, "StickyJoin");
    assert_eq!(r.precedence, 148);
    assert!(!r.password_sync);
    assert_eq!(r.scope, vec![vec![scope("cloudAnchor", "ISNOTNULL", None)]]);
    assert_eq!(
        r.joins,
        vec![vec![
            join("employeeID", "employeeID", true),
            join("sAMAccountName", "accountName", false)
        ]]
    );
    assert_eq!(
        r.flows,
        vec![
            flow(
                "extensionAttribute15",
                FlowKind::Constant,
                "Synced",
                "Update",
                false
            ),
            flow(
                "msDS-cloudExtensionAttribute1",
                FlowKind::Expression,
                r#"Replace([cloudAnchor],"User_","")"#,
                "Update",
                true
            ),
        ]
    );
    let counts = c.counts();
    assert_eq!(
        (
            counts.rules,
            counts.scope_clauses,
            counts.join_conditions,
            counts.flows
        ),
        (2, 4, 3, 4)
    );
}

#[test]
fn unknown_commands_and_parameters_are_unmapped() {
    let (path, c) = read_fixture("unknown.ps1");
    assert_eq!(c.rules.len(), 1);
    let r = &c.rules[0];
    assert_eq!(r.name, "In from AD - User Custom");
    assert_eq!(
        r.flows,
        vec![flow(
            "department",
            FlowKind::Direct,
            "department",
            "Update",
            false
        )]
    );
    let rule = "In from AD - User Custom".to_string();
    // Import-Module changes no configuration; a sync cycle is a run-time action (a note).
    assert_eq!(
        unmapped(&c),
        vec![
            (
                rule.clone(),
                "unknown parameter `-IsLegacyCustomRule` of New-ADSyncRule".into()
            ),
            (
                rule.clone(),
                "unknown parameter `-Priority` of Add-ADSyncAttributeFlowMapping".into()
            ),
            (rule.clone(), "unknown command `Set-ADSyncRuleMagic`".into()),
        ]
    );
    assert_eq!(
        c.notes
            .iter()
            .map(|n| (n.context.as_str(), n.what.as_str()))
            .collect::<Vec<_>>(),
        vec![(
            "script",
            "`Start-ADSyncSyncCycle` at line 32 acts on the running server, not on the configuration; ignored"
        )]
    );
    assert!(c.unmapped.iter().all(|u| u.source == path));
}

#[test]
fn a_rule_never_added_is_unmapped() {
    let c = read_str(
        "New-ADSyncRule -Name 'Half' -Direction 'Inbound' -SourceObjectType 'user' -TargetObjectType 'person' `\n\
         -Connector 'AB' -OutVariable syncRule\n\
         Add-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Source @('cn') -Destination 'cn' -FlowType 'Direct'\n",
    )
    .unwrap();
    assert!(c.rules.is_empty());
    assert_eq!(
        unmapped(&c),
        vec![(
            "Half".to_string(),
            "rule started by New-ADSyncRule at line 1 is never added with Add-ADSyncRule; not imported".to_string()
        )]
    );
}

#[test]
fn removing_a_rule_the_script_does_not_replace_is_unmapped() {
    let c = read_str("Remove-ADSyncRule -Identifier '0A0B'\n").unwrap();
    assert_eq!(
        unmapped(&c),
        vec![(
            "script".to_string(),
            "Remove-ADSyncRule of rule `{0a0b}` at line 1 is not carried over: no later Add-ADSyncRule in this script replaces it"
                .to_string()
        )]
    );
}

#[test]
fn unterminated_quote_is_located() {
    let (path, text) = fixture("two-rules.ps1");
    // Drop the closing quote of the last line's -Identifier.
    let broken = format!("{}\n", text.trim_end().strip_suffix('\'').unwrap());
    let line = broken.lines().count();
    let e = powershell::read(&path, &broken).unwrap_err();
    assert_eq!(
        e,
        format!(
            "{}:{line}:13: unterminated single-quoted string",
            path.display()
        )
    );

    assert_eq!(
        read_str("Write-Host \"abc\n").unwrap_err(),
        "x.ps1:1:12: unterminated double-quoted string"
    );
    assert_eq!(
        read_str("\n\n<# open\n").unwrap_err(),
        "x.ps1:3:1: unterminated block comment `<#`: no `#>`"
    );
}

#[test]
fn unbalanced_parentheses_are_located() {
    assert_eq!(
        read_str("Add-ADSyncScopeConditionGroup -ScopeConditions @($c[0]\n").unwrap_err(),
        "x.ps1:1:48: unbalanced `(`: no matching `)`"
    );
    assert_eq!(
        read_str("Write-Host 'a')\n").unwrap_err(),
        "x.ps1:1:15: unbalanced `)`: nothing is open"
    );
}

#[test]
fn unknown_variable_is_located() {
    let (path, text) = fixture("two-rules.ps1");
    let broken = text.replacen(
        "@($condition0[0],$condition1[0])",
        "@($condition0[0],$condition7[0])",
        1,
    );
    let e = powershell::read(&path, &broken).unwrap_err();
    let line = broken
        .lines()
        .position(|l| l.contains("$condition7"))
        .unwrap()
        + 1;
    let col = broken
        .lines()
        .nth(line - 1)
        .unwrap()
        .find("$condition7")
        .unwrap()
        + 1;
    assert_eq!(
        e,
        format!(
            "{}:{line}:{col}: variable `$condition7` is used before it is assigned",
            path.display()
        )
    );

    assert_eq!(
        read_str("Add-ADSyncRule `\n  -SynchronizationRule $syncRule[0]\n").unwrap_err(),
        "x.ps1:2:24: variable `$syncRule` is used before it is assigned"
    );
}

/// `Write-Host` followed by `depth` nested `@(` ... `)`.
fn nested_arrays(depth: usize) -> String {
    format!(
        "Write-Host {}'x'{}\n",
        "@(".repeat(depth),
        ")".repeat(depth)
    )
}

#[test]
fn deeply_nested_brackets_are_a_located_error_not_a_stack_overflow() {
    // 15,000 levels (a 45 KB script) used to overflow the parser's stack.
    let e = read_str(&nested_arrays(15_000)).unwrap_err();
    // The 257th `@(` is where the limit is passed: column 12 + 2 * 256.
    assert_eq!(
        e,
        "x.ps1:1:524: E0215: brackets nested too deeply (at most 256 levels)"
    );
    // Other brackets count too.
    let e = read_str(&format!("X {}\n", "(".repeat(1000))).unwrap_err();
    assert!(e.starts_with("x.ps1:1:259: E0215:"), "{e}");
}

#[test]
fn nesting_up_to_the_limit_is_read() {
    // The parser's recursion at the limit fits a test thread's stack (2 MiB).
    let c = read_str(&nested_arrays(256)).unwrap();
    assert!(c.rules.is_empty());
}

fn read_with(name: &str, vars: &[(&str, &str)]) -> Result<Config, String> {
    let (path, text) = fixture(name);
    let options = powershell::Options {
        vars: vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    powershell::read_with(&path, &text, &options)
}

fn notes(c: &Config) -> Vec<(String, String)> {
    c.notes
        .iter()
        .map(|u| (u.context.clone(), u.what.clone()))
        .collect()
}

#[test]
fn script_variables_are_evaluated() {
    let c = read_with("variables.ps1", &[("Tenant", "contoso.onmicrosoft.com")]).unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert!(c.notes.is_empty(), "{:?}", c.notes);
    assert_eq!(c.rules.len(), 2);
    let r = &c.rules[0];
    // Concatenation, a typed assignment and an expanded string with a subexpression.
    assert_eq!(r.name, "Custom - In from AD - User Mail");
    assert_eq!(r.precedence, 88);
    assert_eq!(
        r.description,
        "Mail for contoso.onmicrosoft.com, flows: department, company, title"
    );
    assert_eq!(r.connector, "{ae4db4cc-b16b-4eb2-acf5-837ca84e4d7d}");
    // An array extended with `+=`, walked by `foreach`; an expression built from a run-time value.
    assert_eq!(
        r.flows,
        vec![
            flow(
                "department",
                FlowKind::Direct,
                "department",
                "Update",
                false
            ),
            flow("company", FlowKind::Direct, "company", "Update", false),
            flow("title", FlowKind::Direct, "title", "Update", false),
            flow(
                "mail",
                FlowKind::Expression,
                r#"IIF(IsPresent([mail]), [mail], [sAMAccountName] & "@contoso.onmicrosoft.com")"#,
                "Update",
                false
            ),
        ]
    );
    // `-f` and `$Precedence++`.
    let r = &c.rules[1];
    assert_eq!(r.name, "Custom - In from AD - Contact Mail");
    assert_eq!(r.precedence, 89);
    assert_eq!(r.source_type, "contact");
}

#[test]
fn a_run_time_value_not_given_is_an_error_naming_the_variable_and_the_flag() {
    let (path, text) = fixture("variables.ps1");
    let e = powershell::read(&path, &text).unwrap_err();
    let line = text
        .lines()
        .position(|l| l.contains("-Description $Description"))
        .unwrap()
        + 1;
    assert_eq!(
        e,
        format!(
            "{}:{line}:18: `$Tenant` is read at run time by Read-Host (line 8): give its value with --var Tenant=VALUE",
            path.display()
        )
    );
    // A variable the script never assigns, an environment variable, a script parameter.
    let e = read_str(
        "param($Tenant)\nNew-ADSyncRule -Name $Name -Description $env:USERDNSDOMAIN -Precedence $Tenant -OutVariable r\n",
    )
    .unwrap_err();
    assert_eq!(
        e.lines().collect::<Vec<_>>(),
        vec![
            "x.ps1:2:22: `$Name` is never assigned in the script: give its value with --var Name=VALUE",
            "x.ps1:2:41: `$env:USERDNSDOMAIN` is an environment variable of the machine the script runs on: give its value with --var env:USERDNSDOMAIN=VALUE",
            "x.ps1:2:72: `$Tenant` is a parameter of the script: give its value with --var Tenant=VALUE",
        ]
    );
}

/// A rule whose settings come from variables: `$p` as given.
fn rule_with_precedence(p: &str) -> String {
    format!(
        "New-ADSyncRule -Name 'R' -Direction 'Inbound' -Precedence {p} -SourceObjectType 'user' \
         -TargetObjectType 'person' -Connector 'AB-01' -LinkType 'Join' -OutVariable r\n\
         Add-ADSyncRule -SynchronizationRule $r[0]\n"
    )
}

#[test]
fn a_precedence_from_a_variable_is_never_silently_zero() {
    // A typed assignment is evaluated.
    let c = read_str(&format!("[int] $p = 88\n{}", rule_with_precedence("$p"))).unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert_eq!(c.rules[0].precedence, 88);
    // A value the reader cannot know is reported where the rule needs it, with the flag.
    let script = format!("$p = Get-Precedence\n{}", rule_with_precedence("$p"));
    let c = read_str(&script).unwrap();
    assert_eq!(
        unmapped(&c),
        vec![
            (
                "R".to_string(),
                "`-Precedence` of New-ADSyncRule comes from `$p`, which is the output of `Get-Precedence` (line 1), which is not evaluated: give its value with --var p=VALUE".to_string()
            ),
            (
                "R".to_string(),
                "rule has no usable -Precedence; imported with precedence 0".to_string()
            ),
        ]
    );
    // `--var` gives it; a `--var` the script does not need is a warning.
    let options = powershell::Options {
        vars: [("p", "90"), ("unused", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    };
    let c = powershell::read_with(Path::new("x.ps1"), &script, &options).unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert_eq!(c.rules[0].precedence, 90);
    assert_eq!(
        notes(&c),
        vec![(
            "warning".to_string(),
            "--var unused is not used: the script does not need `$unused`".to_string()
        )]
    );
}

#[test]
fn rules_inside_functions_branches_loops_and_handlers_are_all_found() {
    use idflow::import::model::ConnectorRef;
    let c = read_with("structured.ps1", &[]).unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    let names: Vec<&str> = c.rules.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "Custom - In from AD - User Department",
            "Custom - In from AD - User Extensions",
            "Custom - In from AD - User Never Called",
        ]
    );
    // Built by a function: named parameters, a default, `$null =` and `return`.
    let r = &c.rules[0];
    assert_eq!(r.precedence, 200);
    assert_eq!(r.connector_ref, ConnectorRef::Name("Contoso.com".into()));
    assert_eq!(
        r.flows,
        vec![
            flow(
                "department",
                FlowKind::Direct,
                "department",
                "Update",
                false
            ),
            flow("company", FlowKind::Direct, "company", "Update", false),
        ]
    );
    // Splatting, `> $null`, a `for` loop and a `while` loop left with `break`.
    let r = &c.rules[1];
    assert_eq!(r.id, "{c0ffee00-1111-2222-3333-444455556666}");
    assert_eq!(r.precedence, 220);
    let targets: Vec<&str> = r.flows.iter().map(|f| f.target.as_str()).collect();
    assert_eq!(
        targets,
        vec![
            "extensionAttribute1",
            "extensionAttribute2",
            "extensionAttribute3"
        ]
    );
    assert_eq!(
        r.scope,
        vec![vec![scope("employeeType", "EQUAL", Some("Employee"))]]
    );
    let line = |needle: &str| {
        fixture("structured.ps1")
            .1
            .lines()
            .position(|l| l.contains(needle))
            .unwrap()
            + 1
    };
    assert_eq!(
        notes(&c),
        vec![
            (
                "script".to_string(),
                format!(
                    "the `catch` block of the `try` at line {} runs only when the `try` block fails; not read: New-ADSyncRule at line {}, Add-ADSyncRule at line {}",
                    line("try {"),
                    line("'Custom - Fallback'"),
                    line("$fallback[0]")
                )
            ),
            (
                "script".to_string(),
                format!(
                    "function `Add-NeverCalled` (line {}) is never called by the script: its body is read once",
                    line("function Add-NeverCalled")
                )
            ),
        ]
    );
    // A switch parameter of the script, given with --var: the `if` branch runs.
    let c = read_with("structured.ps1", &[("WithContacts", "true")]).unwrap();
    let r = c
        .rules
        .iter()
        .find(|r| r.name == "Custom - In from AD - Contact Mail")
        .expect("the contact rule");
    assert_eq!((r.precedence, r.source_type.as_str()), (210, "contact"));
    assert_eq!(r.flows.len(), 1);
}

#[test]
fn branches_whose_condition_is_unknown_are_all_read_and_noted() {
    let rule = |name: &str, p: &str| {
        format!(
            "New-ADSyncRule -Name '{name}' -Direction 'Inbound' -Precedence {p} -SourceObjectType 'user' \
             -TargetObjectType 'person' -Connector 'AB-01' -LinkType 'Join' -OutVariable r\n\
             Add-ADSyncRule -SynchronizationRule $r[0]\n"
        )
    };
    let c = read_str(&format!(
        "if (-not (Get-ADSyncRule -Identifier 'AB-02')) {{\n{}}}\n",
        rule("Only if missing", "5")
    ))
    .unwrap();
    assert_eq!(c.rules.len(), 1);
    assert_eq!(
        notes(&c),
        vec![(
            "script".to_string(),
            "the condition of the `if` at line 1 (`-not (Get-ADSyncRule -Identifier 'AB-02')`) is not evaluated: every branch is read".to_string()
        )]
    );
    // A variable the branches set differently is unknown afterwards, not the last branch's.
    let c = read_str(&format!(
        "$x = Get-Thing\nif ($x) {{ $p = 10 }} else {{ $p = 20 }}\n{}",
        rule("R", "$p")
    ))
    .unwrap();
    assert_eq!(
        unmapped(&c)[0].1,
        "`-Precedence` of New-ADSyncRule comes from `$p`, which is set differently by branches (line 2) whose condition is not evaluated: give its value with --var p=VALUE"
    );
    // Branches that agree leave the value known.
    let c = read_str(&format!(
        "$x = Get-Thing\nif ($x) {{ $p = 10 }} else {{ $p = 10 }}\n{}",
        rule("R", "$p")
    ))
    .unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert_eq!(c.rules[0].precedence, 10);
}

#[test]
fn connector_expressions_are_read_as_names_identifiers_or_expressions() {
    use idflow::import::model::ConnectorRef;
    let c = read_with("connectors.ps1", &[]).unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    let refs: Vec<(&str, &ConnectorRef)> = c
        .rules
        .iter()
        .map(|r| (r.connector.as_str(), &r.connector_ref))
        .collect();
    let expression = |written: &str, line: usize, kind: Option<&str>| ConnectorRef::Expression {
        written: written.into(),
        origin: format!("line {line}"),
        kind: kind.map(Into::into),
    };
    assert_eq!(
        refs,
        vec![
            // `(Get-ADSyncConnector -Name "Contoso.com").Identifier` through a variable.
            ("Contoso.com", &ConnectorRef::Name("Contoso.com".into())),
            // `Where-Object { $_.Name -eq ... }` and `.Identifier.Guid`.
            ("contoso.com", &ConnectorRef::Name("contoso.com".into())),
            // An item of the list of all connectors: not known before the script runs.
            (
                "$connectors[1].Identifier",
                &expression("$connectors[1].Identifier", 18, None)
            ),
            // A filter on the connector type tells the kind.
            (
                "Get-ADSyncConnector | Where-Object { $_.Type -eq 'AD' }",
                &expression(
                    "Get-ADSyncConnector | Where-Object { $_.Type -eq 'AD' }",
                    19,
                    Some("ad")
                )
            ),
            // The Microsoft Entra connector's fixed identifier.
            ("{b891884f-051e-4a83-95af-2544101c9083}", &ConnectorRef::Id),
        ]
    );
}

#[test]
fn joinnoflow_is_a_link_type() {
    use idflow::import::writer;
    let mut c = read_str(
        "New-ADSyncRule -Name 'In from AD - User Join' -Direction 'Inbound' -Precedence 5 `\n\
         -SourceObjectType 'user' -TargetObjectType 'person' -Connector 'AB-01' -LinkType 'JoinNoFlow' -OutVariable r | Out-Null\n\
         New-Object -TypeName 'Microsoft.IdentityManagement.PowerShell.ObjectModel.JoinCondition' -ArgumentList 'employeeID','employeeId',$false -OutVariable j | Out-Null\n\
         Add-ADSyncJoinConditionGroup -SynchronizationRule $r[0] -JoinConditions @($j[0]) -OutVariable r | Out-Null\n\
         Add-ADSyncRule -SynchronizationRule $r[0] | Out-Null\n",
    )
    .unwrap();
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert_eq!(c.rules[0].link_type, "JoinNoFlow");
    let files = writer::write(&mut c, &writer::Options::default());
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert!(
        files[0].text.contains("  link joinnoflow\n"),
        "{}",
        files[0].text
    );
}
