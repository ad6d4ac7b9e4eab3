//! Unit tests of the PowerShell reader: tokens, statements, and small scripts end to end.

use super::lex::{Part, Tok, lex};
use super::parse::{Elem, ExprKind, StmtKind, parse};
use super::*;
use crate::import::model::{Config, Direction, FlowKind};
use std::path::{Path, PathBuf};

fn toks(src: &str) -> Vec<Tok> {
    lex(src).unwrap().into_iter().map(|t| t.tok).collect()
}

fn lex_err(src: &str) -> (usize, usize, String) {
    let e = lex(src).unwrap_err();
    (e.pos.line, e.pos.col, e.msg)
}

fn s(text: &str) -> Tok {
    Tok::Str {
        text: text.into(),
        parts: Vec::new(),
    }
}

fn read_ok(src: &str) -> Config {
    read(Path::new("t.ps1"), src).unwrap()
}

fn whats(c: &Config) -> Vec<String> {
    c.unmapped
        .iter()
        .map(|u| format!("{}: {}", u.context, u.what))
        .collect()
}

const RULE: &str = "New-ADSyncRule -Name 'R' -Identifier 'AB-CD' -Direction 'Outbound' -Precedence 5 \
    -SourceObjectType 'person' -TargetObjectType 'user' -Connector 'EF-01' -LinkType 'provision' -OutVariable syncRule\n";

#[test]
fn single_quoted_strings_double_the_quote_and_span_lines() {
    assert_eq!(toks("'it''s'"), vec![s("it's")]);
    assert_eq!(toks("''"), vec![s("")]);
    assert_eq!(toks("'a\n  b'"), vec![s("a\n  b")]);
    assert_eq!(
        toks(r#"'"\\0ACNF:" `n $x'"#),
        vec![s(r#""\\0ACNF:" `n $x"#)]
    );
}

#[test]
fn double_quoted_strings_take_backtick_escapes() {
    assert_eq!(toks(r#""a`"b``c`$d`ne""#), vec![s("a\"b`c$d\ne")]);
    assert_eq!(toks(r#""say ""hi""""#), vec![s("say \"hi\"")]);
    assert_eq!(
        toks(r#""x $y""#),
        vec![Tok::Str {
            text: "x $y".into(),
            parts: vec![Part::Lit("x ".into()), Part::Var("y".into())]
        }]
    );
    assert_eq!(toks(r#""cost: 5$""#), vec![s("cost: 5$")]);
}

#[test]
fn here_strings() {
    assert_eq!(
        toks("@'\nIn 'quoted'\nline 2\n'@"),
        vec![s("In 'quoted'\nline 2")]
    );
    assert_eq!(toks("@'\r\nx\r\n'@"), vec![s("x")]);
    assert_eq!(toks("@\"\na`tb\n\"@"), vec![s("a\tb")]);
    assert_eq!(
        lex_err("@'x'@").2,
        "here-string header `@'` must be followed by a line break"
    );
    assert_eq!(lex_err("x\n@'\nabc\n").0, 2);
}

#[test]
fn continuations_comments_and_newlines() {
    let t = toks("Cmd `\n  -A 1 `  \r\n-B # note\n<# block\n 'not a string #>x");
    assert_eq!(
        t,
        vec![
            Tok::Word("Cmd".into()),
            Tok::Param {
                name: "A".into(),
                colon: false
            },
            Tok::Num("1".into()),
            Tok::Param {
                name: "B".into(),
                colon: false
            },
            Tok::Newline,
            Tok::Word("x".into()),
        ]
    );
}

#[test]
fn variables_arrays_and_lists() {
    let t =
        toks("@($condition0[0],$condition1[0]) $true $syncRule[0].Identifier 'a','b' -X:$false");
    assert_eq!(
        t,
        vec![
            Tok::ArrayOpen,
            Tok::Var {
                name: "condition0".into(),
                index: Some(0),
                members: vec![]
            },
            Tok::Comma,
            Tok::Var {
                name: "condition1".into(),
                index: Some(0),
                members: vec![]
            },
            Tok::RParen,
            Tok::Var {
                name: "true".into(),
                index: None,
                members: vec![]
            },
            Tok::Var {
                name: "syncRule".into(),
                index: Some(0),
                members: vec!["Identifier".into()]
            },
            s("a"),
            Tok::Comma,
            s("b"),
            Tok::Param {
                name: "X".into(),
                colon: true
            },
            Tok::Var {
                name: "false".into(),
                index: None,
                members: vec![]
            },
        ]
    );
    assert_eq!(
        toks("-5 12 x-1"),
        vec![
            Tok::Num("-5".into()),
            Tok::Num("12".into()),
            Tok::Word("x-1".into())
        ]
    );
}

#[test]
fn lexical_errors_are_located() {
    assert_eq!(
        lex_err("X -A 'abc\n\n"),
        (1, 6, "unterminated single-quoted string".into())
    );
    assert_eq!(
        lex_err("\n  \"abc"),
        (2, 3, "unterminated double-quoted string".into())
    );
    assert_eq!(
        lex_err("X @('a'"),
        (1, 3, "unbalanced `(`: no matching `)`".into())
    );
    assert_eq!(
        lex_err("X 'a')"),
        (1, 6, "unbalanced `)`: nothing is open".into())
    );
    assert_eq!(
        lex_err("X @('a'}"),
        (
            1,
            8,
            "`}` does not match the bracket opened at 1:3 (expected `)`)".into()
        )
    );
    assert_eq!(lex_err("<# never closed").0, 1);
}

#[test]
fn parses_commands_with_switches_and_lists() {
    let src = "New-Object -TypeName 'T' -ArgumentList 'a', '', `\n 'c' -OutVariable c0 | Out-Null";
    let tokens = lex(src).unwrap();
    let block = parse(src, &tokens).unwrap();
    assert_eq!(block.stmts.len(), 1);
    let StmtKind::Pipeline {
        commands,
        input: None,
    } = &block.stmts[0].kind
    else {
        panic!("{block:?}")
    };
    assert_eq!(commands.len(), 2);
    assert_eq!(commands[0].elems.len(), 6);
    let Elem::Arg(e) = &commands[0].elems[3] else {
        panic!()
    };
    let ExprKind::List(items) = &e.kind else {
        panic!("{e:?}")
    };
    assert_eq!(items.len(), 3);
}

#[test]
fn reads_a_minimal_rule() {
    let c = read_ok(&format!(
        "{RULE}Add-ADSyncRule -SynchronizationRule $syncRule[0]\n"
    ));
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    let r = &c.rules[0];
    assert_eq!(r.id, "{ab-cd}");
    assert_eq!(r.connector, "{ef-01}");
    assert_eq!(r.link_type, "Provision");
    assert_eq!(r.direction, Direction::Outbound);
    assert_eq!(r.precedence, 5);
    assert_eq!(r.source, PathBuf::from("t.ps1"));
    assert!(c.connectors.is_empty() && c.metaverse.is_empty());
}

#[test]
fn constant_flows_take_source_or_expression() {
    let c = read_ok(&format!(
        "{RULE}Add-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Destination 'a' -FlowType 'Constant' -Source @('True') -OutVariable syncRule\n\
         Add-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Destination 'b' -FlowType 'Constant' -Expression 'x' -ValueMergeType 'Replace'\n\
         Add-ADSyncRule $syncRule[0]\n"
    ));
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    let f = &c.rules[0].flows;
    assert_eq!(
        (f[0].kind, f[0].source.as_str(), f[0].merge.as_str()),
        (FlowKind::Constant, "True", "Update")
    );
    assert_eq!(
        (f[1].kind, f[1].source.as_str(), f[1].merge.as_str()),
        (FlowKind::Constant, "x", "Replace")
    );
}

#[test]
fn pipelines_into_add_and_remove() {
    let c = read_ok(&format!(
        "Get-ADSyncRule -Identifier '{{AB-CD}}' | Remove-ADSyncRule\n{RULE}$syncRule[0] | Add-ADSyncRule | Out-Null\n"
    ));
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert_eq!(c.rules.len(), 1);
    let c = read_ok(&format!(
        "{RULE}Add-ADSyncRule $syncRule[0]\nRemove-ADSyncRule -Identifier 'other'\n"
    ));
    assert_eq!(c.rules.len(), 1);
    assert!(
        whats(&c)[0].starts_with("script: Remove-ADSyncRule of rule `{other}` at line 3"),
        "{:?}",
        whats(&c)
    );
}

#[test]
fn unsupported_statements_are_unmapped() {
    let c = read_ok(
        "$x = Get-Thing\nif ($x) {\n  Do-It\n} else { }\n[void](Foo)\ntrap { continue }\n. ./other.ps1\n$x.y = 1\n",
    );
    assert_eq!(
        whats(&c),
        vec![
            "script: unknown command `Do-It`",
            "script: unknown command `Foo`",
            "script: unsupported `trap` statement at line 6: `trap { continue }`",
            "script: `. ./other.ps1` at line 7 runs a script block or another script, which is not read",
            "script: unsupported assignment at line 8 to `$x.y` (a value not known before the script runs): not evaluated",
        ]
    );
}

#[test]
fn variables_hold_values_where_parameters_need_them() {
    let src = format!(
        "$connectorId = 'AB-12'\n{}Add-ADSyncRule $syncRule[0]\n",
        RULE.replace("'EF-01'", "$connectorId")
    );
    let c = read_ok(&src);
    assert!(c.unmapped.is_empty(), "{:?}", whats(&c));
    assert_eq!(c.rules[0].connector, "{ab-12}");
}

#[test]
fn variable_errors_are_located() {
    let e = read(
        Path::new("t.ps1"),
        &format!("{RULE}Add-ADSyncRule -SynchronizationRule $rule[0]\n"),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "t.ps1:2:37: variable `$rule` is used before it is assigned"
    );
    let e = read(
        Path::new("t.ps1"),
        &format!("{RULE}Add-ADSyncRule -SynchronizationRule $syncRule[1]\n"),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "t.ps1:2:37: index `[1]` is out of range: `$syncRule` holds one object"
    );
}

#[test]
fn changes_after_add_and_missing_add_are_reported() {
    let c = read_ok(&format!(
        "{RULE}Add-ADSyncRule $syncRule[0]\nAdd-ADSyncAttributeFlowMapping -SynchronizationRule $syncRule[0] -Destination 'a' -FlowType 'Direct' -Source 'b'\n{}",
        RULE.replace("'R'", "'S'")
    ));
    assert_eq!(c.rules.len(), 1);
    assert!(c.rules[0].flows.is_empty());
    assert_eq!(
        whats(&c),
        vec![
            "R: changes made after Add-ADSyncRule at line 2 are never added; imported as of that line",
            "S: rule started by New-ADSyncRule at line 4 is never added with Add-ADSyncRule; not imported",
        ]
    );
}

#[test]
fn switches_take_explicit_values_and_parameters_are_case_insensitive() {
    let c = read_ok(&format!(
        "{}add-adsyncrule -synchronizationRULE $SYNCRULE[0]\n",
        RULE.replace(
            "-OutVariable",
            "-Disabled:$false -EnablePasswordSync:$true -outvariable"
        )
    ));
    assert!(c.unmapped.is_empty(), "{:?}", c.unmapped);
    assert!(!c.rules[0].disabled);
    assert!(c.rules[0].password_sync);
}

#[test]
fn a_parameter_given_twice_is_an_error() {
    let e = read(
        Path::new("t.ps1"),
        &RULE.replace("-Precedence 5", "-Precedence 5 -precedence 6"),
    )
    .unwrap_err();
    assert_eq!(
        e,
        "t.ps1:1:82: parameter `-precedence` of New-ADSyncRule is given more than once"
    );
}

#[test]
fn normalizes_guids() {
    assert_eq!(normalize_guid("AE4DB4CC-B16B"), "{ae4db4cc-b16b}");
    assert_eq!(normalize_guid("{AE4DB4CC-B16B}"), "{ae4db4cc-b16b}");
}

#[test]
fn hostile_scripts_are_bounded() {
    // Copies of a large value add up: the read stops with a located error.
    let e = read(
        Path::new("t.ps1"),
        "$s = 'x' * 60000\n$a = @()\nfor ($i = 0; $i -lt 5000; $i++) { $a += $s }\n",
    )
    .unwrap_err();
    assert!(
        e.starts_with("t.ps1:3:") && e.contains("more than 64 MiB of values"),
        "{e}"
    );
    // A loop that never ends is left after 10,000 iterations, and reported.
    let c = read_ok("while ($true) { $n++ }\n");
    assert_eq!(
        whats(&c),
        vec!["script: the loop at line 1 runs more than 10000 times: read up to there"]
    );
    // Loops in loops stop at the statement limit.
    let e = read(
        Path::new("t.ps1"),
        "while ($true) { while ($true) { $n++ } }\n",
    )
    .unwrap_err();
    assert!(e.contains("runs more than 1000000 statements"), "{e}");
    // Unbounded recursion.
    let e = read(Path::new("t.ps1"), "function f { f }\nf\n").unwrap_err();
    assert!(e.contains("nested more than 100 deep"), "{e}");
    // Patterns that would backtrack for long are not evaluated: the branches are read.
    let started = std::time::Instant::now();
    let c = read_ok(&format!(
        "if ('{}' -match 'a*a*a*a*a*a*a*a*b') {{ Write-Host 'x' }}\n",
        "a".repeat(5000)
    ));
    assert!(c.unmapped.is_empty(), "{:?}", whats(&c));
    assert!(started.elapsed().as_secs() < 5);
    // Case folding of text that is not ASCII is not guessed.
    let c = read_ok(&format!(
        "$n = 'İstanbul' -replace 'i', 'x'\n{}",
        RULE.replace("-Name 'R'", "-Name $n")
    ));
    assert!(
        whats(&c)[0]
            .starts_with("unnamed rule (line 2): `-Name` of New-ADSyncRule comes from `$n`"),
        "{:?}",
        whats(&c)
    );
}
