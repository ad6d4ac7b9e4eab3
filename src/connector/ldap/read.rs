//! Imports from an LDAP server: a paged full read, RFC 4533 syncrepl deltas (OpenLDAP),
//! DirSync deltas (Active Directory) and `modifyTimestamp` deltas (generic directories). See
//! the module doc of [`super`].
//!
//! The watermark is JSON: `{"syncrepl": {"<base DN>": "<cookie, base64>"}}`,
//! `{"dirsync": {"<naming context>": "<cookie, base64>"}}` or
//! `{"modifyTimestamp": "<generalized time>"}`. A full read of an OpenLDAP server takes each
//! partition's cookie before it reads, so a change made during the read is read again by the
//! next delta (an upsert of an object as it is changes nothing), never skipped.

use super::super::{
    ConnectorError, ImportEnd, ImportKind, ImportMode, ImportSink, Pager, Rejected,
};
use super::conn::Connection;
use super::{LdapConnector, RawValue, TypeInfo};
use crate::config::Flavor;
use crate::engine::import::{ImportChange, ImportObject};
use crate::value::Value;
use base64::Engine as _;
use ldap3::adapters::{Adapter, EntriesOnly, PagedResults};
use ldap3::controls::{Control, ControlType, EntryState, RefreshMode, SyncDone, SyncInfo};
use ldap3::{ResultEntry, Scope, SearchEntry};
use std::collections::BTreeMap;
use std::panic::AssertUnwindSafe;

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// LDAP result code e-syncRefreshRequired (RFC 4533): the cookie is too old.
const SYNC_REFRESH_REQUIRED: u32 = 4096;

/// A filter that matches nothing, cheaply (an indexed equality on a value no entry has): the
/// search that only asks for the current cookie.
const NOTHING: &str = "(entryUUID=00000000-0000-0000-0000-000000000000)";

pub fn import(
    c: &mut LdapConnector,
    mode: ImportMode<'_>,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let mut conn = c.take_conn()?;
    let r = read(c, &mut conn, mode, sink);
    if r.is_ok() {
        c.put_conn(conn);
    }
    r
}

fn read(
    c: &LdapConnector,
    conn: &mut Connection,
    mode: ImportMode<'_>,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let watermark = match mode {
        ImportMode::Delta { watermark: Some(w) } => {
            serde_json::from_str::<serde_json::Value>(w).ok()
        }
        _ => None,
    };
    match (c.ldap.flavor, watermark) {
        (Flavor::OpenLdap, Some(w)) => {
            if let Some(cookies) = w.get("syncrepl").and_then(|v| v.as_object()) {
                let cookies: BTreeMap<String, String> = cookies
                    .iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect();
                if let Some(end) = syncrepl_delta(c, conn, &cookies, sink)? {
                    return Ok(end);
                }
            }
        }
        (Flavor::Generic, Some(w)) => {
            if let Some(since) = w.get("modifyTimestamp").and_then(|v| v.as_str()) {
                return timestamp_delta(c, conn, since, sink);
            }
        }
        (Flavor::Ad, w) if matches!(mode, ImportMode::Delta { .. }) => {
            let cookies: BTreeMap<String, String> = w
                .as_ref()
                .and_then(|w| w.get("dirsync"))
                .and_then(|v| v.as_object())
                .map(|m| {
                    m.iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect()
                })
                .unwrap_or_default();
            return dirsync_read(c, conn, &cookies, sink);
        }
        _ => {}
    }
    full(c, conn, sink)
}

/// The partitions to read: (base DN) of each selected partition.
fn bases(c: &LdapConnector) -> Vec<String> {
    c.cfg
        .partitions
        .iter()
        .filter(|p| p.selected)
        .map(|p| p.name.clone())
        .collect()
}

/// The search filter: entries of the declared object classes.
fn filter(c: &LdapConnector, extra: Option<String>) -> String {
    let classes: String = c
        .types
        .iter()
        .map(|t| format!("(objectClass={})", ldap3::ldap_escape(&t.name)))
        .collect();
    let classes = format!("(|{classes})");
    match extra {
        Some(e) => format!("(&{classes}{e})"),
        None => classes,
    }
}

/// The attributes to ask for: the declared ones, the object classes, the anchor (and the
/// modification time of a generic directory's entries).
fn attributes(c: &LdapConnector) -> Vec<String> {
    let mut out: Vec<String> = c.names.values().cloned().collect();
    out.sort();
    out.push("objectClass".into());
    out.push("structuralObjectClass".into());
    out.push(c.ldap.anchor_attribute.clone());
    if c.ldap.flavor == Flavor::Generic {
        out.push("modifyTimestamp".into());
    }
    out
}

/// A complete read: a paged search of each partition.
fn full(
    c: &LdapConnector,
    conn: &mut Connection,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let mut cookies = BTreeMap::new();
    if c.ldap.flavor == Flavor::OpenLdap {
        for base in bases(c) {
            if let Some(cookie) = current_cookie(conn, &base)? {
                cookies.insert(base, cookie);
            }
        }
    }
    // Active Directory: the DirSync cookie of each naming context, taken before the read.
    let mut dirsync_cookies = BTreeMap::new();
    if c.ldap.flavor == Flavor::Ad {
        for nc in naming_contexts(c, conn)?.into_keys() {
            let (_, _, cookie) = dirsync_round(c, conn, &nc, &[], NOTHING_AD)?;
            dirsync_cookies.insert(nc, B64.encode(cookie));
        }
    }
    let attrs = attributes(c);
    let filter = filter(c, None);
    let mut pager = Pager::new(sink);
    let mut latest: Option<String> = None;
    for base in bases(c) {
        // Every entry of a partition read whole (no container lists) is in scope.
        let whole = c
            .cfg
            .partitions
            .iter()
            .any(|p| p.name == base && p.include.is_empty() && p.exclude.is_empty());
        let object_of_entry = |e: &Entry| {
            if whole {
                typed_object(c, e)
            } else {
                entry_object(c, e)
            }
        };
        let object_of_search = |e: &SearchEntry| {
            if whole {
                typed_object(c, e)
            } else {
                entry_object(c, e)
            }
        };
        let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(c.ldap.page_size)),
        ];
        let attr_refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let timeout = conn.timeout;
        let url = conn.url.clone();
        let fail = |what: &str, e: &dyn std::fmt::Display| ConnectorError {
            source: url.clone(),
            line: None,
            message: format!("{what} of `{base}`: {e}"),
        };
        let mut stream = conn
            .ldap
            .with_timeout(timeout)
            .streaming_search_with(adapters, &base, Scope::Subtree, &filter, attr_refs)
            .map_err(|e| fail("the search", &e))?;
        // Entries with a ranged attribute (`member;range=0-1499`) wait for the end of the
        // search: the rest of their values is read after it.
        let mut ranged = Vec::new();
        while let Some(re) = stream.next().map_err(|e| fail("the search", &e))? {
            let e = Entry::decode(re).map_err(|e| fail("the search", &e))?;
            if c.ldap.flavor == Flavor::Generic {
                note_time(&mut latest, &e);
            }
            if e.has_range() {
                ranged.push(e.into_search_entry());
                continue;
            }
            match object_of_entry(&e) {
                Ok(Some(o)) => pager.push(ImportChange::Upsert(o))?,
                Ok(None) => {}
                Err(m) => pager.reject(rejected(&url, &e.dn, m)),
            }
        }
        let res = stream.result();
        if res.rc != 0 {
            return Err(fail(
                "the search",
                &super::write::describe(&res) as &dyn std::fmt::Display,
            ));
        }
        for mut e in ranged {
            complete_ranges(conn, &mut e)?;
            match object_of_search(&e) {
                Ok(Some(o)) => pager.push(ImportChange::Upsert(o))?,
                Ok(None) => {}
                Err(m) => pager.reject(rejected(&url, &e.dn, m)),
            }
        }
    }
    pager.flush()?;
    let watermark = match c.ldap.flavor {
        Flavor::OpenLdap if !cookies.is_empty() => {
            Some(serde_json::json!({ "syncrepl": cookies }).to_string())
        }
        Flavor::Ad if !dirsync_cookies.is_empty() => {
            Some(serde_json::json!({ "dirsync": dirsync_cookies }).to_string())
        }
        Flavor::Generic => latest.map(|t| serde_json::json!({ "modifyTimestamp": t }).to_string()),
        _ => None,
    };
    Ok(ImportEnd {
        kind: ImportKind::Full,
        watermark,
    })
}

fn rejected(url: &str, dn: &str, message: String) -> Rejected {
    Rejected {
        source: url.to_string(),
        line: 0,
        message: format!("{dn}: {message}"),
    }
}

/// An entry of a search result as decoded: its DN and its attributes in the order the server
/// sent them, each value as bytes (nothing copied out of the decoded message). A full read
/// makes its objects from it directly ([`Attrs`]); the other reads sort it into ldap3's
/// `SearchEntry` ([`Entry::into_search_entry`]).
pub struct Entry {
    pub dn: String,
    attrs: Vec<(String, Vec<Vec<u8>>)>,
}

impl Entry {
    /// Decodes a search result entry (ldap3's own `SearchEntry::construct` copies each text
    /// value and panics on a malformed entry).
    pub fn decode(re: ResultEntry) -> Result<Entry, String> {
        let malformed = || "the server sent a malformed entry".to_string();
        let mut tags =
            re.0.match_id(4)
                .and_then(|t| t.expect_constructed())
                .ok_or_else(malformed)?
                .into_iter();
        let dn = tags
            .next()
            .and_then(|t| t.expect_primitive())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(malformed)?;
        let list = tags
            .next()
            .and_then(|t| t.expect_constructed())
            .ok_or_else(malformed)?;
        let mut attrs = Vec::with_capacity(list.len());
        for a in list {
            let mut parts = a.expect_constructed().ok_or_else(malformed)?.into_iter();
            let name = parts
                .next()
                .and_then(|t| t.expect_primitive())
                .and_then(|b| String::from_utf8(b).ok())
                .ok_or_else(malformed)?;
            let values: Vec<Vec<u8>> = parts
                .next()
                .and_then(|t| t.expect_constructed())
                .ok_or_else(malformed)?
                .into_iter()
                .map(|t| t.expect_primitive().ok_or_else(malformed))
                .collect::<Result<_, _>>()?;
            attrs.push((name, values));
        }
        Ok(Entry { dn, attrs })
    }

    /// The entry as ldap3's `SearchEntry`: an attribute whose values are all UTF-8 among the
    /// text ones, any other among the binary ones, all its values with it.
    pub fn into_search_entry(self) -> SearchEntry {
        let mut attrs = std::collections::HashMap::with_capacity(self.attrs.len());
        let mut bin_attrs = std::collections::HashMap::new();
        for (name, raw) in self.attrs {
            // Each value is checked once: text until one is not, then bytes, all of them.
            let mut text: Vec<String> = Vec::with_capacity(raw.len());
            let mut rest = raw.into_iter();
            let mut bytes = None;
            for v in rest.by_ref() {
                match String::from_utf8(v) {
                    Ok(t) => text.push(t),
                    Err(e) => {
                        let mut b: Vec<Vec<u8>> = text.drain(..).map(String::into_bytes).collect();
                        b.push(e.into_bytes());
                        bytes = Some(b);
                        break;
                    }
                }
            }
            match bytes {
                Some(mut b) => {
                    b.extend(rest);
                    bin_attrs.insert(name, b);
                }
                None => {
                    attrs.insert(name, text);
                }
            }
        }
        SearchEntry {
            dn: self.dn,
            attrs,
            bin_attrs,
        }
    }
}

/// A decoded search result entry as ldap3's `SearchEntry` (see [`Entry`]).
pub fn construct(re: ResultEntry) -> Result<SearchEntry, String> {
    Entry::decode(re).map(Entry::into_search_entry)
}

/// What making an object of an entry reads of it, whichever shape it has.
trait Attrs {
    fn dn(&self) -> &str;
    /// Its attribute descriptions (with options, `member;range=0-1499`), in no set order.
    fn names(&self) -> Vec<&str>;
    /// The values of an attribute (name compared case-insensitively): text first (the values
    /// of an attribute whose values are all UTF-8), then bytes.
    fn values(&self, name: &str) -> Vec<RawValue<'_>>;
    /// Whether it holds a ranged attribute (`member;range=0-1499`): Active Directory sends at
    /// most MaxValRange values of an attribute at a time.
    fn has_range(&self) -> bool {
        self.names().iter().any(|k| range_of(k).is_some())
    }
}

impl Attrs for SearchEntry {
    fn dn(&self) -> &str {
        &self.dn
    }

    fn names(&self) -> Vec<&str> {
        self.attrs
            .keys()
            .chain(self.bin_attrs.keys())
            .map(String::as_str)
            .collect()
    }

    fn values(&self, name: &str) -> Vec<RawValue<'_>> {
        let mut out = Vec::new();
        for (k, vs) in &self.attrs {
            if k.eq_ignore_ascii_case(name) {
                out.extend(vs.iter().map(|v| RawValue::Text(v)));
            }
        }
        for (k, vs) in &self.bin_attrs {
            if k.eq_ignore_ascii_case(name) {
                out.extend(vs.iter().map(|v| RawValue::Bytes(v)));
            }
        }
        out
    }
}

impl Attrs for Entry {
    fn dn(&self) -> &str {
        &self.dn
    }

    fn names(&self) -> Vec<&str> {
        self.attrs.iter().map(|(k, _)| k.as_str()).collect()
    }

    fn values(&self, name: &str) -> Vec<RawValue<'_>> {
        let mut out = Vec::new();
        let mut binary = Vec::new();
        for (k, vs) in &self.attrs {
            if !k.eq_ignore_ascii_case(name) {
                continue;
            }
            // Text while every value is UTF-8; the attribute's values go among the bytes
            // (all of them) at the first that is not.
            let mark = out.len();
            for v in vs {
                match std::str::from_utf8(v) {
                    Ok(t) => out.push(RawValue::Text(t)),
                    Err(_) => {
                        out.truncate(mark);
                        binary.extend(vs.iter().map(|v| RawValue::Bytes(v)));
                        break;
                    }
                }
            }
        }
        out.append(&mut binary);
        out
    }
}

/// Keeps the latest `modifyTimestamp` seen.
fn note_time(latest: &mut Option<String>, e: &impl Attrs) {
    let t = e
        .values("modifyTimestamp")
        .into_iter()
        .filter_map(|v| match v {
            RawValue::Text(t) => Some(t),
            RawValue::Bytes(_) => None,
        })
        .max();
    if let Some(t) = t
        && latest.as_deref().is_none_or(|l| t > l)
    {
        *latest = Some(t.to_string());
    }
}

/// The object type of an entry: its structural class when it is a declared type, else the last
/// of its classes that is one.
fn entry_type<'c>(c: &'c LdapConnector, e: &impl Attrs) -> Option<&'c TypeInfo> {
    fn text<'a>(v: &RawValue<'a>) -> Option<&'a str> {
        match *v {
            RawValue::Text(t) => Some(t),
            RawValue::Bytes(_) => None,
        }
    }
    let structural = e.values("structuralObjectClass");
    if let Some(t) = structural
        .iter()
        .filter_map(text)
        .find_map(|n| c.type_named(n))
    {
        return Some(t);
    }
    e.values("objectClass")
        .iter()
        .filter_map(text)
        .filter_map(|n| c.type_named(n))
        .last()
}

/// An entry as the engine imports it; None for an entry out of scope or of no declared type.
fn entry_object(c: &LdapConnector, e: &impl Attrs) -> Result<Option<ImportObject>, String> {
    if !c.cfg.in_scope(e.dn()) {
        return Ok(None);
    }
    typed_object(c, e)
}

/// An entry known to be in scope as the engine imports it; None for an entry of no declared
/// type.
fn typed_object(c: &LdapConnector, e: &impl Attrs) -> Result<Option<ImportObject>, String> {
    let Some(ty) = entry_type(c, e) else {
        return Ok(None);
    };
    object_of(c, e, ty, false).map(Some)
}

/// The object of an entry of type `ty`: its declared attributes and its anchor. With
/// `partial` (a DirSync entry holding only what changed), an attribute the entry lists
/// without values is given as NULL (cleared).
fn object_of(
    c: &LdapConnector,
    e: &impl Attrs,
    ty: &TypeInfo,
    partial: bool,
) -> Result<ImportObject, String> {
    let server_anchor = &c.ldap.anchor_attribute;
    let skip = |k: &str| {
        k.eq_ignore_ascii_case("objectClass") || k.eq_ignore_ascii_case("structuralObjectClass")
    };
    // In name order, so that of two spellings of one attribute the same one is kept each time.
    let mut names = e.names();
    names.retain(|k| !skip(k));
    names.sort_unstable();
    names.dedup();
    let mut attrs: Vec<(String, Value)> = Vec::with_capacity(names.len() + 1);
    let mut lower = String::new();
    for k in names {
        // An attribute with an option (`;binary`, a range the read did not complete): not
        // one the bundle declares.
        if k.contains(';') {
            continue;
        }
        lower.clear();
        if k.is_ascii() {
            lower.push_str(k);
            lower.make_ascii_lowercase();
        } else {
            lower.extend(k.chars().flat_map(char::to_lowercase));
        }
        let Some(name) = c.names.get(lower.as_str()) else {
            continue;
        };
        if attrs.iter().any(|(n, _)| n == name) {
            continue;
        }
        let base = super::super::ldif::declared(&c.attr_types, &lower);
        let mut vs = Vec::new();
        for raw in e.values(k) {
            let v = super::value_as(name, base, raw)?;
            if !matches!(&v, Value::Str(s) if s.is_empty()) {
                vs.push(v);
            }
        }
        let v = match vs.len() {
            0 if partial => Value::Null,
            0 => continue,
            1 => vs.swap_remove(0),
            _ => Value::many(vs),
        };
        attrs.push((name.clone(), v));
    }
    if let Some((anchor_name, _)) = &ty.anchor {
        let raw = e.values(server_anchor);
        let Some(first) = raw.first() else {
            return Err(format!("no `{server_anchor}` (the anchor)"));
        };
        let Some(a) = c.anchor_value(Some(ty), *first) else {
            return Err(format!("`{server_anchor}` is not an anchor value"));
        };
        attrs.retain(|(n, _)| n != anchor_name);
        attrs.push((anchor_name.clone(), a));
    }
    Ok(ImportObject {
        dn: e.dn().to_string(),
        object_type: ty.name.clone(),
        attrs,
    })
}

/// The attribute name and the range's end of a ranged attribute description
/// (`member;range=0-1499` → (`member`, Some(1499)); `member;range=1500-*` → (`member`, None)).
fn range_of(desc: &str) -> Option<(&str, Option<u64>)> {
    let (name, opts) = desc.split_once(';')?;
    let range = opts.split(';').find_map(|o| {
        o.strip_prefix("range=")
            .or_else(|| o.strip_prefix("Range="))
    })?;
    let (_, end) = range.split_once('-')?;
    Some((name, if end == "*" { None } else { end.parse().ok() }))
}

/// Reads the rest of each ranged attribute of `e` (`attr;range=N-*` until the server says
/// `*`) and keeps the values under the attribute's plain name.
pub fn complete_ranges(conn: &mut Connection, e: &mut SearchEntry) -> Result<(), ConnectorError> {
    let ranged: Vec<String> = e
        .attrs
        .keys()
        .chain(e.bin_attrs.keys())
        .filter(|k| range_of(k).is_some())
        .cloned()
        .collect();
    for desc in ranged {
        let Some((name, mut end)) = range_of(&desc).map(|(n, e)| (n.to_string(), e)) else {
            continue;
        };
        let mut text = e.attrs.remove(&desc).unwrap_or_default();
        let mut bin = e.bin_attrs.remove(&desc).unwrap_or_default();
        while let Some(last) = end {
            let ask = format!("{name};range={}-*", last + 1);
            let timeout = conn.timeout;
            let r = conn
                .ldap
                .with_timeout(timeout)
                .search(&e.dn, Scope::Base, "(objectClass=*)", vec![ask.as_str()])
                .map_err(|x| conn.error(&format!("the read of `{ask}` of `{}`", e.dn), x))?;
            if r.1.rc != 0 {
                return Err(conn.error(
                    &format!("the read of `{ask}` of `{}`", e.dn),
                    super::write::describe(&r.1),
                ));
            }
            let Some(next) = r.0.into_iter().next() else {
                break;
            };
            let next = construct(next).map_err(|x| conn.error("the search", x))?;
            end = None;
            let mut found = false;
            for (k, vs) in next.attrs {
                if let Some((n, en)) = range_of(&k)
                    && n.eq_ignore_ascii_case(&name)
                {
                    text.extend(vs);
                    end = en;
                    found = true;
                }
            }
            for (k, vs) in next.bin_attrs {
                if let Some((n, en)) = range_of(&k)
                    && n.eq_ignore_ascii_case(&name)
                {
                    bin.extend(vs);
                    end = en;
                    found = true;
                }
            }
            if !found {
                break;
            }
        }
        if !text.is_empty() {
            e.attrs.entry(name.clone()).or_default().extend(text);
        }
        if !bin.is_empty() {
            e.bin_attrs.entry(name).or_default().extend(bin);
        }
    }
    Ok(())
}

/// A DirSync filter that matches nothing: the read that only takes the current cookie.
const NOTHING_AD: &str = "(objectGUID=\\00)";

/// The naming contexts the selected partitions are in (the base of a DirSync read must be a
/// naming context's root): naming context → the partitions in it.
fn naming_contexts(
    c: &LdapConnector,
    conn: &mut Connection,
) -> Result<BTreeMap<String, Vec<String>>, ConnectorError> {
    let timeout = conn.timeout;
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search("", Scope::Base, "(objectClass=*)", vec!["namingContexts"])
        .map_err(|e| conn.error("the read of the root DSE", e))?;
    let ncs: Vec<String> =
        r.0.into_iter()
            .filter_map(|re| construct(re).ok())
            .flat_map(|e| {
                e.attrs
                    .into_iter()
                    .filter(|(k, _)| k.eq_ignore_ascii_case("namingContexts"))
                    .flat_map(|(_, v)| v)
            })
            .collect();
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for base in bases(c) {
        let nc = crate::dn::Dn::parse(&base)
            .ok()
            .and_then(|dn| {
                ncs.iter()
                    .filter_map(|nc| {
                        let depth = crate::dn::key(nc).ok().and_then(|k| dn.depth_within(&k))?;
                        Some((depth, nc))
                    })
                    .min_by_key(|(d, _)| *d)
                    .map(|(_, nc)| nc.clone())
            })
            .unwrap_or_else(|| base.clone());
        out.entry(nc).or_default().push(base);
    }
    Ok(out)
}

/// One DirSync search of a naming context: its entries, whether the server has more, and
/// the new cookie.
fn dirsync_round(
    c: &LdapConnector,
    conn: &mut Connection,
    nc: &str,
    cookie: &[u8],
    filter: &str,
) -> Result<(Vec<SearchEntry>, bool, Vec<u8>), ConnectorError> {
    let mut attrs = attributes(c);
    // DirSync returns changes to the attributes asked for only: `name` changes with a
    // rename, `parentGUID` with a move, `isDeleted` with a delete.
    attrs.push("isDeleted".into());
    attrs.push("name".into());
    attrs.push("parentGUID".into());
    let timeout = conn.timeout;
    let what = format!("the DirSync read of `{nc}`");
    let r = conn
        .ldap
        .with_controls(vec![super::dirsync::request(
            super::dirsync::ANCESTORS_FIRST_ORDER,
            DIRSYNC_MAX_BYTES,
            cookie,
        )])
        .with_timeout(timeout)
        .search(nc, Scope::Subtree, filter, attrs)
        .map_err(|e| conn.error(&what, e))?;
    if r.1.rc != 0 {
        return Err(conn.error(&what, super::write::describe(&r.1)));
    }
    let Some((more, cookie)) = super::dirsync::response(&r.1.ctrls) else {
        return Err(conn.error(&what, "the answer has no DirSync control"));
    };
    let mut entries = Vec::with_capacity(r.0.len());
    for re in r.0 {
        if re.is_ref() || re.is_intermediate() {
            continue;
        }
        entries.push(construct(re).map_err(|e| conn.error(&what, e))?);
    }
    Ok((entries, more, cookie))
}

/// The most a DirSync answer holds (the server sends more rounds when there is more).
const DIRSYNC_MAX_BYTES: i64 = 1 << 20;

/// A read of an Active Directory with the DirSync control, from the cookie of each naming
/// context; without a cookie for every one, a complete read (every object, as DirSync gives
/// it when it has no cookie). A changed object comes with the attributes that changed only:
/// a partial update (its object type read from the server); an added one, or one moved (its
/// parent changed, so it may come into the partitions), whole; a deleted one is a tombstone
/// (`isDeleted`) named by its objectGUID; an object moved out of the partitions is a delete.
fn dirsync_read(
    c: &LdapConnector,
    conn: &mut Connection,
    cookies: &BTreeMap<String, String>,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let ncs = naming_contexts(c, conn)?;
    let delta = ncs.keys().all(|nc| cookies.contains_key(nc));
    let filter = filter(c, None);
    let mut pager = Pager::new(sink);
    let mut next_cookies = BTreeMap::new();
    for nc in ncs.keys() {
        let mut cookie = if delta {
            cookies
                .get(nc)
                .and_then(|k| B64.decode(k).ok())
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        loop {
            let (entries, more, next) = dirsync_round(c, conn, nc, &cookie, &filter)?;
            for mut e in entries {
                if let Some(ch) = dirsync_change(c, conn, &mut e, delta)? {
                    match ch {
                        Ok(ch) => pager.push(ch)?,
                        Err(m) => pager.reject(rejected(&conn.url, &e.dn, m)),
                    }
                }
            }
            cookie = next;
            if !more {
                break;
            }
        }
        next_cookies.insert(nc.clone(), B64.encode(&cookie));
    }
    pager.flush()?;
    Ok(ImportEnd {
        kind: if delta {
            ImportKind::Delta
        } else {
            ImportKind::Full
        },
        watermark: Some(serde_json::json!({ "dirsync": next_cookies }).to_string()),
    })
}

/// The change a DirSync entry stands for (see [`dirsync_read`]); None for nothing to import,
/// an error message for an entry that cannot be read.
#[allow(clippy::type_complexity)]
fn dirsync_change(
    c: &LdapConnector,
    conn: &mut Connection,
    e: &mut SearchEntry,
    delta: bool,
) -> Result<Option<Result<ImportChange, String>>, ConnectorError> {
    let guid = e
        .values(&c.ldap.anchor_attribute)
        .first()
        .and_then(|raw| c.anchor_value(None, *raw));
    let gone = |guid: Option<Value>| {
        Ok(if delta {
            guid.map(|a| Ok(ImportChange::delete_anchor(a)))
        } else {
            None
        })
    };
    let deleted = e
        .values("isDeleted")
        .iter()
        .any(|v| matches!(v, RawValue::Text(t) if t.eq_ignore_ascii_case("TRUE")));
    if deleted {
        return gone(guid);
    }
    if !c.cfg.in_scope(&e.dn) {
        // Moved out of the partitions (or never in them): gone from here.
        return gone(guid);
    }
    naming_value(e);
    let whole = !e.values("objectClass").is_empty();
    let moved = !e.values("parentGUID").is_empty();
    if !whole && moved {
        // Moved, perhaps into the partitions: read it whole.
        let Some(full) = read_whole(c, conn, &e.dn)? else {
            return Ok(None);
        };
        *e = full;
    } else if !whole {
        let classes = read_classes(conn, &e.dn)?;
        let Some(ty) = classes.iter().filter_map(|n| c.type_named(n)).last() else {
            return gone(guid);
        };
        if e.has_range() {
            complete_ranges(conn, e)?;
        }
        return Ok(Some(object_of(c, e, ty, true).map(ImportChange::Partial)));
    }
    if e.has_range() {
        complete_ranges(conn, e)?;
    }
    Ok(match entry_object(c, e) {
        Ok(Some(o)) => Some(Ok(ImportChange::Upsert(o))),
        Ok(None) => return gone(guid),
        Err(m) => Some(Err(m)),
    })
}

/// DirSync never sends the naming attribute (`cn` of `CN=...`), only `name`, which holds the
/// same value: the entry gets it as its naming attribute.
fn naming_value(e: &mut SearchEntry) {
    let Some(rdn_type) = e.dn.split_once('=').map(|(t, _)| t.trim().to_string()) else {
        return;
    };
    if rdn_type.eq_ignore_ascii_case("name")
        || e.attrs.keys().any(|k| k.eq_ignore_ascii_case(&rdn_type))
    {
        return;
    }
    let name = e
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("name"))
        .map(|(_, v)| v.clone());
    if let Some(v) = name {
        e.attrs.insert(rdn_type, v);
    }
}

/// The entry at `dn` with the attributes a read asks for; None when it is gone.
fn read_whole(
    c: &LdapConnector,
    conn: &mut Connection,
    dn: &str,
) -> Result<Option<SearchEntry>, ConnectorError> {
    let timeout = conn.timeout;
    let what = format!("the read of `{dn}`");
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search(dn, Scope::Base, "(objectClass=*)", attributes(c))
        .map_err(|e| conn.error(&what, e))?;
    if r.1.rc == 32 {
        return Ok(None);
    }
    if r.1.rc != 0 {
        return Err(conn.error(&what, super::write::describe(&r.1)));
    }
    match r.0.into_iter().next() {
        Some(re) => construct(re).map(Some).map_err(|e| conn.error(&what, e)),
        None => Ok(None),
    }
}

/// The object classes of the entry at `dn` (none when it is gone).
fn read_classes(conn: &mut Connection, dn: &str) -> Result<Vec<String>, ConnectorError> {
    let timeout = conn.timeout;
    let what = format!("the read of `{dn}`");
    let r = conn
        .ldap
        .with_timeout(timeout)
        .search(dn, Scope::Base, "(objectClass=*)", vec!["objectClass"])
        .map_err(|e| conn.error(&what, e))?;
    if r.1.rc == 32 {
        return Ok(Vec::new());
    }
    if r.1.rc != 0 {
        return Err(conn.error(&what, super::write::describe(&r.1)));
    }
    Ok(r.0
        .into_iter()
        .filter_map(|re| construct(re).ok())
        .flat_map(|e| e.attrs.into_iter())
        .filter(|(k, _)| k.eq_ignore_ascii_case("objectClass"))
        .flat_map(|(_, v)| v)
        .collect())
}

/// The current cookie of a partition (a content synchronization that matches nothing).
fn current_cookie(conn: &mut Connection, base: &str) -> Result<Option<String>, ConnectorError> {
    let ctrl = ldap3::controls::SyncRequest {
        mode: RefreshMode::RefreshOnly,
        cookie: None,
        reload_hint: false,
    };
    let timeout = conn.timeout;
    let res = conn
        .ldap
        .with_controls(ctrl)
        .with_timeout(timeout)
        .search(base, Scope::Subtree, NOTHING, vec!["1.1"])
        .map_err(|e| conn.error(&format!("the content synchronization of `{base}`"), e))?;
    let res = res.1;
    if res.rc != 0 {
        // No content synchronization here (no syncprov overlay): the reads stay complete.
        tracing::warn!(
            server = conn.url.as_str(),
            base,
            "no content synchronization ({}): every delta import reads everything",
            super::write::describe(&res)
        );
        return Ok(None);
    }
    Ok(sync_done(&res.ctrls)
        .and_then(|d| d.cookie)
        .map(|c| B64.encode(c)))
}

/// The Sync Done control of a search result (ldap3's parser panics on a malformed one: that
/// is no control here).
fn sync_done(ctrls: &[Control]) -> Option<SyncDone> {
    ctrls.iter().find_map(|Control(t, raw)| {
        if !matches!(t, Some(ControlType::SyncDone)) {
            return None;
        }
        std::panic::catch_unwind(AssertUnwindSafe(|| raw.parse::<SyncDone>())).ok()
    })
}

/// The anchor of an entry from its UUID (16 bytes, as the Sync State control carries it).
fn uuid_anchor(c: &LdapConnector, uuid: &[u8]) -> Option<Value> {
    let u = uuid::Uuid::from_slice(uuid).ok()?;
    c.anchor_value(None, RawValue::Text(&u.to_string()))
}

/// A delta read by content synchronization with each partition's cookie. None when the
/// server cannot give changes only (no cookie for a partition, a present phase, a refresh
/// required): the caller reads everything instead. The changes are kept until every
/// partition answered, so a read that turns into a full one hands over nothing twice.
fn syncrepl_delta(
    c: &LdapConnector,
    conn: &mut Connection,
    cookies: &BTreeMap<String, String>,
    sink: &mut dyn ImportSink,
) -> Result<Option<ImportEnd>, ConnectorError> {
    let attrs = attributes(c);
    let filter = filter(c, None);
    let mut changes = Vec::new();
    let mut rejects = Vec::new();
    let mut next_cookies = BTreeMap::new();
    for base in bases(c) {
        let Some(cookie) = cookies.get(&base).and_then(|c| B64.decode(c).ok()) else {
            return Ok(None);
        };
        let ctrl = ldap3::controls::SyncRequest {
            mode: RefreshMode::RefreshOnly,
            cookie: Some(cookie.clone()),
            reload_hint: false,
        };
        let timeout = conn.timeout;
        let url = conn.url.clone();
        let fail = |e: &dyn std::fmt::Display| ConnectorError {
            source: url.clone(),
            line: None,
            message: format!("the content synchronization of `{base}`: {e}"),
        };
        let attr_refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let mut stream = conn
            .ldap
            .with_controls(ctrl)
            .with_timeout(timeout)
            .streaming_search(&base, Scope::Subtree, &filter, attr_refs)
            .map_err(|e| fail(&e))?;
        let mut cookie = Some(cookie);
        let mut present_phase = false;
        while let Some(re) = stream.next().map_err(|e| fail(&e))? {
            if re.is_intermediate() {
                let info = std::panic::catch_unwind(AssertUnwindSafe(|| {
                    ldap3::controls::parse_syncinfo(re)
                }))
                .map_err(|_| fail(&"the server sent a malformed Sync Info message"))?;
                match info {
                    SyncInfo::NewCookie(k) => cookie = Some(k),
                    SyncInfo::RefreshDelete { cookie: k, .. } => {
                        if k.is_some() {
                            cookie = k;
                        }
                    }
                    SyncInfo::RefreshPresent { .. } => present_phase = true,
                    SyncInfo::SyncIdSet {
                        cookie: k,
                        refresh_deletes,
                        sync_uuids,
                    } => {
                        if !refresh_deletes {
                            present_phase = true;
                        }
                        for u in sync_uuids {
                            if let Some(a) = uuid_anchor(c, &u) {
                                changes.push(ImportChange::Delete {
                                    anchor: Some(a),
                                    dn: None,
                                });
                            }
                        }
                        if k.is_some() {
                            cookie = k;
                        }
                    }
                }
                continue;
            }
            if re.is_ref() {
                continue;
            }
            let state = re.1.iter().find_map(|Control(t, raw)| {
                if !matches!(t, Some(ControlType::SyncState)) {
                    return None;
                }
                std::panic::catch_unwind(AssertUnwindSafe(|| {
                    raw.parse::<ldap3::controls::SyncState>()
                }))
                .ok()
            });
            let e = construct(re).map_err(|e| fail(&e))?;
            let Some(state) = state else {
                return Err(fail(&format!("`{}` came without its Sync State", e.dn)));
            };
            match state.state {
                EntryState::Present => present_phase = true,
                EntryState::Delete => changes.push(ImportChange::Delete {
                    anchor: uuid_anchor(c, &state.entry_uuid),
                    dn: Some(e.dn.clone()),
                }),
                EntryState::Add | EntryState::Modify => match entry_object(c, &e) {
                    Ok(Some(o)) => changes.push(ImportChange::Upsert(o)),
                    // Moved out of scope (or no longer of a declared class): gone from here.
                    Ok(None) => changes.push(ImportChange::Delete {
                        anchor: uuid_anchor(c, &state.entry_uuid),
                        dn: None,
                    }),
                    Err(m) => rejects.push(rejected(&url, &e.dn, m)),
                },
            }
            if let Some(k) = state.cookie {
                cookie = Some(k);
            }
        }
        let res = stream.result();
        if res.rc == SYNC_REFRESH_REQUIRED {
            return Ok(None);
        }
        if res.rc != 0 {
            return Err(fail(&super::write::describe(&res)));
        }
        if let Some(done) = sync_done(&res.ctrls) {
            if done.cookie.is_some() {
                cookie = done.cookie;
            }
            // Without refreshDeletes the server used the present phase: what it did not list
            // is gone, which only a complete read can tell.
            if !done.refresh_deletes && !changes.is_empty() {
                present_phase = true;
            }
        }
        if present_phase {
            return Ok(None);
        }
        if let Some(k) = cookie {
            next_cookies.insert(base.clone(), B64.encode(k));
        }
    }
    let mut pager = Pager::new(sink);
    for r in rejects {
        pager.reject(r);
    }
    for ch in changes {
        pager.push(ch)?;
    }
    pager.flush()?;
    Ok(Some(ImportEnd {
        kind: ImportKind::Delta,
        watermark: Some(serde_json::json!({ "syncrepl": next_cookies }).to_string()),
    }))
}

/// A delta read of a generic directory: the entries changed at or after `since`.
fn timestamp_delta(
    c: &LdapConnector,
    conn: &mut Connection,
    since: &str,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let attrs = attributes(c);
    let filter = filter(
        c,
        Some(format!("(modifyTimestamp>={})", ldap3::ldap_escape(since))),
    );
    let mut pager = Pager::new(sink);
    let mut latest = Some(since.to_string());
    for base in bases(c) {
        let adapters: Vec<Box<dyn Adapter<'_, &str, Vec<&str>>>> = vec![
            Box::new(EntriesOnly::new()),
            Box::new(PagedResults::new(c.ldap.page_size)),
        ];
        let attr_refs: Vec<&str> = attrs.iter().map(String::as_str).collect();
        let timeout = conn.timeout;
        let url = conn.url.clone();
        let fail = |e: &dyn std::fmt::Display| ConnectorError {
            source: url.clone(),
            line: None,
            message: format!("the search of `{base}`: {e}"),
        };
        let mut stream = conn
            .ldap
            .with_timeout(timeout)
            .streaming_search_with(adapters, &base, Scope::Subtree, &filter, attr_refs)
            .map_err(|e| fail(&e))?;
        while let Some(re) = stream.next().map_err(|e| fail(&e))? {
            let e = construct(re).map_err(|e| fail(&e))?;
            note_time(&mut latest, &e);
            match entry_object(c, &e) {
                Ok(Some(o)) => pager.push(ImportChange::Upsert(o))?,
                Ok(None) => {}
                Err(m) => pager.reject(rejected(&url, &e.dn, m)),
            }
        }
        let res = stream.result();
        if res.rc != 0 {
            return Err(fail(&super::write::describe(&res)));
        }
    }
    pager.flush()?;
    Ok(ImportEnd {
        kind: ImportKind::Delta,
        watermark: latest.map(|t| serde_json::json!({ "modifyTimestamp": t }).to_string()),
    })
}
