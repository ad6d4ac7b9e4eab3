//! The JSON lines file connector: a source ([`JsonlSource`]) and a target ([`JsonlTarget`]).
//!
//! Consumes/produces: one object per line, `{"dn": "...", "type": "...", "attrs": {NAME:
//! VALUE, ...}}`, values in the JSON encoding of `eval::json` (strings, integers, booleans,
//! arrays for several values, `{"$binary": "<base64>"}`, `{"$datetime": "<RFC 3339>"}`; `null`
//! is no value). JSON has no reference type: a string of an attribute that `types` declares a
//! `ref` becomes a reference, and of a `dt` a date-time (generalized time or RFC 3339). Blank
//! lines are ignored.
//!
//! A malformed line (not JSON, not an object, no `dn` or `type`, an unknown key, a value that is
//! not a value, a DN seen before) is skipped and reported with its line ([`Rejected`]); a file
//! that cannot be read, or in which no line is a JSON object, is an error.
//!
//! A target file holds the target directory's content; [`JsonlTarget::export`] applies the
//! changes like the LDIF target (an add of an existing DN, or an update or delete of a missing
//! one, fails that change) and replaces the file atomically, sorted by DN in tree order.

use super::ldif::{self, AttrTypes, Entry, Objects, declared, full};
use super::{Anchors, Connector, ConnectorError, ExportOutcome, Imported, Rejected};
use crate::engine::export::ExportDelta;
use crate::eval::json::{from_json, to_json};
use crate::sema::types::Base;
use crate::value::Value;
use serde_json::Value as Json;
use std::path::{Path, PathBuf};

/// One line as an entry, or why it is malformed.
fn entry(line: &str, types: &AttrTypes) -> Result<Entry, String> {
    let j: Json = serde_json::from_str(line).map_err(|e| format!("not JSON: {e}"))?;
    let Json::Object(o) = j else {
        return Err("a line must be a JSON object".into());
    };
    if let Some(k) = o
        .keys()
        .find(|k| !matches!(k.as_str(), "dn" | "type" | "attrs"))
    {
        return Err(format!("unknown key `{k}` (dn, type, attrs)"));
    }
    let text = |k: &str| -> Result<String, String> {
        match o.get(k) {
            Some(Json::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_string()),
            Some(Json::String(_)) | None => Err(format!("no `{k}`")),
            Some(_) => Err(format!("`{k}` must be a string")),
        }
    };
    let mut e = Entry::new(text("dn")?, text("type")?);
    match o.get("attrs") {
        None | Some(Json::Null) => {}
        Some(Json::Object(attrs)) => {
            for (name, v) in attrs {
                let v = from_json(v).map_err(|m| format!("attribute `{name}`: {m}"))?;
                if matches!(v, Value::AuthoritativeNull | Value::IgnoreThisFlow) {
                    return Err(format!(
                        "attribute `{name}`: {} is not a value",
                        v.type_name()
                    ));
                }
                let base = declared(types, name);
                let v = retype(v, base).map_err(|m| format!("attribute `{name}`: {m}"))?;
                e.set(name, v.values().to_vec());
            }
        }
        Some(_) => return Err("`attrs` must be an object".into()),
    }
    Ok(e)
}

/// Strings of references and date-times as their declared type.
fn retype(v: Value, base: Option<Base>) -> Result<Value, String> {
    Ok(match (v, base) {
        (Value::Str(s), Some(Base::Ref)) => Value::Ref(s),
        (Value::Str(s), Some(Base::Dt)) => Value::Dt(ldif::parse_generalized_time(&s)?),
        (Value::Many(items), b) => Value::many(
            items
                .iter()
                .map(|i| retype(i.clone(), b))
                .collect::<Result<_, _>>()?,
        ),
        (v, _) => v,
    })
}

/// One entry as a line (no newline).
fn line(e: &Entry) -> String {
    let attrs: serde_json::Map<String, Json> = e
        .attrs
        .iter()
        .map(|(n, vs)| {
            let j = if vs.len() == 1 {
                to_json(&vs[0])
            } else {
                Json::Array(vs.iter().map(to_json).collect())
            };
            (n.clone(), j)
        })
        .collect();
    format!(
        "{{\"dn\":{},\"type\":{},\"attrs\":{}}}",
        Json::String(e.dn.clone()),
        Json::String(e.object_type().to_string()),
        Json::Object(attrs)
    )
}

/// The text of a JSON lines file of `entries`, sorted by DN in tree order.
pub fn write_jsonl<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let mut out = String::new();
    for e in ldif::tree_order(entries) {
        out.push_str(&line(e));
        out.push('\n');
    }
    out
}

/// Reads a file. `missing_ok`: a missing file is empty.
fn load(
    path: &Path,
    types: &AttrTypes,
    missing_ok: bool,
) -> Result<(Objects, Vec<Rejected>), ConnectorError> {
    let source = path.display().to_string();
    let err = |line, message: String| ConnectorError {
        source: source.clone(),
        line,
        message,
    };
    let bytes = match ldif::read_file(path)? {
        Some(b) => b,
        None if missing_ok => return Ok((Objects::new(), Vec::new())),
        None => return Err(err(None, "cannot read: the file does not exist".into())),
    };
    let mut set = Objects::new();
    let mut lines_of: std::collections::HashMap<String, usize> = Default::default();
    let mut rejected = Vec::new();
    let mut first_line = None;
    let mut any_object = false;
    let mut reject = |line, message| {
        rejected.push(Rejected {
            source: source.clone(),
            line,
            message,
        })
    };
    for (i, raw) in bytes.split(|&b| b == b'\n').enumerate() {
        let no = i + 1;
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        let raw = if i == 0 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        first_line.get_or_insert(no);
        let Ok(text) = std::str::from_utf8(raw) else {
            reject(no, "the line is not valid UTF-8".into());
            continue;
        };
        any_object |= text.trim_start().starts_with('{');
        match entry(text, types) {
            Ok(e) => {
                let k = ldif::dn_key(&e.dn);
                if let Some(first) = lines_of.get(&k) {
                    reject(
                        no,
                        format!("duplicate DN `{}` (first at line {first})", e.dn),
                    );
                } else {
                    lines_of.insert(k.clone(), no);
                    set.insert(k, e);
                }
            }
            Err(m) => reject(no, m),
        }
    }
    if let Some(first) = first_line
        && !any_object
    {
        return Err(err(
            Some(first),
            "not a JSON lines file: no line is a JSON object".into(),
        ));
    }
    Ok((set, rejected))
}

/// A JSON lines file as a source (read-only).
#[derive(Debug, Clone)]
pub struct JsonlSource {
    pub path: PathBuf,
    pub types: AttrTypes,
}

impl JsonlSource {
    pub fn new(path: impl Into<PathBuf>) -> JsonlSource {
        JsonlSource {
            path: path.into(),
            types: AttrTypes::new(),
        }
    }

    pub fn with_types(mut self, types: AttrTypes) -> JsonlSource {
        self.types = types;
        self
    }
}

impl Connector for JsonlSource {
    fn source_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    fn full_import(&mut self) -> Result<Imported, ConnectorError> {
        let (set, rejected) = load(&self.path, &self.types, false)?;
        Ok(full(&set, rejected))
    }

    fn export(&mut self, _changes: &[ExportDelta]) -> Result<ExportOutcome, ConnectorError> {
        Err(ConnectorError {
            source: self.path.display().to_string(),
            line: None,
            message: "a JSON lines source is read-only (use a JSON lines target to export)".into(),
        })
    }
}

/// A JSON lines file as a target: it holds the target directory's content.
#[derive(Debug, Clone)]
pub struct JsonlTarget {
    pub path: PathBuf,
    pub types: AttrTypes,
    /// The anchor attributes it assigns to new objects, by type.
    pub anchors: Anchors,
}

impl JsonlTarget {
    pub fn new(path: impl Into<PathBuf>) -> JsonlTarget {
        JsonlTarget {
            path: path.into(),
            types: AttrTypes::new(),
            anchors: Anchors::new(),
        }
    }

    pub fn with_types(mut self, types: AttrTypes) -> JsonlTarget {
        self.types = types;
        self
    }

    /// Assigns anchors (`connector::generated_anchor`) to new objects of these types.
    pub fn with_anchors(mut self, anchors: Anchors) -> JsonlTarget {
        self.anchors = anchors;
        self
    }
}

impl Connector for JsonlTarget {
    fn source_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    /// The file's objects (a missing file is an empty directory).
    fn full_import(&mut self) -> Result<Imported, ConnectorError> {
        let (set, rejected) = load(&self.path, &self.types, true)?;
        Ok(full(&set, rejected))
    }

    /// Applies the changes and replaces the file atomically (only when a change applied).
    fn export(&mut self, changes: &[ExportDelta]) -> Result<ExportOutcome, ConnectorError> {
        let loaded = load(&self.path, &self.types, true)?;
        ldif::export_file(&self.path, loaded, "line", changes, &self.anchors, |set| {
            write_jsonl(set.values())
        })
    }
}
