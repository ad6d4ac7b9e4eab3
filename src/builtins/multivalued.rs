//! Builtins of the stdlib area `multivalued` (see `stdlib/multivalued.toml` for the
//! declarations).
//!
//! Consumes: evaluated argument values; the collection parameters receive the whole value (a
//! collection, a single scalar taken as a collection of one, or NULL taken as empty). Produces:
//! the function results or faults.

use super::text::{fold, num_of};
use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::Value;
use std::collections::HashSet;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "Contains" => contains,
        "Count" => count,
        "Item" => item,
        "ItemOrNull" => item_or_null,
        "Join" => join,
        "RemoveDuplicates" => remove_duplicates,
        "Split" => split,
        _ => return None,
    };
    Some(f)
}

/// Contains' caseType: true for CaseInsensitive.
fn case_insensitive(args: &[Value]) -> Result<bool, Box<Fault>> {
    match args::get(args, 2) {
        v if v.is_null() => Ok(false),
        Value::Str(s) => {
            if s.eq_ignore_ascii_case("CaseInsensitive") {
                Ok(true)
            } else if s.eq_ignore_ascii_case("CaseSensitive") {
                Ok(false)
            } else {
                Err(Fault::invalid(
                    "Contains",
                    format!("unknown case type `{s}` (expected CaseInsensitive or CaseSensitive)"),
                ))
            }
        }
        other => Err(Fault::type_error("Contains", "a CaseType constant", other)),
    }
}

fn contains(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Contains";
    let ci = case_insensitive(args)?;
    let Some(search) = args::str(F, args, 1)? else {
        return Ok(Value::Num(0));
    };
    let folded_search = if ci { fold(search) } else { String::new() };
    for (i, v) in args::get(args, 0).values().iter().enumerate() {
        let hit = match v {
            Value::Str(s) if ci => fold(s).contains(&folded_search),
            Value::Str(s) => s.contains(search),
            Value::Ref(r) if ci => fold(r) == folded_search,
            Value::Ref(r) => &**r == search,
            other => return Err(Fault::type_error(F, "a multi-valued str or ref", other)),
        };
        if hit {
            return Ok(num_of(i.saturating_add(1)));
        }
    }
    Ok(Value::Num(0))
}

fn count(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(num_of(args::get(args, 0).values().len()))
}

/// The value at a 1-based index; Err(number of values) when out of range.
fn nth(args: &[Value], f: &str) -> Result<Option<Result<Value, usize>>, Box<Fault>> {
    let Some(index) = args::num(f, args, 1)? else {
        return Ok(None);
    };
    let values = args::get(args, 0).values();
    let picked = usize::try_from(index)
        .ok()
        .and_then(|i| i.checked_sub(1))
        .and_then(|i| values.get(i));
    Ok(Some(picked.cloned().ok_or(values.len())))
}

fn item(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Item";
    match nth(args, F)? {
        None => Ok(Value::Null),
        Some(Ok(v)) => Ok(v),
        Some(Err(n)) => {
            let index = args::num(F, args, 1)?.unwrap_or(0);
            let message = if n == 0 {
                format!("{F}: index {index} is out of range: the attribute has no values")
            } else {
                format!("{F}: index {index} is out of range (1 to {n})")
            };
            Err(Fault::new("E0504", message))
        }
    }
}

fn item_or_null(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    match nth(args, "ItemOrNull")? {
        Some(Ok(v)) => Ok(v),
        _ => Ok(Value::Null),
    }
}

fn join(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Join";
    let delimiter = if args.len() >= 2 {
        args::str(F, args, 1)?.unwrap_or("")
    } else {
        " "
    };
    let values = args::get(args, 0).values();
    if values.is_empty() {
        return Ok(Value::Null);
    }
    let mut parts = Vec::with_capacity(values.len());
    for v in values {
        match v.as_str() {
            Some(s) => parts.push(s),
            None => return Err(Fault::type_error(F, "a multi-valued str", v)),
        }
    }
    let bytes = parts
        .iter()
        .map(|p| p.len())
        .fold(0usize, usize::saturating_add)
        .saturating_add(delimiter.len().saturating_mul(parts.len() - 1));
    ctx.check_bytes(bytes)?;
    ctx.string(parts.join(delimiter))
}

/// A value's identity for RemoveDuplicates (exact, case-sensitive; a str and a ref differ).
#[derive(PartialEq, Eq, Hash)]
enum Key<'a> {
    Str(&'a str),
    Ref(&'a str),
    Num(i64),
    Bool(bool),
    Bin(&'a [u8]),
    Dt(jiff::Timestamp),
}

fn key(v: &Value) -> Option<Key<'_>> {
    Some(match v {
        Value::Str(s) => Key::Str(s),
        Value::Ref(s) => Key::Ref(s),
        Value::Num(n) => Key::Num(*n),
        Value::Bool(b) => Key::Bool(*b),
        Value::Bin(b) => Key::Bin(b),
        Value::Dt(d) => Key::Dt(*d),
        _ => return None,
    })
}

fn remove_duplicates(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    let values = args::get(args, 0).values();
    ctx.charge_values(values.len())?;
    let mut seen: HashSet<Key<'_>> = HashSet::with_capacity(values.len());
    let mut out: Vec<Value> = Vec::with_capacity(values.len());
    for v in values {
        if key(v).is_none_or(|k| seen.insert(k)) {
            out.push(v.clone());
        }
    }
    Ok(Value::many(out))
}

fn split(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "Split";
    let delimiter = args::str(F, args, 1)?;
    let limit = args::num(F, args, 2)?;
    let Some(s) = args::str(F, args, 0)? else {
        return Ok(Value::Null);
    };
    let Some(d) = delimiter else {
        return Err(Fault::invalid(F, "the delimiter cannot be NULL"));
    };
    let mut chars = d.chars();
    let (Some(d), None) = (chars.next(), chars.next()) else {
        return Err(Fault::invalid(
            F,
            format!("the delimiter must be a single character, got \"{d}\""),
        ));
    };
    // A negative or NULL limit means no limit; 0 returns no values.
    let limit = match limit {
        Some(l) if l >= 0 => usize::try_from(l).unwrap_or(usize::MAX),
        _ => usize::MAX,
    };
    if limit == 0 {
        return Ok(Value::Null);
    }
    let parts = s.matches(d).count().saturating_add(1).min(limit);
    ctx.check_values(parts)?;
    // The parts' bytes (at most the string's) and one value each.
    ctx.charge(s.len())?;
    ctx.charge_values(parts)?;
    let values: Vec<Value> = s.splitn(limit, d).map(Value::from).collect();
    Ok(Value::many(values))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::ctx::Limits;

    fn call(name: &str, args: &[Value]) -> Outcome {
        let f = lookup(name).expect("function");
        f(&mut Ctx::fixed(), args)
    }

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    fn n(v: i64) -> Value {
        Value::Num(v)
    }

    fn mv(vs: &[&str]) -> Value {
        Value::many(vs.iter().map(|v| s(v)).collect())
    }

    fn ok(name: &str, args: &[Value]) -> Value {
        call(name, args).expect("no fault")
    }

    fn code(name: &str, args: &[Value]) -> &'static str {
        call(name, args).expect_err("a fault").code
    }

    #[test]
    fn contains() {
        let p = mv(&["smtp:jd@contoso.com", "SMTP:john.doe@contoso.com"]);
        assert_eq!(ok("Contains", &[p.clone(), s("SMTP:")]), n(2));
        assert_eq!(
            ok("Contains", &[p.clone(), s("smtp:"), s("CaseInsensitive")]),
            n(1)
        );
        assert_eq!(
            ok("Contains", &[p.clone(), s("SMTP:"), s("casesensitive")]),
            n(2)
        );
        assert_eq!(ok("Contains", &[p.clone(), s("x500:")]), n(0));
        assert_eq!(ok("Contains", &[Value::Null, s("x")]), n(0));
        assert_eq!(ok("Contains", &[p.clone(), Value::Null]), n(0));
        assert_eq!(
            ok("Contains", &[s("ÉCOLE"), s("éco"), s("CaseInsensitive")]),
            n(1)
        );
        let refs = Value::many(vec![
            Value::Ref("CN=Alice,DC=x".into()),
            Value::Ref("CN=Bob,DC=x".into()),
        ]);
        assert_eq!(ok("Contains", &[refs.clone(), s("CN=Bob,DC=x")]), n(2));
        assert_eq!(ok("Contains", &[refs, s("CN=Bob")]), n(0));
        assert_eq!(code("Contains", &[p.clone(), s("x"), s("Nope")]), "E0503");
        assert_eq!(
            code("Contains", &[Value::many(vec![n(1)]), s("1")]),
            "E0502"
        );
    }

    #[test]
    fn count() {
        assert_eq!(ok("Count", &[mv(&["a", "b"])]), n(2));
        assert_eq!(ok("Count", &[Value::Null]), n(0));
        assert_eq!(ok("Count", &[s("")]), n(1));
        assert_eq!(ok("Count", &[Value::bin(vec![1])]), n(1));
    }

    #[test]
    fn item() {
        let d = mv(&["Sales team", "second value"]);
        assert_eq!(ok("Item", &[d.clone(), n(1)]), s("Sales team"));
        assert_eq!(ok("Item", &[d.clone(), n(2)]), s("second value"));
        assert_eq!(ok("Item", &[s("single"), n(1)]), s("single"));
        assert_eq!(ok("Item", &[d.clone(), Value::Null]), Value::Null);
        assert_eq!(code("Item", &[d.clone(), n(3)]), "E0504");
        assert_eq!(code("Item", &[d.clone(), n(0)]), "E0504");
        assert_eq!(code("Item", &[d.clone(), n(i64::MIN)]), "E0504");
        assert_eq!(code("Item", &[d.clone(), n(i64::MAX)]), "E0504");
        assert!(
            call("Item", &[Value::Null, n(1)])
                .unwrap_err()
                .message
                .contains("out of range")
        );
        assert_eq!(ok("ItemOrNull", &[d.clone(), n(2)]), s("second value"));
        assert_eq!(ok("ItemOrNull", &[d.clone(), n(3)]), Value::Null);
        assert_eq!(ok("ItemOrNull", &[d, n(-1)]), Value::Null);
        assert_eq!(ok("ItemOrNull", &[Value::Null, n(1)]), Value::Null);
    }

    #[test]
    fn join() {
        let t = mv(&["555-0100", "555-0101", "555-0102"]);
        assert_eq!(
            ok("Join", std::slice::from_ref(&t)),
            s("555-0100 555-0101 555-0102")
        );
        assert_eq!(
            ok("Join", &[t.clone(), s(",")]),
            s("555-0100,555-0101,555-0102")
        );
        assert_eq!(
            ok("Join", &[t.clone(), s("")]),
            s("555-0100555-0101555-0102")
        );
        assert_eq!(
            ok("Join", &[t.clone(), Value::Null]),
            s("555-0100555-0101555-0102")
        );
        assert_eq!(ok("Join", &[s("one"), s(",")]), s("one"));
        assert_eq!(ok("Join", &[Value::Null, s(",")]), Value::Null);
        assert_eq!(ok("Join", &[mv(&["é", "😀"]), s("·")]), s("é·😀"));
        assert_eq!(code("Join", &[Value::many(vec![n(1), n(2)])]), "E0502");
        let mut ctx = Ctx::fixed().with_limits(Limits {
            max_bytes: 10,
            ..Limits::default()
        });
        let r = super::join(&mut ctx, &[t, s(",")]);
        assert_eq!(r.unwrap_err().code, "E0510");
    }

    #[test]
    fn remove_duplicates() {
        let p = mv(&["SMTP:a@x", "smtp:b@x", "SMTP:a@x"]);
        assert_eq!(ok("RemoveDuplicates", &[p]), mv(&["SMTP:a@x", "smtp:b@x"]));
        let p = mv(&["SMTP:a@x", "smtp:a@x"]);
        assert_eq!(ok("RemoveDuplicates", std::slice::from_ref(&p)), p);
        assert_eq!(ok("RemoveDuplicates", &[Value::Null]), Value::Null);
        assert_eq!(ok("RemoveDuplicates", &[s("x")]), mv(&["x"]));
        let nums = Value::many(vec![n(1), n(1), n(2)]);
        assert_eq!(
            ok("RemoveDuplicates", &[nums]),
            Value::many(vec![n(1), n(2)])
        );
    }

    #[test]
    fn split() {
        assert_eq!(ok("Split", &[s("a,b"), s(",")]), mv(&["a", "b"]));
        assert_eq!(ok("Split", &[s("a;b;c"), s(";"), n(2)]), mv(&["a", "b;c"]));
        assert_eq!(ok("Split", &[s("a;b;c"), s(";"), n(1)]), mv(&["a;b;c"]));
        assert_eq!(ok("Split", &[s("a;b;c"), s(";"), n(0)]), Value::Null);
        assert_eq!(
            ok("Split", &[s("a;b;c"), s(";"), n(-1)]),
            mv(&["a", "b", "c"])
        );
        assert_eq!(
            ok("Split", &[s("a;b;c"), s(";"), n(i64::MAX)]),
            mv(&["a", "b", "c"])
        );
        assert_eq!(
            ok("Split", &[s("no delimiter"), s(",")]),
            mv(&["no delimiter"])
        );
        assert_eq!(ok("Split", &[s(""), s(",")]), mv(&[""]));
        assert_eq!(ok("Split", &[s(",a,"), s(",")]), mv(&["", "a", ""]));
        assert_eq!(ok("Split", &[s("é😀ü"), s("😀")]), mv(&["é", "ü"]));
        assert_eq!(ok("Split", &[Value::Null, s(",")]), Value::Null);
        assert_eq!(code("Split", &[s("a"), s("")]), "E0503");
        assert_eq!(code("Split", &[s("a"), s(",;")]), "E0503");
        assert_eq!(code("Split", &[s("a"), Value::Null]), "E0503");
        let mut ctx = Ctx::fixed().with_limits(Limits {
            max_values: 3,
            ..Limits::default()
        });
        let r = super::split(&mut ctx, &[s("a,b,c,d"), s(",")]);
        assert_eq!(r.unwrap_err().code, "E0511");
    }
}
