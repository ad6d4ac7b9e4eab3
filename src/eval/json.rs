//! The JSON form of values, shared by `idflow eval`, the conformance suite and test tooling.
//!
//! Consumes/produces: [`Value`] ⇄ `serde_json::Value`. Strings, numbers, booleans and `null`
//! map directly; multi-valued values are arrays; binaries are `{"$binary": "<base64>"}`,
//! date-times `{"$datetime": "<RFC 3339 UTC>"}`, and the flow results
//! `{"special": "AuthoritativeNull"}` / `{"special": "IgnoreThisFlow"}`. This encoding is a
//! stable interface.

use crate::value::Value;
use base64::Engine;
use serde_json::{Value as Json, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The JSON form of a value.
pub fn to_json(v: &Value) -> Json {
    match v {
        Value::Null => Json::Null,
        Value::AuthoritativeNull => json!({"special": "AuthoritativeNull"}),
        Value::IgnoreThisFlow => json!({"special": "IgnoreThisFlow"}),
        Value::Str(s) | Value::Ref(s) => Json::String(s.to_string()),
        Value::Num(n) => json!(n),
        Value::Bool(b) => json!(b),
        Value::Bin(b) => json!({"$binary": B64.encode(b)}),
        Value::Dt(d) => json!({"$datetime": datetime_text(d)}),
        Value::Many(items) => Json::Array(items.iter().map(to_json).collect()),
    }
}

/// RFC 3339 in UTC with a `Z`, fractional seconds only when present.
pub fn datetime_text(d: &crate::value::DateTime) -> String {
    format!("{d:.0}").replace("+00:00", "Z")
}

/// A value from its JSON form. Arrays become multi-valued values (of scalars only).
pub fn from_json(j: &Json) -> Result<Value, String> {
    Ok(match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => Value::Num(
            n.as_i64()
                .ok_or_else(|| format!("{n} is not a 64-bit integer"))?,
        ),
        Json::String(s) => Value::str(s.as_str()),
        Json::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for i in items {
                match from_json(i)? {
                    Value::Many(_) => return Err("nested arrays are not values".into()),
                    v if v.is_null() => return Err("null inside an array".into()),
                    v => out.push(v),
                }
            }
            Value::many(out)
        }
        Json::Object(o) => {
            if let Some(b) = o.get("$binary") {
                let text = b.as_str().ok_or("$binary must be a base64 string")?;
                Value::bin(
                    B64.decode(text)
                        .map_err(|e| format!("invalid base64 in $binary: {e}"))?,
                )
            } else if let Some(d) = o.get("$datetime") {
                let text = d.as_str().ok_or("$datetime must be a string")?;
                Value::Dt(
                    text.parse()
                        .map_err(|e| format!("invalid $datetime `{text}`: {e}"))?,
                )
            } else if let Some(s) = o.get("special") {
                match s.as_str() {
                    Some("AuthoritativeNull") => Value::AuthoritativeNull,
                    Some("IgnoreThisFlow") => Value::IgnoreThisFlow,
                    _ => return Err(format!("unknown special value {s}")),
                }
            } else {
                return Err("objects must be {\"$binary\": ...}, {\"$datetime\": ...} or {\"special\": ...}".into());
            }
        }
    })
}
