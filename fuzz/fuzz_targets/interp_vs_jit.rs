//! Arbitrary bytes (lossy UTF-8) as a standalone expression, checked against a fixed set of
//! typical attributes (absent, single and multi-valued) and, if it checks, evaluated by the
//! reference interpreter and by the JIT under the same tight limits. The two must agree exactly:
//! the same value, or the same error code, message and location.
#![no_main]

use idflow::eval::interp::Object;
use idflow::eval::{Ctx, EngineKind, Limits, Program, adhoc};
use idflow::value::Value;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static ATTRS: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    vec![
        ("mail".into(), Value::from("a@contoso.com")),
        ("empty".into(), Value::from("")),
        ("n".into(), Value::Num(514)),
        ("big".into(), Value::Num(i64::MAX)),
        ("flag".into(), Value::Bool(true)),
        (
            "proxyAddresses".into(),
            Value::many(vec![Value::from("SMTP:a@x"), Value::from("smtp:b@x")]),
        ),
        (
            "nums".into(),
            Value::many(vec![Value::Num(1), Value::Num(-2), Value::Num(3)]),
        ),
        ("objectGUID".into(), Value::bin(vec![1u8; 16])),
    ]
});

static PARAMS: LazyLock<Vec<(String, Value)>> =
    LazyLock::new(|| vec![("Domain.FQDN".into(), Value::from("contoso.com"))]);

fn ctx() -> Ctx {
    let mut ctx = Ctx::fixed().with_limits(Limits {
        max_bytes: 1 << 16,
        max_values: 10_000,
        max_steps: 100_000,
        max_total_bytes: 1 << 22,
    });
    ctx.params = PARAMS.clone();
    ctx
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(p) = adhoc::prepare("fuzz", &text, &ATTRS, &PARAMS) else {
        return;
    };
    let obj = Object {
        attrs: &p.values,
        imported: &p.values,
    };
    let interp = Program::try_new(EngineKind::Interp, &[&p.expr]).expect("the interpreter");
    let Ok(jit) = Program::try_new(EngineKind::Jit, &[&p.expr]) else {
        return;
    };
    let a = interp.eval(&mut ctx(), 0, &p.expr, obj);
    let b = jit.eval(&mut ctx(), 0, &p.expr, obj);
    assert_eq!(a, b, "engines differ on `{text}`");
});
