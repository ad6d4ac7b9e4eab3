//! Exports to a SCIM service. See the module doc of [`super`].
//!
//! The deltas are sent `concurrency` at a time: the adds first, in waves (an add waits for the
//! adds it references, so a group is created with its members and a user with its manager;
//! adds that reference each other in a cycle are created without those references, which a
//! `PATCH` adds once all exist), then the updates and deletes. The results are answered in
//! the deltas' order.
//!
//! When the service stops answering (no connection after the retries, or it refuses the
//! token), the changes not yet sent are answered "retry": the ones it applied are recorded,
//! the others stay staged for the next run. A request whose answer was lost may have been
//! applied: an add is then looked up by its DN before it is sent again, so nothing is created
//! twice.

use super::super::http::{Failure, Http, Method, Reply, Request};
use super::super::{ConnectorError, ExportErrorCategory, ExportResult};
use super::read::{find_by_dn, load_known};
use super::{Features, Known, PATCH_OP, SCIM_JSON, ScimConnector, TypeMap, json};
use crate::config::scim::{Cond, DeleteMode, ScimPath};
use crate::engine::export::{AttrOp, ExportDelta};
use crate::engine::model::ExportOp;
use crate::value::Value;
use futures_util::StreamExt;
use serde_json::{Map, Value as Json, json};
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

/// The export result of a reply that is not a success (RFC 7644 section 3.12).
pub fn result_of(r: &Reply, kind: ExportOp) -> ExportResult {
    use ExportErrorCategory as C;
    let detail = super::describe(r);
    let scim_type = r
        .json()
        .get("scimType")
        .and_then(|v| v.as_str())
        .map(str::to_string)
        .unwrap_or_default();
    let category = match r.status {
        400 | 413 => C::DataValidation,
        403 => C::PermissionDenied,
        404 if kind == ExportOp::Add => C::Other,
        404 => C::NoSuchObject,
        409 if scim_type.eq_ignore_ascii_case("uniqueness") => C::DuplicateAttribute,
        409 => C::AlreadyExists,
        412 => {
            return ExportResult::Retry {
                after: None,
                reason: format!(
                    "{detail}: the resource changed on the service since it was read; the next import reads it again"
                ),
            };
        }
        429 | 500 | 502 | 503 | 504 => {
            return ExportResult::Retry {
                after: r.retry_after,
                reason: detail,
            };
        }
        _ => C::Other,
    };
    ExportResult::Failed { category, detail }
}

/// The shared context of one export.
struct Ctx<'a> {
    http: &'a Http,
    base: &'a str,
    types: &'a [TypeMap],
    etag: bool,
    known: RefCell<Known>,
    /// Why the service is taken to be gone: the changes not yet sent are not sent.
    gone: RefCell<Option<String>>,
}

/// References an add could not carry yet: (mapped attribute, DNs).
type Deferred = Vec<(usize, Vec<String>)>;

/// A change's outcome, and the references an add could not carry yet.
struct Outcome {
    result: ExportResult,
    deferred: Deferred,
}

impl Outcome {
    fn of(result: ExportResult) -> Outcome {
        Outcome {
            result,
            deferred: Vec::new(),
        }
    }
}

impl Ctx<'_> {
    fn url(&self, ty: &TypeMap, id: Option<&str>) -> String {
        match id {
            Some(id) => format!(
                "{}/{}/{}",
                self.base,
                ty.def.endpoint,
                super::read::encode(id)
            ),
            None => format!("{}/{}", self.base, ty.def.endpoint),
        }
    }

    fn version(&self, id: &str) -> Option<String> {
        if !self.etag {
            return None;
        }
        self.known.borrow().versions.get(id).cloned()
    }

    fn note_version(&self, id: &str, r: &Reply) {
        let v = r.etag.clone().or_else(|| {
            r.json()
                .get("meta")
                .and_then(|m| m.get("version"))
                .and_then(|v| v.as_str())
                .map(str::to_string)
        });
        let mut k = self.known.borrow_mut();
        match v {
            Some(v) => {
                k.versions.insert(id.to_string(), v);
            }
            None => {
                k.versions.remove(id);
            }
        }
    }

    /// The result of a request that got no answer; marks the service gone when it cannot be
    /// reached at all.
    fn unanswered(&self, f: &Failure) -> ExportResult {
        match f {
            Failure::Transport { message, .. } => {
                self.gone.replace(Some(format!("not sent: {message}")));
                ExportResult::Retry {
                    after: None,
                    reason: message.clone(),
                }
            }
            Failure::Busy { after, .. } => ExportResult::Retry {
                after: *after,
                reason: f.to_string(),
            },
        }
    }

    /// The result of a reply that is not a success; a refused token stops the export.
    fn refused(&self, r: &Reply, kind: ExportOp) -> ExportResult {
        if r.status == 401 {
            let why = format!(
                "the service refused the bearer token: {}",
                super::describe(r)
            );
            self.gone.replace(Some(format!("not sent: {why}")));
            return ExportResult::Retry {
                after: None,
                reason: why,
            };
        }
        result_of(r, kind)
    }

    fn gone(&self) -> Option<ExportResult> {
        self.gone.borrow().as_ref().map(|why| ExportResult::Retry {
            after: None,
            reason: why.clone(),
        })
    }

    /// The JSON of an attribute's values; references as ids, the DNs not on the service
    /// returned apart.
    fn values(&self, a: &super::AttrMap, v: &[Value]) -> (Vec<Json>, Vec<String>) {
        let mut out = Vec::new();
        let mut missing = Vec::new();
        let k = self.known.borrow();
        for x in v.iter().flat_map(Value::values) {
            if a.is_ref() {
                let Some(dn) = x.as_str() else { continue };
                match k.id_of(dn) {
                    Some(id) => out.push(json::reference(&a.path, id)),
                    None => missing.push(dn.to_string()),
                }
            } else if let Some(j) = json::scalar(x) {
                if j.as_str().is_some_and(str::is_empty) {
                    continue;
                }
                out.push(j);
            }
        }
        (out, missing)
    }

    async fn patch(&self, ty: &TypeMap, id: &str, ops: Vec<Json>) -> Result<Reply, Failure> {
        let body = json!({"schemas": [PATCH_OP], "Operations": ops});
        let url = self.url(ty, Some(id));
        let version = self.version(id);
        let r = self
            .http
            .send(
                Request::new(Method::Patch, &url)
                    .json(&body, SCIM_JSON)
                    .if_match(version.as_deref()),
            )
            .await?;
        if r.ok() {
            self.note_version(id, &r);
        }
        Ok(r)
    }
}

/// The PATCH operations of one attribute change.
fn ops_of(path: &ScimPath, multi: bool, op: &AttrOp, vals: Vec<Json>, out: &mut Vec<Json>) {
    let top = path.top();
    match op {
        AttrOp::Replace(_) if vals.is_empty() => ops_of(path, multi, &AttrOp::Clear, vals, out),
        AttrOp::Replace(_) => match (&path.sub, path.filter.is_empty()) {
            (Some(sub), false) => {
                out.push(json!({"op": "remove", "path": path.element(&[])}));
                let elems: Vec<Json> = vals
                    .into_iter()
                    .map(|v| json::element(path, sub, v))
                    .collect();
                out.push(json!({"op": "add", "path": top, "value": elems}));
            }
            (Some(sub), true) if multi => {
                let elems: Vec<Json> = vals
                    .into_iter()
                    .map(|v| json::element(path, sub, v))
                    .collect();
                out.push(json!({"op": "replace", "path": top, "value": elems}));
            }
            _ => {
                let value = if multi {
                    Json::Array(vals)
                } else {
                    vals.into_iter().next().unwrap_or(Json::Null)
                };
                out.push(json!({"op": "replace", "path": path.text, "value": value}));
            }
        },
        AttrOp::Clear => {
            let p = match (&path.sub, path.filter.is_empty()) {
                (Some(_), false) => path.element(&[]),
                (Some(_), true) if multi => top,
                _ => path.text.clone(),
            };
            out.push(json!({"op": "remove", "path": p}));
        }
        AttrOp::Add(_) => {
            if vals.is_empty() {
                return;
            }
            let value: Vec<Json> = match &path.sub {
                Some(sub) => vals
                    .into_iter()
                    .map(|v| json::element(path, sub, v))
                    .collect(),
                None => vals,
            };
            out.push(json!({"op": "add", "path": top, "value": value}));
        }
        AttrOp::Remove(_) => {
            for v in vals {
                let (sub, text) = match (&path.sub, &v) {
                    (Some(s), v) => (s.clone(), json::filter_text(v)),
                    (None, Json::Object(m)) => (
                        "value".to_string(),
                        m.get("value").map(json::filter_text).unwrap_or_default(),
                    ),
                    (None, v) => ("value".to_string(), json::filter_text(v)),
                };
                let p = path.element(&[Cond { sub, value: text }]);
                out.push(json!({"op": "remove", "path": p}));
            }
        }
    }
}

/// The values an attribute operation carries.
fn op_values(op: &AttrOp) -> &[Value] {
    match op {
        AttrOp::Replace(v) => std::slice::from_ref(v),
        AttrOp::Add(vs) | AttrOp::Remove(vs) => vs,
        AttrOp::Clear => &[],
    }
}

/// The DNs of the references a delta carries (values added or set).
fn refs_of(ty: &TypeMap, d: &ExportDelta) -> Vec<String> {
    let mut out = Vec::new();
    for ch in &d.changes {
        let Some(a) = ty.attr(&ch.attr) else { continue };
        if !a.is_ref() || matches!(ch.op, AttrOp::Remove(_)) {
            continue;
        }
        for v in op_values(&ch.op).iter().flat_map(Value::values) {
            if let Some(dn) = v.as_str() {
                out.push(dn.to_string());
            }
        }
    }
    out
}

/// A message listing DNs (the first few).
fn listed(dns: &[String]) -> String {
    let shown: Vec<&str> = dns.iter().take(5).map(String::as_str).collect();
    let more = if dns.len() > 5 {
        format!(" and {} more", dns.len() - 5)
    } else {
        String::new()
    };
    format!("{}{more}", shown.join("; "))
}

/// Sends an add.
async fn add(ctx: &Ctx<'_>, ti: usize, d: &ExportDelta) -> Outcome {
    let ty = &ctx.types[ti];
    // The resource: the mapped attributes, the DN, the schemas.
    let mut body = Map::new();
    let mut deferred: Deferred = Vec::new();
    let mut replace_ops: Vec<Json> = Vec::new();
    for ch in &d.changes {
        let Some(ai) = ty
            .attrs
            .iter()
            .position(|a| a.name.eq_ignore_ascii_case(&ch.attr))
        else {
            continue;
        };
        let a = &ty.attrs[ai];
        let (vals, missing) = ctx.values(a, op_values(&ch.op));
        if !missing.is_empty() {
            deferred.push((ai, missing));
        }
        ops_of(
            &a.path,
            a.multi,
            &AttrOp::Replace(Value::Null),
            vals.clone(),
            &mut replace_ops,
        );
        json::place(&mut body, ty, &a.path, vals, a.multi);
    }
    let dn_vals = vec![Json::String(d.dn.to_string())];
    ops_of(
        &ty.def.dn,
        false,
        &AttrOp::Replace(Value::Null),
        dn_vals.clone(),
        &mut replace_ops,
    );
    json::place(&mut body, ty, &ty.def.dn, dn_vals, false);
    let mut schemas: Vec<String> = ty.def.schemas.clone();
    for k in body.keys() {
        if k.to_ascii_lowercase().starts_with("urn:")
            && !schemas.iter().any(|s| s.eq_ignore_ascii_case(k))
        {
            schemas.push(k.clone());
        }
    }
    body.insert("schemas".into(), json!(schemas));
    let body = Json::Object(body);

    // Known already (a run that stopped before recording the add): set its values.
    let existing = ctx.known.borrow().id_of(&d.dn).map(str::to_string);
    if let Some(id) = existing {
        return replace_existing(ctx, ty, d, &id, replace_ops, deferred).await;
    }
    let url = ctx.url(ty, None);
    let mut tries = 0;
    loop {
        let sent = ctx
            .http
            .send(Request::new(Method::Post, &url).json(&body, SCIM_JSON))
            .await;
        match sent {
            Ok(r) if r.ok() => {
                let j = r.json();
                let Some(id) = j.get("id").and_then(Json::as_str).map(str::to_string) else {
                    return Outcome::of(ExportResult::Failed {
                        category: ExportErrorCategory::Other,
                        detail: format!("HTTP {}: the answer holds no `id`", r.status),
                    });
                };
                ctx.known.borrow_mut().insert(ti, &id, &d.dn);
                ctx.note_version(&id, &r);
                return Outcome {
                    result: ExportResult::Applied {
                        anchor: Some(anchor(ty, &id)),
                    },
                    deferred,
                };
            }
            Ok(r) if r.status == 409 => {
                // Created by an earlier attempt whose answer was lost, or someone else's.
                return match find_by_dn(ctx.http, ctx.base, ty, &d.dn).await {
                    Ok(Some((id, version))) => {
                        remember(ctx, ti, &id, &d.dn, version);
                        replace_existing(ctx, ty, d, &id, replace_ops, deferred).await
                    }
                    Ok(None) => Outcome::of(ctx.refused(&r, ExportOp::Add)),
                    Err(f) => Outcome::of(ctx.unanswered(&f)),
                };
            }
            Ok(r) => return Outcome::of(ctx.refused(&r, ExportOp::Add)),
            Err(Failure::Transport {
                message,
                maybe_applied: true,
            }) if tries == 0 => {
                // The answer was lost: created or not?
                tries += 1;
                match find_by_dn(ctx.http, ctx.base, ty, &d.dn).await {
                    Ok(Some((id, version))) => {
                        remember(ctx, ti, &id, &d.dn, version);
                        return replace_existing(ctx, ty, d, &id, replace_ops, deferred).await;
                    }
                    Ok(None) => {
                        tracing::debug!(connector = ctx.http.name.as_str(), %message, "an add is sent again");
                        continue;
                    }
                    Err(f) => return Outcome::of(ctx.unanswered(&f)),
                }
            }
            Err(f) => return Outcome::of(ctx.unanswered(&f)),
        }
    }
}

fn remember(ctx: &Ctx<'_>, ti: usize, id: &str, dn: &str, version: Option<String>) {
    let mut k = ctx.known.borrow_mut();
    k.insert(ti, id, dn);
    if let Some(v) = version {
        k.versions.insert(id.to_string(), v);
    }
}

/// The anchor value of a SCIM id, as the type declares its anchor.
fn anchor(ty: &TypeMap, id: &str) -> Value {
    match ty.anchor.1 {
        crate::sema::types::Base::Bin => Value::bin(id.as_bytes().to_vec()),
        _ => Value::str(id),
    }
}

/// An add of a resource the service holds already: its values are set with one PATCH.
async fn replace_existing(
    ctx: &Ctx<'_>,
    ty: &TypeMap,
    _d: &ExportDelta,
    id: &str,
    ops: Vec<Json>,
    deferred: Deferred,
) -> Outcome {
    match ctx.patch(ty, id, ops).await {
        Ok(r) if r.ok() => Outcome {
            result: ExportResult::Applied {
                anchor: Some(anchor(ty, id)),
            },
            deferred,
        },
        Ok(r) => Outcome::of(ctx.refused(&r, ExportOp::Update)),
        Err(f) => Outcome::of(ctx.unanswered(&f)),
    }
}

/// Sends the references an add could not carry: one PATCH; failed when some are still not on
/// the service.
async fn add_deferred(
    ctx: &Ctx<'_>,
    ti: usize,
    d: &ExportDelta,
    id: &str,
    deferred: &Deferred,
) -> ExportResult {
    let ty = &ctx.types[ti];
    let mut ops = Vec::new();
    let mut missing_all = Vec::new();
    for (ai, dns) in deferred {
        let a = &ty.attrs[*ai];
        let values: Vec<Value> = dns.iter().map(|d| Value::Ref(d.as_str().into())).collect();
        let (vals, missing) = ctx.values(a, &values);
        missing_all.extend(missing);
        if vals.is_empty() {
            continue;
        }
        if a.multi {
            ops_of(&a.path, true, &AttrOp::Add(Vec::new()), vals, &mut ops);
        } else {
            ops_of(
                &a.path,
                false,
                &AttrOp::Replace(Value::Null),
                vals,
                &mut ops,
            );
        }
    }
    if !ops.is_empty() {
        match ctx.patch(ty, id, ops).await {
            Ok(r) if r.ok() => {}
            Ok(r) => return ctx.refused(&r, ExportOp::Update),
            Err(f) => return ctx.unanswered(&f),
        }
    }
    if missing_all.is_empty() {
        ExportResult::Applied {
            anchor: Some(anchor(ty, id)),
        }
    } else {
        unresolved(&d.dn, &missing_all)
    }
}

fn unresolved(dn: &str, missing: &[String]) -> ExportResult {
    let _ = dn;
    ExportResult::Failed {
        category: ExportErrorCategory::Other,
        detail: format!(
            "references objects that are not on the service (not sent; the next export sends them once they are): {}",
            listed(missing)
        ),
    }
}

/// Sends an update: a rename (the DN's path) and the attribute changes, in one PATCH.
async fn update(ctx: &Ctx<'_>, ti: usize, d: &ExportDelta) -> ExportResult {
    let ty = &ctx.types[ti];
    let Some(id) = id_of(ctx, d) else {
        return ExportResult::Failed {
            category: ExportErrorCategory::NoSuchObject,
            detail: "no SCIM id is known for the object".into(),
        };
    };
    let mut ops = Vec::new();
    let mut missing_all = Vec::new();
    if let Some(new) = d.new_dn.as_deref().filter(|n| !crate::dn::same(&d.dn, n)) {
        ops_of(
            &ty.def.dn,
            false,
            &AttrOp::Replace(Value::Null),
            vec![Json::String(new.to_string())],
            &mut ops,
        );
    }
    for ch in &d.changes {
        let Some(a) = ty.attr(&ch.attr) else {
            tracing::debug!(
                connector = ctx.http.name.as_str(),
                attribute = &*ch.attr,
                "an attribute the mapping does not name is not sent"
            );
            continue;
        };
        let (vals, missing) = ctx.values(a, op_values(&ch.op));
        if matches!(ch.op, AttrOp::Remove(_)) {
            // A value whose object is gone from the service is gone from the attribute too.
            ops_of(&a.path, a.multi, &ch.op, vals, &mut ops);
            continue;
        }
        let unsendable = !missing.is_empty() && vals.is_empty();
        missing_all.extend(missing);
        if unsendable && matches!(ch.op, AttrOp::Replace(_)) {
            // A reference to an object not on the service: left as it is for now.
            continue;
        }
        ops_of(&a.path, a.multi, &ch.op, vals, &mut ops);
    }
    if !ops.is_empty() {
        match ctx.patch(ty, &id, ops).await {
            Ok(r) if r.ok() => {
                if let Some(new) = &d.new_dn {
                    ctx.known.borrow_mut().insert(ti, &id, new);
                }
            }
            Ok(r) => {
                if r.status == 404 {
                    ctx.known.borrow_mut().remove(&id);
                }
                return ctx.refused(&r, ExportOp::Update);
            }
            Err(f) => return ctx.unanswered(&f),
        }
    }
    if missing_all.is_empty() {
        ExportResult::Applied { anchor: None }
    } else {
        unresolved(&d.dn, &missing_all)
    }
}

/// The SCIM id of an object: its anchor, else what the DN is known as.
fn id_of(ctx: &Ctx<'_>, d: &ExportDelta) -> Option<String> {
    match &d.anchor {
        Some(Value::Bin(b)) => Some(String::from_utf8_lossy(b).into_owned()),
        Some(a) => a.as_str().map(str::to_string),
        None => ctx.known.borrow().id_of(&d.dn).map(str::to_string),
    }
}

/// Sends a delete: DELETE, or `active: false`. A resource that is gone already counts as
/// deleted.
async fn delete(ctx: &Ctx<'_>, ti: usize, d: &ExportDelta) -> ExportResult {
    let ty = &ctx.types[ti];
    let Some(id) = id_of(ctx, d) else {
        return ExportResult::Applied { anchor: None };
    };
    let r = match ty.def.delete {
        DeleteMode::Delete => {
            let url = ctx.url(ty, Some(&id));
            let version = ctx.version(&id);
            ctx.http
                .send(Request::new(Method::Delete, &url).if_match(version.as_deref()))
                .await
        }
        DeleteMode::Deactivate => {
            ctx.patch(
                ty,
                &id,
                vec![json!({"op": "replace", "path": "active", "value": false})],
            )
            .await
        }
    };
    match r {
        Ok(r) if r.ok() || r.status == 404 => {
            if ty.def.delete == DeleteMode::Delete {
                ctx.known.borrow_mut().remove(&id);
            }
            ExportResult::Applied { anchor: None }
        }
        Ok(r) => ctx.refused(&r, ExportOp::Delete),
        Err(f) => ctx.unanswered(&f),
    }
}

pub fn export(
    c: &mut ScimConnector,
    http: &Http,
    base: &str,
    features: Features,
    deltas: &[ExportDelta],
) -> Result<Vec<ExportResult>, ConnectorError> {
    let mut known = std::mem::take(&mut c.known);
    if !known.loaded {
        // Adds are looked up by DN and references resolved to ids: what is on the service?
        let paging = super::read::Paging {
            page_size: c.http_cfg.page_size,
            concurrency: c.http_cfg.concurrency,
            cursor: features.cursor,
        };
        let r = c.block_on(load_known(http, base, &c.types, paging, &mut known));
        if let Err(m) = r {
            c.known = known;
            return Err(c.error(base, m));
        }
    }
    let ctx = Ctx {
        http,
        base,
        types: &c.types,
        etag: features.etag,
        known: RefCell::new(known),
        gone: RefCell::new(None),
    };
    let n = deltas.len();
    let concurrency = c.http_cfg.concurrency;
    let mut results: Vec<Option<ExportResult>> = vec![None; n];
    let mut adds = Vec::new();
    let mut others = Vec::new();
    for (i, d) in deltas.iter().enumerate() {
        match c.type_index(&d.object_type) {
            None => {
                results[i] = Some(ExportResult::Failed {
                    category: ExportErrorCategory::Other,
                    detail: format!(
                        "the SCIM mapping of connector \"{}\" has no object type `{}`",
                        c.name, d.object_type
                    ),
                })
            }
            Some(ti) if d.kind == ExportOp::Add => adds.push((i, ti)),
            Some(ti) => others.push((i, ti)),
        }
    }
    c.block_on(async {
        // Adds, in waves: an add waits for the adds it references.
        let pending: HashMap<Box<str>, usize> = adds
            .iter()
            .map(|&(i, _)| (crate::dn::index_key(&deltas[i].dn), i))
            .collect();
        let deps: HashMap<usize, Vec<usize>> = adds
            .iter()
            .map(|&(i, ti)| {
                let mut ds: Vec<usize> = refs_of(&ctx.types[ti], &deltas[i])
                    .iter()
                    .filter_map(|dn| pending.get(&crate::dn::index_key(dn)).copied())
                    .filter(|&j| j != i)
                    .collect();
                ds.sort_unstable();
                ds.dedup();
                (i, ds)
            })
            .collect();
        let mut left: Vec<(usize, usize)> = adds.clone();
        let mut done: HashSet<usize> = HashSet::new();
        let mut deferred: Vec<(usize, usize, String, Deferred)> = Vec::new();
        while !left.is_empty() {
            let (mut ready, wait): (Vec<_>, Vec<_>) = left
                .iter()
                .partition(|(i, _)| deps[i].iter().all(|j| done.contains(j)));
            if ready.is_empty() {
                // A cycle: create them all; the references come after.
                ready = std::mem::take(&mut left);
            } else {
                left = wait;
            }
            let outcomes: Vec<(usize, usize, Outcome)> =
                futures_util::stream::iter(ready.into_iter().map(|(i, ti)| {
                    let ctx = &ctx;
                    async move {
                        if let Some(r) = ctx.gone() {
                            return (i, ti, Outcome::of(r));
                        }
                        (i, ti, add(ctx, ti, &deltas[i]).await)
                    }
                }))
                .buffer_unordered(concurrency)
                .collect()
                .await;
            for (i, ti, o) in outcomes {
                done.insert(i);
                if let (ExportResult::Applied { anchor: Some(a) }, false) =
                    (&o.result, o.deferred.is_empty())
                {
                    let id = match a {
                        Value::Bin(b) => String::from_utf8_lossy(b).into_owned(),
                        a => a.as_str().unwrap_or_default().to_string(),
                    };
                    deferred.push((i, ti, id, o.deferred));
                } else {
                    results[i] = Some(o.result);
                }
            }
        }
        // References of adds to objects created after them.
        let fixed: Vec<(usize, ExportResult)> =
            futures_util::stream::iter(deferred.iter().map(|(i, ti, id, refs)| {
                let ctx = &ctx;
                async move {
                    if let Some(r) = ctx.gone() {
                        return (*i, r);
                    }
                    (*i, add_deferred(ctx, *ti, &deltas[*i], id, refs).await)
                }
            }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (i, r) in fixed {
            results[i] = Some(r);
        }
        // Updates and deletes.
        let rest: Vec<(usize, ExportResult)> =
            futures_util::stream::iter(others.iter().map(|&(i, ti)| {
                let ctx = &ctx;
                async move {
                    if let Some(r) = ctx.gone() {
                        return (i, r);
                    }
                    let d = &deltas[i];
                    let r = match d.kind {
                        ExportOp::Delete => delete(ctx, ti, d).await,
                        _ => update(ctx, ti, d).await,
                    };
                    (i, r)
                }
            }))
            .buffer_unordered(concurrency)
            .collect()
            .await;
        for (i, r) in rest {
            results[i] = Some(r);
        }
    });
    let gone = ctx.gone.borrow().clone();
    c.known = ctx.known.into_inner();
    let results: Vec<ExportResult> = results
        .into_iter()
        .map(|r| {
            r.unwrap_or(ExportResult::Retry {
                after: None,
                reason: "not sent".into(),
            })
        })
        .collect();
    // Nothing reached the service: the export failed as a whole (the step reports the
    // connectivity problem); the changes stay staged.
    if let Some(why) = gone
        && results
            .iter()
            .all(|r| matches!(r, ExportResult::Retry { .. }))
    {
        return Err(c.error(base, why.trim_start_matches("not sent: ").to_string()));
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(p: &str) -> ScimPath {
        ScimPath::parse(p).unwrap()
    }

    #[test]
    fn one_member_added_or_removed_is_one_small_operation() {
        let members = path("members");
        let mut ops = Vec::new();
        ops_of(
            &members,
            true,
            &AttrOp::Add(Vec::new()),
            vec![json!({"value": "u1"})],
            &mut ops,
        );
        ops_of(
            &members,
            true,
            &AttrOp::Remove(Vec::new()),
            vec![json!({"value": "u\"2"})],
            &mut ops,
        );
        assert_eq!(
            Json::Array(ops),
            json!([
                {"op": "add", "path": "members", "value": [{"value": "u1"}]},
                {"op": "remove", "path": "members[value eq \"u\\\"2\"]"},
            ])
        );
    }

    #[test]
    fn filtered_paths_replace_their_element() {
        let mail = path(r#"emails[type eq "work"].value"#);
        let mut ops = Vec::new();
        ops_of(
            &mail,
            false,
            &AttrOp::Replace(Value::Null),
            vec![json!("a@x.com")],
            &mut ops,
        );
        ops_of(&mail, false, &AttrOp::Clear, Vec::new(), &mut ops);
        ops_of(
            &path("name.givenName"),
            false,
            &AttrOp::Replace(Value::Null),
            vec![json!("Ann")],
            &mut ops,
        );
        assert_eq!(
            Json::Array(ops),
            json!([
                {"op": "remove", "path": "emails[type eq \"work\"]"},
                {"op": "add", "path": "emails", "value": [{"type": "work", "value": "a@x.com"}]},
                {"op": "remove", "path": "emails[type eq \"work\"]"},
                {"op": "replace", "path": "name.givenName", "value": "Ann"},
            ])
        );
    }
}
