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
use crate::eval::json::{from_json, write_json, write_json_array, write_json_str};
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
    let mut out = String::new();
    push_line(&mut out, e);
    out
}

/// Appends one entry as a line (no newline): `{"dn":…,"type":…,"attrs":{…}}`, the attributes
/// by name (a name given twice keeps its last values), each value in its JSON form
/// (`eval::json::write_json`), a single value bare and several as an array; written as
/// serde_json writes the same document, without building it.
pub(crate) fn push_line(out: &mut String, e: &Entry) {
    out.push_str("{\"dn\":");
    write_json_str(out, &e.dn);
    out.push_str(",\"type\":");
    write_json_str(out, e.object_type());
    out.push_str(",\"attrs\":{");
    let mut order: Vec<usize> = (0..e.attrs.len()).collect();
    order.sort_by(|&a, &b| e.attrs[a].0.cmp(&e.attrs[b].0).then(b.cmp(&a)));
    order.dedup_by(|later, kept| e.attrs[*later].0 == e.attrs[*kept].0);
    for (n, &i) in order.iter().enumerate() {
        let (name, vs) = &e.attrs[i];
        if n > 0 {
            out.push(',');
        }
        write_json_str(out, name);
        out.push(':');
        if let [v] = vs.as_slice() {
            write_json(out, v);
        } else {
            write_json_array(out, vs);
        }
    }
    out.push_str("}}");
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
    let mut text = String::new();
    for e in ldif::tree_order(entries) {
        text.clear();
        push_line(&mut text, e);
        out.write_str(&text)?;
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

/// The order of a line in the file: the order a whole rewrite gives ([`write_jsonl`]).
type Order = ldif::TreePosition;

/// A target file read for a patch: where the lines no delta names begin, in file order, and
/// the objects of the lines a delta names (by its DN or the DN it renames to), read whole. The
/// file is read twice, as a stream, and never held: once here, and once more as the patch
/// copies it ([`patch`]).
struct Scan {
    /// The byte offset of each kept line (a line no delta names), in file order.
    kept: Vec<u64>,
    set: Objects,
    /// A digest of the file's lines, to tell that it did not change between the two reads.
    digest: u64,
}

/// A line of the file: its byte offset and its text (without the line end).
struct Line<'b> {
    at: u64,
    text: &'b [u8],
}

/// Reads the file's lines one at a time: `each` takes each line with text; reading stops at
/// its first `false`. Answers the digest of the lines read.
fn each_line(
    path: &Path,
    hasher: &foldhash::fast::FixedState,
    mut each: impl FnMut(Line<'_>) -> bool,
) -> std::io::Result<Option<u64>> {
    use std::io::BufRead;
    let Ok(f) = std::fs::File::open(path) else {
        return Ok(None);
    };
    let mut input = std::io::BufReader::with_capacity(1 << 16, f);
    let mut buf = Vec::new();
    let (mut at, mut digest) = (0u64, 0u64);
    loop {
        buf.clear();
        let n = input.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(Some(digest));
        }
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        digest = digest.rotate_left(7) ^ std::hash::BuildHasher::hash_one(hasher, text);
        if !text.iter().all(u8::is_ascii_whitespace) && !each(Line { at, text }) {
            return Ok(None);
        }
        at += n as u64;
    }
}

/// The order and DN key of a line, when it has the shape a patch copies (see [`Scan::of`]).
fn order_of(text: &[u8]) -> Option<Order> {
    let head: Head = serde_json::from_slice(text).ok()?;
    let dn = head.dn.trim();
    if dn.is_empty() || head.object_type.trim().is_empty() || std::str::from_utf8(text).is_err() {
        return None;
    }
    Some(ldif::tree_position(dn))
}

/// The digest's hasher: the same for both reads of a file.
fn line_hasher() -> foldhash::fast::FixedState {
    foldhash::fast::FixedState::with_seed(0x1df1_0a7c)
}

impl Scan {
    /// Scans the file at `path` for a patch by `deltas`; None when it must be read and written
    /// whole: a line not well formed (the whole read reports it), a DN twice, lines not in
    /// tree order (a whole rewrite sorts them), no line at all, or no file.
    fn of(path: &Path, deltas: &[ExportDelta], types: &AttrTypes) -> Option<Scan> {
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
        let mut kept: Vec<u64> = Vec::new();
        let mut last: Option<Order> = None;
        let mut set = Objects::new();
        let digest = each_line(path, &line_hasher(), |line| {
            let Some(order) = order_of(line.text) else {
                return false;
            };
            if !seen.insert(std::hash::BuildHasher::hash_one(&hasher, &order.1)) {
                return false;
            }
            if named.contains(&order.1) {
                let Some(e) = std::str::from_utf8(line.text)
                    .ok()
                    .and_then(|raw| entry(raw, types).ok())
                else {
                    return false;
                };
                set.insert(order.1, e);
                return true;
            }
            if last.as_ref().is_some_and(|l| *l >= order) {
                return false;
            }
            last = Some(order);
            kept.push(line.at);
            true
        })
        .ok()
        .flatten()?;
        (!seen.is_empty()).then_some(Scan { kept, set, digest })
    }
}

/// Writes a patched file: the kept lines as they are in the file at `path`, and the objects of
/// `set` written anew, merged in tree order. Answers the number of objects; an error when the
/// file changed since it was scanned (nothing is then replaced).
fn patch(path: &Path, scan: &Scan, set: &Objects, out: &mut dyn Write) -> std::io::Result<usize> {
    use std::io::{BufRead, Seek};
    let changed = || std::io::Error::other("the file changed while it was patched");
    // Where each new object goes: before the first kept line that follows it in tree order,
    // found by a binary search that reads the lines it compares with.
    let mut file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut buf = Vec::new();
    let mut order_at = |i: usize| -> std::io::Result<Order> {
        file.seek(std::io::SeekFrom::Start(scan.kept[i]))?;
        buf.clear();
        file.read_until(b'\n', &mut buf)?;
        let text = buf.strip_suffix(b"\n").unwrap_or(&buf);
        order_of(text.strip_suffix(b"\r").unwrap_or(text)).ok_or_else(changed)
    };
    let mut fresh: Vec<(usize, Order, String)> = Vec::with_capacity(set.len());
    for (k, e) in set {
        let order = (ldif::tree_key(&e.dn), k.clone());
        let (mut lo, mut hi) = (0, scan.kept.len());
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if order_at(mid)? < order {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        fresh.push((lo, order, line(e)));
    }
    fresh.sort_by(|a, b| a.1.cmp(&b.1));
    let mut fresh = fresh.into_iter().peekable();
    let mut next = 0usize;
    let mut failed = None;
    let digest = each_line(path, &line_hasher(), |line| {
        if scan.kept.get(next) != Some(&line.at) {
            return true;
        }
        let here = next;
        next += 1;
        let mut write = || -> std::io::Result<()> {
            while let Some((_, _, f)) = fresh.next_if(|(at, _, _)| *at <= here) {
                out.write_all(f.as_bytes())?;
                out.write_all(b"\n")?;
            }
            out.write_all(line.text)?;
            out.write_all(b"\n")
        };
        match write() {
            Ok(()) => true,
            Err(e) => {
                failed = Some(e);
                false
            }
        }
    })?;
    if let Some(e) = failed {
        return Err(e);
    }
    if digest != Some(scan.digest) || next != scan.kept.len() {
        return Err(changed());
    }
    for (_, _, f) in fresh {
        out.write_all(f.as_bytes())?;
        out.write_all(b"\n")?;
    }
    Ok(scan.kept.len() + set.len())
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
            push_line(text, e);
            text.push('\n');
        };
        if let Some(results) =
            super::streamed::adds_into_new_file(&self.path, deltas, &self.anchors, "", render)?
        {
            return Ok(results);
        }
        if let Some(mut scan) = Scan::of(&self.path, deltas, &self.types) {
            let types = &self.types;
            let mut set = std::mem::take(&mut scan.set);
            let path = &self.path;
            let (results, written) = ldif::export_objects(
                &self.path,
                &mut set,
                deltas,
                &self.anchors,
                |set, w| patch(path, &scan, set, w),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::export::AttrOp;
    use crate::engine::model::ExportOp;

    const FILE: &str = r#"{"dn":"DC=x","type":"domain"}
{"dn":"CN=a,DC=x","type":"user","attrs":{"cn":"a"}}
{"dn":"CN=c,DC=x","type":"user","attrs":{"cn":"c"}}
"#;

    /// A line as serde_json writes the document (what [`push_line`] must write).
    fn serde_line(e: &Entry) -> String {
        use crate::eval::json::to_json;
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

    /// The line's own shape: names escaped and sorted, a name given twice keeping its last
    /// values, one value bare, none or several as an array (each value's JSON form is tested in
    /// `eval::json`).
    #[test]
    fn a_line_is_written_as_serde_json_writes_it() {
        let mut e = Entry::new("CN=\"q\" \\ ü,DC=x", "user\t1");
        e.attrs.push(("s9".into(), vec![Value::str("tab\there")]));
        e.attrs.push((
            "many".into(),
            vec![Value::str("a"), Value::Num(7), Value::bin(vec![0, 255])],
        ));
        e.attrs.push(("none".into(), vec![]));
        e.attrs.push(("num".into(), vec![Value::Num(i64::MIN)]));
        e.attrs.push(("Upper".into(), vec![Value::Bool(false)]));
        e.attrs
            .push(("na\"me".into(), vec![Value::Ref("CN=r".into())]));
        // A name given twice keeps its last values, as a map does.
        e.attrs.push(("num".into(), vec![Value::Num(42)]));
        assert_eq!(line(&e), serde_line(&e));
        let empty = Entry::new("", "");
        assert_eq!(line(&empty), serde_line(&empty));
    }

    #[test]
    fn a_patch_merges_the_new_lines_into_the_file_read_again() {
        let dir = std::env::temp_dir().join(format!("idflow-jsonl-patch-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("t.jsonl");
        std::fs::write(&path, FILE).unwrap();
        let deltas = vec![
            ExportDelta::new(ExportOp::Add, "user", "CN=b,DC=x")
                .with("cn", AttrOp::Replace(Value::from("b"))),
        ];
        let scan = Scan::of(&path, &deltas, &AttrTypes::default()).expect("patchable");
        assert_eq!(scan.kept.len(), 3);
        let mut set = Objects::new();
        ldif::apply_exports(&mut set, &deltas, &Anchors::new());
        let mut out = Vec::new();
        assert_eq!(patch(&path, &scan, &set, &mut out).unwrap(), 4);
        let text = String::from_utf8(out).unwrap();
        let dns: Vec<&str> = text.lines().map(|l| &l[7..16]).collect();
        assert_eq!(dns, ["DC=x\",\"ty", "CN=a,DC=x", "CN=b,DC=x", "CN=c,DC=x"]);
        // The file changed after it was scanned: nothing is written from it.
        std::fs::write(&path, FILE.replace("\"cn\":\"c\"", "\"cn\":\"C\"")).unwrap();
        let e = patch(&path, &scan, &set, &mut Vec::new()).unwrap_err();
        assert!(e.to_string().contains("changed"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
