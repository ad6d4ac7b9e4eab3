//! Cross-rule structure checks.
//!
//! Consumes: all resolved [`RuleDef`]s of a bundle. Produces: diagnostics for duplicate rule
//! names (E0301), precedence collisions on a shared target attribute (E0302), differing join
//! conditions of join rules for one connector and object type whose scopes can hold the same
//! object (W0303) and mixed merge types on one target attribute (E0304).

use super::rules::{RuleDef, ScopeClauseDef, ScopeOp};
use super::schema::Schema;
use crate::diag::Diagnostic;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, Direction, MergeType};
use std::collections::BTreeMap;

/// Runs every cross-rule check. Names are judged on every rule of the bundle (`all`), also
/// those that do not resolve (a bundle without a schema still has duplicate names); the other
/// checks on the resolved rules.
pub fn check(
    all: &[(FileId, &ast::Rule)],
    rules: &[RuleDef],
    schema: &Schema,
    diags: &mut Vec<Diagnostic>,
) {
    duplicate_names(all, diags);
    let enabled: Vec<&RuleDef> = rules.iter().filter(|r| !r.disabled).collect();
    precedence(&enabled, diags);
    merge_types(&enabled, diags);
    join_conditions(&enabled, schema, diags);
}

fn duplicate_names(rules: &[(FileId, &ast::Rule)], diags: &mut Vec<Diagnostic>) {
    let mut seen: BTreeMap<&str, (FileId, &Span)> = BTreeMap::new();
    for (file, r) in rules {
        let name = r.name.value.as_str();
        if let Some((first_file, first_span)) = seen.get(name) {
            diags.push(
                Diagnostic::new(
                    "E0301",
                    *file,
                    r.name.span.clone(),
                    format!("duplicate rule name \"{name}\""),
                )
                .with_related(
                    *first_file,
                    (*first_span).clone(),
                    "first defined here",
                ),
            );
        } else {
            seen.insert(name, (*file, &r.name.span));
        }
    }
}

/// The place a rule's flows write to: direction, connector (outbound only) and object type.
fn target_key(r: &RuleDef) -> (Direction, &str, &str) {
    let connector = match r.direction {
        Direction::Inbound => "",
        Direction::Outbound => r.connector.as_str(),
    };
    (r.direction, connector, r.target.as_deref().unwrap_or("*"))
}

fn precedence(rules: &[&RuleDef], diags: &mut Vec<Diagnostic>) {
    let mut by_prec: BTreeMap<(Direction, i64), Vec<&RuleDef>> = BTreeMap::new();
    for r in rules {
        by_prec
            .entry((r.direction, r.precedence))
            .or_default()
            .push(r);
    }
    for group in by_prec.values() {
        for (i, b) in group.iter().enumerate() {
            for a in &group[..i] {
                if target_key(a) != target_key(b) {
                    continue;
                }
                let shared = b
                    .flows
                    .iter()
                    .find(|f| a.flows.iter().any(|g| g.target == f.target));
                if let Some(f) = shared {
                    diags.push(
                        Diagnostic::new(
                            "E0302",
                            b.file,
                            b.precedence_span.clone(),
                            format!(
                                "rules \"{}\" and \"{}\" both have precedence {} and both flow to `{}`",
                                a.name, b.name, b.precedence, f.target
                            ),
                        )
                        .with_related(a.file, a.precedence_span.clone(), "the other rule's precedence")
                        .with_help("give each rule a distinct precedence so the winner is defined"),
                    );
                    break;
                }
            }
        }
    }
}

fn merge_types(rules: &[&RuleDef], diags: &mut Vec<Diagnostic>) {
    type Key<'a> = (Direction, &'a str, &'a str, &'a str);
    let mut first: BTreeMap<Key<'_>, (MergeType, &RuleDef, &std::ops::Range<usize>)> =
        BTreeMap::new();
    for r in rules {
        let (d, c, t) = target_key(r);
        for f in &r.flows {
            let key = (d, c, t, f.target.as_str());
            match first.get(&key) {
                None => {
                    first.insert(key, (f.merge, r, &f.span));
                }
                Some((m, other, span)) if *m != f.merge => {
                    diags.push(
                        Diagnostic::new(
                            "E0304",
                            r.file,
                            f.span.clone(),
                            format!(
                                "`{}` is written with merge type {} here and {} by rule \"{}\"",
                                f.target,
                                f.merge.as_str(),
                                m.as_str(),
                                other.name
                            ),
                        )
                        .with_related(other.file, (*span).clone(), "the other flow")
                        .with_help("all flows to one attribute must use the same merge type"),
                    );
                }
                Some(_) => {}
            }
        }
    }
}

/// Join rules of one connector, source and target type with different join conditions: a
/// warning when their scopes can hold the same object (scopes that contradict each other, as
/// `cloudMastered EQUAL "true"` and `cloudMastered NOTEQUAL "True"` do, never meet).
fn join_conditions(rules: &[&RuleDef], schema: &Schema, diags: &mut Vec<Diagnostic>) {
    type Key<'a> = (Direction, &'a str, &'a str, &'a str);
    let mut seen: BTreeMap<Key<'_>, Vec<&RuleDef>> = BTreeMap::new();
    for r in rules.iter().filter(|r| !r.joins.is_empty()) {
        let key = (
            r.direction,
            r.connector.as_str(),
            r.source.as_str(),
            r.target.as_deref().unwrap_or("*"),
        );
        let earlier = seen.entry(key).or_default();
        let clash = earlier.iter().find(|other| {
            join_signature(other) != join_signature(r) && scopes_may_meet(other, r, schema)
        });
        if let Some(other) = clash {
            diags.push(
                Diagnostic::new(
                    "W0303",
                    r.file,
                    r.name_span.clone(),
                    format!(
                        "rules \"{}\" and \"{}\" join the same object types with different conditions",
                        other.name, r.name
                    ),
                )
                .with_related(other.file, other.name_span.clone(), "the other join rule")
                .with_help(
                    "when both are in scope for an unjoined object and find different matches, the object gets a Multiple Join Rules sync error",
                ),
            );
        }
        earlier.push(r);
    }
}

/// Whether some object can be in the scope of both rules: some scope group of one and some of
/// the other (no scope is one empty group) hold together without a contradiction.
fn scopes_may_meet(a: &RuleDef, b: &RuleDef, schema: &Schema) -> bool {
    let all = [Vec::new()];
    let groups = |r: &'_ RuleDef| -> Vec<Vec<ScopeClauseDef>> {
        if r.scope.is_empty() {
            all.to_vec()
        } else {
            r.scope.clone()
        }
    };
    let multi = |attr: &str| source_attr_multi(a, attr, schema);
    groups(a).iter().any(|ga| {
        groups(b).iter().any(|gb| {
            let clauses: Vec<&ScopeClauseDef> = ga.iter().chain(gb).collect();
            !clauses
                .iter()
                .enumerate()
                .any(|(i, x)| clauses[i + 1..].iter().any(|y| contradict(x, y, &multi)))
        })
    })
}

/// Whether an attribute of a rule's source object type is multi-valued (unknown: taken as
/// multi-valued, which judges fewer clauses contradictory).
fn source_attr_multi(r: &RuleDef, attr: &str, schema: &Schema) -> bool {
    let object = match r.direction {
        Direction::Inbound => schema
            .connectors
            .get(&r.connector)
            .and_then(|c| c.objects.get(&r.source)),
        Direction::Outbound => schema.metaverse.get(&r.source),
    };
    object.and_then(|o| o.attr(attr)).is_none_or(|a| a.multi)
}

/// Whether two scope clauses cannot both hold for one object. Values compare as the engine
/// compares them: case-insensitively (docs/DECISIONS.md item 3). `EQUAL` of two different
/// values only contradicts on a single-valued attribute (on a multi-valued one it means "a
/// value equals").
fn contradict(x: &ScopeClauseDef, y: &ScopeClauseDef, multi: &dyn Fn(&str) -> bool) -> bool {
    let (
        ScopeClauseDef::Compare {
            attr: ax,
            op: ox,
            value: vx,
        },
        ScopeClauseDef::Compare {
            attr: ay,
            op: oy,
            value: vy,
        },
    ) = (x, y)
    else {
        return false;
    };
    if !ax.eq_ignore_ascii_case(ay) {
        return false;
    }
    let same = match (vx, vy) {
        (Some(a), Some(b)) => a.to_lowercase() == b.to_lowercase(),
        _ => false,
    };
    use ScopeOp::*;
    let opposite = |a: ScopeOp, b: ScopeOp| {
        matches!(
            (a, b),
            (Equal, NotEqual)
                | (Contains, NotContains)
                | (StartsWith, NotStartsWith)
                | (EndsWith, NotEndsWith)
                | (IsBitSet, IsNotBitSet)
                | (IsMemberOf, IsNotMemberOf)
        )
    };
    let has_value = |op: ScopeOp| {
        matches!(
            op,
            Equal
                | Contains
                | StartsWith
                | EndsWith
                | LessThan
                | LessThanOrEqual
                | GreaterThan
                | GreaterThanOrEqual
                | IsBitSet
        )
    };
    match (*ox, *oy) {
        (IsNull, IsNotNull) | (IsNotNull, IsNull) => true,
        (IsNull, op) => has_value(op) && vy.is_some(),
        (op, IsNull) => has_value(op) && vx.is_some(),
        (a, b) if opposite(a, b) || opposite(b, a) => same,
        (Equal, Equal) => vx.is_some() && vy.is_some() && !same && !multi(ax),
        _ => false,
    }
}

fn join_signature(r: &RuleDef) -> Vec<Vec<(String, String, bool)>> {
    r.joins
        .iter()
        .map(|g| {
            g.iter()
                .map(|c| (c.source.clone(), c.target.clone(), c.case_sensitive))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::source::SourceMap;

    const SCHEMA: &str = "bundle \"t\"\nmetaverse {\n  object person {\n    mail string\n    employeeId string\n  }\n}\n\
        connector \"ad\" ad {\n  object user anchor objectGUID {\n    objectGUID binary\n    mail string\n    employeeID string\n    \
        department string\n    proxyAddresses string multi\n    userAccountControl integer\n    cloudMastered boolean\n  }\n}\n";

    /// Whether two join rules with different conditions and these scopes get W0303.
    fn warned(a: &str, b: &str) -> bool {
        let rule = |name: &str, prec: u32, join: &str, scope: &str| {
            format!(
                "inbound rule \"{name}\" {{\n  connector \"ad\"\n  source user\n  target person\n  link join\n  precedence {prec}\n{scope}  join {{\n    {join}\n  }}\n}}\n"
            )
        };
        let mut map = SourceMap::new();
        map.add("schema.idf".to_string(), SCHEMA.to_string());
        map.add(
            "rules.idf".to_string(),
            rule("a", 1, "mail = mail", a) + &rule("b", 2, "employeeID = employeeId", b),
        );
        let checked = crate::frontend::check(&map);
        assert!(!checked.has_errors(), "{:?}", checked.diagnostics);
        checked.diagnostics.iter().any(|d| d.code == "W0303")
    }

    fn scope(groups: &[&[&str]]) -> String {
        groups
            .iter()
            .map(|g| {
                let clauses: String = g.iter().map(|c| format!("    {c}\n")).collect();
                format!("  scope {{\n{clauses}  }}\n")
            })
            .collect()
    }

    #[test]
    fn join_rules_warn_only_when_their_scopes_can_meet() {
        let w = |a: &[&[&str]], b: &[&[&str]]| warned(&scope(a), &scope(b));
        // No scope holds everything.
        assert!(w(&[], &[]));
        assert!(w(&[], &[&["department EQUAL \"x\""]]));
        // Opposite operators on one value, compared case-insensitively.
        assert!(!w(
            &[&["cloudMastered EQUAL \"true\""]],
            &[&["cloudMastered NOTEQUAL \"True\""]]
        ));
        assert!(w(
            &[&["cloudMastered EQUAL \"true\""]],
            &[&["cloudMastered NOTEQUAL \"false\""]]
        ));
        assert!(!w(
            &[&["userAccountControl ISBITSET 2"]],
            &[&["userAccountControl ISNOTBITSET 2"]]
        ));
        assert!(!w(
            &[&["department STARTSWITH \"Sales\""]],
            &[&["department NOTSTARTSWITH \"sales\""]]
        ));
        // Two values of a single-valued attribute, not of a multi-valued one.
        assert!(!w(
            &[&["department EQUAL \"Sales\""]],
            &[&["department EQUAL \"HR\""]]
        ));
        assert!(w(
            &[&["department EQUAL \"Sales\""]],
            &[&["department EQUAL \"sales\""]]
        ));
        assert!(w(
            &[&["proxyAddresses EQUAL \"smtp:a@x\""]],
            &[&["proxyAddresses EQUAL \"smtp:b@x\""]]
        ));
        // Presence.
        assert!(!w(&[&["mail ISNULL"]], &[&["mail ISNOTNULL"]]));
        assert!(!w(&[&["mail ISNULL"]], &[&["mail EQUAL \"x\""]]));
        assert!(w(&[&["mail ISNULL"]], &[&["mail NOTEQUAL \"x\""]]));
        // Groups are ORed: one pair of groups that meets is enough.
        assert!(w(
            &[
                &["department EQUAL \"Sales\""],
                &["department EQUAL \"HR\""]
            ],
            &[&["department EQUAL \"hr\""]]
        ));
        assert!(!w(
            &[&["department EQUAL \"Sales\"", "cloudMastered EQUAL \"TRUE\""]],
            &[
                &["department EQUAL \"HR\""],
                &["cloudMastered NOTEQUAL \"true\""]
            ]
        ));
    }
}
