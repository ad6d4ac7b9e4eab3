//! Scoping filters: is a rule in scope for an object?
//!
//! Consumes: a rule's scope groups ([`ScopePlan`]) and the object's values by slot. Produces:
//! in scope or not, and for previews the first clause that failed in each group. Semantics
//! (docs/DECISIONS.md item 3): groups are ORed, clauses ANDed; string comparisons are
//! case-insensitive; booleans compare with "True"/"TRUE"/"true" alike; numeric attributes
//! compare numerically; the negative operators are true on an absent attribute.

use super::compile::ScopePlan;
use crate::eval::Ctx;
use crate::eval::Program;
use crate::eval::interp::Object;
use crate::sema::rules::ScopeOp;
use crate::value::Value;
use std::cmp::Ordering;

/// Why a rule is out of scope (for previews): the failing clause of each group.
pub type ScopeMiss = Vec<String>;

/// Evaluates the scope; an empty scope is in scope. `member_of` answers ISMEMBEROF clauses.
pub fn in_scope(
    program: &Program,
    groups: &[Vec<ScopePlan>],
    values: &[Value],
    imported: &[Value],
    ctx: &mut Ctx,
    member_of: &dyn Fn(&str) -> bool,
) -> Result<(), ScopeMiss> {
    if groups.is_empty() {
        return Ok(());
    }
    let mut misses = Vec::new();
    'groups: for g in groups {
        for c in g {
            if !clause(program, c, values, imported, ctx, member_of) {
                misses.push(describe(c));
                continue 'groups;
            }
        }
        return Ok(());
    }
    Err(misses)
}

fn describe(c: &ScopePlan) -> String {
    match c {
        ScopePlan::Compare {
            attr, op, value, ..
        } => {
            let op = crate::syntax::printer::operator(&format!("{op:?}").to_uppercase());
            match value {
                Some(v) => format!("{attr} {op} \"{v}\""),
                None => format!("{attr} {op}"),
            }
        }
        ScopePlan::Expr(..) => "(expression) is false".into(),
    }
}

fn clause(
    program: &Program,
    c: &ScopePlan,
    values: &[Value],
    imported: &[Value],
    ctx: &mut Ctx,
    member_of: &dyn Fn(&str) -> bool,
) -> bool {
    match c {
        ScopePlan::Expr(e, id) => matches!(
            program.eval(
                ctx,
                *id as usize,
                e,
                Object {
                    attrs: values,
                    imported
                }
            ),
            Ok(Value::Bool(true))
        ),
        ScopePlan::Compare {
            slot, op, value, ..
        } => {
            let v = slot.and_then(|s| values.get(s)).unwrap_or(&Value::Null);
            let vals = v.values();
            let want = value.as_deref().unwrap_or("");
            let any = |f: &dyn Fn(&Value) -> bool| vals.iter().any(f);
            match op {
                ScopeOp::IsNull => vals.is_empty(),
                ScopeOp::IsNotNull => !vals.is_empty(),
                ScopeOp::Equal | ScopeOp::IsIn => any(&|x| equal(x, want)),
                ScopeOp::NotEqual | ScopeOp::IsNotIn => !any(&|x| equal(x, want)),
                ScopeOp::Contains => {
                    any(&|x| text(x).is_some_and(|t| t.contains(&want.to_lowercase())))
                }
                ScopeOp::NotContains => {
                    !any(&|x| text(x).is_some_and(|t| t.contains(&want.to_lowercase())))
                }
                ScopeOp::StartsWith => {
                    any(&|x| text(x).is_some_and(|t| t.starts_with(&want.to_lowercase())))
                }
                ScopeOp::NotStartsWith => {
                    !any(&|x| text(x).is_some_and(|t| t.starts_with(&want.to_lowercase())))
                }
                ScopeOp::EndsWith => {
                    any(&|x| text(x).is_some_and(|t| t.ends_with(&want.to_lowercase())))
                }
                ScopeOp::NotEndsWith => {
                    !any(&|x| text(x).is_some_and(|t| t.ends_with(&want.to_lowercase())))
                }
                ScopeOp::LessThan => any(&|x| order(x, want) == Some(Ordering::Less)),
                ScopeOp::LessThanOrEqual => {
                    any(&|x| matches!(order(x, want), Some(Ordering::Less | Ordering::Equal)))
                }
                ScopeOp::GreaterThan => any(&|x| order(x, want) == Some(Ordering::Greater)),
                ScopeOp::GreaterThanOrEqual => {
                    any(&|x| matches!(order(x, want), Some(Ordering::Greater | Ordering::Equal)))
                }
                ScopeOp::IsBitSet => any(&|x| bit_set(x, want)),
                ScopeOp::IsNotBitSet => !any(&|x| bit_set(x, want)),
                ScopeOp::IsMemberOf => member_of(want),
                ScopeOp::IsNotMemberOf => !member_of(want),
            }
        }
    }
}

/// The case-folded text of a value.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Str(s) | Value::Ref(s) => Some(s.to_lowercase()),
        Value::Num(n) => Some(n.to_string()),
        Value::Bool(b) => Some(if *b { "true".into() } else { "false".into() }),
        Value::Dt(d) => Some(d.to_string().to_lowercase()),
        _ => None,
    }
}

/// Parses a scope value as a number: decimal, `0x` hex or Entra's `&H` hex.
pub fn number(s: &str) -> Option<i64> {
    let t = s.trim();
    if let Some(h) = t
        .strip_prefix("0x")
        .or_else(|| t.strip_prefix("0X"))
        .or_else(|| t.strip_prefix("&H"))
        .or_else(|| t.strip_prefix("&h"))
    {
        return u64::from_str_radix(h, 16).ok().map(|v| v as i64);
    }
    t.parse().ok()
}

fn equal(v: &Value, want: &str) -> bool {
    match v {
        Value::Num(n) => number(want) == Some(*n),
        Value::Bool(b) => want.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
        Value::Str(s) | Value::Ref(s) => s.to_lowercase() == want.to_lowercase(),
        other => text(other).is_some_and(|t| t == want.to_lowercase()),
    }
}

fn order(v: &Value, want: &str) -> Option<Ordering> {
    match v {
        Value::Num(n) => number(want).map(|w| n.cmp(&w)),
        other => text(other).map(|t| t.as_str().cmp(want.to_lowercase().as_str())),
    }
}

fn bit_set(v: &Value, mask: &str) -> bool {
    match (v, number(mask)) {
        (Value::Num(n), Some(m)) if m != 0 => n & m == m,
        _ => false,
    }
}
