//! Imports from an LDAP server: a paged full read, RFC 4533 syncrepl deltas (OpenLDAP) and
//! `modifyTimestamp` deltas (generic directories). See the module doc of [`super`].
//!
//! The watermark is JSON: `{"syncrepl": {"<base DN>": "<cookie, base64>"}}` or
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
    let attrs = attributes(c);
    let filter = filter(c, None);
    let mut pager = Pager::new(sink);
    let mut latest: Option<String> = None;
    for base in bases(c) {
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
        while let Some(re) = stream.next().map_err(|e| fail("the search", &e))? {
            let e = construct(re).map_err(|e| fail("the search", &e))?;
            if c.ldap.flavor == Flavor::Generic {
                note_time(&mut latest, &e);
            }
            match entry_object(c, &e) {
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
    }
    pager.flush()?;
    let watermark = match c.ldap.flavor {
        Flavor::OpenLdap if !cookies.is_empty() => {
            Some(serde_json::json!({ "syncrepl": cookies }).to_string())
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

/// ldap3 panics on a malformed entry: one is an error here.
fn construct(re: ResultEntry) -> Result<SearchEntry, String> {
    std::panic::catch_unwind(AssertUnwindSafe(|| SearchEntry::construct(re)))
        .map_err(|_| "the server sent a malformed entry".to_string())
}

/// Keeps the latest `modifyTimestamp` seen.
fn note_time(latest: &mut Option<String>, e: &SearchEntry) {
    let t = e
        .attrs
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("modifyTimestamp"))
        .and_then(|(_, v)| v.iter().max());
    if let Some(t) = t
        && latest.as_deref().is_none_or(|l| t.as_str() > l)
    {
        *latest = Some(t.clone());
    }
}

/// The values of an attribute (name compared case-insensitively), text first.
fn values<'e>(e: &'e SearchEntry, name: &str) -> Vec<RawValue<'e>> {
    let mut out = Vec::new();
    for (k, vs) in &e.attrs {
        if k.eq_ignore_ascii_case(name) {
            out.extend(vs.iter().map(|v| RawValue::Text(v)));
        }
    }
    for (k, vs) in &e.bin_attrs {
        if k.eq_ignore_ascii_case(name) {
            out.extend(vs.iter().map(|v| RawValue::Bytes(v)));
        }
    }
    out
}

/// The object type of an entry: its structural class when it is a declared type, else the last
/// of its classes that is one.
fn entry_type<'c>(c: &'c LdapConnector, e: &SearchEntry) -> Option<&'c TypeInfo> {
    let text = |v: &RawValue<'_>| match v {
        RawValue::Text(t) => Some(t.to_string()),
        RawValue::Bytes(_) => None,
    };
    let structural = values(e, "structuralObjectClass");
    if let Some(t) = structural
        .iter()
        .filter_map(text)
        .find_map(|n| c.type_named(&n))
    {
        return Some(t);
    }
    values(e, "objectClass")
        .iter()
        .filter_map(text)
        .filter_map(|n| c.type_named(&n))
        .last()
}

/// An entry as the engine imports it; None for an entry out of scope or of no declared type.
fn entry_object(c: &LdapConnector, e: &SearchEntry) -> Result<Option<ImportObject>, String> {
    if !c.cfg.in_scope(&e.dn) {
        return Ok(None);
    }
    let Some(ty) = entry_type(c, e) else {
        return Ok(None);
    };
    let mut attrs: Vec<(String, Value)> = Vec::new();
    let server_anchor = &c.ldap.anchor_attribute;
    let skip = |k: &str| {
        k.eq_ignore_ascii_case("objectClass") || k.eq_ignore_ascii_case("structuralObjectClass")
    };
    let names = e
        .attrs
        .keys()
        .chain(e.bin_attrs.keys())
        .filter(|k| !skip(k))
        .collect::<std::collections::BTreeSet<_>>();
    for k in names {
        // A ranged value (`member;range=0-1499`) or another option: not read yet.
        if k.contains(';') {
            continue;
        }
        let Some(name) = c.names.get(&k.to_lowercase()) else {
            continue;
        };
        if attrs.iter().any(|(n, _)| n == name) {
            continue;
        }
        let mut vs = Vec::new();
        for raw in values(e, k) {
            let v = c.value(name, raw)?;
            if !matches!(&v, Value::Str(s) if s.is_empty()) {
                vs.push(v);
            }
        }
        let v = match vs.len() {
            0 => continue,
            1 => vs.swap_remove(0),
            _ => Value::many(vs),
        };
        attrs.push((name.clone(), v));
    }
    if let Some((anchor_name, _)) = &ty.anchor {
        let raw = values(e, server_anchor);
        let Some(first) = raw.first() else {
            return Err(format!("no `{server_anchor}` (the anchor)"));
        };
        let Some(a) = c.anchor_value(Some(ty), *first) else {
            return Err(format!("`{server_anchor}` is not an anchor value"));
        };
        attrs.retain(|(n, _)| n != anchor_name);
        attrs.push((anchor_name.clone(), a));
    }
    Ok(Some(ImportObject {
        dn: e.dn.clone(),
        object_type: ty.name.clone(),
        attrs,
    }))
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
