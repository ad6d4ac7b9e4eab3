//! The LDIF file connector (RFC 2849): a source ([`LdifSource`]) and a target ([`LdifTarget`]).
//!
//! Consumes: an LDIF file — a `version: 1` line, records separated by blank lines, `#`
//! comments, folded lines (a line starting with one space continues the previous one),
//! `name: value` and `name:: base64` attribute lines, attribute options and change records
//! (`changetype: add | delete | modify | modrdn | moddn`). `name:< URL` values are not
//! supported (the record is rejected). Produces: [`ImportChange`]s and, for a target, the
//! rewritten file.
//!
//! Attribute options: a tag option (`cn;lang-ja`, `cn;phonetic`) makes an attribute of its own,
//! named with its options in alphabetical order (`cn;lang-ja;phonetic`), which a schema may
//! declare or leave out like any other attribute; values of different options are never
//! merged. `;binary` (RFC 4522) is a transfer encoding: its values are the base attribute's.
//! `;range=LOW-HIGH` (Active Directory's ranged retrieval, `member;range=0-1499`) gives part of
//! the base attribute's values: a record must give every range up to `*`, else it is rejected
//! (the rest of the values is missing).
//!
//! Object type: the most specific structural object class, which is the last value of
//! `objectClass` (DECISIONS 13); `objectClass` itself is not passed on as an attribute.
//!
//! Values: with an [`AttrTypes`] entry for the attribute, a value becomes the declared type —
//! `bin` (the base64 bytes; a GUID written as text, `objectGUID: f28780cd-1f5e-...` as
//! ldbsearch writes it, is its 16 bytes in Active Directory's order, the first three groups
//! little-endian, as an ldifde export gives them; other text is its bytes), `num` (a 64-bit
//! integer), `bool` (`TRUE`/`FALSE`), `ref` (a DN), `dt` (generalized time
//! `yyyyMMddHHmmss.0Z`, or RFC 3339); a value that does not parse rejects its record. Without a type, text is `str`, and a base64
//! value is `str` when it is valid UTF-8 text without control characters other than tab and
//! line breaks (and the attribute has no `;binary` option), else `bin`. Several values of one
//! attribute (names compare case-insensitively; the first spelling is kept) make a multi-valued
//! value; several values of an attribute the schema declares single-valued are the engine's to
//! report (`engine::import`: a data validation error on the object).
//!
//! Errors: a malformed record (no `dn:`, a line without a colon, bad base64, a value of the
//! wrong type, ...) is skipped and reported as a [`Rejected`] with its line; a file that cannot
//! be read, or that is not LDIF at all (no record starts with `dn:`, an unknown `version`), is
//! a [`ConnectorError`].
//!
//! A full read hands the records over in pages as it reads them, in file order (a DN seen
//! before is a rejected record), so a file is never held whole. A file with change records is
//! applied first, in file order, to a working set that starts empty (content records and adds
//! fill it), as a change may touch any object before it; the objects of the resulting set are
//! handed over afterwards. A delta read applies the file's records to the objects of the
//! source's previous read, which an [`LdifSource`] keeps in memory (a file of change records,
//! replaced between reads): it hands over the objects the records touched (`Upsert`) and the
//! deleted ones (`Delete` by DN); a renamed object is an `Upsert` under its new DN (the engine
//! matches it by anchor). A source that has not read the file yet answers a delta request with
//! a full read, as a target always does. A modify or modrdn of an object that is not in the
//! working set is rejected (the full object is unknown).
//!
//! A target file holds the target directory's content. [`LdifTarget::export`] reads it (a
//! missing file is an empty directory; a file with malformed records is an error and is left
//! alone), applies the engine's export deltas (replace, value add, value remove, clear; a new
//! object whose type has an anchor attribute without a value gets a generated anchor, answered
//! as the add's assigned anchor), answers one result per delta, and replaces the file
//! atomically (temporary file in the same directory, fsync, rename, fsync of the directory):
//! records sorted by DN in tree order (parents first), values base64-encoded unless they are
//! RFC 2849 SAFE-STRINGs (binaries always), lines folded at 76 columns. Reading the file back
//! confirms an export ([`Connector::confirms_by_reimport`]).

use super::{
    Anchors, Connector, ConnectorError, ExportErrorCategory, ExportResult, Hashing, ImportEnd,
    ImportKind, ImportMode, ImportSink, Pager, Rejected, Written,
};
use crate::engine::export::{AttrOp, ExportDelta};
use crate::engine::import::{ImportChange, ImportObject, Known, KnownRecords, RecordDigest};
use crate::engine::model::ExportOp;
use crate::sema::types::Base;
use crate::value::{DateTime, Value};
use base64::Engine as _;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Declared types of attributes: lower-cased attribute name → base type. Attributes that are
/// not in the map are untyped (see the module doc).
pub type AttrTypes = HashMap<String, Base, foldhash::fast::RandomState>;

/// The [`AttrTypes`] of some object types (e.g. `connector.objects.values()` of a schema
/// connector). When two types declare one name differently, the first wins.
pub fn attr_types<'a>(
    objects: impl IntoIterator<Item = &'a crate::sema::schema::ObjectDef>,
) -> AttrTypes {
    let mut out = AttrTypes::default();
    for o in objects {
        for a in o.attrs.values() {
            out.entry(a.name.to_lowercase()).or_insert(a.base);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Entries and records

/// One directory object as an LDIF content record holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub dn: String,
    /// The `objectClass` values in file order; the last one is the object type.
    pub object_classes: Vec<String>,
    /// Attributes (never `objectClass`) in first-seen order, each with its values (never
    /// empty, each a scalar).
    pub attrs: Vec<(String, Vec<Value>)>,
}

impl Entry {
    pub fn new(dn: impl Into<String>, object_type: impl Into<String>) -> Entry {
        Entry {
            dn: dn.into(),
            object_classes: vec![object_type.into()],
            attrs: Vec::new(),
        }
    }

    /// The most specific structural object class: the last `objectClass` value.
    pub fn object_type(&self) -> &str {
        self.object_classes.last().map_or("", String::as_str)
    }

    /// The values of an attribute (name compared case-insensitively).
    pub fn get(&self, name: &str) -> Option<&[Value]> {
        self.attrs
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }

    /// Replaces the values of an attribute; no values removes it.
    pub fn set(&mut self, name: &str, values: Vec<Value>) {
        if name.eq_ignore_ascii_case("objectClass") {
            let classes: Vec<String> = values
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect();
            if !classes.is_empty() {
                self.object_classes = classes;
            }
            return;
        }
        let values = flatten(values);
        match self
            .attrs
            .iter()
            .position(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some(i) if values.is_empty() => {
                self.attrs.remove(i);
            }
            Some(i) => self.attrs[i].1 = values,
            None if values.is_empty() => {}
            None => self.attrs.push((name.to_string(), values)),
        }
    }

    /// Adds values to an attribute (values already present are not added twice).
    pub fn add(&mut self, name: &str, values: Vec<Value>) {
        let mut all = self.get(name).map(<[Value]>::to_vec).unwrap_or_default();
        all.extend(flatten(values));
        dedup_values(&mut all);
        self.set(name, all);
    }

    /// Removes the given values from an attribute (the attribute goes when none is left); a
    /// string and a reference with the same text are one value.
    pub fn remove_values(&mut self, name: &str, values: &[Value]) {
        let gone: HashSet<ValueKey<'_>> = values.iter().filter_map(ValueKey::of).collect();
        let kept: Vec<Value> = self
            .get(name)
            .unwrap_or_default()
            .iter()
            .filter(|v| ValueKey::of(v).is_none_or(|k| !gone.contains(&k)))
            .cloned()
            .collect();
        self.set(name, kept);
    }

    /// The object as the engine imports it: one value is a scalar, several a multi-valued value.
    /// The entry's parts are moved, not copied.
    pub fn into_import_object(mut self) -> ImportObject {
        let object_type = self.object_classes.pop().unwrap_or_default();
        ImportObject {
            dn: self.dn,
            object_type,
            attrs: self
                .attrs
                .into_iter()
                .map(|(n, mut vs)| {
                    let v = if vs.len() == 1 {
                        vs.swap_remove(0)
                    } else {
                        Value::many(vs)
                    };
                    (n, v)
                })
                .collect(),
        }
    }

    /// [`Entry::into_import_object`] of a copy.
    pub fn to_import_object(&self) -> ImportObject {
        self.clone().into_import_object()
    }
}

/// A scalar value as a hash key (equal keys exactly when the values are equal).
#[derive(PartialEq, Eq, Hash)]
enum ValueKey<'a> {
    Str(&'a str),
    Num(i64),
    Bool(bool),
    Bin(&'a [u8]),
    Dt(DateTime),
}

impl<'a> ValueKey<'a> {
    /// None for NULLs and collections (attribute values are neither).
    fn of(v: &'a Value) -> Option<ValueKey<'a>> {
        Some(match v {
            // A reference is stored as its DN's text: the same value as that string.
            Value::Str(s) | Value::Ref(s) => ValueKey::Str(s),
            Value::Num(n) => ValueKey::Num(*n),
            Value::Bool(b) => ValueKey::Bool(*b),
            Value::Bin(b) => ValueKey::Bin(b),
            Value::Dt(d) => ValueKey::Dt(*d),
            _ => return None,
        })
    }
}

/// Drops repeated values, keeping the first of each in order (linear time).
fn dedup_values(values: &mut Vec<Value>) {
    if values.len() < 2 {
        return;
    }
    let keep: Vec<bool> = {
        let mut seen: HashSet<ValueKey<'_>> = HashSet::with_capacity(values.len());
        values
            .iter()
            .map(|v| ValueKey::of(v).is_none_or(|k| seen.insert(k)))
            .collect()
    };
    let mut i = 0;
    values.retain(|_| {
        i += 1;
        keep[i - 1]
    });
}

/// Scalars only, without empty strings (directories do not store them) and NULLs.
fn flatten(values: Vec<Value>) -> Vec<Value> {
    // Most lists hold only scalars to keep: they are kept as they are.
    let kept = |v: &Value| {
        !matches!(v, Value::Many(_)) && !matches!(v, Value::Str(s) if s.is_empty()) && !v.is_null()
    };
    if values.iter().all(kept) {
        return values;
    }
    let mut out = Vec::with_capacity(values.len());
    for v in values {
        match v {
            Value::Many(items) => out.extend(flatten(items.to_vec())),
            Value::Str(s) if s.is_empty() => {}
            v if v.is_null() => {}
            v => out.push(v),
        }
    }
    out
}

/// One modification of a `changetype: modify` record.
#[derive(Debug, Clone, PartialEq)]
pub struct Mod {
    pub op: ModOp,
    pub attr: String,
    pub values: Vec<Value>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModOp {
    /// Adds the values.
    Add,
    /// Removes the values, or the attribute when no values are listed.
    Delete,
    /// Replaces the values (no values removes the attribute).
    Replace,
}

/// One LDIF record.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    /// A content record.
    Content(Entry),
    /// `changetype: add`.
    Add(Entry),
    /// `changetype: delete`.
    Delete { dn: String },
    /// `changetype: modify`.
    Modify { dn: String, mods: Vec<Mod> },
    /// `changetype: modrdn` / `moddn`.
    ModRdn {
        dn: String,
        new_rdn: String,
        delete_old_rdn: bool,
        new_superior: Option<String>,
    },
}

/// A parsed LDIF file.
#[derive(Debug, Clone, Default)]
pub struct Parsed {
    /// The well-formed records with the line of their `dn:`, in file order.
    pub records: Vec<(usize, Record)>,
    /// The malformed records, skipped.
    pub rejected: Vec<Rejected>,
}

// ---------------------------------------------------------------------------------------------
// Parsing

/// A logical line (folded lines joined) with the number of its first physical line.
struct LLine {
    no: usize,
    bytes: Vec<u8>,
    /// A continuation line with no line to continue.
    orphan: bool,
}

/// A raw attribute value: a text as it stands in the line, or decoded base64.
enum Raw<'a> {
    Text(&'a str),
    Base64(Vec<u8>),
}

/// One attribute line: its attribute, whether the `binary` transfer option was given, the
/// range of a ranged value set (`member;range=0-1499`), the value.
struct AttrLine<'a> {
    /// The attribute description without the `binary` and `range=` options: the base name and
    /// its tag options (`cn;lang-ja`), see [`Description`].
    name: String,
    binary: bool,
    range: Option<Range>,
    raw: Raw<'a>,
}

/// The `range=LOW-HIGH` option of Active Directory's ranged retrieval: the values are the
/// ones from LOW to HIGH of the attribute's values (`HIGH` `*`: to the last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Range {
    low: u64,
    high: Option<u64>,
}

impl std::fmt::Display for Range {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.high {
            Some(h) => write!(f, "range={}-{h}", self.low),
            None => write!(f, "range={}-*", self.low),
        }
    }
}

/// An attribute description (RFC 4512 2.5): the base name and its options.
///
/// - Tag options (`lang-ja`, `phonetic`, ...) name an attribute of their own: `cn;lang-ja` is
///   not `cn`, and its values are never merged with those of `cn` or of another option. They
///   are kept in the name, in alphabetical order (options are unordered), with their spelling.
/// - `binary` (RFC 4522) is a transfer encoding, not a tag: it is dropped from the name (the
///   values are those of the base attribute) and marks an untyped value as binary.
/// - `range=LOW-HIGH` is Active Directory's ranged retrieval of large value sets: the values
///   belong to the base attribute; a record must give every range from 0 to `*`.
struct Description {
    name: String,
    binary: bool,
    range: Option<Range>,
}

fn description(desc: &str) -> Result<Description, String> {
    let mut parts = desc.split(';');
    let base = parts.next().unwrap_or_default();
    if base.is_empty() {
        return Err(format!("`{desc}` is not an attribute name"));
    }
    let mut binary = false;
    let mut range = None;
    let mut tags: Vec<&str> = Vec::new();
    for o in parts {
        if o.is_empty() {
            return Err(format!("`{desc}` has an empty option"));
        }
        if o.eq_ignore_ascii_case("binary") {
            binary = true;
        } else if o.len() > 6 && o[..6].eq_ignore_ascii_case("range=") {
            let bad = || format!("`{desc}`: `{o}` is not a range (`range=0-1499`, `range=1500-*`)");
            let (low, high) = o[6..].split_once('-').ok_or_else(bad)?;
            let low = low.parse::<u64>().map_err(|_| bad())?;
            let high = match high {
                "*" => None,
                h => Some(
                    h.parse::<u64>()
                        .ok()
                        .filter(|h| *h >= low)
                        .ok_or_else(bad)?,
                ),
            };
            if range.replace(Range { low, high }).is_some() {
                return Err(format!("`{desc}` has two ranges"));
            }
        } else if !tags.iter().any(|t| t.eq_ignore_ascii_case(o)) {
            tags.push(o);
        }
    }
    tags.sort_by_key(|t| t.to_ascii_lowercase());
    let mut name = base.to_string();
    for t in tags {
        name.push(';');
        name.push_str(t);
    }
    Ok(Description {
        name,
        binary,
        range,
    })
}

/// Parses LDIF text. `source` names the file in errors; `types` types the values.
pub fn parse(bytes: &[u8], source: &str, types: &AttrTypes) -> Result<Parsed, ConnectorError> {
    let mut out = Parsed::default();
    read_records(bytes, source, types, |item| {
        match item {
            Ok(r) => out.records.push(r),
            Err(r) => out.rejected.push(r),
        }
        Ok(())
    })?;
    Ok(out)
}

/// Reads LDIF text record by record as it arrives, handing each well-formed record (with the
/// line of its `dn:`) or malformed one to `each`; an error of `each` stops the read. The text
/// is not LDIF (an error) when it has an unknown `version` or no record starts with `dn:`;
/// the malformed records before the first that does are handed over only once one does.
pub(crate) fn read_records<R: std::io::BufRead>(
    input: R,
    source: &str,
    types: &AttrTypes,
    mut each: impl FnMut(Result<(usize, Record), Rejected>) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    read_records_known(input, source, types, None, |item| match item {
        Ok(Entered::Read(line, r, _)) => each(Ok((line, r))),
        // Never without known records.
        Ok(Entered::Known(..)) => Ok(()),
        Err(r) => each(Err(r)),
    })
}

/// A record as [`read_records_known`] hands it over.
pub(crate) enum Entered {
    /// Read: the line of its `dn:`, the record and, when records are recognised, its digest.
    Read(usize, Record, Option<RecordDigest>),
    /// Recognised by its digest, not read: the line of its `dn:` and the known record.
    Known(usize, Known),
}

/// [`read_records`], recognising records: with `known`, each record that starts with `dn:`
/// is digested (its logical lines, as read, comments left out) and, when the digest is known,
/// handed over as [`Entered::Known`] without being read any further.
pub(crate) fn read_records_known<R: std::io::BufRead>(
    input: R,
    source: &str,
    types: &AttrTypes,
    known: Option<&KnownRecords>,
    mut each: impl FnMut(Result<Entered, Rejected>) -> Result<(), ConnectorError>,
) -> Result<(), ConnectorError> {
    let err = |line: usize, message: String| ConnectorError {
        source: source.to_string(),
        line: Some(line),
        message,
    };
    let mut blocks = Blocks::new(input, source);
    let mut first = true;
    let mut first_line = None;
    let mut saw_dn = false;
    let mut held: Vec<Rejected> = Vec::new();
    while let Some(mut block) = blocks.next_block()? {
        // The version line (it may be followed by the first record without a blank line).
        if std::mem::take(&mut first)
            && let Some(l) = block.first()
            && l.bytes.len() >= 8
            && l.bytes[..8].eq_ignore_ascii_case(b"version:")
        {
            let v = String::from_utf8_lossy(&l.bytes[8..]).trim().to_string();
            if v != "1" {
                return Err(err(
                    l.no,
                    format!("unsupported LDIF version `{v}` (only 1 is)"),
                ));
            }
            block.remove(0);
            if block.is_empty() {
                continue;
            }
        }
        first_line.get_or_insert(block[0].no);
        let with_dn = starts_with_dn(&block);
        if !saw_dn && with_dn {
            saw_dn = true;
            for r in held.drain(..) {
                each(Err(r))?;
            }
        }
        let digest = match known {
            Some(known) if with_dn => {
                let d = known.digest(block.iter().flat_map(|l| {
                    [
                        if l.orphan { &b"\x01"[..] } else { &b"\x00"[..] },
                        &l.bytes[..],
                    ]
                }));
                if let Some(k) = known.find(&d) {
                    each(Ok(Entered::Known(block[0].no, k)))?;
                    continue;
                }
                Some(d)
            }
            _ => None,
        };
        let item = match record(&block, types) {
            Ok(r) => Ok(Entered::Read(block[0].no, r, digest)),
            Err((line, message)) => Err(Rejected {
                source: source.to_string(),
                line,
                message,
            }),
        };
        match item {
            Err(r) if !saw_dn => held.push(r),
            item => each(item)?,
        }
    }
    if let Some(line) = first_line
        && !saw_dn
    {
        return Err(err(
            line,
            "not an LDIF file: no record starts with `dn:`".into(),
        ));
    }
    Ok(())
}

fn starts_with_dn(block: &[LLine]) -> bool {
    block
        .first()
        .is_some_and(|l| l.bytes.len() >= 3 && l.bytes[..3].eq_ignore_ascii_case(b"dn:"))
}

/// The records of LDIF text (blank-line separated) as logical lines, without comments, read
/// as the text arrives.
struct Blocks<'s, R> {
    input: R,
    source: &'s str,
    /// The number of the last physical line read.
    no: usize,
    buf: Vec<u8>,
    cur: Vec<LLine>,
    /// Whether the last logical line was a comment (its continuations are dropped too).
    in_comment: bool,
}

impl<'s, R: std::io::BufRead> Blocks<'s, R> {
    fn new(input: R, source: &'s str) -> Self {
        Blocks {
            input,
            source,
            no: 0,
            buf: Vec::new(),
            cur: Vec::new(),
            in_comment: false,
        }
    }

    /// The next record's lines; `None` at the end of the text.
    fn next_block(&mut self) -> Result<Option<Vec<LLine>>, ConnectorError> {
        loop {
            self.buf.clear();
            let n = self
                .input
                .read_until(b'\n', &mut self.buf)
                .map_err(|e| ConnectorError {
                    source: self.source.to_string(),
                    line: Some(self.no + 1),
                    message: format!("cannot read: {e}"),
                })?;
            if n == 0 {
                return Ok((!self.cur.is_empty()).then(|| std::mem::take(&mut self.cur)));
            }
            self.no += 1;
            let no = self.no;
            let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = if no == 1 {
                line.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(line)
            } else {
                line
            };
            let open = self.in_comment || !self.cur.is_empty();
            if line.is_empty() || (!open && line.iter().all(|b| b.is_ascii_whitespace())) {
                self.in_comment = false;
                if !self.cur.is_empty() {
                    return Ok(Some(std::mem::take(&mut self.cur)));
                }
            } else if line[0] == b' ' {
                if self.in_comment {
                    continue;
                }
                match self.cur.last_mut() {
                    Some(l) => l.bytes.extend_from_slice(&line[1..]),
                    None => self.cur.push(LLine {
                        no,
                        bytes: line[1..].to_vec(),
                        orphan: true,
                    }),
                }
            } else if line[0] == b'#' {
                self.in_comment = true;
            } else {
                self.in_comment = false;
                self.cur.push(LLine {
                    no,
                    bytes: line.to_vec(),
                    orphan: false,
                });
            }
        }
    }
}

/// Whether LDIF text may hold change records (a logical line `changetype:`): those may change
/// any object before them, so such a file is applied whole before it is handed over. A line
/// that is only the start of `changetype:` (folded after it) counts too.
fn has_change_records<R: std::io::BufRead>(
    mut input: R,
    source: &str,
) -> Result<bool, ConnectorError> {
    const KEY: &[u8] = b"changetype:";
    let mut buf = Vec::new();
    let mut no = 0;
    while let Some(line) = super::next_line(&mut input, &mut buf, &mut no, source)? {
        let n = line.len().min(KEY.len());
        if n > 0 && line[..n].eq_ignore_ascii_case(&KEY[..n]) {
            return Ok(true);
        }
    }
    Ok(false)
}

type LineResult<T> = Result<T, (usize, String)>;

fn attr_line(l: &LLine) -> LineResult<AttrLine<'_>> {
    if l.orphan {
        return Err((l.no, "a continuation line with no line to continue".into()));
    }
    let Some(colon) = l.bytes.iter().position(|&b| b == b':') else {
        return Err((
            l.no,
            "expected `name: value` (the line has no colon)".into(),
        ));
    };
    let desc = &l.bytes[..colon];
    let valid = |b: &u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b';' | b'.' | b'_');
    // Active Directory's range option (`member;range=0-*`) has `=` and `*`.
    let options = desc.iter().position(|&b| b == b';').unwrap_or(desc.len());
    let valid_option = |b: &u8| valid(b) || matches!(b, b'=' | b'*');
    if desc.is_empty()
        || !desc[..options].iter().all(valid)
        || !desc[options..].iter().all(valid_option)
    {
        return Err((
            l.no,
            format!(
                "`{}` is not an attribute name",
                String::from_utf8_lossy(desc)
            ),
        ));
    }
    // Checked ASCII above.
    let desc = String::from_utf8_lossy(desc);
    let Description {
        name,
        binary,
        range,
    } = description(&desc).map_err(|m| (l.no, m))?;
    let rest = &l.bytes[colon + 1..];
    let raw = match rest.first() {
        Some(b':') => {
            let bytes = &rest[1..];
            let start = bytes.iter().position(|&b| b != b' ').unwrap_or(bytes.len());
            let bytes = &bytes[start..];
            // Spaces inside the value (rare: folding leaves none) are left out before decoding.
            let decoded = if bytes.contains(&b' ') {
                let text: Vec<u8> = bytes.iter().copied().filter(|&b| b != b' ').collect();
                B64.decode(text)
            } else {
                B64.decode(bytes)
            };
            Raw::Base64(
                decoded.map_err(|e| (l.no, format!("invalid base64 value of `{name}`: {e}")))?,
            )
        }
        Some(b'<') => {
            return Err((
                l.no,
                format!("URL values (`{name}:<`) are not supported; include the value inline"),
            ));
        }
        _ => {
            let start = rest.iter().position(|&b| b != b' ').unwrap_or(rest.len());
            let text = std::str::from_utf8(&rest[start..]).map_err(|_| {
                (
                    l.no,
                    format!(
                        "the value of `{name}` is not valid UTF-8 (write it with `::` in base64)"
                    ),
                )
            })?;
            Raw::Text(text)
        }
    };
    Ok(AttrLine {
        name,
        binary,
        range,
        raw,
    })
}

/// The text of a raw value that must be text (DNs, change-record keywords).
fn raw_text(no: usize, a: AttrLine<'_>) -> LineResult<std::borrow::Cow<'_, str>> {
    match a.raw {
        Raw::Text(s) => Ok(s.into()),
        Raw::Base64(b) => String::from_utf8(b)
            .map(Into::into)
            .map_err(|_| (no, format!("the value of `{}` is not valid UTF-8", a.name))),
    }
}

/// The value of an attribute line (its name, `binary` option and raw value) as the name's
/// declared type.
fn value_of(name: &str, binary: bool, raw: Raw<'_>, types: &AttrTypes) -> Result<Value, String> {
    value_as(name, declared(types, name), binary, raw)
}

/// [`value_of`] for an attribute declared as `base` (looked up already).
fn value_as(name: &str, base: Option<Base>, binary: bool, raw: Raw<'_>) -> Result<Value, String> {
    match raw {
        // A GUID as text (as ldbsearch and Samba's tools write `objectGUID`): its 16 bytes in
        // Active Directory's order, the bytes an ldifde export gives in base64.
        Raw::Text(s) if base == Some(Base::Bin) => Ok(match guid_text(s) {
            Some(bytes) => Value::bin(bytes.to_vec()),
            None => Value::bin(s.as_bytes().to_vec()),
        }),
        Raw::Text(s) => text_value(s, base),
        Raw::Base64(bytes) => match base {
            Some(Base::Bin) => Ok(Value::bin(bytes)),
            None if binary => Ok(Value::bin(bytes)),
            None => Ok(match String::from_utf8(bytes) {
                Ok(s) if is_text(&s) => Value::str(s),
                Ok(s) => Value::bin(s.into_bytes()),
                Err(e) => Value::bin(e.into_bytes()),
            }),
            Some(_) => match String::from_utf8(bytes) {
                Ok(s) => text_value(&s, base),
                Err(_) => Err(format!("the value of `{name}` is not valid UTF-8 text")),
            },
        },
    }
}

/// The bytes of a GUID written as text (`f28780cd-1f5e-4bd8-9a3a-6a1b2c3d4e5f`, with or
/// without braces) in Active Directory's byte order: the first three groups little-endian, as
/// `objectGUID` holds it (`uuid::Uuid::to_bytes_le`). None for any other text.
pub fn guid_text(text: &str) -> Option<[u8; 16]> {
    let t = text.trim();
    let t = t
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(t);
    // Only the hyphenated form: 32 bare hex digits may be any hex-encoded value.
    if t.len() != 36 {
        return None;
    }
    uuid::Uuid::try_parse(t).ok().map(|u| u.to_bytes_le())
}

/// Text: no control characters but tab, line feed and carriage return.
fn is_text(s: &str) -> bool {
    !s.chars()
        .any(|c| c.is_control() && !matches!(c, '\t' | '\n' | '\r'))
}

/// The declared base type of an attribute, when it is one a value can have.
pub(crate) fn declared(types: &AttrTypes, name: &str) -> Option<Base> {
    if name
        .bytes()
        .all(|b| b.is_ascii() && !b.is_ascii_uppercase())
    {
        declared_lower(types, name)
    } else {
        declared_lower(types, &name.to_lowercase())
    }
}

/// [`declared`] for a name in lower case already.
fn declared_lower(types: &AttrTypes, lower: &str) -> Option<Base> {
    types.get(lower).copied().filter(|b| {
        matches!(
            b,
            Base::Str | Base::Num | Base::Bool | Base::Bin | Base::Dt | Base::Ref
        )
    })
}

/// A value from its text form, as `base` (untyped: a string). A binary's text is its bytes.
pub(crate) fn text_value(text: &str, base: Option<Base>) -> Result<Value, String> {
    match base {
        Some(Base::Num) => text
            .trim()
            .parse::<i64>()
            .map(Value::Num)
            .map_err(|_| format!("`{text}` is not an integer")),
        Some(Base::Bool) => match text.trim().to_ascii_uppercase().as_str() {
            "TRUE" => Ok(Value::Bool(true)),
            "FALSE" => Ok(Value::Bool(false)),
            _ => Err(format!("`{text}` is not a boolean (TRUE or FALSE)")),
        },
        Some(Base::Ref) => Ok(Value::Ref(text.into())),
        Some(Base::Dt) => parse_generalized_time(text).map(Value::Dt),
        Some(Base::Bin) => Ok(Value::bin(text.as_bytes().to_vec())),
        _ => Ok(Value::str(text)),
    }
}

/// A date-time in generalized time (`yyyyMMddHHmmss[.f]Z` or with a `±hhmm` offset), or in
/// RFC 3339.
pub fn parse_generalized_time(text: &str) -> Result<DateTime, String> {
    let t = text.trim();
    let bad = || format!("`{text}` is not a generalized time (yyyyMMddHHmmss.0Z)");
    let b = t.as_bytes();
    if b.len() >= 15 && b[..14].iter().all(u8::is_ascii_digit) {
        let (d, rest) = t.split_at(14);
        let (frac, zone) = match rest.strip_prefix(['.', ',']) {
            Some(r) => {
                let n = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
                (&r[..n], &r[n..])
            }
            None => ("", rest),
        };
        let zone = match zone {
            "Z" | "z" => "Z".to_string(),
            z if z.len() == 5
                && (z.starts_with('+') || z.starts_with('-'))
                && z[1..].bytes().all(|c| c.is_ascii_digit()) =>
            {
                format!("{}:{}", &z[..3], &z[3..])
            }
            _ => return Err(bad()),
        };
        let frac = if frac.is_empty() {
            String::new()
        } else {
            format!(".{frac}")
        };
        let rfc = format!(
            "{}-{}-{}T{}:{}:{}{frac}{zone}",
            &d[..4],
            &d[4..6],
            &d[6..8],
            &d[8..10],
            &d[10..12],
            &d[12..14]
        );
        rfc.parse().map_err(|_| bad())
    } else {
        t.parse().map_err(|_| bad())
    }
}

/// A date-time in generalized time, UTC: `yyyyMMddHHmmss.0Z` (fractional seconds when present).
pub fn generalized_time(d: &DateTime) -> String {
    let base = d.strftime("%Y%m%d%H%M%S").to_string();
    let ns = d.subsec_nanosecond();
    if ns == 0 {
        format!("{base}.0Z")
    } else {
        let f = format!("{:09}", ns.unsigned_abs());
        format!("{base}.{}Z", f.trim_end_matches('0'))
    }
}

fn keyword(a: &AttrLine, k: &str) -> bool {
    a.name.eq_ignore_ascii_case(k)
}

/// One record from its logical lines.
fn record(lines: &[LLine], types: &AttrTypes) -> LineResult<Record> {
    let first = &lines[0];
    let a = attr_line(first)?;
    if !keyword(&a, "dn") {
        return Err((first.no, "the record does not start with `dn:`".into()));
    }
    let dn = raw_text(first.no, a)?.trim().to_string();
    if dn.is_empty() {
        return Err((first.no, "empty DN".into()));
    }
    let mut rest = lines[1..].iter().peekable();
    // Controls are accepted and ignored.
    while let Some(l) = rest.peek() {
        if l.bytes.len() >= 8 && l.bytes[..8].eq_ignore_ascii_case(b"control:") {
            rest.next();
        } else {
            break;
        }
    }
    let mut changetype = None;
    if let Some(l) = rest.peek()
        && l.bytes.len() >= 11
        && l.bytes[..11].eq_ignore_ascii_case(b"changetype:")
    {
        let a = attr_line(l)?;
        changetype = Some((l.no, raw_text(l.no, a)?.trim().to_ascii_lowercase()));
        rest.next();
    }
    let rest: Vec<&LLine> = rest.collect();
    match changetype {
        None => content(dn, first.no, &rest, types).map(Record::Content),
        Some((_, ct)) if ct == "add" => content(dn, first.no, &rest, types).map(Record::Add),
        Some((_, ct)) if ct == "delete" => match rest.first() {
            Some(l) => Err((l.no, "a delete record has no other lines".into())),
            None => Ok(Record::Delete { dn }),
        },
        Some((_, ct)) if ct == "modify" => modify(dn, &rest, types),
        Some((_, ct)) if ct == "modrdn" || ct == "moddn" => modrdn(dn, first.no, &rest),
        Some((no, ct)) => Err((
            no,
            format!("unknown changetype `{ct}` (add, delete, modify, modrdn or moddn)"),
        )),
    }
}

fn content(dn: String, dn_line: usize, lines: &[&LLine], types: &AttrTypes) -> LineResult<Entry> {
    let mut e = Entry {
        dn,
        object_classes: Vec::new(),
        attrs: Vec::new(),
    };
    // Lower-cased attribute and class names already seen: each line costs the same however
    // many attributes, values and classes came before it.
    let mut index: crate::engine::model::FastMap<String, usize> =
        crate::engine::model::FastMap::with_capacity_and_hasher(lines.len(), Default::default());
    let mut classes: HashSet<String, foldhash::fast::RandomState> = Default::default();
    // The ranges given of each ranged attribute (lower-cased name): line, range, name.
    let mut ranges: BTreeMap<String, Vec<(usize, Range, String)>> = BTreeMap::new();
    // The line's attribute name in lower case (names are ASCII: `attr_line` checks them).
    let mut lower = String::new();
    for l in lines {
        let a = attr_line(l)?;
        if keyword(&a, "dn") {
            return Err((l.no, "a second `dn:` line in one record".into()));
        }
        if keyword(&a, "changetype") {
            return Err((l.no, "`changetype:` must follow the `dn:` line".into()));
        }
        if keyword(&a, "objectClass") {
            let c = raw_text(l.no, a)?.trim().to_string();
            if !c.is_empty() && classes.insert(c.to_lowercase()) {
                e.object_classes.push(c);
            }
            continue;
        }
        let AttrLine {
            name,
            binary,
            range,
            raw,
        } = a;
        lower.clear();
        lower.push_str(&name);
        lower.make_ascii_lowercase();
        if let Some(r) = range {
            let list = ranges.entry(lower.clone()).or_default();
            // Each value line repeats the description: one entry per range.
            if !list.iter().any(|(_, x, _)| *x == r) {
                list.push((l.no, r, name.clone()));
            }
        }
        let v =
            value_as(&name, declared_lower(types, &lower), binary, raw).map_err(|m| (l.no, m))?;
        // Empty strings are no value.
        if matches!(&v, Value::Str(s) if s.is_empty()) {
            continue;
        }
        match index.get(lower.as_str()) {
            Some(&i) => e.attrs[i].1.push(v),
            None => {
                index.insert(lower.clone(), e.attrs.len());
                e.attrs.push((name, vec![v]));
            }
        }
    }
    if e.object_classes.is_empty() {
        return Err((dn_line, format!("`{}` has no objectClass", e.dn)));
    }
    for list in ranges.values_mut() {
        complete_ranges(list)?;
    }
    // A value given twice is stored once (the first keeps its place).
    for (_, vs) in &mut e.attrs {
        dedup_values(vs);
    }
    Ok(e)
}

/// Checks that the ranges given of an attribute hold all its values: from 0, each range
/// following the one before, the last open (`*`). Anything else is part of the values only
/// (a client that did not fetch the rest), which must not be taken for all of them.
fn complete_ranges(list: &mut [(usize, Range, String)]) -> LineResult<()> {
    list.sort_by_key(|(_, r, _)| r.low);
    let mut next = 0;
    for (i, (no, r, name)) in list.iter().enumerate() {
        let given = format!("{name};{r}");
        let last = i + 1 == list.len();
        if r.low != next || (r.high.is_none() && !last) {
            return Err((
                *no,
                format!(
                    "`{given}` does not follow the ranges before it: the values of `{name}` are given in overlapping or missing ranges"
                ),
            ));
        }
        match r.high {
            Some(h) if last => {
                return Err((
                    *no,
                    format!(
                        "`{given}` holds only part of the values of `{name}` (Active Directory's ranged retrieval): the rest, from {}, is missing; give every range up to `range={}-*`",
                        h + 1,
                        h + 1
                    ),
                ));
            }
            Some(h) => next = h + 1,
            None => {}
        }
    }
    Ok(())
}

fn modify(dn: String, lines: &[&LLine], types: &AttrTypes) -> LineResult<Record> {
    let mut mods = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let l = lines[i];
        let a = attr_line(l)?;
        let op = match a.name.to_ascii_lowercase().as_str() {
            "add" => ModOp::Add,
            "delete" => ModOp::Delete,
            "replace" => ModOp::Replace,
            _ => {
                return Err((
                    l.no,
                    format!(
                        "expected `add:`, `delete:` or `replace:` in a modify record, found `{}:`",
                        a.name
                    ),
                ));
            }
        };
        let attr = raw_text(l.no, a)?.trim().to_string();
        if attr.is_empty() {
            return Err((l.no, "no attribute name after the operation".into()));
        }
        let d = description(&attr).map_err(|m| (l.no, m))?;
        if d.range.is_some() {
            return Err((
                l.no,
                format!(
                    "`{attr}`: a range option names part of a value set, not an attribute to modify"
                ),
            ));
        }
        let attr = d.name;
        let mut values = Vec::new();
        i += 1;
        while i < lines.len() {
            let l = lines[i];
            if l.bytes.trim_ascii_end() == b"-" {
                i += 1;
                break;
            }
            let a = attr_line(l)?;
            if !a.name.eq_ignore_ascii_case(&attr) || a.range.is_some() {
                return Err((
                    l.no,
                    format!(
                        "a value of `{}` inside the modification of `{attr}` (missing `-`?)",
                        a.name
                    ),
                ));
            }
            let v = if attr.eq_ignore_ascii_case("objectClass") {
                Value::str(raw_text(l.no, a)?.trim())
            } else {
                value_of(&a.name, a.binary, a.raw, types).map_err(|m| (l.no, m))?
            };
            values.push(v);
            i += 1;
        }
        mods.push(Mod { op, attr, values });
    }
    Ok(Record::Modify { dn, mods })
}

fn modrdn(dn: String, dn_line: usize, lines: &[&LLine]) -> LineResult<Record> {
    let (mut new_rdn, mut delete_old, mut new_superior) = (None, None, None);
    for l in lines {
        let a = attr_line(l)?;
        let name = a.name.to_ascii_lowercase();
        let text = raw_text(l.no, a)?.trim().to_string();
        match name.as_str() {
            "newrdn" => new_rdn = Some(text),
            "deleteoldrdn" => {
                delete_old = Some(match text.as_str() {
                    "0" => false,
                    "1" => true,
                    _ => return Err((l.no, format!("deleteoldrdn must be 0 or 1, not `{text}`"))),
                })
            }
            "newsuperior" => new_superior = Some(text),
            other => {
                return Err((
                    l.no,
                    format!(
                        "unexpected `{other}:` in a modrdn record (newrdn, deleteoldrdn, newsuperior)"
                    ),
                ));
            }
        }
    }
    let new_rdn = new_rdn
        .filter(|r| !r.is_empty())
        .ok_or((dn_line, "a modrdn record needs `newrdn:`".to_string()))?;
    Ok(Record::ModRdn {
        dn,
        new_rdn,
        delete_old_rdn: delete_old.unwrap_or(true),
        new_superior,
    })
}

// ---------------------------------------------------------------------------------------------
// DNs

/// The key of a DN in a directory: the normalised DN, as the engine compares DNs
/// (`crate::dn::index_key`).
pub(crate) fn dn_key(dn: &str) -> String {
    crate::dn::index_key(dn).into()
}

/// Splits at unescaped occurrences of `sep` (a backslash escapes the next character).
fn split_unescaped(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut escaped = false;
    let mut quoted = false;
    for (i, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + c.len_utf8();
        }
    }
    out.push(&s[start..]);
    out
}

/// The first RDN of a DN and its parent DN (None at the top).
pub(crate) fn split_dn(dn: &str) -> (String, Option<String>) {
    let parts = split_unescaped(dn, ',');
    let rdn = parts[0].trim().to_string();
    if parts.len() == 1 {
        (rdn, None)
    } else {
        let parent: Vec<&str> = parts[1..].iter().map(|p| p.trim()).collect();
        (rdn, Some(parent.join(",")))
    }
}

/// The attribute-value pairs of an RDN (`CN=a+UID=b`), values unescaped.
fn rdn_pairs(rdn: &str) -> Vec<(String, String)> {
    split_unescaped(rdn, '+')
        .into_iter()
        .filter_map(|ava| {
            let (n, v) = ava.split_once('=')?;
            Some((n.trim().to_string(), unescape_dn_value(v.trim())))
        })
        .collect()
}

/// An RDN value without its escapes (`\,` and hex pairs such as `\0A`).
fn unescape_dn_value(v: &str) -> String {
    let v = v
        .strip_prefix('"')
        .and_then(|x| x.strip_suffix('"'))
        .unwrap_or(v);
    let b = v.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok());
            match hex {
                Some(x) => {
                    out.push(x);
                    i += 3;
                }
                None => {
                    out.push(b[i + 1]);
                    i += 2;
                }
            }
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An RDN value escaped for a DN (RFC 4514).
pub fn escape_rdn_value(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    let n = v.chars().count();
    for (i, c) in v.chars().enumerate() {
        match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' | '=' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i + 1 == n => out.push_str("\\ "),
            '\0' => out.push_str("\\00"),
            '\n' => out.push_str("\\0A"),
            '\r' => out.push_str("\\0D"),
            c => out.push(c),
        }
    }
    out
}

/// The place of an object in a file written in tree order: the tree key of its DN, then its
/// DN key (the order of a set by DN key that [`tree_order`] sorts stably).
pub(crate) type TreePosition = (Vec<String>, String);

/// The [`TreePosition`] of a DN.
pub(crate) fn tree_position(dn: &str) -> TreePosition {
    (tree_key(dn), dn_key(dn))
}

/// The sort key of a DN in tree order: its RDNs from the top, lower-cased.
pub(crate) fn tree_key(dn: &str) -> Vec<String> {
    let mut parts: Vec<String> = split_unescaped(dn, ',')
        .into_iter()
        .map(|p| p.trim().to_lowercase())
        .collect();
    parts.reverse();
    parts
}

/// Entries sorted by DN in tree order (parents first, siblings by RDN, case-insensitively).
pub(crate) fn tree_order<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> Vec<&'a Entry> {
    let mut sorted: Vec<(Vec<String>, &Entry)> =
        entries.into_iter().map(|e| (tree_key(&e.dn), e)).collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    sorted.into_iter().map(|(_, e)| e).collect()
}

/// Renames an entry. The values of its RDN attributes follow, for the attributes the entry
/// has: the new RDN value is added, the old one removed with `delete_old`.
fn rename(e: &mut Entry, new_dn: &str, delete_old: bool) {
    let old = rdn_pairs(&split_dn(&e.dn).0);
    let new = rdn_pairs(&split_dn(new_dn).0);
    e.dn = new_dn.trim().to_string();
    let of = |pairs: &[(String, String)], name: &str| -> Vec<String> {
        pairs
            .iter()
            .filter(|(a, _)| a.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
            .collect()
    };
    for (name, values) in &mut e.attrs {
        let (olds, news) = (of(&old, name), of(&new, name));
        if delete_old {
            values.retain(|v| !olds.iter().any(|o| v.as_str() == Some(o.as_str())));
        }
        for n in news {
            if !values.iter().any(|v| v.as_str() == Some(n.as_str())) {
                values.push(Value::str(n));
            }
        }
    }
    e.attrs.retain(|(_, v)| !v.is_empty());
}

// ---------------------------------------------------------------------------------------------
// The working set

/// Objects by DN key, for applying change records and exports.
pub(crate) type Objects = BTreeMap<String, Entry>;

/// The result of applying records to a working set.
struct Applied {
    /// Keys of objects added, changed or renamed (to), in first-touch order (with repeats and
    /// keys no longer touched: see `touched`).
    order: Vec<String>,
    touched: HashSet<String>,
    /// DN keys deleted (and not added again) → the DN.
    deleted: BTreeMap<String, String>,
    rejected: Vec<Rejected>,
}

/// Applies records in order. `full`: the set started empty, and deletes of unknown objects
/// are rejected (in a delta they are passed on).
fn apply(set: &mut Objects, records: Vec<(usize, Record)>, source: &str, full: bool) -> Applied {
    let mut out = Applied {
        order: Vec::new(),
        touched: HashSet::new(),
        deleted: BTreeMap::new(),
        rejected: Vec::new(),
    };
    // Keys added by this read, with their line (a second add of one of them is a duplicate).
    let mut added: HashMap<String, usize> = HashMap::new();
    let touch = |out: &mut Applied, k: &str| {
        out.deleted.remove(k);
        if out.touched.insert(k.to_string()) {
            out.order.push(k.to_string());
        }
    };
    for (line, r) in records {
        let res: Result<(), String> = match r {
            Record::Content(e) | Record::Add(e) => {
                let k = dn_key(&e.dn);
                if let Some(first) = added.get(&k).filter(|_| set.contains_key(&k)) {
                    Err(format!("duplicate DN `{}` (first at line {first})", e.dn))
                } else {
                    added.insert(k.clone(), line);
                    set.insert(k.clone(), e);
                    touch(&mut out, &k);
                    Ok(())
                }
            }
            Record::Delete { dn } => {
                let k = dn_key(&dn);
                if set.remove(&k).is_some() || !full {
                    added.remove(&k);
                    out.touched.remove(&k);
                    out.deleted.insert(k, dn);
                    Ok(())
                } else {
                    Err(format!("delete of `{dn}`: no such object"))
                }
            }
            Record::Modify { dn, mods } => {
                let k = dn_key(&dn);
                let classes = mods
                    .iter()
                    .any(|m| m.attr.eq_ignore_ascii_case("objectClass"));
                match set.get_mut(&k) {
                    None => Err(unknown(&dn, "modify")),
                    // Only a change of objectClass can fail: other changes apply in place (a
                    // copy per record would make many records on one big entry quadratic).
                    Some(e) if !classes && !e.object_classes.is_empty() => {
                        apply_mods(e, mods).map(|()| touch(&mut out, &k))
                    }
                    Some(e) => {
                        let mut e = e.clone();
                        apply_mods(&mut e, mods).map(|()| {
                            set.insert(k.clone(), e);
                            touch(&mut out, &k);
                        })
                    }
                }
            }
            Record::ModRdn {
                dn,
                new_rdn,
                delete_old_rdn,
                new_superior,
            } => {
                let k = dn_key(&dn);
                match set.get(&k).map(|e| e.dn.clone()) {
                    None => Err(unknown(&dn, "modrdn")),
                    Some(cur) => {
                        let parent = new_superior.or_else(|| split_dn(&cur).1);
                        let new_dn = match parent {
                            Some(p) if !p.trim().is_empty() => format!("{new_rdn},{}", p.trim()),
                            _ => new_rdn,
                        };
                        let nk = dn_key(&new_dn);
                        match set.remove(&k) {
                            Some(e) if nk != k && set.contains_key(&nk) => {
                                set.insert(k, e);
                                Err(format!("modrdn of `{dn}`: `{new_dn}` exists"))
                            }
                            Some(mut e) => {
                                rename(&mut e, &new_dn, delete_old_rdn);
                                set.insert(nk.clone(), e);
                                out.touched.remove(&k);
                                if let Some(l) = added.remove(&k) {
                                    added.insert(nk.clone(), l);
                                }
                                touch(&mut out, &nk);
                                Ok(())
                            }
                            None => Err(unknown(&dn, "modrdn")),
                        }
                    }
                }
            }
        };
        if let Err(message) = res {
            out.rejected.push(Rejected {
                source: source.to_string(),
                line,
                message,
            });
        }
    }
    out
}

/// Applies the modifications of one `changetype: modify` record to an entry.
fn apply_mods(e: &mut Entry, mods: Vec<Mod>) -> Result<(), String> {
    let mut res = Ok(());
    for m in mods {
        match m.op {
            ModOp::Add => e.add(&m.attr, m.values),
            ModOp::Replace => e.set(&m.attr, m.values),
            ModOp::Delete if m.values.is_empty() => {
                if m.attr.eq_ignore_ascii_case("objectClass") {
                    res = Err("a modify cannot remove every objectClass".into());
                }
                e.set(&m.attr, Vec::new());
            }
            ModOp::Delete => {
                if m.attr.eq_ignore_ascii_case("objectClass") {
                    e.object_classes.retain(|c| {
                        !m.values
                            .iter()
                            .any(|v| v.as_str().is_some_and(|x| x.eq_ignore_ascii_case(c)))
                    });
                } else {
                    e.remove_values(&m.attr, &m.values);
                }
            }
        }
    }
    if e.object_classes.is_empty() {
        res = Err("a modify cannot remove every objectClass".into());
    }
    res
}

fn unknown(dn: &str, what: &str) -> String {
    format!(
        "{what} of `{dn}`: the object is unknown (not in the previous import and not added earlier in the file)"
    )
}

// ---------------------------------------------------------------------------------------------
// Writing

/// An RFC 2849 SAFE-STRING (written as is; anything else is written in base64).
fn is_safe(s: &str) -> bool {
    let b = s.as_bytes();
    let safe_char = |c: &u8| matches!(c, 0x01..=0x09 | 0x0B..=0x0C | 0x0E..=0x7F);
    b.iter().all(safe_char)
        && !matches!(b.first(), Some(b' ' | b':' | b'<'))
        && b.last() != Some(&b' ')
}

/// Appends one `name<sep>value` line (`sep` is `: ` or `:: `), the value written by `put`,
/// folded at 76 columns. Written in place: no line is formatted apart.
fn push_line(out: &mut String, name: &str, sep: &str, put: impl FnOnce(&mut String)) {
    const WIDTH: usize = 76;
    let start = out.len();
    out.push_str(name);
    out.push_str(sep);
    put(out);
    if out.len() - start <= WIDTH {
        out.push('\n');
        return;
    }
    let line = out.split_off(start);
    let mut col = 0;
    let mut limit = WIDTH;
    for c in line.chars() {
        if col + c.len_utf8() > limit {
            out.push_str("\n ");
            col = 1;
            limit = WIDTH;
        }
        out.push(c);
        col += c.len_utf8();
    }
    out.push('\n');
}

fn push_text(out: &mut String, name: &str, text: &str) {
    if is_safe(text) {
        push_line(out, name, ": ", |o| o.push_str(text));
    } else {
        push_line(out, name, ":: ", |o| B64.encode_string(text.as_bytes(), o));
    }
}

fn write_value(out: &mut String, name: &str, v: &Value) {
    use std::fmt::Write as _;
    match v {
        Value::Str(s) | Value::Ref(s) => push_text(out, name, s),
        Value::Bin(b) => push_line(out, name, ":: ", |o| B64.encode_string(b, o)),
        // Writing into a string does not fail.
        Value::Num(n) => push_line(out, name, ": ", |o| {
            let _ = write!(o, "{n}");
        }),
        Value::Bool(b) => push_line(out, name, ": ", |o| {
            o.push_str(if *b { "TRUE" } else { "FALSE" })
        }),
        Value::Dt(d) => push_line(out, name, ": ", |o| o.push_str(&generalized_time(d))),
        Value::Many(items) => items.iter().for_each(|i| write_value(out, name, i)),
        Value::Null | Value::AuthoritativeNull | Value::IgnoreThisFlow => {}
    }
}

/// Appends one content record (no separating blank line).
pub fn write_entry(out: &mut String, e: &Entry) {
    push_text(out, "dn", &e.dn);
    for c in &e.object_classes {
        push_text(out, "objectClass", c);
    }
    for (n, vs) in &e.attrs {
        for v in vs {
            write_value(out, n, v);
        }
    }
}

/// LDIF content records of `entries`, sorted by DN in tree order (parents first), after a
/// `version: 1` line.
pub fn write_ldif<'a>(entries: impl IntoIterator<Item = &'a Entry>) -> String {
    let mut out = String::new();
    // Writing into a string does not fail.
    let _ = write_ldif_to(entries, &mut out);
    out
}

/// [`write_ldif`] into `out`, an entry at a time.
pub(crate) fn write_ldif_to<'a>(
    entries: impl IntoIterator<Item = &'a Entry>,
    out: &mut dyn std::fmt::Write,
) -> std::fmt::Result {
    out.write_str("version: 1\n")?;
    let mut text = String::new();
    for e in tree_order(entries) {
        text.clear();
        text.push('\n');
        write_entry(&mut text, e);
        out.write_str(&text)?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Files

pub(crate) fn io_error(path: &Path, what: &str, e: &std::io::Error) -> ConnectorError {
    ConnectorError {
        source: path.display().to_string(),
        line: None,
        message: format!("{what}: {e}"),
    }
}

/// Replaces the file at `path` with `data` atomically (see [`crate::files::write_atomic`]: a
/// temporary file beside the real file, symbolic links followed, a hard-linked file refused).
/// On any error the old file is untouched.
pub fn write_atomic(path: &Path, data: &[u8]) -> Result<(), ConnectorError> {
    write_atomic_with(path, |w| w.write_all(data))
}

/// [`write_atomic`] of the bytes `fill` writes (see [`crate::files::write_atomic_with`]).
fn write_atomic_with(
    path: &Path,
    fill: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> Result<(), ConnectorError> {
    crate::files::write_atomic_with(path, fill).map_err(|e| ConnectorError {
        source: e.path.display().to_string(),
        line: None,
        message: e.message,
    })
}

/// Opens a file for reading; `None` when it does not exist.
pub(crate) fn open_file(
    path: &Path,
) -> Result<Option<std::io::BufReader<std::fs::File>>, ConnectorError> {
    match std::fs::File::open(path) {
        Ok(f) => Ok(Some(std::io::BufReader::new(f))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(path, "cannot read", &e)),
    }
}

/// The error of a source file that does not exist.
pub(crate) fn missing(path: &Path) -> ConnectorError {
    ConnectorError {
        source: path.display().to_string(),
        line: None,
        message: "cannot read: the file does not exist".into(),
    }
}

/// Reads and applies an LDIF file from an empty set. `missing_ok`: a missing file is empty.
pub(crate) fn load(
    path: &Path,
    types: &AttrTypes,
    missing_ok: bool,
) -> Result<(Objects, Vec<Rejected>), ConnectorError> {
    let source = path.display().to_string();
    let input = match open_file(path)? {
        Some(f) => f,
        None if missing_ok => return Ok((Objects::new(), Vec::new())),
        None => return Err(missing(path)),
    };
    let parsed = parse_from(input, &source, types)?;
    let mut set = Objects::new();
    let applied = apply(&mut set, parsed.records, &source, true);
    let mut rejected = parsed.rejected;
    rejected.extend(applied.rejected);
    rejected.sort_by_key(|r| r.line);
    Ok((set, rejected))
}

/// [`parse`] of a reader.
fn parse_from<R: std::io::BufRead>(
    input: R,
    source: &str,
    types: &AttrTypes,
) -> Result<Parsed, ConnectorError> {
    let mut out = Parsed::default();
    read_records(input, source, types, |item| {
        match item {
            Ok(r) => out.records.push(r),
            Err(r) => out.rejected.push(r),
        }
        Ok(())
    })?;
    Ok(out)
}

/// A full read of an LDIF file into `sink`, in pages. Content records are handed over as they
/// are read (in file order; a DN seen before is a rejected record); a file with change records
/// is applied whole first, as a change may touch any object before it. `missing_ok`: a missing
/// file is an empty directory. `known`: also keep the objects read (an LDIF source's working
/// set for its next delta read). `recognise`: the records the connector space's objects were
/// read from ([`Connector::recognise`]; not with `known`, which needs every object read).
fn import_full(
    path: &Path,
    types: &AttrTypes,
    missing_ok: bool,
    sink: &mut dyn ImportSink,
    mut known: Option<&mut Objects>,
    recognise: Option<&KnownRecords>,
) -> Result<ImportEnd, ConnectorError> {
    let source = path.display().to_string();
    let Some(scan) = open_file(path)? else {
        if missing_ok {
            if let Some(k) = known {
                k.clear();
            }
            return Ok(ImportEnd::full());
        }
        return Err(missing(path));
    };
    let changes = has_change_records(scan, &source)?;
    let input = open_file(path)?.ok_or_else(|| missing(path))?;
    let mut pager = Pager::new(sink);
    if changes {
        let parsed = parse_from(input, &source, types)?;
        let mut set = Objects::new();
        let applied = apply(&mut set, parsed.records, &source, true);
        let mut rejected = parsed.rejected;
        rejected.extend(applied.rejected);
        rejected.sort_by_key(|r| r.line);
        for r in rejected {
            pager.reject(r);
        }
        for e in set.values() {
            pager.push(ImportChange::Upsert(e.to_import_object()))?;
        }
        pager.flush()?;
        if let Some(k) = known {
            *k = set;
        }
        return Ok(ImportEnd::full());
    }
    if let Some(k) = known.as_deref_mut() {
        k.clear();
    }
    // The line of each DN key read (the keys of recognised records borrowed from them).
    let mut lines_of: crate::engine::model::FastMap<std::borrow::Cow<'_, str>, usize> =
        Default::default();
    let recognise = recognise.filter(|_| known.is_none());
    read_records_known(input, &source, types, recognise, |item| {
        let (line, e, digest) = match item {
            Err(r) => {
                pager.reject(r);
                return Ok(());
            }
            Ok(Entered::Known(line, k)) => {
                let Some(recognise) = recognise else {
                    return Ok(());
                };
                let key = recognise.dn_key(k);
                if let Some(first) = lines_of.get(key) {
                    pager.reject(Rejected {
                        source: source.clone(),
                        line,
                        message: format!(
                            "duplicate DN `{}` (first at line {first})",
                            recognise.dn(k)
                        ),
                    });
                    return Ok(());
                }
                lines_of.insert(key.into(), line);
                return pager.push(ImportChange::Unchanged(k));
            }
            Ok(Entered::Read(line, Record::Content(e) | Record::Add(e), digest)) => {
                (line, e, digest)
            }
            Ok(Entered::Read(line, ..)) => {
                pager.reject(Rejected {
                    source: source.clone(),
                    line,
                    message: "a change record in a file that had none when the read began (the file changed while it was read)".into(),
                });
                return Ok(());
            }
        };
        let k = dn_key(&e.dn);
        if let Some(first) = lines_of.get(k.as_str()) {
            pager.reject(Rejected {
                source: source.clone(),
                line,
                message: format!("duplicate DN `{}` (first at line {first})", e.dn),
            });
            return Ok(());
        }
        let change = match known.as_deref_mut() {
            Some(known) => {
                let change = ImportChange::Upsert(e.to_import_object());
                lines_of.insert(k.clone().into(), line);
                known.insert(k, e);
                change
            }
            None => {
                lines_of.insert(k.into(), line);
                match digest {
                    Some(d) => ImportChange::Record(d, e.into_import_object()),
                    None => ImportChange::Upsert(e.into_import_object()),
                }
            }
        };
        pager.push(change)
    })?;
    pager.flush()?;
    Ok(ImportEnd::full())
}

/// Exports to a target file whose content was `loaded`: a file with a malformed `unit` (record,
/// line) is not rewritten; otherwise the deltas are applied and, when one applied, the file is
/// replaced atomically with `render` of the new content. New objects of the types in `anchors`
/// get a generated anchor when the delta gives them none. Returns one result per delta and,
/// when the file was rewritten without a rename and the export touched at most a quarter of
/// its objects, what a read of it would now show differently ([`Connector::take_written`]):
/// each written object as `reread` reads its written form back, each deleted one by DN.
pub(crate) fn export_file(
    path: &Path,
    loaded: (Objects, Vec<Rejected>),
    unit: &str,
    deltas: &[ExportDelta],
    anchors: &Anchors,
    render: impl FnOnce(&Objects, &mut dyn std::io::Write) -> std::io::Result<()>,
    reread: impl Fn(&Entry) -> Result<Entry, String>,
) -> Result<(Vec<ExportResult>, Option<Written>), ConnectorError> {
    let (mut set, rejected) = loaded;
    if let Some(r) = rejected.first() {
        return Err(ConnectorError {
            source: r.source.clone(),
            line: Some(r.line),
            message: format!(
                "the target file has a malformed {unit} ({}); it is not rewritten",
                r.message
            ),
        });
    }
    export_objects(
        path,
        &mut set,
        deltas,
        anchors,
        |set, w| {
            render(set, w)?;
            Ok(set.len())
        },
        reread,
    )
}

/// Applies the deltas to `set`, which holds every object of the target file that a delta names
/// (by its DN or the DN it renames to), and, when one applied, replaces the file atomically
/// with the text `render` writes of the new `set` (it answers the number of objects the file
/// then holds). Returns what [`export_file`] returns.
pub(crate) fn export_objects(
    path: &Path,
    set: &mut Objects,
    deltas: &[ExportDelta],
    anchors: &Anchors,
    render: impl FnOnce(&Objects, &mut dyn std::io::Write) -> std::io::Result<usize>,
    reread: impl Fn(&Entry) -> Result<Entry, String>,
) -> Result<(Vec<ExportResult>, Option<Written>), ConnectorError> {
    let results = apply_exports(set, deltas, anchors);
    let applied: Vec<&ExportDelta> = deltas
        .iter()
        .zip(&results)
        .filter(|(_, r)| matches!(r, ExportResult::Applied { .. }))
        .map(|(d, _)| d)
        .collect();
    if applied.is_empty() {
        return Ok((results, None));
    }
    let mut total = 0;
    let mut hash = <sha2::Sha256 as sha2::Digest>::new();
    write_atomic_with(path, |w| {
        total = render(
            set,
            &mut Hashing {
                out: w,
                hash: &mut hash,
            },
        )?;
        Ok(())
    })?;
    let renamed = applied.iter().any(|d| {
        d.new_dn
            .as_deref()
            .is_some_and(|n| dn_key(n) != dn_key(&d.dn))
    });
    // Reading an object back costs about what reading it in the file does: when the export
    // touched much of the file, the whole read streams the same work with less memory.
    let few = applied.len().saturating_mul(WRITTEN_SHARE) <= total.max(1);
    let written = (!renamed && few)
        .then(|| written_changes(set, &applied, reread))
        .flatten()
        .map(|changes| Written {
            changes,
            fingerprint: sha2::Digest::finalize(hash).to_vec(),
        });
    Ok((results, written))
}

/// An export that touched at most one object in this many of its file is confirmed by what it
/// wrote, read back; a larger one by reading the whole file.
const WRITTEN_SHARE: usize = 4;

/// The changes a read of the rewritten file shows for the `applied` deltas (None when one
/// written object does not read back).
fn written_changes(
    set: &Objects,
    applied: &[&ExportDelta],
    reread: impl Fn(&Entry) -> Result<Entry, String>,
) -> Option<Vec<ImportChange>> {
    let mut seen = HashSet::new();
    let mut out = Vec::with_capacity(applied.len());
    for d in applied {
        let k = dn_key(&d.dn);
        if !seen.insert(k.clone()) {
            continue;
        }
        match set.get(&k) {
            Some(e) => out.push(ImportChange::Upsert(reread(e).ok()?.to_import_object())),
            None => out.push(ImportChange::delete_dn(d.dn.trim())),
        }
    }
    Some(out)
}

/// Applies export deltas to a set of objects, one result per delta: adds of an existing DN and
/// updates or deletes of a missing one fail; the others are applied (an add answers the anchor
/// the object has, when its type's anchor is an attribute).
pub(crate) fn apply_exports(
    set: &mut Objects,
    deltas: &[ExportDelta],
    anchors: &Anchors,
) -> Vec<ExportResult> {
    deltas
        .iter()
        .map(|d| apply_export_to(set, d, anchors))
        .collect()
}

/// Applies one attribute change to an entry: a replace sets the values, a clear removes the
/// attribute, an add and a remove change only the values they name.
fn apply_change(e: &mut Entry, name: &str, op: &AttrOp) {
    match op {
        AttrOp::Replace(Value::IgnoreThisFlow) => {}
        AttrOp::Replace(v) => e.set(name, v.values().to_vec()),
        AttrOp::Clear => e.set(name, Vec::new()),
        AttrOp::Add(values) => e.add(name, values.clone()),
        AttrOp::Remove(values) => e.remove_values(name, values),
    }
}

/// Applies an update (its new DN, when it has one, and its attribute changes) to the entry
/// it names.
pub(crate) fn update_entry(e: &mut Entry, c: &ExportDelta) {
    if let Some(nd) = c.new_dn.as_deref().filter(|d| !d.trim().is_empty()) {
        rename(e, nd, true);
    }
    // An entry read whole has no room to spare: it grows by what the delta may add, not by
    // doubling.
    e.attrs.reserve_exact(c.changes.len());
    for ch in &c.changes {
        apply_change(e, &ch.attr, &ch.op);
    }
}

/// Applies one delta to a set of objects and answers its result (see [`apply_exports`]).
pub(crate) fn apply_export_to(
    set: &mut Objects,
    d: &ExportDelta,
    anchors: &Anchors,
) -> ExportResult {
    match apply_export(set, d, anchors) {
        Ok(anchor) => ExportResult::Applied { anchor },
        Err((category, detail)) => ExportResult::Failed {
            category,
            detail: detail.to_string(),
        },
    }
}

/// Applies one delta; for an add, the value of the type's anchor attribute.
fn apply_export(
    set: &mut Objects,
    c: &ExportDelta,
    anchors: &Anchors,
) -> Result<Option<Value>, (ExportErrorCategory, String)> {
    use ExportErrorCategory as Category;
    let k = dn_key(&c.dn);
    if k.is_empty() {
        return Err((Category::InvalidDn, "empty DN".into()));
    }
    match c.kind {
        ExportOp::Add => {
            if set.contains_key(&k) {
                return Err((
                    Category::AlreadyExists,
                    "an object with this DN already exists".into(),
                ));
            }
            if c.object_type.is_empty() {
                return Err((Category::ConstraintViolation, "no object type".into()));
            }
            let mut e = Entry::new(c.dn.trim(), &*c.object_type);
            e.attrs.reserve_exact(c.changes.len());
            for ch in &c.changes {
                if !ch.attr.eq_ignore_ascii_case("objectClass") {
                    apply_change(&mut e, &ch.attr, &ch.op);
                }
            }
            // The target stands for a directory that assigns anchors to new objects.
            let attr = anchors.get(&c.object_type.to_lowercase());
            if let Some(a) = attr
                && e.get(a).is_none()
            {
                e.set(a, vec![super::generated_anchor(&c.object_type, &c.dn)]);
            }
            let anchor = attr.and_then(|a| e.get(a)).and_then(|v| v.first()).cloned();
            set.insert(k, e);
            Ok(anchor)
        }
        ExportOp::Update => {
            if !set.contains_key(&k) {
                return Err((Category::NoSuchObject, "no object with this DN".into()));
            }
            let mut nk = k.clone();
            let new_dn = c.new_dn.as_deref().filter(|d| !d.trim().is_empty());
            if let Some(nd) = new_dn {
                nk = dn_key(nd);
                if nk != k && set.contains_key(&nk) {
                    return Err((
                        Category::AlreadyExists,
                        format!("cannot rename to `{nd}`: an object with that DN exists"),
                    ));
                }
            }
            // The entry is changed where it is (taken out only when its DN changes).
            let e = if nk == k {
                set.get_mut(&k)
            } else {
                set.remove(&k).map(|e| set.entry(nk).or_insert(e))
            }
            .ok_or((Category::NoSuchObject, "no object with this DN".to_string()))?;
            update_entry(e, c);
            Ok(None)
        }
        ExportOp::Delete => {
            set.remove(&k)
                .ok_or((Category::NoSuchObject, "no object with this DN".to_string()))?;
            Ok(None)
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The connectors

/// An LDIF file as a source (read-only).
#[derive(Debug, Clone)]
pub struct LdifSource {
    pub path: PathBuf,
    pub types: AttrTypes,
    /// The objects of the last read: what the change records of a delta read apply to.
    known: Objects,
    /// Whether this instance has read the file (a delta read needs the objects of a read).
    primed: bool,
}

impl LdifSource {
    /// A source reading `path`, untyped.
    pub fn new(path: impl Into<PathBuf>) -> LdifSource {
        LdifSource {
            path: path.into(),
            types: AttrTypes::default(),
            known: Objects::new(),
            primed: false,
        }
    }

    /// With declared attribute types.
    pub fn with_types(mut self, types: AttrTypes) -> LdifSource {
        self.types = types;
        self
    }

    /// The records of the file applied to the objects of the previous read: the touched
    /// objects as `Upsert`, the deleted ones as `Delete` by DN.
    fn import_delta(&mut self, sink: &mut dyn ImportSink) -> Result<ImportEnd, ConnectorError> {
        let source = self.path.display().to_string();
        let input = open_file(&self.path)?.ok_or_else(|| missing(&self.path))?;
        let parsed = parse_from(input, &source, &self.types)?;
        let mut set = self.known.clone();
        let applied = apply(&mut set, parsed.records, &source, false);
        let mut rejected = parsed.rejected;
        rejected.extend(applied.rejected);
        rejected.sort_by_key(|r| r.line);
        let mut pager = Pager::new(sink);
        for r in rejected {
            pager.reject(r);
        }
        let mut seen = HashSet::new();
        for k in &applied.order {
            if applied.touched.contains(k)
                && seen.insert(k)
                && let Some(e) = set.get(k)
            {
                pager.push(ImportChange::Upsert(e.to_import_object()))?;
            }
        }
        for dn in applied.deleted.into_values() {
            pager.push(ImportChange::delete_dn(dn))?;
        }
        pager.flush()?;
        self.known = set;
        Ok(ImportEnd {
            kind: ImportKind::Delta,
            watermark: None,
        })
    }
}

impl Connector for LdifSource {
    fn source_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    /// A full read: every object of the file (change records applied in order to the content
    /// before them). A delta read, once this instance has read the file: the file's records
    /// applied to the objects of that read (a file of change records, replaced between reads);
    /// before, a delta request is answered with a full read.
    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        if matches!(mode, ImportMode::Delta { .. }) && self.primed {
            return self.import_delta(sink);
        }
        let end = import_full(
            &self.path,
            &self.types,
            false,
            sink,
            Some(&mut self.known),
            None,
        )?;
        self.primed = true;
        Ok(end)
    }

    fn export(&mut self, _deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        Err(ConnectorError {
            source: self.path.display().to_string(),
            line: None,
            message: "an LDIF source is read-only (use an LDIF target to export)".into(),
        })
    }

    fn confirms_by_reimport(&self) -> bool {
        true
    }
}

/// An LDIF file as a target: it holds the target directory's content.
#[derive(Debug, Clone)]
pub struct LdifTarget {
    pub path: PathBuf,
    /// Types for reading the file back.
    pub types: AttrTypes,
    /// The anchor attributes it assigns to new objects, by type.
    pub anchors: Anchors,
    /// What the last export changed, as a read shows it ([`Connector::take_written`]).
    written: Option<Written>,
    /// The records to recognise in the next import ([`Connector::recognise`]).
    recognise: Option<Arc<KnownRecords>>,
}

impl LdifTarget {
    pub fn new(path: impl Into<PathBuf>) -> LdifTarget {
        LdifTarget {
            path: path.into(),
            types: AttrTypes::default(),
            anchors: Anchors::new(),
            written: None,
            recognise: None,
        }
    }

    pub fn with_types(mut self, types: AttrTypes) -> LdifTarget {
        self.types = types;
        self
    }

    /// Assigns anchors (`connector::generated_anchor`) to new objects of these types.
    pub fn with_anchors(mut self, anchors: Anchors) -> LdifTarget {
        self.anchors = anchors;
        self
    }
}

impl Connector for LdifTarget {
    fn source_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    /// A full read of the file's objects (a missing file is an empty directory); a delta
    /// request is answered with a full read.
    fn import(
        &mut self,
        _mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        let recognise = self.recognise.take();
        import_full(
            &self.path,
            &self.types,
            true,
            sink,
            None,
            recognise.as_deref(),
        )
    }

    fn recognises_records(&self) -> bool {
        true
    }

    fn recognise(&mut self, known: Arc<KnownRecords>) {
        self.recognise = Some(known);
    }

    /// Applies the deltas to the file's content and replaces the file atomically, one result
    /// per delta; the file is rewritten only when one applied.
    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        self.written = None;
        let render: super::streamed::Render<'_> = &|e, text| {
            text.push('\n');
            write_entry(text, e);
        };
        if let Some(results) = super::streamed::adds_into_new_file(
            &self.path,
            deltas,
            &self.anchors,
            "version: 1\n",
            render,
        )? {
            return Ok(results);
        }
        if let Some(results) =
            super::streamed::updates_in_place(&self.path, &self.types, deltas, WRITTEN_SHARE)?
        {
            return Ok(results);
        }
        let loaded = load(&self.path, &self.types, true)?;
        let source = self.path.display().to_string();
        let types = &self.types;
        let (results, written) = export_file(
            &self.path,
            loaded,
            "record",
            deltas,
            &self.anchors,
            |set, w| crate::files::render_into(w, |t| write_ldif_to(set.values(), t)),
            |e| reread(e, &source, types),
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

/// An entry as a read of its LDIF form shows it.
fn reread(e: &Entry, source: &str, types: &AttrTypes) -> Result<Entry, String> {
    let mut text = String::new();
    write_entry(&mut text, e);
    let mut parsed = parse(text.as_bytes(), source, types).map_err(|e| e.to_string())?;
    match parsed.records.pop() {
        Some((_, Record::Content(e) | Record::Add(e)))
            if parsed.records.is_empty() && parsed.rejected.is_empty() =>
        {
            Ok(e)
        }
        _ => Err(format!("`{}` does not read back as one entry", e.dn)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(s: &str) -> Parsed {
        parse(s.as_bytes(), "t.ldif", &AttrTypes::default()).unwrap()
    }

    #[test]
    fn folds_and_unfolds() {
        let long = "x".repeat(200);
        let mut out = String::new();
        push_text(&mut out, "description", &long);
        assert!(out.lines().all(|l| l.len() <= 76), "{out}");
        let text = format!("dn: CN=a\nobjectClass: user\n{out}");
        let p = parse_str(&text);
        let Record::Content(e) = &p.records[0].1 else {
            panic!()
        };
        assert_eq!(e.get("description").unwrap()[0], Value::str(long));
    }

    #[test]
    fn every_kind_of_value_is_written_in_lines_of_76_and_read_back() {
        let mut out = String::new();
        // 72 bytes of value after `cn: `: 76 in all, not folded; one more byte folds.
        push_text(&mut out, "cn", &"a".repeat(72));
        assert_eq!(out, format!("cn: {}\n", "a".repeat(72)));
        out.clear();
        push_text(&mut out, "cn", &"a".repeat(73));
        assert_eq!(out, format!("cn: {}\n a\n", "a".repeat(72)));
        let mut e = Entry::new("CN=ü,DC=x", "user");
        e.attrs = vec![
            ("description".into(), vec![Value::str("é".repeat(60))]),
            (
                "photo".into(),
                vec![Value::bin((0..=255).collect::<Vec<u8>>())],
            ),
            ("count".into(), vec![Value::Num(i64::MIN), Value::Num(7)]),
            ("flag".into(), vec![Value::Bool(true), Value::Bool(false)]),
            (
                "note".into(),
                vec![Value::str(" lead"), Value::str("x".repeat(150))],
            ),
        ];
        out.clear();
        write_entry(&mut out, &e);
        assert!(out.lines().all(|l| l.len() <= 76), "{out}");
        assert!(
            out.starts_with("dn:: Q049w7wsREM9eA==\nobjectClass: user\n"),
            "{out}"
        );
        assert!(out.contains("\ncount: -9223372036854775808\ncount: 7\nflag: TRUE\nflag: FALSE\n"));
        let p = parse_str(&out);
        let Record::Content(back) = &p.records[0].1 else {
            panic!("{out}")
        };
        assert_eq!(back.dn, e.dn);
        assert_eq!(back.get("description").unwrap(), &e.attrs[0].1[..]);
        assert_eq!(back.get("photo").unwrap(), &e.attrs[1].1[..]);
        assert_eq!(back.get("note").unwrap(), &e.attrs[4].1[..]);
        // Read without declared types: numbers and booleans as their text.
        let text = |name: &str| -> Vec<Value> { back.get(name).unwrap().to_vec() };
        assert_eq!(
            text("count"),
            [Value::str("-9223372036854775808"), Value::str("7")]
        );
        assert_eq!(text("flag"), [Value::str("TRUE"), Value::str("FALSE")]);
    }

    #[test]
    fn base64_values_read_with_spaces_before_and_inside() {
        let p = parse_str(
            "dn: CN=a\nobjectClass: user\nphoto::   AAEC AwQ=\nnote:: aMOp\n bGxv\nempty::\n",
        );
        let Record::Content(e) = &p.records[0].1 else {
            panic!("{:?}", p.rejected)
        };
        assert_eq!(e.get("photo").unwrap(), &[Value::bin(vec![0, 1, 2, 3, 4])]);
        assert_eq!(e.get("note").unwrap(), &[Value::str("héllo")]);
        assert!(e.get("empty").is_none());
        let bad = parse_str("dn: CN=a\nobjectClass: user\nphoto:: @@@\n");
        assert!(bad.records.is_empty());
        assert!(
            bad.rejected[0]
                .message
                .contains("invalid base64 value of `photo`"),
            "{:?}",
            bad.rejected
        );
    }

    #[test]
    fn safe_strings() {
        assert!(is_safe("hello world"));
        assert!(is_safe(""));
        assert!(!is_safe(" lead"));
        assert!(!is_safe(":colon"));
        assert!(!is_safe("<url"));
        assert!(!is_safe("trail "));
        assert!(!is_safe("é"));
        assert!(!is_safe("a\nb"));
    }

    #[test]
    fn generalized_times() {
        let d = parse_generalized_time("20240102030405.0Z").unwrap();
        assert_eq!(generalized_time(&d), "20240102030405.0Z");
        let d = parse_generalized_time("20240102030405+0100").unwrap();
        assert_eq!(generalized_time(&d), "20240102020405.0Z");
        assert!(parse_generalized_time("2024").is_err());
        let d = parse_generalized_time("2024-01-02T03:04:05.5Z").unwrap();
        assert_eq!(generalized_time(&d), "20240102030405.5Z");
    }

    #[test]
    fn dn_helpers() {
        assert_eq!(
            split_dn("CN=a\\,b,OU=x, DC=y"),
            ("CN=a\\,b".to_string(), Some("OU=x,DC=y".to_string()))
        );
        assert_eq!(
            rdn_pairs("CN=J\\0ACNF:1"),
            vec![("CN".into(), "J\nCNF:1".into())]
        );
        assert_eq!(escape_rdn_value(" a,b "), "\\ a\\,b\\ ");
        assert!(tree_key("DC=com") < tree_key("CN=x,DC=com"));
    }

    #[test]
    fn rejects_url_values_with_their_line() {
        let p = parse_str("dn: CN=a\nobjectClass: user\njpegPhoto:< file:///x\n");
        assert!(p.records.is_empty());
        assert_eq!(p.rejected[0].line, 3);
        assert!(p.rejected[0].message.contains("not supported"));
    }

    #[test]
    fn not_ldif_is_an_error() {
        let e = parse(b"id,name\n1,x\n", "x.csv", &AttrTypes::default()).unwrap_err();
        assert_eq!(e.line, Some(1));
        let e = parse(b"version: 2\n", "x", &AttrTypes::default()).unwrap_err();
        assert_eq!(e.line, Some(1));
    }
}
