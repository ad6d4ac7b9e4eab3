//! Checks of `test` blocks.
//!
//! Consumes: the test items of a bundle and its [`Schema`]. Produces: diagnostics for unknown
//! connectors, object types and attributes, values that do not fit attribute types (E0401),
//! malformed typed literals (E0006) and misplaced steps (E0402).

use super::schema::{ObjectDef, Schema};
use super::types::Base;
use crate::diag::{Diagnostic, suggest};
use crate::source::FileId;
use crate::syntax::ast::{self, TestAttr, TestStep, TestValue};

pub fn check(test: &ast::Test, file: FileId, schema: &Schema, diags: &mut Vec<Diagnostic>) {
    let mut synced = false;
    for step in &test.steps {
        match step {
            TestStep::Given {
                connector,
                object_type,
                attrs,
                ..
            } => {
                if let Some(obj) = connector_object(schema, connector, object_type, file, diags) {
                    attributes(obj, attrs, file, diags);
                }
            }
            TestStep::Delete {
                connector,
                object_type,
                ..
            } => {
                connector_object(schema, connector, object_type, file, diags);
            }
            TestStep::Sync(_) => synced = true,
            TestStep::ExpectMetaverse {
                object_type,
                key,
                attrs,
                span,
                ..
            } => {
                require_sync(synced, span, file, diags);
                match schema.metaverse.get(&object_type.name) {
                    Some(obj) => {
                        attributes(obj, std::slice::from_ref(key.as_ref()), file, diags);
                        attributes(obj, attrs, file, diags);
                    }
                    None => diags.push(unknown_type(
                        object_type,
                        "the metaverse",
                        schema.metaverse.keys().map(String::as_str),
                        file,
                    )),
                }
            }
            TestStep::ExpectExport {
                connector,
                op,
                object_type,
                attrs,
                span,
                ..
            } => {
                require_sync(synced, span, file, diags);
                if !["add", "update", "delete"].contains(&op.name.as_str()) {
                    diags.push(
                        Diagnostic::new(
                            "E0402",
                            file,
                            op.span.clone(),
                            format!("unknown export operation `{}`", op.name),
                        )
                        .with_help("expected add, update or delete"),
                    );
                }
                if let Some(obj) = connector_object(schema, connector, object_type, file, diags) {
                    attributes(obj, attrs, file, diags);
                }
            }
            TestStep::ExpectNoExport { connector, span } => {
                require_sync(synced, span, file, diags);
                connector_def(schema, connector, file, diags);
            }
            TestStep::ExpectError { span, .. } => require_sync(synced, span, file, diags),
        }
    }
}

fn require_sync(
    synced: bool,
    span: &std::ops::Range<usize>,
    file: FileId,
    diags: &mut Vec<Diagnostic>,
) {
    if !synced {
        diags.push(
            Diagnostic::new("E0402", file, span.clone(), "`expect` before any `sync`")
                .with_help("add a `sync` step before the expectations"),
        );
    }
}

fn connector_def<'a>(
    schema: &'a Schema,
    c: &ast::StrLit,
    file: FileId,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a super::schema::ConnectorDef> {
    let found = schema.connectors.get(&c.value);
    if found.is_none() {
        let mut d = Diagnostic::new(
            "E0102",
            file,
            c.span.clone(),
            format!("unknown connector \"{}\"", c.value),
        );
        if let Some(h) = suggest(&c.value, schema.connectors.keys().map(String::as_str)) {
            d = d.with_help(h);
        }
        diags.push(d);
    }
    found
}

fn unknown_type<'a>(
    t: &ast::Ident,
    place: &str,
    names: impl IntoIterator<Item = &'a str>,
    file: FileId,
) -> Diagnostic {
    let mut d = Diagnostic::new(
        "E0103",
        file,
        t.span.clone(),
        format!("unknown object type `{}` in {place}", t.name),
    );
    if let Some(h) = suggest(&t.name, names) {
        d = d.with_help(h);
    }
    d
}

fn connector_object<'a>(
    schema: &'a Schema,
    c: &ast::StrLit,
    t: &ast::Ident,
    file: FileId,
    diags: &mut Vec<Diagnostic>,
) -> Option<&'a ObjectDef> {
    let conn = connector_def(schema, c, file, diags)?;
    let found = conn.objects.get(&t.name);
    if found.is_none() {
        diags.push(unknown_type(
            t,
            &format!("connector \"{}\"", c.value),
            conn.objects.keys().map(String::as_str),
            file,
        ));
    }
    found
}

fn attributes(obj: &ObjectDef, attrs: &[TestAttr], file: FileId, diags: &mut Vec<Diagnostic>) {
    for a in attrs {
        let Some(def) = obj.attr(&a.name.name) else {
            let mut d = Diagnostic::new(
                "E0201",
                file,
                a.name.span.clone(),
                format!(
                    "unknown attribute `{}` of object type `{}`",
                    a.name.name, obj.name
                ),
            );
            if let Some(h) = suggest(&a.name.name, obj.attrs.keys().map(String::as_str)) {
                d = d.with_help(h);
            }
            diags.push(d);
            continue;
        };
        if let TestValue::List(items, span) = &a.value {
            if !def.multi && items.len() != 1 {
                diags.push(
                    Diagnostic::new(
                        "E0401",
                        file,
                        span.clone(),
                        format!("`{}` is single-valued but is given a list", def.name),
                    )
                    .with_label("several values"),
                );
            }
            for v in items {
                value(def.base, &def.name, v, file, diags);
            }
        } else {
            value(def.base, &def.name, &a.value, file, diags);
        }
    }
}

fn value(base: Base, name: &str, v: &TestValue, file: FileId, diags: &mut Vec<Diagnostic>) {
    let found = match v {
        TestValue::Absent(_) => return,
        TestValue::Str(..) => Base::Str,
        TestValue::Num(..) => Base::Num,
        TestValue::Word(w) => match w.name.as_str() {
            "True" | "False" => Base::Bool,
            other => {
                diags.push(
                    Diagnostic::new("E0401", file, w.span.clone(), format!("`{other}` is not a test value"))
                        .with_help("values are strings, numbers, True, False, absent, lists or typed literals such as guid \"...\""),
                );
                return;
            }
        },
        TestValue::Typed(t, s) => match typed_literal(&t.name, &s.value) {
            Ok(b) => b,
            Err(msg) => {
                diags.push(
                    Diagnostic::new("E0006", file, v.span(), msg).with_label("invalid literal"),
                );
                return;
            }
        },
        TestValue::List(_, span) => {
            diags.push(Diagnostic::new(
                "E0401",
                file,
                span.clone(),
                "lists cannot be nested",
            ));
            return;
        }
    };
    let ok = found == base
        || (base == Base::Ref && found == Base::Str)
        || (base == Base::Bin && found == Base::Str)
        || (base == Base::Str && found == Base::Ref)
        || base == Base::Any;
    if !ok {
        diags.push(
            Diagnostic::new(
                "E0401",
                file,
                v.span(),
                format!(
                    "`{name}` is {} but the value is {}",
                    base.schema_name(),
                    found.schema_name()
                ),
            )
            .with_label("wrong type"),
        );
    }
}

/// Validates a typed literal and returns the type of value it makes.
fn typed_literal(kind: &str, text: &str) -> Result<Base, String> {
    match kind {
        "guid" => {
            let t = text.trim_start_matches('{').trim_end_matches('}');
            let groups: Vec<&str> = t.split('-').collect();
            let lens = [8, 4, 4, 4, 12];
            let ok = groups.len() == 5
                && groups
                    .iter()
                    .zip(lens)
                    .all(|(g, l)| g.len() == l && g.chars().all(|c| c.is_ascii_hexdigit()));
            if ok {
                Ok(Base::Bin)
            } else {
                Err(format!(
                    "`{text}` is not a GUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)"
                ))
            }
        }
        "hex" => {
            if text.len().is_multiple_of(2) && text.chars().all(|c| c.is_ascii_hexdigit()) {
                Ok(Base::Bin)
            } else {
                Err(format!(
                    "`{text}` is not an even number of hexadecimal digits"
                ))
            }
        }
        "base64" => {
            let ok = text.len().is_multiple_of(4)
                && text
                    .trim_end_matches('=')
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '/')
                && text.len() - text.trim_end_matches('=').len() <= 2;
            if ok {
                Ok(Base::Bin)
            } else {
                Err(format!("`{text}` is not base64"))
            }
        }
        "sid" => {
            let parts: Vec<&str> = text.split('-').collect();
            let ok = parts.len() >= 3
                && parts[0].eq_ignore_ascii_case("S")
                && parts[1..]
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()));
            if ok {
                Ok(Base::Bin)
            } else {
                Err(format!("`{text}` is not a SID (S-1-5-21-...)"))
            }
        }
        "datetime" => {
            let b = text.as_bytes();
            let ok = b.len() >= 20
                && b[4] == b'-'
                && b[7] == b'-'
                && (b[10] == b'T' || b[10] == b' ')
                && b[13] == b':'
                && b[16] == b':'
                && (text.ends_with('Z') || text[19..].contains(['+', '-']));
            if ok {
                Ok(Base::Dt)
            } else {
                Err(format!(
                    "`{text}` is not an RFC 3339 date-time (2024-01-31T12:00:00Z)"
                ))
            }
        }
        other => Err(format!(
            "unknown literal kind `{other}`: expected guid, hex, base64, sid or datetime"
        )),
    }
}
