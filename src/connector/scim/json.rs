//! Values between the connector space and SCIM resources: the JSON of a value of a declared
//! type, reading the values at a [`ScimPath`] of a resource, and placing values there.
//!
//! A string is a JSON string, a number a JSON number, a boolean a JSON boolean, binary data
//! base64 text (SCIM's `binary`), a date-time RFC 3339 text (SCIM's `dateTime`); a reference
//! is the referenced resource's id, in the `value` of a complex attribute (`members`,
//! `manager`) or at the path's sub-attribute when the path names one.

use super::{AttrMap, TypeMap};
use crate::config::scim::ScimPath;
use crate::sema::types::Base;
use crate::value::Value;
use base64::Engine as _;
use serde_json::{Map, Value as Json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The JSON of a scalar value (not a reference); None for what is no value.
pub fn scalar(v: &Value) -> Option<Json> {
    Some(match v {
        Value::Str(s) | Value::Ref(s) => Json::String(s.to_string()),
        Value::Num(n) => Json::from(*n),
        Value::Bool(b) => Json::Bool(*b),
        Value::Bin(b) => Json::String(B64.encode(b)),
        Value::Dt(d) => Json::String(crate::eval::json::datetime_text(d)),
        _ => return None,
    })
}

/// A value as the text a filter compares (`value eq "..."`).
pub fn filter_text(j: &Json) -> String {
    match j {
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The JSON of one reference (the id), as the path holds it.
pub fn reference(path: &ScimPath, id: &str) -> Json {
    if path.sub.is_some() {
        Json::String(id.to_string())
    } else {
        let mut m = Map::new();
        m.insert("value".into(), Json::String(id.to_string()));
        Json::Object(m)
    }
}

/// A value read from a resource as the declared type; an error says why it does not fit.
pub fn value(j: &Json, base: Base) -> Result<Value, String> {
    Ok(match (j, base) {
        (Json::Null, _) => Value::Null,
        (Json::String(s), Base::Bin) => Value::bin(
            B64.decode(s.trim())
                .map_err(|e| format!("not base64: {e}"))?,
        ),
        (Json::String(s), Base::Dt) => Value::Dt(
            s.trim()
                .parse()
                .map_err(|e| format!("`{s}` is not an RFC 3339 date-time: {e}"))?,
        ),
        (Json::String(s), Base::Num) => Value::Num(
            s.trim()
                .parse()
                .map_err(|_| format!("`{s}` is not an integer"))?,
        ),
        (Json::String(s), Base::Bool) => match s.trim().to_ascii_lowercase().as_str() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => return Err(format!("`{s}` is not a boolean")),
        },
        (Json::String(s), _) => Value::str(s.as_str()),
        (Json::Bool(b), Base::Bool) => Value::Bool(*b),
        (Json::Bool(b), Base::Str | Base::Any) => Value::str(b.to_string()),
        (Json::Number(n), Base::Num | Base::Any) => Value::Num(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a 64-bit integer"))?,
        ),
        (Json::Number(n), Base::Str) => Value::str(n.to_string()),
        (other, b) => {
            return Err(format!(
                "a JSON {} is not a {b:?} value",
                match other {
                    Json::Bool(_) => "boolean",
                    Json::Number(_) => "number",
                    Json::Array(_) => "array",
                    Json::Object(_) => "object",
                    _ => "value",
                }
            ));
        }
    })
}

/// A key of a JSON object, compared case-insensitively (SCIM attribute names are).
fn get<'j>(m: &'j Map<String, Json>, key: &str) -> Option<&'j Json> {
    m.get(key).or_else(|| {
        m.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v)
    })
}

/// Whether an element of a multi-valued attribute matches a path's filter (text compared
/// case-insensitively, as SCIM's `type` and most canonical values are).
fn matches(e: &Json, path: &ScimPath) -> bool {
    let Json::Object(m) = e else {
        return false;
    };
    path.filter
        .iter()
        .all(|c| get(m, &c.sub).is_some_and(|v| filter_text(v).eq_ignore_ascii_case(&c.value)))
}

/// The JSON values a resource holds at a path (for a reference: the ids).
pub fn read<'j>(resource: &'j Json, ty: &TypeMap, a: &AttrMap) -> Vec<&'j Json> {
    let Json::Object(root) = resource else {
        return Vec::new();
    };
    let container = if ty.is_core(&a.path) {
        Some(root)
    } else {
        a.path
            .urn
            .as_deref()
            .and_then(|u| get(root, u))
            .and_then(Json::as_object)
    };
    let Some(at) = container.and_then(|c| get(c, &a.path.attr)) else {
        return Vec::new();
    };
    let mut out: Vec<&Json> = match (at, &a.path.sub) {
        (Json::Array(items), Some(sub)) => items
            .iter()
            .filter(|e| matches(e, &a.path))
            .filter_map(|e| e.as_object().and_then(|m| get(m, sub)))
            .collect(),
        (Json::Array(items), None) => items.iter().collect(),
        (Json::Object(m), Some(sub)) => get(m, sub).into_iter().collect(),
        (v, _) => vec![v],
    };
    if a.is_ref() {
        out = out
            .into_iter()
            .filter_map(|v| match v {
                Json::Object(m) => get(m, "value"),
                v => Some(v),
            })
            .collect();
    }
    out.retain(|v| !v.is_null());
    out
}

/// Places the JSON values of an attribute in a new resource (see the module doc).
pub fn place(
    resource: &mut Map<String, Json>,
    ty: &TypeMap,
    path: &ScimPath,
    values: Vec<Json>,
    multi: bool,
) {
    if values.is_empty() {
        return;
    }
    let container = if ty.is_core(path) {
        resource
    } else {
        let urn = path.urn.clone().unwrap_or_default();
        let entry = resource
            .entry(urn)
            .or_insert_with(|| Json::Object(Map::new()));
        if !entry.is_object() {
            *entry = Json::Object(Map::new());
        }
        match entry {
            Json::Object(m) => m,
            _ => return,
        }
    };
    match (&path.sub, path.filter.is_empty()) {
        (None, _) => {
            let v = if multi {
                Json::Array(values)
            } else {
                values.into_iter().next().unwrap_or(Json::Null)
            };
            container.insert(path.attr.clone(), v);
        }
        (Some(sub), true) if !multi => {
            let entry = container
                .entry(path.attr.clone())
                .or_insert_with(|| Json::Object(Map::new()));
            if !entry.is_object() {
                *entry = Json::Object(Map::new());
            }
            if let (Json::Object(m), Some(v)) = (entry, values.into_iter().next()) {
                m.insert(sub.clone(), v);
            }
        }
        (Some(sub), _) => {
            let entry = container
                .entry(path.attr.clone())
                .or_insert_with(|| Json::Array(Vec::new()));
            if !entry.is_array() {
                *entry = Json::Array(Vec::new());
            }
            if let Json::Array(items) = entry {
                items.extend(values.into_iter().map(|v| element(path, sub, v)));
            }
        }
    }
}

/// An element of a multi-valued attribute: the filter's values and the value at `sub`.
pub fn element(path: &ScimPath, sub: &str, v: Json) -> Json {
    let mut m = Map::new();
    for c in &path.filter {
        m.insert(c.sub.clone(), Json::String(c.value.clone()));
    }
    m.insert(sub.to_string(), v);
    Json::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::scim::{CORE_USER, DeleteMode, ScimType};

    fn ty(attrs: &[(&str, &str, Base, bool)]) -> TypeMap {
        let attrs: Vec<AttrMap> = attrs
            .iter()
            .map(|(n, p, b, m)| AttrMap {
                name: n.to_string(),
                path: ScimPath::parse(p).unwrap(),
                base: *b,
                multi: *m,
            })
            .collect();
        TypeMap {
            def: ScimType {
                object_type: "user".into(),
                endpoint: "Users".into(),
                schemas: vec![CORE_USER.into()],
                dn: ScimPath::parse("externalId").unwrap(),
                delete: DeleteMode::Delete,
                attributes: attrs
                    .iter()
                    .map(|a| (a.name.clone(), a.path.clone()))
                    .collect(),
            },
            name: "user".into(),
            anchor: ("id".into(), Base::Str),
            attrs,
        }
    }

    #[test]
    fn placed_values_read_back() {
        let enterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let t = ty(&[
            ("upn", "userName", Base::Str, false),
            ("given", "name.givenName", Base::Str, false),
            ("mail", r#"emails[type eq "work"].value"#, Base::Str, false),
            ("other", r#"emails[type eq "other"].value"#, Base::Str, true),
            (
                "manager",
                &format!("{enterprise}:manager"),
                Base::Ref,
                false,
            ),
            ("enabled", "active", Base::Bool, false),
        ]);
        let mut r = Map::new();
        let vals = [
            vec![Json::from("ann")],
            vec![Json::from("Ann")],
            vec![Json::from("ann@x.com")],
            vec![Json::from("a1@x.com"), Json::from("a2@x.com")],
            vec![reference(&t.attrs[4].path, "42")],
            vec![Json::Bool(true)],
        ];
        for (a, v) in t.attrs.iter().zip(vals.clone()) {
            place(&mut r, &t, &a.path, v, a.multi);
        }
        let r = Json::Object(r);
        assert_eq!(r["name"]["givenName"], "Ann");
        assert_eq!(r[enterprise]["manager"]["value"], "42");
        assert_eq!(r["emails"].as_array().unwrap().len(), 3);
        let got: Vec<Vec<Json>> = t
            .attrs
            .iter()
            .map(|a| read(&r, &t, a).into_iter().cloned().collect())
            .collect();
        assert_eq!(got[0], vals[0]);
        assert_eq!(got[2], vals[2]);
        assert_eq!(got[3], vals[3]);
        assert_eq!(got[4], vec![Json::from("42")]);
        assert_eq!(value(&got[5][0], Base::Bool).unwrap(), Value::Bool(true));
    }
}
