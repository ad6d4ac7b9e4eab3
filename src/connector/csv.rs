//! The CSV file connector: a source only (an HR feed).
//!
//! Consumes: a CSV file with a header row (RFC 4180 quoting, a UTF-8 byte-order mark is
//! ignored) and the settings of [`CsvSource`]. Produces: one `Upsert` per row, with the DN
//! built from `dn_template` and the attributes from the columns, handed to the sink in pages
//! as the rows are read (every import is a full read). A row an object was read from and that
//! has not changed since is recognised by its digest and passed on unparsed
//! ([`Connector::recognise`]).
//!
//! Each non-empty field is a value of the column's attribute (the name given in `columns`, else
//! the column name), typed by `types` like an LDIF value (`num`, `bool` `TRUE`/`FALSE`, `ref`,
//! `dt` generalized time or RFC 3339; a `bin` column holds base64); an empty field is no value.
//! With `multi_value_separator`, every field but the anchor's is split at that character into
//! several values (pieces are trimmed, empty pieces dropped).
//!
//! A row with the wrong number of fields, an empty anchor, an anchor or DN seen on an earlier
//! row, a field that is not UTF-8 or a value that does not parse as its type is skipped whole
//! and reported with its line ([`Rejected`]). A missing or unreadable file, a missing header,
//! a header without the anchor column and a `dn_template` naming an unknown column are errors.

use super::ldif::{AttrTypes, declared, escape_rdn_value, text_value};
use super::{
    Connector, ConnectorError, ExportResult, ImportEnd, ImportMode, ImportSink, Pager, Rejected,
};
use crate::engine::export::ExportDelta;
use crate::engine::import::{ImportChange, ImportObject, KnownRecords};
use crate::sema::types::Base;
use crate::value::Value;
use base64::Engine as _;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

/// A CSV file as a source.
#[derive(Debug, Clone)]
pub struct CsvSource {
    pub path: PathBuf,
    /// The object type of every row.
    pub object_type: String,
    /// The column holding each row's unique, non-empty identifier.
    pub anchor: String,
    /// The DN of a row: text with `{column}` placeholders, e.g. `CN={id},OU=HR`. Values are
    /// escaped for a DN (RFC 4514).
    pub dn_template: String,
    /// Column → attribute name, for columns whose attribute is named differently.
    pub columns: HashMap<String, String>,
    /// Types of the attributes (by attribute name, lower-cased).
    pub types: AttrTypes,
    /// Splits fields into several values.
    pub multi_value_separator: Option<char>,
    /// The rows to recognise in the next import ([`Connector::recognise`]).
    recognise: Option<Arc<KnownRecords>>,
}

impl CsvSource {
    pub fn new(
        path: impl Into<PathBuf>,
        object_type: impl Into<String>,
        anchor: impl Into<String>,
        dn_template: impl Into<String>,
    ) -> CsvSource {
        CsvSource {
            path: path.into(),
            object_type: object_type.into(),
            anchor: anchor.into(),
            dn_template: dn_template.into(),
            columns: HashMap::new(),
            types: AttrTypes::default(),
            multi_value_separator: None,
            recognise: None,
        }
    }

    fn error(&self, line: Option<usize>, message: String) -> ConnectorError {
        ConnectorError {
            source: self.path.display().to_string(),
            line,
            message,
        }
    }

    /// The attribute a column feeds.
    fn attr_of<'a>(&'a self, column: &'a str) -> &'a str {
        self.columns.get(column).map_or(column, String::as_str)
    }
}

/// A piece of a DN template.
enum Piece {
    Text(String),
    Column(usize),
}

fn template(t: &str, header: &[String]) -> Result<Vec<Piece>, String> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            out.push(Piece::Text(rest[..open].to_string()));
        }
        let after = &rest[open + 1..];
        let close = after
            .find('}')
            .ok_or_else(|| format!("dn_template `{t}`: `{{` without `}}`"))?;
        let name = &after[..close];
        let i = header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("dn_template `{t}`: no column `{name}` in the header"))?;
        out.push(Piece::Column(i));
        rest = &after[close + 1..];
    }
    if !rest.is_empty() {
        out.push(Piece::Text(rest.to_string()));
    }
    Ok(out)
}

/// A CSV field as a value: base64 for a binary, else as [`text_value`].
fn field_value(text: &str, base: Option<Base>) -> Result<Value, String> {
    match base {
        Some(Base::Bin) => base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map(Value::bin)
            .map_err(|e| format!("`{text}` is not base64: {e}")),
        _ => text_value(text, base),
    }
}

impl Connector for CsvSource {
    fn source_file(&self) -> Option<&std::path::Path> {
        Some(&self.path)
    }

    /// A full read of the file, row by row, in pages (a delta request too: a file has no
    /// change tracking).
    fn import(
        &mut self,
        _mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        let file = std::fs::File::open(&self.path)
            .map_err(|e| self.error(None, format!("cannot read: {e}")))?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(std::io::BufReader::new(file));
        let mut records = reader.byte_records();
        let header = match records.next() {
            None => return Err(self.error(Some(1), "no header row".into())),
            Some(Err(e)) => return Err(self.error(Some(1), format!("cannot read the header: {e}"))),
            Some(Ok(h)) => h,
        };
        let mut names = Vec::with_capacity(header.len());
        for (i, f) in header.iter().enumerate() {
            let f = if i == 0 {
                f.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(f)
            } else {
                f
            };
            let name = std::str::from_utf8(f)
                .map_err(|_| self.error(Some(1), "the header is not valid UTF-8".into()))?
                .trim()
                .to_string();
            if name.is_empty() {
                return Err(self.error(Some(1), format!("column {} has no name", i + 1)));
            }
            if names.contains(&name) {
                return Err(self.error(Some(1), format!("column `{name}` appears twice")));
            }
            names.push(name);
        }
        let anchor = names
            .iter()
            .position(|n| *n == self.anchor)
            .ok_or_else(|| {
                self.error(
                    Some(1),
                    format!("no anchor column `{}` in the header", self.anchor),
                )
            })?;
        let dn = template(&self.dn_template, &names).map_err(|m| self.error(None, m))?;
        let source = self.path.display().to_string();
        let mut pager = Pager::new(sink);
        let mut anchors: HashMap<String, usize> = HashMap::new();
        let mut dns: HashMap<String, usize> = HashMap::new();
        // A row's digest takes in the header's: the same row under other columns reads
        // differently.
        let recognise = self.recognise.take();
        let known = recognise.as_deref().map(|k| (k, k.digest(header.iter())));
        for rec in records {
            let rec = rec.map_err(|e| {
                let line = e.position().map(|p| p.line() as usize);
                self.error(line, format!("cannot read: {e}"))
            })?;
            let line = rec.position().map_or(0, |p| p.line() as usize);
            let digest = match &known {
                Some((known, header)) => {
                    let d = known.digest(std::iter::once(&header[..]).chain(rec.iter()));
                    if let Some(k) = known.find(&d) {
                        // The row its object was read from: its anchor and DN are taken as a
                        // read of it takes them (and a second row with either is rejected).
                        let key = rec
                            .get(anchor)
                            .and_then(|f| std::str::from_utf8(f).ok())
                            .unwrap_or_default()
                            .trim();
                        let why = match (anchors.get(key), dns.get(known.dn_key(k))) {
                            (Some(first), _) => {
                                Some(format!("duplicate anchor `{key}` (first at line {first})"))
                            }
                            (None, Some(first)) => Some(format!(
                                "duplicate DN `{}` (first at line {first})",
                                known.dn(k)
                            )),
                            (None, None) => None,
                        };
                        match why {
                            Some(message) => pager.reject(Rejected {
                                source: source.clone(),
                                line,
                                message,
                            }),
                            None => {
                                anchors.insert(key.to_string(), line);
                                dns.insert(known.dn_key(k).to_string(), line);
                                pager.push(ImportChange::Unchanged(k))?;
                            }
                        }
                        continue;
                    }
                    Some(d)
                }
                None => None,
            };
            match self.row(&rec, &names, anchor, &dn, &anchors, &dns) {
                Ok((key, obj)) => {
                    anchors.insert(key, line);
                    dns.insert(super::ldif::dn_key(&obj.dn), line);
                    pager.push(match digest {
                        Some(d) => ImportChange::Record(d, obj),
                        None => ImportChange::Upsert(obj),
                    })?;
                }
                Err(message) => pager.reject(Rejected {
                    source: source.clone(),
                    line,
                    message,
                }),
            }
        }
        pager.flush()?;
        Ok(ImportEnd::full())
    }

    fn export(&mut self, _deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        Err(self.error(None, "CSV is a source only".into()))
    }

    fn confirms_by_reimport(&self) -> bool {
        true
    }

    fn recognises_records(&self) -> bool {
        true
    }

    fn recognise(&mut self, known: Arc<KnownRecords>) {
        self.recognise = Some(known);
    }
}

impl CsvSource {
    /// One row: its anchor text and its object, or why it is rejected.
    fn row(
        &self,
        rec: &csv::ByteRecord,
        names: &[String],
        anchor: usize,
        dn: &[Piece],
        anchors: &HashMap<String, usize>,
        dns: &HashMap<String, usize>,
    ) -> Result<(String, ImportObject), String> {
        if rec.len() != names.len() {
            return Err(format!(
                "expected {} fields (as in the header), found {}",
                names.len(),
                rec.len()
            ));
        }
        let mut fields = Vec::with_capacity(rec.len());
        for (i, f) in rec.iter().enumerate() {
            fields.push(
                std::str::from_utf8(f)
                    .map_err(|_| format!("the field `{}` is not valid UTF-8", names[i]))?,
            );
        }
        let key = fields[anchor].trim();
        if key.is_empty() {
            return Err(format!("the anchor `{}` is empty", names[anchor]));
        }
        if let Some(first) = anchors.get(key) {
            return Err(format!("duplicate anchor `{key}` (first at line {first})"));
        }
        let mut attrs: Vec<(String, Value)> = Vec::new();
        for (i, text) in fields.iter().enumerate() {
            let attr = self.attr_of(&names[i]);
            let base = declared(&self.types, attr);
            let pieces: Vec<&str> = match self.multi_value_separator {
                Some(sep) if i != anchor => text
                    .split(sep)
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .collect(),
                _ if text.is_empty() => Vec::new(),
                _ => vec![*text],
            };
            let mut values = Vec::with_capacity(pieces.len());
            for p in pieces {
                values
                    .push(field_value(p, base).map_err(|m| format!("column `{}`: {m}", names[i]))?);
            }
            let v = match values.len() {
                0 => continue,
                1 => values.pop().unwrap_or_default(),
                _ => Value::many(values),
            };
            attrs.push((attr.to_string(), v));
        }
        let mut dn_text = String::new();
        for p in dn {
            match p {
                Piece::Text(t) => dn_text.push_str(t),
                Piece::Column(i) => {
                    let v = fields[*i].trim();
                    if v.is_empty() {
                        return Err(format!("the DN needs `{}`, which is empty", names[*i]));
                    }
                    dn_text.push_str(&escape_rdn_value(v));
                }
            }
        }
        if let Some(first) = dns.get(&super::ldif::dn_key(&dn_text)) {
            return Err(format!("duplicate DN `{dn_text}` (first at line {first})"));
        }
        Ok((
            key.to_string(),
            ImportObject {
                dn: dn_text,
                object_type: self.object_type.clone(),
                attrs,
            },
        ))
    }
}
