//! Cross-rule structure checks.
//!
//! Consumes: all resolved [`RuleDef`]s of a bundle. Produces: diagnostics for duplicate rule
//! names (E0301), precedence collisions on a shared target attribute (E0302), differing join
//! conditions of in-scope join rules for one connector and object type (W0303) and mixed merge
//! types on one target attribute (E0304).

use super::rules::RuleDef;
use crate::diag::Diagnostic;
use crate::source::{FileId, Span};
use crate::syntax::ast::{self, Direction, MergeType};
use std::collections::BTreeMap;

/// Runs every cross-rule check. Names are judged on every rule of the bundle (`all`), also
/// those that do not resolve (a bundle without a schema still has duplicate names); the other
/// checks on the resolved rules.
pub fn check(all: &[(FileId, &ast::Rule)], rules: &[RuleDef], diags: &mut Vec<Diagnostic>) {
    duplicate_names(all, diags);
    let enabled: Vec<&RuleDef> = rules.iter().filter(|r| !r.disabled).collect();
    precedence(&enabled, diags);
    merge_types(&enabled, diags);
    join_conditions(&enabled, diags);
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

fn join_conditions(rules: &[&RuleDef], diags: &mut Vec<Diagnostic>) {
    type Key<'a> = (Direction, &'a str, &'a str, &'a str);
    let mut first: BTreeMap<Key<'_>, &RuleDef> = BTreeMap::new();
    for r in rules.iter().filter(|r| !r.joins.is_empty()) {
        let key = (
            r.direction,
            r.connector.as_str(),
            r.source.as_str(),
            r.target.as_deref().unwrap_or("*"),
        );
        match first.get(&key) {
            None => {
                first.insert(key, r);
            }
            Some(other) if join_signature(other) != join_signature(r) => {
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
            Some(_) => {}
        }
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
