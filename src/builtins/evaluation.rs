//! Builtins of the stdlib area `evaluation` (see `stdlib/evaluation.toml` for the declarations).
//!
//! Consumes: evaluated argument values; the `var` parameters receive the whole value (a
//! collection, a scalar or NULL). Produces: the function results; these tests never fault on
//! NULL or on a value of an unexpected type (they answer False). IsDate, IsGuid and IsNumeric
//! use the parsers of CDate, CGuid and CNum, so they accept exactly what the conversions accept.

use super::conversion::{parse_date, parse_guid, parse_num};
use super::{BuiltinFn, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::Value;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "IsBitSet" => is_bit_set,
        "IsDate" => is_date,
        "IsEmpty" => is_empty,
        "IsGuid" => is_guid,
        "IsNull" => is_null,
        "IsNullOrEmpty" => is_null_or_empty,
        "IsNumeric" => is_numeric,
        "IsPresent" => is_present,
        "IsString" => is_string,
        _ => return None,
    };
    Some(f)
}

/// True when the value has at least one value and every value passes `test`.
fn all_values(v: &Value, test: fn(&Value) -> bool) -> bool {
    let values = v.values();
    !values.is_empty() && values.iter().all(test)
}

/// An empty string (or reference).
fn is_empty_string(v: &Value) -> bool {
    v.as_str().is_some_and(str::is_empty)
}

fn is_bit_set(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    let value = args::num("IsBitSet", args, 0)?;
    let flag = args::num("IsBitSet", args, 1)?;
    Ok(Value::Bool(match (value, flag) {
        (Some(v), Some(f)) => f != 0 && v & f == f,
        _ => false,
    }))
}

fn is_date(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(all_values(args::get(args, 0), |v| match v {
        Value::Dt(_) => true,
        Value::Str(s) => parse_date(s).is_some(),
        _ => false,
    })))
}

fn is_empty(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(all_values(args::get(args, 0), is_empty_string)))
}

fn is_null(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(args::get(args, 0).values().is_empty()))
}

/// True for NULL and for a value all of whose values are empty strings.
fn null_or_empty(v: &Value) -> bool {
    v.values().iter().all(is_empty_string)
}

fn is_null_or_empty(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(null_or_empty(args::get(args, 0))))
}

fn is_present(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(!null_or_empty(args::get(args, 0))))
}

fn is_numeric(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(all_values(args::get(args, 0), |v| match v {
        Value::Num(_) => true,
        Value::Str(s) => parse_num(s).is_some(),
        _ => false,
    })))
}

fn is_string(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(all_values(args::get(args, 0), |v| {
        matches!(
            v,
            Value::Str(_) | Value::Ref(_) | Value::Num(_) | Value::Bool(_) | Value::Dt(_)
        )
    })))
}

fn is_guid(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    Ok(Value::Bool(match args::get(args, 0) {
        Value::Str(s) | Value::Ref(s) => parse_guid(s).is_some(),
        _ => false,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(name: &str, args: &[Value]) -> Value {
        let f = lookup(name).expect("function");
        f(&mut Ctx::fixed(), args).expect("no fault")
    }

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    fn t(name: &str, v: Value) -> bool {
        ok(name, &[v]) == Value::Bool(true)
    }

    fn mv(vs: &[Value]) -> Value {
        Value::many(vs.to_vec())
    }

    #[test]
    fn is_bit_set() {
        let b = |v: i64, f: i64| ok("IsBitSet", &[Value::Num(v), Value::Num(f)]);
        assert_eq!(b(0xF, 4), Value::Bool(true));
        assert_eq!(b(0xF, 0x10), Value::Bool(false));
        assert_eq!(b(514, 2), Value::Bool(true));
        assert_eq!(b(512, 2), Value::Bool(false));
        assert_eq!(b(-1, i64::MIN), Value::Bool(true));
        assert_eq!(b(5, 0), Value::Bool(false));
        assert_eq!(b(5, 3), Value::Bool(false));
        assert_eq!(
            ok("IsBitSet", &[Value::Null, Value::Num(2)]),
            Value::Bool(false)
        );
        assert_eq!(
            ok("IsBitSet", &[Value::Num(2), Value::Null]),
            Value::Bool(false)
        );
    }

    #[test]
    fn is_date() {
        for d in [
            "12/25/2007",
            "2001-01-01",
            "2012-01-01 23:00:00",
            "2013-01-10 4:00 PM -8",
            "2012-01-01T23:00:00Z",
            "2012-01-01T23:00:00.123+05:30",
            "2/29/2024",
            "2024-02-29 12:00 am",
            "2024-02-29 13:05:59 +0100",
        ] {
            assert!(t("IsDate", s(d)), "{d}");
        }
        for d in [
            "not a date",
            "",
            "2/30/2024",
            "13/01/2024",
            "2024-13-01",
            "2024-01-01 24:00",
            "2024-01-01 13:00 PM",
            "2024-01-01 10:60",
            "2024-01-01 x",
            "2024-01-01 10:00 +99",
            "2024-01-01T",
            "ÉCOLE",
            "😀",
        ] {
            assert!(!t("IsDate", s(d)), "{d}");
        }
        assert!(t("IsDate", Value::Dt(jiff::Timestamp::UNIX_EPOCH)));
        assert!(!t("IsDate", Value::Null));
        assert!(!t("IsDate", Value::Num(20240101)));
        assert!(t("IsDate", mv(&[s("2001-01-01"), s("1/2/2003")])));
        assert!(!t("IsDate", mv(&[s("2001-01-01"), s("x")])));
    }

    #[test]
    fn presence() {
        assert!(t("IsEmpty", s("")));
        assert!(!t("IsEmpty", Value::Null));
        assert!(!t("IsEmpty", s("Sales")));
        assert!(!t("IsEmpty", Value::Num(0)));
        assert!(t("IsNull", Value::Null));
        assert!(t("IsNull", Value::IgnoreThisFlow));
        assert!(!t("IsNull", s("")));
        assert!(!t("IsNull", mv(&[s("a")])));
        assert!(t("IsNullOrEmpty", Value::Null));
        assert!(t("IsNullOrEmpty", s("")));
        assert!(!t("IsNullOrEmpty", s("Joe")));
        assert!(t("IsPresent", s("joe")));
        assert!(!t("IsPresent", s("")));
        assert!(!t("IsPresent", Value::Null));
        assert!(t("IsPresent", Value::Num(0)));
        assert!(t("IsPresent", Value::Bool(false)));
        assert!(t("IsPresent", Value::bin(vec![0])));
        assert!(t("IsPresent", mv(&[s("a"), s("b")])));
        assert!(t("IsPresent", mv(&[s(""), s("b")])));
        assert!(!t("IsPresent", mv(&[s(""), s("")])));
        assert!(t("IsEmpty", mv(&[s(""), s("")])));
        assert!(t("IsNullOrEmpty", mv(&[s(""), s("")])));
    }

    #[test]
    fn is_numeric() {
        for v in [
            "123",
            "-7",
            "+5",
            "0",
            "9223372036854775807",
            "-9223372036854775808",
        ] {
            assert!(t("IsNumeric", s(v)), "{v}");
        }
        assert!(t("IsNumeric", s(" 1 ")));
        for v in [
            "12a",
            "",
            "-",
            "+",
            "1.5",
            "9223372036854775808",
            "١٢",
            "&H10",
        ] {
            assert!(!t("IsNumeric", s(v)), "{v}");
        }
        assert!(t("IsNumeric", Value::Num(42)));
        assert!(!t("IsNumeric", Value::Null));
        assert!(!t("IsNumeric", Value::Bool(true)));
        assert!(!t("IsNumeric", Value::bin(vec![1])));
        assert!(t("IsNumeric", mv(&[Value::Num(1), s("2")])));
    }

    #[test]
    fn is_string() {
        assert!(t("IsString", s("abc")));
        assert!(t("IsString", s("")));
        assert!(t("IsString", Value::Ref("CN=x".into())));
        assert!(t("IsString", Value::Num(1)));
        assert!(t("IsString", Value::Bool(true)));
        assert!(t("IsString", Value::Dt(jiff::Timestamp::UNIX_EPOCH)));
        assert!(!t("IsString", Value::bin(vec![1, 2])));
        assert!(!t("IsString", Value::Null));
        assert!(!t("IsString", mv(&[s("a"), Value::bin(vec![1])])));
    }

    #[test]
    fn is_guid() {
        assert!(t("IsGuid", s("00001111-aaaa-2222-bbbb-3333cccc4444")));
        assert!(t("IsGuid", s("{00001111-AAAA-2222-BBBB-3333CCCC4444}")));
        for v in [
            "not a guid",
            "",
            "{00001111-aaaa-2222-bbbb-3333cccc4444",
            "00001111-aaaa-2222-bbbb-3333cccc4444}",
            "00001111aaaa2222bbbb3333cccc4444",
            "00001111-aaaa-2222-bbbb-3333cccc444g",
            "00001111-aaaa-2222-bbbb-3333cccc44444",
            " 00001111-aaaa-2222-bbbb-3333cccc4444",
            "0000111é-aaaa-2222-bbbb-3333cccc4444",
        ] {
            assert!(!t("IsGuid", s(v)), "{v}");
        }
        assert!(!t("IsGuid", Value::Null));
    }
}
