//! Attribute flow with precedence and merge types.
//!
//! Consumes: the contributions of every in-scope flow to one target attribute, in precedence
//! order (lower precedence number first, then connector order). Produces: the attribute's
//! [`Outcome`]. Semantics (docs/DECISIONS.md): `NULL` lets lower rules contribute and removes
//! the value when none does; `AuthoritativeNull` stops lower rules and removes the value;
//! `IgnoreThisFlow` is as if the flow did not exist (a target touched only by such flows keeps
//! its value); `merge` unions the values of all contributions (exact duplicates removed),
//! `merge-case-insensitive` also removes duplicates differing only in case; `update` and
//! `replace` take the first contribution with a value.

use crate::ir::MergeType;
use crate::value::Value;

/// The result of resolving one target attribute.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Set(Value),
    Remove,
    /// Every contribution was `IgnoreThisFlow` (or errored): leave the target as it is.
    Keep,
}

/// Resolves contributions, given in precedence order.
pub fn resolve<'a>(
    merge: MergeType,
    contributions: impl IntoIterator<Item = &'a Value>,
) -> Outcome {
    let mut any = false;
    let mut all_ignored = true;
    let mut merged: Vec<Value> = Vec::new();
    let merging = matches!(merge, MergeType::Merge | MergeType::MergeCaseInsensitive);
    for v in contributions {
        any = true;
        match v {
            Value::IgnoreThisFlow => continue,
            Value::Null => all_ignored = false,
            Value::AuthoritativeNull => {
                all_ignored = false;
                break;
            }
            value => {
                all_ignored = false;
                if !merging {
                    return Outcome::Set(value.clone());
                }
                for x in value.values() {
                    let dup = merged
                        .iter()
                        .any(|m| same(m, x, merge == MergeType::MergeCaseInsensitive));
                    if !dup {
                        merged.push(x.clone());
                    }
                }
            }
        }
    }
    if !merged.is_empty() {
        Outcome::Set(Value::many(merged))
    } else if any && all_ignored {
        Outcome::Keep
    } else {
        Outcome::Remove
    }
}

/// `items` grouped by their target slot (`slot` of each, below `width`), slots in ascending
/// order and, within a slot, in the order given: what a stable sort by slot gives, in time
/// linear in the items and slots (a sync groups the flow contributions of every object it
/// evaluates).
pub fn by_slot<T: Copy>(items: &[T], width: usize, slot: impl Fn(&T) -> usize) -> Vec<T> {
    let mut starts = vec![0u32; width + 1];
    for x in items {
        starts[slot(x) + 1] += 1;
    }
    for s in 1..starts.len() {
        starts[s] += starts[s - 1];
    }
    let mut out = items.to_vec();
    for x in items {
        let at = &mut starts[slot(x)];
        out[*at as usize] = *x;
        *at += 1;
    }
    out
}

fn same(a: &Value, b: &Value, case_insensitive: bool) -> bool {
    match (a, b) {
        (Value::Str(x) | Value::Ref(x), Value::Str(y) | Value::Ref(y)) if case_insensitive => {
            x.to_lowercase() == y.to_lowercase()
        }
        _ => a == b,
    }
}

/// Shapes a value for an attribute: empty strings are no value (directories do not store
/// them), and a single-valued attribute keeps the first value.
pub fn shape(v: Value, multi: bool) -> Value {
    match v {
        Value::Str(s) if s.is_empty() => Value::Null,
        v if multi && !v.is_null() && !matches!(v, Value::Many(_)) => Value::many(vec![v]),
        Value::Many(items) => {
            let kept: Vec<Value> = items
                .iter()
                .filter(|x| !matches!(x, Value::Str(s) if s.is_empty()))
                .cloned()
                .collect();
            match (multi, kept.len()) {
                (_, 0) => Value::Null,
                (false, _) => kept.into_iter().next().unwrap_or_default(),
                (true, n) if n == items.len() => Value::Many(items),
                (true, _) => Value::many(kept),
            }
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(x: &str) -> Value {
        Value::from(x)
    }

    #[test]
    fn update_takes_the_first_value_and_null_falls_through() {
        assert_eq!(
            resolve(MergeType::Update, &[Value::Null, s("b"), s("c")]),
            Outcome::Set(s("b"))
        );
        assert_eq!(resolve(MergeType::Update, &[Value::Null]), Outcome::Remove);
        assert_eq!(resolve(MergeType::Update, &[]), Outcome::Remove);
    }

    #[test]
    fn authoritative_null_blocks_lower_rules() {
        assert_eq!(
            resolve(MergeType::Update, &[Value::AuthoritativeNull, s("b")]),
            Outcome::Remove
        );
    }

    #[test]
    fn ignore_this_flow_keeps_the_existing_value() {
        assert_eq!(
            resolve(MergeType::Update, &[Value::IgnoreThisFlow]),
            Outcome::Keep
        );
        assert_eq!(
            resolve(MergeType::Update, &[Value::IgnoreThisFlow, s("x")]),
            Outcome::Set(s("x"))
        );
        assert_eq!(
            resolve(MergeType::Update, &[Value::IgnoreThisFlow, Value::Null]),
            Outcome::Remove
        );
    }

    #[test]
    fn merge_unions_values() {
        let a = Value::many(vec![s("SMTP:a@x"), s("smtp:b@x")]);
        let b = Value::many(vec![s("smtp:B@x"), s("x500:c")]);
        assert_eq!(
            resolve(MergeType::Merge, &[a.clone(), b.clone()]),
            Outcome::Set(Value::many(vec![
                s("SMTP:a@x"),
                s("smtp:b@x"),
                s("smtp:B@x"),
                s("x500:c")
            ]))
        );
        assert_eq!(
            resolve(MergeType::MergeCaseInsensitive, &[a, b]),
            Outcome::Set(Value::many(vec![s("SMTP:a@x"), s("smtp:b@x"), s("x500:c")]))
        );
    }

    #[test]
    fn empty_strings_are_no_value() {
        assert_eq!(shape(s(""), false), Value::Null);
        assert_eq!(
            shape(Value::many(vec![s(""), s("a")]), true),
            Value::many(vec![s("a")])
        );
    }

    #[test]
    fn single_valued_targets_keep_the_first_value() {
        assert_eq!(shape(Value::many(vec![s("a"), s("b")]), false), s("a"));
        assert_eq!(shape(s("a"), true), Value::many(vec![s("a")]));
    }

    #[test]
    fn grouping_by_slot_is_a_stable_sort_by_slot() {
        // A small linear congruential sequence: slots with gaps, repeats and the last slot.
        let mut x: u64 = 7;
        for n in [0usize, 1, 2, 5, 40, 300] {
            let items: Vec<(usize, usize)> = (0..n)
                .map(|i| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    ((x >> 33) as usize % 9, i)
                })
                .collect();
            let mut sorted = items.clone();
            sorted.sort_by_key(|c| c.0);
            assert_eq!(by_slot(&items, 9, |c| c.0), sorted);
        }
    }
}
