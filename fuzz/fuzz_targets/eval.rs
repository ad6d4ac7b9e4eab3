//! Arbitrary bytes (lossy UTF-8) as a standalone expression: checked and lowered by
//! `eval::adhoc::prepare` against a fixed set of typical attributes and parameters, and, if that
//! succeeds, evaluated by the interpreter under tight resource limits. Nothing on this path may
//! panic, abort or hang; the limits must stop runaway evaluation with a coded error.
#![no_main]

use idflow::eval::{Ctx, Limits, adhoc};
use idflow::value::Value;
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static ATTRS: LazyLock<Vec<(String, Value)>> = LazyLock::new(|| {
    vec![
        ("mail".into(), Value::from("a@contoso.com")),
        ("n".into(), Value::Num(514)),
        ("flag".into(), Value::Bool(true)),
        (
            "proxyAddresses".into(),
            Value::many(vec![Value::from("SMTP:a@x"), Value::from("smtp:b@x")]),
        ),
        ("objectGUID".into(), Value::bin(vec![1u8; 16])),
        (
            "dn".into(),
            Value::from("CN=Bob\\0ACNF:1,OU=x,DC=contoso,DC=com"),
        ),
    ]
});

static PARAMS: LazyLock<Vec<(String, Value)>> =
    LazyLock::new(|| vec![("Domain.FQDN".into(), Value::from("contoso.com"))]);

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let Ok(p) = adhoc::prepare("fuzz", &text, &ATTRS, &PARAMS) else {
        return;
    };
    let mut ctx = Ctx::fixed().with_limits(Limits {
        max_bytes: 1 << 16,
        max_values: 10_000,
        max_steps: 100_000,
        max_total_bytes: 1 << 22,
    });
    // As `idflow eval` and the conformance runner do: the checked parameters have values.
    ctx.params = PARAMS.clone();
    let _ = p.eval(&mut ctx);
});
