//! The five most common flow shapes, side by side in one run: the JIT, the interpreter,
//! hand-written Rust for the same logic, and the same logic written in CEL and run by the
//! `cel-interpreter` crate (a yardstick: a general-purpose embeddable expression language).
//!
//! Shapes (over 256 generated users, some attributes absent):
//! - `direct`: `[mail]`
//! - `iif_present`: `IIF(IsPresent([mail]), [mail], [upn])`
//! - `left_trim`: `Left(Trim([givenName]), 3)`
//! - `bitand`: `IIF(BitAnd([userAccountControl], 2) = 2, True, False)`
//! - `concat`: `[givenName] & " " & [sn]`
//!
//! CEL has no Left/Trim and no bit operators: `left`/`trim` are registered as functions (as the
//! Entra functions are builtins here) and the bit test is `uac / 2 % 2 == 1`. CEL contexts are
//! built before timing; only `Program::execute` is timed, which favours CEL. Before timing, every
//! engine's result is checked against the hand-written Rust for every user.
//!
//! Run: `cargo bench --bench shapes`. Criterion's throughput is in evaluations per second.

use cel_interpreter::{Context as CelContext, Program as CelProgram, Value as Cel};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idflow::eval::interp::Object;
use idflow::eval::{Ctx, EngineKind, Program, adhoc};
use idflow::value::Value;
use std::hint::black_box;
use std::sync::Arc;

const USERS: usize = 256;
const ATTRS: [&str; 5] = ["mail", "upn", "givenName", "sn", "userAccountControl"];

/// The attribute values of user `i`, by name (NULL when absent).
fn user(i: usize) -> Vec<(String, Value)> {
    let name = format!("user{i:04}");
    let v = |present: bool, v: Value| if present { v } else { Value::Null };
    vec![
        (
            "mail".into(),
            v(
                !i.is_multiple_of(4),
                Value::from(format!("{name}@contoso.com")),
            ),
        ),
        (
            "upn".into(),
            Value::from(format!("{name}@contoso.onmicrosoft.com")),
        ),
        (
            "givenName".into(),
            v(!i.is_multiple_of(7), Value::from(format!("  Given{i} "))),
        ),
        (
            "sn".into(),
            v(!i.is_multiple_of(5), Value::from(format!("Surname{i}"))),
        ),
        (
            "userAccountControl".into(),
            Value::Num(if i.is_multiple_of(10) { 514 } else { 512 }),
        ),
    ]
}

/// Hand-written Rust for each shape, over values by slot (slots follow `ATTRS` order as
/// assigned by `adhoc::prepare`; resolved by name below).
struct Slots {
    mail: usize,
    upn: usize,
    given: usize,
    sn: usize,
    uac: usize,
}

fn rust_direct(s: &Slots, v: &[Value]) -> Value {
    v[s.mail].clone()
}

fn present(v: &Value) -> bool {
    match v {
        Value::Str(x) => !x.is_empty(),
        v => !v.is_null(),
    }
}

fn rust_iif_present(s: &Slots, v: &[Value]) -> Value {
    if present(&v[s.mail]) {
        v[s.mail].clone()
    } else {
        v[s.upn].clone()
    }
}

fn rust_left_trim(s: &Slots, v: &[Value]) -> Value {
    match &v[s.given] {
        Value::Str(x) => {
            let t = x.trim();
            let end = t.char_indices().nth(3).map_or(t.len(), |(i, _)| i);
            Value::from(&t[..end])
        }
        // Trim of NULL is the empty string.
        _ => Value::from(""),
    }
}

fn rust_bitand(s: &Slots, v: &[Value]) -> Value {
    Value::Bool(matches!(v[s.uac], Value::Num(n) if n & 2 == 2))
}

fn rust_concat(s: &Slots, v: &[Value]) -> Value {
    let a = v[s.given].as_str().unwrap_or("");
    let b = v[s.sn].as_str().unwrap_or("");
    let mut out = String::with_capacity(a.len() + 1 + b.len());
    out.push_str(a);
    out.push(' ');
    out.push_str(b);
    Value::from(out)
}

struct Shape {
    name: &'static str,
    idf: &'static str,
    cel: &'static str,
    rust: fn(&Slots, &[Value]) -> Value,
}

const SHAPES: [Shape; 5] = [
    Shape {
        name: "direct",
        idf: "[mail]",
        cel: "mail",
        rust: rust_direct,
    },
    Shape {
        name: "iif_present",
        idf: "IIF(IsPresent([mail]), [mail], [upn])",
        cel: r#"mail != null && mail != "" ? mail : upn"#,
        rust: rust_iif_present,
    },
    Shape {
        name: "left_trim",
        idf: "Left(Trim([givenName]), 3)",
        cel: r#"givenName == null ? "" : left(trim(givenName), 3)"#,
        rust: rust_left_trim,
    },
    Shape {
        name: "bitand",
        idf: "IIF(BitAnd([userAccountControl], 2) = 2, True, False)",
        cel: "userAccountControl / 2 % 2 == 1 ? true : false",
        rust: rust_bitand,
    },
    Shape {
        name: "concat",
        idf: r#"[givenName] & " " & [sn]"#,
        cel: r#"(givenName == null ? "" : givenName) + " " + (sn == null ? "" : sn)"#,
        rust: rust_concat,
    },
];

fn to_cel(v: &Value) -> Cel {
    match v {
        Value::Str(s) => Cel::String(Arc::new(s.to_string())),
        Value::Num(n) => Cel::Int(*n),
        Value::Bool(b) => Cel::Bool(*b),
        _ => Cel::Null,
    }
}

fn from_cel(v: &Cel) -> Value {
    match v {
        Cel::String(s) => Value::from(s.as_str()),
        Cel::Int(n) => Value::Num(*n),
        Cel::Bool(b) => Value::Bool(*b),
        _ => Value::Null,
    }
}

fn cel_context(attrs: &[(String, Value)]) -> CelContext<'static> {
    let mut c = CelContext::default();
    for (n, v) in attrs {
        c.add_variable_from_value(n.clone(), to_cel(v));
    }
    c.add_function("trim", |s: Arc<String>| s.trim().to_string());
    c.add_function("left", |s: Arc<String>, n: i64| {
        s.chars().take(n.max(0) as usize).collect::<String>()
    });
    c
}

fn shapes(c: &mut Criterion) {
    let users: Vec<Vec<(String, Value)>> = (0..USERS).map(user).collect();
    let cel_contexts: Vec<CelContext> = users.iter().map(|u| cel_context(u)).collect();
    for shape in &SHAPES {
        // One prepared expression; each user's values in the same slot layout.
        let prepared: Vec<_> = users
            .iter()
            .map(|u| adhoc::prepare(shape.name, shape.idf, u, &[]).expect("checks"))
            .collect();
        let expr = &prepared[0].expr;
        let values: Vec<&[Value]> = prepared.iter().map(|p| p.values.as_slice()).collect();
        let slot = |name: &str| {
            let i = ATTRS.iter().position(|a| *a == name).expect("attr");
            let v = &users[1][i].1;
            values[1].iter().position(|x| x == v).expect("slot")
        };
        let slots = Slots {
            mail: slot("mail"),
            upn: slot("upn"),
            given: slot("givenName"),
            sn: slot("sn"),
            uac: slot("userAccountControl"),
        };
        let jit = Program::try_new(EngineKind::Jit, &[expr]).expect("JIT");
        let interp = Program::try_new(EngineKind::Interp, &[expr]).expect("interp");
        let cel = CelProgram::compile(shape.cel).expect("CEL compiles");
        let mut ctx = Ctx::fixed();
        for (i, v) in values.iter().enumerate() {
            let obj = Object {
                attrs: v,
                imported: v,
            };
            let want = (shape.rust)(&slots, v);
            let got_jit = jit.eval(&mut ctx, 0, expr, obj).expect("jit");
            let got_interp = interp.eval(&mut ctx, 0, expr, obj).expect("interp");
            let got_cel = from_cel(&cel.execute(&cel_contexts[i]).expect("CEL runs"));
            assert_eq!(got_jit, want, "{} jit, user {i}", shape.name);
            assert_eq!(got_interp, want, "{} interp, user {i}", shape.name);
            assert_eq!(got_cel, want, "{} CEL, user {i}", shape.name);
        }

        let mut group = c.benchmark_group(format!("shape {}", shape.name));
        group.throughput(Throughput::Elements(USERS as u64));
        group.bench_function("jit", |b| {
            b.iter(|| {
                for v in &values {
                    let obj = Object {
                        attrs: v,
                        imported: v,
                    };
                    let _ = black_box(jit.eval(&mut ctx, 0, expr, obj));
                }
            })
        });
        group.bench_function("rust", |b| {
            b.iter(|| {
                for v in &values {
                    black_box((shape.rust)(&slots, black_box(v)));
                }
            })
        });
        group.bench_function("interp", |b| {
            b.iter(|| {
                for v in &values {
                    let obj = Object {
                        attrs: v,
                        imported: v,
                    };
                    let _ = black_box(interp.eval(&mut ctx, 0, expr, obj));
                }
            })
        });
        group.bench_function("cel", |b| {
            b.iter(|| {
                for cx in &cel_contexts {
                    let _ = black_box(cel.execute(cx));
                }
            })
        });
        group.finish();
    }
}

criterion_group!(benches, shapes);
criterion_main!(benches);
