//! Expression evaluation benchmark: every flow of the shipped default rules whose source is the
//! AD `user` object type, evaluated over a fixed set of generated users by the JIT and by the
//! interpreter, side by side (both checked to give the same results first). Also times the JIT
//! compilation of every flow and scope expression of the whole default bundle.
//! Criterion's throughput is in flows per second (ns per flow = 1e9 / throughput).
//!
//! Run: `cargo bench --bench eval`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use idflow::eval::interp::{self, Object};
use idflow::eval::{Ctx, EngineKind, Program};
use idflow::sema::schema::ObjectDef;
use idflow::sema::types::Base;
use idflow::syntax::ast::Direction;
use idflow::value::Value;
use std::hint::black_box;
use std::path::PathBuf;

/// A deterministic AD user with a value for every attribute of its object type.
fn user(obj: &ObjectDef, i: usize) -> Vec<Value> {
    let name = format!("user{i:05}");
    let mut values = vec![Value::Null; obj.attrs.len()];
    for a in obj.attrs.values() {
        let v = match (a.name.as_str(), a.base) {
            ("sAMAccountName" | "cn" | "mailNickname", _) => Value::from(name.clone()),
            ("userPrincipalName" | "mail", _) => Value::from(format!("{name}@contoso.com")),
            ("proxyAddresses", _) => Value::many(vec![
                Value::from(format!("SMTP:{name}@contoso.com")),
                Value::from(format!("smtp:{name}@contoso.mail.onmicrosoft.com")),
                Value::from(format!("SIP:{name}@contoso.com")),
            ]),
            ("userAccountControl", _) => Value::Num(if i.is_multiple_of(10) { 514 } else { 512 }),
            ("pwdLastSet", _) => Value::Num(133_500_000_000_000_000 + i as i64),
            ("msExchRecipientTypeDetails", _) if i.is_multiple_of(3) => Value::Null,
            ("msExchRecipientTypeDetails", _) => Value::Num(1),
            ("isCriticalSystemObject", _) => Value::Null,
            ("objectSid" | "msExchMasterAccountSid" | "msRTCSIP-OriginatorSid", _) => {
                // S-1-5-21-1004336348-1177238915-682003330-<1000 + i>
                let mut sid = vec![1u8, 5, 0, 0, 0, 0, 0, 5];
                for sub in [
                    21u32,
                    1_004_336_348,
                    1_177_238_915,
                    682_003_330,
                    1000 + i as u32,
                ] {
                    sid.extend_from_slice(&sub.to_le_bytes());
                }
                Value::bin(sid)
            }
            ("dn", _) => Value::from(format!("CN={name},OU=Users,DC=contoso,DC=com")),
            (_, Base::Str) if a.multi => Value::many(vec![
                Value::from(format!("{} one", a.name)),
                Value::from("two"),
            ]),
            (_, Base::Str) => Value::from(format!("{} of {name}", a.name)),
            (_, Base::Num) => Value::Num(i as i64),
            (_, Base::Bool) => Value::Bool(i.is_multiple_of(2)),
            (_, Base::Bin) => Value::bin(
                (0..16u8)
                    .map(|b| b.wrapping_add(i as u8))
                    .collect::<Vec<_>>(),
            ),
            (_, Base::Ref) => {
                Value::Ref(format!("CN=manager{},OU=Users,DC=contoso,DC=com", i / 10).into())
            }
            _ => Value::Null,
        };
        values[a.slot as usize] = v;
    }
    values
}

fn eval(c: &mut Criterion) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules/entra-default");
    let files = idflow::source::collect_idf_files(&[dir]).expect("bundle");
    let map = idflow::source::load(&files).expect("bundle loads");
    let checked = idflow::frontend::check(&map);
    assert!(!checked.has_errors());
    let schema = &checked.bundle.schema;
    let obj = &schema.connectors["contoso.com"].objects["user"];
    let flows: Vec<_> = checked
        .bundle
        .rules
        .iter()
        .filter(|r| {
            r.direction == Direction::Inbound && r.connector == "contoso.com" && r.source == "user"
        })
        .flat_map(|r| r.flows.iter())
        .collect();
    let users: Vec<Vec<Value>> = (0..200).map(|i| user(obj, i)).collect();
    let mut ctx = Ctx::fixed();
    ctx.params = [
        "Domain.FQDN",
        "Domain.Netbios",
        "Forest.FQDN",
        "Forest.Netbios",
        "Domain.LDAP",
        "Forest.LDAP",
    ]
    .iter()
    .map(|p| (p.to_string(), Value::from("contoso.com")))
    .collect();
    // Every flow must evaluate (errors would make the figure meaningless).
    let mut errors = 0;
    for u in &users {
        for f in &flows {
            let obj = Object {
                attrs: u,
                imported: u,
            };
            if let Err(e) = interp::eval(&mut ctx, &f.ir, obj) {
                if errors < 5 {
                    eprintln!("flow {}: {} {}", f.target, e.code, e.message);
                }
                errors += 1;
            }
        }
    }
    assert_eq!(errors, 0, "every flow must evaluate on the generated users");
    eprintln!(
        "{} user flows x {} users, {errors} evaluation errors",
        flows.len(),
        users.len()
    );

    let exprs: Vec<_> = flows.iter().map(|f| &f.ir).collect();
    let jit = Program::try_new(EngineKind::Jit, &exprs).expect("the JIT compiles every flow");
    let interp = Program::try_new(EngineKind::Interp, &exprs).expect("interp");
    for u in &users {
        let obj = Object {
            attrs: u,
            imported: u,
        };
        for (i, e) in exprs.iter().enumerate() {
            assert_eq!(
                jit.eval(&mut ctx, i, e, obj),
                interp.eval(&mut ctx, i, e, obj),
                "flow {}",
                flows[i].target
            );
        }
    }

    let mut group = c.benchmark_group("default user flows");
    group.throughput(Throughput::Elements((flows.len() * users.len()) as u64));
    for (name, program) in [("jit", &jit), ("interp", &interp)] {
        group.bench_function(name, |b| {
            b.iter(|| {
                for u in &users {
                    let obj = Object {
                        attrs: u,
                        imported: u,
                    };
                    for (i, e) in exprs.iter().enumerate() {
                        let _ = black_box(program.eval(&mut ctx, i, e, obj));
                    }
                }
            })
        });
    }
    group.finish();

    // Compile time: every flow and scope expression of the bundle (what a run compiles).
    let mut all: Vec<&idflow::ir::Expr> = Vec::new();
    for r in &checked.bundle.rules {
        for g in &r.scope {
            for c in g {
                if let idflow::sema::rules::ScopeClauseDef::Expr(_, e) = c {
                    all.push(e);
                }
            }
        }
        all.extend(r.flows.iter().map(|f| &f.ir));
    }
    eprintln!(
        "{} rules, {} expressions in the bundle",
        checked.bundle.rules.len(),
        all.len()
    );
    let mut group = c.benchmark_group("compile default bundle");
    group.sample_size(10);
    group.bench_function("jit", |b| {
        b.iter(|| black_box(Program::try_new(EngineKind::Jit, &all).expect("compiles")))
    });
    group.finish();
}

criterion_group!(benches, eval);
criterion_main!(benches);
