//! The JSON form of values, shared by `idflow eval`, the conformance suite and test tooling.
//!
//! Consumes/produces: [`Value`] ⇄ `serde_json::Value`. Strings, numbers, booleans and `null`
//! map directly; multi-valued values are arrays; binaries are `{"$binary": "<base64>"}`,
//! date-times `{"$datetime": "<RFC 3339 UTC>"}`, and the flow results
//! `{"special": "AuthoritativeNull"}` / `{"special": "IgnoreThisFlow"}`. This encoding is a
//! stable interface. [`write_json`] writes the same form as text straight into a string (the
//! JSON lines connector's hot path).

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

/// Appends a value's JSON form ([`to_json`]) as serde_json writes it compactly, without
/// building the document.
pub fn write_json(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("null"),
        Value::AuthoritativeNull => out.push_str("{\"special\":\"AuthoritativeNull\"}"),
        Value::IgnoreThisFlow => out.push_str("{\"special\":\"IgnoreThisFlow\"}"),
        Value::Str(s) | Value::Ref(s) => write_json_str(out, s),
        Value::Num(n) => {
            use std::fmt::Write as _;
            // Writing into a string does not fail.
            let _ = write!(out, "{n}");
        }
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Bin(b) => {
            out.push_str("{\"$binary\":\"");
            B64.encode_string(b, out);
            out.push_str("\"}");
        }
        Value::Dt(d) => {
            out.push_str("{\"$datetime\":");
            write_json_str(out, &datetime_text(d));
            out.push('}');
        }
        Value::Many(items) => write_json_array(out, items),
    }
}

/// Values as a JSON array.
pub fn write_json_array(out: &mut String, items: &[Value]) {
    out.push('[');
    for (k, v) in items.iter().enumerate() {
        if k > 0 {
            out.push(',');
        }
        write_json(out, v);
    }
    out.push(']');
}

/// A JSON string as serde_json escapes it: `"` and `\`, the control characters (`\b`,
/// `\t`, `\n`, `\f`, `\r`, any other as `\u00xx`), nothing else.
pub fn write_json_str(out: &mut String, s: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0C => "\\f",
            0x00..=0x1F => "",
            _ => continue,
        };
        out.push_str(&s[start..i]);
        if short.is_empty() {
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xF)]));
        } else {
            out.push_str(short);
        }
        start = i + 1;
    }
    out.push_str(&s[start..]);
    out.push('"');
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_written_as_its_json_form_serializes() {
        let dt = crate::connector::ldif::parse_generalized_time("20261207101112.5Z").unwrap();
        let texts = [
            "",
            "plain",
            "quote \" back \\ slash",
            "tab\tnew\nline\rcr",
            "\u{8}\u{c}\u{1}\u{1f}\u{7f}",
            "ünïcödé ✓ 𝄞",
        ];
        let mut values: Vec<Value> = texts.iter().map(|t| Value::str(*t)).collect();
        values.extend([
            Value::Null,
            Value::AuthoritativeNull,
            Value::IgnoreThisFlow,
            Value::Ref("CN=\"q\",DC=x".into()),
            Value::Num(i64::MIN),
            Value::Num(i64::MAX),
            Value::Bool(true),
            Value::Bool(false),
            Value::bin(vec![0, 255, 1, 2, 3]),
            Value::Dt(dt),
        ]);
        values.push(Value::many(values.clone()));
        for v in &values {
            let mut out = String::new();
            write_json(&mut out, v);
            assert_eq!(out, to_json(v).to_string(), "{v:?}");
        }
    }
}
