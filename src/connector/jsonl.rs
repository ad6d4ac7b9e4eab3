//! The JSON lines file connector: a source ([`JsonlSource`]) and a target ([`JsonlTarget`]).
//!
//! Consumes/produces: one object per line, `{"dn": "...", "type": "...", "attrs": {NAME:
//! VALUE, ...}}`, values in the JSON encoding of `eval::json` (strings, integers, booleans,
//! arrays for several values, `{"$binary": "<base64>"}`, `{"$datetime": "<RFC 3339>"}`; `null`
//! is no value). JSON has no reference type: a string of an attribute that `types` declares a
//! `ref` becomes a reference, and of a `dt` a date-time (generalized time or RFC 3339). Blank
//! lines are ignored.
//!
//! An import hands the objects to its sink in pages as it reads the lines, in file order. A
//! malformed line (not JSON, not an object, no `dn` or `type`, an unknown key, a value that is
//! not a value, a DN seen before) is skipped and reported with its line ([`Rejected`]); a file
//! that cannot be read, or in which no line is a JSON object, is an error.
//!
//! A target file holds the target directory's content; [`JsonlTarget::export`] applies the
//! changes like the LDIF target (an add of an existing DN, or an update or delete of a missing
//! one, fails that change) and replaces the file atomically, sorted by DN in tree order. A file
//! already in tree order is patched: only the lines the deltas name are read whole and written
//! anew, the others are copied as they are (docs/DECISIONS.md 36).

use super::ldif::{self, AttrTypes, Entry, Objects, declared};
use super::{
    Anchors, Connector, ConnectorError, ExportResult, ImportEnd, ImportMode, ImportSink, Pager,
    Rejected, Written,
};
use crate::engine::export::ExportDelta;
use crate::engine::import::ImportChange;
use crate::eval::json::{from_json, to_json};
use crate::sema::types::Base;
use crate::value::Value;
use serde_json::Value as Json;
use std::io::Write;
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
            e.attrs.reserve_exact(attrs.len());
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
pub(crate) fn line(e: &Entry) -> String {
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
    // Writing into a string does not fail.
    let _ = write_jsonl_to(entries, &mut out);
    out
}

/// [`write_jsonl`] into `out`, a line at a time.
fn write_jsonl_to<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    out: &mut dyn std::fmt::Write,
) -> std::fmt::Result {
    for e in ldif::tree_order(entries) {
        out.write_str(&line(e))?;
        out.write_char('\n')?;
    }
    Ok(())
}

/// The shape of a line as [`Scan::of`] checks it without converting its values: an object
/// with a `dn` and a `type` and, if anything else, `attrs` (an object or null).
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Head<'a> {
    #[serde(borrow)]
    dn: std::borrow::Cow<'a, str>,
    #[serde(rename = "type", borrow)]
    object_type: std::borrow::Cow<'a, str>,
    #[serde(default)]
    #[allow(dead_code)]
    attrs: Option<AttrsShape>,
}

/// A JSON object, its members skipped.
struct AttrsShape;

impl<'de> serde::Deserialize<'de> for AttrsShape {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<AttrsShape, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = AttrsShape;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut m: A,
            ) -> Result<AttrsShape, A::Error> {
                use serde::de::IgnoredAny;
                while m.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(AttrsShape)
            }
        }
        d.deserialize_map(Members)
    }
}

/// The order of a line in the file: the tree order of its DN, then its DN key (the order a
/// whole rewrite gives, [`write_jsonl`]).
type Order = (Vec<String>, String);

/// A target file read for a patch: the lines no delta names, in file order with their order
/// key, and the objects of the lines a delta names (by its DN or the DN it renames to), read
/// whole.
struct Scan<'t> {
    kept: Vec<(Order, &'t str)>,
    set: Objects,
}

impl<'t> Scan<'t> {
    /// Scans the file's `text` for a patch by `deltas`; None when it must be read and written
    /// whole: a line not well formed (the whole read reports it), a DN twice, lines not in
    /// tree order (a whole rewrite sorts them), or no line at all.
    fn of(text: &'t str, deltas: &[ExportDelta], types: &AttrTypes) -> Option<Scan<'t>> {
        let named: std::collections::HashSet<String> = deltas
            .iter()
            .flat_map(|d| std::iter::once(&*d.dn).chain(d.new_dn.as_deref()))
            .filter(|d| !d.trim().is_empty())
            .map(ldif::dn_key)
            .collect();
        // A DN seen twice sends the file to the whole path, which reports it: its keys are kept
        // as hashes (no copy of each line's key), and a collision only does the same.
        let hasher = foldhash::fast::RandomState::default();
        let mut seen = std::collections::HashSet::new();
        let mut kept: Vec<(Order, &str)> = Vec::new();
        let mut set = Objects::new();
        for raw in text.split('\n') {
            let raw = raw.strip_suffix('\r').unwrap_or(raw);
            if raw.bytes().all(|b| b.is_ascii_whitespace()) {
                continue;
            }
            let head: Head = serde_json::from_str(raw).ok()?;
            let dn = head.dn.trim();
            if dn.is_empty() || head.object_type.trim().is_empty() {
                return None;
            }
            let k = ldif::dn_key(dn);
            if !seen.insert(std::hash::BuildHasher::hash_one(&hasher, &k)) {
                return None;
            }
            if named.contains(&k) {
                set.insert(k, entry(raw, types).ok()?);
                continue;
            }
            let order = (ldif::tree_key(dn), k);
            if kept.last().is_some_and(|(last, _)| *last >= order) {
                return None;
            }
            kept.push((order, raw));
        }
        (!seen.is_empty()).then_some(Scan { kept, set })
    }
}

/// Writes a patched file: the `kept` lines as they were, and the objects of `set` written anew,
/// merged in tree order. Answers the number of objects.
fn patch(kept: &[(Order, &str)], set: &Objects, out: &mut dyn Write) -> std::io::Result<usize> {
    let mut fresh: Vec<(Order, String)> = set
        .iter()
        .map(|(k, e)| ((ldif::tree_key(&e.dn), k.clone()), line(e)))
        .collect();
    fresh.sort_by(|a, b| a.0.cmp(&b.0));
    let mut fresh = fresh.into_iter().peekable();
    for (order, l) in kept {
        while let Some((_, f)) = fresh.next_if(|(o, _)| o < order) {
            out.write_all(f.as_bytes())?;
            out.write_all(b"\n")?;
        }
        out.write_all(l.as_bytes())?;
        out.write_all(b"\n")?;
    }
    for (_, f) in fresh {
        out.write_all(f.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(kept.len() + set.len())
}

/// Reads JSON lines as they arrive, handing each object (with its line) or malformed line to
/// `each`; an error of `each` stops the read. Text in which no line is a JSON object is an
/// error; the malformed lines before the first JSON object are handed over only once one
/// comes.
fn read_lines<R: std::io::BufRead>(
    mut input: R,
    source: &str,
    types: &AttrTypes,
    mut each: impl FnMut(Result<(usize, Entry), Rejected>) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    let mut lines_of: std::collections::HashMap<String, usize> = Default::default();
    let mut held: Vec<Rejected> = Vec::new();
    let mut first_line = None;
    let mut any_object = false;
    let mut buf = Vec::new();
    let mut no = 0;
    while let Some(raw) = super::next_line(&mut input, &mut buf, &mut no, source)? {
        let raw = if no == 1 {
            raw.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(raw)
        } else {
            raw
        };
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        first_line.get_or_insert(no);
        let reject = |message: String| Rejected {
            source: source.to_string(),
            line: no,
            message,
        };
        let item = match std::str::from_utf8(raw) {
            Err(_) => Err(reject("the line is not valid UTF-8".into())),
            Ok(text) => {
                if !any_object && text.trim_start().starts_with('{') {
                    any_object = true;
                    for r in held.drain(..) {
                        each(Err(r))?;
                    }
                }
                match entry(text, types) {
                    Ok(e) => {
                        let k = ldif::dn_key(&e.dn);
                        if let Some(first) = lines_of.get(&k) {
                            Err(reject(format!(
                                "duplicate DN `{}` (first at line {first})",
                                e.dn
                            )))
                        } else {
                            lines_of.insert(k, no);
                            Ok((no, e))
                        }
                    }
                    Err(m) => Err(reject(m)),
                }
            }
        };
        match item {
            Err(r) if !any_object => held.push(r),
            item => each(item)?,
        }
    }
    if let Some(first) = first_line
        && !any_object
    {
        return Err(ConnectorError {
            source: source.to_string(),
            line: Some(first),
            message: "not a JSON lines file: no line is a JSON object".into(),
        });
    }
    Ok(())
}

/// Reads a file whole (for an export). `missing_ok`: a missing file is empty.
fn load(
    path: &Path,
    types: &AttrTypes,
    missing_ok: bool,
) -> Result<(Objects, Vec<Rejected>), ConnectorError> {
    let input = match ldif::open_file(path)? {
        Some(f) => f,
        None if missing_ok => return Ok((Objects::new(), Vec::new())),
        None => return Err(ldif::missing(path)),
    };
    let mut set = Objects::new();
    let mut rejected = Vec::new();
    read_lines(input, &path.display().to_string(), types, |item| {
        match item {
            Ok((_, e)) => {
                set.insert(ldif::dn_key(&e.dn), e);
            }
            Err(r) => rejected.push(r),
        }
        Ok(())
    })?;
    Ok((set, rejected))
}

/// A full read of a file into `sink`, in pages, in file order. `missing_ok`: a missing file is
/// an empty directory.
fn import_full(
    path: &Path,
    types: &AttrTypes,
    missing_ok: bool,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let input = match ldif::open_file(path)? {
        Some(f) => f,
        None if missing_ok => return Ok(ImportEnd::full()),
        None => return Err(ldif::missing(path)),
    };
    let mut pager = Pager::new(sink);
    read_lines(
        input,
        &path.display().to_string(),
        types,
        |item| match item {
            Ok((_, e)) => pager.push(ImportChange::Upsert(e.into_import_object())),
            Err(r) => {
                pager.reject(r);
                Ok(())
            }
        },
    )?;
    pager.flush()?;
    Ok(ImportEnd::full())
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
            types: AttrTypes::default(),
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

    /// A full read of the file (a delta request too: a file has no change tracking).
    fn import(
        &mut self,
        _mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        import_full(&self.path, &self.types, false, sink)
    }

    fn export(&mut self, _deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        Err(ConnectorError {
            source: self.path.display().to_string(),
            line: None,
            message: "a JSON lines source is read-only (use a JSON lines target to export)".into(),
        })
    }

    fn confirms_by_reimport(&self) -> bool {
        true
    }
}

/// A JSON lines file as a target: it holds the target directory's content.
#[derive(Debug, Clone)]
pub struct JsonlTarget {
    pub path: PathBuf,
    pub types: AttrTypes,
    /// The anchor attributes it assigns to new objects, by type.
    pub anchors: Anchors,
    /// What the last export changed, as a read shows it ([`Connector::take_written`]).
    written: Option<Written>,
}

impl JsonlTarget {
    pub fn new(path: impl Into<PathBuf>) -> JsonlTarget {
        JsonlTarget {
            path: path.into(),
            types: AttrTypes::default(),
            anchors: Anchors::new(),
            written: None,
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

    /// A full read of the file's objects (a missing file is an empty directory).
    fn import(
        &mut self,
        _mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        import_full(&self.path, &self.types, true, sink)
    }

    /// Applies the deltas and replaces the file atomically (only when a change applied), one
    /// result per delta. A file whose lines are well formed and in tree order is patched: only
    /// the lines the deltas name are read whole and written anew ([`patch`]); any other is read
    /// and written whole.
    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        self.written = None;
        let render: super::streamed::Render<'_> = &|e, text| {
            text.push_str(&line(e));
            text.push('\n');
        };
        if let Some(results) =
            super::streamed::adds_into_new_file(&self.path, deltas, &self.anchors, "", render)?
        {
            return Ok(results);
        }
        if let Some(bytes) = ldif::read_file(&self.path)?
            && let Ok(text) = std::str::from_utf8(&bytes)
            && let Some(scan) = Scan::of(text, deltas, &self.types)
        {
            let types = &self.types;
            let Scan { kept, mut set } = scan;
            let (results, written) = ldif::export_objects(
                &self.path,
                &mut set,
                deltas,
                &self.anchors,
                |set, w| patch(&kept, set, w),
                |e| entry(&line(e), types),
            )?;
            self.written = written;
            return Ok(results);
        }
        let loaded = load(&self.path, &self.types, true)?;
        let types = &self.types;
        let (results, written) = ldif::export_file(
            &self.path,
            loaded,
            "line",
            deltas,
            &self.anchors,
            |set, w| crate::files::render_into(w, |t| write_jsonl_to(set.values(), t)),
            |e| entry(&line(e), types),
        )?;
        self.written = written;
        Ok(results)
    }

    /// Reading the file back is the confirmation (or what the export wrote, read back).
    fn confirms_by_reimport(&self) -> bool {
        true
    }

    fn take_written(&mut self) -> Option<Written> {
        self.written.take()
    }
}
