//! Builtins of the stdlib area `math` (see `stdlib/math.toml` for the declarations).
//!
//! Consumes: evaluated argument values (64-bit signed numbers). Produces: the function results
//! or faults.

use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::Value;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "BitAnd" => bit_and,
        "BitOr" => bit_or,
        "RandomNum" => random_num,
        _ => return None,
    };
    Some(f)
}

fn bitwise(f: &str, args: &[Value], op: fn(i64, i64) -> i64) -> Outcome {
    let a = args::num(f, args, 0)?;
    let b = args::num(f, args, 1)?;
    Ok(match (a, b) {
        (Some(a), Some(b)) => Value::Num(op(a, b)),
        _ => Value::Null,
    })
}

fn bit_and(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    bitwise("BitAnd", args, |a, b| a & b)
}

fn bit_or(_ctx: &mut Ctx, args: &[Value]) -> Outcome {
    bitwise("BitOr", args, |a, b| a | b)
}

fn random_num(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "RandomNum";
    let (Some(start), Some(end)) = (args::num(F, args, 0)?, args::num(F, args, 1)?) else {
        return Ok(Value::Null);
    };
    if start > end {
        return Err(Fault::invalid(
            F,
            format!("start ({start}) is greater than end ({end})"),
        ));
    }
    // The span end - start + 1 is at most 2^64, computed without overflow in 128 bits.
    let span = i128::from(end) - i128::from(start) + 1;
    let r = ctx.next_random();
    let Ok(span) = u64::try_from(span) else {
        // The full 64-bit range: every pattern is a valid result.
        return Ok(Value::Num(i64::from_ne_bytes(r.to_ne_bytes())));
    };
    let n = i128::from(start) + i128::from(r % span);
    i64::try_from(n)
        .map(Value::Num)
        .map_err(|_| Fault::invalid(F, "random number out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(ctx: &mut Ctx, name: &str, a: &[Value]) -> Outcome {
        let f = lookup(name).expect("function");
        f(ctx, a)
    }

    fn n(v: i64) -> Value {
        Value::Num(v)
    }

    #[test]
    fn bit_ops() {
        let mut ctx = Ctx::fixed();
        assert_eq!(call(&mut ctx, "BitAnd", &[n(0xF), n(0xF7)]), Ok(n(7)));
        assert_eq!(
            call(&mut ctx, "BitAnd", &[n(-2147483646), n(-2147483648)]),
            Ok(n(-2147483648))
        );
        assert_eq!(
            call(&mut ctx, "BitAnd", &[n(-1), n(i64::MIN)]),
            Ok(n(i64::MIN))
        );
        assert_eq!(
            call(&mut ctx, "BitAnd", &[Value::Null, n(2)]),
            Ok(Value::Null)
        );
        assert_eq!(call(&mut ctx, "BitOr", &[n(1), n(4)]), Ok(n(5)));
        assert_eq!(call(&mut ctx, "BitOr", &[n(512), n(2)]), Ok(n(514)));
        assert_eq!(
            call(&mut ctx, "BitOr", &[n(2), Value::Null]),
            Ok(Value::Null)
        );
        assert_eq!(
            call(&mut ctx, "BitOr", &[n(i64::MIN), n(i64::MAX)]),
            Ok(n(-1))
        );
        let e = call(&mut ctx, "BitOr", &[Value::str("1"), n(1)]).unwrap_err();
        assert_eq!(e.code, "E0502");
    }

    #[test]
    fn random_num() {
        let mut ctx = Ctx::fixed();
        assert_eq!(call(&mut ctx, "RandomNum", &[n(5), n(5)]), Ok(n(5)));
        let mut seen = [false; 3];
        for _ in 0..200 {
            match call(&mut ctx, "RandomNum", &[n(-1), n(1)]) {
                Ok(Value::Num(v)) if (-1..=1).contains(&v) => seen[(v + 1) as usize] = true,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(seen, [true; 3]);
        for (a, b) in [
            (i64::MIN, i64::MAX),
            (i64::MIN, i64::MIN),
            (i64::MAX - 1, i64::MAX),
            (i64::MIN, 0),
        ] {
            match call(&mut ctx, "RandomNum", &[n(a), n(b)]) {
                Ok(Value::Num(v)) => assert!((a..=b).contains(&v)),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            call(&mut ctx, "RandomNum", &[Value::Null, n(5)]),
            Ok(Value::Null)
        );
        assert_eq!(
            call(&mut ctx, "RandomNum", &[n(6), n(5)]).unwrap_err().code,
            "E0503"
        );
    }
}
