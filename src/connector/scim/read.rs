//! Imports from a SCIM service: a full read of each mapped endpoint. See the module doc of
//! [`super`].
//!
//! A listing asks for `count` resources from `startIndex` (RFC 7644 section 3.4.2.4). The first
//! page gives the total and the page size the service keeps to; the other pages are then
//! fetched `concurrency` at a time and handed over in order. The ids read are counted: when the
//! service's total at the end differs from the distinct ids read, resources moved between
//! pages while the read ran, and the read fails (a short read passed off as complete would
//! delete the objects it missed). A service that offers cursors (RFC 9865, its
//! `ServiceProviderConfig` says `pagination.cursor`) is read with them instead, page after
//! page: its pages do not shift.

use super::super::http::{Failure, Http, Method, Reply, Request};
use super::super::{ConnectorError, ImportEnd, ImportKind, ImportSink, Pager, Rejected};
use super::{Known, ScimConnector, TypeMap, json};
use crate::engine::import::{ImportChange, ImportObject};
use crate::sema::types::Base;
use crate::value::Value;
use futures_util::StreamExt;
use serde_json::Value as Json;
use std::collections::HashSet;

/// One page of a listing: its resources.
struct Page {
    resources: Vec<Json>,
}

/// The URL of a page of `endpoint`.
fn page_url(
    base: &str,
    endpoint: &str,
    start: usize,
    count: usize,
    attributes: &[String],
) -> String {
    format!(
        "{base}/{endpoint}?startIndex={start}&count={count}{}",
        attributes_query(attributes)
    )
}

/// Percent-encodes a query value.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Why a request of a read failed.
fn failed(what: &str, url: &str, e: Result<&Reply, &Failure>) -> String {
    match e {
        Ok(r) => format!("{what} ({url}): {}", super::describe(r)),
        Err(f) => format!("{what}: {f}"),
    }
}

/// GETs a JSON document; an error for anything but a success.
async fn get_json(http: &Http, url: &str, what: &str) -> Result<Json, String> {
    match http.send(Request::new(Method::Get, url)).await {
        Ok(r) if r.ok() => Ok(r.json()),
        Ok(r) => Err(failed(what, url, Ok(&r))),
        Err(f) => Err(failed(what, url, Err(&f))),
    }
}

/// The total and the resources of a listing page.
fn list_page(j: Json, url: &str) -> Result<(usize, Page), String> {
    let total = j
        .get("totalResults")
        .and_then(Json::as_u64)
        .ok_or_else(|| format!("{url}: the answer is not a SCIM ListResponse (no totalResults)"))?
        as usize;
    let resources = match j.get("Resources") {
        Some(Json::Array(a)) => a.clone(),
        None | Some(Json::Null) => Vec::new(),
        Some(_) => return Err(format!("{url}: `Resources` is not a list")),
    };
    Ok((total, Page { resources }))
}

/// How a listing is paged.
#[derive(Debug, Clone, Copy)]
pub(super) struct Paging {
    pub page_size: usize,
    pub concurrency: usize,
    /// Cursor paging (RFC 9865) instead of `startIndex`.
    pub cursor: bool,
}

/// The query of a listing's `attributes`.
fn attributes_query(attributes: &[String]) -> String {
    if attributes.is_empty() {
        return String::new();
    }
    let list: Vec<String> = attributes.iter().map(|a| encode(a)).collect();
    format!("&attributes={}", list.join(","))
}

/// Lists every resource of an endpoint, handing each page to `each` in order.
async fn list(
    http: &Http,
    base: &str,
    endpoint: &str,
    attributes: &[String],
    paging: Paging,
    each: impl FnMut(Vec<Json>) -> Result<(), String>,
) -> Result<(), String> {
    if paging.cursor {
        list_by_cursor(http, base, endpoint, attributes, paging.page_size, each).await
    } else {
        list_by_index(
            http,
            base,
            endpoint,
            attributes,
            paging.page_size,
            paging.concurrency,
            each,
        )
        .await
    }
}

/// A listing with cursors (RFC 9865): each page names the next. The service keeps the
/// positions, so resources written while the read runs do not shift the pages.
async fn list_by_cursor(
    http: &Http,
    base: &str,
    endpoint: &str,
    attributes: &[String],
    page_size: usize,
    mut each: impl FnMut(Vec<Json>) -> Result<(), String>,
) -> Result<(), String> {
    let mut cursor = String::new();
    loop {
        let url = format!(
            "{base}/{endpoint}?cursor={}&count={page_size}{}",
            encode(&cursor),
            attributes_query(attributes)
        );
        let j = get_json(http, &url, &format!("the listing of {endpoint}")).await?;
        let next = j
            .get("nextCursor")
            .and_then(Json::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_string);
        let (_, page) = list_page(j, &url)?;
        each(page.resources)?;
        match next {
            Some(c) => cursor = c,
            None => return Ok(()),
        }
    }
}

/// A listing with `startIndex`: the first page gives the total and the page size, the others
/// are fetched `concurrency` at a time; the total is compared with the distinct ids read.
async fn list_by_index(
    http: &Http,
    base: &str,
    endpoint: &str,
    attributes: &[String],
    page_size: usize,
    concurrency: usize,
    mut each: impl FnMut(Vec<Json>) -> Result<(), String>,
) -> Result<(), String> {
    let first_url = page_url(base, endpoint, 1, page_size, attributes);
    let (total, first) = list_page(
        get_json(http, &first_url, &format!("the listing of {endpoint}")).await?,
        &first_url,
    )?;
    let step = first.resources.len().min(page_size);
    let mut ids: HashSet<String> = HashSet::new();
    let mut note = |page: &Page| {
        for r in &page.resources {
            if let Some(id) = r.get("id").and_then(Json::as_str) {
                ids.insert(id.to_string());
            }
        }
    };
    note(&first);
    each(first.resources)?;
    if step > 0 && step < total {
        let starts: Vec<usize> = (1 + step..=total).step_by(step).collect();
        let mut pages = futures_util::stream::iter(starts.into_iter().map(|start| {
            let url = page_url(base, endpoint, start, step, attributes);
            async move {
                let j = get_json(http, &url, &format!("the listing of {endpoint}")).await?;
                list_page(j, &url)
            }
        }))
        .buffered(concurrency.max(1));
        while let Some(p) = pages.next().await {
            let (_, page) = p?;
            note(&page);
            each(page.resources)?;
        }
    }
    // The total now: resources that moved between pages while the read ran show as a
    // difference.
    let count_url = format!("{base}/{endpoint}?startIndex=1&count=0");
    let (now, _) = list_page(
        get_json(http, &count_url, &format!("the count of {endpoint}")).await?,
        &count_url,
    )?;
    if ids.len() != now {
        return Err(format!(
            "the listing of {endpoint} changed while it was read ({} resources read, {now} there now): read again",
            ids.len()
        ));
    }
    Ok(())
}

/// The DN of a resource: the value at the type's `dn` path, else `CN=<id>`.
fn dn_of(ty: &TypeMap, r: &Json, id: &str) -> String {
    let a = super::AttrMap {
        name: String::new(),
        path: ty.def.dn.clone(),
        base: Base::Str,
        multi: false,
    };
    json::read(r, ty, &a)
        .first()
        .and_then(|v| v.as_str())
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("CN={id}"))
}

/// The version of a resource (`meta.version`).
fn version_of(r: &Json) -> Option<String> {
    r.get("meta")?.get("version")?.as_str().map(str::to_string)
}

/// The attributes a listing of `ty` asks for: the mapped ones, the DN's, and the version.
fn attributes(ty: &TypeMap) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for p in ty.attrs.iter().map(|a| &a.path).chain([&ty.def.dn]) {
        let top = p.top();
        if !out.iter().any(|o| o.eq_ignore_ascii_case(&top)) {
            out.push(top);
        }
    }
    out.push("meta".into());
    out
}

/// A resource as the engine imports it, or why it cannot be.
fn object(
    ty: &TypeMap,
    known: &Known,
    r: &Json,
    unresolved: &mut usize,
) -> Result<ImportObject, String> {
    let id = r.get("id").and_then(Json::as_str).ok_or("no `id`")?;
    let dn = dn_of(ty, r, id);
    let mut attrs: Vec<(String, Value)> = Vec::new();
    for a in &ty.attrs {
        let found = json::read(r, ty, a);
        let mut vs = Vec::with_capacity(found.len());
        for j in found {
            if a.is_ref() {
                let Some(target) = j.as_str() else {
                    return Err(format!("`{}`: a reference without an id", a.path.text));
                };
                match known.by_id.get(target) {
                    Some((_, dn)) => vs.push(Value::Ref(dn.clone())),
                    // A resource of a type the mapping does not read, or one created while
                    // the read ran: not in the connector space.
                    None => *unresolved += 1,
                }
                continue;
            }
            match json::value(j, a.base) {
                Ok(v) if v.is_null() => {}
                Ok(Value::Str(s)) if s.is_empty() => {}
                Ok(v) => vs.push(v),
                Err(m) => return Err(format!("`{}`: {m}", a.path.text)),
            }
        }
        let v = match (vs.len(), a.multi) {
            (0, _) => continue,
            (1, false) => vs.swap_remove(0),
            (_, false) => {
                return Err(format!(
                    "`{}` holds {} values; `{}` is single-valued",
                    a.path.text,
                    vs.len(),
                    a.name
                ));
            }
            (_, true) => Value::many(vs),
        };
        attrs.push((a.name.clone(), v));
    }
    let anchor = match ty.anchor.1 {
        Base::Bin => Value::bin(id.as_bytes().to_vec()),
        _ => Value::str(id),
    };
    attrs.push((ty.anchor.0.clone(), anchor));
    Ok(ImportObject {
        dn,
        object_type: ty.name.clone(),
        attrs,
    })
}

/// Fills the maps of ids and DNs with a listing of every mapped endpoint (ids and DNs only).
pub(super) async fn load_known(
    http: &Http,
    base: &str,
    types: &[TypeMap],
    paging: Paging,
    known: &mut Known,
) -> Result<(), String> {
    let mut fresh = Known::default();
    for (ti, ty) in types.iter().enumerate() {
        let attrs = vec![ty.def.dn.top(), "meta".into()];
        list(http, base, &ty.def.endpoint, &attrs, paging, |page| {
            for r in page {
                let Some(id) = r.get("id").and_then(Json::as_str) else {
                    continue;
                };
                let dn = dn_of(ty, &r, id);
                fresh.insert(ti, id, &dn);
                if let Some(v) = version_of(&r) {
                    fresh.versions.insert(id.to_string(), v);
                }
            }
            Ok(())
        })
        .await?;
    }
    fresh.loaded = true;
    *known = fresh;
    Ok(())
}

pub fn import(
    c: &mut ScimConnector,
    http: &Http,
    base: &str,
    cursor: bool,
    sink: &mut dyn ImportSink,
) -> Result<ImportEnd, ConnectorError> {
    let refs = c.types.iter().any(|t| t.attrs.iter().any(|a| a.is_ref()));
    let paging = Paging {
        page_size: c.http_cfg.page_size,
        concurrency: c.http_cfg.concurrency,
        cursor,
    };
    let mut known = std::mem::take(&mut c.known);
    let types = c.types.clone();
    let source = format!("{} ({base})", c.name);
    let mut pager = Pager::new(sink);
    let mut unresolved = 0usize;
    let mut sink_error: Option<ConnectorError> = None;
    let r: Result<(), String> = c.block_on(async {
        if refs {
            load_known(http, base, &types, paging, &mut known).await?;
        } else {
            known = Known::default();
        }
        let mut fresh = Known::default();
        for (ti, ty) in types.iter().enumerate() {
            let attrs = attributes(ty);
            list(http, base, &ty.def.endpoint, &attrs, paging, |page| {
                for r in page {
                    let id = r
                        .get("id")
                        .and_then(Json::as_str)
                        .unwrap_or_default()
                        .to_string();
                    match object(ty, &known, &r, &mut unresolved) {
                        Ok(o) => {
                            fresh.insert(ti, &id, &o.dn);
                            if let Some(v) = version_of(&r) {
                                fresh.versions.insert(id, v);
                            }
                            if let Err(e) = pager.push(ImportChange::Upsert(o)) {
                                sink_error = Some(e);
                                return Err("the engine stopped the read".into());
                            }
                        }
                        Err(m) => pager.reject(Rejected {
                            source: source.clone(),
                            line: 0,
                            message: format!("{}/{id}: {m}", ty.def.endpoint),
                        }),
                    }
                }
                Ok(())
            })
            .await?;
        }
        fresh.loaded = true;
        known = fresh;
        Ok(())
    });
    if let Some(e) = sink_error {
        return Err(e);
    }
    r.map_err(|m| c.error(base, m))?;
    pager.flush()?;
    if unresolved > 0 {
        tracing::warn!(
            connector = c.name.as_str(),
            references = unresolved,
            "references to resources the mapping does not read were left out"
        );
    }
    c.known = known;
    Ok(ImportEnd {
        kind: ImportKind::Full,
        watermark: None,
    })
}

/// Looks a resource of `ty` up by its DN (a filter on the `dn` path); its id and version.
pub(super) async fn find_by_dn(
    http: &Http,
    base: &str,
    ty: &TypeMap,
    dn: &str,
) -> Result<Option<(String, Option<String>)>, Failure> {
    let p = &ty.def.dn;
    if !p.filter.is_empty() {
        return Ok(None);
    }
    let attr = match &p.sub {
        Some(s) => format!("{}.{s}", p.top()),
        None => p.top(),
    };
    let filter = format!("{attr} eq {}", crate::config::scim::quote(dn));
    let url = format!(
        "{base}/{}?filter={}&attributes={}",
        ty.def.endpoint,
        encode(&filter),
        encode(&attr)
    );
    let r = http.send(Request::new(Method::Get, &url)).await?;
    if !r.ok() {
        return Ok(None);
    }
    let j = r.json();
    let found = j
        .get("Resources")
        .and_then(Json::as_array)
        .and_then(|a| a.first())
        .and_then(|r| {
            let id = r.get("id")?.as_str()?.to_string();
            Some((id, version_of(r)))
        });
    Ok(found)
}
