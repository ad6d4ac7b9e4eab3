//! Builtins of the stdlib area `engine` (see `stdlib/engine.toml` for the declarations).
//!
//! Consumes: evaluated argument values. Produces: the function results or faults.
//!
//! `ImportedValue` and `ValueCount` read the object's attributes and are special forms of the
//! interpreter; only `CBin` and `Thumbprint` are builtins.

use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::Value;
use sha2::{Digest, Sha256};

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "CBin" => cbin,
        "Thumbprint" => thumbprint,
        _ => return None,
    };
    Some(f)
}

/// CBin(value, length): `value` as exactly `length` little-endian bytes (0 ..= 8). The value fits
/// when it is in the signed or the unsigned range of that many bytes (CBin(200,1) is C8, like
/// CBin(-56,1)); CBin(x,0) is the empty binary for x = 0.
fn cbin(ctx: &mut Ctx, a: &[Value]) -> Outcome {
    const F: &str = "CBin";
    let Some(value) = args::num(F, a, 0)? else {
        return Ok(Value::Null);
    };
    let Some(length) = args::num(F, a, 1)? else {
        return Ok(Value::Null);
    };
    let len = usize::try_from(length)
        .ok()
        .filter(|&l| l <= 8)
        .ok_or_else(|| {
            Fault::invalid(F, format!("the length must be 0 to 8 bytes, got {length}"))
        })?;
    let fits = if len == 8 {
        true
    } else {
        let bits = u32::try_from(len * 8).unwrap_or(0);
        let v = i128::from(value);
        let min = if bits == 0 { 0 } else { -(1i128 << (bits - 1)) };
        let max = (1i128 << bits) - 1;
        (min..=max).contains(&v)
    };
    if !fits {
        return Err(Fault::invalid(
            F,
            format!("{value} does not fit in {len} byte(s)"),
        ));
    }
    ctx.check_bytes(len)?;
    let bytes = value.to_le_bytes();
    ctx.binary(bytes.get(..len).unwrap_or(&[]).to_vec())
}

/// Thumbprint(bin): the 32-byte SHA-256 hash.
fn thumbprint(_: &mut Ctx, a: &[Value]) -> Outcome {
    let Some(b) = args::bin("Thumbprint", a, 0)? else {
        return Ok(Value::Null);
    };
    Ok(Value::bin(Sha256::digest(b).to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    fn call(f: &str, a: &[Value]) -> Outcome {
        let mut ctx = Ctx::fixed();
        lookup(f).expect("function")(&mut ctx, a)
    }

    fn cbin(v: i64, l: i64) -> Outcome {
        call("CBin", &[Value::Num(v), Value::Num(l)])
    }

    #[test]
    fn lookup_covers_builtins_only() {
        assert!(lookup("CBin").is_some());
        assert!(lookup("Thumbprint").is_some());
        assert!(lookup("ImportedValue").is_none());
        assert!(lookup("ValueCount").is_none());
    }

    #[test]
    fn cbin_examples() {
        assert_eq!(cbin(2, 1), Ok(Value::bin(vec![2])));
        assert_eq!(cbin(32, 2), Ok(Value::bin(vec![0x20, 0])));
        assert_eq!(cbin(258, 2), Ok(Value::bin(vec![2, 1])));
        assert_eq!(cbin(256, 1).unwrap_err().code, "E0503");
    }

    #[test]
    fn cbin_ranges() {
        assert_eq!(cbin(255, 1), Ok(Value::bin(vec![0xFF])));
        assert_eq!(cbin(-1, 1), Ok(Value::bin(vec![0xFF])));
        assert_eq!(cbin(-128, 1), Ok(Value::bin(vec![0x80])));
        assert_eq!(cbin(-129, 1).unwrap_err().code, "E0503");
        assert_eq!(cbin(65535, 2), Ok(Value::bin(vec![0xFF, 0xFF])));
        assert_eq!(cbin(0, 0), Ok(Value::bin(Vec::new())));
        assert_eq!(cbin(1, 0).unwrap_err().code, "E0503");
        assert_eq!(cbin(-1, 8), Ok(Value::bin(vec![0xFF; 8])));
        assert_eq!(
            cbin(i64::MIN, 8),
            Ok(Value::bin(vec![0, 0, 0, 0, 0, 0, 0, 0x80]))
        );
        assert_eq!(cbin(i64::MAX, 7).unwrap_err().code, "E0503");
        assert_eq!(cbin(1, 9).unwrap_err().code, "E0503");
        assert_eq!(cbin(1, -1).unwrap_err().code, "E0503");
        assert_eq!(cbin(1, i64::MAX).unwrap_err().code, "E0503");
        assert_eq!(cbin(1, i64::MIN).unwrap_err().code, "E0503");
        assert_eq!(call("CBin", &[Value::Null, Value::Num(1)]), Ok(Value::Null));
        assert_eq!(call("CBin", &[Value::Num(1), Value::Null]), Ok(Value::Null));
        assert_eq!(
            call("CBin", &[Value::str("1"), Value::Num(1)])
                .unwrap_err()
                .code,
            "E0502"
        );
    }

    #[test]
    fn thumbprint() {
        let want = STANDARD
            .decode("ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=")
            .unwrap();
        assert_eq!(
            call("Thumbprint", &[Value::bin(b"abc".to_vec())]),
            Ok(Value::bin(want))
        );
        let empty = STANDARD
            .decode("47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=")
            .unwrap();
        assert_eq!(
            call("Thumbprint", &[Value::bin(Vec::new())]),
            Ok(Value::bin(empty))
        );
        assert_eq!(call("Thumbprint", &[Value::Null]), Ok(Value::Null));
        assert_eq!(
            call("Thumbprint", &[Value::str("abc")]).unwrap_err().code,
            "E0502"
        );
    }
}
