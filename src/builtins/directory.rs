//! Builtins of the stdlib area `directory` (see `stdlib/directory.toml` for the declarations).
//!
//! Consumes: evaluated argument values (DNs as ref or str). Produces: the function results or
//! faults. DNs are split by a small RFC 4514 reader that honours backslash escapes and (RFC 2253)
//! quoted values and returns every value as written, escapes kept.

use super::{BuiltinFn, Fault, Outcome, args};
use crate::builtins::ctx::Ctx;
use crate::value::Value;

/// The implementation of a function of this area, by name.
pub fn lookup(name: &str) -> Option<BuiltinFn> {
    let f: BuiltinFn = match name {
        "DNComponent" => dn_component,
        "DNComponentRev" => dn_component_rev,
        "EscapeDNComponent" => escape_dn_component,
        _ => return None,
    };
    Some(f)
}

/// One RDN of a DN: its attribute type and its value, both as written (spaces around them
/// removed, escapes kept). A multi-valued RDN (`cn=a+sn=b`) keeps everything after its first
/// `=` as the value (`a+sn=b`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Rdn<'a> {
    pub kind: &'a str,
    pub value: &'a str,
}

/// Removes leading white space and trailing white space that is not escaped by a backslash.
fn trim_value(v: &str) -> &str {
    let mut v = v.trim_start();
    loop {
        let Some(last) = v.chars().next_back() else {
            return v;
        };
        if !last.is_whitespace() {
            return v;
        }
        let body = v.get(..v.len() - last.len_utf8()).unwrap_or("");
        let backslashes = body.bytes().rev().take_while(|&b| b == b'\\').count();
        if backslashes % 2 == 1 {
            return v;
        }
        v = body;
    }
}

/// Splits a DN into its RDNs, left to right. An empty DN has none.
pub(crate) fn split_dn(dn: &str) -> Result<Vec<Rdn<'_>>, String> {
    let mut out = Vec::new();
    if dn.trim().is_empty() {
        return Ok(out);
    }
    let bytes = dn.as_bytes();
    let mut start = 0usize;
    let mut eq: Option<usize> = None;
    let mut quoted = false;
    let mut i = 0usize;
    // All the syntax characters are ASCII, so byte positions of them are character boundaries.
    loop {
        let b = bytes.get(i).copied();
        match b {
            Some(b'\\') => {
                if i + 1 >= bytes.len() {
                    return Err("the DN ends with an unfinished escape \"\\\"".into());
                }
                i += 2;
                continue;
            }
            Some(b'"') => quoted = !quoted,
            Some(b'=') if !quoted && eq.is_none() => eq = Some(i),
            Some(b',') | None if !quoted => {
                let rdn = dn.get(start..i).unwrap_or("");
                let Some(e) = eq else {
                    return Err(format!("the component \"{}\" has no \"=\"", rdn.trim()));
                };
                let kind = dn.get(start..e).unwrap_or("").trim();
                if kind.is_empty() {
                    return Err(format!(
                        "the component \"{}\" has no attribute type",
                        rdn.trim()
                    ));
                }
                let value = trim_value(dn.get(e + 1..i).unwrap_or(""));
                out.push(Rdn { kind, value });
                if b.is_none() {
                    return Ok(out);
                }
                start = i + 1;
                eq = None;
            }
            None => return Err("the DN has an unterminated quoted value".into()),
            Some(_) => {}
        }
        i += 1;
    }
}

/// The DN argument split into RDNs; None for NULL.
fn dn_arg<'a>(f: &str, args: &'a [Value]) -> Result<Option<Vec<Rdn<'a>>>, Box<Fault>> {
    match args::str(f, args, 0)? {
        None => Ok(None),
        Some(dn) => split_dn(dn)
            .map(Some)
            .map_err(|m| Fault::invalid(f, format!("malformed DN: {m}"))),
    }
}

/// The value of the `n`-th (1-based) of `rdns`, or NULL when there is no such component.
fn pick(ctx: &mut Ctx, rdns: &[Rdn<'_>], n: Option<i64>) -> Outcome {
    let picked = n
        .and_then(|n| usize::try_from(n).ok())
        .and_then(|n| n.checked_sub(1))
        .and_then(|i| rdns.get(i));
    match picked {
        Some(r) => ctx.str_slice(r.value),
        None => Ok(Value::Null),
    }
}

fn dn_component(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "DNComponent";
    let n = args::num(F, args, 1)?;
    let Some(rdns) = dn_arg(F, args)? else {
        return Ok(Value::Null);
    };
    pick(ctx, &rdns, n)
}

fn dn_component_rev(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    const F: &str = "DNComponentRev";
    let n = args::num(F, args, 1)?;
    let skip_dc = match args::get(args, 2) {
        v if v.is_null() => false,
        Value::Str(s) if s.eq_ignore_ascii_case("DC") => true,
        Value::Str(s) => {
            return Err(Fault::invalid(
                F,
                format!("unknown option `{s}` (expected DC)"),
            ));
        }
        other => return Err(Fault::type_error(F, "the DNOption DC", other)),
    };
    let Some(mut rdns) = dn_arg(F, args)? else {
        return Ok(Value::Null);
    };
    if skip_dc {
        rdns.retain(|r| !r.kind.eq_ignore_ascii_case("dc"));
    }
    rdns.reverse();
    pick(ctx, &rdns, n)
}

/// The RFC 4514 escaped form of an attribute value.
fn escape_value(v: &str) -> String {
    let count = v.chars().count();
    let mut out = String::with_capacity(v.len());
    for (i, c) in v.chars().enumerate() {
        match c {
            '\0' => out.push_str("\\00"),
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == count => out.push_str("\\ "),
            _ => out.push(c),
        }
    }
    out
}

/// The length in bytes of [`escape_value`]'s result.
fn escaped_len(v: &str) -> usize {
    let count = v.chars().count();
    v.chars()
        .enumerate()
        .map(|(i, c)| match c {
            '\0' => 3,
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => 2,
            '#' if i == 0 => 2,
            ' ' if i == 0 || i + 1 == count => 2,
            _ => c.len_utf8(),
        })
        .fold(0usize, usize::saturating_add)
}

fn escape_dn_component(ctx: &mut Ctx, args: &[Value]) -> Outcome {
    let Some(s) = args::str("EscapeDNComponent", args, 0)? else {
        return Ok(Value::Null);
    };
    // "type=value": the type is kept, the value escaped; without "=" all of it is the value.
    let (prefix, value) = match s.find('=') {
        Some(e) => s.split_at(e + 1),
        None => ("", s),
    };
    ctx.check_bytes(prefix.len().saturating_add(escaped_len(value)))?;
    let mut out = String::from(prefix);
    out.push_str(&escape_value(value));
    ctx.string(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, a: &[Value]) -> Outcome {
        let f = lookup(name).expect("function");
        f(&mut Ctx::fixed(), a)
    }

    fn ok(name: &str, a: &[Value]) -> Value {
        call(name, a).expect("no fault")
    }

    fn r(v: &str) -> Value {
        Value::Ref(v.into())
    }

    fn s(v: &str) -> Value {
        Value::str(v)
    }

    fn n(v: i64) -> Value {
        Value::Num(v)
    }

    const DN: &str = "cn=Joe,ou=Atlanta,ou=GA,ou=US, dc=contoso,dc=com";

    #[test]
    fn splitting() {
        let rdns = split_dn(r#"CN=Doe\, John , OU="a,b", OU = x\ , O=a+SN=b"#).unwrap();
        let values: Vec<_> = rdns.iter().map(|r| (r.kind, r.value)).collect();
        assert_eq!(
            values,
            [
                ("CN", r"Doe\, John"),
                ("OU", "\"a,b\""),
                ("OU", r"x\ "),
                ("O", "a+SN=b")
            ]
        );
        assert_eq!(split_dn("").unwrap(), []);
        assert_eq!(
            split_dn("cn=").unwrap(),
            [Rdn {
                kind: "cn",
                value: ""
            }]
        );
        assert_eq!(
            split_dn(r"cn=a\\ ").unwrap(),
            [Rdn {
                kind: "cn",
                value: r"a\\"
            }]
        );
        assert_eq!(split_dn("cn=é😀,dc=x").unwrap()[0].value, "é😀");
        for bad in ["cn=a,", "cn", "=a", "cn=a\\", "cn=\"a", ",cn=a"] {
            assert!(split_dn(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn dn_component() {
        assert_eq!(
            ok(
                "DNComponent",
                &[r("cn=Joe,ou=Sales,dc=contoso,dc=com"), n(1)]
            ),
            s("Joe")
        );
        assert_eq!(
            ok(
                "DNComponent",
                &[r("cn=Joe,ou=Sales,dc=contoso,dc=com"), n(2)]
            ),
            s("Sales")
        );
        assert_eq!(
            ok("DNComponent", &[r(r"CN=Bob\0ACNF:xyz,OU=x"), n(1)]),
            s(r"Bob\0ACNF:xyz")
        );
        assert_eq!(ok("DNComponent", &[s(DN), n(5)]), s("contoso"));
        assert_eq!(ok("DNComponent", &[s(DN), n(7)]), Value::Null);
        assert_eq!(ok("DNComponent", &[s(DN), n(0)]), Value::Null);
        assert_eq!(ok("DNComponent", &[s(DN), n(i64::MIN)]), Value::Null);
        assert_eq!(ok("DNComponent", &[s(DN), Value::Null]), Value::Null);
        assert_eq!(ok("DNComponent", &[Value::Null, n(1)]), Value::Null);
        assert_eq!(ok("DNComponent", &[s(""), n(1)]), Value::Null);
        assert_eq!(
            call("DNComponent", &[s("garbage"), n(1)]).unwrap_err().code,
            "E0503"
        );
        assert_eq!(
            call("DNComponent", &[n(1), n(1)]).unwrap_err().code,
            "E0502"
        );
    }

    #[test]
    fn dn_component_rev() {
        assert_eq!(ok("DNComponentRev", &[r(DN), n(3)]), s("US"));
        assert_eq!(ok("DNComponentRev", &[r(DN), n(1), s("DC")]), s("US"));
        assert_eq!(ok("DNComponentRev", &[r(DN), n(2), s("dc")]), s("GA"));
        assert_eq!(ok("DNComponentRev", &[r(DN), n(1)]), s("com"));
        assert_eq!(ok("DNComponentRev", &[r(DN), n(6)]), s("Joe"));
        assert_eq!(ok("DNComponentRev", &[r(DN), n(5), s("DC")]), Value::Null);
        assert_eq!(ok("DNComponentRev", &[r(DN), n(-1)]), Value::Null);
        assert_eq!(ok("DNComponentRev", &[Value::Null, n(1)]), Value::Null);
        let e = call("DNComponentRev", &[r(DN), n(1), s("OU")]).unwrap_err();
        assert_eq!(e.code, "E0503");
    }

    #[test]
    fn escape() {
        assert_eq!(
            ok("EscapeDNComponent", &[s("CN=Doe, John")]),
            s(r"CN=Doe\, John")
        );
        assert_eq!(
            ok("EscapeDNComponent", &[s("cn=Sales + Marketing")]),
            s(r"cn=Sales \+ Marketing")
        );
        assert_eq!(ok("EscapeDNComponent", &[s("cn=Joe")]), s("cn=Joe"));
        assert_eq!(ok("EscapeDNComponent", &[s("cn=#1 ")]), s(r"cn=\#1\ "));
        assert_eq!(ok("EscapeDNComponent", &[s("cn= ")]), s(r"cn=\ "));
        assert_eq!(ok("EscapeDNComponent", &[s("cn=a=b#")]), s("cn=a=b#"));
        assert_eq!(
            ok("EscapeDNComponent", &[s("cn=a\\b\"c<d>e;f\0")]),
            s(r#"cn=a\\b\"c\<d\>e\;f\00"#)
        );
        assert_eq!(ok("EscapeDNComponent", &[s("Doe, John")]), s(r"Doe\, John"));
        assert_eq!(
            ok("EscapeDNComponent", &[s("cn=ÉCOLE 😀")]),
            s("cn=ÉCOLE 😀")
        );
        assert_eq!(ok("EscapeDNComponent", &[s("")]), s(""));
        assert_eq!(ok("EscapeDNComponent", &[Value::Null]), Value::Null);
        let v = "cn=".to_owned() + &",".repeat(600);
        assert_eq!(escaped_len(&v[3..]), escape_value(&v[3..]).len());
        let mut ctx = Ctx::fixed().with_limits(crate::builtins::ctx::Limits {
            max_bytes: 1000,
            ..Default::default()
        });
        assert_eq!(
            escape_dn_component(&mut ctx, &[s(&v)]).unwrap_err().code,
            "E0510"
        );
    }
}
