//! Runs the `test` blocks of a bundle in memory with the sync engine.
//!
//! Consumes: a checked [`Bundle`] and its [`SourceMap`]. Produces: one [`TestOutcome`] per
//! test with a readable list of differences between expected and actual values. Each test
//! starts from empty connector spaces; `given` and `delete` stage imports, `sync` imports the
//! staged changes and runs a delta sync, `expect` compares the metaverse, the staged exports
//! and the sync errors. Parameter values are derived from the connector's name
//! (`Domain.FQDN` = `Forest.FQDN` = the name, `Domain.Netbios` = its first label in upper case,
//! `Domain.LDAP` = `DC=` components), and `now` is 2024-01-01T00:00:00Z, so tests are
//! reproducible.

use crate::engine::Engine;
use crate::engine::compile::Plan;
use crate::engine::compile::TypePlan;
use crate::engine::export;
use crate::engine::import::{ImportChange, ImportObject};
use crate::engine::model::{CsObject, MvObject, SyncError, Values};
use crate::engine::sync::Mode;
use crate::eval::EngineKind;
use crate::eval::json;
use crate::sema::Bundle;
use crate::sema::types::Base;
use crate::source::{FileId, SourceMap};
use crate::syntax::ast::{Test, TestAttr, TestStep, TestValue};
use crate::value::Value;
use base64::Engine as _;

/// The result of one test.
#[derive(Debug, Clone)]
pub struct TestOutcome {
    pub name: String,
    /// `file:line` of the test.
    pub location: String,
    pub failures: Vec<String>,
}

impl TestOutcome {
    pub fn passed(&self) -> bool {
        self.failures.is_empty()
    }
}

/// The instant tests run at.
pub fn test_now() -> crate::value::DateTime {
    jiff::Timestamp::from_second(1_704_067_200).unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

/// Parameter values for a connector, derived from its name.
pub fn default_params(name: &str) -> Vec<(String, Value)> {
    let first = name.split('.').next().unwrap_or(name).to_uppercase();
    let ldap = name
        .split('.')
        .map(|p| format!("DC={p}"))
        .collect::<Vec<_>>()
        .join(",");
    vec![
        ("Domain.FQDN".into(), Value::from(name)),
        ("Forest.FQDN".into(), Value::from(name)),
        ("Domain.Netbios".into(), Value::from(first.clone())),
        ("Forest.Netbios".into(), Value::from(first)),
        ("Domain.LDAP".into(), Value::from(ldap.clone())),
        ("Forest.LDAP".into(), Value::from(ldap)),
    ]
}

/// Runs every test of the bundle.
pub fn run_all(bundle: &Bundle, map: &SourceMap, engine: EngineKind) -> Vec<TestOutcome> {
    let plan = Plan::with_engine(bundle, engine);
    bundle
        .tests
        .iter()
        .map(|(file, t)| run_test(&plan, map, *file, t).0)
        .collect()
}

/// Runs one test; returns its outcome and the engine as its steps left it.
pub fn run_test(plan: &Plan, map: &SourceMap, file: FileId, test: &Test) -> (TestOutcome, Engine) {
    let src = map.get(file);
    let mut outcome = TestOutcome {
        name: test.name.value.clone(),
        location: format!("{}:{}", src.name, src.line_of(test.span.start)),
        failures: Vec::new(),
    };
    let mut engine = Engine::from_plan(plan.clone(), test_now());
    for c in 0..engine.plan.connectors.len() {
        let name = engine.plan.connectors[c].name.clone();
        engine.set_params(c, default_params(&name));
    }
    let mut staged: Vec<Vec<ImportChange>> = vec![Vec::new(); engine.plan.connectors.len()];
    let mut errors: Vec<SyncError> = Vec::new();
    for step in &test.steps {
        let line = src.line_of(step.span().start);
        let mut fail = |msg: String| outcome.failures.push(format!("line {line}: {msg}"));
        match step {
            TestStep::Given {
                connector,
                object_type,
                dn,
                attrs,
                ..
            } => {
                let Some(c) = engine.plan.connector_index(&connector.value) else {
                    fail(format!("unknown connector \"{}\"", connector.value));
                    continue;
                };
                let Some(t) = engine.plan.connectors[c].type_index(&object_type.name) else {
                    fail(format!("unknown object type `{}`", object_type.name));
                    continue;
                };
                let tplan = &engine.plan.connectors[c].types[t];
                let mut values = Vec::new();
                for a in attrs {
                    match attr_value(tplan, a) {
                        Ok(v) => values.push((a.name.name.clone(), v)),
                        Err(e) => fail(e),
                    }
                }
                staged[c].push(ImportChange::Upsert(ImportObject {
                    dn: dn.value.clone(),
                    object_type: object_type.name.clone(),
                    attrs: values,
                }));
            }
            TestStep::Delete { connector, dn, .. } => {
                match engine.plan.connector_index(&connector.value) {
                    Some(c) => staged[c].push(ImportChange::delete_dn(dn.value.clone())),
                    None => fail(format!("unknown connector \"{}\"", connector.value)),
                }
            }
            TestStep::Sync(_) => {
                for (c, changes) in staged.iter_mut().enumerate() {
                    if !changes.is_empty() {
                        let report = engine.import(c, std::mem::take(changes), false);
                        for (dn, why) in report.rejected.into_iter().chain(report.invalid) {
                            fail(format!("import of {dn} rejected: {why}"));
                        }
                        for ty in report.out_of_schema.keys() {
                            fail(format!(
                                "object type `{ty}` is not declared in connector \"{}\"",
                                engine.plan.connectors[c].name
                            ));
                        }
                    }
                }
                let report = engine.sync(Mode::Delta);
                errors.extend(report.errors);
            }
            TestStep::ExpectMetaverse {
                negated,
                object_type,
                key,
                attrs,
                ..
            } => {
                let Some(t) = engine.plan.mv_type_index(&object_type.name) else {
                    fail(format!("unknown metaverse type `{}`", object_type.name));
                    continue;
                };
                let tplan = &engine.plan.metaverse[t];
                let found: Vec<&MvObject> = engine
                    .state
                    .mv()
                    .values()
                    .filter(|m| m.object_type == t && matches_attr(&engine, tplan, &m.attrs, key))
                    .collect();
                let what = format!(
                    "metaverse {} where {} = {}",
                    object_type.name,
                    key.name.name,
                    shown(&key.value)
                );
                match (negated, found.as_slice()) {
                    (true, []) => {}
                    (true, _) => fail(format!("expected no {what}, found {}", found.len())),
                    (false, [m]) => {
                        for a in attrs {
                            if let Some(d) = compare(&engine, tplan, &m.attrs, a) {
                                fail(format!("{what}: {d}"));
                            }
                        }
                    }
                    (false, []) => fail(format!(
                        "expected a {what}, found none{}",
                        mv_summary(&engine, t)
                    )),
                    (false, _) => fail(format!("expected one {what}, found {}", found.len())),
                }
            }
            TestStep::ExpectExport {
                connector,
                op,
                object_type,
                dn,
                attrs,
                ..
            } => {
                let Some(c) = engine.plan.connector_index(&connector.value) else {
                    fail(format!("unknown connector \"{}\"", connector.value));
                    continue;
                };
                let t = engine.plan.connectors[c].type_index(&object_type.name);
                // The objects the export deltas name; an object holds its current values once
                // its delta is applied (`engine::export`).
                let candidates: Vec<&CsObject> = export::deltas(&engine.plan, &engine.state, c)
                    .filter(|d| d.kind.as_str() == op.name)
                    .filter(|d| {
                        dn.as_ref()
                            .is_none_or(|x| crate::dn::same(d.target_dn(), &x.value))
                    })
                    .filter_map(|d| engine.state.cs().get(d.cs as usize))
                    .filter(|o| Some(o.object_type) == t)
                    .collect();
                let what = format!(
                    "export to \"{}\": {} {}{}",
                    connector.value,
                    op.name,
                    object_type.name,
                    dn.as_ref()
                        .map(|d| format!(" \"{}\"", d.value))
                        .unwrap_or_default()
                );
                let Some(tidx) = t else {
                    fail(format!("unknown object type `{}`", object_type.name));
                    continue;
                };
                let tplan = &engine.plan.connectors[c].types[tidx];
                let good = candidates.iter().find(|o| {
                    attrs
                        .iter()
                        .all(|a| compare(&engine, tplan, &o.current, a).is_none())
                });
                if good.is_none() {
                    match candidates.first() {
                        None => fail(format!(
                            "expected {what}; staged: {}",
                            export_summary(&engine, c)
                        )),
                        Some(o) => {
                            for a in attrs {
                                if let Some(d) = compare(&engine, tplan, &o.current, a) {
                                    fail(format!("{what}: {d}"));
                                }
                            }
                        }
                    }
                }
            }
            TestStep::ExpectNoExport { connector, .. } => {
                let Some(c) = engine.plan.connector_index(&connector.value) else {
                    fail(format!("unknown connector \"{}\"", connector.value));
                    continue;
                };
                if export::deltas(&engine.plan, &engine.state, c)
                    .next()
                    .is_some()
                {
                    fail(format!(
                        "expected no export to \"{}\"; staged: {}",
                        connector.value,
                        export_summary(&engine, c)
                    ));
                }
            }
            TestStep::ExpectError { category, .. } => {
                if !errors
                    .iter()
                    .any(|e| e.category.as_str().eq_ignore_ascii_case(&category.value))
                {
                    let seen: Vec<String> = errors
                        .iter()
                        .map(|e| format!("{}: {}", e.category.as_str(), e.message))
                        .collect();
                    fail(format!(
                        "expected a sync error \"{}\"; errors: {}",
                        category.value,
                        if seen.is_empty() {
                            "none".into()
                        } else {
                            seen.join("; ")
                        }
                    ));
                }
            }
        }
    }
    (outcome, engine)
}

fn mv_summary(engine: &Engine, t: usize) -> String {
    let n = engine
        .state
        .mv()
        .values()
        .filter(|m| m.object_type == t)
        .count();
    format!(
        " ({n} {} object(s) in the metaverse)",
        engine.plan.metaverse[t].name
    )
}

fn export_summary(engine: &Engine, c: usize) -> String {
    let items: Vec<String> = export::deltas(&engine.plan, &engine.state, c)
        .map(|d| format!("{} {} \"{}\"", d.kind.as_str(), d.object_type, d.dn))
        .collect();
    if items.is_empty() {
        "none".into()
    } else {
        items.join(", ")
    }
}

/// The value a test literal denotes for an attribute.
fn attr_value(tplan: &TypePlan, a: &TestAttr) -> Result<Value, String> {
    let slot = tplan
        .slot(&a.name.name)
        .ok_or_else(|| format!("unknown attribute `{}` of `{}`", a.name.name, tplan.name))?;
    let (base, _) = tplan.kinds[slot];
    test_value(&a.value, base)
}

fn test_value(v: &TestValue, base: Base) -> Result<Value, String> {
    Ok(match v {
        TestValue::Absent(_) => Value::Null,
        TestValue::Num(n, _) => Value::Num(*n),
        TestValue::Word(w) => match w.name.as_str() {
            "True" => Value::Bool(true),
            "False" => Value::Bool(false),
            other => return Err(format!("`{other}` is not a value")),
        },
        TestValue::Str(s, _) => match base {
            Base::Ref => Value::Ref(s.as_str().into()),
            Base::Bin => Value::bin(s.as_bytes().to_vec()),
            _ => Value::str(s.as_str()),
        },
        TestValue::Typed(kind, s) => typed(&kind.name, &s.value)?,
        TestValue::List(items, _) => {
            let mut out = Vec::new();
            for i in items {
                out.push(test_value(i, base)?);
            }
            Value::many(out)
        }
    })
}

/// `guid "..."` (AD byte order), `hex "..."`, `base64 "..."`, `sid "S-1-..."`, `datetime "..."`.
pub fn typed(kind: &str, text: &str) -> Result<Value, String> {
    match kind {
        "guid" => uuid::Uuid::parse_str(text.trim_matches(|c| c == '{' || c == '}'))
            .map(|u| Value::bin(u.to_bytes_le().to_vec()))
            .map_err(|e| format!("guid \"{text}\": {e}")),
        "hex" => (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
            })
            .collect::<Option<Vec<u8>>>()
            .map(Value::bin)
            .ok_or_else(|| format!("hex \"{text}\" is not hexadecimal")),
        "base64" => base64::engine::general_purpose::STANDARD
            .decode(text)
            .map(Value::bin)
            .map_err(|e| format!("base64 \"{text}\": {e}")),
        "sid" => sid_bytes(text)
            .map(Value::bin)
            .ok_or_else(|| format!("sid \"{text}\" is not a SID")),
        "datetime" => text
            .parse()
            .map(Value::Dt)
            .map_err(|e| format!("datetime \"{text}\": {e}")),
        other => Err(format!("unknown literal kind `{other}`")),
    }
}

/// The binary form of a SID string (`S-1-5-21-...`).
fn sid_bytes(text: &str) -> Option<Vec<u8>> {
    let mut parts = text.split('-');
    if !parts.next()?.eq_ignore_ascii_case("S") {
        return None;
    }
    let revision: u8 = parts.next()?.parse().ok()?;
    let authority: u64 = parts.next()?.parse().ok()?;
    let subs: Vec<u32> = parts.map(|p| p.parse().ok()).collect::<Option<_>>()?;
    let mut out = vec![revision, u8::try_from(subs.len()).ok()?];
    out.extend_from_slice(&authority.to_be_bytes()[2..]);
    for s in subs {
        out.extend_from_slice(&s.to_le_bytes());
    }
    Some(out)
}

fn matches_attr(engine: &Engine, tplan: &TypePlan, values: &Values, key: &TestAttr) -> bool {
    compare(engine, tplan, values, key).is_none()
}

/// Compares an expected attribute with actual values: None when equal, else a description.
fn compare(engine: &Engine, tplan: &TypePlan, values: &Values, a: &TestAttr) -> Option<String> {
    let Some(slot) = tplan.slot(&a.name.name) else {
        return Some(format!("unknown attribute `{}`", a.name.name));
    };
    let expected = match attr_value(tplan, a) {
        Ok(v) => v,
        Err(e) => return Some(e),
    };
    let actual = readable(engine, &values[slot]);
    if same(&expected, &actual) {
        None
    } else {
        Some(format!(
            "{}: expected {}, got {}",
            a.name.name,
            json::to_json(&expected),
            json::to_json(&actual)
        ))
    }
}

/// Metaverse references are shown as the DN of the first object linked to them.
fn readable(engine: &Engine, v: &Value) -> Value {
    match v {
        Value::Ref(s) if s.starts_with("mv:") => {
            let dn = s[3..]
                .parse::<u64>()
                .ok()
                .and_then(|id| engine.state.mv().get(&id))
                .and_then(|m| m.links.first())
                .map(|&c| engine.state.cs()[c as usize].dn.clone());
            match dn {
                Some(d) => Value::Ref(d),
                None => v.clone(),
            }
        }
        Value::Many(items) => Value::many(items.iter().map(|i| readable(engine, i)).collect()),
        other => other.clone(),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Str(x) | Value::Ref(x), Value::Str(y) | Value::Ref(y)) => x == y,
        (Value::Many(x), Value::Many(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same(p, q))
        }
        _ => a == b,
    }
}

fn shown(v: &TestValue) -> String {
    match v {
        TestValue::Str(s, _) => format!("\"{s}\""),
        TestValue::Num(n, _) => n.to_string(),
        TestValue::Word(w) => w.name.clone(),
        TestValue::Absent(_) => "absent".into(),
        TestValue::Typed(k, s) => format!("{} \"{}\"", k.name, s.value),
        TestValue::List(items, _) => format!(
            "[{}]",
            items.iter().map(shown).collect::<Vec<_>>().join(", ")
        ),
    }
}
