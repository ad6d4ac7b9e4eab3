//! The Microsoft Graph connector (`kind = "graph"`): users and groups of an Entra ID tenant,
//! over [`super::http`].
//!
//! Consumes: a connector's [`HttpConfig`] (the Graph base URL, concurrency, rate limit,
//! retries, timeouts, TLS), its [`GraphConfig`] (the OAuth2 token endpoint, client id, scope),
//! the client secret (the connector's [`Secret`]), its mapping (per connector object type: the
//! endpoint, `users` or `groups`; the property that keeps the object's DN; the property of each
//! connector-space attribute) and the object types the bundle declares. Produces:
//! [`ImportChange`]s in pages and one [`ExportResult`] per export delta.
//!
//! - **Sign-in.** OAuth2 client credentials: the token is asked for with the client id and
//!   secret, kept for the run, and asked for again when a fifth of its lifetime (at most 5
//!   minutes) is left, or when Graph answers 401 (it expired early). Neither the secret nor a
//!   token is ever logged or shown.
//! - **Identity.** Graph's `id` is the anchor; the DN is kept in the mapped `dn` property (a
//!   directory extension property of the app registration, such as
//!   `extension_<app id>_idflowDn`); an object without one gets `CN=<id>`. Group members are
//!   ids on Graph and DNs in the connector space.
//! - **Import** with delta queries: a full read follows `/users/delta` and `/groups/delta` from
//!   the start (`$select` of the mapped properties and, for groups, `members`) through every
//!   `@odata.nextLink` to the `@odata.deltaLink`, which is the watermark. Users go to the
//!   engine page by page; groups at the end of the read, because Graph may split a group's
//!   members over several pages. A delta read follows the stored deltaLinks: deleted objects
//!   (`@removed`) are deletes; every changed object is read whole (`GET`, in `$batch`es of
//!   20) and, for a group, with its whole member list (`/members`), and handed over as it
//!   is now.
//! - **Export** in JSON `$batch` requests of up to 20: first the adds (`POST`; a user gets a
//!   random initial password it must change, never logged), then per object the property
//!   changes (`PATCH`, a cleared property as `null`, a rename as the DN property), members
//!   added (`members@odata.bind`, 20 to a request) and removed (`DELETE .../members/{id}/$ref`),
//!   and the deletes. A request answered 429, 503 or 504 inside a batch is sent again in a
//!   later batch after the largest `Retry-After`. An add whose DN is on Graph already sets that
//!   object's properties instead.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

use super::http::{Failure, Http, Method, Reply, Request, Token};
use super::scim::{Known, TypeMap, json, prepare, read_secret, warn_cleartext};
use super::{
    Connector, ConnectorError, ExportErrorCategory, ExportResult, ImportEnd, ImportKind,
    ImportMode, ImportSink, Pager, Rejected,
};
use crate::config::{ConnectorConfig, GraphConfig, HttpConfig, Secret, UrlSource};
use crate::engine::compile::ConnectorPlan;
use crate::engine::export::{AttrOp, ExportDelta};
use crate::engine::import::{ImportChange, ImportObject};
use crate::engine::model::ExportOp;
use crate::value::Value;
use futures_util::StreamExt;
use serde_json::{Map, Value as Json, json};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Requests in one `$batch` (Graph's limit).
pub const BATCH_MAX: usize = 20;
/// Member references in one `members@odata.bind` (Graph's limit).
const BIND_MAX: usize = 20;

/// A token and when it is to be renewed.
#[derive(Debug, Clone)]
struct Held {
    token: Token,
    renew_at: Instant,
}

/// Microsoft Graph as a connector.
pub struct GraphConnector {
    pub name: String,
    pub http_cfg: HttpConfig,
    pub graph: GraphConfig,
    pub types: Vec<TypeMap>,
    secret: Option<Secret>,
    rt: tokio::runtime::Runtime,
    open: Option<(Http, String)>,
    token: Mutex<Option<Held>>,
    /// Token requests made (for tests and messages).
    pub token_requests: std::sync::atomic::AtomicUsize,
    pub known: Known,
}

/// One request of a batch: method, URL relative to the base, body.
#[derive(Debug, Clone)]
struct Req {
    method: Method,
    url: String,
    body: Option<Json>,
}

/// The answer to one request of a batch: the status and the body, or no answer.
type Answer = Result<(u16, Json), Failure>;

impl GraphConnector {
    pub fn new(
        cfg: &ConnectorConfig,
        plan: &ConnectorPlan,
    ) -> Result<GraphConnector, ConnectorError> {
        let fail = |message: String| ConnectorError {
            source: cfg.name.clone(),
            line: None,
            message,
        };
        let graph = cfg
            .graph
            .clone()
            .ok_or_else(|| fail("no Graph sign-in settings (tenant_id, client_id)".into()))?;
        let (http_cfg, types, rt) = prepare(cfg, plan, "Graph")?;
        for t in &types {
            if let Some(a) = t.attrs.iter().find(|a| {
                a.is_ref()
                    && !(t.def.endpoint.eq_ignore_ascii_case("groups") && a.path.attr == "members")
            }) {
                return Err(fail(format!(
                    "mapping `{}.attributes.{}`: the only reference a Graph connector maps is a group's `members`",
                    t.def.object_type, a.name
                )));
            }
        }
        Ok(GraphConnector {
            name: cfg.name.clone(),
            http_cfg,
            graph,
            types,
            secret: cfg.secret.clone(),
            rt,
            open: None,
            token: Mutex::new(None),
            token_requests: Default::default(),
            known: Known::default(),
        })
    }

    fn error(&self, base: &str, message: String) -> ConnectorError {
        ConnectorError {
            source: format!("{} ({base})", self.name),
            line: None,
            message,
        }
    }

    fn opened(&mut self) -> Result<(Http, String), ConnectorError> {
        if let Some(o) = &self.open {
            return Ok(o.clone());
        }
        let base = match &self.http_cfg.url {
            UrlSource::Literal(u) => u.clone(),
            UrlSource::Env(var) => std::env::var(var).map_err(|_| ConnectorError {
                source: self.name.clone(),
                line: None,
                message: format!("url_env: the environment variable `{var}` is not set"),
            })?,
        };
        let base = base.trim().trim_end_matches('/').to_string();
        warn_cleartext(&self.name, &base, true);
        warn_cleartext(&self.name, &self.graph.token_url, true);
        let http = {
            let _guard = self.rt.enter();
            Http::new(&self.name, &self.http_cfg, None)?
        };
        self.open = Some((http.clone(), base.clone()));
        Ok((http, base))
    }

    /// The client secret.
    fn client_secret(&self) -> Result<String, String> {
        let s = self
            .secret
            .as_ref()
            .ok_or("no client secret (secret_env or secret_file)")?;
        read_secret(&self.name, s, ("secret_env", "secret_file")).map_err(|e| e.message)
    }

    /// A valid access token: the one held, or a new one when it is close to its end (or
    /// `renew` says the service refused it).
    async fn bearer(&self, http: &Http, renew: bool) -> Result<Token, String> {
        if !renew
            && let Ok(held) = self.token.lock()
            && let Some(h) = held.as_ref()
            && Instant::now() < h.renew_at
        {
            return Ok(h.token.clone());
        }
        let secret = self.client_secret()?;
        let enc = super::scim::read::encode;
        let form = format!(
            "grant_type=client_credentials&client_id={}&client_secret={}&scope={}",
            enc(&self.graph.client_id),
            enc(&secret),
            enc(&self.graph.scope)
        );
        drop(secret);
        self.token_requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = http
            .send(Request::new(Method::Post, &self.graph.token_url).form(form))
            .await
            .map_err(|f| format!("the token endpoint {}: {f}", self.graph.token_url))?;
        let j = r.json();
        if !r.ok() {
            let what = j
                .get("error")
                .and_then(Json::as_str)
                .unwrap_or("no error code");
            return Err(format!(
                "the token endpoint {} refused the client credentials: HTTP {} ({what})",
                self.graph.token_url, r.status
            ));
        }
        let token = j
            .get("access_token")
            .and_then(Json::as_str)
            .ok_or_else(|| {
                format!(
                    "the token endpoint {} sent no access_token",
                    self.graph.token_url
                )
            })?;
        let life = Duration::from_secs(j.get("expires_in").and_then(Json::as_u64).unwrap_or(3600));
        let margin = (life / 5).min(Duration::from_secs(300));
        let held = Held {
            token: Token::new(token.to_string()),
            renew_at: Instant::now() + life - margin,
        };
        if let Ok(mut t) = self.token.lock() {
            *t = Some(held.clone());
        }
        Ok(held.token)
    }

    /// One request with the token; a 401 renews the token and sends it again once.
    async fn send(&self, http: &Http, req: Request<'_>) -> Result<Reply, Failure> {
        let no_token = |message| Failure::Transport {
            message,
            maybe_applied: false,
        };
        let token = self.bearer(http, false).await.map_err(no_token)?;
        let r = http.send(req.clone().bearer(Some(token.expose()))).await?;
        if r.status != 401 {
            return Ok(r);
        }
        let token = self.bearer(http, true).await.map_err(no_token)?;
        http.send(req.bearer(Some(token.expose()))).await
    }

    async fn get_json(&self, http: &Http, url: &str) -> Result<Json, String> {
        match self.send(http, Request::new(Method::Get, url)).await {
            Ok(r) if r.ok() => Ok(r.json()),
            Ok(r) => Err(format!("GET {url}: {}", describe(&r.status, &r.json()))),
            Err(f) => Err(f.to_string()),
        }
    }

    /// Sends requests in `$batch`es of 20, `concurrency` batches at a time; answers one result
    /// per request, in order. Requests answered 429, 503 or 504 are sent again in later
    /// batches after the largest `Retry-After` (at most `retries` times).
    async fn batch(&self, http: &Http, base: &str, reqs: Vec<Req>) -> Vec<Answer> {
        let n = reqs.len();
        let mut answers: Vec<Option<Answer>> = vec![None; n];
        let mut todo: Vec<usize> = (0..n).collect();
        let mut round = 0u32;
        while !todo.is_empty() {
            let chunks: Vec<Vec<usize>> = todo.chunks(BATCH_MAX).map(<[usize]>::to_vec).collect();
            let url = format!("{base}/$batch");
            let outcomes: Vec<(Vec<usize>, Result<Reply, Failure>)> =
                futures_util::stream::iter(chunks.into_iter().map(|ids| {
                    let body = json!({"requests": ids.iter().map(|&i| {
                        let r = &reqs[i];
                        let mut o = json!({"id": i.to_string(), "method": r.method.as_str(), "url": r.url});
                        if let Some(b) = &r.body {
                            o["body"] = b.clone();
                            o["headers"] = json!({"Content-Type": "application/json"});
                        }
                        o
                    }).collect::<Vec<_>>()});
                    let url = &url;
                    async move {
                        let r = self
                            .send(http, Request::new(Method::Post, url).json(&body, "application/json"))
                            .await;
                        (ids, r)
                    }
                }))
                .buffer_unordered(self.http_cfg.concurrency)
                .collect()
                .await;
            let mut again = Vec::new();
            let mut wait = Duration::ZERO;
            for (ids, r) in outcomes {
                let reply = match r {
                    Ok(r) if r.ok() => r,
                    Ok(r) => {
                        let f = Failure::Busy {
                            status: r.status,
                            after: r.retry_after,
                        };
                        let detail = describe(&r.status, &r.json());
                        for i in ids {
                            answers[i] = Some(if matches!(r.status, 429 | 503 | 504) {
                                Err(f.clone())
                            } else {
                                Ok((r.status, json!({"error": {"message": detail.clone()}})))
                            });
                        }
                        continue;
                    }
                    Err(f) => {
                        for i in ids {
                            answers[i] = Some(Err(f.clone()));
                        }
                        continue;
                    }
                };
                let j = reply.json();
                let by_id: HashMap<String, &Json> = j
                    .get("responses")
                    .and_then(Json::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| Some((x.get("id")?.as_str()?.to_string(), x)))
                            .collect()
                    })
                    .unwrap_or_default();
                for i in ids {
                    let Some(x) = by_id.get(&i.to_string()) else {
                        answers[i] = Some(Err(Failure::Transport {
                            message: "the $batch answer lacks this request".into(),
                            maybe_applied: true,
                        }));
                        continue;
                    };
                    let status = x.get("status").and_then(Json::as_u64).unwrap_or(0) as u16;
                    let body = x.get("body").cloned().unwrap_or(Json::Null);
                    if matches!(status, 429 | 503 | 504) && round < self.http_cfg.retries {
                        let after = x
                            .get("headers")
                            .and_then(|h| {
                                h.as_object()?
                                    .iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case("Retry-After"))
                                    .and_then(|(_, v)| {
                                        v.as_str()
                                            .map(str::to_string)
                                            .or(v.as_u64().map(|n| n.to_string()))
                                    })
                            })
                            .and_then(|v| super::http::parse_retry_after(&v))
                            .unwrap_or_else(|| super::http::backoff(round + 1));
                        wait = wait.max(after.min(super::http::MAX_RETRY_AFTER));
                        again.push(i);
                        continue;
                    }
                    answers[i] = Some(if matches!(status, 429 | 503 | 504) {
                        Err(Failure::Busy {
                            status,
                            after: None,
                        })
                    } else {
                        Ok((status, body))
                    });
                }
            }
            if !again.is_empty() {
                tracing::debug!(
                    connector = self.name.as_str(),
                    requests = again.len(),
                    wait_ms = wait.as_millis() as u64,
                    "throttled requests of a batch are sent again"
                );
                tokio::time::sleep(wait).await;
            }
            todo = again;
            round += 1;
        }
        answers
            .into_iter()
            .map(|a| {
                a.unwrap_or(Err(Failure::Transport {
                    message: "not sent".into(),
                    maybe_applied: false,
                }))
            })
            .collect()
    }
}

/// A Graph error answer as text: the status, the error code and message.
fn describe(status: &u16, j: &Json) -> String {
    let e = j.get("error");
    let code = e.and_then(|e| e.get("code")).and_then(Json::as_str);
    let message = e.and_then(|e| e.get("message")).and_then(Json::as_str);
    let mut out = format!("HTTP {status}");
    if let Some(c) = code {
        out.push_str(&format!(" ({c})"));
    }
    if let Some(m) = message {
        out.push_str(&format!(": {m}"));
    }
    out
}

/// The export result of an answer that is not a success.
pub fn result_of(status: u16, body: &Json, kind: ExportOp) -> ExportResult {
    use ExportErrorCategory as C;
    let detail = describe(&status, body);
    let code = body
        .get("error")
        .and_then(|e| e.get("code"))
        .and_then(Json::as_str)
        .unwrap_or("");
    let message = body
        .get("error")
        .and_then(|e| e.get("message"))
        .and_then(Json::as_str)
        .unwrap_or("");
    let category = match status {
        400 if code == "ObjectConflict" || message.contains("same value for property") => {
            C::DuplicateAttribute
        }
        400 | 413 => C::DataValidation,
        401 | 403 => C::PermissionDenied,
        404 if kind == ExportOp::Add => C::Other,
        404 => C::NoSuchObject,
        409 => C::DuplicateAttribute,
        429 | 500 | 502 | 503 | 504 => {
            return ExportResult::Retry {
                after: None,
                reason: detail,
            };
        }
        _ => C::Other,
    };
    ExportResult::Failed { category, detail }
}

/// A random initial password for a new user: 24 characters from four classes.
fn initial_password() -> String {
    use std::hash::{BuildHasher, Hasher};
    const SETS: [&[u8]; 4] = [
        b"ABCDEFGHJKLMNPQRSTUVWXYZ",
        b"abcdefghijkmnopqrstuvwxyz",
        b"23456789",
        b"!#%+-=?@_",
    ];
    let mut out = String::with_capacity(24);
    for i in 0..24u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        let r = h.finish();
        let set = SETS[(i % 4) as usize];
        out.push(set[(r % set.len() as u64) as usize] as char);
    }
    out
}

/// The `$select` of a type's reads: the id, the DN property, the mapped properties (and
/// `members` for groups, in delta queries).
fn select(ty: &TypeMap, members: bool) -> String {
    let mut out = vec!["id".to_string(), ty.def.dn.attr.clone()];
    for a in &ty.attrs {
        if a.is_ref() {
            continue;
        }
        if !out.contains(&a.path.attr) {
            out.push(a.path.attr.clone());
        }
    }
    if members && is_groups(ty) {
        out.push("members".into());
    }
    out.join(",")
}

fn is_groups(ty: &TypeMap) -> bool {
    ty.def.endpoint.eq_ignore_ascii_case("groups")
}

/// The DN of an object: its DN property, else `CN=<id>`.
fn dn_of(ty: &TypeMap, o: &Json, id: &str) -> String {
    o.get(&ty.def.dn.attr)
        .and_then(Json::as_str)
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| format!("CN={id}"))
}

/// An object as the engine imports it (its members given as DNs).
fn object(ty: &TypeMap, o: &Json, members: Option<Vec<Value>>) -> Result<ImportObject, String> {
    let id = o.get("id").and_then(Json::as_str).ok_or("no `id`")?;
    let mut attrs: Vec<(String, Value)> = Vec::new();
    for a in &ty.attrs {
        if a.is_ref() {
            if let Some(m) = &members
                && !m.is_empty()
            {
                attrs.push((a.name.clone(), Value::many(m.clone())));
            }
            continue;
        }
        let found: Vec<&Json> = match o.get(&a.path.attr) {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items.iter().collect(),
            Some(v) => vec![v],
        };
        let mut vs = Vec::new();
        for j in found {
            match json::value(j, a.base) {
                Ok(v) if v.is_null() => {}
                Ok(Value::Str(s)) if s.is_empty() => {}
                Ok(v) => vs.push(v),
                Err(m) => return Err(format!("`{}`: {m}", a.path.attr)),
            }
        }
        let v = match (vs.len(), a.multi) {
            (0, _) => continue,
            (_, false) => vs.swap_remove(0),
            (_, true) => Value::many(vs),
        };
        attrs.push((a.name.clone(), v));
    }
    attrs.push((ty.anchor.0.clone(), Value::str(id)));
    Ok(ImportObject {
        dn: dn_of(ty, o, id),
        object_type: ty.name.clone(),
        attrs,
    })
}

/// The watermark: the deltaLink of each mapped type.
fn watermark_of(links: &BTreeMap<String, String>) -> String {
    json!({ "deltaLinks": links }).to_string()
}

impl GraphConnector {
    /// Follows delta pages from `url` to the deltaLink, handing each entry to `each`.
    async fn follow(
        &self,
        http: &Http,
        mut url: String,
        mut each: impl FnMut(&Json) -> Result<(), String>,
    ) -> Result<String, String> {
        loop {
            let j = self.get_json(http, &url).await?;
            for o in j
                .get("value")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                each(o)?;
            }
            if let Some(next) = j.get("@odata.nextLink").and_then(Json::as_str) {
                url = next.to_string();
                continue;
            }
            return j
                .get("@odata.deltaLink")
                .and_then(Json::as_str)
                .map(str::to_string)
                .ok_or_else(|| {
                    format!("{url}: a delta page without @odata.nextLink or @odata.deltaLink")
                });
        }
    }

    /// The DNs of a group's members (its `/members`, every page).
    async fn members(&self, http: &Http, base: &str, id: &str) -> Result<Vec<Value>, String> {
        let dn_props: BTreeSet<&str> = self.types.iter().map(|t| t.def.dn.attr.as_str()).collect();
        let select: Vec<&str> = std::iter::once("id")
            .chain(dn_props.iter().copied())
            .collect();
        let mut url = format!(
            "{base}/groups/{}/members?$select={}",
            super::scim::read::encode(id),
            select.join(",")
        );
        let mut out = Vec::new();
        loop {
            let j = self.get_json(http, &url).await?;
            for m in j
                .get("value")
                .and_then(Json::as_array)
                .into_iter()
                .flatten()
            {
                let Some(mid) = m.get("id").and_then(Json::as_str) else {
                    continue;
                };
                let dn = dn_props
                    .iter()
                    .find_map(|p| m.get(*p).and_then(Json::as_str).filter(|d| !d.is_empty()))
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("CN={mid}"));
                out.push(Value::Ref(dn.into()));
            }
            match j.get("@odata.nextLink").and_then(Json::as_str) {
                Some(n) => url = n.to_string(),
                None => return Ok(out),
            }
        }
    }

    fn import_all(
        &mut self,
        http: &Http,
        base: &str,
        links: Option<BTreeMap<String, String>>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        let source = format!("{} ({base})", self.name);
        let mut pager = Pager::new(sink);
        let mut sink_error: Option<ConnectorError> = None;
        let types = self.types.clone();
        let delta = links.is_some();
        let mut known = if delta {
            std::mem::take(&mut self.known)
        } else {
            Known::default()
        };
        let mut new_links = BTreeMap::new();
        let mut pending: Vec<(usize, String, Json, Vec<String>)> = Vec::new();
        let r: Result<(), String> = self.rt.block_on(async {
            for (ti, ty) in types.iter().enumerate() {
                let start = match &links {
                    Some(l) => l.get(&ty.name).cloned().ok_or("no deltaLink")?,
                    None => format!(
                        "{base}/{}/delta?$select={}",
                        ty.def.endpoint,
                        select(ty, true)
                    ),
                };
                // Full: groups with the member ids of every page; delta: the changed ids.
                let mut groups: BTreeMap<String, (Json, Vec<String>)> = BTreeMap::new();
                let mut changed: Vec<String> = Vec::new();
                let link = self
                    .follow(http, start, |o| {
                        let Some(id) = o.get("id").and_then(Json::as_str) else {
                            return Ok(());
                        };
                        if o.get("@removed").is_some() {
                            known.remove(id);
                            return pager
                                .push(ImportChange::Delete {
                                    anchor: Some(Value::str(id)),
                                    dn: None,
                                })
                                .map_err(|e| {
                                    sink_error = Some(e);
                                    "the engine stopped the read".to_string()
                                });
                        }
                        if delta {
                            if !changed.iter().any(|c| c == id) {
                                changed.push(id.to_string());
                            }
                            return Ok(());
                        }
                        if is_groups(ty) {
                            let entry = groups
                                .entry(id.to_string())
                                .or_insert_with(|| (Json::Null, Vec::new()));
                            let mut props = o.clone();
                            if let Some(m) = props.as_object_mut() {
                                m.remove("members@delta");
                            }
                            if entry.0.is_null() || o.get("displayName").is_some() {
                                entry.0 = props;
                            }
                            for m in o
                                .get("members@delta")
                                .and_then(Json::as_array)
                                .into_iter()
                                .flatten()
                            {
                                if m.get("@removed").is_none()
                                    && let Some(mid) = m.get("id").and_then(Json::as_str)
                                {
                                    entry.1.push(mid.to_string());
                                }
                            }
                            return Ok(());
                        }
                        match object(ty, o, None) {
                            Ok(obj) => {
                                known.insert(ti, id, &obj.dn);
                                pager.push(ImportChange::Upsert(obj)).map_err(|e| {
                                    sink_error = Some(e);
                                    "the engine stopped the read".to_string()
                                })
                            }
                            Err(m) => {
                                pager.reject(Rejected {
                                    source: source.clone(),
                                    line: 0,
                                    message: format!("{}/{id}: {m}", ty.def.endpoint),
                                });
                                Ok(())
                            }
                        }
                    })
                    .await?;
                new_links.insert(ty.name.clone(), link);
                // A full read's groups wait for the end of the read: their members are
                // resolved against everything it showed.
                for (id, (props, member_ids)) in groups {
                    known.insert(ti, &id, &dn_of(ty, &props, &id));
                    pending.push((ti, id, props, member_ids));
                }
                // A delta read's changed objects, read whole (20 to a batch).
                if !changed.is_empty() {
                    let reqs: Vec<Req> = changed
                        .iter()
                        .map(|id| Req {
                            method: Method::Get,
                            url: format!(
                                "/{}/{}?$select={}",
                                ty.def.endpoint,
                                super::scim::read::encode(id),
                                select(ty, false)
                            ),
                            body: None,
                        })
                        .collect();
                    let answers = self.batch(http, base, reqs).await;
                    for (id, a) in changed.iter().zip(answers) {
                        let (status, o) = a.map_err(|f| f.to_string())?;
                        if status == 404 {
                            known.remove(id);
                            pager
                                .push(ImportChange::Delete {
                                    anchor: Some(Value::str(id.as_str())),
                                    dn: None,
                                })
                                .map_err(|e| {
                                    sink_error = Some(e);
                                    "the engine stopped the read".to_string()
                                })?;
                            continue;
                        }
                        if !(200..300).contains(&status) {
                            return Err(format!(
                                "GET /{}/{id}: {}",
                                ty.def.endpoint,
                                describe(&status, &o)
                            ));
                        }
                        let members = if is_groups(ty) && ty.attrs.iter().any(|a| a.is_ref()) {
                            Some(self.members(http, base, id).await?)
                        } else {
                            None
                        };
                        match object(ty, &o, members) {
                            Ok(obj) => {
                                known.insert(ti, id, &obj.dn);
                                pager.push(ImportChange::Upsert(obj)).map_err(|e| {
                                    sink_error = Some(e);
                                    "the engine stopped the read".to_string()
                                })?
                            }
                            Err(m) => pager.reject(Rejected {
                                source: source.clone(),
                                line: 0,
                                message: format!("{}/{id}: {m}", ty.def.endpoint),
                            }),
                        }
                    }
                }
            }
            for (ti, id, props, member_ids) in std::mem::take(&mut pending) {
                let ty = &types[ti];
                let members: Vec<Value> = member_ids
                    .iter()
                    .filter_map(|m| known.by_id.get(m).map(|(_, dn)| Value::Ref(dn.clone())))
                    .collect();
                match object(ty, &props, Some(members)) {
                    Ok(obj) => pager.push(ImportChange::Upsert(obj)).map_err(|e| {
                        sink_error = Some(e);
                        "the engine stopped the read".to_string()
                    })?,
                    Err(m) => pager.reject(Rejected {
                        source: source.clone(),
                        line: 0,
                        message: format!("{}/{id}: {m}", ty.def.endpoint),
                    }),
                }
            }
            Ok(())
        });
        if let Some(e) = sink_error {
            return Err(e);
        }
        r.map_err(|m| self.error(base, m))?;
        pager.flush()?;
        known.loaded = !delta || known.loaded;
        self.known = known;
        Ok(ImportEnd {
            kind: if delta {
                ImportKind::Delta
            } else {
                ImportKind::Full
            },
            watermark: Some(watermark_of(&new_links)),
        })
    }
}

impl Connector for GraphConnector {
    fn import(
        &mut self,
        mode: ImportMode<'_>,
        sink: &mut dyn ImportSink,
    ) -> Result<ImportEnd, ConnectorError> {
        let (http, base) = self.opened()?;
        let links = match mode {
            ImportMode::Delta { watermark: Some(w) } => {
                serde_json::from_str::<Json>(w).ok().and_then(|j| {
                    let m = j.get("deltaLinks")?.as_object()?;
                    let links: BTreeMap<String, String> = m
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                        .collect();
                    self.types
                        .iter()
                        .all(|t| links.contains_key(&t.name))
                        .then_some(links)
                })
            }
            _ => None,
        };
        self.import_all(&http, &base, links, sink)
    }

    fn export(&mut self, deltas: &[ExportDelta]) -> Result<Vec<ExportResult>, ConnectorError> {
        if deltas.is_empty() {
            return Ok(Vec::new());
        }
        let (http, base) = self.opened()?;
        if !self.known.loaded {
            let r = self.rt.block_on(self.load_known(&http, &base));
            self.known = r.map_err(|m| self.error(&base, m))?;
        }
        let mut known = std::mem::take(&mut self.known);
        let results = self
            .rt
            .block_on(self.export_all(&http, &base, deltas, &mut known));
        self.known = known;
        // Nothing reached Graph: the step stops naming it.
        if results
            .iter()
            .all(|r| matches!(r, ExportResult::Retry { .. }))
            && let Some(ExportResult::Retry { reason, .. }) = results.first()
            && reason.starts_with("no answer")
        {
            return Err(self.error(&base, reason.clone()));
        }
        Ok(results)
    }

    fn confirms_by_reimport(&self) -> bool {
        false
    }
}

/// Graph properties that are collections of strings: a single value goes as a list of one.
const COLLECTIONS: &[&str] = &["businessPhones", "otherMails", "imAddresses"];

/// The JSON of a property's values.
fn property(prop: &str, multi: bool, vals: Vec<Json>) -> Json {
    if multi || COLLECTIONS.iter().any(|c| c.eq_ignore_ascii_case(prop)) {
        Json::Array(vals)
    } else {
        vals.into_iter().next().unwrap_or(Json::Null)
    }
}

/// The values of an attribute operation.
fn op_values(op: &AttrOp) -> &[Value] {
    match op {
        AttrOp::Replace(v) => std::slice::from_ref(v),
        AttrOp::Add(vs) | AttrOp::Remove(vs) => vs,
        AttrOp::Clear => &[],
    }
}

/// A delta's requests and what they need.
#[derive(Default)]
struct Plan {
    reqs: Vec<Req>,
    /// Member DNs not on Graph.
    missing: Vec<String>,
}

impl GraphConnector {
    /// Fills the map of ids and DNs with a listing of every mapped type.
    async fn load_known(&self, http: &Http, base: &str) -> Result<Known, String> {
        let mut fresh = Known::default();
        for (ti, ty) in self.types.iter().enumerate() {
            let mut url = format!(
                "{base}/{}?$select=id,{}&$top={}",
                ty.def.endpoint,
                ty.def.dn.attr,
                self.http_cfg.page_size.min(999)
            );
            loop {
                let j = self.get_json(http, &url).await?;
                for o in j
                    .get("value")
                    .and_then(Json::as_array)
                    .into_iter()
                    .flatten()
                {
                    if let Some(id) = o.get("id").and_then(Json::as_str) {
                        fresh.insert(ti, id, &dn_of(ty, o, id));
                    }
                }
                match j.get("@odata.nextLink").and_then(Json::as_str) {
                    Some(n) => url = n.to_string(),
                    None => break,
                }
            }
        }
        fresh.loaded = true;
        Ok(fresh)
    }

    /// The body of a new object: its mapped properties, its DN and what Graph requires.
    fn new_object(&self, ty: &TypeMap, d: &ExportDelta) -> Json {
        let mut body = Map::new();
        for ch in &d.changes {
            let Some(a) = ty.attr(&ch.attr).filter(|a| !a.is_ref()) else {
                continue;
            };
            let vals: Vec<Json> = op_values(&ch.op)
                .iter()
                .flat_map(Value::values)
                .filter_map(json::scalar)
                .collect();
            if !vals.is_empty() {
                body.insert(a.path.attr.clone(), property(&a.path.attr, a.multi, vals));
            }
        }
        body.insert(ty.def.dn.attr.clone(), Json::String(d.dn.to_string()));
        let text = |k: &str| body.get(k).and_then(Json::as_str).map(str::to_string);
        if is_groups(ty) {
            if !body.contains_key("mailNickname") {
                let nick: String = text("displayName")
                    .unwrap_or_default()
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                body.insert(
                    "mailNickname".into(),
                    json!(if nick.is_empty() {
                        "group".into()
                    } else {
                        nick
                    }),
                );
            }
            body.entry("mailEnabled").or_insert(json!(false));
            body.entry("securityEnabled").or_insert(json!(true));
        } else {
            if !body.contains_key("mailNickname")
                && let Some(upn) = text("userPrincipalName")
            {
                let nick = upn.split('@').next().unwrap_or_default().to_string();
                body.insert("mailNickname".into(), json!(nick));
            }
            body.entry("accountEnabled").or_insert(json!(true));
            body.insert(
                "passwordProfile".into(),
                json!({"forceChangePasswordNextSignIn": true, "password": initial_password()}),
            );
        }
        Json::Object(body)
    }

    /// The requests of an update (or of the members of a new object).
    fn update_plan(
        &self,
        base: &str,
        ty: &TypeMap,
        d: &ExportDelta,
        id: &str,
        known: &Known,
        members_only: bool,
    ) -> Plan {
        let mut plan = Plan::default();
        let enc = super::scim::read::encode;
        let path = format!("/{}/{}", ty.def.endpoint, enc(id));
        let mut props = Map::new();
        if !members_only
            && let Some(new) = d.new_dn.as_deref().filter(|n| !crate::dn::same(&d.dn, n))
        {
            props.insert(ty.def.dn.attr.clone(), json!(new));
        }
        let mut binds = Vec::new();
        for ch in &d.changes {
            let Some(a) = ty.attr(&ch.attr) else { continue };
            if a.is_ref() {
                for v in op_values(&ch.op).iter().flat_map(Value::values) {
                    let Some(dn) = v.as_str() else { continue };
                    match (known.id_of(dn), &ch.op) {
                        (Some(mid), AttrOp::Remove(_)) => plan.reqs.push(Req {
                            method: Method::Delete,
                            url: format!("{path}/members/{}/$ref", enc(mid)),
                            body: None,
                        }),
                        (Some(mid), _) => binds.push(format!("{base}/directoryObjects/{mid}")),
                        (None, AttrOp::Remove(_)) => {}
                        (None, _) => plan.missing.push(dn.to_string()),
                    }
                }
                continue;
            }
            if members_only {
                continue;
            }
            let vals: Vec<Json> = op_values(&ch.op)
                .iter()
                .flat_map(Value::values)
                .filter_map(json::scalar)
                .collect();
            let value = match &ch.op {
                AttrOp::Clear => Json::Null,
                AttrOp::Replace(_) if vals.is_empty() => Json::Null,
                AttrOp::Replace(_) => property(&a.path.attr, a.multi, vals),
                // A collection changed value by value: Graph sets collections whole.
                AttrOp::Add(_) | AttrOp::Remove(_) => continue,
            };
            props.insert(a.path.attr.clone(), value);
        }
        // Collections changed value by value: their whole current value.
        for ch in &d.changes {
            if let (Some(a), AttrOp::Add(_) | AttrOp::Remove(_)) = (ty.attr(&ch.attr), &ch.op)
                && !a.is_ref()
                && !members_only
            {
                plan.missing.push(format!(
                    "`{}` (a collection changed value by value is not sent yet)",
                    a.name
                ));
            }
        }
        if !props.is_empty() {
            plan.reqs.insert(
                0,
                Req {
                    method: Method::Patch,
                    url: path.clone(),
                    body: Some(Json::Object(props)),
                },
            );
        }
        for chunk in binds.chunks(BIND_MAX) {
            plan.reqs.push(Req {
                method: Method::Patch,
                url: path.clone(),
                body: Some(json!({"members@odata.bind": chunk})),
            });
        }
        plan
    }

    async fn export_all(
        &self,
        http: &Http,
        base: &str,
        deltas: &[ExportDelta],
        known: &mut Known,
    ) -> Vec<ExportResult> {
        let n = deltas.len();
        let mut results: Vec<Option<ExportResult>> = vec![None; n];
        let mut ids: Vec<Option<String>> = vec![None; n];
        let types: Vec<Option<usize>> = deltas
            .iter()
            .map(|d| {
                self.types
                    .iter()
                    .position(|t| t.name.eq_ignore_ascii_case(&d.object_type))
            })
            .collect();
        // Adds first: their ids are what the other changes refer to.
        let mut adds = Vec::new();
        let mut reqs = Vec::new();
        for (i, d) in deltas.iter().enumerate() {
            let Some(ti) = types[i] else {
                results[i] = Some(ExportResult::Failed {
                    category: ExportErrorCategory::Other,
                    detail: format!(
                        "the mapping of connector \"{}\" has no object type `{}`",
                        self.name, d.object_type
                    ),
                });
                continue;
            };
            if d.kind != ExportOp::Add {
                continue;
            }
            if known.id_of(&d.dn).is_some() {
                results[i] = Some(ExportResult::Retry {
                    after: None,
                    reason: "an object with this DN is on Graph already (an add whose answer was lost?): the next import reads it (a full import when it does not change)".into(),
                });
                continue;
            }
            let ty = &self.types[ti];
            reqs.push(Req {
                method: Method::Post,
                url: format!("/{}", ty.def.endpoint),
                body: Some(self.new_object(ty, d)),
            });
            adds.push(i);
        }
        let answers = self.batch(http, base, reqs).await;
        for (&i, a) in adds.iter().zip(answers) {
            let ti = types[i].unwrap_or_default();
            match a {
                Ok((status, body)) if (200..300).contains(&status) => {
                    match body.get("id").and_then(Json::as_str) {
                        Some(id) => {
                            known.insert(ti, id, &deltas[i].dn);
                            ids[i] = Some(id.to_string());
                        }
                        None => {
                            results[i] = Some(ExportResult::Failed {
                                category: ExportErrorCategory::Other,
                                detail: format!("HTTP {status}: the answer holds no `id`"),
                            })
                        }
                    }
                }
                Ok((status, body)) => results[i] = Some(result_of(status, &body, ExportOp::Add)),
                Err(f) => results[i] = Some(unanswered(&f)),
            }
        }
        // Then everything else: property changes, members, deletes.
        let mut plans: Vec<(usize, Plan)> = Vec::new();
        for (i, d) in deltas.iter().enumerate() {
            if results[i].is_some() {
                continue;
            }
            let Some(ti) = types[i] else { continue };
            let ty = &self.types[ti];
            let id = ids[i].clone().or_else(|| match &d.anchor {
                Some(a) => a.as_str().map(str::to_string),
                None => known.id_of(&d.dn).map(str::to_string),
            });
            let Some(id) = id else {
                results[i] = Some(match d.kind {
                    ExportOp::Delete => ExportResult::Applied { anchor: None },
                    _ => ExportResult::Failed {
                        category: ExportErrorCategory::NoSuchObject,
                        detail: "no Graph id is known for the object".into(),
                    },
                });
                continue;
            };
            ids[i] = Some(id.clone());
            let plan = match d.kind {
                ExportOp::Delete => Plan {
                    reqs: vec![Req {
                        method: Method::Delete,
                        url: format!("/{}/{}", ty.def.endpoint, super::scim::read::encode(&id)),
                        body: None,
                    }],
                    missing: Vec::new(),
                },
                ExportOp::Add => self.update_plan(base, ty, d, &id, known, true),
                ExportOp::Update => self.update_plan(base, ty, d, &id, known, false),
            };
            plans.push((i, plan));
        }
        let mut owners = Vec::new();
        let mut reqs = Vec::new();
        for (k, (_, p)) in plans.iter().enumerate() {
            for r in &p.reqs {
                owners.push(k);
                reqs.push(r.clone());
            }
        }
        let sent: Vec<Req> = reqs.clone();
        let answers = self.batch(http, base, reqs).await;
        let mut outcome: Vec<Option<ExportResult>> = vec![None; plans.len()];
        for ((k, a), r) in owners.into_iter().zip(answers).zip(sent) {
            if outcome[k].is_some() {
                continue;
            }
            let i = plans[k].0;
            let kind = deltas[i].kind;
            match a {
                Ok((status, _)) if (200..300).contains(&status) => {}
                // Gone already: what a delete (of the object or of a member) was for.
                Ok((404, _)) if r.method == Method::Delete => {}
                Ok((status, body)) => {
                    outcome[k] = Some(result_of(
                        status,
                        &body,
                        if kind == ExportOp::Add {
                            ExportOp::Update
                        } else {
                            kind
                        },
                    ))
                }
                Err(f) => outcome[k] = Some(unanswered(&f)),
            }
        }
        for (k, (i, plan)) in plans.iter().enumerate() {
            let d = &deltas[*i];
            results[*i] = Some(match outcome[k].take() {
                Some(r) => r,
                None if !plan.missing.is_empty() => ExportResult::Failed {
                    category: ExportErrorCategory::Other,
                    detail: format!("not sent: {}", plan.missing.join("; ")),
                },
                None => {
                    if d.kind == ExportOp::Delete {
                        if let Some(id) = &ids[*i] {
                            known.remove(id);
                        }
                    } else if let (Some(new), Some(id), Some(ti)) = (&d.new_dn, &ids[*i], types[*i])
                    {
                        known.insert(ti, id, new);
                    }
                    ExportResult::Applied {
                        anchor: (d.kind == ExportOp::Add)
                            .then(|| Value::str(ids[*i].clone().unwrap_or_default())),
                    }
                }
            });
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or(ExportResult::Retry {
                    after: None,
                    reason: "not sent".into(),
                })
            })
            .collect()
    }
}

/// The result of a request that got no answer.
fn unanswered(f: &Failure) -> ExportResult {
    match f {
        Failure::Transport { message, .. } => ExportResult::Retry {
            after: None,
            reason: format!("no answer: {message}"),
        },
        Failure::Busy { after, .. } => ExportResult::Retry {
            after: *after,
            reason: f.to_string(),
        },
    }
}
